"""Every generation of Cronium's runtime helpers, in Bash, Python and Node.js, in real containers.

Cronium (``addison-moore/cronium``; line numbers at commit aef566a unless a commit is named) shipped three
generations of helpers that scripts in the wild call:

- the documented file-protocol helpers: camelCase names (``src/runtime-helpers/cronium.{sh,py,js}`` at
  2473c9c; ``apps/cronium-info/src/app/docs/runtime-helpers/page.tsx``);
- the Go runner's helper executables, dotted Bash names (``apps/runner/cronium-runner/cmd/helpers/*``);
- the runtime SDK (``apps/runtime/runtime-helpers/{bash,python,nodejs}``): snake_case in Bash and Python,
  camelCase in Node.js, tool actions, ``cronium_event_field``, ``cronium_append_variable``, ``cronium_info``.

Each script runs through :class:`ContainerExecutor` in the runtime image (network ``none``), several checks per
container. The host-side parsing of the new result files is checked without a container at the end.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from cronium_provider.runners.base import ScriptJob
from cronium_provider.runners.container import ContainerExecutor
from cronium_provider.runners.outcome import ScriptRun
from cronium_provider.runners.protocol import (
    MAX_ACTION_REQUESTS,
    MISSING,
    ActionRequest,
    ProtocolError,
    ScriptResults,
    VariableChange,
    appended,
    normalise_action,
    read_results,
)
from cronium_provider.variables import VariableNamespace
from tests.conftest import RUNTIME_IMAGE

INPUT = {"name": "Ada"}
EVENT = {
    "id": 7,
    "name": "nightly",
    "type": "BASH",
    "userId": "u1",
    "runLocation": "LOCAL",
    "server": {"name": "db-1"},
    "tags": ["ops", "daily"],
    "shared": False,
    "description": None,
}
VARIABLES = {"greeting": "hello", "log": "a", "items": [1, 2], "counter": 41}


@dataclass
class ContainerRun:
    run: ScriptRun
    stdout: list[str]
    stderr: list[str]

    @property
    def results(self) -> ScriptResults:
        assert self.run.protocol_error is None, self.run.protocol_error
        assert self.run.results is not None
        return self.run.results

    def ok(self) -> ContainerRun:
        assert self.run.exit_code == 0, f"exit {self.run.exit_code}\nstdout: {self.stdout}\nstderr: {self.stderr}"
        return self

    def said(self) -> dict[str, str]:
        """``name=value`` lines the script printed."""
        return dict(line.split("=", 1) for line in self.stdout if "=" in line)


@pytest.fixture
def run_in_container(docker_client: Any) -> Callable[..., ContainerRun]:
    def run(
        language: str,
        script: str,
        *,
        variables: dict[str, Any] | None = None,
        event: dict[str, Any] | None = None,
        environment: dict[str, str] | None = None,
    ) -> ContainerRun:
        stdout: list[str] = []
        stderr: list[str] = []
        executor = ContainerExecutor(
            docker_client.api,
            on_line=lambda stream, line: (stdout if stream == "stdout" else stderr).append(line),
            image=RUNTIME_IMAGE,
        )
        job = ScriptJob(
            language=language,
            script=textwrap.dedent(script),
            input=INPUT,
            event=EVENT if event is None else event,
            variables=VARIABLES if variables is None else variables,
            environment=environment or {},
        )
        return ContainerRun(executor.run(job), stdout, stderr)

    return run


def set_(key: str, value: Any) -> VariableChange:
    return VariableChange("set", key, value)


def append(key: str, value: Any, separator: str = "") -> VariableChange:
    return VariableChange("append", key, value, separator)


class FakeVariables:
    """Airflow's ``Variable`` as VariableNamespace uses it, kept in a dict."""

    store: dict[str, str] = {}

    @classmethod
    def get(cls, key: str, default: Any = None) -> Any:
        return cls.store.get(key, default)

    @classmethod
    def set(cls, key: str, value: str) -> None:
        cls.store[key] = value

    @classmethod
    def delete(cls, key: str) -> None:
        cls.store.pop(key, None)

    @classmethod
    def keys(cls, prefix: str = "") -> list[str]:
        return [k for k in cls.store if k.startswith(prefix)]


@pytest.fixture
def airflow_variables(monkeypatch: pytest.MonkeyPatch) -> type[FakeVariables]:
    import airflow.sdk

    FakeVariables.store = {}
    monkeypatch.setattr(airflow.sdk, "Variable", FakeVariables)
    return FakeVariables


# --------------------------------------------------------------------------- the runtime SDK generation

