"""Cronium's Google Sheets actions: ``read-data``, ``write-data``, ``create-sheet``.

Parameters, defaults and results are those of Cronium's actions
(apps/cronium-app/src/tools/plugins/google-sheets/actions/*.ts); the requests are the Sheets API v4 calls they
make: ``spreadsheets.values.get``, ``spreadsheets.values.update`` (``values.append`` for
``insertDataOption: INSERT_ROWS``, the one call that takes that option), ``spreadsheets.batchUpdate`` with an
``addSheet`` request. An error answer fails the action with Google's ``error.message``, as Cronium reports it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError

from cronium_provider.exceptions import ToolActionError, ToolHTTPError
from cronium_provider.resilience.retry import retry_after_seconds

TOOL = "google-sheets"
ACTIONS = ("read-data", "write-data", "create-sheet")
NAMES = {"read-data": "Read Data", "write-data": "Write Data", "create-sheet": "Create Sheet"}
_URI_SAFE = "-_.!~*'()"  # what JavaScript's encodeURIComponent leaves as it is


class _Params(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # Google's ids are letters, digits, ``-`` and ``_``: no text (``..``, ``/``) that would reach another API path
    spreadsheetId: str = Field(pattern=r"^[A-Za-z0-9_-]+$")


class ReadData(_Params):
    """read-data.ts:6-28."""

    range: str = Field(min_length=1)
    valueRenderOption: Literal["FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA"] = "FORMATTED_VALUE"
    dateTimeRenderOption: Literal["SERIAL_NUMBER", "FORMATTED_STRING"] = "FORMATTED_STRING"
    majorDimension: Literal["ROWS", "COLUMNS"] = "ROWS"


class WriteData(_Params):
    """write-data.ts:6-29."""

    range: str = Field(min_length=1)
    values: list[list[Any]]
    valueInputOption: Literal["RAW", "USER_ENTERED"] = "USER_ENTERED"
    insertDataOption: Literal["OVERWRITE", "INSERT_ROWS"] = "OVERWRITE"
    includeValuesInResponse: StrictBool = False


class GridProperties(BaseModel):
    model_config = ConfigDict(extra="ignore")

    rowCount: StrictInt = Field(1000, ge=1)
    columnCount: StrictInt = Field(26, ge=1)
    frozenRowCount: StrictInt | None = Field(None, ge=0)
    frozenColumnCount: StrictInt | None = Field(None, ge=0)


class TabColor(BaseModel):
    model_config = ConfigDict(extra="ignore")

    red: float | None = Field(None, ge=0, le=1)
    green: float | None = Field(None, ge=0, le=1)
    blue: float | None = Field(None, ge=0, le=1)


class CreateSheet(_Params):
    """create-sheet.ts:6-33."""

    title: str = Field(min_length=1)
    index: StrictInt | None = Field(None, ge=0)
    gridProperties: GridProperties | None = None
    tabColor: TabColor | None = None


MODELS: dict[str, type[_Params]] = {"read-data": ReadData, "write-data": WriteData, "create-sheet": CreateSheet}


def parse(action_id: str, params: Mapping[str, Any]) -> Any:
    """The action's parameters with Cronium's defaults; :class:`ToolActionError` naming each bad one."""
    try:
        return MODELS[action_id].model_validate(dict(params))
    except ValidationError as exc:
        raise ToolActionError.of_schema(f"google-sheets {action_id}", exc) from None


def validate(action_id: str, params: Mapping[str, Any]) -> None:
    parse(action_id, params)


def _answer(response: Any) -> dict[str, Any]:
    """The JSON answer of a 2xx; else :class:`ToolHTTPError` with Google's ``error.message`` (as Cronium
    reports it: read-data.ts:187-191) and the answer's ``Retry-After``. An answer over ``[cronium]
    max_http_response_bytes`` is not kept: :class:`ToolActionError`."""
    from cronium_provider.limits import max_response_bytes, read_capped

    limit = max_response_bytes()
    content = read_capped(response, limit)
    if content is None:
        raise ToolActionError(
            f"google-sheets answered more than {limit} bytes ([cronium] max_http_response_bytes); "
            "the answer was not kept"
        )
    data: Any = None
    with contextlib.suppress(ValueError):
        data = json.loads(content)
    if 200 <= response.status_code < 300:
        return data if isinstance(data, dict) else {}
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    raise ToolHTTPError(
        TOOL,
        response.status_code,
        str(message) if message else f"API error: {response.status_code}",
        retry_after=retry_after_seconds(response.headers.get("Retry-After")),
    )


def _quoted(text: str) -> str:
    """``text`` as one path segment, as ``encodeURIComponent`` writes it. A range ``.`` or ``..`` is refused:
    ``requests`` sends ``%2E`` as ``.``, and a server takes it for a dot segment and calls another API path."""
    quoted = quote(text, safe=_URI_SAFE)
    if quoted in (".", ".."):
        raise ToolActionError(f"google-sheets: range {text!r} is a dot segment of a URL path, no A1 range")
    return quoted


def _path(spreadsheet_id: str, suffix: str = "") -> str:
    return f"/v4/spreadsheets/{_quoted(spreadsheet_id)}{suffix}"


def read_data(hook: Any, read: ReadData) -> dict[str, Any]:
    """``spreadsheets.values.get``; Cronium's result (read-data.ts:204-209)."""
    query = {
        "valueRenderOption": read.valueRenderOption,
        "dateTimeRenderOption": read.dateTimeRenderOption,
        "majorDimension": read.majorDimension,
    }
    data = _answer(hook.request("GET", _path(read.spreadsheetId, f"/values/{_quoted(read.range)}"), query))
    return {
        "success": True,
        "range": data.get("range"),
        "majorDimension": data.get("majorDimension"),
        "values": data.get("values") or [],
    }


