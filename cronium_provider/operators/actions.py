"""Conditional actions of an event (run another event, send a message) and the event's result step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowSkipException

from cronium_provider.operators.workflow import incoming_pairs, node_input

FAILED_STATES = frozenset({"failed", "upstream_failed"})


def require_condition(context: Any, task_id: str | None) -> None:
    """Skip unless the task ``task_id`` set its condition to true (``cronium.setCondition(true)``)."""
    if task_id is None:
        return
    condition = context["ti"].xcom_pull(task_ids=task_id, key="condition")
    if condition is not True:
        raise AirflowSkipException(f"{task_id} did not set its condition to true (condition: {condition!r})")


class CroniumTriggerEventOperator(TriggerDagRunOperator):
    """A ``SCRIPT`` conditional action: start a new run of the target event's DAG, with no input.

    :param condition_of: when set, run only if that task set its condition to true.
    """

    def __init__(self, *, condition_of: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.condition_of = condition_of

    def execute(self, context: Any) -> Any:
        require_condition(context, self.condition_of)
        return super().execute(context)


class CroniumNotSupportedOperator(BaseOperator):
    """Stands for a Cronium feature this provider does not run yet; fails with a message saying so."""

    ui_color = "#f4cccc"

    def __init__(
        self,
        *,
        feature: str,
        condition_of: str | None = None,
        workflow_incoming: Sequence[Sequence[str]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.feature = feature
        self.condition_of = condition_of
        self.workflow_incoming = incoming_pairs(workflow_incoming)

    def execute(self, context: Any) -> Any:
        require_condition(context, self.condition_of)
        if self.workflow_incoming is not None:
            node_input(context, self.workflow_incoming)
        raise AirflowException(f"{self.feature} is not yet supported by airflow-provider-cronium")


class CroniumEventResultOperator(BaseOperator):
    """The event's result after its actions ran: fails the DAG run when the event's own task failed.

    Without it, a run whose failure was handled by an ``always`` or ``on failure`` action would end green.
    """

    template_fields: Sequence[str] = ()
    ui_color = "#eeeeee"

    def __init__(self, *, event_task_id: str = "run", **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.event_task_id = event_task_id

    def execute(self, context: Any) -> Any:
        ti = context["ti"]
        states = ti.get_task_states(dag_id=ti.dag_id, task_ids=[self.event_task_id], run_ids=[ti.run_id])
        state = str(states.get(ti.run_id, {}).get(self.event_task_id))
        if state in FAILED_STATES:
            raise AirflowException(f"The event's task '{self.event_task_id}' ended {state}; the run fails.")
        return state
