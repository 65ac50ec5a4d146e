"""Which workflow a webhook key selects: the records folder's ``WEBHOOK`` workflows, by ``webhookKey``.

Cronium looks the key up among its workflows with ``triggerType = WEBHOOK`` only
(apps/cronium-app/src/app/api/workflows/webhook/[key]/route.ts:18-27): the key of a MANUAL or SCHEDULE
workflow selects nothing. Here the workflows come from the records folder the DAG file reads
(``$CRONIUM_RECORDS_DIR`` or ``[cronium] records_dir``), loaded with the same validation; a workflow file
as Cronium's workflow download writes it keeps its ``webhookKey`` (``cronium-airflow sync`` leaves the key
out of the file it writes). What was loaded is kept until a record file is added, removed or changed
(its path, mtime and size); the folder is looked at for that at most once per :data:`RECHECK_SECONDS`,
however many calls come (a burst of calls, refused or not, walks it once), so a change is served at most
that late.

The key is a secret. It is compared in constant time (both sides hashed, then ``hmac.compare_digest``,
every entry compared: no early exit), is never logged, and only its SHA-256 digest is kept.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cronium_provider.naming import workflow_dag_id
from cronium_provider.records.models import EventStatus, WorkflowTriggerType
from cronium_provider.records.source import iter_record_files
from cronium_provider.records.validation import load_records

log = logging.getLogger("airflow.cronium.webhook")

Signature = tuple[str, tuple[tuple[str, int, int], ...]]
RECHECK_SECONDS = 2.0  # the longest a changed record file goes unseen by the webhook


@dataclass(frozen=True)
class WebhookTarget:
    """The workflow a key selects (never the key itself)."""

    workflow_id: int
    dag_id: str
    status: EventStatus
    digest: bytes  # SHA-256 of the key: names the key's rate-limit bucket

    @property
    def active(self) -> bool:
        return self.status is EventStatus.ACTIVE


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def folder_signature(folder: Path | None) -> Signature:
    """What the cache depends on: the folder and each record file's path, mtime and size."""
    if folder is None:
        return ("", ())
    files: list[tuple[str, int, int]] = []
    for path in iter_record_files([folder]):
        try:
            st = path.stat()
        except OSError:
            continue
        files.append((str(path), st.st_mtime_ns, st.st_size))
    return (str(folder), tuple(files))


def _default_folder() -> Path | None:
    from cronium_provider.factory import records_dir

    return records_dir()


class WebhookKeys:
    """The ``WEBHOOK`` workflows of the records folder by key digest, reloaded when a record file changes;
    the folder is looked at no more often than every ``recheck_seconds``."""

    def __init__(
        self,
        folder: Callable[[], Path | None] = _default_folder,
        recheck_seconds: float = RECHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._folder = folder
        self._recheck_seconds = recheck_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._signature: Signature | None = None
        self._checked_at: float | None = None
        self._entries: tuple[WebhookTarget, ...] = ()

    def lookup(self, key: str) -> WebhookTarget | None:
        """The WEBHOOK workflow whose ``webhookKey`` is ``key``, else None (compared in constant time)."""
        entries = self._current()
        wanted = key_digest(key)
        found: WebhookTarget | None = None
        for entry in entries:  # every entry is compared, whatever matched before
            if hmac.compare_digest(entry.digest, wanted) and found is None:
                found = entry
        return found

    def targets(self) -> tuple[WebhookTarget, ...]:
        return self._current()

    def _current(self) -> tuple[WebhookTarget, ...]:
        with self._lock:
            now = self._clock()
            if self._checked_at is not None and now - self._checked_at < self._recheck_seconds:
                return self._entries
            folder = self._folder()
            signature = folder_signature(folder)
            if signature != self._signature:
                self._entries = self._load(folder)
                self._signature = signature
            self._checked_at = now
            return self._entries

    @staticmethod
    def _load(folder: Path | None) -> tuple[WebhookTarget, ...]:
        if folder is None:
            log.warning(
                "Cronium webhooks: no records folder (set CRONIUM_RECORDS_DIR or [cronium] records_dir): "
                "every webhook key is unknown"
            )
            return ()
        records = load_records([folder])
        by_digest: dict[bytes, list[int]] = {}
        entries: list[WebhookTarget] = []
        without_key: list[int] = []
        for wf_id in sorted(records.workflows):
            wf = records.workflows[wf_id]
            if wf.trigger_type is not WorkflowTriggerType.WEBHOOK:
                continue
            if not wf.webhook_key:
                without_key.append(wf_id)
                continue
            digest = key_digest(wf.webhook_key)
            by_digest.setdefault(digest, []).append(wf_id)
            if len(by_digest[digest]) == 1:  # a shared key selects the workflow with the lowest id
                entries.append(WebhookTarget(wf_id, workflow_dag_id(wf_id), wf.status, digest))
        for ids in by_digest.values():
            if len(ids) > 1:
                log.warning(
                    "Cronium webhooks: workflows %s share one webhook key; it selects workflow %d",
                    ", ".join(map(str, ids)),
                    ids[0],
                )
        if without_key:
            log.warning(
                "Cronium webhooks: WEBHOOK workflow(s) %s have no webhookKey in %s (cronium-airflow sync leaves "
                "it out: add the workflow's file as Cronium's workflow download writes it)",
                ", ".join(map(str, without_key)),
                folder,
            )
        # The errors themselves are not logged here: `cronium-airflow validate` and the DAG processor show them.
        log.info(
            "Cronium webhooks: %d WEBHOOK workflow(s) with a key in %s (%d record error(s) left out)",
            len(entries),
            folder,
            len(records.errors),
        )
        return tuple(entries)
