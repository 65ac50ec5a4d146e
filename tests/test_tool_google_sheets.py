"""Cronium's Google Sheets actions (read-data, write-data, create-sheet) run by real Airflow runs against a
loopback server answering as the Sheets API v4 does, recording what it received.

Requests are those of Google's reference (spreadsheets.values.get / update / append, spreadsheets.batchUpdate
with addSheet) as Cronium's actions make them (apps/cronium-app/src/tools/plugins/google-sheets/actions/*.ts:
``encodeURIComponent`` of the id and the range, ``Authorization: Bearer <oauthToken>``); the results are the
objects Cronium's actions return.
"""

from __future__ import annotations

import itertools
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests import test_workflows
from tests.conftest import venv_bin
from tests.support.airflow_run import run_dag
from tests.support.http_receiver import Answer, HttpReceiver, Request, json_answer
from tests.test_event_dags import Factory
from tests.test_script_events import _CAPFD, _task_logs, script_dag  # noqa: F401
from tests.test_tool_actions import factory, owner_of, run_tool_event, tool, tool_event  # noqa: F401
from tests.test_workflows import WorkflowBuilder

wf = test_workflows.wf  # the fixture of the workflow tests: a records folder and its workflow

TOKEN = "ya29.sheets-access-token-secret"
SHEET = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"
BASE = f"/v4/spreadsheets/{SHEET}"
READ_PATH = f"{BASE}/values/Sheet1!A1%3AC10"  # encodeURIComponent("Sheet1!A1:C10")
WRITE_PATH = f"{BASE}/values/Sheet1!A1"
APPEND_PATH = f"{BASE}/values/Sheet1!A%3AC:append"
BATCH_PATH = f"{BASE}:batchUpdate"
VALUES = [["Name", "Age", "City"], ["John Doe", "30", "New York"]]


def google_error(code: int, message: str, status: str) -> Answer:
    """An error answer of Google's APIs: ``{"error": {"code", "message", "status"}}``."""
    return json_answer({"error": {"code": code, "message": message, "status": status}}, status=code)


def _update(request: Request) -> Answer:
    rows = request.json()["values"]
    return json_answer(
        {
            "spreadsheetId": SHEET,
            "updatedRange": f"Sheet1!A1:C{len(rows)}",
            "updatedRows": len(rows),
            "updatedColumns": 3,
            "updatedCells": 3 * len(rows),
        }
    )


def _append(request: Request) -> Answer:
    return json_answer(
        {
            "spreadsheetId": SHEET,
            "tableRange": "Sheet1!A1:C3",
            "updates": {
                "spreadsheetId": SHEET,
                "updatedRange": "Sheet1!A4:C4",
                "updatedRows": 1,
                "updatedColumns": 3,
                "updatedCells": 3,
            },
        }
    )


def _add_sheet(request: Request) -> Answer:
    properties = request.json()["requests"][0]["addSheet"]["properties"]
    return json_answer(
        {
            "spreadsheetId": SHEET,
            "replies": [
                {
                    "addSheet": {
                        "properties": {
                            "sheetId": 987654321,
                            "title": properties["title"],
                            "index": properties.get("index", 3),
                            "sheetType": "GRID",
                            "gridProperties": {"rowCount": 1000, "columnCount": 26},
                        }
                    }
                }
            ],
        }
    )


@pytest.fixture
def sheets_api() -> Iterator[HttpReceiver]:
    busy = itertools.count()

    def read(request: Request) -> Answer:
        return json_answer({"range": "Sheet1!A1:C10", "majorDimension": "ROWS", "values": VALUES})

    def read_after_quota(request: Request) -> Answer:
        if next(busy) == 0:
            status, headers, body = google_error(
                429,
                "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute per user' "
                "of service 'sheets.googleapis.com' for consumer 'project_number:1'.",
                "RESOURCE_EXHAUSTED",
            )
            return status, {**headers, "Retry-After": "3"}, body
        return read(request)

    server = HttpReceiver(
        routes={
            f"GET {READ_PATH}": read,
            f"PUT {WRITE_PATH}": _update,
            f"POST {APPEND_PATH}": _append,
            f"POST {BATCH_PATH}": _add_sheet,
            "GET /v4/spreadsheets/busy/values/Sheet1!A1%3AC10": read_after_quota,
            "GET /v4/spreadsheets/revoked/values/Sheet1!A1%3AC10": lambda r: google_error(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
                "other valid authentication credential.",
                "UNAUTHENTICATED",
            ),
        }
    ).start()
    yield server
    server.stop()


