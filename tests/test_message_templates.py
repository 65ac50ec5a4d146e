"""Cronium's message templates (Handlebars), helper by helper, against what Cronium's own code prints.

Every expected text below is what ``TemplateProcessor.processTemplate`` of Cronium
(apps/cronium-app/src/lib/template-processor.ts, on ``handlebars`` 4.7 and Node 20, ``en-US``, UTC) gives
for the same template and context; the docstrings cite the lines. The last tests show a template reaches
nothing but the ``cronium`` object.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cronium_provider.tools.templates import (
    format_duration,
    format_time,
    js_number,
    js_to_fixed,
    render,
    render_template,
    template_context,
)

EVENT = {"id": 7, "name": "Nightly import", "status": "success"}


def show(
    template: str,
    event: dict[str, Any] | None = None,
    input: Any = None,
    variables: dict[str, Any] | None = None,
    condition: bool | None = None,
    **kw: Any,
) -> str:
    data = template_context(
        event={**EVENT, **(event or {})},
        input=input,
        condition=condition,
        variable=(variables or {}).get,
    )
    return render_template(template, data, **kw)


# -- formatDuration: template-processor.ts:71-85 --------------------------------------------------------
@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0ms"),
        (5, "5ms"),
        (999, "999ms"),
        (12.5, "12.5ms"),
        (-5, "-5ms"),
        (1000, "1.0s"),
        (1249, "1.2s"),
        (1250, "1.3s"),  # toFixed rounds the exact value half up: Python's round() would say 1.2
        (1050, "1.1s"),
        (45230, "45.2s"),
        (59999, "60.0s"),
        (60000, "1.0m"),
        (150000, "2.5m"),
        (3599999, "60.0m"),
        (3600000, "1.0h"),
        (4500000, "1.3h"),
        (86400000, "24.0h"),
    ],
)
def test_format_duration(ms: float, text: str) -> None:
    """``ms < 1000``: ``${ms}ms``; ``< 60000``: seconds ``toFixed(1)``; ``< 3600000``: minutes; else hours
    (template-processor.ts:81-84)."""
    assert format_duration(ms) == text
    assert show("{{formatDuration cronium.event.duration}}", {"duration": ms}) == text


def test_format_duration_of_no_number() -> None:
    """null, undefined, a non-number or NaN: ``Less than 1 second`` (template-processor.ts:72-79); a
    numeric text is not a number."""
    template = (
        '{{formatDuration cronium.event.nope}}|{{formatDuration "12"}}|{{formatDuration}}|{{formatDuration true}}'
    )
    assert show(template) == "|".join(["Less than 1 second"] * 4)


def test_javascript_number_text() -> None:
    """``${ms}`` and ``toFixed`` are JavaScript's (ECMA-262 Number::toString, Number.prototype.toFixed)."""
    assert [js_number(v) for v in (2.0, 0.1, 1e-7, 0.000015, 1e21, 123.456, -0.5)] == [
        "2",
        "0.1",
        "1e-7",
        "0.000015",
        "1e+21",
        "123.456",
        "-0.5",
    ]
    assert [js_to_fixed(v, 1) for v in (0.25, 1.25, 1.35, 45.23, 2.0)] == ["0.3", "1.3", "1.4", "45.2", "2.0"]


# -- formatTime: template-processor.ts:88-97 ------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("2024-01-02T15:04:05.000Z", "1/2/2024, 3:04:05 PM"),
        ("2024-01-02T00:04:05.123+02:00", "1/1/2024, 10:04:05 PM"),
        ("2024-01-02", "1/2/2024, 12:00:00 AM"),
        ("2024-07", "7/1/2024, 12:00:00 AM"),
        ("2024-01-02T12:00:00", "1/2/2024, 12:00:00 PM"),
        (1704207845000, "1/2/2024, 3:04:05 PM"),
        ("garbage", "Invalid Date"),
    ],
)
def test_format_time(value: Any, text: str) -> None:
    """``new Date(timestamp).toLocaleString()`` (template-processor.ts:92-93) on Cronium's server (Node 20,
    ``en-US``, UTC): ``M/D/YYYY, h:mm:ss AM``; a text that is no date: ``Invalid Date``."""
    assert show("{{formatTime cronium.event.executionTime}}", {"executionTime": value}) == text