RUNTIME_SDK_BASH = r"""
    set -euo pipefail
    missing=$(cronium_get_variable nope)
    echo "missing=[$missing]"
    cronium_get_variable nope
    echo "after_missing=still running"
    cronium_set_variable cfg '{"a": 1}'
    cronium_set_variable note 'just words'
    cronium_set_variable count 42
    echo "cfg=$(cronium_get_variable cfg)"
    echo "greeting=$(cronium_get_variable greeting)"
    echo "name=$(cronium_event_field name)"
    echo "server=$(cronium_event_field server.name)"
    echo "tag=$(cronium_event_field 'tags[1]')"
    echo "eventName=$(cronium_event_field eventName)"
    echo "eventId=$(cronium_event_field eventId)"
    echo "shared=$(cronium_event_field shared)"
    echo "description=[$(cronium_event_field description)]"
    echo "absent=[$(cronium_event_field nothing_here)]"
    cronium_append_variable log b ,
    cronium_append_variable items 3
    cronium_append_variable fresh first
    cronium_append_variable fresh second ' + '
    echo "log=$(cronium_get_variable log)"
    echo "items=$(cronium_get_variable items)"
    echo "fresh=$(cronium_get_variable fresh)"
    cronium_info | sed 's/^/info: /'
    result=$(cronium_send_email 'ops@example.com, dev@example.com' 'Nightly' '<b>done</b>' \
        --cc 'boss@example.com' --html)
    echo "email_result=[$result]"
    cronium_send_slack_message '#ops' 'deployed' --username bot --icon-emoji ':rocket:'
    cronium_send_discord_message 1234 'hello' --embed '{"title": "t"}'
    cronium_execute_tool_action Slack send_message '{"text": "multi",
        "channel": "#x"}'
    if cronium_execute_tool_action slack send_message 'not json'; then exit 9; fi
    cronium_output "all done"
"""


def test_runtime_sdk_generation_bash(run_in_container: Any) -> None:
    """The Bash runtime SDK, apps/runtime/runtime-helpers/bash/cronium.sh (all lines at aef566a).

    - cronium_get_variable of a missing key prints nothing, status 0 (:147-158, jq ``.data.value // empty``
      at :154; the 404 case answers ``{"data":{"value":null}}`` at :100-103): a ``set -e`` script goes on.
    - cronium_set_variable stores a JSON text as JSON, other text as a string (:161-174, wrap at :166-170).
    - cronium_event_field FIELD prints ``jq -r ".$FIELD // empty"`` of the event (:205-209).
    - cronium_append_variable KEY VALUE [SEP]: missing -> VALUE, else current SEP VALUE (:356-368); journaled
      as an append. A list gets an element (Cronium would join the list's JSON text).
    - cronium_info (:370-376); cronium_send_email/slack/discord and cronium_execute_tool_action (:211-324),
      requests in actions.jsonl, nothing printed (Cronium prints the action's data, which the script
      cannot have here); a config that is not a JSON object fails, as at :217-221.
    - cronium_output of a text that is not JSON makes it the string output (:136-140).
    """
    run = run_in_container("BASH", RUNTIME_SDK_BASH).ok()
    said = run.said()
    assert said["missing"] == "[]"
    assert said["after_missing"] == "still running"
    assert said["cfg"] == '{"a": 1}'
    assert said["greeting"] == "hello"
    assert (said["name"], said["server"], said["tag"]) == ("nightly", "db-1", "daily")
    assert (said["eventName"], said["eventId"], said["shared"]) == ("nightly", "7", "false")
    assert (said["description"], said["absent"]) == ("[]", "[]")
    assert (said["log"], said["items"], said["fresh"]) == ("a,b", "[1,2,3]", "first + second")
    info = [line for line in run.stdout if line.startswith("info: ")]
    assert info[0].startswith("info: Cronium Bash SDK") and info[1].startswith("info: API URL:")
    assert not any("Token: " in line and "none" not in line for line in info)
    assert said["email_result"] == "[]"
    assert "Error: Invalid JSON configuration for tool action" in run.stderr

    results = run.results
    assert results.output == "all done"
    assert results.variable_changes == (
        set_("cfg", {"a": 1}),
        set_("note", "just words"),
        set_("count", 42),
        append("log", "b", ","),
        append("items", 3),
        append("fresh", "first"),
        append("fresh", "second", " + "),
    )
    assert results.action_requests == (
        ActionRequest(
            "email",
            "send-email",
            {
                "to": ["ops@example.com", "dev@example.com"],
                "subject": "Nightly",
                "body": "<b>done</b>",
                "cc": ["boss@example.com"],
                "html": True,
            },
            1,
        ),
        ActionRequest(
            "slack",
            "slack-send-message",
            {"channel": "#ops", "text": "deployed", "username": "bot", "icon_emoji": ":rocket:"},
            2,
        ),
        ActionRequest(
            "discord", "discord-send-message", {"channelId": "1234", "content": "hello", "embeds": [{"title": "t"}]}, 3
        ),
        ActionRequest("slack", "slack-send-message", {"text": "multi", "channel": "#x"}, 4),
    )


