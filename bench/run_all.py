"""Run every benchmark, one after another; exit 1 if any target is missed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHES = ["bench_script_event.py", "bench_dag_parse.py", "bench_ssh_servers.py"]


def main() -> int:
    here = Path(__file__).resolve().parent
    failed = []
    for name in BENCHES:
        print(f"\n=== {name}", flush=True)
        if subprocess.run([sys.executable, str(here / name)]).returncode != 0:
            failed.append(name)
    print("\nall benchmark targets met" if not failed else f"\ntargets missed in: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
