"""The operator for Cronium script events with ``runLocation: REMOTE``: one or many servers over SSH.

All servers run at once, each over its own single SSH connection (upload, run and download share it).
Each server keeps its own log lines (prefixed with its name), output and exit status. The event's result:
all succeeded -> success; all failed -> failure; some failed -> success with status ``PARTIAL`` and the
failed servers in XCom (``fail_on_partial=True`` makes that a failure). A retry reruns only the servers
that failed: the results of the others are kept, between tries, in an Airflow Variable removed at the end.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException

from cronium_provider.exceptions import CroniumInvalidParameter, RemoteRunError, RemoteRunRefused, ScriptFailed
from cronium_provider.naming import ssh_progress_key
from cronium_provider.operators.event import CroniumScriptEventOperator
from cronium_provider.runners.outcome import ScriptRun
from cronium_provider.runners.ssh import SSHScriptExecutor, connect, ssh_hook
from cronium_provider.variables import VariableNamespace


class CroniumRemoteScriptOperator(CroniumScriptEventOperator):
    """
    Run a Cronium script event on one or many servers over SSH, all at once.

    Every parameter of :class:`~cronium_provider.operators.event.CroniumScriptEventOperator` and
    :class:`~cronium_provider.operators.event.CroniumEventOperator` applies, and:

    :param servers: ``[{"name": ..., "conn_id": ...}]``: each server's display name and Airflow SSH
        connection (``cronium_server_<id>`` by default, as ``cronium-airflow servers sync`` creates them).
    :param fail_on_partial: fail the task when some (not all) servers failed.
    """

    ui_color = "#e6f4ea"

    def __init__(self, *, servers: Sequence[Mapping[str, str]], fail_on_partial: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        if not servers:
            raise CroniumInvalidParameter("a remote script needs at least one server")
        self.servers = [{"name": str(s["name"]), "conn_id": str(s["conn_id"])} for s in servers]
        self.fail_on_partial = fail_on_partial
        self._remote: dict[str, SSHScriptExecutor] = {}
        self._result_limit = 0
        self._remote_lock = threading.Lock()

    # -- the servers already done in an earlier try ------------------------------------------------
    def _progress_key(self, context: Context) -> str:
        ti = context["ti"]
        return ssh_progress_key(ti.dag_id, ti.run_id, ti.task_id, ti.map_index)

    def _load_progress(self, context: Context) -> dict[str, Any]:
        from airflow.sdk import Variable

        raw = Variable.get(self._progress_key(context), default=None)
        return json.loads(raw) if raw else {}

    def _save_progress(self, context: Context, done: dict[str, Any], final: bool) -> None:
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
                client,
                name,
                on_line=lambda s, line: self.log.info("[%s %s] %s", name, s, line),
                max_result_bytes=self._result_limit,
            )
            with self._remote_lock:
                self._remote[name] = executor
            return executor.run(**{**job, "environment": {**job["environment"], "CRONIUM_SERVER": name}})
        finally:
            with self._remote_lock:
                self._remote.pop(name, None)
            client.close()

    def run_event(self, context: Context, run_input: Any) -> Any:
        self._result_limit = self.result_limit()
        namespace = self.variables()
        job = {
            "language": self.language,
            "script": self.script,
            "input": run_input,
            "event": self.run_facts(context),
            "variables": namespace.snapshot(),
            "environment": self.script_environment(),
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
        context: Context,
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
            self.apply_variables(namespace, results.variable_changes if results is not None else None, f"[{name}] ")
            failed_actions = self.carry_out_actions(context, results, f"[{name}] ")
            ok = outcome.exit_code == 0 and outcome.protocol_error is None and not self.killed and not failed_actions
            error = None
            if not ok:
                if outcome.exit_code == 0 and outcome.protocol_error is not None:
                    error = f"the script's result files are invalid: {outcome.protocol_error}"
                elif outcome.exit_code == 0 and failed_actions:
                    error = "tool action(s) the script asked for failed: " + "; ".join(failed_actions)
                else:
                    error = f"exit code {outcome.exit_code}: " + " | ".join(outcome.stderr_tail[-5:])
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
        self.push_results(context, condition=condition, status=status, failed_servers=failed, servers=per_server)
        self.log.info("cronium summary: %s on %d server(s); failed: %s", status, len(names), failed or "none")
        last_try = int(getattr(ti, "try_number", 1) or 1) > int(self.retries or 0)
        final = not failed or last_try or self.killed
        self._save_progress(context, {n: per_server[n] for n in succeeded}, final=final)
        if self.killed:
            raise ScriptFailed("The task was killed; the remote scripts were stopped.")
        if status == "FAILURE" or (status == "PARTIAL" and self.fail_on_partial):
            details = "; ".join(f"{n}: {per_server[n].get('error')}" for n in failed)
            message = f"{status}: {len(failed)} of {len(names)} server(s) failed. {details}"
            refusals = [outcomes.get(n) for n in failed]
            if refusals and all(isinstance(r, AirflowFailException) for r in refusals):
                # every failed server refused the run outright (credentials, host key, interpreter): no retry
                raise RemoteRunRefused(message)
            raise ScriptFailed(message)
        if len(names) == 1:
            return per_server[names[0]]["output"]
        return {n: per_server[n]["output"] for n in names}

    def _stop_all(self) -> None:
        with self._remote_lock:
            executors = list(self._remote.values())
        for executor in executors:
            executor.stop()

    def stop_run(self) -> None:
        self._stop_all()