RUNTIME_SDK_PYTHON = """
    import cronium
    from cronium import cronium as sdk

    seen = {}
    seen["missing"] = cronium.get_variable("nope")
    cronium.set_variable("cfg", '{"a": 1}')
    seen["cfg"] = sdk.get_variable("cfg")
    seen["condition"] = cronium.set_condition("false")
    seen["condition_after"] = cronium.get_condition()
    event = cronium.event()
    seen["event"] = [event["eventId"], event["eventName"], event["eventType"], event["name"], event["userId"]]
    cronium.append_variable("log", "b", ",")
    cronium.appendVariable("items", {"n": 3})
    cronium.append_variable("counter", 1)
    seen["appended"] = [cronium.getVariable("log"), cronium.getVariable("items"), cronium.getVariable("counter")]
    seen["email"] = cronium.send_email("ops@example.com", "Nightly", "<b>done</b>", cc=["boss@example.com"])
    seen["slack"] = cronium.send_slack_message("#ops", "deployed", username="bot")
    seen["discord"] = cronium.send_discord_message("1234", "hello", embeds=[{"title": "t"}])
    seen["teams"] = cronium.execute_tool_action("Teams", "send_card", {"card": {"type": "AdaptiveCard"}})
    seen["camel"] = cronium.sendEmail(["a@example.com", "b@example.com"], "S", "B")
    for i in range(95):
        cronium.executeToolAction("webhook", "send", {"i": i})
    try:
        cronium.send_slack_message("#ops", "one too many")
    except cronium.CroniumError as exc:
        seen["refused"] = str(exc)
    print("seen=" + __import__("json").dumps(seen))
    cronium.output("all done")
"""


def test_runtime_sdk_generation_python(run_in_container: Any) -> None:
    """The Python runtime SDK, apps/runtime/runtime-helpers/python/cronium.py (at aef566a), with ``import cronium``.

    - get_variable of a missing key is None (:165-181; the 404 is caught at :178-180).
    - set_variable sends the value as it is (:183-191): a str that holds JSON stays a str.
    - set_condition("false") is False: Cronium's runtime API decodes ``{"condition": bool}``
      (apps/runtime/cronium-runtime/internal/handlers/handlers.go:165-171), so a string never became a
      true condition there; the words of Bash's cronium_set_condition (bash/cronium.sh:180-188) count.
      (The first generation's bool("false") was True: src/runtime-helpers/cronium.py:47 at 2473c9c.)
    - event() also carries the runtime context's names (eventId as a string, eventName, eventType:
      apps/runtime/cronium-runtime/pkg/types/types.go:8-16) beside the record's (id, name, type).
    - append_variable is the Bash helper's append (bash/cronium.sh:356-368); journaled as appends.
    - send_email(to, subject, body, **kwargs) puts ``to`` in a list (:239-255), send_slack_message
      (:257-271), send_discord_message with channelId (:273-287), execute_tool_action (:217-235) returns
      None: the data of the action's result, which the script cannot have here. At most 100 per run.
    """
    run = run_in_container("PYTHON", RUNTIME_SDK_PYTHON, event={**EVENT, "type": "PYTHON"}).ok()
    seen = json.loads(run.said()["seen"])
    assert seen == {
        "missing": None,
        "cfg": '{"a": 1}',
        "condition": False,
        "condition_after": False,
        "event": ["7", "nightly", "PYTHON", "nightly", "u1"],
        "appended": ["a,b", [1, 2, {"n": 3}], 411],
        "email": None,
        "slack": None,
        "discord": None,
        "teams": None,
        "camel": None,
        "refused": f"cronium: a run may ask for at most {MAX_ACTION_REQUESTS} tool actions",
    }
    results = run.results
    assert results.output == "all done"
    assert results.condition is False
    assert results.variable_changes == (
        set_("cfg", '{"a": 1}'),
        append("log", "b", ","),
        append("items", {"n": 3}),
        append("counter", 1),
    )
    requests = results.action_requests
    assert len(requests) == MAX_ACTION_REQUESTS
    assert requests[:5] == (
        ActionRequest(
            "email",
            "send-email",
            {"to": ["ops@example.com"], "subject": "Nightly", "body": "<b>done</b>", "cc": ["boss@example.com"]},
            1,
        ),
        ActionRequest("slack", "slack-send-message", {"channel": "#ops", "text": "deployed", "username": "bot"}, 2),
        ActionRequest(
            "discord", "discord-send-message", {"channelId": "1234", "content": "hello", "embeds": [{"title": "t"}]}, 3
        ),
        ActionRequest("teams", "send-card", {"card": {"type": "AdaptiveCard"}}, 4),
        ActionRequest(
            "email", "send-email", {"to": ["a@example.com", "b@example.com"], "subject": "S", "body": "B"}, 5
        ),
    )
    assert requests[-1] == ActionRequest("webhook", "send", {"i": 94}, MAX_ACTION_REQUESTS)


