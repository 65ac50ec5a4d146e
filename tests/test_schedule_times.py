"""When scheduled Cronium DAGs run: never a missed slot, a future startTime first, Cronium's time zone.

Cronium's scheduler (apps/cronium-app/src/lib/scheduler/scheduler.ts:189-240) runs an event whose
``startTime`` is ahead once at that time and then on its rule, and otherwise sets the rule up at once;
node-schedule fires a rule's next slot, never one that passed. The rules are read in the server's local
time. The DAGs here are serialized and read back as the scheduler reads them.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cronium_provider.plan.build import build_plan
from cronium_provider.records.validation import load_records
from cronium_provider.settings import CroniumSettings
from tests.conftest import REPO, venv_bin
from tests.support.services import ManagedProcess, stop_all, wait_for

BASE = {"kind": "event", "name": "s", "type": "BASH", "content": "true", "status": "ACTIVE", "triggerType": "SCHEDULE"}


def scheduler_timetable(tmp_path: Path, fields: dict[str, Any], timezone: str = "UTC") -> Any:
    """The timetable of the rendered DAG after a round trip through DAG serialization."""
    from airflow.serialization.serialized_objects import DagSerialization

    from cronium_provider.render.dags import render_plan

    (tmp_path / "e.json").write_text(json.dumps({**BASE, "id": 1, **fields}))
    records = load_records([tmp_path])
    assert records.ok, [str(e) for e in records.errors]
    dag = render_plan(build_plan(records, CroniumSettings(timezone=timezone)))["cronium_event_1"]
    return DagSerialization.from_dict(DagSerialization.to_dict(dag)).timetable


def runs(timetable: Any, now: str, count: int = 3) -> list[str]:
    from cronium_provider.timetables import first_runs

    found = first_runs(timetable, count, datetime.fromisoformat(now))
    return [r.in_timezone("UTC").strftime("%Y-%m-%d %H:%M:%S") for r in found]


def test_a_slot_that_passed_before_the_dag_existed_is_never_run(tmp_path: Path) -> None:
    """A daily ``30 2 * * *`` event deployed at 03:26 first runs the next day at 02:30, not at once."""
    timetable = scheduler_timetable(tmp_path, {"customSchedule": "30 2 * * *"})
    assert runs(timetable, "2026-03-10T03:26:00+00:00") == [
        "2026-03-11 02:30:00",
        "2026-03-12 02:30:00",
        "2026-03-13 02:30:00",
    ]


def test_a_future_start_time_is_the_first_run_then_the_schedule(tmp_path: Path) -> None:
    """startTime 10:07, every 15 minutes: runs at 10:07 (not on the rule), then 10:15, 10:30."""
    timetable = scheduler_timetable(
        tmp_path, {"scheduleNumber": 15, "scheduleUnit": "MINUTES", "startTime": "2026-03-01T10:07:00Z"}
    )
    assert runs(timetable, "2026-03-01T09:00:00+00:00") == [
        "2026-03-01 10:07:00",
        "2026-03-01 10:15:00",
        "2026-03-01 10:30:00",
    ]
    # deployed after its startTime: the rule from now on, the startTime slot is gone
    assert runs(timetable, "2026-03-01T11:09:00+00:00", 2) == ["2026-03-01 11:15:00", "2026-03-01 11:30:00"]


def test_a_scheduler_that_was_down_does_not_catch_up(tmp_path: Path) -> None:
    """Every 5 minutes, last run 10:00, the scheduler back at 12:03: the next run is 12:05, none of the 24
    slots it missed; back at 12:01 it runs 12:00 (a minute late, within half the rule's period), only that."""
    timetable = scheduler_timetable(tmp_path, {"scheduleNumber": 5, "scheduleUnit": "MINUTES"})
    assert next_at(timetable, "2026-03-01T12:03:00+00:00", last="2026-03-01T10:00:00+00:00") == "2026-03-01 12:05:00"
    assert next_at(timetable, "2026-03-01T12:01:00+00:00", last="2026-03-01T10:00:00+00:00") == "2026-03-01 12:00:00"


def next_at(timetable: Any, now: str, last: str | None = None) -> str:
    """The next run as the DAG processor computes it when it parses the file at ``now``."""
    from airflow.timetables.base import DataInterval, TimeRestriction

    interval = DataInterval.exact(datetime.fromisoformat(last)) if last else None
    info = timetable.next_run(interval, TimeRestriction(None, None, False), datetime.fromisoformat(now))
    return str(info.run_after.in_timezone("UTC").strftime("%Y-%m-%d %H:%M:%S"))


START_0107 = {"customSchedule": "0 0 1 1 *", "startTime": "2026-03-01T10:07:00Z"}
HOURLY, EVERY_MINUTE, EVERY_10S = ({"customSchedule": c} for c in ("0 * * * *", "* * * * *", "*/10 * * * * *"))
LAST_HOUR, LAST_RUN = "2026-03-01T10:00:00+00:00", "2026-03-01T11:00:00+00:00"


@pytest.mark.parametrize(
    ("fields", "now", "last", "expected"),
    [
        (START_0107, "2026-03-01T10:07:02+00:00", None, "2026-03-01 10:07:00"),
        (START_0107, "2026-03-01T10:11:30+00:00", None, "2026-03-01 10:07:00"),
        (START_0107, "2026-03-01T10:13:00+00:00", None, "2027-01-01 00:00:00"),
        (HOURLY, "2026-03-01T11:00:03+00:00", LAST_HOUR, "2026-03-01 11:00:00"),
        (HOURLY, "2026-03-01T11:04:30+00:00", LAST_HOUR, "2026-03-01 11:00:00"),
        (HOURLY, "2026-03-01T11:06:00+00:00", LAST_HOUR, "2026-03-01 12:00:00"),
        (EVERY_MINUTE, "2026-03-01T11:00:25+00:00", None, "2026-03-01 11:00:00"),
        (EVERY_MINUTE, "2026-03-01T11:00:35+00:00", None, "2026-03-01 11:01:00"),
        (EVERY_10S, "2026-03-01T11:00:43+00:00", LAST_RUN, "2026-03-01 11:00:40"),
        (EVERY_10S, "2026-03-01T11:00:47+00:00", LAST_RUN, "2026-03-01 11:00:50"),
    ],
)
def test_a_parse_just_after_a_slot_or_the_start_time_keeps_its_run(
    tmp_path: Path, fields: dict[str, Any], now: str, last: str | None, expected: str
) -> None:
    """Airflow recomputes the next run at every parse of the DAG file, with the parse's time as now
    (airflow/dag_processing/collection.py, ``DagModelOperation.update_dags``), and makes at most
    ``max_dagruns_to_create_per_loop`` runs per scheduler loop. A parse between a slot and the scheduler
    making its run still names that slot, as a parse just after the startTime names the startTime, up to
    5 minutes late (a slot: and up to half the time to the next one); later, the slot is not run, and of
    several late slots only the latest is."""
    assert next_at(scheduler_timetable(tmp_path, fields), now, last=last) == expected


def test_a_fixed_interval_does_not_move_ahead_at_every_parse(tmp_path: Path) -> None:
    """Every 90 minutes with no startTime counts from midnight 1 January 1970 in the configured zone: a parse
    every 30 s names the same next run (counting from the parse would push it ahead forever, and the DAG
    would never run); with a startTime the count starts there."""
    every_90 = scheduler_timetable(tmp_path, {"scheduleNumber": 90, "scheduleUnit": "MINUTES"})
    parses = [f"2026-03-01T10:{m:02d}:{s:02d}+00:00" for m in range(0, 30) for s in (0, 30)]
    assert {next_at(every_90, now) for now in parses} == {"2026-03-01 10:30:00"}
    berlin = scheduler_timetable(tmp_path, {"scheduleNumber": 90, "scheduleUnit": "MINUTES"}, timezone="Europe/Berlin")
    assert next_at(berlin, "2026-01-10T10:00:00+00:00") == "2026-01-10 11:00:00"  # 12:00 in Berlin
    started = scheduler_timetable(
        tmp_path, {"scheduleNumber": 90, "scheduleUnit": "MINUTES", "startTime": "2026-03-01T10:07:00Z"}
    )
    assert next_at(started, "2026-03-02T00:00:00+00:00", last="2026-03-01T10:07:00+00:00") == "2026-03-02 01:07:00"


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2026-01-12T00:00:00+00:00", ["2026-01-12 08:00:00", "2026-01-13 08:00:00"]),  # winter: UTC+1
        ("2026-07-13T00:00:00+00:00", ["2026-07-13 07:00:00", "2026-07-14 07:00:00"]),  # summer: UTC+2
        # the week DST starts (Sunday 29 March 2026): Friday 08:00 UTC, Monday 07:00 UTC
        ("2026-03-27T00:00:00+00:00", ["2026-03-27 08:00:00", "2026-03-30 07:00:00"]),
    ],
)
def test_schedules_follow_the_configured_time_zone_with_dst(tmp_path: Path, now: str, expected: list[str]) -> None:
    """``[cronium] timezone = Europe/Berlin``: ``0 9 * * 1-5`` is 09:00 Berlin time all year."""
    timetable = scheduler_timetable(tmp_path, {"customSchedule": "0 9 * * 1-5"}, timezone="Europe/Berlin")
    assert runs(timetable, now, 2) == expected


