"""Cronium's workflow webhook served by a real ``airflow api-server`` (the provider's ``cronium_webhooks`` plugin).

Cronium's handler, the authority for every answer below, is
``apps/cronium-app/src/app/api/workflows/webhook/[key]/route.ts`` (addison-moore/cronium, commit aef566a):
the key is looked up among WEBHOOK workflows only (route.ts:18-27), else 404 "No workflow found for this
webhook key" (route.ts:29-37); a workflow that is not ACTIVE is 400 "This workflow is not active"
(route.ts:39-47); the body is ``request.json().catch(() => ({}))`` (route.ts:51); a started run answers
``{"success": true, "message": "Webhook received and workflow execution started", "workflowId": id}``
(route.ts:73-77). Rate limits answer 429 "Rate limit exceeded" as Cronium's webhook router does
(src/lib/webhooks/WebhookRouter.ts:119-130).

The module fixture makes a private AIRFLOW_HOME (SQLite), migrates it, copies ``dags_templates/cronium_dags.py``
into its dags folder, runs ``airflow dags reserialize`` so the DAGs exist, and starts ``airflow api-server``
on 127.0.0.1 on a free port, with a records folder (outside the home) holding four workflows:

* 10: WEBHOOK, ACTIVE: its one node (a Python event) outputs ``cronium.input()``
* 11: MANUAL, ACTIVE, with a ``webhookKey`` all the same (Cronium finds no WEBHOOK workflow for it)
* 12: WEBHOOK, PAUSED
* 13: WEBHOOK, ACTIVE, a Bash node: the key the rate-limit test exhausts (limit: 5 calls per hour)
* 14: WEBHOOK, ACTIVE, a Bash node: the key the body-cap tests use

The keys are random for each run; the last test looks for them in every file of the AIRFLOW_HOME (logs,
the metadata database) and in the api-server's and scheduler's output.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, RUNTIME_IMAGE, missing, venv_bin
from tests.support.services import ManagedProcess, stop_all

pytestmark = pytest.mark.airflow

RATE_LIMIT = 5
KEYS_RECHECK_SECONDS = 2  # cronium_provider.webhook.keys.RECHECK_SECONDS
USER, PASSWORD = "admin", "admin"
MAIN, MANUAL, PAUSED, LIMITED, CAPPED = 10, 11, 12, 13, 14
REVOKED, SLOW, DEEP = 15, 16, 17
BODY_TIMEOUT = 4  # [cronium] webhook_body_timeout_seconds in the server fixture (default 10)
MAX_BODY = 1024 * 1024  # [cronium] webhook_max_body_bytes' default
BODY = {"order_id": 42, "items": [{"sku": "a-1", "qty": 2}], "note": "größer", "nested": {"ok": True, "n": None}}
STARTED = {"success": True, "message": "Webhook received and workflow execution started"}
NOT_FOUND = {"success": False, "message": "No workflow found for this webhook key"}
NOT_ACTIVE = {"success": False, "message": "This workflow is not active"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _key() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]  # names in lower case


@dataclass
class Server:
    home: Path
    records: Path
    port: int
    env: dict[str, str]
    keys: dict[int, str]
    api: ManagedProcess
    extra: list[ManagedProcess]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Answer:
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                raw, status, hdrs = resp.read(), resp.status, {k.lower(): v for k, v in resp.headers.items()}
        except urllib.error.HTTPError as err:
            raw, status, hdrs = err.read(), err.code, {k.lower(): v for k, v in err.headers.items()}
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return Answer(status, parsed, hdrs)

    def webhook(self, key: str, body: Any = None, raw: bytes | None = None) -> Answer:
        data = raw if raw is not None else json.dumps(body if body is not None else {}).encode()
        return self.request("POST", f"/cronium/api/workflows/webhook/{key}", data, {"Content-Type": "application/json"})

    def token(self) -> str:
        answer = self.request(
            "POST",
            "/auth/token",
            json.dumps({"username": USER, "password": PASSWORD}).encode(),
            {"Content-Type": "application/json"},
        )
        assert answer.status in (200, 201), answer
        return str(answer.body["access_token"])

    def api_get(self, path: str) -> Any:
        answer = self.request("GET", "/api/v2" + path, headers={"Authorization": f"Bearer {self.token()}"})
        assert answer.status == 200, answer
        return answer.body

    def api_patch(self, path: str, body: dict[str, Any]) -> Any:
        answer = self.request(
            "PATCH",
            "/api/v2" + path,
            json.dumps(body).encode(),
            {"Authorization": f"Bearer {self.token()}", "Content-Type": "application/json"},
        )
        assert answer.status == 200, answer
        return answer.body

    def runs(self, workflow_id: int) -> list[dict[str, Any]]:
        body = self.api_get(f"/dags/cronium_workflow_{workflow_id}/dagRuns?order_by=run_after")
        return list(body["dag_runs"])


def _records(folder: Path, keys: dict[int, str]) -> None:
    events = [
        {
            "id": 1,
            "name": "Echo input",
            "type": "PYTHON",
            "status": "ACTIVE",
            "triggerType": "MANUAL",
            "content": "cronium.output(cronium.input())\n",
            "timeoutValue": 2,
            "timeoutUnit": "MINUTES",
        },
        {
            "id": 2,
            "name": "Nothing",
            "type": "BASH",
            "status": "ACTIVE",
            "triggerType": "MANUAL",
            "content": "true\n",
            "timeoutValue": 60,
            "timeoutUnit": "SECONDS",
        },
    ]
    (folder / "events.json").write_text(json.dumps({"events": events}))

    def workflow(wf_id: int, trigger: str, status: str, event_id: int) -> dict[str, Any]:
        # a workflow as Cronium's workflow download writes it: a bare object with its webhookKey
        return {
            "id": wf_id,
            "userId": "u1",
            "name": f"Workflow {wf_id}",
            "status": status,
            "triggerType": trigger,
            "webhookKey": keys[wf_id],
            "scheduleNumber": None,
            "scheduleUnit": None,
            "customSchedule": None,
            "nodes": [{"id": "n1", "workflowId": wf_id, "eventId": event_id, "position_x": 0, "position_y": 0}],
            "connections": [],
        }

    for wf_id, trigger, status, event_id in (
        (MAIN, "WEBHOOK", "ACTIVE", 1),
        (MANUAL, "MANUAL", "ACTIVE", 2),
        (PAUSED, "WEBHOOK", "PAUSED", 2),
        (LIMITED, "WEBHOOK", "ACTIVE", 2),
        (CAPPED, "WEBHOOK", "ACTIVE", 2),
        (REVOKED, "WEBHOOK", "ACTIVE", 2),
        (SLOW, "WEBHOOK", "ACTIVE", 2),
        (DEEP, "WEBHOOK", "ACTIVE", 2),
    ):
        if wf_id not in keys:
            continue
        (folder / f"workflow-{wf_id}.json").write_text(json.dumps(workflow(wf_id, trigger, status, event_id)))


def _run(argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    )
    return proc


def _wait(what: str, check: Any, timeout: float, proc: ManagedProcess | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            pytest.fail(f"{proc.name} died while waiting for {what}:\n{proc.tail()}")
        try:
            value = check()
        except (OSError, AssertionError, KeyError):
            value = None
        if value:
            return value
        time.sleep(1)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}" + (f":\n{proc.tail()}" if proc else ""))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    airflow = venv_bin("airflow")
    if not Path(airflow).is_file():
        missing("airflow", "no airflow command beside the test interpreter; run `make venv`")
    home = tmp_path_factory.mktemp("webhook-airflow-home")
    records = tmp_path_factory.mktemp("webhook-records")  # outside the home: it holds the keys
    keys = {wf_id: _key() for wf_id in (MAIN, MANUAL, PAUSED, LIMITED, CAPPED, REVOKED, SLOW, DEEP)}
    _records(records, keys)
    (home / "dags").mkdir()
    shutil.copy(REPO / "dags_templates" / "cronium_dags.py", home / "dags" / "cronium_dags.py")
    port = _free_port()
    passwords = home / "simple_auth_manager_passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}))
    # the session's own Airflow settings (conftest) must not leak in
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CRONIUM_"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
        AIRFLOW__CORE__PARALLELISM="4",
        AIRFLOW__CORE__FERNET_KEY="tHzVtBrTpU8Q5dJ9ocwXCsH0qvBy6aGjKxE3YbVz2gc=",
        AIRFLOW__CORE__AUTH_MANAGER="airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{USER}:admin",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{port}",
        AIRFLOW__API__WORKERS="1",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        AIRFLOW__CRONIUM__WEBHOOK_RATE_LIMIT=str(RATE_LIMIT),
        AIRFLOW__CRONIUM__WEBHOOK_RATE_WINDOW="3600",
        AIRFLOW__CRONIUM__WEBHOOK_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT),
        CRONIUM_RECORDS_DIR=str(records),
    )
    _run([airflow, "db", "migrate"], env, 600)
    _run([airflow, "dags", "reserialize"], env, 300)
    api = ManagedProcess("api-server", [airflow, "api-server"], home / "api-server.log", env=env).start()
    srv = Server(home, records, port, env, keys, api, [])
    try:
        _wait("the api-server", lambda: srv.request("GET", "/api/v2/monitor/health").status == 200, 180, api)
        yield srv
    finally:
        stop_all([api, *srv.extra])


# ------------------------------------------------------------------------------------------------ answers


def test_the_plugin_is_registered_and_the_dags_exist(server: Server) -> None:
    plugins = server.api_get("/plugins")["plugins"]
    mine = next(p for p in plugins if p["name"] == "cronium_webhooks")
    assert mine["fastapi_apps"][0]["url_prefix"] == "/cronium"
    dag_ids = {d["dag_id"] for d in server.api_get("/dags?dag_id_pattern=cronium_workflow_")["dags"]}
    assert {f"cronium_workflow_{i}" for i in (MAIN, MANUAL, PAUSED, LIMITED)} <= dag_ids


def test_a_post_with_the_key_starts_a_run_whose_input_is_the_body(server: Server) -> None:
    answer = server.webhook(server.keys[MAIN], BODY)
    assert answer.status == 200, answer
    assert answer.body == {**STARTED, "workflowId": MAIN}
    runs = server.runs(MAIN)
    assert len(runs) == 1
    run = runs[0]
    assert run["conf"] == {"input": BODY}
    assert run["run_type"] == "manual"
    assert run["state"] == "queued"
    assert run["triggering_user_name"] == "cronium-webhook"
    # the access log names the route, with the key hidden
    _wait(
        "the access log line",
        lambda: "/cronium/api/workflows/webhook/***" in server.api.log(),
        30,
    )


def test_a_body_that_is_not_json_is_an_empty_input(server: Server) -> None:
    """Cronium reads the body as ``request.json().catch(() => ({}))`` (route.ts:51)."""
    before = {r["dag_run_id"] for r in server.runs(MAIN)}
    answer = server.webhook(server.keys[MAIN], raw=b"order=42&not json")
    assert answer.status == 200, answer
    assert answer.body == {**STARTED, "workflowId": MAIN}
    new = [r for r in server.runs(MAIN) if r["dag_run_id"] not in before]
    assert [r["conf"] for r in new] == [{"input": {}}]


def test_a_wrong_key_is_404(server: Server) -> None:
    answer = server.webhook(_key(), BODY)
    assert (answer.status, answer.body) == (404, NOT_FOUND)


def test_the_key_of_a_workflow_that_is_not_a_webhook_workflow_is_refused(server: Server) -> None:
    """Cronium selects WEBHOOK workflows only (route.ts:18-27): a MANUAL workflow's key finds nothing."""
    answer = server.webhook(server.keys[MANUAL], BODY)
    assert (answer.status, answer.body) == (404, NOT_FOUND)
    assert server.runs(MANUAL) == []


