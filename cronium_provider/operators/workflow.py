"""Cronium's workflow semantics on top of Airflow: which node runs, with what input, and the run's result.

Every node after a start node has the trigger rule ``all_done``: it waits until each parent has ended
(succeeded, failed or been skipped), then decides for itself, as Cronium's executor does, whether every
incoming connection is satisfied. If one is not, the node is skipped, and so are the nodes that only it
could enable. The decision reads the parents' real task states and their ``condition`` XCom.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowSkipException

from cronium_provider.operators.base import run_input

SUCCESS = "success"
FAILED = "failed"
RAN_STATES = frozenset({SUCCESS, FAILED})


def incoming_pairs(value: Sequence[Sequence[str]] | None) -> list[tuple[str, str]] | None:
    """Normalise ``workflow_incoming`` (lists survive DAG serialisation as lists, not tuples)."""
    return None if value is None else [(str(parent), str(kind)) for parent, kind in value]


def _states(context: Any, task_ids: Sequence[str]) -> dict[str, str]:
    ti = context["ti"]
    found = ti.get_task_states(dag_id=ti.dag_id, task_ids=list(task_ids), run_ids=[ti.run_id])
    per_run = found.get(ti.run_id, {})
    return {task_id: str(per_run.get(task_id)) for task_id in task_ids}


def connection_satisfied(connection: str, parent_state: str, condition: Any) -> bool:
    """Cronium's rule for one incoming connection, given how its parent ended."""
    if parent_state not in RAN_STATES:  # skipped (never reached) parents satisfy nothing
        return False
    if connection == "ALWAYS":
        return True
    if connection == "ON_SUCCESS":
        return parent_state == SUCCESS
    if connection == "ON_FAILURE":
        return parent_state == FAILED
    if connection == "ON_CONDITION":
        return condition is True
    raise ValueError(f"unknown connection type {connection!r}")


def node_input(context: Any, incoming: Sequence[tuple[str, str]]) -> Any:
    """Run the node only if every incoming connection is satisfied; return its ``cronium.input()``.

    The input is the output of the last successful parent (in connection order) whose output is not null;
    an output that is not an object arrives as ``{}``; with none, the workflow's initial input.
    """
    if not incoming:
        return run_input(context)
    ti = context["ti"]
    parents = list(dict.fromkeys(task_id for task_id, _ in incoming))
    states = _states(context, parents)
    unsatisfied = []
    for parent, connection in incoming:
        condition = ti.xcom_pull(task_ids=parent, key="condition") if connection == "ON_CONDITION" else None
        if not connection_satisfied(connection, states[parent], condition):
            unsatisfied.append(f"{parent} ({connection}, parent {states[parent]})")
    if unsatisfied:
        raise AirflowSkipException("Connection(s) not satisfied: " + ", ".join(unsatisfied))
    chosen: Any = None
    for parent in parents:
        if states[parent] != SUCCESS:
            continue
        output = ti.xcom_pull(task_ids=parent, key="return_value")
        if output is not None:
            chosen = output if isinstance(output, dict) else {}
    return chosen if chosen is not None else run_input(context)


class CroniumWorkflowResultOperator(BaseOperator):
    """The workflow's final step: each node's status and output in XCom, and the run's result.

    Under Cronium's rule (``result_rule="cronium"``) the run fails when any node that ran failed, even when
    an ``ON_FAILURE`` branch handled it; nodes never reached do not count. Under ``"airflow"`` it fails only
    when a leaf node failed, as an Airflow DAG run would.
    """

    ui_color = "#eeeeee"

    def __init__(
        self,
        *,
        node_task_ids: Sequence[str],
        leaf_task_ids: Sequence[str],
        result_rule: str = "cronium",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        if result_rule not in ("cronium", "airflow"):
            raise ValueError(f"result_rule {result_rule!r} must be 'cronium' or 'airflow'")
        self.node_task_ids = list(node_task_ids)
        self.leaf_task_ids = list(leaf_task_ids)
        self.result_rule = result_rule

    def execute(self, context: Any) -> Any:
        ti = context["ti"]
        states = _states(context, self.node_task_ids)
        nodes: dict[str, Any] = {}
        for task_id in self.node_task_ids:
            output = ti.xcom_pull(task_ids=task_id, key="return_value") if states[task_id] == SUCCESS else None
            nodes[task_id] = {"status": states[task_id], "output": output}
        ti.xcom_push(key="nodes", value=nodes)
        failed = [t for t in self.node_task_ids if states[t] == FAILED]
        counted = failed if self.result_rule == "cronium" else [t for t in failed if t in self.leaf_task_ids]
        for task_id in self.node_task_ids:
            self.log.info("node %s: %s", task_id, states[task_id])
        if counted:
            raise AirflowException(
                f"Workflow failed: node(s) {', '.join(counted)} failed"
                + (
                    " (Cronium's rule: a handled failure still fails the workflow)"
                    if self.result_rule == "cronium"
                    else ""
                )
            )
        return "success"
