"""Records exactly as Cronium writes them: its API bodies, its downloads, its nullable columns.

Cronium paths are relative to the addison-moore/cronium repository at commit aef566ac (2025-10-24); the
records below are written in the shapes those lines produce.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from cronium_provider.records.models import ConnectionType, EventStatus, TimeUnit, Workflow, WorkflowTriggerType
from cronium_provider.records.validation import load_records

USER = "V1StGXR8_Z5jdHi6B-myT"
STAMP = "2025-10-25T04:53:37.000Z"
# What Cronium's encrypt() returns: base64 of IV (16) + ciphertext + tag (16) (encryption-service.ts:51-72)
CIPHERTEXT = base64.b64encode(bytes(range(16)) + b"secret-value" + bytes(range(100, 116))).decode()


def write(folder: Path, name: str, data: object) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))  # as JSON.stringify(data, null, 2) writes it
    return path


def event_row(event_id: int, name: str, **changes: Any) -> dict[str, Any]:
    """Every ``events`` column in schema order with its default (schema.ts:155-216)."""
    row: dict[str, Any] = {
        "id": event_id,
        "userId": USER,
        "name": name,
        "description": None,
        "shared": False,
        "type": "BASH",
        "content": f"echo {name}",
        "httpMethod": None,
        "httpUrl": None,
        "httpHeaders": None,
        "httpBody": None,
        "toolActionConfig": None,
        "status": "ACTIVE",
        "triggerType": "MANUAL",
        "scheduleNumber": 1,
        "scheduleUnit": "MINUTES",
        "customSchedule": None,
        "runLocation": "LOCAL",
        "serverId": None,
        "timeoutValue": 30,
        "timeoutUnit": "SECONDS",
        "retries": 0,
        "startTime": None,
        "executionCount": 0,
        "maxExecutions": 0,
        "resetCounterOnActive": False,
        "payloadVersion": 1,
        "lastRunAt": None,
        "nextRunAt": None,
        "successCount": 0,
        "failureCount": 0,
        "tags": [],
        "createdAt": STAMP,
        "updatedAt": STAMP,
    }
    row.update(changes)
    return row


def action_row(action_id: int, list_column: str, owner: int, target: int) -> dict[str, Any]:
    """A ``conditional_actions`` row (schema.ts:412-433): a SCRIPT action of ``owner`` running ``target``."""
    row: dict[str, Any] = {
        "id": action_id,
        "type": "SCRIPT",
        "value": None,
        "successEventId": None,
        "failEventId": None,
        "alwaysEventId": None,
        "conditionEventId": None,
        "targetEventId": target,
        "toolId": None,
        "message": None,
        "emailAddresses": None,
        "emailSubject": None,
        "createdAt": STAMP,
        "updatedAt": STAMP,
    }
    row[list_column] = owner
    return row


def env_row(env_id: int, event_id: int, key: str, value: str) -> dict[str, Any]:
    """An ``env_vars`` row (schema.ts:218-231)."""
    return {"id": env_id, "eventId": event_id, "key": key, "value": value, "createdAt": STAMP, "updatedAt": STAMP}


def api_event(row: dict[str, Any], **relations: Any) -> dict[str, Any]:
    """The body of GET /api/events/{id}: storage.getEventWithRelations (storage/modules/events.ts:53-112)."""
    body = {**row, "server": None, "eventServers": [], "envVars": [], "servers": []}
    body.update({"successEvents": [], "failEvents": [], "alwaysEvents": [], "conditionEvents": []})
    body.update(relations)
    return body


def nested_event(row: dict[str, Any], env: list[dict[str, Any]] | None = None, **lists: Any) -> dict[str, Any]:
    """A node's ``event`` in getWorkflowWithRelations (storage/modules/workflows.ts:38-67, 75-102): drizzle's
    relations (``onSuccessEvents`` ... with ``targetEvent``), then the lists, ``conditionEvents`` always []."""
    success = lists.get("success", [])
    return {
        **row,
        "envVars": env or [],
        "server": None,
        "eventServers": [],
        "onSuccessEvents": success,
        "onFailEvents": [],
        "onAlwaysEvents": [],
        "servers": [],
        "successEvents": success,
        "failEvents": [],
        "alwaysEvents": [],
        "conditionEvents": [],
    }


def workflow_row(workflow_id: int, name: str, **changes: Any) -> dict[str, Any]:
    """Every ``workflows`` column in schema order (schema.ts:828-863): the schedule columns are null."""
    row: dict[str, Any] = {
        "id": workflow_id,
        "userId": USER,
        "name": name,
        "description": None,
        "triggerType": "MANUAL",
        "webhookKey": None,
        "scheduleNumber": None,
        "scheduleUnit": None,
        "customSchedule": None,
        "runLocation": "LOCAL",
        "overrideEventServers": False,
        "overrideServerIds": None,
        "status": "ACTIVE",
        "shared": False,
        "tags": [],
        "createdAt": STAMP,
        "updatedAt": STAMP,
    }
    row.update(changes)
    return row


def downloaded_workflow(workflow_id: int, events: list[dict[str, Any]], **changes: Any) -> dict[str, Any]:
    """What tRPC workflows.download returns for one workflow (routers/workflows.ts:640-656): the workflow
    with ``nodes`` (workflow_nodes rows, schema.ts:865-881, each with its ``event``) and ``connections``
    (workflow_connections rows, schema.ts:883-905), here a chain of ON_SUCCESS connections."""
    nodes = [
        {
            "id": workflow_id * 10 + i,
            "workflowId": workflow_id,
            "eventId": event["id"],
            "position_x": 100 * i,
            "position_y": 0,
            "createdAt": STAMP,
            "updatedAt": STAMP,
            "event": event,
        }
        for i, event in enumerate(events)
    ]
    connections = [
        {
            "id": workflow_id * 100 + i,
            "workflowId": workflow_id,
            "sourceNodeId": nodes[i]["id"],
            "targetNodeId": nodes[i + 1]["id"],
            "connectionType": "ON_SUCCESS",
            "createdAt": STAMP,
            "updatedAt": STAMP,
        }
        for i in range(len(nodes) - 1)
    ]
    return {
        **workflow_row(workflow_id, f"workflow {workflow_id}", **changes),
        "nodes": nodes,
        "connections": connections,
    }


# -- 1. nullable columns ---------------------------------------------------------------------------------


def test_manual_and_webhook_workflows_with_null_schedule_columns_load(tmp_path: Path) -> None:
    """apps/cronium-app/src/shared/schema.ts:839-842 (schedule_number, schedule_unit, custom_schedule,
    webhook_key nullable, no default) and :850 (override_server_ids); the seed creates its WEBHOOK and
    MANUAL workflows without them (src/scripts/seed-workflows.ts:155-163, 244-251)."""
    write(tmp_path, "events.json", [api_event(event_row(1, "one"))])
    bundle = {
        "workflows": [
            {**workflow_row(10, "manual"), "nodes": [], "connections": []},
            {**workflow_row(11, "hook", triggerType="WEBHOOK", webhookKey="Uakgb_J5m9g-0JDM"), "nodes": []},
            # a cron text needs no number and unit (workflow-executor.ts:115-117)
            {**workflow_row(12, "cron", triggerType="SCHEDULE", customSchedule="0 3 * * *"), "nodes": []},
        ]
    }
    write(tmp_path, "workflows.json", bundle)

    records = load_records([tmp_path])

    assert records.ok, [str(e) for e in records.errors]
    assert sorted(records.workflows) == [10, 11, 12]
    hook = records.workflows[11]
    assert hook.trigger_type is WorkflowTriggerType.WEBHOOK and hook.webhook_key == "Uakgb_J5m9g-0JDM"
    # the attributes keep their types: a null reads as the placeholder 1 MINUTES
    assert (hook.schedule_number, hook.schedule_unit) == (1, TimeUnit.MINUTES)
    assert hook.override_server_ids == [] and hook.description is None
    assert records.workflows[12].custom_schedule == "0 3 * * *"


def test_a_scheduled_workflow_without_any_schedule_is_refused_as_cronium_never_schedules_it(tmp_path: Path) -> None:
    """apps/cronium-app/src/lib/workflow-executor.ts:115-153: customSchedule, else scheduleNumber and
    scheduleUnit only when both are set, else "has no valid schedule configuration" and no job;
    src/shared/schemas/workflows.ts:97-117: the create form refuses it for an ACTIVE workflow only."""
    bundle = {
        "workflows": [
            workflow_row(20, "no schedule", triggerType="SCHEDULE"),
            workflow_row(21, "no unit", triggerType="SCHEDULE", status="PAUSED", scheduleNumber=5),
            workflow_row(22, "draft", triggerType="SCHEDULE", status="DRAFT"),
            workflow_row(23, "blank cron", triggerType="SCHEDULE", customSchedule=" ", scheduleUnit="HOURS"),
            workflow_row(24, "both", triggerType="SCHEDULE", scheduleNumber=6, scheduleUnit="HOURS"),
        ]
    }
    path = write(tmp_path, "w.json", bundle)

    records = load_records([tmp_path])

    assert sorted(records.workflows) == [22, 24]
    assert (records.workflows[24].schedule_number, records.workflows[24].schedule_unit) == (6, TimeUnit.HOURS)
    found = {(e.record_id, e.field) for e in records.errors}
    assert found == {(20, "scheduleNumber"), (21, "scheduleUnit"), (23, "scheduleNumber")}
    for error in records.errors:
        assert error.path == str(path) and error.kind == "workflow"
        assert "never schedules" in error.message


def test_nulls_in_columns_with_a_default_mean_the_default(tmp_path: Path) -> None:
    """apps/cronium-app/src/shared/schema.ts:155-216 (events: NOT NULL columns with defaults; name
    varchar(255) at :160, which the REST create fills without a length cap, app/api/events/route.ts:20),
    :218-231 (env_vars), :233-262 (servers: username 'root', port 22), :412-433 (conditional_actions)."""
    long_name = "n" * 180
    event = event_row(
        1,
        long_name,
        shared=None,
        status=None,
        triggerType=None,
        scheduleNumber=None,
        scheduleUnit=None,
        runLocation=None,
        timeoutValue=None,
        timeoutUnit=None,
        retries=None,
        executionCount=None,
        maxExecutions=None,
        resetCounterOnActive=None,
        tags=None,
    )
    server = {"id": 3, "userId": USER, "name": "box", "address": "10.0.0.3", "username": None, "port": None}
    write(tmp_path, "e.json", event)
    write(tmp_path, "s.json", [server])

    records = load_records([tmp_path])

    assert records.ok, [str(e) for e in records.errors]
    loaded = records.events[1]
    assert loaded.name == long_name
    assert (loaded.status, loaded.schedule_number, loaded.schedule_unit) == (EventStatus.DRAFT, 1, TimeUnit.MINUTES)
    assert (loaded.timeout_value, loaded.timeout_unit.value, loaded.retries, loaded.tags) == (30, "SECONDS", 0, [])
    assert (records.servers[3].username, records.servers[3].port) == ("root", 22)


# -- 2. nested API shapes --------------------------------------------------------------------------------


def test_the_body_of_get_event_by_id_loads_with_its_relations(tmp_path: Path) -> None:
    """apps/cronium-app/src/app/api/events/[id]/route.ts:119,142 returns storage.getEventWithRelations,
    src/server/storage/modules/events.ts:53-112: the row, ``server``, ``eventServers`` rows with their
    ``server``, decrypted ``envVars`` rows, ``servers`` objects and the four action lists of
    conditional_actions rows."""
    server_row = {"id": 3, "userId": USER, "name": "box", "address": "10.0.0.3", "sshKey": None, "password": None}
    server_row |= {"username": "root", "port": 22, "shared": False, "online": True, "isArchived": False}
    main = api_event(
        event_row(1, "main", runLocation="REMOTE", serverId=3),
        server=server_row,
        eventServers=[{"id": 9, "eventId": 1, "serverId": 3, "createdAt": STAMP, "server": server_row}],
        envVars=[env_row(5, 1, "TOKEN", "plain-text")],
        servers=[server_row],
        successEvents=[action_row(7, "successEventId", 1, 2)],
        conditionEvents=[action_row(8, "conditionEventId", 1, 2)],
    )
    write(tmp_path, "main.json", main)
    write(tmp_path, "other.json", api_event(event_row(2, "other")))
    write(tmp_path, "servers.json", {"servers": [server_row]})

    records = load_records([tmp_path])

    assert records.ok, [str(e) for e in records.errors]
    event = records.events[1]
    assert event.server_ids == [3]
    assert event.success_events[0].target_event_id == 2 and event.condition_events[0].target_event_id == 2
    assert [(v.key, v.value.get_secret_value()) for v in event.env_vars] == [("TOKEN", "plain-text")]


def test_drizzle_relation_names_and_event_server_rows_are_read_too(tmp_path: Path) -> None:
    """apps/cronium-app/src/shared/schema.ts:708-729: the relations ``onSuccessEvents``, ``onFailEvents``,
    ``onAlwaysEvents`` and ``eventServers``; a workflow download's node event carries them with each
    action's ``targetEvent`` (src/server/storage/modules/workflows.ts:40-66)."""
    target_row = event_row(2, "target")
    raw = {
        **event_row(1, "raw", runLocation="REMOTE"),
        "eventServers": [{"id": 9, "eventId": 1, "serverId": 3, "createdAt": STAMP}],
        "onFailEvents": [{**action_row(7, "failEventId", 1, 2), "targetEvent": target_row}],
    }
    write(tmp_path, "raw.json", raw)
    write(tmp_path, "target.json", target_row)
    write(tmp_path, "server.json", {"id": 3, "userId": USER, "name": "box", "address": "10.0.0.3"})

    records = load_records([tmp_path])

    assert records.ok, [str(e) for e in records.errors]
    assert records.events[1].server_ids == [3]
    assert [a.target_event_id for a in records.events[1].fail_events] == [2]


