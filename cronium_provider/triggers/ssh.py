"""The trigger of a deferred remote script: it follows the script on each of its servers from the triggerer.

The worker uploads each server's run folder, starts the script detached and defers
(:class:`~cronium_provider.operators.ssh_script.CroniumRemoteScriptOperator` with ``deferrable=True``); this
trigger then, in the triggerer's event loop, over one ``asyncssh`` connection per server (the SSH provider's
``SSHHookAsync``, which reads the Airflow connection in the triggerer):

* follows the script's stdout and stderr files and writes each line to the task's log as the normal mode
  does (``[server stdout] ...``, a line longer than 64 KiB cut), with the run's secrets masked as on the
  worker;
* waits for every server's script to end and fires ``{"status": "exited", "runs": [...]}`` with each exit
  code: the task resumes on a worker and collects the results with the normal mode's code (which removes
  each run folder);
* at the task's ``execution_timeout``, stops every server's script (SIGTERM to its session, SIGKILL 5 s
  later, as the normal mode), removes the run folders and fires ``{"status": "timeout"}``: the resumed task
  fails as timed out;
* when a person clears the task or marks it failed or successful (:meth:`on_kill`), does the same.

Its serialized arguments are each server's name, Airflow SSH connection id, run folder and session id, the
deadline, and the values the run masks in logs (the script's environment and the secret Variables it was given,
as the worker knew them before the script started; nothing the script can rewrite on the server): stored
encrypted with the trigger, as Airflow stores Variables, and never shown by ``repr``. No SSH key or password is
ever in them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.triggers.base import TriggerEvent

from cronium_provider.runners.base import RunEnd
from cronium_provider.runners.outcome import LineSplitter, feed_slices
from cronium_provider.runners.ssh import (
    KILL_GRACE_SECONDS,
    POLL_DONE,
    POLL_FOLDER_GONE,
    POLL_NO_EXIT_CODE,
    exit_code_command,
    follow_command,
    rest_command,
    stop_detached_command,
)
from cronium_provider.triggers.base import CroniumRunTrigger

COMMAND_TIMEOUT_SECONDS = 60  # a short command on the server (read the exit code, the environment file)
RECONNECT_ATTEMPTS = 8  # in a row, with back-off (1, 2, 4 ... 30 s) before a server is given up
STOP_TIMEOUT_SECONDS = KILL_GRACE_SECONDS + 20


class CroniumSSHTrigger(CroniumRunTrigger):
    """
    Follow a deferred remote script on each of its servers until all have ended, it times out or its task
    is killed.

    :param runs: one per server: ``{"server", "conn_id", "run_dir", "session", "started_at"}`` (its name,
        Airflow SSH connection, run folder, the session id its wrapper printed, and when it started).
    :param deadline: when the task's ``execution_timeout`` ends (seconds since the epoch), None for none;
        ``timeout_seconds``: that timeout, for the messages.
    :param masked: values masked in the task's log (the run's secrets), masked here too.
    :param start_failures: the servers where the script could not start (``{name: {"error", "refused"}}``),
        handed back to the task with the others' results.
    :param poll_interval: seconds between two looks at a server's files (whole seconds, at least 1).
    :param task_label: ``dag_id.task_id``, for the triggerer's own messages.
    """

    what_stops = "the script on every server"

    def __init__(
        self,
        *,
        runs: Sequence[dict[str, Any]],
        deadline: float | None = None,
        timeout_seconds: float | None = None,
        masked: Sequence[Any] = (),
        start_failures: dict[str, dict[str, Any]] | None = None,
        poll_interval: int = 1,
        task_label: str = "",
    ) -> None:
        super().__init__(deadline=deadline, timeout_seconds=timeout_seconds, masked=masked, task_label=task_label)
        self.runs: list[dict[str, Any]] = [
            {
                "server": str(r["server"]),
                "conn_id": str(r["conn_id"]),
                "run_dir": str(r["run_dir"]),
                "session": int(r["session"]),
                "started_at": float(r["started_at"]),
            }
            for r in runs
        ]
        self.start_failures = dict(start_failures or {})
        self.poll_interval = max(1, int(poll_interval))
        self._connections: dict[str, Any] = {}

    def run_kwargs(self) -> dict[str, Any]:
        return {"runs": self.runs, "start_failures": self.start_failures, "poll_interval": self.poll_interval}

    def __repr__(self) -> str:
        servers = ",".join(r["server"] for r in self.runs)
        return (
            f"<{type(self).__qualname__} servers={servers} task={self.task_label} deadline={self.deadline} "
            f"masked={len(self.masked)} value(s)>"
        )

    # -- connections ---------------------------------------------------------------------------------
    async def _connect(self, run: dict[str, Any]) -> Any:
        from airflow.providers.ssh.hooks.ssh import SSHHookAsync

        connection = await SSHHookAsync(ssh_conn_id=run["conn_id"]).get_conn()
        self._connections[run["server"]] = connection
        return connection

    async def _drop(self, server: str) -> None:
        connection = self._connections.pop(server, None)
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()
                await asyncio.wait_for(connection.wait_closed(), 10)

    # -- following -----------------------------------------------------------------------------------
    async def run(self) -> AsyncIterator[TriggerEvent]:
        followers = {r["server"]: asyncio.create_task(self._follow(r)) for r in self.runs}
        try:
            _done, pending = await asyncio.wait(followers.values(), timeout=self.remaining())
            if pending:
                servers = ", ".join(r["server"] for r in self.runs)
                self.timeout_warning(f"the script on {servers}", KILL_GRACE_SECONDS, " and removing its run folder(s)")
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                await self.stop_run()
                yield self.end(RunEnd.TIMEOUT)
                return
            runs = [{**run, **followers[run["server"]].result()} for run in self.runs]
            yield self.end(RunEnd.EXITED, runs=runs, start_failures=self.start_failures)
        finally:
            for task in followers.values():
                task.cancel()
            await asyncio.gather(*followers.values(), return_exceptions=True)
            for server in list(self._connections):
                await self._drop(server)

    async def _follow(self, run: dict[str, Any]) -> dict[str, Any]:
        """Follow one server's script to its end; returns ``{"exit_code", "error", "duration_seconds"}``.
        Never raises (but for cancellation): what went wrong is the server's ``error``."""
        import asyncssh

        server = run["server"]
        splitter = LineSplitter(lambda stream, line: self.log.info("[%s %s] %s", server, stream, self.redact(line)))
        offsets = {"stdout": 0, "stderr": 0}
        failures = 0
        while True:
            try:
                connection = self._connections.get(server)
                if connection is None:
                    connection = await self._connect(run)
                status = await self._follow_once(connection, run, splitter, offsets)
                failures = 0
                if status in (POLL_DONE, POLL_NO_EXIT_CODE):  # the lines the follower had not sent yet
                    await self._stream(connection, rest_command(run["run_dir"], **_offsets(offsets)), splitter, offsets)
                if status == POLL_DONE:
                    splitter.close()
                    result = await connection.run(
                        exit_code_command(run["run_dir"]), check=False, timeout=COMMAND_TIMEOUT_SECONDS
                    )
                    text = str(result.stdout or "").strip()
                    if result.exit_status == 0 and text.lstrip("-").isdigit():
                        return self._result(run, int(text), None, splitter)
                    return self._result(
                        run, None, f"{server}: the script's exit code cannot be read: {text!r}", splitter
                    )
                splitter.close()
                if status == POLL_NO_EXIT_CODE:
                    error = (
                        f"{server}: the script's session ended without an exit code (it was killed from "
                        "outside the run, or the server restarted)"
                    )
                elif status == POLL_FOLDER_GONE:
                    error = f"{server}: the run folder {run['run_dir']} is gone from the server"
                else:
                    error = f"{server}: following the script ended unexpectedly (status {status})"
                return self._result(run, None, error, splitter)
            except asyncio.CancelledError:
                raise
            except (OSError, asyncssh.Error, TimeoutError) as exc:
                failures += 1
                await self._drop(server)
                if failures > RECONNECT_ATTEMPTS:
                    splitter.close()
                    return self._result(
                        run,
                        None,
                        f"{server}: the SSH connection was lost while waiting for the script and could not be "
                        f"made again ({type(exc).__name__}: {exc}); the script may still run there",
                        splitter,
                    )
                delay = min(30.0, 2.0 ** (failures - 1))
                self.log.warning("[%s] SSH connection lost (%s); connecting again in %.0f s", server, exc, delay)
                await asyncio.sleep(delay)
            except Exception as exc:  # a connection that cannot be read at all (no such Airflow connection...)
                splitter.close()
                return self._result(
                    run, None, f"{server}: cannot follow the script: {type(exc).__name__}: {exc}", splitter
                )

    async def _follow_once(
        self, connection: Any, run: dict[str, Any], splitter: LineSplitter, offsets: dict[str, int]
    ) -> int:
        """Run the follower on the server (:func:`~cronium_provider.runners.ssh.follow_command`) from the
        offsets already read; returns its exit status when the run has ended."""
        command = follow_command(run["run_dir"], run["session"], poll_interval=self.poll_interval, **_offsets(offsets))
        return await self._stream(connection, command, splitter, offsets)

    @staticmethod
    async def _stream(connection: Any, command: str, splitter: LineSplitter, offsets: dict[str, int]) -> int:
        """Run ``command``, feeding its stdout and stderr to the script's lines and counting the bytes read;
        returns its exit status."""
        process = await connection.create_process(command, encoding=None)

        async def pump(reader: Any, stream: str) -> None:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                offsets[stream] += len(chunk)
                for piece in feed_slices(chunk):
                    splitter.feed(stream, piece)
                    await asyncio.sleep(0)  # the other triggers' turn, however fast this script writes

        try:
            await asyncio.gather(pump(process.stdout, "stdout"), pump(process.stderr, "stderr"))
            completed = await process.wait()
        finally:
            process.close()
        if completed.exit_status is None:  # the channel closed without a status: the connection went away
            raise ConnectionError(f"the command on the server stopped without a status ({completed.exit_signal})")
        return int(completed.exit_status)

    def _result(
        self, run: dict[str, Any], exit_code: int | None, error: str | None, splitter: LineSplitter
    ) -> dict[str, Any]:
        return {
            "exit_code": exit_code,
            "error": error,
            "duration_seconds": round(max(0.0, time.time() - run["started_at"]), 3),
            # the ends of its stdout and stderr, redacted as its lines were logged: the run's log for its messages
            "stdout": self.redact(splitter.text("stdout")),
            "stderr": self.redact(splitter.text("stderr")),
        }

    # -- stopping ------------------------------------------------------------------------------------
    async def stop_run(self) -> None:
        """Stop every server's script and remove its run folder (the normal mode's kill guard), at once."""

        async def stop(run: dict[str, Any]) -> None:
            server = run["server"]
            try:
                await self._drop(server)  # a fresh connection: the old one may be the one that failed
                connection = await asyncio.wait_for(self._connect(run), COMMAND_TIMEOUT_SECONDS)
                await connection.run(
                    stop_detached_command(run["run_dir"], run["session"]), check=False, timeout=STOP_TIMEOUT_SECONDS
                )
                self.log.info("[%s] stopped the script and removed its run folder %s", server, run["run_dir"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.log.warning("[%s] could not stop the script or remove %s: %s", server, run["run_dir"], exc)
            finally:
                await self._drop(server)

        await asyncio.gather(*(stop(r) for r in self.runs))
        self.stopped = True


def _offsets(offsets: dict[str, int]) -> dict[str, int]:
    return {"out_offset": offsets["stdout"], "err_offset": offsets["stderr"]}