def test_a_paused_workflow_is_refused(server: Server) -> None:
    """route.ts:39-47: a workflow whose status is not ACTIVE answers 400."""
    answer = server.webhook(server.keys[PAUSED], BODY)
    assert (answer.status, answer.body) == (400, NOT_ACTIVE)
    assert server.runs(PAUSED) == []


def test_a_workflow_whose_dag_is_paused_in_airflow_is_refused(server: Server) -> None:
    dag = f"/dags/cronium_workflow_{MAIN}"
    before = len(server.runs(MAIN))
    server.api_patch(dag, {"is_paused": True})
    try:
        answer = server.webhook(server.keys[MAIN], BODY)
    finally:
        server.api_patch(dag, {"is_paused": False})
    assert answer.status == 400
    assert answer.body["success"] is False
    assert answer.body["message"].startswith("This workflow is not active: its DAG cronium_workflow_10 is paused")
    assert len(server.runs(MAIN)) == before


def test_calls_over_the_rate_limit_of_a_key_are_429(server: Server) -> None:
    key = server.keys[LIMITED]
    for i in range(RATE_LIMIT):
        answer = server.webhook(key, {"call": i})
        assert (answer.status, answer.body) == (200, {**STARTED, "workflowId": LIMITED}), i
    answer = server.webhook(key, {"call": RATE_LIMIT})
    assert answer.status == 429
    assert answer.body == {"success": False, "message": "Rate limit exceeded"}
    assert int(answer.headers["retry-after"]) >= 1
    assert answer.headers["x-ratelimit-limit"] == str(RATE_LIMIT)
    assert len(server.runs(LIMITED)) == RATE_LIMIT
    # the limit is per key: another key is still served
    other = server.webhook(server.keys[MAIN], {"after": "limit"})
    assert other.status == 200, other


