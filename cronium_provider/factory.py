"""The DAG factory behind ``dags_templates/cronium_dags.py``: records folder -> plan -> Airflow DAGs.

It reads local record files and nothing else at parse time. A bad record is logged with its file, id and
field, and every good record still becomes a DAG.

Two kinds of parse (see docs/operations.md, "Parse time and sharding"):

- the DAG processor's (no DAG id in Airflow's parsing context): every record is loaded and validated and
  every DAG built, and every bad record is logged; it also writes the parse index
  (:mod:`cronium_provider.records.index`) and the web UI's Cronium view catalog
  (:mod:`cronium_provider.view.catalog`) when the records changed;
- a worker's, before one task (the parsing context names the task's DAG): only that DAG is built, from
  the records it needs as the index holds them. With no usable index (none yet, stale, unreadable, or the
  records changed less than 2 s ago) every record is loaded as the DAG processor does, the index is written
  when it can be, and only the one DAG is rendered.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from airflow.sdk import DAG, get_parsing_context

from cronium_provider.config import read_settings
from cronium_provider.plan.build import (
    build_plan,
    plan_event,
    plan_workflow,
    variables_scoped,
)
from cronium_provider.plan.models import DagPlan, Plan
from cronium_provider.records.errors import RecordError
from cronium_provider.records.index import (
    RACY_NS,
    DagEntry,
    FolderState,
    Lookup,
    built_digest,
    folder_state,
    index_file,
    load_with_raws,
    lookup,
    owner_count,
    stored_meta,
    write_index,
)
from cronium_provider.records.source import RawRecord
from cronium_provider.records.validation import RecordSet, validate_records
from cronium_provider.render.dags import render_plan
from cronium_provider.settings import CroniumSettings

log = logging.getLogger("airflow.cronium.factory")

RECORDS_DIR_ENV = "CRONIUM_RECORDS_DIR"
INDEX_DIR_ENV = "CRONIUM_INDEX_DIR"
INDEX_OFF = ("off", "none", "false", "0")


def records_dir(settings: CroniumSettings | None = None) -> Path | None:
    """``$CRONIUM_RECORDS_DIR``, else the Airflow option ``[cronium] records_dir``."""
    value = os.environ.get(RECORDS_DIR_ENV)
    if not value:
        value = (settings or read_settings()).records_dir
    return Path(value) if value else None


def index_dir(settings: CroniumSettings) -> Path | None:
    """Where parse indexes are kept: ``$CRONIUM_INDEX_DIR``, else ``[cronium] index_dir``, else
    ``$AIRFLOW_HOME/cronium/parse-index``; None (no index) when set to ``off``."""
    value = os.environ.get(INDEX_DIR_ENV)
    if value is None:
        value = settings.index_dir
    if value and value.strip().lower() in INDEX_OFF:
        return None
    if value:
        return Path(value).expanduser()
    return Path(os.environ.get("AIRFLOW_HOME") or "~/airflow").expanduser() / "cronium" / "parse-index"


@dataclass
class ParseResult:
    """The DAGs one parse built, and how: ``full`` (every record), ``index`` (one DAG from the parse index)
    or ``one`` (one DAG, after loading every record: no usable index); ``detail`` says why, or what
    happened to the index; ``errors`` and ``warnings``: every record error (what it names is left out) and
    warning (nothing left out) the load found (the full and ``one`` parses); ``catalog``: what happened to
    the web UI's catalog (the full parse only)."""

    dags: dict[str, DAG]
    mode: str
    detail: str = ""
    errors: list[RecordError] = field(default_factory=list)
    warnings: list[RecordError] = field(default_factory=list)
    catalog: str = ""


def build_dags(path: str | Path | None = None, *, shard: str | None = None) -> dict[str, DAG]:
    """The DAGs the records under ``path`` (default: :func:`records_dir`; with ``shard``, its sub-folder of
    that name) build, by dag id: every one, or only the DAG Airflow's parsing context names."""
    return parse_dags(path, dag_id=get_parsing_context().dag_id, shard=shard).dags


