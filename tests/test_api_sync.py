"""``cronium-airflow sync`` and the hook's API methods against a loopback server speaking Cronium's REST API.

The payloads are shaped as Cronium's route handlers send them (``addison-moore/cronium``):
``src/app/api/events/route.ts`` answers a bare array of event rows (with ``eventServers`` ids, no env vars or
actions), ``src/app/api/events/[id]/route.ts`` the row plus ``envVars``, ``server``, ``servers`` and the four
action lists (``storage.getEventWithRelations``), ``src/app/api/workflows/[id]/route.ts``
``{workflow, nodes, edges}`` in the editor's shape; errors are ``{"error": "..."}``.

That is a Cronium from before its tRPC migration. A current Cronium (``addison-moore/cronium`` at
``aef566a``, paths under ``apps/cronium-app/``) has no workflow routes any more (commit ``649cdbe`` deleted
``src/app/api/workflows/route.ts`` and ``[id]/route.ts``): ``cronium_payloads(current=True)`` serves the
events only, and every other ``/api/...`` path gets the answer of its catch-all
``src/app/api/[...notfound]/route.ts:27-43``.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import airflow_env, venv_bin
from tests.support.terminal import run_on_terminal

TOKEN = "cronium-test-token-7c1d"
API_KEY = "sk-live-0a9f8e7d6c5b4a39"
DB_PASSWORD = "db-pass-Zq81!xx"
REMOTE_TOKEN = "remote-token-55aa66bb"
LEAKY = "leak-me-not-4f4f4f"
SSH_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
SECRETS = (API_KEY, DB_PASSWORD, REMOTE_TOKEN, LEAKY, "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ")
STAMP = "2025-06-01T09:30:00.000Z"


# ---------------------------------------------------------------------------------------------------------
# Cronium's payloads


def _event_row(event_id: int, name: str, **fields: Any) -> dict[str, Any]:
    """A row of the ``events`` table as Drizzle returns it (every column, camelCase, nulls included)."""
    row: dict[str, Any] = {
        "id": event_id,
        "userId": "user_8f2c",
        "name": name,
        "description": None,
        "shared": False,
        "type": "BASH",
        "content": "",
        "httpMethod": None,
        "httpUrl": None,
        "httpHeaders": None,
        "httpBody": None,
        "toolActionConfig": None,
        "status": "ACTIVE",
        "triggerType": "MANUAL",
        "scheduleNumber": 1,
        "scheduleUnit": "MINUTES",
        "customSchedule": None,
        "runLocation": "LOCAL",
        "serverId": None,
        "timeoutValue": 30,
        "timeoutUnit": "SECONDS",
        "retries": 0,
        "startTime": None,
        "executionCount": 0,
        "maxExecutions": 0,
        "resetCounterOnActive": False,
        "lastRunAt": None,
        "nextRunAt": None,
        "successCount": 0,
        "failureCount": 0,
        "tags": [],
        "createdAt": STAMP,
        "updatedAt": STAMP,
    }
    row.update(fields)
    return row


def _env(event_id: int, index: int, key: str, value: str) -> dict[str, Any]:
    return {
        "id": 100 * event_id + index,
        "eventId": event_id,
        "key": key,
        "value": value,
        "createdAt": STAMP,
        "updatedAt": STAMP,
    }


def _action(action_id: int, owner: str, event_id: int, action_type: str, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": action_id,
        "type": action_type,
        "value": "",
        "successEventId": None,
        "failEventId": None,
        "alwaysEventId": None,
        "conditionEventId": None,
        "targetEventId": None,
        "toolId": None,
        "message": None,
        "emailAddresses": None,
        "emailSubject": None,
        "createdAt": STAMP,
        "updatedAt": STAMP,
        "targetEventName": None,
    }
    row[f"{owner}EventId"] = event_id
    row.update(fields)
    return row


SERVER_5 = {
    "id": 5,
    "userId": "user_8f2c",
    "name": "web-1",
    "address": "127.0.0.1",
    "sshKey": SSH_KEY,
    "username": "deploy",
    "port": 2222,
    "shared": False,
    "online": True,
    "lastChecked": STAMP,
    "createdAt": STAMP,
    "updatedAt": STAMP,
}


def cronium_payloads(with_invalid: bool = False, current: bool = False) -> dict[str, Any]:
    """
    Route -> JSON body, as a Cronium holding three events, one server and one workflow.

    ``current``: as today's Cronium answers: no workflow routes; the event rows carry ``payloadVersion``
    (src/shared/schema.ts:204) and each detail its ``eventServers`` rows with the server nested
    (src/server/storage/modules/events.ts:53-63, 104-112).
    """
    rows = [
        _event_row(
            1,
            "Nightly ETL",
            content="echo $API_KEY | wc -c",
            triggerType="SCHEDULE",
            scheduleNumber=15,
            tags=["etl"],
            description="loads the warehouse",
        ),
        _event_row(
            2,
            "Ping",
            type="HTTP_REQUEST",
            httpMethod="GET",
            httpUrl="http://127.0.0.1:9/ping",
            # the create route stores JSON.stringify(headers) in the jsonb column: it comes back as text
            httpHeaders='[{"key":"Accept","value":"application/json"}]',
            httpBody="",
        ),
        _event_row(
            3,
            "Remote report",
            type="PYTHON",
            content="print('report')",
            runLocation="REMOTE",
            serverId=5,
            status="PAUSED",
            startTime="2025-07-01T00:00:00.000Z",
        ),
    ]
    if with_invalid:
        rows.append(_event_row(4, "Weekly", scheduleUnit="WEEKS", triggerType="SCHEDULE", content="true"))
    servers_of = {1: [], 2: [], 3: [5], 4: []}
    if current:
        for row in rows:
            row["payloadVersion"] = 1
    listing = [{**row, "eventServers": servers_of[row["id"]]} for row in reversed(rows)]  # newest first
    details: dict[int, dict[str, Any]] = {}
    for row in rows:
        details[row["id"]] = {
            **row,
            "envVars": [],
            "server": None,
            "servers": [],
            "successEvents": [],
            "failEvents": [],
            "alwaysEvents": [],
            "conditionEvents": [],
        }
    details[1]["envVars"] = [_env(1, 1, "API_KEY", API_KEY), _env(1, 2, "DB_PASSWORD", DB_PASSWORD)]
    details[1]["successEvents"] = [_action(11, "success", 1, "SCRIPT", targetEventId=2, targetEventName="Ping")]
    details[3]["envVars"] = [_env(3, 1, "REMOTE_TOKEN", REMOTE_TOKEN)]
    details[3]["server"] = dict(SERVER_5)
    details[3]["servers"] = [dict(SERVER_5)]
    if with_invalid:
        details[4]["envVars"] = [_env(4, 1, "LEAKY", LEAKY)]
    if current:
        details[3]["eventServers"] = [{"id": 61, "eventId": 3, "serverId": 5, "createdAt": STAMP, "server": SERVER_5}]
    workflow_row = {
        "id": 7,
        "userId": "user_8f2c",
        "name": "ETL then ping",
        "description": "",
        "triggerType": "WEBHOOK",
        "webhookKey": "whk-Secret123456",
        "scheduleNumber": None,
        "scheduleUnit": None,
        "customSchedule": None,
        "runLocation": "LOCAL",
        "overrideEventServers": False,
        "overrideServerIds": "[]",
        "status": "ACTIVE",
        "shared": False,
        "tags": ["etl"],
        "createdAt": STAMP,
        "updatedAt": STAMP,
    }
    workflow_detail = {
        "workflow": {**workflow_row, "overrideServerIds": []},
        "nodes": [
            {
                "id": str(node_id),
                "type": "eventNode",
                "position": {"x": 100 * node_id, "y": 50},
                "data": {
                    "eventId": event_id,
                    "label": name,
                    "type": event_type,
                    "eventTypeIcon": event_type,
                    "description": "",
                    "tags": [],
                    "serverId": None,
                    "serverName": "",
                    "createdAt": STAMP,
                    "updatedAt": STAMP,
                },
            }
            for node_id, event_id, name, event_type in ((31, 1, "Nightly ETL", "BASH"), (32, 2, "Ping", "HTTP_REQUEST"))
        ],
        "edges": [
            {
                "id": "41",
                "source": "31",
                "target": "32",
                "type": "connectionEdge",
                "animated": True,
                "data": {"type": "ON_SUCCESS", "connectionType": "ON_SUCCESS"},
            }
        ],
    }
    routes: dict[str, Any] = {"/api/events": listing}
    if not current:
        routes["/api/workflows"] = [{**workflow_row, "lastRunAt": None}]
        routes["/api/workflows/7"] = workflow_detail
    routes.update({f"/api/events/{event_id}": detail for event_id, detail in details.items()})
    return routes


# ---------------------------------------------------------------------------------------------------------
# The loopback Cronium


class FakeCronium(BaseHTTPRequestHandler):
    """
    Answers like Cronium's route handlers; ``overrides`` replace a route with (status, raw body, delay), sent
    with the ``override_types`` Content-Type of the route (default JSON).

    A path with no route gets the answer of Cronium's catch-all
    (apps/cronium-app/src/app/api/[...notfound]/route.ts:27-43), as ``GET /api/workflows`` does in a current
    Cronium.
    """

    routes: dict[str, Any] = {}
    overrides: dict[str, tuple[int, bytes, float]] = {}
    override_types: dict[str, str] = {}
    seen: list[str] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.path)
        path = self.path.split("?", 1)[0]
        if path in self.overrides:
            status, body, delay = self.overrides[path]
            time.sleep(delay)
            self._send_raw(status, body, self.override_types.get(path, "application/json"))
        elif self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._send(401, {"error": "Unauthorized"})
        elif path in self.routes:
            self._send(200, self.routes[path])
        elif path.startswith("/api/events/"):
            self._send(404, {"error": "Script not found"})
        elif path.startswith("/api/workflows/") and "/api/workflows" in self.routes:
            self._send(404, {"error": "Workflow not found"})
        else:
            body = {
                "error": "Not Found",
                "message": f"API endpoint '{path}' does not exist",
                "statusCode": 404,
                "timestamp": STAMP,
            }
            self._send(404, body)

    def _send(self, status: int, body: object) -> None:
        self._send_raw(status, json.dumps(body).encode())

    def _send_raw(self, status: int, data: bytes, content_type: str = "application/json") -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up (timeout tests)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def cronium_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeCronium)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _reset_cronium() -> None:
    FakeCronium.routes = cronium_payloads()
    FakeCronium.overrides = {}
    FakeCronium.override_types = {}
    FakeCronium.seen = []


@pytest.fixture
def cronium(cronium_server) -> str:
    _reset_cronium()
    return cronium_server


def _conn_json(url: str, token: str = TOKEN) -> str:
    return json.dumps({"conn_type": "cronium", "host": url, "password": token})


def run_sync(url: str, records: Path, token: str = TOKEN, timeout: float = 2.0) -> subprocess.CompletedProcess[str]:
    env = airflow_env(AIRFLOW_CONN_CRONIUM_SYNC_TEST=_conn_json(url, token))
    return subprocess.run(
        [
            venv_bin("cronium-airflow"),
            "sync",
            "--conn-id",
            "cronium_sync_test",
            "--timeout",
            str(timeout),
            str(records),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_sync_shows_progress_on_a_terminal_only(cronium, tmp_path, airflow_db) -> None:
    """On a terminal (stderr a pty) the fetch draws a progress bar; piped, neither stdout nor stderr has any of
    it, and the lines on stdout are the same either way."""
    env = airflow_env(AIRFLOW_CONN_CRONIUM_SYNC_TEST=_conn_json(cronium, TOKEN))
    command = [venv_bin("cronium-airflow"), "sync", "--conn-id", "cronium_sync_test", "--timeout", "2"]
    code, stdout, drawn = run_on_terminal([*command, str(tmp_path / "a")], env)
    assert code == 0, stdout
    assert b"fetching from Cronium" in drawn
    piped = run_sync(cronium, tmp_path / "b")
    assert piped.returncode == 0, piped.stdout + piped.stderr
    assert "fetching from Cronium" not in piped.stdout + piped.stderr and "\x1b[" not in piped.stdout + piped.stderr
    # the same lines (but for the SSH connection, created by the first sync and unchanged by the second)
    on_terminal = stdout.decode().replace(str(tmp_path / "a"), str(tmp_path / "b")).splitlines()
    assert [line for line in on_terminal if not line.startswith("server ")] == [
        line for line in piped.stdout.splitlines() if not line.startswith("server ")
    ]


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden ones too) with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def variable(key: str) -> str | None:
    from airflow.models import Variable

    return Variable.get(key, default_var=None)


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"secret {secret[:6]}... leaked"
        assert "PRIVATE KEY" not in text


# ---------------------------------------------------------------------------------------------------------
# sync


def test_sync_writes_records_variables_and_connections_and_leaks_nothing(cronium, tmp_path, airflow_db, monkeypatch):
    FakeCronium.routes = cronium_payloads(with_invalid=True)
    records = tmp_path / "records"
    proc = run_sync(cronium, records)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output  # written, but event 4 was invalid and left out
    assert_no_secret(output)

    # the invalid event is named with its id and field, and left out of the file and of the Variables
    assert "event 4: field scheduleUnit" in output
    assert variable("cronium.env.4.LEAKY") is None
    # every event was fetched in full: the list has no env vars or actions
    assert {"/api/events", "/api/events/1", "/api/events/2", "/api/events/3", "/api/workflows/7"} <= set(
        FakeCronium.seen
    )

    target = records / "cronium-api" / "records.json"
    assert sorted(tree_bytes(records)) == ["cronium-api/records.json"]  # no temporary file left behind
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    text = target.read_text()
    assert_no_secret(text)
    assert "whk-Secret123456" not in text  # the workflow's webhook key stays in Cronium
    bundle = json.loads(text)
    assert [e["id"] for e in bundle["events"]] == [1, 2, 3]
    assert bundle["events"][0]["envVars"] == [{"key": "API_KEY"}, {"key": "DB_PASSWORD"}]
    assert bundle["events"][2]["servers"] == [5] and "server" not in bundle["events"][2]
    assert bundle["servers"] == [
        {
            "id": 5,
            "userId": "user_8f2c",
            "name": "web-1",
            "address": "127.0.0.1",
            "port": 2222,
            "username": "deploy",
            "shared": False,
        }
    ]

    # the DAG side: load_records accepts the file, env var keys without values, the workflow in editor shape
    from cronium_provider.event_env import inline_event_env
    from cronium_provider.records.validation import load_records

    loaded = load_records([records])
    assert loaded.ok, [str(e) for e in loaded.errors]
    assert sorted(loaded.events) == [1, 2, 3] and sorted(loaded.workflows) == [7] and sorted(loaded.servers) == [5]
    assert [v.key for v in loaded.events[1].env_vars] == ["API_KEY", "DB_PASSWORD"]
    assert loaded.events[1].success_events[0].target_event_id == 2
    assert loaded.events[2].http_headers[0].key == "Accept"
    assert loaded.events[3].server_ids == [5]
    assert [(c.source, c.target, c.connection_type.value) for c in loaded.workflows[7].connections] == [
        ("31", "32", "ON_SUCCESS")
    ]
    assert inline_event_env(str(target), 1) == {"API_KEY": "", "DB_PASSWORD": ""}  # no value in the file

    # the values are in the Variables the operators read, and the names (never the values) were printed
    assert variable("cronium.env.1.API_KEY") == API_KEY
    assert variable("cronium.env.1.DB_PASSWORD") == DB_PASSWORD
    assert variable("cronium.env.3.REMOTE_TOKEN") == REMOTE_TOKEN
    for name in ("cronium.env.1.API_KEY", "cronium.env.1.DB_PASSWORD", "cronium.env.3.REMOTE_TOKEN"):
        assert f"set Variable {name}" in output
    assert "synced: 3 events, 1 workflow, 1 server; 1 problem" in output
    assert "workflows: not synced" not in output  # this Cronium still serves them

    # the server's key went to its SSH connection
    from airflow.models import Connection

    conn = Connection.get_connection_from_secrets("cronium_server_5")
    assert (conn.conn_type, conn.host, conn.port, conn.login) == ("ssh", "127.0.0.1", 2222, "deploy")
    assert conn.extra_dejson["private_key"] == SSH_KEY
    assert "SSH key stored in connection cronium_server_5" in output

    # the factory builds the event's DAG with the keys only, and its operator resolves them from the Variables
    import airflow.sdk
    from airflow.models import Variable as ModelVariable

    from cronium_provider.factory import build_dags

    dags = build_dags(records)
    assert {"cronium_event_1", "cronium_event_2", "cronium_event_3", "cronium_workflow_7"} <= set(dags)
    run = dags["cronium_event_1"].get_task("run")
    assert list(run.event_env_keys) == ["API_KEY", "DB_PASSWORD"]
    assert Path(run.records_source).resolve() == target.resolve()
    # airflow.sdk.Variable needs a task's supervisor; outside one, read the same Variables from the database
    monkeypatch.setattr(
        airflow.sdk.Variable, "get", staticmethod(lambda key, default=None: ModelVariable.get(key, default_var=default))
    )
    from cronium_provider.event_env import resolve_event_env

    assert resolve_event_env(1, run.event_env_keys, run.records_source) == {
        "API_KEY": API_KEY,
        "DB_PASSWORD": DB_PASSWORD,
    }


@pytest.fixture(scope="module")
def synced_once(cronium_server, tmp_path_factory, airflow_db) -> Path:
    """A records folder after a successful sync (done once for the module)."""
    _reset_cronium()
    records = tmp_path_factory.mktemp("synced") / "records"
    proc = run_sync(cronium_server, records)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "wrote" in output and "synced: 3 events, 1 workflow, 1 server; 0 problems" in output
    return records


@pytest.fixture
def synced(cronium, synced_once, tmp_path) -> tuple[str, Path, dict[str, bytes]]:
    """A copy of the synced records folder, with its bytes."""
    records = tmp_path / "records"
    shutil.copytree(synced_once, records)
    return cronium, records, tree_bytes(records)


FAILURES = {
    # name: (overrides, connection token, words the message must hold)
    "401": ({}, "revoked-token", ["HTTP 401", "refused the API token", "Unauthorized", "cronium_sync_test"]),
    "500": (
        {"/api/events/3": (500, b'{"error":"Internal server error"}', 0.0)},
        TOKEN,
        ["GET /api/events/3", "HTTP 500", "server error", "Internal server error"],
    ),
    "timeout": ({"/api/events": (200, b"[]", 4.0)}, TOKEN, ["GET /api/events", "no answer", "within 2 s"]),
    "malformed": (
        {"/api/events/1": (200, b'{"id": 1, "name": "Nightly ETL", "envVars": [{"key": "API_KEY", "val', 0.0)},
        TOKEN,
        ["GET /api/events/1", "not valid JSON"],
    ),
    # the workflow routes exist but fail: not a Cronium without them, so the sync fails as before
    "workflows-500": (
        {"/api/workflows": (500, b'{"error":"Internal server error"}', 0.0)},
        TOKEN,
        ["GET /api/workflows", "HTTP 500", "Internal server error"],
    ),
    "workflows-cut-short": (
        {"/api/workflows": (200, b'[{"id": 7, "name": "ETL th', 0.0)},
        TOKEN,
        ["GET /api/workflows", "not valid JSON"],
    ),
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_failed_sync_changes_nothing(synced, failure) -> None:
    url, records, before = synced
    overrides, token, words = FAILURES[failure]
    # Cronium changed meanwhile: the new value must not reach the Variable either
    routes = cronium_payloads()
    routes["/api/events/1"]["envVars"][0]["value"] = "rotated-" + API_KEY
    FakeCronium.routes = routes
    FakeCronium.overrides = dict(overrides)
    started = time.monotonic()
    proc = run_sync(url, records, token=token)
    elapsed = time.monotonic() - started
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    for word in words:
        assert word in output, (word, output)
    assert "nothing changed" in output or "is as it was" in output
    assert_no_secret(output)
    assert tree_bytes(records) == before  # byte-identical, and no temporary file left
    assert variable("cronium.env.1.API_KEY") == API_KEY
    if failure == "timeout":
        assert elapsed < 60


def test_a_second_identical_sync_leaves_the_file_alone(synced) -> None:
    url, records, before = synced
    target = records / "cronium-api" / "records.json"
    mtime = target.stat().st_mtime_ns
    proc = run_sync(url, records)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "unchanged" in proc.stdout
    assert tree_bytes(records) == before and target.stat().st_mtime_ns == mtime
    # a hand-written record with the id of a synced one: the DAG processor would report it, so does sync
    (records / "manual.json").write_text(json.dumps({"kind": "event", "id": 2, "name": "mine", "type": "BASH"}))
    proc = run_sync(url, records)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(x for x in proc.stdout.splitlines() if "duplicate id: event 2" in x)
    assert line.startswith("error: ") and line.endswith("(the DAG processor leaves it out, as validate says)")
    validate = subprocess.run(
        [venv_bin("cronium-airflow"), "validate", str(records)], capture_output=True, text=True, timeout=120
    )
    assert validate.returncode == 1 and line.removeprefix("error: ").split(" (the DAG")[0] in validate.stdout


def test_sync_reads_a_connection_made_with_airflow_connections_add(cronium, tmp_path, airflow_db) -> None:
    """The way docs/getting-started.md tells it: the Cronium connection is made with ``airflow connections
    add`` (kept in Airflow's metadata database, no ``AIRFLOW_CONN_*`` variable); ``cronium-airflow sync`` finds
    it there."""
    conn_id = f"cronium_in_db_{uuid.uuid4().hex[:8]}"
    env = airflow_env()
    add = ["connections", "add", conn_id, "--conn-type", "cronium", "--conn-host", cronium, "--conn-password", TOKEN]
    added = subprocess.run(
        [venv_bin("airflow"), *add],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert added.returncode == 0, added.stdout + added.stderr
    try:
        proc = subprocess.run(
            [venv_bin("cronium-airflow"), "sync", "--conn-id", conn_id, str(tmp_path / "records")],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert (tmp_path / "records" / "cronium-api" / "records.json").is_file()
    finally:
        subprocess.run(
            [venv_bin("airflow"), "connections", "delete", conn_id], env=env, capture_output=True, timeout=180
        )


def test_sync_without_the_connection_fails_clearly(tmp_path, airflow_db) -> None:
    proc = subprocess.run(
        [venv_bin("cronium-airflow"), "sync", "--conn-id", "cronium_missing_conn", str(tmp_path / "records")],
        env=airflow_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "cronium_missing_conn" in proc.stdout
    assert not (tmp_path / "records").exists()


def test_atomic_write_never_shows_a_partial_file(tmp_path) -> None:
    from cronium_provider.sync.store import write_atomically

    target = tmp_path / "cronium-api" / "records.json"
    docs = [json.dumps({"events": [{"id": i, "pad": "x" * 200_000}]}) for i in range(2)]
    write_atomically(target, docs[0])
    stop = threading.Event()
    bad: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                json.loads(target.read_text())
            except Exception as exc:
                bad.append(repr(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(40):
            assert write_atomically(target, docs[(i + 1) % 2]) is True
    finally:
        stop.set()
        thread.join()
    assert bad == []
    assert sorted(os.listdir(target.parent)) == ["records.json"]
    assert write_atomically(target, target.read_text()) is False


# ---------------------------------------------------------------------------------------------------------
# a current Cronium: events over REST, workflows only as files downloaded from Cronium

DOWNLOAD_NAME = "ETL then ping.json"  # the download's filename: `${workflow.name}.json` (routers/workflows.ts:654)


def _ciphertext(value: str) -> str:
    """A value as Cronium stores it: base64 of IV (16) + AES-GCM ciphertext + tag (16)
    (apps/cronium-app/src/lib/encryption-service.ts:50-75, called by storage/modules/variables.ts:36-40)."""
    size = 16 + len(value.encode()) + 16
    return base64.b64encode(hashlib.shake_256(value.encode()).digest(size)).decode()


def _nested_event(detail: dict[str, Any], routes: dict[str, Any]) -> dict[str, Any]:
    """
    One node's ``event`` in Cronium's workflow download, from the event's API detail.

    ``getWorkflowWithRelations`` (apps/cronium-app/src/server/storage/modules/workflows.ts:35-70, 88-97): the
    event's columns, then drizzle's relations in query order (``envVars`` as stored, i.e. encrypted, line 42;
    ``server``; ``eventServers`` rows with their server; ``onSuccessEvents`` / ``onFailEvents`` /
    ``onAlwaysEvents`` rows with ``targetEvent``), then ``servers`` and the four action lists, with
    ``conditionEvents`` always empty (line 86).
    """
    relations = ("envVars", "server", "servers", "eventServers", "successEvents", "failEvents", "alwaysEvents")
    event = {k: copy.deepcopy(v) for k, v in detail.items() if k not in (*relations, "conditionEvents")}

    def with_target(action: dict[str, Any]) -> dict[str, Any]:
        row = {k: v for k, v in action.items() if k != "targetEventName"}
        target = row.get("targetEventId")
        row["targetEvent"] = (
            {k: v for k, v in routes[f"/api/events/{target}"].items() if k not in relations} if target else None
        )
        return row

    actions = {name: [with_target(a) for a in detail[name]] for name in ("successEvents", "failEvents", "alwaysEvents")}
    event["envVars"] = [{**var, "value": _ciphertext(var["value"])} for var in detail["envVars"]]
    event["server"] = copy.deepcopy(detail["server"])
    event["eventServers"] = [
        {"id": 60 + i, "eventId": detail["id"], "serverId": srv["id"], "createdAt": STAMP, "server": copy.deepcopy(srv)}
        for i, srv in enumerate(detail["servers"])
    ]
    event["onSuccessEvents"] = actions["successEvents"]
    event["onFailEvents"] = actions["failEvents"]
    event["onAlwaysEvents"] = actions["alwaysEvents"]
    event["servers"] = copy.deepcopy(detail["servers"])
    event["successEvents"] = copy.deepcopy(actions["successEvents"])
    event["failEvents"] = copy.deepcopy(actions["failEvents"])
    event["alwaysEvents"] = copy.deepcopy(actions["alwaysEvents"])
    event["conditionEvents"] = []
    return event


def downloaded_workflow(routes: dict[str, Any]) -> dict[str, Any]:
    """
    Workflow 7 ("ETL then ping": event 1, then event 2 on success) exactly as Cronium's download writes it.

    tRPC ``workflows.download`` with one id and ``format: "json"`` (apps/cronium-app/src/server/api/routers/
    workflows.ts:640-657) returns ``data: JSON.stringify(getWorkflowWithRelations(id), null, 2)``: a bare
    workflow object, its columns in schema order (src/shared/schema.ts:828-863), ``nodes`` = workflow_nodes
    rows (schema.ts:865-881) each with the nested ``event``, ``connections`` = workflow_connections rows
    (schema.ts:883-905); see /work/shared/cronium-corpus/SOURCES.md for the same shape from Cronium's seeds.
    """
    node_rows = []
    for node_id, event_id, x in ((31, 1, 100), (32, 2, 400)):
        node_rows.append(
            {
                "id": node_id,
                "workflowId": 7,
                "eventId": event_id,
                "position_x": x,
                "position_y": 100,
                "createdAt": STAMP,
                "updatedAt": STAMP,
                "event": _nested_event(routes[f"/api/events/{event_id}"], routes),
            }
        )
    return {
        "id": 7,
        "userId": "user_8f2c",
        "name": "ETL then ping",
        "description": "",
        "triggerType": "WEBHOOK",
        "webhookKey": "whk-Secret123456",
        "scheduleNumber": None,
        "scheduleUnit": None,
        "customSchedule": None,
        "runLocation": "LOCAL",
        "overrideEventServers": False,
        "overrideServerIds": None,
        "status": "ACTIVE",
        "shared": False,
        "tags": ["etl"],
        "createdAt": STAMP,
        "updatedAt": STAMP,
        "nodes": node_rows,
        "connections": [
            {
                "id": 41,
                "workflowId": 7,
                "sourceNodeId": 31,
                "targetNodeId": 32,
                "connectionType": "ON_SUCCESS",
                "createdAt": STAMP,
                "updatedAt": STAMP,
            }
        ],
    }


@pytest.fixture
def current_cronium(cronium_server) -> str:
    """The loopback server as a current Cronium: events over REST, no workflow route."""
    _reset_cronium()
    FakeCronium.routes = cronium_payloads(current=True)
    return cronium_server


def _plan_json(records: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [venv_bin("cronium-airflow"), "plan", "--json", str(records)],
        env=airflow_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def test_sync_from_a_current_cronium_keeps_events_and_plans_a_downloaded_workflow(
    current_cronium, tmp_path, airflow_db
):
    """
    A current Cronium answers ``GET /api/workflows`` from its catch-all
    (apps/cronium-app/src/app/api/[...notfound]/route.ts:7-9, 27-43: HTTP 404, ``{"error": "Not Found",
    "message": "API endpoint '/api/workflows' does not exist", "statusCode": 404, "timestamp": ...}``), since
    the tRPC migration (commit 649cdbe) deleted src/app/api/workflows/route.ts. The sync keeps the events
    (apps/cronium-app/src/app/api/events/route.ts:175-194, events/[id]/route.ts:119-142), says where workflows
    come from, and leaves the workflow downloaded from Cronium (routers/workflows.ts:640-657) as it is; the two
    files load together and plan into cronium_workflow_7, the events nested in the download being the synced
    ones (records/validation.py compares the copies: no difference reported).
    """
    records = tmp_path / "records"
    records.mkdir()
    download = records / DOWNLOAD_NAME
    download.write_text(json.dumps(downloaded_workflow(cronium_payloads(current=True)), indent=2))
    download_bytes = download.read_bytes()

    proc = run_sync(current_cronium, records)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert_no_secret(output)
    assert "/api/workflows" in FakeCronium.seen and not any(p.startswith("/api/workflows/") for p in FakeCronium.seen)
    lines = [line for line in output.splitlines() if line.startswith("workflows:")]
    assert len(lines) == 1, output
    line = lines[0]
    assert "not synced" in line and "GET /api/workflows answered HTTP 404" in line
    assert "API endpoint '/api/workflows' does not exist" in line
    assert "workflow download" in line and str(records) in line
    assert "has 1 workflow file (1 workflow), left as they are" in line
    assert "warning:" not in output, output
    assert "synced: 3 events, 0 workflows, 1 server; 0 problems" in output

    # the sync file holds what the API served; the downloaded file is untouched
    target = records / "cronium-api" / "records.json"
    bundle = json.loads(target.read_text())
    assert [e["id"] for e in bundle["events"]] == [1, 2, 3] and bundle["workflows"] == []
    assert [s["id"] for s in bundle["servers"]] == [5]
    assert "eventServers" not in target.read_text() and "payloadVersion" in target.read_text()
    assert_no_secret(target.read_text())
    assert download.read_bytes() == download_bytes
    assert variable("cronium.env.1.API_KEY") == API_KEY

    # together they load with no error: each event once (the synced copy), the workflow from the download
    from cronium_provider.records.validation import load_records

    loaded = load_records([records])
    assert loaded.ok, [str(e) for e in loaded.errors]
    assert sorted(loaded.events) == [1, 2, 3] and sorted(loaded.workflows) == [7] and sorted(loaded.servers) == [5]
    assert loaded.origins[("event", 1)] == str(target) and loaded.origins[("workflow", 7)] == str(download)

    plan = _plan_json(records)
    assert plan["errors"] == []
    dags = {dag["dag_id"]: dag for dag in plan["dags"]}
    assert {"cronium_event_1", "cronium_event_2", "cronium_event_3", "cronium_workflow_7"} <= set(dags)
    workflow = dags["cronium_workflow_7"]
    assert workflow["source"] == str(download)
    edges = [(e["upstream"], e["downstream"], e["connection_type"]) for e in workflow["edges"]]
    assert ("node_31", "node_32", "ON_SUCCESS") in edges
    node_31 = next(t for t in workflow["tasks"] if t["task_id"] == "node_31")
    assert node_31["event_id"] == 1 and node_31["env_keys"] == ["API_KEY", "DB_PASSWORD"]


ABSENT = {
    # how a Cronium without the route may answer: (status, body, Content-Type)
    "405": (405, b"", "text/plain"),  # a route file without GET (Next.js)
    "sign-in page": (200, b"<!DOCTYPE html><html><body><form>Sign in</form></body></html>", "text/html; charset=utf-8"),
}


@pytest.mark.parametrize("answer", sorted(ABSENT))
def test_sync_without_workflow_routes_in_other_answers(current_cronium, tmp_path, airflow_db, answer) -> None:
    """A 405 or a web page where ``GET /api/workflows`` used to be also means "no workflow route": events sync."""
    status, body, content_type = ABSENT[answer]
    FakeCronium.overrides = {"/api/workflows": (status, body, 0.0)}
    FakeCronium.override_types = {"/api/workflows": content_type}
    records = tmp_path / "records"
    proc = run_sync(current_cronium, records)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    line = next(line for line in output.splitlines() if line.startswith("workflows:"))
    assert f"answered HTTP {status}" in line and "has 0 workflow files" in line
    assert "synced: 3 events, 0 workflows, 1 server" in output


def test_a_downloaded_workflow_whose_event_changed_since_is_reported(current_cronium, tmp_path, airflow_db) -> None:
    """
    An event renamed in Cronium after the workflow was downloaded: the synced copy is kept (it is given on its
    own, records/validation.py) and the sync warns, naming both files, so the user knows to download again;
    `validate` gives the same warning, word for word.
    """
    records = tmp_path / "records"
    records.mkdir()
    workflow = downloaded_workflow(cronium_payloads(current=True))
    workflow["nodes"][1]["event"]["name"] = "Ping (old name)"
    (records / DOWNLOAD_NAME).write_text(json.dumps(workflow, indent=2))
    proc = run_sync(current_cronium, records)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    warnings = [line for line in output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, output
    assert "differs from event 2" in warnings[0] and "in name" in warnings[0] and DOWNLOAD_NAME in warnings[0]
    assert "left out" not in warnings[0] and "given on its own, is used" in warnings[0]
    # the same finding in the same words as validate's (a warning there too: exit 0)
    validate = subprocess.run(
        [venv_bin("cronium-airflow"), "validate", str(records)], capture_output=True, text=True, timeout=120
    )
    assert validate.returncode == 0, validate.stdout
    assert [line for line in validate.stdout.splitlines() if line.startswith("warning:")] == warnings

    from cronium_provider.records.validation import load_records

    loaded = load_records([records])
    assert loaded.events[2].name == "Ping" and sorted(loaded.workflows) == [7]


def test_moving_to_a_current_cronium_drops_the_synced_workflows_and_says_so(synced, airflow_db) -> None:
    """The sync file holds what the API serves: workflow 7 from the older Cronium's sync goes, with a note."""
    url, records, _ = synced
    target = records / "cronium-api" / "records.json"
    assert [w["id"] for w in json.loads(target.read_text())["workflows"]] == [7]
    FakeCronium.routes = cronium_payloads(current=True)
    proc = run_sync(url, records)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "workflows: not synced" in output and "has 0 workflow files" in output
    assert f"note: {target} held 1 workflow from an earlier sync" in output
    assert json.loads(target.read_text())["workflows"] == []


# ---------------------------------------------------------------------------------------------------------
# the hook's API methods


@pytest.fixture
def hook(cronium, monkeypatch):
    from cronium_provider.hooks.cronium import CroniumHook

    monkeypatch.setenv("AIRFLOW_CONN_CRONIUM_HOOK_TEST", _conn_json(cronium))
    return CroniumHook("cronium_hook_test", timeout=1)


def test_hook_lists_and_gets_events_in_cronium_shape(hook) -> None:
    events = hook.list_events()
    assert [e["id"] for e in events] == [3, 2, 1]
    assert events[0]["eventServers"] == [5] and "envVars" not in events[0]
    event = hook.get_event(1)
    assert event["name"] == "Nightly ETL"
    assert [v["key"] for v in event["envVars"]] == ["API_KEY", "DB_PASSWORD"]
    assert event["successEvents"][0]["targetEventId"] == 2
    assert hook.get_event(3)["servers"][0]["id"] == 5
    assert FakeCronium.seen[-1] == "/api/events/3"


def test_hook_reports_a_missing_event_as_404(hook) -> None:
    from cronium_provider.exceptions import CroniumAPIError

    with pytest.raises(CroniumAPIError) as info:
        hook.get_event(99)
    assert info.value.status == 404
    assert "GET /api/events/99 answered HTTP 404" in str(info.value) and "Script not found" in str(info.value)


def test_hook_reads_workflows_as_records(hook) -> None:
    assert [w["id"] for w in hook.list_workflows()] == [7]
    workflow = hook.get_workflow(7)
    assert workflow["name"] == "ETL then ping" and workflow["overrideServerIds"] == []
    assert [n["data"]["eventId"] for n in workflow["nodes"]] == [1, 2]
    assert workflow["edges"][0]["data"]["connectionType"] == "ON_SUCCESS"
    assert hook.list_workflows(include_archived=True) and FakeCronium.seen[-1] == "/api/workflows?includeArchived=true"


def test_hook_says_when_cronium_has_no_workflow_route(hook) -> None:
    """
    A current Cronium: ``GET /api/workflows`` reaches the catch-all
    (apps/cronium-app/src/app/api/[...notfound]/route.ts:27-43); the hook raises CroniumRouteMissing, a
    CroniumError, and ``fetch_snapshot`` keeps the events with ``workflows_missing`` set. A later page of a
    paginated list that goes missing is still a failure.
    """
    from cronium_provider.exceptions import CroniumAPIError, CroniumError
    from cronium_provider.hooks.cronium import CroniumRouteMissing

    FakeCronium.routes = cronium_payloads(current=True)
    with pytest.raises(CroniumRouteMissing) as info:
        hook.list_workflows()
    assert isinstance(info.value, CroniumError)
    assert info.value.answer.startswith("HTTP 404: ") and "does not exist" in info.value.answer
    snapshot = hook.fetch_snapshot()
    assert [e["id"] for e in snapshot.events] == [3, 2, 1] and snapshot.workflows == []
    assert (
        snapshot.workflows_missing is not None and "GET /api/workflows answered HTTP 404" in snapshot.workflows_missing
    )
    assert hook.fetch_snapshot(with_workflows=False).workflows_missing is None
    # an older Cronium: the same call reads the workflows
    FakeCronium.routes = cronium_payloads()
    snapshot = hook.fetch_snapshot()
    assert [w["id"] for w in snapshot.workflows] == [7] and snapshot.workflows_missing is None
    # a 404 on a paginated list's second page is not "no route"
    FakeCronium.routes = {**cronium_payloads(), "/api/workflows": {"workflows": [{"id": 7}], "hasMore": True}}
    FakeCronium.overrides = {}

    class SecondPageGone(FakeCronium):
        def do_GET(self) -> None:
            if "offset=" in self.path:
                self._send(404, {"error": "Not Found"})
            else:
                super().do_GET()

    server = ThreadingHTTPServer(("127.0.0.1", 0), SecondPageGone)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        from cronium_provider.hooks.cronium import CroniumHook

        os.environ["AIRFLOW_CONN_CRONIUM_PAGES"] = _conn_json(f"http://127.0.0.1:{server.server_address[1]}")
        with pytest.raises(CroniumAPIError) as failure:
            CroniumHook("cronium_pages", timeout=2).list_workflows()
        assert failure.value.status == 404 and not isinstance(failure.value, CroniumRouteMissing)
    finally:
        os.environ.pop("AIRFLOW_CONN_CRONIUM_PAGES", None)
        server.shutdown()
        server.server_close()


def test_hook_errors_name_the_problem(hook, monkeypatch) -> None:
    from cronium_provider.exceptions import CroniumAPIError, CroniumResponseError, CroniumTimeoutError
    from cronium_provider.hooks.cronium import CroniumHook

    FakeCronium.overrides = {"/api/events/2": (200, b"<html>sign in</html>", 0.0)}
    with pytest.raises(CroniumResponseError, match="not valid JSON"):
        hook.get_event(2)
    FakeCronium.overrides = {"/api/events": (200, b'{"total": 3}', 0.0)}
    with pytest.raises(CroniumResponseError, match="no list of events"):
        hook.list_events()
    FakeCronium.overrides = {"/api/events": (500, b'{"error":"Internal server error"}', 0.0)}
    with pytest.raises(CroniumAPIError, match=r"HTTP 500 \(Cronium server error\)") as info:
        hook.list_events()
    assert info.value.status == 500
    FakeCronium.overrides = {"/api/events/1": (200, b"{}", 3.0)}
    started = time.monotonic()
    with pytest.raises(CroniumTimeoutError, match="within 1 s"):
        hook.get_event(1)
    assert time.monotonic() - started < 2.5
    FakeCronium.overrides = {}
    monkeypatch.setenv("AIRFLOW_CONN_CRONIUM_BAD_TOKEN", _conn_json(hook.base_url, "nope"))
    with pytest.raises(CroniumAPIError, match="refused the API token") as info:
        CroniumHook("cronium_bad_token", timeout=1).list_events()
    assert info.value.status == 401


def test_hook_accepts_wrapped_and_paginated_lists(hook) -> None:
    routes = cronium_payloads()
    full = routes["/api/events"]
    FakeCronium.routes = {**routes, "/api/events": {"events": full}}
    assert [e["id"] for e in hook.list_events()] == [3, 2, 1]
    FakeCronium.routes = {**routes, "/api/events/1": {"event": routes["/api/events/1"]}}
    assert hook.get_event(1)["id"] == 1

    class Paged(FakeCronium):
        def do_GET(self) -> None:
            from urllib.parse import parse_qs, urlsplit

            type(self).seen.append(self.path)
            query = parse_qs(urlsplit(self.path).query)
            offset = int(query.get("offset", ["0"])[0])
            page = copy.deepcopy(full[offset : offset + 2])
            self._send(200, {"events": page, "total": len(full), "hasMore": offset + 2 < len(full)})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Paged)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        from cronium_provider.hooks.cronium import CroniumHook

        os.environ["AIRFLOW_CONN_CRONIUM_PAGED"] = _conn_json(f"http://127.0.0.1:{server.server_address[1]}")
        assert [e["id"] for e in CroniumHook("cronium_paged", timeout=2).list_events()] == [3, 2, 1]
    finally:
        os.environ.pop("AIRFLOW_CONN_CRONIUM_PAGED", None)
        server.shutdown()
        server.server_close()