# ------------------------------------------------------------------------------------------------ big bodies


@dataclass
class Upload:
    status: int
    body: Any
    sent: int  # bytes of the body the client got to send before the answer came


def _upload(port: int, key: str, size: int, *, chunked: bool = False, timeout: float = 60) -> Upload:
    """POST ``size`` bytes to the webhook from a raw socket, reading the answer as soon as one comes: the
    upload stops there, so ``sent`` tells how much of the body the server took before it answered."""
    import select

    head = f"POST /cronium/api/workflows/webhook/{key} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head += "Content-Type: application/json\r\n"
    head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {size}\r\n\r\n"
    piece = b"x" * 65536
    sent, answer = 0, b""
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.encode())
        sock.setblocking(False)
        pending = b""
        while time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock] if sent < size or pending else [], [], 1)
            if readable:
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    data = b""
                answer += data
                if not data or b"\r\n\r\n" in answer:
                    break
            elif writable:
                if not pending:
                    n = min(len(piece), size - sent)
                    pending = (f"{n:x}\r\n".encode() + piece[:n] + b"\r\n") if chunked else piece[:n]
                    sent += n
                    if chunked and sent >= size:
                        pending += b"0\r\n\r\n"
                try:
                    pending = pending[sock.send(pending) :]
                except (BrokenPipeError, ConnectionResetError):
                    break
        sock.setblocking(True)
        sock.settimeout(5)
        head_end = answer.find(b"\r\n\r\n")
        while head_end >= 0:  # the rest of a (small, JSON) answer
            length = re.search(rb"content-length: *(\d+)", answer[:head_end].lower())
            if length is None or len(answer) >= head_end + 4 + int(length.group(1)):
                break
            try:
                data = sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            answer += data
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    status = int(answer.split(b" ", 2)[1])
    raw_body = answer[answer.find(b"\r\n\r\n") + 4 :]
    return Upload(status, json.loads(raw_body) if raw_body else None, sent)


