"""Deferrable mode of container scripts: the worker starts the container, the triggerer follows it.

A real Airflow (tests/support/local_stack.py: SQLite, the LocalExecutor, api-server, scheduler, dag-processor
and **triggerer**, started once for the module) with ``[cronium] deferrable = True``, the project's template
DAG file and a records folder, plus a DAG file with two twin script tasks that differ only in ``deferrable``.
What a user sees is checked: task states, XComs, Airflow Variables, the task's log files (the triggerer
writes its part beside the task's own log) and the Docker daemon's containers and volumes.

Cheaper checks run without the stack, under ``dag.test()`` (which runs the trigger in-process): a failing
script's error is the normal mode's, and the cleanup before each script run removes a deferred container only
once Airflow says its try is over.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, RUNTIME_IMAGE, missing
from tests.support.local_stack import LocalStack
from tests.support.services import ServiceDied, wait_for

pytestmark = [pytest.mark.airflow, pytest.mark.docker]

OWNER = "deferral-test"
# above the ids other tests' clean-ups remove containers of (cronium_event_1 .. _999)
TIMEOUT_EVENT = 95002
KILL_EVENT = 95003
TIMEOUT_DAG = f"cronium_event_{TIMEOUT_EVENT}"
KILL_DAG = f"cronium_event_{KILL_EVENT}"
TOKEN = f"tok-{secrets.token_hex(8)}"  # the script prints it: both modes mask it in the task log

PARITY_SCRIPT = textwrap.dedent(
    """\
    import os, sys, time
    data = cronium.input() or {}
    print("input batch:", data.get("batch"), flush=True)
    for i in range(3):
        print(f"step {i}", flush=True)
        time.sleep(0.3)
    print("a warning on stderr", file=sys.stderr, flush=True)
    time.sleep(0.3)
    print("token:", os.environ["API_TOKEN"], flush=True)
    cronium.setVariable("parity_result", {"batch": data.get("batch"), "steps": 3})
    cronium.setCondition(True)
    cronium.output({"batch": data.get("batch"), "total": 6})
    print("no newline at the end", end="")
    """
)

PARITY_DAGS = textwrap.dedent(
    f"""\
    import datetime

    import pendulum
    from airflow.sdk import DAG

    from cronium_provider.operators.container_script import CroniumScriptOperator

    for mode, deferrable in (("normal", False), ("deferred", True)):
        with DAG(f"parity_{{mode}}", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
            CroniumScriptOperator(
                task_id="run",
                language="PYTHON",
                script={PARITY_SCRIPT!r},
                environment={{"API_TOKEN": {TOKEN!r}}},
                event={{"id": 501, "name": "Parity", "userId": {OWNER!r}}},
                deferrable=deferrable,
                execution_timeout=datetime.timedelta(seconds=120),
            )
        globals()[dag.dag_id] = dag
    """
)


def records() -> dict[str, Any]:
    def event(event_id: int, name: str, script: str, timeout: int, unit: str = "SECONDS") -> dict[str, Any]:
        return {
            "id": event_id,
            "userId": OWNER,
            "name": name,
            "type": "BASH",
            "status": "ACTIVE",
            "triggerType": "MANUAL",
            "content": script,
            "timeoutValue": timeout,
            "timeoutUnit": unit,
        }

    return {
        "events": [
            event(TIMEOUT_EVENT, "Sleeps past its timeout", 'echo "started"\nsleep 120\necho "never"\n', 4),
            event(KILL_EVENT, "Sleeps until killed", 'echo "started"\nsleep 600\n', 15, "MINUTES"),
        ]
    }


# --- the stack --------------------------------------------------------------------------------------------------


def _labelled(client: Any, dag_id: str) -> tuple[list[str], list[str]]:
    """The project's containers and run folder volumes of one DAG, whatever their state."""
    label = f"org.cronium.dag_id={dag_id}"
    containers = [c["Id"] for c in client.api.containers(all=True, filters={"label": label})]
    volumes = [v["Name"] for v in (client.api.volumes(filters={"label": label}) or {}).get("Volumes") or []]
    return containers, volumes


def _remove_labelled(client: Any, dag_ids: list[str]) -> list[str]:
    removed = []
    for dag_id in dag_ids:
        containers, volumes = _labelled(client, dag_id)
        for container in containers:
            with contextlib.suppress(Exception):
                client.api.remove_container(container, v=True, force=True)
                removed.append(container[:12])
        for volume in volumes:
            with contextlib.suppress(Exception):
                client.api.remove_volume(volume, force=True)
    return removed


@pytest.fixture(scope="module")
def docker_api(docker_client: Any) -> Any:
    """The Docker engine (with the runtime image: conftest's ``docker_client``) and aiodocker."""
    try:
        import aiodocker  # noqa: F401
    except ImportError as exc:
        missing("aiodocker", f"{exc}; pip install -e . (the deferred container trigger's Docker client)")
    return docker_client


@pytest.fixture(scope="module")
def stack(docker_api: Any) -> Iterator[LocalStack]:
    home = Path(tempfile.mkdtemp(prefix="cronium-deferrable-"))
    records_dir = home / "records"
    records_dir.mkdir()
    (records_dir / "events.json").write_text(json.dumps(records(), indent=2))
    st = LocalStack.create(
        home,
        records_dir,
        {
            "cronium_dags.py": (REPO / "dags_templates" / "cronium_dags.py").read_text(),
            "deferral_parity.py": PARITY_DAGS,
        },
        parallelism=4,
        extra_env={"AIRFLOW__CRONIUM__DEFERRABLE": "True", "AIRFLOW__CRONIUM__IMAGE": RUNTIME_IMAGE},
    )
    try:
        try:
            st.start()
            st.wait_parsed({"parity_normal", "parity_deferred", TIMEOUT_DAG, KILL_DAG})
        except (TimeoutError, ServiceDied, RuntimeError):
            print(f"\n[deferrable] the stack did not start; diagnostics:\n{st.diagnostics()}", file=sys.stderr)
            raise
        yield st
    finally:
        killed = st.stop()
        if killed:
            print(f"[deferrable] SIGKILL needed for: {killed}", file=sys.stderr)
        left = _remove_labelled(docker_api, ["parity_normal", "parity_deferred", TIMEOUT_DAG, KILL_DAG])
        if left:
            print(f"[deferrable] removed leftover containers: {left}", file=sys.stderr)
        shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def diagnose(stack: LocalStack) -> Iterator[None]:
    try:
        yield
    except BaseException:
        print(f"\n[deferrable] diagnostics:\n{stack.diagnostics()}", file=sys.stderr)
        raise


def _script_lines(events: list[dict[str, Any]]) -> list[str]:
    """The script's own lines in a task's log (``[stdout] ...``, ``[stderr] ...``), in order."""
    return [str(e["event"]) for e in events if str(e.get("event", "")).startswith(("[stdout] ", "[stderr] "))]


def _summary(events: list[dict[str, Any]]) -> str:
    """The run's summary line after its timings (``exit 0 in 1.23 s, peak memory ..., output ``)."""
    lines = [str(e["event"]) for e in events if str(e.get("event", "")).startswith("cronium summary:")]
    assert len(lines) == 1, lines
    return lines[0].split(", output ", 1)[1]


def _run_and_watch(stack: LocalStack, dag_id: str, conf: dict[str, Any], timeout: float) -> tuple[str, set[str]]:
    """Trigger a run, wait for its end; returns the run id and every state its task was seen in."""
    run_id = stack.trigger(dag_id, conf)
    seen: set[str] = set()

    def finished() -> bool:
        stack.check_alive()
        state = stack.ti(dag_id, run_id)[0]
        if state:
            seen.add(state)
        return stack.run_state(dag_id, run_id) in ("success", "failed")

    wait_for(finished, timeout, f"run {dag_id} {run_id}", interval=0.2)
    return run_id, seen


# --- the tests --------------------------------------------------------------------------------------------------


def test_a_deferred_script_gives_what_the_normal_mode_gives(stack: LocalStack) -> None:
    """Same script, same input: return value, condition, Variables, the script's log lines (secrets masked) and
    the summary line are the normal mode's; the deferred task was in state ``deferred`` while its script ran
    and its lines are in the triggerer's part of the task log."""
    conf = {"batch": "b-17"}
    with diagnose(stack):
        stack.delete_variables("cronium_parity")
        normal_run, normal_states = _run_and_watch(stack, "parity_normal", conf, 180)
        assert stack.run_state("parity_normal", normal_run) == "success"
        normal_variables = stack.variables("cronium_parity")
        stack.delete_variables("cronium_parity")

        deferred_run, deferred_states = _run_and_watch(stack, "parity_deferred", conf, 180)
        assert stack.run_state("parity_deferred", deferred_run) == "success"
        deferred_variables = stack.variables("cronium_parity")

    assert "deferred" in deferred_states and "deferred" not in normal_states, (normal_states, deferred_states)
    expected_output = {"batch": "b-17", "total": 6}
    for dag_id, run_id in (("parity_normal", normal_run), ("parity_deferred", deferred_run)):
        assert stack.xcom(dag_id, run_id, "return_value") == expected_output
        assert stack.xcom(dag_id, run_id, "condition") is True
        assert stack.xcom(dag_id, run_id, "run_status") == "SUCCESS"
    assert normal_variables == deferred_variables == {"cronium_parity_result": '{"batch": "b-17", "steps": 3}'}

    normal_events = stack.log_events("parity_normal", normal_run)
    deferred_events = stack.log_events("parity_deferred", deferred_run)
    normal_lines, deferred_lines = _script_lines(normal_events), _script_lines(deferred_events)
    assert normal_lines == [
        "[stdout] input batch: b-17",
        "[stdout] step 0",
        "[stdout] step 1",
        "[stdout] step 2",
        "[stderr] a warning on stderr",
        "[stdout] token: ***",
        "[stdout] no newline at the end",
    ]
    assert deferred_lines == normal_lines
    # while deferred, the lines came from the triggerer, into its part of the same try's log
    assert {e["_file"] for e in deferred_events if e.get("event") in deferred_lines} == {
        f for f in {e["_file"] for e in deferred_events} if ".trigger." in f
    }
    assert any(".trigger." in e["_file"] for e in deferred_events)
    output_size = len(json.dumps(expected_output))
    expected_summary = f"{output_size} B, condition true, 1 variable change(s)"
    assert _summary(deferred_events) == _summary(normal_events) == expected_summary
    for path in stack.log_files("parity_normal", normal_run) + stack.log_files("parity_deferred", deferred_run):
        assert TOKEN not in path.read_text(), f"{path} shows the secret"


def test_a_script_past_its_timeout_while_deferred_fails_as_timed_out_and_leaves_nothing(
    stack: LocalStack, docker_api: Any
) -> None:
    """A 4-second timeout, a script that sleeps 120 s: the triggerer stops and removes the container at the
    timeout, the resumed task fails with the normal mode's timeout error, and no container or run folder of
    the DAG is left."""
    with diagnose(stack):
        started = time.monotonic()
        run_id, seen = _run_and_watch(stack, TIMEOUT_DAG, {}, 120)
        elapsed = time.monotonic() - started
        state, try_number = stack.ti(TIMEOUT_DAG, run_id)
    assert state == "failed"
    assert "deferred" in seen
    assert elapsed < 60, f"the timed-out run took {elapsed:.0f} s"
    events = stack.log_events(TIMEOUT_DAG, run_id, try_number=try_number)
    messages = "\n".join(str(e.get("event", "")) + " " + json.dumps(e.get("error_detail", "")) for e in events)
    assert "[stdout] started" in messages and "[stdout] never" not in messages
    assert "execution_timeout (4 s) reached while deferred" in messages
    assert "Timeout, PID:" in messages  # AirflowTaskTimeout, as in the normal mode
    assert stack.xcom(TIMEOUT_DAG, run_id, "run_status") == "FAILURE"
    wait_for(lambda: _labelled(docker_api, TIMEOUT_DAG) == ([], []), 15, "no container or volume of the DAG")


def _deferred_container(stack: LocalStack, docker_api: Any, run_id: str, not_this: str | None = None) -> str:
    """Wait for the task to be deferred with its script's container running; returns the container's id."""
    stack.wait_ti(KILL_DAG, run_id, {"deferred"}, 120)
    found: list[str] = []

    def running() -> bool:
        ids = [
            c["Id"]
            for c in docker_api.api.containers(
                filters={"label": [f"org.cronium.dag_id={KILL_DAG}", "org.cronium.deferred=true"]}
            )
            if c["Id"] != not_this and "sleep" in json.dumps(c.get("Command", ""))
        ]
        found[:] = ids
        return len(ids) == 1

    wait_for(running, 30, "the deferred script's container")
    return found[0]


def _gone(docker_api: Any, container_id: str) -> bool:
    import docker

    try:
        docker_api.api.inspect_container(container_id)
    except docker.errors.NotFound:
        return True
    return False


def _trigger_lines(stack: LocalStack, run_id: str, try_number: int) -> str:
    events = stack.log_events(KILL_DAG, run_id, try_number=try_number)
    return "\n".join(str(e.get("event", "")) for e in events if ".trigger." in e["_file"])


def test_clearing_or_failing_a_deferred_task_stops_and_removes_its_container(
    stack: LocalStack, docker_api: Any
) -> None:
    """Clear the task the moment it defers: its container goes (stopped by the trigger, or, when the clear came
    before the triggerer took the trigger up, removed by the task's next try as an earlier try's). Then, while
    the triggerer follows the next try's container, mark that try failed: the trigger's ``on_kill`` stops and
    removes it. Nothing of the DAG is left."""
    with diagnose(stack):
        run_id = stack.trigger(KILL_DAG, {})
        first = _deferred_container(stack, docker_api, run_id)
        status, body = stack.request(
            "POST",
            f"/api/v2/dags/{KILL_DAG}/clearTaskInstances",
            {"dry_run": False, "task_ids": ["run"], "dag_run_id": run_id, "only_failed": False},
        )
        assert status == 200, body
        cleared = time.monotonic()
        wait_for(lambda: _gone(docker_api, first), 60, "the cleared task's container removed")
        clear_seconds = time.monotonic() - cleared

        second = _deferred_container(stack, docker_api, run_id, not_this=first)
        assert stack.ti(KILL_DAG, run_id)[1] == 2
        wait_for(lambda: "[stdout] started" in _trigger_lines(stack, run_id, 2), 60, "the triggerer following")
        stack.set_task_state(KILL_DAG, run_id, "run", "failed")
        failed = time.monotonic()
        wait_for(lambda: _gone(docker_api, second), 60, "the failed task's container removed")
        fail_seconds = time.monotonic() - failed
        wait_for(lambda: _labelled(docker_api, KILL_DAG) == ([], []), 15, "no container or volume of the DAG")
        assert stack.ti(KILL_DAG, run_id)[0] == "failed"
    print(
        f"\n[deferrable] container removed {clear_seconds:.1f} s after the clear, "
        f"{fail_seconds:.1f} s after mark failed"
    )
    assert "The deferred task was stopped by a person: stopping the script's container" in _trigger_lines(
        stack, run_id, 2
    )


# --- without the stack --------------------------------------------------------------------------------------------


def test_the_trigger_writes_the_last_chunk_of_a_script_without_a_final_newline(docker_api: Any) -> None:
    """Followed through Docker's log, a script's last output without a newline was often missing: the followed
    log of Docker 20.10 ends without it (29 runs in 70 here, when following starts while the script runs).
    The trigger reads the log's tail again once the followed log ends: 12 runs, each with its lines in order,
    200 equal lines then the last chunk, each once."""
    import asyncio

    from cronium_provider.triggers.container import CroniumContainerTrigger

    script = "import time\nfor i in range(200):\n    print('same', flush=True)\n    if i % 50 == 0:\n"
    script += "        time.sleep(0.05)\nprint('the last chunk', end='')\n"
    client = docker_api.api

    async def follow(delay: float) -> list[tuple[str, str]]:
        container = client.create_container(
            RUNTIME_IMAGE, command=["python3", "-c", script], network_disabled=True, labels={OWNER: "tail"}
        )
        trigger = CroniumContainerTrigger(
            container_id=container["Id"],
            volume="unused",
            holder=None,
            run_folder_mb=1,
            docker_url=os.environ.get("DOCKER_HOST", "unix://var/run/docker.sock"),  # docker_api's daemon
        )
        lines: list[tuple[str, str]] = []
        trigger._log_line = lambda stream, line: lines.append((stream, line))  # type: ignore[method-assign]
        docker = trigger._docker()
        try:
            client.start(container["Id"])
            await asyncio.sleep(delay)
            await asyncio.wait_for(trigger._follow_log(docker), 60)
        finally:
            await docker.close()
            client.remove_container(container["Id"], force=True)
        return lines

    expected = [("stdout", "same")] * 200 + [("stdout", "the last chunk")]
    for run in range(12):
        assert asyncio.run(follow([0.0, 0.05, 0.1, 0.15][run % 4])) == expected, f"run {run}"


def test_the_trigger_leaves_no_docker_connection_open_to_be_reported_in_another_tasks_log(docker_api: Any) -> None:
    """The triggerer runs every trigger in one event loop: a Docker answer a trigger leaves open is reported by
    the garbage collector ("Unclosed connection", at ERROR) in whichever task's log the triggerer writes at that
    moment, another event's. A script followed to its end (log, memory samples, exit) leaves none, and its peak
    memory is still sampled."""
    import asyncio
    import gc

    from cronium_provider.triggers.container import CroniumContainerTrigger

    client = docker_api.api
    reported: list[str] = []

    async def follow() -> dict[str, Any]:
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: reported.append(context["message"]))
        container = client.create_container(
            RUNTIME_IMAGE,
            command=["sh", "-c", "echo start; sleep 1.5; echo end"],
            network_disabled=True,
            labels={OWNER: "unclosed"},
        )
        trigger = CroniumContainerTrigger(
            container_id=container["Id"],
            volume="unused",
            holder=None,
            run_folder_mb=1,
            docker_url=os.environ.get("DOCKER_HOST", "unix://var/run/docker.sock"),  # docker_api's daemon
        )
        trigger._log_line = lambda stream, line: None  # type: ignore[method-assign]
        try:
            client.start(container["Id"])
            events = [event async for event in trigger.run()]
        finally:
            client.remove_container(container["Id"], force=True)
        for _ in range(3):
            gc.collect()
            await asyncio.sleep(0.1)
        return dict(events[-1].payload)

    ended = asyncio.run(follow())
    gc.collect()
    assert (ended["status"], ended["exit_code"]) == ("exited", 0), ended
    assert ended["peak_memory_bytes"], ended
    assert reported == [], reported


