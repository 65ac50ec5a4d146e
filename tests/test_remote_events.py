"""Remote script events over SSH, against real sshd processes on 127.0.0.2, 127.0.0.3, ... .

Each server is a real OpenSSH daemon started by the tests, with its own host key, on its own loopback
address; the events run through real Airflow (``dag.test()``).
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import airflow_env, venv_bin
from tests.support.airflow_run import (
    DagRunResult,
    delete_variables,
    one_task_dag,
    run_dag,
    set_variable,
)
from tests.support.airflow_run import variable as airflow_variable
from tests.support.services import wait_for
from tests.support.sshd import TEST_USER, TestSSHServer, ensure_test_user
from tests.test_script_events import CURRENT_API, LEGACY_API

pytestmark = [pytest.mark.ssh, pytest.mark.airflow]


@pytest.fixture(scope="module")
def servers(sshd_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[TestSSHServer]]:
    """Eight sshd servers on 127.0.0.2 .. 127.0.0.9, sharing one client key."""
    base = tmp_path_factory.mktemp("sshd")
    user = ensure_test_user()
    started: list[TestSSHServer] = []
    shared_key = base / "client_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(shared_key)], check=True)
    try:
        for i in range(8):
            work = base / f"srv{i}"
            work.mkdir()
            for suffix in ("", ".pub"):
                (work / f"client_key{suffix}").write_bytes(Path(f"{shared_key}{suffix}").read_bytes())
            (work / "client_key").chmod(0o600)
            started.append(TestSSHServer(sshd_binary, work, address=f"127.0.0.{i + 2}", port=2222, user=user).start())
        yield started
    finally:
        for server in started:
            server.stop()


def conn_env(name: str, server: TestSSHServer, **extra: Any) -> tuple[str, str]:
    data = {
        "conn_type": "ssh",
        "host": server.address,
        "port": server.port,
        "login": server.user,
        "extra": json.dumps({**server.connection_uri_extra(), "look_for_keys": "false", **extra}),
    }
    return f"AIRFLOW_CONN_{name.upper()}", json.dumps(data)


@pytest.fixture
def connect(monkeypatch) -> Any:
    def _connect(servers: list[TestSSHServer], **extra: Any) -> list[dict[str, str]]:
        out = []
        for i, server in enumerate(servers):
            conn_id = f"cronium_test_srv_{uuid.uuid4().hex[:6]}"
            key, value = conn_env(conn_id, server, **extra)
            monkeypatch.setenv(key, value)
            out.append({"name": chr(ord("a") + i), "conn_id": conn_id})
        return out

    return _connect


_CAPFD: list[Any] = []


@pytest.fixture(autouse=True)
def _task_logs(capfd, airflow_db):
    _CAPFD.append(capfd)
    yield
    _CAPFD.pop()


def remote_dag(language: str, script: str, servers: list[dict[str, str]], **operator_args: Any) -> Any:
    return one_task_dag(
        "cronium_provider.operators.ssh_script.CroniumRemoteScriptOperator",
        f"remote_{language.lower()}",
        timeout_seconds=operator_args.pop("timeout_seconds", 120),
        language=language,
        script=script,
        servers=servers,
        **operator_args,
    )[0]


def run_remote(language: str, script: str, servers: list[dict[str, str]], conf: Any = None, **kw: Any) -> DagRunResult:
    return run_dag(remote_dag(language, script, servers, **kw), conf, capfd=_CAPFD[-1])


_BEFORE: list[tuple[set[str], set[str]]] = []  # what was on the servers when the running test began


def leftovers(before: tuple[set[str], set[str]] = (set(), set())) -> tuple[list[str], str]:
    """Run folders and run processes on the servers (one machine: its /tmp and ps), but for those in
    ``before``: what other processes sharing this machine have there is not this test's."""
    folders = sorted(str(p) for p in Path("/tmp").glob("cronium-run.*/*") if str(p) not in before[0])
    procs = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return folders, "\n".join(
        line for line in procs.splitlines() if "cronium-run." in line and line.split()[0] not in before[1]
    )


@pytest.fixture(autouse=True)
def nothing_left_on_the_servers() -> Iterator[None]:
    folders, procs = leftovers()
    before = (set(folders), {line.split()[0] for line in procs.splitlines()})
    _BEFORE[:] = [before]
    yield
    deadline = time.monotonic() + 10
    while any(leftovers(before)) and time.monotonic() < deadline:
        time.sleep(0.2)
    folders, procs = leftovers(before)
    assert folders == [] and procs == "", f"left on the server: {folders} {procs}"


@pytest.fixture
def prefix() -> Iterator[str]:
    value = f"cronium_r{uuid.uuid4().hex[:6]}_"
    yield value
    delete_variables(value)


