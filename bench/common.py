"""Shared set-up for benchmarks: a private Airflow home with a migrated SQLite database."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def private_airflow_home(prefix: str) -> Path:
    """Point Airflow at a fresh home (before Airflow is imported) and migrate its database."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
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


def report(title: str, rows: list[tuple[str, float, float]], target: float) -> bool:
    """Print ``name, ours, baseline, ratio`` rows and whether every ratio meets the target."""
    print(f"\n{title}")
    print(f"{'measure':<34}{'cronium':>12}{'baseline':>12}{'ratio':>9}")
    ok = True
    for name, ours, base in rows:
        ratio = ours / base if base else float("inf")
        ok = ok and ratio <= target
        print(f"{name:<34}{ours:>12.4f}{base:>12.4f}{ratio:>8.3f}x")
    print(f"target <= {target:.2f}x: {'met' if ok else 'NOT met'}")
    return ok
