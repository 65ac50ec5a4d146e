"""The operator for Cronium script events with ``runLocation: REMOTE``: one or many servers over SSH.

All servers run at once, each over its own single SSH connection (upload, run and download share it).
Each server keeps its own log lines (prefixed with its name), output and exit status. The event's result:
all succeeded -> success; all failed -> failure; some failed -> success with status ``PARTIAL`` and the
failed servers in XCom (``fail_on_partial=True`` makes that a failure). A retry reruns only the servers
that failed: the results of the others are kept, between tries, in an Airflow Variable removed at the end.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from airflow.sdk.exceptions import AirflowException

from cronium_provider.executors.runs import ScriptRun
from cronium_provider.executors.ssh import RemoteRunError, SSHScriptExecutor
from cronium_provider.operators.base import check_max_executions
from cronium_provider.operators.script import CroniumScriptOperator
from cronium_provider.variables import VariableNamespace

CONNECT_ATTEMPTS = 3
CONNECT_BACKOFF_SECONDS = 1.0


def server_conn_id(server_id: int | str) -> str:
    return f"cronium_server_{server_id}"


def describe_connect_error(server: str, exc: BaseException) -> str:
    """What went wrong connecting, in words a user can act on."""
    import paramiko

    if isinstance(exc, paramiko.BadHostKeyException):
        return (
            f"{server}: the server's host key has CHANGED (got {exc.key.get_name()}); refusing to connect. "
            "If the change is expected, update the connection's host_key or known_hosts."
        )
    if isinstance(exc, paramiko.AuthenticationException):
        return f"{server}: authentication failed ({exc}); check the connection's user, key or password"
    if isinstance(exc, paramiko.SSHException) and "not found in known_hosts" in str(exc):
        return (
            f"{server}: unknown host key ({exc}); add it to known_hosts or the connection's host_key "
            "(or set no_host_key_check on the connection to skip the check, at your own risk)"
        )
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError | ConnectionRefusedError):
        return f"{server}: connection refused ({exc}); is sshd running and the port right?"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"{server}: connection timed out ({exc})"
    return f"{server}: cannot connect: {type(exc).__name__}: {exc}"


def _retryable(exc: BaseException) -> bool:
    import paramiko

    if isinstance(exc, paramiko.AuthenticationException | paramiko.BadHostKeyException):
        return False
    if isinstance(exc, paramiko.SSHException) and "known_hosts" in str(exc):
        return False
    return isinstance(exc, OSError | EOFError | paramiko.SSHException)


def ssh_hook(conn_id: str, server: str) -> Any:
    """The SSH provider's hook for a server; reads the Airflow connection (call it from the task's thread)."""
    from airflow.providers.ssh.hooks.ssh import SSHHook

    try:
        return SSHHook(ssh_conn_id=conn_id, conn_timeout=10, conn_retry_attempts=1)
    except Exception as exc:
        raise RemoteRunError(f"{server}: no usable Airflow connection {conn_id!r}: {exc}") from exc


def connect(hook: Any, server: str, attempts: int = CONNECT_ATTEMPTS) -> Any:
    """An open ``SSHClient`` from the hook, retrying network errors with backoff (not auth or host keys)."""
    delay = CONNECT_BACKOFF_SECONDS
    for attempt in range(1, attempts + 1):
        try:
            return hook.get_conn()
        except Exception as exc:
            if attempt == attempts or not _retryable(exc):
                raise RemoteRunError(describe_connect_error(server, exc)) from exc
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


class CroniumRemoteScriptOperator(CroniumScriptOperator):
    """
    Run a Cronium script event on one or many servers over SSH, all at once.

    :param servers: ``[{"name": ..., "conn_id": ...}]``: each server's display name and Airflow SSH
        connection (``cronium_server_<id>`` by default, as ``cronium-airflow servers sync`` creates them).
    :param fail_on_partial: fail the task when some (not all) servers failed.

    Every other parameter is :class:`CroniumScriptOperator`'s (input, variables, env vars, workflow
    connections); container limits and images do not apply.
    """

    ui_color = "#e6f4ea"

    def __init__(self, *, servers: Sequence[Mapping[str, str]], fail_on_partial: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        if not servers:
            raise ValueError("a remote script needs at least one server")
        self.servers = [{"name": str(s["name"]), "conn_id": str(s["conn_id"])} for s in servers]
        self.fail_on_partial = fail_on_partial
        self._remote: dict[str, SSHScriptExecutor] = {}
        self._remote_lock = threading.Lock()

    # -- the servers already done in an earlier try ------------------------------------------------
    def _progress_key(self, context: Any) -> str:
        ti = context["ti"]
        digest = hashlib.sha256(f"{ti.dag_id}|{ti.run_id}|{ti.task_id}|{ti.map_index}".encode()).hexdigest()[:24]
        return f"cronium_ssh_progress_{digest}"

    def _load_progress(self, context: Any) -> dict[str, Any]:
        from airflow.sdk import Variable

        raw = Variable.get(self._progress_key(context), default=None)
        return json.loads(raw) if raw else {}

    def _save_progress(self, context: Any, done: dict[str, Any], final: bool) -> None:
        from contextlib import suppress

        from airflow.sdk import Variable

        if final:
            with suppress(Exception):
                Variable.delete(self._progress_key(context))
        else:
            Variable.set(self._progress_key(context), json.dumps(done))

    # -- running -----------------------------------------------------------------------------------
    def _run_one(self, server: Mapping[str, str], hook: Any, job: dict[str, Any]) -> ScriptRun:
        if isinstance(hook, Exception):
            raise hook
        name = server["name"]
        client = connect(hook, name)
        try:
            executor = SSHScriptExecutor(
                client, name, on_line=lambda s, line: self.log.info("[%s %s] %s", name, s, line)
            )
            with self._remote_lock:
                self._remote[name] = executor
            return executor.run(**{**job, "environment": {**job["environment"], "CRONIUM_SERVER": name}})
        finally:
            with self._remote_lock:
                self._remote.pop(name, None)
            client.close()

    def execute(self, context: Any) -> Any:
        check_max_executions(context, self.max_executions, self.execution_count)
        script_input = self._input(context)
        namespace = VariableNamespace(
            self.variable_prefix, owner=self.event.get("userId"), scope_by_owner=self.scope_variables_by_owner
        )
        job = {
            "language": self.language,
            "script": self.script,
            "input": script_input,
            "event": self._event_json(context),
            "variables": namespace.snapshot(),
            "environment": self._environment(),
        }
        done: dict[str, Any] = self._load_progress(context)
        todo = [s for s in self.servers if s["name"] not in done]
        if done:
            self.log.info("Retry: %s already succeeded; running only %s", sorted(done), [s["name"] for s in todo])
        outcomes: dict[str, ScriptRun | Exception] = {}
        # Connections are read here: Airflow's task-side client is not made for concurrent threads.
        hooks: dict[str, Any] = {}
        for server in todo:
            try:
                hooks[server["name"]] = ssh_hook(server["conn_id"], server["name"])
            except RemoteRunError as exc:
                hooks[server["name"]] = exc
        pool = ThreadPoolExecutor(max_workers=max(1, len(todo)), thread_name_prefix="cronium-ssh")
        try:
            futures = {s["name"]: pool.submit(self._run_one, s, hooks[s["name"]], job) for s in todo}
            for name, future in futures.items():
                try:
                    outcomes[name] = future.result()
                except Exception as exc:
                    outcomes[name] = exc
        except BaseException:  # timeout or kill: stop every remote process group before leaving
            self._stop_all()
            raise
        finally:
            pool.shutdown(wait=True)
        return self._finish_servers(context, namespace, outcomes, done)

    def _finish_servers(
        self,
        context: Any,
        namespace: VariableNamespace,
        outcomes: Mapping[str, ScriptRun | Exception],
        done: dict[str, Any],
    ) -> Any:
        ti = context["ti"]
        per_server: dict[str, dict[str, Any]] = dict(done)
        for name in [s["name"] for s in self.servers if s["name"] in outcomes]:
            outcome = outcomes[name]
            if isinstance(outcome, Exception):
                self.log.error("[%s] %s", name, outcome)
                per_server[name] = {"status": "FAILURE", "error": str(outcome), "output": None, "condition": None}
                continue
            results = outcome.results
            if results is not None and results.variable_changes:
                for line in namespace.apply(results.variable_changes):
                    self.log.info("[%s] variable %s", name, line)
            ok = outcome.exit_code == 0 and outcome.protocol_error is None and not self._killed
            error = None
            if not ok:
                error = (
                    f"the script's result files are invalid: {outcome.protocol_error}"
                    if outcome.exit_code == 0 and outcome.protocol_error is not None
                    else f"exit code {outcome.exit_code}: " + " | ".join(outcome.stderr_tail[-5:])
                )
            per_server[name] = {
                "status": "SUCCESS" if ok else "FAILURE",
                "exit_code": outcome.exit_code,
                "duration_seconds": round(outcome.duration_seconds, 3),
                "output": results.output if ok and results is not None and results.has_output else None,
                "condition": results.condition if results is not None else None,
                "error": error,
            }
            self.log.info(
                "[%s] exit %s in %.2f s%s",
                name,
                outcome.exit_code,
                outcome.duration_seconds,
                f": {error}" if error else "",
            )
        names = [s["name"] for s in self.servers]
        failed = [n for n in names if per_server[n]["status"] != "SUCCESS"]
        status = "SUCCESS" if not failed else ("FAILURE" if len(failed) == len(names) else "PARTIAL")
        succeeded = [n for n in names if n not in failed]
        conditions = [per_server[n]["condition"] is True for n in succeeded]
        condition = bool(conditions) and all(conditions)
        ti.xcom_push(key="condition", value=condition)
        ti.xcom_push(key="status", value=status)
        ti.xcom_push(key="failed_servers", value=failed)
        ti.xcom_push(key="servers", value=per_server)
        self.log.info("cronium summary: %s on %d server(s); failed: %s", status, len(names), failed or "none")
        last_try = int(getattr(ti, "try_number", 1) or 1) > int(self.retries or 0)
        final = not failed or last_try or self._killed
        self._save_progress(context, {n: per_server[n] for n in succeeded}, final=final)
        if self._killed:
            raise AirflowException("The task was killed; the remote scripts were stopped.")
        if status == "FAILURE" or (status == "PARTIAL" and self.fail_on_partial):
            details = "; ".join(f"{n}: {per_server[n].get('error')}" for n in failed)
            raise AirflowException(f"{status}: {len(failed)} of {len(names)} server(s) failed. {details}")
        if len(names) == 1:
            return per_server[names[0]]["output"]
        return {n: per_server[n]["output"] for n in names}

    def _stop_all(self) -> None:
        with self._remote_lock:
            executors = list(self._remote.values())
        for executor in executors:
            executor.stop()

    def on_kill(self) -> None:
        self._killed = True
        self._stop_all()
