"""`cronium-airflow validate` and `plan --json`, run as the installed console script."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, airflow_env, venv_bin


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([venv_bin("cronium-airflow"), *args], capture_output=True, text=True, timeout=60)


def test_validate_examples_exits_zero() -> None:
    proc = run_cli("validate", str(EXAMPLES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("OK: 10 events, 1 workflows, 2 servers valid")


def test_validate_reports_every_error_and_exits_one(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"kind": "event", "id": 3, "name": "x", "type": "PERL"}))
    (tmp_path / "b.yaml").write_text("kind: event\nid: 4\nname: y\ntype: BASH\nscheduleUnit: WEEKS\n")
    human = run_cli("validate", str(tmp_path))
    assert human.returncode == 1
    assert f"{tmp_path / 'a.json'}: event 3: field type: " in human.stdout
    assert f"{tmp_path / 'b.yaml'}: event 4: field scheduleUnit: " in human.stdout
    machine = run_cli("validate", "--json", str(tmp_path))
    assert machine.returncode == 1
    data = json.loads(machine.stdout)
    assert data["ok"] is False
    assert sorted((e["record_id"], e["field"]) for e in data["errors"]) == [(3, "type"), (4, "scheduleUnit")]


def test_plan_json_describes_the_dags(tmp_path: Path) -> None:
    proc = run_cli("plan", str(EXAMPLES), "--json")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["version"] == 1
    dags = {d["dag_id"]: d for d in plan["dags"]}
    assert set(dags) == {f"cronium_event_{i}" for i in range(1, 11)} | {"cronium_workflow_1"}
    assert dags["cronium_event_8"]["status"] == "ARCHIVED" and dags["cronium_event_8"]["schedule"]["kind"] == "none"
    http = dags["cronium_event_4"]  # PAUSED: built unpaused, its */15 rule makes no run
    assert http["is_paused"] is False
    assert http["schedule"]["kind"] == "none"
    assert "its rule, */15 * * * *, makes no run" in http["notes"][0]
    cleanup = dags["cronium_event_6"]
    assert cleanup["schedule"]["cron"] == "30 2 * * *"
    assert cleanup["schedule"]["start_date"] == "2026-01-01T00:00:00+00:00"
    assert [(e["upstream"], e["downstream"], e["connection_type"]) for e in cleanup["edges"]] == [
        ("run", "always_0", "ALWAYS"),
        ("run", "on_failure_0", "ON_FAILURE"),
        ("always_0", "on_failure_0", "ORDER"),  # always actions first, as Cronium fires them
        ("run", "result", "RESULT"),
        ("always_0", "result", "RESULT"),  # the result step comes after every action
        ("on_failure_0", "result", "RESULT"),
    ]
    flow = dags["cronium_workflow_1"]
    assert [t["task_id"] for t in flow["tasks"]] == [
        "node_fetch",
        "node_total",
        "node_report",
        "node_failure",
        "node_cleanup",
        "node_cleanup__always_0",
        "node_cleanup__on_failure_0",
        "workflow_result",
    ]
    assert {(e["upstream"], e["downstream"], e["connection_type"]) for e in flow["edges"]} == {
        ("node_fetch", "node_total", "ON_SUCCESS"),
        ("node_total", "node_report", "ON_CONDITION"),
        ("node_total", "node_failure", "ON_FAILURE"),
        ("node_total", "node_cleanup", "ALWAYS"),
        ("node_report", "workflow_result", "RESULT"),
        ("node_failure", "workflow_result", "RESULT"),
        ("node_cleanup", "workflow_result", "RESULT"),
        ("node_cleanup", "node_cleanup__always_0", "ALWAYS"),
        ("node_cleanup", "node_cleanup__on_failure_0", "ON_FAILURE"),
        ("node_cleanup__always_0", "node_cleanup__on_failure_0", "ORDER"),
        ("node_cleanup__always_0", "workflow_result", "RESULT"),
        ("node_cleanup__on_failure_0", "workflow_result", "RESULT"),
    }
    rules = {e["downstream"]: e["rule"] for e in flow["edges"] if e["upstream"] == "node_total"}
    assert rules["node_report"] == "only when the parent set its condition to true"
    total = next(t for t in flow["tasks"] if t["task_id"] == "node_total")
    assert total["trigger_rule"] == "all_done" and total["details"]["incoming"] == [["node_fetch", "ON_SUCCESS"]]
    fetch = flow["tasks"][0]
    assert fetch["display_name"] == "Fetch orders"
    assert fetch["execution_timeout_seconds"] == 120 and fetch["retries"] == 1
    assert fetch["env_keys"] == ["ORDERS_REGION"]


def test_no_secret_reaches_cli_output(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(
        json.dumps(
            {
                "events": [
                    {
                        "id": 1,
                        "name": "e",
                        "type": "BASH",
                        "status": "ACTIVE",
                        "content": "echo",
                        "runLocation": "REMOTE",
                        "serverId": 1,
                        "envVars": [{"key": "API_KEY", "value": "sk-live-very-secret"}],
                    },
                    {
                        "id": 2,
                        "name": "bad",
                        "type": "BASH",
                        "envVars": [{"key": "X", "value": {"v": "nested-secret"}}],
                    },
                ],
                "servers": [
                    {
                        "id": 1,
                        "name": "s",
                        "address": "127.0.0.2",
                        "password": "server-pass-secret",
                        "sshKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nkey-material-secret\n",
                    }
                ],
            }
        )
    )
    outputs = [
        run_cli("validate", str(tmp_path)),
        run_cli("validate", "--json", str(tmp_path)),
        run_cli("plan", str(tmp_path)),
        run_cli("plan", "--json", str(tmp_path)),
    ]
    text = "".join(p.stdout + p.stderr for p in outputs)
    assert "API_KEY" in text  # keys are shown, values never
    for secret in ("sk-live-very-secret", "nested-secret", "server-pass-secret", "key-material-secret"):
        assert secret not in text


def test_missing_path_is_an_error() -> None:
    proc = run_cli("validate", "/nonexistent/records")
    assert proc.returncode == 1
    assert "/nonexistent/records: no such file or folder" in proc.stdout


def test_apply_status_with_a_missing_path_changes_nothing() -> None:
    """A PATH that is not there (a typo) would leave every DAG of that folder as it is while the rest is
    applied: ``apply-status`` refuses before it reads Airflow's database, exit 2."""
    proc = run_cli("apply-status", "/nonexistent/records", str(EXAMPLES))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "error: /nonexistent/records: no such file or folder; nothing changed" in proc.stdout
    assert "DAG(s) changed" not in proc.stdout