def test_a_huge_body_with_a_wrong_key_is_refused_before_it_is_read(server: Server) -> None:
    """The key is looked at first: 64 MB behind a wrong key get a 404 while the client is still sending."""
    size = 64 * 1024 * 1024
    started = time.monotonic()
    answer = _upload(server.port, _key(), size)
    assert (answer.status, answer.body) == (404, NOT_FOUND)
    assert answer.sent < size // 4, f"the server took {answer.sent} of {size} bytes before refusing"
    assert time.monotonic() - started < 10
    assert server.api.alive()  # still serving
    assert server.webhook(server.keys[CAPPED], {"after": "huge"}).status == 200


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_cap_with_a_right_key_is_413_and_starts_no_run(server: Server, chunked: bool) -> None:
    """The body is read up to ``[cronium] webhook_max_body_bytes`` (1 MiB, Cronium's default webhook payload
    limit), whether the caller declared its length or streams it chunked; past it: 413, no run."""
    before = len(server.runs(CAPPED))
    answer = _upload(server.port, server.keys[CAPPED], 2 * 1024 * 1024, chunked=chunked)
    assert answer.status == 413, answer
    assert answer.body == {
        "success": False,
        "message": f"Payload too large: the body is over {MAX_BODY} bytes ([cronium] webhook_max_body_bytes)",
    }
    assert len(server.runs(CAPPED)) == before


