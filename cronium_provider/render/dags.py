"""Render a finished plan into Airflow DAG objects: the only layer that builds DAGs.

Rendering reads nothing but the plan and the validated records: no network, no metadata database, no
Variables. Secret values (env vars) are never put into a DAG: operators get the keys and read the values
at run time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import DAG, BaseOperator, Param

from cronium_provider.operators.actions import (
    CroniumEventResultOperator,
    CroniumTriggerEventOperator,
)
from cronium_provider.operators.http import CroniumHttpOperator
from cronium_provider.operators.remote import CroniumRemoteScriptOperator, server_conn_id
from cronium_provider.operators.script import CroniumScriptOperator
from cronium_provider.operators.tools import CroniumSendMessageOperator, CroniumToolActionOperator
from cronium_provider.operators.workflow import CroniumWorkflowResultOperator
from cronium_provider.plan.models import DagPlan, Plan, TaskPlan
from cronium_provider.plan.schedule import SchedulePlan
from cronium_provider.records.models import Event
from cronium_provider.records.validation import RecordSet

DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)
INPUT_PARAM = "input"
SERVER_POOL_PREFIX = "cronium_server_"


def airflow_schedule(schedule: SchedulePlan) -> str | timedelta | None:
    if schedule.kind == "cron":
        return schedule.cron
    if schedule.kind == "interval" and schedule.interval_seconds:
        return timedelta(seconds=schedule.interval_seconds)
    return None


def _event_metadata(event: Event) -> dict[str, Any]:
    """What ``cronium.event()`` returns: the record without its script, secrets or bookkeeping."""
    return {
        "id": event.id,
        "name": event.name,
        "description": event.description,
        "type": event.type.value,
        "status": event.status.value,
        "userId": event.user_id,
        "tags": list(event.tags),
        "runLocation": event.run_location.value,
        "triggerType": event.trigger_type.value,
        "timeoutValue": event.timeout_value,
        "timeoutUnit": event.timeout_unit.value,
        "retries": event.retries,
    }


def _common(task: TaskPlan) -> dict[str, Any]:
    args: dict[str, Any] = {
        "task_id": task.task_id,
        "task_display_name": task.display_name,
        "trigger_rule": task.trigger_rule,
        "retries": task.retries,
        "retry_delay": timedelta(seconds=task.retry_delay_seconds),
    }
    if task.execution_timeout_seconds:
        args["execution_timeout"] = timedelta(seconds=task.execution_timeout_seconds)
    return args


def _servers(task: TaskPlan, records: RecordSet) -> list[dict[str, str]]:
    """The event's servers (or the workflow's override) as ``{name, conn_id}``."""
    ids = task.details.get("server_ids") or list(task.server_ids)
    servers = []
    for server_id in ids:
        server = records.servers[int(server_id)]
        servers.append({"name": server.name, "conn_id": server.connection_id or server_conn_id(server.id)})
    return servers


def render_event_task(
    task: TaskPlan, event: Event, source: str, *, event_dag: bool, records: RecordSet | None = None
) -> BaseOperator:
    """The operator that runs one event (its DAG's ``run`` task, or a workflow node)."""
    args = _common(task)
    if event_dag:
        args["max_executions"] = event.max_executions
        args["execution_count"] = event.execution_count
    else:
        args["workflow_incoming"] = task.details.get("incoming", [])
    if task.operator == "script":
        args.update(
            language=event.type.value,
            script=event.content or "",
            event=_event_metadata(event),
            event_env_keys=list(task.env_keys),
            records_source=source,
        )
        if event.run_location.value != "REMOTE" or records is None:
            return CroniumScriptOperator(**args)
        servers = _servers(task, records)
        if len(servers) == 1:
            args["pool"] = SERVER_POOL_PREFIX + str(task.details.get("server_ids", task.server_ids)[0])
        return CroniumRemoteScriptOperator(servers=servers, **args)
    if task.operator == "http_request":
        return CroniumHttpOperator(
            method=event.http_method or "GET",
            url=event.http_url or "",
            headers=[(h.key, h.value) for h in event.http_headers],
            body=event.http_body,
            event=_event_metadata(event),
            **args,
        )
    config = event.tool_action_config
    assert config is not None  # validation guarantees it for TOOL_ACTION events
    return CroniumToolActionOperator(
        tool_type=config.tool_type,
        action_id=config.action_id,
        tool_id=config.tool_id,
        parameters=config.parameters,
        event=_event_metadata(event),
        **args,
    )


def render_action_task(task: TaskPlan, records: RecordSet) -> BaseOperator:
    args: dict[str, Any] = {
        "task_id": task.task_id,
        "task_display_name": task.display_name,
        "trigger_rule": task.trigger_rule,
    }
    condition_of = task.details.get("condition_of")
    if task.operator == "trigger_event":
        return CroniumTriggerEventOperator(
            trigger_dag_id=str(task.details["target_dag_id"]),
            condition_of=condition_of,
            **args,
        )
    if task.operator == "event_result":
        return CroniumEventResultOperator(**args)
    details = task.details
    return CroniumSendMessageOperator(
        tool_id=details["tool_id"],
        message=str(details.get("message") or ""),
        email_addresses=details.get("email_addresses"),
        email_subject=details.get("email_subject"),
        event=_event_metadata(records.events[int(details["event_id"])]),
        condition_of=condition_of,
        condition_source=details.get("condition_source"),
        event_incoming=details.get("event_incoming"),
        **args,
    )


def _dag(plan: DagPlan) -> DAG:
    start = datetime.fromisoformat(plan.schedule.start_date) if plan.schedule.start_date else DEFAULT_START
    doc = plan.description or ""
    if plan.schedule.note:
        doc += f"\n\nSchedule note: {plan.schedule.note}"
    return DAG(
        dag_id=plan.dag_id,
        dag_display_name=plan.name,
        description=(plan.description or plan.name)[:200],
        doc_md=doc or None,
        schedule=airflow_schedule(plan.schedule),
        start_date=start,
        catchup=False,
        max_active_runs=plan.max_active_runs,
        is_paused_upon_creation=plan.is_paused,
        tags=list(plan.tags),
        params={INPUT_PARAM: Param({}, type=["object", "null"], description="cronium.input() for this run")},
    )


def render_event_dag(plan: DagPlan, records: RecordSet) -> DAG:
    event = records.events[plan.record_id]
    source = records.origin("event", plan.record_id)
    with _dag(plan) as dag:
        tasks: dict[str, BaseOperator] = {}
        for task in plan.tasks:
            if task.event_id is not None:
                tasks[task.task_id] = render_event_task(task, event, source, event_dag=True, records=records)
            else:
                tasks[task.task_id] = render_action_task(task, records)
        for edge in plan.edges:
            tasks[edge.upstream] >> tasks[edge.downstream]
    return dag


def render_workflow_dag(plan: DagPlan, records: RecordSet) -> DAG:
    """One task per node (``node_<id>``), one edge per connection, and the ``workflow_result`` step."""
    with _dag(plan) as dag:
        tasks: dict[str, BaseOperator] = {}
        for task in plan.tasks:
            if task.operator == "workflow_result":
                tasks[task.task_id] = CroniumWorkflowResultOperator(
                    task_id=task.task_id,
                    task_display_name=task.display_name,
                    node_task_ids=task.details["nodes"],
                    leaf_task_ids=task.details["leaves"],
                    result_rule=task.details["result_rule"],
                )
                continue
            if task.event_id is None:  # a node's conditional action
                tasks[task.task_id] = render_action_task(task, records)
                continue
            event = records.events[task.event_id]
            tasks[task.task_id] = render_event_task(
                task, event, records.origin("event", task.event_id), event_dag=False, records=records
            )
        for edge in plan.edges:
            tasks[edge.upstream] >> tasks[edge.downstream]
    return dag


def render_plan(plan: Plan, records: RecordSet) -> dict[str, DAG]:
    """Every DAG of the plan, by dag id."""
    dags: dict[str, DAG] = {}
    for dag_plan in plan.dags:
        render = render_event_dag if dag_plan.kind == "event" else render_workflow_dag
        dags[dag_plan.dag_id] = render(dag_plan, records)
    return dags