def parse_dags(path: str | Path | None = None, *, dag_id: str | None = None, shard: str | None = None) -> ParseResult:
    """Every DAG of the records (``dag_id`` None: the DAG processor's parse), or only ``dag_id``'s."""
    settings = read_settings()
    folder = Path(path) if path is not None else records_dir(settings)
    if folder is None:
        log.warning("No Cronium records folder: set %s or [cronium] records_dir", RECORDS_DIR_ENV)
        return ParseResult({}, "full" if dag_id is None else "one", "no records folder")
    if shard:
        folder = folder / shard
    cache_dir = index_dir(settings)
    with _gc_paused():
        if dag_id is None:
            return _parse_all(folder, cache_dir, settings)
        return _parse_one(folder, dag_id, cache_dir, settings)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while DAGs are built: building thousands of DAGs allocates millions of
    objects that all stay alive and almost no garbage, and the collector would walk them over and over
    (a third of the full parse's time at 10,000 events). The previous state comes back afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@cache
def _code_stamp() -> str:
    """The code that decides which records are valid and which DAGs they build: part of the index key."""
    import cronium_provider

    base = Path(cronium_provider.__file__).parent
    parts = [cronium_provider.__version__]
    for pattern in ("records/*.py", "plan/*.py", "naming.py", "settings.py", "states.py", "factory.py"):
        for file in sorted(base.glob(pattern)):
            st = file.stat()
            parts.append(f"{file.name}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def _state(folder: Path) -> FolderState | None:
    try:
        return folder_state([folder], _code_stamp())
    except OSError:
        return None


def _entries(plan: Plan) -> list[DagEntry]:
    """The index entry of every DAG the plan builds."""
    return [DagEntry(d.dag_id, d.kind, d.record_id) for d in plan.dags]


def _save_index(
    cache_dir: Path,
    folder: Path,
    state: FolderState | None,
    started_ns: int,
    records: RecordSet,
    raws: list[RawRecord],
    plan: Plan,
) -> str:
    """Write the parse index of ``folder`` unless it is up to date or cannot be trusted; says which."""
    if state is None:
        return "index not written: a records path is missing"
    try:
        target = index_file(cache_dir, [folder])
        entries = _entries(plan)
        meta = stored_meta(target)
        if (
            meta.get("key") == state.key
            and meta.get("built") == built_digest(e.dag_id for e in entries)
            and meta.get("owners") == str(owner_count(records))
        ):
            return "index up to date"
        if state.newest_ns > started_ns - RACY_NS:
            return "index not written: record files changed less than 2 s before the load"
        if _state(folder) != state:
            return "index not written: record files changed during the load"
        count = write_index(target, state.key, records, raws, entries)
    except Exception as exc:  # the index only saves time: never fail a parse for it
        log.warning("Cronium: parse index not written to %s: %s: %s", cache_dir, type(exc).__name__, exc)
        return f"index not written: {exc}"
    log.info("Cronium: parse index of %s written (%d DAGs)", folder, count)
    return f"index written ({count} DAGs)"


def _save_catalog(
    cache_dir: Path,
    folder: Path,
    state: FolderState | None,
    started_ns: int,
    records: RecordSet,
    plan: Plan,
    settings: CroniumSettings,
) -> str:
    """Write the view's catalog of ``folder`` unless it is up to date; says which. Records changed during
    the load, or too recently to tell an edit from the stored key, write it with no key, so that the next
    full parse writes it again."""
    if state is None:
        return "catalog not written: a records path is missing"
    # imported here: a worker's one-DAG parse, before every task, never needs the catalog or the doctor's notes
    from cronium_provider.view.catalog import catalog_file, catalog_key, stored_key, write_catalog

    try:
        target = catalog_file(index_file(cache_dir, [folder]))
        key = catalog_key(state.key, settings)
        if stored_key(target) == key:
            return "catalog up to date"
        if state.newest_ns > started_ns - RACY_NS or _state(folder) != state:
            key = "unsettled"
        count = write_catalog(target, key, folder, records, plan, settings)
    except Exception as exc:  # the view only shows what the parse found: never fail a parse for it
        log.warning("Cronium: view catalog not written to %s: %s: %s", cache_dir, type(exc).__name__, exc)
        return f"catalog not written: {exc}"
    log.info("Cronium: view catalog of %s written (%d records)", folder, count)
    return f"catalog written ({count} records)"


def _parse_all(folder: Path, cache_dir: Path | None, settings: CroniumSettings) -> ParseResult:
    started_ns = time.time_ns()
    state = _state(folder) if cache_dir is not None else None
    records, raws = load_with_raws([folder])
    for error in records.errors:
        log.error("Cronium record left out: %s", error)
    for warning in records.warnings:
        log.warning("Cronium record warning: %s", warning)
    plan = build_plan(records, settings)
    dags = render_plan(plan)
    log.info(
        "Cronium: %d DAG(s) from %s (%d error(s), %d warning(s))",
        len(dags),
        folder,
        len(records.errors),
        len(records.warnings),
    )
    detail, catalog = "no index folder", "no index folder"
    if cache_dir is not None:
        detail = _save_index(cache_dir, folder, state, started_ns, records, raws, plan)
        catalog = _save_catalog(cache_dir, folder, state, started_ns, records, plan, settings)
    return ParseResult(dags, "full", detail, list(records.errors), list(records.warnings), catalog)


def _plan_one(found: Lookup, settings: CroniumSettings) -> DagPlan | None:
    """The plan of the one DAG an index hit names, from its records alone; None when they do not validate
    alone exactly as they did in the full load, or the index does not say how many owners the whole folder
    names (whether variables are scoped by owner is decided over every record, as the full parse does)."""
    entry = found.entry
    if entry is None or found.owners is None:
        return None
    records = validate_records(found.raws)
    # an event that runs only as a workflow node has errors (its own DAG is left out) in the full load too
    if [e for e in records.errors if not (e.kind == "event" and e.record_id in records.node_only)]:
        return None
    scoped = variables_scoped(settings.scope_variables_by_owner, found.owners)
    if entry.kind == "event" and entry.record_id in records.events:
        dag_plan = plan_event(
            records.events[entry.record_id],
            records,
            settings,
            scope_variables=scoped,
        )
    elif entry.kind == "workflow" and entry.record_id in records.workflows:
        dag_plan = plan_workflow(records.workflows[entry.record_id], records, settings, scope_variables=scoped)
    else:
        return None
    return dag_plan if dag_plan.dag_id == entry.dag_id else None


def _parse_one(folder: Path, dag_id: str, cache_dir: Path | None, settings: CroniumSettings) -> ParseResult:
    started_ns = time.time_ns()
    state: FolderState | None = None
    reason = "no index folder"
    if cache_dir is not None:
        state = _state(folder)
        if state is None:
            reason = "a records path is missing"
        else:
            found = lookup(index_file(cache_dir, [folder]), state.key, dag_id)
            if found.status == "absent":
                log.info("Cronium: the records in %s build no DAG %s (parse index)", folder, dag_id)
                return ParseResult({}, "index", "no such DAG")
            if found.status == "hit":
                dag_plan = _plan_one(found, settings)
                if dag_plan is not None:
                    dags = render_plan(Plan(dags=[dag_plan]))
                    log.info("Cronium: DAG %s from the parse index (%d record(s))", dag_id, len(found.raws))
                    return ParseResult(dags, "index", f"{len(found.raws)} record(s)")
                reason = "the indexed records do not validate alone"
            else:
                reason = found.reason
    log.info("Cronium: loading every record for DAG %s: %s", dag_id, reason)
    records, raws = load_with_raws([folder])
    if records.errors:
        log.warning("Cronium: %d record(s) left out (the DAG processor's log names them)", len(records.errors))
    if records.warnings:
        log.warning("Cronium: %d record warning(s) (the DAG processor's log names them)", len(records.warnings))
    plan = build_plan(records, settings)
    dags = render_plan(Plan(dags=[d for d in plan.dags if d.dag_id == dag_id]))
    detail = reason
    if cache_dir is not None:
        detail += "; " + _save_index(cache_dir, folder, state, started_ns, records, raws, plan)
    return ParseResult(dags, "one", detail, list(records.errors), list(records.warnings))
