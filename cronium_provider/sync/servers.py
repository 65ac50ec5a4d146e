"""``cronium-airflow servers sync``: Cronium server records -> Airflow SSH connections and pools.

Names come from :mod:`cronium_provider.naming`; credentials come from files or the record, and are never
written back to a record, printed, or logged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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


def connection_fields(server: Server, creds: ServerCredentials, source: str) -> tuple[dict[str, object], list[str]]:
    """The connection's fields and the notes for the user (which never contain a secret)."""
    notes: list[str] = []
    extra: dict[str, object] = {}
    password: str | None = None
    if server.id in creds.key_files:
        extra["private_key"] = creds.key_files[server.id].read_text()
    elif server.ssh_key is not None and server.ssh_key.get_secret_value().strip():
        extra["private_key"] = server.ssh_key.get_secret_value()
        notes.append(f"the SSH key came from {source}: remove sshKey from that record now that it is in Airflow")
    if server.id in creds.password_files:
        password = creds.password_files[server.id].read_text().strip()
    elif server.password is not None and server.password.get_secret_value():
        password = server.password.get_secret_value()
        notes.append(f"the password came from {source}: remove password from that record")
    if "private_key" not in extra and password is None:
        notes.append("no key or password given: the connection relies on the worker's own SSH keys")
    if server.id in creds.skip_host_key_check:
        extra["no_host_key_check"] = "true"
        notes.append("host key checking is OFF for this server (explicit opt-in)")
    elif creds.known_hosts is not None:
        host_key = host_key_from_known_hosts(creds.known_hosts, server.address, server.port)
        if host_key:
            extra["host_key"] = host_key
        else:
            notes.append(f"{server.address} is not in {creds.known_hosts}: the worker's known_hosts must have it")
    extra["look_for_keys"] = "false" if ("private_key" in extra or password) else "true"
    fields: dict[str, object] = {
        "conn_type": "ssh",
        "host": server.address,
        "port": server.port,
        "login": server.username,
        "password": password,
        "extra": json.dumps(extra),
        "description": f"Cronium server {server.id} ({server.name})",
    }
    return fields, notes


def sync_servers(
    records: RecordSet, creds: ServerCredentials, pool_slots: int = DEFAULT_POOL_SLOTS
) -> tuple[list[str], list[RecordError]]:
    """Create or update an SSH connection and a pool per server; returns one report line per action, and
    the servers refused: a connection of another type (``smtp``, ``cronium``, a tool's) is never changed."""
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
            fields, notes = connection_fields(server, creds, source)
            if existing is None:
                session.add(Connection(conn_id=conn_id, **fields))  # type: ignore[arg-type]
                verb = "created"
            else:
                for name, value in fields.items():
                    setattr(existing, name, value)
                verb = "updated"
            synced.append(server)
            lines.append(f"server {server_id} ({server.name}): connection {conn_id} {verb}")
            lines.extend(f"server {server_id}: note: {note}" for note in notes)
        session.commit()
    for server in synced:
        pool = server_pool(server.id)
        Pool.create_or_update_pool(
            name=pool,
            slots=pool_slots,
            description=f"At most {pool_slots} Cronium runs at once on {server.name}",
            include_deferred=False,
        )
        lines.append(f"server {server.id}: pool {pool} with {pool_slots} slot(s)")
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
