"""The real components the project depends on are reachable: Docker with the runtime image, and sshd."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import RUNTIME_IMAGE
from tests.support.sshd import TestSSHServer


@pytest.mark.docker
def test_runtime_image_runs_echo_isolated(docker_client) -> None:
    output = docker_client.containers.run(
        RUNTIME_IMAGE,
        ["bash", "-c", "echo hello from $(id -u); python3 -c 'print(2+2)'; node -e 'console.log(6*7)'"],
        network_mode="none",
        remove=True,
    )
    lines = output.decode().split()
    assert lines == ["hello", "from", "1000", "4", "42"], output
    print(f"docker smoke: {' '.join(lines)} (image {RUNTIME_IMAGE})")


@pytest.mark.ssh
def test_ssh_provider_runs_echo_on_test_sshd(sshd_binary: str, tmp_path: Path, monkeypatch) -> None:
    from airflow.providers.ssh.hooks.ssh import SSHHook

    server = TestSSHServer(sshd_binary, tmp_path / "srv", address="127.0.0.2", port=2201).start()
    try:
        extra = json.dumps(server.connection_uri_extra())
        monkeypatch.setenv(
            "AIRFLOW_CONN_CRONIUM_SMOKE_SSH",
            json.dumps(
                {"conn_type": "ssh", "host": server.address, "port": server.port, "login": "root", "extra": extra}
            ),
        )
        hook = SSHHook(ssh_conn_id="cronium_smoke_ssh", cmd_timeout=30)
        with hook.get_conn() as client:
            status, out, err = hook.exec_ssh_client_command(
                client, "echo hello over ssh", get_pty=False, environment=None
            )
        assert status == 0, err
        assert out.decode().splitlines()[0] == "hello over ssh"
        print(f"ssh smoke: {out.decode().splitlines()[0]} via {server.address}:{server.port}")
    finally:
        server.stop()
