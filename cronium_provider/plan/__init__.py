"""The plan layer: records -> pure-data DAG specs, with no Airflow import."""
