"""Cronium's three retry strategies, error classification, and a retry loop that never hides the last error.

Delay before retry ``k`` (``k = 0`` before the second attempt)::

    base_k  = min(max_delay, initial_delay * multiplier ** k)
    delay_k = min(max_delay, base_k * (1 + jitter * (2 * u_k - 1)))     u_k uniform in [0, 1) from ``rng``

so with ``jitter = 0.1`` each delay is uniform within +/- 10 % of its base and never above ``max_delay``;
``jitter = 0`` gives exactly the base. Jitter spreads the retries of many workers that failed together, so they
do not hit a recovering service in lockstep. :func:`delays` is pure: the schedule can be checked without sleeping.

What is retried (:func:`classify`, following the exception's ``__cause__`` / ``__context__`` chain so wrapped
errors are seen): network errors (connection refused / reset / aborted, DNS failure, dropped SMTP connection,
``requests`` connection errors) and timeouts (``TimeoutError``, ``requests`` timeouts, HTTP 408), and rate limits
(HTTP 429), by every strategy; HTTP 502 and 503 only by the aggressive strategy. Never retried: HTTP 401 and 403
and rejected credentials (:class:`InvalidCredentials`, ``smtplib.SMTPAuthenticationError``) -- repeating them cannot
succeed and may lock the account -- nor other 4xx, other 5xx, refusals by this layer's own rate limiter or circuit
breaker (fail fast), or anything unrecognised. A retried error that carries the service's ``Retry-After`` (its
``retry_after`` seconds) waits that long instead, at most :data:`MAX_RETRY_AFTER`.
"""

from __future__ import annotations

import enum
import random
import smtplib
import socket
import time
import urllib.error
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import MappingProxyType
from typing import Protocol, TypeVar

from cronium_provider.exceptions import CircuitOpen, InvalidCredentials, RateLimitExceeded
from cronium_provider.resilience.rate_limit import normalize_tool_type

T = TypeVar("T")


class RandomSource(Protocol):
    """Anything with ``random() -> float in [0, 1)``, e.g. :class:`random.Random`."""

    def random(self) -> float: ...


@dataclass(frozen=True)
class RetryStrategy:
    """Exponential backoff: ``max_attempts`` calls in all, delays as in the module docstring."""

    name: str
    max_attempts: int
    initial_delay: float
    max_delay: float
    multiplier: float
    jitter: float = 0.0
    #: HTTP statuses retried besides network errors and timeouts.
    retry_statuses: frozenset[int] = field(default=frozenset({408, 429}))

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.initial_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ValueError(f"invalid retry strategy: {self}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1): {self}")


STANDARD = RetryStrategy("standard", max_attempts=3, initial_delay=1.0, max_delay=10.0, multiplier=2.0, jitter=0.1)
#: Also retries HTTP 502/503, which webhook endpoints answer while they redeploy; chosen by ``retry_strategy``.
AGGRESSIVE = RetryStrategy(
    "aggressive",
    max_attempts=5,
    initial_delay=0.5,
    max_delay=30.0,
    multiplier=1.5,
    jitter=0.1,
    retry_statuses=frozenset({408, 429, 502, 503}),
)
CONSERVATIVE = RetryStrategy("conservative", max_attempts=2, initial_delay=2.0, max_delay=5.0, multiplier=2.0)

STRATEGIES: Mapping[str, RetryStrategy] = MappingProxyType({s.name: s for s in (STANDARD, AGGRESSIVE, CONSERVATIVE)})

#: Tools retried with :data:`AGGRESSIVE` by default: none. Cronium chooses it for an action whose
#: ``features.webhookSupport`` is set (apps/cronium-app/src/lib/scheduler/tool-action-executor.ts:373-375), and
#: none of its actions sets it; an operator may still ask for it (its ``retry_strategy``).
WEBHOOK_TOOLS: frozenset[str] = frozenset()


def strategy_for(tool_type: str) -> RetryStrategy:
    """Cronium's default: standard for every tool (aggressive only for :data:`WEBHOOK_TOOLS`, none)."""
    return AGGRESSIVE if normalize_tool_type(tool_type) in WEBHOOK_TOOLS else STANDARD


