"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from cronium_provider import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-cronium",
        "name": "Cronium",
        "description": "Run Cronium events and workflows (scripts, HTTP requests, tool actions) as Airflow DAGs.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Cronium",
                "external-doc-url": "https://github.com/addison-moore/cronium",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {"integration-name": "Cronium", "python-modules": ["cronium_provider.hooks.cronium"]},
        ],
        "operators": [
            {"integration-name": "Cronium", "python-modules": ["cronium_provider.operators.script"]},
        ],
        "connection-types": [
            {
                "hook-class-name": "cronium_provider.hooks.cronium.CroniumHook",
                "hook-name": "Cronium",
                "connection-type": "cronium",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login", "extra"],
                    "relabeling": {"host": "Cronium base URL", "password": "API token"},
                    "placeholders": {"host": "https://cronium.example.com"},
                },
                "conn-fields": {
                    "verify_ssl": {
                        "label": "Verify TLS certificate",
                        "description": "Check the Cronium server's TLS certificate (on unless turned off).",
                        "schema": {"type": ["boolean", "null"]},
                    }
                },
            }
        ],
    }