def _slow_post(port: int, key: str, first: bytes, rest: bytes, pause: float) -> tuple[int, Any]:
    """POST ``first + rest`` (``Content-Length`` of both) from a raw socket, waiting ``pause`` s between."""
    body = first + rest
    head = f"POST /cronium/api/workflows/webhook/{key} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head.encode() + first)
        time.sleep(pause)
        if rest:
            with contextlib.suppress(OSError):
                sock.sendall(rest)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    status = int(answer.split(b" ", 2)[1])
    return status, json.loads(answer[answer.find(b"\r\n\r\n") + 4 :])


def test_a_key_revoked_while_its_body_streams_in_starts_no_run(server: Server) -> None:
    """The key is looked up again once the body is read: removing the workflow's file while a caller is
    still sending revokes that call too."""
    path = server.records / f"workflow-{REVOKED}.json"
    record = path.read_text()
    before = len(server.runs(REVOKED))

    def revoke() -> None:
        time.sleep(0.5)
        path.unlink()

    thread = threading.Thread(target=revoke)
    thread.start()
    try:
        status, body = _slow_post(server.port, server.keys[REVOKED], b'{"a": ', b'"late"}', KEYS_RECHECK_SECONDS + 1)
    finally:
        thread.join()
        path.write_text(record)
    assert (status, body) == (404, NOT_FOUND)
    assert len(server.runs(REVOKED)) == before


def test_a_body_slower_than_the_timeout_is_408_and_starts_no_run(server: Server) -> None:
    before = len(server.runs(SLOW))
    started = time.monotonic()
    status, body = _slow_post(server.port, server.keys[SLOW], b'{"a": ', b'"late"}', BODY_TIMEOUT + 3)
    assert status == 408, body
    assert body == {
        "success": False,
        "message": f"Request timeout: the body took over {BODY_TIMEOUT} s ([cronium] webhook_body_timeout_seconds)",
    }
    assert time.monotonic() - started < BODY_TIMEOUT + 10
    assert len(server.runs(SLOW)) == before


def test_a_body_nested_deeper_than_64_levels_is_400_and_starts_no_run(server: Server) -> None:
    """A tiny body of 300 levels made a run whose conf broke Airflow's runs listing for every DAG."""

    def nested(levels: int) -> bytes:
        return b'{"a":' * levels + b"1" + b"}" * levels

    answer = server.webhook(server.keys[DEEP], raw=nested(300))
    assert (answer.status, answer.body) == (
        400,
        {"success": False, "message": "Payload nested too deeply: over 64 levels of objects and arrays"},
    )
    assert server.webhook(server.keys[DEEP], raw=nested(65)).status == 400
    assert server.runs(DEEP) == []  # and the listing still works
    assert server.webhook(server.keys[DEEP], raw=nested(64)).status == 200
    [run] = server.runs(DEEP)
    assert json.dumps(run["conf"]["input"]).count("{") == 64


# ------------------------------------------------------------------------------------------------ a real run


def test_a_scheduler_runs_the_webhook_run_and_the_node_sees_the_body(server: Server) -> None:
    """The run the first POST queued, executed by a scheduler (LocalExecutor, the script in a container)."""
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.ping()
        client.images.get(RUNTIME_IMAGE)
    except Exception as exc:
        missing("docker", f"{type(exc).__name__}: {exc}")
    first = server.runs(MAIN)[0]
    assert first["conf"] == {"input": BODY}
    scheduler = ManagedProcess(
        "scheduler", [venv_bin("airflow"), "scheduler"], server.home / "scheduler.log", env=server.env
    ).start()
    server.extra.append(scheduler)
    path = f"/dags/cronium_workflow_{MAIN}/dagRuns/{first['dag_run_id']}"

    def finished() -> str | None:
        state = str(server.api_get(path)["state"])
        return state if state in ("success", "failed") else None

    state = _wait("the webhook's run to finish", finished, 300, scheduler)
    tis = server.api_get(path + "/taskInstances")["task_instances"]
    assert state == "success", {t["task_id"]: t["state"] for t in tis}
    xcom = server.api_get(path + "/taskInstances/node_n1/xcomEntries/return_value?deserialize=true")
    value = xcom["value"]
    assert (json.loads(value) if isinstance(value, str) else value) == BODY


