"""Run one script in an isolated Docker container, speaking the runtime-helper file protocol.

The run folder ``/cronium`` is memory of a bounded size (``limits.run_folder_mb``), never the Docker host's
disk, and nothing is bind-mounted from the worker (a remote Docker daemon works too):

* a run followed to its end (:meth:`ContainerExecutor.run`) is ONE container whose run folder is its own
  tmpfs mount. Its first process is a small POSIX shell wrapper (:data:`WRAPPER`, in the runtime image, no
  binary of ours) that unpacks the run files sent on its stdin, runs the script as its child (the script's
  stdout and stderr are the container's: the attached stream and Docker's log), passes ``docker stop``'s
  SIGTERM on to it, and once it ended (its leftover processes killed) writes an end mark and the result
  files (each a regular file of at most ``max_result_bytes``, checked before it is sent) to its stdout, and
  exits with the script's exit code. No volume, no second container, no copy through the daemon;
* a deferred run (:meth:`ContainerExecutor.start`, followed by the triggerer, collected by the resumed
  task) keeps its results past the script's exit, so its run folder is a tmpfs volume kept mounted by a
  holder container (:mod:`~cronium_provider.runners.run_folder`) and the script is the container's process.

Each stdout and stderr line is handed to a callback as it is printed. The containers (and the volume) are
removed in every outcome. Nothing here knows about Airflow DAGs.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn

from cronium_provider.exceptions import ContainerLimitError, ScriptFailed
from cronium_provider.naming import (
    CONTAINER_LABEL_DEFERRED,
    CONTAINER_LABEL_HOST,
    CONTAINER_LABEL_PID,
    CONTAINER_LABEL_PID_START,
    CONTAINER_LABEL_RUN,
)
from cronium_provider.runners.base import Runner, ScriptJob
from cronium_provider.runners.outcome import (
    DEFAULT_MAX_RESULT_BYTES,
    STDERR_TAIL_LINES,
    LineCallback,
    LineSplitter,
    ScriptRun,
    not_regular,
    read_result_tar,
    read_run_results,
    stderr_tail_of,
    too_large,
)
from cronium_provider.runners.protocol import (
    RESULT_FILES,
    ProtocolError,
    ScriptResults,
    run_folder_tar,
    script_command,
    script_environment,
)
from cronium_provider.runners.run_folder import (
    DEFAULT_RUN_FOLDER_MB,
    MAX_RUN_FOLDER_MB,
    RunFolder,
    create_run_folder,
    remove_orphan_volumes,
)
from cronium_provider.settings import DOCKER_NETWORK_NAME

RUN_DIR = "/cronium"
RUN_USER = "1000:1000"
DEFAULT_LOG_MB = 10  # what Docker keeps of a script's output on its host ([cronium] container_log_mb)
END_MARK: Final = b"\x1e"  # then the run's token and a newline: the wrapper's end mark on stdout
NOTES_END: Final = b"cronium-end\n"  # after the notes on the result files, before their tar
_NOTES_BYTES = 64 * 1024
_TAR_SLICE = 64 * 1024  # the result files' tar is read back in slices of this many bytes

# The first process of a run's container (``sh -c WRAPPER sh <limit> <script argv>``), see the module's
# docstring. Its stdin: a token line, then the run files' tar. After the end mark: one note a line on a
# result file not sent (``cronium-refused <file> <what it is>``, ``cronium-too-large <file> <bytes>``), the
# run folder's use when the script failed (``cronium-used <KB>``), ``cronium-end``, the tar of those sent.
UNPACK_FAILED: Final = 125  # the wrapper's exit status when the run files could not be unpacked (no script ran)
WRAPPER: Final = (
    "trap 'exit 143' TERM; "  # stopped before the script started: it never starts
    f'l=$1; shift; IFS= read -r t || exit {UNPACK_FAILED}; cd "$CRONIUM_RUN_DIR" || exit {UNPACK_FAILED}; '
    f"tar -x -f - || {{ echo 'cronium: the run files could not be unpacked' >&2; exit {UNPACK_FAILED}; }}; "
    'unset PWD OLDPWD; "$@" </dev/null & c=$!; '  # the environment the script's own process would have
    """trap 'kill -TERM "$c" 2>/dev/null' TERM; """
    # a wait the forwarded TERM interrupts returns 143 even if the script then exits on its own: once it
    # is gone, one more wait gives its own status (the shell keeps it)
    'wait "$c" 2>/dev/null; while kill -0 "$c" 2>/dev/null; do wait "$c" 2>/dev/null; done; wait "$c"; s=$?; '
    "trap - TERM; kill -KILL -1 2>/dev/null; "
    """printf '\036%s\n' "$t"; set --; """
    f"for f in {' '.join(RESULT_FILES)}; do "
    'if [ -h "$f" ]; then echo "cronium-refused $f a symbolic link"; '
    'elif [ -d "$f" ]; then echo "cronium-refused $f a directory"; '
    'elif [ -f "$f" ]; then n=$(wc -c < "$f"); '
    'if [ "$n" -le "$l" ]; then set -- "$@" "$f"; else echo "cronium-too-large $f $n"; fi; '
    'elif [ -p "$f" ]; then echo "cronium-refused $f a named pipe"; '
    'elif [ -S "$f" ]; then echo "cronium-refused $f a socket"; '
    'elif [ -b "$f" ] || [ -c "$f" ]; then echo "cronium-refused $f a device"; '
    'elif [ -e "$f" ]; then echo "cronium-refused $f a special file"; fi; done; '
    '[ "$s" -eq 0 ] || df -P -k . | { read -r _; read -r _ _ u _; echo "cronium-used $u"; }; '
    "echo cronium-end; "
    '[ $# -eq 0 ] || tar -c -f - -- "$@" 2>/dev/null; exit "$s"'
)


def log_config(log_mb: int) -> dict[str, Any]:
    """The script container's Docker log: json-file (``docker logs`` reads it: the deferred run's triggerer
    follows it, a failed run's last stderr lines come from it), two files of half ``log_mb`` each, the
    older dropped as the newer fills, so what the script prints never takes more of the host's disk."""
    return {"Type": "json-file", "Config": {"max-size": f"{log_mb * 1024 // 2}k", "max-file": "2"}}


