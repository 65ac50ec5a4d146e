"""``cronium-airflow servers sync`` run again over connections and pools that already exist: what the record
says (host, port, username) is updated, what a person set and the sync was not given is kept.

The connections and pools are made as a person makes them, with ``airflow connections add`` and ``airflow
pools set``, in the session's Airflow database; the command is the installed console script."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import airflow_env, venv_bin

# a made-up key and host key: the sync only stores them (tests/test_remote_events.py uses them over SSH)
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAAperson-key\n-----END OPENSSH PRIVATE KEY-----\n"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPersonsHostKeyPersonsHostKeyPersonsHostKe"

pytestmark = pytest.mark.airflow


def airflow(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([venv_bin("airflow"), *args], env=airflow_env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def servers_sync(records: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv_bin("cronium-airflow"), "servers", "sync", str(records), *options],
        env=airflow_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )


def connection(conn_id: str) -> dict[str, Any] | None:
    from airflow.models import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        conn = session.query(Connection).filter(Connection.conn_id == conn_id).one_or_none()
        if conn is None:
            return None
        return {
            "host": conn.host,
            "port": conn.port,
            "login": conn.login,
            "password": conn.password,
            "extra": conn.extra_dejson,
        }


def pool_slots(name: str) -> int | None:
    from airflow.models.pool import Pool

    pool = Pool.get_pool(name)
    return None if pool is None else pool.slots


@pytest.fixture
def records(tmp_path: Path, airflow_db: Path) -> Path:
    folder = tmp_path / "records"
    folder.mkdir()
    return folder


@pytest.fixture
def fresh_ids() -> Any:
    """Server ids whose connection and pool this test makes and removes."""
    ids: list[int] = []
    yield ids
    for server_id in ids:
        name = f"cronium_server_{server_id}"
        subprocess.run([venv_bin("airflow"), "connections", "delete", name], env=airflow_env(), capture_output=True)
        subprocess.run([venv_bin("airflow"), "pools", "delete", name], env=airflow_env(), capture_output=True)


def write_server(records: Path, server_id: int, **fields: Any) -> None:
    record = {"id": server_id, "name": f"box-{server_id}", "address": "127.0.0.1", "port": 2200, "username": "app"}
    (records / f"server-{server_id}.json").write_text(json.dumps({"kind": "server", **record, **fields}))


def test_a_second_sync_keeps_what_a_person_set(records: Path, fresh_ids: list[int]) -> None:
    """A connection a person made with ``airflow connections add`` (key, password, host key, an extra of their
    own) and a pool they resized with ``airflow pools set``: a sync with no option changes the username the
    record gives, and keeps the rest (the host and port stay), saying so."""
    fresh_ids.append(931)
    conn_id = "cronium_server_931"
    extra = {"private_key": KEY, "host_key": HOST_KEY, "look_for_keys": "false", "conn_timeout": "20"}
    airflow(
        *("connections", "add", conn_id, "--conn-type", "ssh", "--conn-host", "127.0.0.1", "--conn-port", "2231"),
        *("--conn-login", "person", "--conn-password", "person-pw-31", "--conn-extra", json.dumps(extra)),
    )
    airflow("pools", "set", conn_id, "9", "sized by a person")
    write_server(records, 931, address="127.0.0.1", port=2231)

    proc = servers_sync(records)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert f"server 931 (box-931): connection {conn_id} updated (username); key, password and host key kept" in output
    assert f"server 931: pool {conn_id} kept with 9 slot(s)" in output
    assert connection(conn_id) == {
        "host": "127.0.0.1",
        "port": 2231,
        "login": "app",
        "password": "person-pw-31",
        "extra": extra,
    }
    assert pool_slots(conn_id) == 9
    for secret in ("person-pw-31", "person-key", "PRIVATE KEY"):
        assert secret not in output

    resized = servers_sync(records, "--pool-size", "4")  # only an explicit --pool-size changes the pool
    assert resized.returncode == 0, resized.stdout + resized.stderr
    assert f"server 931: pool {conn_id} with 4 slot(s)" in resized.stdout
    assert pool_slots(conn_id) == 4
    assert f"connection {conn_id} unchanged; key, password and host key kept" in resized.stdout


def test_a_sync_without_options_keeps_what_an_earlier_sync_was_given(
    records: Path, tmp_path: Path, fresh_ids: list[int]
) -> None:
    """The first sync is given the key, a password and the known_hosts file; the second, after the record's
    username changed, is given none of them: the connection keeps them, and a new pool gets Cronium's 5."""
    fresh_ids.append(932)
    conn_id = "cronium_server_932"
    key_file, password_file, known_hosts = tmp_path / "key", tmp_path / "password", tmp_path / "known_hosts"
    key_file.write_text(KEY)
    password_file.write_text("first-pw-32\n")
    known_hosts.write_text(f"[127.0.0.2]:2232 {HOST_KEY}\n[127.0.0.3]:2232 {HOST_KEY}\n")
    write_server(records, 932, address="127.0.0.2", port=2232)
    given = ("--key-file", f"932={key_file}", "--password-file", f"932={password_file}")
    first = servers_sync(records, *given, "--known-hosts", str(known_hosts))
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"connection {conn_id} created" in first.stdout and f"pool {conn_id} with 5 slot(s)" in first.stdout
    made = connection(conn_id)
    assert made is not None and made["extra"]["host_key"] == HOST_KEY and made["extra"]["private_key"] == KEY

    write_server(records, 932, address="127.0.0.2", port=2232, username="deploy")
    second = servers_sync(records)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"connection {conn_id} updated (username); key, password and host key kept" in second.stdout
    assert connection(conn_id) == {**made, "login": "deploy"}
    assert pool_slots(conn_id) == 5

    # what the sync is given still replaces what is stored
    other_key = tmp_path / "other-key"
    other_key.write_text(KEY.replace("person-key", "other-key"))
    third = servers_sync(records, "--key-file", f"932={other_key}", "--no-host-key-check", "932")
    assert third.returncode == 0, third.stdout + third.stderr
    assert f"connection {conn_id} updated (key, host key, host key check); password kept" in third.stdout
    stored = connection(conn_id)
    assert stored is not None and stored["password"] == "first-pw-32"
    assert stored["extra"]["private_key"] == other_key.read_text() and "host_key" not in stored["extra"]
    assert stored["extra"]["no_host_key_check"] == "true"


