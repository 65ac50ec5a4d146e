"""The file protocol between a Cronium script run and its host.

A run happens in a folder (the script sees its path as ``CRONIUM_RUN_DIR``). Before the run the host
writes the script, a copy of the runtime helpers for its language and the run's data (:func:`build_run_files`,
:func:`write_run_folder`); the script runs with :func:`script_command` and :func:`script_environment`; after
it exits the host collects :data:`RESULT_FILES` and parses them with :func:`read_results`. The full contract is
``runtime_helpers/PROTOCOL.md``.

Nothing here runs a process: the runners (container, SSH) move the bytes.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import io
import json
import re
import tarfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Final, Literal

from cronium_provider.exceptions import ProtocolError
from cronium_provider.naming import variable_key_problem
from cronium_provider.tools.catalogue import DEFAULT_ACTION, SUPPORTED

__all__ = [
    "ACTIONS_FILE",
    "LANGUAGES",
    "MAX_ACTION_REQUESTS",
    "MISSING",
    "RESULT_FILES",
    "ActionRequest",
    "ProtocolError",
    "RefusedVariableKeys",
    "ScriptResults",
    "VariableChange",
    "appended",
    "build_run_files",
    "collect_result_files",
    "event_context",
    "helpers_root",
    "incremented",
    "json_or_text",
    "normalise_action",
    "read_results",
    "run_folder_tar",
    "script_command",
    "script_environment",
    "write_run_folder",
]

LANGUAGES: Final = ("BASH", "PYTHON", "NODEJS")
"""Script languages, as Cronium's event ``type`` spells them."""

ACTIONS_FILE: Final = "actions.jsonl"
"""Tool actions the script asked for (``execute_tool_action``, ``send_email``...), one JSON object a line."""

RESULT_FILES: Final = ("output.json", "condition.json", "variables.log", "output.txt", ACTIONS_FILE)
"""Files the script may write, relative to the run folder; any of them may be missing."""

MAX_ACTION_REQUESTS: Final = 100
"""At most this many tool action requests per run; the helpers refuse more, the host rejects a longer file."""

_SCRIPT_FILE: Final = {"BASH": "script.sh", "PYTHON": "script.py", "NODEJS": "script.js"}
_HELPER_DIR: Final = {"BASH": "bash", "PYTHON": "python", "NODEJS": "nodejs"}
_HELPER_SUFFIX: Final = {"BASH": ".sh", "PYTHON": ".py", "NODEJS": ".js"}
_MAX_HEX_KEY_BYTES: Final = 120  # longer keys get a hashed name: 2 * 120 hex digits stays under NAME_MAX
_SNIPPET_CHARS: Final = 60
_MAX_EVENT_FIELDS: Final = 500  # event.d/ files of a Bash run (cronium_event_field)
_MAX_EVENT_DEPTH: Final = 6
_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Action names that mean "the tool's one sending action": Cronium's SDK sends "send_message" for all three
# of slack, discord and email (apps/runtime/runtime-helpers/python/cronium.py:255,271,287).
_SEND_ALIASES: Final = frozenset({"send", "send-message", "sendmessage", "message", "send-email", "sendemail"})