def write_data(hook: Any, write: WriteData) -> dict[str, Any]:
    """``spreadsheets.values.update`` (``values.append`` to insert rows); Cronium's result (write-data.ts:257-263)."""
    target = f"/values/{_quoted(write.range)}"
    query: dict[str, str] = {
        "valueInputOption": write.valueInputOption,
        "includeValuesInResponse": "true" if write.includeValuesInResponse else "false",
    }
    body = {"values": write.values}
    data: Mapping[str, Any]
    if write.insertDataOption == "INSERT_ROWS":
        query["insertDataOption"] = "INSERT_ROWS"
        answer = _answer(hook.request("POST", _path(write.spreadsheetId, f"{target}:append"), query, body))
        updates = answer.get("updates")
        data = updates if isinstance(updates, dict) else {}
    else:
        data = _answer(hook.request("PUT", _path(write.spreadsheetId, target), query, body))
    return {
        "success": True,
        **{key: data.get(key) for key in ("updatedRange", "updatedRows", "updatedColumns", "updatedCells")},
    }


def create_sheet(hook: Any, sheet: CreateSheet) -> dict[str, Any]:
    """``spreadsheets.batchUpdate`` with one ``addSheet``; Cronium's result (create-sheet.ts:238-243)."""
    properties = sheet.model_dump(include={"title", "index", "gridProperties", "tabColor"}, exclude_none=True)
    body = {"requests": [{"addSheet": {"properties": properties}}]}
    data = _answer(hook.request("POST", _path(sheet.spreadsheetId, ":batchUpdate"), None, body))
    replies = data.get("replies")
    first = replies[0] if isinstance(replies, list) and replies and isinstance(replies[0], dict) else {}
    reply = (first.get("addSheet") or {}).get("properties") or {}
    return {
        "success": True,
        "sheetId": reply.get("sheetId"),
        "title": reply["title"] if reply.get("title") is not None else sheet.title,
        "index": reply.get("index"),
    }


def send(conn_id: str, params: Mapping[str, Any], action_id: str) -> dict[str, Any]:
    """Carry out ``action_id`` through the connection; Cronium's result object of the action."""
    from cronium_provider.hooks.google_sheets import GoogleSheetsHook

    parsed = parse(action_id, params)
    hook = GoogleSheetsHook(google_sheets_conn_id=conn_id)
    if not hook.token():
        raise ToolActionError(
            f"connection {conn_id} has no OAuth access token (its password): OAuth authentication required. "
            "This action requires Google OAuth with Sheets API access."
        )
    if isinstance(parsed, ReadData):
        return read_data(hook, parsed)
    if isinstance(parsed, WriteData):
        return write_data(hook, parsed)
    return create_sheet(hook, parsed)
