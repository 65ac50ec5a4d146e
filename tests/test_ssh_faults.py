"""Faults while a remote script runs: each ends with a clear error and nothing of the run left on the server.

The server is a real OpenSSH daemon on 127.0.0.51 (tests/support/sshd.py), on this machine, so what a run
leaves there (its processes, its run folder under /tmp) is checked directly; the event runs through real
Airflow (``dag.test()``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.support.airflow_run import DagRunResult, one_task_dag, run_dag
from tests.support.sshd import TEST_USER, TestSSHServer, ensure_test_user

pytestmark = [pytest.mark.ssh, pytest.mark.airflow]


def _sshd_processes(listener: int) -> list[int]:
    """The daemon and every sshd process under it (one per connection, privileged and not)."""
    found = [listener]
    for pid in found:
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        for child in children:
            try:
                name = Path(f"/proc/{child}/comm").read_text().strip()
            except OSError:
                continue
            if name.startswith("sshd"):
                found.append(int(child))
    return found


def _run_folders() -> set[str]:
    return {str(p) for p in Path("/tmp").glob("cronium-run.*/*")}


def _processes(marker: str) -> list[str]:
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout.splitlines()
    return [line for line in ps if marker in line]


def _sleeper() -> tuple[str, str]:
    """A shell command that sleeps 300 s under a name of this test run's own (``exec -a``), and that name:
    ``ps`` then finds this run's processes and no other process on the machine."""
    marker = f"cronium-fault-{uuid.uuid4().hex[:12]}"
    return f"bash -c 'exec -a {marker} sleep 300'", marker


def test_the_ssh_server_stopped_mid_run(sshd_binary, tmp_path, airflow_db, capfd, monkeypatch) -> None:
    """The whole SSH server (the daemon and its per-connection processes) is killed while the script runs.
    The task fails at once with an error naming the server and its address; on the server, the run's
    watchdog (which sees its connection go) stops the script's session, background processes included,
    and removes the run folder within the kill grace period."""
    ensure_test_user()
    server = TestSSHServer(sshd_binary, tmp_path / "sshd", address="127.0.0.51", port=2222, user=TEST_USER).start()
    conn_id = f"cronium_fault_{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps(
            {
                "conn_type": "ssh",
                "host": server.address,
                "port": server.port,
                "login": server.user,
                "extra": json.dumps({**server.connection_uri_extra(), "look_for_keys": "false"}),
            }
        ),
    )
    before = _run_folders()
    sleeper, marker = _sleeper()
    dag, _dag_id = one_task_dag(
        "cronium_provider.operators.ssh_script.CroniumRemoteScriptOperator",
        "ssh_fault",
        timeout_seconds=120,
        language="BASH",
        script=f"echo started; ({sleeper}; echo orphan) & {sleeper}",
        servers=[{"name": "app-1", "conn_id": conn_id}],
    )
    killed_at: list[float] = []
    run_folder: list[str] = []

    def stop_the_server() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(_processes(marker)) < 2:
            time.sleep(0.1)
        run_folder.extend(_run_folders() - before)
        for pid in _sshd_processes(server.process.pid if server.process else 0):
            os.kill(pid, signal.SIGKILL)
        killed_at.append(time.monotonic())

    killer = threading.Thread(target=stop_the_server, daemon=True)
    killer.start()
    try:
        result: DagRunResult = run_dag(dag, capfd=capfd)
        ended = time.monotonic()
        killer.join(10)
        assert killed_at, "the script never started"
        assert len(run_folder) == 1, run_folder
        assert result.state == "failed"
        assert ended - killed_at[0] < 15, "the task did not notice the lost connection at once"
        log = result.log_text()
        assert (
            "app-1: the SSH connection to 127.0.0.51:2222 was lost while the script ran (the SSH server stopped"
        ) in log, log[-3000:]
        assert "FAILURE: 1 of 1 server(s) failed" in log

        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (_processes(marker) or Path(run_folder[0]).exists()):
            time.sleep(0.2)
        assert _processes(marker) == [], "the script's session survived its lost connection"
        assert not Path(run_folder[0]).exists(), "the run folder survived its lost connection"
    finally:
        server.stop()
        for line in _processes(marker):
            os.kill(int(line.split()[0]), signal.SIGKILL)


