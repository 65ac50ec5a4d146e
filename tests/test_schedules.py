"""Cronium schedules -> Airflow schedules: the plan's mapping, and the run times Airflow derives from it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cronium_provider.plan.build import build_plan
from cronium_provider.records.validation import load_records

BASE = {"kind": "event", "name": "s", "type": "BASH", "content": "true", "status": "ACTIVE", "triggerType": "SCHEDULE"}

# (record fields, expected plan schedule (kind, cron, interval seconds), paused, built)
CASES: list[tuple[dict[str, Any], tuple[str, str | None, int | None], bool, bool]] = [
    ({"scheduleNumber": 1, "scheduleUnit": "MINUTES"}, ("cron", "* * * * *", None), False, True),
    ({"scheduleNumber": 15, "scheduleUnit": "MINUTES"}, ("cron", "*/15 * * * *", None), False, True),
    ({"scheduleNumber": 120, "scheduleUnit": "MINUTES"}, ("cron", "0 */2 * * *", None), False, True),
    ({"scheduleNumber": 90, "scheduleUnit": "MINUTES"}, ("interval", None, 5400), False, True),
    ({"scheduleNumber": 1, "scheduleUnit": "HOURS"}, ("cron", "0 * * * *", None), False, True),
    ({"scheduleNumber": 6, "scheduleUnit": "HOURS"}, ("cron", "0 */6 * * *", None), False, True),
    ({"scheduleNumber": 48, "scheduleUnit": "HOURS"}, ("cron", "0 0 */2 * *", None), False, True),
    ({"scheduleNumber": 1, "scheduleUnit": "DAYS"}, ("cron", "0 0 * * *", None), False, True),
    ({"scheduleNumber": 3, "scheduleUnit": "DAYS"}, ("cron", "0 0 */3 * *", None), False, True),
    ({"scheduleNumber": 30, "scheduleUnit": "SECONDS"}, ("interval", None, 30), False, True),
    ({"scheduleNumber": 120, "scheduleUnit": "SECONDS"}, ("cron", "*/2 * * * *", None), False, True),
    ({"customSchedule": "30 2 * * 1-5", "scheduleUnit": "HOURS"}, ("cron", "30 2 * * 1-5", None), False, True),
    ({"customSchedule": "0 */5 * * * *"}, ("cron", "*/5 * * * *", None), False, True),
    ({"customSchedule": "*/10 * * * * *"}, ("interval", None, 10), False, True),
    ({"triggerType": "MANUAL", "customSchedule": "0 0 * * *"}, ("none", None, None), False, True),
    # Only ACTIVE records run on their schedule (scheduler.ts:422-430); the others are built, not paused, to be
    # run by hand or by an action (server/api/routers/events.ts:573-698 checks no status)
    ({"status": "PAUSED", "scheduleNumber": 5, "scheduleUnit": "MINUTES"}, ("none", None, None), False, True),
    ({"status": "DRAFT"}, ("none", None, None), False, True),
    ({"status": "ARCHIVED"}, ("none", None, None), False, True),
]


def _plan(tmp_path: Path, fields: dict[str, Any]) -> dict[str, Any]:
    (tmp_path / "e.json").write_text(json.dumps({**BASE, "id": 1, **fields}))
    records = load_records([tmp_path])
    assert records.ok, [str(e) for e in records.errors]
    data = build_plan(records).to_json()
    return data


@pytest.mark.parametrize(("fields", "schedule", "paused", "built"), CASES)
def test_schedule_table(tmp_path: Path, fields, schedule, paused, built) -> None:
    plan = _plan(tmp_path, fields)
    assert built
    [dag] = plan["dags"]
    got = (dag["schedule"]["kind"], dag["schedule"]["cron"], dag["schedule"]["interval_seconds"])
    assert got == schedule
    assert dag["is_paused"] is paused
    assert dag["max_active_runs"] == 16 and dag["catchup"] is False


def test_start_time_becomes_the_start_date(tmp_path: Path) -> None:
    plan = _plan(tmp_path, {"startTime": "2026-05-01T08:30:00+02:00", "scheduleNumber": 1, "scheduleUnit": "HOURS"})
    assert plan["dags"][0]["schedule"]["start_date"] == "2026-05-01T08:30:00+02:00"


def _next_runs(fields: dict[str, Any], tmp_path: Path, count: int = 3) -> list[datetime]:
    """The first ``count`` run times of the rendered DAG's timetable, deployed an hour before its startTime
    (a startTime still ahead is the first run; see tests/test_schedule_times.py)."""
    from cronium_provider.render.dags import render_plan
    from cronium_provider.timetables import first_runs

    (tmp_path / "e.json").write_text(json.dumps({**BASE, "id": 1, **fields}))
    records = load_records([tmp_path])
    dag = render_plan(build_plan(records))["cronium_event_1"]
    deployed = datetime.fromisoformat(fields["startTime"].replace("Z", "+00:00")) - timedelta(hours=1)
    return list(first_runs(dag.timetable, count, deployed))


START = "2026-03-01T10:07:00Z"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        # the startTime is the first run, then the rule (Cronium: scheduler.ts:189-240)
        ({"scheduleNumber": 15, "scheduleUnit": "MINUTES"}, ["10:07", "10:15", "10:30"]),
        ({"scheduleNumber": 6, "scheduleUnit": "HOURS"}, ["10:07", "12:00", "18:00"]),
        ({"scheduleNumber": 1, "scheduleUnit": "DAYS"}, ["10:07", "00:00", "00:00"]),
        ({"scheduleNumber": 45, "scheduleUnit": "SECONDS"}, ["10:07:00", "10:07:45", "10:08:30"]),
        ({"customSchedule": "30 2 * * 1-5"}, ["10:07", "02:30", "02:30"]),
        ({"customSchedule": "0 */20 * * * *"}, ["10:07", "10:20", "10:40"]),
        ({"scheduleNumber": 90, "scheduleUnit": "MINUTES"}, ["10:07", "11:37", "13:07"]),
    ],
)
def test_next_run_times_from_airflows_timetable(tmp_path: Path, fields, expected) -> None:
    runs = _next_runs({**fields, "startTime": START}, tmp_path)
    fmt = "%H:%M:%S" if len(expected[0]) == 8 else "%H:%M"
    assert [r.astimezone(UTC).strftime(fmt) for r in runs] == expected
    assert all(r >= datetime(2026, 3, 1, 10, 7, tzinfo=UTC) for r in runs)  # never before startTime
    assert runs == sorted(runs)


def test_weekday_cron_skips_the_weekend(tmp_path: Path) -> None:
    runs = _next_runs({"customSchedule": "30 2 * * 1-5", "startTime": "2026-03-06T03:00:00Z"}, tmp_path)
    assert [r.strftime("%a %d") for r in runs] == ["Fri 06", "Mon 09", "Tue 10"]  # the start, then weekdays


def test_days_schedule_fires_at_midnight_every_n_days(tmp_path: Path) -> None:
    runs = _next_runs({"scheduleNumber": 3, "scheduleUnit": "DAYS", "startTime": START}, tmp_path, count=4)
    assert [r.strftime("%d %H:%M") for r in runs] == ["01 10:07", "04 00:00", "07 00:00", "10 00:00"]


@pytest.mark.parametrize(
    ("custom", "expected"),
    [
        ("30 * * * * *", ["10:07:00", "10:07:30", "10:08:30", "10:09:30"]),
        ("0,30 * * * * *", ["10:07:00", "10:07:30", "10:08:00", "10:08:30"]),
        ("15 */20 * * * *", ["10:07:00", "10:20:15", "10:40:15", "11:00:15"]),
        ("*/7 * * * * *", ["10:07:00", "10:07:07", "10:07:14", "10:07:21"]),
    ],
)
def test_any_six_field_cron_fires_on_its_seconds(tmp_path: Path, custom: str, expected: list[str]) -> None:
    """node-schedule reads a 6-field cron as second minute hour day month weekday (Cronium hands an
    event's customSchedule to node-schedule's scheduleJob: lib/scheduler/scheduler.ts:299-301, 384): the
    DAG's timetable fires on those seconds, after the startTime."""
    plan = _plan(tmp_path, {"customSchedule": custom})
    assert (plan["dags"][0]["schedule"]["kind"], plan["dags"][0]["schedule"]["cron"]) == ("cron", custom)
    runs = _next_runs({"customSchedule": custom, "startTime": START}, tmp_path, count=4)
    assert [r.astimezone(UTC).strftime("%H:%M:%S") for r in runs] == expected


