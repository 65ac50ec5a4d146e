"""Record models, the file record source and validation, on the shapes Cronium really emits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cronium_provider.records.models import ConnectionType, Event, Workflow
from cronium_provider.records.validation import find_cycles, load_records


def write(folder: Path, name: str, data: object) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) if name.endswith(".json") else str(data))
    return path


def bash_event(event_id: int, **extra: object) -> dict[str, object]:
    return {
        "kind": "event",
        "id": event_id,
        "name": f"event {event_id}",
        "type": "BASH",
        "status": "ACTIVE",
        "content": "echo hi",
        **extra,
    }


def test_headers_arrive_as_list_or_object_and_extra_fields_are_ignored() -> None:
    as_list = Event.model_validate(
        {
            "id": 1,
            "name": "h",
            "type": "HTTP_REQUEST",
            "httpUrl": "http://x",
            "httpHeaders": [{"key": "A", "value": "1"}],
            "payloadVersion": 3,
            "somethingNew": {"x": 1},
        }
    )
    as_object = Event.model_validate(
        {"id": 1, "name": "h", "type": "HTTP_REQUEST", "httpUrl": "http://x", "httpHeaders": {"A": "1"}}
    )
    as_text = Event.model_validate(
        {
            "id": 1,
            "name": "h",
            "type": "HTTP_REQUEST",
            "httpUrl": "http://x",
            "httpHeaders": '[{"key": "A", "value": "1"}]',
        }
    )
    assert as_list.http_headers == as_object.http_headers == as_text.http_headers
    assert as_list.http_headers[0].key == "A"


def test_tool_action_config_as_object_or_json_string() -> None:
    cfg = {"toolType": "slack", "actionId": "slack-send-message", "toolId": 3, "parameters": {"text": "hi"}}
    a = Event.model_validate({"id": 1, "name": "t", "type": "TOOL_ACTION", "toolActionConfig": cfg})
    b = Event.model_validate({"id": 1, "name": "t", "type": "TOOL_ACTION", "toolActionConfig": json.dumps(cfg)})
    assert a.tool_action_config == b.tool_action_config
    assert a.tool_action_config is not None and a.tool_action_config.parameters == {"text": "hi"}


def test_create_form_action_names_are_accepted() -> None:
    event = Event.model_validate(
        {
            "id": 1,
            "name": "x",
            "type": "BASH",
            "onSuccessActions": [{"type": "SCRIPT", "targetEventId": 2}],
            "onFailActions": [{"type": "SEND_MESSAGE", "toolId": 1, "message": "m"}],
        }
    )
    assert event.success_events[0].target_event_id == 2
    assert event.fail_events[0].message == "m"


def test_workflow_nodes_and_connections_in_table_and_editor_shape() -> None:
    table = Workflow.model_validate(
        {
            "id": 5,
            "name": "w",
            "nodes": [
                {"id": 10, "workflowId": 5, "eventId": 1, "position_x": 0, "position_y": 0},
                {"id": 11, "workflowId": 5, "eventId": 2, "position_x": 1, "position_y": 0},
            ],
            "connections": [{"sourceNodeId": 10, "targetNodeId": 11, "connectionType": "ON_SUCCESS"}],
        }
    )
    editor = Workflow.model_validate(
        {
            "id": 5,
            "name": "w",
            "nodes": [
                {"id": "10", "type": "eventNode", "position": {"x": 0, "y": 0}, "data": {"eventId": 1, "label": "a"}},
                {"id": "11", "type": "eventNode", "position": {"x": 1, "y": 0}, "data": {"eventId": 2}},
            ],
            "edges": [{"id": "e", "source": "10", "target": "11", "data": {"connectionType": "ON_SUCCESS"}}],
        }
    )
    assert (
        [(n.id, n.event_id) for n in table.nodes]
        == [(n.id, n.event_id) for n in editor.nodes]
        == [("10", 1), ("11", 2)]
    )
    assert table.connections == editor.connections
    assert table.connections[0].connection_type is ConnectionType.ON_SUCCESS
    default = Workflow.model_validate({"id": 1, "name": "w", "connections": [{"source": "a", "target": "b"}]})
    assert default.connections[0].connection_type is ConnectionType.ALWAYS


def test_a_folder_with_three_good_and_three_broken_records(tmp_path: Path) -> None:
    """The good records load; each broken one is reported with its file, id and field."""
    write(tmp_path, "good/events.json", {"events": [bash_event(1), bash_event(2)]})
    write(
        tmp_path,
        "good/flow.yaml",
        """
