"""Cronium variables are per user: each event owner's own, unless the records have one owner or sharing is chosen.

Cronium keeps variables per user: the table ``user_variables`` has a ``user_id`` column and is unique on
``(user_id, key)`` (apps/cronium-app/src/shared/schema.ts:589-603); a script's ``getVariable`` and
``setVariable`` go through the runtime to ``/api/internal/variables/<userId>/<key>`` with the run's user
(apps/runtime/cronium-runtime/internal/service/runtime.go:122,164; internal/service/backend.go:37,56), which
reads and writes only that user's row (apps/cronium-app/src/app/api/internal/variables/[userId]/[key]/route.ts:30,
80-88); ``storage.getUserVariables(userId)`` filters on the user (apps/cronium-app/src/server/storage.ts:2982-2990),
and the templates of SEND_MESSAGE actions and tool actions read the event owner's variables
(apps/cronium-app/src/lib/scheduler/event-handlers.ts:270, tool-action-executor.ts:309).

Here ``[cronium] scope_variables_by_owner`` decides it: ``auto`` (default) scopes by owner when the records
name more than one ``userId``, ``true`` always, ``false`` never. Scoped, owner ``U``'s ``key`` is the Airflow
Variable ``cronium_<U>_<key>`` (``U`` encoded: ``naming.owner_variable_prefix``); with one owner nothing
changes (``cronium_<key>``, what the shared acceptance corpus expects). Real Airflow runs (``dag.test()``),
real containers, a real HTTP receiver for Slack.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cronium_provider import factory as cronium_factory
from cronium_provider.factory import parse_dags
from cronium_provider.naming import owner_variable_prefix
from cronium_provider.records import index as record_index
from cronium_provider.variables import VariableNamespace
from tests.conftest import venv_bin
from tests.support.airflow_run import delete_variables, set_variable, variable
from tests.support.http_receiver import HttpReceiver, text_answer
from tests.test_event_dags import Factory, new_id

SLACK_PATH = "/services/T1/B1/scope"
SETTING = "AIRFLOW__CRONIUM__SCOPE_VARIABLES_BY_OWNER"
COUNTER = "{{cronium.getVariables.counter}}"


def owner_ids() -> tuple[str, str, str]:
    """Two owners as Cronium names them (``nanoid()``: letters, digits, ``_``, ``-``) and one whose id is an
    e-mail address (its ``@`` becomes ``.40`` in the key); unique per test (the database outlives tests)."""
    tag = uuid.uuid4().hex
    return f"A{tag[:12]}_Z5-dH", f"B{tag[12:24]}-my_T", f"c{tag[24:30]}@example.test"


def key_of(owner: str, key: str) -> str:
    return owner_variable_prefix("cronium_", owner) + key


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    server = HttpReceiver(routes={f"POST {SLACK_PATH}": lambda r: text_answer("ok")}).start()
    yield server
    server.stop()


@pytest.fixture
def factory(tmp_path: Path, capfd: Any, monkeypatch: pytest.MonkeyPatch, airflow_db: Path) -> Iterator[Factory]:
    folder = tmp_path / "records"
    folder.mkdir()
    monkeypatch.delenv(SETTING, raising=False)
    delete_variables("cronium_counter")
    yield Factory(folder, capfd, monkeypatch)
    delete_variables("cronium_counter")


def slack_tool(monkeypatch: pytest.MonkeyPatch, receiver: HttpReceiver, owner: str | None = None) -> int:
    """A Slack tool connection; ``owner`` is the Cronium userId it belongs to (needed once variables are
    scoped by owner: an ownerless tool is then refused)."""
    tool_id = new_id()
    conn: dict[str, Any] = {"conn_type": "slackwebhook", "password": f"{receiver.url}{SLACK_PATH}"}
    if owner is not None:
        conn["extra"] = json.dumps({"owner": owner})
    monkeypatch.setenv(f"AIRFLOW_CONN_CRONIUM_TOOL_{tool_id}", json.dumps(conn))
    return tool_id


def slack_texts(receiver: HttpReceiver) -> list[str]:
    return [r.json()["text"] for r in receiver.requests if r.path == SLACK_PATH]


def tool_event(factory: Factory, owner: str | None, tool_id: int, text: str) -> dict[str, Any]:
    fields: dict[str, Any] = {} if owner is None else {"userId": owner}
    return factory.event(
        type="TOOL_ACTION",
        name=f"notify {owner}",
        toolActionConfig={
            "toolType": "slack",
            "actionId": "slack-send-message",
            "toolId": tool_id,
            "parameters": {"text": text},
        },
        **fields,
    )


def run_key(module: Any, event: dict[str, Any], task_id: str = "run") -> str:
    """The Airflow Variable the parsed DAG's task reads and writes for ``counter``."""
    task = getattr(module, f"cronium_event_{event['id']}").get_task(task_id)
    namespace = VariableNamespace(
        task.variable_prefix, owner=task.event.get("userId"), scope_by_owner=task.scope_variables_by_owner
    )
    return namespace.airflow_key("counter")


