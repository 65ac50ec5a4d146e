"""Cronium's message templates: ``{{cronium.event.name}}``, ``{{cronium.input.order.id}}``,
``{{cronium.getVariables.KEY}}`` and ``{{cronium.getCondition}}``; nothing else is evaluated."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

_PLACEHOLDER = re.compile(r"\{\{\s*cronium\.([A-Za-z_]+)((?:\.[A-Za-z0-9_\-]+)*)\s*\}\}")


def _dig(value: Any, path: list[str]) -> Any:
    for part in path:
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def render(
    value: Any,
    *,
    event: Mapping[str, Any],
    input: Any,
    condition: bool | None,
    variable: Callable[[str], Any],
) -> Any:
    """``value`` with every placeholder replaced, recursively through lists and objects."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            root, rest = match.group(1), [p for p in match.group(2).split(".") if p]
            if root == "event":
                return _as_text(_dig(event, rest))
            if root == "input":
                return _as_text(_dig(input, rest))
            if root in ("getVariables", "getVariable", "variables") and rest:
                return _as_text(_dig(variable(rest[0]), rest[1:]))
            if root == "getCondition":
                return "true" if condition else "false"
            return match.group(0)  # not a Cronium placeholder: left as written

        return _PLACEHOLDER.sub(substitute, value)
    if isinstance(value, list):
        return [render(v, event=event, input=input, condition=condition, variable=variable) for v in value]
    if isinstance(value, Mapping):
        return {
            k: render(v, event=event, input=input, condition=condition, variable=variable) for k, v in value.items()
        }
    return value
