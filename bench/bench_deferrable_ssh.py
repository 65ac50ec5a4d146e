"""Deferrable remote scripts: 32 events, each sleeping 30 s on a server, triggered at once on 4 worker slots,
against Airflow's own defer-and-resume floor on the same stack.

A real Airflow (SQLite, LocalExecutor with ``[core] parallelism=4``; api-server, scheduler, dag-processor and
triggerer: tests/support/local_stack.py) runs the project's template DAG file over a records folder of 32
remote BASH events spread over 8 real sshd servers (127.0.0.160-127.0.0.167, bench/ssh_fleet.py), with
``[cronium] deferrable = True``, and a DAG file of tasks that defer to Airflow's ``TimeDeltaTrigger`` for as long
and resume (bench/airflow_timer.py: the baseline). All figures come from one run of this benchmark, from the
metadata database's times (a run's ``queued_at`` to its last task's ``end_date``):

* a warm-up: one deferred event and one 1-second timer deferral (the components start cold);
* ``--repeat`` (3) repetitions, each of: one deferred event alone, then the 32 at once; one timer deferral
  alone, then 32 at once (which of the two goes first alternates between repetitions). Each gives a ratio, many
  / one: ours (remote scripts: each task holds a worker slot only to start its script and to collect it; the
  triggerer follows the 32 scripts meanwhile) and Airflow's (timers). Target: the median of ours <= 1.05x the
  median of Airflow's;
* with ``--with-normal``, the normal mode for comparison, in the same Airflow: 8 events of the same script
  (``deferrable=False``, a third DAG file) triggered at once, which hold a slot for their whole run: 2 rounds of
  4 (the 32 would take 8 rounds, about 4 minutes; shown, not held to a target).

A deferred task costs two task executions (the start, and the resume), each a task process with its DAG parse;
on a 2-core machine they are what stretches the 32 beyond one, for the timers as for the scripts.
``[workers] min_heartbeat_interval`` is 1 here (``--min-heartbeat-interval``): with Airflow's default of 5, a
task supervisor that misses its task process's exit keeps the worker slot up to 5 s longer (see
bench_celery_workers.py), which a deferred task pays twice. The phases line under each figure says when (after
the first run was queued) the tasks started, deferred, saw their scripts or timers end in the triggerer, resumed
and ended: median and last.
"""

from __future__ import annotations

import argparse
import json
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
from ssh_fleet import SSHFleet

from tests.support.local_stack import LocalStack

SERVERS = 8
FIRST_ADDRESS = 160  # 127.0.0.160 ...
PORT = 2295
SLOTS = 4
NORMAL_EVENTS = 8
TARGET = 1.05  # median many/one ratio of the deferred remote scripts, at most this times that of Airflow's timers
TIMER = "timer_"  # Airflow's timer deferrals: timer_0 (1 s, the warm-up) .. timer_<events>


