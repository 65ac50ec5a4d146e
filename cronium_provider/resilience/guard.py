"""One guard around a tool action's remote call, in Cronium's order: rate limit, then retries through the breaker.

1. The rate limit is taken once per action (not per attempt): a retry repeats delivery of the same action, and
   charging it again would let one flaky call use up a user's budget. A refusal raises
   :class:`RateLimitExceeded` at once.
2. The retry loop runs each attempt through the circuit breaker of (tool type, credential): an open circuit
   raises :class:`CircuitOpen` at once, which the loop does not retry (fail fast).
3. Each attempt's outcome is recorded in the breaker:

   * success -> SUCCESS;
   * network errors, timeouts, HTTP 429, HTTP 5xx and unrecognised errors -> FAILURE (the service, or the way to
     it, is unhealthy);
   * HTTP 401/403, invalid credentials and other HTTP 4xx -> IGNORED: the service answered, so they say nothing
     about its health; opening the circuit would only replace the real, actionable error ("401 Unauthorized: fix the
     credential") with "circuit open". They are never retried either, so a bad credential costs one call per action.

``fn`` should be the remote call alone (templating and validation happen before it), so a bug in preparing the
call is not mistaken for an unhealthy service.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from cronium_provider.resilience.circuit_breaker import BreakerConfig, CircuitBreaker, Outcome
from cronium_provider.resilience.rate_limit import RateLimit, RateLimiter
from cronium_provider.resilience.retry import (
    ErrorKind,
    RandomSource,
    RetryStrategy,
    classify,
    get_strategy,
    run_with_retry,
    strategy_for,
)
from cronium_provider.resilience.store import StateStore, store_from_url

T = TypeVar("T")

_BREAKER_NEUTRAL = frozenset({ErrorKind.AUTH, ErrorKind.CLIENT, ErrorKind.REJECTED})


def breaker_outcome(exc: BaseException) -> Outcome:
    """How an attempt that raised ``exc`` counts for the circuit breaker (see the module docstring)."""
    if not isinstance(exc, Exception):
        return Outcome.IGNORED  # interrupted (KeyboardInterrupt, SystemExit): the call never finished
    return Outcome.IGNORED if classify(exc) in _BREAKER_NEUTRAL else Outcome.FAILURE


class ToolActionGuard:
    """Rate limiter, circuit breaker and retries over one shared StateStore."""

    def __init__(
        self,
        store: StateStore | None = None,
        *,
        rate_limits: Mapping[str, RateLimit] | None = None,
        breaker_configs: Mapping[str, BreakerConfig] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] = time.sleep,
        rng: RandomSource | None = None,
    ) -> None:
        """``store`` defaults to the SQLite file in ``$AIRFLOW_HOME``; the mappings override Cronium's tables."""
        self.store = store if store is not None else store_from_url(None)
        self.rate_limiter = RateLimiter(self.store, rate_limits, clock=clock)
        self.breaker = CircuitBreaker(self.store, breaker_configs, clock=clock)
        self.sleep = sleep
        self.rng = rng

    def run(
        self,
        fn: Callable[[], T],
        *,
        user_id: str,
        tool_type: str,
        credential_id: str,
        strategy: RetryStrategy | str | None = None,
        on_retry: Callable[[int, Exception, float], object] | None = None,
    ) -> T:
        """Run ``fn`` guarded; return its result or raise the last error (``RateLimitExceeded``, ``CircuitOpen``,
        or the call's own error). ``strategy`` defaults to :func:`strategy_for` the tool type."""
        chosen = get_strategy(strategy) if strategy is not None else strategy_for(tool_type)
        self.rate_limiter.acquire(user_id, tool_type)

        def attempt() -> T:
            permit = self.breaker.acquire(tool_type, credential_id)
            try:
                result = fn()
            except BaseException as exc:
                self.breaker.record(permit, breaker_outcome(exc))
                raise
            self.breaker.record(permit, Outcome.SUCCESS)
            return result

        return run_with_retry(attempt, chosen, sleep=self.sleep, on_retry=on_retry, rng=self.rng)