RUNTIME_SDK_NODEJS = """
    const sdk = require('cronium');
    const seen = {};
    seen.missing = await sdk.getVariable('nope');
    seen.globalMissing = cronium.getVariable('nope');
    seen.email = await sdk.sendEmail({
      to: 'ops@example.com', subject: 'Nightly', body: '<b>done</b>', cc: ['boss@example.com'],
    });
    seen.slack = await sdk.sendSlackMessage({ channel: '#ops', text: 'deployed', username: 'bot' });
    seen.discord = await sdk.sendDiscordMessage({ channelId: '1234', content: 'hello' });
    seen.tool = await sdk.executeToolAction('slack', 'send_message', { text: 'generic' });
    seen.positional = cronium.sendEmail('dev@example.com', 'S', 'B');
    cronium.appendVariable('log', 'b', ',');
    await sdk.appendVariable('items', 3);
    seen.appended = [cronium.getVariable('log'), cronium.getVariable('items')];
    seen.condition = cronium.setCondition('false');
    const event = (await sdk.event());
    seen.event = [event.eventId, event.eventName, event.eventType, event.name];
    seen.errors = new sdk.CroniumAPIError(404, 'x') instanceof sdk.CroniumError;
    console.log('seen=' + JSON.stringify(seen));
    await sdk.output('all done');
"""


def test_runtime_sdk_generation_nodejs(run_in_container: Any) -> None:
    """The Node.js runtime SDK, apps/runtime/runtime-helpers/nodejs/cronium.js (at aef566a), via require('cronium').

    - getVariable of a missing key is null (:216-229), also on the global synchronous ``cronium``.
    - sendEmail({to, subject, body, ...extras}) puts ``to`` in an array (:291-299); sendSlackMessage
      ({channel, text, ...}) (:306-313); sendDiscordMessage({channelId, content, ...}) (:320-327);
      executeToolAction(tool, action, config) resolves to null (``result?.data || null`` at :283, with no
      data). The positional form sendEmail(to, subject, body) is accepted too.
    - setCondition('false') is false (see the Python test: handlers.go:165-171).
    - event() carries eventId/eventName/eventType beside id/name/type (types.go:8-16).
    - CroniumError, CroniumAPIError are exported as at :353-355.
    """
    run = run_in_container("NODEJS", RUNTIME_SDK_NODEJS, event={**EVENT, "type": "NODEJS"}).ok()
    seen = json.loads(run.said()["seen"])
    assert seen == {
        "missing": None,
        "globalMissing": None,
        "email": None,
        "slack": None,
        "discord": None,
        "tool": None,
        "positional": None,
        "appended": ["a,b", [1, 2, 3]],
        "condition": False,
        "event": ["7", "nightly", "NODEJS", "nightly"],
        "errors": True,
    }
    results = run.results
    assert results.output == "all done"
    assert results.condition is False
    assert results.variable_changes == (append("log", "b", ","), append("items", 3))
    assert results.action_requests == (
        ActionRequest(
            "email",
            "send-email",
            {"to": ["ops@example.com"], "subject": "Nightly", "body": "<b>done</b>", "cc": ["boss@example.com"]},
            1,
        ),
        ActionRequest("slack", "slack-send-message", {"channel": "#ops", "text": "deployed", "username": "bot"}, 2),
        ActionRequest("discord", "discord-send-message", {"channelId": "1234", "content": "hello"}, 3),
        ActionRequest("slack", "slack-send-message", {"text": "generic"}, 4),
        ActionRequest("email", "send-email", {"to": ["dev@example.com"], "subject": "S", "body": "B"}, 5),
    )


SDK_CLASS_PYTHON = """
    sdk = cronium.Cronium()
    seen = {
        "input": sdk.input(),
        "greeting": sdk.get_variable("greeting"),
        "camel": sdk.getVariable("greeting"),
        "missing": sdk.get_variable("nope"),
        "event": sdk.event()["eventName"],
        "execution_id": sdk.execution_id,
        "condition": sdk.set_condition(False),
        "email": sdk.send_email("ops@example.com", "Nightly", "done"),
    }
    sdk.set_variable("from_class", {"n": 1})
    sdk.setVariable("camel_set", "x")
    for bad in ("bad key", "a..b", "k" * 101):
        try:
            sdk.set_variable(bad, 1)
        except ValueError as exc:
            seen.setdefault("refused", []).append(str(exc))
    seen["same"] = isinstance(sdk, __import__("cronium").Cronium)
    print("seen=" + __import__("json").dumps(seen))
    sdk.output("from the class")
"""


