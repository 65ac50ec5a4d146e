"""Whether a Cronium task runs, and with what input: ``maxExecutions``, workflow connections, conditions.

Every workflow node after a start node has the trigger rule ``all_done``: it waits until each parent has
ended (succeeded, failed or been skipped), then decides, as Cronium's executor does, whether every incoming
connection is satisfied, reading the parents' real task states and their ``condition`` XCom. A node that
is not reached is skipped, and so are the nodes only it could enable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowSkipException

from cronium_provider.naming import INPUT_PARAM, executions_reset_key
from cronium_provider.records.models import ConnectionType
from cronium_provider.states import (
    RAN_STATES,
    ActionWhen,
    RunStatus,
    TaskState,
    executions,
    max_executions_reached,
)

# How an event run ended (its ``run_status`` XCom), as plain strings: the names operators/event.py pushes.

Incoming = list[tuple[str, str]]


def run_input(context: Context, explicit: Any = None) -> Any:
    """``cronium.input()`` for a run: an explicit value, else the DAG run's ``conf``.

    The trigger form of a Cronium DAG has one param, ``input``; a conf of exactly ``{"input": ...}`` (what
    the form sends) hands over that value, any other conf is the input itself (``airflow dags trigger
    --conf '{...}'``).
    """
    if explicit is not None:
        return explicit
    dag_run = context.get("dag_run")
    conf = getattr(dag_run, "conf", None) if dag_run is not None else None
    if not conf:
        return {}
    if set(conf) == {INPUT_PARAM}:
        return conf[INPUT_PARAM] if conf[INPUT_PARAM] is not None else {}
    return dict(conf)


def executions_so_far(context: Context, execution_count: int) -> int:
    """Cronium's count of an event's executions: the record's ``executionCount`` plus the runs of this task
    that finished (succeeded or failed); queued, running and skipped runs are not executions. After
    ``cronium-airflow reset-counter`` only the runs finished since count (``cronium_provider.states.
    executions``), as Cronium's reset sets ``executionCount`` to 0 (server/api/routers/events.ts:740-754)."""
    from airflow.sdk import Variable

    ti = context["ti"]
    finished = ti.get_ti_count(dag_id=ti.dag_id, task_ids=[ti.task_id], states=list(RAN_STATES))
    reset = Variable.get(executions_reset_key(ti.dag_id), default=None)
    return executions(execution_count, int(finished), reset)


def check_max_executions(context: Context, max_executions: int, execution_count: int) -> None:
    """Skip the run, saying why, once the event has run ``maxExecutions`` times (0 = unlimited).

    Cronium counts executions that happened and pauses the event once the count reaches the limit
    (apps/cronium-app/src/lib/scheduler/execution-counter.ts:18-60); a run past it does nothing.
    """
    if max_executions <= 0:
        return
    count = executions_so_far(context, execution_count)
    if max_executions_reached(max_executions, count):
        raise AirflowSkipException(
            f"maxExecutions {max_executions} reached ({count} execution(s) so far): this run does nothing. "
            "Raise maxExecutions in the record (or run cronium-airflow reset-counter) to run the event again."
        )


def incoming_pairs(value: Sequence[Sequence[str]] | None) -> Incoming | None:
    """Normalise a list of incoming connections (lists survive DAG serialisation as lists, not tuples)."""
    return None if value is None else [(str(parent), str(kind)) for parent, kind in value]


def task_states(context: Context, task_ids: Sequence[str]) -> dict[str, str]:
    """The states of tasks of this DAG run, by task id (``"None"`` for one that has none yet)."""
    ti = context["ti"]
    found = ti.get_task_states(dag_id=ti.dag_id, task_ids=list(task_ids), run_ids=[ti.run_id])
    per_run = found.get(ti.run_id, {})
    return {task_id: str(per_run.get(task_id)) for task_id in task_ids}


