"""The plan: the DAGs to build, their arguments, tasks and edges, as frozen data (no Airflow import)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cronium_provider.plan.specs import TaskSpec
from cronium_provider.records.schedules import SchedulePlan

PLAN_FORMAT_VERSION = 1
# The start of a DAG whose record has no startTime (a date in the past: no run is made for it, catchup is off).
DEFAULT_START_DATE = "2024-01-01T00:00:00+00:00"


@dataclass(frozen=True)
class EdgePlan:
    upstream: str
    downstream: str
    connection_type: str  # ALWAYS | ON_SUCCESS | ON_FAILURE | ON_CONDITION (RESULT: the result step)
    rule: str = ""  # when the downstream task runs, in words


@dataclass(frozen=True)
class DagPlan:
    """One DAG to build from one event or workflow record."""

    dag_id: str
    kind: str  # event | workflow
    record_id: int
    name: str
    description: str | None
    tags: tuple[str, ...]
    status: str
    is_paused: bool  # the DAG's ``is_paused_upon_creation``: False, whatever the status (its schedule is off)
    schedule: SchedulePlan
    source: str
    tasks: tuple[TaskSpec, ...]
    edges: tuple[EdgePlan, ...] = ()
    max_active_runs: int = 1  # runs of the DAG at once (build.max_active_runs)
    catchup: bool = False
    # the DAG's start_date: a date in the past, so that a manual run is possible at once; the first
    # scheduled run is the timetable's (the record's startTime when still ahead, else the next slot)
    start_date: str = DEFAULT_START_DATE
    doc_md: str | None = None
    notes: tuple[str, ...] = ()  # what a user should know about this DAG (shown by ``plan``)
    # whose Cronium variables its tasks read and write: ``owner`` (each event owner's own,
    # ``cronium_<userId>_<key>``) or ``shared`` (``cronium_<key>``, one set for every event)
    variables_scope: str = "shared"

    def to_json(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "kind": self.kind,
            "record_id": self.record_id,
            "name": self.name,
            "description": self.description,
            "tags": list(self.tags),
            "status": self.status,
            "is_paused": self.is_paused,
            "schedule": self.schedule.to_json(),
            "source": self.source,
            "tasks": [task.to_json() for task in self.tasks],
            "edges": [asdict(edge) for edge in self.edges],
            "max_active_runs": self.max_active_runs,
            "catchup": self.catchup,
            "start_date": self.start_date,
            "doc_md": self.doc_md,
            "notes": list(self.notes),
            "variables_scope": self.variables_scope,
        }


@dataclass
class Plan:
    """Everything the factory would build from one set of records."""

    dags: list[DagPlan] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": PLAN_FORMAT_VERSION,
            "dags": [d.to_json() for d in self.dags],
            "not_built": [],  # kept for readers of the JSON: every valid record builds its DAG, whatever its status
        }
