"""Tool actions and SEND_MESSAGE actions, delivered to real receivers on loopback by real Airflow runs.

A local HTTP server stands for the Slack, Discord, Teams and webhook endpoints and records every request;
a real SMTP server (aiosmtpd) receives the email. Credentials are Airflow connections
``cronium_tool_<toolId>``, given to Airflow through ``AIRFLOW_CONN_*`` environment variables.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests import test_workflows
from tests.conftest import _free_port, airflow_env, venv_bin
from tests.support.airflow_run import DagRunResult
from tests.support.http_receiver import HttpReceiver, json_answer, text_answer
from tests.test_event_dags import Factory, new_id
from tests.test_workflows import WorkflowBuilder

wf = test_workflows.wf  # the fixture of the workflow tests: a records folder and its workflow
_tool_ids = itertools.count(new_id())


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    ok = lambda r: text_answer("ok")  # noqa: E731
    server = HttpReceiver(
        routes={
            "POST /services/T000/B000/slack": ok,
            "POST /api/webhooks/42/discord-token": lambda r: (204, {}, b""),
            "POST /teams/hook": lambda r: text_answer("1"),
            "POST /hooks/generic": lambda r: json_answer({"received": True}),
            "POST /hooks/broken": lambda r: text_answer("upstream exploded", status=503),
            "POST /hooks/busy": lambda r: text_answer("slow down", status=429),
            "POST /teams/elsewhere": lambda r: text_answer("1"),
            "GET /report": lambda r: text_answer("3 new orders"),
            "POST /hooks/unauthorized": lambda r: text_answer("bad token", status=401),
        }
    ).start()
    yield server
    server.stop()


@pytest.fixture
def factory(tmp_path: Path, capfd, monkeypatch, airflow_db) -> Factory:
    folder = tmp_path / "records"
    folder.mkdir()
    return Factory(folder, capfd, monkeypatch)


def tool(monkeypatch: pytest.MonkeyPatch, conn: dict[str, Any]) -> int:
    """A tool id whose Airflow connection ``cronium_tool_<id>`` is ``conn``."""
    tool_id = next(_tool_ids)
    monkeypatch.setenv(f"AIRFLOW_CONN_CRONIUM_TOOL_{tool_id}", json.dumps(conn))
    return tool_id


def owner_of(factory: Factory) -> str:
    """The one owner of a test's events (a new one per test, so rate limits per user do not carry over):
    the connections made by :func:`tool` record no owner, which Cronium's one-owner setups allow."""
    return str(factory.__dict__.setdefault("owner", f"user-{uuid.uuid4().hex[:6]}"))


def tool_event(
    factory: Factory, tool_type: str, action_id: str, tool_id: int, parameters: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    return factory.event(
        type="TOOL_ACTION",
        name=fields.pop("name", f"{tool_type} action"),
        userId=fields.pop("userId", owner_of(factory)),
        toolActionConfig={"toolType": tool_type, "actionId": action_id, "toolId": tool_id, "parameters": parameters},
        **fields,
    )


def run_tool_event(
    factory: Factory,
    tool_type: str,
    action_id: str,
    tool_id: int,
    parameters: dict[str, Any],
    conf: dict[str, Any] | None = None,
    **fields: Any,
) -> DagRunResult:
    """One run of a new tool event (:func:`tool_event`), its records folder loaded anew, with ``conf`` as input."""
    event = tool_event(factory, tool_type, action_id, tool_id, parameters, **fields)
    return factory.run(factory.load(), event, conf)


def test_slack_discord_teams_and_webhook_requests_are_what_the_services_document(
    factory: Factory, receiver: HttpReceiver, monkeypatch
) -> None:
    slack = tool(monkeypatch, {"conn_type": "slackwebhook", "password": f"{receiver.url}/services/T000/B000/slack"})
    discord = discord_tool(monkeypatch, receiver)
    teams = tool(
        monkeypatch,
        {"conn_type": "http", "host": f"{receiver.url}/teams/hook", "extra": json.dumps({"tool_type": "teams"})},
    )
    hook = tool(
        monkeypatch,
        {"conn_type": "http", "host": f"{receiver.url}/hooks/generic", "extra": json.dumps({"tool_type": "webhook"})},
    )
    events = {
        "slack": tool_event(
            factory,
            "slack",
            "slack-send-message",
            slack,
            {"text": "Batch {{cronium.input.batch}} from {{cronium.event.name}}"},
            name="Notify",
        ),
        "discord": tool_event(
            factory,
            "discord",
            "discord-send-message",
            discord,
            {"content": "deploy {{cronium.input.batch}}", "username": "cronium-bot"},
        ),
        "teams": tool_event(factory, "teams", "send-message", teams, {"message": "Build green", "title": "CI"}),
        "webhook": tool_event(factory, "webhook", "send-webhook", hook, {"kind": "ping"}),
    }
    module = factory.load()
    results = {name: factory.run(module, event, {"batch": "b-7"}) for name, event in events.items()}
    for name, result in results.items():
        assert result.state == "success", (name, result.log_text()[-3000:])
    by_path = {r.path: r for r in receiver.requests}

    slack_req = by_path["/services/T000/B000/slack"]
    assert slack_req.headers["Content-Type"].startswith("application/json")
    assert slack_req.json() == {"text": "Batch b-7 from Notify", "batch": "b-7"} or slack_req.json() == {
        "text": "Batch b-7 from Notify"
    }
    discord_req = by_path["/api/webhooks/42/discord-token"]
    assert discord_req.json() == {"content": "deploy b-7", "username": "cronium-bot"}
    assert discord_req.headers["Content-Type"] == "application/json"
    teams_req = by_path["/teams/hook"]
    # Cronium's message card: the message as the first section (teams/actions/send-message.ts:169-186)
    assert teams_req.json() == {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "themeColor": "0078D4",
        "summary": "CI",
        "title": "CI",
        "sections": [{"text": "Build green"}],
    }
    assert "tool_type" not in {k.lower() for k in teams_req.headers}
    generic = by_path["/hooks/generic"]
    assert generic.json() == {"kind": "ping", "batch": "b-7"}  # the run's input is merged over the parameters

    out = results["slack"].xcom("run")
    assert set(out) == {"actionId", "actionName", "executionTime", "result", "parameters", "timestamp"}
    assert out["actionId"] == "slack-send-message" and out["parameters"]["text"] == "Batch b-7 from Notify"


def test_email_reaches_a_real_smtp_server(factory: Factory, monkeypatch) -> None:
    with smtp_server() as (port, received):
        mail = smtp_tool(monkeypatch, port)
        event = tool_event(
            factory,
            "email",
            "send-email",
            mail,
            {
                "to": "ops@example.test, dev@example.test",
                "subject": "Report {{cronium.input.day}}",
                "body": "<h1>Totals</h1><p>{{cronium.input.total}}</p>",
            },
        )
        module = factory.load()
        result = factory.run(module, event, {"day": "Monday", "total": 42})
        assert result.state == "success", result.log_text()[-3000:]
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.1)
    [message] = received
    assert message["Subject"] == "Report Monday"
    assert message["From"] == "cronium@example.test"
    assert {a.strip() for a in message["To"].split(",")} == {"ops@example.test", "dev@example.test"}
    html = next(p for p in message.walk() if p.get_content_type() == "text/html")
    assert html.get_payload(decode=True).decode() == "<h1>Totals</h1><p>42</p>"


