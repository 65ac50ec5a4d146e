"""Cronium's Notion actions, run by real Airflow runs against a loopback server that answers as Notion's API.

The server's answers are the shapes of Notion's API reference (a page object for ``POST /v1/pages`` and
``PATCH /v1/pages/{id}``, a list for ``POST /v1/search`` and ``/v1/blocks/{id}/children``, error bodies
``{"object": "error", "status", "code", "message"}``); the requests asserted are the ones Cronium's actions
send (apps/cronium-app/src/tools/plugins/notion/actions/*.ts), with Cronium's ``Notion-Version: 2022-06-28``.
The tool is a ``cronium_notion`` connection whose host is the server.
"""

from __future__ import annotations

import itertools
import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests import test_tool_actions, test_workflows
from tests.support.airflow_run import run_dag
from tests.support.http_receiver import Answer, HttpReceiver, Request, json_answer
from tests.test_event_dags import Factory
from tests.test_script_events import _CAPFD, _task_logs, script_dag  # noqa: F401 - the fixture
from tests.test_tool_actions import owner_of, run_tool_event, tool, tool_event
from tests.test_workflows import WorkflowBuilder

factory = test_tool_actions.factory  # the fixture of the tool tests: a records folder and its DAG file
wf = test_workflows.wf  # the fixture of the workflow tests: a records folder and its workflow

TOKEN = "secret_notion_integration_token_0123456789"
PARENT = "b55c9c91-384d-452b-81db-d1ef79372b75"
PAGE = "59833787-2cf9-4fdf-8782-e53db20768a5"
BLOCK = "c02fc1d3-db8b-45c5-a222-27595b15aea7"
DENIED = "00000000-0000-4000-8000-000000000401"
BUSY = "00000000-0000-4000-8000-000000000429"
EDITED = "2026-12-07T01:30:00.000Z"


def page_object(page_id: str, title: str = "Meeting Notes") -> dict[str, Any]:
    """A page object as Notion's API answers (its reference's ``Page`` object, trimmed of empty members)."""
    return {
        "object": "page",
        "id": page_id,
        "created_time": "2026-12-07T01:00:00.000Z",
        "last_edited_time": EDITED,
        "archived": False,
        "in_trash": False,
        "parent": {"type": "page_id", "page_id": PARENT},
        "properties": {"title": {"id": "title", "type": "title", "title": [{"type": "text", "plain_text": title}]}},
        "url": f"https://www.notion.so/{title.replace(' ', '-')}-{page_id.replace('-', '')}",
    }


def block_object(block_id: str, kind: str = "paragraph", text: str = "hello") -> dict[str, Any]:
    return {
        "object": "block",
        "id": block_id,
        "parent": {"type": "page_id", "page_id": PAGE},
        "type": kind,
        "has_children": False,
        "archived": False,
        kind: {"rich_text": [{"type": "text", "text": {"content": text}, "plain_text": text}], "color": "default"},
    }


def listing(results: list[Any], kind: str) -> dict[str, Any]:
    return {"object": "list", "results": results, "next_cursor": None, "has_more": False, "type": kind, kind: {}}


def error(status: int, code: str, message: str) -> dict[str, Any]:
    return {"object": "error", "status": status, "code": code, "message": message}


def search_answer(request: Request) -> Answer:
    database = {
        "object": "database",
        "id": "bc1211ca-e3f1-4939-ae34-5260b16f627c",
        "title": [{"type": "text", "plain_text": "Grocery "}, {"type": "text", "plain_text": "List"}],
        "last_edited_time": EDITED,
        "parent": {"type": "page_id", "page_id": PARENT},
        "url": "https://www.notion.so/bc1211cae3f14939ae345260b16f627c",
    }
    answer = listing([page_object(PAGE), database], "page_or_database")
    answer["has_more"] = True
    return json_answer(answer)


