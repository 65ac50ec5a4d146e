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
            {
                "integration-name": "Cronium",
                "python-modules": [
                    "cronium_provider.hooks.cronium",
                    "cronium_provider.hooks.airflow_api",
                    "cronium_provider.hooks.trello",
                    "cronium_provider.hooks.notion",
                ],
            },
        ],
        "operators": [
            {
                "integration-name": "Cronium",
                "python-modules": [
                    "cronium_provider.operators.event",
                    "cronium_provider.operators.container_script",
                    "cronium_provider.operators.ssh_script",
                    "cronium_provider.operators.http",
                    "cronium_provider.operators.tool_action",
                    "cronium_provider.operators.conditional_actions",
                    "cronium_provider.operators.results",
                ],
            }
        ],
        "triggers": [
            {
                "integration-name": "Cronium",
                "python-modules": ["cronium_provider.triggers.container", "cronium_provider.triggers.ssh"],
            }
        ],
        "extra-links": ["cronium_provider.links.CroniumEventLink"],
        "config": {
            "cronium": {
                "description": "airflow-provider-cronium settings.",
                "options": {
                    "records_dir": {
                        "description": "Folder of Cronium record files read by the DAG file "
                        "(the environment variable CRONIUM_RECORDS_DIR wins).",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "/srv/cronium/records",
                        "default": None,
                    },
                    "timezone": {
                        "description": "The time zone of every Cronium schedule (Cronium reads its rules in its "
                        "server's local time, DST included); empty for Airflow's [core] default_timezone.",
                        "version_added": "0.2.0",
                        "type": "string",
                        "example": "Europe/Berlin",
                        "default": None,
                    },
                    "scope_variables_by_owner": {
                        "description": "Whose Cronium variables an event reads and writes: auto (each event "
                        "owner's own, cronium_<userId>_<key>, when the records name more than one userId; else "
                        "the shared cronium_<key>), true (always the owner's) or false (shared by every event).",
                        "version_added": "0.2.0",
                        "type": "string",
                        "example": "true",
                        "default": "auto",
                    },
                    "base_url": {
                        "description": "Cronium's own URL, for the 'Cronium event' link on each task.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "https://cronium.example.com",
                        "default": None,
                    },
                    "image": {
                        "description": "Container image for script events (image_bash, image_python, "
                        "image_nodejs override it per language).",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": None,
                        "default": "cronium-runtime:2",
                    },
                    "image_bash": {
                        "description": "Container image for BASH script events (empty: image).",
                        "version_added": "0.2.0",
                        "type": "string",
                        "example": "cronium-runtime:2",
                        "default": "",
                    },
                    "image_python": {
                        "description": "Container image for PYTHON script events (empty: image).",
                        "version_added": "0.2.0",
                        "type": "string",
                        "example": "cronium-runtime:2",
                        "default": "",
                    },
                    "image_nodejs": {
                        "description": "Container image for NODEJS script events (empty: image).",
                        "version_added": "0.2.0",
                        "type": "string",
                        "example": "cronium-runtime:2",
                        "default": "",
                    },
                    "index_dir": {
                        "description": "Where the DAG file keeps its parse index (one small file per records "
                        "folder), so that a task's parse builds only its own DAG; off: no index; empty: "
                        "$AIRFLOW_HOME/cronium/parse-index ($CRONIUM_INDEX_DIR wins).",
                        "version_added": "0.2.0",
                        "type": "string",
                        "example": "/var/cache/cronium/parse-index",
                        "default": "",
                    },
                    "docker_url": {
                        "description": "Docker daemon that runs script containers.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "tcp://docker:2376",
                        "default": "unix://var/run/docker.sock",
                    },
                    "deferrable": {
                        "description": "Run every Cronium script task in deferrable mode: the worker starts the "
                        "run and frees its slot, the triggerer follows it, the task resumes to collect the "
                        "results (a task's deferrable argument wins; empty: [operators] default_deferrable).",
                        "version_added": "0.2.0",
                        "type": "boolean",
                        "example": "True",
                        "default": None,
                    },
                    "max_result_bytes": {
                        "description": "The largest result file (output, condition, variables) read back from "
                        "a script run; a larger one fails the run, naming this limit.",
                        "version_added": "0.2.0",
                        "type": "integer",
                        "example": "52428800",
                        "default": "10485760",
                    },
                    "run_folder_mb": {
                        "description": "The size of a script container's run folder /cronium, in MB (a tmpfs, "
                        "memory as /tmp is; 1 to 1024): a script that writes past it is refused space.",
                        "version_added": "0.2.0",
                        "type": "integer",
                        "example": "250",
                        "default": "100",
                    },
                    "container_log_mb": {
                        "description": "What Docker keeps of a script container's output on its host, in MB "
                        "(json-file log, two files of half this size; 1 to 1024): the task log gets every line "
                        "as it is printed, Docker's log only the newest.",
                        "version_added": "0.2.0",
                        "type": "integer",
                        "example": "50",
                        "default": "10",
                    },
                    "script_network": {
                        "description": "The network of every script container: none (or empty) for no network, "
                        "only the container's own loopback (isolated, as Cronium's ISOLATE_NETWORK default); or "
                        "the name of a Docker network every script of every event joins: host (the Docker host's "
                        "network, its loopback services included), bridge, or a network made with docker network "
                        "create. A task's network argument wins.",
                        "version_added": "0.2.0",
                        "type": "string",
                        "example": "host",
                        "default": "none",
                    },
                    "webhook_rate_limit": {
                        "description": "Calls per key and window the webhook route admits (0: no limit).",
                        "version_added": "0.2.0",
                        "type": "integer",
                        "example": "100",
                        "default": "100",
                    },
                    "webhook_rate_window": {
                        "description": "The webhook rate limit's window, in seconds.",
                        "version_added": "0.2.0",
                        "type": "integer",
                        "example": "60",
                        "default": "60",
                    },
                    "max_http_response_bytes": {
                        "description": "The largest answer an HTTP_REQUEST event reads (bytes); a larger one "
                        "fails the task while it streams in, and is kept nowhere.",
                        "version_added": "0.2.0",
                        "type": "integer",
                        "example": "10485760",
                        "default": "1048576",
                    },
                    "webhook_max_body_bytes": {
                        "description": "The largest webhook body read (bytes); a larger one is refused with "
                        "413 while it streams in, and only after the key was accepted.",
                        "version_added": "0.2.0",
                        "type": "integer",
                        "example": "1048576",
                        "default": "1048576",
                    },
                    "webhook_body_timeout_seconds": {
                        "description": "The longest a webhook body may take to arrive (seconds), once the key "
                        "was accepted; a slower one is refused with 408 and starts no run.",
                        "version_added": "0.2.0",
                        "type": "float",
                        "example": "10",
                        "default": "10",
                    },
                    "max_active_runs": {
                        "description": "Runs of one Cronium DAG at once: as Cronium starts each schedule slot's "
                        "run while the previous one still runs, a slot's run starts beside the running ones up "
                        "to this bound (an event with maxExecutions runs one at a time, so its limit holds).",
                        "version_added": "0.2.0",
                        "type": "integer",
                        "example": "4",
                        "default": "16",
                    },
                    "resilience_store": {
                        "description": "Where tool-action rate limits and circuit breakers keep their state: "
                        "empty for a SQLite file in AIRFLOW_HOME, or redis://host:port/db across machines.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "redis://redis:6379/1",
                        "default": None,
                    },
                },
            }
        },
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
            },
            {
                "hook-class-name": "cronium_provider.hooks.google_sheets.GoogleSheetsHook",
                "hook-name": "Google Sheets (Cronium)",
                "connection-type": "cronium_google_sheets",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login"],
                    "relabeling": {"host": "Sheets API base URL", "password": "OAuth access token"},
                    "placeholders": {"host": "https://sheets.googleapis.com", "extra": '{"owner": "<Cronium userId>"}'},
                },
            },
            {
                "hook-class-name": "cronium_provider.hooks.trello.TrelloHook",
                "hook-name": "Trello (Cronium tool)",
                "connection-type": "cronium_trello",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {"host": "API base URL", "login": "API key", "password": "API token"},
                    "placeholders": {"host": "https://api.trello.com"},
                },
            },
            {
                "hook-class-name": "cronium_provider.hooks.notion.NotionHook",
                "hook-name": "Cronium Notion tool",
                "connection-type": "cronium_notion",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login"],
                    "relabeling": {"host": "Notion API base URL", "password": "Integration token"},
                    "placeholders": {
                        "host": "https://api.notion.com (the default)",
                        "extra": '{"owner": "<the Cronium userId the tool belongs to>"}',
                    },
                },
            },
        ],
    }