def sheets_tool(monkeypatch: pytest.MonkeyPatch, api: HttpReceiver, owner: str | None = None) -> int:
    extra = {"extra": json.dumps({"owner": owner})} if owner else {}
    return tool(monkeypatch, {"conn_type": "cronium_google_sheets", "host": api.url, "password": TOKEN, **extra})


@pytest.fixture
def sheets(monkeypatch: pytest.MonkeyPatch, sheets_api: HttpReceiver) -> int:
    """The id of a Google Sheets tool whose connection holds the token and points at ``sheets_api``."""
    return sheets_tool(monkeypatch, sheets_api)


def query(request: Request) -> dict[str, list[str]]:
    return parse_qs(urlsplit(request.path).query)


def path(request: Request) -> str:
    return urlsplit(request.path).path


def assert_sent_by_cronium(request: Request) -> None:
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert "owner" not in {name.lower() for name in request.headers}  # the connection's extra is no header


def test_each_sheets_action_sends_googles_request_and_returns_croniums_result(
    factory: Factory,  # noqa: F811 - the fixture imported above
    sheets_api: HttpReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sheets = sheets_tool(monkeypatch, sheets_api, owner=owner_of(factory))
    read = tool_event(factory, "google-sheets", "read-data", sheets, {"spreadsheetId": SHEET, "range": "Sheet1!A1:C10"})
    write = tool_event(
        factory,
        "google-sheets",
        "write-data",
        sheets,
        {
            "spreadsheetId": SHEET,
            "range": "Sheet1!A1",
            "values": [["Order", "Customer"], ["{{cronium.input.order}}", "{{cronium.event.name}}"]],
            "valueInputOption": "RAW",
        },
        name="Log order",
    )
    append = tool_event(
        factory,
        "google-sheets",
        "write-data",
        sheets,
        {
            "spreadsheetId": SHEET,
            "range": "Sheet1!A:C",
            "values": [["Widget C", 39.99, 50]],
            "insertDataOption": "INSERT_ROWS",
        },
    )
    create = tool_event(
        factory,
        "google-sheets",
        "create-sheet",
        sheets,
        {
            "spreadsheetId": SHEET,
            "title": "Q{{cronium.input.quarter}} Sales",
            "index": 0,
            "gridProperties": {"rowCount": 500, "frozenRowCount": 2},
            "tabColor": {"red": 0.2, "green": 0.8, "blue": 0.2},
        },
    )
    module = factory.load()
    results = {
        "read": factory.run(module, read),
        "write": factory.run(module, write, {"order": "A-17"}),
        "append": factory.run(module, append),
        "create": factory.run(module, create, {"quarter": 1}),
    }
    for name, result in results.items():
        assert result.state == "success", (name, result.log_text()[-3000:])
        assert TOKEN not in result.log_text()
    got, put, post_append, batch = sheets_api.requests
    for request in (got, put, post_append, batch):
        assert_sent_by_cronium(request)

    # spreadsheets.values.get with Cronium's defaults (read-data.ts:152-169)
    assert (got.method, path(got)) == ("GET", READ_PATH)
    assert query(got) == {
        "valueRenderOption": ["FORMATTED_VALUE"],
        "dateTimeRenderOption": ["FORMATTED_STRING"],
        "majorDimension": ["ROWS"],
    }
    out = results["read"].xcom("run")
    assert (out["actionId"], out["actionName"]) == ("read-data", "Read Data")
    assert out["result"] == {"success": True, "range": "Sheet1!A1:C10", "majorDimension": "ROWS", "values": VALUES}

    # spreadsheets.values.update, the templates rendered in every cell
    assert (put.method, path(put)) == ("PUT", WRITE_PATH)
    assert query(put) == {"valueInputOption": ["RAW"], "includeValuesInResponse": ["false"]}
    assert put.json() == {"values": [["Order", "Customer"], ["A-17", "Log order"]]}
    assert results["write"].xcom("run")["result"] == {
        "success": True,
        "updatedRange": "Sheet1!A1:C2",
        "updatedRows": 2,
        "updatedColumns": 3,
        "updatedCells": 6,
    }

    # INSERT_ROWS: spreadsheets.values.append, the one call taking insertDataOption
    assert (post_append.method, path(post_append)) == ("POST", APPEND_PATH)
    assert query(post_append) == {
        "valueInputOption": ["USER_ENTERED"],
        "insertDataOption": ["INSERT_ROWS"],
        "includeValuesInResponse": ["false"],
    }
    assert post_append.json() == {"values": [["Widget C", 39.99, 50]]}
    assert results["append"].xcom("run")["result"] == {
        "success": True,
        "updatedRange": "Sheet1!A4:C4",
        "updatedRows": 1,
        "updatedColumns": 3,
        "updatedCells": 3,
    }

    # spreadsheets.batchUpdate with addSheet, Cronium's grid defaults filled in (create-sheet.ts:17-22, 168-189)
    assert (batch.method, path(batch), query(batch)) == ("POST", BATCH_PATH, {})
    assert batch.json() == {
        "requests": [
            {
                "addSheet": {
                    "properties": {
                        "title": "Q1 Sales",
                        "index": 0,
                        "gridProperties": {"rowCount": 500, "columnCount": 26, "frozenRowCount": 2},
                        "tabColor": {"red": 0.2, "green": 0.8, "blue": 0.2},
                    }
                }
            }
        ]
    }
    created = results["create"].xcom("run")
    assert created["result"] == {"success": True, "sheetId": 987654321, "title": "Q1 Sales", "index": 0}
    assert created["actionName"] == "Create Sheet"


def test_bad_sheets_parameters_fail_naming_them_and_nothing_is_sent(
    factory: Factory,  # noqa: F811 - the fixture imported above
    sheets_api: HttpReceiver,
    sheets: int,
) -> None:
    no_range = tool_event(factory, "google-sheets", "read-data", sheets, {"spreadsheetId": SHEET})
    bad_values = tool_event(
        factory, "google-sheets", "write-data", sheets, {"spreadsheetId": SHEET, "range": "A1", "values": "1,2"}
    )
    bad_color = tool_event(
        factory, "google-sheets", "create-sheet", sheets, {"spreadsheetId": SHEET, "title": "x", "tabColor": {"red": 3}}
    )
    # a run's input or a template sets the id: it may not steer the call to another API path
    elsewhere = tool_event(
        factory, "google-sheets", "read-data", sheets, {"spreadsheetId": "{{cronium.input.id}}", "range": "A1"}
    )
    module = factory.load()
    outside = factory.run(module, elsewhere, {"id": "../../drive/v3/files"})
    assert outside.state == "failed"
    assert "google-sheets read-data: 'spreadsheetId': String should match pattern" in outside.log_text()
    for event, words in (
        (no_range, "google-sheets read-data: 'range': Field required"),
        (bad_values, "google-sheets write-data: 'values': "),
        (bad_color, "google-sheets create-sheet: 'tabColor.red': "),
    ):
        result = factory.run(module, event)
        assert result.state == "failed" and words in result.log_text(), result.log_text()[-2000:]
    assert sheets_api.requests == []


def test_a_refused_token_fails_at_once_naming_the_connection(
    factory: Factory,  # noqa: F811 - the fixture imported above
    sheets_api: HttpReceiver,
    sheets: int,
) -> None:
    result = run_tool_event(
        factory, "google-sheets", "read-data", sheets, {"spreadsheetId": "revoked", "range": "Sheet1!A1:C10"}
    )
    text = result.log_text()
    assert result.state == "failed"
    assert f"google-sheets refused the credential of connection cronium_tool_{sheets}" in text
    assert "Request had invalid authentication credentials" in text  # Google's error.message, as Cronium reports
    assert len(sheets_api.requests) == 1  # never retried
    assert TOKEN not in text


def test_a_429_is_retried_after_its_retry_after_then_succeeds(
    factory: Factory,  # noqa: F811 - the fixture imported above
    sheets_api: HttpReceiver,
    sheets: int,
) -> None:
    """Google's 429 says ``Retry-After: 3``: the retry waits those 3 s, not the standard strategy's 1 s."""
    result = run_tool_event(
        factory, "google-sheets", "read-data", sheets, {"spreadsheetId": "busy", "range": "Sheet1!A1:C10"}
    )
    assert result.state == "success", result.log_text()[-3000:]
    first, second = sheets_api.requests
    assert 2.9 <= second.received_at - first.received_at <= 6
    assert result.xcom("run")["result"]["values"] == VALUES


def test_a_connection_of_another_type_is_refused_as_a_sheets_tool(
    factory: Factory,  # noqa: F811 - the fixture imported above
    sheets_api: HttpReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slack = tool(monkeypatch, {"conn_type": "slackwebhook", "password": f"{sheets_api.url}/hook"})
    tokenless = tool(monkeypatch, {"conn_type": "cronium_google_sheets", "host": sheets_api.url})
    as_sheets = tool_event(factory, "google-sheets", "read-data", slack, {"spreadsheetId": SHEET, "range": "A1"})
    no_token = tool_event(factory, "google-sheets", "read-data", tokenless, {"spreadsheetId": SHEET, "range": "A1"})
    module = factory.load()
    refused = factory.run(module, as_sheets)
    assert refused.state == "failed"
    assert f"tool connection cronium_tool_{slack} is a slack tool" in refused.log_text()
    missing = factory.run(module, no_token)
    assert missing.state == "failed"
    assert f"connection cronium_tool_{tokenless} has no OAuth access token" in missing.log_text()
    assert sheets_api.requests == []


def test_a_send_message_action_through_a_sheets_tool_is_refused_as_cronium_does(
    factory: Factory,  # noqa: F811 - the fixture imported above
    sheets_api: HttpReceiver,
    sheets: int,
) -> None:
    """Cronium's SEND_MESSAGE knows only email, Slack, Discord and Teams tools (event-handlers.ts:252-265)."""
    event = factory.event(
        name="notify",
        userId=owner_of(factory),
        successEvents=[{"type": "SEND_MESSAGE", "toolId": sheets, "message": "done"}],
    )
    module = factory.load()
    result = factory.run(module, event)
    assert "Tool type google-sheets does not support send message actions" in result.log_text()
    assert sheets_api.requests == []
    assert result.task_states["on_success_0"] == "success"  # logged and nothing sent, as Cronium: no failure


@pytest.mark.docker
def test_a_script_writes_rows_through_execute_tool_action(sheets_api: HttpReceiver, sheets: int, airflow_db) -> None:
    script = (
        "cronium.execute_tool_action('google-sheets', 'write-data', "
        f"{{'toolId': {sheets}, 'spreadsheetId': '{SHEET}', 'range': 'Sheet1!A1', 'values': [['total', 42]]}})\n"
        "print('the script ended')\n"
    )
    dag, _ = script_dag("PYTHON", script, event={"id": 7, "userId": "u-sheets"})
    result = run_dag(dag, capfd=_CAPFD[-1])
    assert result.state == "success", result.log_text()[-3000:]
    [put] = sheets_api.requests
    assert (put.method, path(put)) == ("PUT", WRITE_PATH)
    assert_sent_by_cronium(put)
    assert put.json() == {"values": [["total", 42]]}
    [action] = result.xcom("run", "actions")
    assert action["status"] == "SUCCESS" and action["result"]["updatedCells"] == 3


@pytest.mark.docker
def test_a_workflow_node_writes_the_previous_nodes_output(
    wf: WorkflowBuilder, sheets: int, sheets_api: HttpReceiver
) -> None:
    wf.node("fetch", 'cronium_output \'{"order": 7, "customer": "Zoë"}\'')
    wf.node(
        "log",
        "",
        type="TOOL_ACTION",
        toolActionConfig={
            "toolType": "google-sheets",
            "actionId": "write-data",
            "toolId": sheets,
            "parameters": {
                "spreadsheetId": SHEET,
                "range": "Sheet1!A1",
                "values": [["{{cronium.input.order}}", "{{cronium.input.customer}}"]],
            },
        },
    )
    wf.connect("fetch", "log", "ON_SUCCESS")
    run = wf.run()
    assert run.states == {"fetch": "success", "log": "success"}, run.result.log_text()[-3000:]
    [put] = sheets_api.requests
    assert put.json() == {"values": [["7", "Zoë"]]}
    assert run.result.xcom("node_log")["result"]["updatedRange"] == "Sheet1!A1:C1"


def test_plan_shows_the_sheets_tool_of_an_event(tmp_path: Path) -> None:
    (tmp_path / "e.json").write_text(
        json.dumps(
            {
                "events": [
                    {
                        "id": 31,
                        "name": "Log orders",
                        "type": "TOOL_ACTION",
                        "toolActionConfig": {
                            "toolType": "google-sheets",
                            "actionId": "write-data",
                            "toolId": 4,
                            "parameters": {"spreadsheetId": SHEET, "range": "A1", "values": [[1]]},
                        },
                    }
                ]
            }
        )
    )
    machine = subprocess.run(
        [venv_bin("cronium-airflow"), "plan", "--json", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert machine.returncode == 0, machine.stdout + machine.stderr
    [dag] = json.loads(machine.stdout)["dags"]
    assert {"tool_type": "google-sheets", "action_id": "write-data", "tool_id": 4}.items() <= _tool_of(dag).items()


def _tool_of(dag: dict[str, Any]) -> dict[str, Any]:
    """The tool action a plan's DAG names, wherever the plan puts it."""
    found: list[dict[str, Any]] = []

    def walk(item: Any) -> None:
        if isinstance(item, dict):
            if "tool_type" in item:
                found.append(item)
            for value in item.values():
                walk(value)
        elif isinstance(item, list):
            for value in item:
                walk(value)

    walk(dag)
    assert found, dag
    return found[0]


def test_an_answer_over_max_http_response_bytes_fails_the_action_and_is_not_kept(
    factory: Factory,  # noqa: F811 - the fixture imported above
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Sheets API (or whatever the connection's host is) answering 2 MiB is read only up to ``[cronium]
    max_http_response_bytes`` (1 MiB), as an HTTP_REQUEST event's answer is."""
    huge = json.dumps({"range": "Sheet1!A1:C10", "values": [["x" * 1024]] * 2048}).encode()
    server = HttpReceiver(
        routes={f"GET {READ_PATH}": lambda r: (200, {"Content-Type": "application/json"}, huge)}
    ).start()
    try:
        sheets = sheets_tool(monkeypatch, server)
        result = run_tool_event(
            factory, "google-sheets", "read-data", sheets, {"spreadsheetId": SHEET, "range": "Sheet1!A1:C10"}
        )
    finally:
        server.stop()
    assert result.state == "failed"
    assert "google-sheets answered more than 1048576 bytes ([cronium] max_http_response_bytes)" in result.log_text()


def test_a_range_of_dots_is_refused_and_reaches_no_other_api_path(
    factory: Factory,  # noqa: F811 - the fixture imported above
    sheets_api: HttpReceiver,
    sheets: int,
) -> None:
    """A range ``..`` from a run's input would be sent as ``.../values/..`` (``requests`` unquotes ``%2E``), which
    a server reads as the spreadsheet itself (``spreadsheets.get``): it is refused, and nothing is sent."""
    result = run_tool_event(
        factory,
        "google-sheets",
        "read-data",
        sheets,
        {"spreadsheetId": SHEET, "range": "{{cronium.input.range}}"},
        conf={"range": ".."},
    )
    assert result.state == "failed"
    assert "google-sheets: range '..' is a dot segment of a URL path, no A1 range" in result.log_text()
    assert sheets_api.requests == []
