"""Per (user, tool type) rate limits and quotas with Cronium's tables, shared by every process through a StateStore.

A call is admitted when each of three sliding windows has room (apps/cronium-app/src/lib/security/rate-limiter.ts):

* at most ``max_calls`` in any interval of ``window`` seconds (60 s): the tool's per-minute limit
  (rate-limiter.ts:33-74, 117-198; slack 60, email 30...). Cronium keeps a ``burstAllowance`` in that table but
  never applies it, so neither does the provider: the minute's calls may all go at once;
* at most ``hourly`` in any hour and ``daily`` in any day: the user's quota of its free tier, the tier of every
  user without one of their own (rate-limiter.ts:79-95, 214-298: 100 an hour, 1000 a day).

Cronium's minute is a fixed window that opens at its first call; the provider's slides. A sliding window never
admits a call that Cronium's would refuse (the calls of Cronium's current window are among those of the last
60 s), and refuses only what a fixed window lets through at its edge: up to twice the limit within a few
seconds, which is what the tools' own limits answer with HTTP 429. Cronium counts a quota in its windows' rows,
not in calls (at most 60 an hour, so its hourly quota never binds): the provider counts calls, as the tiers
promise.

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

HOUR = 3600.0
DAY = 86400.0
#: Cronium's free tier, every user's without a tier of their own (rate-limiter.ts:80-84)
FREE_HOURLY = 100
FREE_DAILY = 1000


@dataclass(frozen=True)
class RateLimit:
    """``max_calls`` per ``window`` seconds; ``hourly`` and ``daily`` quotas (None: none).

    ``burst_allowance`` is Cronium's table's figure, kept for the record: Cronium never applies it.
    """

    max_calls: int
    burst_allowance: int = 0
    window: float = 60.0
    hourly: int | None = FREE_HOURLY
    daily: int | None = FREE_DAILY

    def __post_init__(self) -> None:
        if self.max_calls < 1 or self.burst_allowance < 0 or self.window <= 0:
            raise ValueError(f"invalid rate limit: {self}")
        if (self.hourly is not None and self.hourly < 1) or (self.daily is not None and self.daily < 1):
            raise ValueError(f"invalid quota: {self}")

    def windows(self) -> tuple[tuple[float, int], ...]:
        """The ``(window, limit)`` pairs a call must fit in."""
        quotas = ((HOUR, self.hourly), (DAY, self.daily))
        return ((self.window, self.max_calls), *((w, n) for w, n in quotas if n is not None))

    def describe(self) -> str:
        quotas = [f"{n} per {name}" for name, n in (("hour", self.hourly), ("day", self.daily)) if n is not None]
        return ", ".join([f"{self.max_calls} calls per {_seconds(self.window)} s", *quotas])


#: Tool type used for every tool without its own row.
OTHER = "other"

#: Cronium's table (max calls / burst allowance, 60 s window: rate-limiter.ts:33-74).
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
