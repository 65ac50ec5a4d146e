"""The base of every operator that runs a Cronium event, and of the two that run its script.

:class:`CroniumEventOperator` owns what every event run shares: ``maxExecutions``, the input and workflow
gating, the event's facts with the run's, the result XComs and kill handling. A sibling implements
:meth:`~CroniumEventOperator.run_event` only. :class:`CroniumScriptEventOperator` adds what a script needs
wherever it runs: its language and text, its env vars and the Cronium variables.
"""

from __future__ import annotations

import contextlib
import os
import time
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowSkipException, AirflowTaskTimeout
from airflow.triggers.base import BaseTrigger

from cronium_provider.config import read_settings
from cronium_provider.event_env import mask_value, resolve_event_env
from cronium_provider.exceptions import CroniumInvalidParameter
from cronium_provider.links import CroniumEventLink
from cronium_provider.naming import VARIABLE_PREFIX
from cronium_provider.operators.gating import (
    check_max_executions,
    executions_so_far,
    gated_input,
    incoming_pairs,
)
from cronium_provider.runners.base import Failure, RunEnd, ScriptJob, judge
from cronium_provider.runners.outcome import DEFAULT_MAX_RESULT_BYTES, ScriptRun
from cronium_provider.runners.protocol import LANGUAGES, ScriptResults, VariableChange
from cronium_provider.states import RunStatus, max_executions_reached
from cronium_provider.variables import VariableNamespace


