"""The operator for Cronium script events with ``runLocation: REMOTE``: one or many servers over SSH.

All servers run at once, each over its own single SSH connection (upload, run and download share it).
Each server keeps its own log lines (prefixed with its name), output and exit status. The event's result:
all succeeded -> success; all failed -> failure; some failed -> success with status ``PARTIAL`` and the
failed servers in XCom (``fail_on_partial=True`` makes that a failure). A retry reruns only the servers
that failed: the results of the others are kept, between tries, in an Airflow Variable removed at the end.

With ``deferrable=True`` the task starts the script on every server detached from its connections and
defers to ``CroniumSSHTrigger``: the triggerer follows the scripts (their
lines reach the task's log), stops them at the timeout or when the task is cleared or marked, and the task
resumes only to collect the results, with the same code as the normal mode.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException

from cronium_provider.exceptions import CroniumInvalidParameter, RemoteRunError, RemoteRunRefused, ScriptFailed
from cronium_provider.naming import ssh_deferred_key, ssh_progress_key
from cronium_provider.operators.event import DEFERRAL_BACKSTOP_SECONDS, CroniumScriptEventOperator
from cronium_provider.runners.base import RunEnd, ScriptJob
from cronium_provider.runners.outcome import ScriptRun
from cronium_provider.runners.ssh import DetachedRun, SSHScriptExecutor, connect, ssh_hook
from cronium_provider.states import RunStatus
from cronium_provider.variables import VariableNamespace

if TYPE_CHECKING:
    from cronium_provider.triggers.ssh import CroniumSSHTrigger

_Outcome = TypeVar("_Outcome")


class CroniumRemoteScriptOperator(CroniumScriptEventOperator):
    """
    Run a Cronium script event on one or many servers over SSH, all at once.

    Every parameter of :class:`~cronium_provider.operators.event.CroniumScriptEventOperator` and
    :class:`~cronium_provider.operators.event.CroniumEventOperator` applies, and:

    :param servers: ``[{"name": ..., "conn_id": ...}]``: each server's display name and Airflow SSH
        connection (``cronium_server_<id>`` by default, as ``cronium-airflow servers sync`` creates them).
    :param fail_on_partial: fail the task when some (not all) servers failed.
    :param deferrable: start the script on every server, then free the worker slot while it runs: the
        triggerer follows the scripts (log lines, end, timeout, kill) and the task resumes only to collect
        the results. Default ``[cronium] deferrable``, else Airflow's ``[operators] default_deferrable``,
        else off. The triggerer must reach the servers with the same Airflow SSH connections.
    :param poll_interval: while deferred, seconds between two looks at a server's output and state.
    """

    ui_color = "#e6f4ea"

    def __init__(
        self,
        *,
        servers: Sequence[Mapping[str, str]],
        fail_on_partial: bool = False,
        poll_interval: int = 1,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if not servers:
            raise CroniumInvalidParameter("a remote script needs at least one server")
        self.servers = [{"name": str(s["name"]), "conn_id": str(s["conn_id"])} for s in servers]
        self.fail_on_partial = fail_on_partial
        self.poll_interval = max(1, int(poll_interval))
        self._remote: dict[str, SSHScriptExecutor] = {}
        self._detached: list[DetachedRun] = []  # started, not yet handed to the trigger
        self._result_limit = 0
        self._done: dict[str, Any] = {}  # the servers an earlier try already ran with success
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
    def _on_server(
        self,
        server: Mapping[str, str],
        hook: Any,
        work: Callable[[SSHScriptExecutor], _Outcome],
    ) -> _Outcome:
        """``work`` with an executor on one open connection to ``server``; the connection is closed after."""
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
            return work(executor)
        finally:
            with self._remote_lock:
                self._remote.pop(name, None)
            client.close()

    def _run_one(self, server: Mapping[str, str], hook: Any, job: ScriptJob) -> ScriptRun:
        job = job.with_environment(CRONIUM_SERVER=server["name"])
        return self._on_server(server, hook, lambda executor: executor.run(job))

    def _start_one(self, server: Mapping[str, str], hook: Any, job: ScriptJob, time_limit: float | None) -> DetachedRun:
        job = job.with_environment(CRONIUM_SERVER=server["name"])
        run = self._on_server(server, hook, lambda executor: executor.start_detached(job, time_limit))
        with self._remote_lock:
            self._detached.append(run)
        return run

    def _each_server(
        self, servers: Sequence[Mapping[str, str]], work: Callable[[Mapping[str, str]], _Outcome]
    ) -> dict[str, _Outcome | Exception]:
        """``work`` on every server at once; each server's result or exception. A timeout or kill of the
        task stops every remote process group before it leaves."""
        outcomes: dict[str, _Outcome | Exception] = {}
        pool = ThreadPoolExecutor(max_workers=max(1, len(servers)), thread_name_prefix="cronium-ssh")
        try:
            futures = {s["name"]: pool.submit(work, s) for s in servers}
            for name, future in futures.items():
                try:
                    outcomes[name] = future.result()
                except Exception as exc:
                    outcomes[name] = exc
        except BaseException:
            self.stop_run()
            raise
        finally:
            pool.shutdown(wait=True)
        return outcomes

    def _hooks(self, servers: Sequence[Mapping[str, str]]) -> dict[str, Any]:
        """Each server's SSH hook (or why there is none). Connections are read here, in the task's thread:
        Airflow's task-side client is not made for concurrent threads."""
        hooks: dict[str, Any] = {}
        for server in servers:
            try:
                hooks[server["name"]] = ssh_hook(server["conn_id"], server["name"])
            except RemoteRunError as exc:
                hooks[server["name"]] = exc
        return hooks

    def _servers_to_run(self, context: Context) -> list[dict[str, str]]:
        """The servers this try runs: those an earlier try has not already run with success."""
        self._result_limit = self.result_limit()
        self._done = self._load_progress(context)
        todo = [s for s in self.servers if s["name"] not in self._done]
        if self._done:
            self.log.info("Retry: %s already succeeded; running only %s", sorted(self._done), [s["name"] for s in todo])
        return todo

    def run_attached(self, context: Context, job: ScriptJob) -> Mapping[str, ScriptRun | Exception]:
        todo = self._servers_to_run(context)
        hooks = self._hooks(todo)
        return self._each_server(todo, lambda s: self._run_one(s, hooks[s["name"]], job))

    # -- deferrable mode ---------------------------------------------------------------------------
    def start_deferred(
        self,
        context: Context,
        job: ScriptJob,
        namespace: VariableNamespace,
        deadline: float | None,
        timeout_seconds: float | None,
    ) -> CroniumSSHTrigger | Mapping[str, ScriptRun | Exception]:
        """Start the script on every server detached and hand the started scripts to
        ``CroniumSSHTrigger``; the servers where the script could not
        start travel with the trigger, to be reported with the others. When none started, their failures."""
        from cronium_provider.triggers.ssh import CroniumSSHTrigger

        todo = self._servers_to_run(context)
        hooks = self._hooks(todo)
        self._stop_earlier_try(context)
        # the scripts' own last resort, past the deferral's backstop: see SSHScriptExecutor.start_detached
        limit = None
        if deadline is not None:
            limit = deadline - time.time() + DEFERRAL_BACKSTOP_SECONDS + 60
        starts = self._each_server(todo, lambda s: self._start_one(s, hooks[s["name"]], job, limit))
        failures = {n: o for n, o in starts.items() if isinstance(o, Exception)}
        runs = {n: o for n, o in starts.items() if isinstance(o, DetachedRun)}
        if not runs:
            return failures
        try:
            conn_ids = {s["name"]: s["conn_id"] for s in self.servers}
            trigger = CroniumSSHTrigger(
                runs=[{**run.handle(), "conn_id": conn_ids[name]} for name, run in runs.items()],
                deadline=deadline,
                timeout_seconds=timeout_seconds,
                masked=self.masked_values(job.environment, job.variables, namespace),
                start_failures={
                    name: {"error": str(exc), "refused": isinstance(exc, AirflowFailException)}
                    for name, exc in failures.items()
                },
                poll_interval=self.poll_interval,
                task_label=f"{self.dag_id}.{self.task_id}",
            )
        except BaseException:
            self.stop_run()
            raise
        self.log.info(
            "Deferred: the script runs on %s; the triggerer follows it (its lines follow in this log) and the "
            "task resumes to collect the results",
            ", ".join(f"{name} ({run.run_dir})" for name, run in runs.items()),
        )
        self._keep_deferred(context, trigger.runs)
        with self._remote_lock:
            self._detached = []  # the trigger owns them now
        return trigger

    def _deferred_key(self, context: Context) -> str:
        ti = context["ti"]
        return ssh_deferred_key(ti.dag_id, ti.run_id, ti.task_id, ti.map_index)

    def _keep_deferred(self, context: Context, runs: Sequence[Mapping[str, Any]]) -> None:
        """Note the started scripts until the task resumes (an Airflow Variable): a next try stops them if
        the trigger never did (the task cleared before the triggerer took it up)."""
        from airflow.sdk import Variable

        keys = ("server", "conn_id", "run_dir", "session", "started_at")
        try:
            Variable.set(self._deferred_key(context), json.dumps([{k: r[k] for k in keys} for r in runs]))
        except BaseException:
            self.stop_run()
            raise

    def _forget_deferred(self, context: Context) -> None:
        from airflow.sdk import Variable

        with contextlib.suppress(Exception):
            Variable.delete(self._deferred_key(context))

    def _stop_earlier_try(self, context: Context) -> None:
        """Stop the scripts an earlier try started and no trigger stopped, and remove their folders."""
        from airflow.sdk import Variable

        raw = Variable.get(self._deferred_key(context), default=None)
        if not raw:
            return
        runs = [DetachedRun.of(r) for r in json.loads(raw)]
        self.log.info("Stopping what an earlier try left on %s, if anything", ", ".join(r.server for r in runs))
        with self._remote_lock:
            self._detached.extend(runs)
        self._stop_all()
        self._forget_deferred(context)

    def deferral_over(self, context: Context) -> None:
        self._forget_deferred(context)

    def timeout_cleanup(self, event: Mapping[str, Any]) -> str:
        return "it was stopped on every server (SIGTERM, SIGKILL 5 s later) and its run folders were removed"

    def collect_deferred(
        self, context: Context, end: RunEnd, event: Mapping[str, Any]
    ) -> Mapping[str, ScriptRun | Exception]:
        """Each server's results (read and removed with its folder), with the normal mode's code."""
        if end is not RunEnd.EXITED:
            raise ScriptFailed(f"The deferred run failed: {event.get('message') or event}")
        self._result_limit = self.result_limit()
        self._done = self._load_progress(context)
        outcomes: dict[str, ScriptRun | Exception] = {}
        for name, failure in dict(event.get("start_failures") or {}).items():
            error = str(failure.get("error"))
            outcomes[name] = RemoteRunRefused(error) if failure.get("refused") else RemoteRunError(error)
        runs = {str(r["server"]): r for r in event.get("runs") or []}
        servers = [s for s in self.servers if s["name"] in runs]
        hooks = self._hooks(servers)
        outcomes.update(self._each_server(servers, lambda s: self._collect_one(s, hooks[s["name"]], runs[s["name"]])))
        return outcomes

    def _collect_one(self, server: Mapping[str, str], hook: Any, facts: Mapping[str, Any]) -> ScriptRun:
        exit_code, error = facts.get("exit_code"), facts.get("error")

        def collect(executor: SSHScriptExecutor) -> ScriptRun:
            executor.adopt(facts)
            if error is not None or exit_code is None:
                executor.remove()
                raise RemoteRunError(str(error or f"{server['name']}: the script ended without an exit code"))
            return executor.collect(facts)

        return self._on_server(server, hook, collect)

    def finish(
        self, context: Context, namespace: VariableNamespace, outcomes: Mapping[str, ScriptRun | Exception]
    ) -> Any:
        """Each server's line, the event's status (``PARTIAL`` when some failed), its XComs and summary;
        the servers that succeeded are kept for a retry."""
        done = self._done
        ti = context["ti"]
        per_server: dict[str, dict[str, Any]] = dict(done)
        for name in [s["name"] for s in self.servers if s["name"] in outcomes]:
            outcome = outcomes[name]
            if isinstance(outcome, Exception):
                self.log.error("[%s] %s", name, outcome)
                per_server[name] = {
                    "status": RunStatus.FAILURE.value,
                    "error": str(outcome),
                    "output": None,
                    "condition": None,
                }
                continue
            results = outcome.results
            failure = self.settle_run(context, namespace, outcome, f"[{name}] ")
            ok = failure is None
            error = None if failure is None else failure.brief()
            per_server[name] = {
                "status": (RunStatus.SUCCESS if ok else RunStatus.FAILURE).value,
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
        failed = [n for n in names if per_server[n]["status"] != RunStatus.SUCCESS]
        status = (
            RunStatus.SUCCESS if not failed else RunStatus.FAILURE if len(failed) == len(names) else RunStatus.PARTIAL
        )
        succeeded = [n for n in names if n not in failed]
        conditions = [per_server[n]["condition"] is True for n in succeeded]
        condition = bool(conditions) and all(conditions)
        self.push_results(context, condition=condition, status=status.value, failed_servers=failed, servers=per_server)
        self.log.info("cronium summary: %s on %d server(s); failed: %s", status, len(names), failed or "none")
        last_try = int(getattr(ti, "try_number", 1) or 1) > int(self.retries or 0)
        final = not failed or last_try or self.killed
        self._save_progress(context, {n: per_server[n] for n in succeeded}, final=final)
        if self.killed:
            raise ScriptFailed("The task was killed; the remote scripts were stopped.")
        if status is RunStatus.FAILURE or (status is RunStatus.PARTIAL and self.fail_on_partial):
            details = "; ".join(f"{n}: {per_server[n].get('error')}" for n in failed)
            message = f"{status.value}: {len(failed)} of {len(names)} server(s) failed. {details}"
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
            detached, self._detached = self._detached, []
        for executor in executors:
            executor.stop()
        if detached:  # started, then the task was stopped before it deferred: stop them on their servers
            conn_ids = {s["name"]: s["conn_id"] for s in self.servers}
            for run in detached:
                with contextlib.suppress(Exception):
                    client = connect(ssh_hook(conn_ids[run.server], run.server), run.server, attempts=1)
                    try:
                        SSHScriptExecutor(client, run.server).stop_detached(run)
                    finally:
                        client.close()

    def stop_run(self) -> None:
        self._stop_all()
