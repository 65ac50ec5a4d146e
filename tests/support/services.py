"""Private servers for tests that need a real distributed Airflow: PostgreSQL, Redis, and long-running processes.

Every server listens on 127.0.0.1 on a free port, keeps its files in a temporary folder of its own and is
stopped (and its folder deleted) by ``stop()``, which is safe to call twice and after a failed start.

* :class:`PostgresCluster` -- ``initdb`` + ``pg_ctl`` of the Debian ``postgresql`` package, run as the ``postgres``
  OS user when the tests run as root (PostgreSQL refuses to run as root), as the current user otherwise. The data
  directory and the unix socket directory live in a fresh temp folder owned by that user; the database superuser
  is ``airflow`` with a random password (SCRAM), and the server listens on TCP 127.0.0.1 only.
* :class:`RedisServer` -- ``redis-server`` in the foreground in its own process group, no persistence.
* :class:`ManagedProcess` -- any command in its own session (process group), stdout+stderr to a log file, stopped
  with SIGTERM then SIGKILL to the whole group.

Each helper raises :class:`ServiceUnavailable` when its binary is missing, so callers can turn that into
``missing(...)`` (fail under CI, skip elsewhere).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PG_VERSIONS_ROOT = Path("/usr/lib/postgresql")


class ServiceUnavailable(RuntimeError):
    """A server binary this helper needs is not installed."""


class ServiceDied(RuntimeError):
    """A server exited while we waited for it: ``wait_for`` stops at once instead of polling on."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except ServiceDied:
            raise
        except Exception as exc:  # the server may not answer yet
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(
        f"{what} not ready after {timeout:.0f} s" + (f" (last error: {last_error})" if last_error else "")
    )


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<{path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


# --- processes ------------------------------------------------------------------------------------------------


@dataclass
class ManagedProcess:
    """A command in its own session; ``stop()`` signals the whole process group."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: dict[str, str] | None = None
    cwd: str | None = None
    user: str | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                list(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                user=self.user,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)

    def terminate(self) -> None:
        """SIGTERM to the whole process group (``start_new_session``: the group id is the leader's pid)."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)

    def stopped(self) -> bool:
        return self.proc is None or (self.proc.poll() is not None and not _group_alive(self.proc.pid))

    def kill(self) -> None:
        """SIGKILL to what is left of the process group, and reap the leader."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM to the process group, SIGKILL to what is left after ``grace`` seconds."""
        stop_all([self], grace)


def stop_all(processes: Sequence[ManagedProcess], grace: float = 20.0) -> list[str]:
    """Stop several process groups at once: SIGTERM to all, wait up to ``grace`` s, SIGKILL the rest.

    Returns the names of the processes that had to be killed.
    """
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and not all(p.stopped() for p in processes):
        time.sleep(0.2)
    killed = [p.name for p in processes if not p.stopped()]
    for process in processes:
        process.kill()
    return killed


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def processes_with_env(marker_key: str, marker_value: str) -> list[int]:
    """Pids of live processes whose environment has ``marker_key=marker_value`` (our own descendants)."""
    needle = f"{marker_key}={marker_value}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            status = (entry / "stat").read_text()
        except OSError:
            continue
        if needle in environ.split(b"\0") and ") Z " not in status:
            pids.append(int(entry.name))
    return pids


def kill_marked(marker_key: str, marker_value: str, grace: float = 5.0) -> list[int]:
    """SIGTERM, then SIGKILL, every process carrying the marker; returns the pids that had to be killed."""
    pids = processes_with_env(marker_key, marker_value)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and processes_with_env(marker_key, marker_value):
        time.sleep(0.2)
    for pid in processes_with_env(marker_key, marker_value):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


# --- PostgreSQL -----------------------------------------------------------------------------------------------


def postgres_bindir() -> Path:
    """The newest installed PostgreSQL server's bin directory (Debian layout), or ServiceUnavailable."""
    candidates = sorted(
        (p for p in PG_VERSIONS_ROOT.glob("*/bin") if (p / "postgres").exists() and (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not candidates:
        raise ServiceUnavailable(
            f"no PostgreSQL server under {PG_VERSIONS_ROOT}/*/bin; install Debian's postgresql "
            "(scripts/install-system.sh does)"
        )
    return candidates[-1]


@dataclass
class PostgresCluster:
    """A throwaway PostgreSQL cluster: ``start()`` runs initdb, pg_ctl start and creates ``database``."""

    database: str = "airflow"
    superuser: str = "airflow"
    port: int = 0
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    base: Path | None = None
    os_user: str | None = None
    bindir: Path | None = None
    _started: bool = False

    @property
    def data_dir(self) -> Path:
        assert self.base is not None
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.base is not None
        return self.base / "sockets"

    @property
    def log_path(self) -> Path:
        assert self.base is not None
        return self.base / "postgres.log"

    def sqlalchemy_url(self, driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://{self.superuser}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} dbname={self.database} user={self.superuser} password={self.password}"

    def _run(self, argv: Sequence[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv),
            user=self.os_user,
            cwd=str(self.base),
            capture_output=True,
            text=True,
            timeout=timeout,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"},
        )

    def start(self, timeout: float = 60) -> PostgresCluster:
        self.bindir = postgres_bindir()
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise ServiceUnavailable(
                    "running as root and there is no `postgres` OS user to run the server"
                ) from None
            self.os_user = "postgres"
        else:
            owner = pwd.getpwuid(os.geteuid())
        self.base = Path(tempfile.mkdtemp(prefix="cronium-test-pg-"))
        self.socket_dir.mkdir(mode=0o700)
        os.chmod(self.base, 0o700)
        if os.geteuid() == 0:
            for path in (self.base, self.socket_dir):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        pwfile.chmod(0o600)

        init = self._run(
            [
                str(self.bindir / "initdb"),
                "--pgdata",
                str(self.data_dir),
                "--username",
                self.superuser,
                "--pwfile",
                str(pwfile),
                "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ]
        )
        pwfile.unlink()
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed ({init.returncode}):\n{init.stdout[-2000:]}\n{init.stderr[-2000:]}")

        # Bind and retry: a free port can be taken between free_port() and the server's bind.
        for _attempt in range(3):
            self.port = free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.socket_dir} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
                "-c shared_buffers=128MB"
            )
            started = self._run(
                [
                    str(self.bindir / "pg_ctl"),
                    "--pgdata",
                    str(self.data_dir),
                    "--log",
                    str(self.log_path),
                    "--options",
                    options,
                    "--wait",
                    "--timeout",
                    str(int(timeout)),
                    "start",
                ],
                timeout=timeout + 30,
            )
            if started.returncode == 0:
                self._started = True
                break
            if "could not bind" not in tail(self.log_path, 20) and "in use" not in tail(self.log_path, 20):
                raise RuntimeError(
                    f"pg_ctl start failed ({started.returncode}): {started.stderr[-1000:]}\n{tail(self.log_path)}"
                )
        else:
            raise RuntimeError(f"PostgreSQL could not bind a free port:\n{tail(self.log_path)}")

        import psycopg2

        conn = psycopg2.connect(self.dsn().replace(f"dbname={self.database}", "dbname=postgres"), connect_timeout=10)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{self.database}" OWNER "{self.superuser}" ENCODING \'UTF8\'')
        finally:
            conn.close()
        return self

    def connect(self):  # type: ignore[no-untyped-def]
        import psycopg2

        conn = psycopg2.connect(self.dsn(), connect_timeout=10)
        conn.autocommit = True
        return conn

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall()) if cur.description else []
        finally:
            conn.close()

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        if self.base is None:
            return
        if self._started and self.bindir is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._run(
                    [
                        str(self.bindir / "pg_ctl"),
                        "--pgdata",
                        str(self.data_dir),
                        "--mode",
                        "immediate",
                        "--wait",
                        "--timeout",
                        "30",
                        "stop",
                    ],
                    timeout=45,
                )
        pid = self._postmaster_pid()
        if pid is not None:  # pg_ctl did not stop it: the postmaster and its children go by force
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            time.sleep(1)
        self._started = False
        shutil.rmtree(self.base, ignore_errors=True)
        self.base = None


# --- Redis ----------------------------------------------------------------------------------------------------


@dataclass
class RedisServer:
    """A private ``redis-server`` on 127.0.0.1, no persistence, in its own process group."""

    port: int = 0
    base: Path | None = None
    process: ManagedProcess | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    @property
    def log_path(self) -> Path:
        assert self.base is not None
        return self.base / "redis.log"

    def start(self, timeout: float = 30) -> RedisServer:
        binary = shutil.which("redis-server") or (
            "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
        )
        if binary is None:
            raise ServiceUnavailable(
                "redis-server not found; install Debian's redis-server (scripts/install-system.sh does)"
            )
        self.base = Path(tempfile.mkdtemp(prefix="cronium-test-redis-"))
        import redis

        for _attempt in range(3):
            self.port = free_port()
            self.process = ManagedProcess(
                "redis",
                [
                    binary,
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--dir",
                    str(self.base),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "no",
                    "--protected-mode",
                    "yes",
                    "--databases",
                    "16",
                ],
                self.log_path,
            ).start()

            def ready() -> bool:
                assert self.process is not None
                if not self.process.alive():
                    raise ServiceDied("redis-server exited")
                return bool(redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1).ping())

            try:
                wait_for(ready, timeout, "redis-server")
                return self
            except (RuntimeError, TimeoutError):
                self.process.stop(grace=5)
                if "Address already in use" not in tail(self.log_path, 20):
                    raise RuntimeError(f"redis-server did not start:\n{tail(self.log_path)}") from None
        raise RuntimeError(f"redis-server could not bind a free port:\n{tail(self.log_path)}")

    def client(self, db: int = 0):  # type: ignore[no-untyped-def]
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=5)

    def stop(self) -> None:
        if self.process is not None:
            with contextlib.suppress(Exception):
                self.client().shutdown(nosave=True)
            self.process.stop(grace=5)
            self.process = None
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None
