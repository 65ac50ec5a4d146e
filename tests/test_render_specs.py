"""Every kind of task spec the plan makes is rendered through its real operator class, inside a real DAG.

The plan and the operators meet only in :func:`cronium_provider.render.dags.render_task`, which calls the
operator with the spec's arguments: a spec that gives an argument its operator does not take (or misses a
required one) must fail here, and, at parse time, fail loudly rather than make DAGs disappear.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cronium_provider.plan.build import build_plan
from cronium_provider.plan.models import Plan
from cronium_provider.plan.specs import (
    ActionSpec,
    ContainerScriptSpec,
    EventRunSpec,
    SendMessageSpec,
    SSHScriptSpec,
    TaskSpec,
    ToolActionSpec,
    WorkflowResultSpec,
)
from cronium_provider.records.validation import load_records
from cronium_provider.render import dags as render
from cronium_provider.settings import CroniumSettings

SLACK = {"toolType": "slack", "actionId": "slack-send-message", "toolId": 1, "parameters": {"text": "hi"}}
HEADERS = [{"key": "Accept", "value": "application/json"}]
ACTIONS = {
    "alwaysEvents": [{"type": "SEND_MESSAGE", "toolId": 1, "message": "ran {{cronium.event.name}}"}],
    "successEvents": [{"type": "SCRIPT", "targetEventId": 3}],
    "failEvents": [{"type": "SEND_MESSAGE", "toolId": 2, "message": "failed", "emailAddresses": "a@example.com"}],
    "conditionEvents": [{"type": "SCRIPT", "targetEventId": 4}],
}


def _event(event_id: int, kind: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "userId": "u1",
        "name": f"event {event_id}",
        "type": kind,
        "status": "ACTIVE",
        "triggerType": "MANUAL",
        "content": "true",
        "timeoutValue": 30,
        "timeoutUnit": "SECONDS",
        **fields,
    }


def _node(node_id: str, event_id: int) -> dict[str, Any]:
    return {"id": node_id, "type": "eventNode", "data": {"eventId": event_id}}


def _edge(source: str, target: str, kind: str) -> dict[str, Any]:
    return {"id": f"{source}-{target}", "source": source, "target": target, "data": {"connectionType": kind}}


def _records(folder: Path) -> None:
    """Records that make every kind of spec, each in every shape its arguments take."""
    events = [
        _event(1, "BASH", retries=2, maxExecutions=3, envVars=[{"key": "REGION", "value": "x"}], **ACTIONS),
        _event(2, "PYTHON", runLocation="REMOTE", servers=[1]),  # one server: a pool
        _event(3, "NODEJS", runLocation="REMOTE", servers=[1, 2]),  # many servers: no pool
        _event(
            4, "HTTP_REQUEST", httpMethod="POST", httpUrl="http://127.0.0.1:9/x", httpBody="{}", httpHeaders=HEADERS
        ),
        _event(5, "HTTP_REQUEST", httpUrl="http://127.0.0.1:9/y"),
        _event(6, "TOOL_ACTION", toolActionConfig=json.dumps(SLACK)),
    ]
    servers = [
        {"id": 1, "name": "app-1", "address": "127.0.0.2", "username": "cronium"},
        {"id": 2, "name": "app-2", "address": "127.0.0.3", "username": "cronium"},
    ]
    every_node = {
        "kind": "workflow",
        "id": 1,
        "name": "every node",
        "status": "ACTIVE",
        "nodes": [_node(f"n{i}", i) for i in range(1, 7)],
        "edges": [
            _edge("n1", "n2", "ON_SUCCESS"),
            _edge("n1", "n3", "ON_FAILURE"),
            _edge("n1", "n4", "ON_CONDITION"),
            _edge("n2", "n5", "ALWAYS"),
            _edge("n3", "n5", "ON_SUCCESS"),
            _edge("n4", "n6", "ALWAYS"),
        ],
    }
    overridden = {
        "kind": "workflow",
        "id": 2,
        "name": "servers overridden",
        "status": "ACTIVE",
        "resultRule": "airflow",
        "overrideEventServers": True,
        "overrideServerIds": [2],
        "nodes": [_node("only", 3)],
    }
    empty = {"kind": "workflow", "id": 3, "name": "no nodes", "status": "ACTIVE", "nodes": []}
    (folder / "events.json").write_text(json.dumps({"events": events, "servers": servers}))
    for workflow in (every_node, overridden, empty):
        (folder / f"workflow-{workflow['id']}.json").write_text(json.dumps(workflow))


def _shape(spec: TaskSpec) -> tuple[str, frozenset[str]]:
    return type(spec).__name__, frozenset(spec.arguments())


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    folder = tmp_path_factory.mktemp("records")
    _records(folder)
    records = load_records([folder])
    assert records.ok, [str(e) for e in records.errors]
    return build_plan(records, CroniumSettings(scope_variables_by_owner="true"))


def test_the_records_make_every_kind_of_spec_in_every_shape(plan: Plan) -> None:
    specs = [spec for dag in plan.dags for spec in dag.tasks]
    assert {type(spec) for spec in specs} == set(render.OPERATORS)
    runs = [s for s in specs if isinstance(s, EventRunSpec)]
    assert any(s.workflow_incoming is None for s in runs) and any(s.workflow_incoming for s in runs)
    assert any(s.workflow_incoming == () for s in runs)  # a workflow's first node
    ssh = [s for s in specs if isinstance(s, SSHScriptSpec)]
    assert {s.pool is None for s in ssh} == {True, False} and any(s.servers_overridden for s in ssh)
    assert any(isinstance(s, ContainerScriptSpec) and s.env_keys for s in specs)
    assert any(isinstance(s, ToolActionSpec) and s.workflow_incoming for s in specs)
    actions = [s for s in specs if isinstance(s, ActionSpec)]
    assert {s.when for s in actions} == {"always", "success", "failure", "condition"}
    assert any(s.condition_of for s in actions) and any(s.condition_of is None for s in actions)
    messages = [s for s in actions if isinstance(s, SendMessageSpec)]
    assert {s.event_incoming is None for s in messages} == {True, False}
    results = [s for s in specs if isinstance(s, WorkflowResultSpec)]
    assert {s.no_nodes_message is None for s in results} == {True, False}
    assert {s.result_rule for s in results} == {"cronium", "airflow"}
    assert len({_shape(s) for s in specs}) >= 14


def test_every_spec_renders_through_its_operator(plan: Plan) -> None:
    dags = render.render_plan(plan)
    assert sorted(dags) == sorted(d.dag_id for d in plan.dags)
    for dag_plan in plan.dags:
        dag = dags[dag_plan.dag_id]
        for spec in dag_plan.tasks:
            task = dag.get_task(spec.task_id)
            assert type(task) is render.OPERATORS[type(spec)], spec.task_id
            assert task.trigger_rule == spec.trigger_rule
            assert task.task_display_name == spec.display_name


def test_a_spec_that_does_not_fit_its_operator_fails_the_parse_naming_both(
    plan: Plan, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A programming error (the plan gives an argument the operator does not take) is not a record problem:
    rendering raises, naming the spec, the task, the operator and the argument, instead of logging the DAG
    as a record left out."""
    arguments = ToolActionSpec.arguments
    monkeypatch.setattr(ToolActionSpec, "arguments", lambda self: {**arguments(self), "tool_colour": "red"})
    with pytest.raises(render.SpecMismatch) as caught:
        render.render_plan(plan)
    message = str(caught.value)
    assert "ToolActionSpec" in message and "CroniumToolActionOperator" in message
    assert "arguments it does not take: tool_colour" in message and "not a record problem" in message


def test_a_spec_missing_a_required_argument_fails_the_parse(plan: Plan, monkeypatch: pytest.MonkeyPatch) -> None:
    arguments = SendMessageSpec.arguments
    monkeypatch.setattr(
        SendMessageSpec, "arguments", lambda self: {k: v for k, v in arguments(self).items() if k != "message"}
    )
    with pytest.raises(render.SpecMismatch, match="required arguments missing: message"):
        render.render_plan(plan)
