"""The Airflow plugin that serves Cronium's workflow webhook under the api-server.

Registered through the ``airflow.plugins`` entry point (``cronium_webhooks`` in pyproject.toml). The
api-server mounts each of a plugin's ``fastapi_apps`` at its ``url_prefix`` and adds its
``fastapi_root_middlewares`` to the root app (airflow/api_fastapi/app.py ``init_plugins``), so a Cronium
caller's ``POST <cronium>/api/workflows/webhook/<key>`` becomes ``POST <airflow>/cronium/api/workflows/webhook/<key>``.

Every Airflow process loads plugins; this module imports neither FastAPI nor the records code. The app is
built on the first request the api-server hands it.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from cronium_provider.lazy_asgi import LazyApp
from cronium_provider.naming import WEBHOOK_PLUGIN, WEBHOOK_URL_PREFIX
from cronium_provider.webhook.redaction import WebhookKeyRedactionMiddleware


class CroniumWebhookPlugin(AirflowPlugin):
    """Serves ``/cronium/api/workflows/webhook/{key}`` and keeps the keys out of the access log."""

    name = WEBHOOK_PLUGIN
    fastapi_apps = [
        {
            "app": LazyApp("cronium_provider.webhook.app:create_app"),
            "url_prefix": WEBHOOK_URL_PREFIX,
            "name": "Cronium workflow webhooks",
        },
    ]
    fastapi_root_middlewares = [
        {
            "middleware": WebhookKeyRedactionMiddleware,
            "args": [],
            "kwargs": {},
            "name": "Cronium webhook key redaction",
        },
    ]
