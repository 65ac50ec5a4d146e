"""The event DAG factory: the template DAG file over record folders, run by real Airflow.

Each test writes Cronium records into a folder, copies ``dags_templates/cronium_dags.py`` into the dags
folder with ``CRONIUM_RECORDS_DIR`` pointing at them, and runs the DAGs it builds with ``dag.test()``.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, airflow_env
from tests.support.airflow_run import DagRunResult, load_dag_module, run_dag, write_dag_file
from tests.support.http_receiver import HttpReceiver, json_answer, text_answer

TEMPLATE = REPO / "dags_templates" / "cronium_dags.py"
_ids = itertools.count(int(uuid.uuid4().int % 10_000) * 1000 + 100_000)


def new_id() -> int:
    """Event ids unique across the session: dag ids (and their run history) never collide."""
    return next(_ids)


class Factory:
    """A records folder plus the template DAG file reading it."""

    def __init__(self, folder: Path, capfd: Any, monkeypatch: pytest.MonkeyPatch):
        self.folder = folder
        self.capfd = capfd
        self.monkeypatch = monkeypatch
        self.events: list[dict[str, Any]] = []

    def event(self, **fields: Any) -> dict[str, Any]:
        record = {"id": new_id(), "name": "event", "type": "BASH", "status": "ACTIVE", "content": "true", **fields}
        self.events.append(record)
        return record

    def load(self) -> Any:
        (self.folder / "events.json").write_text(json.dumps({"events": self.events}))
        self.monkeypatch.setenv("CRONIUM_RECORDS_DIR", str(self.folder))
        path = write_dag_file(f"cronium_dags_{uuid.uuid4().hex[:8]}.py", TEMPLATE.read_text())
        return load_dag_module(path)

    def run(self, module: Any, event: dict[str, Any], conf: dict[str, Any] | None = None) -> DagRunResult:
        return run_dag(getattr(module, f"cronium_event_{event['id']}"), conf, capfd=self.capfd)


@pytest.fixture
def factory(tmp_path: Path, capfd, monkeypatch, airflow_db) -> Factory:
    folder = tmp_path / "records"
    folder.mkdir()
    return Factory(folder, capfd, monkeypatch)


def dag_runs(dag_id: str) -> list[Any]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == dag_id).all()
        session.expunge_all()
        return runs


@pytest.mark.docker
@pytest.mark.parametrize(
    ("conf", "expected"),
    [({"input": {"who": "form"}}, {"who": "form"}), ({"who": "cli", "n": 2}, {"who": "cli", "n": 2}), (None, {})],
)
def test_bash_event_with_manual_input(factory: Factory, conf, expected) -> None:
    event = factory.event(
        name="Echo input",
        description="Echoes its input back.",
        tags=["ops"],
        content='echo "got $(cronium_input)"; cronium_output "$(cronium_input)"',
        retries=2,
        timeoutValue=2,
        timeoutUnit="MINUTES",
    )
    module = factory.load()
    dag = getattr(module, f"cronium_event_{event['id']}")
    assert dag.tags == {"cronium", "ops"} and dag.doc_md == "Echoes its input back."
    task = dag.get_task("run")
    assert task.task_display_name == "Echo input"
    assert task.retries == 2 and task.execution_timeout.total_seconds() == 120
    result = factory.run(module, event, conf)
    assert result.state == "success", result.log_text()[-3000:]
    assert result.xcom("run") == expected
    assert f"got {json.dumps(expected, separators=(',', ':'))}" in result.log_text()


@pytest.fixture
def http_server() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver(
        routes={
            "GET /items": lambda r: json_answer({"items": [1, 2, 3]}),
            "POST /items": lambda r: json_answer({"created": r.json()}, status=201),
            "GET /hello": lambda r: text_answer("hello, world"),
            "GET /broken": lambda r: text_answer("database is down: " + "x" * 2000, status=500),
        }
    ).start()
    yield receiver
    receiver.stop()


def test_http_request_events(factory: Factory, http_server: HttpReceiver) -> None:
    get_json = factory.event(
        type="HTTP_REQUEST", httpMethod="GET", httpUrl=f"{http_server.url}/items", httpHeaders={"X-Trace": "t-1"}
    )
    post_json = factory.event(
        type="HTTP_REQUEST",
        httpMethod="POST",
        httpUrl=f"{http_server.url}/items",
        httpHeaders=[{"key": "X-Trace", "value": "t-2"}],
        httpBody='{"name": "widget"}',
    )
    get_text = factory.event(type="HTTP_REQUEST", httpMethod="GET", httpUrl=f"{http_server.url}/hello")
    broken = factory.event(type="HTTP_REQUEST", httpMethod="GET", httpUrl=f"{http_server.url}/broken")
    module = factory.load()

    result = factory.run(module, get_json)
    assert result.state == "success" and result.xcom("run") == {"items": [1, 2, 3]}
    assert http_server.requests[-1].headers["X-Trace"] == "t-1"

    result = factory.run(module, post_json)
    assert result.state == "success" and result.xcom("run") == {"created": {"name": "widget"}}
    sent = http_server.requests[-1]
    assert sent.method == "POST" and sent.json() == {"name": "widget"}
    assert sent.headers["Content-Type"] == "application/json" and sent.headers["X-Trace"] == "t-2"

    result = factory.run(module, get_text)
    assert result.state == "success"
    out = result.xcom("run")
    assert out["status"] == 200 and out["body"] == "hello, world"
    assert out["headers"]["Content-Type"].startswith("text/plain")

    result = factory.run(module, broken)
    assert result.state == "failed"
    assert "answered HTTP 500" in result.log_text() and "database is down: xxx" in result.log_text()


def test_an_http_request_follows_no_redirect_to_another_origin(factory: Factory, http_server: HttpReceiver) -> None:
    """The event's headers (API keys, tokens) go only to its own URL's origin: a same-origin redirect is
    followed, one to another host is not, and the task fails naming it."""
    other = HttpReceiver(routes={"GET /internal": lambda r: json_answer({"leaked": True})}).start()
    elsewhere = f"http://localhost:{other.url.rsplit(':', 1)[1]}/internal"
    http_server.routes["GET /moved"] = lambda r: (302, {"Location": "/items"}, b"")
    http_server.routes["GET /away"] = lambda r: (302, {"Location": elsewhere}, b"")
    secret = {"X-Api-Key": "SECRET-K", "Authorization": "Bearer SECRET-T"}
    same = factory.event(type="HTTP_REQUEST", httpMethod="GET", httpUrl=f"{http_server.url}/moved", httpHeaders=secret)
    away = factory.event(type="HTTP_REQUEST", httpMethod="GET", httpUrl=f"{http_server.url}/away", httpHeaders=secret)
    module = factory.load()
    try:
        followed = factory.run(module, same)
        refused = factory.run(module, away)
    finally:
        other.stop()
    assert followed.state == "success" and followed.xcom("run") == {"items": [1, 2, 3]}
    assert [r.path for r in http_server.requests[:2]] == ["/moved", "/items"]
    assert http_server.requests[1].headers["X-Api-Key"] == "SECRET-K"
    assert other.requests == []
    assert refused.state == "failed"
    assert (
        f"GET {http_server.url}/away answered HTTP 302, a redirect to another origin ({elsewhere}): not followed"
        in refused.log_text()
    ), refused.log_text()[-3000:]


@pytest.fixture
def endless_server() -> Iterator[tuple[str, list[int]]]:
    """A loopback server answering ``GET /big`` (50 MB, no Content-Length: only counting while reading can
    stop it) and ``GET /declared`` (50 MB with its Content-Length); yields its URL and, per answer, the
    bytes it got to write before the client hung up."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    written: list[int] = []
    size, piece = 50 * 1024 * 1024, b"x" * 65536

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            if self.path == "/declared":
                self.send_header("Content-Length", str(size))
            else:
                self.send_header("Connection", "close")
            self.end_headers()
            sent = 0
            try:
                while sent < size:
                    self.wfile.write(piece)
                    sent += len(piece)
            except (BrokenPipeError, ConnectionResetError):
                pass
            written.append(sent)
            self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", written
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("path", ["big", "declared"])
def test_an_http_answer_over_the_cap_fails_the_task_without_being_read_whole(
    factory: Factory, endless_server: tuple[str, list[int]], path: str
) -> None:
    """A 50 MB answer: the task fails naming ``[cronium] max_http_response_bytes`` (1 MiB), keeps no XCom, and
    the worker stopped reading near the cap (the server could not write the rest)."""
    url, written = endless_server
    event = factory.event(type="HTTP_REQUEST", httpMethod="GET", httpUrl=f"{url}/{path}")
    result = factory.run(factory.load(), event)
    assert result.state == "failed"
    assert f"GET {url}/{path} answered more than 1048576 bytes ([cronium] max_http_response_bytes)" in result.log_text()
    assert result.xcom("run") is None
    deadline = time.monotonic() + 10
    while not written and time.monotonic() < deadline:
        time.sleep(0.1)
    assert written and written[0] < 20 * 1024 * 1024, f"the worker took {written} bytes"


