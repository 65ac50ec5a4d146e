"""Record findings: each one names the file, the record and the field, and never carries a secret value.

A finding is an ``error`` (what it names is left out: no DAG is built from it) or a ``warning`` (nothing is
left out: one copy of the record is used and the finding says which, e.g. an event nested in a workflow
node that differs from the copy in force).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class RecordError:
    """One finding in one record (or in a whole file when ``kind`` is None); an error unless ``severity``
    says ``warning``."""

    path: str
    message: str
    kind: str | None = None
    record_id: int | str | None = None
    field: str | None = None
    severity: Severity = "error"

    def __str__(self) -> str:
        parts = [self.path]
        if self.kind is not None:
            parts.append(f"{self.kind} {self.record_id if self.record_id is not None else '?'}")
        if self.field:
            parts.append(f"field {self.field}")
        parts.append(self.message)
        return ": ".join(parts)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["text"] = str(self)
        return data


class RecordsInvalid(ValueError):
    """Raised by callers that want all-or-nothing loading; carries every error found."""

    def __init__(self, errors: list[RecordError]):
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))
