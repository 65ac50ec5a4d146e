"""An event that reached ``maxExecutions`` is paused, as Cronium pauses it
(apps/cronium-app/src/lib/scheduler/execution-counter.ts:24-35): its task asks the deployment's api-server;
``cronium-airflow apply-status`` leaves it paused while the record stays ACTIVE."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, venv_bin
from tests.support.services import ManagedProcess, free_port, port_open, stop_all, wait_for

EVENT = {"kind": "event", "id": 1, "name": "twice", "type": "BASH", "status": "ACTIVE", "content": "true"}


@dataclass
class Deployment:
    home: Path
    records: Path
    env: dict[str, str]
    runs: list[str]  # the output of each ``airflow dags test``
    paused_after: list[bool]  # whether the DAG was paused after each run

    def paused(self) -> bool:
        with sqlite3.connect(self.home / "airflow.db") as db:
            return bool(db.execute("select is_paused from dag where dag_id = 'cronium_event_1'").fetchone()[0])


@pytest.fixture(scope="module")
def limit_reached(tmp_path_factory: pytest.TempPathFactory, docker_client) -> Iterator[Deployment]:
    """A deployment with an api-server, where the event (``maxExecutions`` 2) ran twice."""
    tmp_path = tmp_path_factory.mktemp("max-executions")
    home = tmp_path / "home"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / "cronium_dags.py").write_text((REPO / "dags_templates" / "cronium_dags.py").read_text())
    records = tmp_path / "records"
    records.mkdir()
    (records / "e.json").write_text(json.dumps({**EVENT, "maxExecutions": 2, "executionCount": 0}))
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({"cronium": "pause-pw"}))
    port = free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "cronium:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW_CONN_CRONIUM_AIRFLOW_API": f"http://cronium:pause-pw@127.0.0.1:{port}",
        "CRONIUM_RECORDS_DIR": str(records),
    }
    airflow = venv_bin("airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    subprocess.run([airflow, "dags", "reserialize"], env=env, check=True, capture_output=True, timeout=300)
    api = ManagedProcess(
        "api-server", [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)], home / "api.log", env
    )
    deployment = Deployment(home, records, env, [], [])
    try:
        api.start()
        wait_for(lambda: port_open(port), 120, "the api-server")
        for _ in range(2):
            proc = subprocess.run(
                [airflow, "dags", "test", "cronium_event_1"], env=env, capture_output=True, text=True, timeout=300
            )
            deployment.runs.append(proc.stdout + proc.stderr)
            deployment.paused_after.append(deployment.paused())
    finally:
        stop_all([api])
    yield deployment


@pytest.mark.airflow
@pytest.mark.docker
def test_the_run_that_reaches_max_executions_pauses_the_dag(limit_reached: Deployment) -> None:
    runs = limit_reached.runs
    assert limit_reached.paused_after == [False, True], runs[-1][-3000:]
    assert "maxExecutions 2 reached: cronium_event_1 paused, as Cronium pauses the event" in runs[1], runs[1][-3000:]
    assert "pause-pw" not in runs[0] + runs[1]


@pytest.mark.airflow
@pytest.mark.docker
def test_apply_status_keeps_a_dag_paused_at_its_limit(limit_reached: Deployment) -> None:
    """The record still says ACTIVE, but its two runs reached maxExecutions 2: ``apply-status`` keeps the
    DAG paused and says why (it counts the finished runs as the task does, so a DAG paused by hand, by the
    API or by the task is told apart by its runs, not by who paused it); raising the limit unpauses it."""
    assert limit_reached.paused()
    apply = [venv_bin("cronium-airflow"), "apply-status", str(limit_reached.records)]
    proc = subprocess.run(apply, env=limit_reached.env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cronium_event_1: kept paused: reached maxExecutions 2 (2 execution(s) so far)" in proc.stdout
    assert "0 DAG(s) changed" in proc.stdout
    assert limit_reached.paused()

    (limit_reached.records / "e.json").write_text(json.dumps({**EVENT, "maxExecutions": 3, "executionCount": 0}))
    raised = subprocess.run(apply, env=limit_reached.env, capture_output=True, text=True, timeout=300)
    assert raised.returncode == 0, raised.stdout + raised.stderr
    assert "cronium_event_1: unpaused: the record is ACTIVE" in raised.stdout
    assert not limit_reached.paused()