def test_a_changed_record_file_is_read_again_without_a_restart(server: Server) -> None:
    """The keys are cached by the record files' mtimes: a new key in a file is served within
    ``KEYS_RECHECK_SECONDS``, the old one is gone."""
    path = server.records / f"workflow-{PAUSED}.json"
    record = json.loads(path.read_text())
    old, new = server.keys[PAUSED], _key()
    record["webhookKey"] = new
    server.keys[-PAUSED] = old  # still looked for by the secrecy test
    server.keys[PAUSED] = new
    path.write_text(json.dumps(record))
    time.sleep(KEYS_RECHECK_SECONDS + 0.5)  # the folder is looked at again at most this late
    assert (server.webhook(new, BODY).status, server.webhook(old, BODY).status) == (400, 404)


# ------------------------------------------------------------------------------------------------ secrecy


def test_no_key_appears_in_any_file_of_the_airflow_home_or_in_the_server_output(server: Server) -> None:
    """Logs (api-server, scheduler, tasks), the metadata database (runs, confs, XComs, serialized DAGs) and
    the DAG file's parse index: no key."""
    assert server.api.log_path.parent == server.home  # the api-server's output is one of the files scanned
    needles = {wf_id: key.encode() for wf_id, key in server.keys.items()}
    scanned: list[str] = []
    for path in server.home.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        scanned.append(str(path.relative_to(server.home)))
        for wf_id, needle in needles.items():
            assert needle not in data, f"the webhook key of workflow {wf_id} is in {path.relative_to(server.home)}"
    assert {"airflow.db", "api-server.log"} <= set(scanned), scanned
    log = server.api.log()
    assert re.search(r"/cronium/api/workflows/webhook/\*\*\*", log)
    assert "/cronium/api/workflows/webhook/" + server.keys[MAIN] not in log


# ------------------------------------------------------------------------------------------------ the parts


def test_keys_are_cached_until_a_record_file_changes(tmp_path: Path) -> None:
    from cronium_provider.webhook.keys import WebhookKeys

    keys = {MAIN: _key(), MANUAL: _key(), PAUSED: _key(), LIMITED: _key()}
    _records(tmp_path, keys)
    directory = WebhookKeys(folder=lambda: tmp_path, recheck_seconds=0)
    main = directory.lookup(keys[MAIN])
    assert main is not None and (main.workflow_id, main.dag_id, main.active) == (MAIN, "cronium_workflow_10", True)
    paused = directory.lookup(keys[PAUSED])
    assert paused is not None and not paused.active
    assert directory.lookup(keys[MANUAL]) is None  # not a WEBHOOK workflow (route.ts:24)
    assert directory.lookup("") is None and directory.lookup(keys[MAIN] + "x") is None
    cached = directory.targets()
    assert directory.targets() is cached  # nothing changed: nothing read again
    record = json.loads((tmp_path / f"workflow-{MAIN}.json").read_text())
    record["webhookKey"] = new = _key()
    (tmp_path / f"workflow-{MAIN}.json").write_text(json.dumps(record) + " ")
    assert directory.lookup(keys[MAIN]) is None
    found = directory.lookup(new)
    assert found is not None and found.workflow_id == MAIN