@pytest.mark.parametrize("option", ["--key-file", "--password-file", "--no-host-key-check"])
def test_an_option_naming_no_server_record_is_an_error(
    records: Path, tmp_path: Path, fresh_ids: list[int], option: str
) -> None:
    """A typo in ``ID=PATH`` (or ``--no-host-key-check ID``) would leave the server it meant without its key,
    password or opt-out: the command names the option and the id, exits 2 and changes nothing."""
    fresh_ids.append(933)
    write_server(records, 933)
    secret = tmp_path / "secret"
    secret.write_text(KEY)
    value = "39" if option == "--no-host-key-check" else f"39={secret}"
    proc = servers_sync(records, option, value)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert f"error: {option} 39: no server record has id 39" in output
    assert connection("cronium_server_933") is None and pool_slots("cronium_server_933") is None


def test_a_record_moving_to_another_host_never_takes_the_stored_credentials_there(
    records: Path, tmp_path: Path, fresh_ids: list[int]
) -> None:
    """A record is input from outside (an export, the API): one that names another host must not make the sync
    send the key and password stored for the old host to it. The server is refused, naming the file, the
    record, the field and both hosts, and the connection is left as it was; given the credentials again,
    the sync moves it, and drops the host key stored for the old host."""
    fresh_ids.append(934)
    conn_id = "cronium_server_934"
    extra = {"private_key": KEY, "host_key": HOST_KEY, "look_for_keys": "false"}
    airflow(
        *("connections", "add", conn_id, "--conn-type", "ssh", "--conn-host", "10.0.0.34", "--conn-port", "22"),
        *("--conn-login", "app", "--conn-password", "person-pw-34", "--conn-extra", json.dumps(extra)),
    )
    made = connection(conn_id)
    write_server(records, 934, address="127.0.0.1", port=2234)

    proc = servers_sync(records)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    path = records / "server-934.json"
    assert (
        f"error: {path}: server 934: field address: the record moves it from 10.0.0.34:22 to 127.0.0.1:2234, and "
        f"the connection {conn_id} holds a key and password for 10.0.0.34:22 that this sync is not given: "
        "left unchanged"
    ) in output
    assert connection(conn_id) == made
    for secret in ("person-pw-34", "person-key", "PRIVATE KEY"):
        assert secret not in output

    # only the port changes: the same refusal, naming the port
    write_server(records, 934, address="10.0.0.34", port=2234)
    port_only = servers_sync(records)
    assert port_only.returncode == 1, port_only.stdout
    assert (
        f"{path}: server 934: field port: the record moves it from 10.0.0.34:22 to 10.0.0.34:2234" in port_only.stdout
    )
    assert connection(conn_id) == made

    # the operator gives the credentials for the new host: the connection moves, the old host key does not
    write_server(records, 934, address="127.0.0.1", port=2234)
    key_file, password_file = tmp_path / "key", tmp_path / "password"
    key_file.write_text(KEY.replace("person-key", "new-host-key"))
    password_file.write_text("new-pw-34\n")
    given = servers_sync(records, "--key-file", f"934={key_file}", "--password-file", f"934={password_file}")
    assert given.returncode == 0, given.stdout + given.stderr
    assert f"connection {conn_id} updated (host, port, key, password, host key)" in given.stdout
    assert "server 934: note: the stored host key was for 10.0.0.34:22, not 127.0.0.1:2234: dropped" in given.stdout
    moved = connection(conn_id)
    assert moved is not None and (moved["host"], moved["port"], moved["password"]) == ("127.0.0.1", 2234, "new-pw-34")
    assert moved["extra"]["private_key"] == key_file.read_text() and "host_key" not in moved["extra"]


def test_a_host_key_check_opt_out_stays_with_its_host(records: Path, tmp_path: Path, fresh_ids: list[int]) -> None:
    """``--no-host-key-check`` was given for one host; a record naming another host (its key given anew) gets
    host key checking back on unless the opt-out is given again."""
    fresh_ids.append(935)
    conn_id = "cronium_server_935"
    key_file = tmp_path / "key"
    key_file.write_text(KEY)
    write_server(records, 935, address="127.0.0.1", port=2235)
    first = servers_sync(records, "--key-file", f"935={key_file}", "--no-host-key-check", "935")
    assert first.returncode == 0, first.stdout + first.stderr
    assert connection(conn_id)["extra"]["no_host_key_check"] == "true"  # type: ignore[index]

    write_server(records, 935, address="127.0.0.5", port=2235)
    second = servers_sync(records, "--key-file", f"935={key_file}")
    assert second.returncode == 0, second.stdout + second.stderr
    assert (
        "server 935: note: host key checking OFF was for 127.0.0.1:2235, not 127.0.0.5:2235: dropped" in second.stdout
    )
    assert "host key checking is OFF" not in second.stdout
    stored = connection(conn_id)
    assert stored is not None and stored["host"] == "127.0.0.5" and "no_host_key_check" not in stored["extra"]
