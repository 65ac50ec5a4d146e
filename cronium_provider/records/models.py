"""Typed Cronium records: events, workflows, servers, conditional actions and tool action configs.

The models accept the shapes Cronium really emits (camelCase fields, exact enum strings, headers as a
list or an object, ``toolActionConfig`` as an object or a JSON string, workflow nodes and connections in
table or editor shape) and normalise them. Unknown fields are ignored.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel


class EventType(StrEnum):
    NODEJS = "NODEJS"
    PYTHON = "PYTHON"
    BASH = "BASH"
    HTTP_REQUEST = "HTTP_REQUEST"
    TOOL_ACTION = "TOOL_ACTION"


SCRIPT_TYPES = frozenset({EventType.NODEJS, EventType.PYTHON, EventType.BASH})


class EventStatus(StrEnum):
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    DRAFT = "DRAFT"
    ARCHIVED = "ARCHIVED"


class EventTriggerType(StrEnum):
    SCHEDULE = "SCHEDULE"
    MANUAL = "MANUAL"


class WorkflowTriggerType(StrEnum):
    SCHEDULE = "SCHEDULE"
    WEBHOOK = "WEBHOOK"
    MANUAL = "MANUAL"


class RunLocation(StrEnum):
    LOCAL = "LOCAL"
    REMOTE = "REMOTE"


class TimeUnit(StrEnum):
    SECONDS = "SECONDS"
    MINUTES = "MINUTES"
    HOURS = "HOURS"
    DAYS = "DAYS"


class ConditionalActionType(StrEnum):
    NONE = "NONE"
    SCRIPT = "SCRIPT"
    SEND_MESSAGE = "SEND_MESSAGE"


class ConnectionType(StrEnum):
    ALWAYS = "ALWAYS"
    ON_SUCCESS = "ON_SUCCESS"
    ON_FAILURE = "ON_FAILURE"
    ON_CONDITION = "ON_CONDITION"


class CroniumModel(BaseModel):
    """Base of every record model: camelCase aliases, snake_case attributes, extra fields ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        use_enum_values=False,
        frozen=True,
    )


class KeyValue(CroniumModel):
    key: str
    value: str = ""


