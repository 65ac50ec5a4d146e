"""Shared state for the resilience layer: a tiny interface and two backends.

Rate limits and circuit breakers only work if every process that runs tool actions sees the same counters:
Airflow runs each task in its own process, often on several workers at once. The algorithms therefore never keep
state in memory; they go through a :class:`StateStore`, which offers exactly two atomic operations:

* :meth:`StateStore.hit_windows` -- a sliding-window log: "record a call at ``now`` unless one of these
  ``(window, limit)`` pairs is already full", decided and recorded in one atomic step (the rate limiter);
* :meth:`StateStore.update` -- a locked read-modify-write of one small JSON document (the circuit breaker).

:class:`SqliteStateStore` is the embedded default (one machine, many processes: ``BEGIN IMMEDIATE`` serialises
writers, WAL keeps readers free, a busy timeout makes writers queue rather than fail). :class:`RedisStateStore`
is for workers on several machines (a Lua script for the window log, ``WATCH``/``MULTI`` for the JSON update).

Times are plain floats (seconds since the epoch) passed in by the caller, so tests can drive a fake clock and every
process compares like with like. With Redis across machines the workers' clocks must be kept in sync (NTP); an
error of a few milliseconds only shifts a window edge by that much.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

from cronium_provider.exceptions import ResilienceStoreUnavailable

T = TypeVar("T")

#: The JSON document :meth:`StateStore.update` reads and writes.
JSONState = dict[str, Any]

#: Default time-to-live of a JSON document. Only garbage collection: every writer refreshes it.
DEFAULT_STATE_TTL = 24 * 3600.0

SQLITE_FILENAME = "cronium_resilience.db"
REDIS_PREFIX = "cronium:"


class WindowDecision(NamedTuple):
    """Outcome of :meth:`StateStore.hit_windows`.

    ``retry_after`` is 0.0 when admitted, otherwise the seconds until every full window has room again (assuming
    no one else is admitted meanwhile, so it is a lower bound under contention).
    """

    admitted: bool
    retry_after: float


class StateStore(Protocol):
    """The few atomic operations the rate limiter and the circuit breaker need; nothing more."""

    def hit_windows(self, key: str, now: float, limits: Sequence[tuple[float, int]]) -> WindowDecision:
        """Atomically admit and record one call for ``key`` at ``now`` if every ``(window, limit)`` has room.

        A window of length ``w`` covers the half-open interval ``(now - w, now]``; it has room when fewer than
        ``limit`` recorded calls fall inside it. A rejected call is not recorded.
        """
        ...

    def update(
        self,
        key: str,
        mutate: Callable[[JSONState | None], tuple[JSONState | None, T]],
        ttl: float = DEFAULT_STATE_TTL,
    ) -> T:
        """Read the document at ``key`` (``None`` if absent), call ``mutate`` on it, store its result, return ``T``.

        ``mutate`` returns ``(new_document, result)``; ``new_document`` ``None`` leaves the stored document as it
        is. No other writer can change the document between the read and the write. ``mutate`` must be a pure
        function of its argument: an optimistic backend may call it more than once.
        """
        ...

    def close(self) -> None:
        """Release connections held by this process."""
        ...


def _window_decision(timestamps: Sequence[float], now: float, limits: Sequence[tuple[float, int]]) -> WindowDecision:
    """The decision both backends implement: ``timestamps`` are the recorded calls, ascending."""
    blocked = False
    wait = 0.0
    for window, limit in limits:
        inside = [ts for ts in timestamps if ts > now - window]
        if len(inside) >= limit:
            blocked = True
            # The window has room again once the oldest (len - limit + 1) calls have left it.
            wait = max(wait, inside[len(inside) - limit] + window - now)
    return WindowDecision(not blocked, wait if blocked else 0.0)


def _check_limits(limits: Sequence[tuple[float, int]]) -> None:
    if not limits:
        raise ValueError("at least one (window, limit) pair is required")
    for window, limit in limits:
        if window <= 0 or limit < 1:
            raise ValueError(f"invalid window/limit pair: ({window!r}, {limit!r})")


def default_sqlite_path() -> Path:
    """``$AIRFLOW_HOME/cronium_resilience.db`` (Airflow's own default home when the variable is unset)."""
    home = os.environ.get("AIRFLOW_HOME") or os.path.join(os.path.expanduser("~"), "airflow")
    return Path(home) / SQLITE_FILENAME


class SqliteStateStore:
    """A :class:`StateStore` in one SQLite file, safe for concurrent processes on one machine.

    Every operation is one ``BEGIN IMMEDIATE`` transaction: the write lock is taken up front, so two processes can
    never both read the old state and both write (the lost update that a deferred transaction allows). WAL mode
    lets readers run beside the writer, and the busy timeout makes a writer wait for the lock instead of failing.
    Connections are per process and per thread (SQLite connections must not cross a ``fork``).
    """

    #: Purge expired rows of every key after this many writes (keys that are never touched again).
    PURGE_EVERY = 500

    def __init__(self, path: str | os.PathLike[str] | None = None, *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path) if path is not None else default_sqlite_path()
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._writes = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._transaction() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS window_hits (key TEXT NOT NULL, ts REAL NOT NULL, expires REAL NOT NULL)"
            )
            conn.execute("CREATE INDEX IF NOT EXISTS window_hits_key_ts ON window_hits (key, ts)")
            conn.execute("CREATE INDEX IF NOT EXISTS window_hits_expires ON window_hits (expires)")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires REAL NOT NULL)"
            )
            conn.execute("CREATE INDEX IF NOT EXISTS state_expires ON state (expires)")

    def __repr__(self) -> str:
        return f"SqliteStateStore({str(self.path)!r})"

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            return conn
        # isolation_level=None: the module opens no implicit transactions; we issue BEGIN IMMEDIATE ourselves.
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=True)
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        self._set_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")  # durable enough for counters; WAL keeps the file consistent
        self._local.conn = conn
        self._local.pid = os.getpid()
        return conn

    def _set_wal(self, conn: sqlite3.Connection) -> None:
        # Switching to WAL needs a moment of exclusive access; when several processes open a fresh file together
        # one of them may see "database is locked" despite the busy timeout, so retry until the deadline.
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _maybe_purge(self, conn: sqlite3.Connection, now: float) -> None:
        self._writes += 1
        if self._writes % self.PURGE_EVERY == 0:
            conn.execute("DELETE FROM window_hits WHERE expires <= ?", (now,))
            conn.execute("DELETE FROM state WHERE expires <= ?", (time.time(),))

    def hit_windows(self, key: str, now: float, limits: Sequence[tuple[float, int]]) -> WindowDecision:
        _check_limits(limits)
        longest = max(window for window, _ in limits)
        with self._transaction() as conn:
            conn.execute("DELETE FROM window_hits WHERE key = ? AND ts <= ?", (key, now - longest))
            rows = conn.execute("SELECT ts FROM window_hits WHERE key = ? ORDER BY ts", (key,)).fetchall()
            decision = _window_decision([row[0] for row in rows], now, limits)
            if decision.admitted:
                conn.execute("INSERT INTO window_hits (key, ts, expires) VALUES (?, ?, ?)", (key, now, now + longest))
                self._maybe_purge(conn, now)
        return decision

    def update(
        self,
        key: str,
        mutate: Callable[[JSONState | None], tuple[JSONState | None, T]],
        ttl: float = DEFAULT_STATE_TTL,
    ) -> T:
        with self._transaction() as conn:
            wall = time.time()
            row = conn.execute("SELECT value FROM state WHERE key = ? AND expires > ?", (key, wall)).fetchone()
            current: JSONState | None = json.loads(row[0]) if row is not None else None
            new, result = mutate(current)
            if new is not None:
                conn.execute(
                    "INSERT INTO state (key, value, expires) VALUES (?, ?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires",
                    (key, json.dumps(new, separators=(",", ":")), wall + ttl),
                )
                self._maybe_purge(conn, wall)
        return result

    def close(self) -> None:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            conn.close()
        self._local.conn = None


