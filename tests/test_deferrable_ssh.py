"""Deferrable remote scripts (``deferrable=True``, ``[cronium] deferrable``) on a real Airflow with a real triggerer.

One Airflow (SQLite, LocalExecutor; api-server, scheduler, dag-processor and triggerer, tests/support/local_stack.py)
runs the project's template DAG file over a records folder whose events run on two real sshd servers (127.0.0.41
and 127.0.0.42, tests/support/sshd.py), with ``[cronium] deferrable = True``; a second DAG file holds the same
script as a normal-mode task (``deferrable=False``) to compare with. The servers are on this machine, so what
is left of a run on them (its processes, its run folder under /tmp) is checked here directly.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, missing
from tests.support.local_stack import LocalStack
from tests.support.services import wait_for
from tests.support.sshd import TestSSHServer, ensure_test_user

pytestmark = [pytest.mark.ssh, pytest.mark.airflow]

SERVERS = {401: ("alpha", "127.0.0.41"), 402: ("beta", "127.0.0.42")}
SECRET = "dtest-secret-7f3c9a"
SAME_EVENT, TIMEOUT_EVENT, CLEAR_EVENT, UNFOLLOWED_EVENT = 41, 42, 43, 44
NORMAL_DAG = "ssh_normal_twin"

# alpha succeeds, beta fails after writing its results: PARTIAL, with each server's output, condition,
# variables and stderr lines
SCRIPT = textwrap.dedent(
    """\
    echo "start on $CRONIUM_SERVER token=$DTEST_TOKEN"
    echo "input: $(cronium_input)"
    for i in 1 2 3; do echo "line $i"; sleep 0.3; done
    echo "a warning from $CRONIUM_SERVER" >&2
    cronium_set_variable "dtest_$CRONIUM_SERVER" "v-$CRONIUM_SERVER"
    cronium_set_condition true
    cronium_output "{\\"server\\": \\"$CRONIUM_SERVER\\", \\"lines\\": 3}"
    printf 'no newline at the end'
    if [ "$CRONIUM_SERVER" = beta ]; then echo "beta gives up" >&2; exit 3; fi
    """
)
TIMEOUT_SCRIPT = "echo begun; (sleep 311; echo orphan) & sleep 311"
CLEAR_SCRIPT = "echo begun; (sleep 312; echo orphan) & sleep 312"
UNFOLLOWED_SCRIPT = "echo begun; (sleep 313; echo orphan) & sleep 313"


def _event(event_id: int, name: str, script: str, timeout: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "userId": "dtest",
        "name": name,
        "type": "BASH",
        "status": "ACTIVE",
        "triggerType": "MANUAL",
        "runLocation": "REMOTE",
        "servers": sorted(SERVERS),
        "content": script,
        "timeoutValue": timeout,
        "timeoutUnit": "SECONDS",
        **extra,
    }


def _records(folder: Path) -> None:
    folder.mkdir()
    servers = [
        {"id": i, "name": name, "address": address, "port": 2222, "username": "cronium-ssh"}
        for i, (name, address) in SERVERS.items()
    ]
    events = [
        _event(SAME_EVENT, "Same twice", SCRIPT, 120, envVars=[{"key": "DTEST_TOKEN"}]),
        _event(TIMEOUT_EVENT, "Runs too long", TIMEOUT_SCRIPT, 6),
        _event(CLEAR_EVENT, "Cleared", CLEAR_SCRIPT, 300),
        _event(UNFOLLOWED_EVENT, "Cleared with no triggerer", UNFOLLOWED_SCRIPT, 300),
    ]
    (folder / "servers.json").write_text(json.dumps({"servers": servers}))
    (folder / "events.json").write_text(json.dumps({"events": events}))


def _normal_twin() -> str:
    """The same script on the same servers as a normal-mode task (with the same masked environment)."""
    servers = [{"name": name, "conn_id": f"cronium_server_{i}"} for i, (name, _a) in SERVERS.items()]
    return textwrap.dedent(
        f"""\
        import datetime
        import pendulum
        from airflow.sdk import DAG
        from cronium_provider.operators.ssh_script import CroniumRemoteScriptOperator

        with DAG({NORMAL_DAG!r}, schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
            CroniumRemoteScriptOperator(
                task_id="run", language="BASH", script={SCRIPT!r}, servers={servers!r}, deferrable=False,
                environment={{"DTEST_TOKEN": {SECRET!r}}}, execution_timeout=datetime.timedelta(seconds=120),
            )
        """
    )


@pytest.fixture(scope="module")
def ssh_servers(sshd_binary: str) -> Iterator[dict[int, TestSSHServer]]:
    base = Path(tempfile.mkdtemp(prefix="cronium-dtest-sshd-"))
    user = ensure_test_user()
    started: dict[int, TestSSHServer] = {}
    try:
        for server_id, (_name, address) in SERVERS.items():
            server = TestSSHServer(sshd_binary, base / str(server_id), address=address, port=2222, user=user)
            started[server_id] = server.start()
        yield started
    finally:
        for server in started.values():
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(ssh_servers: dict[int, TestSSHServer]) -> Iterator[LocalStack]:
    try:
        import asyncssh  # noqa: F401
    except ImportError as exc:
        missing("asyncssh", f"{exc}; the triggerer follows remote scripts with it (pip install -e .)")
    home = Path(tempfile.mkdtemp(prefix="cronium-dtest-ssh-"))
    records = home / "records"
    _records(records)
    connections = {
        f"AIRFLOW_CONN_CRONIUM_SERVER_{i}": json.dumps(
            {
                "conn_type": "ssh",
                "host": server.address,
                "port": server.port,
                "login": server.user,
                "extra": json.dumps({**server.connection_uri_extra(), "look_for_keys": "false"}),
            }
        )
        for i, server in ssh_servers.items()
    }
    st = LocalStack.create(
        home,
        records,
        {
            "cronium_dags.py": (REPO / "dags_templates" / "cronium_dags.py").read_text(),
            "normal_twin.py": _normal_twin(),
        },
        extra_env={**connections, "AIRFLOW__CRONIUM__DEFERRABLE": "True"},
    )
    try:
        st.start()
        # the event's env var value, where Cronium's export puts it (never in a record)
        status, body = st.request(
            "POST", "/api/v2/variables", {"key": f"cronium.env.{SAME_EVENT}.DTEST_TOKEN", "value": SECRET}
        )
        assert status in (200, 201), body
        events = (SAME_EVENT, TIMEOUT_EVENT, CLEAR_EVENT, UNFOLLOWED_EVENT)
        st.wait_parsed({f"cronium_event_{n}" for n in events} | {NORMAL_DAG})
        yield st
    except BaseException:
        print(st.diagnostics())
        raise
    finally:
        st.stop()
        shutil.rmtree(home, ignore_errors=True)


# --- what a run leaves on the servers ------------------------------------------------------------------------


def _run_folders(st: LocalStack, dag_id: str, run_id: str, try_number: int = 1) -> dict[str, str]:
    """Each server's run folder, as the task's log names it when it defers."""
    for record in st.log_events(dag_id, run_id, try_number=try_number):
        text = str(record.get("event", ""))
        if text.startswith("Deferred: the script runs on "):
            return dict(re.findall(r"(\w+) \((/tmp/cronium-run\.\d+/\w+)\)", text))
    return {}


def _left_of(folders: list[str], marker: str | None) -> tuple[list[str], list[str]]:
    """The folders still on disk and the processes still running that belong to the runs (their command
    line names a run folder, or holds ``marker``)."""
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout.splitlines()
    processes = [line for line in ps if (marker and marker in line) or any(folder in line for folder in folders)]
    return [f for f in folders if Path(f).exists()], processes


def _wait_nothing_left(
    folders: list[str], marker: str | None = None, timeout: float = 30, diagnostics: Callable[[], str] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_left_of(folders, marker)):
        time.sleep(0.3)
    left_folders, left_processes = _left_of(folders, marker)
    assert left_folders == [] and left_processes == [], (
        f"left on the servers: {left_folders} {left_processes}\n{diagnostics() if diagnostics else ''}"
    )


def _lines(st: LocalStack, dag_id: str, run_id: str, try_number: int = 1) -> dict[str, list[str]]:
    """The script lines in the task's log (main log and the triggerer's part), per ``[server stream]``."""
    found: dict[str, list[str]] = {}
    for record in st.log_events(dag_id, run_id, try_number=try_number):
        match = re.match(r"^\[(\w+ std(?:out|err))\] (.*)$", str(record.get("event", "")), re.S)
        if match:
            found.setdefault(match.group(1), []).append(match.group(2))
    return found


def _task_log(st: LocalStack, dag_id: str, run_id: str, try_number: int = 1) -> str:
    """The try's log (main and triggerer's parts), for an assertion's message."""
    return "\n".join(
        f"{r['_file']}: {r.get('event')} {r.get('error_detail', '')}"
        for r in st.log_events(dag_id, run_id, try_number=try_number)
    )


