"""Run one script on one server over one SSH connection, speaking the runtime-helper file protocol.

The connection (a paramiko ``SSHClient``, e.g. from the SSH provider's ``SSHHook``) serves the upload,
the run and the download. Files go to a private folder (mode 700) with a random name the worker draws
(128 bits), in a parent folder of the login that nobody can list, the login included (mode 300:
``/tmp/cronium-run.<uid>/<name>``); the script's environment is written to a file in it (mode 600)
instead of the command line, so other users of the server cannot read it from ``ps``. The script runs in
its own session so that a timeout or a kill can stop all of it (SIGTERM, then SIGKILL 5 s later). When a
run ends, in every outcome, whatever it left running is killed (:data:`_REAP`: its session, and the
processes with its folder in their environment or as their working folder, ``setsid`` and double forks
included) and its folder is removed, so that a later run of the same login is out of its reach.
"""

from __future__ import annotations

import contextlib
import functools
import re
import secrets
import select
import shlex
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cronium_provider.exceptions import (
    InterpreterMissing,
    ProtocolError,
    RemoteAccessRefused,
    RemoteRunError,
    ServerToolMissing,
)
from cronium_provider.runners.base import Runner, ScriptJob
from cronium_provider.runners.outcome import (
    DEFAULT_MAX_RESULT_BYTES,
    STDERR_TAIL_BYTES,
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
    run_folder_tar,
    script_command,
    script_environment,
)

CONNECT_ATTEMPTS = 3
CONNECT_BACKOFF_SECONDS = 1.0
INTERPRETERS = {"BASH": "bash", "PYTHON": "python3", "NODEJS": "node"}
KILL_GRACE_SECONDS = 5
RUN_DIR_PREFIX = "/tmp/cronium-run."  # + the login's uid (the parent folder, mode 300) + "/" + the run's name
_RUN_DIR = re.compile(r"/tmp/cronium-run\.[0-9]+/[0-9a-f]{32}")
# A detached run's files in its run folder: the script's stdout and stderr, and its exit code, written by
# the wrapper once the script has ended.
DETACHED_STDOUT = ".cronium-stdout"
DETACHED_STDERR = ".cronium-stderr"
DETACHED_EXIT = ".cronium-exit"
# How the follower of a detached run (:func:`follow_command`) ends.
POLL_DONE, POLL_NO_EXIT_CODE, POLL_FOLDER_GONE = 10, 11, 3


def _run_bytes(client: Any, command: str, timeout: float = 60) -> tuple[int, bytes, str]:
    """A short helper command on the same connection; returns (status, stdout bytes, stderr text)."""
    _stdin, stdout, stderr = client.exec_command(command, timeout=timeout)
    out = stdout.read()
    err = stderr.read().decode("utf-8", "replace")
    return stdout.channel.recv_exit_status(), out, err


@contextlib.contextmanager
def _streamed(client: Any, command: str, timeout: float = 60) -> Iterator[tuple[Iterator[bytes], Any]]:
    """A helper command's stdout as chunks, read only as far as the caller takes them, and its stderr (a
    paramiko file; ``.channel`` gives the exit status); the channel is closed when the caller is done,
    whatever is left unread (the command then gets a broken pipe)."""
    _stdin, stdout, stderr = client.exec_command(command, timeout=timeout)
    try:
        yield iter(functools.partial(stdout.channel.recv, 65536), b""), stderr
    finally:
        stdout.channel.close()


def _run(client: Any, command: str, timeout: float = 30) -> tuple[int, str, str]:
    status, out, err = _run_bytes(client, command, timeout)
    return status, out.decode("utf-8", "replace"), err


def _env_file(env: Mapping[str, str]) -> bytes:
    """The run's ``.env``, sourced by the remote shell: every name is checked, every value quoted."""
    for key in env:
        if not (key.isascii() and key.isidentifier()):  # [A-Za-z_][A-Za-z0-9_]*, as record validation requires
            raise ValueError(f"env var {key!r} is not a shell variable name: not written to the run's .env")
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()).encode("utf-8")


def _check_run(run_dir: str, session: int) -> str:
    """The run folder, quoted for the shell, after checking that both name a run of this module."""
    if not _RUN_DIR.fullmatch(run_dir) or int(session) <= 1:
        raise ValueError(f"not a run of this provider: {run_dir!r}, session {session!r}")
    return shlex.quote(run_dir)


