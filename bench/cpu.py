"""CPU use for the benchmarks: the whole machine's (``/proc/stat``) and that of given process trees."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """The machine's busy CPU time (all cores, from /proc/stat) between ``start()`` and ``stop()``."""

    def __init__(self) -> None:
        self._start: tuple[int, int] = (0, 0)

    @staticmethod
    def _read() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields[:8]) - idle, sum(fields[:8])

    def start(self) -> CpuMeter:
        self._start = self._read()
        return self

    def stop(self) -> tuple[float, float]:
        """(busy CPU seconds, busy share of all cores 0..1) since ``start()``."""
        busy, total = self._read()
        d_busy, d_total = busy - self._start[0], total - self._start[1]
        return d_busy / TICK, (d_busy / d_total if d_total else 0.0)


def process_cpu_seconds(pids: Iterable[int]) -> float:
    """CPU seconds of live processes so far, each with the children it has reaped (utime..cstime)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        total += sum(int(v) for v in fields[11:15])
    return total / TICK


def pids_named(*names: str) -> list[int]:
    """Pids of processes whose command name (``/proc/<pid>/comm``) is one of ``names``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in names:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
