"""Validate raw records into typed ones, finding every problem: types, enums, references, cycles, ids.

A bad record is left out and reported; every good record still loads. Messages never carry the value of
a secret field (env var values, server keys and passwords).

An event nested in a workflow node and the same event given on its own (or nested elsewhere) are one
record: the copy given on its own is used, else the first valid one. A nested copy that differs from the
one used, or is not valid, is a warning (in ``RecordSet.warnings``, not an error: nothing is left out),
naming both places and the fields; with no valid copy, the errors leave the event out.
A nested copy is what Cronium's workflow download holds, which is not the whole event: its
``conditionEvents`` is always empty (server/storage/modules/workflows.ts:86) and its env var values are
the encrypted column values (``envVars: true`` at workflows.ts:42, while ``GET /api/events/{id}`` decrypts
them, storage/modules/variables.ts:18-34); the comparison leaves both aside, and a nested copy in use whose
env var values look encrypted is refused (an error: the event is left out).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from cronium_provider.naming import node_task_id
from cronium_provider.records.errors import RecordError
from cronium_provider.records.models import (
    MODEL_BY_KIND,
    SCRIPT_TYPES,
    CroniumModel,
    Event,
    RunLocation,
    Server,
    Workflow,
    event_input,
)
from cronium_provider.records.schedules import ScheduleError, record_schedule
from cronium_provider.records.source import Progress, RawRecord, id_or_position, is_sync_file, read_records

SECRET_FIELDS = frozenset({"value", "sshKey", "password", "envVars"})
# A node's task is ``node_<id>`` and its actions' tasks ``node_<id>__on_condition_<n>``: with at most this many
# characters in the id they all fit Airflow's 250-character task ids.
NODE_ID_MAX = 200
# pydantic error types whose input is worth repeating in the message (unless the field is a secret)
_SHOW_INPUT = frozenset(
    {
        "enum",
        "literal_error",
        "int_parsing",
        "int_from_float",
        "bool_parsing",
        "string_type",
        "int_type",
        "less_than_equal",
        "greater_than_equal",
    }
)


@dataclass
class RecordSet:
    """The valid records, by id; every error found while loading (each leaves out what it names), and every
    warning (nothing left out: e.g. a nested copy of an event that differs from the copy used)."""

    events: dict[int, Event] = field(default_factory=dict)
    workflows: dict[int, Workflow] = field(default_factory=dict)
    servers: dict[int, Server] = field(default_factory=dict)
    errors: list[RecordError] = field(default_factory=list)
    warnings: list[RecordError] = field(default_factory=list)
    origins: dict[tuple[str, int], str] = field(default_factory=dict)
    # events that run only as workflow nodes, with no DAG of their own (not in ``events``), and the problems
    # (also in ``errors``) that leave out their own DAG: their schedule, their own conditional actions
    node_only: dict[int, Event] = field(default_factory=dict)
    dag_errors: dict[int, list[RecordError]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def all_events(self) -> dict[int, Event]:
        """Every event a workflow node may run: ``events`` and ``node_only``."""
        return {**self.events, **self.node_only} if self.node_only else self.events

    def origin(self, kind: str, record_id: int) -> str:
        return self.origins.get((kind, record_id), "?")


def _loc_to_field(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + part
    return text


def _is_secret(loc: tuple[int | str, ...]) -> bool:
    """Whether the input at ``loc`` may be a secret: an env var's or an HTTP header's value (headers often
    carry an API key), a server's key or password, a webhook key."""
    names = {p for p in loc if isinstance(p, str)}
    if names & {"envVars", "httpHeaders"} and "key" not in names:
        return True
    return bool(names & {"sshKey", "password", "webhookKey", "webhook_key"})


