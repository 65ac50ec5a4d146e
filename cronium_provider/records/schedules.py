"""Cronium schedules -> Airflow schedules, as pure data: the rules validation checks and the plan applies.

Cronium fires ``every n MINUTES`` on minutes 0, n, 2n... of each hour, ``every n HOURS`` on hours 0, n,
2n... at :00, ``every n DAYS`` every n days at midnight and ``every n SECONDS`` every n seconds; a
``customSchedule`` cron string wins. node-schedule also takes a 6-field cron whose first field is seconds
(its cron-parser reads six fields as second minute hour day month weekday): seconds 0 becomes the 5-field
rule and ``*/n`` every minute a fixed interval; any other 6-field rule is kept whole and the timetable
fires on its seconds. cron-parser also reads ``@yearly``, ``@monthly``, ``@weekly``, ``@daily`` and ``@hourly``
(the whole string, as written) as their 5-field rules.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from cronium_provider.records.models import (
    MAX_SPAN_SECONDS,
    Event,
    EventTriggerType,
    TimeUnit,
    Workflow,
    WorkflowTriggerType,
)
from cronium_provider.records.models import UNIT_SECONDS as UNIT_SECONDS  # the plan reads it from here


class ScheduleError(ValueError):
    """A schedule that cannot become an Airflow schedule; ``field`` names the record field."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class SchedulePlan:
    """What the DAG's ``schedule`` becomes: a cron expression, a fixed interval, or nothing."""

    kind: Literal["cron", "interval", "none"]
    cron: str | None = None
    interval_seconds: int | None = None
    start_date: str | None = None  # the record's startTime: the first run when it is still ahead
    note: str | None = None
    timezone: str = "UTC"  # the zone the cron rule is read in (Cronium's server's local time)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _cron_is_valid(expression: str) -> bool:
    try:
        return bool(croniter.is_valid(expression, second_at_beginning=True))
    except Exception:  # croniter raises several types for odd input
        return False


def _never_fires(text: str, expression: str) -> None:
    """Refuse a valid cron expression no date matches (``0 0 30 2 *``): the timetable could find no next run."""
    try:
        croniter(expression, datetime(2000, 1, 1), second_at_beginning=True).get_next(datetime)
    except (CroniterError, ValueError, OverflowError):  # CroniterBadDateError: no next date within 50 years
        raise ScheduleError("customSchedule", f"'{text}' never fires: no date matches it") from None


