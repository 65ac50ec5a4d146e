"""Per (user, tool type) rate limits with Cronium's table, shared by every process through a StateStore.

What a limit of ``max_calls`` per ``window`` with burst ``burst`` means here (two sliding windows, exact):

* at most ``max_calls`` admitted calls in any interval of ``window`` seconds (60 s), and
* at most ``burst`` admitted calls in any interval of ``burst_window`` seconds, by default ``window / 6`` (10 s).

So slack (60 / 10) admits 10 calls at once, then one more each time an old call leaves the 10 s window, and
never more than 60 in any 60 s; email (30 / 5) admits 5 per 10 s and 30 per minute. For tools whose burst is more
than a sixth of the limit (google-sheets 100 / 20) the burst rule shapes the first seconds and the 60 s rule caps
the minute. A sliding window has no boundary effect: a fixed window would let ``2 * max_calls`` through around
its edge.

:meth:`RateLimiter.acquire` fails fast: it never sleeps, it raises :class:`RateLimitExceeded` saying when a call
would be admitted again. Waiting is the caller's choice (Airflow retries the task later, with no worker slot held).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import quote

from cronium_provider.exceptions import RateLimitExceeded
from cronium_provider.resilience.store import StateStore


@dataclass(frozen=True)
class RateLimit:
    """``max_calls`` per ``window`` seconds, ``burst`` per ``burst_window`` seconds (``window / 6`` when unset)."""

    max_calls: int
    burst: int
    window: float = 60.0
    burst_window: float | None = None

    def __post_init__(self) -> None:
        if self.max_calls < 1 or self.burst < 1 or self.window <= 0:
            raise ValueError(f"invalid rate limit: {self}")
        if self.burst_window is not None and not 0 < self.burst_window <= self.window:
            raise ValueError(f"burst_window must be in (0, window]: {self}")

    @property
    def effective_burst_window(self) -> float:
        return self.burst_window if self.burst_window is not None else self.window / 6

    def windows(self) -> tuple[tuple[float, int], ...]:
        """The ``(window, limit)`` pairs a call must fit in."""
        return ((self.window, self.max_calls), (self.effective_burst_window, self.burst))

    def describe(self) -> str:
        return (
            f"{self.max_calls} calls per {_seconds(self.window)} s, "
            f"burst {self.burst} per {_seconds(self.effective_burst_window)} s"
        )


#: Tool type used for every tool without its own row.
OTHER = "other"

#: Cronium's table (max calls / burst, 60 s window).
DEFAULT_RATE_LIMITS: Mapping[str, RateLimit] = MappingProxyType(
    {
        "slack": RateLimit(60, 10),
        "discord": RateLimit(60, 10),
        "email": RateLimit(30, 5),
        "google-sheets": RateLimit(100, 20),
        "notion": RateLimit(50, 10),
        "teams": RateLimit(50, 10),
        "trello": RateLimit(100, 20),
        OTHER: RateLimit(30, 5),
    }
)


def normalize_tool_type(tool_type: str) -> str:
    """``SLACK`` / ``google_sheets`` / ``Google-Sheets`` -> ``slack`` / ``google-sheets`` (Cronium spells both)."""
    return tool_type.strip().lower().replace("_", "-")


def _seconds(value: float) -> str:
    return f"{value:g}"


class RateLimiter:
    """Admits or refuses tool action calls per (user, tool type); all state lives in the StateStore."""

    def __init__(
        self,
        store: StateStore,
        limits: Mapping[str, RateLimit] | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``limits`` override or extend :data:`DEFAULT_RATE_LIMITS` per tool type (``other`` is the fallback)."""
        merged = dict(DEFAULT_RATE_LIMITS)
        merged.update({normalize_tool_type(k): v for k, v in (limits or {}).items()})
        self.store = store
        self.limits: Mapping[str, RateLimit] = MappingProxyType(merged)
        self.clock = clock

    def limit_for(self, tool_type: str) -> RateLimit:
        return self.limits.get(normalize_tool_type(tool_type), self.limits[OTHER])

    @staticmethod
    def key(user_id: str, tool_type: str) -> str:
        # Quoted so a ':' in a user id cannot make two (user, tool) pairs share a key.
        return f"rate:{quote(str(user_id), safe='')}:{quote(normalize_tool_type(tool_type), safe='')}"

    def acquire(self, user_id: str, tool_type: str) -> float:
        """Admit one call now and return its admission time, or raise :class:`RateLimitExceeded` (never sleeps)."""
        limit = self.limit_for(tool_type)
        now = self.clock()
        decision = self.store.hit_windows(self.key(user_id, tool_type), now, limit.windows())
        if not decision.admitted:
            raise RateLimitExceeded(str(user_id), normalize_tool_type(tool_type), limit, decision.retry_after)
        return now