class CroniumEventOperator(BaseOperator):
    """
    One run of a Cronium event (the base of the script, HTTP and tool-action operators).

    :param event: the event's facts, handed to ``cronium.event()`` and templates (id, name, type, userId, ...).
    :param input_data: the run's ``cronium.input()``; default: the DAG run's ``conf`` (templated where the
        sibling lists it in ``template_fields``).
    :param max_executions: Cronium's ``maxExecutions`` (0 = unlimited); runs past it are skipped.
    :param execution_count: Cronium's ``executionCount``, added to the DAG's runs for that limit.
    :param workflow_incoming: as a workflow node, its incoming connections ``[(parent task id, type)]``:
        the node runs only when all are satisfied, and its input comes from its parents.
    """

    operator_extra_links = (CroniumEventLink(),)

    def __init__(
        self,
        *,
        event: Mapping[str, Any] | None = None,
        input_data: Any = None,
        max_executions: int = 0,
        execution_count: int = 0,
        workflow_incoming: Sequence[Sequence[str]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.event = dict(event or {})
        self.input_data = input_data
        self.max_executions = max_executions
        self.execution_count = execution_count
        self.workflow_incoming = incoming_pairs(workflow_incoming)
        self._killed = False

    def execute(self, context: Context) -> Any:
        """One run: skipped past ``maxExecutions``, gated by the workflow's connections, then
        :meth:`run_event` with the run's input; its status, error and the pause at ``maxExecutions`` reported."""
        try:
            check_max_executions(context, self.max_executions, self.execution_count)
        except AirflowSkipException:
            self._pause_at_limit(context, finished_now=False)
            raise
        value = gated_input(context, self.workflow_incoming, self.input_data)  # an unreached node skips here
        self._push_started(context)
        return self._report(context, lambda: self.run_event(context, value))

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> Any:
        """Back from a deferral (``deferrable=True``): the sibling's :meth:`resume_event` collects the run's
        results; its status, error and ``maxExecutions`` are then reported exactly as after :meth:`execute`."""
        return self._report(context, lambda: self.resume_event(context, dict(event or {})))

    def _report(self, context: Context, run: Callable[[], Any]) -> Any:
        """Run ``run`` (the event, or its end after a deferral) and report how it ended: ``run_status``,
        ``error``, and the pause at ``maxExecutions``. A deferral (``TaskDeferred``, not an ``Exception``)
        passes through: the run has not ended."""
        try:
            result = run()
        except AirflowTaskTimeout as exc:
            self._push_status(context, RunStatus.FAILURE, error=exc)  # Cronium counts a timeout as a failure
            self._pause_at_limit(context, finished_now=True)
            raise
        except Exception as exc:
            self._push_status(context, RunStatus.CANCELLED if self.killed else RunStatus.FAILURE, error=exc)
            self._pause_at_limit(context, finished_now=True)
            raise
        self._push_status(context, RunStatus.SUCCESS)
        self._pause_at_limit(context, finished_now=True)
        return result

    def _pause_at_limit(self, context: Context, *, finished_now: bool) -> None:
        """Once the event has run ``maxExecutions`` times, pause its DAG, as Cronium pauses the event
        (apps/cronium-app/src/lib/scheduler/execution-counter.ts:24-35); never fails the run."""
        if self.max_executions <= 0:
            return
        count = executions_so_far(context, self.execution_count) + (1 if finished_now else 0)
        if not max_executions_reached(self.max_executions, count):
            return
        dag_id = context["ti"].dag_id
        try:
            from airflow.sdk import BaseHook

            from cronium_provider.hooks.airflow_api import DEFAULT_CONN_ID, AirflowApiHook

            BaseHook.get_connection(DEFAULT_CONN_ID)
        except Exception:
            self.log.warning(
                "maxExecutions %d reached: further runs of %s are skipped. To pause it as Cronium pauses the "
                "event, give the provider an Airflow API connection %s (http: api-server URL, a user that may "
                "edit DAGs)",
                self.max_executions,
                dag_id,
                "cronium_airflow_api",
            )
            return
        try:
            AirflowApiHook().set_paused(dag_id)
        except Exception as exc:
            self.log.warning("maxExecutions %d reached, but pausing %s failed: %s", self.max_executions, dag_id, exc)
            return
        self.log.info("maxExecutions %d reached: %s paused, as Cronium pauses the event", self.max_executions, dag_id)

    def _push_started(self, context: Context) -> None:
        """When the run started (``started_at`` XCom, ISO 8601): ``{{cronium.event.executionTime}}`` of the
        messages it fires."""
        ti = context.get("ti")
        started = getattr(ti, "start_date", None) or datetime.now(UTC)
        with contextlib.suppress(Exception):
            self.push_results(context, started_at=started.isoformat())

    def _push_status(self, context: Context, status: RunStatus, error: BaseException | None = None) -> None:
        """How the run ended, as Cronium's job status decides its actions (``run_status`` XCom): a run
        stopped by a person is CANCELLED and fires only its always actions. A failed run also pushes its
        ``error`` (``{{cronium.event.error}}`` of its messages), with every masked secret redacted."""
        with contextlib.suppress(Exception):  # the task may be going down; the actions then read "no status"
            values: dict[str, Any] = {"run_status": str(status)}
            if error is not None:
                from airflow.sdk._shared.secrets_masker import redact

                values["error"] = redact(str(error) or type(error).__name__)
            self.push_results(context, **values)

    @abstractmethod
    def run_event(self, context: Context, run_input: Any) -> Any:
        """Run the event with its input; the return value is the XCom ``return_value``. A sibling that
        can defer calls ``self.defer(..., method_name="execute_complete")`` here."""

    def resume_event(self, context: Context, event: dict[str, Any]) -> Any:
        """Finish a run that deferred, from its trigger's ``event``; the return value is the XCom
        ``return_value``. Only siblings that defer implement it."""
        raise NotImplementedError(f"{type(self).__name__} does not defer")

    def run_facts(self, context: Context) -> dict[str, Any]:
        """The event's facts with the run's own: what ``cronium.event()`` returns to a script."""
        ti = context.get("ti")
        dag_run = context.get("dag_run")
        logical_date = context.get("logical_date")
        return {
            **self.event,
            "airflow": {
                "dag_id": getattr(ti, "dag_id", None),
                "task_id": getattr(ti, "task_id", None),
                "run_id": getattr(dag_run, "run_id", None),
                "try_number": getattr(ti, "try_number", None),
                "logical_date": logical_date.isoformat() if logical_date is not None else None,
            },
        }

    @staticmethod
    def push_results(context: Context, **values: Any) -> None:
        """Push the run's result XComs (``condition``, ``metrics``, ``status``...), one key each."""
        ti = context["ti"]
        for key, value in values.items():
            ti.xcom_push(key=key, value=value)

    @property
    def killed(self) -> bool:
        """True once Airflow killed the task (timeout, marked failed, run stopped)."""
        return self._killed

    def on_kill(self) -> None:
        self._killed = True
        self.stop_run()

    def stop_run(self) -> None:
        """Stop whatever the run started (a container, remote processes); called from ``on_kill``."""


# What script_environment() adds without masking: the event's id and name.
UNMASKED_ENVIRONMENT = ("CRONIUM_EVENT_ID", "CRONIUM_EVENT_NAME")

# How long past the task's execution_timeout a deferral itself times out: a backstop only, the trigger stops
# the run at the timeout and reports it.
DEFERRAL_BACKSTOP_SECONDS = 120


def default_deferrable() -> bool:
    """``[cronium] deferrable``, else Airflow's ``[operators] default_deferrable``, else False."""
    return read_settings("deferrable").deferrable


class CroniumScriptEventOperator(CroniumEventOperator):
    """
    A BASH, PYTHON or NODEJS script event; the siblings decide where it runs.

    The script calls Cronium's runtime helpers with no import (``cronium.input()``, ``cronium.output()``,
    ``cronium.getVariable()``, ``cronium.setVariable()``, ``cronium.setCondition()``; ``cronium_*`` in
    Bash). Its output becomes the XCom ``return_value``, its condition the XCom ``condition``; variable
    changes are applied to Airflow Variables (``cronium_<key>`` by default) even when the script fails.

    :param language: ``BASH``, ``PYTHON`` or ``NODEJS``.
    :param script: the script text (not templated).
    :param environment: environment variables for the script (templated; values are masked in logs).
    :param secret_environment: env var name -> Airflow Variable key, read at run time and masked.
    :param variable_prefix: the Airflow Variable key prefix for Cronium variables.
    :param scope_variables_by_owner: give each event owner (``event['userId']``) its own variables.
    :param event_env_keys: the event's env var names; values come from the Airflow Variables
        ``cronium.env.<eventId>.<KEY>``, else from the record file ``records_source`` (read at run time).
    :param records_source: the record file of the event, for env var values not kept in Variables.
    :param max_result_bytes: the largest result file (``output()``, condition, variables) read back;
        default ``[cronium] max_result_bytes`` or 10 MB. A larger one fails the run, naming the limit.
    :param deferrable: start the script, then free the worker slot while it runs: the runner's trigger
        follows it (log lines, end, timeout, kill) and the task resumes only to collect the results.
        Default ``[cronium] deferrable``, else Airflow's ``[operators] default_deferrable``, else off.

    The lifecycle is this class's, once for every runner: :meth:`run_event` builds the run's
    ``ScriptJob`` (``cronium_provider.runners.base``), then either runs it attached (:meth:`run_attached`)
    or starts it and defers to the trigger :meth:`start_deferred` returns; :meth:`resume_event` hands the
    trigger's end to :meth:`collect_deferred`. Either way each run's
    ``ScriptRun`` is settled by :meth:`settle_run` (variables, tool
    actions, ``runners.base.judge``) within the sibling's :meth:`finish`.
    """

    # The script is never templated: Cronium scripts are code whose braces mean nothing to Jinja.
    template_fields: Sequence[str] = ("input_data", "environment")
    template_fields_renderers = {"input_data": "json", "environment": "json"}

    def __init__(
        self,
        *,
        language: str,
        script: str,
        environment: Mapping[str, str] | None = None,
        secret_environment: Mapping[str, str] | None = None,
        variable_prefix: str = VARIABLE_PREFIX,
        scope_variables_by_owner: bool = False,
        event_env_keys: Sequence[str] = (),
        records_source: str | None = None,
        max_result_bytes: int | None = None,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.deferrable = default_deferrable() if deferrable is None else bool(deferrable)
        self.max_result_bytes = max_result_bytes
        language = language.upper()
        if language not in LANGUAGES:
            raise CroniumInvalidParameter(f"language {language!r} is not one of {', '.join(LANGUAGES)}")
        self.language = language
        self.script = script
        self.environment = dict(environment or {})
        self.secret_environment = dict(secret_environment or {})
        self.variable_prefix = variable_prefix
        self.scope_variables_by_owner = scope_variables_by_owner
        self.event_env_keys = list(event_env_keys)
        self.records_source = records_source

    def run_facts(self, context: Context) -> dict[str, Any]:
        facts = super().run_facts(context)
        facts.setdefault("type", self.language)
        return facts

    # -- the lifecycle, once for every runner ------------------------------------------------------------
    def run_event(self, context: Context, run_input: Any) -> Any:
        """Build the run's ``ScriptJob`` (input, event facts, a snapshot of the variables, the environment),
        then run it attached, or start it and defer (``deferrable=True``)."""
        started = time.time()
        namespace = self.variables()
        job = ScriptJob(
            language=self.language,
            script=self.script,
            input=run_input,
            event=self.run_facts(context),
            variables=namespace.snapshot(),
            environment=self.script_environment(),
        )
        if self.deferrable:
            deadline, timeout_seconds, _ = self.deferral_limits(started)
            deferral = self.start_deferred(context, job, namespace, deadline, timeout_seconds)
            if isinstance(deferral, BaseTrigger):
                backstop = self.deferral_limits(started)[2]  # from now: the start took some of the timeout
                self.defer(trigger=deferral, method_name="execute_complete", timeout=backstop)
            return self.finish(context, namespace, deferral)  # nothing could be started
        return self.finish(context, namespace, self.run_attached(context, job))

    def resume_event(self, context: Context, event: dict[str, Any]) -> Any:
        """Collect a deferred run with the normal mode's code: its results, variables, actions, XComs and
        summary are those the normal mode gives."""
        end = RunEnd.of(event)
        self.deferral_over(context)
        if end is RunEnd.TIMEOUT:
            self.log.error(
                "The script ran past execution_timeout (%s s) while deferred: %s",
                event.get("timeout_seconds"),
                self.timeout_cleanup(event),
            )
            raise AirflowTaskTimeout(f"Timeout, PID: {os.getpid()}")  # the normal mode's timeout message
        namespace = self.variables()
        return self.finish(context, namespace, self.collect_deferred(context, end, event))

    @abstractmethod
    def run_attached(self, context: Context, job: ScriptJob) -> Any:
        """Run ``job`` attached (normal mode); returns what :meth:`finish` takes."""

    @abstractmethod
    def start_deferred(
        self,
        context: Context,
        job: ScriptJob,
        namespace: VariableNamespace,
        deadline: float | None,
        timeout_seconds: float | None,
    ) -> BaseTrigger | Any:
        """Start ``job`` detached and return the trigger that follows it (the task then defers), or, when
        nothing could be started, what :meth:`finish` takes. Whatever was started is stopped on an error."""

    @abstractmethod
    def collect_deferred(self, context: Context, end: RunEnd, event: Mapping[str, Any]) -> Any:
        """Collect a deferred run from its trigger's ``end`` and event; returns what :meth:`finish` takes."""

    @abstractmethod
    def finish(self, context: Context, namespace: VariableNamespace, outcome: Any) -> Any:
        """Settle the run's outcome (:meth:`settle_run` each run), push its XComs, log its summary, and
        raise when it failed; returns the XCom ``return_value``."""

    def deferral_over(self, context: Context) -> None:
        """Called first on resuming: forget what was kept for an earlier try (nothing by default)."""

    def timeout_cleanup(self, event: Mapping[str, Any]) -> str:
        """What the trigger did at the timeout, for the task's log."""
        return "it was stopped (SIGTERM, SIGKILL 5 s later) and its run was removed"

    def settle_run(
        self, context: Context, namespace: VariableNamespace, run: ScriptRun, prefix: str = ""
    ) -> Failure | None:
        """What follows every run that ended, as Cronium does it even when the script failed: its variable
        changes are applied and the tool actions it asked for sent; then whether it failed, and why."""
        results = run.results
        self.apply_variables(namespace, results.variable_changes if results is not None else None, prefix)
        failed_actions = self.carry_out_actions(context, results, prefix)
        self.push_run_log(context, run, prefix)
        return judge(run, killed=self.killed, failed_actions=failed_actions)

    def push_run_log(self, context: Context, run: ScriptRun, prefix: str = "") -> None:
        """The run's log as Cronium keeps it, for ``{{cronium.event.output}}`` and ``error`` of its messages:
        XComs ``stdout`` and ``stderr``, the end of each (at most 64 KiB a run, see
        ``runners.outcome.OUTPUT_TAIL_BYTES``), every masked secret redacted. When
        several runs are settled (a multi-server event), each one's text follows its ``prefix`` line."""
        from airflow.sdk._shared.secrets_masker import redact

        runs: list[tuple[str, ScriptRun]] = getattr(self, "_settled_runs", [])
        runs.append((prefix.strip(), run))
        self._settled_runs = runs

        def text(stream: str) -> str:
            if len(runs) == 1:
                return str(getattr(runs[0][1], stream))
            return "\n".join(f"{name}\n{getattr(r, stream)}" for name, r in runs if getattr(r, stream))

        with contextlib.suppress(Exception):  # the task may be going down; its messages then say less
            self.push_results(context, stdout=redact(text("stdout")), stderr=redact(text("stderr")))

    def result_limit(self) -> int:
        """The largest result file read back: the parameter, else ``[cronium] max_result_bytes``, else 10 MB."""
        if self.max_result_bytes:
            return int(self.max_result_bytes)
        return read_settings("max_result_bytes").max_result_bytes or DEFAULT_MAX_RESULT_BYTES

    def variables(self) -> VariableNamespace:
        """The Cronium variables this script reads and writes."""
        return VariableNamespace(
            self.variable_prefix, owner=self.event.get("userId"), scope_by_owner=self.scope_variables_by_owner
        )

    def deferral_limits(self, started: float) -> tuple[float | None, float | None, timedelta | None]:
        """For a run started at ``started`` (epoch seconds): when its ``execution_timeout`` ends (epoch
        seconds), that timeout in seconds, and the deferral's own backstop timeout (None: no timeout)."""
        timeout = self.execution_timeout
        if timeout is None:
            return None, None, None
        deadline = started + timeout.total_seconds()
        backstop = timedelta(seconds=max(0.0, deadline - time.time()) + DEFERRAL_BACKSTOP_SECONDS)
        return deadline, timeout.total_seconds(), backstop

    def script_environment(self) -> dict[str, str]:
        """The script's environment: its own values, its secrets and its event's env vars, all masked."""
        from airflow.sdk import Variable

        env = {str(k): str(v) for k, v in self.environment.items()}
        for name, variable_key in self.secret_environment.items():
            env[name] = str(Variable.get(variable_key))
        if self.event_env_keys:
            env.update(resolve_event_env(self.event.get("id"), self.event_env_keys, self.records_source))
        for value in env.values():
            if value:
                mask_value(value)
        event_id = self.event.get("id")
        env["CRONIUM_EVENT_ID"] = "" if event_id is None else str(event_id)
        env["CRONIUM_EVENT_NAME"] = str(self.event.get("name", self.task_id))
        return env

    @staticmethod
    def masked_environment_names(environment: Mapping[str, str]) -> list[str]:
        """The names in :meth:`script_environment` whose values it masks (all but the event's id and name)."""
        return [name for name, value in environment.items() if value and name not in UNMASKED_ENVIRONMENT]

    @staticmethod
    def sensitive_variables(variables: Mapping[str, Any], namespace: VariableNamespace) -> list[str]:
        """The variables whose values the task masks (a sensitive name, as Airflow decides for Variables)."""
        from airflow.sdk._shared.secrets_masker import should_hide_value_for_key

        return [
            key
            for key, value in variables.items()
            if value not in (None, "") and should_hide_value_for_key(namespace.airflow_key(key))  # type: ignore[no-untyped-call]
        ]

    def masked_values(
        self, environment: Mapping[str, str], variables: Mapping[str, Any], namespace: VariableNamespace
    ) -> list[Any]:
        """What a run masks in the task's log, for the triggerer to mask too: the script's environment values
        and the variables with a sensitive name, as the worker knew them before the script started."""
        return [environment[name] for name in self.masked_environment_names(environment)] + [
            variables[key] for key in self.sensitive_variables(variables, namespace)
        ]

    def carry_out_actions(self, context: Context, results: ScriptResults | None, prefix: str = "") -> list[str]:
        """Send the tool actions the script asked for, in order (also after a failed script: Cronium sends
        them while it runs); XCom ``actions`` holds each result. Returns what failed, for the task's result."""
        if results is None or not results.action_requests:
            return []
        from cronium_provider.tools.actions import carry_out_requests

        sent = carry_out_requests(
            self.log,
            results.action_requests,
            event=self.event,
            variable_prefix=self.variable_prefix,
            scope_variables_by_owner=self.scope_variables_by_owner,
        )
        self.push_results(context, actions=sent)
        return [f"{prefix}action {r['line']} ({r['tool']} {r['actionId']}): {r['error']}" for r in sent if "error" in r]

    def apply_variables(
        self, namespace: VariableNamespace, changes: Sequence[VariableChange] | None, prefix: str = ""
    ) -> None:
        """Apply the script's variable changes (also after a failure, as Cronium does); log names only."""
        if changes:
            for line in namespace.apply(changes):
                self.log.info("%svariable %s", prefix, line)
