"""Cronium's message templates: Handlebars, rendered as Cronium's ``template-processor.ts`` renders them.

A template sees one object, ``cronium`` (apps/cronium-app/src/lib/template-processor.ts:126-134):

- ``cronium.event``: the run that fired: ``id``, ``name``, ``status`` (``success``, ``failure``...),
  ``duration`` (milliseconds), ``executionTime`` (ISO 8601), ``server``, ``output`` and ``error`` (text);
- ``cronium.input``: the run's input;
- ``cronium.getVariables.KEY``: a Cronium variable (the provider also reads ``cronium.getVariable.KEY``,
  ``cronium.variables.KEY`` and ``{{cronium.getVariable "KEY"}}``), read when a template names it;
- ``cronium.getCondition``: the run's condition, ``true`` or ``false`` (Cronium passes an empty object).

Helpers: Handlebars' own (``if``, ``unless``, ``each``, ``with``, ``log``) and Cronium's ``get``,
``ifEquals``, ``formatDuration``, ``formatTime``, ``json`` and ``lookup`` (template-processor.ts:38-119).
``{{value}}`` is HTML-escaped as Handlebars.js escapes it, ``{{{value}}}`` is not; an object prints as
``[object Object]`` and a list as its items joined by commas. A template that does not parse, or that a
helper refuses, renders as Cronium renders it: ``[Template Error: <why>]``, a blank line, the template.

The engine is ``dotpromptz-handlebars`` (pinned in pyproject.toml), chosen over the other Handlebars
implementations for Python because it takes Handlebars.js 4.7.9 as its specification and checks itself
against it (Cronium renders with ``handlebars`` ^4.7.8: standalone block lines dropped, the same HTML
escaping, JavaScript's text for numbers, objects and lists, a missing helper is an error); it is a pure
Python interpreter of the template (no generated code, no ``exec``), it resolves a path through mapping
keys and list indexes only (never ``getattr``: ``{{cronium.__class__}}`` is nothing) and refuses to call
a function found in the data; it has no dependency and is maintained by Google's Genkit team.
``pybars3``/``pybars4`` (last released 2019 and 2021) compile templates to Python source run with
``exec`` and fall back to ``getattr``, so a template reaches Python objects; ``pydantic-handlebars``
keeps standalone block lines and prints Python's ``repr`` of objects; ``pyhandlebars`` (Rust) hands
helpers their arguments as strings, so ``ifEquals`` and ``formatDuration`` cannot be written on it.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotpromptz_handlebars import Handlebars, HelperOptions, SafeString

from cronium_provider.naming import variable_key_problem

log = logging.getLogger(__name__)

# JavaScript's Date range (ECMA-262 TimeClip): 8.64e15 ms either side of the epoch
_MAX_TIME_MS = 8.64e15
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ISO_YEAR_MONTH = re.compile(r"^([+-]\d{6}|\d{4})(?:-(\d\d))?$")


# -- JavaScript's text for values -----------------------------------------------------------------------
def js_number(value: float) -> str:
    """``String(value)`` in JavaScript (ECMA-262 Number::toString): ``2`` for 2.0, ``1e-7``, ``1e+21``."""
    if isinstance(value, int) and abs(value) < 10**21:
        return str(value)
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number == 0:
        return "0"
    sign = "-" if number < 0 else ""
    exact = Decimal(repr(abs(number))).as_tuple()  # the shortest digits that read back as the number
    point = len(exact.digits) + int(exact.exponent)
    digits = "".join(str(d) for d in exact.digits).rstrip("0") or "0"
    k = len(digits)
    if k <= point <= 21:
        return sign + digits + "0" * (point - k)
    if 0 < point <= 21:
        return sign + digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return sign + "0." + "0" * -point + digits
    exponent = point - 1
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{sign}{mantissa}e{'+' if exponent >= 0 else '-'}{abs(exponent)}"


def js_to_fixed(value: float, places: int) -> str:
    """``value.toFixed(places)`` in JavaScript: the exact binary value rounded half up (``1.25`` -> ``1.3``)."""
    if math.isnan(value) or math.isinf(value) or abs(value) >= 1e21:
        return js_number(value)
    quantum = Decimal(1).scaleb(-places)
    return str(Decimal(value).quantize(quantum, rounding=ROUND_HALF_UP))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _plain(value: Any) -> Any:
    """A value as a template may see it: JSON's types only (objects, lists, text, numbers, booleans, null)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return iso_time(value)
    return str(value)


