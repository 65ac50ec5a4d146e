"""The Cronium view's catalog: what writing it adds to the DAG processor's full parse of 10,000 events.

Each run is the full parse (``parse_dags`` with no DAG id: load, validate, plan, render every DAG, write the
parse index) in a fresh process with a fresh index folder, so that both the index and the catalog are
written; with the catalog and without it (``factory._save_catalog`` replaced by a no-op), in turns, which
goes first alternating. The figures are the median wall times and their ratio (target <= 1.05x), and the
catalog write alone (timed inside the parse: the steadier figure on a busy machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dag_parse import make_events
from common import median, report

RUN = r"""
import json, sys, time
from pathlib import Path
from cronium_provider import factory
factory.RACY_NS = 0
timed = {"catalog": 0.0}
if sys.argv[2] == "off":
    factory._save_catalog = lambda *a, **k: "catalog off"
else:
    save = factory._save_catalog
    def timed_save(*a, **k):
        start = time.perf_counter()
        try:
            return save(*a, **k)
        finally:
            timed["catalog"] = time.perf_counter() - start
    factory._save_catalog = timed_save
start = time.perf_counter()
result = factory.parse_dags(Path(sys.argv[1]))
seconds = time.perf_counter() - start
assert len(result.dags) > 0 and "catalog" in result.catalog, result.catalog
print("RESULT " + json.dumps({"seconds": seconds, "catalog": timed["catalog"], "dags": len(result.dags),
      "catalog_detail": result.catalog}))
"""


def run(folder: Path, catalog: bool, work: Path, n: int) -> dict[str, float]:
    env = dict(os.environ, CRONIUM_INDEX_DIR=str(work / f"index-{n}"), AIRFLOW__LOGGING__LOGGING_LEVEL="ERROR")
    proc = subprocess.run(
        [sys.executable, "-c", RUN, str(folder), "on" if catalog else "off"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"parse failed:\n{proc.stderr[-3000:]}")
    result: dict[str, float] = json.loads(lines[0][len("RESULT ") :])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=4, help="runs of each (alternately)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cronium-bench-catalog-"))
    os.environ.setdefault("AIRFLOW_HOME", str(work / "airflow_home"))
    folder = work / "records"
    folder.mkdir()
    (folder / "events.json").write_text(json.dumps({"events": make_events(args.events)}))
    with_catalog, without, writes = [], [], []
    for n in range(args.runs):
        if n % 2:  # which goes first alternates: neither gets the warmer machine every time
            on = run(folder, True, work, 2 * n + 1)
            off = run(folder, False, work, 2 * n)
        else:
            off = run(folder, False, work, 2 * n)
            on = run(folder, True, work, 2 * n + 1)
        without.append(off["seconds"])
        with_catalog.append(on["seconds"])
        writes.append(on["catalog"])
        print(f"run {n + 1}: without {off['seconds']:.2f}s, with {on['seconds']:.2f}s (catalog {on['catalog']:.3f}s)")
    report(
        f"full parse of {args.events} events, with the view's catalog vs without",
        [
            ("full parse (s)", median(with_catalog), median(without), 1.05),
            ("catalog write alone (s)", median(writes), median(without), None),
        ],
        1.05,
    )


if __name__ == "__main__":
    main()
