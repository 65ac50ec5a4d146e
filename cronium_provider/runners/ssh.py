"""Run one script on one server over one SSH connection, speaking the runtime-helper file protocol.

The connection (a paramiko ``SSHClient``, e.g. from the SSH provider's ``SSHHook``) serves the upload,
the run and the download. Files go to a private folder (mode 700) made by ``mktemp -d``; the script's
environment is written to a file in it (mode 600) instead of the command line, so other users of the
server cannot read it from ``ps``. The script runs in its own process group so that a timeout or a kill
can stop all of it (SIGTERM, then SIGKILL 5 s later); the folder is removed in every outcome.
"""

from __future__ import annotations

import contextlib
import io
import secrets
import select
import shlex
import socket
import tarfile
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from cronium_provider.exceptions import (
    InterpreterMissing,
    ProtocolError,
    RemoteAccessRefused,
    RemoteRunError,
    ServerToolMissing,
)
from cronium_provider.runners.outcome import (
    DEFAULT_MAX_RESULT_BYTES,
    LineCallback,
    LineSplitter,
    ScriptRun,
    read_run_results,
)
from cronium_provider.runners.protocol import (
    RESULT_FILES,
    build_run_files,
    run_folder_tar,
    script_command,
    script_environment,
)

CONNECT_ATTEMPTS = 3
CONNECT_BACKOFF_SECONDS = 1.0
INTERPRETERS = {"BASH": "bash", "PYTHON": "python3", "NODEJS": "node"}
KILL_GRACE_SECONDS = 5


def _run_bytes(client: Any, command: str, timeout: float = 60) -> tuple[int, bytes, str]:
    """A short helper command on the same connection; returns (status, stdout bytes, stderr text)."""
    _stdin, stdout, stderr = client.exec_command(command, timeout=timeout)
    out = stdout.read()
    err = stderr.read().decode("utf-8", "replace")
    return stdout.channel.recv_exit_status(), out, err


def _run(client: Any, command: str, timeout: float = 30) -> tuple[int, str, str]:
    status, out, err = _run_bytes(client, command, timeout)
    return status, out.decode("utf-8", "replace"), err


