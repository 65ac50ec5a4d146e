"""The provider as Airflow sees it: registration, the `cronium` connection type and its hook."""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cronium_provider.get_provider_info import get_provider_info
from tests.conftest import REPO, airflow_env, venv_bin


def test_airflow_providers_list_shows_the_provider() -> None:
    proc = subprocess.run(
        [venv_bin("airflow"), "providers", "list", "--output", "json"],
        env=airflow_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    providers = {p["package_name"]: p for p in json.loads(proc.stdout)}
    assert "airflow-provider-cronium" in providers
    assert providers["airflow-provider-cronium"]["version"] == "0.1.0"


def options_the_docs_name() -> list[str]:
    """Every ``[cronium]`` option the README and the docs pages name (``[cronium] name``,
    ``AIRFLOW__CRONIUM__NAME``), and every option of the configuration page's table (the provider's
    declaration). The Kubernetes page is a design on paper: its options do not exist."""
    pages = [REPO / "README.md", *sorted(p for p in (REPO / "docs").glob("*.md") if p.name != "kubernetes.md")]
    text = "\n".join(p.read_text() for p in pages)
    named = set(re.findall(r"\[cronium\]\s+`?([a-z_]+)", text))
    named |= {m.lower() for m in re.findall(r"AIRFLOW__CRONIUM__([A-Z_]*[A-Z])", text)}
    return sorted(named)


def test_every_cronium_option_the_docs_name_is_declared() -> None:
    """An option the docs name is one the provider declares (so ``airflow.cfg`` lists it), and the docs name
    the options a user sets most (the rest are in the configuration page's table, read from the declaration)."""
    declared = set(get_provider_info()["config"]["cronium"]["options"])
    named = set(options_the_docs_name())
    assert sorted(named - declared) == [], "the docs name options the provider does not declare"
    assert {"records_dir", "index_dir", "image_bash", "run_folder_mb", "script_network", "timezone"} <= named


OPTIONS = get_provider_info()["config"]["cronium"]["options"]


@pytest.mark.parametrize("option", sorted(o for o in OPTIONS if OPTIONS[o]["default"] is not None))
def test_airflow_config_knows_every_cronium_option_the_docs_name(option: str) -> None:
    """``airflow config get-value cronium <option>`` answers for every option the provider reads that has a
    default (the docs name every option, see above), never "not found". An option with no default (such as
    ``records_dir``) is "not found" until it is set, as any unset Airflow option."""
    proc = subprocess.run(
        [venv_bin("airflow"), "config", "get-value", "cronium", option],
        env={k: v for k, v in airflow_env().items() if not k.startswith("AIRFLOW__CRONIUM__")},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "not found" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_airflow_lists_the_hook_and_connection_type() -> None:
    proc = subprocess.run(
        [venv_bin("airflow"), "providers", "hooks", "--output", "json"],
        env=airflow_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    hooks = {h["connection_type"]: h for h in json.loads(proc.stdout)}
    assert hooks["cronium"]["class"] == "cronium_provider.hooks.cronium.CroniumHook"
    assert hooks["cronium"]["package_name"] == "airflow-provider-cronium"


def test_connection_form_fields_are_declared_the_airflow3_way() -> None:
    from airflow.providers_manager import ProvidersManager

    pm = ProvidersManager()
    behaviour = pm.field_behaviours["cronium"]
    assert behaviour["relabeling"]["password"] == "API token"
    assert "login" in behaviour["hidden_fields"]
    assert "extra__cronium__verify_ssl" in pm.connection_form_widgets or any(
        k.endswith("verify_ssl") and v.connection_class == "cronium" for k, v in pm.connection_form_widgets.items()
    )


def test_airflow_connections_add_of_type_cronium(airflow_db) -> None:
    env = airflow_env()
    add = subprocess.run(
        [
            venv_bin("airflow"),
            "connections",
            "add",
            "cronium_cli_test",
            "--conn-type",
            "cronium",
            "--conn-host",
            "https://cronium.example.test",
            "--conn-password",
            "s3cr3t-token",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert add.returncode == 0, add.stderr[-2000:]
    assert "s3cr3t-token" not in add.stdout + add.stderr
    got = subprocess.run(
        [venv_bin("airflow"), "connections", "get", "cronium_cli_test", "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert got.returncode == 0, got.stderr[-2000:]
    conn = json.loads(got.stdout)[0]
    assert conn["conn_type"] == "cronium"
    assert conn["host"] == "https://cronium.example.test"


class _CroniumAPI(BaseHTTPRequestHandler):
    token = "good-token"
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:
        type(self).seen.append({"path": self.path, "auth": self.headers.get("Authorization", "")})
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            self._send(401, {"error": "Unauthorized"})
        elif self.path == "/api/events":
            self._send(200, [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
        else:
            self._send(404, {"error": "not found"})

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def cronium_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CroniumAPI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _CroniumAPI.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("token", "ok", "words"), [("good-token", True, "2 event(s)"), ("bad", False, "HTTP 401")])
def test_hook_test_connection_calls_the_cronium_api(cronium_api: str, monkeypatch, token, ok, words) -> None:
    from cronium_provider.hooks.cronium import CroniumHook

    monkeypatch.setenv(
        "AIRFLOW_CONN_CRONIUM_TEST", json.dumps({"conn_type": "cronium", "host": cronium_api, "password": token})
    )
    result, message = CroniumHook("cronium_test").test_connection()
    assert result is ok
    assert words in message
    assert _CroniumAPI.seen[-1] == {"path": "/api/events", "auth": f"Bearer {token}"}


def test_hook_reports_an_unreachable_server(monkeypatch) -> None:
    from cronium_provider.hooks.cronium import CroniumHook

    monkeypatch.setenv(
        "AIRFLOW_CONN_CRONIUM_DOWN", json.dumps({"conn_type": "cronium", "host": "http://127.0.0.1:9", "password": "x"})
    )
    ok, message = CroniumHook("cronium_down", timeout=5).test_connection()
    assert ok is False
    assert "Cannot reach the Cronium API" in message


def test_every_cronium_task_links_to_its_event_in_cronium(monkeypatch) -> None:
    from cronium_provider.links import CroniumEventLink
    from cronium_provider.operators.container_script import CroniumScriptOperator
    from cronium_provider.operators.http import CroniumHttpOperator

    script = CroniumScriptOperator(task_id="run", language="BASH", script="true", event={"id": 12})
    http = CroniumHttpOperator(task_id="http", url="http://127.0.0.1:9/x", event={"id": 13})
    assert [link.name for link in script.operator_extra_links] == ["Cronium event"]
    monkeypatch.delenv("AIRFLOW__CRONIUM__BASE_URL", raising=False)
    assert CroniumEventLink().get_link(script, ti_key=None) == ""  # no base URL: no link
    monkeypatch.setenv("AIRFLOW__CRONIUM__BASE_URL", "https://cronium.example.test/")
    assert CroniumEventLink().get_link(script, ti_key=None) == "https://cronium.example.test/dashboard/events/12"
    assert CroniumEventLink().get_link(http, ti_key=None) == "https://cronium.example.test/dashboard/events/13"


def test_airflow_knows_the_extra_link() -> None:
    proc = subprocess.run(
        [venv_bin("airflow"), "providers", "links", "--output", "json"],
        env=airflow_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "cronium_provider.links.CroniumEventLink" in proc.stdout
