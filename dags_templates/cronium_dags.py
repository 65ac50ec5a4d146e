"""Cronium events and workflows as Airflow DAGs.

Drop this file into your dags folder and point it at a folder of Cronium record files with the
environment variable CRONIUM_RECORDS_DIR (or the Airflow option [cronium] records_dir). Each event
becomes the DAG cronium_event_<id>, each workflow cronium_workflow_<id>. Parsing reads those local files
only: no network, no database, no Variables.
"""

from cronium_provider.factory import build_dags

globals().update(build_dags())