def test_a_shared_key_selects_the_lowest_workflow_id(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from cronium_provider.webhook.keys import WebhookKeys

    shared = _key()
    _records(tmp_path, {MAIN: _key(), MANUAL: _key(), PAUSED: shared, LIMITED: shared})
    with caplog.at_level("INFO", logger="airflow.cronium.webhook"):
        found = WebhookKeys(folder=lambda: tmp_path).lookup(shared)
    assert found is not None and found.workflow_id == PAUSED
    assert "workflows 12, 13 share one webhook key" in caplog.text
    assert shared not in caplog.text


def test_the_token_bucket_refills_at_limit_per_window() -> None:
    from cronium_provider.webhook.ratelimit import KeyedRateLimiter

    now = [0.0]
    limiter = KeyedRateLimiter(limit=2, window=10.0, clock=lambda: now[0])
    assert [limiter.acquire(b"a").allowed for _ in range(3)] == [True, True, False]
    assert limiter.acquire(b"b").allowed  # another key has its own bucket
    refused = limiter.acquire(b"a")
    assert not refused.allowed and refused.retry_after == pytest.approx(5.0) and refused.retry_after_header == "5"
    now[0] = 5.0
    assert limiter.acquire(b"a").allowed and not limiter.acquire(b"a").allowed
    assert KeyedRateLimiter(limit=0).acquire(b"a").allowed  # 0: no limit


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"a": 1}', {"a": 1}),
        (b"", {}),
        (b"not json", {}),
        (b"[1, 2]", {}),
        (b"null", {}),
        (b'{"a": NaN}', {}),
        (b"\xff\xfe", {}),
    ],
)
def test_the_body_is_read_as_cronium_reads_it(raw: bytes, expected: dict[str, Any]) -> None:
    """``request.json().catch(() => ({}))`` (route.ts:51); a JSON value that is not an object is {}."""
    from cronium_provider.webhook.app import parse_body

    assert parse_body(raw) == expected


def test_the_path_is_redacted_above_the_middleware_only() -> None:
    import asyncio

    from cronium_provider.webhook.redaction import WebhookKeyRedactionMiddleware

    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.update(path=scope["path"], raw=scope["raw_path"])

    key = "abc%2Fdef"
    scope: dict[str, Any] = {
        "type": "http",
        "path": "/airflow/cronium/api/workflows/webhook/abc/def",
        "raw_path": b"/airflow/cronium/api/workflows/webhook/" + key.encode(),
    }
    asyncio.run(WebhookKeyRedactionMiddleware(app)(scope, None, None))
    assert seen == {
        "path": "/airflow/cronium/api/workflows/webhook/abc/def",
        "raw": scope["raw_path"].replace(b"***", key.encode()),
    }
    assert scope["path"] == "/airflow/cronium/api/workflows/webhook/***"
    assert scope["raw_path"] == b"/airflow/cronium/api/workflows/webhook/***"
    other = {"type": "http", "path": "/api/v2/dags", "raw_path": b"/api/v2/dags"}
    asyncio.run(WebhookKeyRedactionMiddleware(app)(other, None, None))
    assert other["path"] == "/api/v2/dags"


def test_a_burst_of_calls_looks_at_the_records_folder_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The folder is walked at most once per ``RECHECK_SECONDS`` whatever the calls, and parsed again only
    when a record file changed; a change is seen after that delay."""
    from cronium_provider.webhook import keys as keys_module

    walks: list[Path | None] = []
    loads: list[Path | None] = []
    real_signature, real_load = keys_module.folder_signature, keys_module.WebhookKeys._load
    monkeypatch.setattr(keys_module, "folder_signature", lambda folder: walks.append(folder) or real_signature(folder))
    monkeypatch.setattr(
        keys_module.WebhookKeys, "_load", staticmethod(lambda folder: loads.append(folder) or real_load(folder))
    )
    now = [1000.0]
    keys = {MAIN: _key(), PAUSED: _key()}
    _records(tmp_path, keys)
    directory = keys_module.WebhookKeys(folder=lambda: tmp_path, clock=lambda: now[0])
    assert keys_module.RECHECK_SECONDS == KEYS_RECHECK_SECONDS
    for _ in range(500):  # wrong keys and right ones alike
        assert directory.lookup(_key()) is None
        assert directory.lookup(keys[MAIN]) is not None
    assert (len(walks), len(loads)) == (1, 1)
    record = json.loads((tmp_path / f"workflow-{MAIN}.json").read_text())
    record["webhookKey"] = new = _key()
    (tmp_path / f"workflow-{MAIN}.json").write_text(json.dumps(record) + " ")
    now[0] += KEYS_RECHECK_SECONDS - 0.1
    assert directory.lookup(new) is None  # not looked at yet
    now[0] += 0.2
    assert directory.lookup(new) is not None and directory.lookup(keys[MAIN]) is None
    assert (len(walks), len(loads)) == (2, 2)
    now[0] += KEYS_RECHECK_SECONDS + 1
    assert directory.lookup(new) is not None
    assert (len(walks), len(loads)) == (3, 2)  # looked at again, unchanged: not parsed again
