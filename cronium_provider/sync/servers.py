"""``cronium-airflow servers sync``: Cronium server records -> Airflow SSH connections and pools.

Names come from :mod:`cronium_provider.naming`; credentials come from files or the record, and are never
written back to a record, printed, or logged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cronium_provider.naming import server_conn_id, server_pool
from cronium_provider.records.errors import RecordError
from cronium_provider.records.models import Server
from cronium_provider.records.validation import RecordSet

DEFAULT_POOL_SLOTS = 5  # Cronium's connection pool size: runs at once per server


def host_key_from_known_hosts(known_hosts: Path, address: str, port: int) -> str | None:
    """``<type> <base64>`` for the host in an OpenSSH known_hosts file (plain host names only)."""
    wanted = {address} if port == 22 else {f"[{address}]:{port}"}
    for line in known_hosts.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and not line.startswith("#") and set(parts[0].split(",")) & wanted:
            return f"{parts[1]} {parts[2]}"
    return None


@dataclass(frozen=True)
class ServerCredentials:
    """Where the secrets for the servers come from, by server id."""

    key_files: Mapping[int, Path]
    password_files: Mapping[int, Path]
    known_hosts: Path | None = None
    skip_host_key_check: frozenset[int] = frozenset()


@dataclass(frozen=True)
class StoredConnection:
    """What an existing SSH connection holds: a sync keeps what it is not told to change."""

    host: str | None = None
    port: int | None = None
    login: str | None = None
    password: str | None = None
    extra: Mapping[str, object] = field(default_factory=dict)


_FIELDS = ("host", "port", "username", "key", "password", "host key")  # what an update names


def moved_from(server: Server, stored: StoredConnection | None) -> str | None:
    """``host:port`` the stored connection points at when the record names another host or port (what it
    holds for that host must not follow the record elsewhere), else None."""
    if stored is None or not stored.host or (stored.host, stored.port or 22) == (server.address, server.port):
        return None
    return f"{stored.host}:{stored.port or 22}"


def connection_fields(
    server: Server, creds: ServerCredentials, source: str, stored: StoredConnection | None = None
) -> tuple[dict[str, object], list[str], list[str], list[str]]:
    """The connection's fields, the notes for the user (which never contain a secret), and the names of
    what changed and of what was kept from ``stored``: the key, password and host key settings a sync is
    not given (by an option or the record) stay as they are, and so do the connection's other extras."""
    notes: list[str] = []
    kept: list[str] = []
    old = stored or StoredConnection()
    extra: dict[str, object] = dict(old.extra)
    password = old.password
    given_credential = False
    key = creds.key_files[server.id].read_text() if server.id in creds.key_files else None
    if key is None and server.ssh_key is not None and server.ssh_key.get_secret_value().strip():
        key = server.ssh_key.get_secret_value()
        notes.append(f"the SSH key came from {source}: remove sshKey from that record now that it is in Airflow")
    if key is not None:
        extra["private_key"] = key
        extra.pop("key_file", None)  # the SSH hook takes one of private_key and key_file
        given_credential = True
    elif extra.get("private_key") or extra.get("key_file"):
        kept.append("key")
    if server.id in creds.password_files:
        password = creds.password_files[server.id].read_text().strip()
        given_credential = True
    elif server.password is not None and server.password.get_secret_value():
        password = server.password.get_secret_value()
        notes.append(f"the password came from {source}: remove password from that record")
        given_credential = True
    elif password:
        kept.append("password")
    has_credential = bool(extra.get("private_key") or extra.get("key_file") or password)
    if not has_credential:
        notes.append("no key or password given: the connection relies on the worker's own SSH keys")
    checks_off = str(extra.get("no_host_key_check", "")).lower() == "true"
    host_key = host_key_from_known_hosts(creds.known_hosts, server.address, server.port) if creds.known_hosts else None
    moved = moved_from(server, stored)
    if moved and (extra.get("host_key") or checks_off) and not host_key and server.id not in creds.skip_host_key_check:
        # a host key (or the opt-out) stored for another host never vouches for this one
        dropped = "the stored host key" if extra.pop("host_key", None) else "host key checking OFF"
        extra.pop("no_host_key_check", None)
        checks_off = False
        notes.append(f"{dropped} was for {moved}, not {server.address}:{server.port}: dropped")
    if server.id in creds.skip_host_key_check:
        extra["no_host_key_check"] = "true"
        extra.pop("host_key", None)  # the SSH hook refuses a host key it is told not to check
        notes.append("host key checking is OFF for this server (explicit opt-in)")
    elif creds.known_hosts is not None:
        if host_key:
            extra["host_key"] = host_key
            extra.pop("no_host_key_check", None)
        elif extra.get("host_key") and not checks_off:
            kept.append("host key")
            notes.append(f"{server.address} is not in {creds.known_hosts}: the stored host key is kept")
        else:
            notes.append(f"{server.address} is not in {creds.known_hosts}: the worker's known_hosts must have it")
    elif checks_off:
        kept.append("host key check OFF")
        notes.append("host key checking is OFF for this server (kept from the connection)")
    elif extra.get("host_key"):
        kept.append("host key")
    if given_credential:
        extra["look_for_keys"] = "false"
    else:
        extra.setdefault("look_for_keys", "false" if has_credential else "true")
    fields: dict[str, object] = {
        "conn_type": "ssh",
        "host": server.address,
        "port": server.port,
        "login": server.username,
        "password": password,
        "extra": json.dumps(extra),
        "description": f"Cronium server {server.id} ({server.name})",
    }
    before = (old.host, old.port, old.login, old.extra.get("private_key"), old.password, old.extra.get("host_key"))
    after = (server.address, server.port, server.username, extra.get("private_key"), password, extra.get("host_key"))
    changed = [name for name, was, now in zip(_FIELDS, before, after, strict=True) if was != now]
    if old.extra.get("no_host_key_check") != extra.get("no_host_key_check"):
        changed.append("host key check")
    return fields, notes, changed, kept


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def sync_servers(
    records: RecordSet, creds: ServerCredentials, pool_slots: int | None = None
) -> tuple[list[str], list[RecordError]]:
    """Create or update an SSH connection and a pool per server; returns one report line per action, and
    the servers refused: a connection of another type (``smtp``, ``cronium``, a tool's) is never changed.

    An existing connection keeps the key, password and host key settings it is not given, and an existing
    pool keeps its slots unless ``pool_slots`` is given (a new pool gets :data:`DEFAULT_POOL_SLOTS`)."""
    from airflow.models import Connection
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session

    lines: list[str] = []
    errors: list[RecordError] = []
    synced: list[Server] = []
    with create_session() as session:
        for server_id in sorted(records.servers):
            server = records.servers[server_id]
            source = records.origin("server", server_id)
            conn_id = server_conn_id(server.id, server.connection_id)
            existing = session.query(Connection).filter(Connection.conn_id == conn_id).one_or_none()
            if existing is not None and existing.conn_type != "ssh":
                errors.append(
                    RecordError(
                        source,
                        f"the Airflow connection {conn_id} is a {existing.conn_type!r} connection, not an SSH "
                        "connection: left unchanged, and this server is not synced",
                        "server",
                        server_id,
                        "connectionId" if server.connection_id else None,
                    )
                )
                continue
            stored = None
            if existing is not None:
                stored = StoredConnection(
                    existing.host, existing.port, existing.login, existing.password, existing.extra_dejson
                )
            fields, notes, changed, kept = connection_fields(server, creds, source, stored)
            stale = [name for name in ("key", "password") if name in kept]
            if (moved := moved_from(server, stored)) and stale:
                errors.append(
                    RecordError(
                        source,
                        f"the record moves it from {moved} to {server.address}:{server.port}, and the connection "
                        f"{conn_id} holds a {' and '.join(stale)} for {moved} that this sync is not given: left "
                        f"unchanged (nothing stored for {moved} goes to {server.address}); give them again "
                        "(--key-file, --password-file or the record) or delete the connection (airflow "
                        f"connections delete {conn_id}) and sync again",
                        "server",
                        server_id,
                        "port" if stored is not None and stored.host == server.address else "address",
                    )
                )
                continue
            if existing is None:
                session.add(Connection(conn_id=conn_id, **fields))  # type: ignore[arg-type]
                line = f"connection {conn_id} created"
            else:
                for name, value in fields.items():
                    setattr(existing, name, value)
                line = f"connection {conn_id} " + (f"updated ({', '.join(changed)})" if changed else "unchanged")
                if kept:
                    line += f"; {_and(kept)} kept"
            synced.append(server)
            lines.append(f"server {server_id} ({server.name}): {line}")
            lines.extend(f"server {server_id}: note: {note}" for note in notes)
        session.commit()
    for server in synced:
        pool = server_pool(server.id)
        current = Pool.get_pool(pool) if pool_slots is None else None
        if current is not None:
            lines.append(f"server {server.id}: pool {pool} kept with {current.slots} slot(s) (--pool-size sets it)")
            continue
        slots = DEFAULT_POOL_SLOTS if pool_slots is None else pool_slots
        Pool.create_or_update_pool(
            name=pool,
            slots=slots,
            description=f"At most {slots} Cronium runs at once on {server.name}",
            include_deferred=False,
        )
        lines.append(f"server {server.id}: pool {pool} with {slots} slot(s)")
    return lines, errors


def parse_id_paths(items: Iterable[str], option: str) -> dict[int, Path]:
    """``ID=PATH`` pairs from the command line."""
    found: dict[int, Path] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isdigit():
            raise ValueError(f"{option} takes SERVER_ID=PATH, got {item!r}")
        path = Path(value)
        if not path.is_file():
            raise ValueError(f"{option} {item}: no such file")
        found[int(key)] = path
    return found