def connection_satisfied(connection: str, parent_state: str, condition: Any) -> bool:
    """Cronium's rule for one incoming connection, given how its parent ended."""
    if parent_state not in RAN_STATES:  # skipped (never reached) parents satisfy nothing
        return False
    if connection == ConnectionType.ALWAYS:
        return True
    if connection == ConnectionType.ON_SUCCESS:
        return parent_state == TaskState.SUCCESS
    if connection == ConnectionType.ON_FAILURE:
        return parent_state == TaskState.FAILED
    if connection == ConnectionType.ON_CONDITION:
        return condition is True
    raise ValueError(f"unknown connection type {connection!r}")


def node_input(context: Context, incoming: Sequence[tuple[str, str]]) -> Any:
    """Run the node only if every incoming connection is satisfied; return its ``cronium.input()``.

    The input is the output of the last successful parent (in connection order) whose output is not null;
    an output that is not an object arrives as ``{}``; with none, the workflow's initial input.
    """
    if not incoming:
        return run_input(context)
    ti = context["ti"]
    parents = list(dict.fromkeys(task_id for task_id, _ in incoming))
    states = task_states(context, parents)
    unsatisfied = []
    for parent, connection in incoming:
        condition = (
            ti.xcom_pull(task_ids=parent, key="condition") if connection == ConnectionType.ON_CONDITION else None
        )
        if not connection_satisfied(connection, states[parent], condition):
            unsatisfied.append(f"{parent} ({connection}, parent {states[parent]})")
    if unsatisfied:
        raise AirflowSkipException("Connection(s) not satisfied: " + ", ".join(unsatisfied))
    chosen: Any = None
    for parent in parents:
        if states[parent] != TaskState.SUCCESS:
            continue
        output = ti.xcom_pull(task_ids=parent, key="return_value")
        if output is not None:
            chosen = output if isinstance(output, dict) else {}
    return chosen if chosen is not None else run_input(context)


def gated_input(context: Context, incoming: Incoming | None, explicit: Any = None) -> Any:
    """The run's input: a workflow node's (skipping it when a connection is unsatisfied), else the DAG run's."""
    if incoming is not None:
        return node_input(context, incoming)
    return run_input(context, explicit)


def require_condition(context: Context, task_id: str | None) -> None:
    """Skip unless the task ``task_id`` set its condition to true (``cronium.setCondition(true)``)."""
    if task_id is None:
        return
    condition = context["ti"].xcom_pull(task_ids=task_id, key="condition")
    if condition is not True:
        raise AirflowSkipException(f"{task_id} did not set its condition to true (condition: {condition!r})")


ACTION_WHEN = tuple(ActionWhen)


def require_action_due(context: Context, when: str, event_task_id: str) -> None:
    """Skip unless Cronium fires an action of this kind after how the event's run ended.

    As Cronium's job service does when a job completes (apps/cronium-app/src/lib/services/job-service.ts:
    583-623): nothing after a run that did not happen (skipped, never reached); ``always`` after any other;
    ``success`` after success; ``failure`` after a failure, never after a run a person cancelled (marked
    failed, stopped, killed); ``condition`` whenever the run set its condition to true, whatever its result.
    """
    state = task_states(context, [event_task_id])[event_task_id]
    if state not in RAN_STATES:
        raise AirflowSkipException(f"{event_task_id} did not run ({state}): its actions do not fire")
    ti = context["ti"]
    if when == ActionWhen.ALWAYS:
        return
    if when == ActionWhen.SUCCESS:
        if state != TaskState.SUCCESS:
            raise AirflowSkipException(f"{event_task_id} ended {state}: success actions do not fire")
        return
    if when == ActionWhen.FAILURE:
        status = ti.xcom_pull(task_ids=event_task_id, key="run_status")
        if state != TaskState.FAILED:
            raise AirflowSkipException(f"{event_task_id} ended {state}: failure actions do not fire")
        if status != RunStatus.FAILURE:
            raise AirflowSkipException(
                f"{event_task_id} was cancelled, not failed (status {status or 'none'}): "
                "as in Cronium, only its always actions fire"
            )
        return
    if when == ActionWhen.CONDITION:
        require_condition(context, event_task_id)
        return
    raise ValueError(f"unknown action kind {when!r}; one of {', '.join(ACTION_WHEN)}")