class _Missing:
    """The value of a variable that does not exist (``MISSING``), as opposed to one holding ``null``."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


@dataclass(frozen=True)
class VariableChange:
    """One variable change of a run.

    ``set`` to ``value``; ``delete`` (``value`` is then None); ``append`` ``value`` to what the variable
    holds when the host applies it (see :func:`appended`; ``separator`` joins text), and ``increment`` it
    by ``value`` (an integer), so that two runs appending or incrementing at once both count.
    """

    op: Literal["set", "delete", "append", "increment"]
    key: str
    value: Any = None
    separator: str = ""


@dataclass(frozen=True)
class ActionRequest:
    """A tool action the script asked for; the host carries it out after the script ended.

    ``tool`` is the tool type (``slack``, ``discord``, ``email``, ...) and ``action`` the provider's action
    id (``slack-send-message``, ``discord-send-message``, ``send-email``; see :func:`normalise_action`);
    ``config`` the action's parameters as the script gave them; ``line`` the line of ``actions.jsonl``.
    """

    tool: str
    action: str
    config: dict[str, Any]
    line: int


@dataclass(frozen=True)
class ScriptResults:
    """What a run produced.

    ``output`` is what ``cronium.output()`` received (``has_output`` tells an output of ``null`` from no
    output at all); ``condition`` is None when the script never set one; ``variable_changes`` holds the
    final change per key, in the order the keys were first changed (a key the run only appended to keeps
    its appends, in order); ``action_requests`` the tool actions asked for, in call order.
    """

    output: Any
    has_output: bool
    condition: bool | None
    variable_changes: tuple[VariableChange, ...]
    action_requests: tuple[ActionRequest, ...] = ()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_or_text(text: str) -> Any:
    """``text`` as the JSON value it spells, else ``text`` itself.

    What Cronium's Bash SDK does with a value it is given as text (``cronium_set_variable``,
    ``cronium_output``: apps/runtime/runtime-helpers/bash/cronium.sh:136-140, 166-170, "if not valid JSON,
    wrap as string"); NaN and Infinity are not JSON here.
    """
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):  # not JSON, or beyond what Python decodes (see _undecodable)
        return text


def _text_form(value: Any) -> str:
    """A value as Bash sees it: a string as is, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def appended(current: Any, value: Any, separator: str = "") -> Any:
    """The value of a variable holding ``current`` (:data:`MISSING` when it does not exist) after appending
    ``value``.

    As Cronium's ``cronium_append_variable KEY VALUE [SEP]`` (apps/runtime/runtime-helpers/bash/
    cronium.sh:357-368): a missing, null or empty variable becomes ``value``; otherwise the text forms are
    joined with ``separator`` and the result stored as JSON when it is JSON text, else as a string. A list
    gets ``value`` as a new element instead (Cronium would join the list's JSON text, which is never meant).
    """
    if current is MISSING or current is None or current == "":
        return value
    if isinstance(current, list):
        return [*current, value]
    return json_or_text(_text_form(current) + separator + _text_form(value))