def test_format_time_of_nothing_and_in_the_servers_zone() -> None:
    """A falsy timestamp is ``Unknown`` (template-processor.ts:89); Cronium prints its server's local time,
    the provider the zone of Cronium's schedules."""
    assert show('{{formatTime cronium.event.nope}}|{{formatTime ""}}|{{formatTime 0}}') == "Unknown|Unknown|Unknown"
    assert format_time("2024-01-02T15:04:05.000Z", ZoneInfo("Europe/Paris")) == "1/2/2024, 4:04:05 PM"
    paris = template_context(
        event={"executionTime": "2024-07-01T09:00:00"}, input={}, condition=None, variable=dict().get
    )
    assert render_template("{{formatTime cronium.event.executionTime}}", paris, zone=ZoneInfo("Europe/Paris")) == (
        "7/1/2024, 9:00:00 AM"  # a date-time without offset is local time
    )


# -- get: template-processor.ts:40-55 -------------------------------------------------------------------
def test_get() -> None:
    """``get obj "a.b" fallback`` walks the path while it meets objects (template-processor.ts:43-53); with
    no fallback, Handlebars' options object takes the place of ``fallback = ""`` and prints as
    ``[object Object]``."""
    data = {"a": {"b": 5}, "l": ["p", "q"], "s": "str", "z": None}
    template = (
        '{{get cronium.input "a.b"}}|{{get cronium.input "x"}}|{{get cronium.input "x" "fb"}}|'
        '{{get cronium.input "a.b.c" "fb"}}|{{get cronium.input "l.1"}}|{{get cronium.input "l.length"}}|'
        '{{get cronium.input "s.length" "no"}}|{{get cronium.input "a"}}|{{get cronium.input "z" "fb"}}'
    )
    assert show(template, input=data) == "5|[object Object]|fb|fb|q|2|no|[object Object]|fb"


# -- ifEquals: template-processor.ts:58-68 --------------------------------------------------------------
def test_if_equals() -> None:
    """``arg1 === arg2 ? options.fn(this) : options.inverse(this)`` (template-processor.ts:66): strict
    equality, so ``1`` is not ``"1"`` and an object equals only itself."""
    template = (
        '{{#ifEquals cronium.event.status "failure"}}F{{else}}S{{/ifEquals}}|'
        "{{#ifEquals cronium.input.n 1}}one{{else}}not{{/ifEquals}}|"
        '{{#ifEquals cronium.input.n "1"}}one{{else}}not{{/ifEquals}}|'
        "{{#ifEquals cronium.input.t true}}t{{/ifEquals}}|"
        "{{#ifEquals cronium.input.o cronium.input.o}}same{{/ifEquals}}|"
        "{{#ifEquals cronium.input.x cronium.input.y}}undef{{/ifEquals}}|"
        "{{#ifEquals cronium.input.n 1}}{{cronium.event.name}}{{/ifEquals}}"
    )
    data = {"n": 1, "t": True, "o": {"k": 1}}
    assert show(template, {"status": "failure"}, data) == "F|one|not|t|same|undef|Nightly import"


# -- json: template-processor.ts:100-102 ----------------------------------------------------------------
def test_json() -> None:
    """``new Handlebars.SafeString(JSON.stringify(obj, null, 2))`` (template-processor.ts:101): two-space
    indentation, not HTML-escaped."""
    data = {"a": {"b": [1, 2.5, {"c": "<x>"}]}, "s": 'é"<', "n": 3, "l": [], "e": {}, "u": "\u0001"}
    template = "{{json cronium.input}}|{{json cronium.input.s}}|{{json cronium.input.n}}|{{{json cronium.input.l}}}|"
    template += "{{json cronium.input.e}}|{{json cronium.input.u}}"
    expected = (
        '{\n  "a": {\n    "b": [\n      1,\n      2.5,\n      {\n        "c": "<x>"\n      }\n    ]\n  },\n'
        '  "s": "é\\"<",\n  "n": 3,\n  "l": [],\n  "e": {},\n  "u": "\\u0001"\n}'
        '|"é\\"<"|3|[]|{}|"\\u0001"'
    )
    assert show(template, input=data) == expected