# ``reap FOLDER SESSION``: SIGKILL every process of a run but the caller, again until none is left (a
# process forking meanwhile is found on the next round): those of its session (SESSION > 1: only where
# the caller knows the session is the run's), and those with the run folder in their environment (every
# process the script started has it: CRONIUM_RUN_DIR) or as their working folder (also after ``env -i``),
# wherever ``setsid``, ``nohup`` or a double fork put them. /proc tells; without it only the session's
# process group is killed (by the callers). Zombies are skipped (they hold nothing; their parent reaps).
_REAP = (
    "_st() { rst=$1; rsid=$4; }; "
    # the scan runs with no environment and from /, so that it does not find itself
    """_rs='{ grep -lsaF -- "$1" /proc/[0-9]*/environ; """
    """find /proc/[0-9]*/cwd -maxdepth 0 -lname "$1*"; } | cut -d/ -f3'; """
    "reap() { rf=$1; rs=$2; rme=$$; { read -r rme _ < /proc/self/stat; } 2>/dev/null; rn=0; "
    "while [ $rn -lt 50 ]; do rn=$((rn+1)); rp=; "
    'if [ "$rs" -gt 1 ]; then for rq in /proc/[0-9]*; do { read -r rt < "$rq/stat"; } 2>/dev/null || continue; '
    '_st ${rt##*) }; [ "$rst" != Z ] && [ "$rsid" = "$rs" ] && rp="$rp ${rq#/proc/}"; done; fi; '
    'rp="$rp $(cd / && env -i PATH="$PATH" sh -c "$_rs" reap "$rf" 2>/dev/null)"; '
    'rk=; for rq in $rp; do [ "$rq" = "$rme" ] || rk="$rk $rq"; done; [ -n "$rk" ] || return 0; '
    "kill -s KILL $rk 2>/dev/null; sleep 0.1; done; }; "
)


def _watched_wrapper(marker: str, run_dir: str, argv: str) -> str:
    """The attached run's wrapper, the leader of the script's session (``setsid -w sh -c``).

    It prints the session id (its own pid) with ``marker`` before anything else, starts the script (with
    the run's environment, which the wrapper itself does not take), and watches the channel's stdin (kept
    on fd 3, never given to the script): nothing is ever written to it, so it ends only when the connection
    is gone. Then the watchdog stops the session (SIGTERM, SIGKILL after the grace period), kills what the
    run left (:data:`_REAP`) and removes the run folder. When the script ends first, what it left running
    is killed and the wrapper exits with the script's status.
    """
    folder = shlex.quote(run_dir)
    return (
        f"echo {marker}$$; exec 3<&0 </dev/null; cd {folder} || exit 125; {_REAP}"
        "lost=0; trap 'lost=1' USR1; "
        f"( set -a; . ./.env; set +a; exec {argv} ) 3<&- & p=$!; "
        "( while read -r _ <&3; do :; done; kill -s USR1 $$ ) >/dev/null 2>&1 & w=$!; exec 3<&-; "
        "wait $p; code=$?; trap '' TERM; "
        "if [ $lost = 1 ]; then kill -s TERM -- -$$ 2>/dev/null; i=0; "
        f"while [ $i -lt {KILL_GRACE_SECONDS * 10} ] && kill -s 0 $p 2>/dev/null; do sleep 0.1; i=$((i+1)); done; fi; "
        f"cd / && reap {folder} $$; "
        f"if [ $lost = 1 ]; then rm -rf -- {folder}; kill -s KILL -- -$$; fi; "
        "exit $code"
    )


