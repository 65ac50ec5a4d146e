"""Hook for the Cronium REST API: the ``cronium`` connection type (base URL + API token)."""

from __future__ import annotations

from typing import Any

from airflow.providers.http.hooks.http import HttpHook
from requests import Session


class CroniumAPIError(RuntimeError):
    """The Cronium API answered with an error status."""

    def __init__(self, status: int, request: str, body: str):
        self.status = status
        super().__init__(f"{request} answered HTTP {status}: {body}")


class CroniumHook(HttpHook):
    """
    Talks to a Cronium server's REST API with a Bearer token.

    The connection's host holds the Cronium base URL (``https://cronium.example.com``), its password the
    API token. Requests time out after ``timeout`` seconds.

    :param cronium_conn_id: the Airflow connection of type ``cronium``.
    :param timeout: seconds before a request is abandoned.
    """

    conn_name_attr = "cronium_conn_id"
    default_conn_name = "cronium_default"
    conn_type = "cronium"
    hook_name = "Cronium"

    def __init__(self, cronium_conn_id: str = default_conn_name, timeout: float = 30.0) -> None:
        super().__init__(method="GET", http_conn_id=cronium_conn_id)
        self.cronium_conn_id = cronium_conn_id
        self.timeout = timeout

    def _configure_session_from_auth(self, session: Session, connection: Any) -> Session:
        session.auth = None
        if connection.password:
            session.headers["Authorization"] = f"Bearer {connection.password}"
        session.headers["Accept"] = "application/json"
        return session

    def _get_json(self, endpoint: str) -> Any:
        response = self.run(endpoint, extra_options={"timeout": self.timeout, "check_response": False})
        if response.status_code >= 400:
            raise CroniumAPIError(response.status_code, f"GET /{endpoint}", response.text[:200])
        return response.json()

    def list_events(self) -> list[dict[str, Any]]:
        """Every event the token can see (``GET /api/events``)."""
        data = self._get_json("api/events")
        if isinstance(data, dict):
            for key in ("events", "data", "items"):
                if isinstance(data.get(key), list):
                    return list(data[key])
            raise ValueError("Cronium answered GET /api/events with an object holding no event list")
        if not isinstance(data, list):
            raise ValueError("Cronium answered GET /api/events with neither a list nor an object")
        return data

    def get_event(self, event_id: int) -> dict[str, Any]:
        """One event (``GET /api/events/{id}``)."""
        data = self._get_json(f"api/events/{int(event_id)}")
        if isinstance(data, dict) and isinstance(data.get("event"), dict):
            return dict(data["event"])
        if not isinstance(data, dict):
            raise ValueError(f"Cronium answered GET /api/events/{event_id} with no event object")
        return data

    def test_connection(self) -> tuple[bool, str]:
        """Call the events API with the token; report what went wrong in words a user can act on."""
        try:
            events = self.list_events()
        except Exception as exc:
            status = exc.status if isinstance(exc, CroniumAPIError) else None
            if status in (401, 403):
                return False, f"Cronium refused the API token (HTTP {status}); check the connection's password"
            return False, f"Cannot reach the Cronium API: {exc}"
        return True, f"Connected to Cronium; {len(events)} event(s) visible to this token"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form: host is the base URL, password the API token."""
        return {
            "hidden_fields": ["schema", "port", "login", "extra"],
            "relabeling": {"host": "Cronium base URL", "password": "API token"},
            "placeholders": {"host": "https://cronium.example.com"},
        }
