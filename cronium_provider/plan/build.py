"""Build the plan from validated records: one DAG per buildable event and workflow."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from cronium_provider.naming import (
    EVENT_RESULT_TASK,
    EVENT_RUN_TASK,
    WORKFLOW_RESULT_TASK,
    event_dag_id,
    node_task_id,
    server_conn_id,
    server_pool,
    workflow_dag_id,
)
from cronium_provider.plan.models import DagPlan, EdgePlan, Plan
from cronium_provider.plan.specs import (
    ActionSpec,
    ContainerScriptSpec,
    EventResultSpec,
    EventRunSpec,
    HttpRequestSpec,
    Incoming,
    SendMessageSpec,
    ServerTarget,
    SSHScriptSpec,
    TaskSpec,
    ToolActionSpec,
    TriggerEventSpec,
    WorkflowResultSpec,
)
from cronium_provider.records.index import owner_count
from cronium_provider.records.models import (
    SCRIPT_TYPES,
    ConditionalAction,
    ConditionalActionType,
    ConnectionType,
    Event,
    EventStatus,
    EventType,
    RunLocation,
    Workflow,
)
from cronium_provider.records.schedules import UNIT_SECONDS, SchedulePlan, record_schedule
from cronium_provider.records.validation import RecordSet
from cronium_provider.settings import SCOPE_AUTO, SCOPE_ON, CroniumSettings, scope_setting
from cronium_provider.states import ActionWhen

DEFAULT_SETTINGS = CroniumSettings()

DEFAULT_RETRY_DELAY_SECONDS = 30

ACTION_LISTS = (
    # (event attribute, task id prefix, when the action fires, label); always actions come first
    ("always_events", "always", ActionWhen.ALWAYS, "always"),
    ("success_events", "on_success", ActionWhen.SUCCESS, "on success"),
    ("fail_events", "on_failure", ActionWhen.FAILURE, "on failure"),
    ("condition_events", "on_condition", ActionWhen.CONDITION, "on condition"),
)
ACTION_CONNECTION = {
    "always": ConnectionType.ALWAYS,
    "on_success": ConnectionType.ON_SUCCESS,
    "on_failure": ConnectionType.ON_FAILURE,
    "on_condition": ConnectionType.ON_CONDITION,
}
# How each connection type decides, in words (the plan's edge ``rule``); enforced by the node itself.
NO_NODES_MESSAGE = "Workflow has no nodes to execute"
CONNECTION_RULES = {
    "ALWAYS": "after the parent ends, whatever its result",
    "ON_SUCCESS": "only when the parent succeeded",
    "ON_FAILURE": "only when the parent failed",
    "ON_CONDITION": "only when the parent set its condition to true",
}


def variables_scoped(setting: object, owners: int) -> bool:
    """Whether Cronium variables are scoped by owner: always (``true``), never (``false``), or (``auto``)
    when the records name more than one owner. Cronium keeps variables per user (its ``user_variables``
    table, unique on user and key); with one owner, as on a typical self-hosted Cronium, the shared names
    ``cronium_<key>`` are that owner's and nothing changes."""
    word = scope_setting(setting)
    return word == SCOPE_ON or (word == SCOPE_AUTO and owners > 1)


def _no_owner_note(events: list[Event], scoped: bool) -> tuple[str, ...]:
    """A DAG whose events have no owner while variables are scoped: they use the shared names."""
    unowned = sorted({e.id for e in events if e.user_id is None or str(e.user_id) == ""})
    if not scoped or not unowned:
        return ()
    which = ", ".join(str(i) for i in unowned)
    return (
        f"variables are scoped by owner, but event(s) {which} have no userId: they read and write the shared "
        "names cronium_<key>, and their scripts see every variable under cronium_ (give them a userId)",
    )


def event_facts(event: Event) -> dict[str, Any]:
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


def _server_targets(server_ids: list[int], records: RecordSet) -> tuple[ServerTarget, ...]:
    targets = []
    for server_id in server_ids:
        server = records.servers[server_id]  # validation guarantees every named server exists
        targets.append(ServerTarget(server.id, server.name, server_conn_id(server.id, server.connection_id)))
    return tuple(targets)


