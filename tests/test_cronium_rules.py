"""Cronium's rules for records the plan used to refuse to run: empty workflows and draft action targets.

Each case follows Cronium's source (``addison-moore/cronium`` at the corpus commit), cited per test.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import airflow_env, venv_bin
from tests.support.airflow_run import run_dag
from tests.test_event_dags import Factory, dag_runs, new_id


@pytest.fixture
def factory(tmp_path: Path, capfd, monkeypatch, airflow_db) -> Factory:
    folder = tmp_path / "records"
    folder.mkdir()
    return Factory(folder, capfd, monkeypatch)


def _plan(folder: Path) -> dict:
    proc = subprocess.run(
        [venv_bin("cronium-airflow"), "plan", "--json", str(folder)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {d["dag_id"]: d for d in json.loads(proc.stdout)["dags"]}


@pytest.mark.docker
def test_a_draft_or_archived_action_target_still_runs(factory: Factory) -> None:
    """Cronium runs a SCRIPT action's target whatever its status: ``getEventWithRelations`` then
    ``runScriptImmediately`` with no status check (apps/cronium-app/src/lib/scheduler/event-handlers.ts:386-411).
    Every status builds a DAG that is not paused; a DRAFT or ARCHIVED one has no schedule, so only the action
    (or a person) starts it."""
    draft = factory.event(name="draft target", status="DRAFT", triggerType="SCHEDULE", scheduleNumber=5)
    archived = factory.event(name="archived target", status="ARCHIVED")
    unused = factory.event(name="draft, no action names it", status="DRAFT")
    source = factory.event(
        name="starts them",
        alwaysEvents=[{"type": "SCRIPT", "targetEventId": draft["id"]}],
        successEvents=[{"type": "SCRIPT", "targetEventId": archived["id"]}],
    )
    module = factory.load()
    for target in (draft, archived):
        dag = getattr(module, f"cronium_event_{target['id']}")
        assert dag.is_paused_upon_creation is False
        assert type(dag.timetable).__name__ == "NullTimetable"  # no schedule: only the action starts it
    assert getattr(module, f"cronium_event_{unused['id']}").is_paused_upon_creation is False
    plan = _plan(factory.folder)
    assert plan[f"cronium_event_{draft['id']}"]["schedule"]["kind"] == "none"
    assert (
        "status DRAFT: no scheduled run (its rule, */5 * * * *, makes no run)"
        in (plan[f"cronium_event_{draft['id']}"]["notes"][0])
    )

    result = factory.run(module, source)
    assert result.state == "success"
    assert result.task_states == {
        "run": "success",
        "always_0": "success",
        "on_success_0": "success",
        "result": "success",
    }
    assert len(dag_runs(f"cronium_event_{draft['id']}")) == 1
    assert len(dag_runs(f"cronium_event_{archived['id']}")) == 1
    target_run = run_dag(getattr(module, f"cronium_event_{archived['id']}"), capfd=factory.capfd)
    assert target_run.state == "success" and target_run.task_states == {"run": "success"}


def test_a_workflow_with_no_nodes_fails_as_in_cronium(factory: Factory) -> None:
    """Cronium ends a run of a workflow with no nodes as FAILURE, "Workflow has no nodes to execute"
    (apps/cronium-app/src/lib/workflow-executor.ts:263-286); ``plan`` says so."""
    workflow_id = new_id()
    (factory.folder / "empty-workflow.json").write_text(
        json.dumps(
            {
                "id": workflow_id,
                "name": "Nothing to do",
                "status": "ACTIVE",
                "triggerType": "MANUAL",
                "scheduleNumber": None,
                "scheduleUnit": None,
                "nodes": [],
                "connections": [],
            }
        )
    )
    module = factory.load()
    plan = _plan(factory.folder)
    assert plan[f"cronium_workflow_{workflow_id}"]["notes"] == [
        "no nodes: every run ends as FAILURE ('Workflow has no nodes to execute'), as in Cronium"
    ]
    result = run_dag(getattr(module, f"cronium_workflow_{workflow_id}"), capfd=factory.capfd)
    assert result.state == "failed"
    assert result.task_states == {"workflow_result": "failed"}
    assert "Workflow has no nodes to execute" in result.log_text()


def _queue_runs(dag_id: str, count: int) -> None:
    """Runs waiting in the queue, as three manual triggers at once leave them (max_active_runs is 1)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType
    from pendulum import now

    with create_session() as session:
        for index in range(count):
            session.add(
                DagRun(
                    dag_id=dag_id,
                    run_id=f"queued__{index}",
                    run_type=DagRunType.MANUAL,
                    state=DagRunState.QUEUED,
                    run_after=now("UTC"),
                    conf={},
                )
            )


