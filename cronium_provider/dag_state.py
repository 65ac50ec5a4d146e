"""``cronium-airflow apply-status``: the records' status (ACTIVE, PAUSED, DRAFT, ARCHIVED) onto existing DAGs.

A DAG's ``is_paused_upon_creation`` applies only when Airflow first sees it; this carries later status
changes to DAGs that already exist: ACTIVE unpauses, PAUSED pauses, and a DRAFT or ARCHIVED record (which
builds no DAG, so the DAG processor marks its DAG stale) has its old DAG paused, so that no run waiting in
the queue starts. An ACTIVE event whose runs reached its ``maxExecutions`` stays paused: the run that
reached the limit paused it, as Cronium pauses the event, and raising the limit in the record unpauses it.
It writes to Airflow's metadata database, never at parse time.
"""

from __future__ import annotations

from dataclasses import dataclass

from cronium_provider.plan.models import DagPlan, Plan
from cronium_provider.plan.specs import EventRunSpec
from cronium_provider.states import RAN_STATES, max_executions_reached


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
    plan: Plan, paused_now: dict[str, bool], finished_runs: dict[str, int] | None = None
) -> list[StatusChange]:
    """What must change so that the existing DAGs (``paused_now``: dag id -> is_paused) follow the records.

    ``finished_runs`` (dag id -> finished runs of its limited task) keeps a paused DAG paused when its
    event's executions (as the operators count them: ``executionCount`` plus finished runs) reached
    ``maxExecutions``."""
    finished_runs = finished_runs or {}
    changes: list[StatusChange] = []
    for dag in plan.dags:
        if dag.dag_id not in paused_now or paused_now[dag.dag_id] == dag.is_paused:
            continue
        run = limited_run(dag)
        if not dag.is_paused and run is not None and dag.dag_id in finished_runs:
            executions = run.execution_count + finished_runs[dag.dag_id]
            if max_executions_reached(run.max_executions, executions):
                reason = f"kept paused: reached maxExecutions {run.max_executions} ({executions} execution(s) so far)"
                changes.append(StatusChange(dag.dag_id, True, reason, changed=False))
                continue
        verb = "paused" if dag.is_paused else "unpaused"
        changes.append(StatusChange(dag.dag_id, dag.is_paused, f"{verb}: the record is {dag.status}"))
    for skipped in plan.not_built:
        if paused_now.get(skipped.dag_id) is False:
            changes.append(
                StatusChange(skipped.dag_id, True, f"paused: the record is {skipped.status} and builds no DAG")
            )
    return changes


def apply_status(plan: Plan) -> list[StatusChange]:
    """Pause or unpause the existing DAGs of the plan's records, in one transaction; returns what changed
    and the DAGs kept paused at their execution limit."""
    from airflow.models.dag import DagModel
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import func

    dag_ids = [d.dag_id for d in plan.dags] + [s.dag_id for s in plan.not_built]
    with create_session() as session:
        models = {m.dag_id: m for m in session.query(DagModel).filter(DagModel.dag_id.in_(dag_ids)).all()}
        finished: dict[str, int] = {}
        for dag in plan.dags:
            run = limited_run(dag)
            if run is not None and dag.dag_id in models and models[dag.dag_id].is_paused and not dag.is_paused:
                finished[dag.dag_id] = (
                    session.query(func.count(TaskInstance.id))
                    .filter(
                        TaskInstance.dag_id == dag.dag_id,
                        TaskInstance.task_id == run.task_id,
                        TaskInstance.state.in_(sorted(RAN_STATES)),
                    )
                    .scalar()
                    or 0
                )
        changes = status_changes(plan, {dag_id: bool(m.is_paused) for dag_id, m in models.items()}, finished)
        for change in changes:
            if change.changed:
                models[change.dag_id].is_paused = change.paused
    return changes
