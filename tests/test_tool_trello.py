"""Trello's actions (create-card, move-card, add-checklist) in real Airflow runs, against a loopback server that
answers as Trello's REST API 1 does and records every request.

The requests are those of Cronium's Trello plugin (apps/cronium-app/src/tools/plugins/trello/actions/*.ts): JSON
bodies, the key and token as the query parameters ``key`` and ``token``. The answers are Trello's: the created
object as JSON, and for a refused credential a 401 with a plain-text body (``invalid key``), for a rate limit a 429
with ``Retry-After``.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests import test_workflows
from tests.support.http_receiver import Answer, HttpReceiver, Request, json_answer, text_answer
from tests.test_event_dags import Factory, dag_runs
from tests.test_tool_actions import factory, owner_of, run_tool_event, tool, tool_event  # noqa: F401 - the factory fixture
from tests.test_workflows import WorkflowBuilder

wf = test_workflows.wf  # the fixture of the workflow tests: a records folder and its workflow

KEY = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
TOKEN = "ATTA" + "9f8e7d6c5b4a" * 5
CARD_ID = "5abbe4b7ddc1b351ef961414"
CHECKLIST_ID = "5abbe4b7ddc1b351ef961415"


def query(request: Request) -> dict[str, list[str]]:
    return parse_qs(urlsplit(request.path).query)


def authorised(answer: Any) -> Any:
    """Trello's checks of the query's key and token (401 ``invalid key`` / ``invalid token``), then ``answer``."""

    def route(request: Request) -> Answer:
        q = query(request)
        if q.get("key") != [KEY]:
            return text_answer("invalid key", status=401)
        if q.get("token") != [TOKEN]:
            return text_answer("invalid token", status=401)
        return answer(request)  # type: ignore[no-any-return]

    return route


def created_card(request: Request) -> Answer:
    body = request.json()
    return json_answer(
        {
            "id": CARD_ID,
            "name": body["name"],
            "idList": body["idList"],
            "url": f"https://trello.com/c/AbCd1234/7-{body['name'].lower().replace(' ', '-')}",
            "shortUrl": "https://trello.com/c/AbCd1234",
        }
    )


@pytest.fixture
def trello_api() -> Iterator[HttpReceiver]:
    busy = itertools.count()
    server = HttpReceiver(
        routes={
            "POST /1/cards": authorised(created_card),
            f"PUT /1/cards/{CARD_ID}": authorised(lambda r: json_answer({"id": CARD_ID, **r.json()})),
            # a card of a board the token may not write: Trello answers 401 with this text
            "PUT /1/cards/not-yours": authorised(lambda r: text_answer("unauthorized card permission requested", 401)),
            # an answer in JSON: Cronium reports its ``message`` (else its ``error``)
            "PUT /1/cards/archived": authorised(
                lambda r: json_answer({"message": "Card is archived", "error": "CARD_ARCHIVED"}, 400)
            ),
            "POST /1/checklists": authorised(
                lambda r: json_answer({"id": CHECKLIST_ID, "name": r.json()["name"], "checkItems": []})
            ),
            f"POST /1/checklists/{CHECKLIST_ID}/checkItems": authorised(
                lambda r: json_answer({"id": uuid.uuid4().hex[:24], "name": r.json()["name"], "state": "incomplete"})
            ),
            # the first call is refused for its rate (Trello: 429 with Retry-After), the next one goes through
            "POST /busy/1/cards": lambda r: (
                (429, {"Retry-After": "2", "Content-Type": "text/plain"}, b"API_TOKEN_LIMIT_EXCEEDED")
                if next(busy) == 0
                else created_card(r)
            ),
        }
    ).start()
    yield server
    server.stop()


def trello_tool(monkeypatch: pytest.MonkeyPatch, api: HttpReceiver, *, key: str = KEY, path: str = "") -> int:
    return tool(
        monkeypatch, {"conn_type": "cronium_trello", "host": f"{api.url}{path}", "login": key, "password": TOKEN}
    )


@pytest.fixture
def trello(monkeypatch: pytest.MonkeyPatch, trello_api: HttpReceiver) -> int:
    """The id of a Trello tool whose connection holds the right key and token and points at ``trello_api``."""
    return trello_tool(monkeypatch, trello_api)


def assert_trello_request(request: Request, method: str, path: str) -> None:
    assert (request.method, urlsplit(request.path).path) == (method, path)
    assert query(request) == {"key": [KEY], "token": [TOKEN]}
    assert request.headers["Content-Type"] == "application/json"


def test_each_trello_action_of_an_event_sends_what_trello_documents_and_returns_cronium_result(
    factory: Factory,  # noqa: F811
    trello_api: HttpReceiver,
    trello: int,
) -> None:
    create = tool_event(
        factory,
        "trello",
        "create-card",
        trello,
        {
            "listId": "list-{{cronium.input.list}}",
            "name": "Deploy {{cronium.input.version}}",
            "desc": "From {{cronium.event.name}}",
            "due": "2026-12-31T17:00:00.000Z",
            "idMembers": ["m1", "m2"],
            "idLabels": ["urgent"],
        },
        name="Cards",
    )
    move = tool_event(factory, "trello", "move-card", trello, {"cardId": CARD_ID, "destinationListId": "done"})
    checklist = tool_event(
        factory,
        "trello",
        "add-checklist",
        trello,
        {
            "cardId": CARD_ID,
            "name": "Release",
            "checkItems": [
                {"name": "Tests for {{cronium.input.version}}", "checked": True},
                {"name": "Docs", "pos": 2},
            ],
        },
    )
    module = factory.load()
    results = {
        "create": factory.run(module, create, {"list": "todo", "version": "1.4"}),
        "move": factory.run(module, move),
        "checklist": factory.run(module, checklist, {"version": "1.4"}),
    }
    for name, result in results.items():
        assert result.state == "success", (name, result.log_text()[-3000:])
    card, moved, made, first, second = trello_api.requests
    assert_trello_request(card, "POST", "/1/cards")
    # create-card.ts:177-216: the defaults (pos bottom, dueComplete false with a due date), lists joined by commas
    assert card.json() == {
        "idList": "list-todo",
        "name": "Deploy 1.4",
        "pos": "bottom",
        "desc": "From Cards",
        "due": "2026-12-31T17:00:00.000Z",
        "dueComplete": False,
        "idMembers": "m1,m2",
        "idLabels": "urgent",
    }
    assert_trello_request(moved, "PUT", f"/1/cards/{CARD_ID}")
    assert moved.json() == {"idList": "done"}
    assert_trello_request(made, "POST", "/1/checklists")
    assert made.json() == {"idCard": CARD_ID, "name": "Release", "pos": "bottom"}
    assert_trello_request(first, "POST", f"/1/checklists/{CHECKLIST_ID}/checkItems")
    assert first.json() == {"name": "Tests for 1.4", "checked": True}
    assert second.json() == {"name": "Docs", "checked": False, "pos": 2}

    out = results["create"].xcom("run")
    assert out["actionId"] == "create-card" and out["actionName"] == "Create Card"
    assert out["result"] == {"success": True, "cardId": CARD_ID, "url": "https://trello.com/c/AbCd1234/7-deploy-1.4"}
    assert results["move"].xcom("run")["result"] == {"success": True}
    assert results["checklist"].xcom("run")["result"] == {"success": True, "checklistId": CHECKLIST_ID}
    for result in results.values():
        assert KEY not in result.log_text() and TOKEN not in result.log_text()


def test_a_card_copied_from_a_source_sends_the_url_and_source_fields_as_given(
    factory: Factory,  # noqa: F811
    trello_api: HttpReceiver,
    trello: int,
) -> None:
    """create-card.ts:205-216: ``urlSource`` goes as written (no ``/`` added), ``keepFromSource`` joined by commas."""
    params = {
        "listId": "L",
        "name": "Copy",
        "urlSource": "https://example.com",
        "idCardSource": "c1",
        "keepFromSource": ["checklists", "labels"],
    }
    result = run_tool_event(factory, "trello", "create-card", trello, params)
    assert result.state == "success", result.log_text()[-3000:]
    [card] = trello_api.requests
    assert card.json() == {
        "idList": "L",
        "name": "Copy",
        "pos": "bottom",
        "urlSource": "https://example.com",
        "idCardSource": "c1",
        "keepFromSource": "checklists,labels",
    }


def test_trello_parameters_against_cronium_schema_fail_naming_the_parameter_and_send_nothing(
    factory: Factory,  # noqa: F811
    trello_api: HttpReceiver,
    trello: int,
) -> None:
    nowhere = tool_event(factory, "trello", "move-card", trello, {"cardId": CARD_ID})
    no_list = tool_event(factory, "trello", "create-card", trello, {"name": "x"})
    module = factory.load()
    first = factory.run(module, nowhere)
    assert first.state == "failed" and "No destination specified for card move" in first.log_text()
    second = factory.run(module, no_list)
    assert second.state == "failed" and "trello create-card: 'listId': Field required" in second.log_text()
    assert trello_api.requests == []


def test_a_card_id_is_one_path_segment_of_trellos_url(
    factory: Factory,  # noqa: F811
    trello_api: HttpReceiver,
    trello: int,
) -> None:
    """A card id from a run's input cannot reach another route of the API (``../boards/x``)."""
    result = run_tool_event(
        factory,
        "trello",
        "move-card",
        trello,
        {"cardId": "{{cronium.input.card}}", "pos": "top"},
        conf={"card": "../boards/b1"},
    )
    assert result.state == "failed"
    [request] = trello_api.requests
    assert urlsplit(request.path).path == "/1/cards/..%2Fboards%2Fb1"