def test_runtime_sdk_class_python(run_in_container: Any) -> None:
    """``cronium.Cronium()``: Cronium's runtime SDK is a class (apps/runtime/runtime-helpers/python/cronium.py:43-287,
    at aef566a) whose module functions are its instance's methods (:422-435). An instance's methods behave as
    the module functions: input (:146-154), get_variable, None when missing (:165-181), set_variable (:183-191),
    set_condition (:193-200), event (:202-215), send_email (:239-255) as a request; ``execution_id`` is
    CRONIUM_EXECUTION_ID (:55). Keys are still checked by the naming rule: a refused key writes nothing.
    (Cronium's constructor raises without CRONIUM_EXECUTION_TOKEN, :57-60; here there is no token to need.)"""
    run = run_in_container(
        "PYTHON", SDK_CLASS_PYTHON, event={**EVENT, "type": "PYTHON"}, environment={"CRONIUM_EXECUTION_ID": "ex-9"}
    ).ok()
    seen = json.loads(run.said()["seen"])
    rule = "a key is 1 to 100 of A-Z a-z 0-9 _ . - with no '..'"
    assert seen == {
        "input": INPUT,
        "greeting": "hello",
        "camel": "hello",
        "missing": None,
        "event": "nightly",
        "execution_id": "ex-9",
        "condition": False,
        "email": None,
        "refused": [f"cronium: variable key {bad!r} is refused: {rule}" for bad in ("bad key", "a..b", "k" * 101)],
        "same": True,
    }
    results = run.results
    assert (results.output, results.condition) == ("from the class", False)
    assert results.variable_changes == (set_("from_class", {"n": 1}), set_("camel_set", "x"))
    assert results.action_requests == (
        ActionRequest("email", "send-email", {"to": ["ops@example.com"], "subject": "Nightly", "body": "done"}, 1),
    )


SDK_ASYNC_PYTHON = """
    import asyncio
    import json
    from cronium import AsyncCronium, Cronium

    async def main():
        seen = {}
        async with AsyncCronium() as cronium:
            pending = cronium.get_variable("greeting")
            seen["coroutine"] = asyncio.iscoroutine(pending)
            seen["greeting"] = await pending
            data = await cronium.input()
            seen["missing"] = await cronium.get_variable("nope")
            await cronium.set_variable("seen", "hi " + data["name"])
            await cronium.append_variable("log", "b", ",")
            try:
                await cronium.set_variable("no/slash", 1)
            except ValueError as exc:
                seen["refused"] = str(exc)
            seen["condition"] = await cronium.set_condition("false")
            seen["event"] = (await cronium.event())["eventId"]
            seen["slack"] = await cronium.send_slack_message("#ops", "deployed")
            seen["chunks"] = [chunk async for chunk in cronium.stream_input()]
            seen["is_client"] = isinstance(cronium, Cronium)
            print("seen=" + json.dumps(seen))

            async def parts():
                yield {"part": 1}
                yield {"part": 2}

            await cronium.stream_output(parts())

    asyncio.run(main())
"""


def test_runtime_sdk_async_context_manager_python(run_in_container: Any) -> None:
    """``async with AsyncCronium() as cronium: await cronium.input()`` as Cronium's SDK README documents it
    (apps/runtime/runtime-helpers/python/README.md:43-56, ``from cronium import AsyncCronium`` at :47; at
    aef566a). AsyncCronium (python/cronium.py:291-419) is a Cronium whose methods are coroutines (:360-394):
    a call returns a coroutine, awaiting it does what the module function does (same files, same key rule: a
    refused key raises where it is awaited and writes nothing); ``__aenter__``/``__aexit__`` (:354-358);
    ``stream_input`` yields the input once (:396-406) and ``stream_output`` makes the chunks, as a list, the
    output (:408-419). (Cronium's needs aiohttp, README.md:11-15, cronium.py:306; here nothing.)"""
    run = run_in_container("PYTHON", SDK_ASYNC_PYTHON, event={**EVENT, "type": "PYTHON"}).ok()
    seen = json.loads(run.said()["seen"])
    assert seen == {
        "coroutine": True,
        "greeting": "hello",
        "missing": None,
        "refused": "cronium: variable key 'no/slash' is refused: a key is 1 to 100 of A-Z a-z 0-9 _ . - with no '..'",
        "condition": False,
        "event": "7",
        "slack": None,
        "chunks": [INPUT],
        "is_client": True,
    }
    results = run.results
    assert (results.output, results.condition) == ([{"part": 1}, {"part": 2}], False)
    assert results.variable_changes == (set_("seen", "hi Ada"), append("log", "b", ","))
    assert results.action_requests == (
        ActionRequest("slack", "slack-send-message", {"channel": "#ops", "text": "deployed"}, 1),
    )