def test_validation_follows_cronium_rules(factory: Factory, receiver: HttpReceiver, monkeypatch) -> None:
    discord = discord_tool(monkeypatch, receiver)
    slack = tool(monkeypatch, {"conn_type": "slackwebhook", "password": f"{receiver.url}/services/T000/B000/slack"})
    too_long = tool_event(factory, "discord", "discord-send-message", discord, {"content": "x" * 2001})
    no_text = tool_event(factory, "slack", "slack-send-message", slack, {"channel": "#ops"})
    module = factory.load()
    first = factory.run(module, too_long)
    assert first.state == "failed" and "is 2001 characters; Discord allows 2000" in first.log_text()
    second = factory.run(module, no_text)
    assert second.state == "failed" and "slack-send-message needs 'text' or 'blocks'" in second.log_text()
    assert receiver.requests == []


def test_unknown_tools_and_actions_are_rejected_by_validation(tmp_path: Path) -> None:
    from cronium_provider.records.validation import load_records

    (tmp_path / "e.json").write_text(
        json.dumps(
            {
                "events": [
                    {
                        "id": 1,
                        "name": "sheet",
                        "type": "TOOL_ACTION",
                        "toolActionConfig": {"toolType": "jira", "actionId": "create-issue", "toolId": 1},
                    },
                    {
                        "id": 2,
                        "name": "page",
                        "type": "TOOL_ACTION",
                        "toolActionConfig": {"toolType": "notion", "actionId": "delete-workspace", "toolId": 1},
                    },
                ]
            }
        )
    )
    records = load_records([tmp_path])
    messages = sorted(str(e) for e in records.errors)
    assert len(messages) == 2
    assert "unknown tool 'jira'" in messages[0] and "event 1: field toolActionConfig" in messages[0]
    assert "event 2: field toolActionConfig" in messages[1] and "delete-workspace" in messages[1], messages[1]


def test_401_is_never_retried_and_a_webhook_tool_gets_the_standard_retries(
    factory: Factory, receiver: HttpReceiver, monkeypatch
) -> None:
    """A 401 is sent once. A webhook tool's 429 is tried 3 times from 1 s x2: Cronium retries every action
    with its standard strategy, as it picks the aggressive one (5 attempts) only for an action with
    ``features.webhookSupport``, which none sets (apps/cronium-app/src/lib/scheduler/tool-action-executor.ts:
    373-375; apps/cronium-app/src/lib/tools/retry-strategies.ts:252-261). The 5th failure in a row opens the
    webhook's circuit: the next run is refused without a call."""
    unauthorized = tool(
        monkeypatch,
        {
            "conn_type": "http",
            "host": f"{receiver.url}/hooks/unauthorized",
            "extra": json.dumps({"tool_type": "webhook"}),
        },
    )
    busy = tool(
        monkeypatch,
        {"conn_type": "http", "host": f"{receiver.url}/hooks/busy", "extra": json.dumps({"tool_type": "webhook"})},
    )
    denied = tool_event(factory, "webhook", "send-webhook", unauthorized, {"n": 1})
    failing = tool_event(factory, "webhook", "send-webhook", busy, {"n": 1})
    module = factory.load()
    result = factory.run(module, denied)
    assert result.state == "failed" and "answered HTTP 401" in result.log_text()
    assert [r.path for r in receiver.requests] == ["/hooks/unauthorized"]

    def attempts() -> list[Any]:
        return [r for r in receiver.requests if r.path == "/hooks/busy"]

    first = factory.run(module, failing)
    assert first.state == "failed"
    assert len(attempts()) == 3  # the standard strategy's 3 attempts
    gaps = [b.received_at - a.received_at for a, b in itertools.pairwise(attempts())]
    assert 0.9 <= gaps[0] <= 2.0 and 1.8 <= gaps[1] <= 3.5, gaps  # 1 s, then 2 s, within jitter
    second = factory.run(module, failing)
    assert second.state == "failed" and "is open" in second.log_text()
    assert len(attempts()) == 5  # its 2nd attempt was the 5th failure in a row: the 3rd is not sent
    third = factory.run(module, failing)
    assert third.state == "failed" and "half-open in" in third.log_text()
    assert len(attempts()) == 5  # rejected without a call


