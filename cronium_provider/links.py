"""The "Cronium event" button on every Cronium task: a link to the event in Cronium's own UI."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperatorLink


class CroniumEventLink(BaseOperatorLink):
    """Links to ``<[cronium] base_url>/dashboard/events/<id>``; empty when no base URL is configured."""

    name = "Cronium event"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        from cronium_provider.config import read_settings

        base = read_settings().base_url.rstrip("/")
        event_id = (getattr(operator, "event", None) or {}).get("id")
        if not base or event_id is None:
            return ""
        return f"{base}/dashboard/events/{event_id}"