class SecretKeyValue(CroniumModel):
    """An environment variable of an event: the value is a secret and never printed."""

    key: str = Field(min_length=1)
    value: SecretStr = SecretStr("")

    @field_validator("value", mode="before")
    @classmethod
    def _scalar_to_text(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        return value


class ConditionalAction(CroniumModel):
    id: int | str | None = None
    type: ConditionalActionType = ConditionalActionType.NONE
    value: str | None = None
    target_event_id: int | None = None
    tool_id: int | str | None = None
    message: str | None = None
    email_addresses: str | None = None
    email_subject: str | None = None


class ToolActionConfig(CroniumModel):
    tool_type: str = Field(min_length=1)
    action_id: str = Field(min_length=1)
    tool_id: int | str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    output_mapping: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _supported(self) -> ToolActionConfig:
        from cronium_provider.tools.catalogue import unsupported_reason

        reason = unsupported_reason(self.tool_type, self.action_id)
        if reason is not None:
            raise ValueError(reason)
        return self


def _json_text_to_object(value: Any) -> Any:
    """Cronium stores some objects as JSON text; accept both forms."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"is a string but not valid JSON ({exc.msg} at position {exc.pos})") from None
    return value


def _headers_to_pairs(value: Any) -> Any:
    """Headers arrive as ``[{key, value}]`` or as an object ``{name: value}``."""
    value = _json_text_to_object(value)
    if value is None:
        return []
    if isinstance(value, dict):
        return [{"key": str(k), "value": "" if v is None else str(v)} for k, v in value.items()]
    return value


class ServerRef(CroniumModel):
    """An entry of an event's ``servers`` list: a server id, or a (partial) server object."""

    id: int


class Event(CroniumModel):
    id: int
    user_id: str | int | None = None
    name: str = Field(min_length=1, max_length=100)
    description: str | None = None
    shared: bool = False
    tags: list[str] = Field(default_factory=list)
    type: EventType
    status: EventStatus = EventStatus.DRAFT
    trigger_type: EventTriggerType = EventTriggerType.MANUAL
    content: str | None = None
    http_method: str | None = None
    http_url: str | None = None
    http_headers: list[KeyValue] = Field(default_factory=list)
    http_body: str | None = None
    tool_action_config: ToolActionConfig | None = None
    schedule_number: int = Field(default=1, ge=1)
    schedule_unit: TimeUnit = TimeUnit.MINUTES
    custom_schedule: str | None = None
    start_time: str | None = None
    run_location: RunLocation = RunLocation.LOCAL
    server_id: int | None = None
    servers: list[ServerRef] = Field(default_factory=list)
    timeout_value: int = Field(default=30, ge=1)
    timeout_unit: TimeUnit = TimeUnit.SECONDS
    retries: int = Field(default=0, ge=0, le=10)
    max_executions: int = Field(default=0, ge=0)
    execution_count: int = Field(default=0, ge=0)
    reset_counter_on_active: bool = False
    env_vars: list[SecretKeyValue] = Field(default_factory=list)
    success_events: list[ConditionalAction] = Field(default_factory=list, validation_alias="successEvents")
    fail_events: list[ConditionalAction] = Field(default_factory=list, validation_alias="failEvents")
    always_events: list[ConditionalAction] = Field(default_factory=list, validation_alias="alwaysEvents")
    condition_events: list[ConditionalAction] = Field(default_factory=list, validation_alias="conditionEvents")

    @model_validator(mode="before")
    @classmethod
    def _form_names(cls, data: Any) -> Any:
        """Create forms name the action lists ``onSuccessActions`` and so on."""
        if isinstance(data, dict):
            renames = {
                "onSuccessActions": "successEvents",
                "onFailActions": "failEvents",
                "onAlwaysActions": "alwaysEvents",
                "onConditionActions": "conditionEvents",
            }
            if any(k in data for k in renames):
                data = dict(data)
                for old, new in renames.items():
                    if old in data and new not in data:
                        data[new] = data.pop(old)
        return data

    @field_validator("http_headers", mode="before")
    @classmethod
    def _headers(cls, value: Any) -> Any:
        return _headers_to_pairs(value)

    @field_validator("tool_action_config", mode="before")
    @classmethod
    def _tool_config(cls, value: Any) -> Any:
        return _json_text_to_object(value)

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator(
        "env_vars",
        "servers",
        "success_events",
        "fail_events",
        "always_events",
        "condition_events",
        mode="before",
    )
    @classmethod
    def _null_lists(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("servers", mode="before")
    @classmethod
    def _server_ids(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"id": item} if isinstance(item, int | str) else item for item in value]
        return value

    @field_validator("custom_schedule", "start_time", "content", "http_url", "http_method", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _fields_for_type(self) -> Event:
        if self.type is EventType.HTTP_REQUEST and not self.http_url:
            raise ValueError("httpUrl: an HTTP_REQUEST event needs httpUrl")
        if self.type is EventType.TOOL_ACTION and self.tool_action_config is None:
            raise ValueError("toolActionConfig: a TOOL_ACTION event needs toolActionConfig")
        if self.run_location is RunLocation.REMOTE and self.server_id is None and not self.servers:
            raise ValueError("serverId: a REMOTE event needs serverId or a non-empty servers list")
        return self

    @property
    def conditional_actions(self) -> dict[str, list[ConditionalAction]]:
        """The four action lists in the order Cronium fires them."""
        return {
            "always": list(self.always_events),
            "success": list(self.success_events),
            "fail": list(self.fail_events),
            "condition": list(self.condition_events),
        }

    @property
    def server_ids(self) -> list[int]:
        """Every server the event runs on: the multi-server list, else ``serverId``."""
        if self.servers:
            return [s.id for s in self.servers]
        return [self.server_id] if self.server_id is not None else []


class Server(CroniumModel):
    id: int
    name: str = Field(min_length=1)
    address: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    username: str = "root"
    ssh_key: SecretStr | None = None
    password: SecretStr | None = None
    connection_id: str | None = Field(default=None, validation_alias="connectionId")


class WorkflowNode(CroniumModel):
    """A workflow node, normalised from table rows or editor nodes."""

    id: str
    event_id: int
    label: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _editor_shape(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("data"), dict):
            inner = data["data"]
            out = {"id": data.get("id"), "eventId": inner.get("eventId"), "label": inner.get("label")}
            return out
        return data

    @field_validator("id", mode="before")
    @classmethod
    def _id_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class WorkflowConnection(CroniumModel):
    """A workflow connection, normalised from table rows or editor edges."""

    source: str
    target: str
    connection_type: ConnectionType = ConnectionType.ALWAYS

    @model_validator(mode="before")
    @classmethod
    def _shapes(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out: dict[str, Any] = {}
        out["source"] = data.get("sourceNodeId", data.get("source"))
        out["target"] = data.get("targetNodeId", data.get("target"))
        kind = data.get("connectionType")
        if kind is None and isinstance(data.get("data"), dict):
            kind = data["data"].get("connectionType")
        if kind is not None:
            out["connectionType"] = kind
        return out

    @field_validator("source", "target", mode="before")
    @classmethod
    def _id_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class Workflow(CroniumModel):
    id: int
    user_id: str | int | None = None
    name: str = Field(min_length=1)
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    status: EventStatus = EventStatus.DRAFT
    trigger_type: WorkflowTriggerType = WorkflowTriggerType.MANUAL
    webhook_key: str | None = None
    schedule_number: int = Field(default=1, ge=1)
    schedule_unit: TimeUnit = TimeUnit.MINUTES
    custom_schedule: str | None = None
    start_time: str | None = None
    run_location: RunLocation = RunLocation.LOCAL
    override_event_servers: bool = False
    override_server_ids: list[int] = Field(default_factory=list)
    nodes: list[WorkflowNode] = Field(default_factory=list)
    connections: list[WorkflowConnection] = Field(default_factory=list)
    result_rule: Literal["cronium", "airflow"] = Field(default="cronium", validation_alias="resultRule")

    @model_validator(mode="before")
    @classmethod
    def _editor_edges(cls, data: Any) -> Any:
        """The editor calls connections ``edges``."""
        if isinstance(data, dict) and "connections" not in data and "edges" in data:
            data = dict(data)
            data["connections"] = data.pop("edges")
        return data

    @field_validator("tags", "nodes", "connections", "override_server_ids", mode="before")
    @classmethod
    def _null_lists(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("custom_schedule", "start_time", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value


RecordKind = Literal["event", "workflow", "server"]
MODEL_BY_KIND: dict[str, type[CroniumModel]] = {"event": Event, "workflow": Workflow, "server": Server}
