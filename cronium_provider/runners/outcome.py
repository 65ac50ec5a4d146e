"""What every executor shares: the outcome of one script run, live line splitting, reading results."""

from __future__ import annotations

import json
import re
import tarfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from cronium_provider.runners.protocol import (
    RESULT_FILES,
    ProtocolError,
    RefusedVariableKeys,
    ScriptResults,
    read_results,
)

STDERR_TAIL_LINES = 20
STDERR_TAIL_BYTES = 64 * 1024  # the most read back of a stderr file for its last lines
_TAR_SLACK = 64 * 1024  # what a tar stream holds beside its files' bytes: headers, padding, end blocks
_TAR_KINDS = {tarfile.DIRTYPE: "a directory", tarfile.SYMTYPE: "a symbolic link", tarfile.LNKTYPE: "a hard link"}
DEFAULT_MAX_RESULT_BYTES = 10 * 1024 * 1024  # the largest result file read back ([cronium] max_result_bytes)
MAX_LINE_BYTES = 64 * 1024  # a longer line of the script's output is cut in the log, with a marker
# The most kept of each stream's text for the run's log (``{{cronium.event.output}}`` and ``error``): its end
OUTPUT_TAIL_BYTES = 64 * 1024
LineCallback = Callable[[str, str], None]  # (stream name, line)


@dataclass
class ScriptRun:
    """What happened: exit code, timings, memory, the script's results (or why they are unreadable)."""

    exit_code: int
    duration_seconds: float
    peak_memory_bytes: int | None
    oom_killed: bool
    results: ScriptResults | None
    protocol_error: ProtocolError | None
    stderr_tail: list[str]
    container_id: str  # or "server:folder" for a remote run
    limit_reached: str | None = None  # a bound the run hit (its run folder full), said in its failure
    stdout: str = ""  # the end of what the script printed (at most OUTPUT_TAIL_BYTES), as Cronium logs it
    stderr: str = ""

    def metrics(self, image: str) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "duration_seconds": round(self.duration_seconds, 3),
            "peak_memory_bytes": self.peak_memory_bytes,
            "oom_killed": self.oom_killed,
            "image": image,
        }

    @property
    def condition(self) -> bool:
        """The run's condition (``cronium.setCondition()``), False when it set none."""
        results = self.results
        return bool(results.condition) if results is not None and results.condition is not None else False

    def summary(self) -> str:
        """The run's summary line, as the task's log shows it (whichever process finished the run)."""
        results = self.results
        has_output = results is not None and results.has_output
        output_size = len(json.dumps(results.output)) if results is not None and has_output else 0
        return (
            f"cronium summary: exit {self.exit_code} in {self.duration_seconds:.2f} s, peak memory "
            f"{size_text(self.peak_memory_bytes)}, output {size_text(output_size) if has_output else 'none'}, "
            f"condition {str(self.condition).lower()}, "
            f"{len(results.variable_changes) if results is not None else 0} variable change(s)"
        )


def size_text(n: float | None) -> str:
    """A byte count for people: ``512 B``, ``1.5 MB``; ``n/a`` when unknown."""
    if n is None:
        return "n/a"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n = n / 1024
    return str(n)


FEED_SLICE_BYTES = 4096  # a trigger hands the event loop back after each slice: at most this many lines a turn


class LineRedactor:
    """Hides one run's secret values in its output lines, for that run alone.

    A deferred run's lines are logged by the triggerer, whose log masker is one per process: a value
    registered there would hide that word in every other task's lines too, and a script could pick its own
    env values to blank out words of others. So each trigger redacts its own lines with the values the worker
    knew before the script started, as Airflow masks them: each value and each line of it, from
    ``min_length`` characters (default ``[logging] min_length_masked_secret``).
    """

    def __init__(self, values: Iterable[Any], min_length: int | None = None) -> None:
        if min_length is None:
            from airflow.configuration import conf

            min_length = conf.getint("logging", "min_length_masked_secret", fallback=5)
        pieces = {
            piece
            for value in values
            if isinstance(value, str)
            for piece in (value, *value.splitlines())
            if len(piece) >= min_length
        }
        ordered = sorted(pieces, key=len, reverse=True)  # the longest first: a value never half-masked
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, line: str) -> str:
        return line if self._pattern is None else self._pattern.sub("***", line)


def feed_slices(chunk: bytes) -> Iterator[bytes]:
    """``chunk`` in slices of :data:`FEED_SLICE_BYTES`, for a trigger to feed one a turn."""
    for start in range(0, len(chunk), FEED_SLICE_BYTES):
        yield chunk[start : start + FEED_SLICE_BYTES]


class TextTail:
    """The last ``limit`` bytes of a stream's lines (whole lines), and how many earlier bytes were let go."""

    def __init__(self, limit: int = OUTPUT_TAIL_BYTES) -> None:
        self.limit = limit
        self.lines: deque[str] = deque()
        self.size = 0
        self.dropped = 0

    def add(self, line: str) -> None:
        self.lines.append(line)
        self.size += len(line.encode("utf-8", errors="replace")) + 1
        while self.size > self.limit and len(self.lines) > 1:
            gone = len(self.lines.popleft().encode("utf-8", errors="replace")) + 1
            self.size -= gone
            self.dropped += gone

    def text(self) -> str:
        """The lines kept, after a marker when earlier ones were let go."""
        marker = f"[... {self.dropped} earlier bytes cut]\n" if self.dropped else ""
        return marker + "\n".join(self.lines)


