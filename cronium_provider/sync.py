"""``cronium-airflow sync``: Cronium's REST API -> record files, Airflow Variables and SSH connections.

One sync:

1. fetches every event (``GET /api/events``, then ``GET /api/events/{id}`` for each, since Cronium's list
   carries no env vars, servers or actions), every workflow (``GET /api/workflows`` and each detail) and the
   servers the event details name. Any failure here (401, 500, timeout, a body that is not JSON) stops the
   sync before anything is changed.
2. validates them with the record models, as the DAG processor will. An invalid record is reported with
   its id and field and left out of the file; every valid record is kept.
3. stores the secrets in Airflow: env var values in the Variables ``cronium_env_<eventId>_<KEY>`` (one
   transaction), server keys and passwords in the SSH connections ``cronium_server_<id>``.
4. writes ``RECORDS_DIR/cronium-api/records.json``, a bundle ``{"events", "workflows", "servers"}`` with
   env var keys but no values and servers without credentials, through a hidden temporary file renamed
   over the old one: the DAG processor reads the old file or the new one, never half of one.

Secret values are never written to a file, printed or logged; the names of the Variables are.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

from cronium_provider.records.errors import RecordError
from cronium_provider.records.models import Server
from cronium_provider.records.source import RawRecord, records_in_document
from cronium_provider.records.validation import RecordSet, validate_records
from cronium_provider.secrets import env_variable_key

SYNC_SUBDIR = "cronium-api"
SYNC_FILE = "records.json"

EXIT_OK = 0
EXIT_PARTIAL = 1  # the file was written, but some records were invalid and left out
EXIT_FAILED = 2  # nothing was changed

# Server fields written to the record file: everything else (sshKey, password, any future secret) stays out.
SERVER_FILE_FIELDS = ("id", "userId", "name", "address", "port", "username", "shared", "connectionId")
# Event fields that hold secrets or duplicate the server list; replaced or dropped before writing.
EVENT_DROPPED_FIELDS = ("server", "eventServers")
WORKFLOW_DROPPED_FIELDS = ("webhookKey",)
DETAIL_KEYS = ("envVars", "successEvents", "failEvents", "alwaysEvents", "conditionEvents", "servers")

_VARIABLE_KEY = re.compile(r"^[\w.-]+$")


class SyncFailed(RuntimeError):
    """The sync stopped before changing anything; the message says why (and never holds a secret)."""


@dataclass
class Snapshot:
    """What the API returned: event and workflow payloads, and the servers the events name (with secrets)."""

    base_url: str
    events: list[dict[str, Any]] = field(default_factory=list)
    workflows: list[dict[str, Any]] = field(default_factory=list)
    servers: dict[int, dict[str, Any]] = field(default_factory=dict)
    detail_calls: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class Prepared:
    """The sanitized records, the validation result and the secrets to store."""

    records: RecordSet
    document: dict[str, list[dict[str, Any]]]
    env_values: dict[str, str]  # Airflow Variable key -> value, for valid events only
    servers_with_credentials: RecordSet  # valid servers, with sshKey / password, for the SSH connections
    notes: list[str] = field(default_factory=list)


def _source(kind: str, record_id: Any) -> str:
    """Where a record came from, as its errors name it: the API request that returned it."""
    if isinstance(record_id, int | str) and not isinstance(record_id, bool):
        return f"GET /api/{kind}s/{record_id}"
    return f"GET /api/{kind}s (an item with no usable id)"


def _is_partial(event: dict[str, Any]) -> bool:
    return any(key not in event for key in DETAIL_KEYS)


def fetch(hook: Any, with_workflows: bool = True) -> Snapshot:
    """Every event (with its details), workflow and named server; raises :class:`CroniumError` on failure."""
    from cronium_provider.hooks.cronium import CroniumAPIError

    snapshot = Snapshot(base_url="")
    listed = hook.list_events()
    snapshot.base_url = str(getattr(hook, "base_url", ""))
    for item in listed:
        event_id = item.get("id")
        if not _is_partial(item) or not isinstance(event_id, int) or isinstance(event_id, bool):
            snapshot.events.append(item)  # complete already, or no usable id: validation will say so
            continue
        try:
            detail = hook.get_event(event_id)
        except CroniumAPIError as exc:
            if exc.status != 404:
                raise
            snapshot.notes.append(f"event {event_id}: deleted in Cronium while syncing; left out")
            continue
        snapshot.detail_calls += 1
        snapshot.events.append(detail)
    for event in snapshot.events:
        for server in _event_servers(event):
            server_id = server.get("id")
            if isinstance(server_id, int) and not isinstance(server_id, bool):
                snapshot.servers.setdefault(server_id, server)
    if with_workflows:
        for item in hook.list_workflows():
            workflow_id = item.get("id")
            if ("nodes" in item and ("edges" in item or "connections" in item)) or not isinstance(workflow_id, int):
                snapshot.workflows.append(item)
                continue
            try:
                snapshot.workflows.append(hook.get_workflow(workflow_id))
            except CroniumAPIError as exc:
                if exc.status != 404:
                    raise
                snapshot.notes.append(f"workflow {workflow_id}: deleted in Cronium while syncing; left out")
                continue
            snapshot.detail_calls += 1
    return snapshot


def _event_servers(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The full server objects an event detail carries (``server`` and the ``servers`` list)."""
    found: list[dict[str, Any]] = []
    if isinstance(event.get("server"), dict):
        found.append(event["server"])
    servers = event.get("servers")
    if isinstance(servers, list):
        found.extend(item for item in servers if isinstance(item, dict))
    return found


