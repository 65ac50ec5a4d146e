"""The result steps: an event's (after its actions) and a workflow's (after every node)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context

from cronium_provider.exceptions import CroniumInvalidParameter, CroniumRunFailed
from cronium_provider.naming import EVENT_RUN_TASK
from cronium_provider.operators.gating import task_states
from cronium_provider.states import FAILED_STATES, TaskState


class CroniumEventResultOperator(BaseOperator):
    """The event's result after its actions ran: fails the DAG run when the event's own task failed.

    Without it, a run whose failure was handled by an ``always`` or ``on failure`` action would end green.
    """

    template_fields: Sequence[str] = ()
    ui_color = "#eeeeee"

    def __init__(self, *, event_task_id: str = EVENT_RUN_TASK, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.event_task_id = event_task_id

    def execute(self, context: Context) -> Any:
        state = task_states(context, [self.event_task_id])[self.event_task_id]
        if state in FAILED_STATES:
            raise CroniumRunFailed(f"The event's task '{self.event_task_id}' ended {state}; the run fails.")
        return state


class CroniumWorkflowResultOperator(BaseOperator):
    """The workflow's final step: each node's status and output in XCom, and the run's result.

    Under Cronium's rule (``result_rule="cronium"``) the run fails when any node that ran failed, even when
    an ``ON_FAILURE`` branch handled it; nodes never reached do not count. Under ``"airflow"`` it fails only
    when a leaf node failed, as an Airflow DAG run would. A workflow with no nodes fails with
    ``no_nodes_message``, as Cronium ends such a run as FAILURE.
    """

    ui_color = "#eeeeee"

    def __init__(
        self,
        *,
        node_task_ids: Sequence[str],
        leaf_task_ids: Sequence[str],
        result_rule: str = "cronium",
        no_nodes_message: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.no_nodes_message = no_nodes_message
        if result_rule not in ("cronium", "airflow"):
            raise CroniumInvalidParameter(f"result_rule {result_rule!r} must be 'cronium' or 'airflow'")
        self.node_task_ids = list(node_task_ids)
        self.leaf_task_ids = list(leaf_task_ids)
        self.result_rule = result_rule

    def execute(self, context: Context) -> Any:
        if self.no_nodes_message is not None:
            raise CroniumRunFailed(self.no_nodes_message)
        ti = context["ti"]
        states = task_states(context, self.node_task_ids)
        nodes: dict[str, Any] = {}
        for task_id in self.node_task_ids:
            output = (
                ti.xcom_pull(task_ids=task_id, key="return_value") if states[task_id] == TaskState.SUCCESS else None
            )
            nodes[task_id] = {"status": states[task_id], "output": output}
        ti.xcom_push(key="nodes", value=nodes)
        failed = [t for t in self.node_task_ids if states[t] == TaskState.FAILED]
        counted = failed if self.result_rule == "cronium" else [t for t in failed if t in self.leaf_task_ids]
        for task_id in self.node_task_ids:
            self.log.info("node %s: %s", task_id, states[task_id])
        if counted:
            raise CroniumRunFailed(
                f"Workflow failed: node(s) {', '.join(counted)} failed"
                + (
                    " (Cronium's rule: a handled failure still fails the workflow)"
                    if self.result_rule == "cronium"
                    else ""
                )
            )
        return TaskState.SUCCESS.value
