"""Doctor checks against Airflow and the machine: the Docker daemon and runtime image, each connection the
records need (present, its type, its owner), server host keys, pools and the resilience store.

:func:`environment_findings` is called on each request of the web UI's Cronium view: every check is bounded
(Docker and Redis are given half a second a call, the whole Docker check 3 s) and none raises: a check that
errors is a finding.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cronium_provider.doctor.findings import Finding, Needs
from cronium_provider.settings import CroniumSettings
from cronium_provider.tools.catalogue import HTTP_TOOLS

TIMEOUT_SECONDS = 0.5  # per call to Docker or Redis
DOCKER_CHECK_SECONDS = 3.0  # the whole Docker check (an ssh:// daemon's own waits are paramiko's, 15 s and more)
SYSTEM_KNOWN_HOSTS = Path("/etc/ssh/ssh_known_hosts")


def _records(items: list[str], most: int = 3) -> str:
    shown = ", ".join(items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "")


def _hide_password(url: str, text: str) -> str:
    """``text`` with the password of ``url`` (``tcp://user:secret@host``) written ``***``: a finding is shown
    in the terminal, in --json and in the web UI."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = url.partition("://")[2].rpartition("@")[0] or None
    return text.replace(password, "***") if password else text


def _guarded(check: str, subject: str, run: Callable[[], list[Finding]], url: str = "") -> list[Finding]:
    """``run``'s findings; an exception it raises is itself a finding, never raised (its text without the
    password of ``url``, the setting checked)."""
    try:
        return run()
    except Exception as exc:
        return [
            Finding(
                check,
                "error",
                subject,
                f"could not be checked: {type(exc).__name__}: {_hide_password(url, str(exc))}",
                "see the message; run cronium-airflow doctor again once it is mended",
            )
        ]


def environment_findings(needs: Needs, settings: CroniumSettings, *, known_hosts: Path | None = None) -> list[Finding]:
    """Docker daemon, runtime image, each needed connection (present, type), server host keys, pools and the
    resilience store, as the running Airflow sees them. ``known_hosts``: the file the SSH hook reads besides
    the system's (default ``~/.ssh/known_hosts`` of this process's user)."""
    findings: list[Finding] = []
    if needs.container_records:
        docker = f"Docker daemon at {_hide_password(settings.docker_url, settings.docker_url)}"
        findings += _guarded("docker", docker, lambda: _docker_within(needs, settings), settings.docker_url)
    for conn_id in sorted(needs.tool_connections):
        entry = needs.tool_connections[conn_id]
        findings += _guarded("tool-connection", f"connection {conn_id}", partial(_tool_connection, conn_id, entry))
    for conn_id in sorted(needs.servers):
        entry = needs.servers[conn_id]
        findings += _guarded("server", f"connection {conn_id}", partial(_server, conn_id, entry, known_hosts))
    for pool in sorted(needs.pools):
        findings += _guarded("pool", f"pool {pool}", partial(_pool, pool, needs.pools[pool]))
    if needs.tool_connections:
        store = settings.resilience_store or ""
        findings += _guarded("resilience-store", "resilience store", lambda: _resilience_store(settings), store)
    return findings


# -- Docker --------------------------------------------------------------------------------------------
def _docker_within(needs: Needs, settings: CroniumSettings) -> list[Finding]:
    """:func:`_docker`, given at most ``DOCKER_CHECK_SECONDS``: a daemon that never answers is a finding then
    (the check goes on in a daemon thread, whose result is dropped)."""
    found: list[list[Finding]] = []
    failed: list[Exception] = []

    def run() -> None:
        try:
            found.append(_docker(needs, settings))
        except Exception as exc:
            failed.append(exc)

    worker = threading.Thread(target=run, name="cronium-doctor-docker", daemon=True)
    worker.start()
    worker.join(DOCKER_CHECK_SECONDS)
    if failed:
        raise failed[0]
    if found:
        return found[0]
    return [
        Finding(
            "docker",
            "error",
            f"Docker daemon at {_hide_password(settings.docker_url, settings.docker_url)}",
            f"did not answer within {DOCKER_CHECK_SECONDS:g} s; the scripts of {_records(needs.container_records)} "
            "run in containers and would fail",
            "start the Docker daemon, or set [cronium] docker_url to the URL of the daemon the workers use",
        )
    ]


def _docker(needs: Needs, settings: CroniumSettings) -> list[Finding]:
    from docker.client import DockerClient
    from docker.errors import ImageNotFound

    url = _hide_password(settings.docker_url, settings.docker_url)
    subject = f"Docker daemon at {url}"
    who = _records(needs.container_records)
    try:
        client = DockerClient(base_url=settings.docker_url, timeout=TIMEOUT_SECONDS)
        client.ping()
    except Exception as exc:
        return [
            Finding(
                "docker",
                "error",
                subject,
                f"cannot be reached ({type(exc).__name__}: {_hide_password(settings.docker_url, str(exc))}); the "
                f"scripts of {who} run in containers and "
                "would fail",
                "start the Docker daemon, or set [cronium] docker_url to the URL of the daemon the workers use",
            )
        ]
    findings: list[Finding] = []
    try:
        images: dict[str, list[str]] = {}
        options: dict[str, list[str]] = {}  # image -> the settings that name it
        for language, records in sorted(needs.container_languages.items()):
            image = settings.image_for(language)
            images.setdefault(image, []).extend(records)
            option = f"image_{language.lower()}" if getattr(settings, f"image_{language.lower()}", None) else "image"
            options.setdefault(image, []).append(option)
        if not images:  # needs from an older catalog: the default image
            images[settings.image] = list(needs.container_records)
        for image, records in sorted(images.items()):
            names = " and ".join(f"[cronium] {o}" for o in dict.fromkeys(options.get(image, ["image"])))
            try:
                client.images.get(image)
            except ImageNotFound:
                findings.append(
                    Finding(
                        "runtime-image",
                        "error",
                        f"runtime image {image}",
                        f"is not present on the Docker daemon at {url}; the scripts of "
                        f"{_records(records)} run in it and would fail",
                        f"cronium-airflow runtime-image build {image}, or set {names} to an image that is present",
                    )
                )
    finally:
        client.close()
    return findings


# -- connections ---------------------------------------------------------------------------------------
def _connection(conn_id: str) -> Any | None:
    """The connection as the operators get it (the metadata database, ``AIRFLOW_CONN_*``, secrets backends),
    None when it is defined nowhere."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def _unreadable(conn_id: str, check: str, used_by: str) -> Finding | None:
    """A connection Airflow finds nowhere although its ``AIRFLOW_CONN_*`` variable is set: the value is
    neither a connection URI nor JSON Airflow can read (it logs why and reads the connection as missing)."""
    variable = f"AIRFLOW_CONN_{conn_id.upper()}"
    if not os.environ.get(variable):
        return None
    return Finding(
        check,
        "error",
        f"connection {conn_id}",
        f"${variable} is set, but Airflow cannot read it as a connection, so it has none; {used_by}",
        f"write ${variable} as a connection URI (type://login:password@host:port) or as JSON "
        f'({{"conn_type": ..., "host": ...}}); `airflow connections get {conn_id}` shows what Airflow reads',
    )


def _add_command(conn_id: str, entry: dict[str, Any]) -> str:
    conn_type = entry.get("conn_type") or "slackwebhook|discord|smtp|http"
    extra = []
    if entry.get("tool") in HTTP_TOOLS:
        extra.append(f'"tool_type": "{entry["tool"]}"')
    owners = sorted({o for o in (entry.get("owners") or {}).values() if o})
    if len(owners) == 1:
        extra.append(f'"owner": "{owners[0]}"')
    command = f"airflow connections add {conn_id} --conn-type {conn_type} --conn-host ..."
    return command + (f" --conn-extra '{{{', '.join(extra)}}}'" if extra else "")


def _tool_connection(conn_id: str, entry: dict[str, Any]) -> list[Finding]:
    from cronium_provider.exceptions import ToolActionError
    from cronium_provider.tools.delivery import tool_owner, tool_type_of_connection

    subject = f"connection {conn_id}"
    records: list[str] = list(entry.get("records") or [])
    tool = entry.get("tool")
    conn = _connection(conn_id)
    unreadable = _unreadable(conn_id, "tool-connection", f"used by {_records(records)}") if conn is None else None
    if unreadable is not None:
        return [unreadable]
    if conn is None:
        return [
            Finding(
                "tool-connection",
                "error",
                subject,
                f"does not exist; the {tool or 'message'} tool of {_records(records)}: its actions would fail",
                _add_command(conn_id, entry),
            )
        ]
    try:
        kind = tool_type_of_connection(conn_id, conn)
    except ToolActionError as exc:
        message = f"{exc}; used by {_records(records)}"
        return [Finding("tool-connection", "error", subject, message, _retype(conn_id, entry))]
    if tool is not None and kind != tool:
        return [
            Finding(
                "tool-connection",
                "error",
                subject,
                f"is a {kind} tool (type {conn.conn_type}), but it is used as a {tool} tool by {_records(records)}",
                _retype(conn_id, entry),
            )
        ]
    findings: list[Finding] = []
    owner = tool_owner(conn)
    owners: dict[str, str | None] = dict(entry.get("owners") or {})
    others = sorted(r for r, o in owners.items() if owner is not None and o != owner)
    if others:
        findings.append(
            Finding(
                "tool-connection",
                "error",
                subject,
                f"belongs to owner {owner} (its extra owner); {_records(others)} of another owner may not use it",
                "give those records their owner's own tool, or set the connection's extra owner to the right userId",
            )
        )
    if owner is None and not entry.get("shared", True):
        findings.append(
            Finding(
                "tool-connection",
                "error",
                subject,
                "records no owner, and the records name several owners (variables are scoped by owner): "
                f"{_records(records)} may not use it",
                f'airflow connections edit {conn_id}: set its extra "owner" to the Cronium userId of the tool',
            )
        )
    return findings


def _retype(conn_id: str, entry: dict[str, Any]) -> str:
    return f"airflow connections delete {conn_id}, then {_add_command(conn_id, entry)}"


# -- servers -------------------------------------------------------------------------------------------
def _known_host(host: str, port: int, files: list[Path]) -> bool:
    import paramiko

    name = host if port == 22 else f"[{host}]:{port}"
    for path in files:
        if path.is_file():
            try:
                if paramiko.HostKeys(str(path)).lookup(name):
                    return True
            except OSError:
                continue
    return False


def _server(conn_id: str, entry: dict[str, Any], known_hosts: Path | None) -> list[Finding]:
    subject = f"connection {conn_id}"
    records = _records(list(entry.get("records") or []))
    server_id = entry.get("server_id")
    sync = "cronium-airflow servers sync RECORDS_DIR --known-hosts FILE"
    conn = _connection(conn_id)
    used_by = f"the SSH connection of server {server_id} (used by {records})"
    unreadable = _unreadable(conn_id, "server", used_by) if conn is None else None
    if unreadable is not None:
        return [unreadable]
    if conn is None:
        return [
            Finding(
                "server",
                "error",
                subject,
                f"does not exist: the SSH connection of server {server_id} (used by {records})",
                f"{sync} (creates it and the server's pool)",
            )
        ]
    if str(conn.conn_type or "").lower() != "ssh":
        return [
            Finding(
                "server",
                "error",
                subject,
                f"is a {conn.conn_type!r} connection, not SSH: server {server_id}'s runs ({records}) would fail",
                f"airflow connections delete {conn_id}, then {sync}",
            )
        ]
    extra = conn.extra_dejson
    if str(extra.get("no_host_key_check", "")).lower() == "true":
        return [
            Finding(
                "server",
                "warning",
                subject,
                "host key checking is off (no_host_key_check): anyone between the worker and "
                f"{conn.host} can pose as server {server_id}",
                f"{sync} with the server's host key in FILE (it drops no_host_key_check)",
            )
        ]
    if str(extra.get("host_key") or "").strip():
        return []
    host, port = str(conn.host or entry.get("host") or ""), int(conn.port or entry.get("port") or 22)
    files = [known_hosts or Path(os.path.expanduser("~/.ssh/known_hosts")), SYSTEM_KNOWN_HOSTS]
    if _known_host(host, port, files):
        return []
    return [
        Finding(
            "server",
            "error",
            subject,
            f"the host key of {host}:{port} is unknown: neither the connection's host_key nor "
            f"{' or '.join(str(f) for f in files)} has it, and the SSH hook refuses an unknown host ({records})",
            f"{sync} with FILE holding it (ssh-keyscan -p {port} {host} > FILE, after checking the key), or add it "
            "to the workers' ~/.ssh/known_hosts",
        )
    ]


# -- pools and the resilience store --------------------------------------------------------------------
def _pool(name: str, records: list[str]) -> list[Finding]:
    from airflow.models.pool import Pool

    pool = Pool.get_pool(name)
    if pool is None:
        return [
            Finding(
                "pool",
                "error",
                f"pool {name}",
                f"does not exist: the tasks of {_records(records)} that run on its server would never start",
                f"cronium-airflow servers sync RECORDS_DIR (or airflow pools set {name} 5 'Cronium server')",
            )
        ]
    if (pool.slots or 0) <= 0 and pool.slots != -1:
        return [
            Finding(
                "pool",
                "error",
                f"pool {name}",
                f"has {pool.slots} slots: the tasks of {_records(records)} that run on its server would never start",
                f"airflow pools set {name} 5 'Cronium server' (or cronium-airflow servers sync RECORDS_DIR "
                "--pool-size 5)",
            )
        ]
    return []


def _resilience_store(settings: CroniumSettings) -> list[Finding]:
    url = (settings.resilience_store or "").strip()
    fix = "set [cronium] resilience_store to a reachable redis:// URL or a sqlite://// file the workers can write"
    if url.startswith(("redis://", "rediss://", "unix://")):
        import redis

        client = redis.Redis.from_url(url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS)
        # the URL's own ?socket_timeout= would win over the keywords: the check stays bounded all the same
        client.connection_pool.connection_kwargs.update(
            socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
        )
        try:
            client.ping()
        except redis.RedisError as exc:
            kwargs = client.connection_pool.connection_kwargs
            where = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"
            return [
                Finding(
                    "resilience-store",
                    "error",
                    "resilience store",
                    f"Redis at {where} ([cronium] resilience_store) cannot be reached ({type(exc).__name__}): no "
                    "tool action is sent without its rate limits and circuit breakers",
                    f"start Redis at {where}, or {fix}",
                )
            ]
        finally:
            client.close()
        return []
    from cronium_provider.resilience.store import default_sqlite_path

    if url.startswith("sqlite://") and url[len("sqlite://") :] not in ("", "/"):
        path = Path(url[len("sqlite:///") :])
    elif not url or url.startswith("sqlite://"):
        path = default_sqlite_path()
    else:
        return [
            Finding(
                "resilience-store",
                "error",
                "resilience store",
                f"[cronium] resilience_store {url.split('://', 1)[0]!r} is no sqlite:// or redis:// URL",
                fix,
            )
        ]
    folder = next((p for p in [path.parent, *path.parent.parents] if p.exists()), Path("/"))
    usable = os.access(path, os.R_OK | os.W_OK) if path.exists() else os.access(folder, os.W_OK | os.X_OK)
    if usable:
        return []
    return [
        Finding(
            "resilience-store",
            "error",
            "resilience store",
            f"the SQLite file {path} cannot be written by this user: tool actions would fail",
            f"give the user Airflow runs as write access to {folder}, or {fix}",
        )
    ]