def _outcome(st: LocalStack, dag_id: str, run_id: str) -> dict[str, Any]:
    servers = st.xcom(dag_id, run_id, "servers") or {}
    return {
        "state": st.ti(dag_id, run_id)[0],
        "return_value": st.xcom(dag_id, run_id, "return_value"),
        "condition": st.xcom(dag_id, run_id, "condition"),
        "status": st.xcom(dag_id, run_id, "status"),
        "failed_servers": st.xcom(dag_id, run_id, "failed_servers"),
        "run_status": st.xcom(dag_id, run_id, "run_status"),
        "stdout": st.xcom(dag_id, run_id, "stdout"),  # the run's log for its messages
        "stderr": st.xcom(dag_id, run_id, "stderr"),
        # a remote run's duration is measured to the triggerer's poll in the deferred mode
        "servers": {n: {k: v for k, v in s.items() if k != "duration_seconds"} for n, s in servers.items()},
    }


def _run(st: LocalStack, dag_id: str, timeout: float = 180) -> str:
    run_id = st.trigger(dag_id, {"who": "dtest"})
    try:
        st.wait_run(dag_id, run_id, timeout)
    except BaseException:
        print(st.diagnostics())
        raise
    return run_id


# --- the tests -----------------------------------------------------------------------------------------------