def event_task(
    event: Event,
    task_id: str,
    records: RecordSet,
    *,
    trigger_rule: str = "all_success",
    node_id: str | None = None,
    incoming: Incoming | None = None,
    override_server_ids: list[int] | None = None,
    scope_variables: bool = False,
) -> EventRunSpec:
    """The task that runs one event: its own DAG's ``run`` task, or (with ``node_id``) a workflow node;
    ``scope_variables``: its Cronium variables are its owner's (:func:`variables_scoped`)."""
    common: dict[str, Any] = {
        "task_id": task_id,
        "display_name": event.name,
        "trigger_rule": trigger_rule,
        "event_id": event.id,
        "event_type": event.type.value,
        "event": event_facts(event),
        "retries": event.retries,
        "retry_delay_seconds": DEFAULT_RETRY_DELAY_SECONDS,
        "execution_timeout_seconds": event.timeout_value * UNIT_SECONDS[event.timeout_unit],
        "run_location": event.run_location.value,
        "server_ids": tuple(event.server_ids),
        "env_keys": tuple(v.key for v in event.env_vars),
        "node_id": node_id,
        "workflow_incoming": incoming,
        "scope_variables_by_owner": scope_variables,
    }
    if node_id is None:
        common.update(max_executions=event.max_executions, execution_count=event.execution_count)
    if event.type in SCRIPT_TYPES:
        script: dict[str, Any] = {
            "language": event.type.value,
            "script": event.content or "",
            "records_source": records.origin("event", event.id),
        }
        server_ids = list(override_server_ids) if override_server_ids is not None else list(event.server_ids)
        if event.run_location is not RunLocation.REMOTE or not server_ids:
            return ContainerScriptSpec(**common, **script)  # REMOTE with no server: see event_notes
        servers = _server_targets(server_ids, records)
        return SSHScriptSpec(
            **common,
            **script,
            servers=servers,
            pool=server_pool(servers[0].server_id) if len(servers) == 1 else None,
            servers_overridden=override_server_ids is not None,
        )
    if event.type is EventType.HTTP_REQUEST:
        return HttpRequestSpec(
            **common,
            method=(event.http_method or "GET").upper(),
            url=event.http_url or "",
            headers=tuple((h.key, h.value) for h in event.http_headers),
            body=event.http_body,
        )
    config = event.tool_action_config
    assert config is not None  # validation guarantees it for TOOL_ACTION events
    return ToolActionSpec(
        **common,
        tool_type=config.tool_type,
        action_id=config.action_id,
        tool_id=config.tool_id,
        parameters=dict(config.parameters),
    )


def _noop(action: ConditionalAction) -> str | None:
    """Why Cronium does nothing for this action (lib/scheduler/event-handlers.ts:212-232, 387-390), or None."""
    if action.type is ConditionalActionType.SEND_MESSAGE and not action.message:
        return "a SEND_MESSAGE action with an empty message"
    if action.type is ConditionalActionType.SEND_MESSAGE and action.tool_id is None:
        return "a SEND_MESSAGE action with no toolId"
    if action.type is ConditionalActionType.SCRIPT and action.target_event_id is None:
        return "a SCRIPT action with no targetEventId"
    return None


def event_notes(event: Event, override_server_ids: list[int] | None = None) -> tuple[str, ...]:
    """What the DAG leaves out of the event, as Cronium does: no-op actions, env vars with an empty value;
    and a REMOTE script event with no server, which runs in a container as in Cronium
    (lib/scheduler/job-payload-builder.ts:133-145: a warning, then the container)."""
    notes: list[str] = []
    for attribute, prefix, _, _ in ACTION_LISTS:
        for index, action in enumerate(getattr(event, attribute)):
            reason = _noop(action)
            if reason is not None:
                notes.append(f"event {event.id}: {prefix}_{index} is {reason}, which Cronium skips; left out")
    for key in event.empty_env_keys:
        notes.append(f"event {event.id}: env var {key} has an empty value; Cronium does not set it, nor does this DAG")
    servers = override_server_ids if override_server_ids is not None else event.server_ids
    if event.type in SCRIPT_TYPES and event.run_location is RunLocation.REMOTE and not servers:
        notes.append(f"event {event.id} is REMOTE but names no server: it runs in a container, as in Cronium")
    return tuple(notes)


