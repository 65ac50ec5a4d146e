"""The cronium-real corpus (``../shared/cronium-corpus`` beside the repository): its records, its
expectations and its reference checker ``run_corpus.py``, whose comparison functions are imported as they
are (``check_plan``, ``check_run``), so this suite judges the provider exactly as the reference does.

Two ways to run a record's expectation, both producing the report ``run_dag.py`` prints (``runs``,
``tasks`` with states and XComs, ``variables``) for ``check_run``:

* :func:`run_script_batch`: a plain script event (its DAG is the one ``run`` task of a
  ``CroniumScriptOperator``) runs through the operator's own pieces: the job is built as
  ``CroniumScriptOperator.run_event`` builds it (input from the run's conf, the event facts with the run's,
  a fresh Variables snapshot, the script environment, the limits) and run by ``ContainerExecutor`` in a
  real container; the outcome is read as ``CroniumScriptOperator._finish`` reads it and the variable
  changes applied to an in-memory store as ``VariableNamespace.apply`` applies them to Airflow Variables.
  Many at once, in threads.
* :func:`run_real_dag`: a real ``dag.test()`` of the DAG the template DAG file builds over the corpus
  records, read back from the metadata database as ``run_dag.py`` reads it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.conftest import REPO

CORPUS = REPO.parent / "shared" / "cronium-corpus"  # in CI: ../shared/cronium-corpus beside the clone
TEMPLATE = REPO / "dags_templates" / "cronium_dags.py"


def corpus_problem(folder: Path | None = None) -> str | None:
    """Why the corpus cannot be used, or None."""
    folder = folder or CORPUS
    for name in ("expectations.json", "run_corpus.py", "records"):
        if not (folder / name).exists():
            return f"{folder / name} is missing (the corpus sits beside the repository: ../shared/cronium-corpus)"
    return None


def load_reference(folder: Path | None = None) -> ModuleType:
    """``run_corpus.py`` as a module (its ``main`` is not run)."""
    folder = folder or CORPUS
    spec = importlib.util.spec_from_file_location("cronium_corpus_reference", folder / "run_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_expectations(folder: Path | None = None) -> dict[str, dict[str, Any]]:
    folder = folder or CORPUS
    with open(folder / "expectations.json", encoding="utf-8") as f:
        records: dict[str, dict[str, Any]] = json.load(f)["records"]
    return records


@dataclass
class Corpus:
    folder: Path
    reference: ModuleType
    expectations: dict[str, dict[str, Any]]
    records: dict[tuple[str, int], tuple[str, dict[str, Any]]]  # (kind, id) -> (file name, record)

    @property
    def records_dir(self) -> Path:
        return self.folder / "records"

    def label(self, key: str) -> str:
        """``kind:id (file: name)``, for every failure message."""
        kind, rid = key.split(":")
        found = self.records.get((kind, int(rid)))
        exp = self.expectations.get(key, {})
        file = found[0] if found else exp.get("file", "?")
        name = found[1].get("name") if found else exp.get("name")
        return f"{key} ({file}: {name})"


def open_corpus(folder: Path | None = None) -> Corpus:
    folder = folder or CORPUS
    reference = load_reference(folder)
    return Corpus(folder, reference, load_expectations(folder), reference.load_records(folder / "records"))


def cli_json(*args: str) -> dict[str, Any]:
    """``cronium-airflow <args>`` in this process; its JSON output."""
    from cronium_provider.cli import main

    out = io.StringIO()
    main(list(args), out=out)
    data: dict[str, Any] = json.loads(out.getvalue())
    return data


def run_expectations(corpus: Corpus) -> list[str]:
    """The records whose expectation has a run and no network, as ``run_corpus.py --run`` picks them."""
    return [k for k, e in sorted(corpus.expectations.items()) if "run" in e and not e.get("network")]


# ------------------------------------------------------------------------------------ batch script runs
@dataclass
class MemoryVariables:
    """Airflow Variables in a dict (key -> stored text), changed exactly as ``VariableNamespace.apply``
    changes the real ones: a set stores the value's JSON, an append reads the value as it is now and stores
    the joined value's JSON, a delete removes the key (a missing one is no error)."""

    store: dict[str, str] = field(default_factory=dict)

    def snapshot(self, namespace: Any) -> dict[str, Any]:
        """The run's view at start, as ``VariableNamespace.snapshot`` builds it."""
        values: dict[str, Any] = {}
        for key, raw in self.store.items():
            if key.startswith(namespace.prefix) and key[len(namespace.prefix) :]:
                values[key[len(namespace.prefix) :]] = namespace.decode(raw)
        return values

    def apply(self, namespace: Any, changes: Any) -> None:
        from cronium_provider.runners.protocol import MISSING, appended

        for change in changes or ():
            key = namespace.airflow_key(change.key)
            if change.op == "set":
                self.store[key] = json.dumps(change.value, ensure_ascii=False)
            elif change.op == "append":
                raw = self.store.get(key)
                current = MISSING if raw is None else namespace.decode(raw)
                self.store[key] = json.dumps(appended(current, change.value, change.separator), ensure_ascii=False)
            else:
                self.store.pop(key, None)


