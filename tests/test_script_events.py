"""Script events in isolated containers, run by real Airflow (``dag.test()``) against real Docker.

Each test writes a DAG file with one ``CroniumScriptOperator`` into the dags folder, runs it, and checks
what a user sees: task state, XComs, Airflow Variables and the task log. After every test no container
and no run folder (anonymous volume) of the project is left.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RUNTIME_IMAGE, airflow_env, venv_bin
from tests.support.airflow_run import (
    DagRunResult,
    delete_variables,
    one_task_dag,
    run_dag,
    set_variable,
    variable,
)
from tests.support.http_receiver import HttpReceiver, text_answer
from tests.test_event_dags import Factory

pytestmark = [pytest.mark.docker, pytest.mark.airflow]


def _ours(labels: Any) -> bool:
    """A container or volume of this module's DAGs (``script_*``), not of another session on the daemon."""
    return str((labels or {}).get("org.cronium.dag_id", "")).startswith("script_")


def _cronium_containers(client: Any) -> list[str]:
    """Ids of this module's script containers and run folder holders (the low-level list: no per-container
    look-up to race with)."""
    found = client.api.containers(all=True, filters={"label": "org.cronium.run=true"})
    return [c["Id"] for c in found if _ours(c.get("Labels"))]


def _run_folders(client: Any) -> set[str]:
    volumes = client.api.volumes(filters={"label": "org.cronium.run=true"}).get("Volumes") or []
    return {v["Name"] for v in volumes if _ours(v.get("Labels"))}


@pytest.fixture(autouse=True)
def nothing_left_behind(docker_client, airflow_db):
    volumes_before = {v.id for v in docker_client.volumes.list()}
    yield
    deadline = time.monotonic() + 10
    while _cronium_containers(docker_client) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _cronium_containers(docker_client) == [], "a script container was left behind"
    assert _run_folders(docker_client) == set(), "a run folder volume was left behind"
    unlabelled = {v.id for v in docker_client.volumes.list() if not (v.attrs.get("Labels") or {})} - volumes_before
    assert unlabelled == set(), f"volumes left behind: {unlabelled}"


def script_dag(language: str, script: str, **operator_args: Any) -> tuple[Any, str]:
    """Write a DAG file running ``script``; returns the DAG object and its id."""
    return one_task_dag(
        "cronium_provider.operators.container_script.CroniumScriptOperator",
        f"script_{language.lower()}",
        timeout_seconds=operator_args.pop("timeout_seconds", 120),
        language=language,
        script=script,
        **operator_args,
    )


_CAPFD: list[Any] = []


@pytest.fixture(autouse=True)
def _task_logs(capfd):
    """Every run in this module reads the task logs from the console output."""
    _CAPFD.append(capfd)
    yield
    _CAPFD.pop()


def run_script(language: str, script: str, conf: dict[str, Any] | None = None, **operator_args: Any) -> DagRunResult:
    dag, _ = script_dag(language, script, **operator_args)
    return run_dag(dag, conf, capfd=_CAPFD[-1])


@pytest.fixture
def prefix() -> Any:
    """A private Variable prefix per test, cleaned afterwards."""
    value = f"cronium_t{uuid.uuid4().hex[:6]}_"
    yield value
    delete_variables(value)


CURRENT_API = {
    "PYTHON": """
data = cronium.input()
print("hello from python", data["name"])
seen = cronium.getVariable("counter")
cronium.setVariable("counter", seen + 1)
cronium.setVariable("profile", {"name": data["name"], "tags": ["a", "ü"], "nested": {"ok": True}})
cronium.deleteVariable("obsolete")
cronium.setCondition(data["flag"])
cronium.output({"greeting": "hi " + data["name"], "seen": seen, "event": cronium.event()["name"],
                "condition": cronium.getCondition(), "missing": cronium.getVariable("nope")})
""",
    "NODEJS": """
const data = cronium.input();
console.log("hello from node", data.name);
const seen = cronium.getVariable("counter");
cronium.setVariable("counter", seen + 1);
cronium.setVariable("profile", {name: data.name, tags: ["a", "ü"], nested: {ok: true}});
cronium.deleteVariable("obsolete");
cronium.setCondition(data.flag);
cronium.output({greeting: "hi " + data.name, seen, event: cronium.event().name,
                condition: cronium.getCondition(), missing: cronium.getVariable("nope")});
""",
    "BASH": """
name=$(cronium_input | sed -E 's/.*"name": *"([^"]*)".*/\\1/')
echo "hello from bash $name"
seen=$(cronium_getVariable counter)
cronium_increment_variable counter
cronium_setVariable profile "$name"
cronium_delete_variable obsolete
cronium_setCondition true
missing=$(cronium_getVariable nope || echo none)
event=$(cronium_event | sed -E 's/.*"name": *"([^"]*)".*/\\1/')
cond=$(cronium_getCondition)
cronium_output "{\\"greeting\\": \\"hi $name\\", \\"seen\\": $seen, \\"event\\": \\"$event\\", \\
\\"condition\\": $cond, \\"missing\\": \\"$missing\\"}"
""",
}