def test_env_vars_that_cannot_be_stored_are_reported_without_their_values() -> None:
    from cronium_provider.sync.transform import Snapshot, prepare, render_document

    routes = cronium_payloads()
    one = copy.deepcopy(routes["/api/events/1"])
    one["envVars"] = [_env(1, 1, "MY KEY", API_KEY)]
    two = copy.deepcopy(routes["/api/events/2"])
    two["envVars"] = [_env(2, 1, "NESTED", "x")]
    two["envVars"][0]["value"] = {"secret": DB_PASSWORD}
    prepared = prepare(Snapshot(base_url="", events=[one, two]))
    errors = [str(e) for e in prepared.records.errors]
    assert any("event 1: field envVars[0].key" in e and "cannot name an Airflow Variable" in e for e in errors)
    assert any("event 2: field envVars[0].value" in e for e in errors)
    assert prepared.records.events == {} and prepared.env_values == {}
    assert_no_secret("\n".join(errors), render_document(prepared.document))


def test_the_transformation_is_pure() -> None:
    """``sync.transform`` imports no Airflow, and turns a hand-made snapshot into the document and secrets."""
    probe = (
        "import sys, cronium_provider.sync.transform; "
        "assert not any(m == 'airflow' or m.startswith('airflow.') for m in sys.modules), 'airflow imported'; "
        "assert not {'cronium_provider.hooks.cronium', 'cronium_provider.exceptions'} & set(sys.modules)"
    )
    proc = subprocess.run([venv_bin("python"), "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr

    from cronium_provider.sync.transform import Snapshot, prepare

    server = {"id": 9, "name": "db", "address": "10.0.0.9", "username": "ops", "port": 22, "password": "pw-98765"}
    event = {
        "id": 4,
        "name": "Hello",
        "type": "BASH",
        "content": "echo hi",
        "status": "ACTIVE",
        "triggerType": "MANUAL",
        "runLocation": "REMOTE",
        "description": None,
        "envVars": [{"id": 1, "key": "API_KEY", "value": "k-123456"}, {"id": 2, "key": "VERBOSE", "value": True}],
        "server": server,
        "servers": [server],
        "eventServers": [9],
    }
    prepared = prepare(Snapshot(base_url="http://cronium.test", events=[event], servers={9: server}))
    assert prepared.records.errors == [] and prepared.notes == []
    assert prepared.document == {
        "events": [
            {
                "id": 4,
                "name": "Hello",
                "type": "BASH",
                "content": "echo hi",
                "status": "ACTIVE",
                "triggerType": "MANUAL",
                "runLocation": "REMOTE",
                "envVars": [{"key": "API_KEY"}, {"key": "VERBOSE"}],
                "servers": [9],
            }
        ],
        "workflows": [],
        "servers": [{"id": 9, "name": "db", "address": "10.0.0.9", "port": 22, "username": "ops"}],
    }
    assert prepared.env_values == {"cronium.env.4.API_KEY": "k-123456", "cronium.env.4.VERBOSE": "true"}
    password = prepared.servers_with_credentials.servers[9].password
    assert password is not None and password.get_secret_value() == "pw-98765"


def test_sync_moves_env_values_out_of_the_variables_scripts_read(cronium, tmp_path, airflow_db) -> None:
    """Older versions kept an env var's value as ``cronium_env_<id>_<KEY>``, inside the ``cronium_``
    namespace every script's getVariable sees: a sync stores it as ``cronium.env.<id>.<KEY>`` and deletes
    the old Variable."""
    from tests.support.airflow_run import set_variable

    set_variable("cronium_env_1_API_KEY", "old-" + API_KEY)
    FakeCronium.routes = cronium_payloads()
    proc = run_sync(cronium, tmp_path / "records")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert variable("cronium_env_1_API_KEY") is None
    assert variable("cronium.env.1.API_KEY") == API_KEY
    assert "deleted Variable cronium_env_1_API_KEY" in proc.stdout
    assert_no_secret(proc.stdout + proc.stderr)


def test_an_env_var_with_an_empty_value_is_synced_as_cronium_leaves_it_out(cronium, tmp_path, airflow_db) -> None:
    """Cronium sets an env var only with a key and a value (apps/cronium-app/src/lib/scheduler/
    job-payload-builder.ts:97-104, ``if (envVar.key && envVar.value ...)``): a synced event given ``EMPTY=""``
    keeps no such key, no Variable is written for it, and sync says so."""
    FakeCronium.routes = cronium_payloads()
    FakeCronium.routes["/api/events/1"]["envVars"].append(_env(1, 9, "EMPTY", ""))
    proc = run_sync(cronium, tmp_path / "records")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    written = json.loads((tmp_path / "records" / "cronium-api" / "records.json").read_text())
    keys = [e["key"] for e in next(ev for ev in written["events"] if ev["id"] == 1)["envVars"]]
    assert "EMPTY" not in keys and "API_KEY" in keys, keys
    assert variable("cronium.env.1.EMPTY") is None and variable("cronium.env.1.API_KEY") == API_KEY
    assert "event 1: env var EMPTY has an empty value: not set, as Cronium leaves it out" in proc.stdout


# ---------------------------------------------------------------------------------------------------------
# what the API may name: only cronium_server_<id>


@pytest.fixture
def other_connections(airflow_db) -> Iterator[dict[str, tuple[Any, ...]]]:
    """Connections the provider must never touch from what a Cronium sends: Airflow's mail connection,
    the Cronium API's own, a tool's credential and an operator's own SSH connection."""
    from airflow.models import Connection
    from airflow.utils.session import create_session

    made = {
        "smtp_default": dict(conn_type="smtp", host="mail.internal", port=587, login="mailer", password="smtp-pw-1"),
        "cronium_default": dict(conn_type="cronium", host="http://127.0.0.1:9", password="api-token-2"),
        "cronium_tool_3": dict(conn_type="http", host="hooks.internal", password="tool-token-3"),
        "ops_ssh": dict(conn_type="ssh", host="10.9.9.9", port=22, login="ops", password="ops-pw-4"),
    }
    ids = [*made, "cronium_server_5"]
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id.in_(ids)).delete(synchronize_session=False)
        for conn_id, fields in made.items():
            session.add(Connection(conn_id=conn_id, **fields))
    yield {conn_id: _conn_state(conn_id) for conn_id in made}
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id.in_(ids)).delete(synchronize_session=False)


