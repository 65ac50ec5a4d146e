"""The Cronium view: a FastAPI app the api-server mounts at ``/cronium-view`` (see :mod:`.plugin`).

It shows what the DAG processor's last full parse found, from the catalogs in the parse index folder
(:mod:`cronium_provider.view.catalog`), never parsing a record itself, and adds each DAG's next run and last
run state from Airflow's metadata database (two queries for the DAGs of the page). HTML pages rendered
with Jinja2 (autoescape on: names, reasons and file names are outside input) and JSON of the same data.

Behind Airflow's own login: the user comes from the JWT the UI keeps in its ``_token`` cookie (or an
``Authorization: Bearer`` header), read by Airflow's ``get_user``; no user, no data (401/403).

- records: those whose DAG the auth manager lets the user read (a user allowed to read every DAG also sees
  the records whose DAG Airflow has not stored yet);
- left-out records and warnings: users allowed to see Airflow's DAG import errors (the same kind of thing),
  only those of the records whose DAG (had or would have) the user may read, unless they may read every DAG;
- findings (the doctor's): users allowed to see import errors and to read connections (they name
  connections and servers); the notes on records, only those of the records whose DAG the user may read.
"""

from __future__ import annotations

import base64
import hashlib
import math
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.base_auth_manager import BaseAuthManager
from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
from airflow.api_fastapi.core_api.security import get_user
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from cronium_provider.config import read_settings
from cronium_provider.doctor.environment import environment_findings
from cronium_provider.doctor.findings import Finding
from cronium_provider.factory import index_dir
from cronium_provider.naming import VIEW_URL_PREFIX, record_dag_id
from cronium_provider.view.catalog import (
    MAX_PAGE_SIZE,
    WEBHOOK_PATH,
    Catalog,
    RecordFilter,
    catalogs,
    merged_needs,
    page_of_problems,
    page_of_records,
)