def _detached_wrapper(run_dir: str, argv: str, time_limit: int | None) -> str:
    """The detached run's wrapper, the leader of the script's session; started in the run folder.

    It prints the session id (its own pid) on the pipe of the command that started it, then lets go of
    that pipe and of the connection: stdin, stdout and stderr are files or ``/dev/null`` from then on, so
    closing the connection does not touch the run. When the script has ended, what it left running is
    killed (:data:`_REAP`), then the exit code is written. With ``time_limit`` (seconds), a watchdog in the
    session stops it (SIGTERM, SIGKILL after the grace period, with what it left) and removes the run folder
    if the script still runs then: the last resort when nothing on the Airflow side stops it (no triggerer
    ever took up its task); it is stopped with the script otherwise. The wrapper stays in the run folder
    until it exits (:data:`_OURS` knows it by that) but takes none of the run's environment.
    """
    folder = shlex.quote(run_dir)
    watchdog = ""
    if time_limit is not None:
        watchdog = (
            f"( trap 'kill $s 2>/dev/null; wait $s; exit 0' TERM; sleep {max(1, int(time_limit))} & s=$!; wait $s; "
            "trap '' TERM; kill -s TERM -- -$$ 2>/dev/null; "
            f"sleep {KILL_GRACE_SECONDS}; reap {folder} $$; cd / && rm -rf -- {folder}; kill -s KILL -- -$$ ) & w=$!; "
        )
    stop_watchdog = "kill $w 2>/dev/null; wait $w; " if watchdog else ""
    return (
        f"echo $$; exec </dev/null >/dev/null 2>&1; {_REAP}{watchdog}"
        f"( set -a; . ./.env; set +a; exec {argv} ) >{DETACHED_STDOUT} 2>{DETACHED_STDERR}; code=$?; {stop_watchdog}"
        f"reap {folder} $$; echo $code > {DETACHED_EXIT}.tmp && mv -f {DETACHED_EXIT}.tmp {DETACHED_EXIT}"
    )


# ``ours SESSION FOLDER``: is the detached run's wrapper (the session leader) still running? Its pid cannot
# be taken by another process while it runs; where /proc tells, it must also still work in the run folder
# (the script cannot change its wrapper's working folder), so a pid reused after the wrapper ended is not
# taken for it, and a wrapper that has exited but is not reaped yet (no working folder) counts as ended. The
# check forks nothing (``test -ef``); a shell without ``-ef`` (status 2) compares the paths instead.
_OURS = (
    'ours() { kill -s 0 "$1" 2>/dev/null || return 1; [ -d /proc/"$1" ] || return 0; '
    '[ /proc/"$1"/cwd -ef "$2" ] 2>/dev/null; k=$?; [ $k -le 1 ] && return $k; '
    'c=$(readlink /proc/"$1"/cwd 2>/dev/null) || return 1; r=$(cd "$2" 2>/dev/null && pwd -P) || r=$2; '
    '[ "$c" = "$2" ] || [ "$c" = "$r" ] || [ "$c" = "$2 (deleted)" ] || [ "$c" = "$r (deleted)" ]; }; '
)


def follow_command(run_dir: str, session: int, out_offset: int, err_offset: int, poll_interval: int = 1) -> str:
    """Follow a detached run until it ends: ``tail -f`` of the script's stdout file from ``out_offset`` on
    stdout and of its stderr file from ``err_offset`` on stderr, while the wrapper is checked every
    ``poll_interval`` seconds; the command then exits with :data:`POLL_DONE`, :data:`POLL_NO_EXIT_CODE` (the
    wrapper is gone without writing an exit code) or :data:`POLL_FOLDER_GONE`.

    What the ``tail`` processes had not sent when they are stopped is read with :func:`rest_command` from
    the offsets the caller counted. An exit code file written by the script itself while its wrapper runs
    does not count.
    """
    folder = _check_run(run_dir, session)
    sid = int(session)
    # from / (not the run folder), so that the end of the run (:data:`_REAP`) does not take it for the run's
    files = {name: f"{folder}/{name}" for name in (DETACHED_STDOUT, DETACHED_STDERR, DETACHED_EXIT)}
    return (
        f"[ -d {folder} ] && cd / || exit {POLL_FOLDER_GONE}; {_OURS}"
        f"while [ ! -f {files[DETACHED_STDERR]} ] && ours {sid} {folder}; do sleep 1; done; "
        f"tail -c +{int(out_offset) + 1} -f {files[DETACHED_STDOUT]} 2>/dev/null & a=$!; "
        f"tail -c +{int(err_offset) + 1} -f {files[DETACHED_STDERR]} >&2 2>/dev/null & b=$!; "
        f"while ours {sid} {folder}; do sleep {max(1, int(poll_interval))}; done; "
        f"kill $a $b 2>/dev/null; wait; [ -f {files[DETACHED_EXIT]} ] && exit {POLL_DONE}; exit {POLL_NO_EXIT_CODE}"
    )


