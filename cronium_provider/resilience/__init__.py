"""Resilience for Cronium tool actions: rate limits, circuit breakers and retries, shared across processes.

Every Airflow task runs in its own process, often on several workers, so the limits and breaker states live in a
:class:`StateStore` (SQLite file by default, Redis for multi-machine deployments) rather than in memory. The numbers
are Cronium's (reference section 5); :class:`ToolActionGuard` applies them in Cronium's order. No Airflow import
here: the layer is plain Python and testable on its own.
"""

from cronium_provider.exceptions import CircuitOpen, InvalidCredentials, RateLimitExceeded
from cronium_provider.resilience.circuit_breaker import (
    DEFAULT_BREAKER,
    DEFAULT_BREAKER_CONFIGS,
    BreakerConfig,
    BreakerSnapshot,
    CircuitBreaker,
    CircuitState,
    Outcome,
    Permit,
)
from cronium_provider.resilience.guard import ToolActionGuard, breaker_outcome
from cronium_provider.resilience.rate_limit import (
    DEFAULT_RATE_LIMITS,
    RateLimit,
    RateLimiter,
    normalize_tool_type,
)
from cronium_provider.resilience.retry import (
    AGGRESSIVE,
    CONSERVATIVE,
    STANDARD,
    STRATEGIES,
    WEBHOOK_TOOLS,
    ErrorKind,
    RetryStrategy,
    classify,
    delays,
    get_strategy,
    http_status,
    is_retryable,
    run_with_retry,
    strategy_for,
)
from cronium_provider.resilience.store import (
    RedisStateStore,
    SqliteStateStore,
    StateStore,
    WindowDecision,
    default_sqlite_path,
    store_from_url,
)

__all__ = [
    "AGGRESSIVE",
    "CONSERVATIVE",
    "DEFAULT_BREAKER",
    "DEFAULT_BREAKER_CONFIGS",
    "DEFAULT_RATE_LIMITS",
    "STANDARD",
    "STRATEGIES",
    "WEBHOOK_TOOLS",
    "BreakerConfig",
    "BreakerSnapshot",
    "CircuitBreaker",
    "CircuitOpen",
    "CircuitState",
    "ErrorKind",
    "InvalidCredentials",
    "Outcome",
    "Permit",
    "RateLimit",
    "RateLimitExceeded",
    "RateLimiter",
    "RedisStateStore",
    "RetryStrategy",
    "SqliteStateStore",
    "StateStore",
    "ToolActionGuard",
    "WindowDecision",
    "breaker_outcome",
    "classify",
    "default_sqlite_path",
    "delays",
    "get_strategy",
    "http_status",
    "is_retryable",
    "normalize_tool_type",
    "run_with_retry",
    "store_from_url",
    "strategy_for",
]
