"""Cronium's Notion actions: ``create-page``, ``update-database``, ``search-content``, ``manage-blocks``.

Each builds the request Cronium's action sends (apps/cronium-app/src/tools/plugins/notion/actions/*.ts) and
returns the result object it returns. The parameters are already rendered as Handlebars templates with the
run's facts (:mod:`cronium_provider.tools.actions`). IDs go into the request's path: they must be Notion
IDs (letters, digits and dashes), so a record cannot steer the request elsewhere. A refused call raises
:class:`~cronium_provider.exceptions.ToolHTTPError` with Notion's HTTP status and ``message``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from cronium_provider.exceptions import ToolActionError, ToolHTTPError
from cronium_provider.limits import MAX_JSON_DEPTH, MAX_JSON_TEXT_BYTES, deeper_than

ACTIONS = ("create-page", "update-database", "search-content", "manage-blocks")
ACTION_NAMES = {
    "create-page": "Create Page",
    "update-database": "Update Database Entry",
    "search-content": "Search Content",
    "manage-blocks": "Manage Blocks",
}
OPERATIONS = ("append", "update", "delete", "retrieve")
TEXT_BLOCKS = ("paragraph", "heading_1", "heading_2", "heading_3", "bulleted_list_item", "numbered_list_item", "quote")
PAGE_BLOCKS = (*TEXT_BLOCKS, "toggle", "to_do", "divider", "code")  # create-page.ts:7-19
MANAGED_BLOCKS = (*PAGE_BLOCKS, "callout", "bookmark", "equation", "table_of_contents")  # manage-blocks.ts:17-33
NOTION_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def _fail(action: str, message: str) -> ToolActionError:
    return ToolActionError(f"notion {action}: {message}")


def _text(action: str, params: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
    value = params.get(key)
    if value is None or value == "":
        if required:
            raise _fail(action, f"'{key}' is required")
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise _fail(action, f"'{key}' must be text, not {type(value).__name__}")
    return str(value)


def _notion_id(action: str, params: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
    value = _text(action, params, key, required=required)
    if value is not None and not NOTION_ID.match(value.strip()):
        raise _fail(action, f"'{key}' {value[:80]!r} is no Notion ID (letters, digits and dashes)")
    return None if value is None else value.strip()


def _json(action: str, params: Mapping[str, Any], key: str, kind: type) -> Any:
    """A parameter that is an object or a list (``kind``), or JSON text of one, as Cronium's form gives it."""
    value = params.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        if len(value.encode("utf-8", errors="replace")) > MAX_JSON_TEXT_BYTES:
            raise _fail(action, f"'{key}' JSON is longer than {MAX_JSON_TEXT_BYTES} bytes")
        try:
            value = json.loads(value)
        except RecursionError:
            raise _fail(action, f"'{key}' JSON nests more than {MAX_JSON_DEPTH} levels") from None
        except ValueError as exc:
            raise _fail(action, f"'{key}' is no JSON: {exc}") from None
    if deeper_than(value, MAX_JSON_DEPTH):
        raise _fail(action, f"'{key}' nests more than {MAX_JSON_DEPTH} levels")
    if not isinstance(value, kind):
        raise _fail(action, f"'{key}' must be {'an object' if kind is dict else 'a list'}, not {type(value).__name__}")
    return value


