"""Which Cronium tools and actions the provider runs: pure data, read by validation and by delivery."""

from __future__ import annotations

SUPPORTED = {
    "slack": ("slack-send-message",),
    "discord": ("discord-send-message",),
    "teams": ("send-message", "send-card"),
    "email": ("send-email",),
    "webhook": ("send-webhook", "webhook", "send"),
    "google-sheets": ("read-data", "write-data", "create-sheet"),
    "trello": ("create-card", "move-card", "add-checklist"),
    "notion": ("create-page", "update-database", "search-content", "manage-blocks"),
}
NOT_SUPPORTED: tuple[str, ...] = ()
DEFAULT_ACTION = {
    "slack": "slack-send-message",
    "discord": "discord-send-message",
    "teams": "send-message",
    "email": "send-email",
    "webhook": "send-webhook",
    "trello": "create-card",
}

# The tools a SEND_MESSAGE conditional action sends through (Cronium's handler maps email, Slack, Discord and
# Teams to their message action and refuses every other tool: apps/cronium-app/src/lib/scheduler/
# event-handlers.ts:253-266); the provider's generic webhook is its own message tool.
MESSAGE_TOOLS = ("email", "slack", "discord", "teams", "webhook")

# The Airflow connection types a tool connection may have, each with its tool
CONN_TYPE_TOOLS = {
    "slackwebhook": "slack",
    "discord": "discord",
    "smtp": "email",
    "email": "email",
    "cronium_google_sheets": "google-sheets",
    "cronium_trello": "trello",
    "cronium_notion": "notion",
}
HTTP_TOOLS = ("teams", "webhook")  # an ``http`` connection serves one of these, named by its extra ``tool_type``
# The connection type each tool is made with (``airflow connections add --conn-type``): its first one above
TOOL_CONN_TYPES = {tool: conn_type for conn_type, tool in reversed(CONN_TYPE_TOOLS.items())} | dict.fromkeys(
    HTTP_TOOLS, "http"
)


# Action ids Cronium's default tool templates use for the tool's one message action
# (apps/cronium-app/src/lib/default-tool-action-templates.ts:21-41: ``send-message`` for Slack and Discord).
# Cronium's SEND_MESSAGE handler names Teams' message action ``teams-send-message``
# (apps/cronium-app/src/lib/scheduler/event-handlers.ts:254-259), an id its Teams plugin spells ``send-message``.
ALIASES = {
    ("slack", "send-message"): "slack-send-message",
    ("discord", "send-message"): "discord-send-message",
    ("teams", "teams-send-message"): "send-message",
}


def canonical_action(tool_type: str, action_id: str) -> str:
    """The provider's id of an action given by one of Cronium's other names (``send-message``)."""
    return ALIASES.get((tool_type.lower(), action_id), action_id)


def unsupported_reason(tool_type: str, action_id: str) -> str | None:
    """Why the provider cannot run ``action_id`` of ``tool_type``, or None when it can."""
    tool = tool_type.lower()
    action_id = canonical_action(tool, action_id)
    if tool in NOT_SUPPORTED:
        return f"tool '{tool}' is not supported by airflow-provider-cronium (supported: {', '.join(SUPPORTED)})"
    if tool not in SUPPORTED:
        return f"unknown tool '{tool_type}'; supported: {', '.join(SUPPORTED)}"
    if tool != "webhook" and action_id not in SUPPORTED[tool]:
        return f"tool '{tool}' has no action '{action_id}'; actions: {', '.join(SUPPORTED[tool])}"
    return None
