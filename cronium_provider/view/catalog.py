"""The Cronium view's catalog: what the DAG processor's full parse found in one records folder.

The web UI's Cronium view reads these files and never parses records itself. The full parse
(:func:`cronium_provider.factory.parse_dags` with no DAG id) writes one catalog per records folder into the
parse index folder (``[cronium] index_dir``), beside that folder's parse index, whenever the records (or the
code that reads them) changed since the last one was written. A worker's one-DAG parse neither writes nor
reads it.

A catalog holds no secret: no env var value, server credential or webhook key, only what the view shows
(each record's kind, id, name, status, DAG id, schedule in words, whether it is a ``WEBHOOK`` workflow and
whether its key is set), the errors and warnings of the load (their messages never quote a secret value),
the doctor's record notes and the records' :class:`~cronium_provider.doctor.findings.Needs` as JSON. It is
still created with mode 600 in a folder of mode 700, written to a temporary file and renamed over the old
one, so a reader sees the old catalog or the new one, whole.

No Airflow import: the DAG processor writes it, the api-server's plugin reads it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cronium_provider.doctor.findings import Finding, Needs
from cronium_provider.doctor.records import needs, record_notes
from cronium_provider.naming import WEBHOOK_ROUTE_PREFIX, WEBHOOK_URL_PREFIX, record_dag_id
from cronium_provider.plan.models import DagPlan, Plan
from cronium_provider.records.errors import RecordError
from cronium_provider.records.index import replacing_database
from cronium_provider.records.models import WorkflowTriggerType
from cronium_provider.records.schedules import SchedulePlan
from cronium_provider.records.validation import RecordSet
from cronium_provider.settings import CroniumSettings

CATALOG_FORMAT = 2
CATALOG_GLOB = "catalog-*.sqlite"
# the path a Cronium caller posts to, with the key left out: the key lives only in the record file
WEBHOOK_PATH = f"{WEBHOOK_URL_PREFIX}{WEBHOOK_ROUTE_PREFIX}{{webhookKey}}"
MAX_PAGE_SIZE = 500

log = logging.getLogger("airflow.cronium.view")

_RECORD_COLUMNS = ("kind", "record_id", "name", "status", "dag_id", "schedule", "webhook", "webhook_key_set", "file")
_PROBLEM_COLUMNS = ("severity", "file", "kind", "record_id", "field", "message")


def catalog_file(index_file: Path) -> Path:
    """The catalog beside a records folder's parse index (``records-<hash>.sqlite``)."""
    return index_file.with_name("catalog-" + index_file.name.removeprefix("records-"))


