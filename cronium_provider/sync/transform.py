"""The pure part of a sync: Cronium API payloads -> the record file's document and the secrets to store.

Nothing here touches Airflow, the network or the disk, so it can be tested (and imported) on its own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from cronium_provider.naming import env_variable_key, legacy_env_variable_key
from cronium_provider.records.errors import RecordError
from cronium_provider.records.models import Server
from cronium_provider.records.source import RawRecord, records_in_document
from cronium_provider.records.validation import RecordSet, validate_records

# Server fields written to the record file: everything else (sshKey, password, any future secret) stays out,
# and so does ``connectionId``: which Airflow connection a server uses is for a person to name in a record
# file, never for the Cronium API (a server naming ``smtp_default`` would otherwise overwrite it).
SERVER_FILE_FIELDS = ("id", "userId", "name", "address", "port", "username", "shared")
# Event fields that hold secrets or duplicate the server list; replaced or dropped before writing.
EVENT_DROPPED_FIELDS = ("server", "eventServers")
WORKFLOW_DROPPED_FIELDS = ("webhookKey",)

_VARIABLE_KEY = re.compile(r"^[\w.-]+$")


class DocumentMismatch(ValueError):
    """The document to write does not read back as the valid records; the message never holds a secret."""


@dataclass
class Snapshot:
    """
    What the API returned: event and workflow payloads, and the servers the events name (with secrets).

    ``workflows_missing`` is set when the Cronium has no workflow route (a current Cronium: its workflows
    are served through tRPC to a browser session only); it says what the API answered.
    """

    base_url: str
    events: list[dict[str, Any]] = field(default_factory=list)
    workflows: list[dict[str, Any]] = field(default_factory=list)
    servers: dict[int, dict[str, Any]] = field(default_factory=dict)
    detail_calls: int = 0
    notes: list[str] = field(default_factory=list)
    workflows_missing: str | None = None


@dataclass
class Prepared:
    """The sanitized records, the validation result and the secrets to store."""

    records: RecordSet
    document: dict[str, list[dict[str, Any]]]
    env_values: dict[str, str]  # Airflow Variable key -> value, for valid events only
    servers_with_credentials: RecordSet  # valid servers, with sshKey / password, for the SSH connections
    notes: list[str] = field(default_factory=list)
    legacy_env_keys: list[str] = field(default_factory=list)  # where older versions kept these values


def _source(kind: str, record_id: Any) -> str:
    """Where a record came from, as its errors name it: the API request that returned it."""
    if isinstance(record_id, int | str) and not isinstance(record_id, bool):
        return f"GET /api/{kind}s/{record_id}"
    return f"GET /api/{kind}s (an item with no usable id)"


def _drop_nulls(data: dict[str, Any]) -> dict[str, Any]:
    """Cronium sends ``null`` for unset columns (a workflow's ``scheduleNumber``); the models' defaults apply."""
    return {key: value for key, value in data.items() if value is not None}


def sanitize_event(event: dict[str, Any]) -> dict[str, Any]:
    """The event as written to the file: env var keys without values, servers as ids, no server objects."""
    out = _drop_nulls({k: v for k, v in event.items() if k not in EVENT_DROPPED_FIELDS})
    env = event.get("envVars")
    if isinstance(env, list):
        out["envVars"] = [
            {"key": item.get("key")} if isinstance(item, dict) else {"key": None} for item in env if not empty_env(item)
        ]
    servers = event.get("servers")
    if isinstance(servers, list):
        out["servers"] = [item.get("id") if isinstance(item, dict) else item for item in servers]
    return out


def empty_env(item: Any) -> bool:
    """An env var Cronium leaves out of the job: one whose value is empty (``job-payload-builder.ts:97-104``
    sets a variable only ``if (envVar.key && envVar.value)``); a key without a value field is kept."""
    return isinstance(item, dict) and "value" in item and item["value"] in ("", None)


def sanitize_server(server: dict[str, Any]) -> dict[str, Any]:
    return _drop_nulls({key: server[key] for key in SERVER_FILE_FIELDS if key in server})


def sanitize_workflow(workflow: dict[str, Any]) -> dict[str, Any]:
    out = _drop_nulls({k: v for k, v in workflow.items() if k not in WORKFLOW_DROPPED_FIELDS})
    override = out.get("overrideServerIds")
    if isinstance(override, str):  # the list row keeps the JSON text Cronium stored
        try:
            out["overrideServerIds"] = json.loads(override) if override.strip() else []
        except json.JSONDecodeError:
            pass  # validation reports it
    return out


def _env_errors(event: dict[str, Any]) -> list[RecordError]:
    """Env var keys that cannot name an Airflow Variable (``cronium.env.<id>.<KEY>``)."""
    errors: list[RecordError] = []
    env = event.get("envVars")
    if not isinstance(env, list):
        return errors
    for index, item in enumerate(env):
        key = item.get("key") if isinstance(item, dict) else None
        value = item.get("value") if isinstance(item, dict) else None
        if value is not None and not isinstance(value, str | int | float | bool):
            errors.append(
                RecordError(
                    _source("event", event.get("id")),
                    f"the value of env var {key!r} is {type(value).__name__}, not text",
                    "event",
                    event.get("id"),
                    f"envVars[{index}].value",
                )
            )
        if isinstance(key, str) and key and not _VARIABLE_KEY.match(key):
            errors.append(
                RecordError(
                    _source("event", event.get("id")),
                    f"env var key {key!r} cannot name an Airflow Variable (letters, digits, _ . - only)",
                    "event",
                    event.get("id"),
                    f"envVars[{index}].key",
                )
            )
    return errors


def synced_events(records: RecordSet) -> dict[int, Any]:
    """The events written: the valid ones, and those with no DAG of their own (a bad schedule, a bad action)
    that a valid workflow runs as a node."""
    nodes = {node.event_id for wf in records.workflows.values() for node in wf.nodes}
    return {**records.events, **{i: e for i, e in records.node_only.items() if i in nodes}}


def prepare(snapshot: Snapshot) -> Prepared:
    """Sanitize and validate the snapshot; collect the secrets of the valid records."""
    raws: list[RawRecord] = []
    pre_errors: list[RecordError] = []
    events_by_id: dict[int, dict[str, Any]] = {}
    for index, event in enumerate(snapshot.events):
        problems = _env_errors(event)
        if problems:  # left out here; events and workflows naming it are then reported by validation
            pre_errors.extend(problems)
            continue
        raws.append(RawRecord(_source("event", event.get("id")), "event", sanitize_event(event), f"events[{index}]"))
        if isinstance(event.get("id"), int):
            events_by_id[event["id"]] = event
    for index, workflow in enumerate(snapshot.workflows):
        path = _source("workflow", workflow.get("id"))
        raws.append(RawRecord(path, "workflow", sanitize_workflow(workflow), f"workflows[{index}]"))
    for server_id in sorted(snapshot.servers):
        raws.append(RawRecord(_source("server", server_id), "server", sanitize_server(snapshot.servers[server_id]), ""))
    records = validate_records(raws, pre_errors)

    document: dict[str, list[dict[str, Any]]] = {"events": [], "workflows": [], "servers": []}
    valid: dict[str, dict[int, Any]] = {
        "event": synced_events(records),
        "workflow": records.workflows,
        "server": records.servers,
    }
    written: set[tuple[str, int]] = set()
    for raw in raws:
        record_id = raw.data.get("id")
        if isinstance(record_id, int) and record_id in valid[raw.kind] and (raw.kind, record_id) not in written:
            written.add((raw.kind, record_id))  # a duplicate id keeps its first record, as validation does
            document[raw.kind + "s"].append(raw.data)
    for key in document:
        document[key].sort(key=lambda item: int(item["id"]))

    env_values: dict[str, str] = {}
    legacy: list[str] = []
    notes = list(snapshot.notes)
    for event_id in sorted(synced_events(records)):
        source = events_by_id.get(event_id, {})
        for item in source.get("envVars") or []:
            if empty_env(item):
                notes.append(
                    f"event {event_id}: env var {item['key']} has an empty value: not set, as Cronium leaves it out"
                )
                continue
            variable = env_variable_key(event_id, item["key"])
            legacy.append(legacy_env_variable_key(event_id, item["key"]))
            if variable in env_values:
                notes.append(f"event {event_id}: env var {item['key']} appears twice; the last value is kept")
            env_values[variable] = _env_text(item.get("value"))

    with_credentials = RecordSet()
    for server_id in sorted(records.servers):
        payload = snapshot.servers[server_id]
        with_credentials.servers[server_id] = Server.model_validate(
            {**sanitize_server(payload), "sshKey": payload.get("sshKey"), "password": payload.get("password")}
        )
        with_credentials.origins[("server", server_id)] = f"the Cronium API (server {server_id})"
    return Prepared(records, document, env_values, with_credentials, notes, legacy)


def _env_text(value: Any) -> str:
    """An env var value as the script sees it (the record model's rules: booleans as true/false)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render_document(document: dict[str, list[dict[str, Any]]]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def check_document(text: str, expected: RecordSet) -> None:
    """The text, read back as the DAG processor will, holds exactly the valid records: else no write."""
    doc = json.loads(text)
    raws, errors = records_in_document("(sync output)", doc)
    loaded = validate_records(raws, errors)
    if [e for e in loaded.errors if not (e.kind == "event" and e.record_id in loaded.node_only)] or (
        set(synced_events(loaded)),
        set(loaded.workflows),
        set(loaded.servers),
    ) != (set(synced_events(expected)), set(expected.workflows), set(expected.servers)):
        problems = "; ".join(str(e) for e in loaded.errors[:3])
        raise DocumentMismatch(
            f"the records to write do not read back as the valid records ({problems}); nothing written"
        )
