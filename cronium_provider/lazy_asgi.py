"""An ASGI app built on its first request: the provider's plugins hand one to the api-server.

Every Airflow process loads plugins (schedulers, workers, the CLI); a plugin module that imported FastAPI
and the records code would make each of them pay for it. :class:`LazyApp` names the factory of the real
app as ``"module:function"`` and imports it only when the api-server first calls the app.
"""

from __future__ import annotations

import importlib
import threading

from cronium_provider.webhook.redaction import ASGIApp, Receive, Scope, Send


class LazyApp:
    """An ASGI app that builds ``factory`` (``"package.module:function"``) when first called."""

    def __init__(self, factory: str) -> None:
        self.factory = factory
        self._app: ASGIApp | None = None
        self._lock = threading.Lock()

    def _build(self) -> ASGIApp:
        with self._lock:
            if self._app is None:
                module, _, function = self.factory.partition(":")
                self._app = getattr(importlib.import_module(module), function)()
            return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "lifespan":  # a mounted app gets none; nothing to start or stop
            return
        app = self._app or self._build()
        await app(scope, receive, send)
