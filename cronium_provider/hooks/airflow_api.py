"""The deployment's own Airflow REST API, as the user a connection names: pauses a Cronium event's DAG.

A task cannot change a DAG's pause state through the Task SDK, so the provider asks the api-server, as
Cronium pauses an event once it reached ``maxExecutions`` (apps/cronium-app/src/lib/scheduler/
execution-counter.ts:24-35). The connection (``cronium_airflow_api``, type ``http``) holds the api-server's
URL and a user allowed to edit DAGs; its password is used only to get a token.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from airflow.providers.http.hooks.http import HttpHook

from cronium_provider.exceptions import CroniumException

DEFAULT_CONN_ID = "cronium_airflow_api"
TIMEOUT_SECONDS = 30


class AirflowApiHook(HttpHook):
    """Calls the Airflow REST API (``/auth/token``, ``/api/v2``) of the deployment the task runs in.

    :param airflow_api_conn_id: an ``http`` connection: host and port of the api-server, login, password.
    """

    conn_name_attr = "airflow_api_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "http"
    hook_name = "Airflow API (Cronium)"

    def __init__(self, airflow_api_conn_id: str = DEFAULT_CONN_ID) -> None:
        super().__init__(method="POST", http_conn_id=airflow_api_conn_id)
        self.airflow_api_conn_id = airflow_api_conn_id

    def _token(self, session: Any) -> str:
        connection = self.get_connection(self.airflow_api_conn_id)
        answer = session.post(
            f"{self.base_url}/auth/token",
            json={"username": connection.login, "password": connection.password},
            timeout=TIMEOUT_SECONDS,
        )
        if answer.status_code not in (200, 201):
            raise CroniumException(
                f"the Airflow API refused the login of connection {self.airflow_api_conn_id} "
                f"(HTTP {answer.status_code})"
            )
        return str(answer.json()["access_token"])

    def set_paused(self, dag_id: str, paused: bool = True) -> None:
        """Pause (or unpause) a DAG through ``PATCH /api/v2/dags/{dag_id}``."""
        session = self.get_conn()
        session.auth = None  # the Bearer token below authenticates, not the connection's basic auth
        token = self._token(session)
        answer = session.patch(
            f"{self.base_url}/api/v2/dags/{quote(dag_id, safe='')}",
            params={"update_mask": "is_paused"},
            json={"is_paused": paused},
            headers={"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT_SECONDS,
        )
        if answer.status_code != 200:
            raise CroniumException(
                f"the Airflow API did not pause {dag_id}: HTTP {answer.status_code} {answer.text[:200]}"
            )
