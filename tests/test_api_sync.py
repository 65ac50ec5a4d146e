"""``cronium-airflow sync`` and the hook's API methods against a loopback server speaking Cronium's REST API.

The payloads are shaped as Cronium's route handlers send them (``addison-moore/cronium``):
``src/app/api/events/route.ts`` answers a bare array of event rows (with ``eventServers`` ids, no env vars or
actions), ``src/app/api/events/[id]/route.ts`` the row plus ``envVars``, ``server``, ``servers`` and the four
action lists (``storage.getEventWithRelations``), ``src/app/api/workflows/[id]/route.ts``
``{workflow, nodes, edges}`` in the editor's shape; errors are ``{"error": "..."}``.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import airflow_env, venv_bin

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


def cronium_payloads(with_invalid: bool = False) -> dict[str, Any]:
    """Route -> JSON body, as a Cronium holding three events, one server and one workflow."""
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
    routes: dict[str, Any] = {
        "/api/events": listing,
        "/api/workflows": [{**workflow_row, "lastRunAt": None}],
        "/api/workflows/7": workflow_detail,
    }
    routes.update({f"/api/events/{event_id}": detail for event_id, detail in details.items()})
    return routes


# ---------------------------------------------------------------------------------------------------------
# The loopback Cronium


class FakeCronium(BaseHTTPRequestHandler):
    """Answers like Cronium's route handlers; ``overrides`` replace a route with (status, raw body, delay)."""

    routes: dict[str, Any] = {}
    overrides: dict[str, tuple[int, bytes, float]] = {}
    seen: list[str] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.path)
        path = self.path.split("?", 1)[0]
        if path in self.overrides:
            status, body, delay = self.overrides[path]
            time.sleep(delay)
            self._send_raw(status, body)
        elif self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._send(401, {"error": "Unauthorized"})
        elif path in self.routes:
            self._send(200, self.routes[path])
        elif path.startswith("/api/events/"):
            self._send(404, {"error": "Script not found"})
        elif path.startswith("/api/workflows/"):
            self._send(404, {"error": "Workflow not found"})
        else:
            self._send(404, {"error": "Not Found", "message": f"API endpoint '{path}' does not exist"})

    def _send(self, status: int, body: object) -> None:
        self._send_raw(status, json.dumps(body).encode())

    def _send_raw(self, status: int, data: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
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
    assert variable("cronium_env_4_LEAKY") is None
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
    assert variable("cronium_env_1_API_KEY") == API_KEY
    assert variable("cronium_env_1_DB_PASSWORD") == DB_PASSWORD
    assert variable("cronium_env_3_REMOTE_TOKEN") == REMOTE_TOKEN
    for name in ("cronium_env_1_API_KEY", "cronium_env_1_DB_PASSWORD", "cronium_env_3_REMOTE_TOKEN"):
        assert f"set Variable {name}" in output
    assert "synced: 3 events, 1 workflow, 1 server; 1 problem" in output

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
    assert variable("cronium_env_1_API_KEY") == API_KEY
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
    assert "warning:" in proc.stdout and "duplicate id: event 2" in proc.stdout


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
    assert prepared.env_values == {"cronium_env_4_API_KEY": "k-123456", "cronium_env_4_VERBOSE": "true"}
    password = prepared.servers_with_credentials.servers[9].password
    assert password is not None and password.get_secret_value() == "pw-98765"