def _action_tasks(
    event: Event,
    source: str = EVENT_RUN_TASK,
    incoming: Incoming | None = None,
    scope_variables: bool = False,
    startable: Collection[int] | None = None,
) -> tuple[list[TaskSpec], list[EdgePlan]]:
    """The event's conditional actions as tasks after ``source`` (its ``run`` task, or its workflow node).

    As Cronium fires them when a run ends (apps/cronium-app/src/lib/services/job-service.ts:583-623): only
    after a run that happened, always actions first, then success or failure actions (a run cancelled by
    a person fires neither), and condition actions whenever the run set its condition to true. Each
    action waits for the run (``all_done``) and decides itself from the run's state and ``run_status``; a
    failed action is shown as failed but never changes the run's result: in an event's DAG the ``result``
    step, after every action, is the run's result. With ``startable`` (a workflow node's actions), a
    ``SCRIPT`` action whose target has no DAG is left out (the workflow's notes say why), as Cronium skips
    a target it cannot find (lib/scheduler/event-handlers.ts:420-425).
    """
    tasks: list[ActionSpec] = []
    edges: list[EdgePlan] = []
    task_prefix = "" if source == EVENT_RUN_TASK else f"{source}__"
    always: list[str] = []
    for attribute, prefix, when, label in ACTION_LISTS:
        for index, action in enumerate(getattr(event, attribute)):
            if action.type is ConditionalActionType.NONE or _noop(action) is not None:
                continue
            if action.type is ConditionalActionType.SCRIPT and startable is not None:
                if action.target_event_id not in startable:
                    continue
            task_id = f"{task_prefix}{prefix}_{index}"
            common: dict[str, Any] = {
                "task_id": task_id,
                "trigger_rule": "all_done",
                "condition_of": source if when is ActionWhen.CONDITION else None,
                "when": when.value,
                "event_task_id": source,
            }
            spec: ActionSpec
            if action.type is ConditionalActionType.SCRIPT:
                spec = TriggerEventSpec(
                    **common,
                    display_name=f"{label}: run event {action.target_event_id}",
                    target_dag_id=event_dag_id(action.target_event_id or 0),
                )
            else:
                spec = SendMessageSpec(
                    **common,
                    display_name=f"{label}: message via tool {action.tool_id}",
                    tool_id=action.tool_id,
                    message=action.message or "",
                    email_addresses=action.email_addresses,
                    email_subject=action.email_subject,
                    event_id=event.id,
                    event=event_facts(event),
                    condition_source=source,
                    event_incoming=incoming,
                    scope_variables_by_owner=scope_variables,
                )
            tasks.append(spec)
            kind = ACTION_CONNECTION[prefix].value
            edges.append(EdgePlan(source, task_id, kind, CONNECTION_RULES[kind]))
            if when is ActionWhen.ALWAYS:
                always.append(task_id)
            else:
                edges += [EdgePlan(first, task_id, "ORDER", "after the always actions") for first in always]
    result: list[TaskSpec] = list(tasks)
    if source == EVENT_RUN_TASK and tasks:
        result.append(
            EventResultSpec(
                task_id=EVENT_RESULT_TASK,
                display_name="event result",
                trigger_rule="all_done",
                event_task_id=EVENT_RUN_TASK,
            )
        )
        edges.append(
            EdgePlan(
                EVENT_RUN_TASK, EVENT_RESULT_TASK, "RESULT", "after the event has ended; fails the run if it failed"
            )
        )
        edges += [
            EdgePlan(t.task_id, EVENT_RESULT_TASK, "RESULT", "after the actions; their results do not count")
            for t in tasks
        ]
    return result, edges


def _doc(description: str | None, schedule: SchedulePlan, notes: tuple[str, ...] = ()) -> str | None:
    doc = description or ""
    if schedule.note:
        doc += f"\n\nSchedule note: {schedule.note}"
    for note in notes:
        doc += f"\n\nNote: {note}"
    return doc.strip() or None


