"""Shared set-up for benchmarks: a private Airflow home with a migrated SQLite database."""

from __future__ import annotations

import atexit
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def private_airflow_home(prefix: str) -> Path:
    """Point Airflow at a fresh home (before Airflow is imported) and migrate its database; the home is
    removed when the benchmark's process exits."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    (home / "dags").mkdir()
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(home / "dags")
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home}/airflow.db"
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=dict(os.environ))
    return home


def median(values: list[float]) -> float:
    return statistics.median(values)


def report(title: str, rows: list[tuple[Any, ...]], target: float) -> bool:
    """Print ``name, ours, baseline, ratio`` rows and whether each ratio meets its target.

    A row is ``(name, ours, baseline)`` (held to ``target``), ``(name, ours, baseline, row_target)``, or
    ``(name, ours, baseline, None)`` for a figure shown without a target.
    """
    print(f"\n{title}")
    print(f"{'measure':<34}{'cronium':>12}{'baseline':>12}{'ratio':>9}  target")
    ok = True
    for row in rows:
        name, ours, base = row[:3]
        row_target = row[3] if len(row) > 3 else target
        ratio = ours / base if base else float("inf")
        verdict = "-" if row_target is None else f"<= {row_target:.2f}x {'met' if ratio <= row_target else 'NOT met'}"
        if row_target is not None:
            ok = ok and ratio <= row_target
        print(f"{name:<34}{ours:>12.4f}{base:>12.4f}{ratio:>8.3f}x  {verdict}")
    print(f"all targets: {'met' if ok else 'NOT met'}")
    return ok
