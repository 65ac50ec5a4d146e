"""The timetable of scheduled Cronium DAGs: Cronium's schedule in its zone, its startTime, never a missed slot.

Cronium's scheduler (apps/cronium-app/src/lib/scheduler/scheduler.ts:189-240) runs an event with a
``startTime`` in the future once at that time and then on its recurring rule, and otherwise sets the rule up
at once; node-schedule fires a rule at its next slot, never at one that passed while nothing was
scheduled. This timetable does the same in Airflow: the first run is ``start_time`` when that is still
ahead, else the next slot; after a run the next slot after the later of that run and now, so a scheduler
that was down never catches up. Cron rules are read in ``timezone`` (DST included), as Cronium reads them
in its server's local time.

Airflow asks again for the next run each time the DAG processor parses the file (every
``min_file_process_interval``), not only when a run was made, with the time of that parse as now. A slot
that passed a moment ago, or a ``start_time`` that just arrived, is therefore still the next run when it
is at most :data:`LATE_SLOT_GRACE` late (and a slot no more than half the time to the rule's next slot):
otherwise a parse between the slot and the scheduler making its run would drop the run, and the scheduler
makes at most ``max_dagruns_to_create_per_loop`` (10) runs per loop, so with many DAGs on the same slot
the last ones are made tens of seconds late. Only the latest such slot is run, never a backlog. Fixed
intervals count from ``start_time``, or from midnight of 1 January 1970 in ``timezone``, never from the
time of a parse (which would move the next run ahead at every parse).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

import pendulum
from airflow.plugins_manager import AirflowPlugin
from airflow.timetables.base import DagRunInfo, DataInterval, TimeRestriction, Timetable
from croniter import croniter
from pendulum import DateTime

LATE_SLOT_GRACE = timedelta(minutes=5)
"""How late a slot (or the start time) may be and still be run; a slot, also no later than half the time to
the rule's next slot (so an every-minute rule is run at most 30 s late)."""


class CroniumTimetable(Timetable):
    """A Cronium schedule: a cron rule (read in ``timezone``) or a fixed interval, and an optional start."""

    def __init__(
        self,
        *,
        cron: str | None = None,
        interval_seconds: int | None = None,
        timezone: str = "UTC",
        start_time: str | None = None,
    ) -> None:
        if (cron is None) == (interval_seconds is None):
            raise ValueError("a Cronium timetable needs exactly one of cron and interval_seconds")
        self.cron = cron
        self.interval_seconds = interval_seconds
        self.timezone = timezone
        self.start_time = start_time
        self._zone = pendulum.timezone(timezone)
        self._start = pendulum.parse(start_time).in_timezone("UTC") if start_time else None  # type: ignore[union-attr]

    # -- what the UI shows and what the scheduler stores ----------------------------------------------
    @property
    def summary(self) -> str:
        if self.cron is not None:
            return f"{self.cron} ({self.timezone})" if self.timezone.upper() != "UTC" else self.cron
        return f"every {self.interval_seconds} s"

    @property
    def description(self) -> str:  # type: ignore[override]
        rule = f"cron '{self.cron}' in {self.timezone}" if self.cron else f"every {self.interval_seconds} s"
        start = f", first run at {self.start_time} when still ahead" if self.start_time else ""
        return f"Cronium schedule: {rule}{start}; missed slots are never run"

    def serialize(self) -> dict[str, Any]:
        return {
            "cron": self.cron,
            "interval_seconds": self.interval_seconds,
            "timezone": self.timezone,
            "start_time": self.start_time,
        }

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> Timetable:
        return cls(
            cron=data.get("cron"),
            interval_seconds=data.get("interval_seconds"),
            timezone=data.get("timezone") or "UTC",
            start_time=data.get("start_time"),
        )

    # -- scheduling ------------------------------------------------------------------------------------
    def next_slot(self, after: datetime) -> DateTime:
        """The first slot strictly after ``after`` (UTC)."""
        return next(self.slots_after(after))

    @cached_property
    def _anchor(self) -> DateTime:
        """Where fixed intervals count from (worked out on first use, not at each DAG's parse)."""
        return self._start or pendulum.datetime(1970, 1, 1, tz=self._zone).in_timezone("UTC")

    def slots_after(self, after: datetime) -> Iterator[DateTime]:
        """The slots strictly after ``after``, in order (UTC)."""
        moment = pendulum.instance(after).in_timezone("UTC")
        if self.interval_seconds is not None:
            steps = int((moment - self._anchor).total_seconds() // self.interval_seconds) + 1
            while True:
                yield self._anchor.add(seconds=steps * self.interval_seconds)
                steps += 1
        # a 6-field rule starts with seconds, as node-schedule reads it
        rule = croniter(self.cron, moment.in_timezone(self._zone).naive(), second_at_beginning=True)
        while True:
            naive: datetime = rule.get_next(datetime)
            # a wall-clock time in a DST gap moves forward, as node-schedule's does
            yield pendulum.instance(naive, tz=self._zone).in_timezone("UTC")

    def infer_manual_data_interval(self, *, run_after: DateTime) -> DataInterval:
        return DataInterval.exact(run_after)

    def next_dagrun_info(
        self, *, last_automated_data_interval: DataInterval | None, restriction: TimeRestriction
    ) -> DagRunInfo | None:
        return self.next_run(last_automated_data_interval, restriction, pendulum.now("UTC"))

    def next_run(
        self, last_automated_data_interval: DataInterval | None, restriction: TimeRestriction, now: DateTime
    ) -> DagRunInfo | None:
        """:meth:`next_dagrun_info` as seen at ``now``."""
        if last_automated_data_interval is not None and restriction.catchup:
            at = self.next_slot(last_automated_data_interval.end)
        else:
            moment = pendulum.instance(now).in_timezone("UTC")
            late = moment - LATE_SLOT_GRACE
            if last_automated_data_interval is None and self._start is not None and self._start > late:
                at = self._start
            else:
                last = pendulum.instance(last_automated_data_interval.end) if last_automated_data_interval else late
                slots = self.slots_after(max(last, late))
                at = next(slots)
                if at <= moment:  # late: run only the latest late slot, and not later than half a period
                    following = next(slots)
                    while following <= moment:
                        at, following = following, next(slots)
                    if moment - at > (following - at) / 2:
                        at = following
        if restriction.latest is not None and at > restriction.latest:
            return None
        return DagRunInfo.exact(at)


def first_runs(timetable: CroniumTimetable, count: int, now: datetime) -> list[DateTime]:
    """The next ``count`` runs the scheduler would make for a DAG deployed at ``now`` (never a missed slot)."""
    restriction = TimeRestriction(earliest=None, latest=None, catchup=False)
    runs: list[DateTime] = []
    last: DataInterval | None = None
    moment = pendulum.instance(now).in_timezone("UTC")
    for _ in range(count):
        info = timetable.next_run(last, restriction, moment)
        if info is None:
            break
        runs.append(info.run_after)
        last = info.data_interval
        moment = info.run_after  # the scheduler asks again right after creating the run
    return runs


class CroniumTimetablesPlugin(AirflowPlugin):
    """Registers :class:`CroniumTimetable` so that the scheduler can read DAGs that use it."""

    name = "cronium_timetables"
    timetables = [CroniumTimetable]
