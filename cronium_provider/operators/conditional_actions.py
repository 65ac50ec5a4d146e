"""The conditional actions that follow an event's run: start another event, or send a message."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import BaseOperator, Context

from cronium_provider.links import CroniumEventLink
from cronium_provider.naming import VARIABLE_PREFIX, tool_conn_id
from cronium_provider.operators.gating import (
    gated_input,
    incoming_pairs,
    require_action_due,
    require_condition,
    task_states,
)
from cronium_provider.states import FAILED_STATES, EventStatus, TaskState
from cronium_provider.tools.actions import deliver_tool_action
from cronium_provider.tools.catalogue import MESSAGE_TOOLS
from cronium_provider.tools.delivery import message_parameters
from cronium_provider.tools.templates import as_text, iso_time

# What Cronium puts in a message when its log of the run has none (scheduler/event-handlers.ts:49,97-98,289)
NO_OUTPUT = "No output available"
UNKNOWN_ERROR = "Unknown error"
LOCAL_SERVER = "Local"


class CroniumTriggerEventOperator(TriggerDagRunOperator):
    """A ``SCRIPT`` conditional action: start a new run of the target event's DAG, with no input.

    :param condition_of: when set, run only if that task set its condition to true.
    :param run_when: ``always``, ``success``, ``failure`` or ``condition``: after which outcomes of the
        event run ``event_task_id`` the action fires, as Cronium decides (see ``require_action_due``).
    :param event_task_id: the event run the action follows.
    """

    def __init__(
        self,
        *,
        condition_of: str | None = None,
        run_when: str | None = None,
        event_task_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.condition_of = condition_of
        self.run_when = run_when
        self.event_task_id = event_task_id

    def execute(self, context: Context) -> Any:
        if self.run_when is not None and self.event_task_id is not None:
            require_action_due(context, self.run_when, self.event_task_id)
        require_condition(context, self.condition_of)
        return super().execute(context)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _duration_ms(ti: Any, task_id: str, xcom: Mapping[str, Any]) -> int | None:
    """How long the task ran, in milliseconds: Airflow's duration of the finished task instance (its
    breadcrumb), else what the run measured (``metrics``, ``servers``)."""
    with contextlib.suppress(Exception):  # an execution API without breadcrumbs: the run's own measure
        for crumb in ti.get_task_breadcrumbs(dag_id=ti.dag_id, run_id=ti.run_id):
            if crumb.get("task_id") == task_id and crumb.get("map_index", -1) == -1:
                seconds = _number(crumb.get("duration"))
                if seconds is not None:
                    return round(seconds * 1000)
    metrics = xcom.get("metrics")
    if isinstance(metrics, Mapping) and _number(metrics.get("duration_seconds")) is not None:
        return round(float(metrics["duration_seconds"]) * 1000)
    servers = xcom.get("servers")
    if isinstance(servers, Mapping):
        times = [_number(s.get("duration_seconds")) for s in servers.values() if isinstance(s, Mapping)]
        known = [t for t in times if t is not None]
        if known:
            return round(max(known) * 1000)
    return None


def _server(xcom: Mapping[str, Any], failed_run: bool) -> str:
    """Where the run ran: a remote event's servers (those that failed, for a failed run), else ``Local``."""
    servers = xcom.get("servers")
    if not isinstance(servers, Mapping) or not servers:
        return LOCAL_SERVER
    names = [str(n) for n in servers]
    failed = [str(n) for n in xcom.get("failed_servers") or [] if str(n) in names]
    if failed_run and failed:
        names = failed
    elif not failed_run:
        names = [n for n in names if n not in failed] or names
    return ", ".join(names)


def _error(xcom: Mapping[str, Any]) -> str | None:
    """Why the run failed: its ``error`` XCom, else its servers' errors, else its exit code."""
    error = xcom.get("error")
    if error:
        return as_text(error)
    servers = xcom.get("servers")
    if isinstance(servers, Mapping):
        errors = [f"{name}: {s['error']}" for name, s in servers.items() if isinstance(s, Mapping) and s.get("error")]
        if errors:
            return "; ".join(errors)
    metrics = xcom.get("metrics")
    if isinstance(metrics, Mapping) and metrics.get("oom_killed"):
        return f"The script ran out of memory and was killed (exit code {metrics.get('exit_code')})"
    if isinstance(metrics, Mapping) and metrics.get("exit_code") not in (None, 0):
        return f"The script exited with code {metrics['exit_code']}"
    return None


