"""``cronium-airflow doctor``: what would fail before it fails, each with its fix, and the notes on where a record
behaves differently from Cronium; and the progress display of ``validate`` on a terminal.

The command is the installed console script, against the session's Airflow database; connections are made as a
person makes them (``airflow connections add``, ``cronium-airflow servers sync``), the Docker daemon is the real
one. ``HOME`` is the test's own folder, so the only known_hosts the SSH hook would read is the test's."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cronium_provider.doctor.environment import environment_findings
from cronium_provider.doctor.findings import Finding, Needs
from cronium_provider.doctor.records import needs, record_notes
from cronium_provider.records.validation import load_records
from cronium_provider.settings import CroniumSettings
from tests.conftest import RUNTIME_IMAGE, airflow_env, venv_bin
from tests.support.terminal import run_on_terminal
from tests.test_records import bash_event, write

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPersonsHostKeyPersonsHostKeyPersonsHostKe"
ABSENT_IMAGE = "cronium-runtime:doctor-absent"
TOOL_CONN, SERVER_CONN = "cronium_tool_4701", "cronium_server_4702"


def slack_event(event_id: int, tool_id: int) -> dict[str, Any]:
    config = {"toolType": "slack", "actionId": "slack-send-message", "toolId": tool_id, "parameters": {"text": "x"}}
    return {**bash_event(event_id), "type": "TOOL_ACTION", "content": None, "toolActionConfig": config}


def http_event(event_id: int, **fields: Any) -> dict[str, Any]:
    return {**bash_event(event_id), "type": "HTTP_REQUEST", "httpUrl": "http://127.0.0.1:9/x", **fields}


def airflow(*args: str) -> None:
    proc = subprocess.run([venv_bin("airflow"), *args], env=airflow_env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def cronium(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv_bin("cronium-airflow"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )


def problems(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(("error: ", "warning: "))]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    (folder / ".ssh").mkdir(parents=True)
    return folder


@pytest.fixture
def cleanup() -> Any:
    names: list[str] = []
    yield names
    for name in names:
        subprocess.run([venv_bin("airflow"), "connections", "delete", name], env=airflow_env(), capture_output=True)
        subprocess.run([venv_bin("airflow"), "pools", "delete", name], env=airflow_env(), capture_output=True)


def doctor_env(home: Path, image: str) -> dict[str, str]:
    return airflow_env(
        HOME=str(home),
        AIRFLOW__CRONIUM__IMAGE=image,
        AIRFLOW__CRONIUM__DOCKER_URL=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"),
    )


@pytest.mark.airflow
@pytest.mark.docker
def test_three_problems_each_with_its_fix_then_none_once_fixed(
    tmp_path: Path, home: Path, airflow_db: Path, docker_client: Any, cleanup: list[str]
) -> None:
    """A script in a container whose runtime image is absent, a tool action whose connection is missing and a
    remote script on a server whose host key nobody knows: exactly those three, each with the command or
    setting that fixes it, exit 1; once fixed as the lines say, exit 0."""
    cleanup += [TOOL_CONN, SERVER_CONN]
    folder = tmp_path / "records"
    folder.mkdir()
    write(folder, "local.json", bash_event(4700))
    write(folder, "slack.json", slack_event(4701, 4701))
    write(folder, "server.json", {"kind": "server", "id": 4702, "name": "box", "address": "127.0.0.1", "port": 2299})
    write(folder, "remote.json", bash_event(4703, runLocation="REMOTE", serverId=4702))
    synced = cronium("servers", "sync", str(folder), env=doctor_env(home, ABSENT_IMAGE))
    assert synced.returncode == 0, synced.stdout + synced.stderr

    proc = cronium("doctor", str(folder), env=doctor_env(home, ABSENT_IMAGE))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    found = problems(proc.stdout)
    assert len(found) == 3, proc.stdout
    image, tool, server = (
        next(line for line in found if word in line) for word in (ABSENT_IMAGE, TOOL_CONN, SERVER_CONN)
    )
    assert image.startswith(f"error: runtime image {ABSENT_IMAGE}: is not present")
    assert "event 4700" in image and f"(fix: cronium-airflow runtime-image build {ABSENT_IMAGE}" in image
    assert "[cronium] image" in image
    assert tool.startswith(f"error: connection {TOOL_CONN}: does not exist; the slack tool of event 4701")
    assert f"(fix: airflow connections add {TOOL_CONN} --conn-type slackwebhook" in tool
    assert server.startswith(f"error: connection {SERVER_CONN}: the host key of 127.0.0.1:2299 is unknown")
    assert "(fix: cronium-airflow servers sync RECORDS_DIR --known-hosts FILE" in server
    assert proc.stdout.splitlines()[-1].startswith("3 error(s), 0 warning(s), ")

    airflow("connections", "add", TOOL_CONN, "--conn-type", "slackwebhook", "--conn-host", "hooks.slack.com")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:2299 {HOST_KEY}\n")
    resynced = cronium(
        "servers", "sync", str(folder), "--known-hosts", str(known_hosts), env=doctor_env(home, RUNTIME_IMAGE)
    )
    assert resynced.returncode == 0, resynced.stdout + resynced.stderr
    fixed = cronium("doctor", str(folder), env=doctor_env(home, RUNTIME_IMAGE))
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert problems(fixed.stdout) == []
    assert "note: event 4700: BASH script in a container" in fixed.stdout  # notes stay, and never fail the run


@pytest.mark.airflow
def test_json_shape_a_wrong_connection_type_and_a_left_out_record(
    tmp_path: Path, home: Path, airflow_db: Path, cleanup: list[str]
) -> None:
    """``--json``: the findings with their fields and the counts. An SSH connection where a Slack tool
    belongs and a Discord one used as a Slack tool are errors naming the type; a record that fails
    validation is an error naming its file, record and field, as ``validate`` says it."""
    cleanup += ["cronium_tool_4711", "cronium_tool_4712"]
    folder = tmp_path / "records"
    folder.mkdir()
    write(folder, "a.json", slack_event(4711, 4711))
    write(folder, "b.json", slack_event(4712, 4712))
    write(folder, "bad.json", {**http_event(4713), "timeoutUnit": "WEEKS"})
    airflow("connections", "add", "cronium_tool_4711", "--conn-type", "ssh", "--conn-host", "127.0.0.1")
    airflow("connections", "add", "cronium_tool_4712", "--conn-type", "discord", "--conn-host", "discord.com")

    proc = cronium("doctor", str(folder), "--json", env=doctor_env(home, RUNTIME_IMAGE))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert {"findings", "errors", "warnings", "notes", "records_dir", "parse_seconds", "ok"} <= set(data)
    assert (data["errors"], data["warnings"], data["ok"], data["records_dir"]) == (3, 0, False, str(folder))
    assert data["notes"] == sum(f["severity"] == "note" for f in data["findings"]) > 0
    assert all(set(f) == {"check", "severity", "subject", "message", "fix"} for f in data["findings"])
    errors = {f["subject"]: f for f in data["findings"] if f["severity"] == "error"}
    wrong_type = errors["connection cronium_tool_4711"]
    assert "is of type ssh, which is no Cronium tool" in wrong_type["message"]
    assert wrong_type["message"].endswith("; used by event 4711")
    assert wrong_type["fix"].startswith("airflow connections delete cronium_tool_4711, then airflow connections add")
    discord = errors["connection cronium_tool_4712"]
    assert "is a discord tool (type discord), but it is used as a slack tool by event 4712" in discord["message"]
    left_out = errors["event 4713"]
    assert left_out["check"] == "records"
    assert f"left out: {folder / 'bad.json'}: event 4713: field timeoutUnit: " in left_out["message"]
    assert "timeoutUnit" in left_out["fix"] and "cronium-airflow validate" in left_out["fix"]


@pytest.mark.airflow
def test_notes_never_change_the_exit_status(tmp_path: Path, home: Path, airflow_db: Path) -> None:
    """An HTTP event with retries: notes in the table's terms (Cronium never applies retries; its HTTP jobs
    have no handler), exit 0."""
    folder = tmp_path / "records"
    folder.mkdir()
    write(folder, "http.json", http_event(4720, retries=3))
    proc = cronium("doctor", str(folder), env=doctor_env(home, RUNTIME_IMAGE))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "note: event 4720: retries 3: a failed run is tried again up to 3 time(s), 30 s apart" in proc.stdout
    assert "never applies them" in proc.stdout
    assert "note: event 4720: HTTP_REQUEST: " in proc.stdout
    assert proc.stdout.splitlines()[-1].startswith("0 error(s), 0 warning(s), 2 note(s)")


def test_a_missing_records_folder_is_an_error_with_its_fix(tmp_path: Path, home: Path) -> None:
    proc = cronium("doctor", str(tmp_path / "nowhere"), env=doctor_env(home, RUNTIME_IMAGE))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"error: records folder {tmp_path / 'nowhere'}: does not exist" in proc.stdout
    assert "[cronium] records_dir" in proc.stdout


# -- the records half (no Airflow) ---------------------------------------------------------------------
def test_needs_name_what_the_records_need(tmp_path: Path) -> None:
    write(tmp_path, "local.json", bash_event(1, type="PYTHON"))
    write(tmp_path, "local2.json", bash_event(2))
    write(tmp_path, "slack.json", {**slack_event(3, 30), "userId": "u1"})
    write(tmp_path, "server.json", {"kind": "server", "id": 5, "name": "box", "address": "10.0.0.5"})
    always = [{"type": "SEND_MESSAGE", "toolId": 31, "message": "done"}]
    write(tmp_path, "remote.json", bash_event(4, runLocation="REMOTE", serverId=5, alwaysEvents=always))
    found = needs(load_records([tmp_path]), CroniumSettings())
    assert found.container_records == ["event 1", "event 2"]
    assert found.container_languages == {"PYTHON": ["event 1"], "BASH": ["event 2"]}
    assert found.tool_connections["cronium_tool_30"] == {
        "conn_type": "slackwebhook",
        "tool": "slack",
        "records": ["event 3"],
        "owners": {"event 3": "u1"},
        "shared": True,
    }
    assert found.tool_connections["cronium_tool_31"]["tool"] is None  # a message tool of any type
    assert found.servers == {
        "cronium_server_5": {"server_id": 5, "host": "10.0.0.5", "port": 22, "records": ["event 4"]}
    }
    assert found.pools == {"cronium_server_5": ["event 4"]}
    assert Needs.from_json(json.loads(json.dumps(found.to_json()))) == found


def test_record_notes_follow_the_differences_table(tmp_path: Path) -> None:
    write(tmp_path, "plain.json", http_event(1))
    write(tmp_path, "retries.json", http_event(2, retries=2, maxExecutions=5))
    message = [{"type": "SEND_MESSAGE", "toolId": 9, "message": "{{cronium.event.status}}"}]
    write(tmp_path, "always.json", http_event(3, alwaysEvents=message))
    notes = record_notes(load_records([tmp_path]), CroniumSettings())
    assert all(isinstance(n, Finding) and n.severity == "note" and n.check == "difference" for n in notes)
    by_event: dict[str, list[str]] = {}
    for note in notes:
        by_event.setdefault(note.subject, []).append(note.message)
    assert not any("retries" in m or "maxExecutions" in m for m in by_event["event 1"])
    assert any(
        m.startswith("retries 2: a failed run is tried again up to 2 time(s), 30 s apart") for m in by_event["event 2"]
    )
    limit = next(n for n in notes if n.subject == "event 2" and n.message.startswith("maxExecutions 5"))
    assert "cronium-airflow reset-counter 2" in limit.fix
    assert any(m.startswith("alwaysEvents[0]: the message gets the facts of the run") for m in by_event["event 3"])
    assert any(m.startswith("tool rate limits") for m in by_event["event 3"])


def test_the_image_note_names_debians_packages_only_for_the_runtime_image(tmp_path: Path) -> None:
    """The container note tells the runtime image's Debian package versions; for an image the person chose
    ([cronium] image_python here) it says the packages are that image's own, not versions it cannot know."""
    write(tmp_path, "py.json", bash_event(1, type="PYTHON", content="print(1)"))
    write(tmp_path, "sh.json", bash_event(2))
    records = load_records([tmp_path])
    settings = replace(CroniumSettings(), image_python="registry.local/team/python:3.12")

    def image_note(notes: list[Finding], subject: str) -> str:
        return next(n.message for n in notes if n.subject == subject and "script in a container" in n.message)

    default = record_notes(records, CroniumSettings())
    chosen = record_notes(records, settings)
    assert "requests 2.28" in image_note(default, "event 1") and "requests 2.28" in image_note(chosen, "event 2")
    python = image_note(chosen, "event 1")
    assert "the image is registry.local/team/python:3.12, an image of your choice" in python
    assert "requests 2.28" not in python


