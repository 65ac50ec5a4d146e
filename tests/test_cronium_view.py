"""The Cronium view of Airflow's web UI: the catalog the DAG processor writes, and the view that shows it.

Unit tests drive the catalog through the factory's full parse and the view's app in-process (with
Airflow's ``get_user`` and auth manager replaced where a test needs another user). The module's real
test starts ``airflow api-server`` and ``airflow dag-processor`` on a private loopback port and
``AIRFLOW_HOME`` (Simple auth manager), lets the DAG processor parse a small sharded records folder, writes
the catalog of a second folder of 10,000 events in-process with the DAG processor's own function, and
drives the UI with headless Chromium: the navigation entry, the records, a left-out record, the DAG link,
paging through 10,000 records, and what an anonymous caller gets. Screenshots go to tests/artifacts/
(docs/images/ with CRONIUM_DOCS_SCREENSHOTS=1).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cronium_provider import factory
from cronium_provider.records.index import index_file
from cronium_provider.view import catalog as catalog_module
from cronium_provider.view.catalog import RecordFilter, catalog_file, catalogs, page_of_problems, page_of_records
from tests.conftest import REPO, missing, venv_bin

ENV_SECRET = "env-value-7Hq2sN9"
SERVER_PASSWORD = "server-pass-K4w8Zc"
SERVER_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nkey-material-P0x9Lm\n-----END OPENSSH PRIVATE KEY-----"
WEBHOOK_KEY = "webhook-key-Vb6Tr1Qy"
SECRETS = (ENV_SECRET, SERVER_PASSWORD, "key-material-P0x9Lm", WEBHOOK_KEY)
XSS_NAME = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
BAD_REASON_FRAGMENT = "expected 5 (minute hour day month weekday)"
ARTIFACTS = REPO / "tests" / "artifacts"
# The screenshots are written to tests/artifacts; with CRONIUM_DOCS_SCREENSHOTS=1 they replace the docs' own
# (docs/images), which is how those were made. A test run never changes the checkout otherwise.
IMAGES = REPO / "docs" / "images" if os.environ.get("CRONIUM_DOCS_SCREENSHOTS") == "1" else ARTIFACTS
ARTIFACTS = REPO / "tests" / "artifacts"
MANY = 10_000


def write_small(folder: Path) -> None:
    """A valid scheduled event, an event left out (bad cron), an event named with HTML, a WEBHOOK workflow
    with its key (and a differing copy of event 1: a warning), and a server with a password and a key."""
    folder.mkdir(parents=True, exist_ok=True)
    events = [
        {
            "id": 1,
            "name": "Nightly report",
            "type": "BASH",
            "status": "ACTIVE",
            "triggerType": "SCHEDULE",
            "customSchedule": "0 2 * * *",
            "content": "echo report",
            "envVars": [{"key": "REPORT_TOKEN", "value": ENV_SECRET}],
        },
        {
            "id": 2,
            "name": "Broken schedule",
            "type": "BASH",
            "status": "ACTIVE",
            "triggerType": "SCHEDULE",
            "customSchedule": "every night",
            "content": "echo never",
        },
        {
            "id": 3,
            "name": XSS_NAME,
            "type": "BASH",
            "status": "PAUSED",
            "content": "echo hi",
            "serverId": 1,
            "runLocation": "REMOTE",
        },
    ]
    (folder / "events.json").write_text(json.dumps({"events": events}))
    workflow = {
        "id": 5,
        "name": "Orders hook",
        "status": "ACTIVE",
        "triggerType": "WEBHOOK",
        "webhookKey": WEBHOOK_KEY,
        # a copy of event 1 nested in the workflow's download that differs from it: a warning, nothing left out
        "nodes": [{"id": 1, "eventId": 1, "event": dict(events[0], content="echo old copy")}],
        "edges": [],
    }
    (folder / "workflow-hook.json").write_text(json.dumps(workflow))
    server = {
        "id": 1,
        "name": "box",
        "address": "127.0.0.1",
        "port": 22,
        "username": "u",
        "password": SERVER_PASSWORD,
        "sshKey": SERVER_KEY,
    }
    (folder / "servers.json").write_text(json.dumps({"servers": [server]}))


def write_many(folder: Path, count: int = MANY) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    events = [
        {
            "id": 100_000 + i,
            "name": f"generated job {i}",
            "type": "BASH",
            "status": "ACTIVE" if i % 5 else "PAUSED",
            "content": f"echo {i}",
        }
        for i in range(count)
    ]
    (folder / "many.json").write_text(json.dumps({"events": events}))


def catalog_bytes(cache: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(cache.glob("catalog-*.sqlite")))


@pytest.fixture
def small(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CRONIUM_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.delenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", raising=False)
    monkeypatch.setattr(factory, "RACY_NS", 0)
    folder = tmp_path / "records"
    write_small(folder)
    return folder


# --- the catalog -------------------------------------------------------------------------------------------


def test_the_full_parse_writes_a_catalog_of_records_and_left_out_records_without_secrets(small: Path) -> None:
    cache = small.parent / "index"
    result = factory.parse_dags(small)
    assert "catalog written (3 records)" in result.catalog
    path = catalog_file(index_file(cache, [small]))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(cache.stat().st_mode) == 0o700
    found = catalogs(cache)
    total, rows = page_of_records(found, RecordFilter(), None, 0, 50)
    assert total == 3
    by_dag = {r["dag_id"]: r for r in rows}
    assert by_dag["cronium_event_1"]["schedule"] == "cron 0 2 * * * (UTC)"
    assert by_dag["cronium_event_3"]["name"] == XSS_NAME
    hook = by_dag["cronium_workflow_5"]
    assert hook["webhook"] and hook["webhook_key_set"]
    assert hook["webhook_path"] == "/cronium/api/workflows/webhook/{webhookKey}"
    total, problems = page_of_problems(found, None, 0, 50)
    assert [(p["kind"], p["record_id"], p["field"], p["severity"]) for p in problems] == [
        ("event", "2", "customSchedule", "error"),
        ("event", "1", "content", "warning"),
    ]
    assert BAD_REASON_FRAGMENT in problems[0]["message"] and problems[0]["file"].endswith("events.json")
    data = catalog_bytes(cache)
    for secret in SECRETS:
        assert secret.encode() not in data, secret
    # the next full parse of unchanged records leaves it alone; a changed record rewrites it
    assert "catalog up to date" in factory.parse_dags(small).catalog
    events = json.loads((small / "events.json").read_text())
    events["events"][0]["name"] = "Nightly report, renamed"
    (small / "events.json").write_text(json.dumps(events))
    assert "catalog written" in factory.parse_dags(small).catalog
    _, rows = page_of_records(catalogs(cache), RecordFilter(text="renamed"), None, 0, 50)
    assert [r["dag_id"] for r in rows] == ["cronium_event_1"]


def test_a_changed_setting_rewrites_the_catalog(small: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The schedule in words is read in [cronium] timezone: a new zone rewrites the catalog at the next parse."""
    assert "catalog written" in factory.parse_dags(small).catalog
    monkeypatch.setenv("AIRFLOW__CRONIUM__TIMEZONE", "Europe/Paris")
    assert "catalog written" in factory.parse_dags(small).catalog
    _, rows = page_of_records(catalogs(small.parent / "index"), RecordFilter(text="Nightly"), None, 0, 5)
    assert rows[0]["schedule"] == "cron 0 2 * * * (Europe/Paris)"