# The XComs of an event run that its facts come from
FACT_XCOMS = ("return_value", "started_at", "error", "metrics", "servers", "failed_servers", "stdout", "stderr")
# How Cronium's log joins a successful run's stderr to its output
# (apps/cronium-app/src/app/api/internal/jobs/[jobId]/complete/route.ts:100-103)
STDERR_SEPARATOR = "\n--- STDERR ---\n"


def _logged_output(xcom: Mapping[str, Any], failed: bool) -> str:
    """The run's output as Cronium logs it: the script's stdout, with its stderr after
    :data:`STDERR_SEPARATOR` when it succeeded (a failed run's stderr is its error); for a run that left no
    log (a tool action that failed, a run that never started) its result as text, else ``No output
    available``."""
    stdout, stderr = xcom["stdout"], xcom["stderr"]
    if isinstance(stdout, str):
        return stdout + (STDERR_SEPARATOR + stderr if not failed and isinstance(stderr, str) and stderr else "")
    return as_text(xcom["return_value"]) or NO_OUTPUT


def _logged_error(xcom: Mapping[str, Any], failed: bool) -> str | None:
    """Why the run failed as Cronium logs it: the script's stderr (complete/route.ts:86-91); when it wrote
    none, the run's error (:func:`_error`), which says more than Cronium's ``Unknown error``."""
    stderr = xcom["stderr"]
    if failed and isinstance(stderr, str) and stderr:
        return stderr
    return _error(xcom) if failed else as_text(xcom["error"]) or None


def fired_run_facts(context: Context, task_id: str) -> dict[str, Any]:
    """The facts of the run ``task_id`` (same DAG run) that fired an action, as Cronium names them in
    ``cronium.event`` (apps/cronium-app/src/lib/scheduler/event-handlers.ts:42-59, 89-100, 280-301):
    ``status`` (``success``/``failure``), ``duration`` (ms), ``executionTime`` (when it started, ISO 8601),
    ``server``, ``output`` and, for a failed run, ``error``: the script's stdout and stderr as Cronium logs
    them (app/api/internal/jobs/[jobId]/complete/route.ts:79-114, see ``_logged_output``), from the run's
    ``stdout`` and ``stderr`` XComs.

    The start is the run's ``started_at`` XCom; without it, the end of the run (about now) less its duration.
    """
    ti = context["ti"]
    xcom: dict[str, Any] = {}
    for key in FACT_XCOMS:
        try:
            xcom[key] = ti.xcom_pull(task_ids=task_id, key=key)
        except Exception:  # a value that cannot be read is a fact the message goes without
            xcom[key] = None
    state = task_states(context, [task_id])[task_id]
    failed = state in FAILED_STATES
    status = EventStatus.FAILURE if failed else EventStatus.UNKNOWN
    facts: dict[str, Any] = {
        "status": (EventStatus.SUCCESS if state == TaskState.SUCCESS else status).value,
        "server": _server(xcom, failed),
        "output": _logged_output(xcom, failed),
    }
    duration = _duration_ms(ti, task_id, xcom)
    if duration is not None or failed:
        facts["duration"] = duration or 0
    started = xcom["started_at"]
    if isinstance(started, str) and started:
        try:
            facts["executionTime"] = iso_time(datetime.fromisoformat(started))
        except ValueError:
            facts["executionTime"] = started
    else:
        facts["executionTime"] = iso_time(datetime.now(UTC) - timedelta(milliseconds=duration or 0))
    error = _logged_error(xcom, failed)
    if failed:
        facts["error"] = error or UNKNOWN_ERROR
    elif error:
        facts["error"] = error
    return facts