def _notes_by_record(folder: Path) -> dict[str, list[str]]:
    by_record: dict[str, list[str]] = {}
    for note in record_notes(load_records([folder]), CroniumSettings()):
        by_record.setdefault(note.subject, []).append(note.message)
    return by_record


def test_sdk_class_note_only_where_the_sdk_has_classes(tmp_path: Path) -> None:
    """Cronium's SDK classes are Python's and Node.js's (apps/runtime/runtime-helpers/python/cronium.py:43-60,
    291; nodejs/cronium.js:47-72), which need CRONIUM_EXECUTION_TOKEN; Bash's helper has none
    (runtime-helpers/bash/cronium.sh). On a server Cronium's runner writes only a ``cronium`` class of helper
    functions (apps/runner/cronium-runner/internal/helpers/discovery.go:54-66, 206-230): no Cronium() at all."""
    write(tmp_path, "bash.json", bash_event(1, content='echo "Cronium() rocks"'))
    write(tmp_path, "server.json", {"kind": "server", "id": 5, "name": "box", "address": "10.0.0.5"})
    remote = "import cronium\nc = cronium.Cronium()\n"
    write(tmp_path, "remote.json", bash_event(2, type="PYTHON", content=remote, runLocation="REMOTE", serverId=5))
    write(tmp_path, "local.json", bash_event(3, type="NODEJS", content="const c = new Cronium();"))
    notes = _notes_by_record(tmp_path)
    assert not any("SDK's classes" in m for m in notes.get("event 1", []))
    [on_server] = [m for m in notes["event 2"] if "SDK's classes" in m]
    assert "runner on a server has no such classes" in on_server and "runtime API" not in on_server
    [in_container] = [m for m in notes["event 3"] if "SDK's classes" in m]
    assert "runtime API" in in_container


