"""Bounds on input from outside (webhook bodies, tool parameters) shared by the modules that read it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# A tool parameter given as JSON text (Slack's ``blocks``, Discord's ``embeds``, Notion's blocks and properties):
# at most this long and this deep (Slack takes 50 blocks, Discord 10 embeds of 6000 characters: an honest value
# is a few KiB, a few levels deep)
MAX_JSON_TEXT_BYTES = 256 * 1024
MAX_JSON_DEPTH = 64


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


CHUNK_BYTES = 65536


def max_response_bytes() -> int:
    """``[cronium] max_http_response_bytes``: the largest answer an HTTP_REQUEST event or a tool's API call reads."""
    from cronium_provider.config import read_settings

    return read_settings("max_http_response_bytes").max_http_response_bytes


def read_capped(response: Any, limit: int, *, cut: bool = False) -> bytes | None:
    """A streamed ``requests`` response's body, or None as soon as it is over ``limit`` bytes (declared or
    read); with ``cut``, its first ``limit`` bytes instead. The connection is closed either way."""
    try:
        declared = str(response.headers.get("Content-Length", ""))
        if not cut and declared.isdigit() and int(declared) > limit:
            return None
        body = bytearray()
        for chunk in response.iter_content(CHUNK_BYTES):
            body += chunk
            if len(body) > limit:
                return bytes(body[:limit]) if cut else None
        return bytes(body)
    finally:
        response.close()
