"""Operators for Cronium tool actions: TOOL_ACTION events and ``SEND_MESSAGE`` conditional actions.

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

from airflow.sdk import BaseOperator

from cronium_provider.links import CroniumEventLink
from cronium_provider.operators.actions import require_condition
from cronium_provider.operators.base import check_max_executions, run_input
from cronium_provider.operators.workflow import incoming_pairs, node_input
from cronium_provider.tools.actions import (
    DEFAULT_ACTION,
    message_parameters,
    sender,
    tool_conn_id,
    tool_type_of_connection,
    validate,
)
from cronium_provider.tools.templates import render
from cronium_provider.variables import DEFAULT_PREFIX, VariableNamespace


def resilience_store_url() -> str | None:
    from airflow.providers.common.compat.sdk import conf

    value = conf.get("cronium", "resilience_store", fallback=None)
    return str(value) if value else None


class CroniumToolActionOperator(BaseOperator):
    """
    Run a Cronium tool action (Slack, Discord, Teams, email or a webhook) through the Airflow providers.

    The XCom ``return_value`` is ``{actionId, actionName, executionTime, result, parameters, timestamp}``.

    :param tool_type: ``slack``, ``discord``, ``teams``, ``email`` or ``webhook``; default: from the
        connection (its type, or its extra ``tool_type``).
    :param action_id: e.g. ``slack-send-message``; default: the tool's message action.
    :param tool_id: Cronium's tool id; the credential is the Airflow connection ``cronium_tool_<toolId>``.
    :param parameters: the action's parameters, with Cronium's ``{{cronium.*}}`` templates.
    :param event: the event's metadata, for ``{{cronium.event.*}}`` and the rate limit's user.
    :param conn_id: another connection than ``cronium_tool_<toolId>``.
    :param merge_input: lay the run's input over the parameters (Cronium does for TOOL_ACTION events).
    :param condition_of: run only if that task set its condition to true.
    :param condition_source: the task whose condition ``{{cronium.getCondition}}`` reads.
    """

    operator_extra_links = (CroniumEventLink(),)
    ui_color = "#fff2cc"

    def __init__(
        self,
        *,
        tool_type: str | None = None,
        action_id: str | None = None,
        tool_id: int | str | None = None,
        parameters: Mapping[str, Any] | None = None,
        event: Mapping[str, Any] | None = None,
        conn_id: str | None = None,
        merge_input: bool = True,
        condition_of: str | None = None,
        condition_source: str | None = None,
        retry_strategy: str | None = None,
        variable_prefix: str = DEFAULT_PREFIX,
        max_executions: int = 0,
        execution_count: int = 0,
        workflow_incoming: Sequence[Sequence[str]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if conn_id is None and tool_id is None:
            raise ValueError("a tool action needs tool_id (or conn_id)")
        self.tool_type = tool_type.lower() if tool_type else None
        self.action_id = action_id
        self.tool_id = tool_id
        self.parameters = dict(parameters or {})
        self.event = dict(event or {})
        self.conn_id = conn_id or tool_conn_id(tool_id)
        self.merge_input = merge_input
        self.condition_of = condition_of
        self.condition_source = condition_source
        self.retry_strategy = retry_strategy
        self.variable_prefix = variable_prefix
        self.max_executions = max_executions
        self.execution_count = execution_count
        self.workflow_incoming = incoming_pairs(workflow_incoming)

    def _input(self, context: Any) -> Any:
        if self.workflow_incoming is not None:
            return node_input(context, self.workflow_incoming)
        return run_input(context)

    def _parameters(self, tool_type: str, run_input_value: Any) -> dict[str, Any]:
        if self.merge_input and isinstance(run_input_value, Mapping):
            return {**self.parameters, **run_input_value}
        return dict(self.parameters)

    def execute(self, context: Any) -> Any:
        check_max_executions(context, self.max_executions, self.execution_count)
        require_condition(context, self.condition_of)
        value = self._input(context)
        tool_type = self.tool_type
        if tool_type is None:
            from airflow.sdk import BaseHook

            tool_type = tool_type_of_connection(BaseHook.get_connection(self.conn_id))
        action_id = self.action_id or DEFAULT_ACTION.get(tool_type, "send-webhook")
        condition = None
        if self.condition_source:
            condition = context["ti"].xcom_pull(task_ids=self.condition_source, key="condition") is True
        namespace = VariableNamespace(self.variable_prefix)

        def variable(key: str) -> Any:
            from airflow.sdk import Variable

            return namespace.decode(Variable.get(namespace.airflow_key(key), default=None))

        params = render(
            self._parameters(tool_type, value), event=self.event, input=value, condition=condition, variable=variable
        )
        validate(tool_type, action_id, params)
        from cronium_provider.resilience import ToolActionGuard, store_from_url

        guard = ToolActionGuard(store_from_url(resilience_store_url()))
        send = sender(tool_type, action_id)
        started = time.monotonic()
        self.log.info("%s %s through %s", tool_type, action_id, self.conn_id)
        delivery = guard.run(
            lambda: send(self.conn_id, params),
            user_id=str(self.event.get("userId") or "default"),
            tool_type=tool_type,
            credential_id=self.conn_id,
            strategy=self.retry_strategy,
            on_retry=lambda attempt, exc, delay: self.log.warning(
                "attempt %d failed (%s); retrying in %.1f s", attempt, exc, delay
            ),
        )
        return {
            "actionId": action_id,
            "actionName": f"{tool_type} {action_id}",
            "executionTime": round(time.monotonic() - started, 3),
            "result": {"status": delivery.status, "detail": delivery.detail},
            "parameters": params,
            "timestamp": datetime.now(UTC).isoformat(),
        }


class CroniumSendMessageOperator(CroniumToolActionOperator):
    """A ``SEND_MESSAGE`` conditional action: ``message`` through the tool ``toolId``.

    Email goes to ``email_addresses`` with ``email_subject``; Slack to the channel in ``email_addresses``;
    Discord and Teams post the message. The templates see the event that fired and its input.

    :param event_incoming: for an action of a workflow node, the node's incoming connections, so that
        ``{{cronium.input.*}}`` is the input that node ran with.
    """

    def __init__(
        self,
        *,
        message: str,
        email_addresses: str | None = None,
        email_subject: str | None = None,
        event_incoming: Sequence[Sequence[str]] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("merge_input", False)
        super().__init__(**kwargs)
        self.message = message
        self.email_addresses = email_addresses
        self.email_subject = email_subject
        self.event_incoming = incoming_pairs(event_incoming)

    def _input(self, context: Any) -> Any:
        if self.event_incoming is not None:
            return node_input(context, self.event_incoming)
        return run_input(context)

    def _parameters(self, tool_type: str, run_input_value: Any) -> dict[str, Any]:
        return message_parameters(tool_type, self.message, self.email_addresses, self.email_subject)
