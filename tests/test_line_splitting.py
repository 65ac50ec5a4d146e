"""Splitting a script's output into log lines: linear in the output's size, each line bounded."""

from __future__ import annotations

import time

from cronium_provider.runners.outcome import MAX_LINE_BYTES, LineSplitter

CHUNK = 64 * 1024


def _feed_one_long_line(size: int) -> tuple[float, list[str]]:
    """Feed ``size`` bytes without a newline in 64 KiB chunks, as the followers read them; the seconds it
    took and the lines written."""
    lines: list[str] = []
    splitter = LineSplitter(lambda stream, line: lines.append(line))
    chunk = b"x" * CHUNK
    started = time.perf_counter()
    for _ in range(size // CHUNK):
        splitter.feed("stdout", chunk)
    splitter.feed("stdout", b"\nafter\n")
    splitter.close()
    return time.perf_counter() - started, lines


def test_a_50_mb_line_without_a_newline_is_split_in_linear_time_and_cut() -> None:
    """A script that writes 50 MB with no newline held the follower for seconds (each chunk copied the line
    so far) and then wrote it to the log whole; now 10 times the data takes about 10 times as long as a 5 MB
    baseline measured here, and the line is cut at the bound with a marker saying how much was cut."""
    small = 5 * 1024 * 1024
    baseline, small_lines = _feed_one_long_line(small)
    elapsed, lines = _feed_one_long_line(10 * small)
    assert elapsed < 30 * max(baseline, 0.005), f"50 MB took {elapsed:.2f} s, 5 MB {baseline:.3f} s"
    assert lines[1:] == ["after"] and small_lines[1:] == ["after"]
    cut = 10 * small - MAX_LINE_BYTES
    assert lines[0] == "x" * MAX_LINE_BYTES + f" [... {cut} more bytes of this line cut]", lines[0][-80:]


def test_lines_across_chunks_are_whole_and_short_ones_untouched() -> None:
    lines: list[tuple[str, str]] = []
    splitter = LineSplitter(lambda stream, line: lines.append((stream, line)))
    for part in (b"a", b"b\r\nc", b"d\n\nlast", b""):
        splitter.feed("stdout", part)
    splitter.feed("stderr", b"e\xc3")
    splitter.feed("stderr", b"\xa9\n")
    splitter.close()
    assert lines == [("stdout", "ab"), ("stdout", "cd"), ("stdout", ""), ("stderr", "e\u00e9"), ("stdout", "last")]
    assert list(splitter.stderr_tail) == ["e\u00e9"]
