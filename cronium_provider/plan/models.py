"""The plan: pure data describing the DAGs to build (no Airflow import), serialisable as JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cronium_provider.plan.schedule import SchedulePlan

PLAN_FORMAT_VERSION = 1


@dataclass(frozen=True)
class TaskPlan:
    """One Airflow task: what it runs and how it is triggered."""

    task_id: str
    display_name: str
    operator: str  # script | http_request | tool_action | trigger_event | send_message
    event_id: int | None = None
    event_type: str | None = None
    trigger_rule: str = "all_success"
    retries: int = 0
    retry_delay_seconds: int = 30
    execution_timeout_seconds: int | None = None
    run_location: str | None = None
    server_ids: tuple[int, ...] = ()
    env_keys: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)


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
    is_paused: bool
    schedule: SchedulePlan
    source: str
    tasks: tuple[TaskPlan, ...]
    edges: tuple[EdgePlan, ...] = ()
    max_active_runs: int = 1
    catchup: bool = False

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["schedule"] = self.schedule.to_json()
        return data


@dataclass(frozen=True)
class SkippedRecord:
    """A valid record that builds no DAG (status DRAFT or ARCHIVED)."""

    dag_id: str
    kind: str
    record_id: int
    status: str
    reason: str
    source: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Plan:
    """Everything the factory would build from one set of records."""

    dags: list[DagPlan] = field(default_factory=list)
    not_built: list[SkippedRecord] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": PLAN_FORMAT_VERSION,
            "dags": [d.to_json() for d in self.dags],
            "not_built": [s.to_json() for s in self.not_built],
        }