def test_output_and_rate_limit_notes_only_for_messages_that_are_sent(tmp_path: Path) -> None:
    """A SEND_MESSAGE with no toolId or an empty message sends nothing, in Cronium as here
    (apps/cronium-app/src/lib/scheduler/event-handlers.ts:216-232): no output format, no rate limit applies.
    An always action's message gets no output in Cronium at all (event-handlers.ts:118-137, no execution data):
    the run-facts note says so, not the note comparing the output with Cronium's logged output
    (event-handlers.ts:43-59, 89-100, success and failure actions only)."""
    no_tool = [{"type": "SEND_MESSAGE", "message": "{{cronium.event.output}}"}]
    empty = [{"type": "SEND_MESSAGE", "toolId": 9, "message": ""}]
    write(tmp_path, "noop.json", bash_event(1, failEvents=no_tool, successEvents=empty))
    always = [{"type": "SEND_MESSAGE", "toolId": 9, "message": "{{cronium.event.output}}"}]
    write(tmp_path, "always.json", bash_event(2, alwaysEvents=always))
    write(tmp_path, "sent.json", bash_event(3, failEvents=always))
    notes = _notes_by_record(tmp_path)
    assert not any(m.startswith(("output:", "tool rate limits")) for m in notes.get("event 1", []))
    assert not any(m.startswith("output:") for m in notes["event 2"])
    assert any(m.startswith("alwaysEvents[0]: the message gets the facts of the run") for m in notes["event 2"])
    assert any(m.startswith("output:") for m in notes["event 3"])
    assert any(m.startswith("tool rate limits") for m in notes["event 3"])