@dataclass(frozen=True)
class ContainerLimits:
    """Resource limits; defaults are Cronium's, and nothing may exceed Cronium's caps."""

    cpus: float = 0.5
    memory_mb: int = 512
    pids: int = 100
    network: str = "none"
    tmp_mb: int = 100
    run_folder_mb: int = DEFAULT_RUN_FOLDER_MB
    log_mb: int = DEFAULT_LOG_MB

    MAX_CPUS = 2.0
    MAX_MEMORY_MB = 2048
    MAX_PIDS = 1000
    MAX_LOG_MB = 1024

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.cpus <= self.MAX_CPUS:
            problems.append(f"cpus {self.cpus} must be above 0 and at most {self.MAX_CPUS}")
        if not 16 <= self.memory_mb <= self.MAX_MEMORY_MB:
            problems.append(f"memory_mb {self.memory_mb} must be between 16 and {self.MAX_MEMORY_MB}")
        if not 10 <= self.pids <= self.MAX_PIDS:
            problems.append(f"pids {self.pids} must be between 10 and {self.MAX_PIDS}")
        if not 1 <= self.run_folder_mb <= MAX_RUN_FOLDER_MB:
            problems.append(f"run_folder_mb {self.run_folder_mb} must be between 1 and {MAX_RUN_FOLDER_MB}")
        if not 1 <= self.log_mb <= self.MAX_LOG_MB:
            problems.append(f"log_mb {self.log_mb} must be between 1 and {self.MAX_LOG_MB}")
        if not DOCKER_NETWORK_NAME.match(self.network):  # never container:<id>: another run's network namespace
            problems.append(f"network {self.network!r} is not a Docker network name")
        if problems:
            raise ContainerLimitError("container limits: " + "; ".join(problems))


# The type bits of a Go ``os.FileMode``, as Docker's archive stat gives a path's mode.
_GO_FILE_TYPES = {
    1 << 31: "a directory",
    1 << 27: "a symbolic link",
    1 << 26: "a device",
    1 << 25: "a named pipe",
    1 << 24: "a socket",
    1 << 21: "a character device",
    1 << 19: "a special file",
}


def _file_type(mode: int) -> str | None:
    """What a path is, from its Go file mode, when it is not a regular file."""
    return next((kind for bit, kind in _GO_FILE_TYPES.items() if mode & bit), None)


def sample_memory_bytes(sample: Mapping[str, Any]) -> int:
    """The memory use in one sample of Docker's stats stream (the highest it reports), 0 when none."""
    memory = sample.get("memory_stats") or {}
    return max(int(memory.get("max_usage") or 0), int(memory.get("usage") or 0))