def test_a_start_time_keeps_its_wall_clock_across_dst(tmp_path: Path) -> None:
    """A startTime with no offset is local time in the configured zone; the daily rule after it stays at
    09:00 local when DST starts (no fixed offset that drifts an hour)."""
    timetable = scheduler_timetable(
        tmp_path,
        {"customSchedule": "0 9 * * *", "startTime": "2026-03-27T09:00:00"},
        timezone="Europe/Berlin",
    )
    assert runs(timetable, "2026-03-20T00:00:00+00:00", 4) == [
        "2026-03-27 08:00:00",
        "2026-03-28 08:00:00",
        "2026-03-29 07:00:00",
        "2026-03-30 07:00:00",
    ]


# -- a real scheduler ----------------------------------------------------------------------------------
@pytest.mark.airflow
def test_the_scheduler_skips_a_passed_slot_and_runs_a_future_start_time(tmp_path: Path) -> None:
    """dag-processor and scheduler on a private SQLite home: the DAG whose daily slot passed ten minutes
    ago gets no run and its next run is tomorrow; the DAG whose startTime is ahead runs at that time, and
    so do the 20 DAGs whose daily slot is that same minute; the DAG that runs every 20 seconds gets its run
    on the 20-second mark.

    The dag-processor parses the file every 2 s, and each parse recomputes every DAG's next run; the
    scheduler makes one run per loop (``max_dagruns_to_create_per_loop`` 1: 21 DAGs due at once stand for
    210 at the default 10), so the last ones are made seconds after their slot with parses in between:
    every run must survive that. The records due at that minute are written once the dag-processor runs
    and has parsed the first DAGs, so that they appear well before it however long the start-up took (a
    startTime that has passed when the DAG first appears is, as in Cronium, no run at all). The default
    pool has no slot, so that no task runs: the runs stay, the interval DAG stops at its one active run
    (``[cronium] max_active_runs`` set to 1 here; Cronium's default overlap would start one every 20 s), and no
    container is started."""
    home = tmp_path / "home"
    (home / "dags").mkdir(parents=True)
    records = tmp_path / "records"
    records.mkdir()
    now = datetime.now(UTC).replace(microsecond=0)
    passed = (now - timedelta(minutes=10)).replace(second=0)
    events = [
        {**BASE, "id": 1, "name": "passed slot", "customSchedule": f"{passed.minute} {passed.hour} * * *"},
        {**BASE, "id": 3, "name": "every 20 seconds", "customSchedule": "*/20 * * * * *"},
    ]
    (records / "events.json").write_text(json.dumps({"events": events}))
    (home / "dags" / "cronium_dags.py").write_text((REPO / "dags_templates" / "cronium_dags.py").read_text())
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "2",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW__SCHEDULER__MAX_DAGRUNS_TO_CREATE_PER_LOOP": "1",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__DEFAULT_POOL_TASK_SLOT_COUNT": "0",
        "CRONIUM_RECORDS_DIR": str(records),
        "AIRFLOW__CRONIUM__MAX_ACTIVE_RUNS": "1",
    }
    subprocess.run([venv_bin("airflow"), "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    services = [
        ManagedProcess("dag-processor", [venv_bin("airflow"), "dag-processor"], home / "dag-processor.log", env),
        ManagedProcess("scheduler", [venv_bin("airflow"), "scheduler"], home / "scheduler.log", env),
    ]

    def dag_rows() -> dict[str, Any]:
        import sqlite3

        with sqlite3.connect(home / "airflow.db") as db:
            dags = dict(db.execute("select dag_id, next_dagrun_create_after from dag").fetchall())
            dag_runs = db.execute("select dag_id, run_type, run_after from dag_run").fetchall()
        return {"dags": dags, "runs": dag_runs}

    try:
        for service in services:
            service.start()
        wait_for(lambda: "cronium_event_1" in dag_rows()["dags"], 120, "the first DAG parsed by the dag-processor")
        soon = datetime.now(UTC) + timedelta(seconds=89)
        start = soon.replace(second=0, microsecond=0)  # the whole minute 30 to 90 s ahead
        events.append(
            {**BASE, "id": 2, "name": "future start", "customSchedule": "0 0 1 1 *", "startTime": start.isoformat()}
        )
        daily = f"{start.minute} {start.hour} * * *"
        events += [{**BASE, "id": i, "name": f"due {i}", "customSchedule": daily} for i in range(10, 30)]
        due = {"cronium_event_2"} | {f"cronium_event_{i}" for i in range(10, 30)}
        (records / "events.json").write_text(json.dumps({"events": events}))
        wait_for(lambda: due <= set(dag_rows()["dags"]), 60, "the due DAGs parsed")
        assert datetime.now(UTC) < start - timedelta(seconds=5), "the due DAGs appeared too late to test them"
        wait_for(lambda: due <= {r[0] for r in dag_rows()["runs"]}, 150, "the 21 runs due at once")
        wait_for(lambda: any(r[0] == "cronium_event_3" for r in dag_rows()["runs"]), 60, "the 20-second run")
        time.sleep(3)
        rows = dag_rows()
    finally:
        stop_all(services)
    assert [r for r in rows["runs"] if r[0] == "cronium_event_1"] == [], rows
    for dag_id in sorted(due):
        [(_, run_type, run_after)] = [r for r in rows["runs"] if r[0] == dag_id]
        assert run_type == "scheduled"
        assert datetime.fromisoformat(str(run_after)).replace(tzinfo=UTC) == start, (dag_id, run_after)
    [(_, run_type, run_after)] = [r for r in rows["runs"] if r[0] == "cronium_event_3"]
    assert run_type == "scheduled"
    assert datetime.fromisoformat(str(run_after)).second in (0, 20, 40), run_after
    next_passed = datetime.fromisoformat(str(rows["dags"]["cronium_event_1"])).replace(tzinfo=UTC)
    assert next_passed == passed + timedelta(days=1)


def test_a_six_field_cron_keeps_its_seconds_through_serialization(tmp_path: Path) -> None:
    """A 6-field customSchedule is node-schedule's second minute hour ... (lib/scheduler/scheduler.ts:299-301,
    384): the scheduler's copy of the timetable fires on second 30 of each minute."""
    timetable = scheduler_timetable(tmp_path, {"customSchedule": "30 * * * * *"})
    assert runs(timetable, "2026-03-01T10:07:20+00:00") == [
        "2026-03-01 10:07:30",
        "2026-03-01 10:08:30",
        "2026-03-01 10:09:30",
    ]