class NotionApi(HttpReceiver):
    """Notion's API on loopback: the routes the four actions use; ``/pages/{DENIED}`` refuses the token,
    ``/pages/{BUSY}`` answers its first call 429 with ``Retry-After``."""

    def __init__(self) -> None:
        calls = itertools.count()
        super().__init__(
            routes={
                "POST /v1/pages": lambda r: json_answer(
                    page_object(PAGE, r.json()["properties"]["title"]["title"][0]["text"]["content"])
                ),
                f"PATCH /v1/pages/{PAGE}": lambda r: json_answer(page_object(PAGE)),
                f"PATCH /v1/pages/{DENIED}": lambda r: json_answer(
                    error(401, "unauthorized", "API token is invalid."), status=401
                ),
                f"PATCH /v1/pages/{BUSY}": lambda r: (
                    (
                        429,
                        {"Content-Type": "application/json", "Retry-After": "3"},
                        json.dumps(
                            error(429, "rate_limited", "You have been rate limited. Please try again in a few minutes.")
                        ).encode(),
                    )
                    if next(calls) == 0
                    else json_answer(page_object(BUSY))
                ),
                "POST /v1/search": search_answer,
                f"PATCH /v1/blocks/{PAGE}/children": lambda r: json_answer(
                    listing([block_object(BLOCK, b["type"]) for b in r.json()["children"]], "block")
                ),
                f"PATCH /v1/blocks/{BLOCK}": lambda r: json_answer(block_object(BLOCK)),
                f"DELETE /v1/blocks/{BLOCK}": lambda r: json_answer({**block_object(BLOCK), "archived": True}),
                f"GET /v1/blocks/{BLOCK}/children": lambda r: json_answer(listing([block_object(PAGE)], "block")),
            }
        )


@pytest.fixture
def notion() -> Iterator[NotionApi]:
    server = NotionApi().start()
    yield server
    server.stop()


def notion_tool(monkeypatch: pytest.MonkeyPatch, api: NotionApi, token: str = TOKEN) -> int:
    return tool(monkeypatch, {"conn_type": "cronium_notion", "host": api.url, "password": token})


def assert_notion_headers(request: Request) -> None:
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["notion-version"] == "2022-06-28"


def calls(api: NotionApi) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in api.requests]


CREATE_PAGE = {
    "parentId": PARENT,
    "title": "Notes for {{cronium.event.name}} {{cronium.input.batch}}",
    "icon": {"type": "emoji", "emoji": "📚"},
    "children": [
        {"type": "heading_1", "content": "Agenda"},
        {"type": "to_do", "content": "Send report to team"},
        {"type": "code", "content": "print(1)", "language": "python"},
        {"type": "divider"},
        {"type": "toggle", "content": "Links", "children": [{"type": "bulleted_list_item", "content": "Guide"}]},
    ],
}


def create_page_body(title: str) -> dict[str, Any]:
    """What Cronium's create-page posts for :data:`CREATE_PAGE` (create-page.ts:300-360, 423-495)."""

    def text(content: str) -> list[dict[str, Any]]:
        return [{"type": "text", "text": {"content": content}}]

    return {
        "parent": {"type": "page_id", "page_id": PARENT},
        "properties": {"title": {"title": [{"text": {"content": title}}]}},
        "icon": {"type": "emoji", "emoji": "📚"},
        "children": [
            {"object": "block", "type": "heading_1", "heading_1": {"rich_text": text("Agenda")}},
            {"object": "block", "type": "to_do", "to_do": {"rich_text": text("Send report to team"), "checked": False}},
            {"object": "block", "type": "code", "code": {"rich_text": text("print(1)"), "language": "python"}},
            {"object": "block", "type": "divider", "divider": {}},
            {
                "object": "block",
                "type": "toggle",
                "toggle": {
                    "rich_text": text("Links"),
                    "children": [
                        {
                            "object": "block",
                            "type": "bulleted_list_item",
                            "bulleted_list_item": {"rich_text": text("Guide")},
                        }
                    ],
                },
            },
        ],
    }


def test_create_page_event_posts_cronium_page_and_returns_its_result(
    factory: Factory,
    notion: NotionApi,
    monkeypatch,
) -> None:
    conn = notion_tool(monkeypatch, notion)
    event = tool_event(factory, "notion", "create-page", conn, CREATE_PAGE, name="Standup")
    module = factory.load()
    result = factory.run(module, event, {"batch": "b-7"})
    assert result.state == "success", result.log_text()[-3000:]
    [request] = notion.requests
    assert (request.method, request.path) == ("POST", "/v1/pages")
    assert_notion_headers(request)
    assert request.headers["Content-Type"] == "application/json"
    # the run's input is laid over the parameters, as for every TOOL_ACTION event: ``batch`` goes along unused
    assert request.json() == create_page_body("Notes for Standup b-7")
    out = result.xcom("run")
    assert (out["actionId"], out["actionName"]) == ("create-page", "Create Page")
    assert out["result"] == {
        "success": True,
        "pageId": PAGE,
        "url": f"https://www.notion.so/Notes-for-Standup-b-7-{PAGE.replace('-', '')}",
    }
    assert TOKEN not in result.log_text()


