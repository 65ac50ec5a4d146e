"""The DAG factory behind ``dags_templates/cronium_dags.py``: records folder -> plan -> Airflow DAGs.

It reads local record files and nothing else at parse time. A bad record is logged with its file, id and
field, and every good record still becomes a DAG.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from airflow.sdk import DAG

from cronium_provider.plan.build import build_plan
from cronium_provider.records.validation import load_records
from cronium_provider.render.dags import render_plan

log = logging.getLogger("airflow.cronium.factory")

RECORDS_DIR_ENV = "CRONIUM_RECORDS_DIR"


def records_dir() -> Path | None:
    """``$CRONIUM_RECORDS_DIR``, else the Airflow option ``[cronium] records_dir``."""
    value = os.environ.get(RECORDS_DIR_ENV)
    if not value:
        from airflow.providers.common.compat.sdk import conf

        value = conf.get("cronium", "records_dir", fallback=None)
    return Path(value) if value else None


def schedule_timezone() -> str:
    """``[cronium] timezone``, else Airflow's ``[core] default_timezone``: the zone of Cronium's schedules."""
    from airflow.providers.common.compat.sdk import conf

    value = conf.get("cronium", "timezone", fallback=None) or conf.get("core", "default_timezone", fallback="UTC")
    name = str(value or "UTC")
    if name.lower() == "system":
        from pendulum.tz import local_timezone

        return str(local_timezone().name)
    return "UTC" if name.lower() == "utc" else name


def build_dags(path: str | Path | None = None) -> dict[str, DAG]:
    """Every DAG the records under ``path`` (default: :func:`records_dir`) build, by dag id."""
    folder = Path(path) if path is not None else records_dir()
    if folder is None:
        log.warning("No Cronium records folder: set %s or [cronium] records_dir", RECORDS_DIR_ENV)
        return {}
    records = load_records([folder])
    for error in records.errors:
        log.error("Cronium record left out: %s", error)
    plan = build_plan(records, timezone=schedule_timezone())
    dags = render_plan(plan)
    log.info(
        "Cronium: %d DAG(s) from %s (%d record(s) not built, %d error(s))",
        len(dags),
        folder,
        len(plan.not_built),
        len(records.errors),
    )
    return dags