def test_a_worker_parse_neither_writes_nor_reads_the_catalog(small: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = small.parent / "index"
    one = factory.parse_dags(small, dag_id="cronium_event_1")  # no index yet: loads everything
    assert one.mode == "one" and list(one.dags) == ["cronium_event_1"] and one.catalog == ""
    assert not list(cache.glob("catalog-*")), "the worker's parse wrote a catalog"
    factory.parse_dags(small)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the worker's parse touched the catalog")

    for name in ("connect", "write_catalog", "stored_key"):
        monkeypatch.setattr(catalog_module, name, refuse)  # the full parse imports them from there
    assert factory.parse_dags(small, dag_id="cronium_event_1").mode == "index"


def test_a_catalog_that_cannot_be_written_logs_a_warning_and_the_parse_goes_on(
    small: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(catalog_module, "write_catalog", broken)
    result = factory.parse_dags(small)
    assert set(result.dags) == {"cronium_event_1", "cronium_event_3", "cronium_workflow_5"}
    assert "catalog not written: disk full" in result.catalog
    assert any("view catalog not written" in r.getMessage() for r in caplog.records)


def test_sharded_folders_each_get_a_catalog_and_the_view_reads_them_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRONIUM_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setattr(factory, "RACY_NS", 0)
    write_small(tmp_path / "records" / "a")
    write_many(tmp_path / "records" / "b", 30)
    for shard in ("a", "b"):
        factory.parse_dags(tmp_path / "records", shard=shard)
    found = catalogs(tmp_path / "index")
    assert [Path(c.folder).name for c in found] == ["a", "b"]
    total, rows = page_of_records(found, RecordFilter(), None, 0, 500)
    assert total == 33 and len({r["folder"] for r in rows}) == 2
    # a page that spans the two folders: the last record of a, then b's first
    _, rows = page_of_records(found, RecordFilter(), None, 2, 2)
    assert [r["dag_id"] for r in rows] == ["cronium_workflow_5", "cronium_event_100000"]
    total, rows = page_of_records(found, RecordFilter(kind="event", status="PAUSED"), None, 0, 500)
    assert total == 1 + 6 and all(r["status"] == "PAUSED" for r in rows)
    assert page_of_records(found, RecordFilter(), {"cronium_event_1", "cronium_event_100003"}, 0, 500)[0] == 2


# --- the view's app, in-process ----------------------------------------------------------------------------


class FakeAuthManager:
    """An auth manager that lets its user read some DAGs only, and see import errors or not."""

    def __init__(self, dag_ids: set[str] | None, import_errors: bool, connections: bool) -> None:
        self.dag_ids, self.import_errors, self.connections = dag_ids, import_errors, connections

    def is_authorized_dag(self, **kwargs: Any) -> bool:
        return self.dag_ids is None

    def get_authorized_dag_ids(self, **kwargs: Any) -> set[str]:
        return set(self.dag_ids or ())

    def is_authorized_view(self, **kwargs: Any) -> bool:
        return self.import_errors

    def is_authorized_connection(self, **kwargs: Any) -> bool:
        return self.connections


def client(monkeypatch: pytest.MonkeyPatch, manager: FakeAuthManager | None) -> Any:
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from cronium_provider.view import app as view_app

    monkeypatch.setattr(view_app, "_runs", lambda dag_ids: {d: {"in_airflow": True} for d in dag_ids})
    app = view_app.create_app()
    if manager is not None:
        monkeypatch.setattr(view_app, "get_auth_manager", lambda: manager)
        app.dependency_overrides[get_user] = lambda: object()
    root = FastAPI()
    root.mount("/cronium-view", app)
    return TestClient(root)


def test_html_escapes_record_names_and_reasons(small: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    factory.parse_dags(small)
    http = client(monkeypatch, FakeAuthManager(None, True, True))
    page = http.get("/cronium-view/")
    assert page.status_code == 200
    assert "<script>window.__xss" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;&lt;img src=x onerror=" in page.text
    assert 'href="/dags/cronium_event_1"' in page.text
    assert "POST /cronium/api/workflows/webhook/{webhookKey}" in page.text
    left_out = http.get("/cronium-view/left-out")
    assert "customSchedule" in left_out.text and "left out" in left_out.text
    only = http.get("/cronium-view/api/left-out", params={"severity": "error"}).json()
    assert [(p["record_id"], p["severity"]) for p in only["problems"]] == [("2", "error")]
    warnings = http.get("/cronium-view/api/left-out", params={"severity": "warning", "q": "nodes[0]"}).json()
    assert [(p["record_id"], p["field"]) for p in warnings["problems"]] == [("1", "content")]
    assert http.get("/cronium-view/api/left-out", params={"severity": "bogus"}).status_code == 422
    for response in (page, left_out, http.get("/cronium-view/api/records"), http.get("/cronium-view/api/left-out")):
        for secret in SECRETS:
            assert secret not in response.text


def test_a_catalog_is_read_once_until_the_dag_processor_replaces_it(
    small: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The notes grow with the records (thousands at 10,000): the view reads a catalog's notes and needs
    once, not on every page (bench/bench_view_pages.py: 150 ms a page at 10,000 records when every page
    read them, 5 ms since), and reads it again when the DAG processor's next full parse replaces it."""
    from cronium_provider.view import catalog as view_catalog

    factory.parse_dags(small)
    read: list[Path] = []
    original = view_catalog._read_catalog

    def counting(path: Path) -> Any:
        read.append(path)
        return original(path)

    monkeypatch.setattr(view_catalog, "_read_catalog", counting)
    view_catalog._read_cache.clear()
    http = client(monkeypatch, FakeAuthManager(None, True, True))
    monkeypatch.setattr("cronium_provider.view.app.environment_findings", lambda needs, settings: [])
    for url in ("/cronium-view/", "/cronium-view/api/records", "/cronium-view/left-out", "/cronium-view/findings"):
        assert http.get(url).status_code == 200
    assert len(read) == 1
    events = json.loads((small / "events.json").read_text())
    events["events"][0]["name"] = "Nightly report, renamed"
    (small / "events.json").write_text(json.dumps(events))
    factory.parse_dags(small)
    names = [r["name"] for r in http.get("/cronium-view/api/records").json()["records"]]
    assert "Nightly report, renamed" in names and len(read) == 2


def test_a_user_sees_only_the_records_of_dags_they_may_read(small: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    factory.parse_dags(small)
    http = client(monkeypatch, FakeAuthManager({"cronium_event_1"}, False, False))
    body = http.get("/cronium-view/api/records").json()
    assert [r["dag_id"] for r in body["records"]] == ["cronium_event_1"] and body["total"] == 1
    assert http.get("/cronium-view/api/left-out").status_code == 403
    assert http.get("/cronium-view/api/findings").status_code == 403
    page = http.get("/cronium-view/")
    assert "cronium_event_3" not in page.text and "Left out" not in page.text


def test_the_findings_panel_shows_the_doctors_findings_and_record_notes(
    small: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cronium_provider.doctor.findings import Finding
    from cronium_provider.view import app as view_app

    note = Finding("difference", "note", "event 3", "<b>runs over SSH</b> as Cronium's agent would not", "read it")
    monkeypatch.setattr(catalog_module, "record_notes", lambda records, settings: [note])
    seen: list[Any] = []

    def environment(needs: Any, settings: Any) -> list[Finding]:
        seen.append(needs)
        return [Finding("docker", "error", "Docker daemon", "is not running", "start it")]

    monkeypatch.setattr(view_app, "environment_findings", environment)
    factory.parse_dags(small)
    http = client(monkeypatch, FakeAuthManager(None, True, True))
    body = http.get("/cronium-view/api/findings").json()
    assert body["findings"][0]["subject"] == "Docker daemon" and body["notes"][0]["subject"] == "event 3"
    page = http.get("/cronium-view/findings")
    assert "is not running" in page.text and "&lt;b&gt;runs over SSH&lt;/b&gt;" in page.text
    assert len(seen) == 1


def test_anonymous_requests_are_refused_in_process(small: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    factory.parse_dags(small)
    http = client(monkeypatch, None)
    for path in ("/", "/left-out", "/findings", "/api/records", "/api/left-out", "/api/findings"):
        response = http.get("/cronium-view" + path)
        assert response.status_code in (401, 403), path
        assert "Nightly" not in response.text


def test_loading_the_plugin_imports_neither_fastapi_nor_the_records_code() -> None:
    """Every Airflow process loads plugins: the view's app is built on its first request only."""
    import subprocess

    code = (
        "import sys; import cronium_provider.view.plugin as p; "
        "assert p.CroniumViewPlugin.fastapi_apps[0]['url_prefix'] == '/cronium-view'; "
        "print(sorted(m for m in ('fastapi', 'cronium_provider.records', 'cronium_provider.view.app', "
        "'cronium_provider.view.catalog', 'cronium_provider.factory') if m in sys.modules))"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"


# --- a real api-server, driven by Chromium -----------------------------------------------------------------


@dataclass
class Served:
    stack: Any
    records: Path
    many: Path
    viewer_password: str
    catalog_seconds: float

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.stack.api_port}"


def _entry_point_shim(home: Path) -> str | None:
    """When the installed distribution predates the ``cronium_view`` entry point (an editable install made
    before it was added), a dist-info that declares just that entry point, for the services' PYTHONPATH."""
    from importlib.metadata import entry_points

    if any(ep.name == "cronium_view" for ep in entry_points(group="airflow.plugins")):
        return None
    shim = home / "entry-points"
    info = shim / "cronium_view_entry_point-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cronium-view-entry-point\nVersion: 0\n")
    (info / "entry_points.txt").write_text(
        "[airflow.plugins]\ncronium_view = cronium_provider.view.plugin:CroniumViewPlugin\n"
    )
    return str(shim)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from tests.support.local_stack import LocalStack
    from tests.support.services import ManagedProcess, wait_for

    if not Path(venv_bin("airflow")).is_file():
        missing("airflow", "no airflow command beside the test interpreter; run `make venv`")
    home = tmp_path_factory.mktemp("view-airflow-home")
    root = home / "records"
    write_small(root / "small")
    dag_file = (REPO / "dags_templates" / "cronium_dags.py").read_text()
    dag_file = dag_file.replace("CRONIUM_SHARD = None", 'CRONIUM_SHARD = "small"')
    viewer_password = "viewer-pw-31"
    stack = LocalStack.create(home, root, {"cronium_dags_small.py": dag_file})
    passwords = json.loads((home / "passwords.json").read_text())
    passwords["viewer"] = viewer_password
    (home / "passwords.json").write_text(json.dumps(passwords))
    paths = [p for p in (_entry_point_shim(home), str(REPO), stack.env.get("PYTHONPATH")) if p]
    stack.env.update(
        {
            "PYTHONPATH": os.pathsep.join(paths),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "cronium:admin,viewer:viewer",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
        }
    )
    stack.env.pop("CRONIUM_INDEX_DIR", None)  # the default: $AIRFLOW_HOME/cronium/parse-index
    migrate = stack.airflow("db", "migrate", timeout=300)
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    commands = {
        "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(stack.api_port)],
        "dag-processor": ["dag-processor"],
    }
    try:
        for name, argv in commands.items():
            process = ManagedProcess(
                name, [venv_bin("airflow"), *argv], home / "service-logs" / f"{name}.log", stack.env
            )
            process.cwd = str(home)
            stack.services[name] = process.start()

        # meanwhile, the catalog of 10,000 events, written as the DAG processor writes it
        many = root / "synthetic"  # after "small" in the view (folders in name order)
        write_many(many)
        started = time.monotonic()
        written = _write_catalog_in_process(many, home / "cronium" / "parse-index")
        catalog_seconds = time.monotonic() - started
        assert written.startswith("catalog written"), written

        def api_up() -> bool:
            stack.check_alive()
            return stack.request("GET", "/api/v2/monitor/health", auth=False)[0] == 200

        wait_for(api_up, 120, "airflow api-server", interval=1)
        stack.wait_parsed({"cronium_event_1", "cronium_event_3", "cronium_workflow_5"}, timeout=150)
        wait_for(
            lambda: len(catalogs(home / "cronium" / "parse-index")) == 2, 60, "the DAG processor's catalog", interval=1
        )
        stack.trigger("cronium_event_1")  # no scheduler: the run stays queued, its state is the last run's
        yield Served(stack, root / "small", many, viewer_password, catalog_seconds)
    except BaseException:
        print(stack.diagnostics())
        raise
    finally:
        stack.stop()


def _write_catalog_in_process(folder: Path, cache: Path) -> str:
    """What the DAG processor's full parse writes for ``folder``, without rendering 10,000 DAGs: the same
    load, plan and catalog function (the parse index is the DAG processor's own business)."""
    from cronium_provider.config import read_settings
    from cronium_provider.plan.build import build_plan
    from cronium_provider.records.index import load_with_raws

    settings = read_settings()
    started_ns = time.time_ns()
    state = factory._state(folder)
    records, _ = load_with_raws([folder])
    plan = build_plan(records, settings)
    return factory._save_catalog(cache, folder, state, started_ns, records, plan, settings)


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


@pytest.fixture(scope="module")
def browser(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.support.browser import chromium, login
    from tests.support.local_stack import USER

    with chromium(tmp_path_factory.mktemp("chromium-profile"), ARTIFACTS) as driver:
        login(driver, served.base_url, USER, served.stack.password)
        yield driver


def _load_seconds(driver: Any, url: str) -> float:
    """Navigation start to the records table rendered (the page's load event: the table is in its HTML)."""
    from selenium.webdriver.common.by import By

    driver.get(url)
    assert driver.find_elements(By.CSS_SELECTOR, "#records tbody tr")
    timing = driver.execute_script(
        "const n = performance.getEntriesByType('navigation')[0]; return [n.startTime, n.domContentLoadedEventEnd];"
    )
    return float(timing[1] - timing[0]) / 1000


def test_the_ui_shows_the_view_from_the_navigation(served: Served, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    from tests.support.browser import wait

    browser.get(served.base_url + "/")
    entry = wait(
        browser,
        ec.element_to_be_clickable((By.XPATH, "//*[self::a or self::button][normalize-space()='Cronium']")),
        "the Cronium nav entry",
    )
    entry.click()
    wait(browser, lambda d: d.current_url.endswith("/plugin/cronium"), "the embedded view's route")
    frame = wait(
        browser, ec.presence_of_element_located((By.CSS_SELECTOR, "iframe[src*='/cronium-view/']")), "the view's frame"
    )
    browser.switch_to.frame(frame)
    rows = wait(
        browser, ec.presence_of_all_elements_located((By.CSS_SELECTOR, "#records tbody tr")), "the records table"
    )
    text = " ".join(r.text for r in rows)
    assert "Nightly report" in text and "cronium_event_1" in text and "queued" in text
    assert "Orders hook" in text and "/cronium/api/workflows/webhook/{webhookKey}" in text
    assert XSS_NAME.replace("\n", "") in text  # shown as text
    assert browser.execute_script("return window.__xss === undefined && window.top.__xss === undefined")
    browser.switch_to.default_content()
    IMAGES.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(IMAGES / "cronium-view-records.png"))


def test_the_dag_link_opens_the_dags_page(served: Served, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    from tests.support.browser import wait

    browser.get(served.base_url + "/cronium-view/?q=Nightly")
    link = wait(
        browser,
        ec.element_to_be_clickable((By.CSS_SELECTOR, "tr[data-dag-id='cronium_event_1'] a.dag-link")),
        "the DAG link",
    )
    link.click()
    wait(browser, lambda d: d.current_url.rstrip("/").endswith("/dags/cronium_event_1"), "the DAG's page")
    wait(
        browser,
        lambda d: (
            "cronium_event_1" in d.find_element(By.TAG_NAME, "body").text
            or "Nightly report" in d.find_element(By.TAG_NAME, "body").text
        ),
        "the DAG page's content",
    )


def test_the_dag_link_inside_the_ui_opens_the_dags_page(served: Served, browser: Any) -> None:
    """In the UI the view is in a frame Airflow sandboxes without top navigation: the link still opens the DAG's
    page in the UI, not in the frame and not nowhere."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    from tests.support.browser import wait

    browser.get(served.base_url + "/plugin/cronium")
    frame = wait(
        browser, ec.presence_of_element_located((By.CSS_SELECTOR, "iframe[src*='/cronium-view/']")), "the view's frame"
    )
    browser.switch_to.frame(frame)
    link = wait(
        browser,
        ec.element_to_be_clickable((By.CSS_SELECTOR, "tr[data-dag-id='cronium_event_1'] a.dag-link")),
        "the DAG link",
    )
    link.click()
    browser.switch_to.default_content()
    wait(browser, lambda d: d.current_url.rstrip("/").endswith("/dags/cronium_event_1"), "the DAG's page in the UI")
    wait(browser, lambda d: "Nightly report" in d.find_element(By.TAG_NAME, "body").text, "the DAG page's content")
    assert not browser.find_elements(By.CSS_SELECTOR, "iframe")


def test_the_left_out_record_is_shown_with_its_reason(served: Served, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    from tests.support.browser import wait

    browser.get(served.base_url + "/plugin/cronium")
    frame = wait(
        browser, ec.presence_of_element_located((By.CSS_SELECTOR, "iframe[src*='/cronium-view/']")), "the view's frame"
    )
    browser.switch_to.frame(frame)
    wait(browser, ec.element_to_be_clickable((By.LINK_TEXT, "Left out and warnings")), "the left-out tab").click()
    rows = wait(
        browser, ec.presence_of_all_elements_located((By.CSS_SELECTOR, "#left-out tbody tr")), "the left-out table"
    )
    texts = [r.text for r in rows]
    assert any(
        "event 2" in t and "customSchedule" in t and BAD_REASON_FRAGMENT in t and "left out" in t for t in texts
    ), texts
    assert any("event 1" in t and "content" in t and t.startswith("warning") for t in texts), texts
    browser.switch_to.default_content()
    browser.save_screenshot(str(IMAGES / "cronium-view-left-out.png"))


def test_paging_through_10000_records_loads_each_page_in_under_a_second(served: Served, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    first = _load_seconds(browser, served.base_url + "/cronium-view/?size=500")  # warms the app up
    pager = browser.find_element(By.ID, "pager").text
    assert f"page 1 of 21 ({3 + MANY} in all)" in pager, pager
    times = {}
    for page in (1, 11, 21):
        times[page] = _load_seconds(browser, served.base_url + f"/cronium-view/?size=500&page={page}")
        rows = browser.find_elements(By.CSS_SELECTOR, "#records tbody tr")
        assert len(rows) == (3 + MANY) - 500 * 20 if page == 21 else len(rows) == 500
    filtered = _load_seconds(browser, served.base_url + "/cronium-view/?q=job+99&status=PAUSED")
    print(
        f"\n[view] catalog of {MANY} events written in {served.catalog_seconds:.1f}s; page loads (s): "
        f"warm-up {first:.3f}, {', '.join(f'page {p} {s:.3f}' for p, s in times.items())}, filtered {filtered:.3f}"
    )
    assert max(times.values()) < 1.0, times
    assert filtered < 1.0


def test_anonymous_and_unprivileged_requests(served: Served) -> None:
    for path in ("/cronium-view/", "/cronium-view/left-out", "/cronium-view/api/records", "/cronium-view/api/findings"):
        status, body = _get(served.base_url + path)
        assert status in (401, 403), (path, status)
        assert "Nightly" not in body and "cronium_event" not in body
    status, _ = _get(served.base_url + "/cronium-view/api/records", {"Authorization": "Bearer not-a-token"})
    assert status in (401, 403)
    # the webhook app under /cronium still answers its own route (neither mount shadows the other)
    status, _ = _get(served.base_url + "/cronium/api/workflows/webhook/nothing")
    assert status == 405  # GET on a POST route: the webhook app answered

    token = served.stack.token()
    status, body = _get(served.base_url + "/cronium-view/api/records?size=500", {"Authorization": f"Bearer {token}"})
    assert status == 200
    data = json.loads(body)
    assert data["total"] == 3 + MANY
    mine = {r["dag_id"]: r for r in data["records"]}
    assert mine["cronium_event_1"]["last_run_state"] == "queued" and mine["cronium_event_1"]["in_airflow"]
    assert not mine["cronium_event_100000"]["in_airflow"]  # its catalog only: no DAG file builds it
    # a viewer reads records and left-out records, not the findings (they name connections)
    stack = served.stack
    status, login = stack.request(
        "POST", "/auth/token", {"username": "viewer", "password": served.viewer_password}, auth=False
    )
    assert status in (200, 201), login
    viewer = {"Authorization": f"Bearer {login['access_token']}"}
    assert _get(served.base_url + "/cronium-view/api/records", viewer)[0] == 200
    assert _get(served.base_url + "/cronium-view/api/left-out", viewer)[0] == 200
    assert _get(served.base_url + "/cronium-view/api/findings", viewer)[0] == 403
    status, body = _get(served.base_url + "/cronium-view/findings", {"Authorization": f"Bearer {token}"})
    assert status == 200 and 'id="findings"' in body
    # no secret in any answer, nor in any catalog
    answers = [
        _get(served.base_url + p, {"Authorization": f"Bearer {token}"})[1]
        for p in (
            "/cronium-view/",
            "/cronium-view/left-out",
            "/cronium-view/findings",
            "/cronium-view/api/records",
            "/cronium-view/api/left-out",
            "/cronium-view/api/findings",
            "/cronium-view/?webhook=true",
        )
    ]
    data_bytes = catalog_bytes(stack.home / "cronium" / "parse-index")
    for secret in SECRETS:
        assert all(secret not in a for a in answers), secret
        assert secret.encode() not in data_bytes, secret


# --- attacks on the view ------------------------------------------------------------------------------------


def _plant(cache: Path, name: str, folder: Path, record_name: str, into: Path | None = None) -> Path:
    """A copy of a real catalog of ``cache`` (in ``into``, default ``cache``), renamed, naming ``folder``,
    every record named ``record_name``."""
    import shutil
    import sqlite3

    good = sorted(cache.glob("catalog-*.sqlite"))[0]
    planted = (into or cache) / name
    shutil.copy(good, planted)
    con = sqlite3.connect(planted)
    con.execute("UPDATE meta SET value = ? WHERE name = 'folder'", (str(folder),))
    con.execute("UPDATE records SET name = ?", (record_name,))
    con.commit()
    con.close()
    planted.chmod(0o600)
    return planted


def test_a_damaged_catalog_is_left_out_and_the_others_still_show(
    small: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sqlite3

    factory.parse_dags(small)
    cache = tmp_path / "index"
    bad_notes = _plant(cache, "catalog-bad-notes.sqlite", small, "from bad notes")
    bad_needs = _plant(cache, "catalog-bad-needs.sqlite", small, "from bad needs")
    for path, name, value in ((bad_notes, "notes", "not json"), (bad_needs, "needs", '{"servers": [1]}')):
        con = sqlite3.connect(path)
        con.execute("UPDATE meta SET value = ? WHERE name = ?", (value, name))
        con.commit()
        con.close()
    monkeypatch.setattr("cronium_provider.view.app.environment_findings", lambda needs, settings: [])
    http = client(monkeypatch, FakeAuthManager(None, True, True))
    for path in ("/", "/api/records", "/left-out", "/findings", "/api/findings"):
        response = http.get("/cronium-view" + path)
        assert response.status_code == 200, (path, response.text[:300])
    names = [r["name"] for r in http.get("/cronium-view/api/records").json()["records"]]
    assert "Nightly report" in names and not {"from bad notes", "from bad needs"} & set(names)


def test_a_catalog_another_user_could_have_written_is_not_shown(
    small: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    factory.parse_dags(small)
    cache = tmp_path / "index"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    writable = _plant(cache, "catalog-writable.sqlite", small, "planted: writable by all")
    writable.chmod(0o666)
    target = _plant(cache, "catalog-target.sqlite", small, "planted: through a symlink", elsewhere)
    (cache / "catalog-link.sqlite").symlink_to(target)
    if os.geteuid() == 0:  # root can give a file to another user; any other user cannot
        foreign = _plant(cache, "catalog-foreign.sqlite", small, "planted: another user's")
        os.chown(foreign, 65534, 65534)
    http = client(monkeypatch, FakeAuthManager(None, True, True))
    names = [r["name"] for r in http.get("/cronium-view/api/records").json()["records"]]
    assert "Nightly report" in names
    assert [n for n in names if n.startswith("planted")] == []


def test_every_answer_forbids_framing_by_other_sites_and_scripts(small: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    factory.parse_dags(small)
    http = client(monkeypatch, FakeAuthManager(None, True, True))
    anonymous = client(monkeypatch, None)
    for response in (
        http.get("/cronium-view/"),
        http.get("/cronium-view/api/records"),
        http.get("/cronium-view/left-out?page=0"),  # 422
        anonymous.get("/cronium-view/"),  # 401
    ):
        policy = response.headers.get("content-security-policy", "")
        assert "frame-ancestors 'self'" in policy and "default-src 'none'" in policy, response.status_code
        # one script may run: the pages' own, by its hash (no inline script a record could bring)
        assert (
            re.search(r"script-src 'sha256-[A-Za-z0-9+/=]+';", policy) and "unsafe" not in policy.split("style-src")[0]
        )
        assert response.headers.get("x-frame-options") == "SAMEORIGIN"
        assert response.headers.get("x-content-type-options") == "nosniff"
        assert response.headers.get("cache-control") == "no-store"
    page = http.get("/cronium-view/")
    scripts = re.findall(r"<script>(.*?)</script>", page.text, re.S)
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert len(scripts) == 1 and f"script-src 'sha256-{digest}';" in page.headers["content-security-policy"]


def test_a_user_who_may_read_some_dags_sees_only_their_records_left_out_and_warnings(
    small: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory.parse_dags(small)
    http = client(monkeypatch, FakeAuthManager({"cronium_event_1"}, True, False))
    body = http.get("/cronium-view/api/left-out").json()
    assert [(p["kind"], p["record_id"], p["severity"]) for p in body["problems"]] == [("event", "1", "warning")]
    assert body["total"] == 1
    page = http.get("/cronium-view/left-out")
    assert "customSchedule" not in page.text and "every night" not in page.text
    everyone = client(monkeypatch, FakeAuthManager(None, True, False)).get("/cronium-view/api/left-out").json()
    assert {(p["record_id"], p["severity"]) for p in everyone["problems"]} == {("2", "error"), ("1", "warning")}


def test_the_parse_replaces_a_symlink_planted_at_the_catalogs_path(small: Path, tmp_path: Path) -> None:
    import shutil

    factory.parse_dags(small)
    cache = tmp_path / "index"
    real = sorted(cache.glob("catalog-*.sqlite"))[0]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    kept = elsewhere / "catalog.sqlite"
    shutil.copy(real, kept)  # the same key: the parse would find it up to date and leave the symlink there
    real.unlink()
    real.symlink_to(kept)
    factory.parse_dags(small)
    assert not real.is_symlink() and stat.S_IMODE(real.stat().st_mode) == 0o600
    assert [c.folder for c in catalogs(cache)] == [str(small)]


def test_a_user_who_may_read_some_dags_sees_only_the_notes_on_their_records(
    small: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cronium_provider.doctor.findings import Finding
    from cronium_provider.view import app as view_app

    notes = [Finding("difference", "note", f"event {i}", f"note on event {i}", "read it") for i in (1, 3)]
    monkeypatch.setattr(catalog_module, "record_notes", lambda records, settings: notes)
    monkeypatch.setattr(view_app, "environment_findings", lambda needs, settings: [])
    factory.parse_dags(small)
    some = client(monkeypatch, FakeAuthManager({"cronium_event_1"}, True, True)).get("/cronium-view/api/findings")
    assert [n["subject"] for n in some.json()["notes"]] == ["event 1"]
    every = client(monkeypatch, FakeAuthManager(None, True, True)).get("/cronium-view/api/findings")
    assert [n["subject"] for n in every.json()["notes"]] == ["event 1", "event 3"]


def test_a_left_out_http_header_value_is_never_repeated(
    small: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A header's value (often an API key) given as a number leaves its event out; the reason names the
    field, never the value, in the catalog and the left-out page."""
    api_key = 918273645501
    event = {
        "id": 7,
        "name": "Call the API",
        "type": "HTTP_REQUEST",
        "status": "ACTIVE",
        "httpUrl": "https://127.0.0.1/x",
        "httpMethod": "GET",
        "httpHeaders": [{"key": "X-Api-Key", "value": api_key}],
    }
    (small / "http.json").write_text(json.dumps(event))
    factory.parse_dags(small)
    http = client(monkeypatch, FakeAuthManager(None, True, True))
    body = http.get("/cronium-view/api/left-out", params={"severity": "error"}).json()
    assert [(p["record_id"], p["field"]) for p in body["problems"]] == [
        ("2", "customSchedule"),
        ("7", "httpHeaders[0].value"),
    ]
    page = http.get("/cronium-view/left-out")
    assert "httpHeaders[0].value" in page.text and str(api_key) not in page.text
    assert str(api_key).encode() not in catalog_bytes(tmp_path / "index")


def test_a_kind_or_status_outside_cronium_s_is_refused_naming_the_parameter(
    small: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory.parse_dags(small)
    http = client(monkeypatch, FakeAuthManager(None, True, True))
    for path in ("/cronium-view/", "/cronium-view/api/records"):
        for name, value in (("kind", "server"), ("kind", "event' OR '1'='1"), ("status", "RUNNING")):
            response = http.get(path, params={name: value})
            assert response.status_code == 422 and response.json()["detail"].startswith(f"{name}: one of"), value
            assert "Nightly" not in response.text
    # the form's "every kind" and "every status" send empty values; a status in any case is Cronium's
    assert http.get("/cronium-view/", params={"kind": "", "status": ""}).status_code == 200
    paused = http.get("/cronium-view/api/records", params={"kind": "event", "status": "paused"}).json()
    assert [r["record_id"] for r in paused["records"]] == [3]
