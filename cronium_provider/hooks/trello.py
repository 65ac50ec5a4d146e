"""Trello's REST API 1 with an API key and token, as Cronium's Trello plugin calls it.

The connection (type ``cronium_trello``) holds the key as its login and the token as its password; its host is
the API's base URL (``https://api.trello.com`` when unset). Trello takes both as the query parameters ``key``
and ``token``: they are registered with Airflow's secrets masker, and no URL holding them is ever put in an
error message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from airflow.sdk import BaseHook

from cronium_provider.exceptions import InvalidCredentials, ToolActionError, ToolHTTPError
from cronium_provider.resilience.retry import retry_after_seconds

DEFAULT_BASE_URL = "https://api.trello.com"
TIMEOUT = 30.0
ERROR_BYTES = 2000  # an error answer is only quoted: its start is enough


def error_text(text: str) -> str:
    """What an error answer says: a JSON answer's ``message``, else its ``error``, as Cronium reports them
    (trello/actions/move-card.ts:174-182); any other answer (Trello's plain ``invalid key``) as it is."""
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, dict):
        for field in ("message", "error"):
            if isinstance(data.get(field), str) and data[field]:
                return str(data[field])
    return text


def path_segment(value: Any) -> str:
    """An id put in a URL path (a card's, a checklist's): quoted whole, so ``../boards/x`` stays one segment. An
    id ``.`` or ``..`` is refused: ``requests`` sends ``%2E`` as ``.``, and a server takes it for a dot segment
    (``/1/cards/..`` is ``/1/``)."""
    quoted = quote(str(value), safe="")
    if quoted in (".", ".."):
        raise ToolActionError(f"trello: id {quoted!r} is a dot segment of a URL path, no Trello id")
    return quoted


class TrelloHook(BaseHook):
    """
    Calls Trello's REST API 1 (``/1/cards``, ``/1/checklists``...) with the connection's key and token.

    :param trello_conn_id: the Airflow connection of type ``cronium_trello``.
    """

    conn_name_attr = "trello_conn_id"
    default_conn_name = "cronium_tool_trello"
    conn_type = "cronium_trello"
    hook_name = "Trello (Cronium tool)"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden-fields": ["schema", "port"],
            "relabeling": {"host": "API base URL", "login": "API key", "password": "API token"},
            "placeholders": {
                "host": DEFAULT_BASE_URL,
                "login": "the key from https://trello.com/app-key",
                "extra": '{"owner": "<Cronium userId of the tool>"}',
            },
        }

    def __init__(self, trello_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.trello_conn_id = trello_conn_id

    def _credentials(self) -> tuple[str, str, str]:
        from airflow.sdk.log import mask_secret

        conn = self.get_connection(self.trello_conn_id)
        key, token = str(conn.login or ""), str(conn.password or "")
        if not key or not token:
            # Cronium's own words (trello/actions/create-card.ts:161-165)
            raise InvalidCredentials(
                f"connection {self.trello_conn_id}: Trello API key and token required (the key as the login, the "
                "token as the password). Get them from https://trello.com/app-key"
            )
        mask_secret(key)
        mask_secret(token)
        host = str(conn.host or "").strip() or DEFAULT_BASE_URL
        if "://" not in host:
            host = f"https://{host}"
        if conn.port:
            host = f"{host}:{conn.port}"
        return host.rstrip("/"), key, token

    def request(self, method: str, path: str, body: Mapping[str, Any]) -> Any:
        """``method`` ``path`` (``/1/cards``) with ``body`` as JSON; the answer's JSON once it is a 2xx.

        An error status raises :class:`~cronium_provider.exceptions.ToolHTTPError` with Trello's answer
        (``invalid key``) and, for a 429, its ``Retry-After`` as ``retry_after``.
        A network error is raised as its own type without the URL."""
        import requests

        from cronium_provider.limits import max_response_bytes, read_capped

        base, key, token = self._credentials()
        try:
            response = requests.request(
                method,
                f"{base}{path}",
                params={"key": key, "token": token},
                data=json.dumps(body),
                headers={"Content-Type": "application/json"},
                timeout=TIMEOUT,
                allow_redirects=False,
                stream=True,
            )
            limit = max_response_bytes()
            ok = 200 <= response.status_code < 300
            content = read_capped(response, limit) if ok else read_capped(response, ERROR_BYTES, cut=True)
        except requests.RequestException as exc:
            text = str(exc).replace(key, "***").replace(token, "***")
            raise type(exc)(f"trello {method} {path} failed: {text}") from None
        if content is None:
            raise ToolActionError(
                f"trello {method} {path} answered more than {limit} bytes ([cronium] max_http_response_bytes); "
                "the answer was not kept"
            )
        text = content.decode(response.encoding or "utf-8", errors="replace")
        if not ok:
            raise ToolHTTPError(
                "trello",
                response.status_code,
                error_text(text).replace(key, "***").replace(token, "***"),
                retry_after_seconds(response.headers.get("Retry-After")),
            )
        try:
            return json.loads(text)
        except ValueError:
            raise ToolActionError(f"trello {method} {path} answered {response.status_code} with no JSON") from None