@pytest.mark.parametrize("language", ["PYTHON", "NODEJS", "BASH"])
def test_helpers_behave_over_ssh_as_in_containers(servers, connect, prefix, language: str) -> None:
    set_variable(f"{prefix}counter", "41")
    set_variable(f"{prefix}obsolete", json.dumps("old"))
    result = run_remote(
        language,
        CURRENT_API[language],
        connect(servers[:1]),
        conf={"name": "Zoë", "flag": True},
        event={"id": 12, "name": "Greeter", "userId": "u1"},
        variable_prefix=prefix,
    )
    assert result.state == "success", result.log_text()[-3000:]
    assert result.xcom("run") == {
        "greeting": "hi Zoë",
        "seen": 41,
        "event": "Greeter",
        "condition": True,
        "missing": None if language != "BASH" else "none",
    }, result.log_text()[-4000:]
    assert result.xcom("run", "condition") is True
    assert json.loads(airflow_variable(f"{prefix}counter")) == 42
    assert airflow_variable(f"{prefix}obsolete") is None
    assert f"[a stdout] hello from {language.lower().replace('nodejs', 'node')} Zoë" in result.log_text()
    # the run's log for its messages: the script's stdout, without the wrapper's session line
    assert result.xcom("run", "stdout").startswith(f"hello from {language.lower().replace('nodejs', 'node')} Zoë")


@pytest.mark.parametrize("language", ["PYTHON", "NODEJS", "BASH"])
def test_other_generations_run_over_ssh(servers, connect, prefix, language: str) -> None:
    set_variable(f"{prefix}runs", "2")
    result = run_remote(
        language, LEGACY_API[language], connect(servers[:1]), conf={"k": [1, 2]}, variable_prefix=prefix
    )
    assert result.state == "success", result.log_text()[-3000:]
    assert result.xcom("run") == {"runs": 3, "had": True, "input": {"k": [1, 2]}}


def test_many_servers_run_in_parallel_each_with_its_own_output(servers, connect) -> None:
    targets = connect(servers)
    script = 'echo "on $CRONIUM_SERVER"; sleep 2; cronium_output "{\\"server\\": \\"$CRONIUM_SERVER\\"}"'
    started = time.monotonic()
    result = run_remote("BASH", script, targets)
    elapsed = time.monotonic() - started
    assert result.state == "success", result.log_text()[-3000:]
    names = [t["name"] for t in targets]
    assert result.xcom("run") == {n: {"server": n} for n in names}
    assert result.xcom("run", "status") == "SUCCESS"
    # the run's log for its messages: each server's stdout after its name
    assert result.xcom("run", "stdout").split("\n") == [line for n in names for line in (f"[{n}]", f"on {n}")]
    assert elapsed < 2 * 8 / 2, f"8 servers x 2 s took {elapsed:.1f} s: not parallel"


def test_one_server_down_is_partial_all_down_is_failure(servers, connect, sshd_binary, tmp_path) -> None:
    spare = [
        TestSSHServer(sshd_binary, tmp_path / f"s{i}", address=f"127.0.0.{20 + i}", port=2222, user=TEST_USER).start()
        for i in range(3)
    ]
    try:
        targets = connect(spare)
        spare[1].stop()
        result = run_remote("BASH", 'cronium_output "{\\"on\\": \\"$CRONIUM_SERVER\\"}"', targets)
        assert result.state == "success"
        assert result.xcom("run", "status") == "PARTIAL"
        assert result.xcom("run", "failed_servers") == ["b"]
        assert result.xcom("run") == {"a": {"on": "a"}, "b": None, "c": {"on": "c"}}
        assert "b: connection refused" in result.log_text()
        for server in spare:
            server.stop()
        result = run_remote("BASH", "true", targets)
        assert result.state == "failed"
        assert "FAILURE: 3 of 3 server(s) failed" in result.log_text()
    finally:
        for server in spare:
            server.stop()


def test_partial_can_be_made_a_failure(servers, connect, sshd_binary, tmp_path) -> None:
    spare = TestSSHServer(sshd_binary, tmp_path / "down", address="127.0.0.30", port=2222, user=TEST_USER).start()
    targets = connect([servers[0], spare])
    spare.stop()
    result = run_remote("BASH", "true", targets, fail_on_partial=True)
    assert result.state == "failed"
    assert "PARTIAL: 1 of 2 server(s) failed" in result.log_text()


