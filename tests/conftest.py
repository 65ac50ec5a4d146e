"""Shared fixtures: a private Airflow home, real components (Docker, sshd), and the CI rule for them.

With ``CI=true`` a test whose component is missing fails; elsewhere it is skipped with the reason.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "dags_templates" / "records"
RUNTIME_IMAGE = os.environ.get("CRONIUM_RUNTIME_IMAGE", "cronium-runtime:2")

# Airflow reads its configuration when first imported: give the whole test session its own home.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="cronium-test-airflow-"))
atexit.register(shutil.rmtree, _AIRFLOW_HOME, ignore_errors=True)  # the session's database, logs and dags
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(_AIRFLOW_HOME / "dags"))
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_AIRFLOW_HOME}/airflow.db")
os.environ.setdefault("AIRFLOW__CORE__FERNET_KEY", "tHzVtBrTpU8Q5dJ9ocwXCsH0qvBy6aGjKxE3YbVz2gc=")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(component: str, why: str) -> None:
    """Fail under CI, skip elsewhere: a missing component never passes silently in CI."""
    message = f"{component} is not available: {why}"
    if in_ci():
        pytest.fail(message + " (CI=true: components must be present)")
    pytest.skip(message)


def venv_bin(name: str) -> str:
    """A console script installed beside the running interpreter (the project's virtual environment)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def airflow_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def airflow_db(airflow_home: Path) -> Path:
    """A migrated SQLite metadata database for tests that run real Airflow."""
    (airflow_home / "dags").mkdir(exist_ok=True)
    proc = subprocess.run(
        [venv_bin("airflow"), "db", "migrate"], env=airflow_env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return airflow_home


@pytest.fixture(scope="session")
def docker_client() -> Iterator[object]:
    try:
        import docker

        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:
        missing("Docker engine", f"{exc}; run `make test` (it starts dockerd) or scripts/ensure-docker.sh")
    try:
        client.images.get(RUNTIME_IMAGE)
    except Exception:
        missing("runtime image", f"{RUNTIME_IMAGE} not built; run scripts/build-runtime-image.sh")
    yield client
    client.close()


@pytest.fixture(scope="session")
def sshd_binary() -> str:
    path = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)
    if path is None:
        missing("openssh-server", "sshd not found; `make test` installs Debian's openssh-server")
    assert path is not None
    return path


@pytest.fixture(autouse=True)
def _remove_dag_files() -> Iterator[None]:
    """DAG files a test wrote into the dags folder go away with it (``dag.test()`` parses the whole folder)."""
    yield
    from tests.support.airflow_run import remove_written_dag_files

    remove_written_dag_files()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        missing("redis-server", "binary not on PATH (Debian: apt-get install redis-server)")
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - a test dependency
        missing("redis (Python client)", str(exc))
    workdir = tmp_path_factory.mktemp("redis")
    port = _free_port()
    log = (workdir / "redis.log").open("w")
    command = [str(binary), "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    command += ["--dir", str(workdir), "--protected-mode", "yes"]
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_timeout=1)
    deadline = time.monotonic() + 10
    while True:
        try:
            if client.ping():
                break
        except redis.ConnectionError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"redis-server did not start: {(workdir / 'redis.log').read_text()[-2000:]}")
        time.sleep(0.05)
    client.close()
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