def test_a_deferred_script_gives_what_the_normal_mode_gives(stack: LocalStack) -> None:
    """Output, condition, variables, per-server XComs (PARTIAL: beta fails) and the script's log lines, with
    its secret masked, are those of the normal mode; the deferred lines come from the triggerer while the task
    holds no worker slot."""
    prefix = "cronium_dtest_"
    normal_run = _run(stack, NORMAL_DAG)
    normal = _outcome(stack, NORMAL_DAG, normal_run)
    normal_variables = stack.variables(prefix)
    normal_lines = _lines(stack, NORMAL_DAG, normal_run)
    stack.delete_variables(prefix)

    dag_id = f"cronium_event_{SAME_EVENT}"
    deferred_run = _run(stack, dag_id)
    deferred = _outcome(stack, dag_id, deferred_run)
    deferred_lines = _lines(stack, dag_id, deferred_run)

    assert normal["state"] == "success" and normal["status"] == "PARTIAL", normal
    assert normal["return_value"] == {"alpha": {"server": "alpha", "lines": 3}, "beta": None}
    assert normal["servers"]["beta"]["error"] == "exit code 3: a warning from beta | beta gives up"
    assert normal["stdout"].startswith("[alpha]\nstart on alpha token=***\n"), normal["stdout"]
    assert normal["stderr"] == "[alpha]\na warning from alpha\n[beta]\na warning from beta\nbeta gives up"
    assert deferred == normal, _task_log(stack, dag_id, deferred_run)
    assert (
        stack.variables(prefix)
        == normal_variables
        == {
            "cronium_dtest_alpha": '"v-alpha"',
            "cronium_dtest_beta": '"v-beta"',
        }
    )
    assert deferred_lines == normal_lines
    assert normal_lines["alpha stdout"] == [
        "start on alpha token=***",
        'input: {"who":"dtest"}',
        "line 1",
        "line 2",
        "line 3",
        "no newline at the end",
    ]
    assert normal_lines["beta stderr"] == ["a warning from beta", "beta gives up"]

    # the deferred lines were written by the triggerer, into the task's log while it was deferred
    trigger_files = {
        r["_file"] for r in stack.log_events(dag_id, deferred_run) if "[alpha stdout]" in r.get("event", "")
    }
    assert trigger_files and all(".trigger." in name for name in trigger_files), trigger_files
    assert SECRET not in "".join(p.read_text() for p in stack.log_files(dag_id, deferred_run))
    folders = list(_run_folders(stack, dag_id, deferred_run).values())
    assert len(folders) == 2
    _wait_nothing_left(folders, timeout=5)


def test_a_timeout_while_deferred_stops_the_scripts_and_leaves_nothing(stack: LocalStack) -> None:
    dag_id = f"cronium_event_{TIMEOUT_EVENT}"
    started = time.monotonic()
    run_id = _run(stack, dag_id)
    elapsed = time.monotonic() - started
    state, _try = stack.ti(dag_id, run_id)
    assert state == "failed"
    assert elapsed < 90, elapsed
    events = [str(r.get("event", "")) for r in stack.log_events(dag_id, run_id)]
    assert any(e.startswith("Deferred: the script runs on alpha") for e in events), events[-20:]
    assert any("execution_timeout (6 s) reached while deferred" in e for e in events), events[-20:]
    assert any("AirflowTaskTimeout" in json.dumps(r) for r in stack.log_events(dag_id, run_id))
    assert stack.xcom(dag_id, run_id, "run_status") == "FAILURE"
    folders = list(_run_folders(stack, dag_id, run_id).values())
    assert len(folders) == 2
    _wait_nothing_left(folders, "sleep 311", timeout=10)