def status_schedule(status: EventStatus, schedule: SchedulePlan) -> tuple[SchedulePlan, tuple[str, ...]]:
    """The DAG's schedule for a record's status, and a note for the DAG's doc.

    Only an ACTIVE record runs on its schedule (Cronium schedules ACTIVE events only and drops the schedule
    of any other: apps/cronium-app/src/lib/scheduler/scheduler.ts:422-430). A PAUSED, DRAFT or ARCHIVED
    record still runs when a person runs it (Cronium's Run checks no status:
    server/api/routers/events.ts:573-698, workflows.ts:275-310) and when a ``SCRIPT`` action starts it
    (lib/scheduler/event-handlers.ts:386-411): its DAG has no schedule and is never paused for its status.
    """
    if status is EventStatus.ACTIVE:
        return schedule, ()
    rule = ""
    if schedule.kind != "none":
        rule = f" (its rule, {schedule.cron or f'every {schedule.interval_seconds}s'}, makes no run)"
        schedule = SchedulePlan(kind="none", start_date=schedule.start_date, timezone=schedule.timezone)
    return schedule, (
        f"status {status.value}: no scheduled run{rule}; it runs when a person runs it or a SCRIPT action "
        "starts it, as in Cronium",
    )


def status_tags(status: EventStatus, own: tuple[str, ...], tags: Sequence[str]) -> tuple[str, ...]:
    """The DAG's tags: the provider's own, ``status:<STATUS>`` when the record is not ACTIVE (the DAG list
    shows which records run on no schedule), then the record's tags."""
    marks = own if status is EventStatus.ACTIVE else (*own, f"status:{status.value}")
    return (*marks, *[t for t in tags if t not in marks])


def max_active_runs(settings: CroniumSettings, max_executions: int = 0) -> int:
    """How many runs of one DAG may run at once: ``[cronium] max_active_runs``, as Cronium starts each slot's
    run while the previous one still runs (lib/scheduler/scheduler.ts:396-507 forgets the event once its job
    is queued); 1 for an event with ``maxExecutions``, so that no run starts before the previous one is
    counted and the limit holds exactly."""
    return 1 if max_executions > 0 else max(1, settings.max_active_runs)


def plan_event(
    event: Event,
    records: RecordSet,
    settings: CroniumSettings = DEFAULT_SETTINGS,
    *,
    scope_variables: bool = False,
) -> DagPlan:
    """The DAG of one event: its ``run`` task, then its conditional actions (and the result step).

    Whatever its status the DAG is built and not paused; only an ACTIVE event has its schedule
    (:func:`status_schedule`). ``settings``: the schedules' zone and ``max_active_runs``;
    ``scope_variables``: see :func:`build_plan`.
    """
    source = records.origin("event", event.id)
    schedule, notes = status_schedule(event.status, record_schedule(event, settings.schedule_timezone()))
    notes += event_notes(event) + _no_owner_note([event], scope_variables)
    action_tasks, action_edges = _action_tasks(event, scope_variables=scope_variables)
    return DagPlan(
        dag_id=event_dag_id(event.id),
        kind="event",
        record_id=event.id,
        name=event.name,
        description=event.description,
        tags=status_tags(event.status, ("cronium",), event.tags),
        status=event.status.value,
        is_paused=False,
        schedule=schedule,
        source=source,
        tasks=(event_task(event, EVENT_RUN_TASK, records, scope_variables=scope_variables), *action_tasks),
        edges=tuple(action_edges),
        max_active_runs=max_active_runs(settings, event.max_executions),
        doc_md=_doc(event.description, schedule, notes),
        notes=notes,
        variables_scope="owner" if scope_variables else "shared",
    )


