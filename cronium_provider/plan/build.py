"""Build the plan from validated records: one DAG per buildable event and workflow."""

from __future__ import annotations

import re
from dataclasses import replace

from cronium_provider.plan.models import DagPlan, EdgePlan, Plan, SkippedRecord, TaskPlan
from cronium_provider.plan.schedule import UNIT_SECONDS, record_schedule
from cronium_provider.records.models import (
    SCRIPT_TYPES,
    ConditionalActionType,
    ConnectionType,
    Event,
    EventStatus,
    EventType,
    Workflow,
)
from cronium_provider.records.validation import RecordSet

BUILT_STATUSES = (EventStatus.ACTIVE, EventStatus.PAUSED)
DEFAULT_RETRY_DELAY_SECONDS = 30

ACTION_LISTS = (
    # (event attribute, task id prefix, trigger rule after the run, label)
    ("always_events", "always", "all_done", "always"),
    ("success_events", "on_success", "all_success", "on success"),
    ("fail_events", "on_failure", "all_failed", "on failure"),
    ("condition_events", "on_condition", "all_success", "on condition"),
)
ACTION_CONNECTION = {
    "always": ConnectionType.ALWAYS,
    "on_success": ConnectionType.ON_SUCCESS,
    "on_failure": ConnectionType.ON_FAILURE,
    "on_condition": ConnectionType.ON_CONDITION,
}
WORKFLOW_RESULT_TASK = "workflow_result"
# How each connection type decides, in words (the plan's edge ``rule``); enforced by the node itself.
CONNECTION_RULES = {
    "ALWAYS": "after the parent ends, whatever its result",
    "ON_SUCCESS": "only when the parent succeeded",
    "ON_FAILURE": "only when the parent failed",
    "ON_CONDITION": "only when the parent set its condition to true",
}

_TASK_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def event_dag_id(event_id: int) -> str:
    return f"cronium_event_{event_id}"


def workflow_dag_id(workflow_id: int) -> str:
    return f"cronium_workflow_{workflow_id}"


def node_task_id(node_id: str) -> str:
    return "node_" + _TASK_ID_UNSAFE.sub("_", node_id)


def _operator_for(event: Event) -> str:
    if event.type in SCRIPT_TYPES:
        return "script"
    if event.type is EventType.HTTP_REQUEST:
        return "http_request"
    return "tool_action"


def event_task(event: Event, task_id: str, trigger_rule: str = "all_success") -> TaskPlan:
    """The task that runs one event (its own DAG's ``run`` task, or a workflow node)."""
    details: dict[str, object] = {}
    if event.type is EventType.HTTP_REQUEST:
        details = {
            "method": (event.http_method or "GET").upper(),
            "url": event.http_url,
            "header_names": [h.key for h in event.http_headers],
            "has_body": bool(event.http_body),
        }
    elif event.type is EventType.TOOL_ACTION and event.tool_action_config is not None:
        cfg = event.tool_action_config
        details = {"tool_type": cfg.tool_type, "action_id": cfg.action_id, "tool_id": cfg.tool_id}
    return TaskPlan(
        task_id=task_id,
        display_name=event.name,
        operator=_operator_for(event),
        event_id=event.id,
        event_type=event.type.value,
        trigger_rule=trigger_rule,
        retries=event.retries,
        retry_delay_seconds=DEFAULT_RETRY_DELAY_SECONDS,
        execution_timeout_seconds=event.timeout_value * UNIT_SECONDS[event.timeout_unit],
        run_location=event.run_location.value,
        server_ids=tuple(event.server_ids),
        env_keys=tuple(v.key for v in event.env_vars),
        details=details,
    )


def _action_tasks(
    event: Event, source: str = "run", incoming: list[list[str]] | None = None
) -> tuple[list[TaskPlan], list[EdgePlan]]:
    """The event's conditional actions as tasks after ``source`` (its ``run`` task, or its workflow node)."""
    tasks: list[TaskPlan] = []
    edges: list[EdgePlan] = []
    task_prefix = "" if source == "run" else f"{source}__"
    for attribute, prefix, rule, label in ACTION_LISTS:
        for index, action in enumerate(getattr(event, attribute)):
            if action.type is ConditionalActionType.NONE:
                continue
            task_id = f"{task_prefix}{prefix}_{index}"
            if action.type is ConditionalActionType.SCRIPT:
                operator = "trigger_event"
                display = f"{label}: run event {action.target_event_id}"
                details: dict[str, object] = {"target_dag_id": event_dag_id(action.target_event_id or 0)}
            else:
                operator = "send_message"
                display = f"{label}: message via tool {action.tool_id}"
                details = {
                    "tool_id": action.tool_id,
                    "message": action.message or "",
                    "email_addresses": action.email_addresses,
                    "email_subject": action.email_subject,
                    "event_id": event.id,
                    "condition_source": source,
                }
                if incoming is not None:
                    details["event_incoming"] = incoming
            if prefix == "on_condition":
                details["condition_of"] = source
            tasks.append(
                TaskPlan(task_id=task_id, display_name=display, operator=operator, trigger_rule=rule, details=details)
            )
            kind = ACTION_CONNECTION[prefix].value
            edges.append(EdgePlan(source, task_id, kind, CONNECTION_RULES[kind]))
    if source == "run" and any(t.trigger_rule in ("all_done", "all_failed") for t in tasks):
        # a failure handled by an action must still fail the run, as it does in Cronium
        tasks.append(
            TaskPlan(task_id="result", display_name="event result", operator="event_result", trigger_rule="all_done")
        )
        edges.append(EdgePlan("run", "result", "RESULT", "after the event has ended; fails the run if it failed"))
    return tasks, edges