kind: workflow
id: 10
name: good flow
status: ACTIVE
nodes: [{id: a, eventId: 1}, {id: b, eventId: 2}]
connections: [{source: a, target: b, connectionType: ON_SUCCESS}]
""",
    )
    write(
        tmp_path,
        "bad/cycle.yml",
        """
kind: workflow
id: 20
name: cyclic
nodes: [{id: x, eventId: 1}, {id: y, eventId: 2}, {id: z, eventId: 1}]
connections:
  - {source: x, target: y}
  - {source: y, target: z}
  - {source: z, target: x}
""",
    )
    write(tmp_path, "bad/enum.json", bash_event(12, scheduleUnit="FORTNIGHTS"))
    write(tmp_path, "bad/dangling.json", bash_event(13, successEvents=[{"type": "SCRIPT", "targetEventId": 99}]))

    records = load_records([tmp_path])

    assert sorted(records.events) == [1, 2]
    assert sorted(records.workflows) == [10]
    texts = sorted(str(e) for e in records.errors)
    assert len(texts) == 3, texts
    by_file = {Path(e.path).name: e for e in records.errors}
    cycle = by_file["cycle.yml"]
    assert (cycle.kind, cycle.record_id, cycle.field) == ("workflow", 20, "connections")
    assert "'x' -> 'y' -> 'z' -> 'x'" in cycle.message
    enum = by_file["enum.json"]
    assert str(enum).startswith(f"{tmp_path / 'bad/enum.json'}: event 12: field scheduleUnit: ")
    assert "'SECONDS', 'MINUTES', 'HOURS' or 'DAYS'" in enum.message and "FORTNIGHTS" in enum.message
    dangling = by_file["dangling.json"]
    assert (dangling.record_id, dangling.field) == (13, "successEvents[0].targetEventId")
    assert "event 99" in dangling.message


def test_every_problem_is_found_not_just_the_first(tmp_path: Path) -> None:
    write(
        tmp_path,
        "e.json",
        {"kind": "event", "id": 7, "name": "", "type": "RUBY", "status": "LIVE", "retries": 20, "timeoutUnit": "WEEKS"},
    )
    records = load_records([tmp_path])
    fields = sorted(e.field or "" for e in records.errors)
    assert fields == ["name", "retries", "status", "timeoutUnit", "type"]
    assert all(e.record_id == 7 for e in records.errors)


@pytest.mark.parametrize(
    ("record", "field", "words"),
    [
        (bash_event(1, runLocation="REMOTE", serverId=4), "serverId", "server 4"),
        (bash_event(1, servers=[{"id": 5}]), "servers[0]", "server 5"),
        (bash_event(1, triggerType="SCHEDULE", customSchedule="61 * * * *"), "customSchedule", "not a valid cron"),
        (bash_event(1, triggerType="SCHEDULE", customSchedule="61 * * * * *"), "customSchedule", "seconds"),
        (bash_event(1, startTime="next tuesday"), "startTime", "ISO 8601"),
        ({"kind": "event", "id": 1, "name": "h", "type": "HTTP_REQUEST"}, "httpUrl", "needs httpUrl"),
        (
            {"kind": "event", "id": 1, "name": "t", "type": "TOOL_ACTION", "toolActionConfig": "{not json"},
            "toolActionConfig",
            "not valid JSON",
        ),
        ({"kind": "event", "id": "one", "name": "t", "type": "BASH"}, "id", "integer"),
        ({"kind": "gadget", "id": 1}, "kind", "allowed: event, workflow, server"),
    ],
)
def test_single_record_problems_name_the_field(tmp_path: Path, record, field, words) -> None:
    write(tmp_path, "r.json", record)
    records = load_records([tmp_path])
    assert len(records.errors) == 1, [str(e) for e in records.errors]
    error = records.errors[0]
    assert error.field == field
    assert words in error.message
    assert error.path == str(tmp_path / "r.json")


def test_workflow_problems_self_loop_missing_event_and_node(tmp_path: Path) -> None:
    write(tmp_path, "e.json", bash_event(1))
    write(
        tmp_path,
        "w.json",
        {
            "kind": "workflow",
            "id": 3,
            "name": "w",
            "nodes": [{"id": "a", "eventId": 1}, {"id": "b", "eventId": 42}],
            "connections": [{"source": "a", "target": "a"}, {"source": "a", "target": "c"}],
        },
    )
    records = load_records([tmp_path])
    assert not records.workflows
    messages = {e.field: e.message for e in records.errors}
    assert "self-loop: node 'a'" in messages["connections[0]"]
    assert "'c' is not a node" in messages["connections[1].target"]
    assert "event 42" in messages["nodes[1].eventId"]


def test_duplicate_ids_keep_the_first_and_report_the_second(tmp_path: Path) -> None:
    write(tmp_path, "a.json", bash_event(1))
    write(tmp_path, "b.json", bash_event(1, name="again"))
    records = load_records([tmp_path])
    assert records.events[1].name == "event 1"
    [error] = records.errors
    assert error.path.endswith("b.json") and error.field == "id" and "a.json" in error.message


def test_an_event_pointing_at_a_bad_event_is_reported_too(tmp_path: Path) -> None:
    write(tmp_path, "a.json", bash_event(1, type="COBOL"))
    write(tmp_path, "b.json", bash_event(2, alwaysEvents=[{"type": "SCRIPT", "targetEventId": 1}]))
    write(tmp_path, "c.json", bash_event(3))
    records = load_records([tmp_path])
    assert sorted(records.events) == [3]
    assert {(e.record_id, e.field) for e in records.errors} == {(1, "type"), (2, "alwaysEvents[0].targetEventId")}


def test_unreadable_files_are_reported_and_hide_nothing(tmp_path: Path) -> None:
    write(tmp_path, "broken.json", "{")
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "broken.yaml").write_text("a: [1, 2\n")
    (tmp_path / "evil.yaml").write_text("!!python/object/apply:os.system ['touch /tmp/cronium-pwned']\n")
    (tmp_path / "list.json").write_text("[1, 2]")
    write(tmp_path, "ok.json", bash_event(5))
    records = load_records([tmp_path])
    assert sorted(records.events) == [5]
    by_file = {Path(e.path).name: e.message for e in records.errors}
    assert by_file["broken.json"].startswith("not valid JSON")
    assert by_file["broken.yaml"].startswith("not valid YAML")
    assert by_file["evil.yaml"].startswith("not valid YAML")  # the safe loader refuses python tags
    assert not Path("/tmp/cronium-pwned").exists()
    assert "is not a record" in by_file["list.json"]


def test_secret_values_never_appear_in_errors(tmp_path: Path) -> None:
    write(
        tmp_path,
        "e.json",
        bash_event(
            1,
            envVars=[
                {"key": "TOKEN", "value": {"nested": "hunter2-secret"}},
                {"key": "", "value": "other-secret-value"},
            ],
        ),
    )
    write(
        tmp_path,
        "s.json",
        {
            "kind": "server",
            "id": 1,
            "name": "s",
            "address": "127.0.0.2",
            "password": ["pw-secret-value"],
            "port": 99999,
        },
    )
    records = load_records([tmp_path])
    text = "\n".join(str(e) for e in records.errors)
    assert "envVars[0].value" in text and "password" in text and "port" in text
    for secret in ("hunter2-secret", "other-secret-value", "pw-secret-value"):
        assert secret not in text


def test_find_cycles_names_each_cycle() -> None:
    cycles = find_cycles(["a", "b", "c", "d", "e"], [("a", "b"), ("b", "a"), ("c", "d"), ("d", "e"), ("e", "c")])
    assert sorted(cycles) == [["a", "b", "a"], ["c", "d", "e", "c"]]
    assert find_cycles(["a", "b"], [("a", "b")]) == []


def test_example_records_are_all_valid() -> None:
    from tests.conftest import EXAMPLES

    records = load_records([EXAMPLES])
    assert records.ok, [str(e) for e in records.errors]
    assert {e.type.value for e in records.events.values()} == {
        "BASH",
        "PYTHON",
        "NODEJS",
        "HTTP_REQUEST",
        "TOOL_ACTION",
    }
    kinds = {c.connection_type.value for w in records.workflows.values() for c in w.connections}
    assert kinds == {"ALWAYS", "ON_SUCCESS", "ON_FAILURE", "ON_CONDITION"}


def test_cronium_default_template_action_ids_are_aliases() -> None:
    """Cronium's default tool templates name the message action ``send-message`` for Slack and Discord
    (apps/cronium-app/src/lib/default-tool-action-templates.ts:21-41); the record means the provider's id."""
    for tool, canonical in (("slack", "slack-send-message"), ("discord", "discord-send-message")):
        cfg = {"toolType": tool, "actionId": "send-message", "toolId": 3, "parameters": {"text": "hi"}}
        event = Event.model_validate({"id": 1, "name": "t", "type": "TOOL_ACTION", "toolActionConfig": cfg})
        assert event.tool_action_config is not None and event.tool_action_config.action_id == canonical


