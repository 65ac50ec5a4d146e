"""Google Sheets API v4 with an OAuth access token, as Cronium's Google Sheets actions call it.

Cronium's actions send the tool's ``oauthToken`` as a bearer token to ``https://sheets.googleapis.com/v4``
(apps/cronium-app/src/tools/plugins/google-sheets/actions/read-data.ts:119-125, 171-177). Here the token is the
password of a ``cronium_google_sheets`` connection and the API's base URL its host (Google's when unset).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from airflow.providers.http.hooks.http import HttpHook

API_URL = "https://sheets.googleapis.com"
CONN_TYPE = "cronium_google_sheets"
TIMEOUT_SECONDS = 30


class GoogleSheetsHook(HttpHook):
    """Sends one Sheets API request with the connection's password as the OAuth bearer token.

    :param google_sheets_conn_id: a ``cronium_google_sheets`` connection: password = OAuth access token,
        host = the API's base URL (default ``https://sheets.googleapis.com``).
    """

    conn_name_attr = "google_sheets_conn_id"
    default_conn_name = "cronium_tool_google-sheets"
    conn_type = CONN_TYPE
    hook_name = "Google Sheets (Cronium)"
    default_host = API_URL

    def __init__(self, google_sheets_conn_id: str = default_conn_name) -> None:
        super().__init__(method="GET", http_conn_id=google_sheets_conn_id)
        self.google_sheets_conn_id = google_sheets_conn_id

    def get_conn(self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None) -> Any:
        """A session with the bearer token; the connection's extras (its owner) are never sent as headers."""
        session = super().get_conn(headers=headers, extra_options=extra_options)
        connection = self.get_connection(self.google_sheets_conn_id)
        for key in connection.extra_dejson:
            session.headers.pop(key, None)
        session.auth = None
        session.headers["Authorization"] = f"Bearer {connection.password}"
        return session

    def token(self) -> str | None:
        """The OAuth access token (the connection's password), or None when it has none."""
        return self.get_connection(self.google_sheets_conn_id).password or None

    def request(self, method: str, endpoint: str, query: Mapping[str, str] | None = None, body: Any = None) -> Any:
        """Send ``method endpoint?query`` with ``body`` as JSON; the response, whatever its status, its body
        not read yet (streamed: read it with ``cronium_provider.limits.read_capped``)."""
        self.method = method
        options = {"check_response": False, "timeout": TIMEOUT_SECONDS, "stream": True}
        headers = {"Content-Type": "application/json"}
        if method == "GET":  # HttpHook sends a GET's data as its query
            return self.run(endpoint=endpoint, data=dict(query or {}), headers=headers, extra_options=options)
        return self.run(
            endpoint=endpoint,
            data=None if body is None else json.dumps(body),
            headers=headers,
            extra_options=options,
            params=dict(query or {}),
        )

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form: host is the API's base URL, password the OAuth access token."""
        return {
            "hidden_fields": ["schema", "port", "login"],
            "relabeling": {"host": "Sheets API base URL", "password": "OAuth access token"},
            "placeholders": {"host": API_URL, "extra": '{"owner": "<Cronium userId>"}'},
        }
