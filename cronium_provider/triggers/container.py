"""The trigger of a deferred container script: it follows the script's container from the triggerer.

The worker starts the container and defers (:class:`~cronium_provider.operators.container_script.
CroniumScriptOperator` with ``deferrable=True``); this trigger then, in the triggerer's event loop and with
the asynchronous Docker client ``aiodocker``:

* follows the container's log and writes each stdout and stderr line to the task's log as the normal mode
  does (``[stdout] ...``), with the run's secrets masked as on the worker;
* samples its memory use (the ``peak_memory_bytes`` of the run's metrics);
* waits for it to exit and fires ``{"status": "exited", "exit_code": ...}``: the task resumes on a worker
  and collects the results with the normal mode's code (which removes the container and its run folder);
* at the task's ``execution_timeout``, stops it (SIGTERM, SIGKILL 5 s later, as the normal mode), removes it
  with its run folder and fires ``{"status": "timeout"}``: the resumed task fails as timed out;
* when a person clears the task or marks it failed or successful (:meth:`on_kill`), stops and removes it.

Its serialized arguments are ids (container, run folder volume and holder), the Docker daemon's URL, the
deadline, and the values the run masks in logs (the script's environment and the secret Variables it was
given): stored encrypted with the trigger, as Airflow stores Variables, and never shown by ``repr``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import TriggerEvent

from cronium_provider.runners.base import RunEnd
from cronium_provider.runners.container import sample_memory_bytes
from cronium_provider.runners.outcome import LineSplitter
from cronium_provider.triggers.base import CroniumRunTrigger

STOP_GRACE_SECONDS = 5  # SIGTERM, then SIGKILL this much later: as the normal mode and Cronium
LOG_DRAIN_SECONDS = 10  # after the exit, how long the last log lines may take to arrive
TAIL_CHECK_FRAMES = 64  # the log frames read again once the followed log ended (see _follow_log)
# A container removed from outside is, most often, that of a try that is over (a later try or another
# worker's cleanup removed it): Airflow then cancels this trigger within seconds. Only if it does not is the
# task told, so that a stale trigger never reports on a try that is no longer its own.
VANISHED_GRACE_SECONDS = 30
STREAMS = {1: "stdout", 2: "stderr"}
_FRAME_HEADER = struct.Struct(">BxxxL")  # Docker's multiplexed log frame: stream, 3 zero bytes, length


def aiodocker_url(url: str) -> str:
    """The daemon URL as aiodocker reads it: ``unix://var/run/docker.sock`` (docker-py's relative form)
    becomes ``unix:///var/run/docker.sock``."""
    prefix = "unix://"
    if url.startswith(prefix) and not url[len(prefix) :].startswith("/"):
        return prefix + "/" + url[len(prefix) :]
    return url


@contextlib.asynccontextmanager
async def _stream(docker: Any, path: str, params: dict[str, str]) -> AsyncIterator[Any]:
    """A streamed Docker answer (a log, stats), with no total timeout, closed when the block ends, however
    it ends. aiodocker's own ``_query`` leaves the answer open when its reader stops early (a task
    cancelled, a stream left before its end): the garbage collector then reports an "Unclosed
    connection" error in whichever task's log the triggerer writes at that moment."""
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=None, sock_read=None, sock_connect=30)
    async with docker._query(path, params=params, timeout=timeout) as response:
        try:
            yield response
        finally:
            response.close()