@pytest.mark.docker
@pytest.mark.parametrize(
    ("script", "run_state", "expected"),
    [
        (
            "cronium_setCondition true",
            "success",
            {
                "always_0": "success",
                "on_success_0": "success",
                "on_failure_0": "skipped",
                "on_condition_0": "success",
                "result": "success",
            },
        ),
        (
            "cronium_setCondition false",
            "success",
            {
                "always_0": "success",
                "on_success_0": "success",
                "on_failure_0": "skipped",
                "on_condition_0": "skipped",
                "result": "success",
            },
        ),
        (
            "echo failing >&2; exit 1",
            "failed",
            {
                # each action waits for the run and decides itself (Cronium's job-service.ts:583-623)
                "always_0": "success",
                "on_success_0": "skipped",
                "on_failure_0": "success",
                "on_condition_0": "skipped",
                "result": "failed",
            },
        ),
    ],
)
def test_conditional_actions(factory: Factory, script: str, run_state: str, expected: dict[str, str]) -> None:
    targets = {kind: factory.event(name=f"target {kind}") for kind in ("always", "success", "fail", "condition")}
    event = factory.event(
        name="With actions",
        content=script,
        alwaysEvents=[{"type": "SCRIPT", "targetEventId": targets["always"]["id"]}],
        successEvents=[{"type": "SCRIPT", "targetEventId": targets["success"]["id"]}],
        failEvents=[{"type": "SCRIPT", "targetEventId": targets["fail"]["id"]}],
        conditionEvents=[{"type": "SCRIPT", "targetEventId": targets["condition"]["id"]}],
    )
    module = factory.load()
    result = factory.run(module, event)
    assert result.task_states["run"] == run_state
    assert {k: v for k, v in result.task_states.items() if k != "run"} == expected
    assert result.state == ("success" if run_state == "success" else "failed")
    triggered = {kind: len(dag_runs(f"cronium_event_{t['id']}")) for kind, t in targets.items()}
    assert triggered == {
        "always": 1,
        "success": int(expected["on_success_0"] == "success"),
        "fail": int(expected["on_failure_0"] == "success"),
        "condition": int(expected["on_condition_0"] == "success"),
    }
    for run in dag_runs(f"cronium_event_{targets['always']['id']}"):
        assert not run.conf  # a SCRIPT action runs the target with no input


