"""Every name the provider gives things in Airflow: DAG and task ids, connection ids, pools, Variable keys.

Airflow-free, so that records, plan, operators and the command line all build a name in one place.
"""

from __future__ import annotations

import hashlib
import re

# -- DAGs and tasks ------------------------------------------------------------------------------------
EVENT_RUN_TASK = "run"  # the task that runs an event in its own DAG
EVENT_RESULT_TASK = "result"  # the event DAG's result step (when an action handles a failure)
WORKFLOW_RESULT_TASK = "workflow_result"
INPUT_PARAM = "input"  # the one param of every Cronium DAG: ``cronium.input()``

_TASK_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_OWNER_KEPT = re.compile(r"[A-Za-z0-9-]")


def event_dag_id(event_id: int) -> str:
    return f"cronium_event_{event_id}"


def workflow_dag_id(workflow_id: int) -> str:
    return f"cronium_workflow_{workflow_id}"


def record_dag_id(kind: str | None, record_id: object) -> str | None:
    """The DAG id an event or a workflow has (or would have); None for any other record or a non-integer id."""
    if type(record_id) is not int:
        return None
    if kind == "event":
        return event_dag_id(record_id)
    if kind == "workflow":
        return workflow_dag_id(record_id)
    return None


def node_task_id(node_id: str) -> str:
    """The task of a workflow node (``node_<id>``, with characters a task id cannot hold replaced)."""
    return "node_" + _TASK_ID_UNSAFE.sub("_", node_id)


# -- connections and pools -----------------------------------------------------------------------------
CRONIUM_DEFAULT_CONN_ID = "cronium_default"
SERVER_PREFIX = "cronium_server_"


def server_conn_id(server_id: int, connection_id: str | None = None) -> str:
    """The SSH connection of a Cronium server: its record's ``connectionId``, else ``cronium_server_<id>``."""
    return connection_id or f"{SERVER_PREFIX}{server_id}"


def server_pool(server_id: int) -> str:
    """The pool bounding the runs at once on one server."""
    return f"{SERVER_PREFIX}{server_id}"


TOOL_ID_RULE = "a tool id is a positive integer or 1 to 64 of A-Z a-z 0-9 _ -"
_TOOL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class InvalidToolId(ValueError):
    """A Cronium tool id that breaks :data:`TOOL_ID_RULE`."""


def tool_id_problem(tool_id: object) -> str | None:
    """Why ``tool_id`` is no Cronium tool id (None when it is one: Cronium's are serial integers).

    The tool's connection id is built from it, and the Task SDK puts a connection id into the Execution
    API's URL as it is: ``/../smtp_default`` would reach the connection ``smtp_default``.
    """
    if isinstance(tool_id, int) and not isinstance(tool_id, bool) and tool_id > 0:
        return None
    if isinstance(tool_id, str) and _TOOL_ID.fullmatch(tool_id):
        return None
    return f"tool id {tool_id!r} is refused: {TOOL_ID_RULE}"


def tool_conn_id(tool_id: int | str | None) -> str:
    """The connection holding a Cronium tool's credential; :class:`InvalidToolId` for no tool id."""
    problem = tool_id_problem(tool_id)
    if problem is not None:
        raise InvalidToolId(problem)
    return f"cronium_tool_{tool_id}"


# -- Variables -----------------------------------------------------------------------------------------
VARIABLE_PREFIX = "cronium_"  # Cronium's shared variables: ``cronium.getVariable(key)``
# Event secrets and the provider's own bookkeeping live outside ``cronium_``: no script's getVariable or
# setVariable can reach them (a script's key is always prefixed with ``cronium_``).
ENV_VARIABLE_PREFIX = "cronium.env."
LEGACY_ENV_VARIABLE_PREFIX = "cronium_env_"  # before 0.2: inside the variables' namespace; sync moves them
INTERNAL_PREFIX = "cronium.internal."


def executions_reset_key(dag_id: str) -> str:
    """The Variable recording the last ``cronium-airflow reset-counter`` of an event's DAG."""
    return f"{INTERNAL_PREFIX}executions_reset.{dag_id}"


def env_variable_key(event_id: object, key: str) -> str:
    """The Airflow Variable holding the value of an event's env var (read only by that event's tasks)."""
    return f"{ENV_VARIABLE_PREFIX}{event_id}.{key}"


def legacy_env_variable_key(event_id: object, key: str) -> str:
    return f"{LEGACY_ENV_VARIABLE_PREFIX}{event_id}_{key}"


VARIABLE_KEY_MAX = 100  # Cronium's own UI caps a variable key at 100 characters
VARIABLE_KEY_RULE = f"a key is 1 to {VARIABLE_KEY_MAX} of A-Z a-z 0-9 _ . - with no '..'"
_VARIABLE_KEY = re.compile(rf"[A-Za-z0-9_.-]{{1,{VARIABLE_KEY_MAX}}}")


