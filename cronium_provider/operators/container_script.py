"""The operator for Cronium script events (BASH, PYTHON, NODEJS) in an isolated container on the worker."""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Iterator, Sequence
from typing import Any

from airflow.sdk import Context

from cronium_provider.exceptions import DockerUnreachable, ScriptFailed
from cronium_provider.naming import CONTAINER_LABEL_DAG, CONTAINER_LABEL_TASK
from cronium_provider.operators.event import CroniumScriptEventOperator
from cronium_provider.runners.container import ContainerExecutor, ContainerLimits, ScriptJob, remove_orphans
from cronium_provider.runners.outcome import ScriptRun
from cronium_provider.runners.run_folder import DEFAULT_RUN_FOLDER_MB
from cronium_provider.variables import VariableNamespace

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


def _size(n: float | None) -> str:
    if n is None:
        return "n/a"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n = n / 1024
    return str(n)


def _signal_text(exit_code: int) -> str:
    """``: killed by SIGKILL (signal 9)`` for an exit code above 128 that names a signal (the shell's rule:
    ``docker kill``, the kernel), else nothing."""
    with contextlib.suppress(ValueError):
        if exit_code > 128:
            number = exit_code - 128
            return f": killed by {signal.Signals(number).name} (signal {number})"
    return ""