@pytest.mark.docker
def test_two_owners_each_see_only_their_own_counter(
    factory: Factory, receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch, docker_client: Any
) -> None:
    """Two owners (``auto``): owner A's Python script and owner B's Bash script both use ``counter``; each
    reads and writes its own (``cronium_<A>_counter``, ``cronium_<B>_counter``), neither sees the other's nor
    the shared ``cronium_counter``, and B cannot reach A's by naming it (``<A>_counter`` is B's own name
    too; A's ``<B>_counter`` is refused: B's id holds an ``@``). A's in-script Slack message, both
    SEND_MESSAGE actions and both tool actions render ``{{cronium.getVariables.counter}}`` with their
    owner's value."""
    owner_a, _, owner_b = owner_ids()
    key_a, key_b = key_of(owner_a, "counter"), key_of(owner_b, "counter")
    slack, slack_b = slack_tool(monkeypatch, receiver, owner_a), slack_tool(monkeypatch, receiver, owner_b)
    set_variable(key_a, "41")
    set_variable("cronium_counter", "7")  # a shared value from before: no owner's any more
    try:
        script_a = factory.event(
            userId=owner_a,
            type="PYTHON",
            content=(
                'c = cronium.getVariable("counter")\n'
                'cronium.setVariable("counter", c + 1)\n'
                f'cronium.send_slack_message("#ops", "in-script A {COUNTER}", toolId={slack})\n'
                "try:\n"
                f'    b = cronium.getVariable("{owner_b}_counter")\n'
                "except ValueError:\n"  # an @ is no key character
                '    b = "refused"\n'
                'cronium.output({"counter": c + 1, "b": b})\n'
            ),
            successEvents=[
                {"type": "SEND_MESSAGE", "toolId": slack, "message": "action A {{cronium.getVariables.counter}}"}
            ],
        )
        script_b = factory.event(
            userId=owner_b,
            content=(
                "seen=$(cronium_getVariable counter || echo none)\n"
                f"a=$(cronium_getVariable {owner_a}_counter || echo none)\n"
                "cronium_setVariable counter 100\n"
                'cronium_output "{\\"seen\\": \\"$seen\\", \\"a\\": \\"$a\\"}"\n'
            ),
            successEvents=[
                {"type": "SEND_MESSAGE", "toolId": slack_b, "message": "action B {{cronium.getVariables.counter}}"}
            ],
        )
        tool_a = tool_event(factory, owner_a, slack, "tool A {{cronium.getVariables.counter}}")
        tool_b = tool_event(factory, owner_b, slack_b, "tool B {{cronium.getVariables.counter}}")
        module = factory.load()
        assert run_key(module, script_a) == key_a and run_key(module, script_b) == key_b
        # letters, digits and - are kept, any other byte is . and its hex: no two owners share a name
        assert key_a == f"cronium_{owner_a.replace('_', '.5f')}_counter"
        assert key_b == f"cronium_{owner_b.split('@')[0]}.40example.2etest_counter"

        result = factory.run(module, script_a)
        assert result.state == "success", result.log_text()[-3000:]
        assert result.xcom("run") == {"counter": 42, "b": "refused"}
        result = factory.run(module, script_b)
        assert result.state == "success", result.log_text()[-3000:]
        assert result.xcom("run") == {"seen": "none", "a": "none"}
        for event in (tool_a, tool_b):
            result = factory.run(module, event)
            assert result.state == "success", result.log_text()[-3000:]

        assert json.loads(variable(key_a)) == 42 and json.loads(variable(key_b)) == "100"  # Bash sets text
        assert json.loads(variable("cronium_counter")) == 7
        assert variable(key_of(owner_b, f"{owner_a}_counter")) is None  # B wrote nothing under A's name
        assert sorted(slack_texts(receiver)) == sorted(
            ["in-script A 42", "action A 42", "action B 100", "tool A 42", "tool B 100"]
        )
    finally:
        delete_variables(key_of(owner_a, ""))
        delete_variables(key_of(owner_b, ""))