def get_strategy(strategy: RetryStrategy | str) -> RetryStrategy:
    if isinstance(strategy, RetryStrategy):
        return strategy
    try:
        return STRATEGIES[strategy.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown retry strategy {strategy!r}; expected one of {sorted(STRATEGIES)}") from None


def delays(strategy: RetryStrategy | str, rng: RandomSource | None = None) -> list[float]:
    """The sleeps between attempts (``max_attempts - 1`` of them); pure given ``rng``."""
    strategy = get_strategy(strategy)
    source: RandomSource = rng if rng is not None else random.Random()  # noqa: S311 - jitter, not cryptography
    result = []
    for k in range(strategy.max_attempts - 1):
        base = min(strategy.max_delay, strategy.initial_delay * strategy.multiplier**k)
        if strategy.jitter:
            base = min(strategy.max_delay, base * (1 + strategy.jitter * (2 * source.random() - 1)))
        result.append(base)
    return result


class ErrorKind(enum.StrEnum):
    NETWORK = "network"  # connection refused/reset/aborted, DNS, dropped connection, timeouts, HTTP 408
    RATE_LIMITED = "rate_limited"  # HTTP 429 from the remote service
    SERVER = "server"  # HTTP 5xx
    AUTH = "auth"  # HTTP 401/403, invalid credentials
    CLIENT = "client"  # other HTTP 4xx
    REJECTED = "rejected"  # refused by this layer (rate limiter, circuit breaker)
    UNKNOWN = "unknown"


def http_status(exc: BaseException) -> int | None:
    """The HTTP status on an exception: ``status_code``, ``status``, ``response.status_code``, urllib's ``code``."""
    candidates: list[object] = [getattr(exc, "status_code", None), getattr(exc, "status", None)]
    response = getattr(exc, "response", None)
    if response is not None:
        candidates += [getattr(response, "status_code", None), getattr(response, "status", None)]
    if isinstance(exc, urllib.error.HTTPError):
        candidates.append(exc.code)
    for value in candidates:
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
            return value
    return None


def _network_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [
        ConnectionError,  # refused, reset, aborted, broken pipe; http.client.RemoteDisconnected
        TimeoutError,  # socket.timeout is an alias
        socket.gaierror,
        smtplib.SMTPServerDisconnected,
        smtplib.SMTPConnectError,
    ]
    try:
        import requests

        types += [requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError]
    except ImportError:  # pragma: no cover - requests is always there beside Airflow
        pass
    return tuple(types)


_NETWORK = _network_types()


def _classify_one(exc: BaseException) -> ErrorKind:
    if isinstance(exc, CircuitOpen | RateLimitExceeded):
        return ErrorKind.REJECTED
    if isinstance(exc, InvalidCredentials | smtplib.SMTPAuthenticationError):
        return ErrorKind.AUTH
    status = http_status(exc)
    if status is not None:
        if status in (401, 403):
            return ErrorKind.AUTH
        if status == 408:
            return ErrorKind.NETWORK
        if status == 429:
            return ErrorKind.RATE_LIMITED
        if status >= 500:
            return ErrorKind.SERVER
        if status >= 400:
            return ErrorKind.CLIENT
    if isinstance(exc, _NETWORK):
        return ErrorKind.NETWORK
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        return _classify_one(exc.reason)
    return ErrorKind.UNKNOWN


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = (
            current.__cause__
            if current.__cause__ is not None
            else (None if current.__suppress_context__ else current.__context__)
        )


def classify(exc: BaseException) -> ErrorKind:
    """The kind of the first exception in the cause/context chain that is recognised (else UNKNOWN)."""
    for item in _chain(exc):
        kind = _classify_one(item)
        if kind is not ErrorKind.UNKNOWN:
            return kind
    return ErrorKind.UNKNOWN


def is_retryable(exc: BaseException, strategy: RetryStrategy | str = STANDARD) -> bool:
    """Whether ``strategy`` retries ``exc`` (see the module docstring)."""
    strategy = get_strategy(strategy)
    kind = classify(exc)
    if kind in (ErrorKind.NETWORK, ErrorKind.RATE_LIMITED):
        return True
    if kind is ErrorKind.SERVER:
        for item in _chain(exc):
            status = http_status(item)
            if status is not None:
                return status in strategy.retry_statuses
    return False


#: The longest ``Retry-After`` a retry waits for: a service asking for longer gets the task's own retries.
MAX_RETRY_AFTER = 60.0


def retry_after_seconds(value: str | None) -> float | None:
    """An HTTP ``Retry-After`` (seconds, or an HTTP date) in seconds from now; None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(text) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def asked_delay(exc: BaseException) -> float:
    """How long a rate-limited service asked to wait (its ``Retry-After``, on the exception's ``retry_after``),
    at most :data:`MAX_RETRY_AFTER`; 0 when it asked nothing."""
    if classify(exc) is not ErrorKind.RATE_LIMITED:
        return 0.0
    for item in _chain(exc):
        value = getattr(item, "retry_after", None)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return min(float(value), MAX_RETRY_AFTER)
    return 0.0


def run_with_retry(
    fn: Callable[[], T],
    strategy: RetryStrategy | str = STANDARD,
    *,
    sleep: Callable[[float], object] = time.sleep,
    on_retry: Callable[[int, Exception, float], object] | None = None,
    rng: RandomSource | None = None,
    should_retry: Callable[[Exception], bool] | None = None,
) -> T:
    """Call ``fn`` until it returns, at most ``strategy.max_attempts`` times; re-raise the last error.

    A non-retryable error is raised at once. ``on_retry(attempt, error, delay)`` runs before each sleep (attempt
    is 1-based: the one that failed). ``should_retry`` replaces :func:`is_retryable` for this strategy.
    """
    strategy = get_strategy(strategy)
    schedule = delays(strategy, rng)
    decide = should_retry if should_retry is not None else (lambda exc: is_retryable(exc, strategy))
    attempt = 1
    while True:
        try:
            return fn()
        except Exception as exc:
            if attempt >= strategy.max_attempts or not decide(exc):
                raise
            delay = max(schedule[attempt - 1], asked_delay(exc))
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            sleep(delay)
            attempt += 1