# -- 3. files as Cronium's UI downloads them -------------------------------------------------------------


def test_a_downloaded_workflow_is_a_complete_workflow(tmp_path: Path) -> None:
    """apps/cronium-app/src/server/api/routers/workflows.ts:640-656 (one workflow: JSON.stringify of
    storage.getWorkflowWithRelations, no 'kind'), src/server/storage/modules/workflows.ts:31-114 (nodes
    with their nested ``event``, ``connections`` rows)."""
    first, second = event_row(1, "extract"), event_row(2, "load", type="PYTHON", content="print(1)")
    document = downloaded_workflow(30, [nested_event(first), nested_event(second)])
    path = write(tmp_path, "workflow 30.json", document)

    records = load_records([path])

    assert records.ok, [str(e) for e in records.errors]
    assert sorted(records.events) == [1, 2]
    workflow = records.workflows[30]
    assert [(n.id, n.event_id) for n in workflow.nodes] == [("300", 1), ("301", 2)]
    assert [(c.source, c.target, c.connection_type) for c in workflow.connections] == [
        ("300", "301", ConnectionType.ON_SUCCESS)
    ]
    # the events come from the file itself: that is where a run reads their env vars from
    assert records.origin("event", 2) == records.origin("workflow", 30) == str(path)


def test_downloads_of_several_records_are_bare_arrays(tmp_path: Path) -> None:
    """apps/cronium-app/src/server/api/routers/workflows.ts:659-679 (several workflows: a bare array);
    src/server/api/routers/events.ts:816-848 (one event: the bare object; several: a bare array, where an
    event gone meanwhile is null), saved as is by src/components/event-list/EventsListClient.tsx:679-700."""
    write(
        tmp_path,
        "workflows.json",
        [
            downloaded_workflow(40, [nested_event(event_row(1, "a"))]),
            downloaded_workflow(41, [nested_event(event_row(2, "b")), nested_event(event_row(3, "c"))]),
        ],
    )
    write(tmp_path, "events.json", [api_event(event_row(4, "d")), None, api_event(event_row(5, "e"))])
    write(tmp_path, "event.json", api_event(event_row(6, "f")))

    records = load_records([tmp_path])

    assert records.ok, [str(e) for e in records.errors]
    assert sorted(records.workflows) == [40, 41]
    assert sorted(records.events) == [1, 2, 3, 4, 5, 6]


