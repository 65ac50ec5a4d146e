"""The render layer: a finished plan -> Airflow DAG objects."""