def plan_workflow(
    workflow: Workflow,
    records: RecordSet,
    settings: CroniumSettings = DEFAULT_SETTINGS,
    *,
    scope_variables: bool = False,
) -> DagPlan:
    """Nodes become ``node_<id>`` tasks; a node with parents waits for all of them (``all_done``) and then
    checks Cronium's connection rules itself; a final ``workflow_result`` step records every node."""
    events = records.all_events
    source = records.origin("workflow", workflow.id)
    schedule, status_notes = status_schedule(workflow.status, record_schedule(workflow, settings.schedule_timezone()))
    incoming: dict[str, list[tuple[str, str]]] = {}
    for conn in workflow.connections:
        incoming.setdefault(conn.target, []).append((node_task_id(conn.source), conn.connection_type.value))
    sources = {conn.source for conn in workflow.connections}
    override = list(workflow.override_server_ids) if workflow.override_event_servers else None
    tasks: list[TaskSpec] = []
    for node in workflow.nodes:
        parents = incoming.get(node.id, [])
        tasks.append(
            event_task(
                events[node.event_id],
                node_task_id(node.id),
                records,
                trigger_rule="all_done" if parents else "all_success",
                node_id=node.id,
                incoming=tuple(parents),
                override_server_ids=override,
                scope_variables=scope_variables,
            )
        )
    leaves = [node_task_id(n.id) for n in workflow.nodes if n.id not in sources]
    action_edges: list[EdgePlan] = []
    for node in workflow.nodes:  # Cronium fires an event's conditional actions when it runs as a node too
        node_task = node_task_id(node.id)
        node_parents = tuple(incoming.get(node.id, []))
        node_actions, node_edges = _action_tasks(
            events[node.event_id], node_task, node_parents, scope_variables, startable=records.events
        )
        tasks.extend(node_actions)
        action_edges.extend(node_edges)
    tasks.append(
        WorkflowResultSpec(
            task_id=WORKFLOW_RESULT_TASK,
            display_name="workflow result",
            trigger_rule="all_done",
            result_rule=workflow.result_rule,
            no_nodes_message=None if workflow.nodes else NO_NODES_MESSAGE,
            node_task_ids=tuple(node_task_id(n.id) for n in workflow.nodes),
            leaf_task_ids=tuple(leaves),
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
    edges += [
        EdgePlan(t.task_id, WORKFLOW_RESULT_TASK, "RESULT", "after the actions; their results do not count")
        for t in tasks
        if isinstance(t, ActionSpec)
    ]
    notes = status_notes
    if not workflow.nodes:
        # Cronium ends the run as FAILURE, "Workflow has no nodes to execute" (lib/workflow-executor.ts:263-286)
        notes += (f"no nodes: every run ends as FAILURE ('{NO_NODES_MESSAGE}'), as in Cronium",)
    for event_id in dict.fromkeys(n.event_id for n in workflow.nodes):
        notes += event_notes(events[event_id], override)
        if event_id in records.dag_errors:  # its schedule and its own actions' problems leave out its DAG only
            problems = "; ".join(f"{e.field}: {e.message}" for e in records.dag_errors[event_id])
            notes += (f"event {event_id} has no DAG of its own ({problems}); its nodes here still run its script",)
    notes += _no_owner_note([events[n.event_id] for n in workflow.nodes], scope_variables)
    return DagPlan(
        dag_id=workflow_dag_id(workflow.id),
        kind="workflow",
        record_id=workflow.id,
        name=workflow.name,
        description=workflow.description,
        tags=status_tags(workflow.status, ("cronium", "cronium-workflow"), workflow.tags),
        status=workflow.status.value,
        is_paused=False,
        schedule=schedule,
        source=source,
        tasks=tuple(tasks),
        edges=tuple(edges),
        max_active_runs=max_active_runs(settings),
        doc_md=_doc(workflow.description, schedule, notes),
        notes=notes,
        variables_scope="owner" if scope_variables else "shared",
    )


def build_plan(records: RecordSet, settings: CroniumSettings = DEFAULT_SETTINGS) -> Plan:
    """The plan for every valid record, whatever its status (:func:`status_schedule`). Of ``settings``:
    ``timezone`` is the zone of every Cronium schedule (Cronium reads its rules in its server's local time);
    ``scope_variables_by_owner`` (``auto``, ``true``, ``false``) is decided over the whole record set
    (:func:`variables_scoped`, :func:`~cronium_provider.records.index.owner_count`) for every DAG alike;
    ``max_active_runs``: :func:`max_active_runs`."""
    plan = Plan()
    scoped = variables_scoped(settings.scope_variables_by_owner, owner_count(records))
    for event_id in sorted(records.events):
        plan.dags.append(plan_event(records.events[event_id], records, settings, scope_variables=scoped))
    for wf_id in sorted(records.workflows):
        plan.dags.append(plan_workflow(records.workflows[wf_id], records, settings, scope_variables=scoped))
    return plan
