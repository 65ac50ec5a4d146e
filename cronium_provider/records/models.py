"""Typed Cronium records: events, workflows, servers, conditional actions and tool action configs.

The models accept the shapes Cronium really emits (camelCase fields, exact enum strings, headers as a
list or an object, ``toolActionConfig`` as an object or a JSON string, workflow nodes and connections in
table or editor shape, the relations ``GET /api/events/{id}`` and the workflow download nest in a record)
and normalise them. Unknown fields are ignored. A null where Cronium's column has a default becomes that
default (``apps/cronium-app/src/shared/schema.ts``); the workflow schedule columns have no default and are
nullable (``schema.ts:840-841``), so a null there is only refused where Cronium's scheduler could not use it.
"""

from __future__ import annotations

import json
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from cronium_provider.naming import tool_id_problem


class EventType(StrEnum):
    NODEJS = "NODEJS"
    PYTHON = "PYTHON"
    BASH = "BASH"
    HTTP_REQUEST = "HTTP_REQUEST"
    TOOL_ACTION = "TOOL_ACTION"


SCRIPT_TYPES = frozenset({EventType.NODEJS, EventType.PYTHON, EventType.BASH})

# Cronium's ids and counts are Postgres ``serial`` / ``integer`` columns (schema.ts:156, 181, 192, 199-200, 234, 829):
# a larger number cannot come from Cronium (and a huge id would make a DAG id past Airflow's 250 characters).
INT4_MAX = 2_147_483_647
# The longest timeout or schedule interval turned into an Airflow task timeout or timetable (about 68 years):
# Airflow's task timer and the timetable's date arithmetic overflow far past it.
MAX_SPAN_SECONDS = INT4_MAX
AIRFLOW_TAG_MAX = 100  # Airflow refuses a DAG whose tag is longer (airflow.sdk.definitions.dag.TAG_MAX_LEN)


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


