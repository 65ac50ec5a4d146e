"""Workflows: Cronium's edge semantics, data passing and result, in real Airflow runs of the template DAG file.

Every node is a real container script. Each row of the matrix runs one workflow and checks the state of
every node, the input each node received (nodes echo their input in their output) and the run's result.
"""

from __future__ import annotations

import itertools
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.airflow_run import DagRunResult, load_dag_module, run_dag, write_dag_file
from tests.test_event_dags import TEMPLATE, new_id

pytestmark = [pytest.mark.docker, pytest.mark.airflow]


def ok(name: str) -> str:
    return f'cronium_output "{{\\"node\\": \\"{name}\\", \\"input\\": $(cronium_input)}}"'


def fail(name: str) -> str:
    return f'echo "{name} fails" >&2; exit 1'


def cond(name: str, value: str | None) -> str:
    setting = f"cronium_setCondition {value}; " if value is not None else ""
    return setting + ok(name)


class WorkflowBuilder:
    def __init__(self, folder: Path, capfd: Any, monkeypatch: pytest.MonkeyPatch):
        self.folder, self.capfd, self.monkeypatch = folder, capfd, monkeypatch
        self.events: list[dict[str, Any]] = []
        self.nodes: list[dict[str, Any]] = []
        self.edges: list[dict[str, Any]] = []

    def node(self, node_id: str, script: str, **event_fields: Any) -> str:
        event_id = new_id()
        self.events.append(
            {
                "id": event_id,
                "name": f"event {node_id}",
                "type": "BASH",
                "status": "ACTIVE",
                "content": script,
                "timeoutValue": 60,
                **event_fields,
            }
        )
        self.nodes.append(
            {
                "id": node_id,
                "type": "eventNode",
                "position": {"x": 0, "y": 0},
                "data": {"eventId": event_id, "label": node_id},
            }
        )
        return node_id

    def connect(self, source: str, target: str, kind: str = "ALWAYS") -> None:
        self.edges.append(
            {"id": f"{source}-{target}", "source": source, "target": target, "data": {"connectionType": kind}}
        )

    def run(self, conf: dict[str, Any] | None = None, **workflow: Any) -> WorkflowRun:
        workflow_id = new_id()
        record = {
            "id": workflow_id,
            "name": "matrix",
            "status": "ACTIVE",
            "triggerType": "MANUAL",
            "nodes": self.nodes,
            "edges": self.edges,
            **workflow,
        }
        (self.folder / "bundle.json").write_text(json.dumps({"events": self.events, "workflows": [record]}))
        self.monkeypatch.setenv("CRONIUM_RECORDS_DIR", str(self.folder))
        module = load_dag_module(write_dag_file(f"cronium_wf_{uuid.uuid4().hex[:8]}.py", TEMPLATE.read_text()))
        dag = getattr(module, f"cronium_workflow_{workflow_id}")
        return WorkflowRun(run_dag(dag, conf, capfd=self.capfd), dag)


class WorkflowRun:
    def __init__(self, result: DagRunResult, dag: Any):
        self.result, self.dag = result, dag

    @property
    def states(self) -> dict[str, str | None]:
        return {
            k[len("node_") :]: v for k, v in self.result.task_states.items() if k.startswith("node_") and "__" not in k
        }

    def input_of(self, node: str) -> Any:
        output = self.result.xcom(f"node_{node}")
        assert output is not None, f"node {node} produced no output (state {self.states.get(node)})"
        return output["input"]


@pytest.fixture
def wf(tmp_path: Path, capfd, monkeypatch, airflow_db) -> WorkflowBuilder:
    folder = tmp_path / "records"
    folder.mkdir()
    return WorkflowBuilder(folder, capfd, monkeypatch)


def test_chain_of_three_passes_data_along(wf: WorkflowBuilder) -> None:
    for name in "abc":
        wf.node(name, ok(name))
    wf.connect("a", "b", "ON_SUCCESS")
    wf.connect("b", "c", "ON_SUCCESS")
    run = wf.run({"order": 7})
    assert run.states == {"a": "success", "b": "success", "c": "success"}
    assert run.input_of("a") == {"order": 7}
    assert run.input_of("b") == {"node": "a", "input": {"order": 7}}
    assert run.input_of("c") == {"node": "b", "input": {"node": "a", "input": {"order": 7}}}
    assert run.result.state == "success"
    nodes = run.result.xcom("workflow_result", "nodes")
    assert nodes["node_c"]["status"] == "success" and nodes["node_c"]["output"]["node"] == "c"