def _conn_state(conn_id: str) -> tuple[Any, ...] | None:
    from airflow.models import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        conn = session.query(Connection).filter(Connection.conn_id == conn_id).one_or_none()
        if conn is None:
            return None
        return (conn.conn_type, conn.host, conn.port, conn.login, conn.password, conn.extra, conn.description)


@pytest.mark.parametrize("target", ["smtp_default", "cronium_default", "cronium_tool_3", "ops_ssh"])
def test_a_connection_id_sent_by_cronium_is_ignored(cronium, tmp_path, other_connections, target) -> None:
    """A Cronium server that names a connection in its server payload (``connectionId``) cannot make the
    sync overwrite it: what the API sends only ever creates or updates ``cronium_server_<id>``."""
    routes = cronium_payloads()
    hostile = {**SERVER_5, "connectionId": target}
    routes["/api/events/3"]["server"] = dict(hostile)
    routes["/api/events/3"]["servers"] = [dict(hostile)]
    FakeCronium.routes = routes
    records = tmp_path / "records"
    proc = run_sync(cronium, records)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output

    assert {conn_id: _conn_state(conn_id) for conn_id in other_connections} == other_connections
    server_conn = _conn_state("cronium_server_5")
    assert server_conn is not None and server_conn[:4] == ("ssh", "127.0.0.1", 2222, "deploy")
    assert target not in output
    # nor does the record file carry it to the DAGs: their remote tasks use cronium_server_5
    text = (records / "cronium-api" / "records.json").read_text()
    assert "connectionId" not in text and target not in text
    from cronium_provider.factory import build_dags

    run = build_dags(records)["cronium_event_3"].get_task("run")
    assert [s["conn_id"] for s in run.servers] == ["cronium_server_5"]


