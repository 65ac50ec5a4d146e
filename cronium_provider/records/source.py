"""Read Cronium records from a directory tree of ``.json``, ``.yaml`` and ``.yml`` files.

A file holds one record (``{"kind": "event" | "workflow" | "server", ...}``), a list of such records, or
a bundle ``{"events": [...], "workflows": [...], "servers": [...]}``. Files exactly as Cronium produces
them load too: a record with no ``kind`` is recognised by its shape, as Cronium's downloads and API write
it: one bare event or workflow object, or a bare array of them (tRPC ``events.download`` and
``workflows.download``, apps/cronium-app/src/server/api/routers/events.ts:816-848 and workflows.ts:640-679;
``GET /api/events`` and ``GET /api/events/{id}``). The event a workflow node carries nested
(``nodes[].event``, server/storage/modules/workflows.ts:38-67) is read as an event record as well.
YAML is read with a safe loader, its aliases bounded (:data:`MAX_ALIAS_VALUES`). A file that cannot be
read is reported and the others still load.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cronium_provider.records.errors import RecordError

RECORD_SUFFIXES = (".json", ".yaml", ".yml")
# Where ``cronium-airflow sync`` writes what the Cronium API returned, inside a records folder
SYNC_SUBDIR = "cronium-api"
SYNC_FILE = "records.json"
BUNDLE_KEYS = {"events": "event", "workflows": "workflow", "servers": "server"}
KINDS = ("event", "workflow", "server")
# keys only a workflow row or a workflow with relations has (schema.ts:828-863, storage/modules/workflows.ts:31-114)
WORKFLOW_KEYS = frozenset({"nodes", "connections", "edges", "webhookKey", "overrideEventServers", "overrideServerIds"})

# A YAML alias (``*name``) repeats a value without repeating its text: a few hundred bytes of nested aliases
# can stand for millions of values, which validation, the parse index and every DAG parse would then carry.
# A file whose aliases would add more values than this is refused; shared env vars or a ``<<: *defaults``
# merge in a few thousand records stay far below it.
MAX_ALIAS_VALUES = 100_000

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
    nested: bool = False  # an event nested in a workflow node (``position`` ends in ``.event``)

    @property
    def record_id(self) -> Any:
        return self.data.get("id")

    @property
    def place(self) -> str:
        """Where the record is, for messages: the file, and the position of a nested record."""
        return f"{self.path} ({self.position})" if self.nested else self.path


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


class AliasExpansionError(ValueError):
    """A YAML file whose aliases would repeat too many values, or a value inside itself."""


def is_sync_file(path: str) -> bool:
    """Whether records at ``path`` are the sync's copy of the Cronium API's answers, not a person's file."""
    return Path(path).parts[-2:] == (SYNC_SUBDIR, SYNC_FILE)


def parse_file(path: Path) -> Any:
    """The parsed document of one file (JSON, or YAML through the safe loader, its aliases bounded)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        return json.loads(text)
    loader = _SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if "*" in text:  # an alias is written *name: without one nothing repeats
            _check_aliases(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_aliases(root: yaml.Node) -> None:
    """Count the values the document has once its aliases are expanded, without expanding them: each
    collection's expanded size is worked out once (a node an alias repeats is the same object), depth first;
    a scalar counts one wherever it stands."""
    sizes: dict[int, int] = {}  # id(collection node) -> values it stands for, aliases expanded
    scalars: set[int] = set()  # the distinct scalar nodes
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        children = _children(node)
        if children_done:
            open_nodes.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes.get(id(child), 1) for child in children)
        elif id(node) in open_nodes:
            raise AliasExpansionError("refused: a YAML alias (*name) repeats a value inside itself, without end")
        elif id(node) not in sizes:
            open_nodes.add(id(node))
            stack.append((node, True))
            for child in children:
                if isinstance(child, yaml.ScalarNode):
                    scalars.add(id(child))
                elif id(child) not in sizes:
                    stack.append((child, False))
    added = sizes.get(id(root), 1) - len(sizes) - len(scalars)
    if added > MAX_ALIAS_VALUES:
        raise AliasExpansionError(
            f"refused: its YAML aliases (*name) would repeat {added:,} values, more than the {MAX_ALIAS_VALUES:,} "
            "a record file may; write the values out"
        )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _describe(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"not valid YAML: {exc.problem} at line {mark.line + 1} column {mark.column + 1}"
    if isinstance(exc, yaml.YAMLError):
        return f"not valid YAML: {exc}"
    if isinstance(exc, AliasExpansionError):
        return str(exc)
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    return f"cannot be read: {exc}"


def kind_by_shape(doc: dict[str, Any]) -> str | None:
    """The kind of a record given with no ``kind``, told by its fields, or None when they tell nothing.

    Workflows have ``nodes``/``connections`` (or their other row columns) and no ``type``; events have
    ``type`` (schema.ts:163); servers have ``address`` (schema.ts:239).
    """
    if "type" not in doc and WORKFLOW_KEYS & doc.keys():
        return "workflow"
    if "type" in doc:
        return "event"
    if "address" in doc:
        return "server"
    return None


def records_in_document(path: str, doc: Any) -> tuple[list[RawRecord], list[RecordError]]:
    """Split one parsed file into raw records; shapes that are neither a record nor a bundle are errors."""
    records: list[RecordError | RawRecord] = []
    if isinstance(doc, dict) and "kind" in doc:
        records.append(_single(path, doc, "record"))
    elif isinstance(doc, dict) and kind_by_shape(doc) is not None:
        # a bare event also has a 'servers' list, so the shape is looked at before the bundle keys
        records.append(RawRecord(path, str(kind_by_shape(doc)), doc, "record"))
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
            position = f"[{index}]"
            if item is None:
                continue  # Cronium's multi-event download keeps a vanished event as null (routers/events.ts:840-848)
            if isinstance(item, dict) and "kind" in item:
                records.append(_single(path, item, position))
            elif isinstance(item, dict) and kind_by_shape(item) is not None:
                records.append(RawRecord(path, str(kind_by_shape(item)), item, position))
            elif isinstance(item, dict):
                records.append(
                    RecordError(
                        path,
                        f"{position} is not a record: it has no 'kind', and its fields match no event ('type'), "
                        "workflow ('nodes', 'connections') or server ('address')",
                        kind="record",
                        record_id=_plain_id(item.get("id")),
                    )
                )
            else:
                records.append(RecordError(path, f"{position} is not a record with a 'kind' ({type(item).__name__})"))
    elif doc is None:
        pass  # an empty file holds no record
    else:
        records.append(
            RecordError(
                path,
                "not a record (an object with 'kind': event, workflow or server, or an event or workflow as "
                "Cronium writes it) nor a bundle (an object with 'events', 'workflows' or 'servers' lists)",
            )
        )
    raws = [r for r in records if isinstance(r, RawRecord)]
    errors = [r for r in records if isinstance(r, RecordError)]
    nested: list[RawRecord] = []
    for raw in raws:
        if raw.kind == "workflow":
            found, problems = nested_events(raw)
            nested.extend(found)
            errors.extend(problems)
    return raws + nested, errors


def _plain_id(value: Any) -> int | str | None:
    """An id fit to name a record in a message: an integer or a non-blank string, else None."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    return value if not isinstance(value, str) or value.strip() else None