def test_diamond_with_parallel_start_nodes(wf: WorkflowBuilder) -> None:
    for name in ("s1", "s2", "x", "y", "j"):
        wf.node(name, ok(name))
    wf.connect("s1", "x")
    wf.connect("s1", "y")
    wf.connect("x", "j")
    wf.connect("y", "j")
    wf.connect("s2", "j")
    run = wf.run({"seed": 1})
    assert set(run.states.values()) == {"success"}
    assert run.input_of("s1") == run.input_of("s2") == {"seed": 1}
    assert run.input_of("x")["node"] == "s1" and run.input_of("y")["node"] == "s1"
    assert run.input_of("j")["node"] == "s2"  # the last successful parent with an output, in connection order
    task = run.dag.get_task("node_j")
    assert {t for t in task.upstream_task_ids} == {"node_x", "node_y", "node_s2"}


@pytest.mark.parametrize("parent_fails", [False, True])
def test_on_success_and_on_failure_children(wf: WorkflowBuilder, parent_fails: bool) -> None:
    wf.node("a", fail("a") if parent_fails else ok("a"))
    wf.node("good", ok("good"))
    wf.node("bad", ok("bad"))
    wf.connect("a", "good", "ON_SUCCESS")
    wf.connect("a", "bad", "ON_FAILURE")
    run = wf.run({"k": 1})
    if parent_fails:
        assert run.states == {"a": "failed", "good": "skipped", "bad": "success"}
        assert run.input_of("bad") == {"k": 1}  # a failed parent hands nothing over
        assert run.result.state == "failed"  # handled, but still a failure under Cronium's rule
    else:
        assert run.states == {"a": "success", "good": "success", "bad": "skipped"}
        assert run.input_of("good") == {"node": "a", "input": {"k": 1}}
        assert run.result.state == "success"


@pytest.mark.parametrize(("value", "runs"), [("true", True), ("false", False), (None, False)])
def test_on_condition(wf: WorkflowBuilder, value: str | None, runs: bool) -> None:
    wf.node("check", cond("check", value))
    wf.node("then", ok("then"))
    wf.connect("check", "then", "ON_CONDITION")
    run = wf.run()
    assert run.states == {"check": "success", "then": "success" if runs else "skipped"}
    assert run.result.xcom("node_check", "condition") is (value == "true")
    assert run.result.state == "success"


def test_always_after_success_after_failure_and_below_a_skipped_node(wf: WorkflowBuilder) -> None:
    wf.node("ok", ok("ok"))
    wf.node("after_ok", ok("after_ok"))
    wf.node("bad", fail("bad"))
    wf.node("after_bad", ok("after_bad"))
    wf.node("never", ok("never"))
    wf.node("below_never", ok("below_never"))
    wf.connect("ok", "after_ok", "ALWAYS")
    wf.connect("bad", "after_bad", "ALWAYS")
    wf.connect("ok", "never", "ON_FAILURE")
    wf.connect("never", "below_never", "ALWAYS")
    run = wf.run()
    assert run.states == {
        "ok": "success",
        "after_ok": "success",
        "bad": "failed",
        "after_bad": "success",
        "never": "skipped",
        "below_never": "skipped",
    }


def test_skip_propagates_down_a_long_branch_while_a_parallel_branch_completes(wf: WorkflowBuilder) -> None:
    wf.node("root", ok("root"))
    chain = ["b1", "b2", "b3", "b4", "b5"]
    for name in [*chain, "p1", "p2", "p3"]:
        wf.node(name, ok(name))
    wf.connect("root", "b1", "ON_FAILURE")
    for a, b in itertools.pairwise(chain):
        wf.connect(a, b, "ALWAYS")
    wf.connect("root", "p1", "ON_SUCCESS")
    wf.connect("p1", "p2", "ON_SUCCESS")
    wf.connect("p2", "p3", "ALWAYS")
    run = wf.run()
    assert {n: run.states[n] for n in chain} == dict.fromkeys(chain, "skipped")
    assert {n: run.states[n] for n in ("root", "p1", "p2", "p3")} == dict.fromkeys(
        ("root", "p1", "p2", "p3"), "success"
    )
    assert run.input_of("p3")["node"] == "p2"
    assert run.result.state == "success"