# KEYS[1]: the sorted set of call times (score = time, member = unique id).
# ARGV: now, member, ttl_ms, trim_cutoff, then (cutoff, window, limit) triples. Cutoffs (now - window) are computed
# in Python and passed as exact strings: Lua's number-to-string conversion keeps only 14 significant digits.
# Returns {admitted (1/0), retry_after as a string} (a Lua number would be truncated to an integer).
_HIT_WINDOWS_LUA = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[4])
local blocked = 0
local wait = 0
for i = 5, #ARGV, 3 do
  local window = tonumber(ARGV[i + 1])
  local limit = tonumber(ARGV[i + 2])
  local inside = redis.call('ZRANGEBYSCORE', key, '(' .. ARGV[i], '+inf', 'WITHSCORES')
  local n = #inside / 2
  if n >= limit then
    blocked = 1
    local oldest = tonumber(inside[(n - limit) * 2 + 2])
    local w = oldest + window - now
    if w > wait then wait = w end
  end
end
if blocked == 1 then
  return {0, string.format('%.17g', wait)}
end
redis.call('ZADD', key, ARGV[1], ARGV[2])
redis.call('PEXPIRE', key, ARGV[3])
return {1, '0'}
"""


class RedisStateStore:
    """A :class:`StateStore` in Redis, for workers on several machines. Every key starts with ``cronium:``.

    The window log is one Lua script (Redis runs scripts atomically). The JSON update is an optimistic
    ``WATCH``/``MULTI`` transaction retried on conflict, because ``mutate`` is Python code that cannot run in Redis.
    """

    MAX_CONFLICT_RETRIES = 1000

    def __init__(self, url: str, *, prefix: str = REDIS_PREFIX, socket_timeout: float = 10.0) -> None:
        import redis  # imported here so the SQLite default works without the Redis client

        self.url = url
        self.prefix = prefix
        self._redis = redis
        self._client = redis.Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout)
        self._hit_script = self._client.register_script(_HIT_WINDOWS_LUA)

    def __repr__(self) -> str:
        return f"RedisStateStore(prefix={self.prefix!r})"  # never the URL: it may carry a password

    @contextlib.contextmanager
    def _reachable(self) -> Iterator[None]:
        """Redis down, refusing or silent: a :class:`ResilienceStoreUnavailable` naming the store (its host,
        never its password). Raised without its cause, so the retry rules never take it for the tool's
        network error and send an action twice."""
        try:
            yield
        except (self._redis.ConnectionError, self._redis.TimeoutError) as exc:
            kwargs = self._client.connection_pool.connection_kwargs
            where = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}/{kwargs.get('db', 0)}"
            reason = str(exc).rstrip(".")
            raise ResilienceStoreUnavailable(
                f"the resilience store ([cronium] resilience_store: Redis at {where}) cannot be reached: {reason}; "
                "no tool action is sent without its rate limits and circuit breakers"
            ) from None

    def hit_windows(self, key: str, now: float, limits: Sequence[tuple[float, int]]) -> WindowDecision:
        _check_limits(limits)
        longest = max(window for window, _ in limits)
        args: list[str | int] = [repr(now), f"{now!r}:{uuid.uuid4().hex}", math.ceil(longest * 1000) + 1000]
        args.append(repr(now - longest))
        for window, limit in limits:
            args.extend([repr(now - window), repr(float(window)), int(limit)])
        with self._reachable():
            admitted, wait = self._hit_script(keys=[f"{self.prefix}window:{key}"], args=args)
        return WindowDecision(bool(int(admitted)), float(wait))

    def update(
        self,
        key: str,
        mutate: Callable[[JSONState | None], tuple[JSONState | None, T]],
        ttl: float = DEFAULT_STATE_TTL,
    ) -> T:
        with self._reachable():
            return self._update(key, mutate, ttl)

    def _update(
        self,
        key: str,
        mutate: Callable[[JSONState | None], tuple[JSONState | None, T]],
        ttl: float,
    ) -> T:
        name = f"{self.prefix}state:{key}"
        for _ in range(self.MAX_CONFLICT_RETRIES):
            with self._client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(name)  # type: ignore[no-untyped-call]
                    raw = pipe.get(name)
                    current: JSONState | None = json.loads(raw) if raw is not None else None
                    new, result = mutate(current)
                    if new is None:
                        pipe.unwatch()
                        return result
                    pipe.multi()
                    pipe.set(name, json.dumps(new, separators=(",", ":")), px=math.ceil(ttl * 1000))
                    pipe.execute()
                    return result
                except self._redis.WatchError:
                    continue
        raise RuntimeError(f"{name}: gave up after {self.MAX_CONFLICT_RETRIES} conflicting concurrent updates")

    def close(self) -> None:
        self._client.close()


def store_from_url(url: str | None = None) -> StateStore:
    """The store a URL names: ``None`` / ``sqlite:///...`` -> SQLite; ``redis://``, ``rediss://``, ``unix://`` -> Redis.

    SQLite URLs follow SQLAlchemy's convention, as Airflow's own do: ``sqlite:////abs/path.db`` is absolute,
    ``sqlite:///rel.db`` relative; ``sqlite://`` with no path means the default ``$AIRFLOW_HOME`` file (an
    in-memory database would not be shared between processes, which defeats the purpose).
    """
    if url is None or url.strip() == "":
        return SqliteStateStore()
    url = url.strip()
    if url.startswith("sqlite://"):
        path = url[len("sqlite://") :]
        if path in ("", "/"):
            return SqliteStateStore()
        if not path.startswith("/"):
            raise ValueError(f"invalid SQLite URL {url!r}: expected sqlite:///relative.db or sqlite:////absolute.db")
        return SqliteStateStore(path[1:])
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStateStore(url)
    scheme = url.split("://", 1)[0] if "://" in url else url
    raise ValueError(f"unsupported resilience store URL scheme {scheme!r}: use sqlite:/// or redis://")