@pytest.mark.parametrize("language", ["PYTHON", "NODEJS", "BASH"])
def test_script_reads_input_variables_and_writes_output_condition(language: str, prefix: str) -> None:
    set_variable(f"{prefix}counter", "41")
    set_variable(f"{prefix}obsolete", json.dumps("old"))
    result = run_script(
        language,
        CURRENT_API[language],
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
    }
    assert result.xcom("run", "condition") is True
    assert json.loads(variable(f"{prefix}counter")) == 42
    expected_profile = "Zoë" if language == "BASH" else {"name": "Zoë", "tags": ["a", "ü"], "nested": {"ok": True}}
    assert json.loads(variable(f"{prefix}profile")) == expected_profile
    assert variable(f"{prefix}obsolete") is None
    assert f"hello from {language.lower().replace('nodejs', 'node')} Zoë" in result.log_text()
    metrics = result.xcom("run", "metrics")
    assert metrics["exit_code"] == 0 and metrics["duration_seconds"] > 0
    assert any(line.startswith("cronium summary: exit 0 in") for line in result.log_text().splitlines())


LEGACY_API = {
    "PYTHON": """
import cronium
data = cronium.input()
n = cronium.get_variable("runs") or 0
cronium.set_variable("runs", n + 1)
cronium.set_condition(n >= 1)
cronium.output({"runs": n + 1, "had": cronium.get_condition(), "input": data})
""",
    "NODEJS": """
const cronium = require('cronium');
(async () => {
  const data = await cronium.input();
  const n = (await cronium.getVariable("runs")) || 0;
  await cronium.setVariable("runs", n + 1);
  await cronium.setCondition(n >= 1);
  await cronium.output({runs: n + 1, had: await cronium.getCondition(), input: data});
})();
""",
    "BASH": """
if cronium_variable_exists runs; then n=$(cronium_get_variable runs); else n=0; fi
cronium_increment_variable runs 1
cronium_set_variable note "set by legacy bash"
if [ "$n" -ge 1 ]; then cronium_set_condition yes; else cronium_set_condition off; fi
cronium.output "{\\"runs\\": $((n + 1)), \\"had\\": $(cronium.getCondition), \\"input\\": $(cronium.input)}"
""",
}


@pytest.mark.parametrize("language", ["PYTHON", "NODEJS", "BASH"])
def test_scripts_written_for_other_cronium_generations_run(language: str, prefix: str) -> None:
    set_variable(f"{prefix}runs", "2")
    result = run_script(language, LEGACY_API[language], conf={"k": [1, 2]}, variable_prefix=prefix)
    assert result.state == "success", result.log_text()[-3000:]
    assert result.xcom("run") == {"runs": 3, "had": True, "input": {"k": [1, 2]}}
    assert result.xcom("run", "condition") is True
    assert json.loads(variable(f"{prefix}runs")) == 3


def test_output_lines_reach_the_task_log_while_the_script_runs() -> None:
    result = run_script("BASH", "for i in $(seq 1 10); do echo tick $i; sleep 0.5; done")
    assert result.state == "success"
    ticks = [r for r in result.logs if "[stdout] tick" in r.message]
    assert [r.message.split("[stdout] tick ")[1].split()[0] for r in ticks] == [str(i) for i in range(1, 11)]
    done = next(r for r in result.logs if "cronium summary" in r.message)
    assert done.at - ticks[0].at >= 4.0, "the first line arrived only when the script ended"
    assert ticks[1].at - ticks[0].at >= 0.3