def catalog_key(folder_key: str, settings: CroniumSettings) -> str:
    """The catalog's key: the records folder's (its files and the code that reads them), the ``[cronium]``
    settings (schedules in words, the doctor's notes depend on them; only their digest is kept) and this
    module's and the doctor's code, whose answers it stores."""
    digest = hashlib.sha256(f"cronium-catalog {CATALOG_FORMAT}\0{folder_key}\0{settings!r}\0".encode())
    base = Path(__file__).resolve().parents[1]
    for file in sorted([*base.glob("doctor/*.py"), Path(__file__).resolve()]):
        st = file.stat()
        digest.update(f"{file.name}:{st.st_size}:{st.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def schedule_text(schedule: SchedulePlan) -> str:
    """The DAG's schedule in a few words."""
    if schedule.kind == "cron":
        return f"cron {schedule.cron} ({schedule.timezone})"
    if schedule.kind == "interval":
        return f"every {schedule.interval_seconds} s"
    return "none" + (f": {schedule.note}" if schedule.note else "")


def _record_row(records: RecordSet, dag: DagPlan) -> tuple[Any, ...]:
    webhook, key_set = 0, 0
    if dag.kind == "workflow":
        workflow = records.workflows.get(dag.record_id)
        if workflow is not None and workflow.trigger_type is WorkflowTriggerType.WEBHOOK:
            webhook, key_set = 1, int(bool(workflow.webhook_key))
    return (
        dag.kind,
        dag.record_id,
        dag.name,
        dag.status,
        dag.dag_id,
        schedule_text(dag.schedule),
        webhook,
        key_set,
        records.origin(dag.kind, dag.record_id),
    )


def _problem_row(problem: RecordError) -> tuple[Any, ...]:
    record_id = None if problem.record_id is None else str(problem.record_id)
    # the DAG the record has or would have: a user who may read some DAGs only sees the problems of those
    dag_id = record_dag_id(problem.kind, problem.record_id)
    return (problem.severity, problem.path, problem.kind, record_id, problem.field, problem.message, dag_id)


def stored_key(path: Path) -> str | None:
    """The key of the catalog at ``path``; None when there is none, or one the view would not show (a
    symlink, another user's): the parse then writes it again, over it."""
    try:
        if not trusted(path):
            return None
        with connect(path) as con:
            row = con.execute("SELECT value FROM meta WHERE name = 'key'").fetchone()
    except (sqlite3.Error, OSError):
        return None
    return str(row[0]) if row else None


def write_catalog(path: Path, key: str, folder: Path, records: RecordSet, plan: Plan, settings: CroniumSettings) -> int:
    """Write the catalog of ``folder`` (temporary file, then rename); returns the number of records."""
    record_rows = [_record_row(records, dag) for dag in plan.dags]
    problem_rows = [_problem_row(p) for p in [*records.errors, *records.warnings]]
    notes = [f.to_json() for f in record_notes(records, settings)]
    meta = [
        ("format", str(CATALOG_FORMAT)),
        ("folder", str(folder)),
        ("written_at", str(time.time())),
        ("notes", json.dumps(notes)),
        ("needs", json.dumps(needs(records, settings, plan).to_json())),
        ("key", key),
    ]
    with replacing_database(path) as con:
        con.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        con.execute(
            "CREATE TABLE records (kind TEXT NOT NULL, record_id INTEGER NOT NULL, name TEXT NOT NULL, "
            "status TEXT NOT NULL, dag_id TEXT NOT NULL, schedule TEXT NOT NULL, webhook INTEGER NOT NULL, "
            "webhook_key_set INTEGER NOT NULL, file TEXT NOT NULL, PRIMARY KEY (kind, record_id))"
        )
        con.execute(
            "CREATE TABLE problems (severity TEXT NOT NULL, file TEXT NOT NULL, kind TEXT, record_id TEXT, "
            "field TEXT, message TEXT NOT NULL, dag_id TEXT)"
        )
        con.executemany("INSERT OR IGNORE INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", record_rows)
        con.executemany("INSERT INTO problems VALUES (?, ?, ?, ?, ?, ?, ?)", problem_rows)
        con.executemany("INSERT INTO meta VALUES (?, ?)", meta)  # the key last
    return len(record_rows)


# --- reading (the view) -----------------------------------------------------------------------------------


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to a catalog (never changed in place, only replaced)."""
    if not path.is_file():
        raise FileNotFoundError(str(path))
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        yield con
    finally:
        con.close()


@dataclass(frozen=True)
class Catalog:
    path: Path
    folder: str
    written_at: float
    notes: list[Finding]
    needs: Needs


def trusted(path: Path) -> bool:
    """Whether the view may show ``path``: a regular file (not a symlink) of this user (or root) that no one
    else may write, as the DAG processor writes it. Another local user's file in the folder is not read."""
    st = path.lstat()
    return stat.S_ISREG(st.st_mode) and st.st_uid in (os.geteuid(), 0) and not st.st_mode & 0o022


def _read_catalog(path: Path) -> Catalog | None:
    """The catalog at ``path``; None for one of another format, or not trusted.
    A damaged one (bad JSON, a missing table) raises ``ValueError`` or ``sqlite3.Error``."""
    if not trusted(path):
        log.warning("Cronium view: %s left out: not a file of this user that only it may write", path)
        return None
    with connect(path) as con:
        meta = {str(k): str(v) for k, v in con.execute("SELECT name, value FROM meta")}
    if "key" not in meta or meta.get("format") != str(CATALOG_FORMAT):
        return None
    try:
        notes = [Finding.from_json(n) for n in json.loads(meta.get("notes") or "[]")]
        found_needs = Needs.from_json(json.loads(meta.get("needs") or "{}"))
        empty = Needs()
        if not all(isinstance(getattr(found_needs, k), type(getattr(empty, k))) for k in asdict(empty)):
            raise TypeError("needs of the wrong shape")
        return Catalog(path, meta["folder"], float(meta.get("written_at") or 0), notes, found_needs)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from exc


# What each catalog file held when last read, by its stat: a catalog is never changed in place, only
# replaced, so a file with the same stat is the same catalog. Its notes and needs (thousands of notes at
# 10,000 records, 0.15 s to read) are read once per file, not on every page.
_read_cache: dict[Path, tuple[tuple[int, ...], Catalog | str | None]] = {}
_read_lock = threading.Lock()


def _stamp(path: Path) -> tuple[int, ...]:
    st = path.lstat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode, st.st_uid)


