"""Cronium tool actions: templates, validation and delivery through the Airflow providers."""