def test_update_search_and_block_events_send_cronium_requests_and_return_its_results(
    factory: Factory, notion: NotionApi, monkeypatch
) -> None:
    conn = notion_tool(monkeypatch, notion)
    status = {"type": "status", "status": {"name": "Done"}}
    events = {
        "update": tool_event(
            factory,
            "notion",
            "update-database",
            conn,
            {"databaseId": "d9824bdc-8445-4327-be8b-5b47500af6ce", "pageId": PAGE, "properties": {"Status": status}},
        ),
        "search": tool_event(
            factory,
            "notion",
            "search-content",
            conn,
            {
                "query": "{{cronium.input.q}}",
                "filter": {"property": "object"},
                "sort": {"direction": "descending", "timestamp": "last_edited_time"},
            },
        ),
        "append": tool_event(
            factory,
            "notion",
            "manage-blocks",
            conn,
            {"operation": "append", "pageId": PAGE, "blocks": [{"type": "callout", "content": "hi", "color": "red"}]},
        ),
        "update_block": tool_event(
            factory,
            "notion",
            "manage-blocks",
            conn,
            {"operation": "update", "blockId": BLOCK, "blocks": [{"type": "to_do", "content": "x", "checked": True}]},
        ),
        "delete": tool_event(factory, "notion", "manage-blocks", conn, {"operation": "delete", "blockId": BLOCK}),
        "retrieve": tool_event(factory, "notion", "manage-blocks", conn, {"operation": "retrieve", "blockId": BLOCK}),
    }
    module = factory.load()
    results = {
        name: factory.run(module, event, {"q": "roadmap"} if name == "search" else None)
        for name, event in events.items()
    }
    for name, result in results.items():
        assert result.state == "success", (name, result.log_text()[-3000:])
    assert calls(notion) == [
        ("PATCH", f"/v1/pages/{PAGE}"),
        ("POST", "/v1/search"),
        ("PATCH", f"/v1/blocks/{PAGE}/children"),
        ("PATCH", f"/v1/blocks/{BLOCK}"),
        ("DELETE", f"/v1/blocks/{BLOCK}"),
        ("GET", f"/v1/blocks/{BLOCK}/children?page_size=100"),
    ]
    for request in notion.requests:
        assert_notion_headers(request)
    update, search, append, update_block, delete, retrieve = notion.requests
    # update-database sends a status property as given (update-database.ts:362-366); its databaseId stays unused
    assert update.json() == {"properties": {"Status": status}}
    assert search.json() == {
        "query": "roadmap",
        "page_size": 10,
        "filter": {"property": "object"},
        "sort": {"direction": "descending", "timestamp": "last_edited_time"},
    }
    hi = [{"type": "text", "text": {"content": "hi"}}]
    assert append.json() == {
        "children": [{"object": "block", "type": "callout", "callout": {"rich_text": hi, "color": "red"}}]
    }
    x = [{"type": "text", "text": {"content": "x"}}]
    assert update_block.json() == {"object": "block", "type": "to_do", "to_do": {"rich_text": x, "checked": True}}
    assert delete.body == b"" and retrieve.body == b""

    def result_of(name: str) -> Any:
        return results[name].xcom("run")["result"]

    assert result_of("update") == {"success": True, "lastEditedTime": EDITED}
    assert result_of("search") == {
        "success": True,
        "results": [
            {
                "id": PAGE,
                "type": "page",
                "title": "Meeting Notes",
                "url": page_object(PAGE)["url"],
                "lastEditedTime": EDITED,
                "parentId": PARENT,
                "parentType": "page_id",
            },
            {
                "id": "bc1211ca-e3f1-4939-ae34-5260b16f627c",
                "type": "database",
                "title": "Grocery List",
                "url": "https://www.notion.so/bc1211cae3f14939ae345260b16f627c",
                "lastEditedTime": EDITED,
                "parentId": PARENT,
                "parentType": "page_id",
            },
        ],
        "hasMore": True,
    }
    assert result_of("append") == {"success": True, "blocks": [block_object(BLOCK, "callout")]}
    assert result_of("update_block") == result_of("delete") == {"success": True}
    assert result_of("retrieve") == {"success": True, "blocks": [block_object(PAGE)]}
    assert results["search"].xcom("run")["actionName"] == "Search Content"