def as_text(value: Any) -> str | None:
    """A fact Cronium keeps as text (output, error, a variable's value): text as it is, anything else as JSON."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(_plain(value), ensure_ascii=False)


def iso_time(moment: datetime) -> str:
    """``Date.prototype.toISOString()``: UTC, milliseconds, ``Z`` (``2024-01-02T15:04:05.000Z``)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


# -- the context -----------------------------------------------------------------------------------------
class Variables(dict[str, Any]):
    """``cronium.getVariables``: each variable read when a template names it, never listed.

    Cronium keeps a variable's value as text; ``overlay`` (a TOOL_ACTION event's input, which Cronium lays
    over the variables: tool-action-executor.ts:316-326) wins over a stored variable. A key that is no
    Cronium key (:func:`~cronium_provider.naming.variable_key_problem`) reads nothing, with a warning.
    """

    def __init__(self, read: Callable[[str], Any], overlay: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self._read = read
        self._overlay = dict(overlay or {})
        self._seen: dict[str, Any] = {}

    def _value(self, key: object) -> Any:
        if not isinstance(key, str):
            return None
        if key in self._overlay:
            return _plain(self._overlay[key])
        problem = variable_key_problem(key)
        if problem is not None:  # never a Variable call with it: the key could climb out of the namespace
            if key not in self._seen:
                log.warning("template: %s; it reads nothing", problem)
                self._seen[key] = None
            return None
        if key not in self._seen:
            self._seen[key] = as_text(self._read(key))
        return self._seen[key]

    def __contains__(self, key: object) -> bool:
        return self._value(key) is not None

    def __getitem__(self, key: str) -> Any:
        value = self._value(key)
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self._value(key)
        return default if value is None else value

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


# ``cronium.event``: what Cronium's TemplateContext holds of the run (template-processor.ts:10-20)
EVENT_FACTS = ("id", "name", "status", "duration", "executionTime", "server", "output", "error")


def template_context(
    *,
    event: Mapping[str, Any],
    input: Any,
    condition: bool | None,
    variable: Callable[[str], Any],
    variables_overlay: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The data a template renders: ``{"cronium": {...}}``, as template-processor.ts:127-134 builds it."""
    variables = Variables(variable, variables_overlay)
    # only the facts Cronium's createTemplateContext keeps, in its order (template-processor.ts:197-210)
    status = event.get("status")
    facts = {
        "id": _plain(event.get("id")),
        "name": _plain(event.get("name")),
        "status": "unknown" if status is None else _plain(status),
    }
    for key in EVENT_FACTS[3:]:
        if key in event:
            facts[key] = as_text(event[key]) if key in ("output", "error") else _plain(event[key])
    return {
        "cronium": {
            "event": facts,
            "input": _plain(input) if input is not None else {},
            "getVariables": variables,
            "getVariable": variables,
            "variables": variables,
            "getCondition": bool(condition),
        }
    }


# -- Cronium's helpers (apps/cronium-app/src/lib/template-processor.ts:38-119) ---------------------------
_OPTIONS_OBJECT: dict[str, Any] = {}  # what ``get`` returns when given no fallback: Handlebars' options object


def _property(value: Any, key: str) -> Any:
    """``value[key]`` for a JavaScript object or array; None when it has no such key."""
    if isinstance(value, Mapping):
        return value[key] if key in value else None
    if isinstance(value, list):
        if key == "length":
            return len(value)
        if key.isdigit() and int(key) < len(value):
            return value[int(key)]
    return None


def _js_key(value: Any) -> str:
    if value is None:
        return "undefined"
    if isinstance(value, bool):
        return "true" if value else "false"
    if _is_number(value):
        return js_number(value)
    return str(value)


def helper_get(args: list[Any], options: HelperOptions) -> Any:
    """``{{get obj "a.b" fallback}}``: ``obj.a.b``, or ``fallback`` where the path ends.

    With no fallback Cronium's default ``""`` never applies: Handlebars passes its options object in its
    place, which prints as ``[object Object]``.
    """
    obj = args[0] if args else None
    if len(args) < 2 or not isinstance(args[1], str):
        raise TypeError("path.split is not a function")
    fallback = args[2] if len(args) > 2 else _OPTIONS_OBJECT
    current = obj
    for key in args[1].split("."):
        if current is None or not isinstance(current, Mapping | list):
            return fallback
        current = _property(current, key)
    return fallback if current is None else current


def js_strict_equal(a: Any, b: Any) -> bool:
    """JavaScript's ``a === b`` for template values: same type and value; objects and lists by identity."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return a is b


def helper_if_equals(args: list[Any], options: HelperOptions) -> Any:
    """``{{#ifEquals a b}}...{{else}}...{{/ifEquals}}``: the block when ``a === b``, else the inverse."""
    a = args[0] if args else None
    b = args[1] if len(args) > 1 else None
    return options.fn() if js_strict_equal(a, b) else options.inverse()


def format_duration(ms: Any) -> str:
    """``{{formatDuration ms}}``: ``850ms``, ``45.2s``, ``2.5m``, ``1.2h``; not a number: ``Less than 1 second``."""
    if not _is_number(ms) or math.isnan(ms):
        return "Less than 1 second"
    if ms < 1000:
        return f"{js_number(ms)}ms"
    if ms < 60000:
        return f"{js_to_fixed(ms / 1000, 1)}s"
    if ms < 3600000:
        return f"{js_to_fixed(ms / 60000, 1)}m"
    return f"{js_to_fixed(ms / 3600000, 1)}h"


def helper_format_duration(args: list[Any], options: HelperOptions) -> str:
    return format_duration(args[0] if args else None)


def _js_date(value: Any, zone: tzinfo) -> datetime | None:
    """``new Date(value)`` for a template value; None for an invalid date."""
    if isinstance(value, bool):
        value = int(value)
    if _is_number(value):
        if math.isnan(value) or math.isinf(value) or abs(value) > _MAX_TIME_MS:
            return None
        return _EPOCH + timedelta(milliseconds=math.trunc(value))
    if not isinstance(value, str):
        return None
    text = value.strip()
    short = _ISO_YEAR_MONTH.match(text)  # "2024", "2024-01": dates, so UTC
    if short:
        try:
            return datetime(int(short.group(1)), int(short.group(2) or 1), 1, tzinfo=UTC)
        except ValueError:
            return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        # ISO date-only forms are UTC, date-times without an offset are local time (ECMA-262 Date.parse)
        moment = moment.replace(tzinfo=UTC if len(text) <= 10 else zone)
    return moment


def format_time(timestamp: Any, zone: tzinfo = UTC) -> str:
    """``{{formatTime t}}``: ``new Date(t).toLocaleString()`` on Cronium's server (Node 20, ``en-US``):
    ``1/2/2024, 3:04:05 PM`` in the server's time zone; nothing: ``Unknown``; not a date: ``Invalid Date``."""
    if timestamp is None or timestamp is False or timestamp == "" or timestamp == 0:
        return "Unknown"
    if isinstance(timestamp, float) and math.isnan(timestamp):
        return "Unknown"
    moment = _js_date(timestamp, zone)
    if moment is None:
        return "Invalid Date"
    local = moment.astimezone(zone)
    hour = local.hour % 12 or 12
    noon = "AM" if local.hour < 12 else "PM"
    return f"{local.month}/{local.day}/{local.year}, {hour}:{local.minute:02d}:{local.second:02d} {noon}"


def _json_ready(value: Any) -> Any:
    if isinstance(value, Variables):
        return {}
    return value


def helper_json(args: list[Any], options: HelperOptions) -> SafeString:
    """``{{json value}}``: ``JSON.stringify(value, null, 2)``, not escaped (a missing value prints ``null``)."""
    value = args[0] if args else None
    return SafeString(json.dumps(_json_ready(value), indent=2, ensure_ascii=False))


def helper_lookup(args: list[Any], options: HelperOptions) -> Any:
    """``{{lookup obj field}}``: ``obj[field]`` when ``obj`` is an object or a list, else nothing."""
    obj = args[0] if args else None
    if obj is None or not isinstance(obj, Mapping | list):
        return None
    return _property(obj, _js_key(args[1] if len(args) > 1 else None))


def helper_get_variable(args: list[Any], options: HelperOptions) -> Any:
    """``{{cronium.getVariable "KEY"}}``: the provider's spelling of ``{{cronium.getVariables.KEY}}``."""
    if not args:
        return None
    variables = options.data.get("root", {}).get("cronium", {}).get("getVariables")
    return variables.get(_js_key(args[0])) if isinstance(variables, Mapping) else None


def helper_log(args: list[Any], options: HelperOptions) -> str:
    """``{{log value}}``: Handlebars writes it to the console; here to the task's log."""
    log.info("template log: %s", " ".join(_js_key(a) if not isinstance(a, str) else a for a in args))
    return ""


def engine(zone: tzinfo = UTC) -> Handlebars:
    """A Handlebars environment with Cronium's helpers; ``formatTime`` prints in ``zone``."""
    hb = Handlebars(escape_html=True)  # Handlebars.create() escapes {{value}}: template-processor.ts:30,136
    hb.register_helper("get", helper_get)
    hb.register_helper("ifEquals", helper_if_equals)
    hb.register_helper("formatDuration", helper_format_duration)
    hb.register_helper("formatTime", lambda args, options: format_time(args[0] if args else {}, zone))
    hb.register_helper("json", helper_json)
    hb.register_helper("lookup", helper_lookup)
    hb.register_helper("log", helper_log)
    hb.register_helper("cronium.getVariable", helper_get_variable)
    return hb


def time_zone(name: str | None) -> tzinfo:
    """The zone named ``name`` (``system``: this machine's), UTC when it names none."""
    if not name or name.strip().upper() == "UTC":  # Airflow's default_timezone is ``utc``, not an IANA name
        return UTC
    if name.lower() == "system":
        local = datetime.now().astimezone().tzinfo
        return local if local is not None else UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("unknown time zone %r: formatTime prints UTC", name)
        return UTC


def render_template(template: str, data: Mapping[str, Any], *, zone: tzinfo = UTC) -> str:
    """One template rendered; an error renders as template-processor.ts:138-142 renders it."""
    try:
        return engine(zone).compile(template)(dict(data))
    except Exception as exc:  # a template of the record: its errors are the message, as in Cronium
        log.warning("template error: %s", exc)
        return f"[Template Error: {exc}]\n\n{template}"


def render(
    value: Any,
    *,
    event: Mapping[str, Any],
    input: Any,
    condition: bool | None,
    variable: Callable[[str], Any],
    variables_overlay: Mapping[str, Any] | None = None,
    timezone: str | None = None,
) -> Any:
    """``value`` with every text rendered as a template, recursively through lists and objects (their keys
    and other values as they are: tool-action-template-processor.ts:28-64)."""
    data = template_context(
        event=event, input=input, condition=condition, variable=variable, variables_overlay=variables_overlay
    )
    zone = time_zone(timezone)

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return render_template(item, data, zone=zone) if "{{" in item else item
        if isinstance(item, list):
            return [walk(v) for v in item]
        if isinstance(item, Mapping):
            return {k: walk(v) for k, v in item.items()}
        return item

    return walk(value)
