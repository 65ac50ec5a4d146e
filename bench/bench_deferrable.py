"""Deferrable mode: 32 script events that each sleep 30 s, at once, on the LocalExecutor with 4 worker slots.

The stack of tests/test_deferrable_container.py (tests/support/local_stack.py): SQLite, ``[core] parallelism =
4`` (four task slots), ``airflow api-server``, ``scheduler``, ``dag-processor`` and ``triggerer`` on loopback.
The dags folder holds the project's template DAG file with a records folder of BASH events that sleep
(``[cronium] deferrable = True``: their tasks defer) and a DAG file of the same scripts as
``CroniumScriptOperator(deferrable=False)`` tasks (the normal mode, one DAG each).

Phases, one after another, each triggered through the REST API; a phase's wall time runs from its first trigger
to its last run's end (``dag_run.end_date``):

1. warm-up: one 1-second script in each mode;
2. one deferred script alone, then ``--scripts`` (32) deferred scripts at once: target <= 1.5x the one;
3. one normal script alone, then ``--normal-scripts`` (32) normal scripts at once: shown (about 8x: four slots
   hold four scripts at a time), no target. ``--deferred-only`` skips it.

Also shown: the most script containers running at once in each phase (sampled each 0.5 s), the machine's CPU
busy share, and the lower bound of the normal mode, ``ceil(scripts / slots) x one script``.

A deferred script costs two task executions (the start, and the resume that collects), each a task process with
its DAG parse: on a 2-core machine the 64 executions of 32 deferred scripts keep the cores busy, which is what
stretches the 32 beyond one. ``[workers] min_heartbeat_interval`` is 1 here (``--min-heartbeat-interval``):
with Airflow's default of 5 the task supervisor, when it misses its task process's exit, keeps the worker slot
up to 5 s longer (see bench_celery_workers.py), which a deferred script pays twice.

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
from common import report
from cpu import CpuMeter

from tests.support.local_stack import LocalStack

REPO = Path(__file__).resolve().parents[1]
IMAGE = "cronium-runtime:1"
FIRST_ID = 96001
WARM_ID = 96000
SLOTS = 4
TARGET = 1.5


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
        print(
            f"  {name}: {len(dag_ids)} run(s) in {wall:.1f} s, at most {most} script container(s) at once; "
            f"machine CPU busy {busy_share:.0%} ({busy_seconds:.0f} CPU s)",
            flush=True,
        )
        if failed:
            print(f"  {name}: failed runs: {failed}", flush=True)
        return wall, most, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--scripts", type=int, default=32, help="deferred scripts at once (default 32)")
    parser.add_argument("--sleep", type=int, default=30, help="seconds each script sleeps (default 30)")
    parser.add_argument("--normal-scripts", type=int, default=32, help="normal-mode scripts at once (default 32)")
    parser.add_argument("--deferred-only", action="store_true", help="skip the normal-mode phases")
    parser.add_argument(
        "--min-heartbeat-interval",
        type=int,
        default=1,
        help="[workers] min_heartbeat_interval of the stack (default 1; Airflow's default is 5)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the Airflow home (its path is printed)")
    args = parser.parse_args()

    import docker

    client = docker.from_env(timeout=120)
    client.images.get(IMAGE)
    home = Path(tempfile.mkdtemp(prefix="cronium-bench-deferrable-"))
    (home / "records").mkdir()
    (home / "records" / "bench.json").write_text(json.dumps(records(args.scripts, args.sleep)))
    stack = LocalStack.create(
        home,
        home / "records",
        {
            "cronium_dags.py": (REPO / "dags_templates" / "cronium_dags.py").read_text(),
            "bench_normal.py": normal_dags(max(args.normal_scripts, 1), args.sleep),
        },
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
        deferred_ids = [f"cronium_event_{FIRST_ID + i}" for i in range(args.scripts)]
        normal_ids = [f"bench_normal_{i}" for i in range(1, args.normal_scripts + 1)]
        stack.wait_parsed({f"cronium_event_{WARM_ID}", "bench_normal_warm", *deferred_ids, *normal_ids})
        print(f"stack up and DAGs parsed in {time.monotonic() - t0:.0f} s (LocalExecutor, {SLOTS} slots)", flush=True)
        bench = Bench(stack, client)
        bench.phase("warm-up", [f"cronium_event_{WARM_ID}", "bench_normal_warm"], 300)
        one_deferred, _, failed1 = bench.phase("1 deferred", deferred_ids[:1], 600)
        many_deferred, most_deferred, failed2 = bench.phase(f"{args.scripts} deferred", deferred_ids, 1200)
        if args.deferred_only:
            print(f"deferred: {many_deferred:.1f} s / {one_deferred:.1f} s = {many_deferred / one_deferred:.2f}x")
            return 0 if many_deferred / one_deferred <= TARGET else 1
        one_normal, _, failed3 = bench.phase("1 normal", normal_ids[:1], 600)
        many_normal, most_normal, failed4 = bench.phase(f"{args.normal_scripts} normal", normal_ids, 3600)
        bound = math.ceil(args.normal_scripts / SLOTS) * one_normal
        print(
            f"\nscripts sleep {args.sleep} s; most containers at once: deferred {most_deferred}, normal {most_normal}"
            f" ({SLOTS} slots); normal-mode lower bound ceil({args.normal_scripts}/{SLOTS}) x one = {bound:.1f} s"
        )
        ok = report(
            f"Deferrable mode: wall time of many {args.sleep}-second scripts at once / one script ({SLOTS} slots)",
            [
                (f"deferred: {args.scripts} / 1 (s)", many_deferred, one_deferred, TARGET),
                (f"normal: {args.normal_scripts} / 1 (s)", many_normal, one_normal, None),
            ],
            TARGET,
        )
        ok = ok and not (failed1 or failed2 or failed3 or failed4)
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
