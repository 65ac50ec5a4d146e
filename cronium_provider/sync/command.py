"""``cronium-airflow sync`` itself: runs fetch, transform and store in order, reports each step, redacts errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO
from urllib.parse import urlsplit, urlunsplit

from cronium_provider.exceptions import SyncFailed
from cronium_provider.naming import CRONIUM_DEFAULT_CONN_ID
from cronium_provider.records.source import SYNC_FILE, SYNC_SUBDIR, is_sync_file, read_records
from cronium_provider.records.validation import RecordSet
from cronium_provider.sync.store import store_env_values, store_servers, write_atomically
from cronium_provider.sync.transform import DocumentMismatch, check_document, prepare, render_document

if TYPE_CHECKING:
    from cronium_provider.hooks.cronium import CroniumHook


EXIT_OK = 0
EXIT_PARTIAL = 1  # the file was written, but some records were invalid and left out
EXIT_FAILED = 2  # nothing was changed


@dataclass
class FolderView:
    """The records folder as the DAG processor will read it after the sync."""

    problems: list[str] = field(default_factory=list)  # errors naming the sync file or a workflow file
    warnings: list[str] = field(default_factory=list)  # warnings naming them (nothing left out)
    workflow_files: list[str] = field(default_factory=list)  # files other than the sync file holding workflows
    workflows_in_files: int = 0


def _read_folder(records_dir: Path, target: Path) -> FolderView:
    """What the DAG processor will report about the written file next to the folder's other record files (a
    record defined both here and in a hand-written file, a downloaded workflow whose nested event differs
    from the synced one), and which other files hold workflows."""
    from cronium_provider.records.source import read_records
    from cronium_provider.records.validation import validate_records

    view = FolderView()
    try:
        raws, errors = read_records([records_dir])
        loaded = validate_records(raws, errors)
    except Exception as exc:  # a warning only: the sync itself is done
        view.problems.append(f"could not re-read {records_dir}: {type(exc).__name__}")
        return view
    sync_file = str(target)
    workflows = [raw for raw in raws if raw.kind == "workflow" and raw.path != sync_file]
    view.workflow_files = sorted({raw.path for raw in workflows})
    view.workflows_in_files = len(workflows)
    watched = [sync_file, *view.workflow_files]
    view.problems = [str(error) for error in loaded.errors if any(path in str(error) for path in watched)]
    view.warnings = [str(warning) for warning in loaded.warnings if any(path in str(warning) for path in watched)]
    return view


def _workflows_line(missing: str, records_dir: Path, view: FolderView) -> str:
    """The one line that says where workflows come from when the Cronium serves none over its REST API."""
    have = _count(len(view.workflow_files), "workflow file")
    if view.workflow_files:
        have += f" ({_count(view.workflows_in_files, 'workflow')}), left as they are"
    return (
        f"workflows: not synced: this Cronium has no REST route for them ({missing}), it serves them to its "
        f"web app only; put each workflow into {records_dir} as its own file, as Cronium's workflow download "
        f"writes it (tRPC workflows.download, see the CLI page of the docs, docs/cli.md); {records_dir} has {have}"
    )


def _previous_workflows(target: Path) -> int:
    """How many workflows the sync file holds now (a sync from a Cronium that still served them)."""
    try:
        workflows = json.loads(target.read_text(encoding="utf-8")).get("workflows")
    except (OSError, ValueError, AttributeError):
        return 0
    return len(workflows) if isinstance(workflows, list) else 0


def _server_secrets(servers: RecordSet) -> list[str]:
    return [
        secret.get_secret_value()
        for server in servers.servers.values()
        for secret in (server.ssh_key, server.password)
        if secret is not None
    ]


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def run_sync(
    records_dir: Path,
    conn_id: str = CRONIUM_DEFAULT_CONN_ID,
    timeout: float = 30.0,
    with_workflows: bool = True,
    known_hosts: Path | None = None,
    out: TextIO | None = None,
    hook_factory: Callable[..., CroniumHook] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """The whole sync; returns the exit code (0 ok, 1 written with records left out, 2 nothing changed).
    ``progress`` is told ``(done, total)`` of the records fetched (a progress display)."""
    stream = out or sys.stdout

    def say(line: str) -> None:
        stream.write(line + "\n")

    target = Path(records_dir) / SYNC_SUBDIR / SYNC_FILE
    try:
        if hook_factory is None:
            from cronium_provider.hooks.cronium import CroniumHook

            hook_factory = CroniumHook
        hook = hook_factory(conn_id, timeout=timeout)
        snapshot = hook.fetch_snapshot(with_workflows=with_workflows, progress=progress)
    except Exception as exc:
        hint = ""
        if getattr(exc, "status", None) in (401, 403):
            hint = f"; check the API token (the password of the Airflow connection {conn_id})"
        say(f"error: sync from Cronium (connection {conn_id}) failed: {_describe(exc)}{hint}")
        say(f"nothing changed: {target} and the Airflow Variables are as they were")
        return EXIT_FAILED
    say(
        f"fetched {_count(len(snapshot.events), 'event')}, {_count(len(snapshot.workflows), 'workflow')} and "
        f"{_count(len(snapshot.servers), 'server')} from {_safe_url(snapshot.base_url) or conn_id} "
        f"({_count(snapshot.detail_calls, 'detail request')})"
    )

    try:
        prepared = prepare(snapshot)
        text = render_document(prepared.document)
    except Exception as exc:  # not expected: validation reports problems instead of raising
        say(f"error: sync failed while checking the records: {type(exc).__name__}")
        say(f"nothing changed: {target} and the Airflow Variables are as they were")
        return EXIT_FAILED
    records = prepared.records
    for error in records.errors:
        say(f"left out: {error}")
    for note in prepared.notes:
        say(f"note: {note}")
    try:
        try:
            check_document(text, records)
        except DocumentMismatch as exc:
            raise SyncFailed(str(exc)) from exc
        moved = store_env_values(prepared.env_values, prepared.legacy_env_keys)
        for name in sorted(prepared.env_values):
            say(f"set Variable {name}")
        for name in moved:
            say(f"deleted Variable {name}: env var values now live outside the cronium_ variables scripts read")
        api_servers = prepared.servers_with_credentials
        own = _own_servers(Path(records_dir), sorted(api_servers.servers))
        for server_id, path in sorted(own.items()):
            say(
                f"note: server {server_id} is defined in {path}, a record file of your own: the Cronium API's "
                f"server {server_id} is not synced, and its connection is left as it is"
            )
        api_servers = replace(api_servers, servers={k: v for k, v in api_servers.servers.items() if k not in own})
        server_lines, server_errors = store_servers(api_servers, known_hosts) if api_servers.servers else ([], [])
        for line in server_lines:
            say(line)
        for error in server_errors:
            say(f"error: {error}")
        dropped = _previous_workflows(target) if snapshot.workflows_missing else 0
        changed = write_atomically(target, text)
    except Exception as exc:
        secrets = [*prepared.env_values.values(), *_server_secrets(prepared.servers_with_credentials)]
        say(f"error: sync failed: {_describe(exc, secrets)}")
        say(f"{target} is as it was")
        return EXIT_FAILED
    counts = (
        f"{_count(len(records.events), 'event')}, {_count(len(records.workflows), 'workflow')}, "
        f"{_count(len(records.servers), 'server')}"
    )
    say(f"{'wrote' if changed else 'unchanged'} {target}: {counts}")
    view = _read_folder(Path(records_dir), target)
    if snapshot.workflows_missing:
        say(_workflows_line(snapshot.workflows_missing, Path(records_dir), view))
        if dropped:
            say(
                f"note: {target} held {_count(dropped, 'workflow')} from an earlier sync; it holds what the API "
                "serves, so they are no longer in it"
            )
    for problem in view.problems:
        say(f"error: {problem} (the DAG processor leaves it out, as validate says)")
    for warning in view.warnings:
        say(f"warning: {warning}")
    say(
        f"synced: {counts}; {_count(len(records.errors), 'problem')} (records left out); "
        f"{_count(len(prepared.env_values), 'Variable')} set; "
        f"{_count(len(prepared.servers_with_credentials.servers) - len(server_errors), 'SSH connection')} updated"
    )
    return EXIT_OK if records.ok and not server_errors else EXIT_PARTIAL


def _own_servers(records_dir: Path, server_ids: list[int]) -> dict[int, str]:
    """Which of ``server_ids`` a record file of a person's own in ``records_dir`` defines, and where: those
    are the person's, and win over the API's copy (:func:`~cronium_provider.records.validation.validate_records`)."""
    if not server_ids or not records_dir.is_dir():
        return {}
    raws, _ = read_records([records_dir])
    own: dict[int, str] = {}
    for raw in raws:
        record_id = raw.data.get("id")
        if raw.kind == "server" and record_id in server_ids and not raw.nested and not is_sync_file(raw.path):
            own.setdefault(record_id, raw.path)
    return own


def _describe(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """
    One line for the user: the hook's errors say which request failed and why.

    A database error shows its driver's message only (SQLAlchemy's text would carry the statement's
    parameters), and any secret value that still shows up is replaced by ``***``.
    """
    orig = getattr(exc, "orig", None)
    text = str(orig) if orig is not None else str(exc)
    for marker in ("[SQL:", "[parameters:", "(Background on this error"):
        text = text.split(marker, 1)[0]
    text = " ".join(text.split()) or type(exc).__name__
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    text = f"{type(exc).__name__}: {text}" if orig is not None else text
    return text if len(text) <= 400 else text[:400] + "..."


def _safe_url(url: str) -> str:
    """The base URL without any user:password part."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