def _pydantic_errors(raw: RawRecord, exc: ValidationError) -> list[RecordError]:
    out: list[RecordError] = []
    for item in exc.errors(include_url=False):
        loc = tuple(item.get("loc", ()))
        message = str(item.get("msg", "invalid"))
        field_name = _loc_to_field(loc)
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        if not field_name and ": " in message and message.split(": ", 1)[0].isidentifier():
            field_name, message = message.split(": ", 1)
        value = item.get("input")
        if (
            item.get("type") in _SHOW_INPUT
            and not _is_secret(loc)
            and isinstance(value, str | int | float | bool)
            and len(str(value)) <= 60
        ):
            message = f"{message}; got {value!r}"
        if item.get("type") == "missing":
            message = "is required"
        out.append(RecordError(raw.path, message, raw.kind, _display_id(raw), field_name or None))
    return out


def _display_id(raw: RawRecord) -> int | str:
    return id_or_position(raw.record_id, raw.position)


def _schedule_errors(raw: RawRecord, model: Event | Workflow) -> list[RecordError]:
    try:
        record_schedule(model)
    except ScheduleError as exc:
        return [RecordError(raw.path, str(exc), raw.kind, model.id, exc.field)]
    return []


def _located(raw: RawRecord, errors: list[RecordError]) -> list[RecordError]:
    """Errors of a nested record also say where in the file it is."""
    if not raw.nested:
        return errors
    return [replace(e, message=f"{e.message} (the event nested at {raw.position})") for e in errors]


_BASE64 = re.compile(r"[A-Za-z0-9+/=]+")


def looks_encrypted(value: str) -> bool:
    """True for text Cronium itself takes for its AES-GCM ciphertext: base64, at least 50 characters,
    holding at least IV + tag + 1 bytes (apps/cronium-app/src/lib/encryption-service.ts:80-101)."""
    if len(value) < 50 or not _BASE64.fullmatch(value):
        return False
    try:
        return len(base64.b64decode(value, validate=True)) >= 33
    except (binascii.Error, ValueError):
        return False


# moves with every run, so two downloads of one event may differ in it
_NOT_COMPARED = frozenset({"execution_count", "condition_events", "env_vars", "empty_env_keys"})


def event_differences(a: Event, b: Event) -> list[str]:
    """The fields (camelCase) in which two copies of one event differ, as far as a nested copy can say."""
    fields = [
        to_camel(name)
        for name in Event.model_fields
        if name not in _NOT_COMPARED and getattr(a, name) != getattr(b, name)
    ]
    if sorted(v.key for v in a.env_vars) != sorted(v.key for v in b.env_vars):
        fields.append("envVars")
    else:
        values_a = {v.key: v.value.get_secret_value() for v in a.env_vars}
        values_b = {v.key: v.value.get_secret_value() for v in b.env_vars}
        # a synced copy keeps env var keys only (its values are in Airflow): an empty value is not compared
        if any(
            values_a[k] != values_b[k]
            and values_a[k] != ""
            and values_b[k] != ""
            and not looks_encrypted(values_a[k])
            and not looks_encrypted(values_b[k])
            for k in values_a
        ):
            fields.append("envVars")
    return fields


def _which(kept: RawRecord) -> str:
    return "given on its own" if not kept.nested else "the first valid one read"


def _conflict(kept: RawRecord, other: RawRecord, event_id: int, fields: list[str]) -> RecordError:
    """The warning for a nested copy of an event that differs from the copy used (nothing is left out)."""
    return RecordError(
        other.path,
        f"the event nested at {other.position} differs from event {event_id} in {kept.place} "
        f"in {', '.join(fields)}; that copy, {_which(kept)}, is used and this nested one is ignored",
        "event",
        event_id,
        ", ".join(fields),
        severity="warning",
    )


def _ignored(kept: RawRecord, other: RawRecord, event_id: int, problems: list[RecordError]) -> list[RecordError]:
    """The warnings for a nested copy of an event that is not valid while another copy is used."""
    return [
        replace(
            e,
            message=f"{e.message} (the event nested at {other.position}, not valid); event {event_id} in "
            f"{kept.place}, {_which(kept)}, is used and this nested one is ignored",
            severity="warning",
        )
        for e in problems
    ]


def _nested_event_id(raw: RawRecord) -> int | None:
    """The id of a nested event copy, when it is a plain integer (another copy of that event may be used)."""
    value = raw.record_id
    return value if raw.nested and raw.kind == "event" and type(value) is int else None


