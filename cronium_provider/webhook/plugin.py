"""The Airflow plugin that serves Cronium's workflow webhook under the api-server.

Registered through the ``airflow.plugins`` entry point (``cronium_webhooks`` in pyproject.toml). The
api-server mounts each of a plugin's ``fastapi_apps`` at its ``url_prefix`` and adds its
``fastapi_root_middlewares`` to the root app (airflow/api_fastapi/app.py ``init_plugins``), so a Cronium
caller's ``POST <cronium>/api/workflows/webhook/<key>`` becomes ``POST <airflow>/cronium/api/workflows/webhook/<key>``.

Every Airflow process loads plugins; this module imports neither FastAPI nor the records code. The app is
built on the first request the api-server hands it.
"""

from __future__ import annotations

import threading

from airflow.plugins_manager import AirflowPlugin

from cronium_provider.naming import WEBHOOK_PLUGIN, WEBHOOK_URL_PREFIX
from cronium_provider.webhook.redaction import ASGIApp, Receive, Scope, Send, WebhookKeyRedactionMiddleware


class LazyWebhookApp:
    """An ASGI app that builds :func:`cronium_provider.webhook.app.create_app` when first called."""

    def __init__(self) -> None:
        self._app: ASGIApp | None = None
        self._lock = threading.Lock()

    def _build(self) -> ASGIApp:
        with self._lock:
            if self._app is None:
                from cronium_provider.webhook.app import create_app

                self._app = create_app()
            return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "lifespan":  # a mounted app gets none; nothing to start or stop
            return
        app = self._app or self._build()
        await app(scope, receive, send)


class CroniumWebhookPlugin(AirflowPlugin):
    """Serves ``/cronium/api/workflows/webhook/{key}`` and keeps the keys out of the access log."""

    name = WEBHOOK_PLUGIN
    fastapi_apps = [
        {"app": LazyWebhookApp(), "url_prefix": WEBHOOK_URL_PREFIX, "name": "Cronium workflow webhooks"},
    ]
    fastapi_root_middlewares = [
        {
            "middleware": WebhookKeyRedactionMiddleware,
            "args": [],
            "kwargs": {},
            "name": "Cronium webhook key redaction",
        },
    ]