def test_no_output_is_not_an_error_and_stderr_tail_is_in_the_failure() -> None:
    quiet = run_script("PYTHON", "print('nothing to hand over')")
    assert quiet.state == "success"
    assert quiet.xcom("run") is None
    failing = run_script("BASH", "echo first >&2; echo 'disk full at /data' >&2; exit 3")
    assert failing.state == "failed"
    text = failing.log_text()
    assert "The script exited with code 3" in text and "disk full at /data" in text


def test_variable_changes_apply_even_when_the_script_then_fails(prefix: str) -> None:
    result = run_script(
        "PYTHON", "cronium.setVariable('progress', 'half'); raise SystemExit(2)", variable_prefix=prefix
    )
    assert result.state == "failed"
    assert json.loads(variable(f"{prefix}progress")) == "half"


def test_malformed_output_file_fails_with_the_file_named() -> None:
    result = run_script("BASH", 'printf "{not json" > "$CRONIUM_RUN_DIR/output.json"')
    assert result.state == "failed"
    assert "output.json" in result.log_text() and "not valid JSON" in result.log_text()


def test_large_unicode_output_round_trips() -> None:
    script = "cronium.output({'blob': 'é✓' * 2_000_000, 'n': [1, {'deep': [None, True]}]})"
    result = run_script("PYTHON", script)
    assert result.state == "success"
    out = result.xcom("run")
    assert len(out["blob"]) == 4_000_000 and out["blob"][:4] == "é✓é✓" and out["n"] == [1, {"deep": [None, True]}]


def test_environment_holds_only_the_event_env_and_cronium_variables() -> None:
    script = "import json, os; cronium.output(dict(os.environ))"
    result = run_script("PYTHON", script, environment={"GREETING": "hello-env-value"}, event={"id": 5, "name": "E"})
    assert result.state == "success"
    env = result.xcom("run")
    assert env["GREETING"] == "hello-env-value"
    assert env["CRONIUM_EVENT_ID"] == "5"
    extra = {k for k in env if not k.startswith("CRONIUM_")} - {
        "GREETING",
        "PATH",
        "HOSTNAME",
        "HOME",
        "LANG",
        "TMPDIR",
        "PYTHONPATH",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONUNBUFFERED",
        "PYTHONIOENCODING",
    }
    assert extra == set()


# -- isolation suite -----------------------------------------------------------------------------------


def test_isolation_no_airflow_configuration_or_fernet_key(airflow_home: Path) -> None:
    fernet = os.environ["AIRFLOW__CORE__FERNET_KEY"]
    script = textwrap.dedent(
        f"""
        import os
        found = {{k: v for k, v in os.environ.items() if k.startswith("AIRFLOW")}}
        cfg = []
        for root in ("/cronium", "/tmp", "/home", "/root", "/etc", "/opt", "/usr/local", "/var"):
            for folder, _dirs, names in os.walk(root):
                cfg += [os.path.join(folder, n) for n in names if n in ("airflow.cfg", "airflow.db")]
        cronium.output({{"airflow_env": found, "cfg": cfg, "home": os.path.exists({str(airflow_home)!r}),
                         "all": "\\n".join(os.environ.values())}})
        """
    )
    result = run_script("PYTHON", script)
    assert result.state == "success", result.log_text()[-2000:]
    out = result.xcom("run")
    assert out["airflow_env"] == {} and out["cfg"] == [] and out["home"] is False
    assert fernet not in out["all"]


def test_isolation_no_network() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    script = textwrap.dedent(
        f"""
        import socket, os
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=2)
            reached = True
        except OSError as e:
            reached = False
        cronium.output({{"reached": reached, "interfaces": sorted(os.listdir("/sys/class/net"))}})
        """
    )
    try:
        result = run_script("PYTHON", script)
    finally:
        listener.close()
    assert result.state == "success"
    assert result.xcom("run") == {"reached": False, "interfaces": ["lo"]}


