"""40 independent script events on the CeleryExecutor: one Celery worker vs two, in one run of this benchmark.

The stack of tests/test_celery_native.py, started natively on loopback: a private PostgreSQL (metadata database
and Celery result backend), a private Redis (broker), ``airflow api-server``, ``scheduler``, ``dag-processor``
and two ``airflow celery worker`` processes (``worker-a``, ``worker-b``, concurrency 4 each). The dags folder
holds the template DAG file, the records folder 40 ACTIVE BASH events (ids 7001-7040) whose script sleeps 5 s and
runs in a container of the runtime image. Each phase triggers the 40 DAGs through the REST API and waits for
the 40 runs; its wall time runs from the first trigger to the last run's end (PostgreSQL's ``dag_run.end_date``).

Both workers run in every phase: in a one-worker phase worker-b stops consuming the ``default`` queue (Celery's
``cancel_consumer``) and takes it up again for a two-worker phase (``add_consumer``), so the two phases differ in
worker slots (4 vs 8) only. Celery's result backend records which worker ran each task; each phase is checked
to have used the workers it should. A warm-up of 8 events on both workers runs first; then the phases, one, two,
two, one (``--rounds 1``: one, two). Target: one-worker wall time / two-worker wall time >= 1.8 (medians).

Shown too, to say what limits the figures: each phase's median task duration and queue wait, the most tasks
running at once, how long each worker slot stayed busy after Airflow recorded its task's end (Celery's
``date_done`` - ``ti.end_date``), the lower bound ``ceil(40 / slots) x median task duration``, and CPU: the
machine's busy share and the CPU seconds of the Airflow processes and of dockerd/containerd.

Measured on a 2-core machine: the scripts sleep, so the stack itself uses ~0.5 core; what stretches a task's slot
time beyond its 5 s is container and task-process start-up (slower with 8 at once than 4 when the cores are shared)
and the Task SDK supervisor: about half of the tasks keep their Celery slot ~5 s after the task ended, when the
supervisor misses the task process's exit and sleeps out ``[workers] min_heartbeat_interval`` (5 s) in ``select()``
(``--min-heartbeat-interval`` sets it for a comparison run).

Everything started here is stopped and removed at the end, on error or on SIGTERM/SIGINT: the processes (by their
process groups, then by a marker in their environment), script containers of these DAGs, PostgreSQL, Redis and
the temporary folder. ``--budget`` bounds everything but the teardown.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import secrets
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cpu import CpuMeter, pids_named, process_cpu_seconds

from tests.support.services import (
    ManagedProcess,
    PostgresCluster,
    RedisServer,
    ServiceDied,
    free_port,
    kill_marked,
    processes_with_env,
    stop_all,
    tail,
    wait_for,
)

REPO = Path(__file__).resolve().parents[1]
IMAGE = os.environ.get("CRONIUM_RUNTIME_IMAGE", "cronium-runtime:2")
FIRST_ID = 7001
WORKERS = ("worker-a", "worker-b")
QUEUE = "default"  # [operators] default_queue
MARKER = "CRONIUM_BENCH_CELERY"
TARGET = 1.8  # one-worker wall time / two-worker wall time, at least
IDLE_SAMPLE_SECONDS = 5


class OutOfTime(RuntimeError):
    pass


def records(count: int, sleep: int) -> dict[str, Any]:
    return {
        "events": [
            {
                "id": FIRST_ID + i,
                "userId": "bench",
                "name": f"Sleep {i + 1}",
                "type": "BASH",
                "status": "ACTIVE",
                "triggerType": "MANUAL",
                "content": f"sleep {sleep}\ncronium_output '{{\"event\": {i + 1}}}'\n",
                "timeoutValue": 120,
                "timeoutUnit": "SECONDS",
            }
            for i in range(count)
        ]
    }


def venv_bin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


@dataclass
class Stack:
    home: Path
    events: int
    concurrency: int
    deadline: float
    marker: str = field(default_factory=lambda: uuid.uuid4().hex)
    pg: PostgresCluster = field(default_factory=PostgresCluster)
    redis: RedisServer = field(default_factory=RedisServer)
    services: dict[str, ManagedProcess] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    api_port: int = 0
    started_at: float = field(default_factory=time.time)
    verbose: bool = False
    min_heartbeat_interval: int | None = None  # [workers] min_heartbeat_interval; None: Airflow's default (5)

    @property
    def dag_ids(self) -> list[str]:
        return [f"cronium_event_{FIRST_ID + i}" for i in range(self.events)]

    def left(self) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise OutOfTime("the benchmark's time budget is used up (--budget)")
        return remaining

    def wait(self, predicate: Callable[[], bool], limit: float, what: str, interval: float = 1.0) -> None:
        def check() -> bool:
            self.check_alive()
            return predicate()

        wait_for(check, min(limit, self.left()), what, interval=interval)

    def check_alive(self) -> None:
        for name, process in self.services.items():
            if not process.alive():
                raise ServiceDied(f"{name} exited; its log ends:\n{process.tail(30)}")

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        return self.pg.query(sql, params)

    # -- start ------------------------------------------------------------------------------------------
    def start(self, sleep: int) -> None:
        self.pg.start()
        self.redis.start()
        (self.home / "dags").mkdir()
        shutil.copy(REPO / "dags_templates" / "cronium_dags.py", self.home / "dags" / "cronium_dags.py")
        (self.home / "records").mkdir()
        (self.home / "records" / "bench.json").write_text(json.dumps(records(self.events, sleep)))
        self.api_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
        env.pop("AIRFLOW_CONFIG", None)
        env.update(
            {
                MARKER: self.marker,
                "PYTHONUNBUFFERED": "1",
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.home / "dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__FERNET_KEY": "tHzVtBrTpU8Q5dJ9ocwXCsH0qvBy6aGjKxE3YbVz2gc=",
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CORE__PARALLELISM": "64",  # above the 40 tasks: the worker slots are the only bound
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",  # REST triggers; api-server on loopback
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.pg.sqlalchemy_url("postgresql+psycopg2"),
                "AIRFLOW__CELERY__BROKER_URL": self.redis.url(0),
                "AIRFLOW__CELERY__RESULT_BACKEND": self.pg.sqlalchemy_url("db+postgresql+psycopg2"),
                "AIRFLOW__CELERY__EXTRA_CELERY_CONFIG": json.dumps({"result_extended": True}),
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.concurrency),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.api_port}",
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                "CRONIUM_RECORDS_DIR": str(self.home / "records"),
                "AIRFLOW__CRONIUM__IMAGE": IMAGE,
                "AIRFLOW__CRONIUM__RESILIENCE_STORE": self.redis.url(1),
            }
        )
        if self.min_heartbeat_interval is not None:
            env["AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL"] = str(self.min_heartbeat_interval)
        self.env = env
        import subprocess

        migrate = subprocess.run(
            [venv_bin("airflow"), "db", "migrate"],
            env=env,
            cwd=str(self.home),
            capture_output=True,
            text=True,
            timeout=min(300, self.left()),
        )
        if migrate.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{migrate.stdout[-2000:]}\n{migrate.stderr[-2000:]}")
        self.service("api-server", "api-server", "--host", "127.0.0.1", "--port", str(self.api_port), "--workers", "1")
        self.service("scheduler", "scheduler")
        self.service("dag-processor", "dag-processor")
        for worker in WORKERS:
            # --skip-serve-logs: two log servers on one machine would both bind port 8793
            self.service(
                f"celery-{worker}",
                *("celery", "worker", "--celery-hostname", f"{worker}@%h", "--queues", QUEUE),
                *("--concurrency", str(self.concurrency), "--skip-serve-logs"),
            )
        self.wait(lambda: http_status(f"{self.api_url}/api/v2/monitor/health") == 200, 180, "api-server")
        self.wait(lambda: set(self.worker_names.values()) <= self.ping(), 180, "both Celery workers")
        ids = tuple(self.dag_ids)

        def parsed() -> bool:
            rows = self.query(
                "SELECT count(*) FROM dag d JOIN serialized_dag s ON s.dag_id = d.dag_id "
                "WHERE d.dag_id = ANY(%s) AND NOT d.is_paused",
                (list(ids),),
            )
            return int(rows[0][0]) == len(ids)

        self.wait(parsed, 180, f"{len(ids)} DAGs parsed and unpaused")

    def service(self, name: str, *args: str) -> None:
        log = self.home / "service-logs" / f"{name}.log"
        process = ManagedProcess(name, [venv_bin("airflow"), *args], log, env=self.env, cwd=str(self.home))
        self.services[name] = process.start()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def worker_names(self) -> dict[str, str]:
        return {w: f"{w}@{socket.gethostname()}" for w in WORKERS}

    # -- Celery control ---------------------------------------------------------------------------------
    def _control(self, action: Callable[[Any], Any]) -> Any:
        from celery import Celery

        app = Celery(broker=self.redis.url(0))
        try:
            return action(app)
        finally:
            app.close()

    def ping(self) -> set[str]:
        replies = self._control(lambda app: app.control.ping(timeout=2.0)) or []
        return {name for reply in replies for name in reply}

    def consuming(self) -> set[str]:
        """The workers that consume the default queue now."""
        queues = self._control(lambda app: app.control.inspect(timeout=2.0).active_queues()) or {}
        return {name for name, qs in queues.items() if any(q.get("name") == QUEUE for q in qs)}

    def set_workers(self, count: int) -> None:
        """worker-a always consumes the queue; worker-b only when ``count`` is 2."""
        b = self.worker_names["worker-b"]
        if count == 2:
            self._control(lambda app: app.control.add_consumer(QUEUE, destination=[b], reply=True, timeout=5))
        else:
            self._control(lambda app: app.control.cancel_consumer(QUEUE, destination=[b], reply=True, timeout=5))
        wanted = set(list(self.worker_names.values())[:count])
        self.wait(lambda: self.consuming() == wanted, 30, f"exactly {sorted(wanted)} consuming {QUEUE!r}")

    # -- runs -------------------------------------------------------------------------------------------
    def trigger(self, dag_id: str, run_id: str) -> None:
        body = json.dumps({"dag_run_id": run_id, "logical_date": None, "conf": {}}).encode()
        request = urllib.request.Request(
            f"{self.api_url}/api/v2/dags/{dag_id}/dagRuns",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            if response.status not in (200, 201):
                raise RuntimeError(f"trigger {dag_id}: HTTP {response.status}")

    def run_phase(self, label: str, dag_ids: list[str], timeout: float) -> dict[str, Any]:
        prefix = f"bench_{label}_{uuid.uuid4().hex[:6]}"
        idle = CpuMeter().start()  # the machine with this stack idle: other load
        time.sleep(IDLE_SAMPLE_SECONDS)
        idle_share = idle.stop()[1]
        meter = CpuMeter().start()
        stack_cpu = self.stack_cpu_seconds()
        docker_cpu = process_cpu_seconds(pids_named("dockerd", "containerd"))
        started_wall = time.time()
        started = time.monotonic()
        for dag_id in dag_ids:
            self.trigger(dag_id, prefix)
        triggered = time.monotonic() - started

        def finished() -> bool:
            rows = self.query(
                "SELECT count(*) FROM dag_run WHERE run_id = %s AND state IN ('success', 'failed')", (prefix,)
            )
            return int(rows[0][0]) == len(dag_ids)

        self.wait(finished, timeout, f"{len(dag_ids)} runs of phase {label}", interval=0.5)
        busy, share = meter.stop()
        result: dict[str, Any] = {
            "label": label,
            "triggered": triggered,
            "machine_cpu_share": share,
            "idle_cpu_share": idle_share,
            "machine_cpu_seconds": busy,
            "stack_cpu_seconds": self.stack_cpu_seconds() - stack_cpu,
            "docker_cpu_seconds": process_cpu_seconds(pids_named("dockerd", "containerd")) - docker_cpu,
        }
        runs = self.query(
            "SELECT dag_id, state, extract(epoch FROM end_date) FROM dag_run WHERE run_id = %s", (prefix,)
        )
        failed = [(d, s) for d, s, _ in runs if s != "success"]
        if failed:
            raise RuntimeError(f"phase {label}: runs not successful: {failed}\n{self.task_logs(prefix)}")
        result["wall"] = max(float(end) for _, _, end in runs) - started_wall
        # Airflow records a task's end through its API just before the Celery task returns: wait for the workers
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            tasks = self.query(
                """
                SELECT ti.dag_id, extract(epoch FROM ti.queued_dttm), extract(epoch FROM ti.start_date),
                       extract(epoch FROM ti.end_date), m.worker, m.status, extract(epoch FROM m.date_done)
                FROM task_instance ti LEFT JOIN celery_taskmeta m ON m.task_id = ti.external_executor_id
                WHERE ti.run_id = %s
                """,
                (prefix,),
            )
            if all(t[5] == "SUCCESS" for t in tasks):
                break
            time.sleep(0.5)
        result["tasks"] = len(tasks)
        # how long each Celery task (the worker slot) went on after Airflow recorded the task's end
        holds = [float(t[6]) - float(t[3]) for t in tasks if t[6] is not None]
        result["hold_median"] = statistics.median(holds) if holds else float("nan")
        result["held_over_2s"] = sum(1 for h in holds if h > 2)
        result["first_start"] = min(float(t[2]) for t in tasks) - started_wall
        result["tail"] = result["wall"] - (max(float(t[3]) for t in tasks) - started_wall)
        if self.verbose:
            for t in sorted(tasks, key=lambda t: float(t[2])):
                queued, start, end = (float(v) - started_wall for v in t[1:4])
                done = float(t[6]) - started_wall if t[6] is not None else float("nan")
                print(
                    f"  {label} {t[0]}: queued +{queued:6.1f}  start +{start:6.1f}  end +{end:6.1f}"
                    f"  slot free +{done:6.1f}  {t[4]}"
                )
        result["duration"] = statistics.median(float(t[3]) - float(t[2]) for t in tasks)
        result["queue_wait"] = statistics.median(float(t[2]) - float(t[1]) for t in tasks)
        result["peak_running"] = peak_overlap([(float(t[2]), float(t[3])) for t in tasks])
        by_worker: dict[str, int] = {}
        for t in tasks:
            by_worker[str(t[4]).split("@")[0]] = by_worker.get(str(t[4]).split("@")[0], 0) + 1
        result["by_worker"] = by_worker
        return result

    def task_logs(self, run_id: str) -> str:
        parts = []
        for log in sorted(self.home.glob(f"logs/dag_id=*/run_id={run_id}/task_id=*/*.log"))[:3]:
            parts.append(f"----- {log} -----\n{tail(log, 30)}")
        return "\n".join(parts)

    def stack_cpu_seconds(self) -> float:
        """CPU of the Airflow processes started here (api-server, scheduler, dag-processor, workers, tasks)."""
        return process_cpu_seconds(processes_with_env(MARKER, self.marker))

    # -- stop -------------------------------------------------------------------------------------------
    def stop(self) -> None:
        workers = [p for n, p in self.services.items() if n.startswith("celery-")]
        killed = stop_all(workers, grace=20)
        killed += stop_all([p for p in self.services.values() if p not in workers], grace=20)
        if killed:
            print(f"[bench-celery] SIGKILL needed for: {killed}", file=sys.stderr)
        leftovers = kill_marked(MARKER, self.marker)
        if leftovers:
            print(f"[bench-celery] killed {len(leftovers)} leftover process(es)", file=sys.stderr)
        self.remove_containers()
        self.redis.stop()
        self.pg.stop()

    def remove_containers(self) -> None:
        with contextlib.suppress(Exception):
            import docker

            client = docker.from_env(timeout=60)
            ours = set(self.dag_ids)
            for container in client.containers.list(all=True, filters={"label": "org.cronium.run=true"}):
                if (container.labels or {}).get("org.cronium.dag_id") in ours:
                    print(f"[bench-celery] removing leftover container {container.short_id}", file=sys.stderr)
                    container.remove(force=True)
            client.close()


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def peak_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def check_components() -> str | None:
    """Why this benchmark cannot run here, or None."""
    try:
        import airflow.providers.celery.executors.celery_executor_utils  # noqa: F401
        import asyncpg  # noqa: F401
        import psycopg2  # noqa: F401
        import redis  # noqa: F401
    except ImportError as exc:
        return f"{exc}; pip install -e '.[celery]'"
    try:
        import docker

        client = docker.from_env(timeout=60)
        client.images.get(IMAGE)
        client.close()
    except Exception as exc:
        return f"Docker engine with {IMAGE}: {exc}; run scripts/build-runtime-image.sh"
    for binary in ("redis-server",):
        if shutil.which(binary) is None:
            return f"{binary} not installed (scripts/install-system.sh)"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=40)
    parser.add_argument("--sleep", type=int, default=5, help="seconds each script sleeps")
    parser.add_argument("--concurrency", type=int, default=4, help="Celery worker concurrency, each worker")
    parser.add_argument("--rounds", type=int, default=2, help="2: one, two, two, one; 1: one, two")
    parser.add_argument("--budget", type=int, default=600, help="seconds for everything but the teardown")
    parser.add_argument("--verbose", action="store_true", help="print each task's times")
    parser.add_argument(
        "--min-heartbeat-interval",
        type=int,
        help="[workers] min_heartbeat_interval for the workers (Airflow's default: 5); see the module's docstring",
    )
    parser.add_argument("--logs", type=Path, help="copy the services' and tasks' logs here before the teardown")
    args = parser.parse_args()
    if not (8 <= args.events <= 100 and 1 <= args.sleep <= 30 and 1 <= args.concurrency <= 8):
        parser.error("--events 8..100, --sleep 1..30, --concurrency 1..8")
    if args.rounds not in (1, 2) or not 120 <= args.budget <= 1200:
        parser.error("--rounds 1 or 2, --budget 120..1200")
    problem = check_components()
    if problem:
        print(f"cannot run: {problem}")
        return 2

    def on_signal(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    began = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="cronium-bench-celery-"))
    stack = Stack(home, args.events, args.concurrency, deadline=began + args.budget, verbose=args.verbose)
    stack.min_heartbeat_interval = args.min_heartbeat_interval
    phases: list[dict[str, Any]] = []
    try:
        stack.start(args.sleep)
        ready = time.monotonic() - began
        print(f"stack ready in {ready:.0f} s: PostgreSQL, Redis, api-server, scheduler, dag-processor, 2 workers")
        phase_timeout = 4 * math.ceil(args.events / args.concurrency) * (args.sleep + 10)
        stack.set_workers(2)
        warm = stack.run_phase("warmup", stack.dag_ids[: 2 * args.concurrency], phase_timeout)
        print(
            f"warm-up: {warm['tasks']} tasks in {warm['wall']:.1f} s on {warm['by_worker']}, first task started"
            f" {warm['first_start']:.1f} s after the first trigger",
            flush=True,
        )
        order = [1, 2] if args.rounds == 1 else [1, 2, 2, 1]
        for workers in order:
            stack.set_workers(workers)
            phase = stack.run_phase(f"{workers}w", stack.dag_ids, phase_timeout)
            phase["workers"] = workers
            phases.append(phase)
            expected = set(WORKERS[:workers])
            if set(phase["by_worker"]) != expected:
                raise RuntimeError(f"phase {workers}w ran on {phase['by_worker']}, expected {sorted(expected)}")
            print(
                f"{workers} worker(s), {workers * args.concurrency} slots: {phase['tasks']} tasks in"
                f" {phase['wall']:.1f} s (triggering took {phase['triggered']:.1f} s); tasks by worker"
                f" {phase['by_worker']}; task duration median {phase['duration']:.2f} s, queue wait median"
                f" {phase['queue_wait']:.1f} s, at most {phase['peak_running']} running at once; first task started"
                f" {phase['first_start']:.1f} s after the first trigger, last run ended {phase['tail']:.1f} s after"
                f" the last task; worker slot busy after the task's end: median {phase['hold_median']:.1f} s,"
                f" over 2 s for {phase['held_over_2s']} task(s); lower bound"
                f" ceil({args.events}/{workers * args.concurrency}) x {phase['duration']:.2f} s ="
                f" {math.ceil(args.events / (workers * args.concurrency)) * phase['duration']:.1f} s; machine CPU"
                f" busy {100 * phase['machine_cpu_share']:.0f}% ({phase['machine_cpu_seconds']:.0f} CPU-s, of"
                f" which Airflow processes {phase['stack_cpu_seconds']:.0f}, dockerd+containerd"
                f" {phase['docker_cpu_seconds']:.0f}) on {os.cpu_count()} cores; {100 * phase['idle_cpu_share']:.0f}%"
                " just before, with the stack idle (other load)",
                flush=True,
            )
    except OutOfTime as exc:
        print(f"stopped: {exc}")
        return 1
    finally:
        t0 = time.monotonic()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the teardown runs to its end
        try:
            stack.stop()
            if args.logs is not None:
                shutil.copytree(home / "service-logs", args.logs / "service-logs", dirs_exist_ok=True)
                if (home / "logs").exists():
                    shutil.copytree(home / "logs", args.logs / "logs", dirs_exist_ok=True)
        finally:
            shutil.rmtree(home, ignore_errors=True)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        print(f"teardown {time.monotonic() - t0:.0f} s; total {time.monotonic() - began:.0f} s")

    one = statistics.median(p["wall"] for p in phases if p["workers"] == 1)
    two = statistics.median(p["wall"] for p in phases if p["workers"] == 2)
    ratio = one / two
    runs = len(phases) // 2
    title = f"{args.events} events x {args.sleep} s script, Celery concurrency {args.concurrency}"
    print(f"\n{title} (seconds, {runs} run(s) each)")
    print(f"{'measure':<40}{'1 worker':>12}{'2 workers':>12}{'speed-up':>10}  target")
    verdict = "met" if ratio >= TARGET else "NOT met"
    name = "wall time, trigger to last run end"
    print(f"{name:<40}{one:>12.2f}{two:>12.2f}{ratio:>9.2f}x  >= {TARGET:.2f}x {verdict}")
    print(f"all targets: {verdict}")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
