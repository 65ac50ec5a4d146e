"""What every Cronium event operator shares: its input, ``maxExecutions`` and the run's result keys."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowSkipException


def run_input(context: Any, explicit: Any = None) -> Any:
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
    if set(conf) == {"input"}:
        return conf["input"] if conf["input"] is not None else {}
    return dict(conf)


def check_max_executions(context: Any, max_executions: int, execution_count: int) -> None:
    """Skip the run, saying why, once the event has run ``maxExecutions`` times (0 = unlimited).

    The count is the record's ``executionCount`` plus the DAG's earlier runs in Airflow.
    """
    if max_executions <= 0:
        return
    ti = context["ti"]
    runs_so_far = max(0, int(ti.get_dr_count(dag_id=ti.dag_id)) - 1)
    count = execution_count + runs_so_far
    if count >= max_executions:
        raise AirflowSkipException(
            f"maxExecutions {max_executions} reached ({count} execution(s) so far): this run does nothing. "
            "Raise maxExecutions in the record (or reset the count) to run the event again."
        )