@pytest.mark.docker
def test_send_message_action_without_its_tool_connection_fails_naming_it(factory: Factory) -> None:
    event = factory.event(failEvents=[{"type": "SEND_MESSAGE", "toolId": 3, "message": "it failed"}], content="exit 4")
    module = factory.load()
    dag = getattr(module, f"cronium_event_{event['id']}")
    assert dag.get_task("on_failure_0").task_display_name == "on failure: message via tool 3"
    result = factory.run(module, event)
    assert result.task_states["on_failure_0"] == "failed"
    assert "cronium_tool_3" in result.log_text()


@pytest.mark.docker
def test_max_executions_stops_further_runs(factory: Factory) -> None:
    event = factory.event(maxExecutions=3, executionCount=1, content="cronium_output '{\"ran\": true}'")
    module = factory.load()
    first = factory.run(module, event)
    second = factory.run(module, event)
    third = factory.run(module, event)
    assert [first.task_states["run"], second.task_states["run"], third.task_states["run"]] == [
        "success",
        "success",
        "skipped",
    ]
    assert third.xcom("run") is None
    assert "maxExecutions 3 reached (3 execution(s) so far)" in third.log_text()


@pytest.mark.docker
def test_env_var_values_reach_the_script_but_never_the_dag(factory: Factory) -> None:
    secret = f"s3cret-{uuid.uuid4().hex}"
    event = factory.event(
        envVars=[{"key": "API_TOKEN", "value": secret}],
        content='cronium_output "{\\"len\\": ${#API_TOKEN}, \\"head\\": \\"${API_TOKEN:0:6}\\"}"',
    )
    module = factory.load()
    dag = getattr(module, f"cronium_event_{event['id']}")
    from airflow.serialization.serialized_objects import DagSerialization

    assert secret not in json.dumps(DagSerialization.to_dict(dag), default=str)
    result = factory.run(module, event)
    assert result.state == "success", result.log_text()[-2000:]
    assert result.xcom("run") == {"len": len(secret), "head": "s3cret"}
    assert secret not in result.log_text()