def id_or_position(value: Any, position: str) -> int | str:
    """How a message names a record: its id, or where it is in its file when the id is unusable."""
    plain = _plain_id(value)
    return plain if plain is not None else f"at {position}"


def nested_events(workflow: RawRecord) -> tuple[list[RawRecord], list[RecordError]]:
    """The events a workflow's nodes carry nested (``nodes[i].event``), as event records of the same file.

    Cronium's workflow download nests each node's event with its relations
    (apps/cronium-app/src/server/storage/modules/workflows.ts:38-67, 75-109); a node whose event is
    missing has no ``event`` key (line 105-108).
    """
    raws: list[RawRecord] = []
    errors: list[RecordError] = []
    nodes = workflow.data.get("nodes")
    if not isinstance(nodes, list):
        return raws, errors
    prefix = "" if workflow.position == "record" else workflow.position + "."
    for index, node in enumerate(nodes):
        if not isinstance(node, dict) or node.get("event") is None:
            continue
        event = node["event"]
        field = f"nodes[{index}].event"
        if not isinstance(event, dict):
            errors.append(
                RecordError(
                    workflow.path,
                    f"is {type(event).__name__}, expected the node's event as an object",
                    "workflow",
                    id_or_position(workflow.record_id, workflow.position),
                    field,
                )
            )
            continue
        node_event = node.get("eventId")
        if node_event is not None and event.get("id") is not None and event.get("id") != node_event:
            errors.append(
                RecordError(
                    workflow.path,
                    f"the nested event is event {event.get('id')!r} but the node points at event {node_event!r}",
                    "workflow",
                    id_or_position(workflow.record_id, workflow.position),
                    field + ".id",
                )
            )
            continue
        raws.append(RawRecord(workflow.path, "event", event, prefix + field, nested=True))
    return raws, errors


def _single(path: str, doc: dict[str, Any], position: str) -> RawRecord | RecordError:
    kind = doc.get("kind")
    if kind not in KINDS:
        return RecordError(
            path,
            f"unknown kind {kind!r}; allowed: event, workflow, server",
            kind="record",
            record_id=id_or_position(doc.get("id"), position),
            field="kind",
        )
    data = {k: v for k, v in doc.items() if k != "kind"}
    return RawRecord(path, str(kind), data, position)


Progress = Callable[[int, int], None]  # (files done, files in all): for a progress display


def read_records(
    paths: Iterable[str | Path], progress: Progress | None = None
) -> tuple[list[RawRecord], list[RecordError]]:
    """Every raw record under ``paths`` and every file-level error; one bad file hides nothing else.
    ``progress`` is told ``(done, total)`` files as they are read."""
    raws: list[RawRecord] = []
    errors: list[RecordError] = []
    paths = list(paths)
    for raw_path in paths:
        if not Path(raw_path).exists():
            errors.append(RecordError(str(raw_path), "no such file or folder"))
    files = list(iter_record_files(paths))
    for done, path in enumerate(files):
        if progress is not None:
            progress(done, len(files))
        try:
            doc = parse_file(path)
        except Exception as exc:  # any parse failure is reported, not raised
            errors.append(RecordError(str(path), _describe(exc)))
            continue
        found, problems = records_in_document(str(path), doc)
        raws.extend(found)
        errors.extend(problems)
    if progress is not None:
        progress(len(files), len(files))
    return raws, errors
