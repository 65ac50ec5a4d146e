"""Keep webhook keys out of the api-server's logs: a root ASGI middleware that hides the key in the path.

Airflow's access log (``HttpAccessLogMiddleware``, the outermost middleware of the api-server) logs
``scope["path"]`` once the request has finished, reading the scope it passed down. This middleware, installed
through the plugin's ``fastapi_root_middlewares``, hands the app below it a copy of the scope with the real
path, and replaces the path (and ``raw_path``) of the scope above it by ``.../api/workflows/webhook/***``.
The access log then shows ``/cronium/api/workflows/webhook/***``; routing still sees the key.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from cronium_provider.naming import WEBHOOK_ROUTE_PREFIX, WEBHOOK_URL_PREFIX

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MASK = "***"
_WEBHOOK_PATH = WEBHOOK_URL_PREFIX + WEBHOOK_ROUTE_PREFIX  # /cronium/api/workflows/webhook/
# everything after the prefix: a key with an encoded slash must not leave a part of it behind
_KEY_IN_PATH = re.compile("(" + re.escape(_WEBHOOK_PATH) + ").+", re.S)
_KEY_IN_RAW_PATH = re.compile(b"(" + re.escape(_WEBHOOK_PATH.encode()) + b")[^?]+")


def redact_path(path: str) -> str:
    """``path`` with all that follows ``/cronium/api/workflows/webhook/`` (the key) replaced by ``***``."""
    return _KEY_IN_PATH.sub(r"\g<1>" + MASK, path)


class WebhookKeyRedactionMiddleware:
    """Hide webhook keys from everything above this middleware (the access log), not from the app below."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if scope.get("type") not in ("http", "websocket") or not isinstance(path, str) or _WEBHOOK_PATH not in path:
            await self.app(scope, receive, send)
            return
        inner = dict(scope)
        scope["path"] = redact_path(path)
        raw = scope.get("raw_path")
        if isinstance(raw, bytes):
            scope["raw_path"] = _KEY_IN_RAW_PATH.sub(b"\\g<1>" + MASK.encode(), raw)
        await self.app(inner, receive, send)