@pytest.mark.docker
def test_max_executions_counts_finished_runs_never_queued_ones(factory: Factory) -> None:
    """Cronium counts executions that happened (apps/cronium-app/src/lib/scheduler/execution-counter.ts:18-24):
    a limit of 5 with a count of 3 runs twice more, however many runs wait in the queue."""
    event = factory.event(maxExecutions=5, executionCount=3, content="cronium_output '{\"ran\": true}'")
    module = factory.load()
    dag = getattr(module, f"cronium_event_{event['id']}")
    first = run_dag(dag, capfd=factory.capfd)  # registers the DAG; queued runs may then wait beside it
    _queue_runs(dag.dag_id, 2)
    second = run_dag(dag, capfd=factory.capfd)
    third = run_dag(dag, capfd=factory.capfd)
    assert [r.task_states["run"] for r in (first, second, third)] == ["success", "success", "skipped"]
    assert "maxExecutions 5 reached (5 execution(s) so far)" in third.log_text()


def _paused(dag_ids: list[str]) -> dict[str, bool]:
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(DagModel).filter(DagModel.dag_id.in_(dag_ids)).all()
        return {row.dag_id: bool(row.is_paused) for row in rows}


def _set_paused(dag_ids: list[str], paused: bool) -> None:
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        for row in session.query(DagModel).filter(DagModel.dag_id.in_(dag_ids)).all():
            row.is_paused = paused