# -- lookup: template-processor.ts:110-118 --------------------------------------------------------------
def test_lookup() -> None:
    """``obj[field]`` when ``obj`` is an object (arrays are), else undefined (template-processor.ts:113-116)."""
    template = (
        '{{lookup cronium.input "k"}}|{{lookup cronium.input.l 1}}|{{lookup cronium.input.s "length"}}|'
        '{{lookup cronium.input "nope"}}|{{lookup cronium.input.l "length"}}|{{lookup cronium.event "name"}}'
    )
    assert show(template, input={"k": "v", "l": ["a", "b"], "s": "str"}) == "v|b|||2|Nightly import"


# -- Handlebars itself, as Cronium's Handlebars.create() has it ------------------------------------------
def test_if_each_with_unless_and_standalone_lines() -> None:
    """Block helpers and Handlebars.js' whitespace rules: a block tag alone on its line leaves no line
    (Cronium's default email template relies on it: default-tool-action-templates.ts:99-102)."""
    template = (
        "A\n{{#if cronium.event.output}}\nOutput:\n{{cronium.event.output}}\n{{/if}}\nB\n"
        "  {{#unless cronium.event.error}}  \nno error\n  {{else}}\nerr\n{{/unless}}\nC"
    )
    assert show(template, {"output": "done", "error": ""}) == "A\nOutput:\ndone\nB\nno error\nC"
    loops = (
        "{{#each cronium.input.l}}{{@index}}={{this}}{{#unless @last}}, {{/unless}}{{/each}}|"
        "{{#each cronium.input.o}}{{@key}}:{{this}};{{/each}}|{{#with cronium.event}}{{name}}{{/with}}"
    )
    assert show(loops, input={"l": ["a", "b"], "o": {"x": 1, "y": 2}}) == "0=a, 1=b|x:1;y:2;|Nightly import"
    truth = (
        "{{#if cronium.input.zero}}z{{else}}nz{{/if}}|{{#if cronium.input.empty}}e{{else}}ne{{/if}}|"
        "{{#if cronium.input.obj}}o{{/if}}|{{#if cronium.input.s}}s{{/if}}"
    )
    assert show(truth, input={"zero": 0, "empty": [], "obj": {}, "s": "0"}) == "nz|ne|o|s"


def test_values_print_as_javascript_prints_them_and_are_html_escaped() -> None:
    """``{{x}}`` is HTML-escaped as Handlebars.js escapes (``& < > " ' ` =``), ``{{{x}}}`` is not; an
    object is ``[object Object]``, a list its items joined by commas, false ``false``, null nothing."""
    data = {"o": {"a": 1}, "l": [1, "b", [2, 3]], "f": 2.5, "i": 2.0, "t": False, "n": None, "h": "<a href='x'>=`</a>"}
    template = "{{cronium.input.o}}|{{cronium.input.l}}|{{cronium.input.f}}|{{cronium.input.i}}|{{cronium.input.t}}|"
    template += "{{cronium.input.n}}|{{cronium.input.missing}}|{{{cronium.input.h}}}|{{cronium.input.h}}"
    assert show(template, input=data) == (
        "[object Object]|1,b,2,3|2.5|2|false|||<a href='x'>=`</a>|"
        "&lt;a href&#x3D;&#x27;x&#x27;&gt;&#x3D;&#x60;&lt;/a&gt;"
    )


