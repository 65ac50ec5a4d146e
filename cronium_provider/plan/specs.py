"""Task specs: one frozen type per kind of Cronium task, holding exactly what its operator needs.

The plan decides everything and records it here; rendering only looks up the operator class of a spec's
type and calls it with :meth:`TaskSpec.arguments`. :meth:`TaskSpec.to_json` is the task's entry in
``cronium-airflow plan --json`` (fields may be added there, never renamed). No Airflow import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

Incoming = tuple[tuple[str, str], ...]  # a workflow node's incoming connections: (parent task id, type)


def _pairs(incoming: Incoming | None) -> list[list[str]] | None:
    return None if incoming is None else [list(pair) for pair in incoming]


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """What every task has: its id, its name in the UI and when it runs after its upstream tasks."""

    kind: ClassVar[str]  # the plan's ``operator`` value for this kind of task

    task_id: str
    display_name: str
    trigger_rule: str = "all_success"

    def arguments(self) -> dict[str, Any]:
        """The keyword arguments of this task's operator."""
        return {"task_id": self.task_id, "task_display_name": self.display_name, "trigger_rule": self.trigger_rule}

    def details(self) -> dict[str, Any]:
        """The kind-specific part of the task's plan entry (no secret values)."""
        return {}

    def to_json(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "display_name": self.display_name,
            "operator": self.kind,
            "event_id": None,
            "event_type": None,
            "trigger_rule": self.trigger_rule,
            "retries": 0,
            "retry_delay_seconds": 30,
            "execution_timeout_seconds": None,
            "run_location": None,
            "server_ids": [],
            "env_keys": [],
            "details": self.details(),
        }


# -- event runs ----------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class EventRunSpec(TaskSpec):
    """A run of one Cronium event: its DAG's ``run`` task, or a workflow node.

    ``event`` is what ``cronium.event()`` returns (no script, secrets or bookkeeping). In an event's own DAG
    ``max_executions`` / ``execution_count`` bound its runs; as a workflow node ``workflow_incoming`` lists
    the connections that must all be satisfied for it to run (None outside a workflow).
    ``scope_variables_by_owner``: its Cronium variables are its owner's (``cronium_<userId>_<key>``), not
    the shared ``cronium_<key>`` (for the kinds that read or write variables: scripts and tool actions).
    """

    event_id: int
    event_type: str
    event: Mapping[str, Any]
    retries: int = 0
    retry_delay_seconds: int = 30
    execution_timeout_seconds: int | None = None
    run_location: str = "LOCAL"
    server_ids: tuple[int, ...] = ()  # the event's servers, as its record names them
    env_keys: tuple[str, ...] = ()  # the event's env var names (values are read at run time)
    max_executions: int = 0
    execution_count: int = 0
    node_id: str | None = None
    workflow_incoming: Incoming | None = None
    scope_variables_by_owner: bool = False

    def arguments(self) -> dict[str, Any]:
        args = super().arguments()
        args.update(retries=self.retries, retry_delay=timedelta(seconds=self.retry_delay_seconds), event=self.event)
        if self.execution_timeout_seconds:
            args["execution_timeout"] = timedelta(seconds=self.execution_timeout_seconds)
        if self.workflow_incoming is None:
            args.update(max_executions=self.max_executions, execution_count=self.execution_count)
        else:
            args["workflow_incoming"] = _pairs(self.workflow_incoming)
        return args

    def event_details(self) -> dict[str, Any]:
        return {}

    def details(self) -> dict[str, Any]:
        data = self.event_details()
        if self.node_id is not None:
            data.update(node_id=self.node_id, incoming=_pairs(self.workflow_incoming) or [])
        return data

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data.update(
            event_id=self.event_id,
            event_type=self.event_type,
            retries=self.retries,
            retry_delay_seconds=self.retry_delay_seconds,
            execution_timeout_seconds=self.execution_timeout_seconds,
            run_location=self.run_location,
            server_ids=list(self.server_ids),
            env_keys=list(self.env_keys),
        )
        return data


@dataclass(frozen=True, kw_only=True)
class ScriptSpec(EventRunSpec):
    """A BASH, PYTHON or NODEJS script event; env var values come from Airflow (or ``records_source``)."""

    kind: ClassVar[str] = "script"

    language: str
    script: str
    records_source: str

    def arguments(self) -> dict[str, Any]:
        args = super().arguments()
        args.update(
            language=self.language,
            script=self.script,
            event_env_keys=list(self.env_keys),
            records_source=self.records_source,
            scope_variables_by_owner=self.scope_variables_by_owner,
        )
        return args


@dataclass(frozen=True, kw_only=True)
class ContainerScriptSpec(ScriptSpec):
    """A script in an isolated container on the worker (``runLocation: LOCAL``)."""


@dataclass(frozen=True)
class ServerTarget:
    """One server a remote script runs on: its display name and its Airflow SSH connection."""

    server_id: int
    name: str
    conn_id: str


@dataclass(frozen=True, kw_only=True)
class SSHScriptSpec(ScriptSpec):
    """A script on one or many servers over SSH (``runLocation: REMOTE``); ``pool`` bounds one server's runs."""

    servers: tuple[ServerTarget, ...]
    pool: str | None = None
    servers_overridden: bool = False  # the workflow's override, not the event's own servers

    def arguments(self) -> dict[str, Any]:
        args = super().arguments()
        args["servers"] = [{"name": s.name, "conn_id": s.conn_id} for s in self.servers]
        if self.pool is not None:
            args["pool"] = self.pool
        return args

    def details(self) -> dict[str, Any]:
        data = super().details()
        if self.servers_overridden:
            data["server_ids"] = [s.server_id for s in self.servers]
        return data


