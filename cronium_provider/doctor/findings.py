"""What a doctor check finds: one line each, with its fix (no Airflow import)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# error: a run will fail (or a record is left out); warning: a run may fail or is at risk;
# note: the record will run, differently from Cronium (never changes the exit status)
Severity = Literal["error", "warning", "note"]

# Characters a terminal acts on or that hide text: C0/C1 controls (escape sequences, newlines that would start a
# forged line), line and paragraph separators, bidirectional overrides, and lone surrogates (undecodable names)
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def printable(text: str) -> str:
    """``text`` for a terminal: each character a terminal would act on written as its Python escape (``\\n``,
    ``\\x1b``), so a name from a record file can neither forge a line nor hide one."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape", "backslashreplace").decode("ascii"), text)


@dataclass(frozen=True)
class Finding:
    # e.g. "docker", "runtime-image", "tool-connection", "server", "pool", "resilience-store", "records", "difference"
    check: str
    severity: Severity
    subject: str  # what it is about: "event 12", "connection cronium_slack", "Docker daemon"
    message: str
    fix: str

    def line(self) -> str:
        return printable(f"{self.severity}: {self.subject}: {self.message} (fix: {self.fix})")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Finding:
        return cls(**{k: str(data[k]) for k in ("check", "severity", "subject", "message", "fix")})  # type: ignore[arg-type]


@dataclass
class Needs:
    """What the records of a folder need from Airflow, with the records that need each (``"event 12"``)."""

    # connection id -> {"conn_type": expected type, "records": [...], "tool": tool type}
    tool_connections: dict[str, dict[str, Any]] = field(default_factory=dict)
    # connection id -> {"host": ..., "port": ..., "records": [...]}
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    # pool name -> records
    pools: dict[str, list[str]] = field(default_factory=dict)
    # records that run scripts in containers (the Docker daemon and runtime image are needed when non-empty)
    container_records: list[str] = field(default_factory=list)
    # script language -> the records that run it in a container (the image is ``[cronium] image_<language>``,
    # else ``[cronium] image``)
    container_languages: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Needs:
        empty = cls()
        return cls(**{k: data.get(k) or type(getattr(empty, k))() for k in asdict(empty)})