def test_every_status_builds_an_unpaused_dag_and_only_active_has_a_schedule(factory: Factory) -> None:
    """Cronium's Run works on any status (apps/cronium-app/src/server/api/routers/events.ts:573-698 checks
    none), while only an ACTIVE event keeps its schedule (lib/scheduler/scheduler.ts:422-430): every status
    builds its DAG, never paused at creation; a non-ACTIVE one has no timetable and a ``status:`` tag."""
    every_minute = {"triggerType": "SCHEDULE", "scheduleNumber": 1, "scheduleUnit": "MINUTES"}
    active = factory.event(status="ACTIVE", **every_minute)
    others = [factory.event(status=status, **every_minute) for status in ("PAUSED", "DRAFT", "ARCHIVED")]
    module = factory.load()
    dag = getattr(module, f"cronium_event_{active['id']}")
    assert dag.is_paused_upon_creation is False
    assert type(dag.timetable).__name__ == "CroniumTimetable"
    assert dag.max_active_runs == 16 and dag.catchup is False
    for record in others:
        other = getattr(module, f"cronium_event_{record['id']}")
        assert other.is_paused_upon_creation is False
        assert type(other.timetable).__name__ == "NullTimetable"
        assert f"status:{record['status']}" in other.tags
        assert f"status {record['status']}: no scheduled run" in (other.doc_md or "")


def test_a_broken_record_hides_no_good_dag(tmp_path: Path) -> None:
    """As the DAG processor does: a fresh process fills a DagBag from the dags folder."""
    folder = tmp_path / "records"
    folder.mkdir()
    good = [
        {"kind": "event", "id": i, "name": f"e{i}", "type": "BASH", "status": "ACTIVE", "content": "true"}
        for i in range(1, 21)
    ]
    for record in good:
        (folder / f"event-{record['id']}.json").write_text(json.dumps(record))
    (folder / "zz-broken.yaml").write_text("kind: event\nid: 99\nname: broken\ntype: BASH\nscheduleUnit: WEEKS\n")
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "cronium_dags.py").write_text(TEMPLATE.read_text())
    code = (
        "import json, sys; from airflow.dag_processing.dagbag import DagBag; "
        f"bag = DagBag(dag_folder={str(dags)!r}); "
        "print('RESULT ' + json.dumps({'dags': sorted(bag.dags), 'errors': bag.import_errors}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env=airflow_env(CRONIUM_RECORDS_DIR=str(folder)),
    )
    output = proc.stdout + proc.stderr
    [line] = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    result = json.loads(line[len("RESULT ") :])
    assert result["dags"] == sorted(f"cronium_event_{i}" for i in range(1, 21))
    assert result["errors"] == {}
    assert f"{folder / 'zz-broken.yaml'}: event 99: field scheduleUnit:" in output


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    from tests.conftest import venv_bin

    return subprocess.run([venv_bin("cronium-airflow"), *args], capture_output=True, text=True, timeout=120)


@pytest.mark.docker
def test_no_op_actions_are_left_out_with_a_note(factory: Factory) -> None:
    """Cronium does nothing for a SEND_MESSAGE with an empty message or no toolId
    (lib/scheduler/event-handlers.ts:212-215, 228-231) nor for a SCRIPT action with no target (:387-390):
    the event builds and runs, those actions are no tasks, and ``plan`` notes each."""
    event = factory.event(
        successEvents=[{"type": "SEND_MESSAGE", "message": "done"}, {"type": "SEND_MESSAGE", "toolId": 3}],
        alwaysEvents=[{"type": "SCRIPT"}],
        failEvents=[{"type": "SEND_MESSAGE", "toolId": 3, "message": "it failed"}],
    )
    module = factory.load()
    dag = getattr(module, f"cronium_event_{event['id']}")
    assert sorted(dag.task_ids) == ["on_failure_0", "result", "run"]
    assert factory.run(module, event).task_states["run"] == "success"
    plan = _cli("plan", str(factory.folder))
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert f"note: event {event['id']}: on_success_0 is a SEND_MESSAGE action with no toolId" in plan.stdout
    assert f"note: event {event['id']}: on_success_1 is a SEND_MESSAGE action with an empty message" in plan.stdout
    assert f"note: event {event['id']}: always_0 is a SCRIPT action with no targetEventId" in plan.stdout


