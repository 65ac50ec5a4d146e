"""Cronium runtime helpers for Python scripts.

The bootstrap (``cronium_run.py``) imports this module and publishes it as the
builtin ``cronium``, so scripts call ``cronium.input()`` and friends with no
import; ``import cronium`` returns the same module. Everything goes through
files in the run folder (``CRONIUM_RUN_DIR``); see ``runtime_helpers/PROTOCOL.md``.

The names of every Cronium generation are here: the documented camelCase API
(``getVariable``...), the snake_case names of Cronium's runtime SDK
(``get_variable``, ``execute_tool_action``, ``send_email``...),
``from cronium import cronium``, and the SDK's classes: ``cronium.Cronium()``,
whose methods are these functions, and ``AsyncCronium`` (``async with
AsyncCronium() as cronium: await cronium.input()``), whose methods are them as
coroutines.

Only the standard library is used, and the code runs on Python 3.6+ so it works
on whatever interpreter a remote server has.
"""

import json
import os
import re
import sys
from typing import Any, AsyncIterator, Callable, Dict, List, Optional

__all__ = [
    "AsyncCronium",
    "Cronium",
    "CroniumAPIError",
    "CroniumError",
    "CroniumTimeoutError",
    "appendVariable",
    "append_variable",
    "deleteVariable",
    "delete_variable",
    "event",
    "executeToolAction",
    "execute_tool_action",
    "getCondition",
    "getVariable",
    "get_condition",
    "get_variable",
    "input",
    "output",
    "sendDiscordMessage",
    "sendEmail",
    "sendSlackMessage",
    "send_discord_message",
    "send_email",
    "send_slack_message",
    "setCondition",
    "setVariable",
    "set_condition",
    "set_variable",
]

# Keep in step with cronium_provider/runners/protocol.py (MAX_ACTION_REQUESTS, normalise_action).
_ACTIONS_FILE = "actions.jsonl"
_MAX_ACTION_REQUESTS = 100
_SEND_ACTION = {"slack": "slack-send-message", "discord": "discord-send-message", "email": "send-email"}
_SEND_ALIASES = ("send", "send-message", "sendmessage", "message", "send-email", "sendemail")
# Keep in step with cronium_provider/naming.py (variable_key_problem).
_KEY = re.compile(r"[A-Za-z0-9_.-]{1,100}\Z")
_KEY_RULE = "a key is 1 to 100 of A-Z a-z 0-9 _ . - with no '..'"
_TRUE_WORDS = ("true", "1", "yes", "on")
_FALSE_WORDS = ("false", "0", "no", "off")


class CroniumError(Exception):
    """Base of the errors of Cronium's runtime SDK (the names scripts may catch)."""


class CroniumAPIError(CroniumError):
    """Kept for scripts that catch it; with the file protocol there is no API to fail."""

    def __init__(self, status_code: int, message: str) -> None:
        self.status_code = status_code
        self.message = message
        super().__init__("API Error (%s): %s" % (status_code, message))


class CroniumTimeoutError(CroniumError):
    """Kept for scripts that catch it; with the file protocol nothing times out."""


def _run_dir() -> str:
    """The run folder: ``CRONIUM_RUN_DIR``, else two levels above this file."""
    configured = os.environ.get("CRONIUM_RUN_DIR")
    if configured:
        return configured
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.dirname(os.path.dirname(here))


def _path(name: str) -> str:
    return os.path.join(_run_dir(), name)


def _read_json(name: str, default: Any) -> Any:
    """Parse a JSON file of the run folder; ``default`` when missing or empty."""
    try:
        with open(_path(name), "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return default
    text = data.decode("utf-8-sig")
    if not text.strip():
        return default
    return json.loads(text)


def _to_json(value: Any, what: str) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise type(exc)("cronium: %s is not JSON-serializable: %s" % (what, exc)) from None


def _write_atomic(name: str, text: str) -> None:
    """Write a file of the run folder through a temporary file and a rename."""
    final = _path(name)
    temporary = "%s.tmp-%d" % (final, os.getpid())
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, final)


