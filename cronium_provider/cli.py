"""The ``cronium-airflow`` command: validate records, show the DAGs they build, and sync servers and events.

`validate` and `plan` touch neither Airflow's database nor the network. Secret values found in records (env var
values, server keys and passwords) are never printed.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from cronium_provider.naming import CRONIUM_DEFAULT_CONN_ID
from cronium_provider.plan.build import build_plan
from cronium_provider.records.schedules import ScheduleError
from cronium_provider.records.validation import RecordSet, load_records
from cronium_provider.settings import CroniumSettings

if TYPE_CHECKING:
    from cronium_provider.doctor.findings import Finding


def _summary(records: RecordSet) -> dict[str, Any]:
    return {
        "valid": {
            "events": sorted(records.events),
            "workflows": sorted(records.workflows),
            "servers": sorted(records.servers),
        },
        "errors": [e.to_json() for e in records.errors],
        "warnings": [w.to_json() for w in records.warnings],
        "ok": records.ok,
    }


def _settings() -> CroniumSettings:
    """``[cronium]`` as the DAG file reads it: Airflow's configuration (``airflow.cfg``, then the
    ``AIRFLOW__CRONIUM__*`` variables); a malformed value raises ``ValueError`` naming it."""
    from cronium_provider.config import read_settings

    return read_settings(strict=True)


@contextlib.contextmanager
def _progress(description: str) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr while a long step runs, when stderr is a terminal (none when piped or
    redirected: the output stays as it was); yields the ``(done, total)`` callback, or None. The description is
    shown as it is: no rich markup (a folder named ``[/]`` is no tag) and no control character."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cronium_provider.doctor.findings import printable

    with Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(file=sys.stderr),
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
    ) as bar:
        task = bar.add_task(printable(description), total=None)

        def report(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)
            if done >= total:
                bar.stop()  # the step is done: its bar goes before the command writes its lines

        yield report


def cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    with _progress("reading records") as progress:
        records = load_records(args.paths, progress)
    if args.json:
        json.dump(_summary(records), out, indent=2)
        out.write("\n")
        return 0 if records.ok else 1
    counts = f"{len(records.events)} events, {len(records.workflows)} workflows, {len(records.servers)} servers valid"
    if records.warnings:
        counts += f", {len(records.warnings)} warning(s)"
    from cronium_provider.doctor.findings import printable  # a file's name can neither forge nor hide a line

    for error in records.errors:
        out.write(f"{printable(str(error))}\n")
    for warning in records.warnings:
        out.write(f"warning: {printable(str(warning))}\n")
    if records.ok:
        out.write(f"OK: {counts}\n")
        return 0
    out.write(f"{len(records.errors)} problem(s) found; {counts}\n")
    return 1


def cmd_plan(args: argparse.Namespace, out: TextIO) -> int:
    records = load_records(args.paths)
    try:
        settings = _settings()
    except ValueError as exc:  # e.g. [cronium] scope_variables_by_owner is not auto, true or false
        out.write(f"error: {exc}\n")
        return 2
    if args.timezone:
        settings = replace(settings, timezone=args.timezone)
    try:
        plan = build_plan(records, settings)
    except ScheduleError as exc:
        out.write(f"error: --timezone: {exc}\n")
        return 2
    data = plan.to_json()
    data["errors"] = [e.to_json() for e in records.errors]
    data["warnings"] = [w.to_json() for w in records.warnings]
    if args.json:
        json.dump(data, out, indent=2)
        out.write("\n")
    else:
        from cronium_provider.doctor.findings import printable

        def line(text: str) -> None:  # a record's name or text can neither forge a line nor hide one
            out.write(printable(text) + "\n")

        for dag in plan.dags:
            schedule = dag.schedule.cron or (
                f"every {dag.schedule.interval_seconds}s" if dag.schedule.interval_seconds else "manual"
            )
            line(f"{dag.dag_id}  [{dag.status}, {schedule}, max {dag.max_active_runs} at once]  {dag.name}")
            for task in dag.tasks:
                details = task.details()
                tool = f"  ({details['tool_type']} {details['action_id']})" if "tool_type" in details else ""
                line(f"  {task.task_id:<20} {task.kind:<14} {task.trigger_rule:<12} {task.display_name}{tool}")
            for note in dag.notes:
                line(f"  note: {note}")
        for error in records.errors:
            line(f"error: {error}")
        for warning in records.warnings:
            line(f"warning: {warning}")
    return 0 if records.ok else 1


def cmd_apply_status(args: argparse.Namespace, out: TextIO) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from cronium_provider.dag_state import apply_status

    missing = [path for path in args.paths if not Path(path).exists()]
    for path in missing:
        out.write(f"error: {path}: no such file or folder; nothing changed\n")
    if missing:
        return 2
    try:
        settings = _settings()
    except ValueError as exc:
        out.write(f"error: {exc}; nothing changed\n")
        return 2
    records = load_records(args.paths)
    for error in records.errors:  # left out: its DAG is left as it is
        out.write(f"warning: {error} (left out: its DAG is not changed)\n")
    try:
        changes = apply_status(build_plan(records, settings))
    except SQLAlchemyError as exc:
        out.write(
            f"error: Airflow's database: {type(exc).__name__}: {getattr(exc, 'orig', None) or exc}; nothing changed\n"
        )
        return 2
    for change in changes:
        out.write(f"{change.dag_id}: {change.reason}\n")
    out.write(f"{sum(change.changed for change in changes)} DAG(s) changed\n")
    return 0


def cmd_reset_counter(args: argparse.Namespace, out: TextIO) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from cronium_provider.dag_state import reset_counter
    from cronium_provider.factory import records_dir
    from cronium_provider.plan.build import plan_event

    try:
        settings = _settings()
    except ValueError as exc:
        out.write(f"error: {exc}; nothing changed\n")
        return 2
    folder = records_dir(settings)
    paths = args.paths or ([str(folder)] if folder is not None else [])
    missing = [path for path in paths if not Path(path).exists()]
    for path in missing:
        out.write(f"error: {path}: no such file or folder; nothing changed\n")
    if not paths:
        out.write("error: no PATH given and no records folder set ([cronium] records_dir); nothing changed\n")
    if missing or not paths:
        return 2
    records = load_records(paths)
    event = records.events.get(args.event_id)
    if event is None:
        bad = [e for e in records.errors if e.kind == "event" and e.record_id == args.event_id]
        why = f": {bad[0]}" if bad else f" in {', '.join(paths)}"
        out.write(f"error: no valid record of event {args.event_id}{why}; nothing changed\n")
        return 2
    try:
        done = reset_counter(args.event_id, plan_event(event, records, settings))
    except SQLAlchemyError as exc:
        out.write(
            f"error: Airflow's database: {type(exc).__name__}: {getattr(exc, 'orig', None) or exc}; nothing changed\n"
        )
        return 2
    out.write(
        f"{done.dag_id}: execution count reset ({done.before} execution(s) before; the {done.finished_runs} "
        f"finished run(s) and the record's executionCount no longer count); {done.note}\n"
    )
    return 0


def cmd_servers_sync(args: argparse.Namespace, out: TextIO) -> int:
    from cronium_provider.sync.servers import ServerCredentials, parse_id_paths, sync_servers

    records = load_records(args.paths)
    for error in records.errors:
        out.write(f"error: {error}\n")
    try:
        creds = ServerCredentials(
            key_files=parse_id_paths(args.key_file, "--key-file"),
            password_files=parse_id_paths(args.password_file, "--password-file"),
            known_hosts=Path(args.known_hosts) if args.known_hosts else None,
            skip_host_key_check=frozenset(args.no_host_key_check),
        )
    except ValueError as exc:
        out.write(f"error: {exc}\n")
        return 2
    # an id naming no server record (valid or not) is a typo: refused before anything is written
    known = set(records.servers) | {e.record_id for e in records.errors if e.kind == "server"}
    given = (
        ("--key-file", creds.key_files),
        ("--password-file", creds.password_files),
        ("--no-host-key-check", creds.skip_host_key_check),
    )
    unknown = [(option, i) for option, ids in given for i in sorted(ids) if i not in known]
    for option, server_id in unknown:
        out.write(f"error: {option} {server_id}: no server record has id {server_id}; nothing changed\n")
    if unknown:
        return 2
    if not records.servers:
        out.write("no valid server records found\n")
        return 1
    lines, refused = sync_servers(records, creds, pool_slots=args.pool_size)
    for line in lines:
        out.write(line + "\n")
    for error in refused:
        out.write(f"error: {error}\n")
    return 0 if records.ok and not refused else 1


def _records_folder() -> Path | None:
    """The records folder the DAG file reads (``$CRONIUM_RECORDS_DIR``, else ``[cronium] records_dir``)."""
    from cronium_provider.factory import records_dir

    return records_dir(_settings())


def cmd_dag_file(args: argparse.Namespace, out: TextIO) -> int:
    from cronium_provider.config import dags_folder
    from cronium_provider.dag_file import apply_dag_files, plan_dag_files, shard_name_error

    shards: list[str] = list(dict.fromkeys(args.shard))
    refused = [error for shard in shards if (error := shard_name_error(shard))]
    for error in refused:
        out.write(f"error: --shard: {error}\n")
    if refused:
        return 2
    try:
        folder, records = Path(args.dags_folder) if args.dags_folder else dags_folder(), _records_folder()
    except ValueError as exc:
        out.write(f"error: {exc}\n")
        return 2
    changes = plan_dag_files(folder, shards)
    for problem in changes.blocked:
        out.write(f"error: {problem}\n")
    if changes.blocked:
        return 1
    try:
        left = apply_dag_files(changes)
    except OSError as exc:
        out.write(f"error: cannot write into {folder}: {exc.strerror or exc}; nothing written\n")
        return 1
    for path in left:
        out.write(f"error: {path} changed while dag-file ran, and is not the provider's DAG file: left alone\n")
    for path in changes.write:
        if path not in left:
            out.write(f"wrote {path}\n")
    for path in changes.unchanged:
        out.write(f"unchanged {path}\n")
    for dag_file, why in changes.remove:
        if dag_file.path not in left:
            out.write(f"removed {dag_file.path}: {why}\n")
    for dag_file in changes.kept:
        out.write(f"kept {dag_file.path}: it reads {dag_file.describe()}\n")
    if left:
        return 1
    if records is None:
        out.write(
            "warning: no records folder is set (CRONIUM_RECORDS_DIR or [cronium] records_dir): "
            "the DAG file builds no DAG until one is\n"
        )
        return 0
    for folder_read in [records / shard for shard in shards] or [records]:
        if not folder_read.is_dir():
            out.write(f"warning: {folder_read} does not exist: the DAG file builds no DAG from it until it does\n")
    return 0


def cmd_runtime_image_build(args: argparse.Namespace, out: TextIO) -> int:
    import subprocess
    from importlib.resources import as_file

    from cronium_provider.config import read_settings
    from cronium_provider.dag_file import template

    try:
        image = args.image or read_settings("image", strict=True).image
    except ValueError as exc:
        out.write(f"error: {exc}\n")
        return 2
    with as_file(template("runtime_image")) as context:
        script = context / "build-runtime-image.sh"
        out.write(f"building {image} with {script}\n")
        out.flush()
        with subprocess.Popen(
            ["bash", str(script), image], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as proc:
            for line in proc.stdout or ():
                out.write(line)
                out.flush()
    if proc.returncode:
        out.write(f"error: the runtime image {image} was not built (exit {proc.returncode}; output above)\n")
        return 1
    return 0


def cmd_runtime_image_context(args: argparse.Namespace, out: TextIO) -> int:
    from cronium_provider.dag_file import RUNTIME_IMAGE_FILES, template
    from cronium_provider.sync.store import write_atomically

    target = Path(args.directory)
    files = {name: template("runtime_image", name).read_bytes() for name in RUNTIME_IMAGE_FILES}

    def clash(path: Path, data: bytes) -> bool:  # a link (never written through), a folder, other bytes
        return os.path.lexists(path) and (path.is_symlink() or not path.is_file() or path.read_bytes() != data)

    clashes = [target / n for n, data in files.items() if clash(target / n, data)]
    for path in clashes:
        out.write(f"error: {path} exists and differs from the provider's: left alone, nothing written\n")
    if clashes:
        return 1
    try:
        target.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            write_atomically(target / name, data.decode("utf-8"))
            (target / name).chmod(0o755 if name.endswith(".sh") else 0o644)
            out.write(f"wrote {target / name}\n")
    except OSError as exc:
        out.write(f"error: cannot write into {target}: {exc.strerror or exc}\n")
        return 1
    script = target / RUNTIME_IMAGE_FILES[1]
    out.write(f"build it with: docker build -t cronium-runtime:2 {target}  (or: bash {script})\n")
    return 0


def cmd_sync(args: argparse.Namespace, out: TextIO) -> int:
    from cronium_provider.config import dags_folder
    from cronium_provider.dag_file import provider_dag_files, shard_name_error, sharded_reading
    from cronium_provider.factory import records_dir as records_folder
    from cronium_provider.sync.command import EXIT_FAILED, run_sync

    if args.timeout <= 0:
        out.write("error: --timeout must be a positive number of seconds\n")
        return EXIT_FAILED
    records_dir, dags = Path(args.records_dir), dags_folder()
    if args.shard is None and (shards := sharded_reading(dags, records_dir, records_folder())):
        out.write(
            f"error: the DAG files in {dags} read {records_dir} in shards ({', '.join(shards)}), none reads "
            f"{records_dir / 'cronium-api'}: pass --shard NAME to sync into one shard's sub-folder\n"
        )
        out.write(f"nothing changed: {records_dir} and the Airflow Variables are as they were\n")
        return EXIT_FAILED
    if args.shard is not None:
        if error := shard_name_error(args.shard):
            out.write(f"error: --shard: {error}\n")
            return EXIT_FAILED
        records_dir = records_dir / args.shard
        if not any(f.shard in (None, args.shard) for f in provider_dag_files(dags)):
            out.write(
                f"warning: no DAG file in {dags} reads {records_dir}: cronium-airflow dag-file --shard "
                f"{args.shard} writes one\n"
            )
    with _progress("fetching from Cronium") as progress:
        return run_sync(
            records_dir,
            conn_id=args.conn_id,
            timeout=args.timeout,
            with_workflows=not args.no_workflows,
            known_hosts=Path(args.known_hosts) if args.known_hosts else None,
            out=out,
            progress=progress,
        )


def cmd_doctor(args: argparse.Namespace, out: TextIO) -> int:
    import time

    from airflow.providers.common.compat.sdk import conf

    from cronium_provider.doctor.environment import environment_findings
    from cronium_provider.doctor.findings import printable
    from cronium_provider.doctor.records import folder_findings, needs, record_notes

    try:
        settings = _settings()
        folder = Path(args.records_dir) if args.records_dir else _records_folder()
    except ValueError as exc:
        return _doctor_cannot_run(args, out, str(exc), "correct that setting in airflow.cfg or its variable")
    if folder is None:
        message = "no RECORDS_DIR given and no records folder set ([cronium] records_dir)"
        return _doctor_cannot_run(args, out, message, "pass RECORDS_DIR, or set [cronium] records_dir")
    import_timeout = float(conf.getfloat("core", "dagbag_import_timeout", fallback=30.0))
    records: RecordSet | None = None
    seconds = 0.0
    if folder.is_dir():
        started = time.monotonic()
        with _progress(f"reading {folder}") as progress:
            records = load_records([folder], progress)
        seconds = time.monotonic() - started
    findings = folder_findings(folder, records, seconds, import_timeout)
    if records is not None:
        findings += environment_findings(needs(records, settings), settings)
        findings += record_notes(records, settings)
    counts = _severity_counts(findings)
    if args.json:
        _doctor_json(out, findings, str(folder), records, seconds)
    else:
        for finding in sorted(findings, key=lambda f: ("error", "warning", "note").index(f.severity)):
            out.write(finding.line() + "\n")
        read = ""
        if records is not None:
            read = (
                f"; {len(records.events)} events, {len(records.workflows)} workflows, {len(records.servers)} servers "
                f"read in {seconds:.2f} s"
            )
        out.write(
            f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['note']} note(s) "
            f"for {printable(str(folder))}{read}\n"
        )
    return 1 if counts["error"] or counts["warning"] else 0


def _doctor_cannot_run(args: argparse.Namespace, out: TextIO, message: str, fix: str) -> int:
    """Exit 2: doctor cannot check anything (its settings cannot be read, no records folder); with --json, the
    usual object with this one error, so that --json always gives JSON."""
    if not args.json:
        out.write(f"error: {message}\n")
        return 2
    from cronium_provider.doctor.findings import Finding

    _doctor_json(out, [Finding("settings", "error", "cronium-airflow doctor", message, fix)], args.records_dir)
    return 2


def _severity_counts(findings: list[Finding]) -> dict[str, int]:
    return {s: sum(f.severity == s for f in findings) for s in ("error", "warning", "note")}


def _doctor_json(
    out: TextIO,
    findings: list[Finding],
    records_dir: str | None,
    records: RecordSet | None = None,
    seconds: float = 0.0,
) -> None:
    counts = _severity_counts(findings)
    data = {
        "findings": [f.to_json() for f in findings],
        "errors": counts["error"],
        "warnings": counts["warning"],
        "notes": counts["note"],
        "records_dir": records_dir,
        "parse_seconds": round(seconds, 3),
        "records": {
            "events": len(records.events) if records else 0,
            "workflows": len(records.workflows) if records else 0,
            "servers": len(records.servers) if records else 0,
        },
        "ok": not (counts["error"] or counts["warning"]),
    }
    json.dump(data, out, indent=2)
    out.write("\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cronium-airflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    validate = sub.add_parser("validate", help="check Cronium record files; exit 1 when any is invalid")
    validate.add_argument("paths", nargs="+", metavar="PATH", help="record files or folders")
    validate.add_argument("--json", action="store_true", help="machine-readable output")
    validate.set_defaults(func=cmd_validate)
    plan = sub.add_parser("plan", help="show the Airflow DAGs the records would build")
    plan.add_argument("paths", nargs="+", metavar="PATH", help="record files or folders")
    plan.add_argument("--json", action="store_true", help="machine-readable output")
    plan.add_argument(
        "--timezone",
        metavar="ZONE",
        help="the zone of Cronium's schedules (default: $AIRFLOW__CRONIUM__TIMEZONE, "
        "$AIRFLOW__CORE__DEFAULT_TIMEZONE, else UTC; the DAG file reads [cronium] timezone)",
    )
    plan.set_defaults(func=cmd_plan)
    status = sub.add_parser(
        "apply-status",
        help="unpause the existing DAGs of the records, keep those at maxExecutions paused (needs Airflow's database)",
        description="Every record's DAG is unpaused, whatever its status (a PAUSED, DRAFT or ARCHIVED record "
        "has no schedule but runs when a person or an action starts it; earlier versions paused its DAG), except "
        "an event whose runs reached its maxExecutions; a Cronium DAG Airflow marks stale (its record is gone) is "
        "paused. An invalid record is a warning: it is left out and "
        "its DAG is not changed. Exit 0: every valid record's status applied; 2: failed, nothing changed (a "
        "PATH that does not exist, a malformed [cronium] setting, Airflow's database not written).",
    )
    status.add_argument("paths", nargs="+", metavar="PATH", help="record files or folders")
    status.set_defaults(func=cmd_apply_status)
    reset = sub.add_parser(
        "reset-counter",
        help="start an event's execution count again, as Cronium's Reset counter (needs Airflow's database)",
        description="Runs finished so far and the record's executionCount no longer count towards maxExecutions; "
        "a DAG paused at its maxExecutions is unpaused. PATH: the record files or folders (default: the records "
        "folder the DAG file reads). Exit 0: reset; 2: nothing changed (no valid record of the event, a PATH "
        "that does not exist, Airflow's database not written).",
    )
    reset.add_argument("event_id", type=int, metavar="EVENT_ID", help="the event's id")
    reset.add_argument("paths", nargs="*", metavar="PATH", help="record files or folders")
    reset.set_defaults(func=cmd_reset_counter)
    servers = sub.add_parser("servers", help="Cronium servers as Airflow SSH connections")
    servers_sub = servers.add_subparsers(dest="servers_command", required=True)
    sync = servers_sub.add_parser(
        "sync",
        help="create or update the SSH connection and pool of every server record (needs Airflow's database)",
        description="The record sets a connection's host, port and username; a key, password or host key "
        "setting not given (by an option or the record) is kept as the connection has it, and so is an existing "
        "pool's size unless --pool-size is given. Exit 0: synced; 1: some records invalid or refused and left "
        "out (or none valid); 2: failed, nothing changed (an option naming no server record or a missing file).",
    )
    sync.add_argument("paths", nargs="+", metavar="PATH", help="record files or folders")
    sync.add_argument("--key-file", action="append", default=[], metavar="ID=PATH", help="private key of a server")
    sync.add_argument("--password-file", action="append", default=[], metavar="ID=PATH", help="password of a server")
    sync.add_argument("--known-hosts", metavar="FILE", help="known_hosts file holding the servers' host keys")
    sync.add_argument(
        "--no-host-key-check",
        action="append",
        type=int,
        default=[],
        metavar="ID",
        help="skip host key checking for this server (explicit opt-in)",
    )
    sync.add_argument(
        "--pool-size",
        type=int,
        default=None,
        help="runs at once per server (default: an existing pool keeps its slots, a new one gets 5, as Cronium)",
    )
    sync.set_defaults(func=cmd_servers_sync)
    api_sync = sub.add_parser(
        "sync",
        help="fetch events (and, from a Cronium that still has GET /api/workflows, workflows) from the Cronium "
        "API into RECORDS_DIR/cronium-api/records.json; env var values go to Airflow Variables, server "
        "credentials to SSH connections (needs Airflow's database)",
        description="Exit 0: synced; 1: synced, some records invalid and left out; 2: failed, nothing changed. "
        "A current Cronium serves workflows to its web app only (no REST route): the events are synced, and "
        "workflows come from files in RECORDS_DIR, as Cronium's workflow download writes them, which sync "
        "leaves as they are.",
    )
    api_sync.add_argument("records_dir", metavar="RECORDS_DIR", help="the records folder the DAG file reads")
    api_sync.add_argument("--conn-id", default=CRONIUM_DEFAULT_CONN_ID, help="the cronium connection to use")
    api_sync.add_argument("--timeout", type=float, default=30.0, help="seconds per API request (default 30)")
    api_sync.add_argument(
        "--no-workflows",
        action="store_true",
        help="sync events (and their servers) only, without asking for GET /api/workflows",
    )
    api_sync.add_argument("--known-hosts", metavar="FILE", help="known_hosts file holding the servers' host keys")
    api_sync.add_argument(
        "--shard",
        metavar="NAME",
        help="sync into RECORDS_DIR/NAME, the sub-folder one shard's DAG file reads (needed when the DAG files "
        "in Airflow's dags folder read RECORDS_DIR in shards)",
    )
    api_sync.set_defaults(func=cmd_sync)
    dag_file = sub.add_parser(
        "dag-file",
        help="write the provider's DAG file into a dags folder, whole or one copy per shard",
        description="Writes cronium_dags.py, or with --shard cronium_dags_<NAME>.py per shard, and removes the "
        "provider's DAG files of the other kind (both kinds at once would build every DAG twice). A file that is "
        "not the provider's is never touched; a provider DAG file you edited stops it (exit 1, nothing written).",
    )
    dag_file.add_argument(
        "dags_folder", nargs="?", metavar="DAGS_FOLDER", help="the dags folder (default: Airflow's [core] dags_folder)"
    )
    dag_file.add_argument(
        "--shard",
        action="append",
        default=[],
        metavar="NAME",
        help="a shard: the sub-folder NAME of the records folder (repeat for each shard)",
    )
    dag_file.set_defaults(func=cmd_dag_file)
    image = sub.add_parser("runtime-image", help="the container image scripts run in")
    image_sub = image.add_subparsers(dest="image_command", required=True)
    build = image_sub.add_parser(
        "build",
        help="build the image (docker build of the packaged Dockerfile, else an offline debootstrap build); "
        "an existing image of that name is reused",
    )
    build.add_argument("image", nargs="?", metavar="IMAGE", help="the image name (default: [cronium] image)")
    build.set_defaults(func=cmd_runtime_image_build)
    context = image_sub.add_parser("context", help="copy the image's build context (Dockerfile, build script) to DIR")
    context.add_argument("directory", metavar="DIR")
    context.set_defaults(func=cmd_runtime_image_context)
    doctor = sub.add_parser(
        "doctor",
        help="what would fail before it fails: records left out, connections, host keys, pools, Docker, and where "
        "a record behaves differently from Cronium",
        description="Checks the records folder (left-out records, warnings, parse time), each tool and server "
        "connection the records need (present, type, owner, host key), their pools, the Docker daemon and runtime "
        "image when a script runs in a container, and the resilience store; notes where each record will behave "
        "differently from Cronium. Exit 0: no error or warning (notes never count); 1: some; 2: not checked.",
    )
    doctor.add_argument(
        "records_dir",
        nargs="?",
        metavar="RECORDS_DIR",
        help="the records folder (default: $CRONIUM_RECORDS_DIR, else [cronium] records_dir)",
    )
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.set_defaults(func=cmd_doctor)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    # An administrator's command beside ``airflow connections add``: connections and Variables are read
    # where Airflow keeps them, its metadata database included (Airflow's own server processes run so; a
    # process in neither context would see only environment variables and secrets backends).
    os.environ.setdefault("_AIRFLOW_PROCESS_CONTEXT", "server")
    args = build_parser().parse_args(argv)
    stream = out or sys.stdout
    try:
        result: int = args.func(args, stream)
    except configparser.Error as exc:  # Airflow's configuration files, read when a command first imports Airflow
        if args.func is cmd_doctor:
            return _doctor_cannot_run(args, stream, config_problem(exc), "mend airflow.cfg as the message says")
        stream.write(f"error: {config_problem(exc)}\n")
        return 2
    return result


def config_problem(exc: configparser.Error) -> str:
    """What is wrong with ``airflow.cfg`` and how to mend it. A section given twice is the usual case: Airflow
    writes a ``[cronium]`` section with every option commented out when it creates the file, and a second
    one appended below it makes every ``airflow`` command fail."""
    if isinstance(exc, configparser.DuplicateSectionError):
        where = f"{exc.source} line {exc.lineno}" if exc.source else f"line {exc.lineno}"
        first = ""
        if exc.source and Path(exc.source).is_file():
            lines = Path(exc.source).read_text(errors="replace").splitlines()
            heads = [n for n, line in enumerate(lines, 1) if line.strip() == f"[{exc.section}]"]
            if heads and heads[0] != exc.lineno:
                first = f" (line {heads[0]})"
        return (
            f"{where}: a second [{exc.section}] section; Airflow refuses a file that gives a section twice, and "
            f"every airflow command fails. Move its options into the first [{exc.section}] section{first}, where "
            f"Airflow lists each option commented out, and delete the second one"
        )
    return f"Airflow's configuration cannot be read: {exc}"


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