def test_an_event_nested_and_given_on_its_own_is_one_event(tmp_path: Path) -> None:
    """apps/cronium-app/src/server/storage/modules/workflows.ts:86 (a nested event's ``conditionEvents``
    is always []) and :42 (its env vars as stored, encrypted; encryption-service.ts:155-159, 193-213),
    against GET /api/events/{id} (storage/modules/events.ts:102-112, decrypted, variables.ts:18-34): the
    copy given on its own is kept; the same event nested in two workflows is loaded once."""
    row = event_row(1, "shared step", executionCount=4)
    full = api_event(
        event_row(1, "shared step", executionCount=9),
        envVars=[env_row(5, 1, "TOKEN", "plain-text")],
        conditionEvents=[action_row(8, "conditionEventId", 1, 2)],
    )
    write(tmp_path, "a.json", downloaded_workflow(50, [nested_event(row, [env_row(5, 1, "TOKEN", CIPHERTEXT)])]))
    write(tmp_path, "b.json", downloaded_workflow(51, [nested_event(row, [env_row(5, 1, "TOKEN", CIPHERTEXT)])]))
    write(tmp_path, "c.json", [full, api_event(event_row(2, "target"))])

    records = load_records([tmp_path])

    assert records.ok, [str(e) for e in records.errors]
    event = records.events[1]
    assert event.env_vars[0].value.get_secret_value() == "plain-text"
    assert [a.target_event_id for a in event.condition_events] == [2]
    assert event.execution_count == 9
    assert records.origin("event", 1) == str(tmp_path / "c.json")
    assert sorted(records.workflows) == [50, 51]