def _append_line(name: str, entry: Dict[str, Any], what: str) -> None:
    """Append one JSON line to a file of the run folder with a single O_APPEND write."""
    line = (_to_json(entry, what) + "\n").encode("utf-8")
    fd = os.open(_path(name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(line)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    finally:
        os.close(fd)


def _journal(entry: Dict[str, Any]) -> None:
    _append_line("variables.log", entry, "the variable value")


def _check_key(key: Any) -> str:
    """A Cronium key: 1 to 100 of A-Z a-z 0-9 _ . - with no '..' (the host checks the journal again)."""
    if not isinstance(key, str):
        raise TypeError("cronium: a variable key must be a str, not %s" % type(key).__name__)
    if not _KEY.match(key) or ".." in key:
        raise ValueError("cronium: variable key %r is refused: %s" % (key, _KEY_RULE))
    return key


def _variables() -> Dict[str, Any]:
    data = _read_json("variables.json", {})
    return data if isinstance(data, dict) else {}


def _store_variables(variables: Dict[str, Any]) -> None:
    _write_atomic("variables.json", _to_json(variables, "the variables"))


def _text_form(value: Any) -> str:
    return value if isinstance(value, str) else _to_json(value, "the variable value")


def _json_or_text(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(name)

    try:
        return json.loads(text, parse_constant=refuse)
    except ValueError:
        return text


def _appended(variables: Dict[str, Any], key: str, value: Any, separator: str) -> Any:
    """What the host's protocol.appended computes, on this run's view of the variables."""
    current = variables.get(key)
    if key not in variables or current is None or current == "":
        return value
    if isinstance(current, list):
        return [*current, value]
    return _json_or_text(_text_form(current) + separator + _text_form(value))


# ------------------------------------------------------------------ documented API


def input() -> Any:
    """The run's input (any JSON value; ``{}`` when the run has none)."""
    return _read_json("input.json", {})


def output(data: Any) -> None:
    """Make ``data`` (any JSON-serializable value) the run's output."""
    _write_atomic("output.json", _to_json(data, "the output"))


def event() -> Any:
    """The event's metadata (``id``, ``name``, ``type``, ...).

    Also under the names of Cronium's runtime context (``eventId`` as a string, ``eventName``,
    ``eventType``; ``executionId`` when the host or ``CRONIUM_EXECUTION_ID`` gives one).
    """
    data = _read_json("event.json", {})
    if not isinstance(data, dict):
        return data
    for alias, source in (("eventId", "id"), ("eventName", "name"), ("eventType", "type")):
        if alias not in data and data.get(source) is not None:
            data[alias] = str(data[source]) if alias == "eventId" else data[source]
    execution_id = os.environ.get("CRONIUM_EXECUTION_ID")
    if "executionId" not in data and execution_id:
        data["executionId"] = execution_id
    return data


def getVariable(key: str) -> Any:
    """The value of variable ``key``, or ``None`` when it does not exist."""
    return _variables().get(_check_key(key))


def setVariable(key: str, value: Any) -> None:
    """Set variable ``key`` to ``value`` (any JSON-serializable value; a str is stored as a str)."""
    _check_key(key)
    _journal({"op": "set", "key": key, "value": value})
    variables = _variables()
    variables[key] = value
    _store_variables(variables)


def deleteVariable(key: str) -> None:
    """Delete variable ``key`` (nothing happens when it does not exist)."""
    _check_key(key)
    _journal({"op": "delete", "key": key})
    variables = _variables()
    if key in variables:
        del variables[key]
        _store_variables(variables)


def appendVariable(key: str, value: Any, separator: str = "") -> None:
    """Append ``value`` to variable ``key``, as Bash's ``cronium_append_variable KEY VALUE [SEP]``.

    A missing, null or empty variable becomes ``value``; a list gets ``value`` as a new element; any other
    value is joined as text with ``separator`` (stored as JSON when the result is JSON text, as Cronium
    does). The host applies the append to the variable as it is when the run ends.
    """
    _check_key(key)
    if not isinstance(separator, str):
        raise TypeError("cronium: the separator must be a str, not %s" % type(separator).__name__)
    _journal({"op": "append", "key": key, "value": value, "separator": separator})
    variables = _variables()
    variables[key] = _appended(variables, key, value, separator)
    _store_variables(variables)


def _condition(value: Any) -> bool:
    """The words Bash's cronium_set_condition takes count for strings; anything else by truthiness."""
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    return bool(value)


def setCondition(condition: Any) -> bool:
    """Set the condition that decides whether the event's condition actions run; returns it as a bool.

    ``"false"``, ``"0"``, ``"no"`` and ``"off"`` (any case) are false.
    """
    value = _condition(condition)
    _write_atomic("condition.json", _to_json({"condition": value}, "the condition"))
    return value


def getCondition() -> bool:
    """The condition set by this run; ``False`` when it was never set."""
    data = _read_json("condition.json", None)
    if isinstance(data, dict) and isinstance(data.get("condition"), bool):
        return bool(data["condition"])
    return False


# ------------------------------------------------------------------ tool actions


def execute_tool_action(tool: str, action: str, config: Optional[Dict[str, Any]] = None) -> Any:
    """Ask for tool action ``action`` of ``tool`` with ``config``; the host carries it out after the run.

    The request is appended to ``actions.jsonl``; at most 100 per run. The script cannot see the action's
    result: this returns None, what Cronium's SDK returns for an action that answered no data.
    """
    if not isinstance(tool, str) or not tool.strip():
        raise ValueError("cronium: the tool must be a non-empty str")
    if not isinstance(action, str) or not action.strip():
        raise ValueError("cronium: the action must be a non-empty str")
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise TypeError("cronium: the tool action config must be a dict, not %s" % type(config).__name__)
    tool_id = tool.strip().lower()
    action_id = action.strip()
    if tool_id in _SEND_ACTION and action_id.lower().replace("_", "-") in _SEND_ALIASES:
        action_id = _SEND_ACTION[tool_id]
    try:
        with open(_path(_ACTIONS_FILE), "rb") as handle:
            count = sum(1 for line in handle if line.strip())
    except FileNotFoundError:
        count = 0
    if count >= _MAX_ACTION_REQUESTS:
        raise CroniumError("cronium: a run may ask for at most %d tool actions" % _MAX_ACTION_REQUESTS)
    _append_line(_ACTIONS_FILE, {"tool": tool_id, "action": action_id, "config": config}, "the tool action config")
    return None


def send_email(to: Any, subject: str, body: str, **kwargs: Any) -> Any:
    """Ask for an email (``to``: one address or a list; ``body`` may be HTML; ``cc``, ``bcc``... as keywords)."""
    recipients = list(to) if isinstance(to, (list, tuple)) else [to]
    config = {"to": recipients, "subject": subject, "body": body}
    config.update(kwargs)
    return execute_tool_action("email", "send_message", config)


def send_slack_message(channel: str, text: str, **kwargs: Any) -> Any:
    """Ask for a Slack message (``username``, ``icon_emoji``, ``blocks``... as keywords)."""
    config = {"channel": channel, "text": text}
    config.update(kwargs)
    return execute_tool_action("slack", "send_message", config)


def send_discord_message(channel_id: str, content: str, **kwargs: Any) -> Any:
    """Ask for a Discord message (``embeds``, ``username``... as keywords)."""
    config = {"channelId": channel_id, "content": content}
    config.update(kwargs)
    return execute_tool_action("discord", "send_message", config)


# Names used by other Cronium generations.
get_variable = getVariable
set_variable = setVariable
delete_variable = deleteVariable
append_variable = appendVariable
set_condition = setCondition
get_condition = getCondition
executeToolAction = execute_tool_action
sendEmail = send_email
sendSlackMessage = send_slack_message
sendDiscordMessage = send_discord_message

# `from cronium import cronium` (older generations exported an instance).
cronium = sys.modules[__name__]

# The functions, under every name, that the SDK's classes carry as methods.
_FUNCTIONS = [name for name in __all__ if name[0].islower()]


class Cronium(object):
    """Cronium's runtime SDK client, ``cronium.Cronium()``: its methods are this module's functions (same
    files, same key rules). ``execution_id`` is ``CRONIUM_EXECUTION_ID`` (None when unset); nothing here
    needs a token or an API, so the constructor never fails."""

    def __init__(self) -> None:
        self.execution_id = os.environ.get("CRONIUM_EXECUTION_ID")


for _name in _FUNCTIONS:
    setattr(Cronium, _name, staticmethod(globals()[_name]))


def _coroutine(function: Callable[..., Any]) -> Callable[..., Any]:
    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    method.__name__ = function.__name__
    method.__doc__ = function.__doc__
    return method


class AsyncCronium(Cronium):
    """The SDK's asyncio client: ``async with AsyncCronium() as cronium: data = await cronium.input()``.
    Every method is the module function of that name as a coroutine (errors are raised where it is awaited);
    no session is opened, so ``close()`` has nothing to close."""

    async def __aenter__(self) -> "AsyncCronium":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    async def close(self) -> None:
        """Nothing to close: the helpers keep no connection."""

    async def stream_input(self) -> AsyncIterator[Any]:
        """The input as one chunk (none when it is empty), as the SDK yields it."""
        data = await self.input()  # type: ignore[misc]
        if data:
            yield data

    async def stream_output(self, data_iterator: AsyncIterator[Any]) -> None:
        """Make the chunks ``data_iterator`` yields, as a list, the run's output."""
        chunks: List[Any] = [chunk async for chunk in data_iterator]
        await self.output(chunks)  # type: ignore[misc]


for _name in _FUNCTIONS:
    setattr(AsyncCronium, _name, _coroutine(globals()[_name]))
del _name