def _deferred_with_scripts(
    st: LocalStack, dag_id: str, run_id: str, try_number: int, marker: str, followed: bool
) -> list[str]:
    """Wait until the try has deferred with both servers' scripts running (and, with ``followed``, the
    triggerer following them: their first line is in the try's log); returns their run folders."""

    def ready() -> bool:
        folders = _run_folders(st, dag_id, run_id, try_number)
        running = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        lines = _lines(st, dag_id, run_id, try_number)
        seen = all(lines.get(f"{name} stdout") == ["begun"] for name, _a in SERVERS.values())
        return (
            st.ti(dag_id, run_id) == ("deferred", try_number)
            and len(folders) == 2
            and running.count(marker) >= 4
            and (seen or not followed)
        )

    wait_for(ready, 120, f"try {try_number} deferred with its scripts running", interval=0.5)
    return list(_run_folders(st, dag_id, run_id, try_number).values())


def _clear(st: LocalStack, dag_id: str, run_id: str) -> None:
    status, body = st.request(
        "POST",
        f"/api/v2/dags/{dag_id}/clearTaskInstances",
        {"dry_run": False, "task_ids": ["run"], "dag_run_id": run_id, "only_failed": False, "reset_dag_runs": True},
    )
    assert status == 200, body


def _fail_and_wait(st: LocalStack, dag_id: str, run_id: str, marker: str) -> None:
    """After a failed test: mark a still deferred task failed and give the trigger time to stop its scripts."""
    if st.ti(dag_id, run_id)[0] not in ("failed", "success", None):
        st.set_task_state(dag_id, run_id, "run", "failed")
        with contextlib.suppress(AssertionError):
            _wait_nothing_left([], marker, timeout=30)


def _events(st: LocalStack, dag_id: str, run_id: str, try_number: int) -> list[str]:
    return [str(r.get("event", "")) for r in st.log_events(dag_id, run_id, try_number=try_number)]


def test_clearing_or_failing_a_deferred_task_stops_the_scripts_and_leaves_nothing(stack: LocalStack) -> None:
    """Cleared while deferred: the triggerer's on_kill stops both servers' scripts and removes their folders;
    the task runs again and defers again; marked failed then: the same."""
    dag_id = f"cronium_event_{CLEAR_EVENT}"
    run_id = stack.trigger(dag_id)

    def diagnostics() -> str:
        parts = [f"try {n}:\n{_task_log(stack, dag_id, run_id, n)}" for n in (1, 2)]
        return "\n".join([*parts, stack.services["triggerer"].tail(60)])

    try:
        first = _deferred_with_scripts(stack, dag_id, run_id, 1, "sleep 312", followed=True)
        _clear(stack, dag_id, run_id)
        _wait_nothing_left(first, timeout=30, diagnostics=diagnostics)
        assert any("stopped by a person" in e for e in _events(stack, dag_id, run_id, 1)), diagnostics()

        second = _deferred_with_scripts(stack, dag_id, run_id, 2, "sleep 312", followed=True)
        assert set(second).isdisjoint(first)
        stack.set_task_state(dag_id, run_id, "run", "failed")
        _wait_nothing_left(second, "sleep 312", timeout=30, diagnostics=diagnostics)
        assert stack.ti(dag_id, run_id)[0] == "failed"
        assert any("stopped by a person" in e for e in _events(stack, dag_id, run_id, 2)), diagnostics()
    finally:
        _fail_and_wait(stack, dag_id, run_id, "sleep 312")


def test_a_task_cleared_before_any_triggerer_took_it_up_stops_the_earlier_scripts(stack: LocalStack) -> None:
    """No triggerer runs (stopped, or not yet at the trigger) when the deferred task is cleared: no on_kill
    can run. The task's next try stops the scripts the earlier one left, and removes their folders, before
    it starts its own."""
    dag_id = f"cronium_event_{UNFOLLOWED_EVENT}"
    triggerer = stack.services["triggerer"]
    triggerer.stop()
    run_id = stack.trigger(dag_id)

    def diagnostics() -> str:
        parts = [f"try {n}:\n{_task_log(stack, dag_id, run_id, n)}" for n in (1, 2)]
        return "\n".join(parts)

    try:
        first = _deferred_with_scripts(stack, dag_id, run_id, 1, "sleep 313", followed=False)
        _clear(stack, dag_id, run_id)
        second = _deferred_with_scripts(stack, dag_id, run_id, 2, "sleep 313", followed=False)
        _wait_nothing_left(first, timeout=10, diagnostics=diagnostics)
        assert "Stopping what an earlier try left on alpha, beta, if anything" in _events(stack, dag_id, run_id, 2)
        triggerer.start()
        _deferred_with_scripts(stack, dag_id, run_id, 2, "sleep 313", followed=True)
        stack.set_task_state(dag_id, run_id, "run", "failed")
        _wait_nothing_left(second, "sleep 313", timeout=30, diagnostics=diagnostics)
    finally:
        if not triggerer.alive():
            triggerer.start()
        _fail_and_wait(stack, dag_id, run_id, "sleep 313")
