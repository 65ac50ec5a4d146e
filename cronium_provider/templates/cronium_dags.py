"""Cronium events and workflows as Airflow DAGs.

Drop this file into your dags folder and point it at a folder of Cronium record files with the
environment variable CRONIUM_RECORDS_DIR (or the Airflow option [cronium] records_dir). Each event
becomes the DAG cronium_event_<id>, each workflow cronium_workflow_<id>. Parsing reads those local files
only: no network, no database, no Variables. A worker parsing this file for one task builds only that
task's DAG, from the parse index the DAG processor keeps ([cronium] index_dir).
"""

from cronium_provider.factory import build_dags

# Sharding (README, "Parse time and sharding"): in each copy of this file, name its own sub-folder of the
# records folder, e.g. CRONIUM_SHARD = "billing" in cronium_dags_billing.py. None: the whole folder.
CRONIUM_SHARD = None

globals().update(build_dags(shard=CRONIUM_SHARD))