def _encrypted_env_errors(raw: RawRecord, event: Event) -> list[RecordError]:
    errors: list[RecordError] = []
    for i, var in enumerate(event.env_vars):
        if looks_encrypted(var.value.get_secret_value()):
            errors.append(
                RecordError(
                    raw.path,
                    f"the value of env var {var.key!r} looks encrypted: Cronium's workflow download carries "
                    "its events' env vars as stored, encrypted; add the event as GET /api/events/{id} returns "
                    f"it (decrypted), which is then used instead (the event nested at {raw.position})",
                    "event",
                    event.id,
                    f"envVars[{i}].value",
                )
            )
    return errors


_ACTION_LISTS = frozenset({"successEvents", "failEvents", "alwaysEvents", "conditionEvents"})
# what only an event's own DAG uses: a workflow node runs the event's script whatever its schedule
_SCHEDULE_FIELDS = frozenset({"triggerType", "scheduleNumber", "scheduleUnit", "customSchedule", "startTime"})


def _event_for_nodes(raw: RawRecord, exc: ValidationError) -> tuple[Event | None, list[RecordError]]:
    """An event whose only problems are in its schedule fields or its conditional actions, with those fields
    left at their defaults and those actions made ``NONE`` (the others keep their task ids), and those
    problems; None when other fields have problems too."""
    problems = exc.errors(include_url=False)
    own = _ACTION_LISTS | _SCHEDULE_FIELDS
    if not isinstance(raw.data, dict) or any(not p["loc"] or p["loc"][0] not in own for p in problems):
        return None, []
    data = event_input(raw.data)
    for problem in problems:
        name, *rest = problem["loc"]
        items = data.get(name)
        if name in _SCHEDULE_FIELDS:
            data.pop(name, None)
        elif isinstance(items, list) and rest and isinstance(rest[0], int):
            data[name] = [{"type": "NONE"} if i == rest[0] else item for i, item in enumerate(items)]
        else:
            data[name] = []
    try:
        return Event.model_validate(data), _pydantic_errors(raw, exc)
    except ValidationError:
        return None, []


def _validate_one(raw: RawRecord) -> tuple[CroniumModel | None, list[RecordError], list[RecordError]]:
    """The model, the problems that leave it out, and (for an event) those that leave out only its own DAG:
    a workflow node runs an event's script whatever its schedule and its own actions' problems."""
    model_cls = MODEL_BY_KIND.get(raw.kind)
    if model_cls is None:
        message = f"unknown kind {raw.kind!r}; allowed: {', '.join(MODEL_BY_KIND)}"
        return None, [RecordError(raw.path, message, "record", _display_id(raw), "kind")], []
    own: list[RecordError] = []
    try:
        model = model_cls.model_validate(raw.data)
    except ValidationError as exc:
        event, own = _event_for_nodes(raw, exc) if model_cls is Event else (None, [])
        if event is None:
            return None, _pydantic_errors(raw, exc), []
        model = event
    if isinstance(model, Event):
        own += _schedule_errors(raw, model)
    elif isinstance(model, Workflow):
        errors = _schedule_errors(raw, model)
        if errors:
            return None, errors, []
    if isinstance(model, Server) and model.connection_id is not None and is_sync_file(raw.path):
        # Cronium's servers have no such column: it came from the API, which never picks an Airflow connection
        message = (
            "a connectionId in the file `cronium-airflow sync` writes came from the Cronium API and is not "
            "honoured; run the sync again, and name a server's SSH connection in a record file of your own"
        )
        return None, [RecordError(raw.path, message, "server", model.id, "connectionId")], []
    return model, [], own