def test_a_failing_deferred_script_fails_with_the_normal_modes_error(docker_api: Any, airflow_db: Path) -> None:
    """Under ``dag.test()`` (the trigger runs in-process): exit code, the last stderr lines (read back from the
    container's log) and the failure are those of the normal mode, and nothing is left."""
    from tests.support.airflow_run import one_task_dag, run_dag

    script = 'echo "to stdout"\nfor i in 1 2 3; do echo "problem $i" >&2; done\nexit 3\n'
    errors = {}
    for deferrable in (False, True):
        dag, dag_id = one_task_dag(
            "cronium_provider.operators.container_script.CroniumScriptOperator",
            "deferral_failure",
            language="BASH",
            script=script,
            deferrable=deferrable,
        )
        result = run_dag(dag)
        assert result.task_states["run"] == "failed"
        errors[deferrable] = result.xcom("run", "error")
        assert _labelled(docker_api, dag_id) == ([], [])
    assert errors[True] == errors[False]
    assert errors[True].startswith("The script exited with code 3. Last stderr lines:\nproblem 1\nproblem 2\nproblem 3")


def test_a_deferred_container_is_removed_by_a_later_run_only_once_its_try_is_over(
    docker_api: Any, airflow_db: Path
) -> None:
    """Before each script run, containers whose task process is gone are removed. A deferred task's process
    ends at the deferral, so its container is kept, unless Airflow says its try is over (here: that task
    instance succeeded; a task cleared or marked failed before the triggerer took it up looks the same). A
    host asks Airflow about other tasks' deferred containers at most once a minute."""
    from cronium_provider.operators.container_script import deferred_sweep_stamp
    from cronium_provider.runners.container import owner_labels
    from tests.support.airflow_run import one_task_dag, run_dag

    operator = "cronium_provider.operators.container_script.CroniumScriptOperator"
    done_dag, done_id = one_task_dag(operator, "deferral_done", language="BASH", script="true")
    done = run_dag(done_dag)
    assert done.state == "success"

    dead = owner_labels() | {"org.cronium.pid": str(2**22 + 17), "org.cronium.pid_start": "1"}
    try_labels = {
        "org.cronium.dag_id": done_id,
        "org.cronium.task_id": "run",
        "org.cronium.run_id": done.run_id,
        "org.cronium.map_index": "-1",
        "org.cronium.try_number": "1",
    }
    cases = {
        "process gone, not deferred": {"org.cronium.dag_id": f"orphans_{secrets.token_hex(4)}"},
        "deferred, try over": try_labels | {"org.cronium.deferred": "true"},
        "deferred, task unknown": try_labels | {"org.cronium.deferred": "true", "org.cronium.task_id": "other"},
        "deferred, no try labels": {"org.cronium.deferred": "true", "org.cronium.dag_id": done_id},
    }
    created = {}
    try:
        for name, labels in cases.items():
            all_labels = {"org.cronium.run": "true", **dead, **labels}
            created[name] = docker_api.api.create_container(RUNTIME_IMAGE, ["true"], labels=all_labels)["Id"]
        next_dag, _ = one_task_dag(operator, "deferral_next", language="BASH", script="true")
        deferred_sweep_stamp().unlink(missing_ok=True)  # a host asks at most once a minute: this run asks
        result = run_dag(next_dag)
        assert result.state == "success"
        gone = {name for name, container in created.items() if _gone(docker_api, container)}
        assert gone == {"process gone, not deferred", "deferred, try over"}
    finally:
        for container in created.values():
            with contextlib.suppress(Exception):
                docker_api.api.remove_container(container, force=True)
