"""What every runner shares: the job, the protocol a runner speaks, how a deferred run ended, how a run failed.

A *runner* is a place a script runs (a container on the worker's Docker daemon, a server over SSH; a
Kubernetes pod would be a third, see ``docs/kubernetes.md``). Each is one module here with a class that
speaks :class:`Runner` for one run, plus one trigger in :mod:`cronium_provider.triggers` that follows a
deferred run. The script-event operator (:class:`~cronium_provider.operators.event.CroniumScriptEventOperator`)
owns the lifecycle around them once: build the :class:`ScriptJob`, run it attached, or start it and defer,
then settle each run's :class:`~cronium_provider.runners.outcome.ScriptRun` with :func:`judge`.
"""

from __future__ import annotations

import enum
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from cronium_provider.runners.outcome import ScriptRun
from cronium_provider.runners.protocol import build_run_files
from cronium_provider.states import RunEnd

__all__ = ["Failure", "FailureKind", "RunEnd", "Runner", "ScriptJob", "judge", "signal_text"]


@dataclass(frozen=True)
class ScriptJob:
    """Everything one script run needs, wherever it runs (where and within which limits is the runner's)."""

    language: str
    script: str
    input: Any = None
    event: Mapping[str, Any] = field(default_factory=dict)
    variables: Mapping[str, Any] = field(default_factory=dict)
    environment: Mapping[str, str] = field(default_factory=dict)

    def files(self) -> dict[str, bytes]:
        """The run folder's files: the script, its helpers, its input, event and variables."""
        return build_run_files(self.language, self.script, input=self.input, event=self.event, variables=self.variables)

    def with_environment(self, **extra: str) -> ScriptJob:
        """This job with more environment variables (``CRONIUM_SERVER`` for one server of many)."""
        return replace(self, environment={**self.environment, **extra})


class Runner(Protocol):
    """One script run in one place. A runner instance serves one run; every method but :meth:`run` and
    :meth:`start` acts on the run it ran, started or adopted.

    * :meth:`run`: prepare, start, hand each output line to the runner's line callback until the script
      ends, collect; the run's traces are removed in every outcome (normal mode).
    * :meth:`start`: prepare and start, follow nothing; returns the run's *handle*, a JSON-safe mapping
      its trigger and :meth:`adopt` take (deferred mode). On an error nothing is left behind.
    * :meth:`adopt`: take over a run another process started, from its handle (the resumed task).
    * :meth:`collect`: the ended run's :class:`ScriptRun`, from what its trigger said (``end``: the trigger
      event's facts: exit code, duration, peak memory); removes the run.
    * :meth:`stop`: stop the script (SIGTERM, SIGKILL 5 s later): the task was killed or timed out.
    * :meth:`remove`: remove what is left of the run; never raises.
    """

    def run(self, job: ScriptJob) -> ScriptRun: ...

    def start(self, job: ScriptJob) -> dict[str, Any]: ...

    def adopt(self, handle: Mapping[str, Any]) -> None: ...

    def collect(self, end: Mapping[str, Any]) -> ScriptRun: ...

    def stop(self) -> None: ...

    def remove(self) -> None: ...


class FailureKind(enum.StrEnum):
    """Why a script run failed, in the order they are looked for."""

    OUT_OF_MEMORY = "out_of_memory"
    KILLED = "killed"
    EXIT_CODE = "exit_code"
    RESULT_FILES = "result_files"
    TOOL_ACTIONS = "tool_actions"


def signal_text(exit_code: int) -> str:
    """``: killed by SIGKILL (signal 9)`` for an exit code above 128 that names a signal (the shell's rule:
    ``docker kill``, the kernel), else nothing."""
    if exit_code > 128:
        try:
            name = signal.Signals(exit_code - 128).name
        except ValueError:
            return ""
        return f": killed by {name} (signal {exit_code - 128})"
    return ""


@dataclass(frozen=True)
class Failure:
    """Why one run failed, worded for the task's error (:meth:`message`) or one server's line (:meth:`brief`)."""

    kind: FailureKind
    run: ScriptRun
    detail: str = ""  # the result files' problem, the failed tool actions

    def message(self, *, memory_mb: int = 0, max_memory_mb: int = 0, stopped: str = "its script was stopped") -> str:
        """The task's error: ``memory_mb`` and ``max_memory_mb`` the run's memory limit and the most it may be
        raised to, ``stopped`` what a kill stopped (``its container was stopped``)."""
        run = self.run
        if self.kind is FailureKind.OUT_OF_MEMORY:
            return (
                f"The script ran out of memory (limit {memory_mb} MB) and was killed (exit code {run.exit_code}). "
                f"Raise memory_mb (at most {max_memory_mb})."
            )
        if self.kind is FailureKind.KILLED:
            return f"The task was killed; {stopped} (exit code {run.exit_code})."
        if self.kind is FailureKind.EXIT_CODE:
            tail = "\n".join(run.stderr_tail[-10:]) or "(no stderr)"
            limit = f" {run.limit_reached}" if run.limit_reached else ""
            return (
                f"The script exited with code {run.exit_code}{signal_text(run.exit_code)}.{limit} "
                f"Last stderr lines:\n{tail}"
            )
        if self.kind is FailureKind.RESULT_FILES:
            return f"The script's result files are invalid: {self.detail}"
        return f"Tool action(s) the script asked for failed: {self.detail}"

    def brief(self) -> str:
        if self.kind in (FailureKind.EXIT_CODE, FailureKind.OUT_OF_MEMORY, FailureKind.KILLED):
            return f"exit code {self.run.exit_code}: " + " | ".join(self.run.stderr_tail[-5:])
        if self.kind is FailureKind.RESULT_FILES:
            return f"the script's result files are invalid: {self.detail}"
        return f"tool action(s) the script asked for failed: {self.detail}"


def judge(run: ScriptRun, *, killed: bool = False, failed_actions: list[str] | None = None) -> Failure | None:
    """Whether a run that ended failed, and why (None: it succeeded). Once for every runner."""
    if run.oom_killed:
        return Failure(FailureKind.OUT_OF_MEMORY, run)
    if killed:
        return Failure(FailureKind.KILLED, run)
    if run.exit_code != 0:
        return Failure(FailureKind.EXIT_CODE, run)
    if run.protocol_error is not None:
        return Failure(FailureKind.RESULT_FILES, run, str(run.protocol_error))
    if failed_actions:
        return Failure(FailureKind.TOOL_ACTIONS, run, "; ".join(failed_actions))
    return None