def test_copies_of_one_event_that_differ_are_a_warning_naming_both_places(tmp_path: Path) -> None:
    """A node's event and the event itself are one row (src/shared/schema.ts:870-872, workflow_nodes.eventId
    references events.id): copies that differ come from different moments, and neither is silently
    chosen over the other's content. Nothing is left out: a warning says which copy is used."""
    nested = nested_event(event_row(1, "step", content="echo old"))
    workflow_path = write(tmp_path, "flow.json", downloaded_workflow(60, [nested]))
    event_path = write(tmp_path, "step.json", api_event(event_row(1, "step", content="echo new", status="PAUSED")))
    write(tmp_path, "again.json", downloaded_workflow(61, [nested_event(event_row(1, "step", content="echo other"))]))

    records = load_records([tmp_path])

    assert records.events[1].content == "echo new"  # the one given on its own is kept
    assert sorted(records.workflows) == [60, 61]
    assert records.ok, [str(e) for e in records.errors]
    by_file = {w.path: w for w in records.warnings}
    assert len(records.warnings) == 2
    warning = by_file[str(workflow_path)]
    assert (warning.kind, warning.record_id, warning.field, warning.severity) == (
        "event",
        1,
        "status, content",
        "warning",
    )
    assert "nodes[0].event" in warning.message and str(event_path) in warning.message
    assert "given on its own, is used" in warning.message
    assert "nodes[0].event" in by_file[str(tmp_path / "again.json")].message