def test_a_template_error_is_the_message_as_in_cronium() -> None:
    """A template that does not compile or run renders ``[Template Error: <why>]``, a blank line and the
    template (template-processor.ts:138-142); a missing helper is an error, as in Handlebars.js."""
    assert show("{{#if cronium.event.status}}unclosed") == (
        "[Template Error: unclosed block]\n\n{{#if cronium.event.status}}unclosed"
    )
    assert show("{{nohelper cronium.event.name}}").startswith('[Template Error: Missing helper: "nohelper"]\n\n')


# -- the context object: template-processor.ts:126-134, event-handlers.ts:280-308 ------------------------
def test_context_names_variables_condition_and_the_providers_spellings() -> None:
    """``cronium.getVariables.KEY`` is Cronium's; ``getVariable.KEY``, ``variables.KEY`` and
    ``{{cronium.getVariable "KEY"}}`` read the same; a variable is text, as Cronium keeps it; the condition
    is the run's (Cronium passes ``{}``)."""
    variables = {"adminEmail": "a@b.example", "count": 45, "cfg": {"x": 1}}
    template = (
        "{{cronium.getVariables.adminEmail}}|{{cronium.getVariable.adminEmail}}|{{cronium.variables.count}}|"
        '{{cronium.getVariable "adminEmail"}}|{{{cronium.getVariables.cfg}}}|{{cronium.getVariables.nope}}|'
        "{{#if cronium.getVariables.count}}n={{cronium.getVariables.count}}{{/if}}|{{cronium.getCondition}}|"
        "{{#if cronium.getCondition}}yes{{else}}no{{/if}}"
    )
    assert (
        show(template, variables=variables, condition=True)
        == 'a@b.example|a@b.example|45|a@b.example|{"x": 1}||n=45|true|yes'
    )
    assert show("{{cronium.getCondition}}", condition=None) == "false"


def test_event_output_and_error_are_text() -> None:
    """Cronium's log keeps a run's output and error as text: an output that is an object is its JSON."""
    event = {"status": "failure", "output": {"rows": 12}, "error": "exit code 3", "duration": 1250, "server": "Local"}
    template = "{{cronium.event.status}} on {{cronium.event.server}} after {{formatDuration cronium.event.duration}}: "
    template += "{{cronium.event.error}} / {{{cronium.event.output}}}"
    assert show(template, event) == 'failure on Local after 1.3s: exit code 3 / {"rows": 12}'


def test_cronium_event_holds_cronium_facts_only_in_its_order() -> None:
    """``cronium.event`` is what ``createTemplateContext`` keeps: ``id``, ``name``, ``status`` (``unknown``
    when there is none), then ``duration``, ``executionTime``, ``server``, ``output``, ``error`` when known
    (template-processor.ts:197-210); the rest of the record (owner, tags, type...) reaches no message."""
    record = {"userId": "u-1", "tags": ["ops"], "type": "BASH", "description": "d", "error": "exit 3"}
    record |= {"output": {"rows": 2}, "server": "Local", "executionTime": "2024-01-02T15:04:05.000Z"}
    record |= {"duration": 5, "status": "failure", "name": "Load", "id": 3}
    data = template_context(event=record, input=None, condition=None, variable=dict().get)
    assert render_template("{{{json cronium.event}}}", data) == (
        '{\n  "id": 3,\n  "name": "Load",\n  "status": "failure",\n  "duration": 5,\n'
        '  "executionTime": "2024-01-02T15:04:05.000Z",\n  "server": "Local",\n  "output": "{\\"rows\\": 2}",\n'
        '  "error": "exit 3"\n}'
    )
    bare = template_context(
        event={"id": 1, "name": "x", "userId": "u"}, input=None, condition=None, variable=dict().get
    )
    assert (
        render_template("{{{json cronium.event}}}", bare) == '{\n  "id": 1,\n  "name": "x",\n  "status": "unknown"\n}'
    )