def _drop_nulls(data: dict[str, Any]) -> dict[str, Any]:
    """Cronium sends ``null`` for unset columns (a workflow's ``scheduleNumber``); the models' defaults apply."""
    return {key: value for key, value in data.items() if value is not None}


def sanitize_event(event: dict[str, Any]) -> dict[str, Any]:
    """The event as written to the file: env var keys without values, servers as ids, no server objects."""
    out = _drop_nulls({k: v for k, v in event.items() if k not in EVENT_DROPPED_FIELDS})
    env = event.get("envVars")
    if isinstance(env, list):
        out["envVars"] = [{"key": item.get("key")} if isinstance(item, dict) else {"key": None} for item in env]
    servers = event.get("servers")
    if isinstance(servers, list):
        out["servers"] = [item.get("id") if isinstance(item, dict) else item for item in servers]
    return out


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
    """Env var keys that cannot name an Airflow Variable (``cronium_env_<id>_<KEY>``)."""
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
        "event": records.events,
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
    notes = list(snapshot.notes)
    for event_id in sorted(records.events):
        source = events_by_id.get(event_id, {})
        for item in source.get("envVars") or []:
            variable = env_variable_key(event_id, item["key"])
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
    return Prepared(records, document, env_values, with_credentials, notes)


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
    if not loaded.ok or (
        set(loaded.events),
        set(loaded.workflows),
        set(loaded.servers),
    ) != (set(expected.events), set(expected.workflows), set(expected.servers)):
        problems = "; ".join(str(e) for e in loaded.errors[:3])
        raise SyncFailed(f"the records to write do not read back as the valid records ({problems}); nothing written")


def write_atomically(path: Path, text: str) -> bool:
    """Replace ``path`` with ``text`` through a hidden temporary file and a rename; False when unchanged."""
    data = text.encode("utf-8")
    if path.is_file() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    # hidden and not ending in .json: a folder scan skips it even if a crash leaves it behind
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return True


def store_env_values(values: dict[str, str]) -> None:
    """Set every Variable in one transaction: all of them, or none."""
    from airflow.models import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        for key in sorted(values):
            Variable.set(key, values[key], description="Cronium env var (cronium-airflow sync)", session=session)


def store_servers(servers: RecordSet, known_hosts: Path | None) -> list[str]:
    """SSH connections and pools for the servers; the credentials go there and nowhere else."""
    from cronium_provider.servers import ServerCredentials, conn_id_for, sync_servers

    creds = ServerCredentials(key_files={}, password_files={}, known_hosts=known_hosts)
    lines: list[str] = []
    for line in sync_servers(servers, creds):
        # the generic "remove it from that record" advice does not apply: the API is the source
        if "came from the Cronium API" in line:
            continue
        lines.append(line)
    for server_id in sorted(servers.servers):
        server = servers.servers[server_id]
        stored = [
            name
            for name, secret in (("SSH key", server.ssh_key), ("password", server.password))
            if secret is not None and secret.get_secret_value().strip()
        ]
        if stored:
            lines.append(
                f"server {server_id}: {' and '.join(stored)} stored in connection {conn_id_for(server)} "
                "(never written to a record file)"
            )
    return lines


