"""airflow-provider-cronium: Cronium events and workflows as Apache Airflow DAGs."""

__version__ = "0.1.0"