def test_teams_webhook_url_note_names_what_each_action_does(tmp_path: Path) -> None:
    """Cronium's Teams send-card posts the card to its required webhookUrl
    (apps/cronium-app/src/tools/plugins/teams/actions/send-card.ts:103-107, 273, 323); the provider's send-card
    posts to the connection's URL and never reads webhookUrl (cronium_provider/tools/delivery.py send_teams), so
    the send-message note (on the connection's host, else refused) would be wrong for it."""
    other = "https://outlook.example/webhook/other"
    for event_id, action in ((1, "send-card"), (2, "send-message")):
        params = {"webhookUrl": other, "card": {"type": "AdaptiveCard"}, "message": "hi"}
        config = {"toolType": "teams", "actionId": action, "toolId": 7, "parameters": params}
        write(tmp_path, f"{action}.json", {**slack_event(event_id, 7), "toolActionConfig": config})
    notes = _notes_by_record(tmp_path)
    card = [m for m in notes["event 1"] if "webhookUrl" in m]
    assert card == [
        "toolActionConfig.parameters.webhookUrl: not used by send-card, the card goes to the connection's URL "
        "(Cronium posts the card to webhookUrl)"
    ]
    assert any("webhookUrl: sent to only when on the connection's own scheme" in m for m in notes["event 2"])


