"""The operator for Cronium script events (BASH, PYTHON, NODEJS) in an isolated container on the worker."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import Context

from cronium_provider.config import read_settings
from cronium_provider.exceptions import DockerUnreachable, ScriptFailed
from cronium_provider.naming import (
    CONTAINER_LABEL_DAG,
    CONTAINER_LABEL_DEFERRED,
    CONTAINER_LABEL_MAP_INDEX,
    CONTAINER_LABEL_RUN_ID,
    CONTAINER_LABEL_TASK,
    CONTAINER_LABEL_TRY,
)
from cronium_provider.operators.event import CroniumScriptEventOperator
from cronium_provider.runners.base import RunEnd, ScriptJob
from cronium_provider.runners.container import (
    ContainerExecutor,
    ContainerLimits,
    remove_orphans,
)
from cronium_provider.runners.outcome import ScriptRun
from cronium_provider.variables import VariableNamespace

if TYPE_CHECKING:
    from cronium_provider.triggers.container import CroniumContainerTrigger


def default_image(language: str) -> str:
    """``[cronium] image_<language>`` (e.g. ``image_python``), else ``[cronium] image``, else the project image."""
    return read_settings("image", f"image_{language.lower()}").image_for(language)


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
    """Turn a lost Docker daemon into a :class:`~cronium_provider.exceptions.DockerUnreachable` that names it
    (not a bare traceback)."""
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


# A try in one of these states has ended: its deferred container, if still there, is left over.
_TRY_OVER_STATES = {None, "success", "failed", "skipped", "upstream_failed", "removed", "up_for_retry", "restarting"}
# Asking Airflow about other tasks' deferred containers costs a request per DAG run: a host does it at most
# this often (the runs in between skip it; many tasks starting at once would otherwise each ask for all).
DEFERRED_SWEEP_SECONDS = 60


def deferred_sweep_stamp() -> Path:
    """The file whose modification time says when a task on this host last asked (one per OS user)."""
    return Path(tempfile.gettempdir()) / f"cronium-deferred-sweep-{os.getuid()}"


def _deferred_sweep_due() -> bool:
    stamp = deferred_sweep_stamp()
    with contextlib.suppress(OSError):
        if time.time() - stamp.stat().st_mtime < DEFERRED_SWEEP_SECONDS:
            return False
    with contextlib.suppress(OSError):
        stamp.touch()
    return True


def deferred_try_over(context: Context) -> Callable[[Mapping[str, str]], bool]:
    """Whether the try that started a deferred container has ended, from its labels: an earlier try of the
    running task (it was cleared), or a task instance whose state says its try is over (cleared, marked
    failed or successful before the triggerer took it up, its triggerer down). Asks Airflow once per DAG
    run, at most every ``DEFERRED_SWEEP_SECONDS`` per host; a task instance it does not know of, or a
    failed question, keeps the container."""
    ti = context.get("ti")
    me = tuple(str(getattr(ti, name, "")) for name in ("dag_id", "task_id", "run_id", "map_index"))
    my_try = str(getattr(ti, "try_number", ""))
    runs: dict[tuple[str, str], dict[str, Any] | None] = {}
    sweep: list[bool] = []  # decided on the first deferred container of another task

    def over(labels: Mapping[str, str]) -> bool:
        dag_id, task_id, run_id, map_index = (
            labels.get(CONTAINER_LABEL_DAG, ""),
            labels.get(CONTAINER_LABEL_TASK, ""),
            labels.get(CONTAINER_LABEL_RUN_ID, ""),
            labels.get(CONTAINER_LABEL_MAP_INDEX, ""),
        )
        if not (dag_id and task_id and run_id and map_index.lstrip("-").isdigit()):
            return False
        if (dag_id, task_id, run_id, map_index) == me:
            return labels.get(CONTAINER_LABEL_TRY) != my_try  # an earlier try of this very task
        if not sweep:
            sweep.append(_deferred_sweep_due())
        if (dag_id, run_id) not in runs:
            runs[(dag_id, run_id)] = None
            if ti is None or not sweep[0]:
                return False
            with contextlib.suppress(Exception):  # Airflow did not answer: the container is kept
                runs[(dag_id, run_id)] = ti.get_task_states(dag_id=dag_id, run_ids=[run_id]).get(run_id, {})
        states = runs[(dag_id, run_id)]
        key = task_id if int(map_index) < 0 else f"{task_id}_{map_index}"
        if states is None or key not in states:
            return False
        state = states[key]
        return getattr(state, "value", state) in _TRY_OVER_STATES

    return over


class CroniumScriptOperator(CroniumScriptEventOperator):
    """
    Run a Cronium BASH, PYTHON or NODEJS script in an isolated container.

    Every parameter of :class:`~cronium_provider.operators.event.CroniumScriptEventOperator` and
    :class:`~cronium_provider.operators.event.CroniumEventOperator` applies, and:

    :param image: the container image; default ``[cronium] image_<language>`` or ``cronium-runtime:2``.
    :param cpus: CPU limit (default 0.5, at most 2).
    :param memory_mb: memory limit in MB (default 512, at most 2048).
    :param pids: process limit (default 100, at most 1000).
    :param network: the Docker network the container joins: ``none`` (no network but its own loopback),
        ``host``, ``bridge`` or a network's name; default ``[cronium] script_network`` or ``none``.
    :param run_folder_mb: the size of the script's run folder ``/cronium`` (its helpers, input, results and
        whatever it writes there), in MB; default ``[cronium] run_folder_mb`` or 100, as ``/tmp``; at most
        1024. It is memory (tmpfs), never the Docker host's disk; a script that fills it is refused space
        and a failed run says the folder was full.
    :param container_log_mb: what Docker keeps of the script's output on its host, in MB; default
        ``[cronium] container_log_mb`` or 10; at most 1024. The task log gets every line as it is printed
        whatever this is; Docker keeps only the newest (two json-file logs of half this size).
    :param docker_conn_id: an Airflow Docker connection for registry login (optional).
    :param docker_url: the Docker daemon's URL; default ``[cronium] docker_url`` or the local socket.
    :param deferrable: start the container, then free the worker slot while the script runs: the triggerer
        follows the container (log lines, exit, timeout, kill) and the task resumes only to collect the
        results. Default ``[cronium] deferrable``, else Airflow's ``[operators] default_deferrable``, else
        off. The triggerer and the workers must reach the same Docker daemon (``docker_url``).

    Before each run, containers of this host whose task process is gone (killed with SIGKILL, out of
    memory, worker lost) are removed with their run folders, and deferred runs' containers whose try is over.
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
        network: str | None = None,
        run_folder_mb: int | None = None,
        container_log_mb: int | None = None,
        docker_conn_id: str | None = None,
        docker_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.image = image
        if run_folder_mb is None or container_log_mb is None or network is None:
            settings = read_settings("run_folder_mb", "container_log_mb", "script_network")
            run_folder_mb = settings.run_folder_mb if run_folder_mb is None else run_folder_mb
            container_log_mb = settings.container_log_mb if container_log_mb is None else container_log_mb
            network = settings.script_network if network is None else network
        self.limits = ContainerLimits(
            cpus=cpus,
            memory_mb=memory_mb,
            pids=pids,
            network=network,
            run_folder_mb=run_folder_mb,
            log_mb=container_log_mb,
        )
        self.docker_conn_id = docker_conn_id
        self.docker_url = docker_url
        self._executor: ContainerExecutor | None = None

    def _client(self) -> Any:
        from airflow.providers.docker.hooks.docker import DockerHook

        url = self._docker_url()
        return DockerHook(docker_conn_id=self.docker_conn_id, base_url=url, timeout=300).get_conn()

    def _log_line(self, stream: str, line: str) -> None:
        self.log.info("[%s] %s", stream, line)

    def _run_labels(self, context: Context) -> dict[str, str]:
        """The run's container labels: its task instance, and whether it is deferred."""
        ti = context.get("ti")
        return {
            CONTAINER_LABEL_DAG: str(getattr(ti, "dag_id", "")),
            CONTAINER_LABEL_TASK: str(getattr(ti, "task_id", "")),
            CONTAINER_LABEL_RUN_ID: str(getattr(ti, "run_id", "")),
            CONTAINER_LABEL_MAP_INDEX: str(getattr(ti, "map_index", -1)),
            CONTAINER_LABEL_TRY: str(getattr(ti, "try_number", "")),
            **({CONTAINER_LABEL_DEFERRED: "true"} if self.deferrable else {}),
        }

    def _new_executor(self, context: Context | None = None) -> ContainerExecutor:
        """A Docker client and an executor on it; with ``context`` (a run starts), once this host's
        left-over containers are removed."""
        client = self._client()
        if context is not None:
            for orphan in remove_orphans(client, deferred_over=deferred_try_over(context)):
                self.log.warning(
                    "Removed container %s: its task process is gone (killed or lost), or its deferred try is over",
                    orphan[:12],
                )
        return ContainerExecutor(
            client,
            on_line=self._log_line,
            max_result_bytes=self.result_limit(),
            image=self.image or default_image(self.language),
            limits=self.limits,
            labels=self._run_labels(context) if context is not None else None,
        )

    def run_attached(self, context: Context, job: ScriptJob) -> ScriptRun:
        with docker_daemon_errors(self._docker_url()):
            self._executor = self._new_executor(context)
            self.log.info("Running %s script in %s (limits: %s)", self.language, self._executor.image, self.limits)
            try:
                return self._executor.run(job)
            finally:
                self._executor = None

    def _docker_url(self) -> str:
        return self.docker_url or read_settings("docker_url").docker_url

    def start_deferred(
        self,
        context: Context,
        job: ScriptJob,
        namespace: VariableNamespace,
        deadline: float | None,
        timeout_seconds: float | None,
    ) -> CroniumContainerTrigger:
        """Start the container; ``CroniumContainerTrigger``
        follows it. The container carries the deferred label from its creation, so no worker's orphan
        cleanup removes it once this process has ended, until Airflow says its try is over (see
        :func:`deferred_try_over`): that also covers a task process killed between the start and the
        deferral (a few milliseconds), once Airflow has failed that try."""
        from cronium_provider.triggers.container import CroniumContainerTrigger

        with docker_daemon_errors(self._docker_url()):
            executor = self._executor = self._new_executor(context)  # a kill until the deferral stops it
            self.log.info("Running %s script in %s (limits: %s)", self.language, executor.image, self.limits)
            try:
                handle = executor.start(job)
            except BaseException:
                self._executor = None
                raise
            try:
                container_id = str(handle["container_id"])
                trigger = CroniumContainerTrigger(
                    container_id=container_id,
                    volume=str(handle["volume"]),
                    holder=handle["holder"],
                    run_folder_mb=int(handle["run_folder_mb"]),
                    docker_url=self._docker_url(),
                    deadline=deadline,
                    timeout_seconds=timeout_seconds,
                    masked=self.masked_values(job.environment, job.variables, namespace),
                    task_label=f"{self.dag_id}.{self.task_id}",
                )
            except BaseException:
                self._executor = None
                executor.remove()
                raise
        # a kill until the deferral stops the container; the task process ends with the deferral
        self.log.info(
            "Deferred: container %s runs the script; the triggerer follows it (its lines follow in this log) "
            "and the task resumes to collect its results",
            container_id[:12],
        )
        return trigger

    def timeout_cleanup(self, event: Mapping[str, Any]) -> str:
        container = str(event.get("container_id") or "")[:12]
        return f"its container {container} was stopped (SIGTERM, SIGKILL 5 s later) and removed with its run folder"

    def collect_deferred(self, context: Context, end: RunEnd, event: Mapping[str, Any]) -> ScriptRun:
        """Collect the deferred run with the normal mode's code; the container and run folder are removed."""
        container_id = str(event.get("container_id") or "")
        with docker_daemon_errors(self._docker_url()):
            executor = self._new_executor()
            executor.adopt(event)
            try:
                if end is not RunEnd.EXITED:
                    raise ScriptFailed(
                        f"The deferred run failed: {event.get('message') or event}. Its container was removed."
                    )
                return self._collect_deferred(executor, container_id, event)
            finally:
                executor.remove()

    def finish(self, context: Context, namespace: VariableNamespace, outcome: ScriptRun) -> Any:
        """The run's XComs, its summary line; the error when it failed."""
        run = outcome
        image = self.image or default_image(self.language)
        results = run.results
        failure = self.settle_run(context, namespace, run)
        self.push_results(context, metrics=run.metrics(image), condition=run.condition)
        self.log.info("%s", run.summary())
        if failure is not None:
            raise ScriptFailed(
                failure.message(
                    memory_mb=self.limits.memory_mb,
                    max_memory_mb=ContainerLimits.MAX_MEMORY_MB,
                    stopped="its container was stopped",
                )
            )
        return results.output if results is not None and results.has_output else None

    @staticmethod
    def _collect_deferred(executor: ContainerExecutor, container_id: str, event: Mapping[str, Any]) -> ScriptRun:
        from docker.errors import NotFound

        try:
            return executor.collect(event)
        except NotFound as exc:
            raise ScriptFailed(
                f"The script's container {container_id[:12]} is gone: it was removed while the task was deferred "
                f"(exit code {event.get('exit_code')}), so its results cannot be read."
            ) from exc

    def stop_run(self) -> None:
        """Stop the container as Cronium does: SIGTERM, then SIGKILL 5 s later; ``run_event`` then removes it."""
        executor = self._executor
        if executor is not None:
            self.log.warning("Task killed: stopping the script's container")
            executor.stop(timeout=5)
