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
import tarfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Final, Literal

from cronium_provider.exceptions import ProtocolError

__all__ = [
    "LANGUAGES",
    "RESULT_FILES",
    "ProtocolError",
    "ScriptResults",
    "VariableChange",
    "build_run_files",
    "collect_result_files",
    "helpers_root",
    "read_results",
    "run_folder_tar",
    "script_command",
    "script_environment",
    "write_run_folder",
]

LANGUAGES: Final = ("BASH", "PYTHON", "NODEJS")
"""Script languages, as Cronium's event ``type`` spells them."""

RESULT_FILES: Final = ("output.json", "condition.json", "variables.log")
"""Files the script may write, relative to the run folder; any of them may be missing."""

_SCRIPT_FILE: Final = {"BASH": "script.sh", "PYTHON": "script.py", "NODEJS": "script.js"}
_HELPER_DIR: Final = {"BASH": "bash", "PYTHON": "python", "NODEJS": "nodejs"}
_HELPER_SUFFIX: Final = {"BASH": ".sh", "PYTHON": ".py", "NODEJS": ".js"}
_MAX_HEX_KEY_BYTES: Final = 120  # longer keys get a hashed name: 2 * 120 hex digits stays under NAME_MAX
_SNIPPET_CHARS: Final = 60


@dataclass(frozen=True)
class VariableChange:
    """One variable change of a run: ``set`` to ``value``, or ``delete`` (``value`` is then None)."""

    op: Literal["set", "delete"]
    key: str
    value: Any = None


@dataclass(frozen=True)
class ScriptResults:
    """What a run produced.

    ``output`` is what ``cronium.output()`` received (``has_output`` tells an output of ``null`` from no
    output at all); ``condition`` is None when the script never set one; ``variable_changes`` holds the
    final change per key, in the order the keys were first changed.
    """

    output: Any
    has_output: bool
    condition: bool | None
    variable_changes: tuple[VariableChange, ...]


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
    (``{}`` when ``input`` is None), ``event.json``, ``variables.json`` and, for Bash, ``variables.d/``.
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
    return files


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


def _parse_json(filename: str, data: bytes) -> Any:
    # Bash writes bytes verbatim: invalid UTF-8 becomes U+FFFD, as jq did in older Cronium generations.
    text = data.decode("utf-8-sig", errors="replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        position = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        raise ProtocolError(filename, f"not valid JSON ({position}); the script wrote: {_snippet(text)}") from None


def _read_output(data: bytes | None) -> tuple[Any, bool]:
    if data is None or not data.strip():
        return None, False
    return _parse_json("output.json", data), True


def _read_condition(data: bytes | None) -> bool | None:
    if data is None or not data.strip():
        return None
    parsed = _parse_json("condition.json", data)
    if isinstance(parsed, dict) and isinstance(parsed.get("condition"), bool):
        return bool(parsed["condition"])
    raise ProtocolError("condition.json", f'expected {{"condition": true|false}}, got {_snippet(json.dumps(parsed))}')


def _read_journal(data: bytes | None) -> tuple[VariableChange, ...]:
    if not data:
        return ()
    final: dict[str, VariableChange] = {}
    lines = data.split(b"\n")
    complete = data.endswith(b"\n")
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        text = raw.decode("utf-8", errors="replace")
        try:
            entry = json.loads(text)
        except json.JSONDecodeError as exc:
            if number == len(lines) and not complete:
                # An unterminated last line is a write the script was killed in the middle of: that call
                # never returned, so the change does not count.
                break
            raise ProtocolError("variables.log", f"not valid JSON ({exc.msg}): {_snippet(text)}", number) from None
        final_change = _journal_change(entry, text, number)
        final[final_change.key] = final_change  # re-assigning keeps the key's first position
    return tuple(final.values())


def _journal_change(entry: Any, text: str, number: int) -> VariableChange:
    if not isinstance(entry, dict) or not isinstance(entry.get("key"), str) or not entry["key"]:
        reason = f"expected an object with a non-empty string key: {_snippet(text)}"
        raise ProtocolError("variables.log", reason, number)
    op = entry.get("op")
    if op == "set":
        if "value" not in entry:
            raise ProtocolError("variables.log", f'a "set" without a value: {_snippet(text)}', number)
        return VariableChange("set", entry["key"], entry["value"])
    if op == "delete":
        return VariableChange("delete", entry["key"])
    raise ProtocolError("variables.log", f'op must be "set" or "delete": {_snippet(text)}', number)


def read_results(files: Mapping[str, bytes]) -> ScriptResults:
    """Parse the result files collected after the script exited (name in :data:`RESULT_FILES` -> content).

    Missing files are fine: an empty or missing ``output.json`` means no output, a missing
    ``condition.json`` a condition of None. Raises :class:`ProtocolError` naming the file (and the journal
    line) when one is malformed.
    """
    output, has_output = _read_output(files.get("output.json"))
    return ScriptResults(
        output=output,
        has_output=has_output,
        condition=_read_condition(files.get("condition.json")),
        variable_changes=_read_journal(files.get("variables.log")),
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
