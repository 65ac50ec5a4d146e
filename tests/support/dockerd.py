"""A private Docker daemon for tests that stop and start one: never the machine's own daemon.

It has its own socket, data root, exec root and pid file under a temporary folder, no bridge network and
no iptables rules, so it shares nothing with the machine's daemon but the kernel. ``stop()`` is a graceful
stop (SIGTERM: the daemon stops its containers, then exits), ``start()`` starts it again on the same
folders, so containers and volumes it held survive the restart, as after a restart of a real daemon.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any


class DockerdUnavailable(RuntimeError):
    """``dockerd`` is not installed or would not start."""


class PrivateDockerd:
    def __init__(self, base: Path | None = None) -> None:
        binary = shutil.which("dockerd") or ("/usr/sbin/dockerd" if Path("/usr/sbin/dockerd").exists() else None)
        if binary is None:
            raise DockerdUnavailable("dockerd not found (Debian: apt-get install docker.io)")
        self.binary = binary
        # a short path: a unix socket's path is limited to 107 bytes
        self.base = base or Path(tempfile.mkdtemp(prefix="crdockerd-", dir="/tmp"))
        self.socket = self.base / "docker.sock"
        self.log_path = self.base / "dockerd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def client(self, timeout: int = 30) -> Any:
        """A low-level docker-py client of this daemon (the provider's kind: ``DockerHook().get_conn()``)."""
        import docker

        return docker.APIClient(base_url=self.url, timeout=timeout)

    def command(self) -> list[str]:
        return [
            self.binary,
            "--host",
            self.url,
            "--data-root",
            str(self.base / "data"),
            "--exec-root",
            str(self.base / "exec"),
            "--pidfile",
            str(self.base / "docker.pid"),
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
        ]

    def answers(self) -> bool:
        try:
            client = self.client(timeout=2)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except Exception:
            return False

    def start(self, timeout: float = 60) -> PrivateDockerd:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise DockerdUnavailable(f"dockerd did not start:\n{self.log_tail()}")
            time.sleep(0.1)
        return self

    def stop(self, timeout: float = 60) -> float:
        """Stop the daemon as a service manager does (SIGTERM, then wait); returns the seconds it took."""
        started = time.monotonic()
        if self.proc is None:
            return 0.0
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self.proc = None
        return time.monotonic() - started

    def restart(self) -> float:
        """Stop, then start again; returns how long the daemon was unreachable."""
        down = time.monotonic()
        self.stop()
        self.start()
        return time.monotonic() - down

    def kill(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self.proc = None

    def load_image(self, image: str, source_host: str | None = None) -> None:
        """Copy ``image`` from the machine's daemon (``docker save | docker -H <this> load``)."""
        docker = shutil.which("docker")
        if docker is None:
            raise DockerdUnavailable("the docker command line is not installed")
        save_cmd = [docker, *(["-H", source_host] if source_host else []), "save", image]
        save = subprocess.Popen(save_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        load = subprocess.run(
            [docker, "-H", self.url, "load"], stdin=save.stdout, capture_output=True, text=True, timeout=300
        )
        assert save.stdout is not None
        save.stdout.close()
        save_err = save.communicate(timeout=60)[1]
        if save.returncode != 0 or load.returncode != 0:
            raise DockerdUnavailable(f"could not copy {image}: {save_err.decode(errors='replace')} {load.stderr}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"<{self.log_path}: {exc}>"

    def remove(self) -> None:
        """Stop the daemon and delete its folders (unmounting whatever it left mounted there)."""
        self.stop()
        with open("/proc/self/mounts") as mounts:
            points = [line.split()[1] for line in mounts if line.split()[1].startswith(str(self.base))]
        for point in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        shutil.rmtree(self.base, ignore_errors=True)
