"""Property-based tests over records: no record takes the others down.

Strategies build valid worlds of Cronium records in the shapes Cronium writes (events of every type with
schedules, env vars, servers and conditional actions; workflows whose nodes and connections, in table or
editor shape, reference those events; servers), then mutate some of them: wrong types, unknown enum values,
nulls, missing keys, huge strings, unicode look-alikes, references to missing events and servers, duplicate
ids, duplicate or colliding node ids, self-loops and cycles. Every property checks that

1. validation (``load_records`` on files, ``validate_records`` on in-memory raw records) raises nothing,
   reports each mutated record with its file, its id (or position) and the mutated field, reports each
   record that needs a mutated one, and loads every other record;
2. the plan and the DAGs built from whatever validation accepted raise nothing and leave no DAG out;
3. no secret value (env var values, server keys and passwords) appears in an error or in the plan.

The mutations are a catalogue (``CATALOGUE``): the property tests draw from it at random, and one test
applies every entry, alone, to worlds that have a record for each. Another test puts arbitrary values in
arbitrary fields. The examples are bounded and derandomized: the same examples on every run.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from cronium_provider.naming import event_dag_id, node_task_id, workflow_dag_id
from cronium_provider.plan.build import build_plan
from cronium_provider.records.errors import RecordError
from cronium_provider.records.source import RawRecord
from cronium_provider.records.validation import RecordSet, load_records, validate_records
from cronium_provider.render import dags as render
from cronium_provider.timetables import CroniumTimetable, first_runs


def _settings(examples: int) -> settings:
    """Bounded, derandomized examples; shrinking (slow on worlds this size) only with CRONIUM_SHRINK=1."""
    phases = [Phase.explicit, Phase.generate]
    if os.environ.get("CRONIUM_SHRINK") == "1":
        phases.append(Phase.shrink)
    return settings(
        max_examples=examples,
        phases=phases,
        derandomize=True,
        deadline=None,
        database=None,
        print_blob=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


# -- values --------------------------------------------------------------------------------------------
SECRET_PREFIX = "zq-secret-"
SECRETS = st.builds(
    lambda tail, flavour: f"{SECRET_PREFIX}{tail}{flavour}",
    st.text(alphabet="abcdefghijkmnpqrstuvwxyz23456789", min_size=8, max_size=12),
    st.sampled_from(["", "-ünï", "-🔑", " with spaces", "=x;y"]),
)
UNICODE = st.characters(blacklist_categories=("Cs",))
NAMES = st.text(alphabet=UNICODE, min_size=1, max_size=40)
TEXT = st.text(alphabet=UNICODE, max_size=60)
TAGS = st.lists(st.text(alphabet=UNICODE, max_size=30), max_size=3)
ENV_KEYS = st.from_regex(r"[A-Z][A-Z0-9_]{0,10}", fullmatch=True)
INT4 = 2_147_483_647

STATUSES = st.sampled_from(["ACTIVE", "ACTIVE", "ACTIVE", "PAUSED", "DRAFT", "ARCHIVED"])
UNITS = st.sampled_from(["SECONDS", "MINUTES", "HOURS", "DAYS"])
CRONS = st.sampled_from(
    ["*/5 * * * *", "0 9 * * 1-5", "0 */6 * * *", "30 2 1 * *", "0 0 * * 0", "0 * * * * *", "*/15 * * * * *"]
)
START_TIMES = st.sampled_from(
    ["2026-01-31T09:00:00Z", "2025-06-01T12:00:00", "2030-12-24T18:30:00+02:00", "2024-02-29T00:00:00.000Z"]
)
SCRIPT_TYPES = ("BASH", "PYTHON", "NODEJS")
TOOLS = st.sampled_from(
    [
        ("slack", "slack-send-message"),
        ("discord", "discord-send-message"),
        ("teams", "send-card"),
        ("email", "send-email"),
        ("webhook", "send-webhook"),
    ]
)
CONNECTION_TYPES = st.sampled_from(["ALWAYS", "ON_SUCCESS", "ON_FAILURE", "ON_CONDITION"])
MISSING_ID = 1_999_999_999  # no generated record has this id


# -- the world: valid records and what each needs -------------------------------------------------------
@dataclass
class Rec:
    kind: str  # event | workflow | server
    id: int
    data: dict[str, Any]  # as Cronium writes it, without "kind"
    needs: set[tuple[str, int]] = field(default_factory=set)  # the records it references

    @property
    def key(self) -> tuple[str, int]:
        return (self.kind, self.id)


def _secrets_in(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value} if value.startswith(SECRET_PREFIX) else set()
    if isinstance(value, dict):
        return set().union(*(_secrets_in(v) for v in value.values())) if value else set()
    if isinstance(value, list | tuple):
        return set().union(*(_secrets_in(v) for v in value)) if value else set()
    return set()


def _schedule(draw: st.DrawFn, workflow: bool) -> dict[str, Any]:
    trigger = draw(st.sampled_from(["MANUAL", "SCHEDULE", "SCHEDULE", *(["WEBHOOK"] if workflow else [])]))
    out: dict[str, Any] = {"triggerType": trigger}
    if trigger == "SCHEDULE" and draw(st.booleans()):
        out["customSchedule"] = draw(CRONS)
    elif trigger != "SCHEDULE" and workflow and draw(st.booleans()):
        out.update(scheduleNumber=None, scheduleUnit=None, customSchedule=None)  # Cronium's nullable columns
    else:
        out["scheduleNumber"] = draw(st.one_of(st.integers(1, 120), st.integers(1, 20_000)))
        out["scheduleUnit"] = draw(UNITS)
    if draw(st.integers(0, 3)) == 0:
        out["startTime"] = draw(START_TIMES)
    return out


def _action(draw: st.DrawFn, event_ids: list[int]) -> tuple[dict[str, Any], int | None]:
    kind = draw(st.sampled_from(["SCRIPT", "SCRIPT", "SEND_MESSAGE", "NONE"]))
    if kind == "SCRIPT":
        target = draw(st.sampled_from(event_ids))
        return {"id": draw(st.integers(1, 10_000)), "type": "SCRIPT", "targetEventId": target}, target
    if kind == "SEND_MESSAGE":
        action = {
            "type": "SEND_MESSAGE",
            "toolId": draw(st.one_of(st.integers(1, 50), st.just("7"))),
            "message": draw(TEXT),
            "emailAddresses": draw(st.sampled_from([None, "ops@example.test", "#alerts"])),
            "emailSubject": draw(st.one_of(st.none(), TEXT)),
        }
        return action, None
    return {"type": "NONE", "value": None}, None


EVENT_TYPES = [*SCRIPT_TYPES, "HTTP_REQUEST", "TOOL_ACTION"]


@st.composite
def events(
    draw: st.DrawFn,
    event_id: int,
    event_ids: list[int],
    server_ids: list[int],
    kind: str | None = None,
    remote: bool | None = None,
) -> Rec:
    """A valid event of ``kind`` (drawn when None); a script event runs on servers when ``remote``."""
    kind = kind or draw(st.sampled_from(EVENT_TYPES))
    needs: set[tuple[str, int]] = set()
    data: dict[str, Any] = {
        "id": event_id,
        "userId": draw(st.sampled_from(["V1StGXR8_Z5jdHi6B-myT", "user-2", 7])),
        "name": draw(NAMES),
        "description": draw(st.one_of(st.none(), TEXT)),
        "type": kind,
        "status": draw(STATUSES),
        "tags": draw(st.one_of(TAGS, TAGS.map(json.dumps))),  # a jsonb column, sometimes still JSON text
        "timeoutValue": draw(st.integers(1, 3600)),
        "timeoutUnit": draw(UNITS),
        "retries": draw(st.integers(0, 10)),
        "maxExecutions": draw(st.integers(0, 5)),
        "executionCount": draw(st.integers(0, 3)),
        **_schedule(draw, workflow=False),
    }
    if kind in SCRIPT_TYPES:
        data["content"] = draw(st.one_of(st.just("echo hi"), TEXT, st.just("#!/bin/bash\n" + "echo ünï 🔑\n" * 400)))
        if server_ids and (remote if remote is not None else draw(st.booleans())):
            data["runLocation"] = "REMOTE"
            chosen = draw(st.lists(st.sampled_from(server_ids), min_size=1, max_size=len(server_ids), unique=True))
            style = draw(st.sampled_from(["serverId", "servers", "objects", "rows"]))
            if style == "serverId":
                data["serverId"] = chosen[0]
                chosen = chosen[:1]
            elif style == "servers":
                data["servers"] = chosen
            elif style == "objects":
                data["servers"] = [{"id": s, "name": f"server {s}"} for s in chosen]
            else:
                data["eventServers"] = [{"eventId": event_id, "serverId": s} for s in chosen]
            needs |= {("server", s) for s in chosen}
    elif kind == "HTTP_REQUEST":
        headers = draw(st.dictionaries(ENV_KEYS, st.text(alphabet=UNICODE, max_size=20), max_size=3))
        data.update(
            httpMethod=draw(st.sampled_from(["GET", "POST", "put", "PATCH", "DELETE", "HEAD"])),
            httpUrl="https://example.test/" + draw(st.text(alphabet="abcdefghij/-_?=&%", max_size=30)),
            httpHeaders=draw(
                st.sampled_from(
                    [
                        [{"key": k, "value": v} for k, v in headers.items()],
                        headers,
                        json.dumps(headers),
                        None,
                    ]
                )
            ),
            httpBody=draw(st.one_of(st.none(), TEXT, st.just('{"a": 1}'))),
        )
    else:
        tool, action = draw(TOOLS)
        config = {
            "toolType": draw(st.sampled_from([tool, tool.upper()])),
            "actionId": action,
            "toolId": draw(st.one_of(st.integers(1, 50), st.just("12"))),
            "parameters": draw(st.dictionaries(st.text(max_size=8), TEXT, max_size=3)),
        }
        data["toolActionConfig"] = draw(st.sampled_from([config, json.dumps(config)]))
    env_keys = draw(st.lists(ENV_KEYS, unique=True, max_size=3))
    env_rows = draw(st.booleans())
    data["envVars"] = [
        (
            {"id": i, "eventId": event_id, "key": key, "value": draw(SECRETS)}
            if env_rows
            else {"key": key, "value": draw(SECRETS)}
        )
        for i, key in enumerate(env_keys, start=1)
    ]
    for name, other in (
        ("successEvents", "onSuccessActions"),
        ("failEvents", "onFailActions"),
        ("alwaysEvents", "onAlwaysActions"),
        ("conditionEvents", "onConditionActions"),
    ):
        actions = []
        for _ in range(draw(st.integers(0, 2))):
            action, target = _action(draw, event_ids)
            actions.append(action)
            if target is not None:
                needs.add(("event", target))
        if actions or draw(st.booleans()):
            data[draw(st.sampled_from([name, name, other]))] = actions
    if draw(st.integers(0, 4)) == 0:
        data.update(payloadVersion=1, somethingNew={"x": [1, 2]}, lastRunAt=None)  # unknown fields are ignored
    return Rec("event", event_id, data, needs)


@st.composite
def servers(draw: st.DrawFn, server_id: int) -> Rec:
    data: dict[str, Any] = {
        "id": server_id,
        "name": draw(NAMES),
        "address": draw(st.sampled_from(["10.0.0.5", "build.example.test", "[::1]"])),
        "port": draw(st.integers(1, 65535)),
        "username": draw(st.sampled_from(["root", "deploy", "ünïcode"])),
        "sshKey": draw(st.one_of(st.none(), SECRETS)),
        "password": draw(st.one_of(st.none(), SECRETS)),
    }
    if draw(st.booleans()):
        data["connectionId"] = f"ssh_box_{server_id}"
    return Rec("server", server_id, data)


NODE_ID_STYLES = {
    "table": st.lists(st.integers(1, 10**6), unique=True, max_size=5),
    "editor": st.lists(st.integers(1, 99).map(lambda n: f"node-{n}"), unique=True, max_size=5),
    "text": st.lists(st.text(alphabet=UNICODE, min_size=1, max_size=12), unique_by=node_task_id, max_size=5),
}


@st.composite
def workflows(
    draw: st.DrawFn, workflow_id: int, event_recs: list[Rec], server_ids: list[int], rich: bool = False
) -> Rec:
    """A valid workflow over ``event_recs``; a ``rich`` one has 3 or more nodes (the first running a remote
    script event when there is one) and 2 or more connections."""
    style = draw(st.sampled_from(sorted(NODE_ID_STYLES)))
    node_ids: list[Any] = draw(NODE_ID_STYLES[style].filter(lambda ids: len(ids) >= 3 or not rich))
    needs: set[tuple[str, int]] = set()
    nodes = []
    remote = [e for e in event_recs if e.data.get("runLocation") == "REMOTE"]
    for n, node_id in enumerate(node_ids):
        event = remote[0] if rich and remote and n == 0 else draw(st.sampled_from(event_recs))
        needs.add(("event", event.id))
        if style == "table":
            nodes.append({"id": node_id, "workflowId": workflow_id, "eventId": event.id, "position_x": 0})
        else:
            label = draw(st.one_of(st.none(), NAMES))
            nodes.append(
                {
                    "id": node_id,
                    "type": "eventNode",
                    "position": {"x": 1, "y": 2},
                    "data": {"eventId": event.id, "label": label},
                }
            )
    pairs = [(i, j) for i in range(len(node_ids)) for j in range(i + 1, len(node_ids))]
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True, min_size=2 * rich, max_size=6)) if pairs else []
    connections = []
    for i, j in chosen:
        kind = draw(CONNECTION_TYPES)
        if style == "table":
            connections.append({"sourceNodeId": node_ids[i], "targetNodeId": node_ids[j], "connectionType": kind})
        else:
            connections.append(
                {"id": f"e{i}-{j}", "source": node_ids[i], "target": node_ids[j], "data": {"connectionType": kind}}
            )
    data: dict[str, Any] = {
        "id": workflow_id,
        "userId": "V1StGXR8_Z5jdHi6B-myT",
        "name": draw(NAMES),
        "description": draw(st.one_of(st.none(), TEXT)),
        "status": draw(STATUSES),
        "tags": draw(TAGS),
        "webhookKey": None,
        "runLocation": "LOCAL",
        "nodes": nodes,
        ("edges" if style == "editor" and draw(st.booleans()) else "connections"): connections,
        "overrideEventServers": False,
        "overrideServerIds": None,
        **_schedule(draw, workflow=True),
    }
    if server_ids and draw(st.integers(0, 3)) == 0:
        override = draw(st.lists(st.sampled_from(server_ids), min_size=1, max_size=len(server_ids), unique=True))
        data["overrideEventServers"] = True
        data["overrideServerIds"] = draw(st.sampled_from([override, json.dumps(override)]))
        needs |= {("server", s) for s in override}
    if draw(st.booleans()):
        data["resultRule"] = draw(st.sampled_from(["cronium", "airflow"]))
    return Rec("workflow", workflow_id, data, needs)


@st.composite
def worlds(draw: st.DrawFn, rich: bool = False) -> list[Rec]:
    """Servers, events and workflows that all load. A ``rich`` world has a record for every mutation of the
    catalogue: a server, an event of every type (the BASH one remote) and a workflow with connections."""
    server_ids = draw(st.lists(st.integers(1, 60), unique=True, min_size=int(rich), max_size=3))
    event_ids = draw(
        st.lists(st.one_of(st.integers(1, 10**6), st.just(INT4)), unique=True, min_size=5 if rich else 1, max_size=7)
    )
    workflow_ids = draw(st.lists(st.integers(1, 500), unique=True, min_size=int(rich), max_size=3))
    recs = [draw(servers(s)) for s in server_ids]
    event_recs = []
    for n, event_id in enumerate(event_ids):
        kind = EVENT_TYPES[n] if rich and n < len(EVENT_TYPES) else None
        remote = True if rich and n == 0 else None
        event_recs.append(draw(events(event_id, event_ids, server_ids, kind, remote)))
    recs += event_recs
    recs += [draw(workflows(w, event_recs, server_ids, rich=rich and n == 0)) for n, w in enumerate(workflow_ids)]
    return recs


# -- mutations: a catalogue; each makes one record bad and names the fields an error about it must name ---
Pick = Callable[[st.SearchStrategy[Any]], Any]  # a hypothesis draw, for the choices inside a mutation
DELETE = object()  # "remove the key" as a mutated value


@dataclass(frozen=True)
class Mutator:
    name: str
    kind: str  # the kind of record it mutates
    apply: Callable[[list[Rec], int, Pick], tuple[str, ...]]  # mutate world[i]; an error must name one field
    fits: Callable[[list[Rec], Rec], bool] = lambda world, rec: True
    memory_only: bool = False  # a value only an in-memory record can hold


@dataclass
class Mutation:
    index: int  # which record of the world
    fields: tuple[str, ...]
    description: str


def _fullwidth(text: str) -> str:
    """Look-alikes of ASCII letters and digits (U+FF21...), which no enum or integer accepts."""
    return "".join(chr(ord(c) + 0xFEE0) for c in text)


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    if value is DELETE:
        data.pop(key, None)
    else:
        data[key] = copy.deepcopy(value)


def _short(value: Any) -> str:
    return "<deleted>" if value is DELETE else repr(value)[:40]


def _typed(*types: str) -> Callable[[list[Rec], Rec], bool]:
    return lambda world, rec: rec.data.get("type") in types


def _remote_script_nodes(world: list[Rec], wf: Rec) -> bool:
    by_id = {r.id: r for r in world if r.kind == "event"}
    for node in wf.data.get("nodes", []):
        event_id = node["data"]["eventId"] if isinstance(node.get("data"), dict) else node["eventId"]
        event = by_id.get(event_id)
        if event is not None and event.data.get("type") in SCRIPT_TYPES and event.data.get("runLocation") == "REMOTE":
            return True
    return False


def _nodes(n: int) -> Callable[[list[Rec], Rec], bool]:
    return lambda world, rec: len(rec.data.get("nodes", [])) >= n


def _connections(world: list[Rec], rec: Rec) -> bool:
    return bool(rec.data.get("connections") or rec.data.get("edges"))


def _field(
    kind: str,
    name: str,
    value: Any,
    fits: Callable[[list[Rec], Rec], bool] = lambda world, rec: True,
    before: Callable[[dict[str, Any]], None] | None = None,
    memory_only: bool = False,
) -> Mutator:
    def apply(world: list[Rec], index: int, pick: Pick) -> tuple[str, ...]:
        data = world[index].data
        if before is not None:
            before(data)
        _set(data, name, value)
        return (name,)

    return Mutator(f"{kind}.{name} = {_short(value)}", kind, apply, fits, memory_only)


def _custom(kind: str, name: str, fields: tuple[str, ...], change: Callable[[dict[str, Any], Pick], None], **kw: Any):
    def apply(world: list[Rec], index: int, pick: Pick) -> tuple[str, ...]:
        change(world[index].data, pick)
        return fields

    return Mutator(f"{kind}: {name}", kind, apply, **kw)


BAD_INT_IDS = [None, "one", 1.5, [1], {"id": 1}, INT4 + 1, 2**70, "", "  ", _fullwidth("12"), DELETE]
BAD_CRONS = [
    "61 * * * *",
    "every day",
    "61 * * * * *",  # seconds 0-59 (any valid 6-field rule runs: tests/test_schedules.py)
    "* * * *",
    5,
    "0 0 30 2 * * *",
    "* * * * * * * *",
    "0 0 30 2 *",  # valid cron syntax, but no date matches it
    "0 0 0 31 4 *",
]
# values only an in-memory record can hold (pydantic reads bytes as text and sets as lists, so not those)
MEMORY_ONLY_BAD = [float("nan"), float("-inf"), object(), Decimal("1.5"), datetime(2026, 1, 1, tzinfo=UTC), 1j]
COMMON_BAD: dict[str, list[Any]] = {
    "status": ["LIVE", "active", 1, [], _fullwidth("ACTIVE")],
    "tags": [5, "[not json", ["ok", 5], ["x" * 101], {"a": 1}, "ü" * 150, [None]],
    "scheduleUnit": ["WEEKS", "minutes", 7, "MİNUTES"],
    "startTime": [
        "next tuesday",
        "2026-13-45T00:00:00",
        12345,
        "9999-12-31T23:59:59-05:00",
        "0001-01-01T00:00+05:00",
        "2026-01-01T00:00:00+05:00:30",
    ],
}
EVENT_BAD: dict[str, list[Any]] = {
    **COMMON_BAD,
    "name": ["", None, 5, "x" * 256, ["a"], "ñ" * 100_000, DELETE],
    "type": ["RUBY", "bash", "", None, 3, _fullwidth("BASH"), DELETE],
    "triggerType": ["CRON", "schedule", 2, "WEBHOOK"],
    "scheduleNumber": [0, -3, "often", 1.5, INT4 + 1, 2**64],
    "runLocation": ["CLOUD", 0],
    "timeoutValue": [0, -1, "long", INT4 + 1],
    "timeoutUnit": ["WEEKS", "secs", 0],
    "retries": [-1, 11, "x"],
    "maxExecutions": [-1, "x", INT4 + 1],
    "executionCount": [-1, 2**40],
}
EVENT_TYPE_BAD: dict[tuple[str, ...], dict[str, list[Any]]] = {
    ("HTTP_REQUEST",): {
        "httpUrl": [None, "", "   ", 5, DELETE],
        "httpHeaders": ["{not json", 5, [{"value": "x"}], [5]],
        "httpMethod": [5, ["GET"]],
        "httpBody": [{"a": 1}],
    },
    ("TOOL_ACTION",): {
        "toolActionConfig": [
            None,
            "",
            "{not json",
            "[" * 5000,
            '{"toolType": ' * 3000,
            5,
            {"toolType": "notion", "actionId": "x", "toolId": 1},
            {"toolType": "slack", "actionId": "nope", "toolId": 1},
            {"toolType": "slack", "actionId": "slack-send-message"},
            {"toolType": "slack", "actionId": "slack-send-message", "toolId": "  "},
            {"actionId": "x", "toolId": 1},
            {"toolType": "slack", "actionId": "slack-send-message", "toolId": 1, "parameters": "x"},
            DELETE,
        ]
    },
    SCRIPT_TYPES: {"content": [5, ["echo"], {"script": "x"}]},
}
WORKFLOW_BAD: dict[str, list[Any]] = {
    **COMMON_BAD,
    "name": ["", None, 5, "w" * 256, DELETE],
    "triggerType": ["CRON", "HOURLY", 3],
    "scheduleNumber": [0, "x", INT4 + 1],
    "resultRule": ["sometimes", 5, "CRONIUM"],
}
SERVER_BAD: dict[str, list[Any]] = {
    "name": ["", None, 5, DELETE],
    "address": ["", None, [], 10, DELETE],
    "port": [0, 70000, "ssh", -1],
    "username": [5, ["root"]],
    "connectionId": [5, ["c"]],
}
MEMORY_ONLY_FIELDS = {
    "event": ["name", "status", "scheduleNumber", "timeoutValue", "tags", "startTime", "successEvents"],
    "workflow": ["name", "status", "nodes", "resultRule"],
    "server": ["port", "address"],
}


def _remote(data: dict[str, Any]) -> None:
    data["runLocation"] = "REMOTE"


def _no_server_rows(data: dict[str, Any]) -> None:
    data.pop("eventServers", None)


def _overriding(data: dict[str, Any]) -> None:
    data["overrideEventServers"] = True


def _no_connections(data: dict[str, Any]) -> None:
    data.pop("connections", None)
    data.pop("edges", None)


def _catalogue() -> list[Mutator]:
    out: list[Mutator] = []
    for kind in ("event", "workflow", "server"):
        out += [_field(kind, "id", value) for value in BAD_INT_IDS]
        out += [
            _field(kind, name, value, memory_only=True)
            for name in MEMORY_ONLY_FIELDS[kind]
            for value in MEMORY_ONLY_BAD
        ]
    out += [_field("event", name, value) for name, values in EVENT_BAD.items() for value in values]
    for types, table in EVENT_TYPE_BAD.items():
        out += [_field("event", name, value, _typed(*types)) for name, values in table.items() for value in values]
    out += [_field("event", "serverId", v, before=_remote) for v in ["abc", MISSING_ID, 2.5]]
    out += [
        _field("event", "servers", v, before=_no_server_rows)
        for v in ["x", [MISSING_ID], [{"name": "no id"}], ["abc"], {"id": 1}]
    ]
    out += [_field("workflow", name, value) for name, values in WORKFLOW_BAD.items() for value in values]
    out += [_field("workflow", "nodes", v, before=_no_connections) for v in [5, "nodes", {"id": "a"}, [5]]]
    out += [
        _field("workflow", "overrideServerIds", v, before=_overriding)
        for v in ["[not json", {"a": 1}, [MISSING_ID], ["x"]]
    ]
    out += [_field("server", name, value) for name, values in SERVER_BAD.items() for value in values]

    for kind in ("event", "workflow"):
        for cron in BAD_CRONS:
            out.append(
                _custom(
                    kind,
                    f"customSchedule {cron!r}",
                    ("customSchedule",),
                    lambda data, pick, cron=cron: data.update(triggerType="SCHEDULE", customSchedule=cron),
                )
            )
    for number in (25_000, INT4):  # valid numbers, but intervals longer than about 68 years
        out.append(
            _custom(
                "event",
                f"timeout of {number} DAYS",
                ("timeoutValue",),
                lambda data, pick, number=number: data.update(timeoutValue=number, timeoutUnit="DAYS"),
            )
        )
        for kind in ("event", "workflow"):
            out.append(
                _custom(
                    kind,
                    f"every {number} DAYS",
                    ("scheduleNumber",),
                    lambda data, pick, number=number: data.update(
                        triggerType="SCHEDULE", customSchedule=None, scheduleNumber=number, scheduleUnit="DAYS"
                    ),
                )
            )
    for missing in ("scheduleNumber", "scheduleUnit"):

        def unscheduled(data: dict[str, Any], pick: Pick, missing: str = missing) -> None:
            status = pick(st.sampled_from(["ACTIVE", "PAUSED"]))
            data.update(triggerType="SCHEDULE", status=status, customSchedule=None, **{missing: None})

        out.append(_custom("workflow", f"SCHEDULE without {missing}", ("scheduleNumber", "scheduleUnit"), unscheduled))
    # (a REMOTE event with no server is no mutation: it runs in a container, as in Cronium; test_remote_events.py)
    env_shapes: list[Callable[[str], Any]] = [
        lambda secret: [{"key": "", "value": secret}],
        lambda secret: [{"key": "K", "value": {"nested": secret}}],
        lambda secret: [{"key": "K", "value": [secret]}],
        lambda secret: [{"value": secret}],
        lambda secret: [secret],
        lambda secret: secret,
        lambda secret: [{"key": 5, "value": secret}],
        lambda secret: [{"key": None, "value": secret}],
    ]
    for n, shape in enumerate(env_shapes):

        def bad_env(data: dict[str, Any], pick: Pick, shape: Callable[[str], Any] = shape) -> None:
            value = shape(pick(SECRETS))
            data["envVars"] = [*data.get("envVars", []), *value] if isinstance(value, list) else value

        out.append(_custom("event", f"envVars shape {n}", ("envVars",), bad_env))
    actions: list[Any] = [
        {"type": "SCRIPT", "targetEventId": MISSING_ID},
        {"type": "SCRIPT", "targetEventId": "abc"},
        # (a SCRIPT action with no target, a SEND_MESSAGE with no toolId are no-ops, as in Cronium: no mutation)
        {"type": "EMAIL"},
        "x",
    ]
    for name, other in (
        ("successEvents", "onSuccessActions"),
        ("failEvents", "onFailActions"),
        ("alwaysEvents", "onAlwaysActions"),
        ("conditionEvents", "onConditionActions"),
    ):
        for action in [*actions, None]:

            def bad_action(
                data: dict[str, Any], pick: Pick, name: str = name, other: str = other, action: Any = action
            ):
                kept = data.pop(other, None) or data.get(name) or []
                data[name] = "not a list" if action is None else [*kept, copy.deepcopy(action)]

            out.append(_custom("event", f"{name} + {action!r}", (name,), bad_action))
    for name in ("sshKey", "password"):
        for shape in (lambda secret: {"k": secret}, lambda secret: [secret], lambda secret: 5):
            out.append(
                _custom(
                    "server",
                    f"{name} not text",
                    (name,),
                    lambda data, pick, name=name, shape=shape: data.update({name: shape(pick(SECRETS))}),
                )
            )
    for empty in ([], None, "[]"):
        out.append(
            _custom(
                "workflow",
                f"override with no server ({empty!r})",
                ("overrideServerIds",),
                lambda data, pick, empty=empty: data.update(overrideEventServers=True, overrideServerIds=empty),
                fits=_remote_script_nodes,
            )
        )
    out += _node_mutators() + _connection_mutators()
    return out


def _node_mutators() -> list[Mutator]:
    out: list[Mutator] = []

    def node_field(key: str, value: Any) -> Mutator:
        def apply(world: list[Rec], index: int, pick: Pick) -> tuple[str, ...]:
            nodes = world[index].data["nodes"]
            i = pick(st.integers(0, len(nodes) - 1))
            node = nodes[i]
            target = node["data"] if key == "eventId" and isinstance(node.get("data"), dict) else node
            target[key] = copy.deepcopy(value)
            return (f"nodes[{i}].{key}",)

        return Mutator(f"node {key} = {_short(value)}", "workflow", apply, _nodes(1))

    out += [node_field("eventId", v) for v in (MISSING_ID, "abc", None, 1.5)]
    out += [node_field("id", v) for v in (None, 1.5, ["a"], "n" * 201, "ü" * 5000)]

    def twins(collide: bool) -> Mutator:
        def apply(world: list[Rec], index: int, pick: Pick) -> tuple[str, ...]:
            nodes = world[index].data["nodes"]
            first, later = sorted(pick(st.lists(st.integers(0, len(nodes) - 1), min_size=2, max_size=2, unique=True)))
            if collide:  # two ids that differ only in characters a task id cannot hold
                base = pick(st.sampled_from(["step", "n", "ünï"]))
                nodes[first]["id"], nodes[later]["id"] = f"{base} {first}", f"{base}/{first}"
            else:
                nodes[later]["id"] = nodes[first]["id"]
            return (f"nodes[{later}].id",)

        return Mutator(f"node ids {'collide' if collide else 'repeat'}", "workflow", apply, _nodes(2))

    return [*out, twins(False), twins(True)]


def _connection_mutators() -> list[Mutator]:
    def connection(what: str, value: Any = None) -> Mutator:
        def apply(world: list[Rec], index: int, pick: Pick) -> tuple[str, ...]:
            data = world[index].data
            conns = data["connections"] if data.get("connections") else data["edges"]
            k = pick(st.integers(0, len(conns) - 1))
            conn = conns[k]
            src, dst = ("sourceNodeId", "targetNodeId") if "sourceNodeId" in conn else ("source", "target")
            if what in ("source", "target"):
                conn[src if what == "source" else dst] = value
                return (f"connections[{k}].{what}",)
            if what == "connectionType":
                if "sourceNodeId" in conn:
                    conn["connectionType"] = value
                else:
                    conn["data"] = {"connectionType": value}
                return (f"connections[{k}].connectionType",)
            if what == "self-loop":
                conn[dst] = conn[src]
                return (f"connections[{k}]",)
            if what == "cycle":
                back = dict(conn)
                back[src], back[dst] = conn[dst], conn[src]
                conns.append(back)
                return ("connections",)
            conns[k] = copy.deepcopy(value)
            return (f"connections[{k}]",)

        return Mutator(f"connection {what} {_short(value)}", "workflow", apply, _connections)

    return [
        connection("source", "ghost-node"),
        connection("target", "ghost-node"),
        connection("target", None),
        *[connection("connectionType", v) for v in ("MAYBE", "on_success", 3)],
        connection("self-loop"),
        connection("cycle"),
        *[connection("not an object", v) for v in ("edge", 5, ["a", "b"])],
    ]


CATALOGUE = _catalogue()


def mutators_for(world: list[Rec], rec: Rec, memory: bool) -> list[Mutator]:
    return [m for m in CATALOGUE if m.kind == rec.kind and (memory or not m.memory_only) and m.fits(world, rec)]


# -- writing records out and loading them -----------------------------------------------------------------
@dataclass
class Placed:
    path: str
    position: str


def _dump(path: Path, doc: Any, as_yaml: bool) -> None:
    if as_yaml:
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's is much faster
        path.write_text(yaml.dump(doc, Dumper=dumper, allow_unicode=True, sort_keys=False), encoding="utf-8")
    else:
        path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")


Layout = tuple[list[int], list[str], list[bool]]  # each record's file, each file's shape, YAML or not


@st.composite
def layouts(draw: st.DrawFn, count: int) -> Layout:
    """Which file each record goes to, each file's shape (single, list or bundle) and format."""
    files = draw(st.integers(1, min(4, count)))
    assignment = [draw(st.integers(0, files - 1)) for _ in range(count)]
    shapes = [draw(st.sampled_from(["list", "bundle", "single"])) for _ in range(files)]
    formats = [draw(st.integers(0, 3)) == 0 for _ in range(files)]
    return assignment, shapes, formats