def test_blocks_note_only_for_json_text(tmp_path: Path) -> None:
    """Cronium's Slack ``blocks`` is text parsed as JSON, a parse error counted a success
    (apps/cronium-app/src/tools/plugins/slack/actions/send-message.ts:16-19, 170-194, 237-248); blocks given
    as a list are no text to fail parsing, so the note does not apply."""
    for event_id, blocks in ((1, [{"type": "divider"}]), (2, '[{"type": "divider"}]')):
        config = {"toolType": "slack", "actionId": "slack-send-message", "toolId": 7, "parameters": {"blocks": blocks}}
        write(tmp_path, f"blocks{event_id}.json", {**slack_event(event_id, 7), "toolActionConfig": config})
    notes = _notes_by_record(tmp_path)
    assert not any("parameters.blocks" in m for m in notes["event 1"])
    assert any("parameters.blocks: text that is no JSON fails" in m for m in notes["event 2"])


def test_a_scheduled_workflow_notes_its_runs_overlap(tmp_path: Path) -> None:
    """Cronium's workflow executor starts a run on every schedule slot, with no guard against the last one
    still running (apps/cronium-app/src/lib/workflow-executor.ts:157-160, executeWorkflow at :173-215 returns at
    once and runs in the background); the provider's workflow DAG overlaps up to [cronium] max_active_runs."""
    write(tmp_path, "event.json", bash_event(1))
    workflow = {
        "kind": "workflow",
        "name": "nightly",
        "status": "ACTIVE",
        "triggerType": "SCHEDULE",
        "scheduleNumber": 5,
        "scheduleUnit": "MINUTES",
        "nodes": [{"id": "n1", "type": "eventNode", "data": {"eventId": 1}}],
        "edges": [],
    }
    write(tmp_path, "scheduled.json", {**workflow, "id": 20})
    write(tmp_path, "manual.json", {**workflow, "id": 21, "triggerType": "MANUAL"})
    notes = _notes_by_record(tmp_path)
    assert any(
        m.startswith("schedule: runs overlap up to [cronium] max_active_runs (16)") for m in notes["workflow 20"]
    )
    assert "workflow 21" not in notes


