"""Per (tool type, credential) circuit breakers with Cronium's thresholds, shared by every process.

States and transitions (the whole state is one JSON document in the StateStore, changed under its lock):

* **closed** -- calls pass. A failure opens the circuit when the consecutive failures reach
  ``failure_threshold``, or when the calls recorded in the last ``window`` seconds number at least
  ``volume_threshold`` and their error rate is at least ``error_rate_threshold``. Both rules are checked when a
  failure is recorded, so a success never opens the circuit. A success resets the consecutive failure count.
* **open** -- calls are refused with :class:`CircuitOpen`, which says when the circuit will half-open, until
  ``open_timeout`` seconds after it opened.
* **half-open** -- exactly one trial call at a time, across all processes: the first caller takes a lease
  (``trial_timeout`` seconds, so a crashed worker cannot wedge the breaker), the others are refused. A trial success
  counts towards ``success_threshold`` consecutive successes, which close the circuit (with fresh counters); a trial
  failure reopens it for another ``open_timeout``.

Callers hold a :class:`Permit` from :meth:`CircuitBreaker.acquire` and report its outcome with
:meth:`CircuitBreaker.record`. Outcomes are SUCCESS, FAILURE or IGNORED; IGNORED (an error that says nothing about
the service's health, such as a rejected credential) changes no counter and only frees a half-open trial lease.
A result that arrives late -- a call admitted while closed that ends after the circuit opened, or a trial whose
lease expired and was taken over -- is ignored too: it describes an older state.
"""

from __future__ import annotations

import enum
import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

from cronium_provider.exceptions import CircuitOpen
from cronium_provider.resilience.rate_limit import normalize_tool_type
from cronium_provider.resilience.store import JSONState, StateStore

#: At most this many recent calls are kept for the error-rate rule (tool calls are rate limited far below it).
MAX_WINDOW_CALLS = 1000


class CircuitState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    IGNORED = "ignored"


@dataclass(frozen=True)
class BreakerConfig:
    """Thresholds of one breaker. Rates are fractions (0.5 = 50 %), times are seconds."""

    failure_threshold: int = 5
    success_threshold: int = 2
    open_timeout: float = 60.0
    volume_threshold: int = 10
    error_rate_threshold: float = 0.5
    window: float = 60.0
    trial_timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.success_threshold < 1 or self.volume_threshold < 1:
            raise ValueError(f"thresholds must be >= 1: {self}")
        if not 0 < self.error_rate_threshold <= 1:
            raise ValueError(f"error_rate_threshold must be in (0, 1]: {self}")
        if self.open_timeout <= 0 or self.window <= 0 or self.trial_timeout <= 0:
            raise ValueError(f"times must be > 0: {self}")


DEFAULT_BREAKER = BreakerConfig()

#: Cronium's per-tool thresholds; every other tool uses :data:`DEFAULT_BREAKER`.
DEFAULT_BREAKER_CONFIGS: Mapping[str, BreakerConfig] = MappingProxyType(
    {
        "slack": replace(DEFAULT_BREAKER, failure_threshold=3, open_timeout=30.0, error_rate_threshold=0.3),
        "discord": replace(DEFAULT_BREAKER, failure_threshold=3, open_timeout=30.0, error_rate_threshold=0.3),
        "email": replace(DEFAULT_BREAKER, failure_threshold=5, open_timeout=60.0, error_rate_threshold=0.4),
        "google-sheets": replace(DEFAULT_BREAKER, failure_threshold=2, open_timeout=120.0, error_rate_threshold=0.2),
    }
)


def _seconds(value: float) -> str:
    return f"{max(0.1, math.ceil(value * 10 - 1e-9) / 10):.1f}"


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Permit:
    """Leave to make one call; hand it back to :meth:`CircuitBreaker.record`. ``trial`` is set for half-open trials."""

    key: str
    tool_type: str
    credential_id: str
    trial: str | None
    admitted_at: float


@dataclass(frozen=True)
class BreakerSnapshot:
    """A read-only view of one breaker, for logs and tests (the effective state: open past its timeout is half-open)."""

    state: CircuitState
    consecutive_failures: int
    half_open_successes: int
    calls_in_window: int
    failures_in_window: int
    opened_at: float | None
    reason: str | None
    trial_in_progress: bool
    retry_after: float


def _fresh() -> JSONState:
    return {
        "state": CircuitState.CLOSED.value,
        "failures": 0,
        "successes": 0,
        "opened_at": None,
        "reason": None,
        "trial": None,
        "trial_until": 0.0,
        "calls": [],
    }


