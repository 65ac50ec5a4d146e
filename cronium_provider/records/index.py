"""The parse index of a records folder: for each DAG the full load built, the raw records it needs.

A worker parses the DAG file before every task. With this index it validates and builds the DAG of that
task alone instead of every record's: the index maps every DAG id the full load built to the raw records
whose validity decides that DAG's (its event or workflow; the events its workflow nodes run and its
``SCRIPT`` actions start, transitively; the servers all of those name), stored as they were read, so the
one-DAG path reads no record file at all.

Never stale: the index is keyed by the record files themselves (each file's path, size, mtime and ctime in
ns, inode and device, the folder as given and as an absolute path) and a salt the caller gives (the code's
version). A lookup whose key is not the stored one misses, and the caller falls back to the full load.
A writer (``cronium_provider.factory``) computes the key before the files are read and again after, and
writes the index only when both agree and every file is older than :data:`RACY_NS` when the load started,
so that a file written twice within one tick of its filesystem's clock cannot keep its key across an edit
(the racy-timestamp case).

Safe under concurrent writers and readers: the index is written to a temporary file in the same folder
and renamed over the old one; readers open it read-only and see the old file or the new one, whole. It
holds raw record content (env var values and server credentials included), so it is created with mode
600 in a folder of mode 700.

It also holds what a one-DAG parse cannot see from its own records: how many owners (``userId``) the
whole folder names (:func:`owner_count`), which decides whether Cronium variables are scoped by owner.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cronium_provider.records.models import MODEL_BY_KIND
from cronium_provider.records.source import RawRecord, iter_record_files, read_records
from cronium_provider.records.validation import RecordSet, validate_records

INDEX_FORMAT = 1
# Files changed this recently when a load starts make its index unsafe to write (timestamp granularity:
# jiffies on ext4 and tmpfs, 1 s on ext3 and some network filesystems, 2 s on FAT).
RACY_NS = 2_000_000_000
ABANDONED_SECONDS = 3600  # a temporary index file this old belongs to no running writer
ACTION_ATTRIBUTES = ("always_events", "success_events", "fail_events", "condition_events")


@dataclass(frozen=True)
class FolderState:
    """What the index is keyed by: a digest of the record files' stats, and the newest of their times."""

    key: str
    newest_ns: int


@dataclass(frozen=True)
class DagEntry:
    """One DAG the full load built: its record, and (for an event built only because actions start it)
    the DAGs whose actions start it."""

    dag_id: str
    kind: str  # event | workflow
    record_id: int
    action_target_of: tuple[str, ...] = ()


@dataclass
class Lookup:
    """The answer of the index for one DAG id.

    ``hit``: the records the DAG needs (``entry``, ``raws``); ``absent``: the full load builds no such DAG;
    ``full``: the DAG exists but its records could not be indexed (load everything); ``miss``: no usable
    index (missing, stale, unreadable; ``reason`` says which).
    ``owners``: :func:`owner_count` of the whole folder (a hit always has it).
    """

    status: Literal["hit", "absent", "full", "miss"]
    entry: DagEntry | None = None
    raws: list[RawRecord] = field(default_factory=list)
    reason: str = ""
    owners: int | None = None


def owner_count(records: RecordSet) -> int:
    """How many distinct owners (``userId``) the valid events and workflows name; a record without one
    names none. ``1`` and ``"1"`` are one owner (Cronium's ids are text)."""
    named = [e.user_id for e in records.all_events.values()] + [w.user_id for w in records.workflows.values()]
    return len({str(owner) for owner in named if owner is not None and str(owner) != ""})


def folder_state(paths: Sequence[str | Path], salt: str = "") -> FolderState | None:
    """The key of the record files under ``paths`` (the files the full load reads), or None when a path
    is missing or a file vanishes while it is looked at (nothing is indexed then)."""
    digest = hashlib.sha256(f"cronium-index {INDEX_FORMAT}\0{salt}\0".encode())
    for raw in paths:
        if not Path(raw).exists():
            return None
        digest.update(f"{raw}\0{os.path.abspath(raw)}\0".encode())
    newest = 0
    for path in iter_record_files(paths):
        try:
            st = path.stat()
        except OSError:
            return None
        digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\0{st.st_dev}\n".encode())
        newest = max(newest, st.st_mtime_ns, st.st_ctime_ns)
    return FolderState(digest.hexdigest(), newest)


def index_file(cache_dir: Path, paths: Sequence[str | Path]) -> Path:
    """Where the index of ``paths`` lives in ``cache_dir``: one file per records folder."""
    name = "\0".join(os.path.abspath(p) for p in paths)
    return cache_dir / f"records-{hashlib.sha256(name.encode()).hexdigest()[:20]}.sqlite"