# Connects to the test's HTTP server on 127.0.0.1 with Bash's /dev/tcp (the image has no curl); the last line
# of the answer (its body) is the output, or what the connection attempt said.
REACH_LOOPBACK = r"""
if reply=$( (exec 3<>"/dev/tcp/127.0.0.1/$PORT" && printf 'GET /ping HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 \
        && cat <&3) 2>&1 ); then
    cronium_output "reached: ${reply##*$'\n'}"
else
    cronium_output "not reached: $reply"
fi
"""


@pytest.mark.parametrize("deferrable", [False, True], ids=["normal", "deferred"])
def test_script_network_setting_gives_every_script_the_network(
    deferrable: bool, tmp_path: Path, capfd: Any, monkeypatch: pytest.MonkeyPatch, docker_client: Any
) -> None:
    """Cronium isolates a job's network by default: each job gets its own bridge network, created
    ``Internal`` (no way out) while ``ISOLATE_NETWORK`` is true (apps/orchestrator/internal/executors/container/
    sidecar.go:278-297, ``Internal: ...IsolateNetwork`` at :289), and it is true unless the operator turns it
    off (apps/orchestrator/internal/config/config.go:178, ``default:"true"``); turned off, every job's network
    reaches out. Here the DAG factory's scripts have no network by default, and ``[cronium] script_network``
    gives every script container a Docker network, in both modes. The test's daemon runs with
    ``--bridge=none`` (no default bridge), so ``host`` is the realistic choice here: the script then reaches the
    test's HTTP server on the host's 127.0.0.1; without the setting the same script cannot connect."""
    receiver = HttpReceiver(routes={"GET /ping": lambda request: text_answer("pong")}).start()
    factory = Factory(tmp_path / "records", capfd, monkeypatch)
    factory.folder.mkdir()
    monkeypatch.setenv("AIRFLOW__CRONIUM__DEFERRABLE", str(deferrable))
    monkeypatch.delenv("AIRFLOW__CRONIUM__SCRIPT_NETWORK", raising=False)
    assert receiver.server is not None
    env = [{"key": "PORT", "value": str(receiver.server.server_address[1])}]
    isolated = factory.event(name="isolated", content=REACH_LOOPBACK, envVars=env)
    networked = factory.event(name="networked", content=REACH_LOOPBACK, envVars=env)
    try:
        without = factory.load()  # the operators read [cronium] when the DAG file is parsed
        monkeypatch.setenv("AIRFLOW__CRONIUM__SCRIPT_NETWORK", "host")
        with_host = factory.load()
        assert getattr(with_host, f"cronium_event_{networked['id']}").get_task("run").deferrable is deferrable

        refused = factory.run(without, isolated)
        assert receiver.requests == []
        reached = factory.run(with_host, networked)
    finally:
        receiver.stop()
    assert refused.state == "success", refused.log_text()[-3000:]
    assert refused.xcom("run").startswith("not reached: ") and "Connection refused" in refused.xcom("run")
    assert reached.state == "success", reached.log_text()[-3000:]
    assert reached.xcom("run") == "reached: pong"
    assert [request.path for request in receiver.requests] == ["/ping"]
    for event in (isolated, networked):
        label = f"org.cronium.dag_id=cronium_event_{event['id']}"
        assert docker_client.api.containers(all=True, filters={"label": label}) == []


def test_isolation_read_only_root_and_uid_1000() -> None:
    script = textwrap.dedent(
        """
        id -u > /tmp/uid
        if touch /should-not-exist 2>/dev/null; then root=writable; else root=read-only; fi
        if touch /tmp/ok; then tmp=writable; fi
        cronium_output "{\\"uid\\": $(cat /tmp/uid), \\"root\\": \\"$root\\", \\"tmp\\": \\"$tmp\\"}"
        """
    )
    result = run_script("BASH", script)
    assert result.state == "success"
    assert result.xcom("run") == {"uid": 1000, "root": "read-only", "tmp": "writable"}


def test_isolation_fork_bomb_is_stopped_by_the_process_limit() -> None:
    script = textwrap.dedent(
        """
        import os, time
        children = 0
        error = None
        try:
            while children < 5000:
                pid = os.fork()
                if pid == 0:
                    time.sleep(30)
                    os._exit(0)
                children += 1
        except OSError as e:
            error = e.strerror
        cronium.output({"children": children, "error": error})
        """
    )
    result = run_script("PYTHON", script, pids=50, timeout_seconds=60)
    assert result.state == "success", result.log_text()[-2000:]
    out = result.xcom("run")
    assert out["children"] < 50
    assert out["error"] == "Resource temporarily unavailable"


