"""The operator for Cronium TOOL_ACTION events, and the guarded delivery every tool action goes through.

Each action goes through Cronium's steps: templating, ``{...parameters, ...input}`` (input wins, for
TOOL_ACTION events), per-action validation, then the resilience guard (rate limit, circuit breaker,
retry strategy) around the delivery. The guard's state lives in the store named by ``[cronium]
resilience_store`` (SQLite in ``$AIRFLOW_HOME`` by default, ``redis://...`` when workers span machines),
so every task process and worker shares it. An open circuit or an exhausted rate limit fails at once with
a message saying when to try again; the task's own retries then apply.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import Context

from cronium_provider.exceptions import CroniumInvalidParameter, InvalidCredentials
from cronium_provider.naming import VARIABLE_PREFIX, tool_conn_id
from cronium_provider.operators.event import CroniumEventOperator
from cronium_provider.runners.protocol import ActionRequest
from cronium_provider.tools.catalogue import DEFAULT_ACTION, canonical_action
from cronium_provider.tools.delivery import check_tool_use, sender, validate
from cronium_provider.tools.templates import iso_time, render
from cronium_provider.variables import VariableNamespace


def resilience_store_url() -> str | None:
    from airflow.providers.common.compat.sdk import conf

    value = conf.get("cronium", "resilience_store", fallback=None)
    return str(value) if value else None


def message_timezone() -> str:
    """The zone ``{{formatTime}}`` prints in: Cronium prints its server's local time, the zone of its
    schedules, so ``[cronium] timezone``, else Airflow's ``[core] default_timezone`` (``system``: local)."""
    from airflow.providers.common.compat.sdk import conf

    value = conf.get("cronium", "timezone", fallback=None) or conf.get("core", "default_timezone", fallback="UTC")
    return str(value or "UTC")


def deliver_tool_action(
    log: Any,
    *,
    conn_id: str,
    tool_type: str | None,
    action_id: str | None,
    parameters: Mapping[str, Any],
    event: Mapping[str, Any],
    run_input: Any,
    condition: bool | None,
    variable_prefix: str = VARIABLE_PREFIX,
    retry_strategy: str | None = None,
    overlay: Mapping[str, Any] | None = None,
    scope_variables_by_owner: bool = False,
) -> dict[str, Any]:
    """Template, validate and send one action through the resilience guard; Cronium's result object.

    ``parameters`` are Handlebars templates (:mod:`cronium_provider.tools.templates`) seeing ``event``,
    ``run_input`` and ``condition``; ``overlay`` (a TOOL_ACTION event's input) is laid over them once
    rendered, itself not rendered, and is also read by ``{{cronium.getVariables.KEY}}``, as Cronium does
    (apps/cronium-app/src/lib/scheduler/tool-action-executor.ts:308-344). With ``scope_variables_by_owner``
    those are the variables of the event's owner (``event['userId']``), as Cronium reads that user's
    (tool-action-executor.ts:309, event-handlers.ts:270). The connection must be a ``tool_type`` tool of the
    event's owner (:func:`~cronium_provider.tools.delivery.check_tool_use`); an ownerless one is refused
    while variables are scoped by owner (the records name several owners).
    """
    from airflow.sdk import BaseHook

    connection = BaseHook.get_connection(conn_id)
    tool_type = check_tool_use(conn_id, connection, tool_type, event, shared=not scope_variables_by_owner)
    action = canonical_action(tool_type, action_id or DEFAULT_ACTION.get(tool_type, "send-webhook"))
    namespace = VariableNamespace(variable_prefix, owner=event.get("userId"), scope_by_owner=scope_variables_by_owner)

    def variable(key: str) -> Any:
        from airflow.sdk import Variable

        return namespace.decode(Variable.get(namespace.airflow_key(key), default=None))

    params = render(
        dict(parameters),
        event=event,
        input=run_input,
        condition=condition,
        variable=variable,
        variables_overlay=overlay,
        timezone=message_timezone(),
    )
    if overlay:
        params.update(overlay)
    validate(tool_type, action, params)
    from cronium_provider.resilience import ErrorKind, ToolActionGuard, classify, store_from_url

    guard = ToolActionGuard(store_from_url(resilience_store_url()))
    send = sender(tool_type, action)
    started = time.monotonic()
    log.info("%s %s through %s", tool_type, action, conn_id)
    try:
        delivery = guard.run(
            lambda: send(conn_id, params),
            user_id=str(event.get("userId") or "default"),
            tool_type=tool_type,
            credential_id=conn_id,
            strategy=retry_strategy,
            on_retry=lambda attempt, exc, delay: log.warning(
                "attempt %d failed (%s); retrying in %.1f s", attempt, exc, delay
            ),
        )
    except Exception as exc:
        if classify(exc) is ErrorKind.AUTH and not isinstance(exc, InvalidCredentials):
            # the tool refused the credential: retrying the task with the same connection cannot help
            raise InvalidCredentials(f"{tool_type} refused the credential of connection {conn_id}: {exc}") from exc
        raise
    return {
        "actionId": action,
        "actionName": f"{tool_type} {action}",
        "executionTime": round(time.monotonic() - started, 3),
        "result": {"status": delivery.status, "detail": delivery.detail},
        "parameters": params,
        "timestamp": datetime.now(UTC).isoformat(),
    }


