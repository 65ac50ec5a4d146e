"""Run states and outcomes as enums, one per vocabulary, so that no module spells them as bare strings.

Each is a ``StrEnum``: a member *is* its string (``TaskState.SUCCESS == "success"``), so the values in
XCom, Airflow Variables, logs and Airflow's own APIs stay the same strings. This module imports nothing.
"""

from __future__ import annotations

from enum import StrEnum


class TaskState(StrEnum):
    """Airflow task-instance states a Cronium node, action or result step reads from other tasks."""

    SUCCESS = "success"
    FAILED = "failed"
    UPSTREAM_FAILED = "upstream_failed"
    SKIPPED = "skipped"


RAN_STATES = frozenset({TaskState.SUCCESS, TaskState.FAILED})
"""The states of a task that ran (an execution, in Cronium's count)."""
FAILED_STATES = frozenset({TaskState.FAILED, TaskState.UPSTREAM_FAILED})


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


class TriggerStatus(StrEnum):
    """The ``status`` of the event a deferred script's trigger fires back to its task."""

    EXITED = "exited"  # the container ended (with its ``exit_code``)
    DONE = "done"  # every server's script ended (with each run)
    TIMEOUT = "timeout"
    ERROR = "error"