def test_isolation_memory_hog_fails_with_out_of_memory() -> None:
    script = "blocks = []\nwhile True:\n    blocks.append(bytearray(8 * 1024 * 1024))\n"
    result = run_script("PYTHON", script, memory_mb=64)
    assert result.state == "failed"
    assert "ran out of memory (limit 64 MB)" in result.log_text()


def test_limits_above_cronium_caps_are_refused() -> None:
    from cronium_provider.operators.container_script import CroniumScriptOperator

    with pytest.raises(ValueError, match="memory_mb 4096 must be between 16 and 2048"):
        CroniumScriptOperator(task_id="x", language="BASH", script="true", memory_mb=4096)


def test_timeout_stops_the_container() -> None:
    started = time.monotonic()
    result = run_script("BASH", "echo start; sleep 120", timeout_seconds=4)
    assert result.state == "failed"
    assert time.monotonic() - started < 60
    assert "start" in result.log_text()


@pytest.mark.parametrize(
    ("script", "exit_code", "seconds"),
    [
        ("echo started; sleep 300", 143, (0, 3)),  # no trap: SIGTERM ends it at once
        ('trap "echo cleaned up; exit 7" TERM; echo started; sleep 300 & wait', 7, (0, 3)),
        ('trap "" TERM; echo started; sleep 300', 137, (4.5, 9)),  # ignored: SIGKILL 5 s later
    ],
    ids=["no-trap", "trap", "ignored"],
)
def test_a_stopped_script_gets_sigterm_then_sigkill_5_s_later(
    docker_client, script: str, exit_code: int, seconds: tuple[float, float]
) -> None:
    """Stopping a run (its task killed or timed out) sends SIGTERM to the script itself, then SIGKILL 5 s
    later, as Cronium does: a script without a TERM trap ends at once (exit 143), one with a trap runs it,
    one that ignores SIGTERM is killed 5 s later (exit 137); the container is removed."""
    from cronium_provider.runners.base import ScriptJob
    from cronium_provider.runners.container import ContainerExecutor

    lines: list[str] = []
    started = threading.Event()
    stopped_at: list[float] = []

    def on_line(stream: str, line: str) -> None:
        lines.append(f"[{stream}] {line}")
        if line == "started":
            started.set()

    label = f"stop-{uuid.uuid4().hex[:8]}"
    executor = ContainerExecutor(
        docker_client.api, on_line=on_line, image=RUNTIME_IMAGE, labels={"org.cronium.test": label}
    )

    def stop() -> None:
        assert started.wait(60), lines
        stopped_at.append(time.monotonic())
        executor.stop(timeout=5)

    stopper = threading.Thread(target=stop, daemon=True)
    stopper.start()
    run = executor.run(ScriptJob(language="BASH", script=script))
    took = time.monotonic() - stopped_at[0]
    stopper.join(timeout=10)
    assert run.exit_code == exit_code, (run, lines)
    assert seconds[0] <= took <= seconds[1], f"{took:.1f} s after the stop"
    assert ("[stdout] cleaned up" in lines) == (exit_code == 7), lines
    assert docker_client.api.containers(all=True, filters={"label": f"org.cronium.test={label}"}) == []


