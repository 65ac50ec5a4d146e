"""Render a finished plan into Airflow DAGs: a table from spec type to operator class, nothing decided here.

Rendering reads nothing but the plan: no record, no network, no metadata database, no Variables. Secret
values (env vars) are never in a DAG: operators get the keys and read the values at run time.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Iterator, Mapping
from datetime import datetime
from functools import cache

from airflow.sdk import DAG, BaseOperator, Param

from cronium_provider.naming import INPUT_PARAM
from cronium_provider.plan.models import DagPlan, Plan
from cronium_provider.plan.specs import (
    ContainerScriptSpec,
    EventResultSpec,
    HttpRequestSpec,
    SendMessageSpec,
    SSHScriptSpec,
    TaskSpec,
    ToolActionSpec,
    TriggerEventSpec,
    WorkflowResultSpec,
)
from cronium_provider.records.schedules import SchedulePlan
from cronium_provider.timetables import CroniumTimetable

log = logging.getLogger("airflow.cronium.render")


class _OperatorTable(Mapping[type[TaskSpec], type[BaseOperator]]):
    """Spec type -> operator class, each operator's module imported when a DAG first needs it.

    A worker parses the DAG file before every task and renders only that task's DAG: importing every
    operator module there (the HTTP provider's hook and ``aiohttp``, the standard provider's
    ``TriggerDagRunOperator``) would cost each task start a tenth of a second or more of CPU for nothing.
    """

    def __init__(self, rows: Mapping[type[TaskSpec], str]):
        self._rows = dict(rows)
        self._classes: dict[type[TaskSpec], type[BaseOperator]] = {}

    def __getitem__(self, spec: type[TaskSpec]) -> type[BaseOperator]:
        found = self._classes.get(spec)
        if found is None:
            module, _, name = self._rows[spec].rpartition(".")
            found = self._classes[spec] = getattr(importlib.import_module(module), name)
        return found

    def __iter__(self) -> Iterator[type[TaskSpec]]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


# One row per kind of task: a new kind is one spec, one operator and one row here.
OPERATORS: Mapping[type[TaskSpec], type[BaseOperator]] = _OperatorTable(
    {
        ContainerScriptSpec: "cronium_provider.operators.container_script.CroniumScriptOperator",
        SSHScriptSpec: "cronium_provider.operators.ssh_script.CroniumRemoteScriptOperator",
        HttpRequestSpec: "cronium_provider.operators.http.CroniumHttpOperator",
        ToolActionSpec: "cronium_provider.operators.tool_action.CroniumToolActionOperator",
        TriggerEventSpec: "cronium_provider.operators.conditional_actions.CroniumTriggerEventOperator",
        SendMessageSpec: "cronium_provider.operators.conditional_actions.CroniumSendMessageOperator",
        EventResultSpec: "cronium_provider.operators.results.CroniumEventResultOperator",
        WorkflowResultSpec: "cronium_provider.operators.results.CroniumWorkflowResultOperator",
    }
)


def render_schedule(schedule: SchedulePlan) -> CroniumTimetable | None:
    """The DAG's timetable: Cronium's rule in the plan's zone and its startTime; None for manual DAGs."""
    if schedule.kind == "none":
        return None
    return CroniumTimetable(
        cron=schedule.cron,
        interval_seconds=schedule.interval_seconds,
        timezone=schedule.timezone,
        start_time=schedule.start_date,
    )


class SpecMismatch(TypeError):
    """A task spec whose arguments its operator does not take: a bug in the provider, never a record's
    problem, so it is not caught as one: it fails the whole DAG file, and Airflow shows it as an import error
    (rather than every DAG with a task of that kind quietly missing)."""


@cache
def _signature(operator: type[BaseOperator]) -> tuple[frozenset[str], frozenset[str]] | None:
    """The keyword arguments an operator takes (its own and every base class's, ``BaseOperator`` refusing any
    other), and those it requires; None for a class that is no ``BaseOperator``."""
    if not (isinstance(operator, type) and issubclass(operator, BaseOperator)):
        return None
    taken: set[str] = set()
    for cls in operator.__mro__:
        init = vars(cls).get("__init__")
        if init is None or cls is object:
            continue
        taken.update(
            name
            for name, p in inspect.signature(init).parameters.items()
            if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        )
    required = {
        name
        for name, p in inspect.signature(operator.__init__).parameters.items()
        if name != "self" and p.default is p.empty and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }
    return frozenset(taken), frozenset(required)


def render_task(spec: TaskSpec) -> BaseOperator:
    """The operator for one task spec (inside a ``with DAG(...)`` block). Arguments the operator does not
    take, or a required one missing, raise :class:`SpecMismatch`."""
    operator = OPERATORS[type(spec)]
    arguments = spec.arguments()
    signature = _signature(operator)
    taken, required = signature if signature is not None else (frozenset(arguments), frozenset())
    unknown, missing = sorted(set(arguments) - taken), sorted(required - set(arguments))
    if unknown or missing:
        raise SpecMismatch(
            f"Cronium provider bug, not a record problem: {type(spec).__name__} (task {spec.task_id}) does not fit "
            f"{operator.__module__}.{operator.__qualname__}: "
            + "; ".join(
                part
                for part in (
                    f"arguments it does not take: {', '.join(unknown)}" if unknown else "",
                    f"required arguments missing: {', '.join(missing)}" if missing else "",
                )
                if part
            )
        )
    return operator(**arguments)


def render_dag(plan: DagPlan) -> DAG:
    """One DAG: the arguments the plan computed, one operator per task spec, one dependency per edge."""
    with DAG(
        dag_id=plan.dag_id,
        dag_display_name=plan.name,
        description=(plan.description or plan.name)[:200],
        doc_md=plan.doc_md,
        schedule=render_schedule(plan.schedule),
        start_date=datetime.fromisoformat(plan.start_date),
        catchup=plan.catchup,
        max_active_runs=plan.max_active_runs,
        is_paused_upon_creation=plan.is_paused,
        tags=list(plan.tags),
        params={INPUT_PARAM: Param({}, type=["object", "null"], description="cronium.input() for this run")},
    ) as dag:
        tasks = {spec.task_id: render_task(spec) for spec in plan.tasks}
        for edge in plan.edges:
            tasks[edge.upstream] >> tasks[edge.downstream]
    return dag


def render_plan(plan: Plan) -> dict[str, DAG]:
    """Every DAG of the plan, by dag id. A DAG that fails to render is logged with its record's file and id
    and left out: every other DAG still appears (one record never takes the DAG file down). A spec that does
    not fit its operator (:class:`SpecMismatch`) is the provider's bug, not the record's: it is raised."""
    dags: dict[str, DAG] = {}
    for dag_plan in plan.dags:
        try:
            dags[dag_plan.dag_id] = render_dag(dag_plan)
        except SpecMismatch:
            raise
        except Exception as exc:
            log.error(
                "Cronium record left out: %s: %s %s: cannot build DAG %s: %s: %s",
                dag_plan.source,
                dag_plan.kind,
                dag_plan.record_id,
                dag_plan.dag_id,
                type(exc).__name__,
                exc,
            )
    return dags