def rest_command(run_dir: str, out_offset: int, err_offset: int) -> str:
    """What the script wrote past the offsets already read: stdout on stdout, stderr on stderr."""
    folder = shlex.quote(run_dir)
    return (
        f"tail -c +{int(out_offset) + 1} {folder}/{DETACHED_STDOUT} 2>/dev/null; "
        f"tail -c +{int(err_offset) + 1} {folder}/{DETACHED_STDERR} >&2 2>/dev/null; true"
    )


def exit_code_command(run_dir: str) -> str:
    """The detached run's exit code (a number on stdout), once :func:`follow_command` said it is done."""
    return f"cat {shlex.quote(run_dir)}/{DETACHED_EXIT}"


def stop_detached_command(run_dir: str, session: int, grace: int = KILL_GRACE_SECONDS) -> str:
    """Stop a detached run and remove its folder: SIGTERM to its session's process group while its wrapper
    still runs, SIGKILL ``grace`` seconds later to what is left of the run (the attached run's kill guard:
    only the session this run started is signalled, by the id its wrapper printed before the script began;
    other processes only by the run folder, :data:`_REAP`)."""
    return _stop_command(_check_run(run_dir, session), int(session), grace)


def _stop_command(folder: str, session: int, grace: int = KILL_GRACE_SECONDS, remove: bool = True) -> str:
    """Stop a run (``folder`` quoted for the shell): its session while its wrapper runs, then what is left."""
    group = f"-{int(session)}"
    return (
        f"{_OURS}{_REAP}s=0; if ours {int(session)} {folder}; then s={int(session)}; "
        f"kill -s TERM -- {group} 2>/dev/null; i=0; "
        f"while [ $i -lt {int(grace) * 10} ] && kill -s 0 -- {group} 2>/dev/null; do sleep 0.1; i=$((i+1)); done; "
        f"kill -s KILL -- {group} 2>/dev/null; fi; reap {folder} $s"
        + (f"; cd / && rm -rf -- {folder}" if remove else "")
    )


def lost_connection_message(server: str, address: str) -> str:
    """What a run says when its SSH connection went away while the script ran."""
    return (
        f"{server}: the SSH connection to {address} was lost while the script ran (the SSH server stopped, "
        "or the network between this worker and the server failed). On the server, the run's watchdog stops "
        "the script's session and removes its run folder once the connection is gone."
    )


@dataclass(frozen=True)
class DetachedRun:
    """A script started by :meth:`SSHScriptExecutor.start_detached`: its server, run folder and session."""

    server: str
    run_dir: str
    session: int
    started_at: float  # time.time() when it was started

    def handle(self) -> dict[str, Any]:
        """The run's handle (JSON-safe), as :class:`~cronium_provider.runners.base.Runner` gives it."""
        return {"server": self.server, "run_dir": self.run_dir, "session": self.session, "started_at": self.started_at}

    @classmethod
    def of(cls, handle: Mapping[str, Any]) -> DetachedRun:
        return cls(str(handle["server"]), str(handle["run_dir"]), int(handle["session"]), float(handle["started_at"]))


def describe_connect_error(server: str, exc: BaseException) -> str:
    """What went wrong connecting, in words a user can act on."""
    import paramiko

    if isinstance(exc, paramiko.BadHostKeyException):
        return (
            f"{server}: the server's host key has CHANGED (got {exc.key.get_name()}); refusing to connect. "
            "If the change is expected, update the connection's host_key or known_hosts."
        )
    if isinstance(exc, paramiko.AuthenticationException):
        return f"{server}: authentication failed ({exc}); check the connection's user, key or password"
    if isinstance(exc, paramiko.SSHException) and "not found in known_hosts" in str(exc):
        return (
            f"{server}: unknown host key ({exc}); add it to known_hosts or the connection's host_key "
            "(or set no_host_key_check on the connection to skip the check, at your own risk)"
        )
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError | ConnectionRefusedError):
        return f"{server}: connection refused ({exc}); is sshd running and the port right?"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"{server}: connection timed out ({exc})"
    return f"{server}: cannot connect: {type(exc).__name__}: {exc}"


