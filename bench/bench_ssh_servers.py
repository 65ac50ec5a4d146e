"""A remote script event on 8 servers vs 1 server, and vs a sequential loop over the servers.

Eight real sshd processes on 127.0.0.2-127.0.0.9; the script sleeps 2 s. All figures come from one run of
this benchmark: the event's task duration on 1 and on 8 servers (concurrency inside one task, median of
5 runs each; target: 8 servers <= 1.25x one server), the same 8 servers in a sequential loop (what
Cronium did), and the same event as mapped tasks (one task per server) run by Airflow's executor.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import median, private_airflow_home, report
from ssh_fleet import SSHFleet

SCRIPT = "sleep 2; cronium_output '{\"ok\": true}'"


def _stop_on_sigterm(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)  # `finally` then stops the sshd processes
    home = private_airflow_home("cronium-bench-ssh-")
    fleet = SSHFleet(8, 2290)  # 127.0.0.2-127.0.0.9
    try:
        fleet.start()
        targets = fleet.connections("bench_srv")
        (home / "dags" / "bench_ssh.py").write_text(
            textwrap.dedent(f"""
            import pendulum
            from airflow.sdk import DAG
            from cronium_provider.operators.ssh_script import CroniumRemoteScriptOperator
            start = pendulum.datetime(2024, 1, 1, tz="UTC")
            with DAG("one", schedule=None, start_date=start) as one:
                CroniumRemoteScriptOperator(task_id="run", language="BASH", script={SCRIPT!r}, servers={targets[:1]!r})
            with DAG("eight", schedule=None, start_date=start) as eight:
                CroniumRemoteScriptOperator(task_id="run", language="BASH", script={SCRIPT!r}, servers={targets!r})
            with DAG("mapped", schedule=None, start_date=start) as mapped:
                CroniumRemoteScriptOperator.partial(task_id="run", language="BASH", script={SCRIPT!r}).expand(
                    servers=[[t] for t in {targets!r}])
        """)
        )
        import importlib.util

        from airflow.utils.session import create_session

        spec = importlib.util.spec_from_file_location("bench_ssh", home / "dags" / "bench_ssh.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)

        def task_seconds(dag) -> float:
            dag_run = dag.test()
            with create_session() as session:
                tis = dag_run.get_task_instances(session=session)
                assert all(str(getattr(t.state, "value", t.state)) == "success" for t in tis), tis
                return (max(t.end_date for t in tis) - min(t.start_date for t in tis)).total_seconds()

        task_seconds(module.one)  # warm-up
        one, eight = [], []
        for i in range(args.runs):
            for name in ["one", "eight"] if i % 2 == 0 else ["eight", "one"]:
                (one if name == "one" else eight).append(task_seconds(getattr(module, name)))

        from cronium_provider.operators.ssh_script import connect, ssh_hook
        from cronium_provider.runners.base import ScriptJob
        from cronium_provider.runners.ssh import SSHScriptExecutor

        sequential = []
        for _ in range(2):
            started = time.perf_counter()
            for target in targets:
                client = connect(ssh_hook(target["conn_id"], target["name"]), target["name"])
                SSHScriptExecutor(client, target["name"]).run(ScriptJob("BASH", SCRIPT, input={}))
                client.close()
            sequential.append(time.perf_counter() - started)
        mapped_started = time.perf_counter()
        mapped = task_seconds(module.mapped)
        mapped_wall = time.perf_counter() - mapped_started
        print(
            f"\nmapped tasks (one per server) under dag.test(): {mapped:.2f} s of task time, {mapped_wall:.2f} s wall;"
            " dag.test() runs mapped instances one after another"
        )
        return (
            0
            if report(
                f"8 servers vs 1 server, script sleeps 2 s, median of {args.runs} (seconds)",
                [
                    ("8 servers, one task, concurrent", median(eight), median(one), 1.25),
                    ("8 servers, sequential loop", median(sequential), median(one), None),
                ],
                target=1.25,
            )
            else 1
        )
    finally:
        fleet.stop()  # the sshd processes and their folders
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