def test_a_retry_reruns_only_the_failed_servers(servers, connect) -> None:
    tag = uuid.uuid4().hex[:8]
    script = textwrap.dedent(
        f"""
        f=/tmp/cronium-test-{tag}-$CRONIUM_SERVER.count
        echo run >> "$f"
        if [ "$CRONIUM_SERVER" = b ] && [ "$(wc -l < "$f")" -lt 2 ]; then echo "b fails once" >&2; exit 1; fi
        cronium_output "{{\\"tries\\": $(wc -l < "$f")}}"
        """
    )
    import datetime

    result = run_remote(
        "BASH", script, connect(servers[:3]), retries=1, retry_delay=datetime.timedelta(seconds=1), fail_on_partial=True
    )
    counts = {n: len(Path(f"/tmp/cronium-test-{tag}-{n}.count").read_text().split()) for n in "abc"}
    for n in "abc":
        Path(f"/tmp/cronium-test-{tag}-{n}.count").unlink()
    assert result.state == "success", result.log_text()[-3000:]
    assert counts == {"a": 1, "b": 2, "c": 1}
    assert result.xcom("run") == {"a": {"tries": 1}, "b": {"tries": 2}, "c": {"tries": 1}}


def test_a_changed_host_key_is_refused(servers, connect, tmp_path) -> None:
    other = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    wrong = " ".join(other.with_suffix(".pub").read_text().split()[:2])
    result = run_remote("BASH", "echo ran-$((40 + 2))", connect(servers[:1], host_key=wrong))
    assert result.state == "failed"
    assert "host key has CHANGED" in result.log_text()
    assert "ran-42" not in result.log_text()


def test_wrong_credentials_give_a_clear_error(servers, connect, tmp_path) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    result = run_remote("BASH", "true", connect(servers[:1], key_file=str(stranger)))
    assert result.state == "failed"
    assert "a: authentication failed" in result.log_text()


def test_a_server_runs_only_over_an_ssh_connection(servers, connect, monkeypatch) -> None:
    """A record's ``connectionId`` naming a connection of another type (``smtp_default``, a tool's) is refused
    at run time: its host and credentials are never used to log in, even when they would work."""
    [server] = connect(servers[:1])
    key, value = conn_env(server["conn_id"], servers[0])
    monkeypatch.setenv(key, json.dumps({**json.loads(value), "conn_type": "smtp"}))
    result = run_remote("BASH", "echo ran-$((40 + 2))", [server])
    assert result.state == "failed"
    assert f"the Airflow connection {server['conn_id']!r} is a 'smtp' connection, not SSH" in result.log_text()
    assert "ran-42" not in result.log_text()


def test_missing_interpreter_is_named(servers, connect, monkeypatch) -> None:
    import cronium_provider.runners.ssh as ssh

    monkeypatch.setitem(ssh.INTERPRETERS, "NODEJS", "node-does-not-exist")
    # the interpreter name is what the server is asked for; a missing one must be named in the error
    result = run_remote("NODEJS", "console.log(1)", connect(servers[:1]))
    assert result.state == "failed"
    assert "the interpreter 'node-does-not-exist' for NODEJS scripts is not installed" in result.log_text()


def test_timeout_stops_every_remote_process_and_removes_the_folder(servers, connect) -> None:
    tag = uuid.uuid4().hex[:8]
    # each sleep runs under a name of this test's own (exec -a): ps finds these processes and no others
    script = f"(bash -c 'exec -a orphan-{tag} sleep 300'; echo orphan) & bash -c 'exec -a sleeper-{tag} sleep 300'"
    started = time.monotonic()
    result = run_remote("BASH", script, connect(servers[:2]), timeout_seconds=3)
    assert result.state == "failed"
    assert time.monotonic() - started < 60
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert f"orphan-{tag}" not in ps and f"sleeper-{tag}" not in ps
    assert leftovers(_BEFORE[0])[0] == []