def _blocks(action: str, params: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> list[dict[str, Any]] | None:
    blocks = _json(action, params, key, list)
    for index, block in enumerate(blocks or []):
        if not isinstance(block, dict) or block.get("type") not in allowed:
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise _fail(action, f"'{key}' item {index} has type {kind!r}; block types: {', '.join(allowed)}")
        children = block.get("children")
        if children is not None:
            _blocks(action, {"children": children}, "children", allowed)
    return None if blocks is None else list(blocks)


def _properties(action: str, params: Mapping[str, Any], *, required: bool) -> dict[str, Any] | None:
    properties = _json(action, params, "properties", dict)
    if properties is None and required:
        raise _fail(action, "'properties' is required")
    for name, value in (properties or {}).items():
        if not isinstance(value, dict) or not isinstance(value.get("type"), str):
            raise _fail(action, f"property {name!r} must be an object with a 'type'")
    return None if properties is None else dict(properties)


def _text_item(action: str, name: str, item: Any, *, typed: bool) -> dict[str, Any]:
    text = item.get("text") if isinstance(item, dict) else None
    if not isinstance(text, dict) or not isinstance(text.get("content"), str):
        raise _fail(action, f"property {name!r}: each text item must be {{text: {{content: <text>}}}}")
    return {"type": "text", "text": {"content": text["content"]}} if typed else {"text": {"content": text["content"]}}


def _named(action: str, name: str, option: Any) -> dict[str, Any]:
    if not isinstance(option, dict) or not isinstance(option.get("name"), str):
        raise _fail(action, f"property {name!r}: each option must be {{name: <text>}}")
    return {"name": option["name"]}


def rebuilt_property(action: str, name: str, prop: Mapping[str, Any]) -> dict[str, Any]:
    """A property as Cronium's ``processProperty`` sends it: text items rebuilt as ``{text: {content}}`` (with
    ``type: text`` in update-database), and in update-database select, status and multi-select options as
    ``{name}`` (create-page.ts:518-550, update-database.ts:321-376); other properties as given."""
    typed = action == "update-database"
    processed = dict(prop)
    kind = prop["type"]
    if kind in ("rich_text", "title") and isinstance(prop.get(kind), list):
        processed[kind] = [_text_item(action, name, item, typed=typed) for item in prop[kind]]
    elif typed and kind in ("select", "status") and prop.get(kind):
        processed[kind] = _named(action, name, prop[kind])
    elif typed and kind == "multi_select" and isinstance(prop.get(kind), list):
        processed[kind] = [_named(action, name, option) for option in prop[kind]]
    return processed


def _properties_rebuilt(action: str, params: Mapping[str, Any], *, required: bool) -> dict[str, Any] | None:
    properties = _properties(action, params, required=required)
    if properties is None:
        return None
    return {name: rebuilt_property(action, name, value) for name, value in properties.items()}


def _is_url(value: Any) -> bool:
    from pydantic import AnyUrl, TypeAdapter, ValidationError

    try:
        TypeAdapter(AnyUrl).validate_python(value)
    except ValidationError:
        return False
    return True


def validate(action: str, params: Mapping[str, Any]) -> None:
    """Cronium's schema of the action (its zod ``inputSchema``); raises :class:`ToolActionError` naming the
    parameter, before anything is sent."""
    if action == "create-page":
        _notion_id(action, params, "parentId")
        _text(action, params, "title")
        _properties_rebuilt(action, params, required=False)
        _blocks(action, params, "children", PAGE_BLOCKS)
        # create-page.ts:30-44
        icon = _json(action, params, "icon", dict)
        if icon is not None and icon.get("type") not in ("emoji", "external"):
            raise _fail(action, "'icon' type must be emoji or external")
        cover = _json(action, params, "cover", dict)
        if cover is not None and (cover.get("type") != "external" or not _is_url(cover.get("url"))):
            raise _fail(action, "'cover' must be {type: external, url: <URL>}")
    elif action == "update-database":
        _text(action, params, "databaseId")
        _notion_id(action, params, "pageId")
        _properties_rebuilt(action, params, required=True)
        if params.get("archived") is not None and not isinstance(params["archived"], bool):
            raise _fail(action, "'archived' must be true or false")
    elif action == "search-content":
        _text(action, params, "query")
        size = params.get("pageSize", 10)
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 100:
            raise _fail(action, f"'pageSize' must be a whole number from 1 to 100, not {size!r}")
        search_filter = _json(action, params, "filter", dict) or {}
        if search_filter.get("property") not in (None, "object", "database", "page"):
            raise _fail(action, "'filter.property' must be object, database or page")
        sort = _json(action, params, "sort", dict)
        if sort is not None and (
            sort.get("direction") not in ("ascending", "descending") or sort.get("timestamp") != "last_edited_time"
        ):
            raise _fail(action, "'sort' must be {direction: ascending|descending, timestamp: last_edited_time}")
    elif action == "manage-blocks":
        operation = params.get("operation")
        if operation not in OPERATIONS:
            raise _fail(action, f"'operation' must be one of {', '.join(OPERATIONS)}, not {operation!r}")
        blocks = _blocks(action, params, "blocks", MANAGED_BLOCKS)
        if operation == "append" and (_notion_id(action, params, "pageId", required=False) is None or not blocks):
            raise _fail(action, "Page ID and blocks are required for append operation")
        if operation == "update" and (_notion_id(action, params, "blockId", required=False) is None or not blocks):
            raise _fail(action, "Block ID and block data are required for update operation")
        if operation in ("delete", "retrieve") and _notion_id(action, params, "blockId", required=False) is None:
            raise _fail(action, f"Block ID is required for {operation} operation")
        _notion_id(action, params, "after", required=False)
    else:
        raise _fail(action, f"no such action; actions: {', '.join(ACTIONS)}")


def _rich_text(content: Any) -> list[dict[str, Any]]:
    return [{"type": "text", "text": {"content": "" if content is None else str(content)}}]


def page_block(block: Mapping[str, Any]) -> dict[str, Any]:
    """A create-page content block as Cronium's ``processBlock`` builds it (create-page.ts:423-495)."""
    kind = block["type"]
    content: dict[str, Any] = {}
    if kind != "divider":
        content["rich_text"] = _rich_text(block.get("content") or "")
    if kind == "to_do":
        content["checked"] = block.get("checked") or False
    if kind == "toggle" and block.get("children"):
        content["children"] = [page_block(child) for child in block["children"]]
    if kind == "code":
        content["language"] = block.get("language") or "plain text"
    return {"object": "block", "type": kind, kind: content}


def managed_block(block: Mapping[str, Any]) -> dict[str, Any]:
    """A manage-blocks block as Cronium's ``processBlock`` builds it (manage-blocks.ts:401-470)."""
    kind = block["type"]
    content: dict[str, Any] = {}
    if kind not in ("divider", "table_of_contents") and block.get("content"):
        content["rich_text"] = _rich_text(block["content"])
    if kind == "to_do" and block.get("checked") is not None:
        content["checked"] = block["checked"]
    if kind == "code" and block.get("language"):
        content["language"] = block["language"]
    if kind == "callout" and block.get("icon"):
        content["icon"] = block["icon"]
    if kind == "bookmark":
        if block.get("url"):
            content["url"] = block["url"]
        if block.get("caption"):
            content["caption"] = _rich_text(block["caption"])
    if kind == "equation" and block.get("expression"):
        content["expression"] = block["expression"]
    if block.get("color"):
        content["color"] = block["color"]
    return {"object": "block", "type": kind, kind: content}


def create_page_body(params: Mapping[str, Any]) -> dict[str, Any]:
    """The body of ``POST /v1/pages`` (create-page.ts:300-360): the parent as a page, the title property, the
    other properties as given, the icon as given, the cover as an external file, the content blocks."""
    title = {"title": [{"text": {"content": str(params["title"])}}]}
    properties: dict[str, Any] = {"title": title}
    for name, value in (_properties_rebuilt("create-page", params, required=False) or {}).items():
        if name != "title":
            properties[name] = value
    body: dict[str, Any] = {
        "parent": {"type": "page_id", "page_id": str(params["parentId"]).strip()},
        "properties": properties,
    }
    icon = _json("create-page", params, "icon", dict)
    if icon:
        body["icon"] = icon
    cover = _json("create-page", params, "cover", dict)
    if cover:
        body["cover"] = {"type": "external", "external": {"url": cover.get("url")}}
    children = _blocks("create-page", params, "children", PAGE_BLOCKS)
    if children is not None:
        body["children"] = [page_block(block) for block in children]
    return body


def search_body(params: Mapping[str, Any]) -> dict[str, Any]:
    """The body of ``POST /v1/search`` (search-content.ts:240-262)."""
    body: dict[str, Any] = {"query": str(params["query"]), "page_size": params.get("pageSize", 10)}
    search_filter = _json("search-content", params, "filter", dict)
    if search_filter is not None:
        given: dict[str, Any] = {}
        if search_filter.get("property"):
            given["property"] = search_filter["property"]
        if search_filter.get("databases"):
            given["value"] = search_filter["databases"]
        body["filter"] = given
    sort = _json("search-content", params, "sort", dict)
    if sort is not None:
        body["sort"] = sort
    return body


def search_result(item: Mapping[str, Any]) -> dict[str, Any]:
    """One search hit as Cronium lists it (search-content.ts:305-341)."""
    title = "Untitled"
    if item.get("object") == "page" and item.get("properties"):
        prop = next((p for p in item["properties"].values() if isinstance(p, dict) and p.get("type") == "title"), None)
        if prop and prop.get("title"):
            title = prop["title"][0].get("plain_text", title)
    elif item.get("object") == "database" and item.get("title"):
        title = "".join(t.get("plain_text", "") for t in item["title"])
    parent = item.get("parent") or {}
    result = {
        "id": item["id"],
        "type": item.get("object"),
        "title": title,
        "url": item.get("url") or f"https://notion.so/{str(item['id']).replace('-', '')}",
        "lastEditedTime": item.get("last_edited_time")
        or datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "parentId": parent.get("page_id") or parent.get("database_id"),
        "parentType": parent.get("type"),
    }
    return {k: v for k, v in result.items() if v is not None}


def _call(conn_id: str, method: str, path: str, body: dict[str, Any] | None = None, query: Any = None) -> Any:
    """One Notion call through the connection's client; Notion's error answer as :class:`ToolHTTPError`
    (its HTTP status, its ``message`` as Cronium reports it), a dropped or timed-out call as a network error."""
    import httpx
    from notion_client.errors import HTTPResponseError, RequestTimeoutError

    from cronium_provider.hooks.notion import NotionHook

    client = NotionHook(conn_id).get_conn()
    try:
        return client.request(path=path, method=method, body=body, query=query)
    except HTTPResponseError as exc:
        raise ToolHTTPError("notion", exc.status, str(exc) or f"API error: {exc.status}") from None
    except RequestTimeoutError as exc:
        raise TimeoutError(f"notion: {exc}") from None
    except httpx.TransportError as exc:
        raise ConnectionError(f"notion: {type(exc).__name__}: {exc}") from None
    finally:
        client.close()


def _compact(result: dict[str, Any]) -> dict[str, Any]:
    """The result as Cronium's JSON has it: ``undefined`` members are left out."""
    return {k: v for k, v in result.items() if v is not None}


def send(conn_id: str, action: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Carry out one Notion action; Cronium's result object."""
    if action == "create-page":
        page = _call(conn_id, "POST", "pages", create_page_body(params))
        return _compact({"success": True, "pageId": page.get("id"), "url": page.get("url")})
    if action == "update-database":
        body: dict[str, Any] = {"properties": _properties_rebuilt(action, params, required=True)}
        if params.get("archived") is not None:
            body["archived"] = params["archived"]
        page = _call(conn_id, "PATCH", f"pages/{str(params['pageId']).strip()}", body)
        return _compact({"success": True, "lastEditedTime": page.get("last_edited_time")})
    if action == "search-content":
        found = _call(conn_id, "POST", "search", search_body(params))
        results = [search_result(item) for item in found.get("results") or []]
        return _compact({"success": True, "results": results, "hasMore": found.get("has_more")})
    return manage_blocks(conn_id, params)


def manage_blocks(conn_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """manage-blocks' four operations (manage-blocks.ts:255-378)."""
    operation = params["operation"]
    blocks = _blocks("manage-blocks", params, "blocks", MANAGED_BLOCKS) or []
    if operation == "append":
        body: dict[str, Any] = {"children": [managed_block(block) for block in blocks]}
        if params.get("after"):
            body["after"] = str(params["after"]).strip()
        answer = _call(conn_id, "PATCH", f"blocks/{str(params['pageId']).strip()}/children", body)
        return _compact({"success": True, "blocks": answer.get("results")})
    block_id = str(params["blockId"]).strip()
    if operation == "update":
        _call(conn_id, "PATCH", f"blocks/{block_id}", managed_block(blocks[0]))
        return {"success": True}
    if operation == "delete":
        _call(conn_id, "DELETE", f"blocks/{block_id}")
        return {"success": True}
    answer = _call(conn_id, "GET", f"blocks/{block_id}/children", query={"page_size": 100})
    return _compact({"success": True, "blocks": answer.get("results")})


def sender(action: str) -> Callable[[str, Mapping[str, Any]], dict[str, Any]]:
    return lambda conn_id, params: send(conn_id, action, params)
