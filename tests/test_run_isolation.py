"""Runs that share a server login do not see each other: nothing of a run outlives its end.

Real sshd servers on 127.0.0.73 .. 127.0.0.76 (tests/support/sshd.py), one login for every run. Event A
starts processes meant to outlive it (a double fork, ``setsid``, ``nohup ... & disown``, and one that also
drops its environment and leaves its run folder) which, 4 s later, read every run folder's ``.env`` they can
find and append A's variable change to every ``variables.log``; event B runs right after A, with a secret,
for 8 s. A ends normally or is stopped (a timeout, a kill), attached or deferred (followed by the real
trigger, collected as a resumed task collects it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.sshd import TEST_USER, TestSSHServer, ensure_test_user

pytestmark = [pytest.mark.ssh]

MODES = {"attached": "127.0.0.73", "attached-stopped": "127.0.0.74", "deferred": "127.0.0.75"}
MODES["deferred-stopped"] = "127.0.0.76"
FINDABLE = ("bg", "setsid", "nohup")  # left behind in ways the run's end finds; "escape" hides its tracks


def _leftover_script(tag: str, then: str) -> str:
    leak = f"/tmp/cronium-leak-{tag}"
    probe = (
        "sleep 4; for f in /tmp/cronium-run*/.env /tmp/cronium-run*/*/.env @PARENT@/*/.env; "
        f'do cat "$f"; done >> {leak} 2>&1; ls -a @PARENT@ >> {leak} 2>&1; '
        "for f in /tmp/cronium-run*/variables.log /tmp/cronium-run*/*/variables.log @PARENT@/*/variables.log; "
        f'do cat {leak}.line >> "$f"; done 2>/dev/null; sleep 20; exit 0'
    )
    return textwrap.dedent(
        f"""\
        cronium_set_variable injected from-a
        cp "$CRONIUM_RUN_DIR/variables.log" {leak}.line
        probe=$(printf '%s' '{probe}' | sed "s|@PARENT@|$(dirname "$CRONIUM_RUN_DIR")|g")
        ( sh -c "$probe" leftover-{tag}-bg & )
        setsid sh -c "$probe" leftover-{tag}-setsid &
        nohup sh -c "$probe" leftover-{tag}-nohup >/dev/null 2>&1 & disown
        setsid env -i sh -c "cd /; $probe" leftover-{tag}-escape &
        sleep 0.5
        {then}
        """
    )


def _leftovers(tag: str) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for line in subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True).stdout.splitlines():
        pid, _, args = line.strip().partition(" ")
        for kind in (*FINDABLE, "escape"):
            if f"leftover-{tag}-{kind}" in args:
                found.setdefault(kind, []).append(int(pid))
    return found


def _run_attached(client: Any, name: str, script: str, environment: dict[str, str], stop_after: float | None) -> Any:
    from cronium_provider.runners.base import ScriptJob
    from cronium_provider.runners.ssh import SSHScriptExecutor

    executor = SSHScriptExecutor(client, name)
    if stop_after is not None:  # a timeout or a kill: the task stops the run while its script runs
        threading.Timer(stop_after, executor.stop).start()
    return executor.run(ScriptJob("BASH", script, input={}, environment=environment))


def _run_deferred(client: Any, name: str, script: str, environment: dict[str, str], stop_after: float | None) -> Any:
    """Start detached, follow with the real trigger until it ends, collect as the resumed task does; or
    stop it as the trigger does at a timeout."""
    from cronium_provider.runners.base import ScriptJob
    from cronium_provider.runners.ssh import SSHScriptExecutor
    from cronium_provider.triggers.ssh import CroniumSSHTrigger

    executor = SSHScriptExecutor(client, name)
    run = executor.start_detached(ScriptJob("BASH", script, input={}, environment=environment))
    trigger = CroniumSSHTrigger(
        runs=[
            {
                "server": name,
                "conn_id": "cronium_isolation",
                "run_dir": run.run_dir,
                "session": run.session,
                "started_at": run.started_at,
            }
        ],
        deadline=time.time() + (stop_after if stop_after is not None else 120),
        timeout_seconds=stop_after,
    )

    async def follow() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    (event,) = asyncio.run(asyncio.wait_for(follow(), 150))
    if event["status"] == "timeout":
        return None
    (facts,) = event["runs"]
    assert facts["error"] is None, facts
    return SSHScriptExecutor(client, name).finish_detached(run, facts["exit_code"], facts["duration_seconds"])


@pytest.fixture(params=list(MODES))
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(mode: str, sshd_binary: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestSSHServer]:
    ensure_test_user()
    address = MODES[mode]
    started = TestSSHServer(sshd_binary, tmp_path / "sshd", address=address, port=2222, user=TEST_USER).start()
    monkeypatch.setenv("AIRFLOW_CONN_CRONIUM_ISOLATION", started.airflow_connection())
    try:
        yield started
    finally:
        started.stop()


def test_what_a_run_leaves_behind_cannot_reach_the_next_run_of_the_same_login(mode: str, server: TestSSHServer) -> None:
    tag = secrets.token_hex(6)
    secret = f"b-secret-{secrets.token_hex(8)}"
    stop_after = 1.5 if mode.endswith("-stopped") else None
    run = _run_deferred if mode.startswith("deferred") else _run_attached
    client = server.client()
    try:
        then = "sleep 300" if stop_after is not None else "echo a-done"
        run(client, "a", _leftover_script(tag, then), {}, stop_after)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and any(k in _leftovers(tag) for k in FINDABLE):
            time.sleep(0.1)
        survivors = {k: v for k, v in _leftovers(tag).items() if k in FINDABLE}
        assert survivors == {}, f"processes of run A outlived its end: {survivors}"

        b = run(
            client, "b", 'sleep 8; cronium_set_variable b_var from-b; echo "b: $B_SECRET"', {"B_SECRET": secret}, None
        )
        assert b is not None and b.exit_code == 0 and b.protocol_error is None, b
        assert b.results is not None
        changes = [(c.key, c.value) for c in b.results.variable_changes]
        assert changes == [("b_var", "from-b")], f"run A's leftovers wrote into run B's folder: {changes}"
        leak = Path(f"/tmp/cronium-leak-{tag}")
        seen = leak.read_text(errors="replace") if leak.exists() else ""
        read = [line for line in seen.splitlines() if secret in line]
        assert read == [], f"run A's leftovers read run B's environment file: {read}"
    finally:
        client.close()
        for pids in _leftovers(tag).values():
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for path in (f"/tmp/cronium-leak-{tag}", f"/tmp/cronium-leak-{tag}.line"):
            Path(path).unlink(missing_ok=True)
