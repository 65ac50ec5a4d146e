"""Faults while a run is under way: each test ends with nothing of the run left behind.

Scripts run in real containers on a private Docker daemon started by this module (its own socket, data
root, exec root and pid file): the restart test stops and starts a daemon, which must never be the
machine's own, and the other tests then cannot see, nor be seen by, containers of other test sessions.
Tool actions go to a real loopback receiver through a real Redis. The task process killed with SIGKILL is
``tests/test_script_events.py::test_a_sigkilled_task_leaves_no_container_behind``; a fault of the SSH
server is in the remote-event tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RUNTIME_IMAGE, airflow_env, missing, venv_bin
from tests.support.airflow_run import one_task_dag, run_dag
from tests.support.dockerd import DockerdUnavailable, PrivateDockerd
from tests.support.http_receiver import HttpReceiver, json_answer
from tests.support.services import RedisServer, ServiceUnavailable
from tests.test_event_dags import Factory

RUN_LABEL = "org.cronium.run=true"
SCRIPT_OPERATOR = "cronium_provider.operators.container_script.CroniumScriptOperator"
NOTHING = {"containers": [], "volumes": []}


@pytest.fixture(scope="module")
def private_dockerd(docker_client: Any) -> Iterator[PrivateDockerd]:
    """A Docker daemon of this module's own, holding the runtime image (copied once per module)."""
    try:
        daemon = PrivateDockerd().start()
    except DockerdUnavailable as exc:
        missing("dockerd", str(exc))
    try:
        daemon.load_image(RUNTIME_IMAGE)
        yield daemon
    finally:
        daemon.remove()


@pytest.fixture
def daemon(private_dockerd: PrivateDockerd) -> Iterator[PrivateDockerd]:
    """The private daemon, answering, with none of the project's containers or volumes before and after."""
    if not private_dockerd.answers():  # a test that failed while it was down
        private_dockerd.start()
    client = private_dockerd.client()
    assert leftovers(client) == NOTHING
    yield private_dockerd
    client = private_dockerd.client()
    left = leftovers(client)
    for container in client.containers(all=True, filters={"label": RUN_LABEL}):  # the next test starts clean
        with contextlib.suppress(Exception):
            client.remove_container(container["Id"], v=True, force=True)
    for name in left["volumes"]:
        with contextlib.suppress(Exception):
            client.remove_volume(name, force=True)
    assert left == NOTHING, "the fault left containers or run folders behind"


def leftovers(client: Any, dag_id: str | None = None) -> dict[str, list[str]]:
    """The project's containers (a run's container; a deferred run's also its run folder's holder) and run
    folder volumes on a daemon."""
    labels = [RUN_LABEL] + ([f"org.cronium.dag_id={dag_id}"] if dag_id else [])
    containers = sorted(c["Id"][:12] for c in client.containers(all=True, filters={"label": labels}))
    volumes = sorted(v["Name"] for v in (client.volumes(filters={"label": labels}) or {}).get("Volumes") or [])
    return {"containers": containers, "volumes": volumes}