# The names node-schedule's cron-parser (4.x) reads as these rules when they are the whole customSchedule
PREDEFINED_CRONS = {
    "@yearly": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def convert_custom_schedule(text: str) -> SchedulePlan:
    """Turn a Cronium ``customSchedule`` into a cron or interval plan, or raise ScheduleError."""
    if text in PREDEFINED_CRONS:
        return SchedulePlan(kind="cron", cron=PREDEFINED_CRONS[text], note=f"'{text}' is '{PREDEFINED_CRONS[text]}'")
    fields = text.split()
    if len(fields) == 5:
        if not _cron_is_valid(text):
            raise ScheduleError(
                "customSchedule",
                f"'{text}' is not a valid cron expression (5 fields: minute hour day month weekday)",
            )
        _never_fires(text, text)
        return SchedulePlan(kind="cron", cron=" ".join(fields))
    if len(fields) == 6:
        seconds, rest = fields[0], " ".join(fields[1:])
        if not _cron_is_valid(rest):
            raise ScheduleError(
                "customSchedule",
                f"'{text}' is not a valid cron expression (6 fields: second minute hour day month weekday)",
            )
        _never_fires(text, rest)
        if seconds in ("0", "00"):
            return SchedulePlan(kind="cron", cron=rest, note="6-field cron with seconds 0 converted")
        every = _every_n_seconds(seconds)
        if every is not None and rest == "* * * * *":
            return SchedulePlan(
                kind="interval",
                interval_seconds=every,
                note=f"6-field cron '{text}' converted to every {every} seconds",
            )
        if not _cron_is_valid(text):
            raise ScheduleError(
                "customSchedule", f"'{text}' is not a valid cron expression: seconds '{seconds}' cannot be read"
            )
        return SchedulePlan(
            kind="cron",
            cron=" ".join(fields),
            note=(
                f"6-field cron '{text}' fires on its seconds, as node-schedule reads it; second-level schedules "
                "depend on Airflow's scheduler loop (about once a second)"
            ),
        )
    raise ScheduleError(
        "customSchedule",
        f"'{text}' has {len(fields)} fields; expected 5 (minute hour day month weekday), 6 (second first) or one "
        f"of {', '.join(PREDEFINED_CRONS)}",
    )


def _every_n_seconds(field: str) -> int | None:
    if field == "*":
        return 1
    if field.startswith("*/") and field[2:].isdigit():
        n = int(field[2:])
        if 0 < n < 60 and 60 % n == 0:
            return n
    return None


def recurring_schedule(number: int, unit: TimeUnit) -> SchedulePlan:
    """``every number unit`` aligned as Cronium aligns it (see the schedule table of docs/records.md)."""
    if unit is TimeUnit.SECONDS:
        if number % 60 == 0:
            return recurring_schedule(number // 60, TimeUnit.MINUTES)
        return SchedulePlan(
            kind="interval",
            interval_seconds=number,
            note=(
                "second-level schedules depend on Airflow's scheduler loop (about once a second) and each "
                "run's start-up cost; intervals under ~30 s are approximate"
            ),
        )
    if unit is TimeUnit.MINUTES:
        if number < 60:
            return SchedulePlan(kind="cron", cron="* * * * *" if number == 1 else f"*/{number} * * * *")
        if number % 60 == 0:
            return recurring_schedule(number // 60, TimeUnit.HOURS)
    if unit is TimeUnit.HOURS:
        if number < 24:
            return SchedulePlan(kind="cron", cron="0 * * * *" if number == 1 else f"0 */{number} * * *")
        if number % 24 == 0:
            return recurring_schedule(number // 24, TimeUnit.DAYS)
    if unit is TimeUnit.DAYS:
        if number == 1:
            return SchedulePlan(kind="cron", cron="0 0 * * *")
        if number < 31:
            return SchedulePlan(
                kind="cron",
                cron=f"0 0 */{number} * *",
                note=f"every {number} days at midnight, counted from the 1st of each month",
            )
    seconds = number * UNIT_SECONDS[unit]
    if seconds > MAX_SPAN_SECONDS:
        raise ScheduleError(
            "scheduleNumber",
            f"every {number} {unit.value} is longer than the longest interval an Airflow timetable is given "
            f"here, {MAX_SPAN_SECONDS} seconds (about 68 years)",
        )
    return SchedulePlan(
        kind="interval",
        interval_seconds=seconds,
        note=(
            f"every {number} {unit.value.lower()} counted from startTime, or from midnight 1 January 1970 in "
            "the configured time zone"
        ),
    )


def parse_start_time(text: str, timezone: str = "UTC") -> datetime:
    """ISO time -> aware datetime; a time with no offset is local time in ``timezone`` (as JavaScript's
    ``new Date(text)`` reads it on Cronium's server)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ScheduleError(
            "startTime", f"'{text}' is not an ISO 8601 time (for example 2026-01-31T09:00:00Z)"
        ) from None
    value = value if value.tzinfo else value.replace(tzinfo=_zone(timezone))
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ScheduleError("startTime", f"'{text}' is out of range: in UTC it falls outside years 1 to 9999") from None
    offset = value.utcoffset()
    if offset is not None and offset % timedelta(minutes=1):
        # Airflow's timetable reads the time back with pendulum, which takes offsets in hours and minutes only
        raise ScheduleError(
            "startTime", f"'{text}' has a UTC offset of {offset}, with seconds; give it in hours and minutes"
        )
    return value


def _zone(name: str) -> tzinfo:
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError("timezone", f"'{name}' is not a time zone name (for example Europe/Berlin)") from None


def plan_schedule(
    *,
    scheduled: bool,
    number: int,
    unit: TimeUnit,
    custom: str | None,
    start_time: str | None,
    timezone: str = "UTC",
) -> SchedulePlan:
    """The schedule of one event or workflow; ``scheduled`` is False for MANUAL (and WEBHOOK) triggers."""
    _zone(timezone)
    start = parse_start_time(start_time, timezone).isoformat() if start_time else None
    if not scheduled:
        return SchedulePlan(kind="none", start_date=start, timezone=timezone)
    base = convert_custom_schedule(custom) if custom else recurring_schedule(number, unit)
    return SchedulePlan(
        kind=base.kind,
        cron=base.cron,
        interval_seconds=base.interval_seconds,
        start_date=start,
        note=base.note,
        timezone=timezone,
    )


def record_schedule(record: Event | Workflow, timezone: str = "UTC") -> SchedulePlan:
    """The schedule of an event or workflow record (MANUAL and WEBHOOK triggers have none)."""
    return plan_schedule(
        scheduled=record.trigger_type in (EventTriggerType.SCHEDULE, WorkflowTriggerType.SCHEDULE),
        number=record.schedule_number,
        unit=record.schedule_unit,
        custom=record.custom_schedule,
        start_time=record.start_time,
        timezone=timezone,
    )
