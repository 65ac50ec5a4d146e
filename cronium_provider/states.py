"""Run states and outcomes as enums, one per vocabulary, so that no module spells them as bare strings.

Each is a ``StrEnum``: a member *is* its string (``TaskState.SUCCESS == "success"``), so the values in
XCom, Airflow Variables, logs and Airflow's own APIs stay the same strings. This module imports nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class TaskState(StrEnum):
    """Airflow task-instance states a Cronium node, action or result step reads from other tasks."""

    SUCCESS = "success"
    FAILED = "failed"
    UPSTREAM_FAILED = "upstream_failed"
    SKIPPED = "skipped"


RAN_STATES = frozenset({TaskState.SUCCESS, TaskState.FAILED})
"""The states of a task that ran (an execution, in Cronium's count)."""
FAILED_STATES = frozenset({TaskState.FAILED, TaskState.UPSTREAM_FAILED})


def executions(execution_count: int, finished: int, reset: object = None) -> int:
    """Cronium's execution count of an event: the record's ``executionCount`` plus the ``finished`` runs
    (in ``RAN_STATES``) of its task. After ``cronium-airflow reset-counter`` (``reset``: the JSON text of its
    Variable, :func:`~cronium_provider.naming.executions_reset_key`) the count starts again at 0, as Cronium's
    reset sets ``executionCount`` to 0: the record's count is not added, and only the runs finished since
    (beyond the ``finished_runs`` the reset saw) count. A reset that cannot be read is ignored."""
    if reset is None:
        return execution_count + finished
    try:
        seen = int(json.loads(str(reset))["finished_runs"])
    except (ValueError, TypeError, KeyError):
        return execution_count + finished
    return max(0, finished - seen)


def max_executions_reached(max_executions: int, executions: int) -> bool:
    """Cronium's execution limit: an event whose executions (its ``executionCount`` plus its runs in
    ``RAN_STATES``) reached ``maxExecutions`` runs no more; 0 is no limit."""
    return 0 < max_executions <= executions


class RunStatus(StrEnum):
    """How an event run ended: its ``run_status`` XCom (Cronium's job status COMPLETED/FAILED/CANCELLED),
    and the ``status`` of each server's run and of in-script actions (``PARTIAL``: some servers failed)."""

    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    CANCELLED = "CANCELLED"
    PARTIAL = "PARTIAL"


class ActionWhen(StrEnum):
    """After which outcomes of its event's run a conditional action fires."""

    ALWAYS = "always"
    SUCCESS = "success"
    FAILURE = "failure"
    CONDITION = "condition"


class EventStatus(StrEnum):
    """``cronium.event.status`` in message templates, as Cronium names it."""

    SUCCESS = "success"
    FAILURE = "failure"
    RUNNING = "running"
    UNKNOWN = "unknown"


class RunEnd(StrEnum):
    """How a deferred run's trigger says the run ended: the ``status`` of its event."""

    EXITED = "exited"  # the script ended (its exit code is known): the task resumes to collect its results
    TIMEOUT = "timeout"  # execution_timeout was reached: the trigger stopped the script and removed its run
    ERROR = "error"  # the run could not be followed to its end: ``message`` says why

    @classmethod
    def of(cls, event: Mapping[str, Any]) -> RunEnd:
        """The end an event names; ``done`` is how remote runs' triggers named ``exited`` before."""
        status = str(event.get("status") or "")
        if status == "done":
            return cls.EXITED
        try:
            return cls(status)
        except ValueError:
            return cls.ERROR