SDK_CLASS_NODEJS = """
    const { Cronium } = require('cronium');
    const cronium = new Cronium();
    const seen = { notPromises: [] };
    function promised(name, value) {
      if (!(value instanceof Promise)) seen.notPromises.push(name);
      return value;
    }
    seen.sameClass = require('cronium') === Cronium && require('cronium').default === Cronium;
    seen.executionId = cronium.executionId;
    const context = await promised('event', cronium.event());
    seen.context = [context.name, context.eventId];
    seen.input = await promised('input', cronium.input());
    seen.greeting = await promised('getVariable', cronium.getVariable('greeting'));
    seen.missing = await cronium.getVariable('nope');
    await promised('setVariable', cronium.setVariable('from_class', { n: 1 }));
    try {
      await cronium.setVariable('bad key', 1);
    } catch (error) {
      seen.refused = [error.name, error.message];
    }
    seen.condition = await promised('setCondition', cronium.setCondition(false));
    seen.sent = [
      await promised('sendEmail', cronium.sendEmail({ to: 'ops@example.com', subject: 'S', body: 'B' })),
      await promised('sendSlackMessage', cronium.sendSlackMessage({ channel: '#ops', text: 'T' })),
      await promised('sendDiscordMessage', cronium.sendDiscordMessage({ channelId: '12', content: 'C' })),
      await promised('executeToolAction', cronium.executeToolAction('webhook', 'post', { n: 1 })),
    ];
    console.log('seen=' + JSON.stringify(seen));
    await promised('output', cronium.output('from the class'));
    if (seen.notPromises.length) process.exit(3);
"""


def test_runtime_sdk_class_nodejs(run_in_container: Any) -> None:
    """``new Cronium()`` as Cronium's SDK README shows it (apps/runtime/runtime-helpers/nodejs/README.md:52-57,
    ``import Cronium from "cronium"; const cronium = new Cronium();``; at aef566a), the class taken as the
    typings name it: ``export declare class Cronium`` and ``export default Cronium`` (nodejs/cronium.d.ts:83,
    166), so a compiled script's ``require('cronium').Cronium`` and ``.default``. Every method returns a
    Promise (README.md:62; ``async`` methods at nodejs/cronium.js:192-327): input, output, getVariable (null
    when missing, :216-229), setVariable, setCondition, event (:262-268), executeToolAction, sendEmail,
    sendSlackMessage, sendDiscordMessage; ``executionId`` is CRONIUM_EXECUTION_ID (:51). A refused key is a
    rejection with CroniumError and writes nothing."""
    run = run_in_container(
        "NODEJS", SDK_CLASS_NODEJS, event={**EVENT, "type": "NODEJS"}, environment={"CRONIUM_EXECUTION_ID": "ex-9"}
    ).ok()
    seen = json.loads(run.said()["seen"])
    assert seen == {
        "notPromises": [],
        "sameClass": True,
        "executionId": "ex-9",
        "context": ["nightly", "7"],
        "input": INPUT,
        "greeting": "hello",
        "missing": None,
        "refused": [
            "CroniumError",
            "cronium: variable key 'bad key' is refused: a key is 1 to 100 of A-Z a-z 0-9 _ . - with no '..'",
        ],
        "condition": False,
        "sent": [None, None, None, None],
    }
    results = run.results
    assert (results.output, results.condition) == ("from the class", False)
    assert results.variable_changes == (set_("from_class", {"n": 1}),)
    assert results.action_requests == (
        ActionRequest("email", "send-email", {"to": ["ops@example.com"], "subject": "S", "body": "B"}, 1),
        ActionRequest("slack", "slack-send-message", {"channel": "#ops", "text": "T"}, 2),
        ActionRequest("discord", "discord-send-message", {"channelId": "12", "content": "C"}, 3),
        ActionRequest("webhook", "post", {"n": 1}, 4),
    )


