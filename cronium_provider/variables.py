"""Cronium variables kept in Airflow Variables, under a key prefix (``cronium_`` by default).

Values are stored as JSON so that every type round-trips exactly; a Variable whose text is not JSON (set
by hand in the UI, say) reads as a string. With ``scope_by_owner`` each event owner gets its own
namespace (``cronium_<owner>_<key>``, the owner encoded so that no two owners share one: see
:func:`~cronium_provider.naming.owner_variable_prefix`), as Cronium keeps variables per user; the plan decides it
(``[cronium] scope_variables_by_owner``) and every task of a DAG that reads or writes variables (scripts,
their in-script tool actions, tool actions, SEND_MESSAGE templates) uses the same namespace.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from cronium_provider.naming import (
    LEGACY_ENV_VARIABLE_PREFIX,
    VARIABLE_PREFIX,
    InvalidVariableKey,
    owner_variable_prefix,
    variable_key_problem,
)
from cronium_provider.runners.protocol import MISSING, VariableChange, appended, incremented

DEFAULT_PREFIX = VARIABLE_PREFIX
_LEGACY_ENV_KEY = re.compile(re.escape(LEGACY_ENV_VARIABLE_PREFIX) + r"\d+_")  # cronium_env_<event id>_<KEY>
log = logging.getLogger(__name__)


LOCK_TTL_SECONDS = 30.0  # a lock whose holder died frees itself after this long
LOCK_WAIT_SECONDS = 60.0


@contextmanager
def variable_lock(key: str) -> Iterator[None]:
    """Hold ``key`` for one read-modify-write, across every task process and worker.

    The lock lives in the resilience store (``[cronium] resilience_store``: SQLite in ``$AIRFLOW_HOME`` on
    one machine, Redis across machines), whose ``update`` is atomic; a holder that dies frees it after
    ``LOCK_TTL_SECONDS``.
    """
    from cronium_provider.config import read_settings
    from cronium_provider.resilience import store_from_url

    store = store_from_url(read_settings().resilience_store)
    token = uuid.uuid4().hex
    lock_key = f"variable-lock:{key}"

    def take(doc: dict[str, Any] | None) -> tuple[dict[str, Any] | None, bool]:
        now = time.time()
        if doc is None or float(doc.get("until", 0)) < now or doc.get("owner") == token:
            return {"owner": token, "until": now + LOCK_TTL_SECONDS}, True
        return None, False

    def give_back(doc: dict[str, Any] | None) -> tuple[dict[str, Any] | None, bool]:
        if doc is not None and doc.get("owner") == token:
            return {"owner": "", "until": 0}, True
        return None, False

    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while not store.update(lock_key, take, ttl=LOCK_TTL_SECONDS * 4):
        if time.monotonic() > deadline:
            raise TimeoutError(f"variable {key} stayed locked for {LOCK_WAIT_SECONDS:.0f} s")
        time.sleep(0.02)
    try:
        yield
    finally:
        with suppress(Exception):
            store.update(lock_key, give_back, ttl=LOCK_TTL_SECONDS * 4)
        with suppress(Exception):
            store.close()


class VariableNamespace:
    """Maps Cronium variable names to Airflow Variable keys, and reads and writes them.

    With ``scope_by_owner`` and an ``owner``, the keys are that owner's (``<prefix><owner>_<key>``, see
    :func:`~cronium_provider.naming.owner_variable_prefix`); an event with no owner keeps ``<prefix><key>``.
    """

    def __init__(self, prefix: str = DEFAULT_PREFIX, owner: str | int | None = None, scope_by_owner: bool = False):
        if scope_by_owner and owner is not None and str(owner) != "":
            prefix = owner_variable_prefix(prefix, owner)
        self.prefix = prefix

    def airflow_key(self, name: str) -> str:
        """The Airflow Variable of Cronium variable ``name``; :class:`InvalidVariableKey` when it names none
        (:meth:`problem`), so no Variable call gets it."""
        problem = self.problem(name)
        if problem is not None:
            raise InvalidVariableKey(problem)
        return f"{self.prefix}{name}"

    def problem(self, name: object) -> str | None:
        """Why ``name`` names no variable of this namespace (None when it does): no Cronium key, or one
        whose Variable is where an event's env var value was kept before 0.2 (``cronium_env_<id>_<KEY>``,
        inside the variables' prefix: a sync moves those it knows, older ones may stay)."""
        problem = variable_key_problem(name)
        if problem is None and _LEGACY_ENV_KEY.match(f"{self.prefix}{name}"):
            return f"variable key {name!r} is refused: {self.prefix}{name} is where env var values were kept"
        return problem

    @staticmethod
    def decode(text: Any) -> Any:
        if not isinstance(text, str):
            return text
        try:
            return json.loads(text)
        except ValueError:
            return text

    def snapshot(self) -> dict[str, Any]:
        """Every variable of this namespace as it is now (the run's view at start)."""
        from airflow.sdk import Variable

        values: dict[str, Any] = {}
        for key in list(Variable.keys(prefix=self.prefix)):
            name = key[len(self.prefix) :]
            if not name:
                continue
            problem = self.problem(name)
            if problem is not None:  # set by hand, or an old env value: no script can name it or read it
                log.warning("Variable %r is left out of the script's variables: %s", key, problem)
                continue
            raw = Variable.get(key, default=None)
            if raw is not None:
                values[name] = self.decode(raw)
        return values

    def apply(self, changes: Iterable[VariableChange]) -> list[str]:
        """Apply sets, deletes and appends; returns a line per change for the task log (names, never values).

        A change whose key is no Cronium key is not applied: the others are, then
        :class:`~cronium_provider.naming.InvalidVariableKey` names the refused keys.

        An append reads the Variable as it is now and writes the joined value (:func:`appended`: a missing or
        empty variable becomes the appended value, a list gets a new element, anything else is joined as
        text), so appends of runs that overlap both count as long as they do not interleave here.
        """
        from airflow.sdk import Variable

        done: list[str] = []
        refused: list[str] = []
        for change in changes:
            problem = self.problem(change.key)
            if problem is not None:  # the journal reader refuses bad keys already; never a Variable call
                refused.append(problem)
                continue
            key = self.airflow_key(change.key)
            if change.op == "set":
                Variable.set(key, json.dumps(change.value, ensure_ascii=False))
                done.append(f"set {key}")
            elif change.op in ("append", "increment"):
                with variable_lock(key):  # read and write as one step: runs changing it at once all count
                    raw = Variable.get(key, default=None)
                    current = MISSING if raw is None else self.decode(raw)
                    if change.op == "append":
                        value = appended(current, change.value, change.separator)
                    else:
                        value = incremented(current, int(change.value))
                    Variable.set(key, json.dumps(value, ensure_ascii=False))
                done.append(f"{'appended to' if change.op == 'append' else 'incremented'} {key}")
            else:
                # deleting a variable that does not exist is not an error in Cronium
                with suppress(Exception):
                    Variable.delete(key)
                done.append(f"deleted {key}")
        if refused:
            raise InvalidVariableKey("; ".join(refused))
        return done
