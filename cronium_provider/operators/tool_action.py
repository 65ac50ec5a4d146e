"""The operator for Cronium TOOL_ACTION events; the delivery itself is ``cronium_provider.tools.actions``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import Context

from cronium_provider.exceptions import CroniumInvalidParameter
from cronium_provider.naming import VARIABLE_PREFIX, tool_conn_id
from cronium_provider.operators.event import CroniumEventOperator
from cronium_provider.states import EventStatus
from cronium_provider.tools.actions import deliver_tool_action
from cronium_provider.tools.templates import iso_time

__all__ = ["CroniumToolActionOperator"]


class CroniumToolActionOperator(CroniumEventOperator):
    """
    Run a Cronium tool action (Slack, Discord, Teams, email or a webhook) through the Airflow providers.

    The XCom ``return_value`` is Cronium's ``{actionId, actionName, executionTime, result, parameters,
    timestamp}`` (apps/cronium-app/src/lib/scheduler/tool-action-executor.ts:429-436): ``executionTime`` in
    milliseconds, ``result`` the action's own object (Slack ``{"ok": true}``, Teams ``{"success": true}``...).
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
            "status": EventStatus.RUNNING.value,
            "duration": 0,
            "executionTime": iso_time(datetime.now(UTC)),
            "server": "local",
            "output": "",
        }

    def run_event(self, context: Context, run_input: Any) -> Any:
        overlay = dict(run_input) if self.merge_input and isinstance(run_input, Mapping) else None
        result = deliver_tool_action(
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
        # the run's log as Cronium keeps it (tool-action-executor.ts:491-492): the result as indented JSON,
        # ``{{cronium.event.output}}`` of the messages this run fires; masked secrets stay masked
        from airflow.sdk._shared.secrets_masker import redact

        self.push_results(context, stdout=redact(json.dumps(result, indent=2, ensure_ascii=False)))
        return result
