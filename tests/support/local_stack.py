"""A real Airflow on one machine: SQLite, the LocalExecutor, and every component a deferred task needs.

``airflow api-server`` (the REST and execution APIs, on a free loopback port), ``scheduler`` (with the
LocalExecutor's worker processes), ``dag-processor`` and ``triggerer``, each in its own process group with a
private ``AIRFLOW_HOME``; the dags folder holds the files given (the project's template DAG file, ...). The
helpers trigger runs through the REST API (as a user of the Simple auth manager with a known password) and
read states, XComs, Variables and task logs (the main log and the triggerer's part) where Airflow keeps them.

Used by tests/test_deferrable_container.py and bench/bench_deferrable.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.services import ManagedProcess, ServiceDied, free_port, kill_marked, stop_all, tail, wait_for

MARKER = "CRONIUM_LOCAL_STACK"
USER = "cronium"
FERNET_KEY = "tHzVtBrTpU8Q5dJ9ocwXCsH0qvBy6aGjKxE3YbVz2gc="
SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")


def _airflow() -> str:
    candidate = Path(sys.executable).parent / "airflow"
    return str(candidate) if candidate.exists() else "airflow"


@dataclass
class LocalStack:
    home: Path
    env: dict[str, str]
    api_port: int
    password: str
    marker: str
    services: dict[str, ManagedProcess] = field(default_factory=dict)
    _token: str | None = None

    @classmethod
    def create(
        cls,
        home: Path,
        records: Path,
        dag_files: Mapping[str, str],
        parallelism: int = 4,
        extra_env: Mapping[str, str] | None = None,
    ) -> LocalStack:
        """Write the dags folder and the configuration (nothing is started yet)."""
        (home / "dags").mkdir(parents=True, exist_ok=True)
        for name, text in dag_files.items():
            (home / "dags" / name).write_text(text)
        api_port = free_port()
        password = secrets.token_urlsafe(12)
        passwords = home / "passwords.json"
        passwords.write_text(json.dumps({USER: password}))
        marker = secrets.token_hex(8)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
        for key in ("AIRFLOW_CONFIG", "CRONIUM_RECORDS_DIR"):
            env.pop(key, None)
        env.update(
            {
                MARKER: marker,
                "PYTHONUNBUFFERED": "1",
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__FERNET_KEY": FERNET_KEY,
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(parallelism),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__AUTH_MANAGER": (
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(api_port),
                "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
                "AIRFLOW__API__WORKERS": "1",
                # one JWT secret for every component: the scheduler signs the task tokens the api-server checks
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "CRONIUM_RECORDS_DIR": str(records),
                **(extra_env or {}),
            }
        )
        return cls(home, env, api_port, password, marker)

    # --- processes ---------------------------------------------------------------------------------------------

    def airflow(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [_airflow(), *args], env=self.env, cwd=str(self.home), capture_output=True, text=True, timeout=timeout
        )

    def start(self, timeout: float = 240) -> None:
        """Migrate the database, start the four components, wait for the API."""
        migrate = self.airflow("db", "migrate", timeout=300)
        if migrate.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{migrate.stdout[-2000:]}\n{migrate.stderr[-2000:]}")
        commands = {
            "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(self.api_port)],
            "scheduler": ["scheduler", "--skip-serve-logs"],
            "dag-processor": ["dag-processor"],
            "triggerer": ["triggerer", "--skip-serve-logs"],
        }
        for name in SERVICES:
            process = ManagedProcess(
                name, [_airflow(), *commands[name]], self.home / "service-logs" / f"{name}.log", self.env
            )
            process.cwd = str(self.home)
            self.services[name] = process.start()

        def api_up() -> bool:
            self.check_alive()
            status, _ = self.request("GET", "/api/v2/monitor/health", auth=False)
            return status == 200

        wait_for(api_up, timeout, "airflow api-server", interval=1)

    def check_alive(self) -> None:
        for name, process in self.services.items():
            if not process.alive():
                code = process.proc.returncode if process.proc else "?"
                raise ServiceDied(f"{name} exited with {code}; its log ends:\n{process.tail(30)}")

    def wait_parsed(self, dag_ids: set[str], timeout: float = 240) -> None:
        def parsed() -> bool:
            self.check_alive()
            marks = ",".join("?" * len(dag_ids))
            rows = self.query(f"SELECT dag_id FROM serialized_dag WHERE dag_id IN ({marks})", tuple(dag_ids))
            return {r[0] for r in rows} == dag_ids

        wait_for(parsed, timeout, f"DAGs {sorted(dag_ids)} parsed", interval=1)

    def stop(self) -> list[str]:
        """Stop every component (SIGTERM, SIGKILL after a grace), then any process left with the marker."""
        killed = stop_all(list(self.services.values()), grace=20)
        kill_marked(MARKER, self.marker)
        return killed

    # --- the REST API ------------------------------------------------------------------------------------------

    def request(
        self, method: str, path: str, body: Any = None, *, auth: bool = True, timeout: float = 30
    ) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}{path}", data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
                return response.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw)
            except ValueError:
                return exc.code, raw.decode(errors="replace")
        except OSError as exc:
            return 0, str(exc)

    def token(self) -> str:
        if self._token is None:
            status, body = self.request(
                "POST", "/auth/token", {"username": USER, "password": self.password}, auth=False
            )
            if status not in (200, 201):
                raise RuntimeError(f"login failed: HTTP {status} {body}")
            self._token = str(body["access_token"])
        return self._token

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None, run_id: str | None = None) -> str:
        run_id = run_id or f"manual__{dag_id}__{secrets.token_hex(4)}"
        status, body = self.request(
            "POST",
            f"/api/v2/dags/{urllib.parse.quote(dag_id)}/dagRuns",
            {"dag_run_id": run_id, "logical_date": None, "conf": dict(conf or {})},
        )
        if status not in (200, 201):
            raise RuntimeError(f"triggering {dag_id} failed: HTTP {status} {body}")
        return run_id

    def set_task_state(self, dag_id: str, run_id: str, task_id: str, state: str) -> None:
        path = (
            f"/api/v2/dags/{urllib.parse.quote(dag_id)}/dagRuns/{urllib.parse.quote(run_id)}"
            f"/taskInstances/{urllib.parse.quote(task_id)}"
        )
        status, body = self.request("PATCH", path, {"new_state": state})
        if status != 200:
            raise RuntimeError(f"marking {dag_id}.{task_id} {state} failed: HTTP {status} {body}")

    # --- the metadata database (SQLite, read directly) ---------------------------------------------------------

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.home / "airflow.db", timeout=30)) as db:
            return list(db.execute(sql, params).fetchall())

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        with contextlib.closing(sqlite3.connect(self.home / "airflow.db", timeout=30)) as db:
            db.execute(sql, params)
            db.commit()

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        rows = self.query("SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", (dag_id, run_id))
        return str(rows[0][0]) if rows and rows[0][0] is not None else None

    def ti(self, dag_id: str, run_id: str, task_id: str = "run") -> tuple[str | None, int]:
        """The task instance's state and try number."""
        rows = self.query(
            "SELECT state, try_number FROM task_instance WHERE dag_id = ? AND run_id = ? AND task_id = ?",
            (dag_id, run_id, task_id),
        )
        return (rows[0][0], int(rows[0][1] or 0)) if rows else (None, 0)

    def wait_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        def finished() -> bool:
            self.check_alive()
            return self.run_state(dag_id, run_id) in ("success", "failed")

        wait_for(finished, timeout, f"run {dag_id} {run_id}", interval=0.5)
        return str(self.run_state(dag_id, run_id))

    def wait_ti(self, dag_id: str, run_id: str, states: set[str], timeout: float, task_id: str = "run") -> str:
        def reached() -> bool:
            self.check_alive()
            return self.ti(dag_id, run_id, task_id)[0] in states

        wait_for(reached, timeout, f"{dag_id}.{task_id} in {sorted(states)}", interval=0.5)
        return str(self.ti(dag_id, run_id, task_id)[0])

    def xcom(self, dag_id: str, run_id: str, key: str, task_id: str = "run") -> Any:
        rows = self.query(
            "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ? AND key = ?",
            (dag_id, run_id, task_id, key),
        )
        if not rows:
            return None
        value = rows[0][0]
        return json.loads(value) if isinstance(value, str | bytes) else value

    def variables(self, prefix: str) -> dict[str, str]:
        """Airflow Variables whose key starts with ``prefix``, decrypted."""
        from cryptography.fernet import Fernet

        fernet = Fernet(FERNET_KEY.encode())
        values = {}
        for key, val, encrypted in self.query(
            "SELECT key, val, is_encrypted FROM variable WHERE key LIKE ?", (prefix + "%",)
        ):
            values[str(key)] = fernet.decrypt(val.encode()).decode() if encrypted else str(val)
        return values

    def delete_variables(self, prefix: str) -> None:
        self.execute("DELETE FROM variable WHERE key LIKE ?", (prefix + "%",))

    # --- task logs ---------------------------------------------------------------------------------------------

    def log_files(self, dag_id: str, run_id: str, task_id: str = "run", try_number: int = 1) -> list[Path]:
        """The try's log file and the triggerer's files for it (``attempt=N.log.trigger.<job>.log``)."""
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        return sorted(folder.glob(f"attempt={try_number}.log*"))

    def log_events(self, dag_id: str, run_id: str, task_id: str = "run", try_number: int = 1) -> list[dict[str, Any]]:
        """Every structured log record of the try, main log first, then the triggerer's."""
        records: list[dict[str, Any]] = []
        for path in self.log_files(dag_id, run_id, task_id, try_number):
            for line in path.read_text(errors="replace").splitlines():
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if isinstance(record, dict):
                        record["_file"] = path.name
                        records.append(record)
        return records

    def diagnostics(self) -> str:
        parts = [f"AIRFLOW_HOME={self.home} api=127.0.0.1:{self.api_port}"]
        for name, process in self.services.items():
            state = "running" if process.alive() else f"exited {process.proc.returncode if process.proc else '?'}"
            parts.append(f"===== {name} ({state}) {process.log_path} =====\n{process.tail(60)}")
        for log in sorted((self.home / "logs").glob("dag_id=*/run_id=*/task_id=*/*.log*"))[-6:]:
            parts.append(f"----- {log} -----\n{tail(log, 30)}")
        return "\n".join(parts)