def test_an_event_run_only_by_a_workflow_gets_no_notes_of_its_own_dag(tmp_path: Path) -> None:
    """An event whose own DAG is left out (here: a bad schedule) still runs as a workflow's node; a node run
    follows the workflow, not the event's schedule (apps/cronium-app/src/lib/workflow-executor.ts:157-160 starts
    the workflow; the event's own slots are scheduler.ts:396-507's), and the provider counts maxExecutions only in
    the event's own DAG, so neither the maxExecutions note nor the overlap note applies to it."""
    bad_schedule = {"triggerType": "SCHEDULE", "customSchedule": "not a cron"}
    write(tmp_path, "capped.json", bash_event(1, maxExecutions=3, **bad_schedule))
    write(tmp_path, "overlapping.json", bash_event(2, **bad_schedule))
    nodes = [{"id": f"n{i}", "type": "eventNode", "data": {"eventId": i}} for i in (1, 2)]
    workflow = {"kind": "workflow", "id": 9, "name": "w", "status": "ACTIVE", "triggerType": "MANUAL"}
    write(tmp_path, "workflow.json", {**workflow, "nodes": nodes, "edges": []})
    records = load_records([tmp_path])
    assert set(records.node_only) == {1, 2}  # the events run, only as the workflow's nodes
    notes = _notes_by_record(tmp_path)
    assert any(m.startswith("BASH script in a container") for m in notes["event 1"])
    for event in ("event 1", "event 2"):
        assert not any(m.startswith(("maxExecutions", "schedule:")) for m in notes[event]), notes[event]


def test_environment_checks_never_raise_and_stay_quick(redis_url: str) -> None:
    """An unreachable Docker daemon and Redis are findings, within about a second; nothing is raised."""
    stopped = redis_url.rsplit(":", 1)[0] + ":1/0"
    settings = CroniumSettings(docker_url="tcp://127.0.0.1:1", resilience_store=stopped)
    wanted = Needs(container_records=["event 1"], tool_connections={})
    started = time.monotonic()
    found = environment_findings(wanted, settings)
    store = _store_findings(settings)
    assert time.monotonic() - started < 2.5
    assert [(f.check, f.severity) for f in found] == [("docker", "error")]
    assert "cannot be reached" in found[0].message and "[cronium] docker_url" in found[0].fix
    assert [(f.check, f.severity) for f in store] == [("resilience-store", "error")]
    assert "127.0.0.1:1" in store[0].message


def _store_findings(settings: CroniumSettings) -> list[Finding]:
    from cronium_provider.doctor.environment import _resilience_store

    return _resilience_store(settings)


# -- progress ------------------------------------------------------------------------------------------
def _many_records(folder: Path, count: int) -> None:
    folder.mkdir()
    for i in range(1, count + 1):
        write(folder, f"e{i}.json", http_event(i))


def test_validate_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    """On a terminal (stderr a pty) validate draws a progress bar; piped, stdout is what it always was and
    stderr stays empty."""
    folder = tmp_path / "records"
    _many_records(folder, 400)
    piped = subprocess.run(
        [venv_bin("cronium-airflow"), "validate", str(folder)], capture_output=True, text=True, timeout=120
    )
    assert piped.returncode == 0
    assert piped.stdout == "OK: 400 events, 0 workflows, 0 servers valid\n"
    assert piped.stderr == ""

    code, stdout, drawn = run_on_terminal([venv_bin("cronium-airflow"), "validate", str(folder)], os.environ)
    assert code == 0
    assert stdout == b"OK: 400 events, 0 workflows, 0 servers valid\n"  # the bar never reaches stdout
    assert b"reading records" in drawn
    assert b"/400" in drawn


