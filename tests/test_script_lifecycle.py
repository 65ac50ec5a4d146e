"""The script-event lifecycle's edges a user notices: which [cronium] options a script operator reads (a typo
elsewhere never breaks it, an inline comment reads as Airflow reads it, building one reads only its own), the
triggerer's timeout line, a stop that failed at a kill tried again at cleanup, the deferral's backstop counted
from after the start. The fault cases stand in for what cannot be arranged for real here: a Docker daemon that
stops answering only for the trigger, and a start that takes 3 s, are simulated on the real classes."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any


def test_a_malformed_unrelated_cronium_option_does_not_break_script_operators(monkeypatch) -> None:
    """A bad value of an option the script operators never read (the webhook's rate limit) does not stop
    a script DAG from being built: only the options an operator uses are read."""
    monkeypatch.setenv("AIRFLOW__CRONIUM__WEBHOOK_RATE_LIMIT", "lots")
    from cronium_provider.operators.container_script import CroniumScriptOperator
    from cronium_provider.operators.ssh_script import CroniumRemoteScriptOperator

    op = CroniumScriptOperator(task_id="t", language="BASH", script="echo")
    assert op.limits.run_folder_mb == 100 and op.deferrable is False
    remote = CroniumRemoteScriptOperator(
        task_id="r", language="BASH", script="echo", servers=[{"name": "a", "conn_id": "c"}]
    )
    assert remote.deferrable is False


def test_a_deferrable_setting_with_an_inline_comment_still_reads(monkeypatch) -> None:
    """``deferrable = true  # ...`` in airflow.cfg reads as Airflow's own booleans do (the comment cut)."""
    monkeypatch.setenv("AIRFLOW__CRONIUM__DEFERRABLE", "true  # free the worker slot")
    from cronium_provider.operators.container_script import CroniumScriptOperator

    assert CroniumScriptOperator(task_id="t", language="BASH", script="echo").deferrable is True


def test_building_a_script_operator_reads_only_the_options_it_uses(monkeypatch) -> None:
    """Constructing a script operator (DAG parse, once per event) reads its few [cronium] options, not the
    whole section: 0.18 ms an operator before, 0.76 ms when every option is read twice."""
    from airflow.providers.common.compat.sdk import conf

    from cronium_provider.operators.container_script import CroniumScriptOperator

    asked: list[str] = []
    real_get = conf.get

    def counting_get(section: str, key: str, *args: Any, **kwargs: Any) -> Any:
        if section == "cronium":
            asked.append(key)
        return real_get(section, key, *args, **kwargs)

    monkeypatch.setattr(conf, "get", counting_get)
    CroniumScriptOperator(task_id="t", language="BASH", script="echo")
    assert len(asked) <= 4, asked


def test_the_ssh_triggers_timeout_warning_keeps_its_wording() -> None:
    """The triggerer's line at a deferred remote run's timeout, as users grep it."""
    from cronium_provider.triggers.ssh import CroniumSSHTrigger

    run = {"server": "app-1", "conn_id": "nope", "run_dir": "/tmp/cronium-run-x", "session": 4321}
    trigger = CroniumSSHTrigger(runs=[{**run, "started_at": time.time()}], deadline=time.time() - 1, timeout_seconds=5)

    async def refuse(run: dict[str, Any]) -> Any:
        raise OSError("no route to host")

    trigger._connect = refuse  # type: ignore[method-assign]
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger(f"cronium.test.drift.{id(trigger)}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    trigger._log = logger

    async def drive() -> list[Any]:
        return [event async for event in trigger.run()]

    events = asyncio.run(drive())
    assert events[0].payload["status"] == "timeout", events
    assert (
        "execution_timeout (5 s) reached while deferred: stopping the script on app-1 (SIGTERM, SIGKILL 5 s "
        "later) and removing its run folder(s)"
    ) in records, records


def test_the_container_triggers_cleanup_retries_a_stop_that_failed_on_kill() -> None:
    """A stop at on_kill that could not reach the daemon is not taken for done: past the deadline the
    trigger's cleanup tries again to remove the container."""
    from cronium_provider.triggers.container import CroniumContainerTrigger

    trigger = CroniumContainerTrigger(
        container_id="c" * 64,
        volume="v",
        holder=None,
        run_folder_mb=100,
        docker_url="unix://x",
        deadline=time.time() - 1,
        timeout_seconds=5,
    )
    tries: list[int] = []

    def unreachable() -> Any:
        tries.append(1)
        raise OSError("the daemon is away")

    trigger._docker = unreachable  # type: ignore[method-assign]

    async def kill_then_cleanup() -> None:
        await trigger.on_kill()
        await trigger.cleanup()

    asyncio.run(kill_then_cleanup())
    assert len(tries) == 2, tries


def test_a_deferred_remote_runs_backstop_counts_from_after_its_start(monkeypatch) -> None:
    """The deferral's own timeout is execution_timeout's time left once the scripts started (plus the
    backstop margin): a start that took 3 s leaves 3 s less."""
    from datetime import timedelta
    from types import SimpleNamespace

    import pytest
    from airflow.sdk.exceptions import TaskDeferred

    from cronium_provider.operators.event import DEFERRAL_BACKSTOP_SECONDS
    from cronium_provider.operators.ssh_script import CroniumRemoteScriptOperator
    from cronium_provider.runners.ssh import DetachedRun

    op = CroniumRemoteScriptOperator(
        task_id="r",
        language="BASH",
        script="echo",
        servers=[{"name": "a", "conn_id": "c"}],
        deferrable=True,
        execution_timeout=timedelta(seconds=60),
    )

    def slow_start(server: Any, *args: Any, **kwargs: Any) -> DetachedRun:
        time.sleep(3)
        return DetachedRun("a", "/tmp/cronium-run-x", 1234, time.time())

    monkeypatch.setattr(op, "_start_one", slow_start)
    monkeypatch.setattr(op, "_hooks", lambda servers: {s["name"]: None for s in servers})
    monkeypatch.setattr(op, "_load_progress", lambda context: {})
    monkeypatch.setattr(op, "_stop_earlier_try", lambda context: None)
    monkeypatch.setattr(op, "_keep_deferred", lambda context, runs: None)
    monkeypatch.setattr(op, "variables", lambda: SimpleNamespace(snapshot=lambda: {}))
    monkeypatch.setattr(op, "script_environment", lambda: {})
    ti = SimpleNamespace(dag_id="d", task_id="r", run_id="x", map_index=-1, try_number=1)
    with pytest.raises(TaskDeferred) as deferred:
        op.run_event({"ti": ti}, None)  # type: ignore[arg-type]
    assert deferred.value.timeout is not None
    assert deferred.value.timeout.total_seconds() <= 60 - 3 + DEFERRAL_BACKSTOP_SECONDS + 0.5, deferred.value.timeout