def test_update_database_sends_property_texts_and_names_as_cronium_rebuilds_them(
    factory: Factory, notion: NotionApi, monkeypatch
) -> None:
    """Cronium's update-database rebuilds each text item as ``{type: text, text: {content}}`` and each select,
    status and multi-select option as ``{name}`` (apps/cronium-app/src/tools/plugins/notion/actions/
    update-database.ts:321-376); other properties go as given."""
    conn = notion_tool(monkeypatch, notion)
    given = {
        "Name": {"type": "title", "title": [{"text": {"content": "Q3 plan"}}]},
        "Notes": {"type": "rich_text", "rich_text": [{"text": {"content": "a"}}, {"text": {"content": "b"}}]},
        "Stage": {"type": "select", "select": {"name": "Doing", "color": "red"}},
        "Tags": {"type": "multi_select", "multi_select": [{"name": "x", "id": "1"}]},
        "Done": {"type": "checkbox", "checkbox": True},
    }
    params = {"databaseId": "d", "pageId": PAGE, "properties": given}
    event = tool_event(factory, "notion", "update-database", conn, params)
    # create-page rebuilds text items without ``type`` and sends options as given (create-page.ts:518-550)
    bold = {"type": "rich_text", "rich_text": [{"text": {"content": "c"}, "annotations": {"bold": True}}]}
    page = {"parentId": PARENT, "title": "T", "properties": {"Notes": bold, "Stage": given["Stage"]}}
    page_event = tool_event(factory, "notion", "create-page", conn, page)
    module = factory.load()
    result = factory.run(module, event)
    assert result.state == "success", result.log_text()[-3000:]
    created = factory.run(module, page_event)
    assert created.state == "success", created.log_text()[-3000:]
    request, page_request = notion.requests
    assert page_request.json()["properties"] == {
        "title": {"title": [{"text": {"content": "T"}}]},
        "Notes": {"type": "rich_text", "rich_text": [{"text": {"content": "c"}}]},
        "Stage": given["Stage"],
    }
    assert request.json() == {
        "properties": {
            "Name": {"type": "title", "title": [{"type": "text", "text": {"content": "Q3 plan"}}]},
            "Notes": {
                "type": "rich_text",
                "rich_text": [{"type": "text", "text": {"content": "a"}}, {"type": "text", "text": {"content": "b"}}],
            },
            "Stage": {"type": "select", "select": {"name": "Doing"}},
            "Tags": {"type": "multi_select", "multi_select": [{"name": "x"}]},
            "Done": {"type": "checkbox", "checkbox": True},
        }
    }


def test_bad_notion_parameters_fail_naming_them_and_send_nothing(
    factory: Factory, notion: NotionApi, monkeypatch
) -> None:
    conn = notion_tool(monkeypatch, notion)
    bad = {
        "no title": ("create-page", {"parentId": PARENT}, "notion create-page: 'title' is required"),
        "path in id": (
            "update-database",
            {"databaseId": "d", "pageId": f"{PAGE}/../../users", "properties": {}},
            "'pageId'",
        ),
        "no blocks": ("manage-blocks", {"operation": "append", "pageId": PAGE}, "Page ID and blocks are required"),
        "page size": ("search-content", {"query": "q", "pageSize": 500}, "'pageSize' must be a whole number"),
        "cover": (
            "create-page",
            {"parentId": PARENT, "title": "t", "cover": {"type": "external"}},
            "notion create-page: 'cover' must be {type: external, url: <URL>}",
        ),
        "icon": (
            "create-page",
            {"parentId": PARENT, "title": "t", "icon": {"type": "file"}},
            "notion create-page: 'icon' type must be emoji or external",
        ),
        "text item": (
            "update-database",
            {"databaseId": "d", "pageId": PAGE, "properties": {"Notes": {"type": "rich_text", "rich_text": ["a"]}}},
            "notion update-database: property 'Notes': each text item must be {text: {content: <text>}}",
        ),
    }
    events = {name: tool_event(factory, "notion", action, conn, params) for name, (action, params, _) in bad.items()}
    module = factory.load()
    for name, (_, _, text) in bad.items():
        result = factory.run(module, events[name])
        assert result.state == "failed", name
        assert text in result.log_text(), (name, result.log_text()[-2000:])
    assert notion.requests == []


