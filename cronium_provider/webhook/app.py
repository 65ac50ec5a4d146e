"""The webhook route, with Cronium's answers: ``POST /api/workflows/webhook/{key}`` (under ``/cronium``).

Cronium's handler is apps/cronium-app/src/app/api/workflows/webhook/[key]/route.ts (commit aef566a);
every answer is ``{"success": bool, "message": str}``, plus ``workflowId`` when a run started:

=====  ================================================================  ==================================
200    ``{"success": true, "message": "Webhook received and workflow     route.ts:73-77
       execution started", "workflowId": <id>}``
404    ``No workflow found for this webhook key`` (unknown key, or the   route.ts:18-37
       key of a workflow whose ``triggerType`` is not ``WEBHOOK``)
400    ``This workflow is not active`` (record status not ``ACTIVE``)    route.ts:39-47
400    ``This workflow is not active: its DAG ... is paused in Airflow`` (Airflow's side of the same rule)
400    ``Payload nested too deeply: over 64 levels of objects and arrays`` (a deeper conf breaks Airflow's
       runs listing; Cronium has no such bound)
408    ``Request timeout: the body took over N s ...`` (``[cronium] webhook_body_timeout_seconds``)
413    ``Payload too large: the body is over N bytes ...`` (``[cronium] webhook_max_body_bytes``)
429    ``Rate limit exceeded``, with ``Retry-After``, ``X-RateLimit-*``   WebhookRouter.ts:119-130
500    ``Failed to process webhook`` (+ what failed, never the key)      route.ts:78-84
=====  ================================================================  ==================================

The key is looked at first: an unknown key, a rate-limited call or a workflow that is not active is
answered before any of the body is read. The body is then read as it streams in, up to ``[cronium]
webhook_max_body_bytes`` (default 1 MiB, Cronium's default webhook payload limit,
apps/cronium-app/src/shared/schemas/webhooks.ts:178); past it, or when the declared ``Content-Length`` is
over it, the answer is 413 and no run starts. The whole body must arrive within ``[cronium]
webhook_body_timeout_seconds`` (default 10 s), else 408. Once it is read, the key is looked up again (as
:meth:`WebhookHandler.admit`, in constant time, without spending another rate-limit token): a key
revoked, or a workflow paused, while its body streamed in starts no run.

The body is read as Cronium reads it, ``request.json().catch(() => ({}))`` (route.ts:51): an empty or
unparsable body is ``{}``. Cronium then drops it (route.ts:49-59, a defect); here it becomes the run's
input, conf ``{"input": <body>}``, which ``cronium.input()`` returns (operators/gating.py ``run_input``).
A JSON value that is not an object is ``{}`` as well, as Cronium passes a non-object input between nodes.

The run is created in-process with ``airflow.api.common.trigger_dag.trigger_dag``, the function the
api-server's own Execution API calls to trigger a run (airflow/api_fastapi/execution_api/routes/dag_runs.py),
after the same checks as Airflow's REST trigger endpoint (the DAG exists, is not stale, has no import
errors), plus: not paused.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from cronium_provider.limits import deeper_than
from cronium_provider.naming import INPUT_PARAM, WEBHOOK_ROUTE_PREFIX, WEBHOOK_TRIGGERING_USER
from cronium_provider.webhook.keys import WebhookKeys, WebhookTarget
from cronium_provider.webhook.ratelimit import UNKNOWN_KEYS_BUCKET, KeyedRateLimiter, configured_limiter

log = logging.getLogger("airflow.cronium.webhook")

# Cronium's messages (route.ts:33, 43, 75, 81; WebhookRouter.ts:121)
NOT_FOUND = "No workflow found for this webhook key"
NOT_ACTIVE = "This workflow is not active"
STARTED = "Webhook received and workflow execution started"
FAILED = "Failed to process webhook"
RATE_LIMITED = "Rate limit exceeded"
TOO_LARGE = "Payload too large"
TOO_DEEP = "Payload nested too deeply"
TIMEOUT = "Request timeout"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_BODY_TIMEOUT_SECONDS = 10.0
MAX_BODY_DEPTH = 64  # levels of objects and arrays in a body


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class WebhookRefused(Exception):
    """The run cannot be started: the status and message the caller gets."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


Trigger = Callable[[str, dict[str, Any]], str]