@dataclass(frozen=True, kw_only=True)
class HttpRequestSpec(EventRunSpec):
    """An HTTP_REQUEST event. Header values and the body are sent as written and kept out of the plan JSON."""

    kind: ClassVar[str] = "http_request"

    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None

    def arguments(self) -> dict[str, Any]:
        args = super().arguments()
        args.update(method=self.method, url=self.url, headers=[list(h) for h in self.headers], body=self.body)
        return args

    def event_details(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "url": self.url,
            "header_names": [name for name, _ in self.headers],
            "has_body": bool(self.body),
        }


@dataclass(frozen=True, kw_only=True)
class ToolActionSpec(EventRunSpec):
    """A TOOL_ACTION event: one action of a Cronium tool (Slack, Discord, Teams, email, webhook)."""

    kind: ClassVar[str] = "tool_action"

    tool_type: str
    action_id: str
    tool_id: int | str | None
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def arguments(self) -> dict[str, Any]:
        args = super().arguments()
        args.update(
            tool_type=self.tool_type,
            action_id=self.action_id,
            tool_id=self.tool_id,
            parameters=dict(self.parameters),
            scope_variables_by_owner=self.scope_variables_by_owner,
        )
        return args

    def event_details(self) -> dict[str, Any]:
        return {"tool_type": self.tool_type, "action_id": self.action_id, "tool_id": self.tool_id}


# -- conditional actions -------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ActionSpec(TaskSpec):
    """A conditional action after an event's run (``event_task_id``): ``when`` is ``always``, ``success``,
    ``failure`` or ``condition``; ``condition_of`` names the run whose condition a condition action needs."""

    when: str
    event_task_id: str
    condition_of: str | None = None

    def arguments(self) -> dict[str, Any]:
        args = super().arguments()
        args.update(condition_of=self.condition_of, run_when=self.when, event_task_id=self.event_task_id)
        return args

    def details(self) -> dict[str, Any]:
        data: dict[str, Any] = {"when": self.when, "after": self.event_task_id}
        if self.condition_of is not None:
            data["condition_of"] = self.condition_of
        return data


@dataclass(frozen=True, kw_only=True)
class TriggerEventSpec(ActionSpec):
    """A ``SCRIPT`` action: start a run of the target event's DAG."""

    kind: ClassVar[str] = "trigger_event"

    target_dag_id: str

    def arguments(self) -> dict[str, Any]:
        args = super().arguments()
        args["trigger_dag_id"] = self.target_dag_id
        return args

    def details(self) -> dict[str, Any]:
        return {"target_dag_id": self.target_dag_id, **super().details()}


@dataclass(frozen=True, kw_only=True)
class SendMessageSpec(ActionSpec):
    """A ``SEND_MESSAGE`` action: ``message`` through the tool ``tool_id``, templated with the run's facts;
    ``{{cronium.getVariables.KEY}}`` reads the event owner's variable when ``scope_variables_by_owner``."""

    kind: ClassVar[str] = "send_message"

    tool_id: int | str | None
    message: str
    email_addresses: str | None
    email_subject: str | None
    event_id: int
    event: Mapping[str, Any]
    condition_source: str  # the run whose condition ``{{cronium.getCondition}}`` reads
    event_incoming: Incoming | None = None  # for a node's action: the node's connections (its input)
    scope_variables_by_owner: bool = False

    def arguments(self) -> dict[str, Any]:
        args = super().arguments()
        args.update(
            scope_variables_by_owner=self.scope_variables_by_owner,
            tool_id=self.tool_id,
            message=self.message,
            email_addresses=self.email_addresses,
            email_subject=self.email_subject,
            event=self.event,
            condition_source=self.condition_source,
            event_incoming=_pairs(self.event_incoming),
        )
        return args

    def details(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "tool_id": self.tool_id,
            "message": self.message,
            "email_addresses": self.email_addresses,
            "email_subject": self.email_subject,
            "event_id": self.event_id,
            "condition_source": self.condition_source,
        }
        if self.event_incoming is not None:
            data["event_incoming"] = _pairs(self.event_incoming)
        return {**data, **super().details()}


# -- result steps --------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class EventResultSpec(TaskSpec):
    """After an event's actions: fails the run when the event failed (an action handled the failure)."""

    kind: ClassVar[str] = "event_result"

    event_task_id: str

    def arguments(self) -> dict[str, Any]:
        args = super().arguments()
        args["event_task_id"] = self.event_task_id
        return args


@dataclass(frozen=True, kw_only=True)
class WorkflowResultSpec(TaskSpec):
    """A workflow's last step: every node's status and output, and the run's result under ``result_rule``."""

    kind: ClassVar[str] = "workflow_result"

    node_task_ids: tuple[str, ...]
    leaf_task_ids: tuple[str, ...]
    result_rule: str
    no_nodes_message: str | None = None  # a workflow with no nodes: every run fails with this message

    def arguments(self) -> dict[str, Any]:
        args = super().arguments()
        args.update(
            node_task_ids=list(self.node_task_ids), leaf_task_ids=list(self.leaf_task_ids), result_rule=self.result_rule
        )
        if self.no_nodes_message is not None:
            args["no_nodes_message"] = self.no_nodes_message
        return args

    def details(self) -> dict[str, Any]:
        return {"result_rule": self.result_rule, "nodes": list(self.node_task_ids), "leaves": list(self.leaf_task_ids)}