UNIT_SECONDS = {
    TimeUnit.SECONDS: 1,
    TimeUnit.MINUTES: 60,
    TimeUnit.HOURS: 3600,
    TimeUnit.DAYS: 86400,
}


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
    """Base of every record model: camelCase aliases, snake_case attributes, extra fields ignored.

    A null in a field that has a default means that default: Cronium's columns with a default are
    ``NOT NULL`` (``schema.ts``), and its payloads and forms send null for "not set".
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        use_enum_values=False,
        frozen=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        names = _defaulted_names(cls)
        if any(value is None and key in names for key, value in data.items()):
            data = {key: value for key, value in data.items() if not (value is None and key in names)}
        return data


@cache
def _defaulted_names(model: type[BaseModel]) -> frozenset[str]:
    """Every input name (attribute, alias, validation alias) of the fields whose default is not None."""
    names: set[str] = set()
    for name, info in model.model_fields.items():
        if info.is_required() or info.get_default(call_default_factory=True) is None:
            continue
        names.update({name, to_camel(name)})
        if info.alias:
            names.add(info.alias)
        if isinstance(info.validation_alias, str):
            names.add(info.validation_alias)
    return frozenset(names)


def _fits_airflow_tag(tag: str) -> str:
    if len(tag) > AIRFLOW_TAG_MAX:
        raise ValueError(f"is {len(tag)} characters long; an Airflow DAG tag holds at most {AIRFLOW_TAG_MAX}")
    return tag


Tag = Annotated[str, AfterValidator(_fits_airflow_tag)]


class KeyValue(CroniumModel):
    key: str
    value: str = ""


class SecretKeyValue(CroniumModel):
    """An environment variable of an event: the value is a secret and never printed."""

    key: str = Field(min_length=1)
    value: SecretStr = SecretStr("")

    @field_validator("key")
    @classmethod
    def _shell_name(cls, key: str) -> str:
        # the name becomes a shell variable (``export KEY=...`` in an SSH run's .env): [A-Za-z_][A-Za-z0-9_]*
        if not (key.isascii() and key.isidentifier()):
            raise ValueError(
                f"{key!r} is not a shell variable name: letters A-Z, a-z, digits and _ only, not starting with a digit"
            )
        return key

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

    @field_validator("tool_id", mode="before")
    @classmethod
    def _blank_tool_id(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("tool_id")
    @classmethod
    def _tool_id(cls, value: int | str | None) -> int | str | None:
        return None if value is None else _checked_tool_id(value)


def _checked_tool_id(value: int | str) -> int | str:
    problem = tool_id_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


class ToolActionConfig(CroniumModel):
    tool_type: str = Field(min_length=1)
    action_id: str = Field(min_length=1)
    tool_id: int | str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    output_mapping: dict[str, Any] | None = None

    @field_validator("tool_id")
    @classmethod
    def _tool_id(cls, value: int | str | None) -> int | str | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return value  # a missing one: see _supported
        return _checked_tool_id(value)

    @model_validator(mode="before")
    @classmethod
    def _alias(cls, data: Any) -> Any:
        """Cronium's default templates name the message action ``send-message``: the provider's id is used."""
        if isinstance(data, dict) and isinstance(data.get("toolType"), str) and isinstance(data.get("actionId"), str):
            from cronium_provider.tools.catalogue import canonical_action

            data = {**data, "actionId": canonical_action(data["toolType"], data["actionId"])}
        return data

    @model_validator(mode="after")
    def _supported(self) -> ToolActionConfig:
        from cronium_provider.tools.catalogue import unsupported_reason

        reason = unsupported_reason(self.tool_type, self.action_id)
        if reason is not None:
            raise ValueError(reason)
        if self.tool_id is None or (isinstance(self.tool_id, str) and not self.tool_id.strip()):
            # the tool holds the credential; Cronium's executor looks it up by this id and fails without it
            raise ValueError("toolId: a tool action needs the id of its tool (the credential it sends with)")
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
        except RecursionError:
            raise ValueError("is a string holding JSON nested too deeply to read") from None
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
    id: int = Field(le=INT4_MAX)
    user_id: str | int | None = None
    # events.name is varchar(255) (schema.ts:160) and the REST create accepts any length up to it
    # (app/api/events/route.ts:20); only the tRPC form stops at 100 (shared/schemas/events.ts:54-57)
    name: str = Field(min_length=1, max_length=255)
    description: str | None = None
    shared: bool = False
    tags: list[Tag] = Field(default_factory=list)
    type: EventType
    status: EventStatus = EventStatus.DRAFT
    trigger_type: EventTriggerType = EventTriggerType.MANUAL
    content: str | None = None
    http_method: str | None = None
    http_url: str | None = None
    http_headers: list[KeyValue] = Field(default_factory=list)
    http_body: str | None = None
    tool_action_config: ToolActionConfig | None = None
    schedule_number: int = Field(default=1, ge=1, le=INT4_MAX)
    schedule_unit: TimeUnit = TimeUnit.MINUTES
    custom_schedule: str | None = None
    start_time: str | None = None
    run_location: RunLocation = RunLocation.LOCAL
    server_id: int | None = None
    servers: list[ServerRef] = Field(default_factory=list)
    timeout_value: int = Field(default=30, ge=1, le=INT4_MAX)
    timeout_unit: TimeUnit = TimeUnit.SECONDS
    retries: int = Field(default=0, ge=0, le=10)
    max_executions: int = Field(default=0, ge=0, le=INT4_MAX)
    execution_count: int = Field(default=0, ge=0, le=INT4_MAX)
    reset_counter_on_active: bool = False
    env_vars: list[SecretKeyValue] = Field(default_factory=list)
    # env vars given with an empty value, which Cronium leaves out of the job (job-payload-builder.ts:97-104)
    empty_env_keys: tuple[str, ...] = Field(default=(), exclude=True)
    success_events: list[ConditionalAction] = Field(default_factory=list, validation_alias="successEvents")
    fail_events: list[ConditionalAction] = Field(default_factory=list, validation_alias="failEvents")
    always_events: list[ConditionalAction] = Field(default_factory=list, validation_alias="alwaysEvents")
    condition_events: list[ConditionalAction] = Field(default_factory=list, validation_alias="conditionEvents")

    @model_validator(mode="before")
    @classmethod
    def _form_names(cls, data: Any) -> Any:
        return event_input(data)

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
        value = _json_text_to_object(value)  # a jsonb column (schema.ts:209)
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
        if self.timeout_value * UNIT_SECONDS[self.timeout_unit] > MAX_SPAN_SECONDS:
            raise ValueError(
                f"timeoutValue: {self.timeout_value} {self.timeout_unit.value} is longer than the longest "
                f"timeout an Airflow task is given here, {MAX_SPAN_SECONDS} seconds (about 68 years)"
            )
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
        """Every server the event runs on: ``servers`` when it lists several (the job queue hands the
        orchestrator every server of such an event, lib/services/enhanced-job-transformer.ts:80-123, and its
        SSH executor runs the job on each of them, apps/orchestrator/internal/executors/ssh/multi_executor.go:
        62-110), else ``serverId``, else the one in ``servers`` (lib/scheduler/job-payload-builder.ts:107-124:
        serverId wins); none: the event runs in a container (job-payload-builder.ts:133-145)."""
        if len(self.servers) > 1:
            return [s.id for s in self.servers]
        if self.server_id is not None:
            return [self.server_id]
        return [s.id for s in self.servers]


# other names of the action lists: the create forms' (``onSuccessActions``, app/api/events/route.ts:73)
# and drizzle's relation names (``onSuccessEvents``, schema.ts:720-728), which a workflow download's
# nested events carry beside the lists (server/storage/modules/workflows.ts:49-63, 83-85)
_LIST_NAMES: dict[str, tuple[str, ...]] = {
    "successEvents": ("onSuccessActions", "onSuccessEvents"),
    "failEvents": ("onFailActions", "onFailEvents"),
    "alwaysEvents": ("onAlwaysActions", "onAlwaysEvents"),
    "conditionEvents": ("onConditionActions", "onConditionEvents"),
}


def event_input(data: Any) -> Any:
    """Action lists under their other names; ``eventServers`` rows when ``servers`` is absent."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    for name, others in _LIST_NAMES.items():
        for other in others:
            if other in data:
                value = data.pop(other)
                if data.get(name) is None:
                    data[name] = value
    # drizzle's event_servers rows {eventId, serverId, server} (schema.ts:376-387, events.ts:53-63)
    rows = data.get("eventServers")
    if data.get("servers") is None and isinstance(rows, list):
        data["servers"] = [row.get("serverId") if isinstance(row, dict) else row for row in rows]
    env = data.get("envVars")
    if isinstance(env, list):
        # Cronium sets a variable only ``if (envVar.key && envVar.value ...)`` (job-payload-builder.ts:97-104):
        # one given with an empty value is not set. A synced record gives keys only (no ``value``): kept.
        empty = [e for e in env if isinstance(e, dict) and "value" in e and e["value"] in ("", None)]
        if empty:
            data["envVars"] = [e for e in env if not any(e is x for x in empty)]
            data["emptyEnvKeys"] = tuple(str(e.get("key")) for e in empty if e.get("key"))
    return data


