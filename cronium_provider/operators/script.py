"""The operator for Cronium script events (BASH, PYTHON, NODEJS) run in isolated containers.

It gathers the run's input, the event's metadata and the Cronium variables, hands a job to the
:class:`~cronium_provider.executors.container.ContainerExecutor`, and turns the result into XCom
(``return_value`` = ``cronium.output()``, ``condition``, ``metrics``), Airflow Variables and task state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from cronium_provider.executors.container import ContainerExecutor, ContainerLimits, ScriptJob
from cronium_provider.executors.protocol import LANGUAGES, ScriptResults
from cronium_provider.executors.runs import ScriptRun
from cronium_provider.links import CroniumEventLink
from cronium_provider.operators.base import check_max_executions, run_input
from cronium_provider.operators.workflow import incoming_pairs, node_input
from cronium_provider.secrets import resolve_event_env
from cronium_provider.variables import DEFAULT_PREFIX, VariableNamespace

DEFAULT_IMAGE = "cronium-runtime:1"
DEFAULT_DOCKER_URL = "unix://var/run/docker.sock"
CONFIG_SECTION = "cronium"


def _config(key: str, fallback: str | None) -> str | None:
    from airflow.providers.common.compat.sdk import conf

    value = conf.get(CONFIG_SECTION, key, fallback=fallback)
    return str(value) if value is not None else None


def default_image(language: str) -> str:
    """``[cronium] image_<language>`` (e.g. ``image_python``), else ``[cronium] image``, else the project image."""
    return _config(f"image_{language.lower()}", None) or _config("image", DEFAULT_IMAGE) or DEFAULT_IMAGE


def _size(n: int | None) -> str:
    if n is None:
        return "n/a"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n = n / 1024  # type: ignore[assignment]
    return str(n)


class CroniumScriptOperator(BaseOperator):
    """
    Run a Cronium BASH, PYTHON or NODEJS script in an isolated container.

    The script calls Cronium's runtime helpers with no import (``cronium.input()``, ``cronium.output()``,
    ``cronium.getVariable()``, ``cronium.setVariable()``, ``cronium.setCondition()``; ``cronium_*`` in
    Bash). Its output becomes the XCom ``return_value``, its condition the XCom ``condition``; variable
    changes are applied to Airflow Variables (``cronium_<key>`` by default) even when the script fails.

    :param language: ``BASH``, ``PYTHON`` or ``NODEJS``.
    :param script: the script text (not templated).
    :param event: the event's metadata, handed to ``cronium.event()`` (id, name, type, userId, ...).
    :param input_data: the script's ``cronium.input()``; default: the DAG run's ``conf`` (templated).
    :param environment: environment variables for the script (templated; values are masked in logs).
    :param secret_environment: env var name -> Airflow Variable key, read at run time and masked.
    :param image: the container image; default ``[cronium] image_<language>`` or ``cronium-runtime:1``.
    :param cpus: CPU limit (default 0.5, at most 2).
    :param memory_mb: memory limit in MB (default 512, at most 2048).
    :param pids: process limit (default 100, at most 1000).
    :param network: Docker network mode: ``none`` (default) or ``host``.
    :param docker_conn_id: an Airflow Docker connection for registry login (optional).
    :param docker_url: the Docker daemon's URL; default ``[cronium] docker_url`` or the local socket.
    :param variable_prefix: the Airflow Variable key prefix for Cronium variables.
    :param scope_variables_by_owner: give each event owner (``event['userId']``) its own variables.
    :param event_env_keys: the event's env var names; values come from the Airflow Variables
        ``cronium_env_<eventId>_<KEY>``, else from the record file ``records_source`` (read at run time).
    :param records_source: the record file of the event, for env var values not kept in Variables.
    :param max_executions: Cronium's ``maxExecutions`` (0 = unlimited); runs past it are skipped.
    :param execution_count: Cronium's ``executionCount``, added to the DAG's runs for that limit.
    :param workflow_incoming: as a workflow node, its incoming connections ``[(parent task id, type)]``:
        the node runs only when all are satisfied, and its input comes from its parents.
    """

    # The script is never templated: Cronium scripts are code whose braces mean nothing to Jinja.
    template_fields: Sequence[str] = ("input_data", "environment", "image")
    template_fields_renderers = {"input_data": "json", "environment": "json"}
    operator_extra_links = (CroniumEventLink(),)
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        language: str,
        script: str,
        event: Mapping[str, Any] | None = None,
        input_data: Any = None,
        environment: Mapping[str, str] | None = None,
        secret_environment: Mapping[str, str] | None = None,
        image: str | None = None,
        cpus: float = 0.5,
        memory_mb: int = 512,
        pids: int = 100,
        network: str = "none",
        docker_conn_id: str | None = None,
        docker_url: str | None = None,
        variable_prefix: str = DEFAULT_PREFIX,
        scope_variables_by_owner: bool = False,
        event_env_keys: Sequence[str] = (),
        records_source: str | None = None,
        max_executions: int = 0,
        execution_count: int = 0,
        workflow_incoming: Sequence[Sequence[str]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        language = language.upper()
        if language not in LANGUAGES:
            raise ValueError(f"language {language!r} is not one of {', '.join(LANGUAGES)}")
        self.language = language
        self.script = script
        self.event = dict(event or {})
        self.input_data = input_data
        self.environment = dict(environment or {})
        self.secret_environment = dict(secret_environment or {})
        self.image = image
        self.limits = ContainerLimits(cpus=cpus, memory_mb=memory_mb, pids=pids, network=network)
        self.docker_conn_id = docker_conn_id
        self.docker_url = docker_url
        self.variable_prefix = variable_prefix
        self.scope_variables_by_owner = scope_variables_by_owner
        self.event_env_keys = list(event_env_keys)
        self.records_source = records_source
        self.max_executions = max_executions
        self.execution_count = execution_count
        self.workflow_incoming = incoming_pairs(workflow_incoming)
        self._executor: ContainerExecutor | None = None
        self._killed = False

    # -- gathering -----------------------------------------------------------------------------
    def _input(self, context: Any) -> Any:
        if self.workflow_incoming is not None:
            return node_input(context, self.workflow_incoming)
        return run_input(context, self.input_data)

    def _event_json(self, context: Any) -> dict[str, Any]:
        ti = context.get("ti")
        dag_run = context.get("dag_run")
        logical_date = context.get("logical_date")
        return {
            **self.event,
            "type": self.event.get("type", self.language),
            "airflow": {
                "dag_id": getattr(ti, "dag_id", None),
                "task_id": getattr(ti, "task_id", None),
                "run_id": getattr(dag_run, "run_id", None),
                "try_number": getattr(ti, "try_number", None),
                "logical_date": logical_date.isoformat() if logical_date is not None else None,
            },
        }

    def _environment(self) -> dict[str, str]:
        from airflow.sdk import Variable
        from airflow.sdk.log import mask_secret

        env = {str(k): str(v) for k, v in self.environment.items()}
        for name, variable_key in self.secret_environment.items():
            env[name] = str(Variable.get(variable_key))
        if self.event_env_keys:
            env.update(resolve_event_env(self.event.get("id"), self.event_env_keys, self.records_source))
        for value in env.values():
            if value:
                mask_secret(value)
        event_id = self.event.get("id")
        env["CRONIUM_EVENT_ID"] = "" if event_id is None else str(event_id)
        env["CRONIUM_EVENT_NAME"] = str(self.event.get("name", self.task_id))
        return env

    def _client(self) -> Any:
        from airflow.providers.docker.hooks.docker import DockerHook

        url = self.docker_url or _config("docker_url", DEFAULT_DOCKER_URL)
        return DockerHook(docker_conn_id=self.docker_conn_id, base_url=url, timeout=300).get_conn()

    # -- running -------------------------------------------------------------------------------
    def _log_line(self, stream: str, line: str) -> None:
        self.log.info("[%s] %s", stream, line)

    def execute(self, context: Any) -> Any:
        check_max_executions(context, self.max_executions, self.execution_count)
        script_input = self._input(context)  # a workflow node not reached is skipped here
        namespace = VariableNamespace(
            self.variable_prefix, owner=self.event.get("userId"), scope_by_owner=self.scope_variables_by_owner
        )
        image = self.image or default_image(self.language)
        ti = context.get("ti")
        job = ScriptJob(
            language=self.language,
            script=self.script,
            image=image,
            input=script_input,
            event=self._event_json(context),
            variables=namespace.snapshot(),
            environment=self._environment(),
            limits=self.limits,
            labels={
                "org.cronium.dag_id": str(getattr(ti, "dag_id", "")),
                "org.cronium.task_id": str(getattr(ti, "task_id", "")),
            },
        )
        self._executor = ContainerExecutor(self._client(), on_line=self._log_line)
        self.log.info("Running %s script in %s (limits: %s)", self.language, image, self.limits)
        try:
            run = self._executor.run(job)
        finally:
            self._executor = None
        return self._finish(run, namespace, image, context)

    def _finish(self, run: ScriptRun, namespace: VariableNamespace, image: str, context: Any) -> Any:
        ti = context["ti"]
        results: ScriptResults | None = run.results
        if results is not None and results.variable_changes:
            for line in namespace.apply(results.variable_changes):
                self.log.info("variable %s", line)
        metrics = run.metrics(image)
        ti.xcom_push(key="metrics", value=metrics)
        condition = bool(results.condition) if results is not None and results.condition is not None else False
        ti.xcom_push(key="condition", value=condition)
        output_size = len(json.dumps(results.output)) if results is not None and results.has_output else 0
        self.log.info(
            "cronium summary: exit %s in %.2f s, peak memory %s, output %s, condition %s, %d variable change(s)",
            run.exit_code,
            run.duration_seconds,
            _size(run.peak_memory_bytes),
            _size(output_size) if results is not None and results.has_output else "none",
            str(condition).lower(),
            len(results.variable_changes) if results is not None else 0,
        )
        if run.oom_killed:
            raise AirflowException(
                f"The script ran out of memory (limit {self.limits.memory_mb} MB) and was killed "
                f"(exit code {run.exit_code}). Raise memory_mb (at most {ContainerLimits.MAX_MEMORY_MB})."
            )
        if self._killed:
            raise AirflowException(f"The task was killed; its container was stopped (exit code {run.exit_code}).")
        if run.exit_code != 0:
            tail = "\n".join(run.stderr_tail[-10:]) or "(no stderr)"
            raise AirflowException(f"The script exited with code {run.exit_code}. Last stderr lines:\n{tail}")
        if run.protocol_error is not None:
            raise AirflowException(f"The script's result files are invalid: {run.protocol_error}")
        return results.output if results is not None and results.has_output else None

    def on_kill(self) -> None:
        """Stop the container as Cronium does: SIGTERM, then SIGKILL 5 s later; ``execute`` then removes it."""
        executor = self._executor
        if executor is not None:
            self._killed = True
            self.log.warning("Task killed: stopping the script's container")
            executor.stop(timeout=5)