class CircuitBreaker:
    """Circuit breakers keyed by (tool type, credential id), their state in a StateStore."""

    def __init__(
        self,
        store: StateStore,
        configs: Mapping[str, BreakerConfig] | None = None,
        *,
        default: BreakerConfig = DEFAULT_BREAKER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``configs`` override or extend :data:`DEFAULT_BREAKER_CONFIGS`; ``default`` covers every other tool."""
        merged = dict(DEFAULT_BREAKER_CONFIGS)
        merged.update({normalize_tool_type(k): v for k, v in (configs or {}).items()})
        self.store = store
        self.configs: Mapping[str, BreakerConfig] = MappingProxyType(merged)
        self.default = default
        self.clock = clock

    def config_for(self, tool_type: str) -> BreakerConfig:
        return self.configs.get(normalize_tool_type(tool_type), self.default)

    @staticmethod
    def key(tool_type: str, credential_id: str) -> str:
        return f"breaker:{quote(normalize_tool_type(tool_type), safe='')}:{quote(str(credential_id), safe='')}"

    def _ttl(self, config: BreakerConfig) -> float:
        # Garbage collection only; long enough never to forget an open circuit or a window that still matters.
        return max(24 * 3600.0, 10 * max(config.open_timeout, config.window, config.trial_timeout))

    def acquire(self, tool_type: str, credential_id: str) -> Permit:
        """Leave for one call, or :class:`CircuitOpen` (open, or half-open with its one trial call in flight)."""
        tool = normalize_tool_type(tool_type)
        cred = str(credential_id)
        config = self.config_for(tool)
        key = self.key(tool, cred)
        now = self.clock()

        def mutate(doc: JSONState | None) -> tuple[JSONState | None, Permit | CircuitOpen]:
            st = doc if doc is not None else _fresh()
            changed = False
            if st["state"] == CircuitState.OPEN:
                reopen_at = float(st["opened_at"]) + config.open_timeout
                if now < reopen_at:
                    return None, CircuitOpen(
                        tool,
                        cred,
                        f"circuit breaker for {tool} credential {cred!r} is open ({st['reason']}); "
                        f"it will half-open in {_seconds(reopen_at - now)} s (at {_utc(reopen_at)})",
                        reopen_at - now,
                        str(st["reason"]),
                    )
                st.update(state=CircuitState.HALF_OPEN.value, successes=0, trial=None, trial_until=0.0)
                changed = True
            if st["state"] == CircuitState.HALF_OPEN:
                if st["trial"] is not None and now < float(st["trial_until"]):
                    wait = float(st["trial_until"]) - now
                    return (st if changed else None), CircuitOpen(
                        tool,
                        cred,
                        f"circuit breaker for {tool} credential {cred!r} is half-open and its one trial call is "
                        f"in progress; retry once it completes (its lease ends in {_seconds(wait)} s)",
                        wait,
                        str(st["reason"]),
                    )
                token = uuid.uuid4().hex
                st.update(trial=token, trial_until=now + config.trial_timeout)
                return st, Permit(key, tool, cred, token, now)
            return (st if changed else None), Permit(key, tool, cred, None, now)

        result = self.store.update(key, mutate, ttl=self._ttl(config))
        if isinstance(result, CircuitOpen):
            raise result
        return result

    def record(self, permit: Permit, outcome: Outcome) -> None:
        """Report how the call made under ``permit`` ended."""
        config = self.config_for(permit.tool_type)
        now = self.clock()

        def mutate(doc: JSONState | None) -> tuple[JSONState | None, None]:
            st = doc if doc is not None else _fresh()
            if permit.trial is not None:
                if st["state"] != CircuitState.HALF_OPEN or st["trial"] != permit.trial:
                    return None, None  # lease expired and taken over, or state moved on: a stale result
                st["trial"] = None
                st["trial_until"] = 0.0
                if outcome == Outcome.SUCCESS:
                    st["successes"] = int(st["successes"]) + 1
                    if st["successes"] >= config.success_threshold:
                        return _fresh(), None
                elif outcome == Outcome.FAILURE:
                    self._open(st, now, "its half-open trial call failed")
                return st, None
            if st["state"] != CircuitState.CLOSED or outcome == Outcome.IGNORED:
                return None, None  # admitted before the circuit opened: describes an older state
            calls: list[list[Any]] = [c for c in st["calls"] if float(c[0]) > now - config.window]
            calls.append([now, 1 if outcome == Outcome.FAILURE else 0])
            st["calls"] = calls[-MAX_WINDOW_CALLS:]
            if outcome == Outcome.SUCCESS:
                st["failures"] = 0
                return st, None
            st["failures"] = int(st["failures"]) + 1
            volume = len(st["calls"])
            failed = sum(int(c[1]) for c in st["calls"])
            if st["failures"] >= config.failure_threshold:
                self._open(st, now, f"{st['failures']} consecutive failures")
            elif volume >= config.volume_threshold and failed >= config.error_rate_threshold * volume - 1e-9:
                self._open(
                    st,
                    now,
                    f"{failed} of {volume} calls failed in {config.window:g} s, "
                    f"error rate {100 * failed / volume:.0f} % >= {100 * config.error_rate_threshold:g} %",
                )
            return st, None

        self.store.update(permit.key, mutate, ttl=self._ttl(config))

    @staticmethod
    def _open(st: JSONState, now: float, reason: str) -> None:
        st.update(
            state=CircuitState.OPEN.value,
            opened_at=now,
            reason=reason,
            successes=0,
            trial=None,
            trial_until=0.0,
            calls=[],
        )

    def snapshot(self, tool_type: str, credential_id: str) -> BreakerSnapshot:
        """The breaker's effective state now (does not change it)."""
        config = self.config_for(tool_type)
        now = self.clock()
        doc = self.store.update(self.key(tool_type, credential_id), lambda d: (None, d))
        st = doc if doc is not None else _fresh()
        state = CircuitState(st["state"])
        retry_after = 0.0
        if state == CircuitState.OPEN:
            reopen_at = float(st["opened_at"]) + config.open_timeout
            if now >= reopen_at:
                state = CircuitState.HALF_OPEN
                st.update(successes=0, trial=None)
            else:
                retry_after = reopen_at - now
        trial = state == CircuitState.HALF_OPEN and st["trial"] is not None and now < float(st["trial_until"])
        if trial:
            retry_after = float(st["trial_until"]) - now
        calls = [c for c in st["calls"] if float(c[0]) > now - config.window]
        return BreakerSnapshot(
            state=state,
            consecutive_failures=int(st["failures"]),
            half_open_successes=int(st["successes"]),
            calls_in_window=len(calls),
            failures_in_window=sum(int(c[1]) for c in calls),
            opened_at=float(st["opened_at"]) if st["opened_at"] is not None else None,
            reason=st["reason"],
            trial_in_progress=trial,
            retry_after=retry_after,
        )