def script_container(client: Any, dag_id: str, alive: Any = None, timeout: float = 90) -> str:
    """The running script container of ``dag_id`` (found by its labels and its command: the wrapper that
    runs the script; a deferred run's run folder holder only sleeps)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        labels = [RUN_LABEL, f"org.cronium.dag_id={dag_id}"]
        for container in client.containers(filters={"label": labels, "status": "running"}):
            if container.get("Command", "").startswith(("sh ", "bash ")):
                return str(container["Id"])
        assert alive is None or alive(), "the run ended before its script started"
        time.sleep(0.1)
    raise AssertionError(f"no running script container of {dag_id} within {timeout} s")


def script_dag(daemon: PrivateDockerd, script: str) -> tuple[Any, str]:
    return one_task_dag(
        SCRIPT_OPERATOR, "fault", language="BASH", script=script, docker_url=daemon.url, timeout_seconds=120
    )


def test_a_docker_daemon_restarted_mid_run(daemon: PrivateDockerd, airflow_db, capfd) -> None:
    """The Docker daemon is stopped and started again while the script runs, its task in a process of its
    own as Airflow runs it. The task fails, without waiting for the daemon to come back, with an error
    naming the daemon (once the daemon's shutdown has stopped the container);
    the run could not remove its container (the daemon was away); once the daemon
    is back, the next script run on the host removes it (its task process is gone)."""
    _, dag_id = script_dag(daemon, "echo started; sleep 30; echo finished")
    client = daemon.client()
    proc = subprocess.Popen(
        [venv_bin("airflow"), "dags", "test", dag_id],
        env=airflow_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(proc.stdout or []), daemon=True)
    reader.start()
    try:
        script_container(client, dag_id, alive=lambda: proc.poll() is None)
        time.sleep(1)
        stopped_at = time.monotonic()
        daemon.stop()
        proc.wait(timeout=60)  # the task does not wait for the daemon to come back
        failed_after = time.monotonic() - stopped_at
        daemon.start()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        reader.join(timeout=10)
    text = "".join(output)
    error = re.search(r"DockerUnreachable: (.*)", text)
    assert error, text[-4000:]
    assert error.group(1).startswith(
        f"The Docker daemon at {daemon.url} could not be reached or stopped answering during the run"
    )
    assert "Connection aborted" in error.group(1)  # why, as the client saw it
    assert re.search(r"DagRun Finished: dag_id=" + dag_id + r".*state=failed", text), text[-4000:]
    assert "[stdout] started" in text and "[stdout] finished" not in text
    with capfd.disabled():
        print(f"\n[faults] Docker daemon stopped mid-run: the task process ended {failed_after:.1f} s later")

    client = daemon.client()
    left = leftovers(client, dag_id)
    assert len(left["containers"]) == 1 and left["volumes"] == [], left  # one container, its run folder its own tmpfs

    next_dag, _ = script_dag(daemon, "echo next")
    result = run_dag(next_dag, capfd=capfd)
    assert result.state == "success", result.log_text()[-3000:]
    removed = re.findall(r"Removed container (\S+): its task process is gone", result.log_text())
    assert len(removed) == 1, result.log_text()[-3000:]  # the run's container
    assert leftovers(client) == NOTHING


def test_the_scripts_container_killed_from_outside(daemon: PrivateDockerd, airflow_db, capfd) -> None:
    """``docker kill`` of the run's container (found by its ``org.cronium.*`` labels): the task fails with
    an error saying the script was killed (SIGKILL, exit code 137), ``{{cronium.event.error}}`` says it too,
    and the run removes its container itself."""
    dag, dag_id = script_dag(daemon, "echo started; sleep 60; echo finished")
    client = daemon.client()
    killed: list[str] = []

    def kill_mid_run() -> None:
        container = script_container(client, dag_id)
        time.sleep(0.5)
        client.kill(container)  # docker kill: SIGKILL
        killed.append(container)

    killer = threading.Thread(target=kill_mid_run, daemon=True)
    killer.start()
    started = time.monotonic()
    result = run_dag(dag, capfd=capfd)
    took = time.monotonic() - started
    killer.join(timeout=30)
    assert killed, "the script container was never found"
    assert result.state == "failed"
    assert took < 45  # not the script's 60 s
    expected = "The script exited with code 137: killed by SIGKILL (signal 9). Last stderr lines:\n(no stderr)"
    assert expected in result.log_text(), result.log_text()[-3000:]
    assert result.xcom("run", "error") == expected
    assert "[stdout] started" in result.log_text() and "[stdout] finished" not in result.log_text()
    assert leftovers(client, dag_id) == NOTHING


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    try:
        server = RedisServer().start()
    except ServiceUnavailable as exc:
        missing("redis-server", str(exc))
    try:
        yield server
    finally:
        server.stop()


def test_the_resilience_store_down_during_a_tool_action(
    redis_server: RedisServer, tmp_path: Path, capfd, monkeypatch, airflow_db
) -> None:
    """``[cronium] resilience_store`` is a Redis that stops: a tool action then fails with an error naming
    the store, and nothing is sent (a send without the rate limits and the circuit breaker would be a
    silent pass)."""
    receiver = HttpReceiver(routes={"POST /hooks/generic": lambda r: json_answer({"received": True})}).start()
    try:
        monkeypatch.setenv("AIRFLOW__CRONIUM__RESILIENCE_STORE", redis_server.url())
        monkeypatch.setenv(
            "AIRFLOW_CONN_CRONIUM_TOOL_4141",
            json.dumps(
                {
                    "conn_type": "http",
                    "host": f"{receiver.url}/hooks/generic",
                    "extra": json.dumps({"tool_type": "webhook"}),
                }
            ),
        )
        folder = tmp_path / "records"
        folder.mkdir()
        factory = Factory(folder, capfd, monkeypatch)
        config = {"toolType": "webhook", "actionId": "send-webhook", "toolId": 4141, "parameters": {"n": 1}}
        event = factory.event(type="TOOL_ACTION", name="Ping", userId="fault-user", toolActionConfig=config)
        module = factory.load()

        first = factory.run(module, event)  # the store answers: sent, and counted in Redis
        assert first.state == "success", first.log_text()[-3000:]
        assert len(receiver.requests) == 1
        assert redis_server.client().keys("cronium:window:*"), "the action did not go through Redis"

        redis_server.stop()
        second = factory.run(module, event)
    finally:
        receiver.stop()
    assert second.state == "failed"
    text = second.log_text()
    where = f"127.0.0.1:{redis_server.port}/0"
    assert (
        f"ResilienceStoreUnavailable: the resilience store ([cronium] resilience_store: Redis at {where}) cannot be "
        "reached: Error 111 connecting to " in text
    ), text[-3000:]
    assert "no tool action is sent without its rate limits and circuit breakers" in text
    assert second.xcom("run", "error").startswith("the resilience store ([cronium] resilience_store: Redis at")
    assert len(receiver.requests) == 1  # nothing more was sent
    assert "attempt 1 failed" not in text  # refused at once, not retried as the tool's network error
