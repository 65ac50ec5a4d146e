"""The distributed topology of the Compose stack, started natively: CeleryExecutor on PostgreSQL and Redis.

Container images cannot be pulled here, so the stack of ``docker-compose.airflow.yml`` is rebuilt from the same
software on this machine, every server on 127.0.0.1 on a free port:

* a private PostgreSQL cluster (metadata database and Celery result backend), run as the ``postgres`` OS user
  from a temporary folder (``tests/support/services.py``);
* a private ``redis-server``: database 0 is the Celery broker, database 1 the cronium resilience store
  (``[cronium] resilience_store``);
* ``airflow api-server`` (the Execution API the workers' task processes talk to), ``airflow scheduler``,
  ``airflow dag-processor`` and TWO ``airflow celery worker`` processes (``worker-a@%h``, ``worker-b@%h``,
  concurrency 2 each), all sharing one private ``AIRFLOW_HOME``, one JWT secret and one API secret key.

The dags folder holds a copy of ``dags_templates/cronium_dags.py``; the records folder a copy of
``dags_templates/records`` plus a workflow built to spread: six independent 3-second start nodes merged by a
seventh, then a TOOL_ACTION webhook node (to a receiver in this test process), so both workers get tasks and the
resilience store is used. Both workflows are triggered with ``airflow dags trigger --conf``; the test waits for
the runs and checks their task states, which worker ran each task, the workers' logs and the Redis keys.

Which worker ran a task: on one machine the task instance's ``hostname`` is the machine's name whichever worker
ran it, so it cannot tell the two apart. The task instance's ``external_executor_id`` is the Celery task id, and
with ``result_extended`` Celery's result backend (the ``celery_taskmeta`` table in the same PostgreSQL) records,
for that id, the ``worker`` that ran it (``worker-a@<host>``). The workers' logs are checked to agree.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES, REPO, RUNTIME_IMAGE, airflow_env, missing, venv_bin
from tests.support.http_receiver import HttpReceiver, json_answer
from tests.support.services import (
    ManagedProcess,
    PostgresCluster,
    RedisServer,
    ServiceDied,
    ServiceUnavailable,
    free_port,
    kill_marked,
    processes_with_env,
    stop_all,
    tail,
    wait_for,
)

pytestmark = [pytest.mark.airflow, pytest.mark.docker]

ORDERS_DAG = "cronium_workflow_1"
SPREAD_WORKFLOW_ID = 90
SPREAD_DAG = f"cronium_workflow_{SPREAD_WORKFLOW_ID}"
SPREAD_NODES = [f"slot{i}" for i in range(1, 7)]
WEBHOOK_TOOL_ID = 90
WORKERS = ("worker-a", "worker-b")
WORKER_CONCURRENCY = 2
MARKER = "CRONIUM_CELERY_NATIVE_TEST"

STARTUP_TIMEOUT = 150  # all Airflow components up, DAGs parsed
RUN_TIMEOUT = 240  # both DAG runs finished
QUIESCE_TIMEOUT = 60  # runs the workflows triggered themselves (SCRIPT actions) finished too
CLI_TIMEOUT = 120

#: workflow_1 with the run conf below: 10 + 20 + 30 = 60 >= 50 sets the condition, so `report` runs; nothing
#: fails, so the ON_FAILURE node is skipped; ALWAYS runs `cleanup`.
ORDERS_CONF = {"batch": "celery-native"}
ORDERS_EXPECTED = {
    "node_fetch": "success",
    "node_total": "success",
    "node_report": "success",
    "node_failure": "skipped",
    "node_cleanup": "success",
    "workflow_result": "success",
}
SPREAD_EXPECTED = {f"node_{n}": "success" for n in [*SPREAD_NODES, "gather", "notify"]} | {"workflow_result": "success"}


def spread_records() -> dict[str, Any]:
    """Six independent 3-second BASH start nodes, merged by `gather` (ON_SUCCESS), then a webhook `notify`."""
    events: list[dict[str, Any]] = [
        {
            "id": 900 + i,
            "userId": "celery-test",
            "name": f"Slot {i}",
            "type": "BASH",
            "status": "ACTIVE",
            "triggerType": "MANUAL",
            "content": f'sleep 3\necho "slot {i} input: $(cronium_input)"\ncronium_output \'{{"slot": {i}}}\'\n',
            "timeoutValue": 90,
            "timeoutUnit": "SECONDS",
        }
        for i in range(1, 7)
    ]
    events.append(
        {
            "id": 907,
            "userId": "celery-test",
            "name": "Gather",
            "type": "BASH",
            "status": "ACTIVE",
            "triggerType": "MANUAL",
            "content": 'echo "gathered: $(cronium_input)"\ncronium_output "$(cronium_input)"\n',
            "timeoutValue": 90,
            "timeoutUnit": "SECONDS",
        }
    )
    events.append(
        {
            "id": 908,
            "userId": "celery-test",
            "name": "Notify webhook",
            "type": "TOOL_ACTION",
            "status": "ACTIVE",
            "triggerType": "MANUAL",
            "toolActionConfig": {
                "toolType": "webhook",
                "actionId": "send-webhook",
                "toolId": WEBHOOK_TOOL_ID,
                "parameters": {"text": "spread finished"},
            },
            "timeoutValue": 60,
            "timeoutUnit": "SECONDS",
        }
    )
    nodes = [
        {"id": name, "type": "eventNode", "position": {"x": 0, "y": 100 * i}, "data": {"eventId": 900 + i + 1}}
        for i, name in enumerate(SPREAD_NODES)
    ]
    nodes.append({"id": "gather", "type": "eventNode", "position": {"x": 300, "y": 0}, "data": {"eventId": 907}})
    nodes.append({"id": "notify", "type": "eventNode", "position": {"x": 600, "y": 0}, "data": {"eventId": 908}})
    edges = [
        {"id": f"e{i}", "source": name, "target": "gather", "data": {"connectionType": "ON_SUCCESS"}}
        for i, name in enumerate(SPREAD_NODES, start=1)
    ]
    edges.append({"id": "e7", "source": "gather", "target": "notify", "data": {"connectionType": "ON_SUCCESS"}})
    workflow = {
        "id": SPREAD_WORKFLOW_ID,
        "userId": "celery-test",
        "name": "Spread across Celery workers",
        "status": "ACTIVE",
        "triggerType": "MANUAL",
        "nodes": nodes,
        "edges": edges,
    }
    return {"events": events, "workflows": [workflow]}


# --- the stack ------------------------------------------------------------------------------------------------


@dataclass
class Stack:
    home: Path
    pg: PostgresCluster
    redis: RedisServer
    webhook: HttpReceiver
    env: dict[str, str]
    api_port: int
    marker: str
    started_at: float = field(default_factory=time.time)
    services: dict[str, ManagedProcess] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    runs: dict[str, str] = field(default_factory=dict)  # dag_id -> run_id

    def airflow(self, *args: str, timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """An ``airflow`` CLI command against this stack's AIRFLOW_HOME and configuration."""
        return subprocess.run(
            [venv_bin("airflow"), *args],
            env=self.env,
            cwd=str(self.home),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start_service(self, name: str, *args: str) -> ManagedProcess:
        log_path = self.home / "service-logs" / f"{name}.log"
        process = ManagedProcess(name, [venv_bin("airflow"), *args], log_path, env=self.env, cwd=str(self.home))
        self.services[name] = process.start()
        return process

    def check_alive(self) -> None:
        for name, process in self.services.items():
            if not process.alive():
                code = process.proc.returncode if process.proc else "?"
                raise ServiceDied(f"{name} exited with {code}; its log ends:\n{process.tail(30)}")

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        return self.pg.query(sql, params)

    def task_rows(self, dag_id: str) -> list[dict[str, Any]]:
        """The run's task instances joined to Celery's record of the worker that ran each of them."""
        rows = self.query(
            """
            SELECT ti.task_id, ti.state, ti.hostname, ti.external_executor_id, ti.queued_by_job_id, ti.pid,
                   ti.try_number, m.worker, m.status
            FROM task_instance ti
            LEFT JOIN celery_taskmeta m ON m.task_id = ti.external_executor_id
            WHERE ti.dag_id = %s AND ti.run_id = %s
            ORDER BY ti.task_id
            """,
            (dag_id, self.runs[dag_id]),
        )
        keys = (
            "task_id",
            "state",
            "hostname",
            "celery_task_id",
            "queued_by_job_id",
            "pid",
            "try_number",
            "celery_worker",
            "celery_status",
        )
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def run_state(self, dag_id: str) -> str | None:
        rows = self.query("SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", (dag_id, self.runs[dag_id]))
        return str(rows[0][0]) if rows else None

    def unfinished_runs(self) -> list[tuple[str, str, str]]:
        return [
            (str(d), str(r), str(s))
            for d, r, s in self.query("SELECT dag_id, run_id, state FROM dag_run WHERE state IN ('queued', 'running')")
        ]

    def diagnostics(self) -> str:
        parts = [
            f"AIRFLOW_HOME={self.home}  api=127.0.0.1:{self.api_port}  postgres=127.0.0.1:{self.pg.port}"
            f"  redis=127.0.0.1:{self.redis.port}"
        ]
        for name, process in self.services.items():
            state = "running" if process.alive() else f"exited {process.proc.returncode if process.proc else '?'}"
            parts.append(f"===== {name} ({state}) {process.log_path} =====\n{process.tail(80)}")
        for dag_id, run_id in self.runs.items():
            with contextlib.suppress(Exception):
                parts.append(f"===== {dag_id} run {run_id}: {self.run_state(dag_id)} =====")
                for row in self.task_rows(dag_id):
                    parts.append(f"  {row}")
                    if row["state"] not in ("success", "skipped"):
                        pattern = f"logs/dag_id={dag_id}/run_id={run_id}/task_id={row['task_id']}/*.log"
                        for log in sorted(self.home.glob(pattern)):
                            parts.append(f"  ----- {log} -----\n{tail(log, 40)}")
        parts.append(f"===== webhook receiver: {len(self.webhook.requests)} request(s) =====")
        if self.pg.base is not None:
            parts.append(f"===== postgres {self.pg.log_path} =====\n{tail(self.pg.log_path, 30)}")
        if self.redis.base is not None:
            parts.append(f"===== redis {self.redis.log_path} =====\n{tail(self.redis.log_path, 15)}")
        return "\n".join(parts)

    def stop(self) -> None:
        # Workers first (a warm shutdown lets running tasks end), then the other components together, then any
        # process left behind by them (task supervisors are our descendants and carry the marker in their env).
        t0 = time.monotonic()
        workers = [self.services[f"celery-{w}"] for w in WORKERS if f"celery-{w}" in self.services]
        killed = stop_all(workers, grace=20)
        t1 = time.monotonic()
        killed += stop_all([p for p in self.services.values() if p not in workers], grace=20)
        print(f"\n[celery-native] stopped workers in {t1 - t0:.1f} s, the rest in {time.monotonic() - t1:.1f} s")
        if killed:
            print(f"[celery-native] SIGKILL needed for: {killed}", file=sys.stderr)
        leftovers = kill_marked(MARKER, self.marker)
        if leftovers:
            print(f"[celery-native] killed {len(leftovers)} leftover process(es): {leftovers}", file=sys.stderr)
        self._remove_script_containers()

    def _remove_script_containers(self) -> None:
        """Script containers of this stack's DAGs still there (a task killed mid-run): removed and reported."""
        dag_ids = {ORDERS_DAG, SPREAD_DAG} | {f"cronium_event_{n}" for n in range(1, 1000)}
        with contextlib.suppress(Exception):
            import docker

            client = docker.from_env(timeout=60)
            for container in client.containers.list(all=True, filters={"label": "org.cronium.run=true"}):
                labels = container.labels or {}
                created = container.attrs.get("Created", "")
                if labels.get("org.cronium.dag_id") in dag_ids and _docker_time(created) >= self.started_at - 5:
                    print(f"[celery-native] removing leftover script container {container.short_id}", file=sys.stderr)
                    container.remove(force=True)
            client.close()


def _docker_time(value: str) -> float:
    from datetime import datetime

    try:
        return datetime.fromisoformat(value[:26].rstrip("Z") + "+00:00").timestamp()
    except ValueError:
        return 0.0


@contextlib.contextmanager
def diagnose_on_failure(stack: Stack, what: str) -> Iterator[None]:
    try:
        yield
    except BaseException:
        print(f"\n[celery-native] {what} failed; diagnostics:\n{stack.diagnostics()}", file=sys.stderr)
        raise


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _check_components() -> None:
    try:
        import psycopg2  # noqa: F401
        import redis  # noqa: F401
    except ImportError as exc:
        missing("psycopg2 / redis client", f"{exc}; pip install -e '.[celery]'")
    try:
        # Airflow 3 opens an async engine on the metadata database too: postgresql+asyncpg for PostgreSQL.
        import asyncpg  # noqa: F401
    except ImportError as exc:
        missing("asyncpg", f"{exc}; Airflow on PostgreSQL needs it (pip install asyncpg)")
    try:
        import airflow.providers.celery
    except ImportError as exc:
        missing("apache-airflow-providers-celery", f"{exc}; pip install -e '.[celery]'")
    try:
        # What every component imports: it fails on a Celery release the provider does not support (celery 5.7
        # dropped `celery.backends.database.retry`, which apache-airflow-providers-celery 3.26 imports).
        import airflow.providers.celery.executors.celery_executor_utils  # noqa: F401
    except ImportError as exc:
        import celery

        pytest.fail(f"the Celery provider does not import with celery {celery.__version__}: {exc}")
    try:
        import docker

        client = docker.from_env(timeout=60)
        client.ping()
        client.images.get(RUNTIME_IMAGE)
        client.close()
    except Exception as exc:
        missing("Docker engine with the runtime image", f"{exc}; run `make test` or scripts/build-runtime-image.sh")


def _celery_ping(broker_url: str) -> set[str]:
    """Names of the Celery workers answering a broadcast ping on the broker."""
    from celery import Celery

    app = Celery(broker=broker_url)
    try:
        replies = app.control.ping(timeout=2.0) or []
        return {name for reply in replies for name in reply}
    finally:
        app.close()


def _stack_env(
    home: Path,
    records: Path,
    pg: PostgresCluster,
    redis_server: RedisServer,
    webhook: HttpReceiver,
    api_port: int,
    marker: str,
) -> dict[str, str]:
    env = airflow_env()
    inherited = [k for k in env if k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))]
    for key in [*inherited, "AIRFLOW_CONFIG", "CRONIUM_RECORDS_DIR"]:
        env.pop(key, None)
    webhook_port = webhook.url.rsplit(":", 1)[1]
    env.update(
        {
            MARKER: marker,
            "PYTHONUNBUFFERED": "1",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__FERNET_KEY": os.environ.get(
                "AIRFLOW__CORE__FERNET_KEY", "tHzVtBrTpU8Q5dJ9ocwXCsH0qvBy6aGjKxE3YbVz2gc="
            ),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            # psycopg2 named explicitly: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg (3).
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg.sqlalchemy_url("postgresql+psycopg2"),
            "AIRFLOW__CELERY__BROKER_URL": redis_server.url(0),
            "AIRFLOW__CELERY__RESULT_BACKEND": pg.sqlalchemy_url("db+postgresql+psycopg2"),
            # Celery's result backend then records the worker that ran each task (celery_taskmeta.worker).
            "AIRFLOW__CELERY__EXTRA_CELERY_CONFIG": json.dumps({"result_extended": True}),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            # One JWT secret and API secret key for every component: the scheduler signs the task tokens the
            # API server checks. The Simple auth manager (Airflow's default) is kept.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            # Only the runs this test triggers: no cron runs of the example records' scheduled events.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "CRONIUM_RECORDS_DIR": str(records),
            "AIRFLOW__CRONIUM__IMAGE": RUNTIME_IMAGE,
            "AIRFLOW__CRONIUM__RESILIENCE_STORE": redis_server.url(1),
            # the webhook tool of the spread workflow's TOOL_ACTION node: the receiver in this test process
            f"AIRFLOW_CONN_CRONIUM_TOOL_{WEBHOOK_TOOL_ID}": json.dumps(
                {
                    "conn_type": "http",
                    "host": "127.0.0.1",
                    "port": int(webhook_port),
                    "schema": "http",
                    "extra": {"tool_type": "webhook", "owner": "celery-test"},
                }
            ),
        }
    )
    return env


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    _check_components()
    started = time.monotonic()
    marker = uuid.uuid4().hex
    home = Path(tempfile.mkdtemp(prefix="cronium-celery-native-"))
    pg = PostgresCluster()
    redis_server = RedisServer()
    webhook = HttpReceiver(routes={"POST /": lambda request: json_answer({"ok": True})}).start()
    st: Stack | None = None
    try:
        try:
            pg.start()
            redis_server.start()
        except ServiceUnavailable as exc:
            missing("PostgreSQL / Redis server", str(exc))
        timings = {"postgres+redis": time.monotonic() - started}

        (home / "dags").mkdir()
        shutil.copy(REPO / "dags_templates" / "cronium_dags.py", home / "dags" / "cronium_dags.py")
        records = home / "records"
        shutil.copytree(EXAMPLES, records)
        (records / "celery-spread.json").write_text(json.dumps(spread_records(), indent=2))

        api_port = free_port()
        env = _stack_env(home, records, pg, redis_server, webhook, api_port, marker)
        st = Stack(home, pg, redis_server, webhook, env, api_port, marker, timings=timings)

        with diagnose_on_failure(st, "starting the stack"):
            t0 = time.monotonic()
            migrate = st.airflow("db", "migrate", timeout=300)
            assert migrate.returncode == 0, (
                f"airflow db migrate failed:\n{migrate.stdout[-3000:]}\n{migrate.stderr[-3000:]}"
            )
            st.timings["db migrate"] = time.monotonic() - t0

            t0 = time.monotonic()
            st.start_service(
                "api-server", "api-server", "--host", "127.0.0.1", "--port", str(api_port), "--workers", "1"
            )
            st.start_service("scheduler", "scheduler")
            st.start_service("dag-processor", "dag-processor")
            for worker in WORKERS:
                # --skip-serve-logs: the log server binds 0.0.0.0:8793 and two workers on one machine would clash;
                # the API server reads the task logs from the shared local log folder.
                st.start_service(
                    f"celery-{worker}",
                    *("celery", "worker", "--celery-hostname", f"{worker}@%h"),
                    *("--concurrency", str(WORKER_CONCURRENCY), "--skip-serve-logs"),
                )

            def api_up() -> bool:
                st.check_alive()
                return _http_status(f"http://127.0.0.1:{api_port}/api/v2/monitor/health") == 200

            wait_for(api_up, STARTUP_TIMEOUT, "airflow api-server", interval=1)
            st.timings["api-server up"] = time.monotonic() - t0

            expected_workers = {f"{w}@{socket.gethostname()}" for w in WORKERS}

            def workers_up() -> bool:
                st.check_alive()
                return expected_workers <= _celery_ping(redis_server.url(0))

            wait_for(workers_up, STARTUP_TIMEOUT, f"Celery workers {sorted(expected_workers)}", interval=1)
            st.timings["workers answer ping"] = time.monotonic() - t0

            def dags_parsed() -> bool:
                st.check_alive()
                rows = st.query("SELECT dag_id FROM serialized_dag WHERE dag_id IN (%s, %s)", (ORDERS_DAG, SPREAD_DAG))
                return {r[0] for r in rows} == {ORDERS_DAG, SPREAD_DAG}

            wait_for(dags_parsed, STARTUP_TIMEOUT, "DAGs parsed by the dag-processor", interval=1)
            st.timings["dags parsed"] = time.monotonic() - t0
            st.timings["stack ready (total)"] = time.monotonic() - started
        yield st
    finally:
        t0 = time.monotonic()
        if st is not None:
            st.stop()
        else:
            kill_marked(MARKER, marker)
        redis_server.stop()
        pg.stop()
        webhook.stop()
        left = processes_with_env(MARKER, marker)
        if left:
            print(f"[celery-native] processes still alive after teardown: {left}", file=sys.stderr)
        shutil.rmtree(home, ignore_errors=True)
        print(f"\n[celery-native] teardown {time.monotonic() - t0:.1f} s, total {time.monotonic() - started:.1f} s")


