"""``cronium-airflow doctor``: what would fail before it fails, and where a record will not behave as in Cronium.

Two halves, so that the web UI's Cronium view can show the same findings without parsing records per
request:

- :mod:`cronium_provider.doctor.records` (no Airflow import): from loaded records, the notes on what each
  record will do differently from Cronium ("Differences from Cronium" (docs/differences.md) applied to it), and the
  :class:`~cronium_provider.doctor.findings.Needs` of the folder (the tool connections, servers and pools the
  records name). The DAG processor's full parse stores both in the view's catalog.
- :mod:`cronium_provider.doctor.environment`: checks those needs and the machine against Airflow (Docker
  daemon and runtime image, connections and their types, server host keys, pools, the resilience store).
"""

from cronium_provider.doctor.findings import Finding, Needs

__all__ = ["Finding", "Needs"]
