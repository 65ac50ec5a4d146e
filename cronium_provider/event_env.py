"""Event env var values: secrets kept in Airflow Variables, read only at run time and masked.

An event's env var ``KEY`` lives in the Airflow Variable ``cronium.env.<eventId>.<KEY>``
(``airflow variables set`` puts it there). A record file that still carries the value inline is read at
run time as a fallback, so the value never enters a DAG object, the serialized DAG or the plan.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cronium_provider.exceptions import EventEnvMissing
from cronium_provider.naming import env_variable_key


def mask_value(text: str) -> None:
    """Mask ``text`` in the task's log and XComs, and each of its lines: Airflow masks a value whole only, and
    a script prints a multi-line secret (a key file) line by line, one log line each, or a few lines of it.
    The triggers mask the same pieces (:class:`~cronium_provider.runners.outcome.LineRedactor`)."""
    from airflow.sdk.log import mask_secret

    for piece in (text, *text.splitlines()):
        if piece.strip():
            mask_secret(piece)


def inline_event_env(records_source: str, event_id: Any) -> dict[str, str]:
    """The env var values written in the record file itself (empty when the event is not there)."""
    from cronium_provider.records.validation import load_records

    records = load_records([records_source])
    event = records.all_events.get(int(event_id)) if event_id is not None else None
    if event is None:
        return {}
    return {item.key: item.value.get_secret_value() for item in event.env_vars}


def resolve_event_env(event_id: Any, keys: Iterable[str], records_source: str | None) -> dict[str, str]:
    """Values for the event's env var ``keys``; raises naming the Variable to set when one is missing."""
    from airflow.sdk import Variable

    values: dict[str, str] = {}
    inline: dict[str, str] | None = None
    for key in keys:
        value = Variable.get(env_variable_key(event_id, key), default=None)
        if value is None and records_source:
            if inline is None:
                inline = inline_event_env(records_source, event_id)
            value = inline.get(key) or None  # a synced record keeps the key only: its value is in Variables
        if value is None:
            raise EventEnvMissing(
                f"event {event_id}: env var {key} has no value; set the Airflow Variable "
                f"{env_variable_key(event_id, key)}"
            )
        text = str(value)
        if text:
            mask_value(text)
        values[key] = text
    return values
