"""An event that reached ``maxExecutions`` is paused, as Cronium pauses it
(apps/cronium-app/src/lib/scheduler/execution-counter.ts:24-35): its task asks the deployment's api-server."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, venv_bin
from tests.support.services import ManagedProcess, free_port, port_open, stop_all, wait_for


@pytest.mark.airflow
@pytest.mark.docker
def test_the_run_that_reaches_max_executions_pauses_the_dag(tmp_path: Path, docker_client) -> None:
    home = tmp_path / "home"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / "cronium_dags.py").write_text((REPO / "dags_templates" / "cronium_dags.py").read_text())
    records = tmp_path / "records"
    records.mkdir()
    event = {"kind": "event", "id": 1, "name": "twice", "type": "BASH", "status": "ACTIVE", "content": "true"}
    (records / "e.json").write_text(json.dumps({**event, "maxExecutions": 2, "executionCount": 0}))
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

    def paused() -> bool:
        with sqlite3.connect(home / "airflow.db") as db:
            return bool(db.execute("select is_paused from dag where dag_id = 'cronium_event_1'").fetchone()[0])

    try:
        api.start()
        wait_for(lambda: port_open(port), 120, "the api-server")
        runs = []
        for _ in range(2):
            proc = subprocess.run(
                [airflow, "dags", "test", "cronium_event_1"], env=env, capture_output=True, text=True, timeout=300
            )
            runs.append(proc.stdout + proc.stderr)
            if len(runs) == 1:
                assert not paused(), runs[0][-3000:]
    finally:
        stop_all([api])
    assert "maxExecutions 2 reached: cronium_event_1 paused, as Cronium pauses the event" in runs[1], runs[1][-3000:]
    assert paused()
    assert "pause-pw" not in runs[0] + runs[1]
