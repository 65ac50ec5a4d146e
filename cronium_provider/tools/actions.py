"""The guarded path every tool action goes through: TOOL_ACTION events, SEND_MESSAGE actions, and the
actions a script asked for.

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
from typing import Any, Protocol

from cronium_provider.config import read_settings
from cronium_provider.exceptions import InvalidCredentials, ToolActionError
from cronium_provider.naming import VARIABLE_PREFIX, tool_conn_id
from cronium_provider.states import RunStatus
from cronium_provider.tools import google_sheets
from cronium_provider.tools.catalogue import DEFAULT_ACTION, SUPPORTED, canonical_action
from cronium_provider.tools.delivery import check_destination, check_tool_use, sender, validate
from cronium_provider.tools.notion import ACTION_NAMES as NOTION_ACTION_NAMES
from cronium_provider.tools.templates import iso_time, render
from cronium_provider.variables import VariableNamespace


class ActionRequest(Protocol):
    """A tool action a script asked for (:class:`cronium_provider.runners.protocol.ActionRequest`): its tool
    type, action id, parameters and line of ``actions.jsonl``. A protocol, so that tools import no runner."""

    @property
    def line(self) -> int: ...
    @property
    def tool(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def config(self) -> Mapping[str, Any]: ...


# ``actionName``: the name of Cronium's action (its plugins' ``name``; the generic webhook is the provider's)
ACTION_NAMES = {
    "slack-send-message": "Send Message",
    "discord-send-message": "Send Message",
    "send-message": "Send Message",
    "send-card": "Send Adaptive Card",
    "send-email": "Send Email",
    **google_sheets.NAMES,
    "create-card": "Create Card",
    "move-card": "Move Card",
    "add-checklist": "Add Checklist",
    **NOTION_ACTION_NAMES,
}


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

    settings = read_settings()
    connection = BaseHook.get_connection(conn_id)
    tool_type = check_tool_use(conn_id, connection, tool_type, event, shared=not scope_variables_by_owner)
    if not action_id and tool_type in SUPPORTED and tool_type not in DEFAULT_ACTION:
        # Cronium's SEND_MESSAGE knows a message action of email, Slack, Discord and Teams alone
        # (apps/cronium-app/src/lib/scheduler/event-handlers.ts:251-266)
        raise ToolActionError(f"Tool type {tool_type} does not support send message actions (connection {conn_id})")
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
        # ``{{formatTime}}`` prints in Cronium's server's local time, the zone of its schedules: ``[cronium]
        # timezone``, else Airflow's ``[core] default_timezone`` (``system``: local)
        timezone=settings.timezone,
    )
    if overlay:
        params.update(overlay)
    validate(tool_type, action, params)
    check_destination(conn_id, tool_type, action, params)
    from cronium_provider.resilience import ErrorKind, ToolActionGuard, classify, store_from_url

    guard = ToolActionGuard(store_from_url(settings.resilience_store))
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
    # Cronium's shape (apps/cronium-app/src/lib/scheduler/tool-action-executor.ts:413-436): the time of the
    # guarded call in milliseconds, and the action's own result object
    return {
        "actionId": action,
        "actionName": ACTION_NAMES.get(action, action),
        "executionTime": round((time.monotonic() - started) * 1000),
        "result": delivery,
        "parameters": params,
        "timestamp": iso_time(datetime.now(UTC)),
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
                    "status": RunStatus.FAILURE.value,
                    "error": f"{type(exc).__name__}: {exc}",
                }
            )
            continue
        log.info("in-script action %d (%s %s) sent", request.line, request.tool, request.action)
        results.append({"line": request.line, "tool": request.tool, "status": RunStatus.SUCCESS.value, **result})
    return results
