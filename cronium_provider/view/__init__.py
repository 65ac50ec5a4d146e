"""The Cronium view of Airflow's web UI: the catalog the DAG processor writes, the app that shows it, and
the plugin that mounts the app under the api-server and adds it to the navigation."""