def write_world(folder: Path, world: list[Rec], layout: Layout) -> list[Placed]:
    """Write the world's records into files as ``layout`` says; where each record is."""
    assignment, shapes, formats = layout
    placed: list[Placed] = [Placed("", "")] * len(world)
    for f, shape in enumerate(shapes):
        members = [i for i, a in enumerate(assignment) if a == f]
        if not members:
            continue
        path = folder / f"f{f}.{'yaml' if formats[f] else 'json'}"
        if shape == "single" and len(members) == 1:
            rec = world[members[0]]
            doc: Any = {"kind": rec.kind, **rec.data}
            placed[members[0]] = Placed(str(path), "record")
        elif shape == "bundle":
            doc = {"events": [], "workflows": [], "servers": []}
            for i in members:
                key = world[i].kind + "s"
                placed[i] = Placed(str(path), f"{key}[{len(doc[key])}]")
                doc[key].append(world[i].data)
        else:
            doc = []
            for i in members:
                placed[i] = Placed(str(path), f"[{len(doc)}]")
                doc.append({"kind": world[i].kind, **world[i].data})
        _dump(path, doc, formats[f])
    return placed


def raw_world(world: list[Rec]) -> tuple[list[RawRecord], list[Placed]]:
    raws, placed = [], []
    for i, rec in enumerate(world):
        path, position = f"api/{rec.kind}s/{i}", f"{rec.kind}s[{i}]"
        raws.append(RawRecord(path, rec.kind, rec.data, position))
        placed.append(Placed(path, position))
    return raws, placed