@pytest.mark.parametrize(
    ("custom", "cron", "expected"),
    [
        ("@hourly", "0 * * * *", ["10:07", "11:00", "12:00"]),
        ("@daily", "0 0 * * *", ["01 10:07", "02 00:00", "03 00:00"]),
        ("@weekly", "0 0 * * 0", ["01 10:07", "08 00:00", "15 00:00"]),
        ("@monthly", "0 0 1 * *", ["03-01 10:07", "04-01 00:00", "05-01 00:00"]),
        ("@yearly", "0 0 1 1 *", ["2026-03-01", "2027-01-01", "2028-01-01"]),
    ],
)
def test_cron_parsers_named_schedules_run_as_their_rules(tmp_path: Path, custom: str, cron: str, expected) -> None:
    """Cronium hands customSchedule to node-schedule's scheduleJob (lib/scheduler/scheduler.ts:299-301, 384),
    whose cron-parser 4.x reads the whole string '@hourly' (or @daily, @weekly, @monthly, @yearly) as its
    5-field rule: the event is built and runs on that rule, not refused as a 1-field cron."""
    plan = _plan(tmp_path, {"customSchedule": custom})
    assert (plan["dags"][0]["schedule"]["kind"], plan["dags"][0]["schedule"]["cron"]) == ("cron", cron)
    runs = _next_runs({"customSchedule": custom, "startTime": START}, tmp_path)
    fmt = {"@hourly": "%H:%M", "@monthly": "%m-%d %H:%M", "@yearly": "%Y-%m-%d"}.get(custom, "%d %H:%M")
    assert [r.astimezone(UTC).strftime(fmt) for r in runs] == expected