class _PeakMemory(threading.Thread):
    """Samples the container's memory use from Docker's stats stream; keeps the highest value seen."""

    def __init__(self, client: Any, container_id: str):
        super().__init__(daemon=True, name=f"cronium-stats-{container_id[:12]}")
        self.client = client
        self.container_id = container_id
        self.peak: int | None = None

    def run(self) -> None:
        try:
            for sample in self.client.stats(self.container_id, stream=True, decode=True):
                value = sample_memory_bytes(sample)
                if value:
                    self.peak = max(self.peak or 0, value)
        except Exception:  # the stream ends with an error once the container is gone
            return


def _docker_time(value: str) -> datetime | None:
    """A Docker API time (RFC 3339 with nanoseconds, ``0001-01-01T00:00:00Z`` when unset)."""
    import pendulum

    if not value or value.startswith("0001-"):
        return None
    try:
        moment = pendulum.parse(value)
    except (ValueError, pendulum.parsing.exceptions.ParserError):
        return None
    return moment if isinstance(moment, datetime) else None


def _run_seconds(state: Mapping[str, Any]) -> float:
    """How long the container ran: Docker's ``StartedAt`` to ``FinishedAt``."""
    started, finished = (
        _docker_time(str(state.get("StartedAt") or "")),
        _docker_time(str(state.get("FinishedAt") or "")),
    )
    if started is None or finished is None:
        return 0.0
    return max(0.0, (finished - started).total_seconds())