# -- the properties' checks --------------------------------------------------------------------------------
class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _display_id(data: dict[str, Any], placed: Placed) -> Any:
    """A record's id when it is an integer or a non-blank string, else where it is in its file."""
    rid = data.get("id")
    if (isinstance(rid, int) and not isinstance(rid, bool)) or (isinstance(rid, str) and rid.strip()):
        return rid
    return f"at {placed.position}"


def _names(error: RecordError, placed: Placed, kinds: tuple[str, ...], record_id: Any) -> bool:
    return error.path == placed.path and error.kind in kinds and error.record_id == record_id


def _field_matches(error: RecordError, fields: tuple[str, ...]) -> bool:
    named = error.field or ""
    return any(named == f or named.startswith((f + ".", f + "[")) for f in fields)


def _needing(world: list[Rec], bad: set[tuple[str, int]]) -> set[int]:
    """Indices of the records that need a bad record, directly or through others."""
    out: set[int] = set()
    changed = True
    while changed:
        changed = False
        for i, rec in enumerate(world):
            if i not in out and rec.needs & bad:
                out.add(i)
                bad = bad | {rec.key}
                changed = True
    return out


def check_plan_and_dags(records: RecordSet, secrets: set[str]) -> None:
    """Property 2 and 3 for whatever validation accepted."""
    plan = build_plan(records)
    plan_text = json.dumps(plan.to_json(), ensure_ascii=False)
    collect = _Collect()
    render.log.addHandler(collect)
    try:
        dags = render.render_plan(plan)
    finally:
        render.log.removeHandler(collect)
    assert collect.messages == []
    assert sorted(dags) == sorted(d.dag_id for d in plan.dags)
    for event in records.events.values():
        if event.status.value in ("ACTIVE", "PAUSED"):
            assert event_dag_id(event.id) in dags
    for wf in records.workflows.values():
        if wf.status.value in ("ACTIVE", "PAUSED"):
            assert workflow_dag_id(wf.id) in dags
    now = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    for dag in dags.values():
        if isinstance(dag.timetable, CroniumTimetable):
            assert len(first_runs(dag.timetable, 2, now)) == 2
    for secret in secrets:
        assert secret not in plan_text


