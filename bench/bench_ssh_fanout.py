"""A remote script event on 64 servers vs the same event on 1 server: one task, all servers at once.

64 real sshd processes on 127.0.0.2-127.0.0.65 (port 2291); the BASH script sleeps 2 s. All figures come from
one run of this benchmark, the two DAGs alternating: the duration of the event's task (start to end, as
Airflow records it, under ``dag.test()``) on 1 server and on 64 servers, median of ``--runs`` each (target:
64 servers <= 2x one server). Shown without a target, to say what limits the 64-server figure: the slowest
and fastest server's own script time inside the 64-server task, the wall time of 64 SSH handshakes at once vs
one, and the share of the machine's CPU (all cores) busy during the 64-server tasks.

``--bound N`` (repeatable) adds the 64-server event run with at most N servers at once (a semaphore around each
server's connect-and-run, what a ``max_parallel_servers`` parameter of the operator would do), for comparison.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import statistics
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import median, private_airflow_home, report
from cpu import CpuMeter
from ssh_fleet import SSHFleet

SCRIPT = "sleep 2; cronium_output '{\"ok\": true}'"
SERVERS = 64
PORT = 2291  # bench_ssh_servers.py uses 2290, the tests 2201/2222
TARGET = 2.0
DAG_FILE = """
import threading
import pendulum
from airflow.sdk import DAG
from cronium_provider.operators.ssh_script import CroniumRemoteScriptOperator

class BoundedRemoteScript(CroniumRemoteScriptOperator):
    # the benchmark's stand-in for a max_parallel_servers bound: at most `bound` servers connect and run at once
    def __init__(self, *, bound, **kwargs):
        super().__init__(**kwargs)
        self.bound = bound

    def run_event(self, context, run_input):
        self._gate = threading.BoundedSemaphore(self.bound)
        return super().run_event(context, run_input)

    def _run_one(self, server, hook, job):
        with self._gate:
            return super()._run_one(server, hook, job)

start = pendulum.datetime(2024, 1, 1, tz="UTC")
with DAG("one", schedule=None, start_date=start) as one:
    CroniumRemoteScriptOperator(task_id="run", language="BASH", script=SCRIPT, servers=TARGETS[:1])
with DAG("fleet", schedule=None, start_date=start) as fleet:
    CroniumRemoteScriptOperator(task_id="run", language="BASH", script=SCRIPT, servers=TARGETS)
bounded = {}
for bound in BOUNDS:
    with DAG(f"fleet_bound_{bound}", schedule=None, start_date=start) as dag:
        BoundedRemoteScript(task_id="run", language="BASH", script=SCRIPT, servers=TARGETS, bound=bound)
    bounded[bound] = dag
"""


def load_dags(path: Path, targets: list[dict[str, str]], bounds: list[int]) -> Any:
    import importlib.util

    path.write_text(f"SCRIPT = {SCRIPT!r}\nTARGETS = {targets!r}\nBOUNDS = {bounds!r}\n" + textwrap.dedent(DAG_FILE))
    spec = importlib.util.spec_from_file_location("bench_ssh_fanout_dags", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_task(dag: Any) -> tuple[float, list[float]]:
    """The task's duration and each server's own script time (from the ``servers`` XCom)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    dag_run = dag.test()
    with create_session() as session:
        [ti] = dag_run.get_task_instances(session=session)
        assert str(getattr(ti.state, "value", ti.state)) == "success", (dag.dag_id, ti.state)
        row = (
            session.query(XComModel)
            .filter(XComModel.dag_id == dag.dag_id, XComModel.run_id == dag_run.run_id, XComModel.key == "servers")
            .one()
        )
        servers = row.value if isinstance(row.value, dict) else __import__("json").loads(row.value)
        assert all(s["status"] == "SUCCESS" for s in servers.values()), servers
        return (ti.end_date - ti.start_date).total_seconds(), [s["duration_seconds"] for s in servers.values()]


def handshake_seconds(targets: list[dict[str, str]]) -> float:
    """Wall time of SSH connections (key exchange + public key auth) to every target at once."""
    from cronium_provider.operators.ssh_script import connect, ssh_hook

    hooks = [(ssh_hook(t["conn_id"], t["name"]), t["name"]) for t in targets]
    barrier = threading.Barrier(len(hooks))

    def one(hook: Any, name: str) -> float:
        barrier.wait()
        started = time.perf_counter()
        client = connect(hook, name)
        took = time.perf_counter() - started
        client.close()
        return took

    with ThreadPoolExecutor(max_workers=len(hooks)) as pool:
        return max(pool.map(lambda h: one(*h), hooks))


