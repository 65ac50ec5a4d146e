"""Run every benchmark, one after another; exit 1 if any target is missed.

Each benchmark gets at most ``LIMIT_SECONDS``; past it, it is sent SIGTERM (the benchmarks stop what they
started on SIGTERM) and, if still running ``GRACE_SECONDS`` later, killed. That counts as a missed target.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHES = [
    "bench_script_event.py",
    "bench_dag_parse.py",
    "bench_task_parse.py",  # a worker's parse before one task: 2,000 / 10,000 events vs 1; full parse of 11,000 DAGs
    "bench_view_catalog.py",  # the web UI view's catalog: the full parse of 10,000 events with it vs without
    "bench_view_pages.py",  # a page of the web UI view from 10,000 records vs from 100
    "bench_ssh_servers.py",
    "bench_ssh_fanout.py",  # one event on 64 servers vs 1 server
    "bench_celery_workers.py",  # 40 events on the CeleryExecutor: one worker vs two (~8 minutes)
    # 32 deferred 30 s scripts at once vs one on 4 LocalExecutor slots, against Airflow's timer deferrals (~9 min)
    "bench_deferrable.py",
    "bench_deferrable_ssh.py",  # the same over SSH: 32 remote scripts on 8 sshd servers (~9 min)
]
LIMIT_SECONDS = 1200
GRACE_SECONDS = 180


def run(path: Path) -> int:
    process = subprocess.Popen([sys.executable, str(path)])
    try:
        return process.wait(timeout=LIMIT_SECONDS)
    except subprocess.TimeoutExpired:
        print(f"{path.name}: still running after {LIMIT_SECONDS} s; stopping it", flush=True)
        process.terminate()
        try:
            process.wait(timeout=GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return 1
    except BaseException:
        process.terminate()  # Ctrl-C or SIGTERM here: let the benchmark clean up, then leave
        process.wait(timeout=GRACE_SECONDS)
        raise


def main() -> int:
    here = Path(__file__).resolve().parent
    failed = []
    for name in BENCHES:
        print(f"\n=== {name}", flush=True)
        if run(here / name) != 0:
            failed.append(name)
    print("\nall benchmark targets met" if not failed else f"\ntargets missed in: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