def _catalog_at(path: Path) -> Catalog | None:
    """:func:`_read_catalog` once per file: a damaged or untrusted one is logged once, then left out."""
    stamp = _stamp(path)
    with _read_lock:
        hit = _read_cache.get(path)
    if hit is not None and hit[0] == stamp:
        result = hit[1]
    else:
        try:
            result = _read_catalog(path)
        except (sqlite3.Error, OSError, ValueError) as exc:
            log.warning("Cronium view: catalog %s left out: %s", path, exc)
            result = str(exc)
        with _read_lock:
            _read_cache[path] = (stamp, result)
    if not isinstance(result, Catalog) or not Path(result.folder).exists():
        return None
    return result


def catalogs(cache_dir: Path | None) -> list[Catalog]:
    """Every readable catalog in the parse index folder (one per records folder, sharded folders
    included), by folder; a catalog whose records folder is gone is left out, and so is a damaged one or
    one another user could have written (logged: it never hides the others)."""
    found: list[Catalog] = []
    if cache_dir is None or not cache_dir.is_dir():
        return found
    paths = sorted(cache_dir.glob(CATALOG_GLOB))
    for path in paths:
        try:
            catalog = _catalog_at(path)
        except OSError as exc:  # gone between the listing and the look
            log.warning("Cronium view: catalog %s left out: %s", path, exc)
            continue
        if catalog is not None:
            found.append(catalog)
    with _read_lock:
        for gone in [p for p in _read_cache if p.parent == cache_dir and p not in paths]:
            del _read_cache[gone]
    return sorted(found, key=lambda c: c.folder)


@dataclass(frozen=True)
class RecordFilter:
    kind: str | None = None  # event | workflow
    status: str | None = None  # ACTIVE | PAUSED | DRAFT | ARCHIVED
    text: str | None = None  # in the name, the DAG id or the id
    webhook: bool = False  # WEBHOOK workflows only

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        if self.kind:
            clauses.append("kind = ?")
            args.append(self.kind)
        if self.status:
            clauses.append("status = ?")
            args.append(self.status.upper())
        if self.text:
            pattern = "%" + self.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            clauses.append("(name LIKE ? ESCAPE '\\' OR dag_id LIKE ? ESCAPE '\\' OR CAST(record_id AS TEXT) = ?)")
            args.extend([pattern, pattern, self.text.strip()])
        if self.webhook:
            clauses.append("webhook = 1")
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def _allowed(con: sqlite3.Connection, dag_ids: set[str] | None, where: str) -> str:
    """With ``dag_ids`` (the DAGs the user may read), only their records: a temporary table joined in SQL."""
    if dag_ids is None:
        return where
    con.execute("CREATE TEMP TABLE allowed (dag_id TEXT PRIMARY KEY)")
    con.executemany("INSERT OR IGNORE INTO allowed VALUES (?)", ((d,) for d in dag_ids))
    clause = "dag_id IN (SELECT dag_id FROM allowed)"
    return f"{where} AND {clause}" if where else f" WHERE {clause}"


