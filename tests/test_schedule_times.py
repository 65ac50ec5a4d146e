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
    dag = render_plan(build_plan(records, timezone=timezone))["cronium_event_1"]
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
    assert runs(timetable, "2026-03-01T11:01:00+00:00", 2) == ["2026-03-01 11:15:00", "2026-03-01 11:30:00"]


def test_a_scheduler_that_was_down_does_not_catch_up(tmp_path: Path) -> None:
    from airflow.timetables.base import DataInterval, TimeRestriction

    timetable = scheduler_timetable(tmp_path, {"scheduleNumber": 5, "scheduleUnit": "MINUTES"})
    last = DataInterval.exact(datetime(2026, 3, 1, 10, 0, tzinfo=UTC))
    info = timetable.next_run(
        last, TimeRestriction(earliest=None, latest=None, catchup=False), datetime(2026, 3, 1, 12, 1, tzinfo=UTC)
    )
    assert info.run_after == datetime(2026, 3, 1, 12, 5, tzinfo=UTC)


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
    """dag-processor and scheduler on a private SQLite home: the DAG whose daily slot passed two minutes
    ago gets no run and its next run is tomorrow; the DAG whose startTime is ahead runs at that time."""
    home = tmp_path / "home"
    (home / "dags").mkdir(parents=True)
    records = tmp_path / "records"
    records.mkdir()
    now = datetime.now(UTC).replace(microsecond=0)
    passed = (now - timedelta(minutes=2)).replace(second=0)
    start = now + timedelta(seconds=40)
    events = [
        {**BASE, "id": 1, "name": "passed slot", "customSchedule": f"{passed.minute} {passed.hour} * * *"},
        {**BASE, "id": 2, "name": "future start", "customSchedule": "0 0 1 1 *", "startTime": start.isoformat()},
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
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "CRONIUM_RECORDS_DIR": str(records),
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
        wait_for(lambda: len(dag_rows()["dags"]) == 2, 120, "both DAGs parsed by the dag-processor")
        wait_for(lambda: any(r[0] == "cronium_event_2" for r in dag_rows()["runs"]), 150, "the startTime run")
        time.sleep(3)
        rows = dag_rows()
    finally:
        stop_all(services)
    assert [r for r in rows["runs"] if r[0] == "cronium_event_1"] == [], rows
    [(_, run_type, run_after)] = [r for r in rows["runs"] if r[0] == "cronium_event_2"]
    assert run_type == "scheduled"
    assert datetime.fromisoformat(str(run_after)).replace(tzinfo=UTC) == start
    next_passed = datetime.fromisoformat(str(rows["dags"]["cronium_event_1"])).replace(tzinfo=UTC)
    assert next_passed == passed + timedelta(days=1)
