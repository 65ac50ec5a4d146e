"""The resilience layer: rate limits, circuit breakers and retries over real SQLite files and a real Redis server.

Cross-process behaviour is tested with real OS processes (a small worker script run with this interpreter), so the
atomicity claims of both stores are exercised, not simulated. Time-dependent rules use an injected clock where the
point is the rule, and the real clock with short windows where the point is concurrency.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import select
import smtplib
import socket
import subprocess
import sys
import time
import urllib.error
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests

from cronium_provider.resilience import (
    AGGRESSIVE,
    CONSERVATIVE,
    DEFAULT_BREAKER,
    DEFAULT_BREAKER_CONFIGS,
    DEFAULT_RATE_LIMITS,
    STANDARD,
    BreakerConfig,
    CircuitBreaker,
    CircuitOpen,
    CircuitState,
    ErrorKind,
    InvalidCredentials,
    Outcome,
    RateLimit,
    RateLimiter,
    RateLimitExceeded,
    RedisStateStore,
    RetryStrategy,
    SqliteStateStore,
    StateStore,
    ToolActionGuard,
    breaker_outcome,
    classify,
    delays,
    is_retryable,
    run_with_retry,
    store_from_url,
    strategy_for,
)
from tests.conftest import REPO

T0 = 1_000_000.0  # fake clocks start here


class Clock:
    """An injectable clock: ``clock()`` returns ``now``; tests move it with ``advance``."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class HTTPStatusError(Exception):
    """Stands in for any client library's HTTP error: it carries ``status_code``."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status_code = status


def requests_http_error(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(f"{status} error", response=response)


# --------------------------------------------------------------------------------------------------------------------
# Stores: a real redis-server per session, a fresh SQLite file per test.


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL naming an empty store of each backend (what worker processes get)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'resilience.db'}"  # tmp_path is absolute: sqlite:////...
    import redis

    url: str = request.getfixturevalue("redis_url")
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[StateStore]:
    made = store_from_url(store_url)
    try:
        yield made
    finally:
        made.close()


# --------------------------------------------------------------------------------------------------------------------
# Worker processes: started together, released together, each prints one JSON line.

WORKER = r"""
import json, sys, time
from cronium_provider.resilience import CircuitBreaker, CircuitOpen, RateLimit, RateLimiter, RateLimitExceeded
from cronium_provider.resilience import store_from_url

args = json.loads(sys.argv[1])
store = store_from_url(args["store"])
mode = args["mode"]
result = {}
if mode == "rate":
    limiter = RateLimiter(store, {"slack": RateLimit(**args["limit"])})
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.time()
    admitted, refused, message = [], 0, ""
    while time.time() < start + args["duration"]:
        try:
            admitted.append(limiter.acquire("user-1", "slack"))
        except RateLimitExceeded as exc:
            refused += 1
            message = str(exc)
    result = {"admitted": admitted, "refused": refused, "message": message}
elif mode == "breaker":
    now = [args["before"]]
    breaker = CircuitBreaker(store, clock=lambda: now[0])
    try:
        breaker.acquire("slack", "cred-1")
        result["before"] = "permit"
    except CircuitOpen as exc:
        result["before"] = str(exc)
        result["before_retry_after"] = exc.retry_after
    print("ready", flush=True)
    sys.stdin.readline()
    now[0] = args["after"]
    try:
        breaker.acquire("slack", "cred-1")
        result["after"] = "permit"
    except CircuitOpen as exc:
        result["after"] = str(exc)
elif mode == "increment":
    def bump(doc):
        count = (doc or {}).get("count", 0) + 1
        return {"count": count}, count
    print("ready", flush=True)
    sys.stdin.readline()
    result["seen"] = [store.update("counter", bump) for _ in range(args["times"])]