def check_errors_are_clean(errors: list[RecordError], secrets: set[str]) -> None:
    for error in errors:
        text = str(error) + json.dumps(error.to_json(), ensure_ascii=False, default=str)
        for secret in secrets:
            assert secret not in text, (secret, text)


# What only an event's own DAG uses (its schedule, its own actions): a workflow node runs the event anyway.
OWN_DAG_FIELDS = frozenset(
    {"successEvents", "failEvents", "alwaysEvents", "conditionEvents", "triggerType", "scheduleNumber"}
    | {"scheduleUnit", "customSchedule", "startTime"}
)


def _left_out(world: list[Rec], hard: set[tuple[str, int]], soft: set[tuple[str, int]]) -> tuple[set[int], set[int]]:
    """Indices of the records left out because they need a left-out record, and of the events that lose only
    their own DAG because a SCRIPT action of theirs starts an event with none (``soft``: events that lose only
    their own DAG). A workflow needs its nodes' events as nodes only: an event with no DAG of its own is one."""
    hard, soft = set(hard), set(soft)
    hard_out: set[int] = set()
    soft_out: set[int] = set()
    changed = True
    while changed:
        changed = False
        for i, rec in enumerate(world):
            if i in hard_out:
                continue
            needs_hard = {k for k in rec.needs if k in hard and (rec.kind == "workflow" or k[0] == "server")}
            if needs_hard:
                hard_out.add(i)
                soft_out.discard(i)
                hard.add(rec.key)
                soft.discard(rec.key)
                changed = True
            elif (
                rec.kind == "event" and i not in soft_out and {k for k in rec.needs if k[0] == "event"} & (hard | soft)
            ):
                soft_out.add(i)
                if rec.key not in hard:
                    soft.add(rec.key)
                changed = True
    return hard_out, soft_out


