"""What every deferred script run's trigger shares: its deadline, its masked values, its events, its stop.

A runner's trigger (:mod:`~cronium_provider.triggers.container`, :mod:`~cronium_provider.triggers.ssh`)
follows one deferred run in the triggerer: it writes the script's lines to the task's log (with the run's
own secrets masked, see :class:`~cronium_provider.runners.outcome.LineRedactor`), and fires one event whose
``status`` is a :class:`~cronium_provider.runners.base.RunEnd`:

* ``exited``: the script ended; the event carries what the resumed task needs to collect it;
* ``timeout``: the task's ``execution_timeout`` passed; the trigger stopped the script and removed the run;
* ``error``: the run could not be followed to its end; ``message`` says why.

When a person clears the task or marks it while it is deferred (:meth:`on_kill`), or the deferral's own
timeout ends the trigger past the deadline (:meth:`cleanup`), the run is stopped and removed as the normal
mode's kill does. A sibling implements ``run`` (follow the run until it ends, yield one :meth:`end`),
:meth:`run_kwargs` and :meth:`stop_run`.
"""

from __future__ import annotations

import asyncio
import time
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from cronium_provider.runners.outcome import LineRedactor
from cronium_provider.states import RunEnd

# Stops under way, referenced until done: the triggerer cancels a killed trigger's task again on every loop
# (about each second) until it ends, which would cut a 5-second stop short; the stop runs as a task of its
# own, shielded from those cancellations.
_STOPPING: set[asyncio.Task[None]] = set()


class CroniumRunTrigger(BaseTrigger):
    """
    The base of a deferred script run's trigger.

    :param deadline: when the task's ``execution_timeout`` ends (seconds since the epoch), None for none;
        ``timeout_seconds``: that timeout, for the messages.
    :param masked: values masked in the task's log (the run's secrets), masked here too.
    :param task_label: ``dag_id.task_id``, for the triggerer's own messages.
    """

    what_stops = "the script"  # for the task's log when a person stops the deferred task

    def __init__(
        self,
        *,
        deadline: float | None = None,
        timeout_seconds: float | None = None,
        masked: Sequence[Any] | None = None,
        task_label: str = "",
    ) -> None:
        super().__init__()
        self.deadline = deadline
        self.timeout_seconds = timeout_seconds
        self.masked = list(masked or [])
        self.redact = LineRedactor(self.masked)  # this run's lines only, see LineRedactor
        self.task_label = task_label
        self.ended = False  # the end was reported: the resumed task owns the run now
        self.stopped = False  # the trigger stopped the run and removed it

    # -- what a sibling gives --------------------------------------------------------------------------
    @abstractmethod
    def run_kwargs(self) -> dict[str, Any]:
        """The sibling's own serialized arguments (the run's handle)."""

    @abstractmethod
    async def stop_run(self) -> None:
        """Stop the script (SIGTERM, SIGKILL 5 s later) and remove the run, then set ``stopped``; a stop
        that could not reach the run leaves ``stopped`` unset (:meth:`cleanup` tries again)."""

    # -- shared ----------------------------------------------------------------------------------------
    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                **self.run_kwargs(),
                "deadline": self.deadline,
                "timeout_seconds": self.timeout_seconds,
                "masked": self.masked,
                "task_label": self.task_label,
            },
        )

    def remaining(self) -> float | None:
        """Seconds left until the deadline, None when there is none."""
        return None if self.deadline is None else max(0.0, self.deadline - time.time())

    def end(self, end: RunEnd, **facts: Any) -> TriggerEvent:
        """The event that says how the run ended, with the run's facts."""
        if end is RunEnd.EXITED:
            self.ended = True
        if end is RunEnd.TIMEOUT:
            facts = {"timeout_seconds": self.timeout_seconds, **facts}
        return TriggerEvent({"status": str(end), **facts})

    def timeout_warning(self, what: str, grace: int, after: str = "") -> None:
        """The triggerer's line at the deadline: ``stopping <what> (SIGTERM, SIGKILL <grace> s later)<after>``."""
        self.log.warning(
            "execution_timeout (%s s) reached while deferred: stopping %s (SIGTERM, SIGKILL %d s later)%s",
            seconds_text(self.timeout_seconds),
            what,
            grace,
            after,
        )

    async def stop_shielded(self) -> None:
        """:meth:`stop_run` in a task that outlives this one's cancellation (see ``_STOPPING``)."""

        async def stop() -> None:  # stop_run sets ``stopped`` once the run is gone: a failed stop is tried again
            try:
                await self.stop_run()
            except Exception as exc:
                self.log.warning("Stopping the script of %s failed: %s", self.task_label, exc)

        task = asyncio.ensure_future(stop())
        _STOPPING.add(task)
        task.add_done_callback(_STOPPING.discard)
        await asyncio.shield(task)

    async def on_kill(self) -> None:
        """The task was cleared, or marked failed or successful, while deferred: stop and remove the run,
        as the normal mode's kill does."""
        if self.ended or self.stopped:
            return
        self.log.warning("The deferred task was stopped by a person: stopping %s", self.what_stops)
        await self.stop_shielded()

    async def cleanup(self) -> None:
        """Past the deadline (the deferral's own timeout ended the trigger), the run is stopped and removed;
        otherwise it is left running: a triggerer restart hands the trigger to a new one, which follows on."""
        if self.ended or self.stopped or self.deadline is None or time.time() < self.deadline:
            return
        await self.stop_shielded()


def seconds_text(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"
