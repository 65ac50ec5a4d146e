"""``cronium-airflow apply-status`` and ``reset-counter``: what Airflow's database holds of the records' state.

Every record's DAG is built unpaused whatever its status: a PAUSED, DRAFT or ARCHIVED record has no schedule
but runs when a person runs it or an action starts it, as in Cronium (plan/build.py ``status_schedule``).
A DAG's ``is_paused_upon_creation`` applies only when Airflow first sees it; ``apply-status`` unpauses the
DAGs older versions of the provider paused for a record's status. Only two things keep a DAG paused: an
event whose runs reached its ``maxExecutions`` (the run that reached it paused the DAG, as Cronium pauses the
event; raising the limit or ``reset-counter`` unpauses it) and a DAG Airflow marks stale because its record
vanished from the records folder (paused, so that no run waiting in the queue starts). A DAG paused in
Airflow by a person is unpaused too: the records say whether a Cronium event runs. It writes to Airflow's
metadata database, never at parse time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cronium_provider.naming import event_dag_id, executions_reset_key
from cronium_provider.plan.models import DagPlan, Plan
from cronium_provider.plan.specs import EventRunSpec
from cronium_provider.states import RAN_STATES, executions, max_executions_reached

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

CRONIUM_DAG_PREFIXES = ("cronium_event_", "cronium_workflow_")


@dataclass(frozen=True)
class StatusChange:
    dag_id: str
    paused: bool
    reason: str
    changed: bool = True  # False: the DAG is left as it is (``reason`` says why)


def limited_run(dag: DagPlan) -> EventRunSpec | None:
    """The task of an event's DAG that ``maxExecutions`` bounds (None without a limit)."""
    for task in dag.tasks:
        if isinstance(task, EventRunSpec) and task.node_id is None and task.max_executions > 0:
            return task
    return None


def status_changes(
    plan: Plan,
    paused_now: dict[str, bool],
    executions_now: dict[str, int] | None = None,
    stale: frozenset[str] = frozenset(),
) -> list[StatusChange]:
    """What must change so that the existing DAGs (``paused_now``: dag id -> is_paused) follow the records.

    ``executions_now`` (dag id -> executions of its limited task, as the operators count them:
    :func:`~cronium_provider.states.executions`) keeps a paused DAG paused at ``maxExecutions``; ``stale``:
    Cronium DAGs Airflow marks stale (their record is gone), paused when not in the plan."""
    executions_now = executions_now or {}
    changes: list[StatusChange] = []
    for dag in plan.dags:
        if not paused_now.get(dag.dag_id, False):
            continue
        run = limited_run(dag)
        if run is not None and dag.dag_id in executions_now:
            count = executions_now[dag.dag_id]
            if max_executions_reached(run.max_executions, count):
                reason = f"kept paused: reached maxExecutions {run.max_executions} ({count} execution(s) so far)"
                changes.append(StatusChange(dag.dag_id, True, reason, changed=False))
                continue
        if dag.status == "ACTIVE":
            reason = "unpaused: the record is ACTIVE"
        else:
            reason = (
                f"unpaused: the record is {dag.status}: its schedule is off, a person or an action may still "
                "run it (earlier versions paused it)"
            )
        changes.append(StatusChange(dag.dag_id, False, reason))
    built = {dag.dag_id for dag in plan.dags}
    for dag_id in sorted(stale - built):
        if paused_now.get(dag_id) is False:
            changes.append(StatusChange(dag_id, True, "paused: its record is gone (Airflow marks the DAG stale)"))
    return changes


def _finished_runs(session: Session, dag_id: str, task_id: str) -> int:
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import func

    query = session.query(func.count(TaskInstance.id)).filter(
        TaskInstance.dag_id == dag_id,
        TaskInstance.task_id == task_id,
        TaskInstance.state.in_(sorted(RAN_STATES)),
    )
    return int(query.scalar() or 0)