def test_a_refused_token_fails_at_once_naming_the_connection(factory: Factory, notion: NotionApi, monkeypatch) -> None:
    conn = notion_tool(monkeypatch, notion)
    result = run_tool_event(
        factory, "notion", "update-database", conn, {"databaseId": "d", "pageId": DENIED, "properties": {}}
    )
    assert result.state == "failed"
    assert calls(notion) == [("PATCH", f"/v1/pages/{DENIED}")]  # sent once: never retried
    text = result.log_text()
    assert f"notion refused the credential of connection cronium_tool_{conn}" in text
    assert "API token is invalid." in text and TOKEN not in text


def test_a_429_is_retried_after_its_retry_after_and_then_succeeds(
    factory: Factory, notion: NotionApi, monkeypatch
) -> None:
    conn = notion_tool(monkeypatch, notion)
    result = run_tool_event(
        factory, "notion", "update-database", conn, {"databaseId": "d", "pageId": BUSY, "properties": {}}
    )
    assert result.state == "success", result.log_text()[-3000:]
    first, second = notion.requests
    assert (first.path, second.path) == (f"/v1/pages/{BUSY}", f"/v1/pages/{BUSY}")
    # Retry-After: 3, well above the 1 s the retry strategy would wait
    assert 2.9 <= second.received_at - first.received_at <= 6
    assert result.xcom("run")["result"] == {"success": True, "lastEditedTime": EDITED}


def test_a_send_message_action_through_a_notion_tool_sends_nothing(
    factory: Factory, notion: NotionApi, monkeypatch
) -> None:
    """Cronium's SEND_MESSAGE knows a message action of email, Slack, Discord and Teams alone: through a Notion
    tool it logs "Tool type notion does not support send message actions" and sends nothing
    (apps/cronium-app/src/lib/scheduler/event-handlers.ts:251-266); the event's run keeps its result."""
    conn = notion_tool(monkeypatch, notion)
    event = factory.event(
        userId=owner_of(factory),
        successEvents=[{"type": "SEND_MESSAGE", "toolId": conn, "message": "done"}],
    )
    result = factory.run(factory.load(), event)
    assert notion.requests == []
    assert "Tool type notion does not support send message actions" in result.log_text()
    assert result.task_states[next(t for t in result.task_states if t.startswith("run"))] == "success"
    assert result.task_states["on_success_0"] == "success"  # logged and nothing sent, as Cronium: no failure


def test_a_connection_of_another_type_named_as_the_notion_tool_is_refused(
    factory: Factory, notion: NotionApi, monkeypatch
) -> None:
    slack = tool(monkeypatch, {"conn_type": "slackwebhook", "password": f"{notion.url}/v1/pages"})
    result = run_tool_event(factory, "notion", "create-page", slack, {"parentId": PARENT, "title": "t"})
    assert result.state == "failed" and notion.requests == []
    assert f"cronium_tool_{slack}" in result.log_text()