class InvalidVariableKey(ValueError):
    """A Cronium variable key that breaks :data:`VARIABLE_KEY_RULE`."""


def variable_key_problem(key: object) -> str | None:
    """Why ``key`` is no Cronium variable key (None when it is one).

    The Airflow Task SDK puts a Variable's key into the Execution API's URL as it is, so a ``/``, ``..``
    or ``%`` would reach a Variable outside the namespace: every layer that turns a script's or a
    template's key into a Variable call checks it here (the runtime helpers keep the same rule).
    """
    if isinstance(key, str) and _VARIABLE_KEY.fullmatch(key) and ".." not in key:
        return None
    return f"variable key {key!r} is refused: {VARIABLE_KEY_RULE}"


def check_variable_key(key: object) -> str:
    """``key`` when it is a Cronium variable key, else :class:`InvalidVariableKey` naming it and the rule."""
    problem = variable_key_problem(key)
    if problem is not None:
        raise InvalidVariableKey(problem)
    return str(key)


def owner_variable_prefix(prefix: str, owner: object) -> str:
    """The prefix of one event owner's variables (when variables are scoped by owner): ``<prefix><owner>_``.

    The owner is written with letters, digits and ``-`` as they are and every other UTF-8 byte as ``.`` and
    two hex digits (``a_b`` -> ``a.5fb``, ``a b`` -> ``a.20b``): no two owners share a name, and the first
    ``_`` after the prefix ends it, so no owner's prefix is the start of another owner's key.
    """
    encoded = "".join(
        char if _OWNER_KEPT.fullmatch(char) else "".join(f".{byte:02x}" for byte in char.encode())
        for char in str(owner)
    )
    return f"{prefix}{encoded}_"


def _task_key(kind: str, dag_id: str, run_id: str, task_id: str, map_index: int | None) -> str:
    """An internal Variable key of one task instance (its ids hashed: run ids may be long or unusual)."""
    digest = hashlib.sha256(f"{dag_id}|{run_id}|{task_id}|{map_index}".encode()).hexdigest()[:24]
    return f"{INTERNAL_PREFIX}{kind}.{digest}"


def ssh_progress_key(dag_id: str, run_id: str, task_id: str, map_index: int | None) -> str:
    """Where a remote task keeps, between tries, the servers that already succeeded."""
    return _task_key("ssh_progress", dag_id, run_id, task_id, map_index)


def ssh_deferred_key(dag_id: str, run_id: str, task_id: str, map_index: int | None) -> str:
    """Where a deferred remote task keeps the scripts it started, until it resumes: a next try stops them
    if the trigger never did (the task cleared before the triggerer took it up)."""
    return _task_key("ssh_deferred", dag_id, run_id, task_id, map_index)


# -- containers ----------------------------------------------------------------------------------------
CONTAINER_LABEL_RUN = "org.cronium.run"
CONTAINER_LABEL_DAG = "org.cronium.dag_id"
CONTAINER_LABEL_TASK = "org.cronium.task_id"
CONTAINER_LABEL_RUN_ID = "org.cronium.run_id"  # with dag_id, task_id, map_index and try_number: the try
CONTAINER_LABEL_MAP_INDEX = "org.cronium.map_index"
CONTAINER_LABEL_TRY = "org.cronium.try_number"
CONTAINER_LABEL_HOST = "org.cronium.host"  # the worker host that runs it
CONTAINER_LABEL_PID = "org.cronium.pid"  # the task process that runs it
CONTAINER_LABEL_PID_START = "org.cronium.pid_start"  # that process's start time (a reused pid is not it)
CONTAINER_LABEL_DEFERRED = "org.cronium.deferred"  # its task deferred: the triggerer follows it, not the pid


# -- webhooks (the api-server plugin serving Cronium's workflow webhook route) ----------------------------
WEBHOOK_PLUGIN = "cronium_webhooks"  # the Airflow plugin's name
WEBHOOK_URL_PREFIX = "/cronium"  # where the plugin's app is mounted under the api-server
WEBHOOK_ROUTE_PREFIX = "/api/workflows/webhook/"  # Cronium's own path, kept under the prefix
WEBHOOK_TRIGGERING_USER = "cronium-webhook"  # the DAG run's triggering user

# -- the web UI's Cronium view (the api-server plugin showing the records the DAG processor found) --------
VIEW_PLUGIN = "cronium_view"  # the Airflow plugin's name
VIEW_URL_PREFIX = "/cronium-view"  # where its app is mounted (not under WEBHOOK_URL_PREFIX: no shadowing)
VIEW_UI_ROUTE = "cronium"  # the Airflow UI page that embeds it: /plugin/cronium