def check(
    records: RecordSet,
    world: list[Rec],
    placed: list[Placed],
    mutations: list[Mutation],
    duplicates: list[tuple[Rec, Placed]],
    secrets: set[str],
    dags: bool = True,
) -> None:
    """Properties 1 and 3 for a world with ``mutations`` and ``duplicates``; 2 too with ``dags``."""
    errors = records.errors
    texts = [str(e) for e in errors]
    mutated = {m.index for m in mutations}
    hard_mutated = {m.index for m in mutations if world[m.index].kind != "event" or not set(m.fields) <= OWN_DAG_FIELDS}
    needing, soft_needing = _left_out(  # mutated ones too, when they need another
        world, {world[i].key for i in hard_mutated}, {world[i].key for i in mutated - hard_mutated}
    )
    needing |= soft_needing
    good = [i for i in range(len(world)) if i not in mutated and i not in needing]

    for m in mutations:
        rec, where = world[m.index], placed[m.index]
        record_id = _display_id(rec.data, where)
        about = [e for e in errors if _names(e, where, (rec.kind,), record_id)]
        assert about, (m.description, rec.kind, record_id, texts)
        if m.index not in needing:
            assert any(_field_matches(e, m.fields) for e in about), (m.description, m.fields, texts)
        for e in about:
            assert str(e).startswith(f"{where.path}: {rec.kind} {record_id}: ")
    for i in needing - mutated:
        rec, where = world[i], placed[i]
        assert any(_names(e, where, (rec.kind,), rec.id) for e in errors), (rec.key, texts)
    for rec, where in duplicates:
        assert any(_names(e, where, (rec.kind,), rec.id) and e.field == "id" for e in errors), (rec.key, texts)

    loaded = {
        "event": set(records.events),
        "workflow": set(records.workflows),
        "server": set(records.servers),
    }
    expected: dict[str, set[int]] = {"event": set(), "workflow": set(), "server": set()}
    for i in good:
        expected[world[i].kind].add(world[i].id)
        assert not [e for e in errors if _names(e, placed[i], (world[i].kind,), world[i].id)], texts
    assert loaded == expected, texts
    check_errors_are_clean(errors, secrets)
    if dags:
        check_plan_and_dags(records, secrets)


