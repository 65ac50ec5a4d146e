"""`make demo` end to end, and the Airflow web UI a user then opens, driven by headless Chromium.

The module fixture runs ``scripts/demo.sh`` with a private Airflow home and port: real api-server, scheduler
(LocalExecutor), dag-processor and triggerer on SQLite, the example workflow ``cronium_workflow_1`` run in
Docker containers of the runtime image, and the helpers the other examples deliver to (an sshd, a mail
catcher, a webhook receiver and an HTTP endpoint) on a loopback address of their own. Every example DAG is
then triggered through Airflow's REST API, and what each delivered is read where the demo says it is.
Selenium logs in as the demo user, opens the workflow's graph, a node's task log and the connection form,
and saves screenshots to ``tests/artifacts/``. The services and helpers are stopped with
``scripts/demo-stop.sh`` at the end. The module starts an sshd: run it under ``flock
/tmp/cronium-ssh-tests.lock``.

Chromium and chromedriver are Debian's (``make system`` installs them); Selenium is given chromedriver's
path and ``SE_OFFLINE=true``, so Selenium Manager never downloads anything, and Chromium only loads pages
from 127.0.0.1.
"""

from __future__ import annotations

import getpass
import json
import mailbox
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, missing, venv_bin
from tests.support.browser import chromium, login, wait

DEMO_SCRIPT = REPO / "scripts" / "demo.sh"
STOP_SCRIPT = REPO / "scripts" / "demo-stop.sh"
ARTIFACTS = REPO / "tests" / "artifacts"
DAG_ID = "cronium_workflow_1"
USER, PASSWORD = "admin", "admin"
SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")
HELPERS = ("sshd", "mail-catcher", "webhook-receiver", "http-endpoint")
# The demo's helpers get a loopback address of their own: neither the test suite's sshd servers' (127.0.0.2
# and up, tests/support/sshd.py) nor a `make demo`'s default (127.0.0.80) running beside the tests.
HELPER_ADDRESS = "127.0.0.81"
# Every DAG the example records build, each triggered once through the REST API.
EXAMPLE_DAGS = {f"cronium_event_{i}" for i in range(1, 11)} | {DAG_ID}
EXAMPLES_TIMEOUT = 240

# node task id -> (display name, state in the demo run)
NODES = {
    "node_fetch": ("Fetch orders", "success"),
    "node_total": ("Total orders", "success"),
    "node_report": ("Report large total", "success"),
    "node_failure": ("Handle failure", "skipped"),
    "node_cleanup": ("Clean up", "success"),
}
EDGES = [
    ("node_fetch", "node_total"),
    ("node_total", "node_report"),
    ("node_total", "node_failure"),
    ("node_total", "node_cleanup"),
]


@dataclass
class Demo:
    home: Path
    port: int
    env: dict[str, str]
    proc: subprocess.CompletedProcess[str]
    seconds: float

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output(self) -> str:
        return self.proc.stdout + self.proc.stderr

    @property
    def run_id(self) -> str:
        match = re.search(r"^== run (\S+): success after", self.proc.stdout, re.M)
        if match is None:
            pytest.fail(f"the demo run did not succeed (exit {self.proc.returncode}):\n{self.output[-6000:]}")
        return match.group(1)


