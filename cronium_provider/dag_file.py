"""The provider's DAG file and runtime image build context, as the package ships them, and
``cronium-airflow dag-file``: the DAG file written into a dags folder, whole or as one copy per shard.

A dags folder never holds both kinds at once: the whole file reads every sub-folder of the records folder, so
with a shard's copy beside it every DAG of that shard would be built twice (Airflow then refuses them as
duplicates). The provider's DAG files are known by their text: they import ``cronium_provider.factory`` and
set ``CRONIUM_SHARD``, or are the DAG file of an earlier version. One a person edited (more than its
``CRONIUM_SHARD`` line) is theirs: it is never removed or overwritten.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
from dataclasses import dataclass, field, replace
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

DAG_FILE = "cronium_dags.py"
RUNTIME_IMAGE_FILES = ("Dockerfile", "build-runtime-image.sh")
_SHARD_LINE = re.compile(r"^CRONIUM_SHARD = (.*)$", re.MULTILINE)
_SHARD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_QUOTED = re.compile(r"""(["'])([^"'\\]*)\1""")
_MAX_BYTES = 64 * 1024  # the provider's DAG file is about 1 KiB: a larger file is a person's own
_FACTORY = "cronium_provider.factory"
# sha256 of the DAG file as earlier versions shipped it (without the CRONIUM_SHARD line)
_EARLIER = frozenset({"376b829d7e7e7144b9d68669439142174b9b9f41cf2d1d57cccd51bf8eaba05b"})


def template(*parts: str) -> Traversable:
    """A file of the package's ``templates`` folder: the DAG file, ``runtime_image/`` (the image's build
    context: its Dockerfile and build script)."""
    return files("cronium_provider").joinpath("templates", *parts)


def dag_file_text(shard: str | None = None) -> str:
    """The DAG file; with ``shard``, the copy that reads that sub-folder of the records folder."""
    text = template(DAG_FILE).read_text(encoding="utf-8")
    if shard is None:
        return text
    return _SHARD_LINE.sub(lambda _: f'CRONIUM_SHARD = "{shard}"', text, count=1)


def dag_file_name(shard: str | None) -> str:
    return DAG_FILE if shard is None else f"cronium_dags_{shard}.py"


def shard_name_error(name: str) -> str | None:
    """Why ``name`` cannot name a shard (a sub-folder of the records folder and part of a file name), or None."""
    if _SHARD_NAME.fullmatch(name) and ".." not in name:
        return None
    return (
        f"shard name {name!r} refused: a shard is one sub-folder of the records folder, named with letters, "
        "digits, '_', '-' and '.' (not first, no '..'), at most 100 characters, e.g. billing"
    )


@dataclass(frozen=True)
class ProviderDagFile:
    """A DAG file of the provider found in a dags folder."""

    path: Path
    shard: str | None  # None: the whole records folder
    edited: bool  # differs from the provider's DAG file beyond its CRONIUM_SHARD line
    linked: bool = False  # in a folder reached through a link: Airflow reads it, dag-file leaves it alone

    def describe(self) -> str:
        return "the whole records folder" if self.shard is None else f"shard {self.shard}"


def read_text(path: Path) -> str | None:
    """The text of ``path`` when it is a regular file (a link is followed) of UTF-8 and at most 64 KiB, else
    None: only read, never imported, and a FIFO, a device or a huge file is not waited on or read whole."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = handle.read(_MAX_BYTES + 1)
    try:
        return data.decode("utf-8") if len(data) <= _MAX_BYTES else None
    except UnicodeDecodeError:
        return None


def read_provider_dag_file(path: Path) -> ProviderDagFile | None:
    """``path`` as a DAG file of the provider, or None when it is not one."""
    text = read_text(path)
    if text is None:
        return None
    if hashlib.sha256(text.encode()).hexdigest() in _EARLIER:
        return ProviderDagFile(path, None, edited=False)
    match = _SHARD_LINE.search(text)
    if _FACTORY not in text or match is None:
        return None
    value = match.group(1).strip()
    quoted = _QUOTED.fullmatch(value)
    shard = None if value == "None" else quoted.group(2) if quoted else ""
    if shard is not None and shard_name_error(shard) is not None:
        return ProviderDagFile(path, value[:100], edited=True)
    return ProviderDagFile(path, shard, edited=text != dag_file_text(shard))


def provider_dag_files(dags_folder: Path) -> list[ProviderDagFile]:
    """Every DAG file of the provider in ``dags_folder`` and its sub-folders (hidden ones and
    ``__pycache__`` left out), as Airflow's DAG processor finds ``.py`` files: through linked folders too
    (each folder once)."""
    found: list[ProviderDagFile] = []
    seen = {dags_folder.resolve()}
    linked: set[str] = set()
    for root, dirs, names in os.walk(dags_folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        dirs[:] = [d for d in dirs if (Path(root) / d).resolve() not in seen]
        for d in dirs:
            seen.add((Path(root) / d).resolve())
            if root in linked or (Path(root) / d).is_symlink():
                linked.add(os.path.join(root, d))
        for name in sorted(names):
            if name.endswith(".py") and (dag_file := read_provider_dag_file(Path(root) / name)):
                found.append(replace(dag_file, linked=root in linked))
    return found


@dataclass
class DagFileChanges:
    """What ``dag-file`` does (or, when ``blocked``, would have done and did not)."""

    write: dict[Path, str] = field(default_factory=dict)  # path -> text
    unchanged: list[Path] = field(default_factory=list)
    remove: list[tuple[ProviderDagFile, str]] = field(default_factory=list)  # file, why
    kept: list[ProviderDagFile] = field(default_factory=list)  # other shards' copies, left in force
    blocked: list[str] = field(default_factory=list)


def plan_dag_files(dags_folder: Path, shards: list[str]) -> DagFileChanges:
    """The files to write, leave and remove so that ``dags_folder`` holds the whole DAG file (no ``shards``)
    or one copy per shard, never both kinds."""
    changes = DagFileChanges()
    wanted: dict[Path, str | None] = {dags_folder / dag_file_name(shard): shard for shard in shards}
    if not shards:
        wanted = {dags_folder / DAG_FILE: None}
    existing = provider_dag_files(dags_folder)
    by_path = {f.path: f for f in existing}
    for path, shard in wanted.items():
        text = dag_file_text(shard)
        current = by_path.get(path)
        if current is None and (path.exists() or path.is_symlink()):
            changes.blocked.append(f"{path} is not a DAG file of the provider: it is left alone, nothing written")
        elif current is not None and current.edited:
            changes.blocked.append(
                f"{path} is a Cronium DAG file you edited (it differs from the provider's beyond its "
                "CRONIUM_SHARD line): move your changes out of it or remove it; nothing written"
            )
        elif current is not None and read_text(path) == text:
            changes.unchanged.append(path)
        else:
            changes.write[path] = text
    for dag_file in existing:
        if dag_file.path in wanted:
            continue
        if not shards:
            why = (
                f"it reads {dag_file.describe()}, which {DAG_FILE} reads too (every sub-folder of the records "
                "folder): each of its DAGs would be built twice"
            )
        elif dag_file.shard is None:
            why = (
                "it reads the whole records folder, every shard's sub-folder included: each DAG of the shard "
                "copies would be built twice"
            )
        elif dag_file.shard in shards:
            why = f"another copy of {dag_file.describe()}: each of its DAGs would be built twice"
        else:
            changes.kept.append(dag_file)
            continue
        if dag_file.linked:
            changes.blocked.append(
                f"{dag_file.path} is the provider's DAG file in a folder reached through a link (Airflow reads it "
                f"there too) and would have to go: {why}; remove it where it is; nothing written"
            )
        elif dag_file.edited:
            changes.blocked.append(
                f"{dag_file.path} is a Cronium DAG file you edited (it differs from the provider's beyond its "
                f"CRONIUM_SHARD line) and would have to go: {why}; move your changes out of it or remove it; "
                "nothing written"
            )
        else:
            changes.remove.append((dag_file, why))
    return changes


def _still_the_providers(path: Path) -> bool:
    return (found := read_provider_dag_file(path)) is not None and not found.edited


def _place_new(tmp: str, path: Path) -> None:
    """``tmp`` at ``path``, where there was no file: as a hard link, which fails on a file made since; by a
    rename on a file system without hard links (some network shares)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:
        os.replace(tmp, path)


def apply_dag_files(changes: DagFileChanges) -> list[Path]:
    """Write and remove as planned; returns the files left alone because they changed since the plan.

    Each file is first written beside its place (a hidden temporary file): when one cannot be (a folder not
    writable, a full disk) none takes its place and the error is raised. Then each takes its place by a
    rename, so a reader sees the old file or the new one whole and a link in its place is replaced, never
    written through; like each removal, only while what is there is what the plan saw (nothing, or the
    provider's DAG file as it ships)."""
    staged: dict[Path, str] = {}
    try:
        for path, text in changes.write.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, staged[path] = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(staged[path], 0o644)
    except BaseException:
        for tmp in staged.values():
            Path(tmp).unlink(missing_ok=True)
        raise
    left: list[Path] = []
    for path, tmp in staged.items():
        try:
            if not os.path.lexists(path):
                _place_new(tmp, path)
            elif _still_the_providers(path):
                os.replace(tmp, path)
            else:
                left.append(path)
        except FileExistsError:
            left.append(path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    for dag_file, _ in changes.remove:
        if _still_the_providers(dag_file.path):
            dag_file.path.unlink(missing_ok=True)
        elif os.path.lexists(dag_file.path):
            left.append(dag_file.path)
    return left


def sharded_reading(dags_folder: Path, records: Path, configured: Path | None) -> list[str]:
    """The shards the DAG files of ``dags_folder`` read ``records`` in (empty: the records are read whole,
    or not through these files): the folder holds shard copies and no whole DAG file, and ``records`` is the
    configured records folder or holds a sub-folder named after one of those shards."""
    found = provider_dag_files(dags_folder)
    shards = sorted({f.shard for f in found if f.shard is not None})
    if not shards or any(f.shard is None for f in found):
        return []
    same = configured is not None and configured.resolve() == records.resolve()
    return shards if same or any((records / shard).is_dir() for shard in shards) else []