def _mark_stale(dag_id: str) -> None:
    """As the dag-processor marks a DAG its file no longer builds (``airflow dags reserialize`` does not)."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagModel).filter(DagModel.dag_id == dag_id).update({DagModel.is_stale: True})


def test_apply_status_unpauses_what_earlier_versions_paused_for_a_status(factory: Factory) -> None:
    """Cronium runs an event of any status by hand (apps/cronium-app/src/server/api/routers/events.ts:573-698)
    and only drops its schedule (lib/scheduler/scheduler.ts:422-430): ``apply-status`` unpauses the DAGs of
    PAUSED, DRAFT and ARCHIVED records that earlier versions paused, and pauses a Cronium DAG Airflow marks
    stale because its record is gone."""
    a = factory.event(name="a", status="PAUSED")
    b = factory.event(name="b", status="ARCHIVED")
    c = factory.event(name="c", status="ACTIVE")
    gone = factory.event(name="gone", status="ACTIVE")
    factory.load()
    env = airflow_env(CRONIUM_RECORDS_DIR=str(factory.folder))
    reserialize = [venv_bin("airflow"), "dags", "reserialize"]
    subprocess.run(reserialize, env=env, check=True, capture_output=True, timeout=300)
    ids = [f"cronium_event_{e['id']}" for e in (a, b, c, gone)]
    assert _paused(ids) == dict.fromkeys(ids, False)
    _set_paused(ids[:3], True)  # as earlier versions left them (and c paused by hand)

    factory.events.remove(gone)
    factory.load()
    subprocess.run(reserialize, env=env, check=True, capture_output=True, timeout=300)
    _mark_stale(ids[3])
    apply = [venv_bin("cronium-airflow"), "apply-status", str(factory.folder)]
    proc = subprocess.run(apply, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{ids[0]}: unpaused: the record is PAUSED: its schedule is off" in proc.stdout
    assert f"{ids[1]}: unpaused: the record is ARCHIVED" in proc.stdout
    assert f"{ids[2]}: unpaused: the record is ACTIVE" in proc.stdout
    assert f"{ids[3]}: paused: its record is gone" in proc.stdout
    assert _paused(ids) == dict(zip(ids, [False, False, False, True], strict=True))
    again = subprocess.run(apply, env=env, capture_output=True, text=True, timeout=300)
    assert "0 DAG(s) changed" in again.stdout


def test_apply_status_applies_every_good_record_beside_a_bad_one(factory: Factory) -> None:
    """A record made invalid is a warning naming its file, record and field: it is left out and its DAG is
    left as it is, the other records are applied, and the command exits 0. A malformed ``[cronium]``
    setting changes nothing and exits 2."""
    good = factory.event(name="good", status="ACTIVE")
    bad = factory.event(name="turned bad", status="ACTIVE")
    factory.load()
    env = airflow_env(CRONIUM_RECORDS_DIR=str(factory.folder))
    reserialize = [venv_bin("airflow"), "dags", "reserialize"]
    subprocess.run(reserialize, env=env, check=True, capture_output=True, timeout=300)
    ids = [f"cronium_event_{e['id']}" for e in (good, bad)]
    _set_paused(ids, True)

    good["status"], bad["status"], bad["type"] = "PAUSED", "PAUSED", "PERL"
    events = factory.folder / "events.json"
    events.write_text(json.dumps({"events": factory.events}))
    malformed = {**env, "AIRFLOW__CRONIUM__SCOPE_VARIABLES_BY_OWNER": "maybe"}
    apply = [venv_bin("cronium-airflow"), "apply-status", str(factory.folder)]
    failed = subprocess.run(apply, env=malformed, capture_output=True, text=True, timeout=300)
    assert failed.returncode == 2, failed.stdout + failed.stderr
    assert "scope_variables_by_owner must be auto, true or false" in failed.stdout
    assert _paused(ids) == {ids[0]: True, ids[1]: True}

    proc = subprocess.run(apply, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"warning: {events}: event {bad['id']}: field type: " in proc.stdout
    assert f"{ids[0]}: unpaused: the record is PAUSED" in proc.stdout and "1 DAG(s) changed" in proc.stdout
    assert _paused(ids) == {ids[0]: False, ids[1]: True}  # the bad record's DAG is not touched


def _ti_times(dag_id: str, run_id: str) -> dict[str, tuple[Any, Any]]:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(TaskInstance).filter(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        return {ti.task_id: (ti.start_date, ti.end_date) for ti in rows}


@pytest.mark.docker
def test_actions_fire_as_cronium_fires_them(factory: Factory) -> None:
    """Cronium's job service, when a run ends (apps/cronium-app/src/lib/services/job-service.ts:583-623):
    always actions first, then success or failure actions; condition actions whenever the condition was
    set to true, also when the run then failed; a failed action never changes the run's result."""
    targets = {kind: factory.event(name=f"target {kind}") for kind in ("always", "success", "fail", "condition")}
    actions = {
        "alwaysEvents": [
            {"type": "SCRIPT", "targetEventId": targets["always"]["id"]},
            {"type": "SEND_MESSAGE", "toolId": 987654, "message": "no such tool: this action fails"},
        ],
        "successEvents": [{"type": "SCRIPT", "targetEventId": targets["success"]["id"]}],
        "failEvents": [{"type": "SCRIPT", "targetEventId": targets["fail"]["id"]}],
        "conditionEvents": [{"type": "SCRIPT", "targetEventId": targets["condition"]["id"]}],
    }
    failing = factory.event(name="condition, then failure", content="cronium_setCondition true; exit 3", **actions)
    passing = factory.event(name="success", content="true", **actions)
    module = factory.load()

    failed = factory.run(module, failing)
    assert failed.state == "failed"  # the event's own result
    assert failed.task_states == {
        "run": "failed",
        "always_0": "success",
        "always_1": "failed",  # shown as failed...
        "on_success_0": "skipped",
        "on_failure_0": "success",
        "on_condition_0": "success",  # the condition was true: it fires although the run failed
        "result": "failed",
    }
    passed = factory.run(module, passing)
    assert passed.state == "success"  # ...but a failed action does not fail a successful run
    assert passed.task_states["always_1"] == "failed" and passed.task_states["on_success_0"] == "success"
    assert passed.task_states["on_condition_0"] == "skipped"
    times = _ti_times(f"cronium_event_{passing['id']}", passed.run_id)
    last_always = max(times["always_0"][1], times["always_1"][1])
    assert times["on_success_0"][0] >= last_always  # always actions come first
    assert len(dag_runs(f"cronium_event_{targets['condition']['id']}")) == 1
    assert len(dag_runs(f"cronium_event_{targets['fail']['id']}")) == 1
    assert len(dag_runs(f"cronium_event_{targets['success']['id']}")) == 1
    assert len(dag_runs(f"cronium_event_{targets['always']['id']}")) == 2


