"""What a doctor check finds: one line each, with its fix (no Airflow import)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# error: a run will fail (or a record is left out); warning: a run may fail or is at risk;
# note: the record will run, differently from Cronium (never changes the exit status)
Severity = Literal["error", "warning", "note"]


@dataclass(frozen=True)
class Finding:
    # e.g. "docker", "runtime-image", "tool-connection", "server", "pool", "resilience-store", "records", "difference"
    check: str
    severity: Severity
    subject: str  # what it is about: "event 12", "connection cronium_slack", "Docker daemon"
    message: str
    fix: str

    def line(self) -> str:
        return f"{self.severity}: {self.subject}: {self.message} (fix: {self.fix})"

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
