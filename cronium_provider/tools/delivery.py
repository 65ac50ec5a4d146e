"""Cronium tool actions: per-action validation and delivery through the Airflow providers' hooks.

Slack goes through the Slack provider's webhook hook, Discord through the Discord provider's webhook
hook, email through the SMTP provider's hook, Teams and generic webhooks through the HTTP provider's
hook. Credentials are Airflow connections (``cronium_tool_<toolId>`` by default); nothing here reads a
credential from a record. Each ``send`` is the remote call alone, so the resilience guard can retry it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cronium_provider.exceptions import ToolActionError, ToolHTTPError
from cronium_provider.tools.catalogue import unsupported_reason

CONN_TYPE_TOOLS = {"slackwebhook": "slack", "discord": "discord", "smtp": "email", "email": "email"}
HTTP_TOOLS = ("teams", "webhook")  # an ``http`` connection serves one of these, named by its extra ``tool_type``
# The keys of a tool connection's extra that are the provider's, not the tool's: never sent as headers.
TOOL_TYPE_KEY = "tool_type"
OWNER_KEY = "owner"  # the Cronium user (``userId``) the tool belongs to
DISCORD_CONTENT_LIMIT = 2000
TEAMS_DEFAULT_COLOR = "0078D4"


def tool_type_of_connection(conn_id: str, conn: Any) -> str:
    """The tool type a connection serves: from its type (Slack, Discord, email), or for an ``http``
    connection its extra ``tool_type`` (``teams`` or ``webhook``). Any other connection (SSH, Postgres,
    Cronium's API...) is no tool: :class:`ToolActionError` naming it and its type, as its extras and
    login would otherwise go out as a webhook's headers and basic auth."""
    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else {}
    declared = str(extra.get(TOOL_TYPE_KEY, "")).strip().lower()
    conn_type = str(conn.conn_type or "").lower()
    if conn_type == "http":
        if declared in HTTP_TOOLS:
            return declared
        if not declared:
            raise ToolActionError(
                f'connection {conn_id} is of type http without extra "{TOOL_TYPE_KEY}": set it to '
                f"{' or '.join(HTTP_TOOLS)} to use the connection as that tool"
            )
        raise ToolActionError(
            f'connection {conn_id} is of type http with extra "{TOOL_TYPE_KEY}" {declared!r}; an http tool is '
            f"{' or '.join(HTTP_TOOLS)}"
        )
    kind = CONN_TYPE_TOOLS.get(conn_type)
    if kind is None:
        raise ToolActionError(
            f"connection {conn_id} is of type {conn_type or '(none)'}, which is no Cronium tool: a tool is a "
            f"connection of type {', '.join(sorted(CONN_TYPE_TOOLS))} or http (teams, webhook)"
        )
    if declared and declared != kind:
        raise ToolActionError(
            f'connection {conn_id} is of type {conn_type} (a {kind} tool) but its extra "{TOOL_TYPE_KEY}" says '
            f"{declared!r}"
        )
    return kind


def _owner_text(owner: Any) -> str | None:
    """A Cronium userId as text (``2`` and ``"2"`` alike), or None for none."""
    return None if owner is None or str(owner).strip() == "" else str(owner).strip()


def tool_owner(conn: Any) -> str | None:
    """The Cronium user a tool connection belongs to: its extra ``owner``, or None when it records none."""
    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else {}
    return _owner_text(extra.get(OWNER_KEY))


def check_tool_use(conn_id: str, conn: Any, tool_type: str | None, event: Mapping[str, Any], *, shared: bool) -> str:
    """The connection's tool type, once it is checked: refused when asked for under another ``tool_type``
    than its own (None: whatever its own is), or by an event of another owner, as Cronium hands a tool
    action only a tool of the event's owner (its ``tool_credentials.user_id``). A connection that records
    no owner is usable only where tools are ``shared`` (the records name one owner: variables are not
    scoped by owner)."""
    kind = tool_type_of_connection(conn_id, conn)
    owner = tool_owner(conn)
    asker_text = _owner_text(event.get("userId"))
    if kind != (tool_type or kind).lower() or (owner is not None and owner != asker_text):
        raise ToolActionError(
            f"tool connection {conn_id} is a {kind} tool of owner {owner or '(none recorded)'}; event "
            f"{event.get('id')} (owner {asker_text or '(none)'}) asked for it as {tool_type or kind}"
        )
    if owner is None and not shared:
        raise ToolActionError(
            f"tool connection {conn_id} records no owner, and the records name several owners; event "
            f"{event.get('id')} (owner {asker_text or '(none)'}) may not use it: set the connection's extra "
            f'"{OWNER_KEY}" to the Cronium userId the tool belongs to'
        )
    return kind


def check_supported(tool_type: str, action_id: str) -> None:
    reason = unsupported_reason(tool_type, action_id)
    if reason is not None:
        raise ToolActionError(reason)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def validate(tool_type: str, action_id: str, params: Mapping[str, Any]) -> None:
    """Cronium's per-action rules; raises :class:`ToolActionError` naming the parameter."""
    check_supported(tool_type, action_id)
    tool = tool_type.lower()
    if tool == "slack" and not (params.get("text") or params.get("blocks")):
        raise ToolActionError("slack-send-message needs 'text' or 'blocks'")
    if tool == "discord":
        content = params.get("content")
        if not content and not params.get("embeds"):
            raise ToolActionError("discord-send-message needs 'content' or 'embeds'")
        if content and len(_text(content)) > DISCORD_CONTENT_LIMIT:
            raise ToolActionError(
                f"discord-send-message 'content' is {len(_text(content))} characters; Discord allows "
                f"{DISCORD_CONTENT_LIMIT}"
            )
    if tool == "email":
        for name in ("to", "subject", "body"):
            if not params.get(name):
                raise ToolActionError(f"send-email needs '{name}'")
    if tool == "teams":
        if action_id == "send-message" and not params.get("message"):
            raise ToolActionError("send-message needs 'message'")
        if action_id == "send-card" and not params.get("card"):
            raise ToolActionError("send-card needs 'card' (an Adaptive Card object)")


@dataclass(frozen=True)
class Delivery:
    """What was sent, for the XCom result (never the credential)."""

    status: int | str
    detail: Any = None


def _without_our_extras(hook_class: type[Any]) -> type[Any]:
    """``hook_class`` (an HttpHook) without the provider's extras as headers: HttpHook sends a connection's
    unknown extras as headers, and ``tool_type`` and ``owner`` are ours, not the tool's."""

    class ToolHook(hook_class):  # type: ignore[misc]
        def get_conn(self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None) -> Any:
            session = super().get_conn(headers=headers, extra_options=extra_options)
            for key in (TOOL_TYPE_KEY, OWNER_KEY):
                session.headers.pop(key, None)
            return session

    return ToolHook


def _http_hook(conn_id: str) -> Any:
    from airflow.providers.http.hooks.http import HttpHook

    return _without_our_extras(HttpHook)(method="POST", http_conn_id=conn_id)


def _post_json(tool: str, hook: Any, endpoint: str | None, body: Any) -> Delivery:
    response = hook.run(
        endpoint=endpoint,
        data=json.dumps(body),
        headers={"Content-Type": "application/json"},
        extra_options={"check_response": False, "timeout": 30},
    )
    if not 200 <= response.status_code < 300:
        raise ToolHTTPError(tool, response.status_code, response.text)
    return Delivery(response.status_code, response.text[:500] or None)


def send_slack(conn_id: str, params: Mapping[str, Any]) -> Delivery:
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

    body = {
        k: params[k]
        for k in ("text", "blocks", "attachments", "channel", "username", "icon_emoji")
        if params.get(k) is not None
    }
    if "text" in body:
        body["text"] = _text(body["text"])
    client = SlackWebhookHook(slack_webhook_conn_id=conn_id, timeout=30).client
    response = client.send_dict(body)
    if not 200 <= response.status_code < 300:
        raise ToolHTTPError("slack", response.status_code, str(response.body))
    return Delivery(response.status_code, response.body)


def send_discord(conn_id: str, params: Mapping[str, Any]) -> Delivery:
    from airflow.providers.discord.hooks.discord_webhook import DiscordWebhookHook

    body: dict[str, Any] = {}
    if params.get("content"):
        body["content"] = _text(params["content"])
    for key in ("embeds", "username", "avatar_url", "tts"):
        if params.get(key) is not None:
            body[key] = params[key]
    hook = _without_our_extras(DiscordWebhookHook)(http_conn_id=conn_id)
    return _post_json("discord", hook, hook.webhook_endpoint, body)


def send_teams(conn_id: str, params: Mapping[str, Any], action_id: str) -> Delivery:
    if action_id == "send-card":
        body: dict[str, Any] = {
            "type": "message",
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": params["card"]}],
        }
    else:
        body = {
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "themeColor": str(params.get("color") or TEAMS_DEFAULT_COLOR),
            "summary": _text(params.get("title") or params["message"])[:80],
            "text": _text(params["message"]),
        }
        if params.get("title"):
            body["title"] = _text(params["title"])
    return _post_json("teams", _http_hook(conn_id), None, body)


def send_webhook(conn_id: str, params: Mapping[str, Any]) -> Delivery:
    body = params.get("body", {k: v for k, v in params.items() if k not in ("method",)})
    return _post_json("webhook", _http_hook(conn_id), None, body)


def send_email(conn_id: str, params: Mapping[str, Any]) -> Delivery:
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    recipients = params["to"]
    to = [r.strip() for r in recipients.split(",") if r.strip()] if isinstance(recipients, str) else list(recipients)
    with SmtpHook(smtp_conn_id=conn_id) as hook:
        hook.send_email_smtp(
            to=to,
            subject=_text(params["subject"]),
            html_content=_text(params["body"]),
            cc=params.get("cc"),
            bcc=params.get("bcc"),
        )
    return Delivery("sent", {"to": to})


def sender(tool_type: str, action_id: str) -> Callable[[str, Mapping[str, Any]], Delivery]:
    tool = tool_type.lower()
    if tool == "slack":
        return send_slack
    if tool == "discord":
        return send_discord
    if tool == "teams":
        return lambda conn_id, params: send_teams(conn_id, params, action_id)
    if tool == "email":
        return send_email
    return send_webhook


def message_parameters(
    tool_type: str,
    message: str,
    addresses: str | None,
    subject: str | None,
    *,
    event_name: str = "",
    succeeded: bool = True,
) -> dict[str, Any]:
    """A ``SEND_MESSAGE`` conditional action as the parameters of its tool's action, with Cronium's
    defaults: an email without a subject is ``Event Success: <name>`` (or ``Failure``), a Teams message
    without one is titled ``Event <name>`` (apps/cronium-app/src/lib/scheduler/event-handlers.ts:319-342).
    Every text of them is then rendered as a template (the message and the subject are templates)."""
    tool = tool_type.lower()
    if tool == "email":
        default_subject = f"Event {'Success' if succeeded else 'Failure'}: {event_name}"
        return {"to": addresses or "", "subject": subject or default_subject, "body": message}
    if tool == "slack":
        return {"text": message, **({"channel": addresses} if addresses else {})}
    if tool == "discord":
        return {"content": message}
    if tool == "teams":
        return {"message": message, "title": subject or f"Event {event_name}"}
    return {"message": message, **({"subject": subject} if subject else {})}
