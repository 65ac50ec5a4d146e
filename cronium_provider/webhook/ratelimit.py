"""Per-key rate limits for webhook calls: a token bucket per key, in the api-server process.

A bucket holds up to ``limit`` calls and refills at ``limit / window`` calls per second, so a quiet key may
send ``limit`` calls at once and then ``limit`` per ``window`` seconds. The defaults, 100 calls per 60 s,
are Cronium's own for its webhooks (apps/cronium-app/src/lib/webhooks/WebhookRouter.ts:113-117; its
workflow route has none). ``[cronium] webhook_rate_limit`` (0 turns the limit off) and
``[cronium] webhook_rate_window`` (seconds) change them.

Buckets are named by the key's SHA-256 digest, never by the key. Calls with keys that select no workflow
share one bucket, so guessing keys is throttled as well and unknown keys cannot grow the table. The state
is per process: with ``[api] workers`` > 1 each worker counts on its own.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_LIMIT = 100
DEFAULT_WINDOW = 60.0
UNKNOWN_KEYS_BUCKET = b"unknown"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    retry_after: float  # seconds until the next call would be admitted (0 when allowed)

    @property
    def retry_after_header(self) -> str:
        """``Retry-After`` in whole seconds, at least 1."""
        return str(max(1, math.ceil(self.retry_after)))


@dataclass
class _Bucket:
    tokens: float
    updated: float


class KeyedRateLimiter:
    """``limit`` calls per ``window`` seconds for each bucket name; ``limit`` 0 admits everything."""

    def __init__(
        self,
        limit: int = DEFAULT_LIMIT,
        window: float = DEFAULT_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 0 or window <= 0:
            raise ValueError(f"invalid webhook rate limit: {limit} calls per {window} s")
        self.limit = limit
        self.window = window
        self._rate = limit / window  # tokens per second
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[bytes, _Bucket] = {}

    def acquire(self, bucket: bytes) -> Decision:
        if self.limit == 0:
            return Decision(True, 0, 0, 0.0)
        now = self._clock()
        with self._lock:
            state = self._buckets.get(bucket)
            if state is None:
                state = self._buckets[bucket] = _Bucket(float(self.limit), now)
            state.tokens = min(float(self.limit), state.tokens + (now - state.updated) * self._rate)
            state.updated = now
            if state.tokens >= 1.0:
                state.tokens -= 1.0
                return Decision(True, self.limit, int(state.tokens), 0.0)
            return Decision(False, self.limit, 0, (1.0 - state.tokens) / self._rate)


def configured_limiter() -> KeyedRateLimiter:
    """The limiter ``[cronium] webhook_rate_limit`` / ``webhook_rate_window`` describe."""
    from cronium_provider.config import read_settings

    settings = read_settings()
    return KeyedRateLimiter(settings.webhook_rate_limit, settings.webhook_rate_window)