# -- the properties ----------------------------------------------------------------------------------------
@st.composite
def mutated_worlds(draw: st.DrawFn, memory: bool) -> tuple[list[Rec], list[Mutation], list[Rec]]:
    """A valid world with 1 to 4 records mutated by mutations of the catalogue, and maybe a second record
    with the id of a good one."""
    world = draw(worlds())
    count = draw(st.integers(1, min(4, len(world))))
    indices = draw(st.lists(st.integers(0, len(world) - 1), min_size=count, max_size=count, unique=True))
    mutations = []
    for index in indices:
        mutator = draw(st.sampled_from(mutators_for(world, world[index], memory)))
        mutations.append(Mutation(index, mutator.apply(world, index, draw), mutator.name))
    duplicates: list[Rec] = []
    clean = [i for i in range(len(world)) if i not in indices]
    if clean and draw(st.booleans()):
        original = world[draw(st.sampled_from(clean))]
        data = {**copy.deepcopy(original.data), "name": "a second record with this id"}
        duplicates.append(Rec(original.kind, original.id, data))
    return world, mutations, duplicates


def _all_secrets(world: list[Rec], extra: list[Rec]) -> set[str]:
    return set().union(*(_secrets_in(r.data) for r in [*world, *extra]))


def validate_world(
    world: list[Rec], duplicates: list[Rec], layout: Layout | None, folder: Path | None = None
) -> tuple[RecordSet, list[Placed], list[tuple[Rec, Placed]]]:
    """Validate the world from files laid out as ``layout`` (duplicates in a file read last) in ``folder``
    (a new one when None), or in memory as raw records (``layout`` None)."""
    if layout is None:
        raws, placed = raw_world(world)
        dup_placed = [(rec, Placed(f"api/duplicates/{n}", f"duplicates[{n}]")) for n, rec in enumerate(duplicates)]
        raws += [RawRecord(where.path, rec.kind, rec.data, where.position) for rec, where in dup_placed]
        return validate_records(raws), placed, dup_placed
    if folder is None:
        with tempfile.TemporaryDirectory() as tmp:
            return validate_world(world, duplicates, layout, Path(tmp))
    placed = write_world(folder, world, layout)
    dup_placed = []
    if duplicates:
        path = folder / "zz-duplicates.json"
        _dump(path, [{"kind": rec.kind, **rec.data} for rec in duplicates], as_yaml=False)
        dup_placed = [(rec, Placed(str(path), f"[{n}]")) for n, rec in enumerate(duplicates)]
    return load_records([folder]), placed, dup_placed