def batchable(dag: Any) -> str | None:
    """Why a DAG must run for real rather than in the batch, or None: the batch takes a DAG whose only task
    is a ``CroniumScriptOperator`` run with nothing Airflow would add (no retries, limit, templated input,
    env vars read from Variables)."""
    from cronium_provider.operators.container_script import CroniumScriptOperator

    if [t.task_id for t in dag.tasks] != ["run"]:
        return f"tasks {sorted(t.task_id for t in dag.tasks)}"
    op = dag.get_task("run")
    if type(op) is not CroniumScriptOperator:
        return f"operator {type(op).__name__}"
    if op.retries or op.max_executions or op.input_data is not None or op.workflow_incoming is not None:
        return "retries, maxExecutions, input or workflow gating"
    if op.event_env_keys or op.secret_environment:
        return "env vars read from Variables"
    return None


class _TaskInstance:
    """The task instance a script run sees: ids, and the XComs it pushes."""

    def __init__(self, dag_id: str, task_id: str, run_id: str):
        self.dag_id, self.task_id, self.run_id, self.try_number, self.map_index = dag_id, task_id, run_id, 1, -1
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


class _DagRun:
    def __init__(self, run_id: str, conf: Mapping[str, Any] | None):
        self.run_id, self.conf = run_id, dict(conf) if conf else {}


def run_script_event(dag: Any, conf: Mapping[str, Any] | None) -> dict[str, Any]:
    """One plain script event's run, as its DAG run would go (see the module docstring); the report of
    ``run_dag.py``."""
    import docker
    from cronium_provider.exceptions import ScriptFailed
    from cronium_provider.naming import CONTAINER_LABEL_DAG, CONTAINER_LABEL_TASK
    from cronium_provider.operators.container_script import default_image
    from cronium_provider.operators.gating import gated_input
    from cronium_provider.runners.base import ScriptJob
    from cronium_provider.runners.container import ContainerExecutor

    op = dag.get_task("run")
    now = datetime.now(UTC)
    run_id = f"manual__{now.isoformat()}"
    ti = _TaskInstance(dag.dag_id, op.task_id, run_id)
    context: dict[str, Any] = {"ti": ti, "dag_run": _DagRun(run_id, conf), "logical_date": now}
    # CroniumEventOperator.execute: the input; CroniumScriptOperator.run_event: the job
    value = gated_input(context, op.workflow_incoming, op.input_data)  # type: ignore[arg-type]
    namespace = op.variables()
    variables = MemoryVariables()  # a fresh Airflow home per record, as run_dag.py runs it
    image = op.image or default_image(op.language)
    job = ScriptJob(
        language=op.language,
        script=op.script,
        input=value,
        event=op.run_facts(context),
        variables=variables.snapshot(namespace),
        environment=op.script_environment(),
    )
    lines: list[str] = []
    client = docker.from_env(timeout=300).api  # the docker-py APIClient, as DockerHook.get_conn() gives it
    executor = ContainerExecutor(
        client,
        on_line=lambda stream, line: lines.append(f"[{stream}] {line}"),
        max_result_bytes=op.result_limit(),
        image=image,
        limits=op.limits,
        labels={CONTAINER_LABEL_DAG: dag.dag_id, CONTAINER_LABEL_TASK: op.task_id},
    )
    timed_out = threading.Event()

    def kill() -> None:  # Airflow's execution_timeout, then on_kill: the container is stopped
        timed_out.set()
        executor.stop(timeout=5)

    timer = None
    if op.execution_timeout is not None:
        timer = threading.Timer(op.execution_timeout.total_seconds(), kill)
        timer.start()
    try:
        run = executor.run(job)
    finally:
        if timer is not None:
            timer.cancel()
        client.close()
    state, note = "success", ""
    if timed_out.is_set():
        # AirflowTaskTimeout interrupts run_event: no result is read, no variable applied
        state, note = "failed", f"timed out after {op.execution_timeout}"
    else:
        # CroniumScriptOperator._finish: variables first (even after a failure), then the XComs, then the verdict
        results = run.results
        variables.apply(namespace, results.variable_changes if results is not None else None)
        condition = bool(results.condition) if results is not None and results.condition is not None else False
        ti.xcom_push("condition", condition)
        try:
            if run.oom_killed:
                raise ScriptFailed(f"out of memory (exit code {run.exit_code})")
            if run.exit_code != 0:
                raise ScriptFailed(f"exit code {run.exit_code}")
            if run.protocol_error is not None:
                raise ScriptFailed(f"result files invalid: {run.protocol_error}")
        except ScriptFailed as exc:
            state, note = "failed", str(exc)
        else:
            output = results.output if results is not None and results.has_output else None
            if output is not None:  # Airflow pushes no return_value for None
                ti.xcom_push("return_value", output)
    return {
        "runs": [{"run_id": run_id, "state": state}],
        "tasks": {op.task_id: {"state": state, "xcom": ti.xcom, "exit_code": run.exit_code, "note": note}},
        "variables": dict(variables.store),
        "log_tail": "\n".join(lines)[-3000:],
    }