def test_servers_sync_never_overwrites_a_connection_of_another_type(tmp_path, other_connections) -> None:
    """A hand-written server record may name its SSH connection (``connectionId``); one naming a connection
    of another type is refused, naming the file, the record and the field, and the other servers sync."""
    records = tmp_path / "records"
    records.mkdir()
    servers = [
        {"id": 71, "name": "mail-box", "address": "127.0.0.1", "port": 2201, "connectionId": "smtp_default"},
        {"id": 72, "name": "api-box", "address": "127.0.0.1", "port": 2202, "connectionId": "cronium_default"},
        {"id": 73, "name": "ops-box", "address": "127.0.0.1", "port": 2203, "connectionId": "ops_ssh"},
    ]
    (records / "servers.json").write_text(json.dumps({"servers": servers}))
    proc = subprocess.run(
        [venv_bin("cronium-airflow"), "servers", "sync", str(records)],
        env=airflow_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    path = records / "servers.json"
    assert f"{path}: server 71: field connectionId: the Airflow connection smtp_default is" in output
    assert f"{path}: server 72: field connectionId: the Airflow connection cronium_default is" in output
    assert "not an SSH connection" in output
    for conn_id in ("smtp_default", "cronium_default", "cronium_tool_3"):
        assert _conn_state(conn_id) == other_connections[conn_id]
    # the operator's own SSH connection is the one a person named, but it holds a password for 10.9.9.9:22:
    # the record, naming 127.0.0.1:2203, does not take it there
    assert _conn_state("ops_ssh") == other_connections["ops_ssh"]
    assert f"{path}: server 73: field address: the record moves it from 10.9.9.9:22 to 127.0.0.1:2203" in output


def test_a_connection_id_in_an_earlier_sync_file_is_refused(tmp_path) -> None:
    """A sync file written before the API's ``connectionId`` was ignored may still name one: Cronium's
    server rows have no such column (apps/cronium-app/src/shared/schema.ts:233-249), so it can only have come
    from a hostile server. That server is refused, naming the field, until the next sync rewrites the file;
    a person's own record file keeps naming its SSH connection."""
    from cronium_provider.records.validation import load_records

    records = tmp_path / "records"
    synced = records / "cronium-api" / "records.json"
    synced.parent.mkdir(parents=True)
    synced.write_text(json.dumps({"servers": [{**SERVER_5, "sshKey": None, "connectionId": "smtp_default"}]}))
    (records / "mine.json").write_text(
        json.dumps({"kind": "server", "id": 6, "name": "ops", "address": "10.0.0.6", "connectionId": "ops_ssh"})
    )
    loaded = load_records([records])
    assert sorted(loaded.servers) == [6] and loaded.servers[6].connection_id == "ops_ssh"
    [error] = loaded.errors
    assert (error.path, error.record_id, error.field) == (str(synced), 5, "connectionId")


def test_sync_never_overwrites_a_server_connection_of_another_type(cronium, tmp_path, other_connections) -> None:
    """``cronium_server_<id>`` made by hand as another type (here HTTP) is left alone: the sync says so and
    exits 1, and the server's key goes nowhere."""
    from airflow.models import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        session.add(Connection(conn_id="cronium_server_5", conn_type="http", host="api.internal", password="h-pw"))
    before = _conn_state("cronium_server_5")
    proc = run_sync(cronium, tmp_path / "records")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "error: the Cronium API (server 5): server 5: the Airflow connection cronium_server_5 is a 'http'" in output
    assert _conn_state("cronium_server_5") == before
    assert "stored in connection" not in output and "0 SSH connections updated" in output
    assert_no_secret(output)


def test_a_server_of_your_own_file_wins_over_the_cronium_apis(cronium, tmp_path, other_connections) -> None:
    """A server id that a record file of your own defines is yours: the Cronium API sending a server of the
    same id (here at another address) neither replaces your record in the DAGs (it sorts first in the folder,
    ``cronium-api/``) nor rewrites the connection your record uses."""
    from airflow.models import Connection
    from airflow.utils.session import create_session

    from cronium_provider.factory import build_dags
    from cronium_provider.records.validation import load_records

    records = tmp_path / "records"
    records.mkdir()
    mine = records / "servers.yaml"
    mine.write_text("kind: server\nid: 5\nname: prod\naddress: 10.0.0.5\nusername: ops\n")
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == "cronium_server_5").delete()
        session.add(Connection(conn_id="cronium_server_5", conn_type="ssh", host="10.0.0.5", login="ops"))
    before = _conn_state("cronium_server_5")
    FakeCronium.routes = cronium_payloads()  # its server 5 is at 127.0.0.1, user deploy, with a key
    proc = run_sync(cronium, records)
    output = proc.stdout + proc.stderr
    assert proc.returncode in (0, 1), output
    assert f"server 5 is defined in {mine}" in output
    assert _conn_state("cronium_server_5") == before
    loaded = load_records([records])
    assert loaded.servers[5].address == "10.0.0.5" and loaded.origin("server", 5) == str(mine)
    run = build_dags(records)["cronium_event_3"].get_task("run")
    assert [s["conn_id"] for s in run.servers] == ["cronium_server_5"]