# -- what a record file or a setting can make doctor print ----------------------------------------------
def test_record_file_names_can_neither_forge_nor_hide_finding_lines(tmp_path: Path, home: Path) -> None:
    """A record file whose name carries a newline and a terminal escape sequence (and one whose name is no
    UTF-8): each is one error line, its name's control characters written as escapes; --json keeps the names
    as they are."""
    folder = tmp_path / "records"
    folder.mkdir()
    forged = "x\nnote: all is well\x1b[2K\x1b[1A.json"
    (folder / forged).write_text("{bad")
    (folder / os.fsdecode(b"\xff\xfe.json")).write_text("{bad")
    write(folder, "http.json", http_event(4760))
    proc = cronium("doctor", str(folder), env=doctor_env(home, RUNTIME_IMAGE))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split(":", 1)[0] for line in lines[:-1]] == ["error", "error", "note"], proc.stdout
    assert "\x1b" not in proc.stdout and not any(line.startswith("note: all is well") for line in lines)
    assert "x\\nnote: all is well\\x1b[2K\\x1b[1A.json" in lines[0] + lines[1]
    assert lines[-1].startswith("2 error(s), 0 warning(s), 1 note(s)")

    data = json.loads(cronium("doctor", str(folder), "--json", env=doctor_env(home, RUNTIME_IMAGE)).stdout)
    assert any(forged in f["subject"] for f in data["findings"])


def test_a_docker_url_password_is_never_shown() -> None:
    """``[cronium] docker_url`` with a user and password: the finding names the daemon's address, never the
    password (the finding is shown on the terminal, in --json and in the web UI)."""
    settings = CroniumSettings(docker_url="tcp://admin:s3cret-pw@127.0.0.1:1")
    found = environment_findings(Needs(container_records=["event 1"]), settings)
    assert [(f.check, f.severity) for f in found] == [("docker", "error")]
    assert "127.0.0.1:1" in found[0].subject
    assert not any("s3cret-pw" in text for f in found for text in f.to_json().values())


def test_the_redis_check_stays_bounded_whatever_its_url_asks() -> None:
    """A resilience_store URL that asks for 30 s timeouts, on a loopback port that takes the connection and
    never answers: the finding still comes within the check's half second (plus slack)."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        url = f"redis://127.0.0.1:{port}/0?socket_timeout=30&socket_connect_timeout=30"
        started = time.monotonic()
        found = _store_findings(CroniumSettings(resilience_store=url))
        assert time.monotonic() - started < 3
    assert [(f.check, f.severity) for f in found] == [("resilience-store", "error")]
    assert f"127.0.0.1:{port}" in found[0].message


def test_doctor_progress_shows_a_folder_name_as_it_is(tmp_path: Path) -> None:
    """On a terminal, a records folder whose name is rich markup (``[/]``) or holds an escape sequence: doctor
    draws its progress and finishes (no MarkupError); the name's escape sequence reaches the terminal as text."""
    folder = tmp_path / "r[" / "]x[bold]\x1b[2J"  # the path reads r[/]x[bold]...
    folder.parent.mkdir()
    _many_records(folder, 3)
    env = doctor_env(tmp_path, RUNTIME_IMAGE)
    code, stdout, drawn = run_on_terminal([venv_bin("cronium-airflow"), "doctor", str(folder)], env)
    assert code == 0, stdout + drawn
    assert b"Traceback" not in drawn and b"\x1b[2J" not in drawn
    assert b"r[/]x[bold]\\x1b[2J" in drawn
    assert stdout.decode().splitlines()[-1].startswith("0 error(s), 0 warning(s), 3 note(s)")


