"""Deferrable mode: 32 script events that each sleep 30 s, at once, on the LocalExecutor with 4 worker slots,
against Airflow's own defer-and-resume floor on the same stack.

The stack of tests/test_deferrable_container.py (tests/support/local_stack.py): SQLite, ``[core] parallelism =
4`` (four task slots), ``airflow api-server``, ``scheduler``, ``dag-processor`` and ``triggerer`` on loopback.
The dags folder holds the project's template DAG file with a records folder of BASH events that sleep
(``[cronium] deferrable = True``: their tasks defer), a DAG file of tasks that defer to Airflow's
``TimeDeltaTrigger`` for as long and resume (bench/airflow_timer.py: the baseline), and with ``--with-normal`` a
DAG file of the same scripts as ``CroniumScriptOperator(deferrable=False)`` tasks (the normal mode, one DAG each).

Phases, one after another, each triggered through the REST API; a phase's wall time runs from its first trigger
to its last run's end (``dag_run.end_date``):

1. warm-up: one 1-second script, and one 1-second timer;
2. ``--repeat`` (3) repetitions, each of: one deferred script alone, then ``--scripts`` (32) at once; one
   timer deferral alone, then as many at once (which of the two goes first alternates between repetitions).
   Each gives a ratio, many / one: ours (scripts) and Airflow's (timers). Target: the median of ours <= 1.05x
   the median of Airflow's;
3. with ``--with-normal``: one normal script alone, then ``--normal-scripts`` (32) normal scripts at once:
   shown (about 8x: four slots hold four scripts at a time), no target.

Also shown: the most script containers running at once in each phase (sampled each 0.5 s), the machine's CPU
busy share, and the lower bound of the normal mode, ``ceil(scripts / slots) x one script``.

A deferred task costs two task executions (the start, and the resume), each a task process with its DAG parse:
on a 2-core machine the 64 executions of 32 deferred tasks keep the cores busy, which is what stretches the 32
beyond one, for the timers as for the scripts. ``[workers] min_heartbeat_interval`` is 1 here
(``--min-heartbeat-interval``): with Airflow's default of 5 the task supervisor, when it misses its task
process's exit, keeps the worker slot up to 5 s longer (see bench_celery_workers.py), which a deferred task pays
twice.

Everything started is stopped and removed at the end, on error or on SIGTERM/SIGINT (processes by their process
groups and by a marker in their environment, script containers of these DAGs, the temporary folder).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
import signal
import sys
import tempfile
import textwrap
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from airflow_timer import timer_dags
from common import median, report
from cpu import CpuMeter

from tests.support.local_stack import LocalStack

REPO = Path(__file__).resolve().parents[1]
IMAGE = "cronium-runtime:2"
FIRST_ID = 96001
WARM_ID = 96000
SLOTS = 4
TARGET = 1.05  # median many/one ratio of the deferred scripts, at most this times that of Airflow's timers
TIMER = "bench_timer_"  # Airflow's timer deferrals: bench_timer_0 (1 s, the warm-up) .. bench_timer_<scripts>


def records(scripts: int, sleep: int) -> dict[str, Any]:
    def event(event_id: int, seconds: int) -> dict[str, Any]:
        return {
            "id": event_id,
            "userId": "bench",
            "name": f"Sleep {event_id}",
            "type": "BASH",
            "status": "ACTIVE",
            "triggerType": "MANUAL",
            "content": f"sleep {seconds}\ncronium_output '{{\"event\": {event_id}}}'\n",
            "timeoutValue": 10,
            "timeoutUnit": "MINUTES",
        }

    return {"events": [event(WARM_ID, 1)] + [event(FIRST_ID + i, sleep) for i in range(scripts)]}


def normal_dags(scripts: int, sleep: int) -> str:
    return textwrap.dedent(
        f"""\
        import datetime

        import pendulum
        from airflow.sdk import DAG

        from cronium_provider.operators.container_script import CroniumScriptOperator

        for number, seconds in [("warm", 1)] + [(str(i), {sleep}) for i in range(1, {scripts} + 1)]:
            start = pendulum.datetime(2024, 1, 1, tz="UTC")
            with DAG(f"bench_normal_{{number}}", schedule=None, start_date=start) as dag:
                CroniumScriptOperator(
                    task_id="run",
                    language="BASH",
                    script=f"sleep {{seconds}}\\ncronium_output '{{{{\\"event\\": \\"{{number}}\\"}}}}'\\n",
                    deferrable=False,
                    execution_timeout=datetime.timedelta(minutes=10),
                )
            globals()[dag.dag_id] = dag
        """
    )


def _time(value: Any) -> float:
    text = str(value).replace(" ", "T")
    moment = datetime.fromisoformat(text if ("+" in text[10:] or text.endswith("Z")) else text + "+00:00")
    return moment.timestamp()


class Bench:
    def __init__(self, stack: LocalStack, docker: Any) -> None:
        self.stack = stack
        self.docker = docker

    def running_containers(self) -> int:
        return len(
            [
                c
                for c in self.docker.api.containers(filters={"label": "org.cronium.run=true"})
                if str((c.get("Labels") or {}).get("org.cronium.dag_id", "")).startswith(
                    ("cronium_event_96", "bench_normal_")
                )
                and "sleep" in json.dumps(c.get("Command", ""))
            ]
        )

    def phase(self, name: str, dag_ids: list[str], timeout: float) -> tuple[float, int, list[str]]:
        """Trigger the DAGs at once; wall time (first trigger to last run end), most containers at once,
        and the states of the runs."""
        started = time.time()
        cpu = CpuMeter().start()
        runs = {dag_id: self.stack.trigger(dag_id, {}) for dag_id in dag_ids}
        deadline = time.monotonic() + timeout
        most = 0
        states: dict[str, str | None] = {}
        while time.monotonic() < deadline:
            self.stack.check_alive()
            most = max(most, self.running_containers())
            states = {d: self.stack.run_state(d, r) for d, r in runs.items()}
            if all(s in ("success", "failed") for s in states.values()):
                break
            time.sleep(0.5)
        else:
            raise TimeoutError(f"{name}: runs not finished after {timeout:.0f} s: {states}")
        ends = [
            _time(row[0])
            for d, r in runs.items()
            for row in self.stack.query("SELECT end_date FROM dag_run WHERE dag_id = ? AND run_id = ?", (d, r))
        ]
        wall = max(ends) - started
        busy_seconds, busy_share = cpu.stop()
        failed = sorted(d for d, s in states.items() if s != "success")
        containers = f", at most {most} script container(s) at once" if most else ""
        print(
            f"  {name}: {len(dag_ids)} run(s) in {wall:.1f} s{containers}; "
            f"machine CPU busy {busy_share:.0%} ({busy_seconds:.0f} CPU s)",
            flush=True,
        )
        if failed:
            print(f"  {name}: failed runs: {failed}", flush=True)
        return wall, most, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--scripts", type=int, default=32, help="deferred scripts (and timers) at once (default 32)")
    parser.add_argument("--sleep", type=int, default=30, help="seconds each script sleeps (default 30)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of the deferred phases (default 3)")
    parser.add_argument("--with-normal", action="store_true", help="add the normal-mode phases (long)")
    parser.add_argument("--normal-scripts", type=int, default=32, help="normal-mode scripts at once (default 32)")
    parser.add_argument(
        "--min-heartbeat-interval",
        type=int,
        default=1,
        help="[workers] min_heartbeat_interval of the stack (default 1; Airflow's default is 5)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the Airflow home (its path is printed)")
    args = parser.parse_args()
    if args.scripts < 1 or args.repeat < 1:
        parser.error("--scripts and --repeat must be at least 1")

    import docker

    client = docker.from_env(timeout=120)
    client.images.get(IMAGE)
    home = Path(tempfile.mkdtemp(prefix="cronium-bench-deferrable-"))
    (home / "records").mkdir()
    (home / "records" / "bench.json").write_text(json.dumps(records(args.scripts, args.sleep)))
    dag_files = {
        "cronium_dags.py": (REPO / "dags_templates" / "cronium_dags.py").read_text(),
        "bench_timer.py": timer_dags(TIMER, args.scripts, args.sleep),
    }
    normal_scripts = args.normal_scripts if args.with_normal else 0
    if normal_scripts:
        dag_files["bench_normal.py"] = normal_dags(normal_scripts, args.sleep)
    stack = LocalStack.create(
        home,
        home / "records",
        dag_files,
        parallelism=SLOTS,
        extra_env={
            "AIRFLOW__CRONIUM__DEFERRABLE": "True",
            "AIRFLOW__CRONIUM__IMAGE": IMAGE,
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": str(args.min_heartbeat_interval),
            # the DAG files do not change during the benchmark: no re-parse every 30 s on the shared cores
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
        },
    )

    def on_signal(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    ok = False
    try:
        t0 = time.monotonic()
        stack.start()
        kinds = {
            "ours": ("deferred script", [f"cronium_event_{FIRST_ID + i}" for i in range(args.scripts)]),
            "airflow": ("Airflow timer", [f"{TIMER}{n}" for n in range(1, args.scripts + 1)]),
        }
        warm = [f"cronium_event_{WARM_ID}", f"{TIMER}0"]
        normal_ids = [f"bench_normal_{i}" for i in range(1, normal_scripts + 1)]
        if normal_scripts:
            warm.append("bench_normal_warm")
        stack.wait_parsed({*warm, *kinds["ours"][1], *kinds["airflow"][1], *normal_ids})
        print(f"stack up and DAGs parsed in {time.monotonic() - t0:.0f} s (LocalExecutor, {SLOTS} slots)", flush=True)
        bench = Bench(stack, client)
        failed = bench.phase("warm-up", warm, 300)[2]
        ratios: dict[str, list[float]] = {"ours": [], "airflow": []}
        for repetition in range(1, args.repeat + 1):
            order = ("ours", "airflow") if repetition % 2 else ("airflow", "ours")
            for kind in order:
                label, dag_ids = kinds[kind]
                one, _, failed_one = bench.phase(f"#{repetition} 1 {label}", dag_ids[:1], 600)
                many, _, failed_many = bench.phase(f"#{repetition} {args.scripts} {label}s", dag_ids, 1200)
                ratios[kind].append(many / one)
                failed += failed_one + failed_many
            ours, airflow = ratios["ours"][-1], ratios["airflow"][-1]
            print(
                f"repetition {repetition}: many/one ours {ours:.3f}x, Airflow's {airflow:.3f}x "
                f"(ours / Airflow's {ours / airflow:.3f})",
                flush=True,
            )
        rows: list[tuple[Any, ...]] = [
            (f"median {args.scripts}/1: ours / Airflow's", median(ratios["ours"]), median(ratios["airflow"]))
        ]
        if normal_scripts:
            one_normal, _, failed_one = bench.phase("1 normal", normal_ids[:1], 600)
            many_normal, most_normal, failed_many = bench.phase(f"{normal_scripts} normal", normal_ids, 3600)
            failed += failed_one + failed_many
            bound = math.ceil(normal_scripts / SLOTS) * one_normal
            print(
                f"normal mode: most containers at once {most_normal} ({SLOTS} slots); lower bound "
                f"ceil({normal_scripts}/{SLOTS}) x one = {bound:.1f} s"
            )
            rows.append((f"normal: {normal_scripts} / 1 (s)", many_normal, one_normal, None))
        print(
            f"\nmany/one ratios in {args.repeat} repetition(s): ours {', '.join(f'{r:.3f}' for r in ratios['ours'])}"
            f" (median {median(ratios['ours']):.3f}); Airflow's "
            f"{', '.join(f'{r:.3f}' for r in ratios['airflow'])} (median {median(ratios['airflow']):.3f})"
        )
        ok = report(
            f"Deferrable mode: {args.scripts} {args.sleep}-second deferrals at once / one ({SLOTS} slots), "
            "deferred scripts vs Airflow's timer",
            rows,
            TARGET,
        )
        if failed:
            print(f"runs that did not succeed: {failed}", flush=True)
        ok = ok and not failed
    except KeyboardInterrupt as exc:
        print(f"interrupted ({exc}): stopping", flush=True)
    except Exception as exc:
        print(f"benchmark failed: {type(exc).__name__}: {exc}\n{stack.diagnostics()}", flush=True)
    finally:
        stack.stop()
        for container in client.api.containers(all=True, filters={"label": "org.cronium.run=true"}):
            dag_id = str((container.get("Labels") or {}).get("org.cronium.dag_id", ""))
            if dag_id.startswith(("cronium_event_96", "bench_normal_")):
                with contextlib.suppress(Exception):
                    client.api.remove_container(container["Id"], v=True, force=True)
        for volume in (client.api.volumes(filters={"label": "org.cronium.run=true"}) or {}).get("Volumes") or []:
            dag_id = str((volume.get("Labels") or {}).get("org.cronium.dag_id", ""))
            if dag_id.startswith(("cronium_event_96", "bench_normal_")):
                with contextlib.suppress(Exception):
                    client.api.remove_volume(volume["Name"], force=True)
        client.close()
        if args.keep:
            print(f"Airflow home kept: {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
