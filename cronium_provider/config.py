"""The one place the ``[cronium]`` section of Airflow's configuration is read: :func:`read_settings`.

Every module that needs a setting takes a :class:`~cronium_provider.settings.CroniumSettings` (the DAG
factory hands it to the plan) or calls :func:`read_settings` where it runs (a task, the webhook route).
The section is read afresh on each call, so a changed ``airflow.cfg`` or ``AIRFLOW__CRONIUM__*`` variable
applies to the next parse or task, as it did when each option was read where it was used.
"""

from __future__ import annotations

import logging

from airflow.providers.common.compat.sdk import conf

from cronium_provider.settings import SCOPE_AUTO, SECTION, CroniumSettings, scope_setting

log = logging.getLogger("airflow.cronium.factory")


def _option(name: str) -> str | None:
    value = conf.get(SECTION, name, fallback=None)
    if value is not None and name == "scope_variables_by_owner":
        try:
            scope_setting(value)
        except ValueError as exc:  # logged and read as auto, so that a typo does not take every DAG down
            log.error("Cronium: %s; using auto", exc)
            return SCOPE_AUTO
    return None if value is None else str(value)


def read_settings() -> CroniumSettings:
    """``[cronium]`` as one object; a value of the wrong type raises ``ValueError`` naming the option (but a
    ``scope_variables_by_owner`` that is not auto, true or false is logged and read as ``auto``)."""
    return CroniumSettings.from_options(
        _option,
        fallback_timezone=str(conf.get("core", "default_timezone", fallback="UTC") or "UTC"),
        fallback_deferrable=bool(conf.getboolean("operators", "default_deferrable", fallback=False)),
    )