RATE_DAG = """
import os, pendulum
from airflow.sdk import DAG
from cronium_provider.operators.tool_action import CroniumToolActionOperator
with DAG(os.environ["RATE_DAG_ID"], schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
    for i in range(11):
        CroniumToolActionOperator(task_id=f"send_{i}", tool_type="webhook", action_id="send-webhook",
                                  tool_id=int(os.environ["RATE_TOOL_ID"]), parameters={"i": i},
                                  event={"userId": os.environ["RATE_USER"]})
"""


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_rate_limit_holds_across_four_task_processes(
    backend: str, receiver: HttpReceiver, airflow_db, tmp_path: Path, redis_url: str
) -> None:
    """Four `airflow dags test` processes, 11 webhook actions each, share one limit: 'other' = 30 a minute, all
    at once if they come at once, as Cronium's limiter has one per-minute window and no burst rule
    (apps/cronium-app/src/lib/security/rate-limiter.ts:69-73, 117-198): the 11th call within 10 s is sent."""
    tool_id = next(_tool_ids)
    user = f"rate-{uuid.uuid4().hex[:6]}"
    dags = tmp_path / "dags"
    dags.mkdir()
    procs = []
    env_common = {
        f"AIRFLOW_CONN_CRONIUM_TOOL_{tool_id}": json.dumps(
            {
                "conn_type": "http",
                "host": f"{receiver.url}/hooks/generic",
                "extra": json.dumps({"tool_type": "webhook"}),
            }
        ),
        "RATE_TOOL_ID": str(tool_id),
        "RATE_USER": user,
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
    }
    if backend == "redis":
        env_common["AIRFLOW__CRONIUM__RESILIENCE_STORE"] = redis_url
    for p in range(4):
        dag_id = f"rate_{backend}_{uuid.uuid4().hex[:6]}_{p}"
        (dags / f"{dag_id}.py").write_text(RATE_DAG.replace('os.environ["RATE_DAG_ID"]', repr(dag_id)))
    files = sorted(dags.glob("*.py"))
    # Registered first, by one process: `airflow dags test` writes every new DAG file of the folder into the
    # metadata database, and several doing so at once collide (UNIQUE constraint failed: dag.dag_id).
    registered = subprocess.run(
        [venv_bin("airflow"), "dags", "reserialize"],
        env=airflow_env(**env_common),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert registered.returncode == 0, registered.stderr[-3000:]
    for path in files:
        env = airflow_env(**env_common)
        procs.append(
            subprocess.Popen(
                [venv_bin("airflow"), "dags", "test", path.stem],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    sent = [r for r in receiver.requests if r.path == "/hooks/generic"]
    text = "\n".join(outputs)
    rejected = text.count("rate limit")
    assert len(sent) >= 11, text[-3000:]
    assert rejected > 0, "no call was refused: the processes never competed"
    times = sorted(r.received_at for r in sent)
    for i, start in enumerate(times):
        in_window = [t for t in times[i:] if t - start < 60]
        assert len(in_window) <= 30, f"{len(in_window)} calls within 60 s"
    assert max(len([t for t in times[i:] if t - start < 10]) for i, start in enumerate(times)) >= 11
    assert "try again in" in text


@pytest.mark.docker
def test_a_failing_workflow_node_sends_its_slack_message(
    wf: WorkflowBuilder, monkeypatch, receiver: HttpReceiver
) -> None:
    from tests.test_workflows import ok

    slack = tool(monkeypatch, {"conn_type": "slackwebhook", "password": f"{receiver.url}/services/T000/B000/slack"})
    wf.node("fetch", 'cronium_output \'{"order": 7, "customer": "Zoë"}\'')
    wf.node(
        "charge",
        "echo charging >&2; exit 3",
        name="Charge card",
        failEvents=[
            {
                "type": "SEND_MESSAGE",
                "toolId": slack,
                "emailAddresses": "#billing",
                "message": "{{cronium.event.name}} failed for order {{cronium.input.order}} "
                "({{cronium.input.customer}})",
            }
        ],
    )
    wf.node("after", ok("after"))
    wf.connect("fetch", "charge", "ON_SUCCESS")
    wf.connect("charge", "after", "ON_SUCCESS")
    run = wf.run()
    assert run.states == {"fetch": "success", "charge": "failed", "after": "skipped"}
    assert run.result.task_states["node_charge__on_failure_0"] == "success"
    [message] = [r for r in receiver.requests if r.path == "/services/T000/B000/slack"]
    assert message.json() == {"text": "Charge card failed for order 7 (Zoë)", "channel": "#billing"}
    assert run.result.state == "failed"


# -- Handlebars messages with the facts of the run that fired them --------------------------------------
SLACK_PATH = "/services/T000/B000/slack"
CRONIUM_TIME = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4}), (\d{1,2}):(\d\d):(\d\d) (AM|PM)$")


def slack_tool(monkeypatch: pytest.MonkeyPatch, receiver: HttpReceiver) -> int:
    return tool(monkeypatch, {"conn_type": "slackwebhook", "password": f"{receiver.url}{SLACK_PATH}"})


def discord_tool(monkeypatch: pytest.MonkeyPatch, receiver: HttpReceiver) -> int:
    """A Discord tool connection whose webhook is the receiver's ``/api/webhooks/42/discord-token``."""
    extra = json.dumps({"webhook_endpoint": "webhooks/42/discord-token"})
    return tool(monkeypatch, {"conn_type": "discord", "host": f"{receiver.url}/api/", "extra": extra})


def slack_texts(receiver: HttpReceiver) -> list[str]:
    return [r.json()["text"] for r in receiver.requests if r.path == SLACK_PATH]


def task_instance(result: Any, task_id: str) -> Any:
    """The task instance of one task of a finished run, as the Airflow UI shows it (start, end, duration)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = (
            session.query(TaskInstance)
            .filter_by(dag_id=result.dag_id, run_id=result.run_id, task_id=task_id, map_index=-1)
            .one()
        )
        session.expunge(ti)
        return ti


def parse_cronium_time(text: str, zone: str) -> datetime:
    """``{{formatTime ...}}`` text (``1/2/2024, 3:04:05 PM``) as an aware time in ``zone``."""
    match = CRONIUM_TIME.match(text)
    assert match, text
    month, day, year, hour, minute, second = (int(g) for g in match.groups()[:6])
    hour = hour % 12 + (12 if match.group(7) == "PM" else 0)
    return datetime(year, month, day, hour, minute, second, tzinfo=ZoneInfo(zone))


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[int, list[Any]]]:
    """A real SMTP server (aiosmtpd) on loopback; yields its port and the messages it received."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    received: list[Any] = []

    class Collect(Message):
        def handle_message(self, message: Any) -> None:
            received.append(message)

    port = _free_port()
    controller = Controller(Collect(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()


def smtp_tool(monkeypatch: pytest.MonkeyPatch, port: int) -> int:
    extra = json.dumps({"disable_ssl": True, "disable_tls": True, "from_email": "cronium@example.test"})
    return tool(
        monkeypatch,
        {"conn_type": "smtp", "host": "127.0.0.1", "port": port, "login": "", "password": "", "extra": extra},
    )


@pytest.mark.docker
def test_a_failed_scripts_send_message_renders_its_handlebars_template(
    factory: Factory, receiver: HttpReceiver, monkeypatch
) -> None:
    """A failure action's message is rendered with the facts of the run that failed, as Cronium renders it:
    ``status`` ``failure``, ``server`` ``Local`` for a run on the Cronium host, ``duration`` in ms and
    ``error`` the run's stderr (apps/cronium-app/src/lib/scheduler/event-handlers.ts:89-100, 280-314;
    apps/cronium-app/src/app/api/internal/jobs/[jobId]/complete/route.ts:86-91);
    ``formatDuration`` prints ``1.2s`` or ``850ms`` (apps/cronium-app/src/lib/template-processor.ts:71-85);
    the ``{{#if}}``/``{{else}}`` lines, alone on their lines, leave no blank line (Handlebars' standalone
    rule, Cronium renders with ``handlebars`` 4.7: template-processor.ts:8,136-137)."""
    slack = slack_tool(monkeypatch, receiver)
    template = (
        "{{#if cronium.event.error}}\n"
        ":rotating_light: {{cronium.event.name}} {{cronium.event.status}} on {{cronium.event.server}}"
        " after {{formatDuration cronium.event.duration}}\n"
        "{{cronium.event.error}}\n"
        "{{else}}\n"
        "{{cronium.event.name}} is fine\n"
        "{{/if}}\n"
        "(no error: {{#unless cronium.event.error}}yes{{else}}no{{/unless}})"
    )
    event = factory.event(
        name="Nightly load",
        content="echo starting; echo 'disk full on /data' >&2; exit 3",
        failEvents=[{"type": "SEND_MESSAGE", "toolId": slack, "message": template}],
    )
    module = factory.load()
    result = factory.run(module, event)
    assert result.task_states["run"] == "failed"
    assert result.task_states["on_failure_0"] == "success", result.log_text()[-3000:]
    [text] = slack_texts(receiver)
    match = re.fullmatch(
        r":rotating_light: Nightly load failure on Local after (\d+ms|\d+\.\d+s)\n"
        r"disk full on /data\n"
        r"\(no error: no\)",
        text,
    )
    assert match, text
    figure = match.group(1)
    ms = float(figure[:-2]) if figure.endswith("ms") else float(figure[:-1]) * 1000
    run = task_instance(result, "run")
    assert 0 < ms and abs(ms - run.duration * 1000) <= 100, (figure, run.duration)


@pytest.mark.docker
def test_a_succeeded_runs_message_has_its_status_output_and_time(factory: Factory, monkeypatch) -> None:
    """A success action's email, through a real SMTP server: ``status`` is ``success``, ``output`` the run's
    stdout (apps/cronium-app/src/app/api/internal/jobs/[jobId]/complete/route.ts:79-88), the subject
    Cronium's default ``Event Success: <name>`` when the action has none
    (apps/cronium-app/src/lib/scheduler/event-handlers.ts:42-59, 280-301, 320-328), and ``formatTime`` the
    run's start (``executionTime``, the log's ``startTime``) as ``toLocaleString()`` prints it in the server's
    zone (apps/cronium-app/src/lib/template-processor.ts:88-97): ``[cronium] timezone`` here."""
    zone = "Asia/Kolkata"
    monkeypatch.setenv("AIRFLOW__CRONIUM__TIMEZONE", zone)
    with smtp_server() as (port, received):
        mail = smtp_tool(monkeypatch, port)
        event = factory.event(
            name="Nightly load",
            content="sleep 0.5; echo '42 rows loaded'",
            successEvents=[
                {
                    "type": "SEND_MESSAGE",
                    "toolId": mail,
                    "emailAddresses": "ops@example.test",
                    "emailSubject": "",
                    "message": "<p>{{cronium.event.name}}: {{cronium.event.status}}</p>"
                    "<p>Output: {{cronium.event.output}}</p>"
                    "<p>Started: {{formatTime cronium.event.executionTime}}</p>",
                }
            ],
        )
        module = factory.load()
        result = factory.run(module, event)
        assert result.state == "success", result.log_text()[-3000:]
        assert result.task_states["on_success_0"] == "success"
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.1)
    [message] = received
    assert message["Subject"] == "Event Success: Nightly load"
    assert message["To"] == "ops@example.test"
    html = next(p for p in message.walk() if p.get_content_type() == "text/html")
    body = html.get_payload(decode=True).decode()
    match = re.fullmatch(r"<p>Nightly load: success</p><p>Output: 42 rows loaded</p><p>Started: (.+)</p>", body)
    assert match, body
    started = parse_cronium_time(match.group(1), zone)
    run = task_instance(result, "run")
    # formatTime prints whole seconds: the run's start, truncated
    assert started == run.start_date.astimezone(ZoneInfo(zone)).replace(microsecond=0), (started, run.start_date)
    assert result.started - 1 <= started.timestamp() <= result.finished


@pytest.mark.docker
def test_send_message_gathers_the_facts_of_the_run_that_fired_it(
    factory: Factory, receiver: HttpReceiver, monkeypatch
) -> None:
    """``{{json cronium.event}}`` prints what Cronium's template context holds of the run that fired the
    action (apps/cronium-app/src/lib/template-processor.ts:100-102, 182-215; its facts:
    apps/cronium-app/src/lib/scheduler/event-handlers.ts:42-59, 89-100, 280-301): ``status``, ``duration``
    in ms (the task's duration), ``executionTime`` (its start, ISO 8601), ``server``, ``output`` (its stdout,
    empty when it printed nothing: complete/route.ts:79-88) and, for a failed run, ``error`` (its stderr)."""
    slack = slack_tool(monkeypatch, receiver)
    action = {"type": "SEND_MESSAGE", "toolId": slack, "message": "{{json cronium.event}}"}
    good = factory.event(name="Good", content="sleep 1; echo 'all 3 files copied'", alwaysEvents=[action])
    bad = factory.event(name="Bad", content="sleep 1; echo 'no input file' >&2; exit 5", alwaysEvents=[action])
    module = factory.load()
    outcomes = {}
    for event in (good, bad):
        result = factory.run(module, event)
        assert result.task_states["always_0"] == "success", result.log_text()[-3000:]
        run = task_instance(result, "run")
        outcomes[event["name"]] = (json.loads(slack_texts(receiver)[-1]), run)

    facts, run = outcomes["Good"]
    assert run.state == "success"
    # Cronium's keys, in its order: nothing else of the record (its owner, tags...) reaches a message
    assert list(facts) == ["id", "name", "status", "duration", "executionTime", "server", "output"]
    assert facts["id"] == good["id"] and facts["name"] == "Good"
    assert facts["status"] == "success" and facts["server"] == "Local"
    assert facts["output"] == "all 3 files copied"
    for name, (facts, run) in outcomes.items():
        assert isinstance(facts["duration"], int) and facts["duration"] >= 1000, name
        assert abs(facts["duration"] - run.duration * 1000) <= 100, (name, facts["duration"], run.duration)
        started = datetime.fromisoformat(facts["executionTime"].replace("Z", "+00:00"))
        assert facts["executionTime"].endswith("Z")
        assert abs((started - run.start_date).total_seconds()) < 0.002, (name, started, run.start_date)

    facts, run = outcomes["Bad"]
    assert run.state == "failed"
    assert list(facts) == ["id", "name", "status", "duration", "executionTime", "server", "output", "error"]
    assert facts["status"] == "failure" and facts["server"] == "Local"
    assert facts["output"] == ""
    assert facts["error"] == "no input file"


def test_cronium_default_templates_with_their_send_message_action_ids(
    factory: Factory, receiver: HttpReceiver, monkeypatch
) -> None:
    """Cronium's default tool-action templates name Slack's and Discord's message action ``send-message``
    (apps/cronium-app/src/lib/default-tool-action-templates.ts:17-77); such events are delivered. Their
    parameters are Handlebars templates (``{{#if}}``, ``{{get}}``, ``{{ifEquals}}``: apps/cronium-app/src/lib/
    template-processor.ts:40-68) over a run under way (``status`` ``running``) and then the run's input is
    laid over the rendered parameters, itself never rendered
    (apps/cronium-app/src/lib/scheduler/tool-action-executor.ts:315-344)."""
    slack = slack_tool(monkeypatch, receiver)
    discord = discord_tool(monkeypatch, receiver)
    text = (
        '{{#if cronium.input.urgent}}URGENT: {{/if}}build {{get cronium.input "build.id" "none"}} '
        '{{#ifEquals cronium.event.status "running"}}is being announced{{else}}ended{{/ifEquals}} by '
        "{{cronium.event.name}}"
    )
    slack_event = tool_event(
        factory, "slack", "send-message", slack, {"text": text, "channel": "#general"}, name="Announce"
    )
    discord_event = tool_event(
        factory, "discord", "send-message", discord, {"content": text, "username": "cronium"}, name="Announce"
    )
    module = factory.load()
    conf = {"urgent": True, "build": {"id": "b-9"}, "channel": "#ops-{{cronium.event.name}}"}
    slack_run = factory.run(module, slack_event, conf)
    discord_run = factory.run(
        module, discord_event, {"build": {"id": "b-10"}, "username": "{{cronium.event.name}} bot"}
    )
    for result in (slack_run, discord_run):
        assert result.state == "success", result.log_text()[-3000:]
    by_path = {r.path: r.json() for r in receiver.requests}
    assert by_path[SLACK_PATH] == {
        "text": "URGENT: build b-9 is being announced by Announce",
        "channel": "#ops-{{cronium.event.name}}",
    }
    assert by_path["/api/webhooks/42/discord-token"] == {
        "content": "build b-10 is being announced by Announce",
        "username": "{{cronium.event.name}} bot",
    }
    assert slack_run.xcom("run")["actionId"] == "slack-send-message"
    assert discord_run.xcom("run")["actionId"] == "discord-send-message"
    assert slack_run.xcom("run")["parameters"]["channel"] == "#ops-{{cronium.event.name}}"


# -- a tool is used only under its own type, and only by events of its owner ----------------------------
# Cronium keeps each tool credential under its user (apps/cronium-app/src/shared/schema.ts:495-499,
# ``tool_credentials.user_id`` not null) and hands a tool action only a tool of the event's owner
# (apps/cronium-app/src/lib/tools/credential-cache.ts:205: ``tool.userId !== userId`` -> not found).
def test_an_event_cannot_send_through_another_owners_slack_tool(
    factory: Factory, receiver: HttpReceiver, monkeypatch
) -> None:
    url = f"{receiver.url}{SLACK_PATH}"
    theirs = tool(monkeypatch, {"conn_type": "slackwebhook", "password": url, "extra": json.dumps({"owner": "bob"})})
    mine = tool(monkeypatch, {"conn_type": "slackwebhook", "password": url, "extra": json.dumps({"owner": "alice"})})
    steal = tool_event(factory, "slack", "slack-send-message", theirs, {"text": "from alice"}, userId="alice")
    own = tool_event(factory, "slack", "slack-send-message", mine, {"text": "alice's own"}, userId="alice")
    module = factory.load()
    refused = factory.run(module, steal)
    assert refused.state == "failed"
    assert (
        f"tool connection cronium_tool_{theirs} is a slack tool of owner bob; event {steal['id']} "
        "(owner alice) asked for it as slack" in refused.log_text()
    )
    assert slack_texts(receiver) == []  # nothing reached bob's Slack
    assert factory.run(module, own).state == "success"
    assert slack_texts(receiver) == ["alice's own"]


def alices_smtp_tool_at(receiver: HttpReceiver, monkeypatch) -> int:
    """Alice's SMTP tool, its host and port the receiver's: were it used as a webhook, the request (with its
    login and password as Basic auth) would land there."""
    port = int(receiver.url.rsplit(":", 1)[1])
    fields = {"host": "127.0.0.1", "port": port, "login": "mailer", "password": "smtp-s3cret"}
    return tool(monkeypatch, {"conn_type": "smtp", **fields, "extra": json.dumps({"owner": "alice"})})


def test_an_smtp_tool_named_as_a_webhook_sends_no_http_request(
    factory: Factory, receiver: HttpReceiver, monkeypatch
) -> None:
    mail = alices_smtp_tool_at(receiver, monkeypatch)
    event = tool_event(factory, "webhook", "send-webhook", mail, {"kind": "ping"}, userId="alice")
    result = factory.run(factory.load(), event)
    assert [r.headers.get("Authorization") for r in receiver.requests] == []  # no request, so no SMTP login sent
    assert result.state == "failed"
    assert (
        f"tool connection cronium_tool_{mail} is a email tool of owner alice; event {event['id']} "
        "(owner alice) asked for it as webhook" in result.log_text()
    )


def test_a_tool_connection_without_owner_is_shared_only_while_the_records_have_one_owner(
    factory: Factory, receiver: HttpReceiver, monkeypatch
) -> None:
    """A connection made by hand before owners were recorded keeps working where every event has one
    owner; once the records name two owners it is refused (whose would it be?), naming the way out."""
    shared = slack_tool(monkeypatch, receiver)
    first = tool_event(factory, "slack", "slack-send-message", shared, {"text": "one owner"}, userId="alice")
    assert factory.run(factory.load(), first).state == "success"
    second = tool_event(factory, "slack", "slack-send-message", shared, {"text": "two owners"}, userId="bob")
    module = factory.load()
    refused = factory.run(module, second)
    assert refused.state == "failed"
    assert f"tool connection cronium_tool_{shared} records no owner" in refused.log_text()
    assert slack_texts(receiver) == ["one owner"]


def test_a_send_message_action_cannot_use_another_owners_tool(
    factory: Factory, receiver: HttpReceiver, monkeypatch
) -> None:
    """alice's event, through her own webhook tool, with a SEND_MESSAGE action naming bob's Slack tool."""
    bobs = tool(
        monkeypatch,
        {"conn_type": "slackwebhook", "password": f"{receiver.url}{SLACK_PATH}", "extra": json.dumps({"owner": "bob"})},
    )
    hers = tool(
        monkeypatch,
        {
            "conn_type": "http",
            "host": f"{receiver.url}/hooks/generic",
            "extra": json.dumps({"tool_type": "webhook", "owner": "alice"}),
        },
    )
    event = tool_event(
        factory,
        "webhook",
        "send-webhook",
        hers,
        {"kind": "ping"},
        userId="alice",
        successEvents=[{"type": "SEND_MESSAGE", "toolId": bobs, "message": "from alice"}],
    )
    result = factory.run(factory.load(), event)
    assert result.task_states["run"] == "success"
    assert result.task_states["on_success_0"] == "failed"
    assert (
        f"tool connection cronium_tool_{bobs} is a slack tool of owner bob; event {event['id']} "
        "(owner alice) asked for it as slack" in result.log_text()
    )
    assert slack_texts(receiver) == []
    [sent] = [r for r in receiver.requests if r.path == "/hooks/generic"]
    assert "owner" not in {k.lower() for k in sent.headers}  # the provider's extras are not headers


@pytest.mark.docker
def test_an_in_script_action_cannot_use_another_owners_tool_or_another_type(
    receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from tests.support.airflow_run import run_dag
    from tests.test_script_events import script_dag

    bobs = tool(
        monkeypatch,
        {"conn_type": "slackwebhook", "password": f"{receiver.url}{SLACK_PATH}", "extra": json.dumps({"owner": "bob"})},
    )
    mail = alices_smtp_tool_at(receiver, monkeypatch)
    script = (
        f'cronium.execute_tool_action("slack", "slack-send-message", {{"toolId": {bobs}, "text": "hi bob"}})\n'
        f'cronium.execute_tool_action("webhook", "send-webhook", {{"toolId": {mail}, "kind": "ping"}})\n'
    )
    dag, _ = script_dag("PYTHON", script, event={"id": 77, "userId": "alice"})
    result = run_dag(dag, capfd=capfd)
    assert receiver.requests == []
    actions = result.xcom("run", "actions")
    assert [a["status"] for a in actions] == ["FAILURE", "FAILURE"]
    assert (
        f"tool connection cronium_tool_{bobs} is a slack tool of owner bob; event 77 (owner alice)"
        in actions[0]["error"]
    )
    assert (
        f"tool connection cronium_tool_{mail} is a email tool of owner alice; event 77 (owner alice) asked for "
        "it as webhook" in actions[1]["error"]
    )
    assert result.state == "failed"


# -- tool ids and tool connections ----------------------------------------------------------------------
def test_a_tool_id_that_is_no_plain_id_is_refused_by_validation(tmp_path: Path) -> None:
    """``cronium_tool_/../smtp_default`` would reach ``smtp_default`` through the Execution API's URL."""
    from cronium_provider.records.validation import load_records

    send = {"to": "a@b.c", "subject": "s", "body": "b"}
    (tmp_path / "e.json").write_text(
        json.dumps(
            {
                "events": [
                    {
                        "id": 12,
                        "name": "mail",
                        "type": "TOOL_ACTION",
                        "toolActionConfig": {
                            "toolType": "email",
                            "actionId": "send-email",
                            "toolId": "/../smtp_default",
                            "parameters": send,
                        },
                    },
                    {
                        "id": 13,
                        "name": "shell",
                        "type": "BASH",
                        "content": "true",
                        "successEvents": [{"type": "SEND_MESSAGE", "toolId": "a/b", "message": "hi"}],
                    },
                    {
                        "id": 14,
                        "name": "honest",
                        "type": "TOOL_ACTION",
                        "toolActionConfig": {"toolType": "email", "actionId": "send-email", "toolId": 3},
                        "successEvents": [{"type": "SEND_MESSAGE", "toolId": "slack-main_2", "message": "hi"}],
                    },
                ]
            }
        )
    )
    records = load_records([tmp_path])
    messages = sorted(str(e) for e in records.errors)
    assert len(messages) == 2, messages
    assert "e.json: event 12: field toolActionConfig.toolId: tool id '/../smtp_default' is refused" in messages[0]
    assert "e.json: event 13: field successEvents[0].toolId: tool id 'a/b' is refused" in messages[1]
    assert "a positive integer or 1 to 64 of A-Z a-z 0-9 _ -" in messages[0]
    assert list(records.events) == [14]


@pytest.mark.parametrize("tool_id", ["/../smtp_default", "slack/x", 0, -3, "x" * 65])
def test_an_operator_written_with_a_path_as_tool_id_is_refused_when_built(tool_id: object) -> None:
    from cronium_provider.naming import InvalidToolId
    from cronium_provider.operators.conditional_actions import CroniumSendMessageOperator
    from cronium_provider.operators.tool_action import CroniumToolActionOperator

    with pytest.raises(InvalidToolId, match=r"tool id .* is refused: a tool id is a positive integer or 1 to 64"):
        CroniumToolActionOperator(task_id="t", tool_type="email", tool_id=tool_id)
    with pytest.raises(InvalidToolId, match=r"is refused"):
        CroniumSendMessageOperator(task_id="m", tool_id=tool_id, message="hi")


@pytest.mark.docker
def test_an_in_script_action_with_a_path_as_tool_id_fails_before_any_connection_is_read(
    receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], airflow_db: Path
) -> None:
    from tests.support.airflow_run import run_dag
    from tests.test_script_events import script_dag

    # the connection the path would reach: a webhook on the receiver, so any use of it shows there
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        json.dumps(
            {
                "conn_type": "http",
                "host": f"{receiver.url}/hooks/generic",
                "extra": json.dumps({"tool_type": "webhook"}),
            }
        ),
    )
    script = 'cronium.execute_tool_action("webhook", "send-webhook", {"toolId": "/../smtp_default", "kind": "x"})\n'
    dag, _ = script_dag("PYTHON", script, event={"id": 78, "userId": "alice"})
    result = run_dag(dag, capfd=capfd)
    assert receiver.requests == []
    [action] = result.xcom("run", "actions")
    assert action["status"] == "FAILURE"
    assert "tool id '/../smtp_default' is refused" in action["error"], action
    assert result.state == "failed"


def test_a_connection_of_no_tool_type_is_refused_and_sees_no_request(
    factory: Factory, receiver: HttpReceiver, monkeypatch
) -> None:
    """An SSH connection is no webhook tool: its key and password never go out as headers or basic auth."""
    port = int(receiver.url.rsplit(":", 1)[1])
    ssh = tool(
        monkeypatch,
        {
            "conn_type": "ssh",
            "host": "127.0.0.1",
            "port": port,
            "login": "root",
            "password": "sshpw",
            "extra": json.dumps({"private_key": "-----BEGIN OPENSSH PRIVATE KEY-----XYZ"}),
        },
    )
    bare_http = tool(monkeypatch, {"conn_type": "http", "host": f"{receiver.url}/hooks/generic"})
    module_events = [
        tool_event(factory, "webhook", "send-webhook", ssh, {"kind": "ping"}),
        tool_event(factory, "webhook", "send-webhook", bare_http, {"kind": "ping"}),
    ]
    module = factory.load()
    first, second = (factory.run(module, event) for event in module_events)
    assert receiver.requests == []
    assert first.state == "failed" and second.state == "failed"
    assert f"connection cronium_tool_{ssh} is of type ssh, which is no Cronium tool" in first.log_text(), (
        first.log_text()[-3000:]
    )
    assert f'connection cronium_tool_{bare_http} is of type http without extra "tool_type"' in second.log_text()


# -- the run's log in its messages: cronium.event.output and error ---------------------------------------
@pytest.mark.docker
@pytest.mark.parametrize("mode", ["attached", "deferred"])
def test_a_failure_message_carries_the_scripts_stdout(
    factory: Factory, receiver: HttpReceiver, monkeypatch, mode: str
) -> None:
    """``{{cronium.event.output}}`` is the run's output as Cronium logs it: the script's stdout, whether the
    run failed or not (apps/cronium-app/src/lib/scheduler/event-handlers.ts:43-59, 89-100, from the log the
    job's completion writes: apps/cronium-app/src/app/api/internal/jobs/[jobId]/complete/route.ts:79-114),
    not ``No output available``; a failed run's ``{{cronium.event.error}}`` is its stderr, a successful run's
    stderr follows its stdout after ``--- STDERR ---`` (complete/route.ts:86-103). A masked secret the
    script printed stays masked. The same when the task defers while the script runs."""
    if mode == "deferred":
        monkeypatch.setenv("AIRFLOW__CRONIUM__DEFERRABLE", "True")
    slack = slack_tool(monkeypatch, receiver)
    secret = f"tok-{uuid.uuid4().hex}"
    failed = factory.event(
        name="Load",
        content='echo "processed 42 rows"; exit 1',
        failEvents=[{"type": "SEND_MESSAGE", "toolId": slack, "message": "Failed: {{cronium.event.output}}"}],
    )
    broken = factory.event(
        name="Copy",
        content='echo "copied 3 files"; echo "disk full on /data" >&2; exit 2',
        failEvents=[{"type": "SEND_MESSAGE", "toolId": slack, "message": "Error: {{cronium.event.error}}"}],
    )
    warned = factory.event(
        name="Sync",
        envVars=[{"key": "API_TOKEN", "value": secret}],
        content='echo "synced with $API_TOKEN"; echo "2 warnings" >&2',
        successEvents=[{"type": "SEND_MESSAGE", "toolId": slack, "message": "{{{cronium.event.output}}}"}],
    )
    module = factory.load()
    texts = []
    for event in (failed, broken, warned):
        result = factory.run(module, event)
        assert [s for t, s in result.task_states.items() if t.startswith("on_")] == ["success"], result.log_text()[
            -3000:
        ]
        texts.append(slack_texts(receiver)[-1])
        assert ("Deferred: container" in result.log_text()) is (mode == "deferred")
    assert texts == [
        "Failed: processed 42 rows",
        "Error: disk full on /data",
        "synced with ***\n--- STDERR ---\n2 warnings",
    ]
    assert secret not in json.dumps(result.xcoms)
    assert result.xcom("run", "stdout") == "synced with ***" and result.xcom("run", "stderr") == "2 warnings"


@pytest.mark.docker
def test_the_run_log_in_xcom_keeps_the_end_of_a_long_output(factory: Factory) -> None:
    """Cronium keeps a run's whole output; the run's ``stdout`` XCom keeps its last 64 KiB, after a line
    saying how much was cut, so a chatty script cannot grow the metadata database."""
    event = factory.event(content='for i in $(seq 1 20000); do echo "line $i of the load"; done')
    module = factory.load()
    result = factory.run(module, event)
    assert result.state == "success", result.log_text()[-3000:]
    stdout = result.xcom("run", "stdout")
    first, _, rest = stdout.partition("\n")
    assert re.fullmatch(r"\[\.\.\. \d+ earlier bytes cut\]", first), first
    assert rest.endswith("line 20000 of the load") and len(rest.encode()) <= 64 * 1024


def test_a_tool_action_events_result_has_cronium_shape_and_is_its_output(
    factory: Factory, receiver: HttpReceiver, monkeypatch
) -> None:
    """A TOOL_ACTION event's result is Cronium's ``{actionId, actionName, executionTime, result, parameters,
    timestamp}``: ``executionTime`` in milliseconds, ``result`` the action's own object, Slack's
    ``{"ok": true}`` (apps/cronium-app/src/lib/scheduler/tool-action-executor.ts:413-436;
    apps/cronium-app/src/tools/plugins/slack/actions/send-message.ts:224-233), Teams' ``{"success": true}``
    (teams/actions/send-message.ts:295). Its output, as Cronium logs it, is that result as indented JSON
    (tool-action-executor.ts:491-492): what its success action's ``{{cronium.event.output}}`` prints."""
    slack = slack_tool(monkeypatch, receiver)
    teams = tool(
        monkeypatch,
        {"conn_type": "http", "host": f"{receiver.url}/teams/hook", "extra": json.dumps({"tool_type": "teams"})},
    )
    event = tool_event(
        factory,
        "slack",
        "slack-send-message",
        slack,
        {"text": "hello"},
        successEvents=[{"type": "SEND_MESSAGE", "toolId": slack, "message": "{{{cronium.event.output}}}"}],
    )
    card = tool_event(factory, "teams", "send-message", teams, {"message": "hi"})
    module = factory.load()
    started = time.monotonic()
    result = factory.run(module, event)
    took_ms = (time.monotonic() - started) * 1000
    assert result.state == "success", result.log_text()[-3000:]
    out = result.xcom("run")
    assert out["result"] == {"ok": True}
    assert (out["actionId"], out["actionName"]) == ("slack-send-message", "Send Message")
    assert isinstance(out["executionTime"], int) and 0 < out["executionTime"] < took_ms
    assert out["timestamp"].endswith("Z")
    assert slack_texts(receiver) == ["hello", json.dumps(out, indent=2)]
    teams_out = factory.run(module, card).xcom("run")
    assert teams_out["result"] == {"success": True} and isinstance(teams_out["executionTime"], int)


# -- rich payloads: Slack blocks, Discord embeds, Teams sections ----------------------------------------
def test_blocks_and_embeds_given_as_json_text_are_sent_as_lists(
    factory: Factory, receiver: HttpReceiver, monkeypatch
) -> None:
    """Slack's ``blocks`` and Discord's ``embeds`` are JSON text in Cronium's forms, parsed before sending: a
    list, or an object holding the list (apps/cronium-app/src/tools/plugins/slack/actions/send-message.ts:16-19,
    170-184; apps/cronium-app/src/tools/plugins/discord/actions/send-message.ts:13-16, 166-183). The receiver
    gets a JSON array, with the templates inside rendered."""
    slack = slack_tool(monkeypatch, receiver)
    discord = discord_tool(monkeypatch, receiver)
    blocks = json.dumps([{"type": "section", "text": {"type": "mrkdwn", "text": "*{{cronium.event.name}}* done"}}])
    embeds = json.dumps({"embeds": [{"title": "{{cronium.event.name}}", "color": 3066993}]})
    events = [
        tool_event(factory, "slack", "slack-send-message", slack, {"text": "done", "blocks": blocks}, name="Load"),
        tool_event(factory, "discord", "discord-send-message", discord, {"embeds": embeds}, name="Deploy"),
    ]
    module = factory.load()
    for event in events:
        result = factory.run(module, event)
        assert result.state == "success", result.log_text()[-3000:]
    by_path = {r.path: r.json() for r in receiver.requests}
    assert by_path[SLACK_PATH] == {
        "text": "done",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*Load* done"}}],
    }
    assert by_path["/api/webhooks/42/discord-token"] == {"embeds": [{"title": "Deploy", "color": 3066993}]}


def test_blocks_that_are_no_json_fail_the_action_and_send_nothing(
    factory: Factory, receiver: HttpReceiver, monkeypatch
) -> None:
    """Text that is no JSON in ``blocks`` is refused with Cronium's words, ``Failed to parse blocks JSON``,
    and nothing is sent (slack/actions/send-message.ts:190-194). Cronium's action then returns
    ``{ok: false}`` as a success (:237-247); the provider fails the action, as Cronium's form promises a
    delivered message or an error."""
    slack = slack_tool(monkeypatch, receiver)
    event = tool_event(factory, "slack", "slack-send-message", slack, {"text": "x", "blocks": "[{not json"})
    module = factory.load()
    result = factory.run(module, event)
    assert result.state == "failed"
    assert "slack-send-message 'blocks': Failed to parse blocks JSON" in result.log_text(), result.log_text()[-3000:]
    assert receiver.requests == []


def test_teams_sections_actions_and_webhook_url_are_honoured(
    factory: Factory, receiver: HttpReceiver, monkeypatch
) -> None:
    """Teams' ``send-message`` posts Cronium's message card to the action's ``webhookUrl``: the message as the
    first section, then ``sections``, and ``potentialAction`` as given
    (apps/cronium-app/src/tools/plugins/teams/actions/send-message.ts:6-66, 162-234, 263)."""
    teams = tool(
        monkeypatch,
        {"conn_type": "http", "host": f"{receiver.url}/teams/hook", "extra": json.dumps({"tool_type": "teams"})},
    )
    params = {
        "webhookUrl": f"{receiver.url}/teams/elsewhere",
        "message": "Build {{cronium.input.build}} done",
        "sections": [{"activityTitle": "CI", "facts": [{"name": "Status", "value": "{{cronium.input.status}}"}]}],
        "potentialAction": [{"@type": "OpenUri", "name": "View", "targets": [{"os": "default", "uri": "https://x"}]}],
    }
    event = tool_event(factory, "teams", "send-message", teams, params)
    module = factory.load()
    result = factory.run(module, event, {"build": 7, "status": "green"})
    assert result.state == "success", result.log_text()[-3000:]
    [request] = receiver.requests
    assert request.path == "/teams/elsewhere"
    assert request.json() == {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "themeColor": "0078D4",
        "summary": "Build 7 done",
        "sections": [
            {"text": "Build 7 done"},
            {"activityTitle": "CI", "facts": [{"name": "Status", "value": "green"}]},
        ],
        "potentialAction": [{"@type": "OpenUri", "name": "View", "targets": [{"os": "default", "uri": "https://x"}]}],
    }


def test_a_teams_webhook_url_off_the_connections_host_is_refused(
    factory: Factory, receiver: HttpReceiver, monkeypatch
) -> None:
    """A record, a run's input (a webhook's body, an upstream script's output) or a template sets Teams'
    ``webhookUrl``, and is trusted less than the tool connection's owner: a ``webhookUrl`` that is not on the
    connection's own scheme, host and port (the api-server, a metadata address, a loopback service: here
    another server on loopback) is refused before anything is sent, naming the parameter and the
    connection, however the URL is dressed up (a user part naming the connection's host, a backslash)."""
    teams = tool(
        monkeypatch,
        {"conn_type": "http", "host": f"{receiver.url}/teams/hook", "extra": json.dumps({"tool_type": "teams"})},
    )
    internal = HttpReceiver(routes={"POST /api/v2/dags": lambda r: text_answer("1")}).start()
    try:
        own = receiver.url.removeprefix("http://")
        other = internal.url.removeprefix("http://")
        urls = [
            f"{internal.url}/api/v2/dags",
            f"http://{own}@{other}/api/v2/dags",
            f"http://{other}\\@{own}/api/v2/dags",
            f"http://localhost:{other.rpartition(':')[2]}/api/v2/dags",
        ]
        events = [tool_event(factory, "teams", "send-message", teams, {"message": "hi", "webhookUrl": u}) for u in urls]
        by_input = tool_event(factory, "teams", "send-message", teams, {"message": "hi"})
        module = factory.load()
        results = [factory.run(module, e) for e in events]
        results.append(factory.run(module, by_input, {"webhookUrl": f"{internal.url}/api/v2/dags"}))
        for result in results:
            assert result.state == "failed", result.log_text()[-3000:]
            assert "send-message 'webhookUrl'" in result.log_text() and "is refused" in result.log_text()
            assert f"tool connection cronium_tool_{teams} ({receiver.url})" in result.log_text()
        assert internal.requests == [] and receiver.requests == []
    finally:
        internal.stop()


def test_blocks_json_text_too_large_or_too_deep_is_refused_and_nothing_sent(
    factory: Factory, receiver: HttpReceiver, monkeypatch
) -> None:
    """Slack's ``blocks`` (and Discord's ``embeds``) as JSON text come from records, run inputs and scripts'
    outputs (up to 10 MB): text above 256 KiB, or nesting more than 64 levels, fails the action naming the
    parameter, and nothing is sent (no list of a million items parsed in the worker, no RecursionError)."""
    slack = slack_tool(monkeypatch, receiver)
    huge = "[" + ",".join(['{"type": "divider"}'] * 20000) + "]"
    deep = "[" * 20000 + "]" * 20000
    events = [tool_event(factory, "slack", "slack-send-message", slack, {"blocks": b}) for b in (huge, deep)]
    module = factory.load()
    big, nested = (factory.run(module, e) for e in events)
    assert big.state == "failed" and nested.state == "failed"
    assert "slack-send-message 'blocks': blocks JSON is 400001 bytes, above the limit of 262144" in big.log_text()
    assert "slack-send-message 'blocks': blocks JSON nests more than 64 levels" in nested.log_text(), nested.log_text()[
        -3000:
    ]
    assert receiver.requests == []


def test_an_http_request_events_output_is_its_answer(factory: Factory, receiver: HttpReceiver, monkeypatch) -> None:
    """An HTTP_REQUEST event's output, in the messages it fires, is the answer's text: what Cronium's HTTP
    executor hands back (apps/cronium-app/src/lib/scheduler/http-executor.ts:93-102)."""
    slack = slack_tool(monkeypatch, receiver)
    event = factory.event(
        type="HTTP_REQUEST",
        httpMethod="GET",
        httpUrl=f"{receiver.url}/report",
        successEvents=[{"type": "SEND_MESSAGE", "toolId": slack, "message": "Report: {{cronium.event.output}}"}],
    )
    module = factory.load()
    result = factory.run(module, event)
    assert result.state == "success", result.log_text()[-3000:]
    assert slack_texts(receiver) == ["Report: 3 new orders"]