@pytest.mark.parametrize(
    ("setting", "owners", "expected"),
    [
        # one owner, auto: the shared names, as before (the acceptance corpus)
        ("auto", "one", {"A": "shared 1", "A2": "shared 1"}),
        # false: one set of variables for every owner
        ("false", "two", {"A": "shared 1", "B": "shared 1"}),
        # true: scoped even with one owner
        ("true", "one", {"A": "own 2", "A2": "own 2"}),
    ],
)
def test_the_setting_decides_whose_variable_a_tool_action_reads(
    factory: Factory,
    receiver: HttpReceiver,
    monkeypatch: pytest.MonkeyPatch,
    setting: str,
    owners: str,
    expected: dict[str, str],
) -> None:
    """Tool actions (no container) read ``{{cronium.getVariables.counter}}``: the shared ``cronium_counter``
    (1) or their owner's ``cronium_<owner>_counter`` (2, 3), as ``[cronium] scope_variables_by_owner`` and
    the number of owners decide; the parsed DAG's script task uses the same key."""
    owner_a, owner_b, _ = owner_ids()
    monkeypatch.setenv(SETTING, setting)
    second = owner_a if owners == "one" else owner_b
    slack, slack_second = slack_tool(monkeypatch, receiver, owner_a), slack_tool(monkeypatch, receiver, second)
    set_variable("cronium_counter", json.dumps("shared 1"))
    set_variable(key_of(owner_a, "counter"), json.dumps("own 2"))
    set_variable(key_of(owner_b, "counter"), json.dumps("own 3"))
    try:
        events = {
            "A": tool_event(factory, owner_a, slack, "{{cronium.getVariables.counter}}"),
            "A2" if owners == "one" else "B": tool_event(
                factory, second, slack_second, "{{cronium.getVariables.counter}}"
            ),
        }
        script = factory.event(userId=owner_a, content="true")
        module = factory.load()
        scoped = setting == "true"
        assert run_key(module, script) == (key_of(owner_a, "counter") if scoped else "cronium_counter")
        texts = {}
        for name, event in events.items():
            before = len(slack_texts(receiver))
            result = factory.run(module, event)
            assert result.state == "success", result.log_text()[-3000:]
            texts[name] = slack_texts(receiver)[before]
        assert texts == expected
    finally:
        for owner in (owner_a, owner_b):
            delete_variables(key_of(owner, ""))


def write_folder(folder: Path, owners: list[str | None], workflow_owner: str | None) -> dict[str, Any]:
    """Events ``1..n`` of ``owners`` (a script with a SEND_MESSAGE action each) and a workflow of
    ``workflow_owner`` whose nodes run event 1 only: its own records name one owner."""
    base = new_id()
    folder.mkdir(parents=True, exist_ok=True)
    events = []
    for n, owner in enumerate(owners, start=1):
        record: dict[str, Any] = {
            "id": base + n,
            "name": f"event {n}",
            "type": "BASH",
            "status": "ACTIVE",
            "content": "cronium_setVariable counter 1",
            "successEvents": [{"type": "SEND_MESSAGE", "toolId": 1, "message": "{{cronium.getVariables.counter}}"}],
        }
        if owner is not None:
            record["userId"] = owner
        events.append(record)
    (folder / "events.json").write_text(json.dumps({"events": events}))
    workflow: dict[str, Any] = {
        "kind": "workflow",
        "id": base,
        "name": "one owner's workflow",
        "status": "ACTIVE",
        "triggerType": "MANUAL",
        "nodes": [{"id": "n1", "eventId": base + 1}],
        "connections": [],
    }
    if workflow_owner is not None:
        workflow["userId"] = workflow_owner
    (folder / "workflow.json").write_text(json.dumps(workflow))
    event_dags = [f"cronium_event_{e['id']}" for e in events]
    return {"base": base, "workflow": f"cronium_workflow_{base}", "events": event_dags}


def scopes(dags: dict[str, Any]) -> dict[tuple[str, str], tuple[bool, str | None]]:
    """Each variable-using task's scope flag and owner, by (DAG, task)."""
    found = {}
    for dag_id, dag in dags.items():
        for task in dag.tasks:
            if hasattr(task, "scope_variables_by_owner"):
                found[(dag_id, task.task_id)] = (task.scope_variables_by_owner, task.event.get("userId"))
    return found