def test_reset_counter_of_an_event_with_no_record_changes_nothing() -> None:
    """``reset-counter`` needs the event's record (its maxExecutions says whether its DAG was paused at the
    limit): an id no record has, or a PATH that is not there, is refused naming it, exit 2."""
    proc = run_cli("reset-counter", "999", str(EXAMPLES))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"error: no valid record of event 999 in {EXAMPLES}; nothing changed" in proc.stdout
    gone = run_cli("reset-counter", "1", "/nonexistent/records")
    assert gone.returncode == 2, gone.stdout + gone.stderr
    assert "error: /nonexistent/records: no such file or folder; nothing changed" in gone.stdout


def test_plan_reads_the_cronium_section_of_airflow_cfg(tmp_path: Path) -> None:
    """``[cronium] timezone`` set in ``airflow.cfg`` (no environment variable): ``plan`` schedules in that
    zone, as the DAG file does."""
    import os

    home = tmp_path / "airflow"
    home.mkdir()
    (home / "airflow.cfg").write_text("[core]\nload_examples = False\n\n[cronium]\ntimezone = Europe/Berlin\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__CRONIUM__")}
    env["AIRFLOW_HOME"] = str(home)
    env.pop("AIRFLOW_CONFIG", None)
    proc = subprocess.run(
        [venv_bin("cronium-airflow"), "plan", "--json", "dags_templates/records"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    zones = {dag["schedule"]["timezone"] for dag in json.loads(proc.stdout)["dags"] if dag["schedule"]["cron"]}
    assert zones == {"Europe/Berlin"}, zones


def test_a_second_cronium_section_in_airflow_cfg_is_named_with_its_fix(tmp_path: Path) -> None:
    """The ``airflow.cfg`` Airflow wrote (``airflow db migrate``) already has a ``[cronium]`` section with every
    option commented out; a second one appended below it makes Airflow refuse the file. The commands say
    where both sections are and what to do, instead of a traceback."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__CRONIUM__")}
    env["AIRFLOW_HOME"] = str(tmp_path / "airflow")
    env.pop("AIRFLOW_CONFIG", None)
    made = subprocess.run(  # Airflow writes its airflow.cfg into a new home at its first command
        [venv_bin("airflow"), "config", "get-value", "core", "load_examples"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert made.returncode == 0, made.stderr
    cfg = tmp_path / "airflow" / "airflow.cfg"
    written = cfg.read_text()
    first = written.splitlines().index("[cronium]") + 1
    cfg.write_text(written + "\n[cronium]\ntimezone = Europe/Berlin\n")
    second = len(cfg.read_text().splitlines()) - 1
    proc = subprocess.run(
        [venv_bin("cronium-airflow"), "plan", str(EXAMPLES)], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout.startswith(f"error: {cfg} line {second}: a second [cronium] section;"), proc.stdout
    assert f"Move its options into the first [cronium] section (line {first})" in proc.stdout


def _step(content: str, name: str = "step") -> dict[str, object]:
    return {"id": 1, "name": name, "type": "BASH", "status": "ACTIVE", "content": content}


def _download(workflow_id: int, event: dict[str, object]) -> dict[str, object]:
    """A workflow as Cronium's workflow download writes it: its node's event nested."""
    node = {"id": "n1", "eventId": event["id"], "event": event}
    return {
        "id": workflow_id,
        "name": f"flow {workflow_id}",
        "status": "ACTIVE",
        "triggerType": "MANUAL",
        "nodes": [node],
        "connections": [],
    }


def test_a_nested_copy_that_differs_is_a_warning_in_validate_and_plan(tmp_path: Path) -> None:
    """The event given on its own is used and the workflow's DAG is built: nothing is left out, so validate and
    plan say "warning", name the file, the record, the fields and the copy used, and exit 0."""
    step = tmp_path / "step.json"
    step.write_text(json.dumps({"kind": "event", **_step("echo new")}))
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps(_download(60, _step("echo old", name="step (old)"))))
    expected = (
        f"warning: {flow}: event 1: field name, content: the event nested at nodes[0].event differs from event 1 "
        f"in {step} in name, content; that copy, given on its own, is used and this nested one is ignored"
    )

    human = run_cli("validate", str(tmp_path))
    assert human.returncode == 0, human.stdout
    assert human.stdout.splitlines() == [expected, "OK: 1 events, 1 workflows, 0 servers valid, 1 warning(s)"]

    machine = run_cli("validate", "--json", str(tmp_path))
    assert machine.returncode == 0, machine.stdout
    data = json.loads(machine.stdout)
    assert data["ok"] is True and data["errors"] == []
    [warning] = data["warnings"]
    assert (warning["path"], warning["kind"], warning["record_id"], warning["field"], warning["severity"]) == (
        str(flow),
        "event",
        1,
        "name, content",
        "warning",
    )
    assert "warning: " + warning["text"] == expected

    plan = run_cli("plan", str(tmp_path))
    assert plan.returncode == 0, plan.stdout
    assert expected in plan.stdout.splitlines() and "error" not in plan.stdout
    assert "cronium_workflow_60  [ACTIVE, manual, max 16 at once]  flow 60" in plan.stdout
    plan_json = run_cli("plan", "--json", str(tmp_path))
    assert plan_json.returncode == 0, plan_json.stdout
    data = json.loads(plan_json.stdout)
    assert data["errors"] == [] and [w["text"] for w in data["warnings"]] == [warning["text"]]
    [node] = [t for d in data["dags"] if d["dag_id"] == "cronium_workflow_60" for t in d["tasks"] if t["event_id"]]
    assert node["display_name"] == "step"  # the copy given on its own


def test_nested_copies_that_differ_from_each_other_warn_and_none_valid_is_an_error(tmp_path: Path) -> None:
    """With no copy given on its own the first valid nested copy is used and the other is a warning naming
    both positions (a copy that is not valid too); when no copy is valid, nothing can be used: errors, exit 1,
    the workflows left out."""
    flows = tmp_path / "flows.json"
    flows.write_text(json.dumps([_download(61, _step("echo one")), _download(62, _step("echo two"))]))
    proc = run_cli("validate", str(tmp_path))
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.splitlines()[0] == (
        f"warning: {flows}: event 1: field content: the event nested at [1].nodes[0].event differs from event 1 "
        f"in {flows} ([0].nodes[0].event) in content; that copy, the first valid one read, is used and this nested one "
        "is ignored"
    )
    assert proc.stdout.splitlines()[1] == "OK: 1 events, 2 workflows, 0 servers valid, 1 warning(s)"

    flows.write_text(
        json.dumps([_download(61, {**_step("echo one"), "timeoutUnit": "WEEKS"}), _download(62, _step("echo two"))])
    )
    proc = run_cli("validate", str(tmp_path))
    assert proc.returncode == 0, proc.stdout
    [warning, summary] = proc.stdout.splitlines()
    assert warning.startswith(f"warning: {flows}: event 1: field timeoutUnit: ")
    assert warning.endswith(
        f"(the event nested at [0].nodes[0].event, not valid); event 1 in {flows} ([1].nodes[0].event), the first "
        "valid one read, is used and this nested one is ignored"
    )
    assert summary == "OK: 1 events, 2 workflows, 0 servers valid, 1 warning(s)"

    flows.write_text(
        json.dumps(
            [_download(61, {**_step("echo one"), "timeoutUnit": "WEEKS"}), _download(62, _step("x") | {"type": "PERL"})]
        )
    )
    proc = run_cli("validate", str(tmp_path))
    assert proc.returncode == 1, proc.stdout
    assert "warning" not in proc.stdout
    assert f"{flows}: event 1: field timeoutUnit: " in proc.stdout and f"{flows}: event 1: field type: " in proc.stdout
    assert f"{flows}: workflow 61: field nodes[0].eventId: " in proc.stdout
    assert f"{flows}: workflow 62: field nodes[0].eventId: " in proc.stdout
    assert proc.stdout.splitlines()[-1] == "4 problem(s) found; 0 events, 0 workflows, 0 servers valid"


@pytest.mark.parametrize("where", ["argument", "[cronium] image"])
def test_runtime_image_build_refuses_an_image_name_docker_would_read_as_an_option(where: str) -> None:
    """``--help`` as the image name made ``docker image inspect --help`` succeed, and the build said the image
    existed: a name that is not an image reference is refused, naming it, before Docker is asked."""
    args = ["runtime-image", "build", "--", "--help"] if where == "argument" else ["runtime-image", "build"]
    proc = subprocess.run(
        [venv_bin("cronium-airflow"), *args],
        env=airflow_env(AIRFLOW__CRONIUM__IMAGE="--help"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "[runtime-image] ERROR: image name '--help' refused" in proc.stdout
    assert "reusing it" not in proc.stdout and "error: the runtime image --help was not built" in proc.stdout


def test_runtime_image_context_never_writes_through_a_link(tmp_path: Path) -> None:
    """A link in DIR at one of the context's names (here one pointing nowhere yet) is left alone: no file
    appears where it points."""
    context, outside = tmp_path / "context", tmp_path / "outside"
    context.mkdir()
    outside.mkdir()
    (context / "build-runtime-image.sh").symlink_to(outside / "profile.sh")
    proc = run_cli("runtime-image", "context", str(context))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"error: {context / 'build-runtime-image.sh'} exists and differs from the provider's" in proc.stdout
    assert list(outside.iterdir()) == [] and (context / "build-runtime-image.sh").is_symlink()
    assert not (context / "Dockerfile").exists()