def test_a_refused_trello_key_fails_at_once_naming_the_connection_and_never_shows_the_key(
    factory: Factory,  # noqa: F811
    trello_api: HttpReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrong_key = "0" * 32
    trello = trello_tool(monkeypatch, trello_api, key=wrong_key)
    result = run_tool_event(factory, "trello", "create-card", trello, {"listId": "L", "name": "n"})
    assert result.state == "failed"
    assert len(trello_api.requests) == 1  # a refused credential is never retried
    text = result.log_text()
    assert f"trello refused the credential of connection cronium_tool_{trello}" in text
    assert "trello answered HTTP 401: invalid key" in text
    assert wrong_key not in text and TOKEN not in text


def test_a_card_the_token_may_not_change_fails_at_once_naming_the_connection(
    factory: Factory,  # noqa: F811
    trello_api: HttpReceiver,
    trello: int,
) -> None:
    result = run_tool_event(
        factory, "trello", "move-card", trello, {"cardId": "not-yours", "destinationListId": "done"}
    )
    assert result.state == "failed"
    assert len(trello_api.requests) == 1
    assert f"trello refused the credential of connection cronium_tool_{trello}" in result.log_text()
    assert "unauthorized card permission requested" in result.log_text()


def test_a_trello_error_answer_in_json_fails_with_its_message_as_cronium_reports_it(
    factory: Factory,  # noqa: F811
    trello_api: HttpReceiver,
    trello: int,
) -> None:
    """Cronium's Trello actions fail with the answer's ``message``, else its ``error``
    (apps/cronium-app/src/tools/plugins/trello/actions/move-card.ts:174-182)."""
    result = run_tool_event(factory, "trello", "move-card", trello, {"cardId": "archived", "destinationListId": "done"})
    assert result.state == "failed"
    assert "trello answered HTTP 400: Card is archived" in result.log_text()
    assert "CARD_ARCHIVED" not in result.log_text()


def test_a_network_error_names_no_key_or_token(
    factory: Factory,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """requests puts the URL (with its query) in a connection error: the error the run shows has neither."""
    from tests.conftest import _free_port

    trello = tool(
        monkeypatch,
        {
            "conn_type": "cronium_trello",
            "host": f"http://127.0.0.1:{_free_port()}",
            "login": KEY,
            "password": TOKEN,
        },
    )
    result = run_tool_event(factory, "trello", "create-card", trello, {"listId": "L", "name": "n"})
    assert result.state == "failed"
    text = result.log_text()
    assert "trello POST /1/cards failed" in text
    assert KEY not in text and TOKEN not in text


def test_a_trello_429_is_retried_after_its_retry_after_and_then_succeeds(
    factory: Factory,  # noqa: F811
    trello_api: HttpReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The standard strategy would wait 1 s; Trello's Retry-After of 2 s is waited instead."""
    trello = trello_tool(monkeypatch, trello_api, path="/busy")
    result = run_tool_event(factory, "trello", "create-card", trello, {"listId": "L", "name": "Retry me"})
    assert result.state == "success", result.log_text()[-3000:]
    refused, accepted = trello_api.requests
    assert 1.9 <= accepted.received_at - refused.received_at <= 4.0
    assert "retrying in 2.0 s" in result.log_text()
    assert result.xcom("run")["result"]["cardId"] == CARD_ID


def test_a_connection_of_another_type_named_as_trello_is_refused_and_sees_no_request(
    factory: Factory,  # noqa: F811
    trello_api: HttpReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slack = tool(monkeypatch, {"conn_type": "slackwebhook", "password": f"{trello_api.url}/1/cards"})
    result = run_tool_event(factory, "trello", "create-card", slack, {"listId": "L", "name": "n"})
    assert result.state == "failed"
    assert f"tool connection cronium_tool_{slack} is a slack tool" in result.log_text()
    assert trello_api.requests == []


def test_a_conditional_action_runs_a_trello_event_and_a_trello_tool_sends_no_message(
    factory: Factory,  # noqa: F811
    trello_api: HttpReceiver,
    trello: int,
) -> None:
    """Cronium's conditional actions reach Trello as a SCRIPT action whose target is a Trello event; a
    SEND_MESSAGE through a Trello tool is refused by Cronium's handler ("does not support send message actions",
    apps/cronium-app/src/lib/scheduler/event-handlers.ts:253-266) and sends nothing."""
    card = tool_event(
        factory, "trello", "create-card", trello, {"listId": "L", "name": "After {{cronium.event.name}}"}, name="card"
    )
    source = tool_event(
        factory,
        "trello",
        "move-card",
        trello,
        {"cardId": CARD_ID, "pos": "top"},
        name="Mover",
        successEvents=[
            {"type": "SCRIPT", "targetEventId": card["id"]},
            {"type": "SEND_MESSAGE", "toolId": trello, "message": "moved"},
        ],
    )
    module = factory.load()
    result = factory.run(module, source)
    assert result.state == "success", result.log_text()[-3000:]
    assert result.task_states["on_success_0"] == "success" and result.task_states["on_success_1"] == "success"
    assert [(r.method, urlsplit(r.path).path) for r in trello_api.requests] == [("PUT", f"/1/cards/{CARD_ID}")]
    assert "Tool type trello does not support send message actions" in result.log_text()
    # the SCRIPT action queued a run of the Trello event; the scheduler would run it: so does the test
    [queued] = dag_runs(f"cronium_event_{card['id']}")
    target = factory.run(module, card, queued.conf)
    assert target.state == "success", target.log_text()[-3000:]
    created = trello_api.requests[-1]
    assert_trello_request(created, "POST", "/1/cards")
    assert created.json() == {"idList": "L", "name": "After card", "pos": "bottom"}


def test_a_workflow_whose_node_is_a_trello_create_card_event_builds_runs_and_plan_shows_the_tool(
    wf: WorkflowBuilder, trello: int, trello_api: HttpReceiver
) -> None:
    from tests.test_cli import run_cli

    wf.node(
        "card",
        "",
        type="TOOL_ACTION",
        name="File a card",
        toolActionConfig={
            "toolType": "trello",
            "actionId": "create-card",
            "toolId": trello,
            "parameters": {"listId": "inbox", "name": "Order {{cronium.input.order}}"},
        },
    )
    run = wf.run({"order": 17})
    assert run.states == {"card": "success"}, run.result.log_text()[-3000:]
    [request] = trello_api.requests
    assert_trello_request(request, "POST", "/1/cards")
    assert request.json() == {"idList": "inbox", "name": "Order 17", "pos": "bottom"}
    assert run.result.xcom("node_card")["result"]["cardId"] == CARD_ID

    plan = run_cli("plan", str(wf.folder))
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "  node_card            tool_action    all_success  File a card  (trello create-card)" in plan.stdout
    details = json.loads(run_cli("plan", "--json", str(wf.folder)).stdout)
    [workflow] = [d for d in details["dags"] if d["kind"] == "workflow"]
    [node] = [t for t in workflow["tasks"] if t["task_id"] == "node_card"]
    assert {k: node["details"][k] for k in ("tool_type", "action_id", "tool_id")} == {
        "tool_type": "trello",
        "action_id": "create-card",
        "tool_id": trello,
    }


@pytest.mark.docker
def test_a_scripts_execute_tool_action_creates_a_trello_card_after_it_ends(
    trello_api: HttpReceiver, trello: int, capfd: Any, airflow_db: Any
) -> None:
    from tests.support.airflow_run import run_dag
    from tests.test_script_events import script_dag

    script = (
        f'cronium.execute_tool_action("trello", "create-card", {{"toolId": {trello}, "listId": "L9", '
        '"name": "From a script", "pos": "top"})\nprint("the script ended")\n'
    )
    dag, _ = script_dag("PYTHON", script, event={"id": 5, "userId": f"u-{uuid.uuid4().hex[:8]}"})
    result = run_dag(dag, capfd=capfd)
    assert result.state == "success", result.log_text()[-3000:]
    [request] = trello_api.requests
    assert_trello_request(request, "POST", "/1/cards")
    assert request.json() == {"idList": "L9", "name": "From a script", "pos": "top"}
    [action] = result.xcom("run", "actions")
    assert action["status"] == "SUCCESS" and action["actionId"] == "create-card"
    assert action["result"] == {
        "success": True,
        "cardId": CARD_ID,
        "url": "https://trello.com/c/AbCd1234/7-from-a-script",
    }


def test_a_card_id_of_dots_stays_a_card_id_and_reaches_no_other_route(
    factory: Factory,  # noqa: F811
    trello_api: HttpReceiver,
    trello: int,
) -> None:
    """A card id ``..`` from a run's input would be sent as ``/1/cards/..`` (``requests`` unquotes ``%2E``), which
    a server reads as ``/1/``: it is refused, and nothing is sent."""
    result = run_tool_event(
        factory, "trello", "move-card", trello, {"cardId": "{{cronium.input.card}}", "pos": "top"}, conf={"card": ".."}
    )
    assert result.state == "failed"
    assert "trello: id '..' is a dot segment of a URL path, no Trello id" in result.log_text()
    assert trello_api.requests == []


def test_an_answer_over_max_http_response_bytes_fails_the_action_and_is_not_kept(
    factory: Factory,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An API answering 2 MiB is read only up to ``[cronium] max_http_response_bytes`` (1 MiB)."""
    huge = json.dumps({"id": CARD_ID, "desc": "x" * (2 * 1024 * 1024)}).encode()
    server = HttpReceiver(routes={"POST /1/cards": lambda r: (200, {"Content-Type": "application/json"}, huge)}).start()
    try:
        trello = trello_tool(monkeypatch, server)
        result = run_tool_event(factory, "trello", "create-card", trello, {"listId": "L", "name": "n"})
    finally:
        server.stop()
    assert result.state == "failed"
    assert "trello POST /1/cards answered more than 1048576 bytes ([cronium] max_http_response_bytes)" in (
        result.log_text()
    )