def _skipped(kind: str, dag_id: str, record_id: int, status: EventStatus, source: str) -> SkippedRecord:
    return SkippedRecord(
        dag_id=dag_id,
        kind=kind,
        record_id=record_id,
        status=status.value,
        reason=f"status {status.value}: only ACTIVE and PAUSED records become DAGs",
        source=source,
    )


def plan_event(event: Event, source: str) -> DagPlan:
    schedule = record_schedule(event)
    action_tasks, action_edges = _action_tasks(event)
    return DagPlan(
        dag_id=event_dag_id(event.id),
        kind="event",
        record_id=event.id,
        name=event.name,
        description=event.description,
        tags=("cronium", *[t for t in event.tags if t != "cronium"]),
        status=event.status.value,
        is_paused=event.status is not EventStatus.ACTIVE,
        schedule=schedule,
        source=source,
        tasks=(event_task(event, "run"), *action_tasks),
        edges=tuple(action_edges),
    )


def plan_workflow(workflow: Workflow, events: dict[int, Event], source: str) -> DagPlan:
    """Nodes become ``node_<id>`` tasks; a node with parents waits for all of them (``all_done``) and then
    checks Cronium's connection rules itself; a final ``workflow_result`` step records every node."""
    schedule = record_schedule(workflow)
    incoming: dict[str, list[tuple[str, str]]] = {}
    for conn in workflow.connections:
        incoming.setdefault(conn.target, []).append((node_task_id(conn.source), conn.connection_type.value))
    sources = {conn.source for conn in workflow.connections}
    tasks = []
    for node in workflow.nodes:
        parents = incoming.get(node.id, [])
        task = event_task(events[node.event_id], node_task_id(node.id), "all_done" if parents else "all_success")
        details = {**task.details, "node_id": node.id, "incoming": [list(p) for p in parents]}
        if workflow.override_event_servers:
            details["server_ids"] = list(workflow.override_server_ids)
        tasks.append(replace(task, details=details))
    leaves = [node_task_id(n.id) for n in workflow.nodes if n.id not in sources]
    action_edges: list[EdgePlan] = []
    for node in workflow.nodes:  # Cronium fires an event's conditional actions when it runs as a node too
        node_task = node_task_id(node.id)
        node_parents: list[list[str]] = [list(p) for p in incoming.get(node.id, [])]
        node_actions, node_edges = _action_tasks(events[node.event_id], node_task, node_parents)
        tasks.extend(node_actions)
        action_edges.extend(node_edges)
    tasks.append(
        TaskPlan(
            task_id=WORKFLOW_RESULT_TASK,
            display_name="workflow result",
            operator="workflow_result",
            trigger_rule="all_done",
            details={
                "result_rule": workflow.result_rule,
                "nodes": [node_task_id(n.id) for n in workflow.nodes],
                "leaves": leaves,
            },
        )
    )
    edges = [
        EdgePlan(
            node_task_id(c.source),
            node_task_id(c.target),
            c.connection_type.value,
            CONNECTION_RULES[c.connection_type.value],
        )
        for c in workflow.connections
    ]
    edges += action_edges
    edges += [EdgePlan(leaf, WORKFLOW_RESULT_TASK, "RESULT", "after every node has ended") for leaf in leaves]
    return DagPlan(
        dag_id=workflow_dag_id(workflow.id),
        kind="workflow",
        record_id=workflow.id,
        name=workflow.name,
        description=workflow.description,
        tags=("cronium", "cronium-workflow", *[t for t in workflow.tags if t not in ("cronium", "cronium-workflow")]),
        status=workflow.status.value,
        is_paused=workflow.status is not EventStatus.ACTIVE,
        schedule=schedule,
        source=source,
        tasks=tuple(tasks),
        edges=tuple(edges),
    )


def build_plan(records: RecordSet) -> Plan:
    """The plan for every valid record; DRAFT and ARCHIVED records are listed, not built."""
    plan = Plan()
    for event_id in sorted(records.events):
        event = records.events[event_id]
        source = records.origin("event", event_id)
        if event.status in BUILT_STATUSES:
            plan.dags.append(plan_event(event, source))
        else:
            plan.not_built.append(_skipped("event", event_dag_id(event_id), event_id, event.status, source))
    for wf_id in sorted(records.workflows):
        wf = records.workflows[wf_id]
        source = records.origin("workflow", wf_id)
        if wf.status in BUILT_STATUSES:
            plan.dags.append(plan_workflow(wf, records.events, source))
        else:
            plan.not_built.append(_skipped("workflow", workflow_dag_id(wf_id), wf_id, wf.status, source))
    return plan