def _page_across(
    found: Sequence[Catalog],
    table: str,
    columns: Sequence[str],
    where: str,
    args: list[Any],
    order: str,
    dag_ids: set[str] | None,
    offset: int,
    limit: int,
) -> tuple[int, list[dict[str, Any]]]:
    """The rows of ``table`` that match ``where`` over every catalog in turn (``order`` within each): their
    total and the ``limit`` of them from ``offset``, each with its catalog's folder. ``table``, ``columns``,
    ``where`` and ``order`` are this module's fixed text; values are always ``?`` parameters."""
    limit = max(0, min(limit, MAX_PAGE_SIZE))
    total = 0
    rows: list[dict[str, Any]] = []
    selected = ", ".join(columns)
    for catalog in found:
        try:
            with connect(catalog.path) as con:
                clause = _allowed(con, dag_ids, where)
                count = int(con.execute(f"SELECT COUNT(*) FROM {table}{clause}", args).fetchone()[0])  # noqa: S608
                start = offset - total
                if count and start < count and len(rows) < limit:
                    for values in con.execute(
                        f"SELECT {selected} FROM {table}{clause} ORDER BY {order} LIMIT ? OFFSET ?",  # noqa: S608
                        [*args, limit - len(rows), max(0, start)],
                    ):
                        rows.append({**dict(zip(columns, values, strict=True)), "folder": catalog.folder})
                total += count
        except (sqlite3.Error, OSError):
            continue
    return total, rows


def page_of_records(
    found: Sequence[Catalog], flt: RecordFilter, dag_ids: set[str] | None, offset: int, limit: int
) -> tuple[int, list[dict[str, Any]]]:
    """The total of the records that match (over every catalog, in folder order) and the ``limit`` of them
    from ``offset``, ordered by kind and id within a folder; ``dag_ids``: only those DAGs' records."""
    where, args = flt.where()
    total, rows = _page_across(
        found, "records", _RECORD_COLUMNS, where, args, "kind, record_id", dag_ids, offset, limit
    )
    for row in rows:
        row["webhook"] = bool(row["webhook"])
        row["webhook_key_set"] = bool(row["webhook_key_set"])
        row["webhook_path"] = WEBHOOK_PATH if row["webhook"] else None
    return total, rows


def page_of_problems(
    found: Sequence[Catalog],
    text: str | None,
    offset: int,
    limit: int,
    severity: str | None = None,
    dag_ids: set[str] | None = None,
) -> tuple[int, list[dict[str, Any]]]:
    """Errors (records left out) and warnings of every catalog, errors first, with ``text`` in the file,
    the message or the field; ``severity``: ``error`` (left out only) or ``warning`` alone; ``dag_ids``:
    only the problems of the records whose DAG (the one they have or would have) is among those (none of a
    server or a whole file)."""
    clauses: list[str] = []
    args: list[Any] = []
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses.append("(file LIKE ? ESCAPE '\\' OR message LIKE ? ESCAPE '\\' OR field LIKE ? ESCAPE '\\')")
        args.extend([pattern, pattern, pattern])
    if severity:
        clauses.append("severity = ?")
        args.append(severity)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    order = "severity = 'warning', file, kind, record_id"
    return _page_across(found, "problems", _PROBLEM_COLUMNS, where, args, order, dag_ids, offset, limit)


def merged_needs(found: Iterable[Catalog]) -> Needs:
    """The needs of every catalog's records, as one."""
    merged = Needs()
    for catalog in found:
        for name, value in catalog.needs.to_json().items():
            target = getattr(merged, name)
            if isinstance(target, dict):
                for key, item in value.items():
                    if key in target and isinstance(item, dict) and "records" in item:
                        target[key] = {**target[key], "records": [*target[key].get("records", []), *item["records"]]}
                    elif key in target and isinstance(item, list):
                        target[key] = [*target[key], *item]
                    else:
                        target[key] = item
            else:
                target.extend(value)
    return merged