@pytest.mark.parametrize("environment", [{}, {"IFS": "0123456789"}], ids=["no-env", "IFS-of-digits"])
def test_the_task_process_killed_mid_run(sshd_binary, tmp_path, environment: dict[str, str]) -> None:
    """The process running the script (a task process) is SIGKILLed while the script runs: nothing runs its
    ``finally`` or ``on_kill``, but its connection closes with it, and the watchdog stops the script's session
    and removes the run folder. The event's env vars reach the script only, never the wrapper around it: an
    ``IFS`` of digits (a valid shell name) once broke the wrapper's ``wait`` and let the script outlive its
    connection."""
    import sys

    ensure_test_user()
    server = TestSSHServer(sshd_binary, tmp_path / "sshd", address="127.0.0.52", port=2222, user=TEST_USER).start()
    sleeper, marker = _sleeper()
    # the script reaches the worker through its environment, so that only the script's processes show the marker
    worker = f"""
import sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
import paramiko
from cronium_provider.runners.base import ScriptJob
from cronium_provider.runners.ssh import SSHScriptExecutor
client = paramiko.SSHClient()
client.set_missing_host_key_policy(paramiko.RejectPolicy())
client.get_host_keys().add("[{server.address}]:{server.port}", "ssh-ed25519",
    paramiko.Ed25519Key(data=__import__("base64").b64decode({server.host_public_key.split()[1]!r})))
client.connect({server.address!r}, {server.port}, username={server.user!r},
    key_filename={str(server.client_key_path)!r}, look_for_keys=False, allow_agent=False)
script = __import__("os").environ["FAULT_SCRIPT"]
SSHScriptExecutor(client, "app-2").run(ScriptJob("BASH", script, input={{}}, environment={environment!r}))
"""
    before = _run_folders()
    script = f"({sleeper}; echo orphan) & {sleeper}"
    env = {**os.environ, "FAULT_SCRIPT": script}
    process = subprocess.Popen([sys.executable, "-c", worker], stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(_processes(marker)) < 2 and process.poll() is None:
            time.sleep(0.1)
        assert len(_processes(marker)) >= 2, process.stderr.read().decode() if process.poll() is not None else ""
        folders = _run_folders() - before
        assert len(folders) == 1, folders
        process.kill()
        process.wait(10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (_processes(marker) or any(Path(f).exists() for f in folders)):
            time.sleep(0.2)
        assert _processes(marker) == [], "the script's session survived its task process"
        assert not any(Path(f).exists() for f in folders), "the run folder survived its task process"
    finally:
        if process.poll() is None:
            process.kill()
        server.stop()
        for line in _processes(marker):
            os.kill(int(line.split()[0]), signal.SIGKILL)


def test_a_detached_run_nobody_follows_stops_itself_at_its_time_limit(sshd_binary, tmp_path) -> None:
    """A deferred SSH script is started detached: closing the connection does not touch it. When no
    triggerer ever takes it up, the watchdog the wrapper starts in the script's session is the last resort:
    at the time limit (here 4 s; a deferred task gives its timeout plus a margin) it stops the whole session,
    background processes included, and removes the run folder; until then the script runs on."""

    from cronium_provider.runners.base import ScriptJob
    from cronium_provider.runners.ssh import KILL_GRACE_SECONDS, SSHScriptExecutor

    ensure_test_user()
    server = TestSSHServer(sshd_binary, tmp_path / "sshd", address="127.0.0.53", port=2222, user=TEST_USER).start()
    sleeper, marker = _sleeper()
    before = _run_folders()
    client = None
    try:
        client = server.client()
        run = SSHScriptExecutor(client, "app-3").start_detached(
            ScriptJob("BASH", f"({sleeper}; echo orphan) & {sleeper}", input={}),
            time_limit=3,  # the wrapper's watchdog waits int(limit) + 1 s
        )
        started = time.monotonic()
        client.close()
        assert _run_folders() - before == {run.run_dir}
        time.sleep(1)
        assert len(_processes(marker)) >= 2, "the detached script did not outlive its connection"

        deadline = started + 30
        while time.monotonic() < deadline and _processes(marker):
            time.sleep(0.1)
        stopped = time.monotonic() - started
        assert _processes(marker) == [], "the detached run outlived its time limit"
        assert 3.5 < stopped < 4 + 3, f"stopped {stopped:.1f} s after its start, not at its 4 s limit"
        while time.monotonic() < deadline and Path(run.run_dir).exists():
            time.sleep(0.2)
        assert not Path(run.run_dir).exists(), "the detached run's folder outlived its time limit"
        assert time.monotonic() - started < 4 + KILL_GRACE_SECONDS + 3
    finally:
        if client is not None:
            client.close()
        server.stop()
        for line in _processes(marker):
            os.kill(int(line.split()[0]), signal.SIGKILL)