@given(case=mutated_worlds(memory=False), data=st.data())
@_settings(80)
def test_files_with_mutated_records_report_each_and_load_the_rest(case: Any, data: st.DataObject) -> None:
    world, mutations, duplicates = case
    records, placed, dup_placed = validate_world(world, duplicates, data.draw(layouts(len(world))))
    check(records, world, placed, mutations, dup_placed, _all_secrets(world, duplicates))


@given(case=mutated_worlds(memory=True))
@_settings(80)
def test_in_memory_mutated_records_report_each_and_load_the_rest(case: Any) -> None:
    world, mutations, duplicates = case
    records, placed, dup_placed = validate_world(world, duplicates, None)
    check(records, world, placed, mutations, dup_placed, _all_secrets(world, duplicates))


@given(world=worlds(rich=True), data=st.data())
@_settings(2)
def test_every_mutation_of_the_catalogue_is_reported_by_its_field(world: list[Rec], data: st.DataObject) -> None:
    """Each mutation of the catalogue, alone, on a world that has a record for it: in files and in memory."""
    layout = data.draw(layouts(len(world)))
    secrets = _all_secrets(world, [])
    with tempfile.TemporaryDirectory() as tmp:  # the same layout each time: each check rewrites the same files
        for memory in (True, False):
            for mutator in CATALOGUE:
                if mutator.memory_only and not memory:
                    continue
                targets = [i for i, rec in enumerate(world) if rec.kind == mutator.kind and mutator.fits(world, rec)]
                assert targets, f"the rich world has no record for {mutator.name}"
                index = data.draw(st.sampled_from(targets))
                mutated = list(world)  # a mutation changes only its own record
                mutated[index] = replace(world[index], data=copy.deepcopy(world[index].data))
                mutation = Mutation(index, mutator.apply(mutated, index, data.draw), mutator.name)
                records, placed, _ = validate_world(mutated, [], None if memory else layout, Path(tmp))
                all_secrets = secrets | _secrets_in(mutated[index].data)
                check(records, mutated, placed, [mutation], [], all_secrets, dags=False)


JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=-(2**80), max_value=2**80),
        st.floats(allow_nan=False),
        st.text(alphabet=UNICODE, max_size=30),
        st.sampled_from(["", " ", "ACTIVE", "SCHEDULE", "REMOTE", "DAYS", "x" * 300, "[1]", "{}", "null"]),
        st.sampled_from([0, -1, INT4, INT4 + 1, 25_000, 10**12, "0 0 30 2 *", "*/7 * * * * *", "x" * 101]),
        st.sampled_from(["2026-01-01T00:00:00+05:00:30", "9999-12-31T23:59:59-05:00", "2026-01-31T09:00:00Z"]),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)
FUZZ_FIELDS = {
    "event": [
        "name",
        "description",
        "type",
        "status",
        "triggerType",
        "scheduleNumber",
        "scheduleUnit",
        "customSchedule",
        "startTime",
        "runLocation",
        "serverId",
        "servers",
        "timeoutValue",
        "timeoutUnit",
        "retries",
        "maxExecutions",
        "executionCount",
        "tags",
        "content",
        "httpMethod",
        "httpUrl",
        "httpHeaders",
        "httpBody",
        "toolActionConfig",
        "envVars",
        "successEvents",
        "failEvents",
        "alwaysEvents",
        "conditionEvents",
        "eventServers",
        "onSuccessActions",
        "userId",
        "shared",
    ],
    "workflow": [
        "name",
        "description",
        "status",
        "triggerType",
        "scheduleNumber",
        "scheduleUnit",
        "customSchedule",
        "startTime",
        "tags",
        "nodes",
        "connections",
        "edges",
        "overrideEventServers",
        "overrideServerIds",
        "resultRule",
        "webhookKey",
        "runLocation",
    ],
    "server": ["name", "address", "port", "username", "sshKey", "password", "connectionId"],
}


@st.composite
def fuzzed_worlds(draw: st.DrawFn, memory: bool) -> tuple[list[Rec], set[int]]:
    """Arbitrary JSON (and, in memory, Python-only values) in arbitrary fields, and inside nodes, connections,
    actions and env vars."""
    world = draw(worlds())
    touched: set[int] = set()
    values = st.one_of(JSON_VALUES, st.just(DELETE), *([st.sampled_from(MEMORY_ONLY_BAD)] if memory else []))
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(world) - 1))
        rec = world[index]
        value = draw(values)
        inner = [
            (name, item)
            for name in ("nodes", "connections", "edges", "envVars", "successEvents", "alwaysEvents")
            for item in (rec.data.get(name) if isinstance(rec.data.get(name), list) else [])
            if isinstance(item, dict)
        ]
        if inner and draw(st.booleans()):
            _name, item = draw(st.sampled_from(inner))
            key = draw(st.sampled_from(sorted({*item, "id", "eventId", "source", "target", "key", "value", "type"})))
            _set(item, key, value)
        else:
            _set(rec.data, draw(st.sampled_from(FUZZ_FIELDS[rec.kind])), value)
        touched.add(index)
    return world, touched


@given(memory=st.booleans(), data=st.data())
@_settings(60)
def test_arbitrary_values_never_crash_and_whatever_loads_renders(memory: bool, data: st.DataObject) -> None:
    world, touched = data.draw(fuzzed_worlds(memory))
    secrets = _all_secrets(world, [])
    records, placed, _ = validate_world(world, [], None if memory else data.draw(layouts(len(world))))
    texts = [str(e) for e in records.errors]
    # an event that runs only as a workflow node (no DAG of its own) counts as loaded
    loaded = {("event", i) for i in records.all_events} | {("workflow", i) for i in records.workflows}
    loaded |= {("server", i) for i in records.servers}
    untouched_bad = _needing(world, {world[i].key for i in touched if world[i].key not in loaded})
    for i, rec in enumerate(world):
        if rec.key in loaded:
            continue
        # a record left out is reported, by its id or its position, in its own file
        assert any(e.path == placed[i].path and e.kind == rec.kind for e in records.errors), (rec.key, texts)
        assert i in touched or i in untouched_bad, (rec.key, texts)
    for error in records.errors:
        assert error.path in {p.path for p in placed}, str(error)
        assert error.kind in ("event", "workflow", "server", "record", None)
        assert error.message and str(error)
    check_errors_are_clean(records.errors, secrets)
    check_plan_and_dags(records, secrets)


@given(world=worlds(), layout=st.data())
@_settings(25)
def test_valid_worlds_load_whole_in_every_file_shape_and_render(world: list[Rec], layout: st.DataObject) -> None:
    """Cronium's own shapes too: bare arrays with no ``kind`` and workflows carrying their nodes' events."""
    shape = layout.draw(layouts(len(world)))
    nest = layout.draw(st.booleans())
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bare = [r.data for r in world if r.kind != "server"]
        by_id = {r.id: r.data for r in world if r.kind == "event"}
        if nest:
            for wf in bare:
                for node in wf.get("nodes", []):
                    event_id = node["data"]["eventId"] if isinstance(node.get("data"), dict) else node["eventId"]
                    node["event"] = by_id[event_id]
        _dump(folder / "cronium-download.json", bare, as_yaml=False)
        _dump(folder / "servers.json", {"servers": [r.data for r in world if r.kind == "server"]}, as_yaml=False)
        from_download = load_records([folder])
    with tempfile.TemporaryDirectory() as tmp:
        write_world(Path(tmp), world, shape)
        from_files = load_records([tmp])
    raws, _ = raw_world(world)
    in_memory = validate_records(raws)
    for records in (from_download, from_files, in_memory):
        assert records.ok, [str(e) for e in records.errors]
        assert sorted(records.events) == sorted(r.id for r in world if r.kind == "event")
        assert sorted(records.workflows) == sorted(r.id for r in world if r.kind == "workflow")
        assert sorted(records.servers) == sorted(r.id for r in world if r.kind == "server")
    assert in_memory.events == from_files.events == from_download.events
    assert in_memory.workflows == from_files.workflows
    check_plan_and_dags(in_memory, _all_secrets(world, []))