@pytest.mark.docker
def test_an_env_var_with_an_empty_value_is_not_set(factory: Factory) -> None:
    """Cronium sets an env var only ``if (envVar.key && envVar.value ...)`` (lib/scheduler/job-payload-builder.ts:
    97-104): one with an empty value is not set for the script; validate is content and plan notes it."""
    event = factory.event(
        envVars=[{"key": "EMPTY", "value": ""}, {"key": "FULL", "value": "x1"}],
        content='cronium_output "{\\"empty\\": \\"${EMPTY-unset}\\", \\"full\\": \\"$FULL\\"}"',
    )
    module = factory.load()
    result = factory.run(module, event)
    assert result.task_states["run"] == "success", result.log_text()
    assert result.xcom("run") == {"empty": "unset", "full": "x1"}
    validate = _cli("validate", str(factory.folder))
    assert validate.returncode == 0 and "warning" not in validate.stdout, validate.stdout
    plan = _cli("plan", str(factory.folder))
    assert f"note: event {event['id']}: env var EMPTY has an empty value" in plan.stdout


@pytest.mark.docker
def test_a_remote_event_with_no_server_runs_in_a_container_with_a_warning(factory: Factory) -> None:
    """Cronium warns "is set to REMOTE but has no servers configured" and runs the script in a container
    (lib/scheduler/job-payload-builder.ts:133-145)."""
    event = factory.event(runLocation="REMOTE", content='cronium_output "{\\"ran\\": true}"')
    module = factory.load()
    dag = getattr(module, f"cronium_event_{event['id']}")
    assert type(dag.get_task("run")).__name__ == "CroniumScriptOperator"
    result = factory.run(module, event)
    assert result.task_states["run"] == "success" and result.xcom("run") == {"ran": True}
    validate = _cli("validate", str(factory.folder))
    assert validate.returncode == 0, validate.stdout
    assert f"warning: {factory.folder / 'events.json'}: event {event['id']}: field serverId: REMOTE" in validate.stdout
    assert "runs in a container" in _cli("plan", str(factory.folder)).stdout


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"serverId": 1, "servers": [2]}, [1]),  # job-payload-builder.ts:107-113: serverId wins
        ({"servers": [2]}, [2]),  # :114-124: else the first of servers
        ({"serverId": 1, "servers": [2, 3]}, [2, 3]),  # multi-server-job-builder.ts:44-80: every one of them
    ],
)
def test_the_servers_a_remote_event_runs_on(tmp_path: Path, where: dict[str, Any], expected: list[int]) -> None:
    """serverId wins over a one-server ``servers`` (lib/scheduler/job-payload-builder.ts:107-124); several
    ``servers`` all run, as Cronium's multi-server job and its orchestrator's MultiServerExecutor
    (lib/scheduler/multi-server-job-builder.ts:44-80, apps/orchestrator/internal/executors/ssh/
    multi_executor.go:62-110) do."""
    from cronium_provider.plan.build import build_plan
    from cronium_provider.records.validation import load_records

    servers = [{"kind": "server", "id": i, "name": f"s{i}", "address": "127.0.0.1"} for i in (1, 2, 3)]
    event = {"kind": "event", "id": 9, "name": "r", "type": "BASH", "status": "ACTIVE", "runLocation": "REMOTE"}
    (tmp_path / "r.json").write_text(json.dumps([*servers, {**event, **where}]))
    records = load_records([tmp_path])
    assert records.ok, [str(e) for e in records.errors]
    [dag] = build_plan(records).to_json()["dags"]
    assert dag["tasks"][0]["server_ids"] == expected
    from cronium_provider.plan.specs import SSHScriptSpec

    [task] = [t for t in build_plan(records).dags[0].tasks if isinstance(t, SSHScriptSpec)]
    assert [s["conn_id"] for s in task.arguments()["servers"]] == [f"cronium_server_{i}" for i in expected]