def _env_file(env: Mapping[str, str]) -> bytes:
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()).encode("utf-8")


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

    try:
        return SSHHook(ssh_conn_id=conn_id, conn_timeout=10, conn_retry_attempts=1)
    except Exception as exc:
        raise RemoteRunError(f"{server}: no usable Airflow connection {conn_id!r}: {exc}") from exc


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
    """Runs scripts on one server through an open paramiko ``SSHClient``."""

    def __init__(
        self,
        client: Any,
        server: str,
        on_line: LineCallback | None = None,
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
    ):
        self.max_result_bytes = max_result_bytes
        self.client = client
        self.server = server
        self.on_line: LineCallback = on_line or (lambda stream, line: None)
        self.run_dir: str | None = None
        self._stopping = threading.Event()
        self._marker = ""
        self._session: int | None = None  # the script's session (and process group) id on the server
        self._session_known = threading.Event()

    def _prepare(self, language: str, files: Mapping[str, bytes], env: Callable[[str], Mapping[str, str]]) -> str:
        """One round trip: check the interpreter, make the private folder, unpack the run's files into it."""
        name = INTERPRETERS[language]
        command = (
            f"command -v {name} >/dev/null 2>&1 || {{ echo 'missing interpreter' >&2; exit 127; }}; "
            "command -v tar >/dev/null 2>&1 || { echo 'missing tar' >&2; exit 126; }; "
            "command -v setsid >/dev/null 2>&1 || { echo 'missing setsid' >&2; exit 123; }; "
            'umask 077; d=$(mktemp -d /tmp/cronium-run.XXXXXXXX) || exit 125; echo "$d"; '
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
        if run_dir.startswith("/tmp/cronium-run."):
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
        """One round trip: the result files (each up to ``max_result_bytes``, sized before it is read) as a
        tar on stdout, then the folder is removed."""
        names = " ".join(RESULT_FILES)
        limit = int(self.max_result_bytes)
        command = (
            f'cd {shlex.quote(run_dir)} && {{ for f in {names}; do [ -f "$f" ] || continue; '
            f's=$(wc -c < "$f"); if [ "$s" -le {limit} ]; then echo "$f"; '
            f'else echo "cronium-too-large $f $s" >&2; fi; done | tar -c -f - -T - ; }}; '
            f"cd / && rm -rf -- {shlex.quote(run_dir)}"
        )
        status, out, err = _run_bytes(self.client, command)
        self.run_dir = None
        if status != 0:
            raise RemoteRunError(f"{self.server}: cannot read the result files: {err.strip()}")
        too_large: ProtocolError | None = None
        for line in err.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "cronium-too-large" and too_large is None:
                too_large = ProtocolError(
                    parts[1],
                    f"{parts[2]} bytes, above the limit of {limit} bytes for a result file "
                    "([cronium] max_result_bytes); the script's result was not read",
                )
        found: dict[str, bytes] = {}
        if out:
            with tarfile.open(fileobj=io.BytesIO(out)) as tar:
                for member in tar.getmembers():
                    handle = tar.extractfile(member)
                    if handle is not None and member.name in RESULT_FILES:
                        found[member.name] = handle.read()
        return found, too_large

    def run(
        self,
        language: str,
        script: str,
        *,
        input: Any,
        event: Mapping[str, Any],
        variables: Mapping[str, Any],
        environment: Mapping[str, str],
    ) -> ScriptRun:
        files = build_run_files(language, script, input=input, event=event, variables=variables)
        run_dir = self._prepare(language, files, lambda folder: {**environment, **script_environment(language, folder)})
        try:
            argv = " ".join(shlex.quote(a) for a in script_command(language, run_dir))
            # The run's session id goes to the host as the first stdout line, before the script starts: the
            # handle that stop() kills by lives in this process, where the script cannot forge it.
            self._marker = f"cronium-session-{secrets.token_hex(8)}:"
            inner = f"echo {self._marker}$$; set -a; . {run_dir}/.env; set +a; cd {run_dir} && exec {argv}"
            # -w: when setsid has to fork (the login shell leads its group), wait and pass on the exit status
            command = f"setsid -w sh -c {shlex.quote(inner)}"
            started = time.monotonic()
            try:
                exit_code, stderr_tail = self._stream(command)
            except BaseException:  # timeout or kill while the script runs: stop it before the folder goes
                self.stop()
                raise
            duration = time.monotonic() - started
            found, too_large = self._collect_and_remove(run_dir)
            results, problem = read_run_results(found)
            problem = too_large or problem
            return ScriptRun(
                exit_code=exit_code,
                duration_seconds=duration,
                peak_memory_bytes=None,
                oom_killed=False,
                results=results,
                protocol_error=problem,
                stderr_tail=stderr_tail,
                container_id=f"{self.server}:{run_dir}",
            )
        finally:
            self.cleanup()

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
        return exit_code, list(splitter.stderr_tail)

    def stop(self) -> None:
        """SIGTERM the run's process group, SIGKILL it 5 s later if anything is left (Cronium's way).

        Only the session this run started is signalled, by the id its wrapper printed before the script
        began; nothing the script writes can redirect the kill to other processes of the user.
        """
        if not self.run_dir:
            return
        self._stopping.set()
        self._session_known.wait(timeout=5)
        session = self._session
        if session is None or session <= 1:
            return
        group = f"-{session}"
        with contextlib.suppress(Exception):
            _run(
                self.client,
                f"kill -TERM -- {group} 2>/dev/null; "
                f"for i in $(seq 1 {KILL_GRACE_SECONDS * 10}); do kill -0 -- {group} 2>/dev/null || exit 0; "
                f"sleep 0.1; done; kill -KILL -- {group} 2>/dev/null; true",
                timeout=KILL_GRACE_SECONDS + 10,
            )

    def cleanup(self) -> None:
        run_dir, self.run_dir = self.run_dir, None
        if run_dir and run_dir.startswith("/tmp/cronium-run."):
            with contextlib.suppress(Exception):
                _run(self.client, f"rm -rf -- {shlex.quote(run_dir)}")
