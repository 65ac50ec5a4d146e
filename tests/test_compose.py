"""The Compose stack users run (docker-compose.airflow.yml and docker/airflow.Dockerfile).

The file is validated and resolved by a real Compose implementation: ``docker-compose config`` (Compose v1,
Debian's ``docker-compose`` package) checks it against the Compose Specification schema, resolves the
``x-airflow-common`` anchors and the ``${VAR:-default}`` interpolation, and prints the resolved
configuration, which the tests read with PyYAML. No Docker daemon, image or network is needed. When
Compose v2 (``docker compose``) is also installed, the file is validated by it as well.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, missing

COMPOSE_FILE = REPO / "docker-compose.airflow.yml"
DOCKERFILE = REPO / "docker" / "airflow.Dockerfile"
DUMMY_FERNET_KEY = "not-a-real-fernet-key-for-compose-tests"

AIRFLOW_SERVICES = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-init",
}
LONG_RUNNING = AIRFLOW_SERVICES - {"airflow-init"}
EXPECTED_COMMANDS = {
    "airflow-apiserver": ["api-server"],
    "airflow-scheduler": ["scheduler"],
    "airflow-dag-processor": ["dag-processor"],
    "airflow-triggerer": ["triggerer"],
    "airflow-worker": ["celery", "worker"],
}
# The variables the file reads from the host's environment: unset for the tests unless a test sets them.
HOST_VARIABLES = (
    "AIRFLOW_FERNET_KEY",
    "AIRFLOW_UID",
    "AIRFLOW_ADMIN_USERNAME",
    "AIRFLOW_ADMIN_PASSWORD",
    "AIRFLOW_CRONIUM_IMAGE",
    "CRONIUM_RECORDS_DIR",
    "CRONIUM_RUNTIME_IMAGE",
    "DOCKER_GID",
)


def _docker_compose() -> str:
    path = shutil.which("docker-compose")
    if path is None:
        missing("docker-compose", "install Debian's docker-compose package (apt-get install -y docker-compose)")
    return str(path)


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in HOST_VARIABLES and not k.startswith("COMPOSE_")}
    env.update(values)
    return env


def _run_config(tmp_path: Path, command: list[str], **values: str) -> subprocess.CompletedProcess[str]:
    # An empty env file: a developer's .env beside the compose file must not change what is tested.
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    return subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "config"],
        cwd=REPO,
        env=_env(**values),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _resolved(tmp_path: Path, **values: str) -> dict[str, Any]:
    values.setdefault("AIRFLOW_FERNET_KEY", DUMMY_FERNET_KEY)
    result = _run_config(tmp_path, [_docker_compose()], **values)
    assert result.returncode == 0, f"docker-compose config rejected the file:\n{result.stderr}"
    config = yaml.safe_load(result.stdout)
    assert isinstance(config, dict)
    return config


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _resolved(tmp_path_factory.mktemp("compose"))


@pytest.fixture(scope="module")
def services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return config["services"]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    words = shlex.split(command) if isinstance(command, str) else [str(w) for w in command]
    # The official image's entrypoint prepends `airflow` when it is left out: both spellings run the same.
    return words[1:] if words[:1] == ["airflow"] else words


def _mounts(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) for each volume, short ("src:dst:ro") or long syntax."""
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            parts = volume.split(":")
            mode = parts[2] if len(parts) > 2 else "rw"
            mounts.append((parts[0], parts[1], "ro" in mode.split(",")))
        else:
            mounts.append((str(volume.get("source")), str(volume["target"]), bool(volume.get("read_only"))))
    return mounts


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


# --- the file is valid Compose ------------------------------------------------------------------------