DEFAULT_PAGE_SIZE = 100
FINDINGS_CACHE_SECONDS = 60.0  # the environment checks (Docker, connections, ...) run at most this often
KINDS = ("event", "workflow")
STATUSES = ("ACTIVE", "PAUSED", "DRAFT", "ARCHIVED")
# The one script of the pages. In the UI the view is in a frame sandboxed without top navigation, so a link
# to a page of the UI (target="_top") is followed by the UI's own document: same origin, not sandboxed.
# The Content-Security-Policy allows this script by its hash, and no other.
LINK_SCRIPT = """
document.addEventListener("click", function (event) {
  var link = event.target.closest && event.target.closest("a[target=_top]");
  if (!link || window.top === window || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) {
    return;
  }
  try {
    var ui = window.top.document, proxy = ui.createElement("a");
    proxy.href = link.href;
    ui.body.appendChild(proxy);
    proxy.click();
    proxy.remove();
    event.preventDefault();
  } catch (error) {
    // another origin: the link's own target
  }
});
"""
LINK_SCRIPT_HASH = base64.b64encode(hashlib.sha256(LINK_SCRIPT.encode()).digest()).decode()
# every answer: no script but the one above, style only inline, no other site may frame it (the UI embeds it,
# same origin), forms go back to it only, no answer kept by a cache (it is behind the login)
SECURITY_HEADERS = {
    "Content-Security-Policy": f"default-src 'none'; script-src 'sha256-{LINK_SCRIPT_HASH}'; "
    "style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'self'; base-uri 'none'",
    "X-Frame-Options": "SAMEORIGIN",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_templates = Environment(
    loader=PackageLoader("cronium_provider.view", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)

User = Annotated[Any, Depends(get_user)]
Page = Annotated[int, Query(ge=1)]
Size = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Severity = Annotated[Literal["error", "warning"] | None, Query()]  # error: the records left out only


@dataclass(frozen=True)
class Access:
    dag_ids: set[str] | None  # None: every DAG
    left_out: bool
    findings: bool


def _access(user: Any) -> Access:
    manager: BaseAuthManager[Any] = get_auth_manager()
    dag_ids: set[str] | None = None
    if not manager.is_authorized_dag(method="GET", user=user):
        dag_ids = manager.get_authorized_dag_ids(user=user, method="GET")
    left_out = manager.is_authorized_view(access_view=AccessView.IMPORT_ERRORS, user=user)
    findings = left_out and manager.is_authorized_connection(method="GET", user=user)
    return Access(dag_ids, left_out, findings)


def _runs(dag_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Next run (DagModel) and the latest run's state (DagRun) of each DAG id: two queries."""
    if not dag_ids:
        return {}
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    found: dict[str, dict[str, Any]] = {}
    with create_session() as session:
        for dag_id, paused, next_run, stale in session.execute(
            select(DagModel.dag_id, DagModel.is_paused, DagModel.next_dagrun_create_after, DagModel.is_stale).where(
                DagModel.dag_id.in_(dag_ids)
            )
        ):
            found[dag_id] = {
                "in_airflow": not stale,
                "paused": bool(paused),
                "next_run": next_run.isoformat() if next_run and not paused else None,
                "last_run_state": None,
                "last_run_at": None,
            }
        latest = (
            select(DagRun.dag_id, func.max(DagRun.id).label("id"))
            .where(DagRun.dag_id.in_(dag_ids))
            .group_by(DagRun.dag_id)
            .subquery()
        )
        for dag_id, state, run_after in session.execute(
            select(DagRun.dag_id, DagRun.state, DagRun.run_after).join(latest, DagRun.id == latest.c.id)
        ):
            entry = found.setdefault(dag_id, {"in_airflow": True, "paused": None, "next_run": None})
            entry["last_run_state"] = str(state.value if hasattr(state, "value") else state)
            entry["last_run_at"] = run_after.isoformat() if run_after else None
    return found


class FindingsCache:
    """The doctor's environment findings for the needs of every catalog, kept ``FINDINGS_CACHE_SECONDS``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._at = 0.0
        self._key: object = None
        self._value: list[Finding] = []

    def get(self, found: list[Catalog]) -> list[Finding]:
        key = tuple((c.path, c.written_at) for c in found)
        with self._lock:
            if key != self._key or time.monotonic() - self._at > FINDINGS_CACHE_SECONDS:
                self._value = environment_findings(merged_needs(found), read_settings())
                self._key, self._at = key, time.monotonic()
            return list(self._value)


def _may_read_note(note: Finding, dag_ids: set[str] | None) -> bool:
    """A note on a record (``event 12``, ``workflow 3``) for a user who may read its DAG; with ``dag_ids``
    (some DAGs only), a note on anything else is left out."""
    if dag_ids is None:
        return True
    kind, _, record_id = note.subject.partition(" ")
    return record_id.isdigit() and record_dag_id(kind, int(record_id)) in dag_ids


def _ui_base(request: Request) -> str:
    """The Airflow UI's base path (what is mounted before ``/cronium-view``)."""
    root = str(request.scope.get("root_path") or "")
    return root.removesuffix(VIEW_URL_PREFIX)


def _page_args(page: int, size: int) -> tuple[int, int]:
    size = max(1, min(size, MAX_PAGE_SIZE))
    return (max(1, page) - 1) * size, size


def _paged(total: int, offset: int, limit: int, found: list[Catalog], cache_dir: Path | None) -> dict[str, Any]:
    """What every page of rows says about itself: its place among the pages, and the catalogs read."""
    return {
        "total": total,
        "page": offset // limit + 1,
        "pages": max(1, math.ceil(total / limit)),
        "size": limit,
        "folders": [c.folder for c in found],
        "index_dir": str(cache_dir) if cache_dir else None,
    }


def create_app() -> FastAPI:
    """The FastAPI app the plugin mounts at ``/cronium-view``."""
    app = FastAPI(title="Cronium view", docs_url=None, redoc_url=None, openapi_url=None)
    findings_cache = FindingsCache()

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    def found_catalogs() -> tuple[list[Catalog], Path | None]:
        cache_dir = index_dir(read_settings("index_dir"))
        return catalogs(cache_dir), cache_dir

    def records_data(
        user: Any, kind: str | None, status: str | None, q: str | None, webhook: bool, page: int, size: int
    ) -> dict[str, Any]:
        if kind and kind not in KINDS:
            raise HTTPException(422, f"kind: one of {', '.join(KINDS)} (or empty for every kind), not {kind!r}")
        if status and status.upper() not in STATUSES:
            raise HTTPException(
                422, f"status: one of {', '.join(STATUSES)} (or empty for every status), not {status!r}"
            )
        access = _access(user)
        found, cache_dir = found_catalogs()
        offset, limit = _page_args(page, size)
        flt = RecordFilter(kind or None, status or None, (q or "").strip() or None, webhook)
        total, rows = page_of_records(found, flt, access.dag_ids, offset, limit)
        runs = _runs([r["dag_id"] for r in rows])
        for row in rows:
            row.update(runs.get(row["dag_id"]) or {"in_airflow": False, "next_run": None, "last_run_state": None})
        return {
            **_paged(total, offset, limit, found, cache_dir),
            "records": rows,
            "webhook_path": WEBHOOK_PATH,
            "can_see_left_out": access.left_out,
            "can_see_findings": access.findings,
        }

    def left_out_data(user: Any, q: str | None, severity: str | None, page: int, size: int) -> dict[str, Any]:
        access = _access(user)
        if not access.left_out:
            raise HTTPException(403, "Left-out records need the permission to see DAG import errors")
        found, cache_dir = found_catalogs()
        offset, limit = _page_args(page, size)
        total, rows = page_of_problems(found, (q or "").strip() or None, offset, limit, severity, access.dag_ids)
        return {
            **_paged(total, offset, limit, found, cache_dir),
            "problems": rows,
            "can_see_left_out": True,
            "can_see_findings": access.findings,
        }

    def findings_data(user: Any) -> dict[str, Any]:
        access = _access(user)
        if not access.findings:
            raise HTTPException(403, "Findings need the permissions to see DAG import errors and to read connections")
        found, cache_dir = found_catalogs()
        notes = [n for c in found for n in c.notes if _may_read_note(n, access.dag_ids)]
        return {
            "findings": [f.to_json() for f in findings_cache.get(found)],
            "notes": [n.to_json() for n in notes],
            "folders": [c.folder for c in found],
            "index_dir": str(cache_dir) if cache_dir else None,
            "can_see_left_out": True,
            "can_see_findings": True,
        }

    def html(
        request: Request, template: str, data: dict[str, Any], path: str, query: dict[str, Any], **extra: Any
    ) -> HTMLResponse:
        base = str(request.scope.get("root_path") or "")
        kept = {k: v for k, v in query.items() if v not in ("", None, False)}

        def page_url(page: int) -> str:
            return f"{base}{path}?{urlencode({**kept, 'page': page})}"

        text = _templates.get_template(template).render(
            data=data,
            base=base,
            query=query,
            page_url=page_url,
            ui=_ui_base(request),
            kinds=KINDS,
            statuses=STATUSES,
            link_script=LINK_SCRIPT,
            **extra,
        )
        return HTMLResponse(text)

    @app.get("/api/records")
    async def api_records(
        user: User,
        kind: str | None = None,
        status: str | None = None,
        q: str | None = None,
        webhook: bool = False,
        page: Page = 1,
        size: Size = DEFAULT_PAGE_SIZE,
    ) -> JSONResponse:
        return JSONResponse(await run_in_threadpool(records_data, user, kind, status, q, webhook, page, size))

    @app.get("/api/left-out")
    async def api_left_out(
        user: User, q: str | None = None, severity: Severity = None, page: Page = 1, size: Size = DEFAULT_PAGE_SIZE
    ) -> JSONResponse:
        return JSONResponse(await run_in_threadpool(left_out_data, user, q, severity, page, size))

    @app.get("/api/findings")
    async def api_findings(user: User) -> JSONResponse:
        return JSONResponse(await run_in_threadpool(findings_data, user))

    @app.get("/", response_class=HTMLResponse)
    async def records_page(
        request: Request,
        user: User,
        kind: str | None = None,
        status: str | None = None,
        q: str | None = None,
        webhook: bool = False,
        page: Page = 1,
        size: Size = DEFAULT_PAGE_SIZE,
    ) -> HTMLResponse:
        data = await run_in_threadpool(records_data, user, kind, status, q, webhook, page, size)
        query = {"kind": kind or "", "status": status or "", "q": q or "", "webhook": webhook, "size": data["size"]}
        return html(request, "records.html", data, "/", query, tab="records")

    @app.get("/left-out", response_class=HTMLResponse)
    async def left_out_page(
        request: Request,
        user: User,
        q: str | None = None,
        severity: Severity = None,
        page: Page = 1,
        size: Size = DEFAULT_PAGE_SIZE,
    ) -> HTMLResponse:
        data = await run_in_threadpool(left_out_data, user, q, severity, page, size)
        query = {"q": q or "", "severity": severity or "", "size": data["size"]}
        return html(request, "left_out.html", data, "/left-out", query, tab="left-out")

    @app.get("/findings", response_class=HTMLResponse)
    async def findings_page(request: Request, user: User) -> HTMLResponse:
        data = await run_in_threadpool(findings_data, user)
        return html(request, "findings.html", data, "/findings", {}, tab="findings")

    return app