def test_bash_json_text_reads_back_as_an_object_in_python_in_a_later_run(
    run_in_container: Any, airflow_variables: type[FakeVariables]
) -> None:
    """A JSON text given to Bash's cronium_set_variable is stored as JSON (bash/cronium.sh:166-170), so the
    next run, in Python, reads an object; the Bash run's appends are applied by the host to the stored
    values (VariableNamespace.apply), as cronium_append_variable does (bash/cronium.sh:356-368)."""
    namespace = VariableNamespace("cronium_")
    namespace.apply([set_(key, value) for key, value in VARIABLES.items()])
    first = run_in_container(
        "BASH",
        """
        set -eu
        cronium_set_variable cfg '{"retries": 3, "hosts": ["a", "b"]}'
        cronium_set_variable limit 10
        cronium_append_variable log b ,
        cronium_append_variable items 3
        cronium_append_variable fresh first
        """,
        variables=namespace.snapshot(),
    ).ok()
    # Another run appended to log meanwhile: both appends count.
    airflow_variables.store["cronium_log"] = json.dumps("a,other")
    namespace.apply(first.results.variable_changes)

    second = run_in_container(
        "PYTHON",
        """
        keys = ("cfg", "limit", "log", "items", "fresh")
        print("types=" + ",".join(type(cronium.getVariable(k)).__name__ for k in keys))
        cronium.output({k: cronium.get_variable(k) for k in keys})
        """,
        variables=namespace.snapshot(),
    ).ok()
    assert second.said()["types"] == "dict,int,str,list,str"
    assert second.results.output == {
        "cfg": {"retries": 3, "hosts": ["a", "b"]},
        "limit": 10,
        "log": "a,other,b",
        "items": [1, 2, 3],
        "fresh": "first",
    }


# --------------------------------------------------------------------------- the older generations


OLDER_GENERATIONS = {
    # The documented helpers: src/runtime-helpers/cronium.sh at 2473c9c (setVariable stores text: --arg at :79)
    # and the docs page (page.tsx:153-175); here a missing variable is status 1 (PROTOCOL.md).
    "BASH": r"""
        set -u
        cronium_setVariable raw '{"a": 1}'
        cronium_getVariable nope; echo "missing_status=$?"
        echo "greeting=$(cronium_getVariable greeting)"
        cronium_setCondition true
        echo 'plain words from the go runner' | cronium.output
        cronium.setVariable dotted "$(cronium.getVariable greeting) again"
    """,
    # src/runtime-helpers/cronium.py at 2473c9c: getVariable (:62-69), setCondition returns the bool (:44-56).
    "PYTHON": """
        seen = [cronium.getVariable("nope"), cronium.setCondition(1), cronium.getVariable("greeting")]
        cronium.setVariable("raw", '{"a": 1}')
        cronium.output(seen)
    """,
    # src/runtime-helpers/cronium.js at 2473c9c: the global instance, synchronous (:92-98).
    "NODEJS": """
        const seen = [cronium.getVariable('nope'), cronium.setCondition(1), cronium.getVariable('greeting')];
        cronium.setVariable('raw', '{"a": 1}');
        cronium.output(seen);
    """,
}


@pytest.mark.parametrize("language", ["BASH", "PYTHON", "NODEJS"])
def test_older_generations_keep_their_behaviour(run_in_container: Any, language: str) -> None:
    """The documented generation's names behave as before in every language: a JSON text given to
    setVariable stays a string (src/runtime-helpers/cronium.sh:79 at 2473c9c, ``jq --arg``). Bash's dotted
    names are the Go runner's executables: cronium.output reads stdin and keeps a text that is not JSON as a
    string (apps/runner/cronium-runner/cmd/helpers/output/main.go:30-32)."""
    run = run_in_container(language, OLDER_GENERATIONS[language]).ok()
    results = run.results
    assert results.condition is True
    if language == "BASH":
        assert run.said() == {"missing_status": "1", "greeting": "hello"}
        assert results.output == "plain words from the go runner\n"
        assert results.variable_changes == (set_("raw", '{"a": 1}'), set_("dotted", "hello again"))
    else:
        assert results.output == [None, True, "hello"]
        assert results.variable_changes == (set_("raw", '{"a": 1}'),)


# --------------------------------------------------------------------------- host side, no container


