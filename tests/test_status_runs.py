"""When runs happen, as Cronium's rules say, shown with a real scheduler (tests/support/local_stack.py).

* A PAUSED event runs when a person runs it and when a ``SCRIPT`` action starts it; only its schedule is off.
* Each schedule slot's run starts while the previous one still runs (bounded by ``[cronium] max_active_runs``).
* ``cronium-airflow reset-counter`` starts the execution count again and unpauses a DAG paused at its limit.

One stack serves every test; the every-minute events tick while the earlier tests run, and the overlap test
(last) waits, bounded, for what is still missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, RUNTIME_IMAGE, venv_bin
from tests.support.local_stack import USER, LocalStack
from tests.support.services import ServiceDied, wait_for
from tests.test_deferrable_container import _remove_labelled

pytestmark = [pytest.mark.airflow, pytest.mark.docker]

PAUSED_EVERY_MINUTE = 9101  # PAUSED, every minute: runs when triggered, never on its schedule
FAILS = 9102  # ACTIVE, fails; its failure action starts PAUSED_TARGET
PAUSED_TARGET = 9103
SLOW_EVERY_MINUTE = 9104  # ACTIVE, every minute, its script takes 150 s
LIMITED = 9105  # ACTIVE, maxExecutions 1
DAGS = [f"cronium_event_{i}" for i in (PAUSED_EVERY_MINUTE, FAILS, PAUSED_TARGET, SLOW_EVERY_MINUTE, LIMITED)]
PARSED_AT: list[float] = []  # when the stack had parsed every DAG (time.monotonic())
EVERY_MINUTE = {"triggerType": "SCHEDULE", "scheduleNumber": 1, "scheduleUnit": "MINUTES"}


def _event(event_id: int, name: str, content: str, **fields: Any) -> dict[str, Any]:
    return {"id": event_id, "name": name, "type": "BASH", "status": "ACTIVE", "triggerType": "MANUAL",
            "content": content, **fields}  # fmt: skip


RECORDS = [
    _event(PAUSED_EVERY_MINUTE, "paused, every minute", "echo ran", status="PAUSED", **EVERY_MINUTE),
    _event(FAILS, "fails", "exit 3", failEvents=[{"type": "SCRIPT", "targetEventId": PAUSED_TARGET}]),
    _event(PAUSED_TARGET, "paused target", "echo target", status="PAUSED"),
    _event(SLOW_EVERY_MINUTE, "slow, every minute", "sleep 150", timeoutValue=5, timeoutUnit="MINUTES", **EVERY_MINUTE),
    _event(LIMITED, "once", "echo once", maxExecutions=1, executionCount=0),
]


@pytest.fixture(scope="module")
def stack(docker_client: Any) -> Iterator[LocalStack]:
    home = Path(tempfile.mkdtemp(prefix="cronium-status-runs-"))
    records = home / "records"
    records.mkdir()
    (records / "events.json").write_text(json.dumps({"events": RECORDS}))
    st = LocalStack.create(
        home,
        records,
        {"cronium_dags.py": (REPO / "dags_templates" / "cronium_dags.py").read_text()},
        parallelism=6,
        # the stack turns scheduled runs off by default: here they are what is looked at
        extra_env={"AIRFLOW__CRONIUM__IMAGE": RUNTIME_IMAGE, "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True"},
    )
    # the api-server the maxExecutions pause goes through (operators/event.py _pause_at_limit)
    st.env["AIRFLOW_CONN_CRONIUM_AIRFLOW_API"] = f"http://{USER}:{st.password}@127.0.0.1:{st.api_port}"
    try:
        try:
            st.start()
            st.wait_parsed(set(DAGS))
        except (TimeoutError, ServiceDied, RuntimeError):
            print(f"\n[status-runs] the stack did not start; diagnostics:\n{st.diagnostics()}", file=sys.stderr)
            raise
        PARSED_AT[:] = [time.monotonic()]
        yield st
    finally:
        st.stop()
        _remove_labelled(docker_client, DAGS)
        shutil.rmtree(home, ignore_errors=True)


def _runs(stack: LocalStack, dag_id: str, run_type: str | None = None) -> list[tuple[str, str, str]]:
    """(run id, run type, state) of the DAG's runs, oldest first."""
    sql = "SELECT run_id, run_type, state FROM dag_run WHERE dag_id = ?"
    params: tuple[Any, ...] = (dag_id,)
    if run_type is not None:
        sql, params = sql + " AND run_type = ?", (dag_id, run_type)
    return [(str(a), str(b), str(c)) for a, b, c in stack.query(sql + " ORDER BY id", params)]


def _paused(stack: LocalStack, dag_id: str) -> bool:
    return bool(stack.query("SELECT is_paused FROM dag WHERE dag_id = ?", (dag_id,))[0][0])


def test_a_paused_event_runs_when_a_person_triggers_it(stack: LocalStack) -> None:
    """Cronium's Run checks no status (apps/cronium-app/src/server/api/routers/events.ts:573-698): a PAUSED
    event's DAG is not paused, so ``airflow dags trigger`` runs it once."""
    dag_id = f"cronium_event_{PAUSED_EVERY_MINUTE}"
    assert not _paused(stack, dag_id)
    proc = stack.airflow("dags", "trigger", dag_id, "--run-id", "by_hand")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert stack.wait_run(dag_id, "by_hand", 240) == "success", stack.diagnostics()
    assert stack.ti(dag_id, "by_hand")[0] == "success"
    assert [r for r in _runs(stack, dag_id) if r[1] == "manual"] == [("by_hand", "manual", "success")]