class Server(CroniumModel):
    id: int = Field(le=INT4_MAX)
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
    id: int = Field(le=INT4_MAX)
    user_id: str | int | None = None
    name: str = Field(min_length=1, max_length=255)  # workflows.name is varchar(255) (schema.ts:833)
    description: str | None = None
    tags: list[Tag] = Field(default_factory=list)
    status: EventStatus = EventStatus.DRAFT
    trigger_type: WorkflowTriggerType = WorkflowTriggerType.MANUAL
    webhook_key: str | None = None
    # Nullable with no default in Cronium (schema.ts:840-841): null or absent becomes 1 MINUTES here, a
    # value that only matters for a SCHEDULE workflow without customSchedule, which must give both.
    schedule_number: int = Field(default=1, ge=1, le=INT4_MAX)
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

    @model_validator(mode="wrap")
    @classmethod
    def _schedule_given(cls, data: Any, handler: Any) -> Any:
        """A SCHEDULE workflow needs ``customSchedule``, or ``scheduleNumber`` and ``scheduleUnit``.

        Cronium's scheduler uses the cron text if set, else the pair only when both are set, and otherwise
        logs "has no valid schedule configuration" and never schedules the workflow
        (apps/cronium-app/src/lib/workflow-executor.ts:115-153); its create form refuses such an ACTIVE
        workflow (src/shared/schemas/workflows.ts:97-117). Converting an ACTIVE or PAUSED one would invent
        a schedule, so it is refused; a DRAFT or ARCHIVED one gets no DAG and loads.
        """
        model = handler(data)
        if isinstance(data, dict) and isinstance(model, Workflow):
            missing = missing_schedule_fields(model, data)
            if missing:
                raise ValueError(
                    f"{missing[0]}: a SCHEDULE workflow without customSchedule needs scheduleNumber and "
                    f"scheduleUnit; {' and '.join(missing)} "
                    f"{'is' if len(missing) == 1 else 'are'} not set, and Cronium never schedules such a "
                    "workflow (set them or customSchedule, or make the trigger MANUAL)"
                )
        return model

    @field_validator("tags", "override_server_ids", mode="before")
    @classmethod
    def _json_lists(cls, value: Any) -> Any:
        """jsonb columns (schema.ts:850, 856), sometimes still JSON text."""
        return _json_text_to_object(value)

    @field_validator("tags", "nodes", "connections", "override_server_ids", mode="before")
    @classmethod
    def _null_lists(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("custom_schedule", "start_time", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value


def missing_schedule_fields(workflow: Workflow, data: dict[str, Any]) -> list[str]:
    """The schedule fields an ACTIVE or PAUSED SCHEDULE workflow lacks (``data`` is its input)."""
    if workflow.trigger_type is not WorkflowTriggerType.SCHEDULE or workflow.custom_schedule:
        return []
    if workflow.status not in (EventStatus.ACTIVE, EventStatus.PAUSED):
        return []
    return [
        alias
        for alias, name in (("scheduleNumber", "schedule_number"), ("scheduleUnit", "schedule_unit"))
        if data.get(alias, data.get(name)) is None
    ]


RecordKind = Literal["event", "workflow", "server"]
MODEL_BY_KIND: dict[str, type[CroniumModel]] = {"event": Event, "workflow": Workflow, "server": Server}