store.close()
print(json.dumps(result), flush=True)
"""


def run_workers(count: int, args: dict[str, Any], timeout: float = 60) -> list[dict[str, Any]]:
    """Start ``count`` workers, wait until all are ready, release them at once, return their results."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, json.dumps(args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=env,
        )
        for _ in range(count)
    ]
    deadline = time.monotonic() + timeout
    try:
        for proc in procs:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            line = proc.stdout.readline() if ready else ""
            if line.strip() != "ready":
                proc.kill()
                pytest.fail(f"worker did not get ready: {line!r} {proc.communicate()[1][-3000:]}")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            assert proc.returncode == 0, err[-3000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


# --------------------------------------------------------------------------------------------------------------------
# Stores


def test_store_from_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    default = store_from_url(None)
    assert isinstance(default, SqliteStateStore)
    assert default.path == tmp_path / "home" / "cronium_resilience.db" and default.path.exists()
    default.close()
    absolute = store_from_url(f"sqlite:///{tmp_path / 'abs.db'}")
    assert isinstance(absolute, SqliteStateStore) and absolute.path == tmp_path / "abs.db"
    absolute.close()
    monkeypatch.chdir(tmp_path)
    relative = store_from_url("sqlite:///rel.db")
    assert isinstance(relative, SqliteStateStore) and relative.path == Path("rel.db")
    relative.close()
    remote = store_from_url("redis://:secret@127.0.0.1:1/0")  # the client connects lazily: no traffic here
    assert isinstance(remote, RedisStateStore) and "secret" not in repr(remote)
    remote.close()
    with pytest.raises(ValueError, match="unsupported"):
        store_from_url("postgresql://127.0.0.1/db")


def test_redis_keys_are_prefixed(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    store = RedisStateStore(redis_url)
    RateLimiter(store).acquire("u", "slack")
    CircuitBreaker(store).record(CircuitBreaker(store).acquire("slack", "c"), Outcome.FAILURE)
    keys = sorted(k.decode() if isinstance(k, bytes) else k for k in client.keys("*"))
    assert keys and all(k.startswith("cronium:") for k in keys), keys
    store.close()
    client.close()


def test_update_is_atomic_across_processes(store_url: str) -> None:
    results = run_workers(4, {"mode": "increment", "store": store_url, "times": 40})
    seen = sorted(n for r in results for n in r["seen"])
    assert seen == list(range(1, 161))  # no lost update, no duplicate


# --------------------------------------------------------------------------------------------------------------------
# Rate limits


def test_default_rate_limit_table(tmp_path: Path) -> None:
    """Cronium's table (apps/cronium-app/src/lib/security/rate-limiter.ts:33-74): per-minute limits, the burst
    allowances it records and never applies, and every user's free-tier quotas (rate-limiter.ts:79-84)."""
    table = {
        name: (limit.max_calls, limit.burst_allowance, limit.window) for name, limit in DEFAULT_RATE_LIMITS.items()
    }
    assert table == {
        "slack": (60, 10, 60.0),
        "discord": (60, 10, 60.0),
        "email": (30, 5, 60.0),
        "google-sheets": (100, 20, 60.0),
        "notion": (50, 10, 60.0),
        "teams": (50, 10, 60.0),
        "trello": (100, 20, 60.0),
        "other": (30, 5, 60.0),
    }
    assert DEFAULT_RATE_LIMITS["slack"].windows() == ((60.0, 60), (3600.0, 100), (86400.0, 1000))
    limiter = RateLimiter(SqliteStateStore(tmp_path / "r.db"))
    assert limiter.limit_for("GOOGLE_SHEETS") == DEFAULT_RATE_LIMITS["google-sheets"]
    assert limiter.limit_for("webhook") == DEFAULT_RATE_LIMITS["other"]


@pytest.mark.parametrize(("tool", "max_calls"), [("slack", 60), ("email", 30), ("google-sheets", 100)])
def test_default_limits_over_one_minute(store: StateStore, tool: str, max_calls: int) -> None:
    """A caller trying every 0.25 s gets exactly ``max`` calls in a minute, the first ``max`` at once: Cronium's
    limiter has one per-minute window and never applies ``burstAllowance``
    (apps/cronium-app/src/lib/security/rate-limiter.ts:117-198), so the 11th Slack call within ten seconds goes."""
    clock = Clock()
    limiter = RateLimiter(store, clock=clock)
    admitted = []
    for step in range(240):
        clock.now = T0 + step * 0.25
        try:
            admitted.append(limiter.acquire("user-1", tool))
        except RateLimitExceeded:
            pass
    assert len(admitted) == max_calls
    assert admitted == [T0 + i * 0.25 for i in range(max_calls)]  # no burst rule holds any of them back


def test_rate_limit_refusal_says_when(store: StateStore) -> None:
    clock = Clock()
    limiter = RateLimiter(store, {"slack": RateLimit(6, window=60)}, clock=clock)
    for _ in range(6):
        assert limiter.acquire("user-1", "slack") == T0
    clock.advance(1)
    with pytest.raises(RateLimitExceeded, match=r"try again in 59\.0 s") as caught:
        limiter.acquire("user-1", "slack")
    assert caught.value.retry_after == pytest.approx(59.0)
    assert "6 calls per 60 s, 100 per hour, 1000 per day" in str(caught.value)
    # Other users, other tools and ids that only differ around a ':' have their own budgets.
    assert limiter.acquire("user-2", "slack") == T0 + 1
    assert limiter.acquire("user-1", "email") == T0 + 1
    assert limiter.acquire("user-1:slack", "x") == T0 + 1
    clock.now = T0 + 60  # the six leave the 60 s window (which is (now - 60, now])
    for _ in range(6):
        limiter.acquire("user-1", "slack")
    with pytest.raises(RateLimitExceeded):
        limiter.acquire("user-1", "slack")


def test_hourly_and_daily_quotas_count_calls(store: StateStore) -> None:
    """Cronium's free tier, every user's by default: 100 tool actions an hour and 1000 a day per tool type
    (apps/cronium-app/src/lib/security/rate-limiter.ts:79-84, 214-298). Cronium counts its windows' rows there,
    never more than 60 an hour, so its hourly quota never binds; the provider counts the calls, as the tiers
    say. One Slack call every 30 s stays far below the minute's 60, and the 101st within the hour is refused
    until the first leaves it."""
    clock = Clock()
    limiter = RateLimiter(store, clock=clock)
    for i in range(100):
        clock.now = T0 + i * 30
        limiter.acquire("user-1", "slack")
    clock.now = T0 + 100 * 30
    with pytest.raises(RateLimitExceeded, match=r"100 per hour.*try again in 600\.0 s"):
        limiter.acquire("user-1", "slack")
    clock.now = T0 + 3600  # the first call has left the hour
    limiter.acquire("user-1", "slack")
    daily = RateLimiter(store, {"email": RateLimit(30, hourly=None, daily=3)}, clock=clock)
    for hours in range(3):
        clock.now = T0 + hours * 3600
        daily.acquire("user-2", "email")
    clock.now = T0 + 23 * 3600
    with pytest.raises(RateLimitExceeded, match=r"3 per day\); try again in 3600\.0 s"):
        daily.acquire("user-2", "email")


def test_rate_limit_holds_across_processes(store_url: str) -> None:
    """Four processes hammer one (user, tool) for 2 s: exactly the limit is admitted, within one window."""
    limit = {"max_calls": 12, "window": 3.0}
    results = run_workers(4, {"mode": "rate", "store": store_url, "limit": limit, "duration": 2.0})
    admitted = sorted(t for r in results for t in r["admitted"])
    assert len(admitted) == 12, admitted
    assert admitted[-1] - admitted[0] < 3.0
    assert sum(r["refused"] for r in results) > 100
    assert any("try again in" in r["message"] for r in results)


# --------------------------------------------------------------------------------------------------------------------
# Circuit breakers


def test_default_breaker_configs(tmp_path: Path) -> None:
    assert (DEFAULT_BREAKER.failure_threshold, DEFAULT_BREAKER.success_threshold, DEFAULT_BREAKER.open_timeout) == (
        5,
        2,
        60.0,
    )
    assert (DEFAULT_BREAKER.volume_threshold, DEFAULT_BREAKER.error_rate_threshold, DEFAULT_BREAKER.window) == (
        10,
        0.5,
        60.0,
    )
    table = {
        name: (c.failure_threshold, c.open_timeout, c.error_rate_threshold, c.success_threshold, c.volume_threshold)
        for name, c in DEFAULT_BREAKER_CONFIGS.items()
    }
    assert table == {
        "slack": (3, 30.0, 0.3, 2, 10),
        "discord": (3, 30.0, 0.3, 2, 10),
        "email": (5, 60.0, 0.4, 2, 10),
        "google-sheets": (2, 120.0, 0.2, 2, 10),
    }
    breaker = CircuitBreaker(SqliteStateStore(tmp_path / "b.db"))
    assert breaker.config_for("Discord") == DEFAULT_BREAKER_CONFIGS["discord"]
    assert breaker.config_for("notion") == DEFAULT_BREAKER


def fail(breaker: CircuitBreaker, times: int, tool: str = "slack", cred: str = "cred-1") -> None:
    for _ in range(times):
        breaker.record(breaker.acquire(tool, cred), Outcome.FAILURE)


def succeed(breaker: CircuitBreaker, times: int, tool: str = "slack", cred: str = "cred-1") -> None:
    for _ in range(times):
        breaker.record(breaker.acquire(tool, cred), Outcome.SUCCESS)


def test_breaker_opens_rejects_half_opens_and_closes(store: StateStore) -> None:
    clock = Clock()
    breaker = CircuitBreaker(store, clock=clock)
    fail(breaker, 2)
    succeed(breaker, 1)  # a success resets the consecutive count
    fail(breaker, 2)
    assert breaker.snapshot("slack", "cred-1").state is CircuitState.CLOSED
    fail(breaker, 1)  # slack: 3 consecutive failures
    assert breaker.snapshot("slack", "cred-1").state is CircuitState.OPEN
    with pytest.raises(CircuitOpen, match=r"3 consecutive failures.*half-open in 30\.0 s") as caught:
        breaker.acquire("slack", "cred-1")
    assert caught.value.retry_after == pytest.approx(30.0)
    succeed(breaker, 1, cred="cred-2")  # another credential has its own breaker
    clock.advance(29.5)
    with pytest.raises(CircuitOpen, match=r"half-open in 0\.5 s"):
        breaker.acquire("slack", "cred-1")
    clock.advance(0.5)
    trial = breaker.acquire("slack", "cred-1")  # half-open: one trial call
    assert trial.trial is not None
    with pytest.raises(CircuitOpen, match="trial call is in progress"):
        breaker.acquire("slack", "cred-1")
    breaker.record(trial, Outcome.SUCCESS)
    snap = breaker.snapshot("slack", "cred-1")
    assert (snap.state, snap.half_open_successes, snap.trial_in_progress) == (CircuitState.HALF_OPEN, 1, False)
    breaker.record(breaker.acquire("slack", "cred-1"), Outcome.SUCCESS)  # second success: closed
    snap = breaker.snapshot("slack", "cred-1")
    assert (snap.state, snap.consecutive_failures, snap.calls_in_window) == (CircuitState.CLOSED, 0, 0)
    permits = [breaker.acquire("slack", "cred-1") for _ in range(5)]
    assert all(p.trial is None for p in permits)


def test_failure_in_half_open_reopens(store: StateStore) -> None:
    clock = Clock()
    breaker = CircuitBreaker(store, clock=clock)
    late = breaker.acquire("slack", "cred-1")  # admitted while closed, finishes after the circuit opened
    fail(breaker, 3)
    breaker.record(late, Outcome.SUCCESS)  # stale: does not touch the open circuit
    assert breaker.snapshot("slack", "cred-1").state is CircuitState.OPEN
    clock.advance(30)
    breaker.record(breaker.acquire("slack", "cred-1"), Outcome.SUCCESS)
    clock.advance(5)
    breaker.record(breaker.acquire("slack", "cred-1"), Outcome.FAILURE)  # half-open failure: open again
    with pytest.raises(CircuitOpen, match=r"half-open trial call failed.*half-open in 30\.0 s"):
        breaker.acquire("slack", "cred-1")
    clock.advance(30)
    assert breaker.snapshot("slack", "cred-1").state is CircuitState.HALF_OPEN
    assert breaker.snapshot("slack", "cred-1").half_open_successes == 0  # the count starts over


def test_error_rate_opens_the_circuit(store: StateStore) -> None:
    clock = Clock()
    breaker = CircuitBreaker(store, clock=clock)  # notion: defaults, 5 consecutive or >= 50 % of >= 10 calls
    for i in range(9):  # F S F S F S F S F: 5 of 9 failed, under the volume threshold
        (fail if i % 2 == 0 else succeed)(breaker, 1, "notion")
        clock.advance(1)
    succeed(breaker, 1, "notion")  # 10 calls, 50 %: a success never opens the circuit
    assert breaker.snapshot("notion", "cred-1").state is CircuitState.CLOSED
    fail(breaker, 1, "notion")  # 6 of 11 failed
    with pytest.raises(CircuitOpen, match=r"6 of 11 calls failed in 60 s, error rate 55 % >= 50 %"):
        breaker.acquire("notion", "cred-1")
    # The window slides: old calls stop counting.
    for i in range(9):
        (fail if i % 2 == 0 else succeed)(breaker, 1, "trello")
    clock.advance(60)
    fail(breaker, 1, "trello")
    snap = breaker.snapshot("trello", "cred-1")
    assert (snap.state, snap.calls_in_window, snap.failures_in_window) == (CircuitState.CLOSED, 1, 1)
    # slack's threshold is 30 %: S S F S S F S S F S then F -> 4 of 11 = 36 %.
    for i in range(10):
        (fail if i % 3 == 2 else succeed)(breaker, 1, "slack")
    assert breaker.snapshot("slack", "cred-1").state is CircuitState.CLOSED
    fail(breaker, 1, "slack")
    assert breaker.snapshot("slack", "cred-1").state is CircuitState.OPEN


def test_trial_lease_and_ignored_outcomes(store: StateStore) -> None:
    clock = Clock()
    config = replace(DEFAULT_BREAKER, failure_threshold=2, open_timeout=10, trial_timeout=5)
    breaker = CircuitBreaker(store, {"webhook": config}, clock=clock)
    breaker.record(breaker.acquire("webhook", "c"), Outcome.IGNORED)  # e.g. a 401: counts for nothing
    fail(breaker, 1, "webhook", "c")
    breaker.record(breaker.acquire("webhook", "c"), Outcome.IGNORED)
    assert breaker.snapshot("webhook", "c").consecutive_failures == 1
    fail(breaker, 1, "webhook", "c")
    clock.advance(10)
    first = breaker.acquire("webhook", "c")
    clock.advance(5)  # the trial's lease expired (its worker may have died): another trial may start
    second = breaker.acquire("webhook", "c")
    breaker.record(first, Outcome.FAILURE)  # stale trial: ignored
    assert breaker.snapshot("webhook", "c").state is CircuitState.HALF_OPEN
    breaker.record(second, Outcome.IGNORED)  # frees the lease without counting
    snap = breaker.snapshot("webhook", "c")
    assert (snap.state, snap.half_open_successes, snap.trial_in_progress) == (CircuitState.HALF_OPEN, 0, False)
    succeed(breaker, 2, "webhook", "c")
    assert breaker.snapshot("webhook", "c").state is CircuitState.CLOSED


def test_processes_share_the_circuit(store_url: str) -> None:
    """Opened here; four other processes see it open, then after the timeout exactly one gets the trial call."""
    store = store_from_url(store_url)
    fail(CircuitBreaker(store, clock=Clock(T0)), 3)
    store.close()
    results = run_workers(4, {"mode": "breaker", "store": store_url, "before": T0 + 1, "after": T0 + 31})
    for r in results:
        assert "is open (3 consecutive failures); it will half-open in 29.0 s" in r["before"]
        assert r["before_retry_after"] == pytest.approx(29.0)
    outcomes = [r["after"] for r in results]
    assert outcomes.count("permit") == 1, outcomes
    assert all("trial call is in progress" in o for o in outcomes if o != "permit")


# --------------------------------------------------------------------------------------------------------------------
# Retries


def test_strategy_values() -> None:
    assert (STANDARD.max_attempts, STANDARD.initial_delay, STANDARD.max_delay, STANDARD.multiplier) == (3, 1, 10, 2)
    assert (AGGRESSIVE.max_attempts, AGGRESSIVE.initial_delay, AGGRESSIVE.max_delay, AGGRESSIVE.multiplier) == (
        5,
        0.5,
        30,
        1.5,
    )
    assert (CONSERVATIVE.max_attempts, CONSERVATIVE.initial_delay, CONSERVATIVE.max_delay) == (2, 2, 5)
    assert (STANDARD.jitter, AGGRESSIVE.jitter, CONSERVATIVE.jitter) == (0.1, 0.1, 0.0)
    # Cronium's executor picks aggressive only for an action with features.webhookSupport, which none sets
    # (apps/cronium-app/src/lib/scheduler/tool-action-executor.ts:373-375): every tool is retried standard.
    for tool in ("SLACK", "discord", "teams", "webhook", "email", "google_sheets"):
        assert strategy_for(tool) is STANDARD, tool


def test_conservative_delays_are_exact() -> None:
    assert delays(CONSERVATIVE, random.Random(1)) == [2.0]
    assert delays("conservative") == [2.0]
    assert delays(replace(CONSERVATIVE, max_attempts=5)) == [2.0, 4.0, 5.0, 5.0]  # capped at 5 s


class FixedRandom:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_jittered_delays_stay_within_ten_percent() -> None:
    bases = {"standard": [1.0, 2.0], "aggressive": [0.5, 0.75, 1.125, 1.6875]}
    for name, expected in bases.items():
        samples = [delays(name, random.Random(seed)) for seed in range(300)]
        for schedule in samples:
            assert len(schedule) == len(expected)
            for got, base in zip(schedule, expected, strict=True):
                assert base * 0.9 - 1e-12 <= got <= base * 1.1 + 1e-12
        assert len({s[0] for s in samples}) > 250  # it does jitter
        assert delays(name, FixedRandom(0.0)) == pytest.approx([b * 0.9 for b in expected])
        assert delays(name, FixedRandom(0.5)) == pytest.approx(expected)
    long = delays(replace(AGGRESSIVE, max_attempts=14), FixedRandom(0.9999))
    assert max(long) == 30.0 and long[-1] == 30.0  # jitter never goes past max_delay


RETRYABLE_BY_ALL = [
    ConnectionRefusedError(111, "refused"),
    ConnectionResetError(),
    TimeoutError("timed out"),
    socket.gaierror(-3, "temporary failure in name resolution"),
    requests.ConnectionError("refused"),
    requests.Timeout("read timed out"),
    urllib.error.URLError(ConnectionRefusedError(111, "refused")),
    smtplib.SMTPServerDisconnected("gone"),
    HTTPStatusError(429),
    HTTPStatusError(408),
    requests_http_error(429),
]
NEVER_RETRIED = [
    HTTPStatusError(401),
    HTTPStatusError(403),
    requests_http_error(401),
    requests_http_error(403),
    urllib.error.HTTPError("https://hooks.invalid/x", 403, "Forbidden", {}, None),  # type: ignore[arg-type]
    InvalidCredentials("webhook rejected"),
    smtplib.SMTPAuthenticationError(535, b"5.7.8 bad credentials"),
    HTTPStatusError(400),
    HTTPStatusError(404),
    HTTPStatusError(500),
    ValueError("bug"),
]


@pytest.mark.parametrize("exc", RETRYABLE_BY_ALL, ids=repr)
def test_retryable_errors(exc: Exception) -> None:
    assert all(is_retryable(exc, s) for s in (STANDARD, AGGRESSIVE, CONSERVATIVE))


@pytest.mark.parametrize("exc", NEVER_RETRIED, ids=repr)
def test_never_retried_errors(exc: Exception) -> None:
    assert not any(is_retryable(exc, s) for s in (STANDARD, AGGRESSIVE, CONSERVATIVE))


def test_classification_details() -> None:
    for status in (502, 503):
        assert is_retryable(HTTPStatusError(status), AGGRESSIVE)
        assert not is_retryable(HTTPStatusError(status), STANDARD)
        assert not is_retryable(HTTPStatusError(status), CONSERVATIVE)
    try:
        try:
            raise HTTPStatusError(401)
        except HTTPStatusError:
            raise RuntimeError("webhook call failed")  # a wrapper (e.g. AirflowException) keeps the context
    except RuntimeError as wrapped:
        assert classify(wrapped) is ErrorKind.AUTH
    assert classify(RuntimeError("x")) is ErrorKind.UNKNOWN
    cause = RuntimeError("call failed")
    cause.__cause__ = ConnectionRefusedError()
    assert is_retryable(cause)
    limiter_refusal = RateLimitExceeded("u", "slack", DEFAULT_RATE_LIMITS["slack"], 3.0)
    assert classify(limiter_refusal) is ErrorKind.REJECTED and not is_retryable(limiter_refusal)
    assert breaker_outcome(HTTPStatusError(401)) is Outcome.IGNORED
    assert breaker_outcome(HTTPStatusError(404)) is Outcome.IGNORED
    assert breaker_outcome(HTTPStatusError(500)) is Outcome.FAILURE
    assert breaker_outcome(HTTPStatusError(429)) is Outcome.FAILURE
    assert breaker_outcome(ConnectionRefusedError()) is Outcome.FAILURE
    assert breaker_outcome(KeyboardInterrupt()) is Outcome.IGNORED


def failing(errors: Sequence[BaseException], then: Any = "ok") -> tuple[Callable[[], Any], list[int]]:
    calls: list[int] = []

    def fn() -> Any:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return then

    return fn, calls


@pytest.mark.parametrize("strategy", [STANDARD, AGGRESSIVE, CONSERVATIVE], ids=lambda s: s.name)
def test_retry_schedule_and_last_error(strategy: RetryStrategy) -> None:
    errors: list[BaseException] = [ConnectionRefusedError(111, f"refused {i}") for i in range(10)]
    fn, calls = failing(errors)
    slept: list[float] = []
    seen: list[tuple[int, BaseException, float]] = []
    with pytest.raises(ConnectionRefusedError) as caught:
        run_with_retry(
            fn, strategy, sleep=slept.append, rng=random.Random(7), on_retry=lambda a, e, d: seen.append((a, e, d))
        )
    assert len(calls) == strategy.max_attempts
    assert caught.value is errors[strategy.max_attempts - 1]  # the last error, as raised
    assert slept == delays(strategy, random.Random(7))
    assert [(a, e) for a, e, _ in seen] == [(i + 1, errors[i]) for i in range(strategy.max_attempts - 1)]
    assert [d for _, _, d in seen] == slept
    fn, calls = failing([TimeoutError(), HTTPStatusError(429)][: strategy.max_attempts - 1], then={"ok": True})
    assert run_with_retry(fn, strategy, sleep=lambda _: None) == {"ok": True}


@pytest.mark.parametrize("strategy", [STANDARD, AGGRESSIVE, CONSERVATIVE], ids=lambda s: s.name)
@pytest.mark.parametrize("error", NEVER_RETRIED[:7], ids=repr)
def test_auth_errors_are_never_retried(strategy: RetryStrategy, error: Exception) -> None:
    fn, calls = failing([error] * 5)
    slept: list[float] = []
    with pytest.raises(type(error)):
        run_with_retry(fn, strategy, sleep=slept.append)
    assert (len(calls), slept) == (1, [])


def test_retry_real_timing() -> None:
    strategy = RetryStrategy("short", max_attempts=4, initial_delay=0.05, max_delay=0.2, multiplier=2, jitter=0.1)
    expected = delays(strategy, random.Random(3))  # ~0.05, 0.1, 0.2
    stamps: list[float] = []

    def fn() -> str:
        stamps.append(time.monotonic())
        if len(stamps) < 4:
            raise ConnectionRefusedError()
        return "done"

    assert run_with_retry(fn, strategy, rng=random.Random(3)) == "done"
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    for gap, want in zip(gaps, expected, strict=True):
        assert want - 0.002 <= gap <= want + 0.15, (gaps, expected)
    assert stamps[-1] - stamps[0] == pytest.approx(sum(expected), abs=0.2)


# --------------------------------------------------------------------------------------------------------------------
# The guard


def test_guard_order_and_breaker_cut_off(store: StateStore) -> None:
    clock = Clock()
    slept: list[float] = []
    guard = ToolActionGuard(store, clock=clock, sleep=slept.append, rng=random.Random(1))
    fn, calls = failing([ConnectionRefusedError()] * 10)
    # slack asked to retry aggressively (5 attempts), but its breaker opens after 3 failures: attempt 4 fails fast.
    with pytest.raises(CircuitOpen, match="3 consecutive failures"):
        guard.run(fn, user_id="u1", tool_type="slack", credential_id="hook-1", strategy="aggressive")
    assert len(calls) == 3 and len(slept) == 3
    fn, calls = failing([])
    with pytest.raises(CircuitOpen):
        guard.run(fn, user_id="u1", tool_type="slack", credential_id="hook-1")
    assert calls == []
    assert guard.run(lambda: 42, user_id="u1", tool_type="slack", credential_id="hook-2") == 42


def test_guard_rate_limit_once_per_action(store: StateStore) -> None:
    clock = Clock()
    guard = ToolActionGuard(store, rate_limits={"email": RateLimit(2, 2)}, clock=clock, sleep=lambda _: None)
    fn, calls = failing([TimeoutError(), TimeoutError()], then="sent")
    assert guard.run(fn, user_id="u1", tool_type="email", credential_id="smtp") == "sent"  # 3 attempts, 1 token
    assert len(calls) == 3
    assert guard.run(lambda: "sent", user_id="u1", tool_type="email", credential_id="smtp") == "sent"
    fn, calls = failing([])
    with pytest.raises(RateLimitExceeded, match="try again in"):
        guard.run(fn, user_id="u1", tool_type="email", credential_id="smtp")
    assert calls == []  # refused before any call


def test_guard_auth_errors_do_not_trip_the_breaker(store: StateStore) -> None:
    guard = ToolActionGuard(store, clock=Clock(), sleep=lambda _: None)
    for _ in range(6):
        fn, calls = failing([requests_http_error(401)] * 5)
        with pytest.raises(requests.HTTPError):
            guard.run(fn, user_id="u1", tool_type="discord", credential_id="bad-hook")
        assert len(calls) == 1
    snap = guard.breaker.snapshot("discord", "bad-hook")
    assert (snap.state, snap.consecutive_failures, snap.calls_in_window) == (CircuitState.CLOSED, 0, 0)


def test_breaker_config_validation() -> None:
    with pytest.raises(ValueError):
        BreakerConfig(error_rate_threshold=0)
    with pytest.raises(ValueError):
        RateLimit(0)
    with pytest.raises(ValueError):
        RateLimit(10, hourly=0)
    with pytest.raises(ValueError):
        RetryStrategy("x", 0, 1, 1, 2)