def refused(status: int, message: str, headers: dict[str, str] | None = None) -> Answer:
    return Answer(status, {"success": False, "message": message}, headers or {})


def too_deep() -> WebhookRefused:
    return WebhookRefused(400, f"{TOO_DEEP}: over {MAX_BODY_DEPTH} levels of objects and arrays")


def parse_body(raw: bytes) -> dict[str, Any]:
    """The run's input from the request body: a JSON object, else ``{}`` (route.ts:51); a body nested
    deeper than :data:`MAX_BODY_DEPTH` levels is refused (:class:`WebhookRefused`, 400)."""

    def no_constants(name: str) -> Any:  # NaN, Infinity: not JSON, JSON.parse refuses them
        raise ValueError(name)

    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=no_constants)
    except RecursionError:
        raise too_deep() from None
    except (UnicodeDecodeError, ValueError):
        return {}
    if deeper_than(value, MAX_BODY_DEPTH):
        raise too_deep()
    if not isinstance(value, dict):
        if value is not None:
            log.info("Cronium webhook: the body is JSON but not an object (%s); the input is {}", type(value).__name__)
        return {}
    return value


def trigger_workflow_run(dag_id: str, conf: dict[str, Any]) -> str:
    """Queue a manual run of ``dag_id`` with ``conf``, as the api-server does; the new run's id."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType
    from sqlalchemy import select

    with create_session() as session:
        dm = session.scalar(select(DagModel).where(~DagModel.is_stale, DagModel.dag_id == dag_id).limit(1))
        if dm is None:
            raise WebhookRefused(
                500,
                f"{FAILED}: the workflow's DAG {dag_id} is not in Airflow (not parsed yet, or its record was left "
                "out: see `cronium-airflow validate`)",
            )
        if dm.has_import_errors:
            raise WebhookRefused(500, f"{FAILED}: the workflow's DAG {dag_id} has import errors")
        if dm.is_paused:
            raise WebhookRefused(
                400, f"{NOT_ACTIVE}: its DAG {dag_id} is paused in Airflow (`cronium-airflow apply-status`)"
            )
        dag_run = trigger_dag(
            dag_id,
            triggered_by=DagRunTriggeredByType.REST_API,
            triggering_user_name=WEBHOOK_TRIGGERING_USER,
            conf=conf,
            session=session,
        )
        if dag_run is None:  # pragma: no cover - trigger_dag raises rather than return None
            raise WebhookRefused(500, f"{FAILED}: Airflow created no run of {dag_id}")
        return str(dag_run.run_id)


def configured_max_body_bytes() -> int:
    """``[cronium] webhook_max_body_bytes``: the largest body the webhook reads."""
    from cronium_provider.config import read_settings

    return read_settings().webhook_max_body_bytes


def configured_body_timeout() -> float:
    """``[cronium] webhook_body_timeout_seconds``: the longest the whole body may take to arrive."""
    from cronium_provider.config import read_settings

    return read_settings().webhook_body_timeout_seconds


def too_large(limit: int) -> Answer:
    return refused(413, f"{TOO_LARGE}: the body is over {limit} bytes ([cronium] webhook_max_body_bytes)")


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request body as it streams in, or None as soon as it is over ``limit`` bytes (declared or read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


class WebhookHandler:
    """The route's logic, apart from HTTP: :meth:`admit` a key (before any body is read), then :meth:`start`
    the run with the body; calling the handler does both."""

    def __init__(
        self,
        keys: WebhookKeys | None = None,
        limiter: KeyedRateLimiter | None = None,
        trigger: Trigger = trigger_workflow_run,
        max_body_bytes: int | None = None,
        body_timeout_seconds: float | None = None,
    ) -> None:
        self.keys = keys or WebhookKeys()
        self.limiter = limiter or configured_limiter()
        self.trigger = trigger
        self.max_body_bytes = configured_max_body_bytes() if max_body_bytes is None else max_body_bytes
        self.body_timeout_seconds = configured_body_timeout() if body_timeout_seconds is None else body_timeout_seconds

    def __call__(self, key: str, raw_body: bytes) -> Answer:
        admitted = self.admit(key)
        return admitted if isinstance(admitted, Answer) else self.start(admitted, raw_body)

    def finish(self, key: str, admitted: WebhookTarget, raw_body: bytes) -> Answer:
        """:meth:`admit` the key again once the body is read, without spending another rate-limit token (a
        key revoked, or a workflow paused, while its body streamed in starts no run), then :meth:`start`."""
        target = self.admit(key, count=False)
        if isinstance(target, WebhookTarget) and target.workflow_id != admitted.workflow_id:
            log.info(
                "Cronium webhook: workflow %d: its key was revoked while the body was read (404)", admitted.workflow_id
            )
            target = refused(404, NOT_FOUND)
        return target if isinstance(target, Answer) else self.start(target, raw_body)

    def admit(self, key: str, *, count: bool = True) -> WebhookTarget | Answer:
        """The active workflow ``key`` selects, within its rate limit (the call ``count``-s against it); else
        the refusal to answer."""
        workflow_id: int | None = None
        try:
            target = self.keys.lookup(key)
            decision = self.limiter.acquire(target.digest if target else UNKNOWN_KEYS_BUCKET) if count else None
            if decision is not None and not decision.allowed:
                log.warning(
                    "Cronium webhook: rate limit exceeded (%s); retry after %s s",
                    f"workflow {target.workflow_id}" if target else "unknown keys",
                    decision.retry_after_header,
                )
                return refused(
                    429,
                    RATE_LIMITED,
                    {
                        "Retry-After": decision.retry_after_header,
                        "X-RateLimit-Limit": str(decision.limit),
                        "X-RateLimit-Remaining": "0",
                    },
                )
            if target is None:
                log.info("Cronium webhook: a call with a key that selects no WEBHOOK workflow (404)")
                return refused(404, NOT_FOUND)
            workflow_id = target.workflow_id
            if not target.active:
                log.info("Cronium webhook: workflow %d is %s, not ACTIVE (400)", workflow_id, target.status.value)
                return refused(400, NOT_ACTIVE)
        except Exception:
            log.exception("Cronium webhook: workflow %s: the webhook could not be processed", workflow_id)
            return refused(500, FAILED)
        return target

    def start(self, target: WebhookTarget, raw_body: bytes) -> Answer:
        """Queue a run of the admitted workflow with the body as its input."""
        workflow_id = target.workflow_id
        try:
            run_id = self.trigger(target.dag_id, {INPUT_PARAM: parse_body(raw_body)})
        except WebhookRefused as exc:
            log.warning("Cronium webhook: workflow %s: %s (%d)", workflow_id, exc.message, exc.status)
            return refused(exc.status, exc.message)
        except Exception:
            log.exception("Cronium webhook: workflow %s: the webhook could not be processed", workflow_id)
            return refused(500, FAILED)
        log.info("Cronium webhook: workflow %d triggered, DAG run %s", workflow_id, run_id)
        return Answer(200, {"success": True, "message": STARTED, "workflowId": workflow_id})


def create_app(handler: WebhookHandler | None = None) -> FastAPI:
    """The FastAPI app the plugin mounts at ``/cronium``."""
    handle = handler or WebhookHandler()
    app = FastAPI(title="Cronium webhooks", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post(WEBHOOK_ROUTE_PREFIX + "{key}")
    async def workflow_webhook(key: str, request: Request) -> JSONResponse:
        """Cronium's ``POST /api/workflows/webhook/[key]`` (route.ts:9-85)."""
        admitted = await run_in_threadpool(handle.admit, key)
        if isinstance(admitted, Answer):
            answer = admitted
        else:
            try:
                raw = await asyncio.wait_for(read_body(request, handle.max_body_bytes), handle.body_timeout_seconds)
            except TimeoutError:
                log.info(
                    "Cronium webhook: workflow %d: the body took over %s s (408)",
                    admitted.workflow_id,
                    handle.body_timeout_seconds,
                )
                answer = refused(
                    408,
                    f"{TIMEOUT}: the body took over {handle.body_timeout_seconds:g} s "
                    "([cronium] webhook_body_timeout_seconds)",
                )
                return JSONResponse(answer.body, status_code=answer.status)
            if raw is None:
                log.info(
                    "Cronium webhook: workflow %d: the body is over %d bytes (413)",
                    admitted.workflow_id,
                    handle.max_body_bytes,
                )
                answer = too_large(handle.max_body_bytes)
            else:
                answer = await run_in_threadpool(handle.finish, key, admitted, raw)
        return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)

    return app