def _folder_problems(records_dir: Path, target: Path) -> list[str]:
    """What the DAG processor will report about the written file next to the folder's other record files
    (a record defined both here and in a hand-written file, say)."""
    from cronium_provider.records.validation import load_records

    try:
        loaded = load_records([records_dir])
    except Exception as exc:  # a warning only: the sync itself is done
        return [f"could not re-read {records_dir}: {type(exc).__name__}"]
    return [str(error) for error in loaded.errors if str(target) in str(error)]


def _server_secrets(servers: RecordSet) -> list[str]:
    return [
        secret.get_secret_value()
        for server in servers.servers.values()
        for secret in (server.ssh_key, server.password)
        if secret is not None
    ]


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def run_sync(
    records_dir: Path,
    conn_id: str = "cronium_default",
    timeout: float = 30.0,
    with_workflows: bool = True,
    known_hosts: Path | None = None,
    out: TextIO | None = None,
    hook_factory: Callable[..., Any] | None = None,
) -> int:
    """The whole sync; returns the exit code (0 ok, 1 written with records left out, 2 nothing changed)."""
    import sys

    stream = out or sys.stdout

    def say(line: str) -> None:
        stream.write(line + "\n")

    target = Path(records_dir) / SYNC_SUBDIR / SYNC_FILE
    try:
        if hook_factory is None:
            from cronium_provider.hooks.cronium import CroniumHook

            hook_factory = CroniumHook
        hook = hook_factory(conn_id, timeout=timeout)
        snapshot = fetch(hook, with_workflows=with_workflows)
    except Exception as exc:
        hint = ""
        if getattr(exc, "status", None) in (401, 403):
            hint = f"; check the API token (the password of the Airflow connection {conn_id})"
        say(f"error: sync from Cronium (connection {conn_id}) failed: {_describe(exc)}{hint}")
        say(f"nothing changed: {target} and the Airflow Variables are as they were")
        return EXIT_FAILED
    say(
        f"fetched {_count(len(snapshot.events), 'event')}, {_count(len(snapshot.workflows), 'workflow')} and "
        f"{_count(len(snapshot.servers), 'server')} from {_safe_url(snapshot.base_url) or conn_id} "
        f"({_count(snapshot.detail_calls, 'detail request')})"
    )

    try:
        prepared = prepare(snapshot)
        text = render_document(prepared.document)
    except Exception as exc:  # not expected: validation reports problems instead of raising
        say(f"error: sync failed while checking the records: {type(exc).__name__}")
        say(f"nothing changed: {target} and the Airflow Variables are as they were")
        return EXIT_FAILED
    records = prepared.records
    for error in records.errors:
        say(f"left out: {error}")
    for note in prepared.notes:
        say(f"note: {note}")
    try:
        check_document(text, records)
        store_env_values(prepared.env_values)
        for name in sorted(prepared.env_values):
            say(f"set Variable {name}")
        server_lines = store_servers(prepared.servers_with_credentials, known_hosts) if records.servers else []
        for line in server_lines:
            say(line)
        changed = write_atomically(target, text)
    except Exception as exc:
        secrets = [*prepared.env_values.values(), *_server_secrets(prepared.servers_with_credentials)]
        say(f"error: sync failed: {_describe(exc, secrets)}")
        say(f"{target} is as it was")
        return EXIT_FAILED
    counts = (
        f"{_count(len(records.events), 'event')}, {_count(len(records.workflows), 'workflow')}, "
        f"{_count(len(records.servers), 'server')}"
    )
    say(f"{'wrote' if changed else 'unchanged'} {target}: {counts}")
    for problem in _folder_problems(Path(records_dir), target):
        say(f"warning: {problem}")
    say(
        f"synced: {counts}; {_count(len(records.errors), 'problem')} (records left out); "
        f"{_count(len(prepared.env_values), 'Variable')} set; "
        f"{_count(len(prepared.servers_with_credentials.servers), 'SSH connection')} updated"
    )
    return EXIT_OK if records.ok else EXIT_PARTIAL


def _describe(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """
    One line for the user: the hook's errors say which request failed and why.

    A database error shows its driver's message only (SQLAlchemy's text would carry the statement's
    parameters), and any secret value that still shows up is replaced by ``***``.
    """
    orig = getattr(exc, "orig", None)
    text = str(orig) if orig is not None else str(exc)
    for marker in ("[SQL:", "[parameters:", "(Background on this error"):
        text = text.split(marker, 1)[0]
    text = " ".join(text.split()) or type(exc).__name__
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    text = f"{type(exc).__name__}: {text}" if orig is not None else text
    return text if len(text) <= 400 else text[:400] + "..."


def _safe_url(url: str) -> str:
    """The base URL without any user:password part."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
