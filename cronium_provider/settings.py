"""The ``[cronium]`` settings as one frozen, typed object: every option the provider reads, with its default.

This module imports nothing from Airflow, so the records and plan layers may take the object; the one place
that fills it from Airflow's configuration is :func:`cronium_provider.config.read_settings`. Every option and its
default is declared to Airflow in :mod:`cronium_provider.get_provider_info`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, fields
from typing import Any

SECTION = "cronium"

# ``scope_variables_by_owner``: whether each event owner gets its own Cronium variables.
SCOPE_AUTO, SCOPE_ON, SCOPE_OFF = "auto", "true", "false"
_SCOPE_WORDS = {
    "auto": SCOPE_AUTO,
    "": SCOPE_AUTO,
    "true": SCOPE_ON,
    "yes": SCOPE_ON,
    "on": SCOPE_ON,
    "1": SCOPE_ON,
    "false": SCOPE_OFF,
    "no": SCOPE_OFF,
    "off": SCOPE_OFF,
    "0": SCOPE_OFF,
}
_TRUE_WORDS = ("true", "t", "yes", "y", "on", "1")
# ``script_network``: scripts get no network (isolated, Cronium's default), else the Docker network they all join.
NO_NETWORK = "none"
DOCKER_NETWORK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
_FALSE_WORDS = ("false", "f", "no", "n", "off", "0")


def scope_setting(value: object) -> str:
    """``[cronium] scope_variables_by_owner`` as ``auto``, ``true`` or ``false`` (a bool, ``yes``/``no``,
    ``on``/``off``, ``1``/``0`` too; None or blank: ``auto``). Anything else raises ``ValueError``."""
    if isinstance(value, bool):
        return SCOPE_ON if value else SCOPE_OFF
    word = _SCOPE_WORDS.get("" if value is None else str(value).strip().lower())
    if word is None:
        raise ValueError(f"[cronium] scope_variables_by_owner must be auto, true or false, not {value!r}")
    return word


def network_setting(value: object) -> str:
    """``[cronium] script_network``: ``none`` (also None, blank, any case) for no network, else the name of the
    Docker network every script container joins (``host``, ``bridge``, a network made with ``docker network
    create``). Anything that is no Docker network name raises ``ValueError``."""
    text = "" if value is None else str(value).strip()
    if text.lower() in ("", NO_NETWORK):
        return NO_NETWORK
    if not DOCKER_NETWORK_NAME.match(text):
        raise ValueError(
            f"[cronium] script_network must be none or the name of a Docker network (host, bridge, ...), not {value!r}"
        )
    return text


# Options whose text is checked (and normalised) beyond its type.
_CHECKED: dict[str, Callable[[object], str]] = {
    "scope_variables_by_owner": scope_setting,
    "script_network": network_setting,
}


@dataclass(frozen=True)
class CroniumSettings:
    """Every ``[cronium]`` option, typed, with the default :mod:`~cronium_provider.get_provider_info`
    declares. ``timezone`` is ``[cronium] timezone``, else Airflow's ``[core] default_timezone``;
    ``deferrable`` is ``[cronium] deferrable``, else ``[operators] default_deferrable``."""

    records_dir: str | None = None
    index_dir: str | None = None  # ``off`` for no parse index; read, not declared (``$CRONIUM_INDEX_DIR`` wins)
    timezone: str = "UTC"
    scope_variables_by_owner: str = SCOPE_AUTO
    base_url: str = ""
    image: str = "cronium-runtime:2"
    image_bash: str | None = None
    image_python: str | None = None
    image_nodejs: str | None = None
    docker_url: str = "unix://var/run/docker.sock"
    deferrable: bool = False
    max_result_bytes: int = 10 * 1024 * 1024
    run_folder_mb: int = 100
    container_log_mb: int = 10
    script_network: str = NO_NETWORK
    webhook_rate_limit: int = 100
    webhook_rate_window: float = 60.0
    max_http_response_bytes: int = 1024 * 1024
    webhook_max_body_bytes: int = 1024 * 1024
    webhook_body_timeout_seconds: float = 10.0
    resilience_store: str | None = None
    max_active_runs: int = 16

    def __post_init__(self) -> None:
        for name, check in _CHECKED.items():
            object.__setattr__(self, name, check(getattr(self, name)))

    def schedule_timezone(self) -> str:
        """The zone of Cronium's schedules: ``system`` is this machine's zone by name, ``utc`` is ``UTC``."""
        name = self.timezone or "UTC"
        if name.lower() == "system":
            from pendulum.tz import local_timezone

            return str(local_timezone().name)
        return "UTC" if name.lower() == "utc" else name

    def image_for(self, language: str) -> str:
        """``image_<language>`` (e.g. ``image_python``), else ``image``."""
        return str(getattr(self, f"image_{language.lower()}", None) or self.image)

    @classmethod
    def from_options(
        cls,
        option: Callable[[str], str | None],
        *,
        fallback_timezone: str = "UTC",
        fallback_deferrable: bool = False,
        only: Collection[str] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> CroniumSettings:
        """The settings from ``option(name)`` (the raw text of ``[cronium] name``, None when unset); with
        ``only``, just those options are read (the others keep their defaults). A value of the wrong type
        raises ``ValueError`` naming the option, or, with ``on_error``, is reported to it and its default
        kept; a bad ``scope_variables_by_owner`` or ``script_network`` too."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            if only is not None and f.name not in only:
                continue
            raw = option(f.name)
            if raw is None or (str(raw).strip() == "" and f.name != "scope_variables_by_owner"):
                continue
            try:
                values[f.name] = _typed(f.name, str(raw), f.type)
                if f.name in _CHECKED:
                    _CHECKED[f.name](values[f.name])
            except ValueError as exc:
                if on_error is None:
                    raise
                values.pop(f.name, None)
                on_error(f"{exc}; using the default, {f.default!r}")
        if only is None or "timezone" in only:
            values.setdefault("timezone", fallback_timezone or "UTC")
        if only is None or "deferrable" in only:
            values.setdefault("deferrable", fallback_deferrable)
        return cls(**values)


def _typed(name: str, raw: str, kind: object) -> Any:
    text = raw.strip()
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bool":
            text = text.split("#", 1)[0].strip()  # an inline comment, as Airflow's getboolean reads it
            if text.lower() in _TRUE_WORDS:
                return True
            if text.lower() in _FALSE_WORDS:
                return False
            raise ValueError("not a boolean")
    except ValueError:
        raise ValueError(f"[{SECTION}] {name} must be {kind_word(kind)}, not {raw!r}") from None
    return raw


def kind_word(kind: object) -> str:
    return {"int": "a whole number", "float": "a number", "bool": "true or false"}.get(str(kind), str(kind))