def event_context(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event's facts plus the field names of Cronium's newest runtime context.

    The runtime API answers ``event()`` with ``executionId, eventId, eventName, eventType, userId, startTime,
    metadata`` (apps/runtime/cronium-runtime/pkg/types/types.go:8-16; ids are strings there); the older
    generations with the event record (``id``, ``name``, ``type``...). Both names are offered; a field the
    event already has is kept.
    """
    context = dict(event)
    aliases = (("eventId", "id"), ("eventName", "name"), ("eventType", "type"))
    for alias, source in aliases:
        if alias not in context and context.get(source) is not None:
            value = context[source]
            context[alias] = str(value) if alias == "eventId" else value
    return context


def normalise_action(tool: str, action: str) -> tuple[str, str]:
    """Tool type and action id as the provider spells them.

    ``slack``/``send_message`` -> ``slack``/``slack-send-message``, ``discord`` -> ``discord-send-message``,
    ``email`` -> ``send-email`` (Cronium's SDK names every sending action ``send_message``); an id the tool
    already has is kept (``send_card`` -> ``send-card``); anything else is left as written, for the
    operator to refuse with the list of what the tool supports.
    """
    tool_id = tool.strip().lower()
    written = action.strip()
    candidate = written.lower().replace("_", "-")
    if candidate in SUPPORTED.get(tool_id, ()):
        return tool_id, candidate
    if tool_id in DEFAULT_ACTION and candidate in _SEND_ALIASES:
        return tool_id, DEFAULT_ACTION[tool_id]
    return tool_id, written


def helpers_root() -> Path:
    """The ``runtime_helpers`` folder: next to the package in a checkout, else the installed package data."""
    beside = Path(__file__).resolve().parents[2] / "runtime_helpers"
    if beside.is_dir():
        return beside
    try:
        installed = Path(str(importlib.resources.files("runtime_helpers")))
    except ModuleNotFoundError as exc:
        raise FileNotFoundError("the runtime_helpers package is neither beside cronium_provider nor installed") from exc
    if not installed.is_dir():
        raise FileNotFoundError(f"runtime_helpers is not a folder on disk: {installed}")
    return installed


def _language(language: str) -> str:
    normalized = language.upper()
    if normalized not in LANGUAGES:
        raise ValueError(f"language {language!r} is not one of {', '.join(LANGUAGES)}")
    return normalized


def _json_bytes(value: Any, filename: str) -> bytes:
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{filename}: the value is not JSON-serializable ({exc})") from exc
    return (text + "\n").encode("utf-8")


def _variable_file_name(key: str) -> str:
    """``variables.d/`` name of a key: hex of its UTF-8 bytes, or ``sha256-<digest>`` for keys over 120 bytes."""
    raw = key.encode("utf-8")
    if len(raw) > _MAX_HEX_KEY_BYTES:
        return "sha256-" + hashlib.sha256(raw).hexdigest()
    return raw.hex()


def _variable_text(value: Any) -> bytes:
    """What Bash's ``cronium_getVariable`` prints: a string as is, any other value as compact JSON."""
    if isinstance(value, str):
        return value.encode("utf-8")
    return _json_bytes(value, "variables.d")[:-1]


def build_run_files(
    language: str,
    script: str,
    *,
    input: Any,
    event: Mapping[str, Any],
    variables: Mapping[str, Any],
) -> dict[str, bytes]:
    """Every file of a run folder, as relative POSIX path -> content.

    That is the script, ``helpers/<language>/`` (the helper files of that language only), ``input.json``
    (``{}`` when ``input`` is None), ``event.json``, ``variables.json`` and, for Bash, ``variables.d/`` and
    ``event.d/`` (what ``cronium_event_field`` prints, see :func:`_event_field_files`).
    Raises ValueError for an unknown language, an empty or non-string variable key, or a value that is not
    JSON-serializable (the message names the file).
    """
    lang = _language(language)
    for key in variables:
        if not isinstance(key, str) or not key:
            raise ValueError(f"variables.json: variable keys must be non-empty strings, got {key!r}")

    files: dict[str, bytes] = {_SCRIPT_FILE[lang]: script.encode("utf-8")}
    folder = helpers_root() / _HELPER_DIR[lang]
    for helper in sorted(folder.iterdir()):
        if helper.is_file() and helper.suffix == _HELPER_SUFFIX[lang]:
            files[f"helpers/{_HELPER_DIR[lang]}/{helper.name}"] = helper.read_bytes()
    files["input.json"] = _json_bytes({} if input is None else input, "input.json")
    files["event.json"] = _json_bytes(dict(event), "event.json")
    files["variables.json"] = _json_bytes(dict(variables), "variables.json")
    if lang == "BASH":
        for key, value in variables.items():
            files[f"variables.d/{_variable_file_name(key)}"] = _variable_text(value)
        for path, text in _event_field_files(event).items():
            files[f"event.d/{path.encode('utf-8').hex()}"] = text
    return files


def _event_field_files(event: Mapping[str, Any]) -> dict[str, bytes]:
    """Field path -> text, for Bash's ``cronium_event_field FIELD``.

    Cronium's helper prints ``jq -r ".$FIELD // empty"`` of the event (apps/runtime/runtime-helpers/bash/
    cronium.sh:205-209), so a field is a jq path: ``name``, ``server.name``, ``tags[0]``. Bash has no JSON
    parser, so the host writes one file per path (names that are identifiers only, at most 6 levels and 500
    paths; a path of more than 120 bytes is left out): a string as is, other values as compact JSON, a
    null field no file (it prints nothing, as ``// empty`` does).
    """
    found: dict[str, bytes] = {}

    def walk(value: Any, path: str, depth: int) -> None:
        if len(found) >= _MAX_EVENT_FIELDS:
            return
        if path and value is not None and len(path.encode("utf-8")) <= _MAX_HEX_KEY_BYTES:
            found[path] = _variable_text(value)
        if depth >= _MAX_EVENT_DEPTH:
            return
        if isinstance(value, Mapping):
            for key, item in value.items():
                if isinstance(key, str) and _IDENTIFIER.match(key):
                    walk(item, f"{path}.{key}" if path else key, depth + 1)
        elif isinstance(value, list) and path:
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]", depth + 1)

    walk(event_context(event), "", 0)
    return found


def script_command(language: str, run_dir: str) -> list[str]:
    """The argv that runs the script of a run folder at ``run_dir`` (a POSIX path on the machine that runs it)."""
    lang = _language(language)
    base = run_dir.rstrip("/") or "/"
    root = PurePosixPath(base)
    script = str(root / _SCRIPT_FILE[lang])
    if lang == "BASH":
        return ["bash", script]
    if lang == "PYTHON":
        return ["python3", str(root / "helpers/python/cronium_run.py"), script]
    return ["node", str(root / "helpers/nodejs/cronium_run.js"), script]


def script_environment(language: str, run_dir: str) -> dict[str, str]:
    """Environment variables the script needs, to be laid over the event's own environment.

    ``CRONIUM_RUN_DIR`` always; Bash: ``BASH_ENV`` (loads the helpers before the script's first line);
    Python: ``PYTHONDONTWRITEBYTECODE``, ``PYTHONUNBUFFERED``, ``PYTHONIOENCODING`` (the bootstrap makes
    ``import cronium`` work, so the event's own ``PYTHONPATH`` is left alone); Node.js: ``NODE_PATH``
    (``require('cronium')``; a caller that wants to keep an event's own NODE_PATH appends it after ``:``).
    """
    lang = _language(language)
    root = PurePosixPath(run_dir.rstrip("/") or "/")
    environment = {"CRONIUM_RUN_DIR": str(root)}
    if lang == "BASH":
        environment["BASH_ENV"] = str(root / "helpers/bash/cronium.sh")
    elif lang == "PYTHON":
        environment.update(
            PYTHONDONTWRITEBYTECODE="1",
            PYTHONUNBUFFERED="1",
            PYTHONIOENCODING="utf-8",
        )
    else:
        environment["NODE_PATH"] = str(root / "helpers/nodejs")
    return environment


def _snippet(text: str) -> str:
    return repr(text[:_SNIPPET_CHARS] + "..." if len(text) > _SNIPPET_CHARS else text)


def _undecodable(exc: ValueError | RecursionError) -> str:
    """Why valid-looking JSON was refused: Python's json decodes no integer of more than 4300 digits
    (ValueError) and no nesting deeper than its recursion limit (RecursionError)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc).split(";")[0]


def _parse_json(filename: str, data: bytes) -> Any:
    # Bash writes bytes verbatim: invalid UTF-8 becomes U+FFFD, as jq did in older Cronium generations.
    text = data.decode("utf-8-sig", errors="replace")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        reason = f"not valid JSON ({_undecodable(exc)}); the script wrote: {_snippet(text)}"
        raise ProtocolError(filename, reason) from None


def _read_output(json_data: bytes | None, text_data: bytes | None) -> tuple[Any, bool]:
    if json_data is not None and json_data.strip():
        return _parse_json("output.json", json_data), True
    if text_data is not None and text_data.strip():
        # What Bash's cronium_output was given: JSON text, or any other text for a string output.
        return json_or_text(text_data.decode("utf-8-sig", errors="replace")), True
    return None, False


def _read_condition(data: bytes | None) -> bool | None:
    if data is None or not data.strip():
        return None
    parsed = _parse_json("condition.json", data)
    if isinstance(parsed, dict) and isinstance(parsed.get("condition"), bool):
        return bool(parsed["condition"])
    raise ProtocolError("condition.json", f'expected {{"condition": true|false}}, got {_snippet(json.dumps(parsed))}')


def _json_lines(filename: str, data: bytes) -> list[tuple[int, Any, str]]:
    """(line number, parsed object, text) of each non-blank line; NaN and Infinity are refused.

    An unterminated last line that does not parse is a write the script was killed in the middle of: that
    call never returned, so the line does not count.
    """
    entries = []
    lines = data.split(b"\n")
    complete = data.endswith(b"\n")
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        text = raw.decode("utf-8", errors="replace")
        try:
            entry = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            if number == len(lines) and not complete:
                break
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else _undecodable(exc)
            raise ProtocolError(filename, f"not valid JSON ({reason}): {_snippet(text)}", number) from None
        entries.append((number, entry, text))
    return entries


class _KeyChanges:
    """The changes of one key so far: a known value (or MISSING after a delete), or appends to an unknown one."""

    def __init__(self) -> None:
        self.known = False
        self.value: Any = MISSING
        self.appends: list[VariableChange] = []

    def add(self, change: VariableChange) -> None:
        if change.op == "increment":
            if self.known:
                self.value = incremented(self.value, change.value)
            elif self.appends and self.appends[-1].op == "increment":
                last = self.appends[-1]
                self.appends[-1] = VariableChange("increment", last.key, int(last.value) + int(change.value))
            else:
                self.appends.append(change)
            return
        if change.op == "append":
            if self.known:
                self.value = appended(self.value, change.value, change.separator)
            else:
                self.appends.append(change)
            return
        self.known, self.appends = True, []
        self.value = MISSING if change.op == "delete" else change.value

    def final(self, key: str) -> list[VariableChange]:
        if not self.known:
            return self.appends
        if self.value is MISSING:
            return [VariableChange("delete", key)]
        return [VariableChange("set", key, self.value)]


def incremented(current: Any, by: int) -> Any:
    """An integer variable plus ``by``; a missing, null or empty one counts as 0 (Cronium's
    ``cronium_increment_variable``); a value that is no integer is left as it is."""
    if current is MISSING or current is None or current == "":
        return by
    if isinstance(current, bool):
        return current
    if isinstance(current, int):
        return current + by
    if isinstance(current, str) and current.strip().lstrip("+-").isdigit():
        return int(current) + by
    return current


class RefusedVariableKeys(ProtocolError):
    """Lines of ``variables.log`` whose key is no Cronium key (a script that wrote the journal itself):
    refused, naming each line and key; ``changes`` holds the journal's other changes, which still count."""

    def __init__(self, refused: list[tuple[int, str]], changes: tuple[VariableChange, ...]):
        (line, first), *more = refused
        super().__init__("variables.log", "; ".join([first, *(f"line {n}: {why}" for n, why in more)]), line)
        self.changes = changes


def _read_journal(data: bytes | None) -> tuple[VariableChange, ...]:
    if not data:
        return ()
    keys: dict[str, _KeyChanges] = {}
    refused: list[tuple[int, str]] = []
    for number, entry, text in _json_lines("variables.log", data):
        change = _journal_change(entry, text, number)
        problem = variable_key_problem(change.key)
        if problem is not None:
            refused.append((number, problem))
            continue
        keys.setdefault(change.key, _KeyChanges()).add(change)  # a key keeps its first position
    changes = tuple(change for key, changes in keys.items() for change in changes.final(key))
    if refused:
        raise RefusedVariableKeys(refused, changes)
    return changes


def _journal_change(entry: Any, text: str, number: int) -> VariableChange:
    if not isinstance(entry, dict) or not isinstance(entry.get("key"), str) or not entry["key"]:
        reason = f"expected an object with a non-empty string key: {_snippet(text)}"
        raise ProtocolError("variables.log", reason, number)
    op = entry.get("op")
    if op == "delete":
        return VariableChange("delete", entry["key"])
    if op == "increment":
        by = entry.get("by")
        if not isinstance(by, int) or isinstance(by, bool):
            raise ProtocolError("variables.log", f'an "increment" needs an integer "by": {_snippet(text)}', number)
        return VariableChange("increment", entry["key"], by)
    if op not in ("set", "append"):
        reason = f'op must be "set" or "delete" (or "append", "increment"): {_snippet(text)}'
        raise ProtocolError("variables.log", reason, number)
    # "value": the JSON value; "text": Bash's text, stored as the JSON it spells or as a string.
    if "value" in entry:
        value = entry["value"]
    elif isinstance(entry.get("text"), str):
        value = json_or_text(entry["text"])
    else:
        raise ProtocolError("variables.log", f'a "{op}" without a value: {_snippet(text)}', number)
    if op == "set":
        return VariableChange("set", entry["key"], value)
    separator = entry.get("separator", "")
    if not isinstance(separator, str):
        raise ProtocolError("variables.log", f"an append's separator must be a string: {_snippet(text)}", number)
    return VariableChange("append", entry["key"], value, separator)


def _read_actions(data: bytes | None) -> tuple[ActionRequest, ...]:
    if not data:
        return ()
    requests: list[ActionRequest] = []
    for number, entry, text in _json_lines(ACTIONS_FILE, data):
        if not isinstance(entry, dict):
            raise ProtocolError(ACTIONS_FILE, f"expected an object: {_snippet(text)}", number)
        tool, action, config = entry.get("tool"), entry.get("action"), entry.get("config")
        if not isinstance(tool, str) or not tool.strip() or not isinstance(action, str) or not action.strip():
            reason = f'"tool" and "action" must be non-empty strings: {_snippet(text)}'
            raise ProtocolError(ACTIONS_FILE, reason, number)
        if not isinstance(config, dict):
            raise ProtocolError(ACTIONS_FILE, f'"config" must be an object: {_snippet(text)}', number)
        if len(requests) == MAX_ACTION_REQUESTS:
            reason = f"more than {MAX_ACTION_REQUESTS} tool action requests; a run may ask for {MAX_ACTION_REQUESTS}"
            raise ProtocolError(ACTIONS_FILE, reason, number)
        tool_id, action_id = normalise_action(tool, action)
        requests.append(ActionRequest(tool_id, action_id, config, number))
    return tuple(requests)


def read_results(files: Mapping[str, bytes]) -> ScriptResults:
    """Parse the result files collected after the script exited (name in :data:`RESULT_FILES` -> content).

    Missing files are fine: an empty or missing ``output.json`` (and ``output.txt``) means no output, a
    missing ``condition.json`` a condition of None. Raises :class:`ProtocolError` naming the file (and the
    line of ``variables.log`` or ``actions.jsonl``) when one is malformed.
    """
    output, has_output = _read_output(files.get("output.json"), files.get("output.txt"))
    return ScriptResults(
        output=output,
        has_output=has_output,
        condition=_read_condition(files.get("condition.json")),
        variable_changes=_read_journal(files.get("variables.log")),
        action_requests=_read_actions(files.get(ACTIONS_FILE)),
    )


def _safe_relative(name: str) -> PurePosixPath:
    relative = PurePosixPath(name)
    if relative.is_absolute() or not relative.parts or ".." in relative.parts:
        raise ValueError(f"run folder paths must be relative and stay inside it: {name!r}")
    return relative


def run_folder_tar(files: Mapping[str, bytes], uid: int = 0, gid: int = 0) -> bytes:
    """The run folder as a tar stream: the folder itself and sub-folders 0700, files 0600, owned by
    ``uid``/``gid`` (what a Docker ``put_archive`` keeps; ``tar --no-same-owner`` on a server ignores it)."""
    buffer = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        folders = sorted({"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)})
        for name in [".", *folders]:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o700, now
            info.uid, info.gid = uid, gid
            tar.addfile(info)
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(str(_safe_relative(name)))
            info.size, info.mode, info.mtime = len(data), 0o600, now
            info.uid, info.gid = uid, gid
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write_run_folder(path: Path, files: Mapping[str, bytes]) -> None:
    """Write ``files`` (from :func:`build_run_files`) under ``path``, creating folders as needed."""
    path.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        target = path.joinpath(*_safe_relative(name).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def collect_result_files(path: Path) -> dict[str, bytes]:
    """The :data:`RESULT_FILES` present in the run folder at ``path``."""
    found: dict[str, bytes] = {}
    for name in RESULT_FILES:
        target = path / name
        if target.is_file():
            found[name] = target.read_bytes()
    return found
