"""Notion's API through the ``notion-client`` package, with a Cronium Notion tool's connection.

The connection (type ``cronium_notion``, ``cronium_tool_<toolId>``) holds the integration token as its
password (Cronium's ``apiKey``, apps/cronium-app/src/tools/plugins/notion/schemas.ts) and, optionally, the
API's base URL as its host (default ``https://api.notion.com``). Requests carry Cronium's ``Notion-Version``
(``2022-06-28``, as every Notion action of Cronium sends). The client waits out a 429's ``Retry-After``
(at most ``MAX_RETRY_DELAY_MS``) and tries again, ``MAX_RETRIES`` times; a 401 or 403 is never retried.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from airflow.sdk import BaseHook

from cronium_provider.exceptions import InvalidCredentials, ToolActionError

CONN_TYPE = "cronium_notion"
DEFAULT_BASE_URL = "https://api.notion.com"
NOTION_VERSION = "2022-06-28"
TIMEOUT_MS = 30_000
MAX_RETRIES = 2  # 429 answers waited out in one attempt of the action; the action's retry strategy comes after
MAX_RETRY_DELAY_MS = 60_000


def capped_transport(limit: int) -> Any:
    """An ``httpx`` transport whose answers are read only up to ``limit`` bytes, as an HTTP_REQUEST event's are:
    past it, reading raises :class:`~cronium_provider.exceptions.ToolActionError` naming the request and the limit."""
    import httpx

    class CappedStream(httpx.SyncByteStream):
        def __init__(self, stream: Any, what: str) -> None:
            self.stream, self.what = stream, what

        def __iter__(self) -> Iterator[bytes]:
            seen = 0
            for chunk in self.stream:
                seen += len(chunk)
                if seen > limit:
                    raise ToolActionError(
                        f"notion {self.what} answered more than {limit} bytes ([cronium] max_http_response_bytes); "
                        "the answer was not kept"
                    )
                yield chunk

        def close(self) -> None:
            self.stream.close()

    class CappedTransport(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = super().handle_request(request)
            capped = CappedStream(response.stream, f"{request.method} {request.url.path}")
            return httpx.Response(
                response.status_code, headers=response.headers, stream=capped, extensions=response.extensions
            )

    return CappedTransport()


class NotionHook(BaseHook):
    """A ``notion_client.Client`` for a ``cronium_notion`` connection.

    :param notion_conn_id: the connection: password the integration token, host the API's base URL (optional).
    """

    conn_name_attr = "notion_conn_id"
    default_conn_name = "cronium_tool_notion"
    conn_type = CONN_TYPE
    hook_name = "Cronium Notion tool"

    def __init__(self, notion_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.notion_conn_id = notion_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form's fields, as the provider's info declares them (Airflow reads either)."""
        from cronium_provider.get_provider_info import get_provider_info

        [entry] = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == CONN_TYPE]
        return dict(entry["ui-field-behaviour"])

    def base_url(self) -> str:
        """The connection's host (with its scheme, ``https://`` when it gives none), else Notion's API."""
        conn = self.get_connection(self.notion_conn_id)
        host = str(conn.host or "").strip().rstrip("/")
        if not host:
            return DEFAULT_BASE_URL
        if "://" not in host:
            host = f"{conn.schema or 'https'}://{host}"
        return f"{host}:{conn.port}" if conn.port else host

    def get_conn(self) -> Any:
        """A ``notion_client.Client`` with the connection's token, base URL and Cronium's Notion-Version."""
        import httpx
        from notion_client import Client
        from notion_client.client import RetryOptions

        from cronium_provider.limits import max_response_bytes

        conn = self.get_connection(self.notion_conn_id)
        if not conn.password:
            raise InvalidCredentials(
                f"Notion tool connection {self.notion_conn_id} has no integration token: set its password to "
                "the token of a Notion integration"
            )
        return Client(
            auth=conn.password,
            base_url=self.base_url(),
            notion_version=NOTION_VERSION,
            timeout_ms=TIMEOUT_MS,
            retry=RetryOptions(max_retries=MAX_RETRIES, max_retry_delay_ms=MAX_RETRY_DELAY_MS),
            logger=logging.getLogger(__name__),
            client=httpx.Client(transport=capped_transport(max_response_bytes())),
        )

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One call to the API (``path`` below ``/v1/``); Notion's answer as JSON."""
        return self.get_conn().request(path=path, method=method, body=body)
