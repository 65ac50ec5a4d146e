"""Read Cronium records from a directory tree of ``.json``, ``.yaml`` and ``.yml`` files.

A file holds one record (``{"kind": "event" | "workflow" | "server", ...}``), a list of such records, or
a bundle ``{"events": [...], "workflows": [...], "servers": [...]}`` as a Cronium export writes it.
YAML is read with a safe loader. A file that cannot be read is reported and the others still load.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cronium_provider.records.errors import RecordError

RECORD_SUFFIXES = (".json", ".yaml", ".yml")
BUNDLE_KEYS = {"events": "event", "workflows": "workflow", "servers": "server"}
KINDS = ("event", "workflow", "server")

try:  # libyaml's loader is much faster and just as safe
    _SafeLoader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _SafeLoader = yaml.SafeLoader


@dataclass(frozen=True)
class RawRecord:
    """One record as found in a file, before validation."""

    path: str
    kind: str
    data: dict[str, Any]
    position: str  # where in the file, e.g. "events[3]", for records with no usable id

    @property
    def record_id(self) -> Any:
        return self.data.get("id")


def iter_record_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Every record file under the given files and folders, in a stable order; hidden entries skipped."""
    for raw in paths:
        root = Path(raw)
        if root.is_file():
            yield root
            continue
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if any(part.startswith(".") for part in rel.parts):
                continue
            if path.is_file() and path.suffix.lower() in RECORD_SUFFIXES:
                yield path


def parse_file(path: Path) -> Any:
    """The parsed document of one file (JSON, or YAML through the safe loader)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        return json.loads(text)
    return yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - the loader is a SafeLoader


def _describe(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"not valid YAML: {exc.problem} at line {mark.line + 1} column {mark.column + 1}"
    if isinstance(exc, yaml.YAMLError):
        return f"not valid YAML: {exc}"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    return f"cannot be read: {exc}"


def records_in_document(path: str, doc: Any) -> tuple[list[RawRecord], list[RecordError]]:
    """Split one parsed file into raw records; shapes that are neither a record nor a bundle are errors."""
    records: list[RecordError | RawRecord] = []
    if isinstance(doc, dict) and "kind" in doc:
        records.append(_single(path, doc, "record"))
    elif isinstance(doc, dict) and any(key in doc for key in BUNDLE_KEYS):
        for key, kind in BUNDLE_KEYS.items():
            items = doc.get(key)
            if items is None:
                continue
            if not isinstance(items, list):
                records.append(RecordError(path, f"bundle key '{key}' must hold a list of {kind} records"))
                continue
            for index, item in enumerate(items):
                position = f"{key}[{index}]"
                if isinstance(item, dict):
                    records.append(RawRecord(path, kind, item, position))
                else:
                    records.append(RecordError(path, f"{position} is {type(item).__name__}, expected an object"))
    elif isinstance(doc, list):
        for index, item in enumerate(doc):
            if isinstance(item, dict) and "kind" in item:
                records.append(_single(path, item, f"[{index}]"))
            else:
                records.append(RecordError(path, f"[{index}] is not a record with a 'kind'"))
    elif doc is None:
        pass  # an empty file holds no record
    else:
        records.append(
            RecordError(
                path,
                "not a record (an object with 'kind': event, workflow or server) nor a bundle "
                "(an object with 'events', 'workflows' or 'servers' lists)",
            )
        )
    raws = [r for r in records if isinstance(r, RawRecord)]
    errors = [r for r in records if isinstance(r, RecordError)]
    return raws, errors


def _single(path: str, doc: dict[str, Any], position: str) -> RawRecord | RecordError:
    kind = doc.get("kind")
    if kind not in KINDS:
        return RecordError(
            path,
            f"unknown kind {kind!r}; allowed: event, workflow, server",
            kind="record",
            record_id=doc.get("id"),
            field="kind",
        )
    data = {k: v for k, v in doc.items() if k != "kind"}
    return RawRecord(path, str(kind), data, position)


def read_records(paths: Iterable[str | Path]) -> tuple[list[RawRecord], list[RecordError]]:
    """Every raw record under ``paths`` and every file-level error; one bad file hides nothing else."""
    raws: list[RawRecord] = []
    errors: list[RecordError] = []
    for raw_path in paths:
        if not Path(raw_path).exists():
            errors.append(RecordError(str(raw_path), "no such file or folder"))
    for path in iter_record_files(paths):
        try:
            doc = parse_file(path)
        except Exception as exc:  # any parse failure is reported, not raised
            errors.append(RecordError(str(path), _describe(exc)))
            continue
        found, problems = records_in_document(str(path), doc)
        raws.extend(found)
        errors.extend(problems)
    return raws, errors
