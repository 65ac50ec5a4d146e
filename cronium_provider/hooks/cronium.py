"""Hook for the Cronium REST API: the ``cronium`` connection type (base URL + API token).

The payload shapes are those of Cronium's Next.js route handlers (``addison-moore/cronium``, paths under
``apps/cronium-app/`` since its monorepo layout):

- ``GET /api/events`` (``src/app/api/events/route.ts``): a bare JSON array of event rows, each with
  ``eventServers`` (server ids) but without env vars, servers or conditional actions.
- ``GET /api/events/{id}`` (``src/app/api/events/[id]/route.ts``): one event object, the row plus
  ``envVars`` (``[{id, eventId, key, value, ...}]``, values decrypted), ``server`` (the ``serverId``
  server, credentials included), ``servers`` (full server rows) and ``successEvents``, ``failEvents``,
  ``alwaysEvents``, ``conditionEvents``.
- ``GET /api/workflows`` (``src/app/api/workflows/route.ts``): a bare array of workflow rows (archived
  ones only with ``includeArchived=true``).
- ``GET /api/workflows/{id}`` (``src/app/api/workflows/[id]/route.ts``): ``{workflow, nodes, edges}``
  with nodes and edges in the editor's shape.
- errors: ``{"error": "..."}`` with 400 (bad id), 401 (``Unauthorized``), 403, 404 (``Script not found``,
  ``Workflow not found``) or 500 (``Internal server error``).

The two workflow routes exist only in Cronium before its tRPC migration (commit ``649cdbe`` deleted
``src/app/api/workflows/route.ts`` and ``[id]/route.ts``); a current Cronium serves workflows through tRPC
with a browser session only, and ``GET /api/workflows`` reaches its catch-all
``apps/cronium-app/src/app/api/[...notfound]/route.ts:7-9, 27-43``: HTTP 404,
``{"error": "Not Found", "message": "API endpoint '/api/workflows' does not exist", "statusCode": 404,
"timestamp": ...}``. :meth:`CroniumHook.list_workflows` raises :class:`CroniumRouteMissing` for that answer
(and for a 405 or an HTML page in its place) and :meth:`CroniumHook.fetch_snapshot` then syncs the events
alone, saying why in the snapshot's ``workflows_missing``.

Cronium's ``/api/servers`` routes accept a browser session only (no API token), so servers are read from
the event details. Wrapped lists (``{"events": [...]}``, ``{"data": [...]}``) and paginated objects
(``{"events": [...], "total": n, "hasMore": true}``, as Cronium's tRPC router answers) are accepted too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import requests
from airflow.providers.http.hooks.http import HttpHook
from requests import Session

from cronium_provider.exceptions import (
    CroniumAPIError,
    CroniumConnectionError,
    CroniumResponseError,
    CroniumTimeoutError,
    api_error,
)
from cronium_provider.naming import CRONIUM_DEFAULT_CONN_ID
from cronium_provider.sync.transform import Snapshot

# Keys that only an event's detail carries: a list item without them is partial.
EVENT_DETAIL_KEYS = ("envVars", "successEvents", "failEvents", "alwaysEvents", "conditionEvents", "servers")
_LIST_KEYS = ("events", "workflows", "data", "items", "results")
_MAX_PAGES = 1000
# answers meaning "this Cronium has no such route": its catch-all's 404, or 405 from a route file without GET
ROUTE_MISSING_STATUSES = (404, 405)


class CroniumRouteMissing(CroniumResponseError):
    """
    This Cronium has no REST route for the request: it answered 404 or 405, or a web page instead of JSON.

    A current Cronium answers ``GET /api/workflows`` so (the route went away with its tRPC migration).
    ``answer`` is what came back, in one short line (``HTTP 404: API endpoint '/api/workflows' does not exist``).
    """

    def __init__(self, request: str, answer: str):
        self.request = request
        self.answer = answer
        super().__init__(f"{request}: this Cronium has no such REST route (answered {answer})")


class CroniumHook(HttpHook):
    """
    Talks to a Cronium server's REST API with a Bearer token.

    The connection's host holds the Cronium base URL (``https://cronium.example.com``), its password the
    API token. A request fails after ``timeout`` seconds without a complete answer.

    :param cronium_conn_id: the Airflow connection of type ``cronium``.
    :param timeout: seconds before a request is abandoned.
    """

    conn_name_attr = "cronium_conn_id"
    default_conn_name = CRONIUM_DEFAULT_CONN_ID
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

    def _get_json(self, endpoint: str, params: dict[str, Any] | None = None, route_may_be_missing: bool = False) -> Any:
        """
        The parsed JSON of ``GET /<endpoint>``; every failure is a :class:`~cronium_provider.exceptions.CroniumError`.

        With ``route_may_be_missing``, a 404 or 405 and a web page (HTML) where JSON belongs raise
        :class:`CroniumRouteMissing`; a body that is JSON cut short is still a
        :class:`~cronium_provider.exceptions.CroniumResponseError`.
        """
        request = f"GET /{endpoint}"
        deadline = time.monotonic() + self.timeout
        try:
            response = self.run(
                endpoint,
                data=params,
                extra_options={"timeout": self.timeout, "check_response": False, "stream": True},
            )
            body = self._read_body(response, request, deadline)
        except requests.Timeout:
            raise CroniumTimeoutError(f"{request}: no answer from Cronium within {self.timeout:g} s") from None
        except requests.ConnectionError as exc:
            if _is_read_timeout(exc):
                raise CroniumTimeoutError(f"{request}: no answer from Cronium within {self.timeout:g} s") from None
            raise CroniumConnectionError(f"{request}: cannot reach Cronium at {self.base_url}: {exc}") from None
        except requests.RequestException as exc:
            raise CroniumConnectionError(f"{request}: request to Cronium failed: {exc}") from None
        text = body.decode("utf-8", errors="replace")
        content_type = response.headers.get("Content-Type", "no Content-Type")
        summary = " ".join(text[:200].split())
        if route_may_be_missing and response.status_code in ROUTE_MISSING_STATUSES:
            said = _error_text(text)
            raise CroniumRouteMissing(request, f"HTTP {response.status_code}" + (f": {said}" if said else ""))
        if response.status_code >= 400:
            raise api_error(response.status_code, request, summary)
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            if route_may_be_missing and _is_page(text, content_type):
                raise CroniumRouteMissing(
                    request, f"HTTP {response.status_code} with a {content_type.split(';')[0]} page, not JSON"
                ) from None
            raise CroniumResponseError(
                f"{request} answered HTTP {response.status_code} with a body that is not valid JSON "
                f"({exc.msg} at line {exc.lineno} column {exc.colno}; {content_type}); "
                "is the connection's host the Cronium base URL?"
            ) from None

    def _read_body(self, response: requests.Response, request: str, deadline: float) -> bytes:
        """The whole body, or a timeout when it has not fully arrived by ``deadline``."""
        chunks: list[bytes] = []
        try:
            for chunk in response.iter_content(chunk_size=65536):
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise CroniumTimeoutError(
                        f"{request}: the answer did not arrive completely within {self.timeout:g} s"
                    )
        finally:
            response.close()
        return b"".join(chunks)

    def _list(
        self, endpoint: str, what: str, params: dict[str, Any] | None = None, route_may_be_missing: bool = False
    ) -> list[dict[str, Any]]:
        """
        A list endpoint's items: a bare array, a wrapped list, or a paginated object followed to its end.

        ``route_may_be_missing`` applies to the first page only: a later page that is missing is a failure.
        """
        items: list[dict[str, Any]] = []
        seen: set[Any] = set()
        query = dict(params or {})
        for page_number in range(_MAX_PAGES):
            data = self._get_json(endpoint, query or None, route_may_be_missing and page_number == 0)
            page, more = _list_page(data, endpoint, what)
            new = [item for item in page if item.get("id") not in seen or item.get("id") is None]
            items.extend(new)
            seen.update(item.get("id") for item in new)
            if not more:
                return items
            if not new:
                raise CroniumResponseError(
                    f"GET /{endpoint} says more {what} follow (hasMore) but the next page brought none"
                )
            query = {**query, "offset": len(items), "limit": len(page)}
        raise CroniumResponseError(f"GET /{endpoint}: more than {_MAX_PAGES} pages of {what}")

    def _object(self, endpoint: str, wrapper: str) -> dict[str, Any]:
        data = self._get_json(endpoint)
        if isinstance(data, dict) and isinstance(data.get(wrapper), dict) and "id" not in data:
            data = data[wrapper]
        elif isinstance(data, dict) and isinstance(data.get("data"), dict) and "id" not in data:
            data = data["data"]
        if not isinstance(data, dict):
            raise CroniumResponseError(
                f"GET /{endpoint} answered {type(data).__name__} where Cronium sends a {wrapper} object"
            )
        return dict(data)

    def list_events(self) -> list[dict[str, Any]]:
        """Every event the token can see (``GET /api/events``): rows without env vars or actions."""
        return self._list("api/events", "events")

    def get_event(self, event_id: int) -> dict[str, Any]:
        """One event with ``envVars``, ``server``, ``servers`` and its four action lists."""
        return self._object(f"api/events/{int(event_id)}", "event")

    def list_workflows(self, include_archived: bool = False) -> list[dict[str, Any]]:
        """
        Every workflow the token can see (``GET /api/workflows``): rows without nodes or edges.

        Raises :class:`CroniumRouteMissing` when this Cronium has no such route (every Cronium since its tRPC
        migration: see the module's docstring).
        """
        params = {"includeArchived": "true"} if include_archived else None
        return self._list("api/workflows", "workflows", params, route_may_be_missing=True)

    def get_workflow(self, workflow_id: int) -> dict[str, Any]:
        """
        One workflow as a record: the row with ``nodes`` and ``edges`` (``GET /api/workflows/{id}``).

        Cronium answers ``{workflow, nodes, edges}``; the three are merged into one object, the shape the
        record models read. A flat workflow object is returned as it is.
        """
        endpoint = f"api/workflows/{int(workflow_id)}"
        data = self._get_json(endpoint)
        if isinstance(data, dict) and isinstance(data.get("workflow"), dict):
            merged = dict(data["workflow"])
            for key in ("nodes", "edges", "connections"):
                if key in data:
                    merged[key] = data[key]
            return merged
        if isinstance(data, dict) and "id" in data:
            return dict(data)
        raise CroniumResponseError(f"GET /{endpoint} answered neither {{workflow, nodes, edges}} nor a workflow")

    def fetch_snapshot(
        self, with_workflows: bool = True, progress: Callable[[int, int], None] | None = None
    ) -> Snapshot:
        """
        Every event (with its details), workflow and named server, for ``cronium-airflow sync``.

        An event or workflow deleted between the list and its detail request is left out with a note. A
        Cronium without ``GET /api/workflows`` (:class:`CroniumRouteMissing`) gives the events alone, with
        ``workflows_missing`` saying what it answered. Any other failure raises
        :class:`~cronium_provider.exceptions.CroniumError`. ``progress`` is told ``(done, total)`` of the events
        and workflows listed, as their details come.
        """
        snapshot = Snapshot(base_url="")
        listed = self.list_events()
        snapshot.base_url = str(getattr(self, "base_url", ""))
        for done, item in enumerate(listed):
            if progress is not None:
                progress(done, len(listed))
            event_id = item.get("id")
            if not _is_partial(item) or not isinstance(event_id, int) or isinstance(event_id, bool):
                snapshot.events.append(item)  # complete already, or no usable id: validation will say so
                continue
            try:
                detail = self.get_event(event_id)
            except CroniumAPIError as exc:
                if exc.status != 404:
                    raise
                snapshot.notes.append(f"event {event_id}: deleted in Cronium while syncing; left out")
                continue
            snapshot.detail_calls += 1
            snapshot.events.append(detail)
        for event in snapshot.events:
            for server in _event_servers(event):
                server_id = server.get("id")
                if isinstance(server_id, int) and not isinstance(server_id, bool):
                    snapshot.servers.setdefault(server_id, server)
        if with_workflows:
            try:
                listed_workflows = self.list_workflows()
            except CroniumRouteMissing as exc:
                snapshot.workflows_missing = f"{exc.request} answered {exc.answer}"
                listed_workflows = []
            for done, item in enumerate(listed_workflows):
                if progress is not None:
                    progress(len(listed) + done, len(listed) + len(listed_workflows))
                workflow_id = item.get("id")
                complete = "nodes" in item and ("edges" in item or "connections" in item)
                if complete or not isinstance(workflow_id, int):
                    snapshot.workflows.append(item)
                    continue
                try:
                    snapshot.workflows.append(self.get_workflow(workflow_id))
                except CroniumAPIError as exc:
                    if exc.status != 404:
                        raise
                    snapshot.notes.append(f"workflow {workflow_id}: deleted in Cronium while syncing; left out")
                    continue
                snapshot.detail_calls += 1
        if progress is not None:
            progress(len(snapshot.events) + len(snapshot.workflows), len(snapshot.events) + len(snapshot.workflows))
        return snapshot

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


def _is_partial(event: dict[str, Any]) -> bool:
    """A list item without the keys only a detail carries: its detail must be fetched."""
    return any(key not in event for key in EVENT_DETAIL_KEYS)


def _event_servers(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The full server objects an event detail carries (``server`` and the ``servers`` list)."""
    found: list[dict[str, Any]] = []
    if isinstance(event.get("server"), dict):
        found.append(event["server"])
    servers = event.get("servers")
    if isinstance(servers, list):
        found.extend(item for item in servers if isinstance(item, dict))
    return found


def _error_text(text: str) -> str:
    """What an error answer says, in one short line: Cronium's ``message`` (or ``error``), else the body."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        for key in ("message", "error"):
            if isinstance(data.get(key), str) and data[key].strip():
                return " ".join(data[key].split())[:200]
    return " ".join(text[:200].split())


def _is_page(text: str, content_type: str) -> bool:
    """A web page (a sign-in form, a proxy's error page) rather than JSON that was cut short."""
    return "html" in content_type.lower() or text.lstrip()[:1] == "<"


def _is_read_timeout(exc: requests.ConnectionError) -> bool:
    """requests reports a read timeout while streaming the body as a ConnectionError."""
    from urllib3.exceptions import ReadTimeoutError

    return any(isinstance(arg, ReadTimeoutError) for arg in exc.args)


def _list_page(data: Any, endpoint: str, what: str) -> tuple[list[dict[str, Any]], bool]:
    """The items of one answer and whether more pages follow."""
    more = False
    if isinstance(data, dict):
        found = next((data[key] for key in _LIST_KEYS if isinstance(data.get(key), list)), None)
        if found is None:
            raise CroniumResponseError(f"GET /{endpoint} answered an object holding no list of {what}")
        more = data.get("hasMore") is True
        data = found
    if not isinstance(data, list):
        raise CroniumResponseError(f"GET /{endpoint} answered {type(data).__name__} where Cronium sends a list")
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise CroniumResponseError(f"GET /{endpoint}: item [{index}] is {type(item).__name__}, not an object")
    return list(data), more