def load_with_raws(paths: Iterable[str | Path]) -> tuple[RecordSet, list[RawRecord]]:
    """:func:`~cronium_provider.records.validation.load_records`, also returning the raw records read."""
    raws, errors = read_records(list(paths))
    return validate_records(raws, errors), raws


def needed_records(records: RecordSet, kind: str, record_id: int) -> set[tuple[str, int]]:
    """Every record whose validity decides that of ``(kind, record_id)``, and that its DAG is built from:
    the record; the events its workflow nodes run and its ``SCRIPT`` actions start, transitively; the
    servers those events (and a workflow's server override) name."""
    needed: set[tuple[str, int]] = {(kind, record_id)}
    pending: list[int] = []
    if kind == "workflow":
        workflow = records.workflows[record_id]
        pending = [node.event_id for node in workflow.nodes]
        if workflow.override_event_servers:
            needed.update(("server", s) for s in workflow.override_server_ids if s in records.servers)
    else:
        pending = [record_id]
    seen: set[int] = set()
    while pending:
        event_id = pending.pop()
        if event_id in seen or event_id not in records.all_events:
            continue
        seen.add(event_id)
        needed.add(("event", event_id))
        event = records.all_events[event_id]
        server_ids = [ref.id for ref in event.servers]
        if event.server_id is not None:
            server_ids.append(event.server_id)
        needed.update(("server", s) for s in server_ids if s in records.servers)
        for attribute in ACTION_ATTRIBUTES:
            for action in getattr(event, attribute):
                if action.type.value == "SCRIPT" and action.target_event_id is not None:
                    pending.append(action.target_event_id)
    return needed


def _plain_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value.strip())
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _kept_model(records: RecordSet, kind: str, record_id: int) -> Any:
    if kind == "event":
        return records.all_events.get(record_id)
    if kind == "workflow":
        return records.workflows.get(record_id)
    return records.servers.get(record_id)


def kept_raws(records: RecordSet, raws: Iterable[RawRecord]) -> dict[tuple[str, int], RawRecord]:
    """The raw record each valid record was validated from (the copy validation kept).

    A record with more than one candidate in its file (copies nested in workflow nodes, duplicates) is
    the first one, given on its own before nested ones, that validates to the kept model; one that
    cannot be told is not indexed (its DAGs then load everything). Only the kept copy is stored: the
    warnings about copies that differ from it are the full parse's to give, and a one-DAG parse of the
    stored records finds neither them nor an error.
    """
    candidates: dict[tuple[str, int], list[RawRecord]] = {}
    for raw in raws:
        record_id = _plain_int(raw.record_id)
        if record_id is None or records.origins.get((raw.kind, record_id)) != raw.path:
            continue
        candidates.setdefault((raw.kind, record_id), []).append(raw)
    kept: dict[tuple[str, int], RawRecord] = {}
    for ref, found in candidates.items():
        model = _kept_model(records, *ref)
        if model is None:
            continue
        if len(found) == 1:
            kept[ref] = found[0]
            continue
        for raw in sorted(found, key=lambda r: r.nested):
            try:
                if MODEL_BY_KIND[raw.kind].model_validate(raw.data) == model:
                    kept[ref] = raw
                    break
            except ValueError:
                continue
    return kept


def _storable(raw: RawRecord) -> str | None:
    """The raw record's data as JSON, or None when JSON cannot carry it exactly (e.g. a YAML date).

    A workflow's ``webhookKey`` is a secret no DAG needs: it is never written into the index.
    """
    data = raw.data
    if raw.kind == "workflow" and "webhookKey" in data:
        data = {key: value for key, value in data.items() if key != "webhookKey"}
    try:
        text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return None
    if raw.path.lower().endswith(".json"):
        return text  # read by json.loads: the round trip is exact
    return text if json.loads(text) == data else None


def built_digest(dag_ids: Iterable[str]) -> str:
    """A digest of the set of DAG ids an index holds."""
    return hashlib.sha256("\n".join(sorted(dag_ids)).encode()).hexdigest()


def stored_meta(path: Path) -> dict[str, str]:
    """What an index file was written for (``format``, ``key``, ``built``); empty when there is none."""
    try:
        with _open(path) as con:
            return {str(name): str(value) for name, value in con.execute("SELECT name, value FROM meta")}
    except (sqlite3.Error, OSError, ValueError):
        return {}


class _open:
    """A read-only, lock-free connection to an index file (it is never changed in place, only replaced)."""

    def __init__(self, path: Path):
        if not path.is_file():
            raise FileNotFoundError(str(path))
        self.con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)

    def __enter__(self) -> sqlite3.Connection:
        return self.con

    def __exit__(self, *exc: object) -> None:
        self.con.close()