@pytest.mark.parametrize(("second", "merge_state"), [("ON_SUCCESS", "success"), ("ON_FAILURE", "skipped")])
def test_merge_runs_only_when_every_connection_is_satisfied(wf: WorkflowBuilder, second: str, merge_state: str) -> None:
    wf.node("a", ok("a"))
    wf.node("b", ok("b"))
    wf.node("m", ok("m"))
    wf.connect("a", "m", "ON_SUCCESS")
    wf.connect("b", "m", second)
    run = wf.run()
    assert run.states == {"a": "success", "b": "success", "m": merge_state}
    if merge_state == "success":
        assert run.input_of("m")["node"] == "b"


def test_non_object_and_missing_outputs_fall_back(wf: WorkflowBuilder) -> None:
    wf.node("text", "cronium_output '\"just text\"'")
    wf.node("after_text", ok("after_text"))
    wf.node("quiet", "echo no output")
    wf.node("after_quiet", ok("after_quiet"))
    wf.connect("text", "after_text", "ON_SUCCESS")
    wf.connect("quiet", "after_quiet", "ON_SUCCESS")
    run = wf.run({"initial": True})
    assert run.input_of("after_text") == {}
    assert run.input_of("after_quiet") == {"initial": True}


@pytest.mark.parametrize(("rule", "state"), [("cronium", "failed"), ("airflow", "success")])
def test_run_result_under_each_rule(wf: WorkflowBuilder, rule: str, state: str) -> None:
    wf.node("a", fail("a"))
    wf.node("handler", ok("handler"))
    wf.connect("a", "handler", "ON_FAILURE")
    run = wf.run(resultRule=rule)
    assert run.states == {"a": "failed", "handler": "success"}
    assert run.result.task_states["workflow_result"] == ("failed" if state == "failed" else "success")
    assert run.result.state == state


def test_a_fifty_node_workflow_runs(wf: WorkflowBuilder) -> None:
    names = [f"n{i:02d}" for i in range(50)]
    for name in names:
        wf.node(name, 'cronium_output "{\\"count\\": $(( $(cronium_input | tr -cd 0-9 | sed "s/^$/0/") + 1 ))}"')
    for i in range(1, 50):
        wf.connect(names[(i - 1) // 2], names[i], "ON_SUCCESS")  # a binary tree, 6 levels deep
    run = wf.run({"count": 0})
    assert len(run.states) == 50 and set(run.states.values()) == {"success"}
    assert run.result.xcom("node_n49") == {"count": 6}


def test_an_events_bad_schedule_and_bad_actions_leave_out_only_its_own_dag(wf: WorkflowBuilder) -> None:
    """A workflow node runs its event's script whatever the event's own schedule (Cronium's workflow runs
    its nodes itself, lib/workflow-executor.ts:263-286, never through their schedules). The event's bad
    customSchedule, its SEND_MESSAGE with an unusable toolId and its SCRIPT action starting an unknown event
    leave out its own DAG (an error names each field), not the workflows that run it: the node runs, the
    bad actions are no tasks (Cronium fires a node's actions, services/job-service.ts:583-623, and skips
    one whose tool or target it cannot find, lib/scheduler/event-handlers.ts:228-260, 420-425)."""
    from cronium_provider.plan.build import build_plan
    from cronium_provider.records.validation import load_records

    wf.node(
        "a",
        ok("a"),
        triggerType="SCHEDULE",
        customSchedule="every day",
        successEvents=[{"type": "SEND_MESSAGE", "toolId": "../smtp_default", "message": "hi"}],
        failEvents=[{"type": "SCRIPT", "targetEventId": 2_000_000_000}],
    )
    wf.node("b", ok("b"))
    wf.connect("a", "b", "ON_SUCCESS")
    run = wf.run()
    assert run.states == {"a": "success", "b": "success"}
    assert run.input_of("b") == {"node": "a", "input": {}}
    assert [t for t in run.dag.task_ids if t.startswith("node_a__")] == []

    records = load_records([wf.folder])
    event_id = wf.events[0]["id"]
    assert event_id not in records.events and event_id in records.node_only
    fields = {e.field for e in records.errors if e.record_id == event_id}
    assert fields == {"customSchedule", "successEvents[0].toolId", "failEvents[0].targetEventId"}
    plan = build_plan(records)
    assert [d.dag_id for d in plan.dags if d.kind == "event"] == [f"cronium_event_{wf.events[1]['id']}"]
    [workflow] = [d for d in plan.dags if d.kind == "workflow"]
    assert any(f"event {event_id} has no DAG of its own" in note for note in workflow.notes)