@pytest.fixture(scope="module")
def finished_runs(stack: Stack) -> Stack:
    """Both workflows triggered through the CLI (``airflow dags trigger --conf``) and waited for."""
    with diagnose_on_failure(stack, "triggering and running the DAGs"):
        paused = stack.query("SELECT dag_id FROM dag WHERE dag_id IN (%s, %s) AND is_paused", (ORDERS_DAG, SPREAD_DAG))
        for (dag_id,) in paused:  # ACTIVE records are unpaused on creation; be explicit if not
            unpause = stack.airflow("dags", "unpause", str(dag_id))
            assert unpause.returncode == 0, unpause.stderr[-2000:]

        t0 = time.monotonic()
        triggers = {ORDERS_DAG: ORDERS_CONF, SPREAD_DAG: {"origin": "test_celery_native"}}
        procs = {}
        for dag_id, conf in triggers.items():
            run_id = f"celery_native__{uuid.uuid4().hex[:10]}"
            stack.runs[dag_id] = run_id
            procs[dag_id] = subprocess.Popen(
                [venv_bin("airflow"), "dags", "trigger", dag_id, "--conf", json.dumps(conf), "--run-id", run_id],
                env=stack.env,
                cwd=str(stack.home),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        for dag_id, proc in procs.items():
            out, err = proc.communicate(timeout=CLI_TIMEOUT)
            assert proc.returncode == 0, f"airflow dags trigger {dag_id} failed:\n{out[-2000:]}\n{err[-2000:]}"
            assert stack.runs[dag_id] in out + err, f"trigger output does not name the run:\n{out[-2000:]}"
        stack.timings["trigger (CLI)"] = time.monotonic() - t0

        t0 = time.monotonic()
        deadline = t0 + RUN_TIMEOUT
        states: dict[str, str | None] = {}
        while time.monotonic() < deadline:
            states = {dag_id: stack.run_state(dag_id) for dag_id in stack.runs}
            if all(s in ("success", "failed") for s in states.values()):
                break
            stack.check_alive()
            time.sleep(2)
        stack.timings["runs finished"] = time.monotonic() - t0
        assert all(s in ("success", "failed") for s in states.values()), (
            f"runs not finished after {RUN_TIMEOUT} s: {states}"
        )

        # Runs the workflows started themselves (the cleanup node's ALWAYS -> SCRIPT action triggers event 3's DAG)
        # end before teardown, so no task is killed mid-run.
        t0 = time.monotonic()
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: not stack.unfinished_runs(), QUIESCE_TIMEOUT, "other DAG runs", interval=2)
        stack.timings["other runs finished"] = time.monotonic() - t0
    print("\n[celery-native] timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in stack.timings.items()))
    return stack


# --- the tests --------------------------------------------------------------------------------------------------


def test_orders_workflow_succeeds_with_cronium_semantics(finished_runs: Stack) -> None:
    st = finished_runs
    with diagnose_on_failure(st, ORDERS_DAG):
        assert st.run_state(ORDERS_DAG) == "success"
        states = {row["task_id"]: row["state"] for row in st.task_rows(ORDERS_DAG)}
        assert {task: states.get(task) for task in ORDERS_EXPECTED} == ORDERS_EXPECTED
        # A node's own conditional actions (tasks `node_<id>__<kind>_<n>`), when the DAG has them: its ALWAYS
        # and ON_SUCCESS actions ran, its ON_FAILURE ones were skipped (nothing failed).
        for task, state in states.items():
            if task in ORDERS_EXPECTED:
                continue
            assert "__" in task, f"unexpected task {task} ({state})"
            assert state == ("skipped" if "__on_failure_" in task else "success"), (task, state)


def test_spread_workflow_ran_on_both_workers(finished_runs: Stack) -> None:
    st = finished_runs
    host = socket.gethostname()
    with diagnose_on_failure(st, SPREAD_DAG):
        assert st.run_state(SPREAD_DAG) == "success"
        rows = st.task_rows(SPREAD_DAG)
        # Airflow records a task's success through its API before the Celery task itself returns, so the
        # last task's Celery record may still say STARTED for a moment: wait for it, within bounds.
        deadline = time.monotonic() + 30
        while any(r["celery_status"] == "STARTED" for r in rows) and time.monotonic() < deadline:
            time.sleep(0.5)
            rows = st.task_rows(SPREAD_DAG)
        assert {row["task_id"]: row["state"] for row in rows} == SPREAD_EXPECTED

        by_worker: dict[str, list[str]] = {}
        for row in rows:
            assert row["celery_task_id"], f"{row['task_id']}: no external_executor_id (Celery task id)"
            assert row["celery_worker"], f"{row['task_id']}: Celery recorded no worker for {row['celery_task_id']}"
            assert row["celery_status"] == "SUCCESS", row
            by_worker.setdefault(str(row["celery_worker"]), []).append(row["task_id"])
        print(f"\n[celery-native] {SPREAD_DAG} tasks by Celery worker: {by_worker}")
        print(f"[celery-native] task_instance.hostname values: {sorted({str(r['hostname']) for r in rows})}")
        assert set(by_worker) == {f"{w}@{host}" for w in WORKERS}, by_worker

        # data crossed workers: the merge node got the output of its last successful parent in connection order
        xcom = st.query(
            "SELECT value FROM xcom WHERE dag_id = %s AND run_id = %s AND task_id = 'node_gather' "
            "AND key = 'return_value'",
            (SPREAD_DAG, st.runs[SPREAD_DAG]),
        )
        assert xcom, "node_gather pushed no return_value"
        value = xcom[0][0]
        assert (json.loads(value) if isinstance(value, str) else value) == {"slot": 6}


def test_worker_logs_agree_with_celery_records(finished_runs: Stack) -> None:
    st = finished_runs
    host = socket.gethostname()
    with diagnose_on_failure(st, "worker logs"):
        rows = [row | {"dag_id": dag_id} for dag_id in st.runs for row in st.task_rows(dag_id)]
        ran = [row for row in rows if row["celery_task_id"]]
        assert {row["celery_worker"] for row in ran} == {f"{w}@{host}" for w in WORKERS}
        logs = {f"{w}@{host}": st.services[f"celery-{w}"].log() for w in WORKERS}
        for name, text in logs.items():
            assert "Executing workload in Celery" in text, f"{name}'s log mentions no task"
        for row in ran:
            worker = str(row["celery_worker"])
            other = next(name for name in logs if name != worker)
            # the worker Celery recorded logged this Celery task id with the task's ids; the other one did not
            lines = [
                line
                for line in logs[worker].splitlines()
                if row["celery_task_id"] in line and "Executing workload in Celery" in line
            ]
            assert lines, f"{worker}'s log does not mention {row['dag_id']}.{row['task_id']} ({row['celery_task_id']})"
            assert row["task_id"] in lines[0] and st.runs[row["dag_id"]] in lines[0], lines[0]
            assert row["celery_task_id"] not in logs[other], f"{row['task_id']} also in {other}'s log"


def assert_resilience_state_in_redis(redis_server: RedisServer, db: int = 1) -> list[str]:
    """The tool-action guard's state is in ``[cronium] resilience_store`` (Redis ``db``), under ``cronium:`` keys.

    The rate limiter records every admitted action there, so after a TOOL_ACTION node ran at least one key
    exists; none may be in database 0, the Celery broker's.
    """
    keys = sorted(k.decode() for k in redis_server.client(db).scan_iter(match="cronium:*"))
    assert keys, f"no cronium:* keys in Redis database {db} (the resilience store)"
    broker_keys = list(redis_server.client(0).scan_iter(match="cronium:*"))
    assert not broker_keys, f"resilience keys in the broker's database 0: {broker_keys}"
    return keys


def test_tool_action_used_the_shared_resilience_store(finished_runs: Stack) -> None:
    st = finished_runs
    with diagnose_on_failure(st, "tool action / resilience store"):
        notify = next(row for row in st.task_rows(SPREAD_DAG) if row["task_id"] == "node_notify")
        assert notify["state"] == "success", notify
        posts = [r for r in st.webhook.requests if r.method == "POST"]
        assert len(posts) == 1, [(r.method, r.path) for r in st.webhook.requests]
        # the action's parameters with the node's input (gather's output) laid over them
        assert posts[0].json() == {"text": "spread finished", "slot": 6}
        keys = assert_resilience_state_in_redis(st.redis)
        print(f"\n[celery-native] resilience keys in Redis db 1 (ran on {notify['celery_worker']}): {keys}")
