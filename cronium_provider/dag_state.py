"""``cronium-airflow apply-status``: the records' status (ACTIVE, PAUSED, DRAFT, ARCHIVED) onto existing DAGs.

A DAG's ``is_paused_upon_creation`` applies only when Airflow first sees it; this carries later status
changes to DAGs that already exist: ACTIVE unpauses, PAUSED pauses, and a DRAFT or ARCHIVED record (which
builds no DAG, so the DAG processor marks its DAG stale) has its old DAG paused, so that no run waiting in
the queue starts. It writes to Airflow's metadata database, never at parse time.
"""

from __future__ import annotations

from dataclasses import dataclass

from cronium_provider.plan.models import Plan


@dataclass(frozen=True)
class StatusChange:
    dag_id: str
    paused: bool
    reason: str


def status_changes(plan: Plan, paused_now: dict[str, bool]) -> list[StatusChange]:
    """What must change so that the existing DAGs (``paused_now``: dag id -> is_paused) follow the records."""
    changes: list[StatusChange] = []
    for dag in plan.dags:
        if dag.dag_id in paused_now and paused_now[dag.dag_id] != dag.is_paused:
            verb = "paused" if dag.is_paused else "unpaused"
            changes.append(StatusChange(dag.dag_id, dag.is_paused, f"{verb}: the record is {dag.status}"))
    for skipped in plan.not_built:
        if paused_now.get(skipped.dag_id) is False:
            changes.append(
                StatusChange(skipped.dag_id, True, f"paused: the record is {skipped.status} and builds no DAG")
            )
    return changes


def apply_status(plan: Plan) -> list[StatusChange]:
    """Pause or unpause the existing DAGs of the plan's records; returns what changed."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    dag_ids = [d.dag_id for d in plan.dags] + [s.dag_id for s in plan.not_built]
    with create_session() as session:
        models = {m.dag_id: m for m in session.query(DagModel).filter(DagModel.dag_id.in_(dag_ids)).all()}
        changes = status_changes(plan, {dag_id: bool(m.is_paused) for dag_id, m in models.items()})
        for change in changes:
            models[change.dag_id].is_paused = change.paused
    return changes
