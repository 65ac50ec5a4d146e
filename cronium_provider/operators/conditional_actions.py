"""The conditional actions that follow an event's run: start another event, or send a message."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import BaseOperator, Context

from cronium_provider.links import CroniumEventLink
from cronium_provider.naming import VARIABLE_PREFIX, tool_conn_id
from cronium_provider.operators.gating import gated_input, incoming_pairs, require_action_due, require_condition
from cronium_provider.operators.tool_action import deliver_tool_action
from cronium_provider.tools.delivery import message_parameters


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


class CroniumSendMessageOperator(BaseOperator):
    """
    A ``SEND_MESSAGE`` conditional action: ``message`` through the tool ``toolId``.

    Email goes to ``email_addresses`` with ``email_subject``; Slack to the channel in ``email_addresses``;
    Discord and Teams post the message. The templates see the event that fired, its input and condition.

    :param tool_id: Cronium's tool id; the credential is the Airflow connection ``cronium_tool_<toolId>``.
    :param message: the message, with Cronium's ``{{cronium.*}}`` templates.
    :param email_addresses: recipients (email) or channel (Slack).
    :param email_subject: the subject of an email.
    :param event: the facts of the event that fired the action.
    :param conn_id: another connection than ``cronium_tool_<toolId>``.
    :param tool_type: the tool's type; default: from the connection.
    :param condition_of: run only if that task set its condition to true.
    :param condition_source: the task whose condition ``{{cronium.getCondition}}`` reads.
    :param event_incoming: for an action of a workflow node, the node's incoming connections, so that
        ``{{cronium.input.*}}`` is the input that node ran with.
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

    def execute(self, context: Context) -> Any:
        if self.run_when is not None and self.event_task_id is not None:
            require_action_due(context, self.run_when, self.event_task_id)
        require_condition(context, self.condition_of)
        value = gated_input(context, self.event_incoming)
        condition = None
        if self.condition_source:
            condition = context["ti"].xcom_pull(task_ids=self.condition_source, key="condition") is True
        tool_type = self.tool_type
        if tool_type is None:
            from airflow.sdk import BaseHook

            from cronium_provider.tools.delivery import tool_type_of_connection

            tool_type = tool_type_of_connection(BaseHook.get_connection(self.conn_id))
        return deliver_tool_action(
            self.log,
            conn_id=self.conn_id,
            tool_type=tool_type,
            action_id=None,
            parameters=message_parameters(tool_type, self.message, self.email_addresses, self.email_subject),
            event=self.event,
            run_input=value,
            condition=condition,
            variable_prefix=self.variable_prefix,
            retry_strategy=self.retry_strategy,
        )