class CroniumSendMessageOperator(BaseOperator):
    """
    A ``SEND_MESSAGE`` conditional action: ``message`` through the tool ``toolId``.

    Email goes to ``email_addresses`` with ``email_subject``; Slack to the channel in ``email_addresses``;
    Discord and Teams post the message. The message (and the subject) are Handlebars templates, as in
    Cronium: ``cronium.event`` is the event with the facts of the run that fired the action (the task
    ``condition_source`` of this DAG run, see :func:`fired_run_facts`): ``status``, ``duration``,
    ``executionTime``, ``server``, ``output``, ``error``; ``cronium.input`` its input, ``cronium.getCondition``
    its condition, ``cronium.getVariables.KEY`` a Cronium variable.

    :param tool_id: Cronium's tool id; the credential is the Airflow connection ``cronium_tool_<toolId>``.
    :param message: the message, a Handlebars template (``{{cronium.*}}``, ``{{#if}}``, ``{{formatDuration}}``...).
    :param email_addresses: recipients (email) or channel (Slack).
    :param email_subject: the subject of an email.
    :param event: the facts of the event that fired the action.
    :param conn_id: another connection than ``cronium_tool_<toolId>``.
    :param tool_type: the tool's type; default: from the connection.
    :param condition_of: run only if that task set its condition to true.
    :param condition_source: the event run that fired the action: its condition is ``{{cronium.getCondition}}``,
        its facts ``{{cronium.event.*}}``.
    :param event_incoming: for an action of a workflow node, the node's incoming connections, so that
        ``{{cronium.input.*}}`` is the input that node ran with.
    :param scope_variables_by_owner: ``{{cronium.getVariables.KEY}}`` reads the variable of the event's owner
        (``event['userId']``: ``cronium_<userId>_<key>``), as Cronium reads that user's (event-handlers.ts:270).
    """

    operator_extra_links = (CroniumEventLink(),)
    ui_color = "#fff2cc"

    def __init__(
        self,
        *,
        message: str,
        tool_id: int | str | None = None,
        email_addresses: str | None = None,
        email_subject: str | None = None,
        event: dict[str, Any] | None = None,
        conn_id: str | None = None,
        tool_type: str | None = None,
        condition_of: str | None = None,
        condition_source: str | None = None,
        event_incoming: Sequence[Sequence[str]] | None = None,
        run_when: str | None = None,
        event_task_id: str | None = None,
        retry_strategy: str | None = None,
        variable_prefix: str = VARIABLE_PREFIX,
        scope_variables_by_owner: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.message = message
        self.tool_id = tool_id
        self.email_addresses = email_addresses
        self.email_subject = email_subject
        self.event = dict(event or {})
        self.conn_id = conn_id or tool_conn_id(tool_id)
        self.tool_type = tool_type.lower() if tool_type else None
        self.condition_of = condition_of
        self.condition_source = condition_source
        self.event_incoming = incoming_pairs(event_incoming)
        self.run_when = run_when
        self.event_task_id = event_task_id
        self.retry_strategy = retry_strategy
        self.variable_prefix = variable_prefix
        self.scope_variables_by_owner = scope_variables_by_owner

    def execute(self, context: Context) -> Any:
        if self.run_when is not None and self.event_task_id is not None:
            require_action_due(context, self.run_when, self.event_task_id)
        require_condition(context, self.condition_of)
        value = gated_input(context, self.event_incoming)
        condition = None
        event = dict(self.event)
        source = self.condition_source or self.event_task_id
        if source:
            condition = context["ti"].xcom_pull(task_ids=source, key="condition") is True
            event.update(fired_run_facts(context, source))
        tool_type = self.tool_type
        if tool_type is None:
            from airflow.sdk import BaseHook

            from cronium_provider.tools.delivery import tool_type_of_connection

            tool_type = tool_type_of_connection(self.conn_id, BaseHook.get_connection(self.conn_id))
        if tool_type not in MESSAGE_TOOLS:
            # Cronium logs this and sends nothing (event-handlers.ts:261-266)
            self.log.error("Tool type %s does not support send message actions (%s)", tool_type, self.conn_id)
            return None
        return deliver_tool_action(
            self.log,
            conn_id=self.conn_id,
            tool_type=tool_type,
            action_id=None,
            parameters=message_parameters(
                tool_type,
                self.message,
                self.email_addresses,
                self.email_subject,
                event_name=str(event.get("name") or ""),
                succeeded=event.get("status") == EventStatus.SUCCESS,
            ),
            event=event,
            run_input=value,
            condition=condition,
            variable_prefix=self.variable_prefix,
            retry_strategy=self.retry_strategy,
            scope_variables_by_owner=self.scope_variables_by_owner,
        )