def _free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def _run_demo(env: dict[str, str], timeout: float) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    proc = subprocess.run(
        ["bash", str(DEMO_SCRIPT)], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    return proc, time.monotonic() - started


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, docker_client: object) -> Iterator[Demo]:
    airflow = venv_bin("airflow")
    if not Path(airflow).is_file():
        missing("airflow", "no airflow command beside the test interpreter; run `make venv`")
    home = tmp_path_factory.mktemp("demo-airflow-home")
    port = _free_port()
    # The test session's own Airflow settings (conftest) must not leak into the demo's Airflow.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_BIN=airflow,
        DEMO_HOME=str(home),
        DEMO_PORT=str(port),
        DEMO_START_TIMEOUT="150",
        DEMO_RUN_TIMEOUT="150",
        DEMO_ADDRESS=HELPER_ADDRESS,
    )
    for name in ("DEMO_SSH_PORT", "DEMO_SSH_PORT2", "DEMO_SMTP_PORT", "DEMO_WEBHOOK_PORT", "DEMO_HTTP_PORT"):
        env[name] = str(_free_port(HELPER_ADDRESS))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        proc, seconds = _run_demo(env, timeout=330)
        (ARTIFACTS / "demo-output.txt").write_text(proc.stdout + proc.stderr)
        print(f"\n[demo] scripts/demo.sh exited {proc.returncode} after {seconds:.0f}s")
        yield Demo(home, port, env, proc, seconds)
    finally:
        stop = subprocess.run(
            ["bash", str(STOP_SCRIPT)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )
        print(f"[demo] demo-stop: {stop.stdout.strip()}")


def test_demo_runs_the_example_workflow(demo: Demo) -> None:
    out = demo.output
    assert demo.proc.returncode == 0, out[-6000:]
    run_id = demo.run_id
    assert f'airflow dags trigger {DAG_ID} --conf \'{{"batch": "demo"}}\'' in out
    # `airflow tasks states-for-dag-run`'s table, then each node's display name, state and output
    assert f"airflow tasks states-for-dag-run {DAG_ID} {run_id}" in out
    for task_id, (name, state) in NODES.items():
        assert re.search(rf"^{DAG_ID}\s*\|[^|\n]*\|\s*{task_id}\s*\|\s*{state}\s*\|", out, re.M), task_id
        line = re.search(rf"^\s+{task_id}\s+{re.escape(name)}\s+{state}\s+output: (.*)$", out, re.M)
        assert line, f"no state/output line for {task_id} in:\n{out[-4000:]}"
    fetch_out = re.search(r"^\s+node_fetch\s.*output: (.*)$", out, re.M)
    total_out = re.search(r"^\s+node_total\s.*output: (.*)$", out, re.M)
    assert fetch_out and '"batch": "demo"' in fetch_out.group(1) and '"orders"' in fetch_out.group(1)
    assert total_out and total_out.group(1) == '{"batch": "demo", "total": 60}'
    assert re.search(r"^\s+workflow_result\s.*success\s+output: \"success\"$", out, re.M)
    # the services keep running, their pids and logs in the Airflow home
    for name in SERVICES:
        pid = int((demo.home / f"{name}.pid").read_text())
        os.kill(pid, 0)
        assert (demo.home / f"{name}.log").is_file()
    assert f"{demo.base_url}   (login: user {USER}, password {PASSWORD})" in out
    assert f"{demo.base_url}/dags/{DAG_ID}" in out


# ------------------------------------------------------------------------------------------------ doctor


def test_doctor_finds_nothing_wrong_with_the_demo(demo: Demo) -> None:
    """Every connection, host key, pool, the Docker daemon and the image the examples need are there: the
    demo's own doctor step and a later `cronium-airflow doctor --json` (as the demo user runs it, from the
    demo's environment file) find no error and no warning."""
    assert demo.proc.returncode == 0, demo.output[-6000:]
    assert f"cronium-airflow doctor {demo.home}/records" in demo.output
    assert re.search(r"^\s+0 error\(s\), 0 warning\(s\), \d+ note\(s\) for ", demo.output, re.M), demo.output[-4000:]
    cli = venv_bin("cronium-airflow")
    proc = subprocess.run(
        ["bash", "-c", f"source {demo.home}/demo.env && {cli} doctor --json {demo.home}/records"],
        env=demo.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    report = json.loads(proc.stdout)
    problems = [f for f in report["findings"] if f["severity"] != "note"]
    assert problems == [] and report["errors"] == 0 and report["warnings"] == 0, problems
    # what it checked: the remote example's servers and the tools of the tool examples are among the needs
    assert report["records"]["events"] >= 10


def test_the_cronium_view_shows_every_example_and_no_problem(demo: Demo) -> None:
    """The web UI's Cronium view (docs/web-ui.md) of the demo: every DAG the examples build, each in Airflow,
    nothing left out, and the same doctor findings as the command: none but notes."""
    demo.run_id
    plan = subprocess.run(
        [venv_bin("cronium-airflow"), "plan", "--json", str(demo.home / "records")],
        capture_output=True,
        text=True,
        timeout=120,
        env=demo.env,
    )
    dag_ids = {d["dag_id"] for d in json.loads(plan.stdout)["dags"]}
    token = _api(demo, "POST", "/auth/token", {"username": USER, "password": PASSWORD})["access_token"]
    records = _api(demo, "GET", "/cronium-view/api/records?size=500", token=token)
    shown = {r["dag_id"]: r for r in records["records"]}
    assert set(shown) == dag_ids, (sorted(shown), sorted(dag_ids))
    assert all(r["in_airflow"] for r in shown.values()), [d for d, r in shown.items() if not r["in_airflow"]]
    assert shown[DAG_ID]["last_run_state"] == "success"
    assert _api(demo, "GET", "/cronium-view/api/left-out", token=token)["total"] == 0
    findings = _api(demo, "GET", "/cronium-view/api/findings", token=token)
    assert [f for f in findings["findings"] if f["severity"] != "note"] == []
    assert f"{demo.base_url}/plugin/cronium" in demo.output


# ------------------------------------------------------------------------------------------------ every example


def _api(demo: Demo, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(demo.base_url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=20) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        pytest.fail(f"{method} {path} answered HTTP {exc.code}: {exc.read()[:2000]!r}")


def _json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def test_every_example_dag_succeeds_and_delivers(demo: Demo) -> None:
    """Each DAG the example records build (PAUSED and ARCHIVED ones too) is triggered as a user triggers it
    through the REST API, and succeeds; what the delivering examples sent is where the demo says it is."""
    demo.run_id  # the demo itself succeeded
    home = demo.home
    out = demo.output
    plan = subprocess.run(
        [venv_bin("cronium-airflow"), "plan", "--json", str(home / "records")],
        capture_output=True,
        text=True,
        timeout=120,
        env=demo.env,
    )
    assert plan.returncode == 0, plan.stderr
    dag_ids = {d["dag_id"] for d in json.loads(plan.stdout)["dags"]}
    assert dag_ids == EXAMPLE_DAGS
    # the demo said, for each example, where to look, and how to trigger it
    for dag_id in dag_ids:
        assert re.search(rf"^   {dag_id}\s+\[", out, re.M), f"the demo did not list {dag_id}"
    assert f"{home}/deliveries/mail.mbox" in out and f"{home}/deliveries/webhook.jsonl" in out
    assert f"{home}/deliveries/http-endpoint.jsonl" in out and f"{home}/sshd.log" in out
    assert f"{demo.base_url}/api/v2/dags/<dag_id>/dagRuns" in out and "dags trigger <dag_id>" in out

    token = _api(demo, "POST", "/auth/token", {"username": USER, "password": PASSWORD})["access_token"]
    batch = f"api-{uuid.uuid4().hex[:8]}"
    runs = {}
    for dag_id in sorted(dag_ids):
        run = _api(
            demo, "POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": {"batch": batch}}, token
        )
        runs[dag_id] = run["dag_run_id"]
    states: dict[str, str] = {}
    deadline = time.monotonic() + EXAMPLES_TIMEOUT
    while time.monotonic() < deadline:
        states = {d: _api(demo, "GET", f"/api/v2/dags/{d}/dagRuns/{r}", token=token)["state"] for d, r in runs.items()}
        if all(state in ("success", "failed") for state in states.values()):
            break
        time.sleep(3)
    not_ok = {d: s for d, s in states.items() if s != "success"}
    details = {
        d: [
            (t["task_id"], t["state"])
            for t in _api(demo, "GET", f"/api/v2/dags/{d}/dagRuns/{runs[d]}/taskInstances", token=token)[
                "task_instances"
            ]
        ]
        for d in not_ok
    }
    assert not not_ok, f"runs not successful after {EXAMPLES_TIMEOUT}s: {not_ok}; their tasks: {details}"

    def xcom(dag_id: str, key: str = "return_value") -> Any:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{runs[dag_id]}/taskInstances/run/xcomEntries/{key}?deserialize=true"
        return _api(demo, "GET", path, token=token)["value"]

    # event 10: the email reached the mail catcher's mailbox
    mails = [m for m in mailbox.mbox(home / "deliveries" / "mail.mbox")]
    subjects = [(m["Subject"], m["To"]) for m in mails]
    assert ("Cronium demo report for Email the report", "ops@example.test") in subjects, subjects
    assert xcom("cronium_event_10")["result"]["status"] == "sent"
    # event 5: the Slack message reached the webhook receiver, with this run's input in it
    posts = _json_lines(home / "deliveries" / "webhook.jsonl")
    slack = [p for p in posts if p["method"] == "POST" and p["path"] == "/services/T0DEMO/B0DEMO/demo"]
    assert {"text": f"Batch {batch} done"} in [json.loads(p["body"]) for p in slack], posts
    assert xcom("cronium_event_5")["result"] == {"ok": True}
    # event 4: the HTTP endpoint got the GET, and its answer is the event's output
    requests = _json_lines(home / "deliveries" / "http-endpoint.jsonl")
    gets = [r for r in requests if r["method"] == "GET" and r["path"] == "/inventory"]
    assert gets and gets[-1]["headers"].get("Accept") == "application/json", requests
    answer = xcom("cronium_event_4")
    assert answer["service"] == "inventory" and answer["time"] in [r["time"] for r in gets]
    # event 9: the script ran on both demo servers, over SSH to the demo sshd's two ports, as the demo login
    user = "cronium-demo" if os.geteuid() == 0 else getpass.getuser()
    remote = xcom("cronium_event_9")
    assert set(remote) == {"app-1", "app-2"}, remote
    for server, port in (("app-1", demo.env["DEMO_SSH_PORT"]), ("app-2", demo.env["DEMO_SSH_PORT2"])):
        assert remote[server]["user"] == user
        assert remote[server]["ssh_connection"].endswith(f" {HELPER_ADDRESS} {port}"), remote
    assert f"Accepted publickey for {user} from" in (home / "sshd.log").read_text()


# ------------------------------------------------------------------------------------------------ browser


@pytest.fixture(scope="module")
def browser(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    demo.run_id  # the UI is only worth looking at when the demo run succeeded
    # the network events are logged, to check that the browser only ever asked for 127.0.0.1 pages
    with chromium(tmp_path_factory.mktemp("chromium-profile"), ARTIFACTS, performance_log=True) as driver:
        login(driver, demo.base_url, USER, PASSWORD)
        yield driver


def _assert_only_loopback_requests(driver: Any, base_url: str) -> None:
    """Every URL the browser requested since the last check was one of the demo's own 127.0.0.1 pages."""
    import json

    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    # chrome://, data: and blob: URLs are the browser's own; anything over the network must be the demo's
    network = [u for u in urls if u.split(":", 1)[0].lower() in ("http", "https", "ws", "wss", "ftp")]
    foreign = [u for u in network if not u.startswith(base_url + "/")]
    assert network, "no network requests were recorded"
    assert not foreign, f"the browser requested pages other than {base_url}: {foreign[:10]}"


def _show_graph(driver: Any) -> None:
    """Switch the DAG/run page's left panel to the graph (a toggle the UI remembers)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    button = (By.CSS_SELECTOR, "button[aria-label^='Show Graph']")
    wait(driver, ec.element_to_be_clickable(button), "the Show Graph button").click()
    wait(driver, ec.presence_of_element_located((By.CSS_SELECTOR, ".react-flow__node")), "the graph's nodes")


def _node_text(driver: Any, task_id: str) -> str:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        nodes = driver.find_elements(By.CSS_SELECTOR, f".react-flow__node[data-id='{task_id}']")
        return str(nodes[0].text) if nodes else ""
    except StaleElementReferenceException:
        return ""


def test_ui_shows_the_workflow_graph(demo: Demo, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    # The DAG's page (/dags/<dag_id>) with the Graph view: one node per Cronium workflow node, by display name.
    browser.get(f"{demo.base_url}/dags/{DAG_ID}")
    wait(browser, lambda d: "Orders pipeline" in d.find_element(By.TAG_NAME, "body").text, "the DAG page")
    _show_graph(browser)
    for task_id, (name, _state) in NODES.items():
        wait(browser, lambda d, t=task_id, n=name: n in _node_text(d, t), f"graph node {task_id} ({name})")
        assert "CroniumScriptOperator" in _node_text(browser, task_id)
    for source, target in EDGES:
        edge = f"[data-testid='rf__edge-{source}-{target}']"
        wait(browser, lambda d, e=edge: d.find_elements(By.CSS_SELECTOR, e), f"the edge {source} -> {target}")
    browser.save_screenshot(str(ARTIFACTS / "graph.png"))

    # The demo run's page (/dags/<dag_id>/runs/<run_id>): the same graph with each node's state.
    browser.get(f"{demo.base_url}/dags/{DAG_ID}/runs/{demo.run_id}")
    _show_graph(browser)
    for task_id, (name, state) in NODES.items():
        wait(
            browser,
            lambda d, t=task_id, n=name, s=state: n in (x := _node_text(d, t)) and s in x.lower(),
            f"node {task_id} shown as {state}",
        )
    browser.save_screenshot(str(ARTIFACTS / "graph-run.png"))
    _assert_only_loopback_requests(browser, demo.base_url)


def test_ui_shows_a_node_task_log(demo: Demo, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    # A task instance's page (/dags/<dag_id>/runs/<run_id>/tasks/<task_id>) opens on its log.
    browser.get(f"{demo.base_url}/dags/{DAG_ID}/runs/{demo.run_id}/tasks/node_fetch")
    line = "fetched 3 orders for batch demo"
    log_list = (By.CSS_SELECTOR, "[data-testid=virtualized-list]")
    wait(browser, ec.text_to_be_present_in_element(log_list, line), "the script's output in node_fetch's log")
    text = browser.find_element(*log_list).text
    assert f"[stdout] {line}" in text
    assert "cronium summary: exit 0" in text
    browser.save_screenshot(str(ARTIFACTS / "task-log.png"))

    # The log in full screen (the log panel's "Press f for fullscreen" button).
    fullscreen = (By.CSS_SELECTOR, "button[aria-label^='Press f for fullscreen']")
    wait(browser, ec.element_to_be_clickable(fullscreen), "the log's fullscreen button").click()
    wait(
        browser,
        lambda d: any(line in e.text for e in d.find_elements(By.CSS_SELECTOR, "[role=dialog]")),
        "the fullscreen log",
    )
    browser.save_screenshot(str(ARTIFACTS / "task-log-fullscreen.png"))
    _assert_only_loopback_requests(browser, demo.base_url)


def test_ui_offers_the_cronium_connection_type(demo: Demo, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    # Admin > Connections (/connections) > Add Connection: the type list offers "Cronium", whose form has the
    # provider's relabelled fields. Nothing is saved.
    browser.get(f"{demo.base_url}/connections")
    add = (By.XPATH, "//button[normalize-space()='Add Connection']")
    wait(browser, ec.element_to_be_clickable(add), "the Add Connection button").click()
    dialog = wait(
        browser,
        lambda d: next(
            (e for e in d.find_elements(By.CSS_SELECTOR, "[role=dialog]") if "Add Connection" in e.text), None
        ),
        "the Add Connection dialog",
    )
    combo = dialog.find_element(By.CSS_SELECTOR, "input[role=combobox]")
    combo.click()
    combo.send_keys("Cronium")
    option = wait(
        browser,
        lambda d: next(
            (o for o in d.find_elements(By.CSS_SELECTOR, "[role=option]") if o.text.strip() == "Cronium"), None
        ),
        "the Cronium connection type in the list",
    )
    option.click()
    wait(browser, lambda d: "Cronium base URL" in dialog.text, "the Cronium connection form")
    assert "API token" in dialog.text
    host = dialog.find_element(By.CSS_SELECTOR, "input[name=host]")
    assert host.get_attribute("placeholder") == "https://cronium.example.com"
    assert not dialog.find_elements(By.CSS_SELECTOR, "input[name=login]")  # hidden by the provider's form rules
    browser.save_screenshot(str(ARTIFACTS / "connection-form.png"))
    _assert_only_loopback_requests(browser, demo.base_url)


# ------------------------------------------------------------------------------------------------ second run


def _pid(demo: Demo, name: str) -> int:
    return int((demo.home / f"{name}.pid").read_text())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_second_demo_run_reuses_the_services(demo: Demo) -> None:
    first_run = demo.run_id
    pids = {name: (demo.home / f"{name}.pid").read_text().strip() for name in SERVICES}
    helpers = {name: _pid(demo, name) for name in HELPERS}
    # a helper that died is started again; the others are reused
    os.kill(helpers["http-endpoint"], 15)
    deadline = time.monotonic() + 10
    while _alive(helpers["http-endpoint"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc, seconds = _run_demo(demo.env, timeout=240)
    out = proc.stdout + proc.stderr
    (ARTIFACTS / "demo-output-second-run.txt").write_text(out)
    print(f"\n[demo] second scripts/demo.sh exited {proc.returncode} after {seconds:.0f}s")
    assert proc.returncode == 0, out[-6000:]
    assert "is up to date: reusing it" in out and "airflow db migrate" not in out
    for name in SERVICES:
        assert f"airflow {name} is already running (pid {pids[name]}): reusing it" in out
        assert (demo.home / f"{name}.pid").read_text().strip() == pids[name]
    match = re.search(r"^== run (\S+): success after", proc.stdout, re.M)
    assert match and match.group(1) != first_run
    for name in ("sshd", "mail-catcher", "webhook-receiver"):
        assert f"is already running (pid {helpers[name]}): reusing it" in out, name
        assert _pid(demo, name) == helpers[name]
    restarted = _pid(demo, "http-endpoint")
    assert restarted != helpers["http-endpoint"] and _alive(restarted)
    assert f"started the HTTP endpoint on {HELPER_ADDRESS}:{demo.env['DEMO_HTTP_PORT']} (pid {restarted}" in out


def test_demo_stop_leaves_no_process(demo: Demo) -> None:
    """`make demo-stop` stops Airflow's services and every helper, with every process they started."""
    pids = {name: _pid(demo, name) for name in SERVICES + HELPERS}
    groups = {name: os.getpgid(pid) for name, pid in pids.items() if _alive(pid)}
    assert set(groups) == set(pids), f"not running before demo-stop: {set(pids) - set(groups)}"
    stop = subprocess.run(
        ["bash", str(STOP_SCRIPT)], cwd=REPO, env=demo.env, capture_output=True, text=True, timeout=120
    )
    assert stop.returncode == 0, stop.stdout + stop.stderr
    for name in HELPERS:
        assert f"demo-stop: stopping {name} (pid {pids[name]})" in stop.stdout
    left = {name: pid for name, pid in pids.items() if _alive(pid)}
    assert not left, f"still running after demo-stop: {left}"
    in_groups = subprocess.run(
        ["ps", "-o", "pid=,cmd=", "-g", ",".join(str(g) for g in groups.values())], capture_output=True, text=True
    ).stdout.strip()
    assert not in_groups, f"processes left in the demo's process groups:\n{in_groups}"
    for name in SERVICES + HELPERS:
        assert not (demo.home / f"{name}.pid").exists()
    for port in ("DEMO_SSH_PORT", "DEMO_SMTP_PORT", "DEMO_WEBHOOK_PORT", "DEMO_HTTP_PORT"):
        with socket.socket() as s:
            assert s.connect_ex((HELPER_ADDRESS, int(demo.env[port]))) != 0, f"{port} still answers"
