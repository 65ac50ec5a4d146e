"""A fleet of real sshd processes on loopback addresses for the SSH benchmarks.

Each server is one ``sshd -D`` (tests/support/sshd.py) on its own address 127.0.0.<first>..., all on one port,
all accepting one client key generated here. ``stop()`` ends every sshd this module started (by its process
object) and removes the folders it made: the work folder and the per-server ``authorized_keys`` folders.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cpu import process_cpu_seconds

from tests.support.sshd import TestSSHServer, ensure_test_user

KEYS_ROOT = Path("/tmp/cronium-test-sshd")  # where TestSSHServer keeps each server's authorized_keys


@dataclass
class SSHFleet:
    count: int
    port: int
    first: int = 2  # 127.0.0.<first> is the first server's address
    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="cronium-bench-sshd-")))
    servers: list[TestSSHServer] = field(default_factory=list)

    def start(self) -> SSHFleet:
        if self.first + self.count - 1 > 254:
            raise ValueError("addresses past 127.0.0.254")
        key = self.work / "client_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        user = ensure_test_user()
        try:
            for i in range(self.count):
                folder = self.work / f"srv{i}"
                folder.mkdir()
                for suffix in ("", ".pub"):
                    (folder / f"client_key{suffix}").write_bytes(Path(f"{key}{suffix}").read_bytes())
                (folder / "client_key").chmod(0o600)
                server = TestSSHServer("/usr/sbin/sshd", folder, address=f"127.0.0.{self.first + i}", port=self.port)
                server.user = user
                self.servers.append(server.start())
        except BaseException:
            self.stop()
            raise
        return self

    def connections(self, prefix: str) -> list[dict[str, str]]:
        """Airflow SSH connections (``AIRFLOW_CONN_*`` in this process's environment), one per server."""
        targets = []
        for i, server in enumerate(self.servers):
            conn_id = f"{prefix}_{i}"
            os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
                {
                    "conn_type": "ssh",
                    "host": server.address,
                    "port": server.port,
                    "login": server.user,
                    "extra": json.dumps({**server.connection_uri_extra(), "look_for_keys": "false"}),
                }
            )
            targets.append({"name": f"s{i}", "conn_id": conn_id})
        return targets

    def server_cpu_seconds(self) -> float:
        """CPU time so far of the servers' side: each sshd with the connections, shells and scripts it reaped."""
        return process_cpu_seconds(s.process.pid for s in self.servers if s.process is not None)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
            shutil.rmtree(KEYS_ROOT / f"{server.address}-{server.port}", ignore_errors=True)
        self.servers = []
        shutil.rmtree(self.work, ignore_errors=True)