@pytest.fixture
def indexed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CRONIUM_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.delenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", raising=False)
    monkeypatch.delenv(SETTING, raising=False)
    monkeypatch.setattr(cronium_factory, "RACY_NS", 0)
    return tmp_path / "records"


def test_a_workers_one_dag_parse_scopes_as_the_full_parse(indexed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker builds one DAG from the index, with that DAG's records only: the workflow's records name
    one owner, yet its tasks are scoped as in the full parse, because the index keeps the folder's owner
    count (``meta.owners``). The setting is read at each parse; an index without the count is not used
    (every record is loaded) and is rewritten with it."""
    owner_a, owner_b, _ = owner_ids()
    names = write_folder(indexed, [owner_a, owner_b, None], owner_a)
    full = parse_dags(indexed)
    assert "index written" in full.detail
    full_scopes = scopes(full.dags)
    assert full_scopes[(names["workflow"], "node_n1")] == (True, owner_a)
    assert full_scopes[(names["workflow"], "node_n1__on_success_0")] == (True, owner_a)
    assert full_scopes[(names["events"][1], "run")] == (True, owner_b)
    assert full_scopes[(names["events"][2], "run")] == (True, None)  # no owner: the shared names
    for dag_id in full.dags:
        one = parse_dags(indexed, dag_id=dag_id)
        assert one.mode == "index", (dag_id, one.detail)
        assert scopes(one.dags) == {k: v for k, v in full_scopes.items() if k[0] == dag_id}
    narrow = parse_dags(indexed, dag_id=names["workflow"])
    assert narrow.detail == "2 record(s)"  # the workflow and event 1: one owner in sight

    monkeypatch.setenv(SETTING, "false")  # read at each parse, the index is still used
    one = parse_dags(indexed, dag_id=names["workflow"])
    assert one.mode == "index" and set(scopes(one.dags).values()) == {(False, owner_a)}
    monkeypatch.delenv(SETTING)

    target = record_index.index_file(indexed.parent / "index", [indexed])
    with sqlite3.connect(target) as con:
        con.execute("DELETE FROM meta WHERE name = 'owners'")
    con.close()
    one = parse_dags(indexed, dag_id=names["workflow"])
    assert one.mode == "one" and one.detail.startswith("the index holds no owner count"), one.detail
    assert "index written" in one.detail
    assert set(scopes(one.dags).values()) == {(True, owner_a)}
    assert parse_dags(indexed, dag_id=names["workflow"]).mode == "index"


def test_plan_json_shows_the_scope_and_notes_an_event_without_owner(tmp_path: Path) -> None:
    """``cronium-airflow plan --json`` gives each DAG's ``variables_scope``; one owner is ``shared`` under
    ``auto`` and ``owner`` under ``true``; two owners are ``owner``, and an event with no userId is noted."""

    def plan(folder: Path, setting: str | None) -> dict[str, Any]:
        env = {k: v for k, v in os.environ.items() if k != SETTING}
        if setting is not None:
            env[SETTING] = setting
        proc = subprocess.run(
            [venv_bin("cronium-airflow"), "plan", "--json", str(folder)],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr
        return {d["dag_id"]: d for d in json.loads(proc.stdout)["dags"]}

    owner_a, owner_b, _ = owner_ids()
    one = write_folder(tmp_path / "one", [owner_a, owner_a], owner_a)
    two = write_folder(tmp_path / "two", [owner_a, owner_b, None], None)
    assert {d["variables_scope"] for d in plan(tmp_path / "one", None).values()} == {"shared"}
    assert {d["variables_scope"] for d in plan(tmp_path / "one", "true").values()} == {"owner"}
    assert len(plan(tmp_path / "one", "auto")) == len(one["events"]) + 1
    dags = plan(tmp_path / "two", None)
    assert {d["variables_scope"] for d in dags.values()} == {"owner"}
    assert {d["variables_scope"] for d in plan(tmp_path / "two", "false").values()} == {"shared"}
    [note] = dags[two["events"][2]]["notes"]
    assert "no userId" in note and "cronium_<key>" in note
    assert dags[two["events"][0]]["notes"] == []
    bad = subprocess.run(
        [venv_bin("cronium-airflow"), "plan", str(tmp_path / "one")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, SETTING: "sometimes"},
    )
    assert bad.returncode == 2 and "scope_variables_by_owner must be auto, true or false" in bad.stdout