def _daemon_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the Docker daemon is not there: its socket is gone, the
    connection was refused or dropped (the daemon was stopped or restarted)."""
    from requests.exceptions import ConnectionError as RequestsConnectionError

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, RequestsConnectionError | ConnectionError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


@contextlib.contextmanager
def docker_daemon_errors(url: str | None) -> Iterator[None]:
    """Turn a lost Docker daemon into a :class:`DockerUnreachable` that names it (not a bare traceback)."""
    try:
        yield
    except Exception as exc:
        if not _daemon_unreachable(exc):
            raise
        raise DockerUnreachable(
            f"The Docker daemon at {url} could not be reached or stopped answering during the run (was it "
            f"stopped or restarted?): {exc}. The run's container and run folder, if it had any, are removed by "
            "the next script run on this host once the daemon answers again."
        ) from exc


class CroniumScriptOperator(CroniumScriptEventOperator):
    """
    Run a Cronium BASH, PYTHON or NODEJS script in an isolated container.

    Every parameter of :class:`~cronium_provider.operators.event.CroniumScriptEventOperator` and
    :class:`~cronium_provider.operators.event.CroniumEventOperator` applies, and:

    :param image: the container image; default ``[cronium] image_<language>`` or ``cronium-runtime:1``.
    :param cpus: CPU limit (default 0.5, at most 2).
    :param memory_mb: memory limit in MB (default 512, at most 2048).
    :param pids: process limit (default 100, at most 1000).
    :param network: Docker network mode: ``none`` (default) or ``host``.
    :param run_folder_mb: the size of the script's run folder ``/cronium`` (its helpers, input, results and
        whatever it writes there), in MB; default ``[cronium] run_folder_mb`` or 100, as ``/tmp``; at most
        1024. It is memory (tmpfs), never the Docker host's disk; a script that fills it is refused space
        and a failed run says the folder was full.
    :param docker_conn_id: an Airflow Docker connection for registry login (optional).
    :param docker_url: the Docker daemon's URL; default ``[cronium] docker_url`` or the local socket.
    Before each run, containers of this host whose task process is gone (killed with SIGKILL, out of
    memory, worker lost) are removed with their run folders.
    """

    template_fields: Sequence[str] = (*CroniumScriptEventOperator.template_fields, "image")
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        image: str | None = None,
        cpus: float = 0.5,
        memory_mb: int = 512,
        pids: int = 100,
        network: str = "none",
        run_folder_mb: int | None = None,
        docker_conn_id: str | None = None,
        docker_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.image = image
        if run_folder_mb is None:
            run_folder_mb = int(_config("run_folder_mb", None) or DEFAULT_RUN_FOLDER_MB)
        self.limits = ContainerLimits(
            cpus=cpus, memory_mb=memory_mb, pids=pids, network=network, run_folder_mb=run_folder_mb
        )
        self.docker_conn_id = docker_conn_id
        self.docker_url = docker_url
        self._executor: ContainerExecutor | None = None

    def _client(self) -> Any:
        from airflow.providers.docker.hooks.docker import DockerHook

        url = self.docker_url or _config("docker_url", DEFAULT_DOCKER_URL)
        return DockerHook(docker_conn_id=self.docker_conn_id, base_url=url, timeout=300).get_conn()

    def _log_line(self, stream: str, line: str) -> None:
        self.log.info("[%s] %s", stream, line)

    def run_event(self, context: Context, run_input: Any) -> Any:
        namespace = self.variables()
        image = self.image or default_image(self.language)
        ti = context.get("ti")
        job = ScriptJob(
            language=self.language,
            script=self.script,
            image=image,
            input=run_input,
            event=self.run_facts(context),
            variables=namespace.snapshot(),
            environment=self.script_environment(),
            limits=self.limits,
            labels={
                CONTAINER_LABEL_DAG: str(getattr(ti, "dag_id", "")),
                CONTAINER_LABEL_TASK: str(getattr(ti, "task_id", "")),
            },
        )
        with docker_daemon_errors(self.docker_url or _config("docker_url", DEFAULT_DOCKER_URL)):
            client = self._client()
            for orphan in remove_orphans(client):
                self.log.warning("Removed container %s: its task process is gone (killed or lost)", orphan[:12])
            self._executor = ContainerExecutor(client, on_line=self._log_line, max_result_bytes=self.result_limit())
            self.log.info("Running %s script in %s (limits: %s)", self.language, image, self.limits)
            try:
                run = self._executor.run(job)
            finally:
                self._executor = None
        return self._finish(run, namespace, image, context)

    def _finish(self, run: ScriptRun, namespace: VariableNamespace, image: str, context: Context) -> Any:
        results = run.results
        self.apply_variables(namespace, results.variable_changes if results is not None else None)
        failed_actions = self.carry_out_actions(context, results)
        condition = bool(results.condition) if results is not None and results.condition is not None else False
        self.push_results(context, metrics=run.metrics(image), condition=condition)
        has_output = results is not None and results.has_output
        output_size = len(json.dumps(results.output)) if results is not None and has_output else 0
        self.log.info(
            "cronium summary: exit %s in %.2f s, peak memory %s, output %s, condition %s, %d variable change(s)",
            run.exit_code,
            run.duration_seconds,
            _size(run.peak_memory_bytes),
            _size(output_size) if has_output else "none",
            str(condition).lower(),
            len(results.variable_changes) if results is not None else 0,
        )
        if run.oom_killed:
            raise ScriptFailed(
                f"The script ran out of memory (limit {self.limits.memory_mb} MB) and was killed "
                f"(exit code {run.exit_code}). Raise memory_mb (at most {ContainerLimits.MAX_MEMORY_MB})."
            )
        if self.killed:
            raise ScriptFailed(f"The task was killed; its container was stopped (exit code {run.exit_code}).")
        if run.exit_code != 0:
            tail = "\n".join(run.stderr_tail[-10:]) or "(no stderr)"
            limit = f" {run.limit_reached}" if run.limit_reached else ""
            raise ScriptFailed(
                f"The script exited with code {run.exit_code}{_signal_text(run.exit_code)}.{limit} "
                f"Last stderr lines:\n{tail}"
            )
        if run.protocol_error is not None:
            raise ScriptFailed(f"The script's result files are invalid: {run.protocol_error}")
        if failed_actions:
            raise ScriptFailed("Tool action(s) the script asked for failed: " + "; ".join(failed_actions))
        return results.output if results is not None and results.has_output else None

    def stop_run(self) -> None:
        """Stop the container as Cronium does: SIGTERM, then SIGKILL 5 s later; ``run_event`` then removes it."""
        executor = self._executor
        if executor is not None:
            self.log.warning("Task killed: stopping the script's container")
            executor.stop(timeout=5)
