"""Real OpenSSH servers for tests, each on its own loopback address (127.0.0.2, 127.0.0.3, ...)."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TEST_USER = "cronium-ssh"


def ensure_test_user(name: str = TEST_USER) -> str:
    """An unprivileged login for the test servers, with a plain shell set-up (as on a real server).

    Logging in as root would run root's own shell start-up files on every SSH command, which on a
    developer machine can take longer than the work being measured.
    """
    if subprocess.run(["id", "-u", name], capture_output=True).returncode != 0:
        # password "*": no password login, but not a locked account (sshd refuses locked ones)
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", "--password", "*", name], check=True)
    return name


def _keygen(path: Path, kind: str = "ed25519") -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)], check=True)


@dataclass
class TestSSHServer:
    """One ``sshd -D`` process with its own host key, accepting one client key for ``user``."""

    sshd: str
    workdir: Path
    address: str = "127.0.0.2"
    port: int = 2222
    user: str = "root"
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    __test__ = False  # not a test class, despite the name

    @property
    def host_key_path(self) -> Path:
        return self.workdir / "ssh_host_ed25519_key"

    @property
    def client_key_path(self) -> Path:
        return self.workdir / "client_key"

    @property
    def host_public_key(self) -> str:
        """``ssh-ed25519 AAAA...``: the form an Airflow SSH connection's ``host_key`` extra takes."""
        return " ".join(self.host_key_path.with_suffix(".pub").read_text().split()[:2])

    def start(self) -> TestSSHServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o700)
        if not self.host_key_path.exists():
            _keygen(self.host_key_path)
        if not self.client_key_path.exists():
            _keygen(self.client_key_path)
        # sshd reads authorized_keys as the logging-in user: keep it where that user can read it
        keys_dir = Path("/tmp/cronium-test-sshd") / f"{self.address}-{self.port}"
        keys_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(keys_dir.parent, 0o755)
        os.chmod(keys_dir, 0o755)
        authorized = keys_dir / "authorized_keys"
        authorized.write_text(self.client_key_path.with_suffix(".pub").read_text())
        os.chmod(authorized, 0o644)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        config = self.workdir / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"ListenAddress {self.address}:{self.port}",
                    f"HostKey {self.host_key_path}",
                    f"AuthorizedKeysFile {authorized}",
                    f"PidFile {self.workdir / 'sshd.pid'}",
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "MaxStartups 50",
                    "MaxSessions 50",
                    "Subsystem sftp internal-sftp",
                    "",
                ]
            )
        )
        self.process = subprocess.Popen(
            [self.sshd, "-D", "-e", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "sshd.log", "wb"),
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.workdir / 'sshd.log').read_text()[-2000:]}")
            try:
                with socket.create_connection((self.address, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd on {self.address}:{self.port} did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def connection_uri_extra(self) -> dict[str, str]:
        return {"key_file": str(self.client_key_path), "host_key": self.host_public_key}

    def airflow_connection(self) -> str:
        """This server as an Airflow SSH connection (the JSON of an ``AIRFLOW_CONN_*`` variable)."""
        extra = {**self.connection_uri_extra(), "look_for_keys": "false"}
        return json.dumps(
            {
                "conn_type": "ssh",
                "host": self.address,
                "port": self.port,
                "login": self.user,
                "extra": json.dumps(extra),
            }
        )

    def client(self) -> Any:
        """A connected paramiko ``SSHClient`` that trusts this server's host key alone."""
        import paramiko

        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        key = paramiko.Ed25519Key(data=base64.b64decode(self.host_public_key.split()[1]))
        client.get_host_keys().add(f"[{self.address}]:{self.port}", "ssh-ed25519", key)
        client.connect(
            self.address,
            self.port,
            username=self.user,
            key_filename=str(self.client_key_path),
            look_for_keys=False,
            allow_agent=False,
        )
        return client
