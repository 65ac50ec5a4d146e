"""Doctor checks against Airflow and the machine: to be filled in."""

from __future__ import annotations

from cronium_provider.doctor.findings import Finding, Needs
from cronium_provider.settings import CroniumSettings


def environment_findings(needs: Needs, settings: CroniumSettings) -> list[Finding]:
    """Docker daemon, runtime image, each needed connection (present, type), server host keys, pools and the
    resilience store, as the running Airflow sees them."""
    return []