def test_a_failure_action_runs_a_paused_target_once(stack: LocalStack) -> None:
    """Cronium's SCRIPT action runs its target whatever its status (apps/cronium-app/src/lib/scheduler/
    event-handlers.ts:386-411): the failed event's action starts the PAUSED target, which runs once."""
    target = f"cronium_event_{PAUSED_TARGET}"
    run_id = stack.trigger(f"cronium_event_{FAILS}")
    assert stack.wait_run(f"cronium_event_{FAILS}", run_id, 240) == "failed"
    assert stack.ti(f"cronium_event_{FAILS}", run_id, "on_failure_0")[0] == "success"

    def target_ran() -> bool:
        return [state for *_, state in _runs(stack, target)] == ["success"]

    wait_for(target_ran, 180, f"{target} ran", interval=1)
    [(target_run, _, _)] = _runs(stack, target)
    assert stack.ti(target, target_run)[0] == "success"


def test_reset_counter_lets_an_event_at_its_limit_run_again(stack: LocalStack) -> None:
    """Cronium's Reset counter sets executionCount to 0 (apps/cronium-app/src/server/api/routers/
    events.ts:740-754): an event with maxExecutions 1 runs once and is paused (lib/scheduler/
    execution-counter.ts:24-35); ``cronium-airflow reset-counter`` unpauses it and the next run runs."""
    dag_id = f"cronium_event_{LIMITED}"
    first = stack.trigger(dag_id)
    assert stack.wait_run(dag_id, first, 240) == "success"
    assert stack.ti(dag_id, first)[0] == "success"
    wait_for(lambda: _paused(stack, dag_id), 60, f"{dag_id} paused at maxExecutions 1", interval=0.5)

    reset = subprocess.run(
        [venv_bin("cronium-airflow"), "reset-counter", str(LIMITED)],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert reset.returncode == 0, reset.stdout + reset.stderr
    assert f"{dag_id}: execution count reset (1 execution(s) before" in reset.stdout
    assert "unpaused: it was paused at maxExecutions 1" in reset.stdout
    assert not _paused(stack, dag_id)

    second = stack.trigger(dag_id)
    assert stack.wait_run(dag_id, second, 240) == "success"
    assert stack.ti(dag_id, second)[0] == "success"  # it ran: not skipped at the limit
    wait_for(lambda: _paused(stack, dag_id), 60, f"{dag_id} paused again at its limit", interval=0.5)
    third = stack.trigger(dag_id)  # paused: it waits in the queue; before the reset it would be skipped
    apply = subprocess.run(
        [venv_bin("cronium-airflow"), "apply-status", str(stack.home / "records")],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert f"{dag_id}: kept paused: reached maxExecutions 1 (1 execution(s) so far)" in apply.stdout, apply.stdout
    assert stack.run_state(dag_id, third) == "queued"


def _run_task_times(stack: LocalStack, dag_id: str) -> list[tuple[datetime, datetime | None]]:
    rows = stack.query(
        "SELECT ti.start_date, ti.end_date FROM task_instance ti JOIN dag_run dr "
        "ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id "
        "WHERE ti.dag_id = ? AND ti.task_id = 'run' AND dr.run_type = 'scheduled' AND ti.start_date IS NOT NULL "
        "ORDER BY ti.start_date",
        (dag_id,),
    )
    return [(datetime.fromisoformat(a), datetime.fromisoformat(b) if b else None) for a, b in rows]


def test_schedule_slots_overlap_and_a_paused_schedule_makes_no_run(stack: LocalStack) -> None:
    """Cronium forgets an event once its slot's job is queued (apps/cronium-app/src/lib/scheduler/
    scheduler.ts:396-507: ``executingEvents`` is cleared in ``finally`` after ``executeScript``, which only
    creates the job, lines 605-673), so every slot's run starts while the previous one still runs: the
    every-minute event whose script takes 150 s has its second scheduled run started before the first
    ended. Only ACTIVE records are scheduled (scheduler.ts:422-430): the PAUSED every-minute event, parsed
    as long ago, gets no scheduled run."""
    slow = f"cronium_event_{SLOW_EVERY_MINUTE}"

    def overlapped() -> bool:
        stack.check_alive()
        times = _run_task_times(stack, slow)
        return len(times) >= 2 and (times[0][1] is None or times[1][0] < times[0][1])

    try:
        wait_for(overlapped, max(10.0, 200 - (time.monotonic() - PARSED_AT[0])), "two slow runs at once", interval=2)
    except TimeoutError:
        pytest.fail(f"no overlap: runs {_runs(stack, slow)}, run task times {_run_task_times(stack, slow)}")
    assert time.monotonic() - PARSED_AT[0] >= 70
    assert _runs(stack, f"cronium_event_{PAUSED_EVERY_MINUTE}", "scheduled") == []
    assert len(_runs(stack, slow, "scheduled")) >= 2