@pytest.mark.docker
def test_a_run_that_did_not_happen_fires_no_action(factory: Factory) -> None:
    """An event whose limit is reached is skipped, and so are its always actions: Cronium fires actions
    only when a job completes (job-service.ts:583-589)."""
    target = factory.event(name="target")
    event = factory.event(
        maxExecutions=1,
        executionCount=1,
        alwaysEvents=[{"type": "SCRIPT", "targetEventId": target["id"]}],
    )
    module = factory.load()
    result = factory.run(module, event)
    assert result.task_states == {"run": "skipped", "always_0": "skipped", "result": "success"}
    assert "did not run (skipped): its actions do not fire" in result.log_text()
    assert dag_runs(f"cronium_event_{target['id']}") == []


@pytest.mark.docker
def test_a_run_stopped_by_a_person_fires_only_its_always_actions(factory: Factory, docker_client) -> None:
    """Killing the task (a person stopping the run) makes it CANCELLED: Cronium then fires the always actions
    and neither success nor failure ones (job-service.ts:599-607)."""
    import os
    import signal
    import time

    always = factory.event(name="always target")
    fail = factory.event(name="fail target")
    event = factory.event(
        content="sleep 300",
        alwaysEvents=[{"type": "SCRIPT", "targetEventId": always["id"]}],
        failEvents=[{"type": "SCRIPT", "targetEventId": fail["id"]}],
    )
    factory.load()
    dag_id = f"cronium_event_{event['id']}"
    env = airflow_env(CRONIUM_RECORDS_DIR=str(factory.folder))
    # the targets' DAGs must exist for the actions to start them
    subprocess.run([venv_bin("airflow"), "dags", "reserialize"], env=env, check=True, capture_output=True, timeout=300)
    proc = subprocess.Popen(
        [venv_bin("airflow"), "dags", "test", dag_id],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not docker_client.api.containers(filters={"label": f"org.cronium.dag_id={dag_id}"}):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
        time.sleep(0.2)
    time.sleep(1)
    os.kill(proc.pid, signal.SIGTERM)
    output, _ = proc.communicate(timeout=180)
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        states = {ti.task_id: str(ti.state) for ti in session.query(TaskInstance).filter(TaskInstance.dag_id == dag_id)}
    assert states["run"] == "failed"
    assert states["always_0"] == "success", output[-3000:]
    assert states["on_failure_0"] == "skipped", output[-3000:]
    assert "was cancelled, not failed (status CANCELLED)" in output


@pytest.mark.docker
def test_a_node_not_reached_fires_none_of_its_actions(tmp_path: Path, capfd, monkeypatch, airflow_db) -> None:
    """A workflow node whose connection is not satisfied did not run: its always action stays silent
    (Cronium fires actions only for a job that completed, job-service.ts:583-589)."""
    from tests.test_workflows import WorkflowBuilder

    folder = tmp_path / "records"
    folder.mkdir()
    wf = WorkflowBuilder(folder, capfd, monkeypatch)
    target = new_id()
    wf.events.append({"id": target, "name": "target", "type": "BASH", "status": "ACTIVE", "content": "true"})
    wf.node("a", "true")
    wf.node("b", "true", alwaysEvents=[{"type": "SCRIPT", "targetEventId": target}])
    wf.connect("a", "b", "ON_FAILURE")
    run = wf.run()
    assert run.result.task_states["node_b"] == "skipped"
    assert run.result.task_states["node_b__always_0"] == "skipped"
    assert run.result.state == "success"
    assert dag_runs(f"cronium_event_{target}") == []


def test_the_dag_file_reads_the_schedules_time_zone_from_the_config(tmp_path: Path, monkeypatch) -> None:
    """``[cronium] timezone`` is the zone of every schedule the DAG file builds."""
    from cronium_provider.factory import build_dags

    (tmp_path / "e.json").write_text(
        json.dumps(
            {
                "kind": "event",
                "id": 1,
                "name": "s",
                "type": "BASH",
                "status": "ACTIVE",
                "content": "true",
                "triggerType": "SCHEDULE",
                "customSchedule": "0 9 * * 1-5",
            }
        )
    )
    monkeypatch.setenv("AIRFLOW__CRONIUM__TIMEZONE", "Europe/Berlin")
    dag = build_dags(tmp_path)["cronium_event_1"]
    assert dag.timetable.timezone == "Europe/Berlin"
    assert dag.timetable.summary == "0 9 * * 1-5 (Europe/Berlin)"
