"""Doctor findings that come from the records alone (no Airflow import): to be filled in."""

from __future__ import annotations

from cronium_provider.doctor.findings import Finding, Needs
from cronium_provider.records.validation import RecordSet
from cronium_provider.settings import CroniumSettings


def record_notes(records: RecordSet, settings: CroniumSettings) -> list[Finding]:
    """For each record, what it will do differently from Cronium (severity ``note``)."""
    return []


def needs(records: RecordSet, settings: CroniumSettings) -> Needs:
    """The tool connections, servers, pools and container runs the valid records need."""
    return Needs()
