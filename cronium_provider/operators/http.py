"""The operator for Cronium HTTP_REQUEST events, through the Airflow HTTP provider's hook.

The answer is read as it streams in, up to ``[cronium] max_http_response_bytes`` (default 1 MiB, counted
after any content decoding); a larger one (declared by its ``Content-Length`` or read) fails the task
without a retry, before the rest is read, so no XCom grows past the cap.

Redirects are followed only within the event URL's origin (scheme, host and port): the event's headers
often carry an API key or token, and ``requests`` forwards every header but ``Authorization`` to wherever a
redirect points. A redirect to another origin is not followed; the task fails naming where it pointed.
Cronium's executor (axios, apps/cronium-app/src/lib/scheduler/http-executor.ts:37-93, no ``maxRedirects``)
follows up to 21 redirects (the follow-redirects default) to any host, dropping only ``Authorization``,
``Proxy-Authorization`` and ``Cookie`` on the way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

from airflow.providers.http.hooks.http import HttpHook
from airflow.sdk import Context

from cronium_provider.exceptions import CroniumInvalidParameter, HttpRequestFailed
from cronium_provider.limits import max_response_bytes, read_capped
from cronium_provider.operators.event import CroniumEventOperator
from cronium_provider.runners.outcome import OUTPUT_TAIL_BYTES

DEFAULT_TIMEOUT_SECONDS = 30
ERROR_BODY_CHARS = 500
DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024


def origin(url: str) -> tuple[str, str, int | None]:
    """A URL's scheme, host and port (the scheme's default port when it names none)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(scheme)


def redirect_elsewhere(response: Any) -> str | None:
    """Where a redirect answer points when that is another origin than the request's, else None."""
    location = response.headers.get("Location") if response.is_redirect else None
    if not location:
        return None
    target = urljoin(response.url, location)
    return target if origin(target) != origin(response.url) else None


class CroniumRequestHook(HttpHook):
    """``HttpHook`` for the absolute URLs Cronium events carry; the connection is optional.

    Without a connection the event's URL is used as is; with one, its extras (proxies, TLS verification,
    certificates, headers) apply to the request.
    """

    def __init__(self, method: str, http_conn_id: str | None = None) -> None:
        super().__init__(method=method, http_conn_id=http_conn_id or "")

    def get_connection(self, conn_id: str | None) -> Any:  # type: ignore[override]
        if conn_id:
            return super().get_connection(conn_id)
        from airflow.sdk import Connection

        return Connection(conn_id="cronium_http_request", conn_type="http")

    def get_conn(self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None) -> Any:
        """The hook's session, following only redirects within the request's origin."""
        session = super().get_conn(headers=headers, extra_options=extra_options)
        follow = session.get_redirect_target

        def same_origin_target(response: Any) -> str | None:
            return None if redirect_elsewhere(response) else follow(response)

        # requests asks the session for each redirect's target; None stops following (the 3xx is the answer)
        session.get_redirect_target = same_origin_target  # type: ignore[method-assign,assignment]
        return session

    def url_from_endpoint(self, endpoint: str | None) -> str:
        if endpoint and urlsplit(endpoint).scheme in ("http", "https"):
            return endpoint
        return str(super().url_from_endpoint(endpoint))


def _parse_body(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


class CroniumHttpOperator(CroniumEventOperator):
    """
    Send a Cronium HTTP_REQUEST event's request.

    Every parameter of :class:`~cronium_provider.operators.event.CroniumEventOperator` applies, and:

    The XCom ``return_value`` is the parsed JSON body, or ``{status, headers, body}`` when the answer is not
    JSON. An answer outside 2xx fails the task with the status and the start of the body.

    :param method: HTTP method (GET, POST, PUT, PATCH, DELETE, HEAD).
    :param url: absolute URL.
    :param headers: ``[(name, value), ...]`` or ``{name: value}``.
    :param body: request body text; JSON text is sent as ``application/json`` unless a Content-Type is
        given.
    :param timeout: seconds before the request is abandoned (Cronium's default: 30).
    :param http_conn_id: an optional Airflow HTTP connection whose extras (proxy, TLS) apply.
    :param max_response_bytes: the largest answer read; default ``[cronium] max_http_response_bytes``.
    """

    # Record content is sent as written: Cronium bodies and URLs are not Jinja templates.
    template_fields: Sequence[str] = ()
    ui_color = "#fdf2e9"

    def __init__(
        self,
        *,
        method: str = "GET",
        url: str,
        headers: Any = None,
        body: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        http_conn_id: str | None = None,
        max_response_bytes: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.max_response_bytes = max_response_bytes
        self.method = method.upper()
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.http_conn_id = http_conn_id

    def _header_dict(self) -> dict[str, str]:
        if not self.headers:
            return {}
        if isinstance(self.headers, dict):
            return {str(k): str(v) for k, v in self.headers.items()}
        return {str(k): str(v) for k, v in self.headers}

    def push_answer(self, context: Context, text: str) -> None:
        """The run's log for its messages (``{{cronium.event.output}}``): the answer's text, its first 64 KiB
        (``runners.outcome.OUTPUT_TAIL_BYTES``), every masked secret redacted. Cronium's
        HTTP executor hands back the answer (apps/cronium-app/src/lib/scheduler/http-executor.ts:93-102)."""
        from airflow.sdk._shared.secrets_masker import redact

        cut = text.encode("utf-8")[:OUTPUT_TAIL_BYTES].decode("utf-8", errors="ignore")
        self.push_results(context, stdout=redact(cut))

    def run_event(self, context: Context, run_input: Any) -> Any:
        headers = self._header_dict()
        data: Any = None
        if self.body and self.method not in ("GET", "HEAD"):
            data = self.body.encode("utf-8")
            if _parse_body(self.body) is not None and not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json"
        hook = CroniumRequestHook(self.method, self.http_conn_id)
        self.log.info("%s %s", self.method, self.url)
        response = hook.run(
            endpoint=self.url,
            data=data,
            headers=headers,
            extra_options={"timeout": self.timeout, "check_response": False, "stream": True},
        )
        ok = 200 <= response.status_code < 300
        limit = self.max_response_bytes if self.max_response_bytes is not None else max_response_bytes()
        # an error's answer is only quoted: its start is enough
        content = read_capped(response, limit) if ok else read_capped(response, ERROR_BODY_CHARS * 4, cut=True)
        if content is None:
            raise CroniumInvalidParameter(
                f"{self.method} {self.url} answered more than {limit} bytes ([cronium] max_http_response_bytes); "
                "the answer was not kept"
            )
        text = content.decode(response.encoding or "utf-8", errors="replace")
        self.log.info("HTTP %s, %d byte(s)", response.status_code, len(content))
        elsewhere = redirect_elsewhere(response)
        if elsewhere:
            raise HttpRequestFailed(
                f"{self.method} {self.url} answered HTTP {response.status_code}, a redirect to another origin "
                f"({elsewhere}): not followed, as the event's headers go only to its own URL's origin"
            )
        if not ok:
            raise HttpRequestFailed(
                f"{self.method} {self.url} answered HTTP {response.status_code} {response.reason}: "
                f"{text[:ERROR_BODY_CHARS]}"
            )
        self.push_answer(context, text)
        parsed = _parse_body(text) if text.strip() else None
        if parsed is not None:
            return parsed
        return {"status": response.status_code, "headers": dict(response.headers), "body": text}
