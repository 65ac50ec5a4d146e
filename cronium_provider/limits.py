"""Bounds on input from outside (webhook bodies, tool parameters) shared by the modules that read it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests objects and lists more than ``limit`` levels deep (checked without recursion,
    so a value nested far deeper than Python's recursion limit is answered too)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, Mapping) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
