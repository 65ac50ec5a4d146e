"""Run real DAG files with Airflow's ``dag.test()`` and read back what a user would see.

A DAG file is written into the test session's dags folder (``dag.test()`` syncs the dags folder bundle
to the metadata database), imported, and run in-process; task states, XComs and the log lines emitted
while it ran are returned.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass
class LogRecord:
    at: float
    logger: str
    message: str


@dataclass
class DagRunResult:
    dag_id: str
    run_id: str
    state: str
    task_states: dict[str, str | None]
    xcoms: dict[str, dict[str, Any]]
    logs: list[LogRecord] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        return self.xcoms.get(task_id, {}).get(key)

    def log_text(self) -> str:
        return "\n".join(r.message for r in self.logs)


_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z \[\w+\s*\] (.*)$")


def parse_log(text: str) -> list[LogRecord]:
    """Airflow's console log lines (``<ISO time>Z [level] message [logger] ...``) with their times."""
    records: list[LogRecord] = []
    for line in text.splitlines():
        match = _LINE.match(line)
        if match:
            at = datetime.fromisoformat(match.group(1)).replace(tzinfo=UTC).timestamp()
            records.append(LogRecord(at, "", match.group(2)))
        elif records:
            records[-1].message += "\n" + line
    return records


def dags_folder() -> Path:
    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def load_dag_module(path: Path) -> Any:
    name = f"cronium_test_dag_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def run_dag(dag: Any, conf: dict[str, Any] | None = None, capfd: Any = None) -> DagRunResult:
    """Run one DAG object (defined in a file of the dags folder) and collect its results.

    With pytest's ``capfd`` the console output of the run (the task logs, in ``dag.test()``) is parsed
    into timed log records.
    """
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    if capfd is not None:
        capfd.readouterr()
    started = time.time()
    dag_run = dag.test(run_conf=conf or None)
    finished = time.time()
    logs: list[LogRecord] = []
    if capfd is not None:
        out, err = capfd.readouterr()
        logs = parse_log(out + "\n" + err)
    with create_session() as session:
        tis = dag_run.get_task_instances(session=session)
        states = {
            ti.task_id: (str(getattr(ti.state, "value", ti.state)) if ti.state is not None else None) for ti in tis
        }
        rows = session.query(XComModel).filter(XComModel.dag_id == dag.dag_id, XComModel.run_id == dag_run.run_id).all()
        xcoms: dict[str, dict[str, Any]] = {}
        for row in rows:
            xcoms.setdefault(row.task_id, {})[row.key] = row.value
    state = str(getattr(dag_run.state, "value", dag_run.state))
    return DagRunResult(dag.dag_id, dag_run.run_id, state, states, xcoms, logs, started, finished)


WRITTEN_DAG_FILES: list[Path] = []


def write_dag_file(name: str, source: str) -> Path:
    """Write a DAG file into the dags folder; the test session removes it after the test."""
    path = dags_folder() / name
    path.write_text(source)
    WRITTEN_DAG_FILES.append(path)
    return path


def remove_written_dag_files() -> None:
    while WRITTEN_DAG_FILES:
        WRITTEN_DAG_FILES.pop().unlink(missing_ok=True)


def variable(key: str) -> Any:
    from airflow.models import Variable

    return Variable.get(key, default_var=None)


def set_variable(key: str, value: str) -> None:
    from airflow.models import Variable

    Variable.set(key, value)


def delete_variables(prefix: str) -> None:
    from airflow.models import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(Variable).filter(Variable.key.startswith(prefix)).delete(synchronize_session=False)


def one_task_dag(operator: str, dag_prefix: str, timeout_seconds: int = 120, **operator_args: Any) -> tuple[Any, str]:
    """Write a DAG file with one task ``run`` of ``operator`` (``module.Class``); returns the DAG and its id."""
    module, cls = operator.rsplit(".", 1)
    dag_id = f"{dag_prefix}_{uuid.uuid4().hex[:8]}"
    args = "".join(f", {k}={v!r}" for k, v in operator_args.items())
    source = (
        "import datetime\nimport pendulum\nfrom airflow.sdk import DAG\n"
        f"from {module} import {cls}\n\n"
        f'with DAG({dag_id!r}, schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:\n'
        f'    {cls}(task_id="run", execution_timeout=datetime.timedelta(seconds={timeout_seconds}){args})\n'
    )
    return load_dag_module(write_dag_file(f"{dag_id}.py", source)).dag, dag_id
