"""The one place the ``[cronium]`` section of Airflow's configuration is read: :func:`read_settings`.

Every module that needs a setting takes a :class:`~cronium_provider.settings.CroniumSettings` (the DAG
factory hands it to the plan) or calls :func:`read_settings` where it runs (a task, the webhook route).
The section is read afresh on each call from Airflow's ``conf``, which a process loads from ``airflow.cfg``
and its environment when it starts (a task or parse process forked from a service inherits the service's):
a changed ``airflow.cfg`` applies to ``cronium-airflow`` at once and to Airflow's services once restarted.
"""

from __future__ import annotations

import logging
from pathlib import Path

from airflow.providers.common.compat.sdk import conf

from cronium_provider.settings import SECTION, CroniumSettings

log = logging.getLogger("airflow.cronium.factory")


def _option(name: str) -> str | None:
    value = conf.get(SECTION, name, fallback=None)
    return None if value is None else str(value)


def _report(problem: str) -> None:
    log.error("Cronium: %s", problem)


def read_settings(*names: str, strict: bool = False) -> CroniumSettings:
    """``[cronium]`` as one object; with ``names``, only those options are read (an operator built for
    every event at every parse reads its few, not the section). A value of the wrong type is logged as an
    error naming the option and its default is used: one typo never takes every Cronium DAG down. With
    ``strict`` (``cronium-airflow``, where a person reads the answer) it raises ``ValueError`` instead."""
    fallback_timezone = "UTC"
    if not names or "timezone" in names:
        fallback_timezone = str(conf.get("core", "default_timezone", fallback="UTC") or "UTC")
    fallback_deferrable = False
    if not names or "deferrable" in names:
        fallback_deferrable = bool(conf.getboolean("operators", "default_deferrable", fallback=False))
    return CroniumSettings.from_options(
        _option,
        fallback_timezone=fallback_timezone,
        fallback_deferrable=fallback_deferrable,
        only=names or None,
        on_error=None if strict else _report,
    )


def dags_folder() -> Path:
    """Airflow's ``[core] dags_folder``: where ``cronium-airflow dag-file`` writes and ``sync`` looks for shards."""
    return Path(str(conf.get("core", "dags_folder"))).expanduser()