def _retryable(exc: BaseException) -> bool:
    import paramiko

    if isinstance(exc, paramiko.AuthenticationException | paramiko.BadHostKeyException):
        return False
    if isinstance(exc, paramiko.SSHException) and "known_hosts" in str(exc):
        return False
    return isinstance(exc, OSError | EOFError | paramiko.SSHException)


def ssh_hook(conn_id: str, server: str) -> Any:
    """The SSH provider's hook for a server; reads the Airflow connection (call it from the task's thread)."""
    from airflow.providers.ssh.hooks.ssh import SSHHook
    from airflow.sdk import BaseHook

    try:
        conn_type = BaseHook.get_connection(conn_id).conn_type
        hook = SSHHook(ssh_conn_id=conn_id, conn_timeout=10, conn_retry_attempts=1)
    except Exception as exc:
        raise RemoteRunError(f"{server}: no usable Airflow connection {conn_id!r}: {exc}") from exc
    if conn_type != "ssh":  # a record's connectionId naming smtp_default or a tool: never log in with those
        raise RemoteRunError(
            f"{server}: the Airflow connection {conn_id!r} is a {conn_type!r} connection, not SSH: "
            "a server runs scripts only over an SSH connection"
        )
    return hook


def connect(hook: Any, server: str, attempts: int = CONNECT_ATTEMPTS) -> Any:
    """An open ``SSHClient`` from the hook, retrying network errors with backoff (not auth or host keys)."""
    delay = CONNECT_BACKOFF_SECONDS
    for attempt in range(1, attempts + 1):
        try:
            return hook.get_conn()
        except Exception as exc:
            if not _retryable(exc):
                raise RemoteAccessRefused(describe_connect_error(server, exc)) from exc
            if attempt == attempts:
                raise RemoteRunError(describe_connect_error(server, exc)) from exc
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