def test_docker_compose_validates_the_file(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= AIRFLOW_SERVICES | {"postgres", "redis"}


# --- Airflow services ---------------------------------------------------------------------------------


def test_every_airflow_service_builds_the_project_image(services: dict[str, dict[str, Any]]) -> None:
    for name in AIRFLOW_SERVICES:
        build = services[name].get("build")
        assert isinstance(build, dict), f"{name} has no build section"
        assert Path(build["context"]).resolve() == REPO, name
        assert (Path(build["context"]) / build["dockerfile"]).resolve() == DOCKERFILE, name


def test_every_airflow_service_uses_celery_postgres_and_redis(services: dict[str, dict[str, Any]]) -> None:
    for name in AIRFLOW_SERVICES:
        env = _environment(services[name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://"), name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres/airflow"), name
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://"), name
        assert re.fullmatch(r"redis://(:@)?redis:6379/0", env["AIRFLOW__CELERY__BROKER_URL"]), name
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false", name
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/", name


def test_every_airflow_service_has_the_cronium_settings(services: dict[str, dict[str, Any]]) -> None:
    for name in AIRFLOW_SERVICES:
        env = _environment(services[name])
        assert env["CRONIUM_RECORDS_DIR"] == "/opt/cronium/records", name
        assert env["AIRFLOW__CRONIUM__DOCKER_URL"] == "unix://var/run/docker.sock", name
        # Tool-action rate-limit state: Redis, another database than the Celery broker's.
        assert env["AIRFLOW__CRONIUM__RESILIENCE_STORE"] == "redis://redis:6379/1", name
        assert env["AIRFLOW__CRONIUM__IMAGE"] == "cronium-runtime:2", name


def test_auth_manager_is_installed_in_the_image(services: dict[str, dict[str, Any]]) -> None:
    managers = {_environment(services[name]).get("AIRFLOW__CORE__AUTH_MANAGER", "") for name in AIRFLOW_SERVICES}
    assert len(managers) == 1, managers
    if "providers.fab." in managers.pop():
        assert "apache-airflow-providers-fab" in DOCKERFILE.read_text()


def test_service_commands(services: dict[str, dict[str, Any]]) -> None:
    for name, expected in EXPECTED_COMMANDS.items():
        assert _command(services[name]) == expected, name
    ports = services["airflow-apiserver"]["ports"]
    published = {str(p) if not isinstance(p, dict) else f"{p.get('published')}:{p['target']}" for p in ports}
    assert "8080:8080" in published


def test_init_job_migrates_the_database_and_creates_the_admin(services: dict[str, dict[str, Any]]) -> None:
    init = services["airflow-init"]
    env = _environment(init)
    script = " ".join(_command(init))
    # The official image's entrypoint runs `airflow db migrate` (and creates the user) when these are 'true'.
    migrates = "airflow db migrate" in script or (env.get("_AIRFLOW_DB_MIGRATE") == "true" and "/entrypoint" in script)
    assert migrates, f"airflow-init does not run db migrate: {script!r}"
    assert env.get("_AIRFLOW_WWW_USER_CREATE") == "true" or "users create" in script
    assert env["_AIRFLOW_WWW_USER_USERNAME"] == "admin"
    assert init.get("restart", "no") == "no"


def test_healthchecks_and_start_order(services: dict[str, dict[str, Any]]) -> None:
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7.2"
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert "ping" in services["redis"]["healthcheck"]["test"]
    for name in AIRFLOW_SERVICES:
        deps = _depends_on(services[name])
        assert deps.get("postgres") == "service_healthy", name
        assert deps.get("redis") == "service_healthy", name
    for name in LONG_RUNNING:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert _depends_on(services[name]).get("airflow-init") == "service_completed_successfully", name
    assert _depends_on(services["airflow-worker"]).get("airflow-apiserver") == "service_healthy"


# --- mounts -------------------------------------------------------------------------------------------


def test_records_and_docker_socket_are_mounted(services: dict[str, dict[str, Any]]) -> None:
    for name in AIRFLOW_SERVICES:
        mounts = _mounts(services[name])
        records = [m for m in mounts if m[1] == "/opt/cronium/records"]
        assert records, f"{name} does not mount the records folder"
        source, _target, read_only = records[0]
        assert Path(source).resolve() == REPO / "dags_templates" / "records", name
        assert read_only, f"{name} mounts the records folder read-write"
        assert ("/var/run/docker.sock", "/var/run/docker.sock", False) in mounts, name
        assert any(target == "/opt/airflow/logs" for _s, target, _ro in mounts), name
    # The worker starts the script containers: it needs the socket's group.
    assert [str(g) for g in services["airflow-worker"]["group_add"]] == ["999"]


def test_the_parse_index_folder_is_shared_so_the_api_server_shows_the_catalog(
    services: dict[str, dict[str, Any]], config: dict[str, Any]
) -> None:
    """The dag-processor writes the parse index and the Cronium view's catalog into [cronium] index_dir
    (default $AIRFLOW_HOME/cronium/parse-index); the api-server reads the catalog and the workers the index:
    one named volume for all, owned by the Airflow user (the init job chowns it)."""
    sources = set()
    for name in AIRFLOW_SERVICES:
        mounts = [m for m in _mounts(services[name]) if m[1] == "/opt/airflow/cronium"]
        assert mounts, f"{name} does not mount the shared index folder"
        assert not mounts[0][2], f"{name} mounts the index folder read-only"
        sources.add(mounts[0][0])
    assert len(sources) == 1 and next(iter(sources)) in config.get("volumes", {}), sources
    init = " ".join(str(w) for w in services["airflow-init"]["command"])
    assert re.search(r"chown -R \S+ [^\n]*/opt/airflow/cronium", init), init


def test_host_variables_override_the_defaults(tmp_path: Path) -> None:
    config = _resolved(tmp_path, CRONIUM_RECORDS_DIR="/srv/cronium-records", DOCKER_GID="998")
    worker = config["services"]["airflow-worker"]
    assert ("/srv/cronium-records", "/opt/cronium/records", True) in _mounts(worker)
    assert [str(g) for g in worker["group_add"]] == ["998"]


# --- no secrets in the file ---------------------------------------------------------------------------


def test_fernet_key_comes_from_the_environment(services: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    for name in AIRFLOW_SERVICES:
        assert _environment(services[name])["AIRFLOW__CORE__FERNET_KEY"] == DUMMY_FERNET_KEY, name
    result = _run_config(tmp_path, [_docker_compose()])
    assert result.returncode != 0, "the stack starts without AIRFLOW_FERNET_KEY: the file must require it"
    assert "AIRFLOW_FERNET_KEY" in result.stderr


def test_no_secret_values_in_the_file() -> None:
    text = COMPOSE_FILE.read_text()
    raw = yaml.safe_load(text)  # PyYAML resolves the anchors; ${...} is left as written
    sensitive = re.compile(r"FERNET|SECRET|TOKEN|JWT|API_KEY", re.IGNORECASE)
    for name, service in raw["services"].items():
        for key, value in _environment(service).items():
            if sensitive.search(key):
                # Only a reference to a host variable, with no default value after it.
                assert re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*(:?\?[^}]*)?\}", value), f"{name}: {key}={value!r}"
    # Nothing shaped like a Fernet key (32 url-safe base64 bytes) or another long random token.
    assert not re.search(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}=", text)
    assert not re.search(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{22}==", text)


# --- the Dockerfile -----------------------------------------------------------------------------------


def test_dockerfile_installs_the_project_and_the_dag_file() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines() if line.strip()]
    code = [line for line in lines if not line.startswith("#")]
    assert "ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11" in code
    assert "FROM ${AIRFLOW_IMAGE}" in code
    text = "\n".join(code)
    for source in ("pyproject.toml", "README.md", "cronium_provider/", "runtime_helpers/"):
        assert re.search(rf"^COPY .*\s{re.escape(source)}(\s|$)", text, re.MULTILINE), f"{source} is not copied"
        assert (REPO / source).exists(), source
    assert re.search(r"^COPY .*dags_templates/cronium_dags\.py /opt/airflow/dags/", text, re.MULTILINE)
    assert (REPO / "dags_templates" / "cronium_dags.py").is_file()
    # Installed as the airflow user, as the official image expects, without pip's cache in the layer.
    users = [i for i, line in enumerate(code) if line.startswith("USER ")]
    pip = next(i for i, line in enumerate(code) if line.startswith("RUN pip install"))
    assert users and users[0] < pip and code[max(u for u in users if u < pip)] == "USER airflow"
    assert code[pip].startswith("RUN pip install --no-cache-dir")
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in text  # never up- or downgrades the image's Airflow