def test_a_nested_copy_that_is_not_valid_is_a_warning_when_the_event_given_on_its_own_is_used(tmp_path: Path) -> None:
    """A download whose node's event no longer reads (here a timeout unit Cronium does not have) beside the
    event given on its own: the event and the workflow load from the copy given on its own, and the nested
    copy is a warning naming its file, position and field; alone, it is an error and the workflow is left out."""
    flow_path = write(
        tmp_path, "flow.json", downloaded_workflow(65, [nested_event(event_row(1, "step", timeoutUnit="WEEKS"))])
    )
    event_path = write(tmp_path, "step.json", api_event(event_row(1, "step")))

    records = load_records([tmp_path])

    assert records.ok, [str(e) for e in records.errors]
    assert sorted(records.events) == [1] and sorted(records.workflows) == [65]
    [warning] = records.warnings
    assert (warning.path, warning.kind, warning.record_id, warning.field) == (str(flow_path), "event", 1, "timeoutUnit")
    assert (
        "nodes[0].event, not valid" in warning.message and f"{event_path}, given on its own, is used" in warning.message
    )

    event_path.unlink()
    records = load_records([tmp_path])
    assert not records.events and not records.workflows and not records.warnings
    assert {(e.kind, e.field) for e in records.errors} == {("event", "timeoutUnit"), ("workflow", "nodes[0].eventId")}