class SSHScriptExecutor:
    """Runs a script on one server through an open paramiko ``SSHClient``: the SSH
    :class:`~cronium_provider.runners.base.Runner` (its trigger: :mod:`cronium_provider.triggers.ssh`).

    :param time_limit: a detached run's own last resort (seconds): its wrapper stops it and removes its
        folder if it still runs then (see :meth:`start_detached`).
    """

    def __init__(
        self,
        client: Any,
        server: str,
        on_line: LineCallback | None = None,
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
        time_limit: float | None = None,
    ):
        self.max_result_bytes = max_result_bytes
        self.time_limit = time_limit
        self._adopted: DetachedRun | None = None
        self.client = client
        self.server = server
        self.on_line: LineCallback = on_line or (lambda stream, line: None)
        self.run_dir: str | None = None
        self._stopping = threading.Event()
        self._marker = ""
        self._texts: tuple[str, str] = ("", "")  # the attached run's stdout and stderr, their ends
        self._session: int | None = None  # the script's session (and process group) id on the server
        self._session_known = threading.Event()
        try:
            peer = client.get_transport().getpeername()
            self.address = f"{peer[0]}:{peer[1]}"
        except Exception:
            self.address = server

    def _prepare(self, language: str, files: Mapping[str, bytes], env: Callable[[str], Mapping[str, str]]) -> str:
        """One round trip: check the interpreter, make the private folder, unpack the run's files into it."""
        name = INTERPRETERS[language]
        command = (
            f"command -v {name} >/dev/null 2>&1 || {{ echo 'missing interpreter' >&2; exit 127; }}; "
            "command -v tar >/dev/null 2>&1 || { echo 'missing tar' >&2; exit 126; }; "
            "command -v setsid >/dev/null 2>&1 || { echo 'missing setsid' >&2; exit 123; }; "
            f'umask 077; p={RUN_DIR_PREFIX}$(id -u); mkdir -m 300 "$p" 2>/dev/null; '
            '{ [ -d "$p" ] && [ ! -h "$p" ] && [ -O "$p" ] && chmod 300 "$p"; } || '
            '{ echo "$p is not a folder of this login" >&2; exit 125; }; '
            f'd="$p/{secrets.token_hex(16)}"; mkdir -m 700 "$d" || exit 125; echo "$d"; '
            'tar --no-same-owner -x -f - -C "$d" || { rm -rf -- "$d"; exit 124; }'
        )
        channel = self.client.get_transport().open_session()
        channel.exec_command(command)
        run_dir = ""
        while "\n" not in run_dir and not channel.exit_status_ready():
            chunk = channel.recv(4096)
            if not chunk:
                break
            run_dir += chunk.decode("utf-8", "replace")
        run_dir = run_dir.strip()
        if _RUN_DIR.fullmatch(run_dir):
            self.run_dir = run_dir
            payload = {**files, ".env": _env_file(env(run_dir))}
            channel.sendall(run_folder_tar(payload))
            channel.shutdown_write()
        status = channel.recv_exit_status()
        error = channel.recv_stderr(65536).decode("utf-8", "replace").strip()
        channel.close()
        if status == 127:
            raise InterpreterMissing(f"{self.server}: the interpreter '{name}' for {language} scripts is not installed")
        if status == 123:
            raise ServerToolMissing(
                f"{self.server}: setsid (util-linux) is not installed; it runs each script in a session of its "
                "own so that a timeout or a kill stops that script and nothing else of the user"
            )
        if status != 0 or not self.run_dir:
            raise RemoteRunError(f"{self.server}: cannot prepare the run folder (status {status}): {error}")
        return run_dir

    def _collect_and_remove(self, run_dir: str) -> tuple[dict[str, bytes], ProtocolError | None]:
        """One round trip: the result files as a tar on stdout, then the folder is removed.

        On the server, each file is checked (a regular file, not a symbolic link; up to ``max_result_bytes``)
        and copied, at most one byte past the limit, into a private folder that is sent: a script still
        writing cannot grow what is sent. Here, every byte is counted as it is read (see
        :func:`~cronium_provider.runners.outcome.read_result_tar`); reading stops past the limit.
        """
        limit = int(self.max_result_bytes)
        folder = shlex.quote(run_dir)
        command = (
            f"cd {folder} && if s=$(umask 077 && mktemp -d ./.cronium-results.XXXXXXXX); then set --; "
            f"for f in {' '.join(RESULT_FILES)}; do "
            'if [ -h "$f" ]; then echo "cronium-refused $f a symbolic link" >&2; '
            'elif [ -d "$f" ]; then echo "cronium-refused $f a directory" >&2; '
            'elif [ -f "$f" ]; then n=$(wc -c < "$f"); '
            f'if [ "$n" -le {limit} ]; then head -c {limit + 1} < "$f" > "$s/$f"; set -- "$@" "$f"; '
            'else echo "cronium-too-large $f $n" >&2; fi; '
            'elif [ -e "$f" ]; then echo "cronium-refused $f a special file" >&2; fi; '
            'done; [ $# -eq 0 ] || tar -c -f - -C "$s" -- "$@"; '
            "else echo 'cronium-failed - no room to copy the result files' >&2; fi; "
            f"cd / && rm -rf -- {folder}"
        )
        with _streamed(self.client, command) as (chunks, stderr):
            found, refused = read_result_tar(chunks, limit)
            # what follows the archive (its last record's padding), up to a bound: then the command ends
            rest = 0
            for chunk in chunks:
                rest += len(chunk)
                if rest > 64 * 1024:
                    refused = refused or ProtocolError("result files", "the server sent more than they can hold")
                    return found, refused  # the channel is closed unread; cleanup() removes the folder
            notes = stderr.read(65536).decode("utf-8", "replace")
            status = stderr.channel.recv_exit_status()
        if status != 0:
            raise RemoteRunError(f"{self.server}: cannot read the result files: {notes.strip()}")
        self.run_dir = None
        for line in notes.splitlines():
            kind, _, rest_of_line = line.partition(" ")
            name, _, detail = rest_of_line.partition(" ")
            if kind == "cronium-refused" and name in RESULT_FILES:
                refused = refused or not_regular(name, detail)
            elif kind == "cronium-too-large" and name in RESULT_FILES:
                refused = refused or too_large(name, detail, limit)
            elif kind == "cronium-failed":
                refused = refused or ProtocolError("result files", detail)
        return found, refused

    def run(self, job: ScriptJob) -> ScriptRun:
        """Run the script attached: its lines come back as it writes them; returns when it has ended."""
        language = job.language
        run_dir = self._prepare(
            language, job.files(), lambda folder: {**job.environment, **script_environment(language, folder)}
        )
        try:
            argv = " ".join(shlex.quote(a) for a in script_command(language, run_dir))
            # The run's session id goes to the host as the first stdout line, before the script starts: the
            # handle that stop() kills by lives in this process, where the script cannot forge it.
            self._marker = f"cronium-session-{secrets.token_hex(8)}:"
            inner = _watched_wrapper(self._marker, run_dir, argv)
            # -w: when setsid has to fork (the login shell leads its group), wait and pass on the exit status
            command = f"setsid -w sh -c {shlex.quote(inner)}"
            started = time.monotonic()
            try:
                exit_code, stderr_tail = self._stream(command)
            except BaseException:  # timeout or kill while the script runs: stop it before the folder goes
                self.stop()
                raise
            if not self._connected():
                raise RemoteRunError(lost_connection_message(self.server, self.address))
            return self._finish(run_dir, exit_code, time.monotonic() - started, stderr_tail, *self._texts)
        finally:
            self.cleanup()

    def start(self, job: ScriptJob) -> dict[str, Any]:
        """:meth:`start_detached` with the executor's ``time_limit``; returns the run's handle."""
        return self.start_detached(job, self.time_limit).handle()

    def adopt(self, handle: Mapping[str, Any]) -> None:
        """Take over a detached run from its handle: :meth:`collect` or :meth:`stop` then act on it."""
        self._adopted = DetachedRun.of(handle)

    def collect(self, end: Mapping[str, Any]) -> ScriptRun:
        """The adopted run's results, once its trigger said it ended (``exit_code``, ``duration_seconds``)."""
        run, self._adopted = self._adopted, None
        if run is None:
            raise RemoteRunError(f"{self.server}: no run to collect")
        texts = (str(end.get("stdout") or ""), str(end.get("stderr") or ""))  # the trigger's (redacted)
        return self.finish_detached(run, int(end["exit_code"]), float(end.get("duration_seconds") or 0.0), texts)

    def remove(self) -> None:
        """Remove what is left of the run: an adopted run that did not end is stopped and its folder removed."""
        run, self._adopted = self._adopted, None
        if run is not None:
            self.stop_detached(run)
        self.cleanup()

    def start_detached(self, job: ScriptJob, time_limit: float | None = None) -> DetachedRun:
        """Start the script detached from this connection (which may then close) and return its handle.

        The folder is the attached run's; the wrapper (:func:`_detached_wrapper`) leads the script's
        session and, with ``time_limit`` (seconds), stops it and removes the folder if it still runs then.
        Its session id is printed by the wrapper itself before the script starts, on a pipe the script never
        gets, so nothing the script writes can change which processes a kill signals.
        """
        language = job.language
        run_dir = self._prepare(
            language, job.files(), lambda folder: {**job.environment, **script_environment(language, folder)}
        )
        try:
            argv = " ".join(shlex.quote(a) for a in script_command(language, run_dir))
            wrapper = _detached_wrapper(run_dir, argv, None if time_limit is None else int(time_limit) + 1)
            command = (
                f'cd {shlex.quote(run_dir)} && s=$(setsid sh -c {shlex.quote(wrapper)} &) && echo "cronium-session:$s"'
            )
            status, out, err = _run(self.client, command)
            value = out.strip().rpartition("cronium-session:")[2]
            if status != 0 or not value.isdigit() or int(value) <= 1:
                raise RemoteRunError(f"{self.server}: cannot start the script (status {status}): {err.strip()}")
            self._session = int(value)
            self._session_known.set()
        except BaseException:
            if self._session is not None:
                self.stop()
            self.cleanup()
            raise
        self.run_dir = None  # the folder now belongs to the detached run: the trigger and the task remove it
        return DetachedRun(self.server, run_dir, self._session, time.time())

    def finish_detached(
        self, run: DetachedRun, exit_code: int, duration_seconds: float, texts: tuple[str, str] = ("", "")
    ) -> ScriptRun:
        """Collect a detached run that has ended, as an attached run is collected, and remove its folder."""
        folder = _check_run(run.run_dir, run.session)
        self.run_dir = run.run_dir  # removed in every outcome; its script has ended: nothing for stop() to signal
        self._session_known.set()
        try:
            # its end only, counted as read: the file is the script's (a sparse one can hold gigabytes)
            stderr_file = f"{folder}/{DETACHED_STDERR}"
            command = f"[ -f {stderr_file} ] && [ ! -h {stderr_file} ] && tail -c {STDERR_TAIL_BYTES} {stderr_file}"
            tail = b""
            with _streamed(self.client, command) as (chunks, _stderr):
                for chunk in chunks:
                    tail += chunk[: STDERR_TAIL_BYTES - len(tail)]
                    if len(tail) >= STDERR_TAIL_BYTES:
                        break
            return self._finish(run.run_dir, exit_code, duration_seconds, stderr_tail_of(tail), *texts)
        finally:
            self.cleanup()

    def stop_detached(self, run: DetachedRun) -> None:
        """Stop a detached run that has not ended (timeout, kill) and remove its folder; never raises."""
        with contextlib.suppress(Exception):
            _run(self.client, stop_detached_command(run.run_dir, run.session), timeout=KILL_GRACE_SECONDS + 30)

    def _finish(
        self, run_dir: str, exit_code: int, duration: float, stderr_tail: list[str], stdout: str = "", stderr: str = ""
    ) -> ScriptRun:
        """The results of a run that has ended (attached or detached alike); its folder is removed."""
        found, refused = self._collect_and_remove(run_dir)
        results, problem = read_run_results(found, refused)
        return ScriptRun(
            exit_code=exit_code,
            duration_seconds=duration,
            peak_memory_bytes=None,
            oom_killed=False,
            results=results,
            protocol_error=problem,
            stderr_tail=stderr_tail,
            container_id=f"{self.server}:{run_dir}",
            stdout=stdout,
            stderr=stderr,
        )

    def _connected(self) -> bool:
        with contextlib.suppress(Exception):
            return bool(self.client.get_transport().is_active())
        return False

    def _line(self, stream: str, line: str) -> None:
        """Pass the script's lines on; take the session id from the wrapper's first stdout line."""
        if self._session is None and stream == "stdout" and self._marker and line.startswith(self._marker):
            value = line[len(self._marker) :].strip()
            if value.isdigit() and int(value) > 1:
                self._session = int(value)
                self._session_known.set()
            return
        self.on_line(stream, line)

    def _stream(self, command: str) -> tuple[int, list[str]]:
        transport = self.client.get_transport()
        channel = transport.open_session()
        channel.exec_command(command)
        splitter = LineSplitter(self._line)
        while True:
            readable, _, _ = select.select([channel], [], [], 0.05)
            if readable or channel.recv_ready() or channel.recv_stderr_ready():
                while channel.recv_ready():
                    splitter.feed("stdout", channel.recv(65536))
                while channel.recv_stderr_ready():
                    splitter.feed("stderr", channel.recv_stderr(65536))
            if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                break
            if channel.closed and not channel.recv_ready() and not channel.recv_stderr_ready():
                break
        splitter.close()
        exit_code = channel.recv_exit_status()
        channel.close()
        stdout = splitter.text("stdout")
        if self._marker and stdout.startswith(self._marker):  # the wrapper's line, not the script's
            stdout = stdout.partition("\n")[2]
        self._texts = (stdout, splitter.text("stderr"))
        return exit_code, list(splitter.stderr_tail)

    def stop(self) -> None:
        """SIGTERM the run's process group, SIGKILL it 5 s later if anything is left (Cronium's way).

        Only the session this run started is signalled, by the id its wrapper printed before the script
        began; nothing the script writes can redirect the kill to other processes of the user.
        """
        run_dir = self.run_dir
        if not run_dir:
            return
        self._stopping.set()
        self._session_known.wait(timeout=5)
        session = self._session
        if session is None or session <= 1:
            return
        with contextlib.suppress(Exception):
            command = _stop_command(shlex.quote(run_dir), session, remove=False)  # its results are read next
            _run(self.client, command, timeout=KILL_GRACE_SECONDS + 30)

    def cleanup(self) -> None:
        """Kill what is left of the run (:data:`_REAP`: its script has ended or was stopped) and remove its
        folder."""
        run_dir, self.run_dir = self.run_dir, None
        if run_dir and _RUN_DIR.fullmatch(run_dir):
            folder = shlex.quote(run_dir)
            with contextlib.suppress(Exception):
                _run(self.client, f"{_REAP}reap {folder} 0; cd / && rm -rf -- {folder}")


if TYPE_CHECKING:  # mypy holds the executor to the runner protocol
    _RUNNER: type[Runner] = SSHScriptExecutor