def request_conn_id(tool_type: str, config: Mapping[str, Any]) -> str:
    """The connection of an action a script asked for: its config's ``toolId`` when it names one
    (``cronium_tool_<toolId>``), else the tool type's default connection ``cronium_tool_<type>``."""
    tool_id = config.get("toolId", config.get("tool_id"))
    return tool_conn_id(tool_id if tool_id not in (None, "") else tool_type)


def carry_out_requests(
    log: Any,
    requests: Sequence[ActionRequest],
    *,
    event: Mapping[str, Any],
    variable_prefix: str = VARIABLE_PREFIX,
    scope_variables_by_owner: bool = False,
) -> list[dict[str, Any]]:
    """The tool actions a script asked for (``send_slack_message``, ``send_email``...), sent in order after it
    ended, each through the same guarded path as TOOL_ACTION events; one result per request, failed ones
    included (the script could not see them: the one difference from Cronium)."""
    results: list[dict[str, Any]] = []
    for request in requests:
        params = {k: v for k, v in request.config.items() if k not in ("toolId", "tool_id")}
        try:
            conn_id = request_conn_id(request.tool, request.config)  # a script's tool id: checked, never a path
            result = deliver_tool_action(
                log,
                conn_id=conn_id,
                tool_type=request.tool,
                action_id=request.action,
                parameters=params,
                event=event,
                run_input=None,
                condition=None,
                variable_prefix=variable_prefix,
                scope_variables_by_owner=scope_variables_by_owner,
            )
        except Exception as exc:
            log.error("in-script action %d (%s %s) failed: %s", request.line, request.tool, request.action, exc)
            results.append(
                {
                    "line": request.line,
                    "tool": request.tool,
                    "actionId": request.action,
                    "status": "FAILURE",
                    "error": f"{type(exc).__name__}: {exc}",
                }
            )
            continue
        log.info("in-script action %d (%s %s) sent", request.line, request.tool, request.action)
        results.append({"line": request.line, "tool": request.tool, "status": "SUCCESS", **result})
    return results


class CroniumToolActionOperator(CroniumEventOperator):
    """
    Run a Cronium tool action (Slack, Discord, Teams, email or a webhook) through the Airflow providers.

    The XCom ``return_value`` is ``{actionId, actionName, executionTime, result, parameters, timestamp}``.
    Every parameter of :class:`~cronium_provider.operators.event.CroniumEventOperator` applies, and:

    :param tool_type: ``slack``, ``discord``, ``teams``, ``email`` or ``webhook``; default: from the
        connection (its type, or its extra ``tool_type``).
    :param action_id: e.g. ``slack-send-message``; default: the tool's message action.
    :param tool_id: Cronium's tool id; the credential is the Airflow connection ``cronium_tool_<toolId>``.
    :param parameters: the action's parameters, Handlebars templates as in Cronium (``{{cronium.*}}``).
    :param conn_id: another connection than ``cronium_tool_<toolId>``.
    :param merge_input: lay the run's input over the parameters (Cronium does for TOOL_ACTION events).
    :param retry_strategy: ``standard`` (default), ``aggressive`` or ``conservative``.
    :param variable_prefix: the Airflow Variable key prefix of ``{{cronium.getVariable}}``.
    :param scope_variables_by_owner: ``{{cronium.getVariables.KEY}}`` reads the event owner's variable
        (``cronium_<userId>_<key>``).
    """

    ui_color = "#fff2cc"

    def __init__(
        self,
        *,
        tool_type: str | None = None,
        action_id: str | None = None,
        tool_id: int | str | None = None,
        parameters: Mapping[str, Any] | None = None,
        conn_id: str | None = None,
        merge_input: bool = True,
        retry_strategy: str | None = None,
        variable_prefix: str = VARIABLE_PREFIX,
        scope_variables_by_owner: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if conn_id is None and tool_id is None:
            raise CroniumInvalidParameter("a tool action needs tool_id (or conn_id)")
        self.tool_type = tool_type.lower() if tool_type else None
        self.action_id = action_id
        self.tool_id = tool_id
        self.parameters = dict(parameters or {})
        self.conn_id = conn_id or tool_conn_id(tool_id)
        self.merge_input = merge_input
        self.retry_strategy = retry_strategy
        self.variable_prefix = variable_prefix
        self.scope_variables_by_owner = scope_variables_by_owner

    def template_event(self) -> dict[str, Any]:
        """``cronium.event`` of a TOOL_ACTION event's templates: the run is under way, as Cronium says
        (apps/cronium-app/src/lib/scheduler/tool-action-executor.ts:316-324)."""
        return {
            **self.event,
            "status": "running",
            "duration": 0,
            "executionTime": iso_time(datetime.now(UTC)),
            "server": "local",
            "output": "",
        }

    def run_event(self, context: Context, run_input: Any) -> Any:
        overlay = dict(run_input) if self.merge_input and isinstance(run_input, Mapping) else None
        return deliver_tool_action(
            self.log,
            conn_id=self.conn_id,
            tool_type=self.tool_type,
            action_id=self.action_id,
            parameters=self.parameters,
            event=self.template_event(),
            run_input=run_input,
            condition=None,
            variable_prefix=self.variable_prefix,
            retry_strategy=self.retry_strategy,
            overlay=overlay,
            scope_variables_by_owner=self.scope_variables_by_owner,
        )
