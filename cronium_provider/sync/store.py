"""Where a sync writes: Airflow Variables (one transaction), SSH connections and pools, and the record file.

Airflow is imported only when a function that writes to its database is called.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from cronium_provider.naming import server_conn_id
from cronium_provider.records.errors import RecordError
from cronium_provider.records.validation import RecordSet
from cronium_provider.sync.servers import ServerCredentials, sync_servers


def write_atomically(path: Path, text: str) -> bool:
    """Replace ``path`` with ``text`` through a hidden temporary file and a rename; False when unchanged."""
    data = text.encode("utf-8")
    if path.is_file() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    # hidden and not ending in .json: a folder scan skips it even if a crash leaves it behind
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return True


def store_env_values(values: dict[str, str], legacy_keys: Iterable[str] = ()) -> list[str]:
    """Set every Variable in one transaction (all of them, or none) and delete the ``legacy_keys`` (env var
    values kept by older versions inside the variables' namespace, where scripts could read them); returns
    the legacy keys deleted."""
    from airflow.models import Variable
    from airflow.utils.session import create_session

    deleted: list[str] = []
    with create_session() as session:
        for key in sorted(values):
            Variable.set(key, values[key], description="Cronium env var (cronium-airflow sync)", session=session)
        for key in sorted(set(legacy_keys)):
            if session.query(Variable).filter(Variable.key == key).delete():
                deleted.append(key)
    return deleted


def store_servers(servers: RecordSet, known_hosts: Path | None) -> tuple[list[str], list[RecordError]]:
    """SSH connections and pools for the servers; the credentials go there and nowhere else. Returns the
    report lines and the servers refused (their connection id names a connection of another type)."""
    creds = ServerCredentials(key_files={}, password_files={}, known_hosts=known_hosts)
    lines: list[str] = []
    synced, errors = sync_servers(servers, creds)
    for line in synced:
        # the generic "remove it from that record" advice does not apply: the API is the source
        if "came from the Cronium API" in line:
            continue
        lines.append(line)
    refused = {error.record_id for error in errors}
    for server_id in sorted(servers.servers):
        server = servers.servers[server_id]
        stored = [
            name
            for name, secret in (("SSH key", server.ssh_key), ("password", server.password))
            if secret is not None and secret.get_secret_value().strip()
        ]
        if stored and server_id not in refused:
            lines.append(
                f"server {server_id}: {' and '.join(stored)} stored in connection "
                f"{server_conn_id(server.id, server.connection_id)} (never written to a record file)"
            )
    return lines, errors