class LineSplitter:
    """Turns stream chunks into whole lines, per stream, in time linear in the bytes fed.

    A line longer than ``max_line_bytes`` keeps its first ``max_line_bytes`` bytes and ends with a marker
    saying how many were cut; the rest is never held in memory.
    """

    def __init__(self, emit: LineCallback, max_line_bytes: int = MAX_LINE_BYTES):
        self.emit = emit
        self.max_line_bytes = max_line_bytes
        self.partial: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        self.cut: dict[str, int] = {"stdout": 0, "stderr": 0}  # bytes of the current line past the bound
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self.texts: dict[str, TextTail] = {"stdout": TextTail(), "stderr": TextTail()}

    def text(self, stream: str) -> str:
        """The end of ``stream``'s lines so far (at most :data:`OUTPUT_TAIL_BYTES`), for the run's log."""
        return self.texts[stream].text()

    def feed(self, stream: str, chunk: bytes) -> None:
        view = memoryview(chunk)
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            self._keep(stream, view[start:end])
            self._end_line(stream)
            start = end + 1
        self._keep(stream, view[start:])

    def close(self) -> None:
        for stream in self.partial:
            if self.partial[stream] or self.cut[stream]:
                self._end_line(stream)

    def _keep(self, stream: str, piece: memoryview) -> None:
        partial = self.partial[stream]
        room = max(0, self.max_line_bytes - len(partial))
        partial += piece[:room]
        self.cut[stream] += max(0, len(piece) - room)

    def _end_line(self, stream: str) -> None:
        line = self.partial[stream].decode("utf-8", errors="replace").rstrip("\r")
        if self.cut[stream]:
            line += f" [... {self.cut[stream]} more bytes of this line cut]"
        self.partial[stream], self.cut[stream] = bytearray(), 0
        if stream == "stderr":
            self.stderr_tail.append(line)
        if stream in self.texts:
            self.texts[stream].add(line)
        self.emit(stream, line)


def stderr_tail_of(data: bytes) -> list[str]:
    """The last stderr lines in ``data`` (read back from a log or a file), split as live lines are."""
    splitter = LineSplitter(lambda stream, line: None)
    splitter.feed("stderr", data)
    splitter.close()
    return list(splitter.stderr_tail)


def read_run_results(
    found: Mapping[str, bytes], refused: ProtocolError | None = None
) -> tuple[ScriptResults | None, ProtocolError | None]:
    """The script's results, or why they are unreadable (``refused``: a result file was not read, see
    :func:`read_result_tar`); variable changes count even then (Cronium applies a set at once), so they
    are kept when another result file is malformed or refused, and when the journal has lines with a refused
    key (the run fails naming them; the other changes count)."""
    if refused is None:
        try:
            return read_results(found), None
        except ProtocolError as exc:
            refused = exc
    try:
        partial = read_results({k: v for k, v in found.items() if k == "variables.log"})
    except RefusedVariableKeys as bad_keys:
        partial = ScriptResults(None, False, None, bad_keys.changes)
    except ProtocolError:
        partial = None
    return partial, refused


def too_large(name: str, size: int | str, limit: int) -> ProtocolError:
    """A result file above ``limit`` bytes, not read."""
    return ProtocolError(
        name,
        f"{size} bytes, above the limit of {limit} bytes for a result file ([cronium] max_result_bytes); "
        "the script's result was not read",
    )


def not_regular(name: str, kind: str) -> ProtocolError:
    """A result file that is ``kind`` (a directory, a symbolic link...), not read."""
    return ProtocolError(name, f"{kind}, not a regular file; the script's result was not read")


class _OverBudget(Exception):
    pass


class _CountedStream:
    """A read-only file over byte chunks that counts what it reads and stops past ``budget`` bytes."""

    def __init__(self, chunks: Iterable[bytes], budget: int):
        self._chunks: Iterator[bytes] = iter(chunks)
        self._buffer = b""
        self.budget = budget
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            self.count += len(chunk)
            if self.count > self.budget:
                raise _OverBudget
            self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


def read_result_tar(
    chunks: Iterable[bytes], limit: int, names: Iterable[str] = RESULT_FILES
) -> tuple[dict[str, bytes], ProtocolError | None]:
    """The result files ``names`` in a tar stream (a container's archive, a server's tar), each up to
    ``limit`` bytes, and the first file refused (not a regular file, above the limit), if any.

    Every byte is counted as it is read: past what the files can hold (``limit`` each, plus the tar
    format's own bytes) reading stops and the stream is refused, whatever its headers said. Other
    members are skipped.
    """
    wanted = tuple(names)
    found: dict[str, bytes] = {}
    refused: ProtocolError | None = None
    stream = _CountedStream(chunks, len(wanted) * (limit + 1024) + _TAR_SLACK)
    current = ", ".join(wanted)
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
            for member in tar:
                current = member.name.removeprefix("./")
                if current not in wanted:
                    continue
                if not member.isreg():
                    refused = refused or not_regular(current, _TAR_KINDS.get(member.type, "a special file"))
                elif member.size > limit:
                    refused = refused or too_large(current, f"at least {member.size}", limit)
                else:
                    handle = tar.extractfile(member)
                    found[current] = handle.read() if handle is not None else b""
    except _OverBudget:
        refused = refused or too_large(current, f"more than {limit}", limit)
    except (tarfile.TarError, EOFError, OSError) as exc:  # a broken archive, a connection timed out
        if stream.count or not isinstance(exc, tarfile.ReadError):  # else no archive: no result file
            refused = refused or ProtocolError(current, f"the result files could not be read back ({exc})")
    return found, refused