def actions(*lines: Any) -> bytes:
    return b"".join((line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines)


def test_action_requests_are_normalised_in_call_order() -> None:
    data = actions(
        {"tool": "Slack", "action": "send_message", "config": {"text": "a"}},
        b"",
        {"tool": "email", "action": "send_message", "config": {"to": ["x@example.com"]}},
        {"tool": "discord", "action": "discord-send-message", "config": {"content": "c"}},
        {"tool": "teams", "action": "send_card", "config": {"card": {}}},
        {"tool": "notion", "action": "create-page", "config": {}},
    )
    assert read_results({"actions.jsonl": data}).action_requests == (
        ActionRequest("slack", "slack-send-message", {"text": "a"}, 1),
        ActionRequest("email", "send-email", {"to": ["x@example.com"]}, 3),
        ActionRequest("discord", "discord-send-message", {"content": "c"}, 4),
        ActionRequest("teams", "send-card", {"card": {}}, 5),
        ActionRequest("notion", "create-page", {}, 6),
    )
    assert normalise_action(" EMAIL ", "sendEmail") == ("email", "send-email")
    assert normalise_action("webhook", "Post_It") == ("webhook", "Post_It")


@pytest.mark.parametrize(
    ("data", "line", "reason"),
    [
        (b'{"tool":"slack","action":"x","config":{}}\n{"tool":\n', 2, "not valid JSON"),
        (b'["slack","x",{}]\n', 1, "expected an object"),
        (b'{"tool":"","action":"x","config":{}}\n', 1, '"tool" and "action" must be non-empty strings'),
        (b'{"tool":"slack","action":"x","config":"text"}\n', 1, '"config" must be an object'),
        (b'{"tool":"slack","action":"x"}\n', 1, '"config" must be an object'),
        (b'{"tool":"slack","action":"x","config":{"n":NaN}}\n', 1, "not valid JSON"),
    ],
)
def test_a_malformed_action_request_names_the_file_and_line(data: bytes, line: int, reason: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        read_results({"actions.jsonl": data})
    assert (caught.value.filename, caught.value.line) == ("actions.jsonl", line)
    assert str(caught.value).startswith(f"actions.jsonl line {line}: {reason}")


def test_action_requests_are_capped_and_an_interrupted_last_line_does_not_count() -> None:
    request = {"tool": "slack", "action": "slack-send-message", "config": {"text": "x"}}
    full = actions(*[request] * MAX_ACTION_REQUESTS)
    assert len(read_results({"actions.jsonl": full + b'{"tool":"sla'}).action_requests) == MAX_ACTION_REQUESTS
    with pytest.raises(ProtocolError) as caught:
        read_results({"actions.jsonl": full + actions(request)})
    assert caught.value.line == MAX_ACTION_REQUESTS + 1
    assert f"more than {MAX_ACTION_REQUESTS} tool action requests" in str(caught.value)


def test_journal_folds_appends_onto_what_the_run_set() -> None:
    log = (
        b'{"op":"append","key":"a","text":"x","separator":","}\n'
        b'{"op":"set","key":"b","text":"[1]"}\n'
        b'{"op":"append","key":"b","text":"{\\"n\\":2}"}\n'
        b'{"op":"delete","key":"c"}\n'
        b'{"op":"append","key":"c","value":"first"}\n'
        b'{"op":"append","key":"a","value":"y","separator":","}\n'
        b'{"op":"set","key":"d","text":"NaN"}\n'
        b'{"op":"set","key":"e","text":"  {\\"a\\": 1}\\n"}\n'
    )
    assert read_results({"variables.log": log}).variable_changes == (
        append("a", "x", ","),
        append("a", "y", ","),
        set_("b", [1, {"n": 2}]),
        set_("c", "first"),
        set_("d", "NaN"),
        set_("e", {"a": 1}),
    )
    with pytest.raises(ProtocolError, match=r'^variables.log line 1: a "append" without a value'):
        read_results({"variables.log": b'{"op":"append","key":"a"}\n'})
    with pytest.raises(ProtocolError, match=r"^variables.log line 1: an append's separator must be a string"):
        read_results({"variables.log": b'{"op":"append","key":"a","value":1,"separator":2}\n'})


def test_output_text_is_json_when_it_is_json_and_output_json_wins() -> None:
    assert read_results({"output.txt": b"all done"}).output == "all done"
    assert read_results({"output.txt": b' {"a": [1]}\n'}).output == {"a": [1]}
    assert read_results({"output.txt": b"  \n"}).has_output is False
    assert read_results({"output.txt": b"x", "output.json": b"[1]"}).output == [1]
    assert read_results({"output.txt": b"x", "output.json": b""}).output == "x"


def test_appending(airflow_variables: type[FakeVariables]) -> None:
    """cronium_append_variable (bash/cronium.sh:356-368): an empty current value (missing, null, "") takes the
    appended value; otherwise the texts are joined and the result kept as JSON when it is JSON text."""
    assert appended(MISSING, "v") == "v"
    assert appended(None, {"a": 1}) == {"a": 1}
    assert appended("", "v", ",") == "v"
    assert appended("a", "b", "\n") == "a\nb"
    assert appended(1, 2) == 12
    assert appended({"a": 1}, "x") == '{"a":1}x'
    assert appended([1], [2]) == [1, [2]]

    namespace = VariableNamespace("cronium_")
    airflow_variables.store.update({"cronium_log": '"a"', "cronium_list": "[1]", "cronium_raw": "set by hand"})
    lines = namespace.apply(
        [append("log", "b", ", "), append("list", 2), append("raw", "!"), append("new", [1]), append("new", 2)]
    )
    assert lines == [f"appended to cronium_{key}" for key in ("log", "list", "raw", "new", "new")]
    assert {k: json.loads(v) for k, v in airflow_variables.store.items()} == {
        "cronium_log": "a, b",
        "cronium_list": [1, 2],
        "cronium_raw": "set by hand!",
        "cronium_new": [1, 2],
    }