def test_airflows_utc_zone_is_utc(caplog: pytest.LogCaptureFixture) -> None:
    """Airflow's ``[core] default_timezone`` is ``utc`` by default: formatTime prints UTC, with no warning."""
    from datetime import UTC

    from cronium_provider.tools.templates import time_zone

    assert time_zone("utc") is UTC and time_zone("UTC") is UTC
    assert "unknown time zone" not in caplog.text


def test_render_walks_parameters_and_leaves_other_values() -> None:
    """Every text of the parameters is a template, through lists and objects; keys, numbers and booleans
    stay as they are (tool-action-template-processor.ts:28-64)."""
    params = {
        "text": "Hi {{cronium.input.who}}",
        "blocks": [{"type": "section", "text": "{{cronium.event.name}}"}, "{{cronium.input.who}}", 3],
        "n": 1,
        "flag": True,
        "{{key}}": None,
    }
    out = render(params, event=EVENT, input={"who": "Zoë"}, condition=None, variable=lambda key: None)
    assert out == {
        "text": "Hi Zoë",
        "blocks": [{"type": "section", "text": "Nightly import"}, "Zoë", 3],
        "n": 1,
        "flag": True,
        "{{key}}": None,
    }


def test_tool_action_input_is_laid_over_the_variables() -> None:
    """A TOOL_ACTION event's input is read as variables too, and wins over them (tool-action-executor.ts:
    316-326)."""
    out = render(
        "{{cronium.getVariables.env}} {{cronium.getVariables.app}}",
        event=EVENT,
        input={"env": "prod"},
        condition=None,
        variable={"env": "staging", "app": "shop"}.get,
        variables_overlay={"env": "prod"},
    )
    assert out == "prod shop"


# -- nothing beyond the cronium object --------------------------------------------------------------------
@pytest.mark.parametrize(
    "template",
    [
        "{{cronium.__class__}}",
        "{{cronium.__class__.__init__.__globals__}}",
        "{{cronium.constructor}}",
        "{{constructor}}",
        "{{__proto__}}",
        "{{cronium.__proto__.constructor}}",
        "{{cronium.event.name.__class__}}",
        "{{cronium.event.name.upper}}",
        "{{cronium.input.__dict__}}",
        "{{cronium.input.[__class__]}}",
        "{{cronium.getVariables.__class__}}",
        "{{cronium.getVariables._read}}",
        "{{cronium.getVariables.__init__.__globals__}}",
        "{{@root.__class__}}",
        "{{this.__class__.__mro__}}",
        '{{lookup cronium "__class__"}}',
        '{{lookup (lookup cronium "event") "__class__"}}',
        '{{get cronium "__class__.__name__" ""}}',
        '{{get cronium.event "name.__class__" ""}}',
        "{{#with cronium}}{{__class__}}{{/with}}",
        "{{#each cronium}}{{this.__class__}}{{/each}}",
        "{{#each cronium.getVariables}}{{@key}}{{/each}}",
        '{{#with (lookup cronium "getVariables")}}{{_seen}}{{/with}}',
        "{{json cronium.getVariables}}",
    ],
)
def test_a_template_reaches_nothing_beyond_the_cronium_object(template: str) -> None:
    """Paths resolve through mapping keys and list indexes only: Python attributes, classes, globals and
    builtins are out of reach, and the variables are read one by one, never listed."""
    read: list[str] = []

    def variable(key: str) -> Any:
        read.append(key)
        return None

    data = template_context(event=EVENT, input={"order": 7}, condition=None, variable=variable)
    out = render_template(template, data)
    assert out in ("", "{}"), out
    assert all(key.startswith("_") for key in read)  # a dunder is only ever a variable name looked up


def test_a_template_cannot_call_python() -> None:
    """Nothing in the data is callable, and an unknown helper is an error, never a Python function."""
    for template in ("{{print cronium}}", "{{eval '1+1'}}", "{{__import__ 'os'}}", "{{cronium.event.name.upper 1}}"):
        assert show(template).startswith("[Template Error: Missing helper"), template
    assert show("{{> secret}}").startswith("[Template Error:")