def lookup(path: Path, key: str, dag_id: str) -> Lookup:
    """What the index at ``path`` says about ``dag_id``, if it was written for ``key``."""
    try:
        with _open(path) as con:
            row = con.execute("SELECT value FROM meta WHERE name = 'key'").fetchone()
            if not row or row[0] != key:
                return Lookup("miss", reason="stale index: the record files changed since it was written")
            row = con.execute("SELECT value FROM meta WHERE name = 'owners'").fetchone()
            owners = _plain_int(row[0]) if row else None
            if owners is None or owners < 0:
                return Lookup("miss", reason="the index holds no owner count")
            row = con.execute(
                "SELECT kind, record_id, action_target_of, rids FROM dags WHERE dag_id = ?", (dag_id,)
            ).fetchone()
            if row is None:
                return Lookup("absent")
            entry = DagEntry(dag_id, str(row[0]), int(row[1]), tuple(json.loads(row[2])))
            if row[3] is None:
                return Lookup("full", entry, reason="the DAG's records could not be indexed")
            rids = [int(r) for r in json.loads(row[3])]
            marks = ",".join("?" * len(rids))
            rows = con.execute(
                f"SELECT path, kind, position, nested, data FROM records WHERE rid IN ({marks}) ORDER BY rid",  # noqa: S608 - only '?' marks
                rids,
            ).fetchall()
    except FileNotFoundError:
        return Lookup("miss", reason="no index yet")
    except (sqlite3.Error, OSError, ValueError, TypeError) as exc:
        return Lookup("miss", reason=f"unreadable index: {exc}")
    if len(rows) != len(rids):
        return Lookup("miss", reason="inconsistent index")
    raws = [RawRecord(str(p), str(k), json.loads(d), str(pos), bool(n)) for p, k, pos, n, d in rows]
    return Lookup("hit", entry, raws, owners=owners)


def _remove_abandoned(path: Path) -> None:
    """Temporary files of writers that were killed (a parse past its timeout) and never renamed."""
    limit = time.time() - ABANDONED_SECONDS
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            if tmp.stat().st_mtime < limit:
                tmp.unlink()
        except OSError:
            continue


@contextmanager
def replacing_database(path: Path) -> Iterator[sqlite3.Connection]:
    """A new SQLite file that replaces ``path`` whole when the block ends without an error: built in a
    temporary file of mode 600 (created exclusively, in a folder of mode 700) in one transaction, then
    renamed over ``path``, so a reader sees the old file or the new one; on an error the temporary file is
    removed and ``path`` is left as it was. Temporary files of writers killed long ago are removed first."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _remove_abandoned(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        con = sqlite3.connect(tmp, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode = OFF")
            con.execute("BEGIN")
            yield con
            con.execute("COMMIT")
        finally:
            con.close()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_index(
    path: Path, key: str, records: RecordSet, raws: Iterable[RawRecord], entries: Iterable[DagEntry]
) -> int:
    """Write the index for ``key`` (temporary file, then rename); returns the number of DAGs indexed."""
    entries = list(entries)
    kept = kept_raws(records, raws)
    rid_of: dict[tuple[str, int], int] = {}
    record_rows: list[tuple[int, str, str, str, int, str]] = []
    dag_rows: list[tuple[str, str, int, str, str | None]] = []
    for entry in entries:
        rids: list[int] | None = []
        for ref in sorted(needed_records(records, entry.kind, entry.record_id)):
            if ref not in rid_of:
                raw = kept.get(ref)
                data = _storable(raw) if raw is not None else None
                if raw is None or data is None:
                    rids = None
                    break
                rid_of[ref] = len(rid_of)
                record_rows.append((rid_of[ref], raw.path, raw.kind, raw.position, int(raw.nested), data))
            assert rids is not None
            rids.append(rid_of[ref])
        dag_rows.append(
            (
                entry.dag_id,
                entry.kind,
                entry.record_id,
                json.dumps(list(entry.action_target_of)),
                None if rids is None else json.dumps(rids),
            )
        )
    with replacing_database(path) as con:
        con.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        con.execute(
            "CREATE TABLE records (rid INTEGER PRIMARY KEY, path TEXT NOT NULL, kind TEXT NOT NULL, "
            "position TEXT NOT NULL, nested INTEGER NOT NULL, data TEXT NOT NULL)"
        )
        con.execute(
            "CREATE TABLE dags (dag_id TEXT PRIMARY KEY, kind TEXT NOT NULL, record_id INTEGER NOT NULL, "
            "action_target_of TEXT NOT NULL, rids TEXT)"
        )
        con.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?)", record_rows)
        con.executemany("INSERT INTO dags VALUES (?, ?, ?, ?, ?)", dag_rows)
        meta = [
            ("format", str(INDEX_FORMAT)),
            ("built", built_digest(e.dag_id for e in entries)),
            ("owners", str(owner_count(records))),
            ("key", key),
        ]
        con.executemany("INSERT INTO meta VALUES (?, ?)", meta)  # the key last: a file without it is never used
    return len(dag_rows)