def test_the_docker_check_stays_bounded_for_a_silent_ssh_daemon() -> None:
    """``docker_url`` ssh:// to a loopback port that takes the connection and never sends SSH's banner (the
    SSH client alone would wait 15 s): the Docker finding comes within a few seconds."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        settings = CroniumSettings(docker_url=f"ssh://cronium@127.0.0.1:{port}")
        started = time.monotonic()
        found = environment_findings(Needs(container_records=["event 1"]), settings)
        assert time.monotonic() - started < 5
    assert [(f.check, f.severity, f.subject) for f in found] == [
        ("docker", "error", f"Docker daemon at ssh://cronium@127.0.0.1:{port}")
    ]


def test_validate_writes_a_file_names_control_characters_as_escapes(tmp_path: Path) -> None:
    """validate's lines: a record file named with a newline and an escape sequence is one line, the name's
    control characters written as escapes, and no line of its own."""
    folder = tmp_path / "records"
    folder.mkdir()
    (folder / "x\nOK: 9 events\x1b[1A.json").write_text("{bad")
    proc = subprocess.run(
        [venv_bin("cronium-airflow"), "validate", str(folder)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and "x\\nOK: 9 events\\x1b[1A.json" in lines[0], proc.stdout
    assert lines[1].startswith("1 problem(s) found")


def test_plan_writes_a_record_names_control_characters_as_escapes(tmp_path: Path) -> None:
    """plan's text: an event named with a newline and an escape sequence is one line, its name's control
    characters written as escapes: no forged `error:` line, no escape sequence reaches the terminal."""
    folder = tmp_path / "records"
    folder.mkdir()
    name = "report\nerror: forged line\x1b[2K"
    (folder / "events.json").write_text(
        json.dumps({"events": [{"id": 1, "name": name, "type": "BASH", "content": "true"}]})
    )
    proc = subprocess.run(
        [venv_bin("cronium-airflow"), "plan", str(folder)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "\x1b" not in proc.stdout
    assert not any(line.startswith("error:") for line in proc.stdout.splitlines()), proc.stdout
    assert "report\\nerror: forged line\\x1b[2K" in proc.stdout.splitlines()[0]


@pytest.mark.airflow
def test_a_connection_variable_airflow_cannot_read_is_named_as_such(
    tmp_path: Path, home: Path, airflow_db: Path
) -> None:
    """An AIRFLOW_CONN_* variable that is set but is no connection Airflow can read: Airflow logs it and
    finds no connection; doctor says the variable is set and unreadable, and how to write it (not "does not
    exist", which would send the person to `airflow connections add` while the variable still wins)."""
    folder = tmp_path / "records"
    folder.mkdir()
    write(folder, "slack.json", slack_event(4711, 4711))
    write(folder, "server.json", {"kind": "server", "id": 4712, "name": "box", "address": "127.0.0.1", "port": 2299})
    write(folder, "remote.json", bash_event(4713, runLocation="REMOTE", serverId=4712))
    env = {
        **doctor_env(home, RUNTIME_IMAGE),
        "AIRFLOW_CONN_CRONIUM_TOOL_4711": '{"conn_type": "slackwebhook", "port": "not a port"',
        "AIRFLOW_CONN_CRONIUM_SERVER_4712": '{"conn_type": ["ssh"]}',
    }
    proc = cronium("doctor", str(folder), "--json", env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    found = {f["subject"]: f for f in json.loads(proc.stdout)["findings"] if f["severity"] == "error"}
    for conn_id in ("cronium_tool_4711", "cronium_server_4712"):
        finding = found[f"connection {conn_id}"]
        variable = f"$AIRFLOW_CONN_{conn_id.upper()}"
        assert finding["message"].startswith(f"{variable} is set, but Airflow cannot read it"), finding
        assert "does not exist" not in finding["message"] and variable in finding["fix"]


def test_json_stays_json_when_doctor_cannot_run(tmp_path: Path, home: Path) -> None:
    """A malformed [cronium] setting, and no records folder at all: --json still gives one JSON object with the
    error as its finding (exit 2); without --json, the plain error line as before."""
    bad = {**doctor_env(home, RUNTIME_IMAGE), "AIRFLOW__CRONIUM__MAX_ACTIVE_RUNS": "abc"}
    proc = cronium("doctor", str(tmp_path), "--json", env=bad)
    assert proc.returncode == 2
    data = json.loads(proc.stdout)
    assert data["ok"] is False and data["errors"] == 1
    assert "max_active_runs" in data["findings"][0]["message"]

    nowhere = {**doctor_env(home, RUNTIME_IMAGE), "CRONIUM_RECORDS_DIR": "", "AIRFLOW__CRONIUM__RECORDS_DIR": ""}
    proc = cronium("doctor", "--json", env=nowhere)
    assert proc.returncode == 2
    assert "no RECORDS_DIR given" in json.loads(proc.stdout)["findings"][0]["message"]
    assert cronium("doctor", env=nowhere).stdout.startswith("error: no RECORDS_DIR given")