def _stop_on_sigterm(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _script(n: int, seconds: int) -> str:
    return f"sleep {seconds}\ncronium_output '{{\"n\": {n}}}'\n"


def _records(folder: Path, fleet: SSHFleet, events: int, seconds: int) -> None:
    folder.mkdir()
    servers = [
        {"id": i + 1, "name": f"srv-{i + 1}", "address": s.address, "port": s.port, "username": s.user}
        for i, s in enumerate(fleet.servers)
    ]
    records = [
        {
            "id": n,
            "name": f"Sleeper {n}",
            "type": "BASH",
            "status": "ACTIVE",
            "triggerType": "MANUAL",
            "runLocation": "REMOTE",
            "serverId": (n - 1) % len(servers) + 1,
            "content": _script(n, seconds),
            "timeoutValue": 600,
            "timeoutUnit": "SECONDS",
        }
        for n in range(1, events + 1)
    ]
    (folder / "servers.json").write_text(json.dumps({"servers": servers}))
    (folder / "events.json").write_text(json.dumps({"events": records}))


def _normal_dags(count: int, seconds: int) -> str:
    """The same scripts as normal-mode tasks (``deferrable=False``), one DAG each."""
    return textwrap.dedent(
        f"""\
        import datetime
        import pendulum
        from airflow.sdk import DAG
        from cronium_provider.operators.ssh_script import CroniumRemoteScriptOperator

        for n in range(1, {count} + 1):
            server = (n - 1) % {SERVERS} + 1
            with DAG(f"normal_{{n}}", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
                CroniumRemoteScriptOperator(
                    task_id="run", language="BASH", deferrable=False,
                    script=f"sleep {seconds}\\ncronium_output '{{{{\\"n\\": {{n}}}}}}'\\n",
                    servers=[{{"name": f"srv-{{server}}", "conn_id": f"cronium_server_{{server}}"}}],
                    execution_timeout=datetime.timedelta(seconds=600),
                )
            globals()[f"normal_{{n}}"] = dag
        """
    )


def _time(value: str) -> float:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _trigger(stack: LocalStack, dag_id: str) -> str:
    for attempt in range(5):
        try:
            return stack.trigger(dag_id)
        except RuntimeError as exc:  # the SQLite database was busy: try again
            if "Database error" not in str(exc) or attempt == 4:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def _run_all(stack: LocalStack, dag_ids: list[str], timeout: float) -> tuple[float, int, list[str]]:
    """Trigger every DAG at once; wait for the runs. Returns the wall time (first ``queued_at`` to the last
    task's ``end_date``), the most tasks deferred at the same time, and the runs that did not succeed."""
    runs = {dag_id: _trigger(stack, dag_id) for dag_id in dag_ids}  # one after the other: SQLite has one writer
    peak_deferred = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.check_alive()
        states = [stack.run_state(d, r) for d, r in runs.items()]
        deferred = stack.query("SELECT count(*) FROM task_instance WHERE state = 'deferred'")[0][0]
        peak_deferred = max(peak_deferred, int(deferred))
        if all(s in ("success", "failed") for s in states):
            break
        time.sleep(0.5)
    else:
        print(stack.diagnostics())
        raise TimeoutError(f"runs not finished after {timeout:.0f} s: {[stack.ti(d, r) for d, r in runs.items()]}")
    failed = []
    queued, ended = [], []
    for dag_id, run_id in runs.items():
        n = int(dag_id.rsplit("_", 1)[1])  # each run returns {"n": n}
        if stack.run_state(dag_id, run_id) != "success" or stack.xcom(dag_id, run_id, "return_value") != {"n": n}:
            failed.append(dag_id)
        queued.append(_time(stack.query("SELECT queued_at FROM dag_run WHERE run_id = ?", (run_id,))[0][0]))
        ended.append(_time(stack.query("SELECT max(end_date) FROM task_instance WHERE run_id = ?", (run_id,))[0][0]))
    _phases(stack, runs, min(queued))
    return max(ended) - min(queued), peak_deferred, failed


def _phases(stack: LocalStack, runs: dict[str, str], origin: float) -> None:
    """Where the time went (seconds after the first run was queued): when the tasks started their scripts and
    deferred, when the triggerer saw the scripts end, when the tasks resumed and ended (median and last)."""
    marks: dict[str, list[float]] = {}
    for dag_id, run_id in runs.items():
        seen: dict[str, float] = {}
        for record in stack.log_events(dag_id, run_id):
            text, at = str(record.get("event", "")), record.get("timestamp")
            if not at:
                continue
            moment = _time(str(at)) - origin
            if text.startswith("::group::Pre Execute"):
                seen.setdefault("start" if "start" not in seen else "resume", moment)
            elif text.startswith("Deferred: "):
                seen["deferred"] = moment
            elif text.startswith("Trigger fired event"):
                seen["fired"] = moment
            elif text.startswith("cronium summary"):
                seen["end"] = moment
        ended = stack.query("SELECT max(end_date) FROM task_instance WHERE run_id = ?", (run_id,))[0][0]
        if ended and "end" not in seen:  # a timer deferral writes no summary
            seen["end"] = _time(str(ended)) - origin
        for key, value in seen.items():
            marks.setdefault(key, []).append(value)
    if not marks:
        return
    summary = ", ".join(
        f"{key} median {sorted(values)[len(values) // 2]:.1f} last {max(values):.1f}"
        for key in ("start", "deferred", "fired", "resume", "end")
        if (values := marks.get(key))
    )
    print(f"  phases (s after the first queued): {summary}", flush=True)


def _phase(stack: LocalStack, name: str, dag_ids: list[str], timeout: float) -> tuple[float, list[str]]:
    """``_run_all`` with a line giving the phase's name and wall time."""
    wall, peak, failed = _run_all(stack, dag_ids, timeout)
    print(f"  {name}: {len(dag_ids)} run(s) in {wall:.1f} s; at most {peak} deferred at once", flush=True)
    if failed:
        print(f"  {name}: runs that did not succeed: {failed}", flush=True)
    return wall, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=32, help="deferred events (and timers) at once (default 32)")
    parser.add_argument("--seconds", type=int, default=30, help="seconds each script sleeps (default 30)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of the deferred phases (default 3)")
    parser.add_argument("--with-normal", action="store_true", help="add the normal-mode phase")
    parser.add_argument("--normal-events", type=int, default=NORMAL_EVENTS)
    parser.add_argument(
        "--min-heartbeat-interval",
        type=int,
        default=1,
        help="[workers] min_heartbeat_interval of the stack (default 1; Airflow's default is 5)",
    )
    args = parser.parse_args()
    if args.events < 2 or args.repeat < 1:
        parser.error("--events must be at least 2 (the first warms up) and --repeat at least 1")
    signal.signal(signal.SIGTERM, _stop_on_sigterm)  # `finally` then stops Airflow and the sshd processes
    home = Path(tempfile.mkdtemp(prefix="cronium-bench-deferrable-ssh-"))
    fleet = SSHFleet(SERVERS, PORT, first=FIRST_ADDRESS)
    stack: LocalStack | None = None
    try:
        fleet.start()
        connections = {}
        for i, server in enumerate(fleet.servers):
            connections[f"AIRFLOW_CONN_CRONIUM_SERVER_{i + 1}"] = json.dumps(
                {
                    "conn_type": "ssh",
                    "host": server.address,
                    "port": server.port,
                    "login": server.user,
                    "extra": json.dumps({**server.connection_uri_extra(), "look_for_keys": "false"}),
                }
            )
        records = home / "records"
        _records(records, fleet, args.events, args.seconds)
        repo = Path(__file__).resolve().parents[1]
        normal_events = args.normal_events if args.with_normal else 0
        dag_files = {
            "cronium_dags.py": (repo / "dags_templates" / "cronium_dags.py").read_text(),
            "timer_dags.py": timer_dags(TIMER, args.events, args.seconds),
        }
        if normal_events:
            dag_files["normal_dags.py"] = _normal_dags(normal_events, args.seconds)
        stack = LocalStack.create(
            home,
            records,
            dag_files,
            parallelism=SLOTS,
            extra_env={
                **connections,
                "AIRFLOW__CRONIUM__DEFERRABLE": "True",
                "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": str(args.min_heartbeat_interval),
                # the DAG files do not change during the benchmark: no re-parse every 30 s on the shared cores
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            },
        )
        t0 = time.monotonic()
        stack.start()
        kinds = {
            "ours": ("deferred event", [f"cronium_event_{n}" for n in range(1, args.events + 1)]),
            "airflow": ("Airflow timer", [f"{TIMER}{n}" for n in range(1, args.events + 1)]),
        }
        normal_dags = [f"normal_{n}" for n in range(1, normal_events + 1)]
        stack.wait_parsed({f"{TIMER}0", *kinds["ours"][1], *kinds["airflow"][1], *normal_dags})
        for i in range(1, SERVERS + 1):  # what `cronium-airflow servers sync` makes: a pool per server
            status, body = stack.request(
                "POST", "/api/v2/pools", {"name": f"cronium_server_{i}", "slots": 5, "include_deferred": False}
            )
            if status not in (200, 201):
                raise RuntimeError(f"pool: HTTP {status} {body}")
        print(f"Airflow up and DAGs parsed in {time.monotonic() - t0:.0f} s")

        # warm-up: the first task processes and triggers start cold
        _, failed = _phase(stack, "warm-up", [kinds["ours"][1][0], f"{TIMER}0"], 300)
        ratios: dict[str, list[float]] = {"ours": [], "airflow": []}
        ones: list[float] = []  # one deferred event alone, each repetition
        for repetition in range(1, args.repeat + 1):
            order = ("ours", "airflow") if repetition % 2 else ("airflow", "ours")
            for kind in order:
                label, dag_ids = kinds[kind]
                one, failed_one = _phase(stack, f"#{repetition} 1 {label}", dag_ids[1:2], 300)
                many, failed_many = _phase(stack, f"#{repetition} {args.events} {label}s", dag_ids, 900)
                ratios[kind].append(many / one)
                if kind == "ours":
                    ones.append(one)
                failed += failed_one + failed_many
            ours, airflow = ratios["ours"][-1], ratios["airflow"][-1]
            print(
                f"repetition {repetition}: many/one ours {ours:.3f}x, Airflow's {airflow:.3f}x "
                f"(ours / Airflow's {ours / airflow:.3f})",
                flush=True,
            )
        rows: list[tuple[Any, ...]] = [
            (f"median {args.events}/1: ours / Airflow's", median(ratios["ours"]), median(ratios["airflow"]))
        ]
        if normal_dags:
            normal, failed_normal = _phase(stack, f"{normal_events} normal-mode events", normal_dags, 900)
            failed += failed_normal
            rows.append((f"{normal_events} normal-mode vs one deferred", normal, median(ones), None))
        if failed:
            print(f"runs that did not succeed: {failed}")
            print(stack.diagnostics())
        print(
            f"\nmany/one ratios in {args.repeat} repetition(s): ours {', '.join(f'{r:.3f}' for r in ratios['ours'])}"
            f" (median {median(ratios['ours']):.3f}); Airflow's "
            f"{', '.join(f'{r:.3f}' for r in ratios['airflow'])} (median {median(ratios['airflow']):.3f})"
        )
        ok = report(
            f"Remote scripts ({args.seconds} s each) on {SLOTS} worker slots, {SERVERS} sshd servers: "
            f"{args.events} deferrals at once / one, deferred remote scripts vs Airflow's timer",
            rows,
            TARGET,
        )
        return 0 if ok and not failed else 1
    finally:
        if stack is not None:
            stack.stop()
        fleet.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
