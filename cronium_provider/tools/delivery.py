"""Cronium tool actions: per-action validation and delivery through the Airflow providers' hooks.

Slack goes through the Slack provider's webhook hook, Discord through the Discord provider's webhook
hook, email through the SMTP provider's hook, Teams and generic webhooks through the HTTP provider's
hook. Credentials are Airflow connections (``cronium_tool_<toolId>`` by default); nothing here reads a
credential from a record. Each ``send`` is the remote call alone, so the resilience guard can retry it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import make_msgid
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

from cronium_provider.exceptions import ToolActionError, ToolHTTPError
from cronium_provider.limits import MAX_JSON_DEPTH, MAX_JSON_TEXT_BYTES, deeper_than
from cronium_provider.tools import google_sheets, notion, trello
from cronium_provider.tools.catalogue import CONN_TYPE_TOOLS, HTTP_TOOLS, unsupported_reason

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


def json_list(action_id: str, params: Mapping[str, Any], key: str) -> list[Any] | None:
    """Slack's ``blocks`` or Discord's ``embeds``: a list, or JSON text of a list or of an object holding it
    under ``key``, parsed before sending as Cronium's actions parse it
    (apps/cronium-app/src/tools/plugins/slack/actions/send-message.ts:170-194, discord's :165-189). Text that
    is no such JSON, is longer than :data:`MAX_JSON_TEXT_BYTES` or nests deeper than :data:`MAX_JSON_DEPTH`
    is refused naming the parameter, and nothing is sent. None when the parameter is unset."""
    value = params.get(key)
    if value is None or value == "":
        return None
    too_deep = f"{action_id} '{key}': {key} JSON nests more than {MAX_JSON_DEPTH} levels of lists and objects"
    parsed = value
    if isinstance(value, str):
        size = len(value.encode("utf-8", errors="replace"))
        if size > MAX_JSON_TEXT_BYTES:
            raise ToolActionError(
                f"{action_id} '{key}': {key} JSON is {size} bytes, above the limit of {MAX_JSON_TEXT_BYTES}"
            )
        try:
            parsed = json.loads(value)
        except RecursionError:
            raise ToolActionError(too_deep) from None
        except ValueError as exc:
            raise ToolActionError(f"{action_id} '{key}': Failed to parse {key} JSON: {exc}") from None
    if deeper_than(parsed, MAX_JSON_DEPTH):
        raise ToolActionError(too_deep)
    if isinstance(parsed, Mapping) and isinstance(parsed.get(key), list):
        return list(parsed[key])
    if isinstance(parsed, list):
        return parsed
    raise ToolActionError(
        f"{action_id} '{key}': Invalid {key} format. Expected an array or object with '{key}' property."
    )


TEAMS_SECTION_KEYS = ("activityTitle", "activitySubtitle", "activityImage", "facts", "text", "images")


def teams_list(params: Mapping[str, Any], key: str) -> list[Any] | None:
    """Teams' ``sections`` or ``potentialAction``: a list of objects, as Cronium's schema has them
    (apps/cronium-app/src/tools/plugins/teams/actions/send-message.ts:21-66); None when unset."""
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise ToolActionError(f"send-message '{key}' must be a list of objects, not {type(value).__name__}")
    return [dict(item) for item in value]


def webhook_url(params: Mapping[str, Any]) -> str | None:
    """Teams' ``webhookUrl`` parameter, where Cronium's send-message posts (send-message.ts:7-10, 163, 263):
    an http(s) URL; None when unset (the connection's URL is used)."""
    value = params.get("webhookUrl")
    if value is None or value == "":
        return None
    text = str(value).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ToolActionError(f"send-message 'webhookUrl' must be an http or https URL, not {text[:100]!r}")
    return text


def _origin(parts: SplitResult) -> tuple[str, str, int | None]:
    """A URL's scheme, host and port (the scheme's own when none is given); ValueError for a bad port."""
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def teams_webhook_url(conn_id: str, params: Mapping[str, Any]) -> str | None:
    """Where Teams' ``send-message`` posts instead of the connection's URL: its ``webhookUrl``, only on the
    connection's own scheme, host and port (another channel's webhook of the same tenant). A record, a run's
    input or a script's output sets parameters, and is trusted less than the connection's owner: another
    host (the cloud's metadata address, the api-server, a service on loopback) is refused, naming the
    parameter and the connection, and nothing is sent. The URL posted to is the connection's origin with
    the parameter's path and query. None when the parameter is unset."""
    url = webhook_url(params)
    if url is None:
        return None
    own = urlsplit(str(_http_hook(conn_id).url_from_endpoint(None)))
    given = urlsplit(url)
    try:
        same = _origin(given) == _origin(own) and given.username is None and given.password is None
    except ValueError:
        same = False
    if not same or "\\" in url or not own.hostname:
        raise ToolActionError(
            f"send-message 'webhookUrl' {url[:100]!r} is refused: it must be on the scheme, host and port of "
            f"the tool connection {conn_id} ({own.scheme}://{own.hostname}{f':{own.port}' if own.port else ''})"
        )
    return urlunsplit((own.scheme, own.netloc, given.path, given.query, ""))


def validate(tool_type: str, action_id: str, params: Mapping[str, Any]) -> None:
    """Cronium's per-action rules; raises :class:`ToolActionError` naming the parameter."""
    check_supported(tool_type, action_id)
    tool = tool_type.lower()
    if tool == "slack":
        json_list(action_id, params, "blocks")
    if tool == "discord":
        json_list(action_id, params, "embeds")
    if tool == "teams" and action_id == "send-message":
        teams_list(params, "sections")
        teams_list(params, "potentialAction")
        webhook_url(params)
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
    if tool == "google-sheets":
        google_sheets.validate(action_id, params)
    if tool == "email":
        for name in ("to", "subject", "body"):
            if not params.get(name):
                raise ToolActionError(f"send-email needs '{name}'")
    if tool == "trello":
        trello.validate(action_id, params)
    if tool == "notion":
        notion.validate(action_id, params)
    if tool == "teams":
        if action_id == "send-message" and not params.get("message"):
            raise ToolActionError("send-message needs 'message'")
        if action_id == "send-card" and not params.get("card"):
            raise ToolActionError("send-card needs 'card' (an Adaptive Card object)")


def check_destination(conn_id: str, tool_type: str, action_id: str, params: Mapping[str, Any]) -> None:
    """Refuse, before anything is sent, a parameter that would send elsewhere than the connection allows
    (Teams' ``webhookUrl``, see :func:`teams_webhook_url`); the other tools send only where their connection
    says."""
    if tool_type.lower() == "teams" and action_id == "send-message":
        teams_webhook_url(conn_id, params)


# What a send returns: the action's own result object, as Cronium's action returns it (``result`` of the
# tool action's result, apps/cronium-app/src/lib/scheduler/tool-action-executor.ts:415-436)
Result = dict[str, Any]


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


def _post_json(tool: str, hook: Any, endpoint: str | None, body: Any) -> Any:
    """POST ``body`` as JSON through ``hook``; the response, once it is a 2xx."""
    response = hook.run(
        endpoint=endpoint,
        data=json.dumps(body),
        headers={"Content-Type": "application/json"},
        extra_options={"check_response": False, "timeout": 30},
    )
    if not 200 <= response.status_code < 300:
        raise ToolHTTPError(tool, response.status_code, response.text)
    return response


def _post_to_url(tool: str, url: str, body: Any) -> Any:
    """POST ``body`` as JSON to ``url`` (a parameter's URL, not a connection's); the response once a 2xx."""
    import requests

    response = requests.post(url, json=body, timeout=30, allow_redirects=False)
    if not 200 <= response.status_code < 300:
        raise ToolHTTPError(tool, response.status_code, response.text)
    return response


def send_slack(conn_id: str, params: Mapping[str, Any]) -> Result:
    """Slack's incoming webhook; ``{"ok": true}`` as Cronium's action returns (slack send-message.ts:224-233)."""
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

    body = {
        k: params[k] for k in ("text", "attachments", "channel", "username", "icon_emoji") if params.get(k) is not None
    }
    if "text" in body:
        body["text"] = _text(body["text"])
    blocks = json_list("slack-send-message", params, "blocks")
    if blocks is not None:
        body["blocks"] = blocks
    client = SlackWebhookHook(slack_webhook_conn_id=conn_id, timeout=30).client
    response = client.send_dict(body)
    if not 200 <= response.status_code < 300:
        raise ToolHTTPError("slack", response.status_code, str(response.body))
    return {"ok": True}


def send_discord(conn_id: str, params: Mapping[str, Any]) -> Result:
    """Discord's webhook; ``{"success": true, "message_id"}`` as Cronium's action returns (discord
    send-message.ts:232-235; the id only when Discord answered with the message)."""
    from airflow.providers.discord.hooks.discord_webhook import DiscordWebhookHook

    body: dict[str, Any] = {}
    if params.get("content"):
        body["content"] = _text(params["content"])
    embeds = json_list("discord-send-message", params, "embeds")
    if embeds is not None:
        body["embeds"] = embeds
    for key in ("username", "avatar_url", "tts"):
        if params.get(key) is not None:
            body[key] = params[key]
    hook = _without_our_extras(DiscordWebhookHook)(http_conn_id=conn_id)
    response = _post_json("discord", hook, hook.webhook_endpoint, body)
    result: Result = {"success": True}
    with contextlib.suppress(ValueError):
        answer = response.json()
        if isinstance(answer, Mapping) and answer.get("id") is not None:
            result["message_id"] = answer["id"]
    return result


def teams_message_card(params: Mapping[str, Any]) -> dict[str, Any]:
    """The MessageCard Cronium's Teams send-message posts (send-message.ts:169-234): the message as the
    first section, then ``sections`` (their known keys), ``potentialAction`` as given."""
    message = _text(params["message"])
    title = _text(params["title"]) if params.get("title") else None
    body: dict[str, Any] = {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "themeColor": str(params.get("color") or TEAMS_DEFAULT_COLOR),
        "summary": title if title is not None else message[:100],
        "sections": [{"text": message}],
    }
    if title is not None:
        body["title"] = title
    for section in teams_list(params, "sections") or []:
        body["sections"].append({k: section[k] for k in TEAMS_SECTION_KEYS if section.get(k)})
    actions = teams_list(params, "potentialAction")
    if actions is not None:
        body["potentialAction"] = actions
    return body


def send_teams(conn_id: str, params: Mapping[str, Any], action_id: str) -> Result:
    """Teams' incoming webhook (the parameter ``webhookUrl`` when given, else the connection's URL);
    ``{"success": true}`` as Cronium's actions return (send-message.ts:295, send-card.ts:355)."""
    if action_id == "send-card":
        body: dict[str, Any] = {
            "type": "message",
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": params["card"]}],
        }
        _post_json("teams", _http_hook(conn_id), None, body)
        return {"success": True}
    url = teams_webhook_url(conn_id, params)
    card = teams_message_card(params)
    if url is not None:
        _post_to_url("teams", url, card)
    else:
        _post_json("teams", _http_hook(conn_id), None, card)
    return {"success": True}


def send_webhook(conn_id: str, params: Mapping[str, Any]) -> Result:
    """A generic webhook (no Cronium plugin): its HTTP status and answer (its first 500 characters)."""
    body = params.get("body", {k: v for k, v in params.items() if k not in ("method",)})
    response = _post_json("webhook", _http_hook(conn_id), None, body)
    return {"success": True, "status": response.status_code, "response": response.text[:500] or None}


def send_email(conn_id: str, params: Mapping[str, Any]) -> Result:
    """An email through the SMTP connection; Cronium's send-email result (email-plugin.tsx:322-334, 376-386):
    ``messageId`` (the email's Message-ID), ``status``, ``recipients``, ``timestamp``, ``deliveryInfo``."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    recipients = params["to"]
    to = [r.strip() for r in recipients.split(",") if r.strip()] if isinstance(recipients, str) else list(recipients)
    message_id = make_msgid(domain="cronium.airflow")
    with SmtpHook(smtp_conn_id=conn_id) as hook:
        hook.send_email_smtp(
            to=to,
            subject=_text(params["subject"]),
            html_content=_text(params["body"]),
            cc=params.get("cc"),
            bcc=params.get("bcc"),
            custom_headers={"Message-ID": message_id},
        )
    return {
        "messageId": message_id,
        "status": "sent",
        "recipients": to,
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "deliveryInfo": {"accepted": to, "rejected": [], "pending": []},
    }


def sender(tool_type: str, action_id: str) -> Callable[[str, Mapping[str, Any]], Result]:
    tool = tool_type.lower()
    if tool == "slack":
        return send_slack
    if tool == "discord":
        return send_discord
    if tool == "teams":
        return lambda conn_id, params: send_teams(conn_id, params, action_id)
    if tool == "email":
        return send_email
    if tool == "google-sheets":
        return lambda conn_id, params: google_sheets.send(conn_id, params, action_id)
    if tool == "trello":
        return lambda conn_id, params: trello.send_trello(conn_id, params, action_id)
    if tool == "notion":
        return notion.sender(action_id)
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