def _process_start(pid: int) -> str | None:
    """The start time of a local process (field 22 of ``/proc/<pid>/stat``), None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def owner_labels() -> dict[str, str]:
    """Who runs a container: this host and this process (with its start time, so a reused pid is not it)."""
    pid = os.getpid()
    return {
        CONTAINER_LABEL_HOST: socket.gethostname(),
        CONTAINER_LABEL_PID: str(pid),
        CONTAINER_LABEL_PID_START: _process_start(pid) or "",
    }


def remove_orphans(
    client: Any, host: str | None = None, deferred_over: Callable[[Mapping[str, str]], bool] | None = None
) -> list[str]:
    """Remove the script containers of this host whose task process is gone (SIGKILLed, OOM, worker lost).

    Only containers whose owner process no longer exists on this host are touched, so workers running at
    once never remove each other's containers. Containers of deferred tasks (labelled
    ``org.cronium.deferred``) outlive their task process by design: the triggerer stops and removes them
    (timeout, clear, mark failed) or the resumed task does; they are removed here only when
    ``deferred_over(labels)`` says their task's try is over (it asks Airflow), whichever host started them:
    what the triggerer could not do (a task cleared or marked failed before the triggerer took it up, a
    triggerer that was down). Returns the ids removed.
    """
    host = host or socket.gethostname()

    def orphaned(labels: Mapping[str, str]) -> bool:
        if labels.get(CONTAINER_LABEL_DEFERRED) == "true":
            return deferred_over is not None and deferred_over(labels)
        if labels.get(CONTAINER_LABEL_HOST) != host:
            return False
        pid_text = labels.get(CONTAINER_LABEL_PID, "")
        if not pid_text.isdigit():
            return False
        start = _process_start(int(pid_text))
        return start is None or start != labels.get(CONTAINER_LABEL_PID_START)  # else its task still runs

    removed: list[str] = []
    for container in client.containers(all=True, filters={"label": [f"{CONTAINER_LABEL_RUN}=true"]}):
        if not orphaned(container.get("Labels") or {}):
            continue
        with contextlib.suppress(Exception):  # removed by another worker meanwhile
            client.remove_container(container["Id"], v=True, force=True)
            removed.append(container["Id"])
    # then the run folders (a volume in use by a live run is never removed: Docker refuses)
    removed += remove_orphan_volumes(client, orphaned, CONTAINER_LABEL_RUN)
    return removed


class ContainerExecutor:
    """Runs a :class:`~cronium_provider.runners.base.ScriptJob` in a container through a docker-py
    ``APIClient`` (for example ``DockerHook().get_conn()``): the container
    :class:`~cronium_provider.runners.base.Runner` (its trigger: :mod:`cronium_provider.triggers.container`).

    :param image: the container image; ``limits``: its :class:`ContainerLimits`; ``labels``: its labels
        (besides the run's and its owner's).
    :param max_result_bytes: the largest result file read back (``output.json`` and the others); a larger
        one is not read and makes the run's results invalid, naming the limit.
    """

    def __init__(
        self,
        client: Any,
        on_line: LineCallback | None = None,
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
        *,
        image: str = "",
        limits: ContainerLimits | None = None,
        labels: Mapping[str, str] | None = None,
    ):
        self.client = client
        self.image = image
        self.limits = limits or ContainerLimits()
        self.labels = dict(labels or {})
        self.on_line: LineCallback = on_line or (lambda stream, line: None)
        self.max_result_bytes = max_result_bytes
        self.container_id: str | None = None
        self.run_folder: RunFolder | None = None
        self._lock = threading.Lock()

    def _create_container(
        self, job: ScriptJob, labels: Mapping[str, str], *, volume: str | None = None, wrapped: bool = False
    ) -> str:
        """Create the script's container with the job's limits: on the run folder ``volume`` running the
        script (a deferred run), or ``wrapped``: its run folder its own tmpfs, its first process
        :data:`WRAPPER` taking the run files on stdin."""
        limits = self.limits
        environment = {
            **job.environment,
            **script_environment(job.language, RUN_DIR),
            "HOME": "/tmp",
            "TMPDIR": "/tmp",
        }
        tmpfs = {"/tmp": f"rw,nosuid,nodev,size={limits.tmp_mb}m,mode=1777"}
        command = script_command(job.language, RUN_DIR)
        if wrapped:
            uid, gid = RUN_USER.split(":")
            tmpfs[RUN_DIR] = f"rw,nosuid,nodev,size={limits.run_folder_mb}m,uid={uid},gid={gid},mode=0700"
            command = ["sh", "-c", WRAPPER, "sh", str(self.max_result_bytes), *command]
        host_config = self.client.create_host_config(
            auto_remove=False,
            network_mode=limits.network,
            nano_cpus=int(limits.cpus * 1_000_000_000),
            mem_limit=f"{limits.memory_mb}m",
            memswap_limit=f"{limits.memory_mb}m",
            pids_limit=limits.pids,
            read_only=True,
            tmpfs=tmpfs,
            binds={volume: {"bind": RUN_DIR, "mode": "rw"}} if volume else None,
            security_opt=["no-new-privileges"],
            cap_drop=["ALL"],
            log_config=log_config(limits.log_mb),
        )
        container = self.client.create_container(
            image=self.image,
            command=command,
            environment=environment,
            user=RUN_USER,
            working_dir=RUN_DIR,
            host_config=host_config,
            labels=dict(labels),
            network_disabled=limits.network == "none",
            volumes=[RUN_DIR] if volume else None,
            stdin_open=wrapped,  # and, as docker-py sets it then, closed once the run files were sent
        )
        container_id: str = container["Id"]
        with self._lock:
            self.container_id = container_id
        return container_id

    def create(self, job: ScriptJob) -> str:
        """Create the run folder (a tmpfs volume of ``limits.run_folder_mb`` kept mounted by a holder, see
        :mod:`~cronium_provider.runners.run_folder`) and the script's container on it (a deferred run)."""
        labels = self._run_labels()
        run_folder = create_run_folder(self.client, self.limits.run_folder_mb, labels)
        with self._lock:
            self.run_folder = run_folder
        holder_error: list[BaseException] = []

        def start_holder() -> None:
            try:
                run_folder.start_holder(self.image, RUN_DIR, labels)
            except BaseException as exc:
                holder_error.append(exc)

        holder = threading.Thread(target=start_holder, daemon=True, name="cronium-run-folder")
        holder.start()
        try:
            container_id = self._create_container(job, labels, volume=run_folder.volume)
        except BaseException:
            holder.join()
            self.remove()
            raise
        holder.join()
        if holder_error:
            self.remove()
            raise holder_error[0]
        return container_id

    def prepare(self, job: ScriptJob) -> str:
        """Create the run folder and the container and copy the run files in; returns the container's id.
        On any error both are removed before the error is raised."""
        files = job.files()
        container_id = self.create(job)
        try:
            self.client.put_archive(container_id, RUN_DIR, run_folder_tar(files, uid=1000, gid=1000))
        except BaseException:
            self.remove()
            raise
        return container_id

    def start(self, job: ScriptJob) -> dict[str, Any]:
        """:meth:`prepare` and start the container, following nothing (a deferred run: the triggerer follows
        it, the resumed task :meth:`adopt` s and :meth:`collect` s it); returns the run's handle: its
        container, run folder volume, holder and size. On any error the container and run folder are removed."""
        container_id = self.prepare(job)
        try:
            self.client.start(container_id)
        except BaseException:
            self.remove()
            raise
        return self.handle()

    def handle(self) -> dict[str, Any]:
        """The run's handle (JSON-safe): what its trigger follows and :meth:`adopt` takes back."""
        with self._lock:
            container_id, run_folder = self.container_id, self.run_folder
        return {
            "container_id": container_id or "",
            "volume": run_folder.volume if run_folder else "",
            "holder": run_folder.holder if run_folder else None,
            "run_folder_mb": run_folder.size_mb if run_folder else self.limits.run_folder_mb,
        }

    def _run_labels(self) -> dict[str, str]:
        return {CONTAINER_LABEL_RUN: "true", **owner_labels(), **self.labels}

    def run(self, job: ScriptJob) -> ScriptRun:
        """Run the job in one container (see the module's docstring), hand each output line to ``on_line``
        until it exits, and read how it ended; always remove it."""
        files = job.files()
        token = secrets.token_hex(16)
        uid, gid = (int(n) for n in RUN_USER.split(":"))
        try:
            container_id = self._create_container(job, self._run_labels(), wrapped=True)
            splitter = LineSplitter(self.on_line)
            ending = _RunEnding(END_MARK + token.encode() + b"\n", splitter, self.max_result_bytes)
            # attached before the start: attaching to a container that already exited would wait for ever
            stream = self.client.attach(container_id, stdout=True, stderr=True, stream=True, logs=True, demux=True)
            self.client.start(container_id)
            sampler = _PeakMemory(self.client, container_id)
            sampler.start()
            run_files = token.encode() + b"\n" + run_folder_tar(files, uid=uid, gid=gid)
            end_input = self._send_input(container_id, run_files)
            try:
                for out, err in stream:
                    if out:
                        ending.stdout(out)
                    if err:
                        splitter.feed("stderr", err)
            finally:
                end_input()
            ending.close()
            splitter.close()
            exit_code = int(self.client.wait(container_id)["StatusCode"])
            if ending.after is None and exit_code == UNPACK_FAILED:  # the wrapper, before the script ran
                self._refuse_run_files(len(files), list(splitter.stderr_tail))
            state = self.client.inspect_container(container_id)["State"]
            results, problem, used_kb = ending.results()
            return ScriptRun(
                limit_reached=self._folder_full(self.limits.run_folder_mb, used_kb) if exit_code != 0 else None,
                exit_code=exit_code,
                duration_seconds=_run_seconds(state),
                peak_memory_bytes=sampler.peak,
                oom_killed=bool(state.get("OOMKilled")),
                results=results,
                protocol_error=problem,
                stderr_tail=list(splitter.stderr_tail),
                container_id=container_id,
                stdout=splitter.text("stdout"),
                stderr=splitter.text("stderr"),
            )
        finally:
            self.remove()

    def _refuse_run_files(self, count: int, stderr_tail: list[str]) -> NoReturn:
        """The wrapper could not unpack the run files: no script ran. The run folder too small for them is
        the run's limit (a refused parameter, never retried); anything else (an image without ``tar``) says
        what the container said."""
        said = "\n".join(stderr_tail[-5:]) or "(no stderr)"
        if "no space left on device" in said.lower():
            raise ContainerLimitError(
                f"The run files ({count} files: the script, its helpers, input, event and variables) do not fit "
                f"the run folder of {self.limits.run_folder_mb} MB: no space left on device. No script ran. "
                f"Raise run_folder_mb ([cronium] run_folder_mb, at most {MAX_RUN_FOLDER_MB})."
            )
        raise ScriptFailed(f"The run's container could not unpack the run files; no script ran:\n{said}")

    def _send_input(self, container_id: str, data: bytes) -> Callable[[], None]:
        """Write ``data`` to the container's stdin and close it (its wrapper then runs the script), in a thread
        while the caller follows the container's output; returns what ends the sending, to call once that
        output ended: a container that stopped reading (its wrapper killed: stopped, out of memory) exited,
        and the connection is shut, so the worker never waits on a stdin nobody reads. Why the container
        stopped reading is in its exit code and stderr."""
        import socket as sockets

        connection = self.client.attach_socket(container_id, params={"stdin": 1, "stream": 1})
        raw = getattr(connection, "_sock", connection)
        ssh = hasattr(raw, "shutdown_write")  # an SSH channel (an ssh:// daemon URL)

        def send() -> None:
            with contextlib.suppress(OSError, EOFError):
                raw.sendall(data)
                if ssh:
                    raw.shutdown_write()
                else:
                    raw.shutdown(sockets.SHUT_WR)

        sender = threading.Thread(target=send, daemon=True, name=f"cronium-stdin-{container_id[:12]}")
        sender.start()

        def end() -> None:
            with contextlib.suppress(Exception):  # wakes a send still blocked: nobody reads any more
                if ssh:
                    raw.close()
                else:
                    raw.shutdown(sockets.SHUT_RDWR)
            sender.join(timeout=10)
            for closable in (connection, raw):
                with contextlib.suppress(Exception):
                    closable.close()

        return end

    def adopt(self, handle: Mapping[str, Any]) -> None:
        """Take over a run another process started, from its :meth:`handle` (a deferred run resuming):
        :meth:`collect` and :meth:`remove` then act on its container and run folder."""
        holder = handle.get("holder")
        with self._lock:
            self.container_id = str(handle.get("container_id") or "")
            self.run_folder = RunFolder(
                self.client,
                str(handle.get("volume") or ""),
                int(handle.get("run_folder_mb") or self.limits.run_folder_mb),
                None if holder is None else str(holder),
            )

    def collect(self, end: Mapping[str, Any]) -> ScriptRun:
        """The adopted run's :class:`ScriptRun` once its trigger said it exited (``end``: its event, with the
        ``peak_memory_bytes`` it sampled). Removes nothing.

        The container is waited for and read: exit code, duration (Docker's start and finish times), out of
        memory, the result files (each up to ``max_result_bytes``), and when it failed its last stderr lines
        (from its log) and whether its run folder was full."""
        peak = end.get("peak_memory_bytes")
        container_id = str(self.container_id or "")
        exit_code = int(self.client.wait(container_id)["StatusCode"])
        state = self.client.inspect_container(container_id)["State"]
        results, problem = self._collect(container_id)
        return ScriptRun(
            limit_reached=self.run_folder_full() if exit_code != 0 else None,
            exit_code=exit_code,
            duration_seconds=_run_seconds(state),
            peak_memory_bytes=None if peak is None else int(peak),
            oom_killed=bool(state.get("OOMKilled")),
            results=results,
            protocol_error=problem,
            stderr_tail=self._stderr_tail(container_id) if exit_code != 0 else [],
            container_id=container_id,
            stdout=str(end.get("stdout") or ""),  # the trigger's, as it logged them (redacted)
            stderr=str(end.get("stderr") or ""),
        )

    def _stderr_tail(self, container_id: str) -> list[str]:
        """The container's last stderr lines, from its log (split as the live lines are)."""
        try:
            data = self.client.logs(container_id, stdout=False, stderr=True, tail=STDERR_TAIL_LINES)
        except Exception:  # no readable log (a logging driver without reads)
            return []
        return stderr_tail_of(data if isinstance(data, bytes) else str(data).encode())

    def _collect(self, container_id: str) -> tuple[ScriptResults | None, ProtocolError | None]:
        from docker.errors import NotFound

        found: dict[str, bytes] = {}
        refused: ProtocolError | None = None
        limit = self.max_result_bytes
        for name in RESULT_FILES:
            try:
                chunks, stat = self.client.get_archive(container_id, f"{RUN_DIR}/{name}")
            except NotFound:
                continue
            try:
                # stat before read: a file that is too large or no regular file never reaches this process
                kind, size = _file_type(int((stat or {}).get("mode") or 0)), int((stat or {}).get("size") or 0)
                if kind is not None:
                    refused = refused or not_regular(name, kind)
                elif size > limit:
                    refused = refused or too_large(name, size, limit)
                else:  # and counted while read, whatever the archive holds
                    files, problem = read_result_tar(chunks, limit, (name,))
                    found.update(files)
                    refused = refused or problem
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
        return read_run_results(found, refused)

    def stop(self, timeout: int = 5) -> None:
        """Stop the running container (task killed or timed out); removal follows in ``run``."""
        with self._lock:
            container_id = self.container_id
        if container_id:
            try:
                self.client.stop(container_id, timeout=timeout)
            except Exception:  # already gone
                return

    def remove(self) -> None:
        """Remove the container, then its run folder (holder and volume)."""
        with self._lock:
            container_id, self.container_id = self.container_id, None
            run_folder, self.run_folder = self.run_folder, None
        if run_folder is not None:
            run_folder.remove(container_id)  # the container and the holder at once, then the volume
        elif container_id:
            with contextlib.suppress(Exception):  # already removed by a concurrent stop/kill
                self.client.remove_container(container_id, v=True, force=True)

    def run_folder_full(self) -> str | None:
        """Says so when the run folder is full (checked after a failed run: the script was refused space)."""
        run_folder = self.run_folder
        if run_folder is None:
            return None
        used = run_folder.usage_bytes()
        return None if used is None else self._folder_full(run_folder.size_mb, used // 1024)

    @staticmethod
    def _folder_full(size_mb: int, used_kb: int | None) -> str | None:
        if used_kb is None or used_kb < size_mb * 1024 - 1024:
            return None
        return (
            f"The run folder is full: it reached its limit of {size_mb} MB (run_folder_mb, "
            "[cronium] run_folder_mb); the script could write no more."
        )


class _RunEnding:
    """Splits the stdout of a run's wrapper: the script's output up to the end mark (to the line splitter,
    as it comes), then the notes on the result files and their tar (kept, at most what they can hold)."""

    def __init__(self, mark: bytes, splitter: LineSplitter, limit: int):
        self.mark = mark
        self.splitter = splitter
        self.limit = limit
        self.budget = _NOTES_BYTES + len(RESULT_FILES) * (limit + 1024) + 1024 * 1024
        self.pending = b""
        self.after: bytearray | None = None
        self.overflow = False

    def stdout(self, chunk: bytes) -> None:
        if self.after is not None:
            if len(self.after) + len(chunk) > self.budget:
                self.overflow = True
            else:
                self.after += chunk
            return
        data = self.pending + chunk
        found = data.find(self.mark)
        if found >= 0:
            self.splitter.feed("stdout", data[:found])
            self.pending = b""
            self.after = bytearray()
            self.stdout(data[found + len(self.mark) :])
            return
        # hold back only what may be the start of the mark, so that every line is handed on at once
        keep = next((n for n in range(min(len(data), len(self.mark) - 1), 0, -1) if self.mark.startswith(data[-n:])), 0)
        self.splitter.feed("stdout", data[: len(data) - keep])
        self.pending = data[len(data) - keep :]

    def close(self) -> None:
        if self.after is None and self.pending:
            self.splitter.feed("stdout", self.pending)
            self.pending = b""

    def results(self) -> tuple[ScriptResults | None, ProtocolError | None, int | None]:
        """The results, the first result file refused, and the run folder's use in KB (when told)."""
        if self.after is None:  # the wrapper never got there (killed, the container removed): no results
            return *read_run_results({}), None
        end = self.after.find(NOTES_END)
        notes, archive = (
            bytes(self.after[: max(end, 0)]),
            bytes(self.after[end + len(NOTES_END) :] if end >= 0 else b""),
        )
        self.after = bytearray()
        refused: ProtocolError | None = None
        if self.overflow:
            refused = ProtocolError("result files", "the run's container sent more than they can hold")
        elif end < 0:
            refused = ProtocolError("result files", "the run's container ended before it sent them")
        used_kb: int | None = None
        for line in notes.decode("utf-8", "replace").splitlines():
            kind, _, rest = line.partition(" ")
            name, _, detail = rest.partition(" ")
            if kind == "cronium-refused" and name in RESULT_FILES:
                refused = refused or not_regular(name, detail)
            elif kind == "cronium-too-large" and name in RESULT_FILES:
                refused = refused or too_large(name, detail, self.limit)
            elif kind == "cronium-used" and name.isdigit():
                used_kb = int(name)
        found: dict[str, bytes] = {}
        if archive and not self.overflow:  # in slices, as a stream comes: each read copies no more than one
            view = memoryview(archive)
            slices = (bytes(view[at : at + _TAR_SLICE]) for at in range(0, len(view), _TAR_SLICE))
            found, problem = read_result_tar(slices, self.limit)
            refused = refused or problem
        return *read_run_results(found, refused), used_kb


if TYPE_CHECKING:  # mypy holds the executor to the runner protocol
    _RUNNER: type[Runner] = ContainerExecutor