def hooks_seconds(targets: list[dict[str, str]]) -> float:
    """Time to read every target's connection into an SSH hook, one after another (as the operator does)."""
    from cronium_provider.operators.ssh_script import ssh_hook

    started = time.perf_counter()
    for target in targets:
        ssh_hook(target["conn_id"], target["name"])
    return time.perf_counter() - started


def _stop_on_sigterm(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--servers", type=int, default=SERVERS)
    parser.add_argument("--bound", type=int, action="append", default=[], help="also run with at most N at once")
    args = parser.parse_args()
    if not 1 <= args.runs <= 20 or not 2 <= args.servers <= 200 or any(not 1 <= b <= args.servers for b in args.bound):
        parser.error("--runs 1..20, --servers 2..200, --bound 1..servers")

    started = time.perf_counter()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)  # `finally` then stops the sshd processes
    home = private_airflow_home("cronium-bench-fanout-")
    fleet = SSHFleet(args.servers, PORT)
    try:
        fleet.start()
        print(f"{args.servers} sshd on 127.0.0.2-127.0.0.{args.servers + 1}:{PORT} up", flush=True)
        targets = fleet.connections("bench_fanout")
        module = load_dags(home / "dags" / "bench_ssh_fanout.py", targets, args.bound)

        run_task(module.one)  # warm-up: imports, first serialisation, sshd's first logins
        run_task(module.fleet)
        one: list[float] = []
        fleet_times: list[float] = []
        per_server: list[float] = []
        cpu_share: list[float] = []
        cpu_seconds: list[float] = []
        own_seconds: list[float] = []
        server_seconds: list[float] = []
        background: list[float] = []
        bounded: dict[int, list[float]] = {b: [] for b in args.bound}
        for i in range(args.runs):
            for name in ["one", "fleet"] if i % 2 == 0 else ["fleet", "one"]:
                if name == "one":
                    meter = CpuMeter().start()
                    one.append(run_task(module.one)[0])
                    background.append(meter.stop()[1])
                    continue
                meter = CpuMeter().start()
                own = resource.getrusage(resource.RUSAGE_SELF)
                servers_before = fleet.server_cpu_seconds()
                took, scripts = run_task(module.fleet)
                after = resource.getrusage(resource.RUSAGE_SELF)
                server_seconds.append(fleet.server_cpu_seconds() - servers_before)
                busy, share = meter.stop()
                cpu_share.append(share)
                cpu_seconds.append(busy)
                own_seconds.append(after.ru_utime + after.ru_stime - own.ru_utime - own.ru_stime)
                fleet_times.append(took)
                per_server.extend(scripts)
            for bound in args.bound:
                bounded[bound].append(run_task(module.bounded[bound])[0])
        shakes_one = median([handshake_seconds(targets[:1]) for _ in range(3)])
        shakes_all = median([handshake_seconds(targets) for _ in range(3)])
        hooks = median([hooks_seconds(targets) for _ in range(3)])

        n = args.servers
        print(
            f"\ninside the {n}-server task, each server's script time (upload, run, download): min"
            f" {min(per_server):.2f} s, median {statistics.median(per_server):.2f} s, max {max(per_server):.2f} s"
        )
        print(
            f"the {n}-server task's own CPU: {median(own_seconds):.1f} CPU-s in this Airflow process (SSH client)"
            f" + {median(server_seconds):.1f} CPU-s on the servers (sshd, shells, scripts), {os.cpu_count()} cores"
        )
        print(
            f"machine CPU busy: {100 * median(cpu_share):.0f}% during the {n}-server tasks"
            f" ({median(cpu_seconds):.1f} CPU-s), {100 * median(background):.0f}% during the 1-server tasks"
            " (other load on the machine)"
        )
        print(f"reading the {n} connections into SSH hooks (one after another, as the task does): {hooks:.2f} s")
        rows: list[tuple[Any, ...]] = [
            (f"{args.servers} servers, one task", median(fleet_times), median(one), TARGET),
            (f"{args.servers} SSH handshakes at once", shakes_all, shakes_one, None),
        ]
        rows += [(f"{n} servers, at most {b} at once", median(bounded[b]), median(one), None) for b in bounded]
        ok = report(
            f"{args.servers} servers vs 1 server, script sleeps 2 s, median of {args.runs} (seconds)", rows, TARGET
        )
        print(f"benchmark wall time {time.perf_counter() - started:.0f} s")
        return 0 if ok else 1
    finally:
        fleet.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