@pytest.mark.parametrize("key", ["X; touch /tmp/cronium-env-pwned", "MY-KEY", "A.B", "1ST", "PATH=x", "ÄPFEL"])
def test_env_var_names_must_be_shell_identifiers(tmp_path: Path, key: str) -> None:
    """An env var name becomes a shell variable (``export NAME=...`` in the SSH run's ``.env``), so a record
    may only name one a shell accepts: ``[A-Za-z_][A-Za-z0-9_]*``. Cronium itself only requires a non-empty
    key of at most 255 characters (apps/cronium-app/src/shared/schemas/events.ts:22-25, ``envVarSchema``;
    apps/cronium-app/src/shared/schema.ts:223, ``varchar("key", { length: 255 })``, at aef566a); every key
    in the corpus and the example records is an identifier."""
    env = [{"key": "REGION", "value": "eu"}, {"key": "_DEBUG", "value": "1"}, {"key": key, "value": "x"}]
    path = write(tmp_path, "a.json", bash_event(1, envVars=env))
    write(tmp_path, "b.json", bash_event(2, envVars=[{"key": "API_KEY_2", "value": "x"}]))
    records = load_records([tmp_path])
    assert sorted(records.events) == [2]
    [error] = records.errors
    assert (error.path, error.record_id, error.field) == (str(path), 1, "envVars[2].key")
    assert "shell" in str(error)