def _reset_value(session: Session, dag_id: str) -> str | None:
    from airflow.models.variable import Variable

    row = session.query(Variable).filter(Variable.key == executions_reset_key(dag_id)).one_or_none()
    return None if row is None else str(row.val)


def apply_status(plan: Plan) -> list[StatusChange]:
    """Unpause the existing DAGs of the plan's records and pause the stale Cronium DAGs whose record is gone,
    in one transaction; returns what changed and the DAGs kept paused at their execution limit."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import or_

    dag_ids = [d.dag_id for d in plan.dags]
    with create_session() as session:
        models = {m.dag_id: m for m in session.query(DagModel).filter(DagModel.dag_id.in_(dag_ids)).all()}
        stale_models = (
            session.query(DagModel)
            .filter(DagModel.is_stale.is_(True), or_(*[DagModel.dag_id.like(f"{p}%") for p in CRONIUM_DAG_PREFIXES]))
            .all()
        )
        models.update({m.dag_id: m for m in stale_models if m.dag_id not in models})
        counts: dict[str, int] = {}
        for dag in plan.dags:
            run = limited_run(dag)
            if run is not None and dag.dag_id in models and models[dag.dag_id].is_paused:
                finished = _finished_runs(session, dag.dag_id, run.task_id)
                counts[dag.dag_id] = executions(run.execution_count, finished, _reset_value(session, dag.dag_id))
        paused_now = {dag_id: bool(m.is_paused) for dag_id, m in models.items()}
        changes = status_changes(plan, paused_now, counts, frozenset(m.dag_id for m in stale_models))
        for change in changes:
            if change.changed:
                models[change.dag_id].is_paused = change.paused
    return changes


@dataclass(frozen=True)
class CounterReset:
    dag_id: str
    finished_runs: int  # the runs finished before the reset: no longer counted
    before: int  # the executions counted before the reset
    unpaused: bool
    note: str


def reset_counter(event_id: int, dag: DagPlan | None) -> CounterReset:
    """Start an event's execution count again, as Cronium's reset sets ``executionCount`` to 0
    (server/api/routers/events.ts:740-754): an Airflow Variable (:func:`~cronium_provider.naming.
    executions_reset_key`) records how many runs had finished, and only the runs finished after it count;
    the record's ``executionCount`` is no longer added. A DAG paused at its ``maxExecutions`` (``dag``: the
    event's plan, from its record) is unpaused; a DAG paused for another reason stays paused."""
    from airflow.models.dag import DagModel
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    dag_id = event_dag_id(event_id)
    run = limited_run(dag) if dag is not None else None
    with create_session() as session:
        finished = _finished_runs(session, dag_id, run.task_id if run is not None else "run")
        before = executions(run.execution_count if run else 0, finished, _reset_value(session, dag_id))
        stamp = {"finished_runs": finished, "reset_at": datetime.now(UTC).isoformat(timespec="seconds")}
        Variable.set(
            executions_reset_key(dag_id),
            json.dumps(stamp),
            description=f"cronium-airflow reset-counter of event {event_id}: runs finished before it do not count",
            session=session,
        )
        model = session.query(DagModel).filter(DagModel.dag_id == dag_id).one_or_none()
        if model is None:
            return CounterReset(dag_id, finished, before, False, "Airflow has no such DAG yet")
        if not model.is_paused:
            return CounterReset(dag_id, finished, before, False, "the DAG is not paused")
        if run is None or not max_executions_reached(run.max_executions, before):
            limit = f"maxExecutions {run.max_executions}" if run is not None else "no maxExecutions"
            note = f"left paused: it was not paused at its limit ({before} execution(s), {limit})"
            return CounterReset(dag_id, finished, before, False, note)
        model.is_paused = False
        note = f"unpaused: it was paused at maxExecutions {run.max_executions}"
        return CounterReset(dag_id, finished, before, True, note)
