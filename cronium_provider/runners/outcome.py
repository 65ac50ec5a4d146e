"""What every executor shares: the outcome of one script run, live line splitting, reading results."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cronium_provider.runners.protocol import ProtocolError, RefusedVariableKeys, ScriptResults, read_results

STDERR_TAIL_LINES = 20
DEFAULT_MAX_RESULT_BYTES = 10 * 1024 * 1024  # the largest result file read back ([cronium] max_result_bytes)
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

    def metrics(self, image: str) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "duration_seconds": round(self.duration_seconds, 3),
            "peak_memory_bytes": self.peak_memory_bytes,
            "oom_killed": self.oom_killed,
            "image": image,
        }


class LineSplitter:
    """Turns stream chunks into whole lines, per stream."""

    def __init__(self, emit: LineCallback):
        self.emit = emit
        self.partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)

    def feed(self, stream: str, chunk: bytes) -> None:
        data = self.partial[stream] + chunk
        *lines, rest = data.split(b"\n")
        self.partial[stream] = rest
        for raw in lines:
            self._line(stream, raw)

    def close(self) -> None:
        for stream, rest in self.partial.items():
            if rest:
                self._line(stream, rest)
            self.partial[stream] = b""

    def _line(self, stream: str, raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        if stream == "stderr":
            self.stderr_tail.append(line)
        self.emit(stream, line)


def stderr_tail_of(data: bytes) -> list[str]:
    """The last stderr lines in ``data`` (read back from a log or a file), split as live lines are."""
    splitter = LineSplitter(lambda stream, line: None)
    splitter.feed("stderr", data)
    splitter.close()
    return list(splitter.stderr_tail)


def read_run_results(found: Mapping[str, bytes]) -> tuple[ScriptResults | None, ProtocolError | None]:
    """The script's results, or why they are unreadable; variable changes count even then (Cronium
    applies a set at once), so they are kept when another result file is malformed, and when the journal
    has lines with a refused key (the run fails naming them; the other changes count)."""
    try:
        return read_results(found), None
    except ProtocolError as exc:
        try:
            partial = read_results({k: v for k, v in found.items() if k == "variables.log"})
        except RefusedVariableKeys as refused:
            partial = ScriptResults(None, False, None, refused.changes)
        except ProtocolError:
            partial = None
        return partial, exc
