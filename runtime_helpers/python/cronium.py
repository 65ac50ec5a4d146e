"""Cronium runtime helpers for Python scripts.

The bootstrap (``cronium_run.py``) imports this module and publishes it as the
builtin ``cronium``, so scripts call ``cronium.input()`` and friends with no
import; ``import cronium`` returns the same module. Everything goes through
files in the run folder (``CRONIUM_RUN_DIR``); see ``runtime_helpers/PROTOCOL.md``.

Only the standard library is used, and the code runs on Python 3.6+ so it works
on whatever interpreter a remote server has.
"""

import json
import os
import sys
from typing import Any, Dict

__all__ = [
    "deleteVariable",
    "delete_variable",
    "event",
    "getCondition",
    "getVariable",
    "get_condition",
    "get_variable",
    "input",
    "output",
    "setCondition",
    "setVariable",
    "set_condition",
    "set_variable",
]


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


def _journal(entry: Dict[str, Any]) -> None:
    """Append one line to variables.log with a single O_APPEND write."""
    line = (_to_json(entry, "the variable value") + "\n").encode("utf-8")
    fd = os.open(_path("variables.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(line)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    finally:
        os.close(fd)


def _check_key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError("cronium: a variable key must be a str, not %s" % type(key).__name__)
    if not key:
        raise ValueError("cronium: a variable key must not be empty")
    return key


def _variables() -> Dict[str, Any]:
    data = _read_json("variables.json", {})
    return data if isinstance(data, dict) else {}


def input() -> Any:
    """The run's input (any JSON value; ``{}`` when the run has none)."""
    return _read_json("input.json", {})


def output(data: Any) -> None:
    """Make ``data`` (any JSON-serializable value) the run's output."""
    _write_atomic("output.json", _to_json(data, "the output"))


def event() -> Any:
    """The event's metadata (``id``, ``name``, ``type``, ...)."""
    return _read_json("event.json", {})


def getVariable(key: str) -> Any:
    """The value of variable ``key``, or ``None`` when it does not exist."""
    return _variables().get(_check_key(key))


def setVariable(key: str, value: Any) -> None:
    """Set variable ``key`` to ``value`` (any JSON-serializable value)."""
    _check_key(key)
    _journal({"op": "set", "key": key, "value": value})
    variables = _variables()
    variables[key] = value
    _write_atomic("variables.json", _to_json(variables, "the variables"))


def deleteVariable(key: str) -> None:
    """Delete variable ``key`` (nothing happens when it does not exist)."""
    _check_key(key)
    _journal({"op": "delete", "key": key})
    variables = _variables()
    if key in variables:
        del variables[key]
        _write_atomic("variables.json", _to_json(variables, "the variables"))


def setCondition(condition: Any) -> bool:
    """Set the condition that decides whether the event's condition actions run."""
    value = bool(condition)
    _write_atomic("condition.json", _to_json({"condition": value}, "the condition"))
    return value


def getCondition() -> bool:
    """The condition set by this run; ``False`` when it was never set."""
    data = _read_json("condition.json", None)
    if isinstance(data, dict) and isinstance(data.get("condition"), bool):
        return bool(data["condition"])
    return False


# Names used by other Cronium generations.
get_variable = getVariable
set_variable = setVariable
delete_variable = deleteVariable
set_condition = setCondition
get_condition = getCondition

# `from cronium import cronium` (older generations exported an instance).
cronium = sys.modules[__name__]