def test_a_nested_event_with_encrypted_env_values_is_refused_unless_given_on_its_own(tmp_path: Path) -> None:
    """apps/cronium-app/src/server/storage/modules/workflows.ts:42 (``envVars: true``: the env_vars rows
    as stored) and src/lib/encryption-service.ts:80-101, 155-159 (values encrypted at rest; base64 of at
    least 50 characters is what Cronium takes for ciphertext)."""
    nested = nested_event(event_row(1, "step"), [env_row(5, 1, "TOKEN", CIPHERTEXT), env_row(6, 1, "MODE", "fast")])
    path = write(tmp_path, "flow.json", downloaded_workflow(70, [nested]))

    records = load_records([tmp_path])

    assert not records.events and not records.workflows
    by_record = {(e.kind, e.record_id): e for e in records.errors}
    env_error = by_record[("event", 1)]
    assert (env_error.path, env_error.field) == (str(path), "envVars[0].value")
    assert "GET /api/events/{id}" in env_error.message and CIPHERTEXT not in str(env_error)
    assert by_record[("workflow", 70)].field == "nodes[0].eventId"


# -- 4. errors ------------------------------------------------------------------------------------------


def test_a_bad_record_in_a_download_hides_nothing_and_is_named(tmp_path: Path) -> None:
    """apps/cronium-app/src/shared/schema.ts:20-26 (the event types), :73-78 (the connection types): a
    bad event in a bare array, a bad nested event and an object of no known shape are each reported with
    file, record and field; every good record of the same files still loads."""
    events_path = write(
        tmp_path, "events.json", [api_event(event_row(1, "ok")), api_event(event_row(2, "bad", type="RUBY"))]
    )
    bad_nested = nested_event(event_row(3, "bad nested", timeoutUnit="WEEKS"))
    flow_path = write(tmp_path, "flows.json", [downloaded_workflow(80, [bad_nested]), downloaded_workflow(81, [])])
    odd_path = write(tmp_path, "odd.json", [{"id": 9, "label": "neither"}, api_event(event_row(4, "fine"))])

    records = load_records([tmp_path])

    assert sorted(records.events) == [1, 4]
    assert sorted(records.workflows) == [81]
    found = {(e.path, e.kind, e.record_id, e.field) for e in records.errors}
    assert (str(events_path), "event", 2, "type") in found
    assert (str(flow_path), "event", 3, "timeoutUnit") in found
    assert (str(flow_path), "workflow", 80, "nodes[0].eventId") in found
    assert (str(odd_path), "record", 9, None) in found
    nested_error = next(e for e in records.errors if e.record_id == 3)
    assert "[0].nodes[0].event" in nested_error.message


def test_the_model_alone_keeps_the_attribute_types() -> None:
    """apps/cronium-app/src/shared/schema.ts:840-841: a null schedule column on a MANUAL workflow."""
    workflow = Workflow.model_validate(workflow_row(1, "w"))
    assert isinstance(workflow.schedule_number, int) and isinstance(workflow.schedule_unit, TimeUnit)