def test_servers_sync_creates_working_connections_and_leaks_no_secret(servers, tmp_path, airflow_db) -> None:
    server = servers[0]
    secret_password = f"pw-{uuid.uuid4().hex}"
    records = tmp_path / "records"
    records.mkdir()
    (records / "servers.json").write_text(
        json.dumps(
            {
                "servers": [
                    {
                        "id": 901,
                        "name": "sync-a",
                        "address": server.address,
                        "port": server.port,
                        "username": TEST_USER,
                    },
                    {
                        "id": 902,
                        "name": "sync-b",
                        "address": servers[1].address,
                        "port": servers[1].port,
                        "username": TEST_USER,
                        "password": secret_password,
                    },
                ]
            }
        )
    )
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(
        f"[{server.address}]:{server.port} {server.host_public_key}\n"
        f"[{servers[1].address}]:{servers[1].port} {servers[1].host_public_key}\n"
    )
    key_text = server.client_key_path.read_text()
    proc = subprocess.run(
        [
            venv_bin("cronium-airflow"),
            "servers",
            "sync",
            str(records),
            "--key-file",
            f"901={server.client_key_path}",
            "--key-file",
            f"902={servers[1].client_key_path}",
            "--known-hosts",
            str(known_hosts),
            "--pool-size",
            "3",
        ],
        env=airflow_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "connection cronium_server_901 created" in output and "pool cronium_server_901 with 3 slot(s)" in output
    assert "remove password from that record" in output
    plan = subprocess.run(
        [venv_bin("cronium-airflow"), "plan", "--json", str(records)], capture_output=True, text=True, env=airflow_env()
    )
    for text in (output, plan.stdout + plan.stderr):
        assert secret_password not in text
        assert "PRIVATE KEY" not in text and key_text.strip().splitlines()[1] not in text
    assert json.loads((records / "servers.json").read_text())["servers"][1]["password"] == secret_password

    from airflow.models.pool import Pool

    assert Pool.get_pool("cronium_server_901").slots == 3
    result = run_remote(
        "BASH",
        'cronium_output "{\\"on\\": \\"$CRONIUM_SERVER\\"}"',
        [{"name": "sync-a", "conn_id": "cronium_server_901"}, {"name": "sync-b", "conn_id": "cronium_server_902"}],
    )
    assert result.xcom("run") == {"sync-a": {"on": "sync-a"}, "sync-b": {"on": "sync-b"}}, result.log_text()[-3000:]
    assert secret_password not in result.log_text()


def test_a_second_servers_sync_without_options_keeps_the_connection_working(servers, tmp_path, airflow_db) -> None:
    """``servers sync`` given the key and the known_hosts file, then run again without them (as after a
    record edit): the connection keeps its key and host key, so the remote event still runs on the server."""
    server = servers[0]
    records = tmp_path / "records"
    records.mkdir()
    record = {"id": 905, "name": "resync", "address": server.address, "port": server.port, "username": "nobody"}
    (records / "servers.json").write_text(json.dumps({"servers": [record]}))
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[{server.address}]:{server.port} {server.host_public_key}\n")
    sync = [venv_bin("cronium-airflow"), "servers", "sync", str(records)]
    given = ["--key-file", f"905={server.client_key_path}", "--known-hosts", str(known_hosts)]
    first = subprocess.run([*sync, *given], env=airflow_env(), capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stdout + first.stderr

    (records / "servers.json").write_text(json.dumps({"servers": [{**record, "username": TEST_USER}]}))
    second = subprocess.run(sync, env=airflow_env(), capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stdout + second.stderr
    result = run_remote(
        "BASH", 'cronium_output "{\\"user\\": \\"$(id -un)\\"}"', [{"name": "resync", "conn_id": "cronium_server_905"}]
    )
    assert result.xcom("run") == {"user": TEST_USER}, result.log_text()[-3000:]
    assert "connection cronium_server_905 updated (username); key and host key kept" in second.stdout


def test_a_forged_pid_file_cannot_turn_the_kill_on_other_processes(servers, connect) -> None:
    """The script writes ``1`` where the old wrapper kept its pid, and prints a fake session line; on
    timeout only the run's own session is stopped: another process of the same remote user survives."""
    tag = uuid.uuid4().hex[:8]
    # A unique duration names the bystander: `su` keeps a parent process, so the sleep is found by its
    # own command line, checked alive by it and killed by it.
    bystander_args = f"sleep 301.{int(tag, 16) % 10**6:06d}"
    bystander = subprocess.Popen(
        ["su", TEST_USER, "-s", "/bin/sh", "-c", f"exec {bystander_args}"],
        start_new_session=True,
    )

    def bystander_alive() -> bool:
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        return bystander_args in ps.splitlines()

    try:
        wait_for(bystander_alive, timeout=10, what="the bystander sleep")
        script = (
            'echo 1 > "$CRONIUM_RUN_DIR/.pid"; echo 1 > .pid; echo "cronium-session-0000000000000000:1"; '
            f"(sleep 300; echo orphan-{tag}) & sleep 300"
        )
        result = run_remote("BASH", script, connect(servers[:1]), timeout_seconds=3)
        assert result.state == "failed"
        assert bystander_alive(), "a process of the same user outside the run was killed"
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert f"orphan-{tag}" not in ps
        assert leftovers(_BEFORE[0])[0] == []
    finally:
        subprocess.run(["pkill", "-KILL", "-xf", bystander_args], check=False)
        bystander.kill()
        bystander.wait(timeout=10)
        assert not bystander_alive()


def test_a_remote_output_above_the_limit_is_never_read(servers, connect) -> None:
    """The size of each result file is checked on the server before it is sent back."""
    script = 'head -c 3000000 /dev/zero | tr "\\0" a | sed "s/.*/\\"&\\"/" > "$CRONIUM_RUN_DIR/output.json"'
    result = run_remote("BASH", script, connect(servers[:1]), max_result_bytes=1_000_000)
    assert result.state == "failed"
    assert "output.json: 3000002 bytes, above the limit of 1000000 bytes for a result file" in result.log_text()
    assert leftovers(_BEFORE[0])[0] == []