def find_cycles(nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Every strongly connected group of nodes that forms a cycle, each as a closed path of node ids."""
    graph: dict[str, list[str]] = {n: [] for n in nodes}
    for src, dst in edges:
        graph.setdefault(src, []).append(dst)
        graph.setdefault(dst, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0

    for start in graph:
        if start in index:
            continue
        work: list[tuple[str, int]] = [(start, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = graph[node]
            if child < len(children):
                work.append((node, child + 1))
                nxt = children[child]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                group: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1 or node in graph[node]:
                    groups.append(_cycle_path(graph, set(group)))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return groups


def _cycle_path(graph: dict[str, list[str]], group: set[str]) -> list[str]:
    """A closed walk through a strongly connected group, starting at its smallest node."""
    start = min(group)
    if start in graph[start]:
        return [start, start]
    # breadth-first search for the shortest way back to start, inside the group
    parents: dict[str, str] = {}
    frontier = [start]
    seen = {start}
    while frontier:
        nxt_frontier: list[str] = []
        for node in frontier:
            for child in graph[node]:
                if child not in group:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child not in seen:
                    seen.add(child)
                    parents[child] = node
                    nxt_frontier.append(child)
        frontier = nxt_frontier
    return sorted(group)


def _node_id_errors(path: str, wf: Workflow, i: int, tasks: dict[str, str]) -> list[RecordError]:
    """A node id too long for its tasks' ids, or one whose task id another node's already has."""
    node_id = wf.nodes[i].id
    field = f"nodes[{i}].id"
    if len(node_id) > NODE_ID_MAX:
        message = (
            f"node id '{node_id[:40]}...' is {len(node_id)} characters long; at most {NODE_ID_MAX}, so that "
            "its task id (node_<id>) and its actions' task ids fit Airflow's 250 characters"
        )
        return [RecordError(path, message, "workflow", wf.id, field)]
    task_id = node_task_id(node_id)
    other = tasks.setdefault(task_id, node_id)
    if other != node_id:
        message = (
            f"node '{node_id}' and node '{other}' would both be the task '{task_id}': node ids must differ in "
            "more than the characters a task id cannot hold (anything but A-Z, a-z, 0-9, '_', '.' and '-')"
        )
        return [RecordError(path, message, "workflow", wf.id, field)]
    return []


def _workflow_errors(path: str, wf: Workflow, events: dict[int, Event]) -> list[RecordError]:
    errors: list[RecordError] = []
    node_ids: list[str] = []
    seen: set[str] = set()
    tasks: dict[str, str] = {}
    for i, node in enumerate(wf.nodes):
        if node.id in seen:
            errors.append(RecordError(path, f"duplicate node id '{node.id}'", "workflow", wf.id, f"nodes[{i}].id"))
        else:
            errors.extend(_node_id_errors(path, wf, i, tasks))
        seen.add(node.id)
        node_ids.append(node.id)
        if node.event_id not in events:
            errors.append(
                RecordError(
                    path,
                    f"node '{node.id}' points at event {node.event_id}, which is not among the valid events",
                    "workflow",
                    wf.id,
                    f"nodes[{i}].eventId",
                )
            )
    edges: list[tuple[str, str]] = []
    for i, conn in enumerate(wf.connections):
        for end in ("source", "target"):
            ref = getattr(conn, end)
            if ref not in seen:
                errors.append(
                    RecordError(
                        path,
                        f"connection {end} '{ref}' is not a node of this workflow",
                        "workflow",
                        wf.id,
                        f"connections[{i}].{end}",
                    )
                )
        if conn.source == conn.target:
            errors.append(
                RecordError(
                    path,
                    f"self-loop: node '{conn.source}' connects to itself",
                    "workflow",
                    wf.id,
                    f"connections[{i}]",
                )
            )
        else:
            edges.append((conn.source, conn.target))
    for cycle in find_cycles(node_ids, edges):
        errors.append(
            RecordError(
                path,
                "cycle through nodes " + " -> ".join(f"'{n}'" for n in cycle) + "; workflows must be acyclic",
                "workflow",
                wf.id,
                "connections",
            )
        )
    errors.extend(_override_errors(path, wf, events))
    return errors


def _override_errors(path: str, wf: Workflow, events: dict[int, Event]) -> list[RecordError]:
    """Overriding the events' servers with no server leaves a node that runs a remote script nowhere to run."""
    if not wf.override_event_servers or wf.override_server_ids:
        return []
    for node in wf.nodes:
        event = events.get(node.event_id)
        if event is not None and event.type in SCRIPT_TYPES and event.run_location is RunLocation.REMOTE:
            message = (
                f"overrideEventServers is true but overrideServerIds lists no server, so node '{node.id}' "
                f"(REMOTE event {event.id}) would run on none; list its servers or set overrideEventServers false"
            )
            return [RecordError(path, message, "workflow", wf.id, "overrideServerIds")]
    return []


def _event_errors(
    path: str, event: Event, events: set[int], servers: set[int], known: Collection[int] = ()
) -> tuple[list[RecordError], list[RecordError]]:
    """The event's problems that leave it out (a server that is not valid), and those that leave out only
    its own DAG (a SCRIPT action starting an event that has no DAG)."""
    errors: list[RecordError] = []
    own: list[RecordError] = []
    if event.server_id is not None and event.server_id not in servers:
        errors.append(
            RecordError(path, f"server {event.server_id} is not among the valid servers", "event", event.id, "serverId")
        )
    for i, ref in enumerate(event.servers):
        if ref.id not in servers:
            errors.append(
                RecordError(path, f"server {ref.id} is not among the valid servers", "event", event.id, f"servers[{i}]")
            )
    lists = {
        "alwaysEvents": event.always_events,
        "successEvents": event.success_events,
        "failEvents": event.fail_events,
        "conditionEvents": event.condition_events,
    }
    for name, actions in lists.items():
        for i, action in enumerate(actions):
            # a SCRIPT action with no target, a SEND_MESSAGE with no toolId: no-ops (the plan notes them)
            if action.type.value == "SCRIPT" and action.target_event_id is not None:
                if action.target_event_id not in events:
                    own.append(
                        RecordError(
                            path,
                            f"targets event {action.target_event_id}, which is not among the valid events"
                            if action.target_event_id not in known
                            else f"targets event {action.target_event_id}, which has no DAG of its own",
                            "event",
                            event.id,
                            f"{name}[{i}].targetEventId",
                        )
                    )
    return errors, own


def validate_records(raws: Iterable[RawRecord], errors: list[RecordError] | None = None) -> RecordSet:
    """Typed records from raw ones, with duplicate, reference and cycle checks across the whole set."""
    result = RecordSet(errors=list(errors or []))
    copies: dict[str, dict[int, list[tuple[RawRecord, Any]]]] = {"event": {}, "workflow": {}, "server": {}}
    # nested event copies that are not valid: errors, unless another copy of the event is used
    invalid_nested: list[tuple[RawRecord, int, list[RecordError]]] = []
    own_problems: dict[int, list[RecordError]] = {}  # by id() of the raw record: see _validate_one
    for raw in raws:
        model, problems, dag_problems = _validate_one(raw)
        if dag_problems:
            own_problems[id(raw)] = dag_problems
        nested_id = _nested_event_id(raw)
        if model is None and nested_id is not None:
            invalid_nested.append((raw, nested_id, problems))
            continue
        if model is None:
            result.errors.extend(_located(raw, problems))
            continue
        record_id: int = model.id  # type: ignore[attr-defined]
        copies[raw.kind].setdefault(record_id, []).append((raw, model))

    copies_checked = len(result.errors)
    typed: dict[str, dict[int, tuple[RawRecord, Any]]] = {"event": {}, "workflow": {}, "server": {}}
    differing: dict[int, list[RecordError]] = {}  # warnings, given once the event they name is valid
    for kind, by_id in copies.items():
        for record_id, found in by_id.items():
            # a record given on its own wins over copies nested in workflow nodes, and one in a file of a
            # person's own over the copy `cronium-airflow sync` wrote; else the first copy
            own = [c for c in found if not c[0].nested]
            kept = next((c for c in own if not is_sync_file(c[0].path)), own[0] if own else found[0])
            typed[kind][record_id] = kept
            for raw, model in found:
                if raw is kept[0]:
                    continue
                if raw.nested and isinstance(model, Event):
                    differences = event_differences(kept[1], model)
                    if differences:
                        differing.setdefault(record_id, []).append(_conflict(kept[0], raw, record_id, differences))
                    continue
                result.errors.append(
                    RecordError(
                        raw.path,
                        f"duplicate id: {kind} {record_id} is already defined in {kept[0].place}",
                        kind,
                        record_id,
                        "id",
                    )
                )

    for server_id, (raw, server) in typed["server"].items():
        result.servers[server_id] = server
        result.origins[("server", server_id)] = raw.path

    candidates: dict[int, tuple[RawRecord, Event]] = {}
    for event_id, (raw, event) in typed["event"].items():
        problems = _encrypted_env_errors(raw, event) if raw.nested else []
        if problems:
            result.errors.extend(problems)
        else:
            candidates[event_id] = (raw, event)

    # An event naming a server that is not valid is left out; one whose SCRIPT action starts an event that
    # gets no DAG of its own gets none either (it still runs as a workflow node): repeat until stable.
    base = {i: _located(raw, own_problems[id(raw)]) for i, (raw, _) in candidates.items() if id(raw) in own_problems}
    unbuildable = set(base)
    while True:
        ids = set(candidates) - unbuildable
        bad: dict[int, list[RecordError]] = {}
        changed = False
        for event_id, (raw, event) in candidates.items():
            problems, dag_problems = _event_errors(raw.path, event, ids, set(result.servers), candidates)
            if problems:
                bad[event_id] = _located(raw, problems)
            elif dag_problems and event_id not in unbuildable:
                unbuildable.add(event_id)
                changed = True
        for event_id, problems in bad.items():
            result.errors.extend(problems)
            del candidates[event_id]
            unbuildable.discard(event_id)
        if not bad and not changed:
            break
    ids = set(candidates) - unbuildable
    dag_errors: dict[int, list[RecordError]] = {}
    for event_id in sorted(unbuildable):
        raw, event = candidates[event_id]
        _, dag_problems = _event_errors(raw.path, event, ids, set(result.servers), candidates)
        dag_errors[event_id] = base.get(event_id, []) + _located(raw, dag_problems)
    for event_id in sorted(dag_errors):
        result.errors.extend(dag_errors[event_id])
    result.dag_errors = dag_errors
    for event_id, (raw, event) in candidates.items():
        (result.node_only if event_id in dag_errors else result.events)[event_id] = event
        result.origins[("event", event_id)] = raw.path
        if event.type in SCRIPT_TYPES and event.run_location is RunLocation.REMOTE and not event.server_ids:
            # Cronium warns and runs it in a container (lib/scheduler/job-payload-builder.ts:133-145)
            message = "REMOTE but names no server (serverId, servers): it runs in a container, as in Cronium"
            result.warnings.append(RecordError(raw.path, message, "event", event_id, "serverId", severity="warning"))
        result.warnings.extend(differing.get(event_id, []))
    unused: list[RecordError] = []
    for raw, event_id, problems in invalid_nested:
        if event_id in result.all_events:
            result.warnings.extend(_ignored(typed["event"][event_id][0], raw, event_id, problems))
        else:
            unused.extend(_located(raw, problems))
    result.errors[copies_checked:copies_checked] = unused  # after the other records' own errors, as before

    for wf_id, (raw, wf) in typed["workflow"].items():
        path = raw.path
        problems = _workflow_errors(path, wf, result.all_events)
        if wf.override_event_servers:
            for i, server_id in enumerate(wf.override_server_ids):
                if server_id not in result.servers:
                    problems.append(
                        RecordError(
                            path,
                            f"server {server_id} is not among the valid servers",
                            "workflow",
                            wf_id,
                            f"overrideServerIds[{i}]",
                        )
                    )
        if problems:
            result.errors.extend(problems)
            continue
        result.workflows[wf_id] = wf
        result.origins[("workflow", wf_id)] = path
    return result


def load_records(paths: Iterable[str | Path], progress: Progress | None = None) -> RecordSet:
    """Read and validate every record under ``paths``; ``progress`` is told ``(done, total)`` files read."""
    path_list = list(paths)
    raws, errors = read_records(path_list, progress)
    return validate_records(raws, errors)
