"""Doctor findings that come from the records alone (no Airflow import): the folder as loaded, each record's
differences from Cronium, and what the records need from Airflow.

The notes apply "Differences from Cronium" (docs/differences.md) table to each record: only the rows where the provider
does something else than Cronium's code, and only for a record whose fields make the row apply to it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace
from itertools import chain
from pathlib import Path

from cronium_provider.doctor.findings import Finding, Needs
from cronium_provider.naming import tool_conn_id
from cronium_provider.plan.build import DEFAULT_RETRY_DELAY_SECONDS, build_plan
from cronium_provider.plan.models import Plan
from cronium_provider.plan.specs import (
    ContainerScriptSpec,
    SendMessageSpec,
    SSHScriptSpec,
    TaskSpec,
    ToolActionSpec,
)
from cronium_provider.records.errors import RecordError
from cronium_provider.records.models import (
    SCRIPT_TYPES,
    ConditionalAction,
    ConditionalActionType,
    Event,
    EventStatus,
    EventTriggerType,
    EventType,
    RunLocation,
    Workflow,
    WorkflowTriggerType,
)
from cronium_provider.records.schedules import ScheduleError
from cronium_provider.records.validation import RecordSet
from cronium_provider.settings import NO_NETWORK, CroniumSettings
from cronium_provider.tools.catalogue import TOOL_CONN_TYPES

DIFFERENCES = "Differences from Cronium in the docs (docs/differences.md)"
# A script that uses the SDK's classes (``cronium.Cronium()``, ``AsyncCronium``, ``new Cronium()``)
_SDK_CLASS = re.compile(r"\b(?:Async)?Cronium\s*\(")
# The languages with SDK classes (apps/runtime/runtime-helpers/{python/cronium.py,nodejs/cronium.js}; Bash has none)
_SDK_LANGUAGES = (EventType.PYTHON, EventType.NODEJS)


def _note(subject: str, message: str, fix: str = f"nothing to do; see {DIFFERENCES}") -> Finding:
    return Finding("difference", "note", subject, message, fix)


def _event_notes(event: Event, settings: CroniumSettings, own_dag: bool) -> list[Finding]:
    """``own_dag``: the event builds its own DAG (else it runs only as a workflow's node, where neither its
    schedule nor its ``maxExecutions`` applies: no DAG of its own to count or to overlap)."""
    subject = f"event {event.id}"
    notes: list[Finding] = []
    scheduled = event.status is EventStatus.ACTIVE and event.trigger_type is EventTriggerType.SCHEDULE
    if own_dag and event.max_executions > 0:
        notes.append(
            _note(
                subject,
                f"maxExecutions {event.max_executions}: the finished runs are counted and the DAG stops at the limit "
                "(Cronium never stores its count, so its limit is never reached); runs go one at a time (Cronium "
                "starts every slot's run, even while the last one runs); Cronium's Reset counter is "
                f"`cronium-airflow reset-counter {event.id}`, which counts only the runs finished since",
                f"to start the count again: cronium-airflow reset-counter {event.id}",
            )
        )
    elif own_dag and scheduled:
        notes.append(
            _note(
                subject,
                f"schedule: runs overlap up to [cronium] max_active_runs ({settings.max_active_runs}) at once "
                "(Cronium starts every slot's run, bounded only by its orchestrator's 5 jobs at once, all events "
                "together)",
                "set [cronium] max_active_runs to bound the runs of each DAG at once",
            )
        )
    if event.retries > 0:
        notes.append(
            _note(
                subject,
                f"retries {event.retries}: a failed run is tried again up to {event.retries} time(s), "
                f"{DEFAULT_RETRY_DELAY_SECONDS} s apart (Cronium hands retries to its orchestrator, which never "
                "applies them: a failed run is not tried again)",
                "set retries to 0 for Cronium's behaviour (one try)",
            )
        )
    if event.type in SCRIPT_TYPES:
        in_container = event.run_location is not RunLocation.REMOTE or not event.server_ids
        if in_container:
            network = (
                "no network ([cronium] script_network none)"
                if settings.script_network == NO_NETWORK
                else f"the Docker network {settings.script_network} ([cronium] script_network)"
            )
            image = settings.image_for(event.type.value)
            what = (
                "one Debian image for the three languages with Debian's packages (requests 2.28, aiohttp 3.8, "
                "axios 1.2, Node.js 18)"
                if image == CroniumSettings().image
                else "an image of your choice ([cronium] image or image_<language>): its packages are its own"
            )
            notes.append(
                _note(
                    subject,
                    f"{event.type.value} script in a container: {network}, where Cronium gives each job an internal "
                    f"network of its own; the image is {image}, {what}, "
                    "read-only root, $HOME on a tmpfs, where Cronium pins its own packages per language",
                    "set [cronium] script_network for a network, [cronium] image_"
                    f"{event.type.value.lower()} for another image",
                )
            )
        if event.type in _SDK_LANGUAGES and event.content and _SDK_CLASS.search(event.content):
            cronium = (
                "Cronium's need CRONIUM_EXECUTION_TOKEN and call its runtime API"
                if in_container
                else "Cronium's runner on a server has no such classes, only its cronium helper functions"
            )
            notes.append(
                _note(
                    subject,
                    "script uses the SDK's classes (Cronium(), AsyncCronium or new Cronium()): they work on the run "
                    f"folder's files, with no CRONIUM_EXECUTION_TOKEN or HTTP session ({cronium})",
                )
            )
        if any(_sends(a) for a in chain(event.success_events, event.fail_events)):
            notes.append(
                _note(
                    subject,
                    "output: a message's {{cronium.event.output}} is stdout (with --- STDERR --- on success) and "
                    "its error stderr, the last 64 KiB of each; a failed run with no stderr gets its error, not "
                    "Unknown error (Cronium: the job's logged output)",
                )
            )
    if event.type is EventType.HTTP_REQUEST:
        notes.append(
            _note(
                subject,
                "HTTP_REQUEST: the request is sent and its output is the answer's text (Cronium hands HTTP jobs to a "
                "container executor that has no handler for them)",
            )
        )
    config = event.tool_action_config
    if event.type is EventType.TOOL_ACTION and config is not None:
        notes.append(
            _note(
                subject,
                f"TOOL_ACTION {config.tool_type} {config.action_id}: the action is sent and its output is its result "
                "as JSON (Cronium hands tool-action jobs to a container executor that has no handler for them)",
            )
        )
        tool, params = config.tool_type.lower(), config.parameters
        json_param = {"slack": "blocks", "discord": "embeds"}.get(tool)
        if json_param and isinstance(params.get(json_param), str) and params[json_param]:
            notes.append(
                _note(
                    subject,
                    f"toolActionConfig.parameters.{json_param}: text that is no JSON fails the action and sends "
                    "nothing (Cronium reports the parse error and counts the action a success)",
                )
            )
        if tool == "teams" and config.action_id == "send-message" and params.get("webhookUrl"):
            notes.append(
                _note(
                    subject,
                    "toolActionConfig.parameters.webhookUrl: sent to only when on the connection's own scheme, host "
                    "and port, else refused and nothing sent (Cronium posts to any URL)",
                    f"set the connection {tool_conn_id(config.tool_id)}'s host to the Teams webhook's address",
                )
            )
        if tool == "teams" and config.action_id == "send-card" and params.get("webhookUrl"):
            notes.append(
                _note(
                    subject,
                    "toolActionConfig.parameters.webhookUrl: not used by send-card, the card goes to the "
                    "connection's URL (Cronium posts the card to webhookUrl)",
                    f"set the connection {tool_conn_id(config.tool_id)}'s host to that webhook's URL",
                )
            )
    if event.type is EventType.TOOL_ACTION or any(_sends(a) for a in _actions(event)):
        notes.append(
            _note(
                subject,
                "tool rate limits: a sliding 60 s window with the limits per tool type, and 100 calls an hour and "
                "1,000 a day per user and tool type (Cronium: a fixed 60 s window, the default 30 for every tool, "
                "an hourly quota that never binds)",
            )
        )
    for name, actions in (("alwaysEvents", event.always_events), ("conditionEvents", event.condition_events)):
        for index, action in enumerate(actions):
            if _sends(action):
                notes.append(
                    _note(
                        subject,
                        f"{name}[{index}]: the message gets the facts of the run that fired it (its status, output, "
                        "error and duration), where Cronium's says status success, with no output or error, even "
                        "after a failure",
                    )
                )
    return notes


def _workflow_notes(workflow: Workflow, settings: CroniumSettings) -> list[Finding]:
    if workflow.status is not EventStatus.ACTIVE or workflow.trigger_type is not WorkflowTriggerType.SCHEDULE:
        return []
    return [
        _note(
            f"workflow {workflow.id}",
            f"schedule: runs overlap up to [cronium] max_active_runs ({settings.max_active_runs}) at once "
            "(Cronium starts every slot's run, its nodes' jobs bounded only by its orchestrator's 5 jobs at once, "
            "all events together)",
            "set [cronium] max_active_runs to bound the runs of each DAG at once",
        )
    ]


def _actions(event: Event) -> Iterable[ConditionalAction]:
    return chain(event.always_events, event.success_events, event.fail_events, event.condition_events)


def _sends(action: ConditionalAction) -> bool:
    """A ``SEND_MESSAGE`` action that sends (a tool and a message; else it is no task, as in Cronium)."""
    return action.type is ConditionalActionType.SEND_MESSAGE and bool(action.message) and action.tool_id is not None


def record_notes(records: RecordSet, settings: CroniumSettings) -> list[Finding]:
    """For each record, what it will do differently from Cronium (severity ``note``)."""
    events = records.all_events
    notes = [
        note
        for event_id in sorted(events)
        for note in _event_notes(events[event_id], settings, own_dag=event_id in records.events)
    ]
    return notes + [
        note for wf_id in sorted(records.workflows) for note in _workflow_notes(records.workflows[wf_id], settings)
    ]


def _plan(records: RecordSet, settings: CroniumSettings) -> Plan:
    try:
        return build_plan(records, settings)
    except ScheduleError:  # a bad [cronium] timezone: the names and needs do not depend on it
        return build_plan(records, replace(settings, timezone="UTC"))


def _tasks(plan: Plan) -> list[tuple[str, bool, TaskSpec]]:
    """Each task of the plan's DAGs: its record (``event 12``), and whether that DAG's Cronium variables (and
    so its tools) are scoped by owner."""
    return [
        (f"{dag.kind} {dag.record_id}", dag.variables_scope == "owner", task) for dag in plan.dags for task in dag.tasks
    ]


def needs(records: RecordSet, settings: CroniumSettings, plan: Plan | None = None) -> Needs:
    """The tool connections, servers, pools and container runs the valid records need (as their DAGs' tasks
    name them). ``plan``: the records' plan when the caller has built it already (the DAG file's parse)."""
    found = Needs()

    def add(items: list[str], record: str) -> None:
        if record not in items:
            items.append(record)

    for record, scoped, task in _tasks(plan or _plan(records, settings)):
        if isinstance(task, ToolActionSpec | SendMessageSpec) and task.tool_id is not None:
            conn_id = tool_conn_id(task.tool_id)
            tool = task.tool_type.lower() if isinstance(task, ToolActionSpec) else None
            owner = task.event.get("userId")
            entry = found.tool_connections.setdefault(
                conn_id,
                {
                    "conn_type": TOOL_CONN_TYPES.get(tool or ""),
                    "tool": tool,
                    "records": [],
                    "owners": {},
                    "shared": True,
                },
            )
            if entry["tool"] is None and tool is not None:
                entry.update(tool=tool, conn_type=TOOL_CONN_TYPES.get(tool))
            add(entry["records"], record)
            entry["owners"][record] = None if owner is None or str(owner).strip() == "" else str(owner).strip()
            entry["shared"] = entry["shared"] and not scoped
        elif isinstance(task, SSHScriptSpec):
            for target in task.servers:
                server = records.servers[target.server_id]
                entry = found.servers.setdefault(
                    target.conn_id,
                    {"server_id": server.id, "host": server.address, "port": server.port, "records": []},
                )
                add(entry["records"], record)
            if task.pool is not None:
                add(found.pools.setdefault(task.pool, []), record)
        elif isinstance(task, ContainerScriptSpec):
            add(found.container_records, record)
            add(found.container_languages.setdefault(task.language, []), record)
    return found


def folder_findings(folder: Path, records: RecordSet | None, seconds: float, import_timeout: float) -> list[Finding]:
    """The records folder: missing or unreadable, each record left out (an error, ``RecordError``'s text) and
    each warning, and a parse time near Airflow's DAG file import timeout."""
    where = f"records folder {folder}"
    if not folder.exists():
        return [
            Finding(
                "records",
                "error",
                where,
                "does not exist: the DAG file builds no DAG from it",
                "create it, or point [cronium] records_dir (or $CRONIUM_RECORDS_DIR) at the records",
            )
        ]
    if not folder.is_dir() or not _readable(folder):
        return [
            Finding(
                "records",
                "error",
                where,
                "is not a folder the DAG processor can read",
                f"give the user Airflow runs as read access (chmod -R a+rX {folder})",
            )
        ]
    findings: list[Finding] = []
    if records is not None:
        findings += [_record_finding(error, "error") for error in records.errors]
        findings += [_record_finding(warning, "warning") for warning in records.warnings]
    if seconds > import_timeout / 2:
        findings.append(
            Finding(
                "records",
                "warning" if seconds < import_timeout else "error",
                where,
                f"loading and validating the records took {seconds:.1f} s, against Airflow's [core] "
                f"dagbag_import_timeout of {import_timeout:g} s: the DAG file's parse may time out",
                "raise [core] dagbag_import_timeout, or split the folder into shards (cronium-airflow dag-file "
                "--shard NAME)",
            )
        )
    return findings


def _readable(folder: Path) -> bool:
    try:
        next(iter(folder.iterdir()), None)
    except OSError:
        return False
    return True


def _record_finding(error: RecordError, severity: str) -> Finding:
    subject = f"{error.kind} {error.record_id}" if error.kind else error.path
    left_out = "left out: " if severity == "error" else ""
    return Finding(
        "records",
        "error" if severity == "error" else "warning",
        subject,
        f"{left_out}{error}",
        f"correct {'field ' + error.field if error.field else 'the record'} in {error.path}, then check it with "
        f"cronium-airflow validate {error.path}",
    )
