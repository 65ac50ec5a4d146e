"""One deferred remote script that floods its output does not hold up the other triggers of its triggerer.

Two :class:`~cronium_provider.triggers.ssh.CroniumSSHTrigger` instances, the real trigger code, follow two
scripts started detached on a real sshd (127.0.0.71) in one event loop, as a triggerer runs them: one script
rewrites every file of its run folder with thousands of would-be masks and writes a 40 MB line and 100,000
short ones; the other writes a stamped line every 0.4 s. Each line is written to the log as the triggerer
writes it (masked by Airflow's secrets masker).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.sshd import TEST_USER, TestSSHServer, ensure_test_user

pytestmark = [pytest.mark.ssh]

ADDRESS = "127.0.0.71"
TICKS = 20
EMPTY_LINES = 300_000  # 64 KiB of them once took the event loop a third of a second to log


@pytest.fixture
def server(sshd_binary: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestSSHServer]:
    ensure_test_user()
    started = TestSSHServer(sshd_binary, tmp_path / "sshd", address=ADDRESS, port=2222, user=TEST_USER).start()
    monkeypatch.setenv("AIRFLOW_CONN_CRONIUM_FLOOD", started.airflow_connection())
    try:
        yield started
    finally:
        started.stop()


class _Lines(logging.Handler):
    """The trigger's log lines as the triggerer writes them (masked), each with when it was written."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        from airflow.sdk._shared.secrets_masker import redact

        self.lines.append((time.time(), str(redact(record.getMessage()))))


def _trigger(name: str, run: Any, *masked: str) -> tuple[Any, _Lines]:
    from cronium_provider.triggers.ssh import CroniumSSHTrigger

    trigger = CroniumSSHTrigger(
        runs=[
            {
                "server": name,
                "conn_id": "cronium_flood",
                "run_dir": run.run_dir,
                "session": run.session,
                "started_at": run.started_at,
            }
        ],
        deadline=time.time() + 240,
        timeout_seconds=240,
        masked=list(masked),
        task_label=f"flood.{name}",
    )
    handler = _Lines()
    logger = logging.getLogger(f"cronium.test.flood.{name}.{secrets.token_hex(4)}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    trigger._log = logger
    return trigger, handler


async def _events(trigger: Any) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


def test_a_flooding_script_does_not_hold_up_another_triggers_lines(server: TestSSHServer) -> None:
    """The flooding script's rewritten run-folder files mask nothing (the masks travel with the trigger: a
    word the script wrote there shows in the other task's log; each task's own secret shows ``***``); its own
    masked values, which hold a word of the other task's output, hide it in its own lines only; its 40 MB
    line is cut; and the other script's lines reach the log within 1.5 s of being written all along, through
    300,000 empty lines (output is fed 4 KiB a turn)."""
    from airflow.sdk._shared.secrets_masker import _secrets_masker

    from cronium_provider.runners.base import ScriptJob
    from cronium_provider.runners.ssh import SSHScriptExecutor

    word = f"plain{secrets.token_hex(4)}"
    secret_a, secret_b = f"a-{secrets.token_hex(8)}", f"b-{secrets.token_hex(8)}"
    flood = textwrap.dedent(
        f"""\
        cd "$CRONIUM_RUN_DIR"
        for f in .env variables.json; do [ -f "$f" ] && chmod u+w "$f"; done
        i=0; while [ $i -lt 3000 ]; do echo "export DTEST_TOKEN=w$i"; i=$((i+1)); done > .env
        echo "export DTEST_TOKEN={word}" >> .env
        printf '{{"api_token": "{word}", "password": "{word}"}}' > variables.json
        echo "flood begins"
        echo "{word}"
        sleep 1
        head -c 40000000 /dev/zero | tr '\\0' x
        echo
        seq 1 100000
        yes '' | head -n {EMPTY_LINES}
        echo "flood ends"
        """
    )
    ticker = f'for i in $(seq 1 {TICKS}); do echo "tick $(date +%s.%N) {word} $DTEST_TOKEN"; sleep 0.4; done'
    client = server.client()
    runs = []
    try:
        for name, script, secret in (("flood", flood, secret_a), ("ticks", ticker, secret_b)):
            run = SSHScriptExecutor(client, name).start_detached(
                ScriptJob(
                    "BASH",
                    script,
                    input={},
                    variables={"api_token": secret, "password": secret},
                    environment={"DTEST_TOKEN": secret},
                ),
                time_limit=200,
            )
            runs.append(run)
            time.sleep(0.5)  # the flooding script has rewritten its folder's files before anything reads them
        # the flooding task's own secrets include a word of the other task's output: they hide it in its own
        # lines only, never in another task's (the triggerer's masker is one per process)
        flooder, flood_lines = _trigger(runs[0].server, runs[0], secret_a, word)
        ticks, tick_lines = _trigger(runs[1].server, runs[1], secret_b)

        async def both() -> list[list[dict[str, Any]]]:
            return await asyncio.wait_for(asyncio.gather(_events(flooder), _events(ticks)), 180)

        events = asyncio.run(both())
    finally:
        for run in runs:
            SSHScriptExecutor(client, run.server).stop_detached(run)
        client.close()
        _secrets_masker().reset_masker()

    assert [e[0]["status"] for e in events] == ["exited", "exited"], events
    assert [e[0]["runs"][0]["exit_code"] for e in events] == [0, 0], events
    ticked = [(at, line) for at, line in tick_lines.lines if line.startswith("[ticks stdout] tick ")]
    assert len(ticked) == TICKS, tick_lines.lines
    assert all(line.endswith(f" {word} ***") for _at, line in ticked), ticked[:3]
    following = ticked[0][0]  # from when the trigger follows the script: its first line reached the log
    lags = [at - float(line.split()[3]) for at, line in ticked if float(line.split()[3]) > following]
    assert len(lags) > TICKS // 2, ticked
    assert max(lags) < 1.5, f"the other script's lines reached the log up to {max(lags):.1f} s late: {lags}"
    written = [line for _t, line in flood_lines.lines]
    assert "[flood stdout] flood begins" in written and "[flood stdout] flood ends" in written
    long_line = next(line for line in written if line.startswith("[flood stdout] xxx"))
    assert long_line.endswith(f" [... {40000000 - 65536} more bytes of this line cut]"), long_line[-100:]
    assert len(written) == 100004 + EMPTY_LINES, len(written)
    assert "[flood stdout] ***" in written and f"[flood stdout] {word}" not in written  # its own masks hold