def test_plan_shows_the_notion_tool_of_an_event(tmp_path) -> None:
    from tests.conftest import venv_bin

    record = {
        "id": 71,
        "name": "Notes",
        "type": "TOOL_ACTION",
        "status": "ACTIVE",
        "toolActionConfig": {
            "toolType": "notion",
            "actionId": "search-content",
            "toolId": 9,
            "parameters": {"query": "q"},
        },
    }
    (tmp_path / "events.json").write_text(json.dumps({"events": [record]}))
    plan = subprocess.run(
        [venv_bin("cronium-airflow"), "plan", "--json", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert plan.returncode == 0, plan.stdout + plan.stderr
    data = json.loads(plan.stdout)
    assert data["errors"] == []
    [task] = data["dags"][0]["tasks"]
    assert (task["operator"], task["details"]) == (
        "tool_action",
        {"tool_type": "notion", "action_id": "search-content", "tool_id": 9},
    )


IN_SCRIPT = """
import cronium
cronium.execute_tool_action("notion", "manage-blocks", {
    "toolId": TOOL_ID, "operation": "append", "pageId": "PAGE",
    "blocks": [{"type": "paragraph", "content": "written by " + cronium.event()["name"]}],
})
print("the script ended")
"""


@pytest.mark.docker
def test_a_script_appends_blocks_through_execute_tool_action(notion: NotionApi, monkeypatch, airflow_db) -> None:
    conn = notion_tool(monkeypatch, notion)
    script = IN_SCRIPT.replace("TOOL_ID", str(conn)).replace("PAGE", PAGE)
    dag, _ = script_dag("PYTHON", script, event={"id": 5, "name": "Nightly", "userId": "u-notion"})
    result = run_dag(dag, capfd=_CAPFD[-1])
    assert result.state == "success", result.log_text()[-3000:]
    [request] = notion.requests
    assert (request.method, request.path) == ("PATCH", f"/v1/blocks/{PAGE}/children")
    assert_notion_headers(request)
    text = [{"type": "text", "text": {"content": "written by Nightly"}}]
    assert request.json() == {"children": [{"object": "block", "type": "paragraph", "paragraph": {"rich_text": text}}]}
    [action] = result.xcom("run", "actions")
    assert (action["status"], action["actionId"]) == ("SUCCESS", "manage-blocks")
    assert action["result"] == {"success": True, "blocks": [block_object(BLOCK, "paragraph")]}


def test_a_workflow_node_that_is_a_notion_event_creates_its_page(
    wf: WorkflowBuilder, monkeypatch, notion: NotionApi
) -> None:
    conn = notion_tool(monkeypatch, notion)
    wf.node("fetch", """cronium_output '{"batch": "b-9"}'""")
    wf.node(
        "note",
        "",
        name="Write notes",
        type="TOOL_ACTION",
        userId="u-notion",
        toolActionConfig={"toolType": "notion", "actionId": "create-page", "toolId": conn, "parameters": CREATE_PAGE},
    )
    wf.connect("fetch", "note", "ON_SUCCESS")
    run = wf.run()
    assert run.states == {"fetch": "success", "note": "success"}, run.result.log_text()[-3000:]
    [request] = notion.requests
    assert_notion_headers(request)
    assert request.json() == create_page_body("Notes for Write notes b-9")
    assert run.result.xcom("node_note")["result"]["pageId"] == PAGE


def test_the_api_url_is_the_connections_host_and_https_when_it_names_no_scheme(monkeypatch) -> None:
    from cronium_provider.hooks.notion import NotionHook

    monkeypatch.setenv("AIRFLOW_CONN_NOTION_BARE", json.dumps({"conn_type": "cronium_notion", "password": TOKEN}))
    monkeypatch.setenv(
        "AIRFLOW_CONN_NOTION_HOST",
        json.dumps({"conn_type": "cronium_notion", "host": "notion.internal.example", "password": TOKEN}),
    )
    assert NotionHook("notion_bare").base_url() == "https://api.notion.com"
    assert NotionHook("notion_host").base_url() == "https://notion.internal.example"


def test_an_answer_over_max_http_response_bytes_fails_the_action_and_is_not_kept(
    factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An API answering 2 MiB is read only up to ``[cronium] max_http_response_bytes`` (1 MiB), as an
    HTTP_REQUEST event's answer is, and the action fails naming the limit."""
    huge = json.dumps(listing([page_object(PAGE, "x" * (2 * 1024 * 1024))], "page_or_database")).encode()
    server = HttpReceiver(routes={"POST /v1/search": lambda r: (200, {"Content-Type": "application/json"}, huge)})
    server.start()
    try:
        conn = tool(monkeypatch, {"conn_type": "cronium_notion", "host": server.url, "password": TOKEN})
        result = run_tool_event(factory, "notion", "search-content", conn, {"query": "notes"})
    finally:
        server.stop()
    assert result.state == "failed"
    assert "notion POST /v1/search answered more than 1048576 bytes ([cronium] max_http_response_bytes)" in (
        result.log_text()
    )