def test_the_ssh_env_file_refuses_a_name_that_is_not_a_shell_identifier() -> None:
    """The SSH run's ``.env`` is sourced by the remote shell: a name is never written unchecked."""
    from cronium_provider.runners.ssh import _env_file

    assert _env_file({"REGION": "eu west", "_X1": "a'b"}) == b"export REGION='eu west'\nexport _X1='a'\"'\"'b'\n"
    for bad in ("X; touch /tmp/cronium-env-pwned", "A B", "1ST", ""):
        with pytest.raises(ValueError, match="not a shell variable name"):
            _env_file({"OK": "1", bad: "x"})


def test_yaml_aliases_are_bounded_but_honest_anchors_load(tmp_path: Path) -> None:
    """Anchors shared by many records (a ``<<: *defaults`` merge, a shared env list) load as before; a value
    that contains its own alias is refused by name, and the other files still load."""
    lines = [
        "defaults: &defaults {type: BASH, status: ACTIVE, content: 'true', timeoutValue: 30, timeoutUnit: SECONDS}",
        "env: &env [{key: REGION, value: eu}, {key: TIER, value: gold}]",
        "events:",
    ]
    lines += [f"  - {{<<: *defaults, id: {i}, name: e{i}, envVars: *env}}" for i in range(1, 2001)]
    write(tmp_path, "many.yaml", "\n".join(lines) + "\n")
    loop = write(tmp_path, "loop.yaml", "kind: event\nid: 9001\nname: loop\ntype: BASH\nx: &a [1, *a]\n")
    records = load_records([tmp_path])
    assert sorted(records.events) == list(range(1, 2001))
    assert [v.key for v in records.events[2000].env_vars] == ["REGION", "TIER"]
    [error] = records.errors
    assert error.path == str(loop) and "repeats a value inside itself" in error.message