def test_killing_the_task_stops_the_container(docker_client, airflow_home: Path) -> None:
    _, dag_id = script_dag("BASH", "echo started; sleep 300")
    proc = subprocess.Popen(
        [venv_bin("airflow"), "dags", "test", dag_id],
        env={**airflow_env(), "PYTHONUNBUFFERED": "1"},  # every line reaches the pipe before the kill
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(proc.stdout or []), daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while not _cronium_containers(docker_client):
        assert time.monotonic() < deadline, "the script container never started:\n" + "".join(output)[-3000:]
        assert proc.poll() is None, "".join(output)[-3000:]
        time.sleep(0.2)
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    reader.join(timeout=5)
    text = "".join(output)
    assert "stopping the script's container" in text, text[-3000:]
    assert _cronium_containers(docker_client) == []


def _tries(dag_id: str) -> int:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.query(TaskInstance).filter(TaskInstance.dag_id == dag_id).one()
        return int(ti.try_number)


def test_a_retry_that_cannot_help_is_not_made(docker_client) -> None:
    """A missing env var value fails at once (AirflowFailException) although the task has retries; a
    failing script with the same retries is tried again."""
    dag, dag_id = script_dag(
        "BASH",
        "true",
        event={"id": 424242},
        event_env_keys=["NOT_SET"],
        retries=1,
        retry_delay=datetime.timedelta(seconds=1),
    )
    result = run_dag(dag, capfd=_CAPFD[-1])
    assert result.state == "failed"
    assert "env var NOT_SET has no value; set the Airflow Variable cronium.env.424242.NOT_SET" in result.log_text()
    assert _tries(dag_id) == 1
    dag, dag_id = script_dag("BASH", "exit 3", retries=1, retry_delay=datetime.timedelta(seconds=1))
    result = run_dag(dag, capfd=_CAPFD[-1])
    assert result.state == "failed"
    assert _tries(dag_id) == 2


def _dags_test(dag_id: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [venv_bin("airflow"), "dags", "test", dag_id],
        env=airflow_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _wait_for_container(docker_client: Any, dag_id: str, proc: subprocess.Popen[str]) -> str:
    deadline = time.monotonic() + 120
    while True:
        found = [
            c["Id"] for c in docker_client.api.containers(all=True, filters={"label": f"org.cronium.dag_id={dag_id}"})
        ]
        if found:
            return found[0]
        assert proc.poll() is None and time.monotonic() < deadline, "the script container never started"
        time.sleep(0.2)


def test_a_sigkilled_task_leaves_no_container_behind(docker_client) -> None:
    """The task process is killed with SIGKILL (worker lost, out of memory): its container outlives it; the
    next script run on the host removes it and its run folder, and leaves a live task's container alone."""
    _, killed_id = script_dag("BASH", "sleep 300")
    _, live_id = script_dag("BASH", "sleep 300")
    killed = _dags_test(killed_id)
    live: subprocess.Popen[str] | None = None
    try:
        orphan = _wait_for_container(docker_client, killed_id, killed)
        live = _dags_test(live_id)  # one after the other: two processes starting on SQLite at once may collide
        alive = _wait_for_container(docker_client, live_id, live)
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
        assert orphan in _cronium_containers(docker_client)  # nothing removed it: the task had no chance
        result = run_script("BASH", "echo next")
        assert result.state == "success"
        assert "its task process is gone" in result.log_text()
        remaining = _cronium_containers(docker_client)
        assert orphan not in remaining and alive in remaining
    finally:
        if live is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(live.pid, signal.SIGTERM)
            live.wait(timeout=60)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(killed.pid, signal.SIGKILL)
        for dag_id in (killed_id, live_id):  # whatever happened above, leave no container to the next test
            for c in docker_client.api.containers(all=True, filters={"label": f"org.cronium.dag_id={dag_id}"}):
                with contextlib.suppress(Exception):
                    docker_client.api.remove_container(c["Id"], v=True, force=True)


def _peak_rss_kb(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """Run to the end, sampling the process's high-water mark of resident memory (VmHWM)."""
    peak = 0
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(proc.stdout or []), daemon=True)
    reader.start()
    while proc.poll() is None:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        time.sleep(0.05)
    reader.join(timeout=10)
    return peak, "".join(output)


def test_an_output_above_the_limit_fails_naming_it_and_is_never_read(docker_client) -> None:
    """A 300 MB ``output()`` is refused before it is read: the run fails naming the limit, and the task
    process's memory stays that of a run with a tiny output (measured)."""
    big = (
        "python3 -c \"import os,sys; f=open(os.environ['CRONIUM_RUN_DIR']+'/output.json','w'); "
        "f.write('\\\"'); [f.write('a'*1000000) for _ in range(300)]; f.write('\\\"')\""
    )
    _, small_id = script_dag("BASH", "cronium_output '\"small\"'")
    _, big_id = script_dag("BASH", big, run_folder_mb=400)  # room for the file: the result limit is what stops it
    small_peak, _ = _peak_rss_kb(_dags_test(small_id))
    big_peak, text = _peak_rss_kb(_dags_test(big_id))
    assert "output.json: 300000002 bytes, above the limit of 10485760 bytes for a result file" in text, text[-3000:]
    assert big_peak < small_peak + 50 * 1024, (small_peak, big_peak)


def _docker_disk_used() -> int:
    root = subprocess.run(
        ["docker", "info", "--format", "{{.DockerRootDir}}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return shutil.disk_usage(root).used


def test_a_script_filling_its_run_folder_fails_naming_the_limit_and_spares_the_disk(docker_client) -> None:
    """A script writes 2 GB into its run folder: it is refused space at the folder's 100 MB (the default, as
    ``/tmp``), the run fails saying the folder was full and naming the setting, and the Docker host's disk
    never grows by more than a few MB meanwhile (sampled every 50 ms); the folder is removed with the run."""
    script = 'dd if=/dev/zero of="$CRONIUM_RUN_DIR/big" bs=1M count=2048; echo "dd said $?"; exit 1'
    before = _docker_disk_used()
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _docker_disk_used())
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = run_script("BASH", script)
    finally:
        done.set()
        sampler.join(timeout=10)
    text = result.log_text()
    assert result.task_states["run"] == "failed"
    assert "No space left on device" in text
    assert "The run folder is full: it reached its limit of 100 MB (run_folder_mb, [cronium] run_folder_mb)" in text
    assert peak - before < 20 * 1024 * 1024, f"the host's disk grew by {(peak - before) / 1e6:.0f} MB"


def test_a_run_folder_size_can_be_set_within_a_cap() -> None:
    """``run_folder_mb`` sets the folder's size (a script sees it with ``df``); above 1024 MB it is refused."""
    result = run_script("BASH", 'df -m "$CRONIUM_RUN_DIR" | tail -1', run_folder_mb=250)
    assert result.task_states["run"] == "success"
    assert re.search(r"tmpfs +250 +\d+ +\d+ +\d+% +/cronium", result.log_text()), result.log_text()[-2000:]
    from cronium_provider.exceptions import ContainerLimitError
    from cronium_provider.runners.container import ContainerLimits

    with pytest.raises(ContainerLimitError, match="run_folder_mb 2048 must be between 1 and 1024"):
        ContainerLimits(run_folder_mb=2048)


def test_a_script_container_never_joins_another_containers_network() -> None:
    """A script's network is a Docker network's name, from ``[cronium] script_network`` or the operator's
    ``network`` (no record chooses it): ``container:<id>`` (the network namespace, loopback services
    included, of another container, e.g. another run's) is refused by both, naming it."""
    from cronium_provider.exceptions import ContainerLimitError
    from cronium_provider.operators.container_script import CroniumScriptOperator

    with pytest.raises(ContainerLimitError, match="network 'container:cronium-run-1' is not a Docker network name"):
        CroniumScriptOperator(task_id="run", language="BASH", script="true", network="container:cronium-run-1")
    from cronium_provider.settings import network_setting

    with pytest.raises(ValueError, match="script_network must be none or the name of a Docker network"):
        network_setting("container:cronium-run-1")


def test_parallel_increments_all_count(docker_client) -> None:
    """Two runs at once (two task processes, as two parallel workflow branches on two workers) each
    increment one counter 20 times from the same starting snapshot: the counter ends at 40. Increments
    travel as operations and are applied atomically when each run ends (as Cronium's atomic variable
    updates do), not written back whole."""
    name = f"counter_{uuid.uuid4().hex[:8]}"
    script = f"sleep 20; for i in $(seq 20); do cronium_increment_variable {name} >/dev/null; done"
    dag_ids = [script_dag("BASH", script)[1] for _ in range(2)]
    # The second run starts once the first one's script runs: two `airflow dags test` starting together
    # race to register the same new DAG files in the metadata database (a UNIQUE error in one of them).
    procs = [_dags_test(dag_ids[0])]
    _wait_for_container(docker_client, dag_ids[0], procs[0])
    first_started = time.monotonic()
    procs.append(_dags_test(dag_ids[1]))
    _wait_for_container(docker_client, dag_ids[1], procs[1])
    # both snapshots are taken before either run applies its increments (after its 20 s sleep)
    assert time.monotonic() - first_started < 18, "the second run started too late to show concurrency"
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs[0][-2000:] + outputs[1][-2000:]
    assert variable(f"cronium_{name}") == "40"


# A result file that is no regular file (made after a variable change, which counts even when the run fails)
_NOT_REGULAR = {
    "directory": ("mkdir output.json && truncate -s 1G output.json/big", "a directory"),
    "symlink-to-passwd": ("ln -s /etc/passwd output.json", "a symbolic link"),
    "symlink-to-huge": ('truncate -s 1G huge && ln -s "$CRONIUM_RUN_DIR/huge" output.json', "a symbolic link"),
}


@pytest.mark.parametrize("shape", list(_NOT_REGULAR))
def test_a_result_file_that_is_not_a_regular_file_is_refused_unread(prefix: str, shape: str) -> None:
    """``output.json`` made a directory holding a 1 GB sparse file, or a symbolic link (to the image's
    /etc/passwd, or to a 1 GB sparse file): the run fails at once naming the file and what it is, nothing
    of it is read, and the variable the script set before counts."""
    make, kind = _NOT_REGULAR[shape]
    script = f'cronium_set_variable progress half; cd "$CRONIUM_RUN_DIR" && {make}'
    started = time.monotonic()
    result = run_script("BASH", script, variable_prefix=prefix)
    elapsed = time.monotonic() - started
    text = result.log_text()
    assert result.task_states["run"] == "failed"
    assert f"output.json: {kind}, not a regular file; the script's result was not read" in text, text[-3000:]
    assert json.loads(variable(f"{prefix}progress")) == "half"
    assert elapsed < 30, f"{elapsed:.1f} s: the file was read"


def test_an_output_with_a_huge_number_fails_naming_the_file_and_keeps_the_variables(prefix: str) -> None:
    """A 5,000-digit number in ``output.json`` (Python decodes at most 4300 digits) fails the run with the
    file named, and the variable set before counts."""
    script = 'cronium_set_variable progress half; head -c 5000 /dev/zero | tr "\\0" 9 > "$CRONIUM_RUN_DIR/output.json"'
    result = run_script("BASH", script, variable_prefix=prefix)
    text = result.log_text()
    assert result.task_states["run"] == "failed"
    assert "The script's result files are invalid: output.json: not valid JSON (Exceeds the limit (4300" in text
    assert json.loads(variable(f"{prefix}progress")) == "half"


def _log_files_size(client: Any) -> int:
    """The size on disk of the log files (the current one and those rotated) of this module's script
    containers now."""
    total = 0
    for found in client.api.containers(all=True, filters={"label": "org.cronium.run=true"}):
        if not _ours(found.get("Labels")):
            continue
        with contextlib.suppress(Exception):  # removed meanwhile
            log_path = client.api.inspect_container(found["Id"])["LogPath"]
            total += sum(p.stat().st_size for p in Path(log_path).parent.glob(Path(log_path).name + "*"))
    return total


def test_a_script_printing_past_the_log_cap_leaves_dockers_log_file_bounded(docker_client) -> None:
    """A script prints 50 MB in a few seconds with ``container_log_mb=1``: the container's log files on
    the Docker host (sampled every 50 ms while it runs) never hold more than about 1 MB, while the task's
    log still gets every line as it is printed."""
    script = (
        'head -c 50000000 /dev/zero | tr "\\0" x | fold -w 10000 | sed = | paste -d" " - -; '
        "echo last-line-marker; sleep 1"
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _log_files_size(docker_client))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = run_script("BASH", script, container_log_mb=1)
    finally:
        done.set()
        sampler.join(timeout=10)
    text = result.log_text()
    assert result.task_states["run"] == "success", text[-3000:]
    assert "last-line-marker" in text
    numbered = re.findall(r"\[stdout\] (\d+) x{10000}", text)
    assert [int(n) for n in numbered] == list(range(1, 5001)), len(numbered)
    assert 0 < peak <= 1024 * 1024 + 64 * 1024, f"the container's log files reached {peak / 1e6:.1f} MB"