def run_script_batch(
    jobs: Mapping[str, tuple[Any, Mapping[str, Any] | None]], workers: int = 4
) -> dict[str, dict[str, Any]]:
    """Run every ``key -> (dag, conf)`` at once (``workers`` containers at a time); a run that could not
    happen reports ``{"error": ...}`` as ``run_corpus.py`` does."""

    def one(item: tuple[str, tuple[Any, Mapping[str, Any] | None]]) -> tuple[str, dict[str, Any]]:
        key, (dag, conf) = item
        started = time.monotonic()
        try:
            report = run_script_event(dag, conf)
        except Exception as exc:
            report = {"error": f"batch run failed: {type(exc).__name__}: {exc}\n{traceback.format_exc()[-2000:]}"}
        report["seconds"] = round(time.monotonic() - started, 2)
        return key, report

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="corpus") as pool:
        return dict(pool.map(one, jobs.items()))


# ------------------------------------------------------------------------------------- real DAG runs
@contextlib.contextmanager
def fresh_cronium_variables() -> Iterator[None]:
    """No ``cronium_`` Variable during the block, as in ``run_dag.py``'s throwaway Airflow home; the session's
    own are put back afterwards."""
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    def clear() -> list[tuple[str, str | None, str | None]]:
        with create_session() as session:
            rows = session.query(Variable).filter(Variable.key.startswith("cronium_")).all()
            saved = [(v.key, v.val, v.description) for v in rows]
            for row in rows:
                session.delete(row)
        return saved

    saved = clear()
    try:
        yield
    finally:
        clear()
        for key, val, description in saved:
            Variable.set(key, val, description=description)


def run_real_dag(dag: Any, conf: Mapping[str, Any] | None) -> dict[str, Any]:
    """One ``dag.test()`` run; the report of ``run_dag.py`` for that run (its Variables: all of them)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.variable import Variable
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    dag_run = dag.test(run_conf=dict(conf) if conf else None)
    out: dict[str, Any] = {"runs": [{"run_id": dag_run.run_id, "state": str(dag_run.state)}], "tasks": {}}
    with create_session() as s:
        tis = s.query(TaskInstance).filter(TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == dag_run.run_id)
        for ti in tis:
            key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
            out["tasks"][key] = {"state": str(ti.state), "xcom": {}}
        rows = s.query(XComModel).filter(XComModel.dag_id == dag.dag_id, XComModel.run_id == dag_run.run_id)
        for x in rows:
            key = x.task_id if x.map_index < 0 else f"{x.task_id}[{x.map_index}]"
            try:
                val = XComModel.deserialize_value(x)
            except Exception:
                val = repr(x.value)
            out["tasks"].setdefault(key, {"state": None, "xcom": {}})["xcom"][x.key] = val
        out["variables"] = {v.key: v.val for v in s.query(Variable)}
    return out


def describe(report: Mapping[str, Any]) -> str:
    """What a run did, briefly, for a failure message."""
    if "error" in report:
        return str(report["error"])[-1500:]
    tasks = {
        t: {"state": v.get("state"), **({"note": v["note"]} if v.get("note") else {})}
        for t, v in report.get("tasks", {}).items()
    }
    text = f"tasks {json.dumps(tasks, default=str)}"
    tail = report.get("log_tail")
    return text + (f"\nlog tail:\n{tail[-1500:]}" if tail else "")
