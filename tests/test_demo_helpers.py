"""The pieces of `make demo` an outsider can reach or a setting can bend, without starting Airflow: the HTTP
endpoint the examples deliver to (a huge body, a client that stops sending), a DEMO_HOME whose name holds shell
syntax, and demo-stop given a pid file whose pid now belongs to another process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.support.services import free_port, port_open, wait_for

HELPERS = REPO / "scripts" / "demo_helpers.py"


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    port, log = free_port(), tmp_path / "http.jsonl"
    command = [sys.executable, str(HELPERS), "http", "--address", "127.0.0.1", "--port", str(port), "--log", str(log)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: port_open(port), 20, "the demo's HTTP endpoint")
        yield port, log
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def test_http_endpoint_refuses_a_huge_body_without_reading_it(endpoint: tuple[int, Path]) -> None:
    """A POST announcing 200 MB: answered 413 at once, nothing logged; a normal POST after it is logged."""
    port, log = endpoint
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 200000000\r\n\r\n" + b"x" * 1000)
        assert sock.recv(100).startswith(b"HTTP/1.0 413")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /ok HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
        assert sock.recv(100).startswith(b"HTTP/1.0 200")
    lines = log.read_text().splitlines()
    assert len(lines) == 1 and '"path": "/ok"' in lines[0]


def test_http_endpoint_drops_a_client_that_stops_sending(endpoint: tuple[int, Path]) -> None:
    """A client that sends half a request and then nothing (slowloris) is cut off after the idle timeout."""
    port, _ = endpoint
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        started = time.monotonic()
        assert sock.recv(100) == b""  # the server closed the connection
        assert time.monotonic() - started < 20


def test_demo_home_with_shell_syntax_is_refused_before_anything_runs(tmp_path: Path) -> None:
    """A DEMO_HOME whose name would run a command when demo.env is sourced: refused with an error naming
    DEMO_HOME, the command never runs and no Airflow home is made."""
    pwned = tmp_path / "pwned"
    home = tmp_path / f"home'$(touch {pwned})'x"
    env = {**os.environ, "DEMO_HOME": str(home), "DEMO_PORT": str(free_port()), "AIRFLOW_BIN": "/bin/false"}
    env["DEMO_PYTHON"] = sys.executable
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "demo.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert not pwned.exists(), "sourcing demo.env ran the command in DEMO_HOME's name"
    assert proc.returncode == 1
    assert "DEMO_HOME may hold only" in proc.stderr
    assert not home.exists()


def test_demo_stop_leaves_a_process_that_took_over_a_stale_pid(tmp_path: Path) -> None:
    """A pid file left behind whose pid now belongs to another program (pid reuse: here, a sleep started
    after the file was written, with the start time of the service that ran there): demo-stop leaves it
    running and removes the stale file."""
    home = tmp_path / "home"
    home.mkdir()
    other = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        for name in ("scheduler", "sshd", "http-endpoint"):
            (home / f"{name}.pid").write_text(f"{other.pid}\n")
            (home / f".{name}.start").write_text("12345\n")  # the start time of the process that held it
        proc = subprocess.run(
            ["bash", str(REPO / "scripts" / "demo-stop.sh")],
            env={**os.environ, "DEMO_HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert other.poll() is None, "demo-stop killed a process that is not the demo's"
        assert not list(home.glob("*.pid"))
        assert "no demo service or helper was running" in proc.stdout
    finally:
        other.kill()
        other.wait()