class CroniumContainerTrigger(CroniumRunTrigger):
    """
    Follow a deferred script's container until it exits, times out or its task is killed.

    :param container_id: the script's container.
    :param volume: its run folder volume; ``holder``: the container keeping it mounted; ``run_folder_mb``:
        its size (all three handed back to the resumed task, and removed with the container on timeout or
        kill).
    :param docker_url: the Docker daemon (the one the worker started the container on).
    :param deadline: when the task's ``execution_timeout`` ends (seconds since the epoch), None for none;
        ``timeout_seconds``: that timeout, for the messages.
    :param masked: values masked in the task's log (the run's secrets), masked here too.
    :param task_label: ``dag_id.task_id``, for the triggerer's own messages.
    """

    what_stops = "the script's container"

    def __init__(
        self,
        *,
        container_id: str,
        volume: str,
        holder: str | None,
        run_folder_mb: int,
        docker_url: str,
        deadline: float | None = None,
        timeout_seconds: float | None = None,
        masked: list[Any] | None = None,
        task_label: str = "",
    ) -> None:
        super().__init__(deadline=deadline, timeout_seconds=timeout_seconds, masked=masked, task_label=task_label)
        self.container_id = container_id
        self.volume = volume
        self.holder = holder
        self.run_folder_mb = run_folder_mb
        self.docker_url = docker_url
        # the followed log's lines (each to _log_line as it is then); their ends go in the end event
        self._splitter = LineSplitter(lambda stream, line: self._log_line(stream, line))

    def run_kwargs(self) -> dict[str, Any]:
        return {**self._run_facts(), "docker_url": self.docker_url}

    def __repr__(self) -> str:
        return (
            f"<{type(self).__qualname__} container={self.container_id[:12]} task={self.task_label} "
            f"deadline={self.deadline} masked={len(self.masked)} value(s)>"
        )

    def _docker(self) -> Any:
        import aiodocker
        import aiohttp

        # calls answer within a minute; the long ones (wait, log, stats) set no total of their own
        return aiodocker.Docker(
            url=aiodocker_url(self.docker_url), timeout=aiohttp.ClientTimeout(total=60, sock_connect=30)
        )

    def _error_event(self, what: str) -> TriggerEvent:
        return self.end(
            RunEnd.ERROR, message=f"the script's container {self.container_id[:12]} {what}", **self._run_facts()
        )

    @staticmethod
    async def _vanished(container: Any) -> bool:
        """Whether the container that stopped was removed (a forced removal stops it first), not exited."""
        from aiodocker.exceptions import DockerError

        try:
            info = await container.show()
        except DockerError as exc:
            return exc.status == 404
        return str((info.get("State") or {}).get("Status")) in ("removing", "dead")

    def _run_facts(self) -> dict[str, Any]:
        return {
            "container_id": self.container_id,
            "volume": self.volume,
            "holder": self.holder,
            "run_folder_mb": self.run_folder_mb,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import aiohttp
        from aiodocker.exceptions import DockerError

        docker = self._docker()
        peak: list[int] = []
        follow: asyncio.Task[None] | None = None
        sampler: asyncio.Task[None] | None = None
        try:
            container = docker.containers.container(self.container_id)
            follow = asyncio.create_task(self._follow_log(docker))
            sampler = asyncio.create_task(self._sample_memory(docker, peak))
            status: dict[str, Any] | None = None
            try:
                status = await asyncio.wait_for(container.wait(), timeout=self.remaining())
            except TimeoutError:
                self.timeout_warning("the script's container", STOP_GRACE_SECONDS)
                await self._stop_and_remove(docker)
                yield self.end(RunEnd.TIMEOUT, **self._run_facts())
                return
            except DockerError as exc:
                if exc.status != 404:
                    yield self._error_event(f"could not be followed: {exc}")
                    return
            except (OSError, aiohttp.ClientError) as exc:  # the daemon went away
                yield self._error_event(f"could not be followed: {exc}")
                return
            if status is None or await self._vanished(container):
                self.log.warning(
                    "The script's container %s was removed from outside while the task was deferred",
                    self.container_id[:12],
                )
                await asyncio.sleep(VANISHED_GRACE_SECONDS)  # a trigger of a try that is over is cancelled now
                yield self._error_event("was removed from outside while the task was deferred")
                return
            with contextlib.suppress(TimeoutError):  # the log ends at the exit: its last lines are in flight
                await asyncio.wait_for(asyncio.shield(follow), LOG_DRAIN_SECONDS)
            yield self.end(
                RunEnd.EXITED,
                exit_code=int(status.get("StatusCode", -1)),
                peak_memory_bytes=max(peak) if peak else None,
                # the ends of its stdout and stderr, redacted as its lines were logged: the run's log
                stdout=self.redact(self._splitter.text("stdout")),
                stderr=self.redact(self._splitter.text("stderr")),
                **self._run_facts(),
            )
            return
        finally:
            for task in (follow, sampler):
                if task is not None:
                    task.cancel()
            await asyncio.gather(*(t for t in (follow, sampler) if t is not None), return_exceptions=True)
            await docker.close()

    async def _follow_log(self, docker: Any) -> None:
        """Write the container's stdout and stderr lines to the task's log, from its first line on.

        Docker's ``logs`` endpoint with ``follow`` (not ``attach``, which waits for ever on a container that
        already exited) in its multiplexed form, whose frames say which stream each chunk is from;
        aiodocker's ``log()`` drops that, so the frames are read here through its request method. The
        followed log of Docker 20.10 often ends without the script's last chunk when that has no newline
        (29 runs in 70 here): once it ends, the log's last :data:`TAIL_CHECK_FRAMES` frames are read again
        and those not seen yet are written too.
        """
        splitter = self._splitter
        seen: collections.deque[bytes] = collections.deque(maxlen=TAIL_CHECK_FRAMES)
        try:
            async for stream, data in self._frames(docker, follow=True):
                seen.append(data)
                splitter.feed(stream, _without_time(data))
                await asyncio.sleep(0)  # the other triggers' turn, however fast this script writes
            tail = [frame async for frame in self._frames(docker, follow=False)]
            for stream, data in _unseen(tail, list(seen)):
                splitter.feed(stream, _without_time(data))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the daemon went away: the wait says so
            self.log.warning("Following the script's log stopped: %s", exc)
        finally:
            splitter.close()

    async def _frames(self, docker: Any, *, follow: bool) -> AsyncIterator[tuple[str, bytes]]:
        """The log's frames, each ``(stream, b"<time> <chunk>")``: followed from the start, or the last
        :data:`TAIL_CHECK_FRAMES` as they are now."""
        params = {"stdout": "1", "stderr": "1", "timestamps": "1"}
        params.update({"follow": "1"} if follow else {"tail": str(TAIL_CHECK_FRAMES)})
        async with _stream(docker, f"containers/{self.container_id}/logs", params) as response:
            while True:
                try:
                    header = await response.content.readexactly(_FRAME_HEADER.size)
                except asyncio.IncompleteReadError:
                    return
                stream, length = _FRAME_HEADER.unpack(header)
                data = await response.content.readexactly(length) if length else b""
                yield STREAMS.get(stream, "stdout"), data

    def _log_line(self, stream: str, line: str) -> None:
        self.log.info("[%s] %s", stream, self.redact(line))

    async def _sample_memory(self, docker: Any, peak: list[int]) -> None:
        with contextlib.suppress(Exception):  # the stream ends with an error once the container is gone
            async with _stream(docker, f"containers/{self.container_id}/stats", {"stream": "1"}) as response:
                async for line in response.content:  # one JSON sample a line, about one a second
                    value = sample_memory_bytes(json.loads(line)) if line.strip() else 0
                    if value:
                        peak[:] = [max(peak[0], value)] if peak else [value]

    async def _stop_and_remove(self, docker: Any) -> None:
        """Stop the container (SIGTERM, SIGKILL 5 s later) and remove it, its holder and its run folder."""
        from aiodocker.exceptions import DockerError

        container = docker.containers.container(self.container_id)
        with contextlib.suppress(DockerError):  # already stopped or gone
            await container.stop(t=STOP_GRACE_SECONDS)

        async def remove(container_id: str) -> None:
            with contextlib.suppress(DockerError):
                await docker.containers.container(container_id).delete(force=True, v=True)

        await asyncio.gather(*(remove(c) for c in (self.container_id, self.holder) if c))
        from aiodocker.volumes import DockerVolume

        with contextlib.suppress(DockerError):
            await DockerVolume(docker, self.volume).delete(force=True)
        self.stopped = True
        self.log.info("Removed the script's container %s and its run folder", self.container_id[:12])

    async def stop_run(self) -> None:
        """:meth:`_stop_and_remove` with a client of its own (a stop outlives the trigger's own client)."""
        try:
            async with self._docker() as docker:
                await self._stop_and_remove(docker)
        except Exception as exc:
            self.log.warning("Stopping the script's container %s failed: %s", self.container_id[:12], exc)


def _unseen(tail: list[tuple[str, bytes]], seen: list[bytes]) -> list[tuple[str, bytes]]:
    """The frames of the log's tail that following the log did not give. What was followed is the start of
    the log and the tail its end, so the tail's first frames are the last ones seen: the fewest frames
    missing for which that holds. Frames carry Docker's nanosecond times, so equal frames are the same."""
    frames = [data for _, data in tail]
    overlaps = (kept for kept in range(min(len(frames), len(seen)), 0, -1) if frames[:kept] == seen[-kept:])
    return tail[next(overlaps, 0) :]


def _without_time(data: bytes) -> bytes:
    """A log frame's chunk, without the time Docker puts before it (``2026-11-28T15:35:01.673373123Z ``)."""
    stamp, space, rest = data.partition(b" ")
    return rest if space and stamp.endswith(b"Z") and b"T" in stamp else data
