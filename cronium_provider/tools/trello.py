"""Trello's actions as Cronium's Trello plugin performs them (apps/cronium-app/src/tools/plugins/trello/actions/):
``create-card``, ``move-card`` and ``add-checklist``. Their parameters follow the plugin's zod schemas (names,
defaults), their requests its calls to Trello's REST API 1, their results its result objects.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import AnyUrl, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from cronium_provider.exceptions import ToolActionError

ACTIONS = ("create-card", "move-card", "add-checklist")
log = logging.getLogger(__name__)

Position = Literal["top", "bottom"] | float
KeepFromSource = (
    Literal["all", "attachments", "checklists", "comments", "due", "labels", "members", "stickers"] | list[str]
)


class _Params(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    @field_validator("*", mode="before")
    @classmethod
    def _int_position(cls, value: Any) -> Any:
        # a position may be any number (zod's z.number()); strict mode would refuse an int for a float
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


class CreateCard(_Params):
    """create-card.ts:6-48."""

    listId: str  # Cronium's parameter names, as its records write them
    name: str = Field(min_length=1)
    desc: str | None = None
    pos: Position = "bottom"
    due: str | None = None
    dueComplete: bool = False
    idMembers: list[str] | None = None
    idLabels: list[str] | None = None
    urlSource: str | None = None
    idCardSource: str | None = None
    keepFromSource: KeepFromSource | None = None

    @field_validator("urlSource")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        # a URL, as zod's .url() checks it; sent as written (create-card.ts:205-207), never normalised
        if value is not None:
            TypeAdapter(AnyUrl).validate_python(value)
        return value


class MoveCard(_Params):
    """move-card.ts:6-21."""

    cardId: str
    destinationListId: str | None = None
    destinationBoardId: str | None = None
    pos: Position | None = None


class CheckItem(_Params):
    name: str = Field(min_length=1)
    pos: Position | None = None
    checked: bool = False


class AddChecklist(_Params):
    """add-checklist.ts:6-29."""

    cardId: str
    name: str = Field(min_length=1)
    idChecklistSource: str | None = None
    pos: Position = "bottom"
    checkItems: list[CheckItem] | None = None


MODELS: dict[str, type[_Params]] = {"create-card": CreateCard, "move-card": MoveCard, "add-checklist": AddChecklist}


def _position(value: str | float | None) -> str | float | None:
    """A position as Trello takes it: ``top``, ``bottom`` or a number (a whole one written as an integer)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def parse(action_id: str, params: Mapping[str, Any]) -> Any:
    """The action's parameters checked against Cronium's schema and its move-card rule (a destination);
    :class:`ToolActionError` naming the parameter."""
    try:
        parsed = MODELS[action_id].model_validate(dict(params))
    except ValidationError as exc:
        raise ToolActionError.of_schema(f"trello {action_id}", exc, most=5) from None
    if isinstance(parsed, MoveCard) and not (
        parsed.destinationListId or parsed.destinationBoardId or parsed.pos is not None
    ):
        # move-card.ts:121-123
        raise ToolActionError(
            "trello move-card: No destination specified for card move (give 'destinationListId', "
            "'destinationBoardId' or 'pos')"
        )
    return parsed


def validate(action_id: str, params: Mapping[str, Any]) -> None:
    parse(action_id, params)


def create_card_body(p: CreateCard) -> dict[str, Any]:
    """The body Cronium posts to ``/1/cards`` (create-card.ts:177-216)."""
    body: dict[str, Any] = {"idList": p.listId, "name": p.name, "pos": _position(p.pos)}
    if p.desc:
        body["desc"] = p.desc
    if p.due:
        body["due"] = p.due
        body["dueComplete"] = p.dueComplete
    if p.idMembers:
        body["idMembers"] = ",".join(p.idMembers)
    if p.idLabels:
        body["idLabels"] = ",".join(p.idLabels)
    if p.urlSource:
        body["urlSource"] = p.urlSource
    if p.idCardSource:
        body["idCardSource"] = p.idCardSource
        if p.keepFromSource:
            keep = p.keepFromSource
            body["keepFromSource"] = ",".join(keep) if isinstance(keep, list) else keep
    return body


def move_card_body(p: MoveCard) -> dict[str, Any]:
    """The body Cronium puts to ``/1/cards/{cardId}`` (move-card.ts:103-119)."""
    body: dict[str, Any] = {}
    if p.destinationListId:
        body["idList"] = p.destinationListId
    if p.destinationBoardId:
        body["idBoard"] = p.destinationBoardId
    if p.pos is not None:
        body["pos"] = _position(p.pos)
    return body


def send_trello(conn_id: str, params: Mapping[str, Any], action_id: str) -> dict[str, Any]:
    """One Trello action through the ``cronium_trello`` connection ``conn_id``; Cronium's result object."""
    from cronium_provider.hooks.trello import TrelloHook, path_segment

    parsed = parse(action_id, params)
    hook = TrelloHook(trello_conn_id=conn_id)
    if isinstance(parsed, CreateCard):
        card = hook.request("POST", "/1/cards", create_card_body(parsed))
        return {"success": True, "cardId": card.get("id"), "url": card.get("url")}  # create-card.ts:290-294
    if isinstance(parsed, MoveCard):
        hook.request("PUT", f"/1/cards/{path_segment(parsed.cardId)}", move_card_body(parsed))
        return {"success": True}  # move-card.ts:178
    assert isinstance(parsed, AddChecklist)
    body: dict[str, Any] = {"idCard": parsed.cardId, "name": parsed.name, "pos": _position(parsed.pos)}
    if parsed.idChecklistSource:
        body["idChecklistSource"] = parsed.idChecklistSource
    checklist_id = hook.request("POST", "/1/checklists", body).get("id")
    for item in parsed.checkItems or []:
        item_body: dict[str, Any] = {"name": item.name, "checked": item.checked}
        if item.pos is not None:
            item_body["pos"] = _position(item.pos)
        try:
            hook.request("POST", f"/1/checklists/{path_segment(checklist_id)}/checkItems", item_body)
        except Exception as exc:
            # add-checklist.ts:212-214: a failed item is a warning, the checklist stands
            log.warning("Failed to add checklist item: %s (%s)", item.name, exc)
    return {"success": True, "checklistId": checklist_id}  # add-checklist.ts:244-247