def test_a_server_the_api_moves_to_another_host_keeps_its_password_from_it(cronium, tmp_path, airflow_db) -> None:
    """The connection of server 5 holds a password and host key a person stored for 10.0.0.5; the API now
    names 127.0.0.1 (and sends a key, no password): the password is not sent there. The server is refused,
    naming it, the field and both hosts, and its connection is left as it was; the events are synced."""
    from airflow.models import Connection
    from airflow.utils.session import create_session

    def server_conn() -> tuple[Any, ...] | None:
        return _conn_state("cronium_server_5")

    extra = json.dumps({"host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOldHostOldHostOldHostOldHostOldHostOldHo"})
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == "cronium_server_5").delete()
        session.add(
            Connection(
                conn_id="cronium_server_5",
                conn_type="ssh",
                host="10.0.0.5",
                port=2222,
                login="deploy",
                password="old-host-pw-5",
                extra=extra,
            )
        )
    before = server_conn()
    try:
        proc = run_sync(cronium, tmp_path / "records")
        output = proc.stdout + proc.stderr
        assert proc.returncode == 1, output
        assert (
            "error: the Cronium API (server 5): server 5: field address: the record moves it from 10.0.0.5:2222 to "
            "127.0.0.1:2222, and the connection cronium_server_5 holds a password for 10.0.0.5:2222"
        ) in output
        assert server_conn() == before
        assert "old-host-pw-5" not in output
        assert_no_secret(output)
        assert (tmp_path / "records" / "cronium-api" / "records.json").is_file()
    finally:
        with create_session() as session:
            session.query(Connection).filter(Connection.conn_id == "cronium_server_5").delete()
