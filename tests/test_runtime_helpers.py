"""The runtime helpers (Bash, Python, Node.js) and the host side of their file protocol.

Scripts run under the real interpreters (bash, python3, node) in a temporary run folder prepared with
``build_run_files`` + ``write_run_folder``, with ``script_command`` and a minimal environment plus
``script_environment``; the result files are parsed with ``read_results``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cronium_provider.runners.protocol import (
    LANGUAGES,
    RESULT_FILES,
    ProtocolError,
    ScriptResults,
    VariableChange,
    build_run_files,
    collect_result_files,
    helpers_root,
    read_results,
    script_command,
    script_environment,
    write_run_folder,
)
from tests.conftest import missing

INTERPRETERS = {"BASH": "bash", "PYTHON": "python3", "NODEJS": "node"}
INPUT = {"name": "Ada", "items": [1, 2, 3]}
EVENT = {"id": 7, "name": "nightly", "type": "SCRIPT", "runLocation": "LOCAL"}
VARIABLES = {"greeting": "hello", "counter": 41, "obsolete": True}
UNICODE = "héllo ✓ 日本"
NESTED = {"a": [1, {"b": None}], "s": 'x"y\\z\n', "é": 1.5}


@dataclass
class Run:
    proc: subprocess.CompletedProcess[str]
    folder: Path
    files: dict[str, bytes]

    @property
    def results(self) -> ScriptResults:
        return read_results(self.files)


def run_script(
    tmp_path: Path,
    language: str,
    script: str,
    *,
    input: Any = INPUT,
    variables: dict[str, Any] | None = None,
    args: tuple[str, ...] = (),
) -> Run:
    interpreter = INTERPRETERS[language]
    if shutil.which(interpreter) is None:
        missing(interpreter, "not on PATH")
    folder = tmp_path / "run"
    files = build_run_files(
        language,
        textwrap.dedent(script),
        input=input,
        event=EVENT,
        variables=VARIABLES if variables is None else variables,
    )
    write_run_folder(folder, files)
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        **script_environment(language, str(folder)),
    }
    proc = subprocess.run(
        [*script_command(language, str(folder)), *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=60,
        check=False,
    )
    return Run(proc, folder, collect_result_files(folder))


def ok(run: Run) -> Run:
    assert run.proc.returncode == 0, (
        f"exit {run.proc.returncode}\nstdout:\n{run.proc.stdout}\nstderr:\n{run.proc.stderr}"
    )
    return run


def set_(key: str, value: Any) -> VariableChange:
    return VariableChange("set", key, value)


def delete(key: str) -> VariableChange:
    return VariableChange("delete", key)


def increment(key: str, by: int) -> VariableChange:
    """Bash's cronium_increment_variable is journaled as an increment, applied to the Variable as it is then."""
    return VariableChange("increment", key, by)


# --------------------------------------------------------------------------- documented API

DOCUMENTED = {
    "PYTHON": """
        data = cronium.input()
        greeting = cronium.getVariable("greeting")
        cronium.setVariable("result", {"for": data["name"], "count": cronium.getVariable("counter") + 1})
        cronium.deleteVariable("obsolete")
        assert cronium.getVariable("missing") is None
        assert cronium.getCondition() is False
        cronium.setCondition(True)
        cronium.output({"greeting": greeting + ", " + data["name"], "items": data["items"],
                        "event": cronium.event()["name"]})
    """,
    "NODEJS": """
        const data = cronium.input();
        const greeting = cronium.getVariable('greeting');
        cronium.setVariable('result', { for: data.name, count: cronium.getVariable('counter') + 1 });
        cronium.deleteVariable('obsolete');
        if (cronium.getVariable('missing') !== null) throw new Error('missing variable is not null');
        if (cronium.getCondition() !== false) throw new Error('condition set too early');
        cronium.setCondition(true);
        cronium.output({ greeting: greeting + ', ' + data.name, items: data.items, event: cronium.event().name });
    """,
    "BASH": """
        set -euo pipefail
        input=$(cronium_input)
        greeting=$(cronium_getVariable greeting)
        counter=$(cronium_getVariable counter)
        cronium_setVariable result "$greeting from bash, counter $counter"
        cronium_delete_variable obsolete
        if cronium_getVariable missing; then exit 9; fi
        [ "$(cronium_getCondition)" = false ]
        cronium_setCondition true
        cronium_output "{\\"input\\":$input,\\"greeting\\":\\"$greeting\\",\\"event\\":$(cronium_event)}"
    """,
}

DOCUMENTED_EXPECTED = {
    "PYTHON": ScriptResults(
        output={"greeting": "hello, Ada", "items": [1, 2, 3], "event": "nightly"},
        has_output=True,
        condition=True,
        variable_changes=(set_("result", {"for": "Ada", "count": 42}), delete("obsolete")),
    ),
    "BASH": ScriptResults(
        output={"input": INPUT, "greeting": "hello", "event": EVENT},
        has_output=True,
        condition=True,
        variable_changes=(set_("result", "hello from bash, counter 41"), delete("obsolete")),
    ),
}
DOCUMENTED_EXPECTED["NODEJS"] = DOCUMENTED_EXPECTED["PYTHON"]


@pytest.mark.parametrize("language", LANGUAGES)
def test_documented_api(tmp_path: Path, language: str) -> None:
    run = ok(run_script(tmp_path, language, DOCUMENTED[language]))
    assert run.results == DOCUMENTED_EXPECTED[language]


# --------------------------------------------------------------------------- other generations' names

OLDER = {
    "PYTHON": """
        import builtins
        import cronium
        from cronium import cronium as instance
        assert cronium is builtins.cronium is instance
        name = cronium.input()["name"]
        cronium.set_variable("seen", cronium.get_variable("greeting") + " " + name)
        cronium.delete_variable("obsolete")
        cronium.set_condition(0)
        assert cronium.get_condition() is False
        cronium.output([name, cronium.get_variable("seen")])
    """,
    # Old SDK style: require('cronium'), promises, top-level await in a CommonJS file.
    "NODEJS": """
        const cronium = require('cronium');
        if (cronium.sync !== globalThis.cronium) throw new Error('sync face is not the global');
        if (typeof globalThis.cronium.getVariable('greeting') !== 'string') throw new Error('global not sync');
        if (!(cronium.getVariable('greeting') instanceof Promise)) throw new Error('required face not async');
        const data = await cronium.input();
        const greeting = await cronium.getVariable('greeting');
        await cronium.setVariable('seen', greeting + ' ' + data.name);
        const counter = await cronium.cronium.getVariable('counter');
        await new cronium().setVariable('counter', counter + 1);
        await cronium.deleteVariable('obsolete');
        await cronium.setCondition(true);
        const main = require.main === module;
        cronium.getVariable('seen').then((seen) => cronium.output({ seen, counter: counter + 1, main }));
    """,
    "BASH": """
        set -eu
        cronium_set_variable seen "$(cronium_get_variable greeting) again"
        [ "$(cronium.getVariable seen)" = "hello again" ]
        cronium_increment_variable counter
        cronium_increment_variable visits 05 >/dev/null
        cronium_increment_variable visits -2 >/dev/null
        cronium_variable_exists visits
        if cronium_variable_exists nope; then exit 10; fi
        cronium_delete_variable obsolete
        if cronium_variable_exists obsolete; then exit 11; fi
        cronium.setVariable dotted "via dots"
        cronium_set_condition YES
        [ "$(cronium_get_condition)" = true ]
        cronium.setCondition off
        [ "$(cronium.getCondition)" = false ]
        visits=$(cronium_get_variable visits)
        cronium.output "{\\"input\\":$(cronium.input),\\"event\\":$(cronium.event),\\"visits\\":$visits}"
    """,
}

OLDER_EXPECTED = {
    "PYTHON": ScriptResults(
        output=["Ada", "hello Ada"],
        has_output=True,
        condition=False,
        variable_changes=(set_("seen", "hello Ada"), delete("obsolete")),
    ),
    "NODEJS": ScriptResults(
        output={"seen": "hello Ada", "counter": 42, "main": True},
        has_output=True,
        condition=True,
        variable_changes=(set_("seen", "hello Ada"), set_("counter", 42), delete("obsolete")),
    ),
    "BASH": ScriptResults(
        output={"input": INPUT, "event": EVENT, "visits": 3},
        has_output=True,
        condition=False,
        variable_changes=(
            set_("seen", "hello again"),
            increment("counter", 1),
            increment("visits", 3),
            delete("obsolete"),
            set_("dotted", "via dots"),
        ),
    ),
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_other_generations_names(tmp_path: Path, language: str) -> None:
    run = ok(run_script(tmp_path, language, OLDER[language]))
    assert run.results == OLDER_EXPECTED[language]
    if language == "BASH":
        assert run.proc.stdout == "42\n"  # cronium_increment_variable prints the sum


def test_node_async_forms_without_top_level_await(tmp_path: Path) -> None:
    script = """
        const { cronium } = require('cronium');
        cronium.getVariable('nope')
          .then((missingValue) => cronium.setVariable('was_missing', missingValue === null))
          .then(() => cronium.event())
          .then((event) => cronium.output(event.name))
          .then(() => cronium.getVariable(42))
          .catch((error) => cronium.setVariable('rejected', error instanceof TypeError));
    """
    run = ok(run_script(tmp_path, "NODEJS", script))
    assert run.results == ScriptResults("nightly", True, None, (set_("was_missing", True), set_("rejected", True)))


# --------------------------------------------------------------------------- round trips

ROUND_TRIP = {
    "PYTHON": """
        text = cronium.input()["text"]
        cronium.setVariable("u2", cronium.getVariable("u") + " / " + text)
        cronium.setVariable("nested2", cronium.getVariable("nested"))
        cronium.setVariable("app.state-1", "日本")
        cronium.output({"u": cronium.getVariable("u"), "nested": cronium.getVariable("nested"), "input": text})
    """,
    "NODEJS": """
        const text = cronium.input().text;
        cronium.setVariable('u2', cronium.getVariable('u') + ' / ' + text);
        cronium.setVariable('nested2', cronium.getVariable('nested'));
        cronium.setVariable('app.state-1', '日本');
        cronium.output({ u: cronium.getVariable('u'), nested: cronium.getVariable('nested'), input: text });
    """,
    "BASH": """
        set -eu
        cronium_setVariable u2 "$(cronium_getVariable u) / $(cronium_getVariable u)"
        cronium_setVariable nested2 "$(cronium_getVariable nested)"
        cronium_setVariable app.state-1 "日本"
        [ "$(cronium_getVariable app.state-1)" = "日本" ]
        u=$(cronium_getVariable u)
        nested=$(cronium_getVariable nested)
        cronium_output "{\\"u\\":\\"$u\\",\\"nested\\":$nested,\\"input\\":$(cronium_input)}"
    """,
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_unicode_and_nested_values_round_trip(tmp_path: Path, language: str) -> None:
    run = ok(
        run_script(
            tmp_path, language, ROUND_TRIP[language], input={"text": UNICODE}, variables=dict(u=UNICODE, nested=NESTED)
        )
    )
    results = run.results
    if language == "BASH":
        # Bash sees a non-string value as its compact JSON text and stores strings.
        nested_copy: Any = json.dumps(NESTED, ensure_ascii=False, separators=(",", ":"))
        assert results.output == {"u": UNICODE, "nested": NESTED, "input": {"text": UNICODE}}
    else:
        nested_copy = NESTED
        assert results.output == {"u": UNICODE, "nested": NESTED, "input": UNICODE}
    assert results.variable_changes == (
        set_("u2", f"{UNICODE} / {UNICODE}"),
        set_("nested2", nested_copy),
        set_("app.state-1", "日本"),
    )


MULTI = "line1\n\"double\" 'single' \\back\\slash\ttab $HOME `cmd` %s %% & \\n\n\nend\n\n"
BIG_VALUE = 'line "q" \\ \t ✓ %s\n' * 60_000  # ~1.2 MB, many characters to escape


def test_bash_values_with_newlines_quotes_control_characters_and_size(tmp_path: Path) -> None:
    long_key = "K" * 100  # the longest key
    script = """
        set -eu
        cronium_getVariable multi > "$CRONIUM_RUN_DIR/../copy.txt"
        v=$(cronium_getVariable multi; printf x)
        cronium_setVariable copy "${v%x}"
        [ "$(cronium_getVariable copy; printf x)" = "$v" ]
        cronium_setVariable controls $'\\x01bell\\x07 esc\\x1b del\\x7f cr\\r'
        big=$(cronium_getVariable big; printf x)
        cronium_setVariable big_copy "${big%x}"
        lk=$(printf 'K%.0s' $(seq 100))
        [ "$(cronium_getVariable "$lk")" = "long value" ]
        cronium_setVariable "$lk" "new long value"
        [ "$(cronium_getVariable "$lk")" = "new long value" ]
        cronium_setVariable empty ""
        cronium_variable_exists empty
    """
    variables = {"multi": MULTI, "big": BIG_VALUE, long_key: "long value"}
    run = ok(run_script(tmp_path, "BASH", script, variables=variables))
    assert (tmp_path / "copy.txt").read_bytes() == MULTI.encode()
    assert run.results.variable_changes == (
        set_("copy", MULTI),
        set_("controls", "\x01bell\x07 esc\x1b del\x7f cr\r"),
        set_("big_copy", BIG_VALUE),
        set_(long_key, "new long value"),
        set_("empty", ""),
    )


TEN_MB = 10_000_000
LARGE_OUTPUT = {
    "PYTHON": f'cronium.output({{"blob": "x" * {TEN_MB}, "tail": "✓\\n\\""}})',
    "NODEJS": f"cronium.output({{ blob: 'x'.repeat({TEN_MB}), tail: '✓\\n\"' }});",
    "BASH": f"""
        set -eu
        big=$CRONIUM_RUN_DIR/../big.json
        {{
          printf '{{"blob":"'
          head -c {TEN_MB} /dev/zero | tr '\\0' x
          printf '","tail":"\\\\u2713\\\\n\\\\""}}'
        }} > "$big"
        cronium_output < "$big"
    """,
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_ten_megabyte_output(tmp_path: Path, language: str) -> None:
    results = ok(run_script(tmp_path, language, LARGE_OUTPUT[language])).results
    assert results.has_output
    assert results.output["blob"] == "x" * TEN_MB
    assert results.output["tail"] == '✓\n"'


NO_OUTPUT = {
    "PYTHON": 'print("just logging")',
    "NODEJS": "console.log('just logging');",
    "BASH": "echo just logging",
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_script_that_never_calls_output(tmp_path: Path, language: str) -> None:
    run = ok(run_script(tmp_path, language, NO_OUTPUT[language]))
    assert run.proc.stdout == "just logging\n"
    assert run.files == {}
    assert run.results == ScriptResults(output=None, has_output=False, condition=None, variable_changes=())


HAND_WRITTEN_OUTPUT = {
    "PYTHON": """
        import os
        with open(os.path.join(os.environ["CRONIUM_RUN_DIR"], "output.json"), "w") as f:
            f.write("hello world, this is not JSON")
    """,
    "NODEJS": """
        require('fs').writeFileSync(process.env.CRONIUM_RUN_DIR + '/output.json', 'hello world, this is not JSON');
    """,
    # Bash's cronium_output stores a text that is not JSON as a string (Cronium's runtime SDK does), so the
    # Bash script writes the malformed file by hand too.
    "BASH": """printf '%s' 'hello world, this is not JSON' > "$CRONIUM_RUN_DIR/output.json"
""",
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_malformed_output_json_is_a_protocol_error(tmp_path: Path, language: str) -> None:
    run = ok(run_script(tmp_path, language, HAND_WRITTEN_OUTPUT[language]))
    with pytest.raises(ProtocolError) as caught:
        run.results
    assert caught.value.filename == "output.json"
    assert str(caught.value) == (
        "output.json: not valid JSON (Expecting value at line 1 column 1); "
        "the script wrote: 'hello world, this is not JSON'"
    )


READ_YOUR_WRITES = {
    "PYTHON": """
        seen = []
        cronium.setVariable("k", {"a": 1})
        seen.append(cronium.getVariable("k"))
        cronium.setVariable("k", [1, "two"])
        seen.append(cronium.getVariable("k"))
        cronium.deleteVariable("k")
        seen.append(cronium.getVariable("k"))
        cronium.deleteVariable("greeting")
        seen.append(cronium.getVariable("greeting"))
        cronium.setVariable("zero", 0)
        seen.append(cronium.getVariable("zero"))
        seen.append(cronium.getCondition())
        cronium.setCondition("yes")
        seen.append(cronium.getCondition())
        cronium.output(seen)
    """,
    "NODEJS": """
        const seen = [];
        cronium.setVariable('k', { a: 1 });
        seen.push(cronium.getVariable('k'));
        cronium.setVariable('k', [1, 'two']);
        seen.push(cronium.getVariable('k'));
        cronium.deleteVariable('k');
        seen.push(cronium.getVariable('k'));
        cronium.deleteVariable('greeting');
        seen.push(cronium.getVariable('greeting'));
        cronium.setVariable('zero', 0);
        seen.push(cronium.getVariable('zero'));
        seen.push(cronium.getCondition());
        cronium.setCondition('yes');
        seen.push(cronium.getCondition());
        cronium.output(seen);
    """,
    "BASH": """
        set -u
        cronium_setVariable k first;  a=$(cronium_getVariable k)
        cronium_setVariable k second; b=$(cronium_getVariable k)
        cronium_delete_variable k;    cronium_getVariable k; c=$?
        cronium_delete_variable greeting; cronium_getVariable greeting; d=$?
        cronium_increment_variable zero 0 >/dev/null; e=$(cronium_getVariable zero)
        f=$(cronium_getCondition); cronium_setCondition On; g=$(cronium_getCondition)
        cronium_output "[\\"$a\\",\\"$b\\",$c,$d,$e,$f,$g]"
    """,
}

READ_YOUR_WRITES_EXPECTED = {
    "PYTHON": [{"a": 1}, [1, "two"], None, None, 0, False, True],
    "BASH": ["first", "second", 1, 1, 0, False, True],
}
READ_YOUR_WRITES_EXPECTED["NODEJS"] = READ_YOUR_WRITES_EXPECTED["PYTHON"]


@pytest.mark.parametrize("language", LANGUAGES)
def test_read_your_writes(tmp_path: Path, language: str) -> None:
    results = ok(run_script(tmp_path, language, READ_YOUR_WRITES[language])).results
    assert results.output == READ_YOUR_WRITES_EXPECTED[language]
    assert results.condition is True
    zero = increment("zero", 0) if language == "BASH" else set_("zero", 0)
    assert results.variable_changes == (delete("k"), delete("greeting"), zero)


FAILING = {
    "PYTHON": """
        cronium.setVariable("a", 1)
        cronium.deleteVariable("greeting")
        def fail():
            raise RuntimeError("boom")
        fail()
    """,
    "NODEJS": """
        cronium.setVariable('a', 1);
        cronium.deleteVariable('greeting');
        throw new Error('boom');
    """,
    "BASH": """
        cronium_increment_variable a >/dev/null
        cronium_delete_variable greeting
        exit 3
    """,
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_variable_changes_survive_a_failing_script(tmp_path: Path, language: str) -> None:
    run = run_script(tmp_path, language, FAILING[language])
    assert run.proc.returncode == (3 if language == "BASH" else 1)
    first = increment("a", 1) if language == "BASH" else set_("a", 1)
    assert run.results == ScriptResults(None, False, None, (first, delete("greeting")))
    script_path = str(run.folder / Path(script_command(language, str(run.folder))[-1]).name)
    if language == "PYTHON":
        stderr = run.proc.stderr
        assert stderr.startswith("Traceback (most recent call last):\n")
        assert f'File "{script_path}", line 6, in <module>' in stderr
        assert stderr.rstrip().endswith("RuntimeError: boom")
        assert "runpy" not in stderr and "cronium_run" not in stderr
    if language == "NODEJS":
        assert f"{script_path}:4" in run.proc.stderr
        assert "Error: boom" in run.proc.stderr


BAD_VALUES = {
    "PYTHON": """
        for bad in (lambda: cronium.setVariable("k", float("nan")), lambda: cronium.setVariable("k", object()),
                    lambda: cronium.getVariable(1), lambda: cronium.setVariable("", 1), lambda: cronium.output({1j})):
            try:
                bad()
            except (TypeError, ValueError):
                pass
            else:
                raise AssertionError("accepted")
    """,
    "NODEJS": """
        for (const bad of [() => cronium.setVariable('k', 1n), () => cronium.getVariable(1),
                           () => cronium.deleteVariable(''), () => cronium.output({ big: 2n })]) {
          let threw = false;
          try { bad(); } catch (error) { threw = true; }
          if (!threw) throw new Error('accepted');
        }
        cronium.setVariable('undef', undefined);
    """,
}


@pytest.mark.parametrize("language", ["PYTHON", "NODEJS"])
def test_values_that_are_not_json_are_refused_before_anything_is_written(tmp_path: Path, language: str) -> None:
    run = ok(run_script(tmp_path, language, BAD_VALUES[language]))
    expected = (set_("undef", None),) if language == "NODEJS" else ()
    assert run.results == ScriptResults(None, False, None, expected)


# --------------------------------------------------------------------------- the script runs as a normal script


def test_python_script_runs_as_main(tmp_path: Path) -> None:
    script = """
        import sys
        cronium.output({"name": __name__, "file": __file__, "argv": sys.argv, "path0": sys.path[0]})
        sys.exit(4)
    """
    run = run_script(tmp_path, "PYTHON", script, args=("a", "b c"))
    assert run.proc.returncode == 4
    file = str(run.folder / "script.py")
    assert run.results.output == {
        "name": "__main__",
        "file": file,
        "argv": [file, "a", "b c"],
        "path0": str(run.folder),
    }


def test_node_script_runs_as_main(tmp_path: Path) -> None:
    script = """
        process.exitCode = 4;
        cronium.output({ main: require.main === module, file: __filename, argv: process.argv.slice(1) });
    """
    run = run_script(tmp_path, "NODEJS", script, args=("a", "b c"))
    assert run.proc.returncode == 4
    file = str(run.folder / "script.js")
    assert run.results.output == {"main": True, "file": file, "argv": [file, "a", "b c"]}


def test_node_top_level_await_keeps_line_numbers(tmp_path: Path) -> None:
    script = """#!/usr/bin/env node
        const value = await require('cronium').getVariable('greeting');
        cronium.setVariable('copy', value);
        throw new Error('failed on line 4');
    """
    run = run_script(tmp_path, "NODEJS", script)
    assert run.proc.returncode == 1
    assert f"{run.folder / 'script.js'}:4" in run.proc.stderr
    assert run.results.variable_changes == (set_("copy", "hello"),)


def test_bash_rejects_bad_arguments_and_hides_its_internals_from_xtrace(tmp_path: Path) -> None:
    script = """
        cronium_setCondition maybe; echo "condition=$?"
        cronium_getVariable; echo "no key=$?"
        cronium_increment_variable greeting; echo "not a number=$?"
        set -x
        cronium_setVariable traced value
        set +x
    """
    run = ok(run_script(tmp_path, "BASH", script))
    assert run.proc.stdout == "condition=2\nno key=2\nnot a number=1\n"
    assert "cronium_setCondition: expected true|1|yes|on or false|0|no|off, got maybe" in run.proc.stderr
    assert "_cronium_json_string" not in run.proc.stderr
    assert run.results == ScriptResults(None, False, None, (set_("traced", "value"),))


# --------------------------------------------------------------------------- host side, no interpreter


def journal(*entries: Any) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in entries)


def test_journal_collapses_to_the_last_change_per_key_in_first_seen_order() -> None:
    log = journal(
        {"op": "set", "key": "a", "value": 1},
        {"op": "set", "key": "b", "value": 2},
        {"op": "delete", "key": "a"},
        {"op": "set", "key": "c", "value": None},
        {"op": "set", "key": "a", "value": [4]},
        {"op": "delete", "key": "b"},
    )
    assert read_results({"variables.log": log}).variable_changes == (set_("a", [4]), delete("b"), set_("c", None))


@pytest.mark.parametrize(
    ("log", "line", "reason"),
    [
        (b'{"op":"set","key":"a","value":1}\n{"op":"set","key":\n', 2, "not valid JSON"),
        (b'\n{"op":"rename","key":"a"}\n', 2, 'op must be "set" or "delete"'),
        (b'{"op":"set","key":"a"}\n', 1, 'a "set" without a value'),
        (b'["set","a",1]\n', 1, "expected an object with a non-empty string key"),
        (b'{"op":"delete","key":""}\n', 1, "expected an object with a non-empty string key"),
    ],
)
def test_malformed_journal_lines(log: bytes, line: int, reason: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        read_results({"variables.log": log})
    assert caught.value.filename == "variables.log"
    assert caught.value.line == line
    assert str(caught.value).startswith(f"variables.log line {line}: {reason}")


def test_an_unterminated_last_journal_line_is_an_interrupted_write() -> None:
    log = b'{"op":"set","key":"a","value":1}\n{"op":"set","key":"b","val'
    assert read_results({"variables.log": log}).variable_changes == (set_("a", 1),)
    complete_but_unterminated = b'{"op":"set","key":"a","value":1}'
    assert read_results({"variables.log": complete_but_unterminated}).variable_changes == (set_("a", 1),)


def test_output_and_condition_files() -> None:
    assert read_results({}) == ScriptResults(None, False, None, ())
    assert read_results({"output.json": b" \n"}).has_output is False
    assert read_results({"output.json": b"null\n"}) == ScriptResults(None, True, None, ())
    assert read_results({"output.json": b'\xef\xbb\xbf{"a":1}'}).output == {"a": 1}
    assert read_results({"condition.json": b'{"condition": false}'}).condition is False
    with pytest.raises(ProtocolError, match=r'^condition.json: expected \{"condition": true\|false\}'):
        read_results({"condition.json": b'{"condition": "yes"}'})
    with pytest.raises(ProtocolError, match=r"^condition.json: not valid JSON"):
        read_results({"condition.json": b"true false"})
    long_text = "hello world " * 20
    with pytest.raises(ProtocolError) as caught:
        read_results({"output.json": long_text.encode()})
    assert str(caught.value).endswith(f"the script wrote: {long_text[:60] + '...'!r}")


def test_build_run_files() -> None:
    long_key = "é" * 61  # 122 UTF-8 bytes
    bash = build_run_files(
        "bash",
        "echo hi\n",
        input=None,
        event=EVENT,
        variables={"greeting": "hé\n", "n": 1, "o": {"a": [1]}, long_key: 2},
    )
    assert bash["script.sh"] == b"echo hi\n"
    assert bash["input.json"] == b"{}\n"
    assert json.loads(bash["event.json"]) == EVENT
    assert json.loads(bash["variables.json"]) == {"greeting": "hé\n", "n": 1, "o": {"a": [1]}, long_key: 2}
    assert bash["variables.d/6772656574696e67"] == "hé\n".encode()
    assert bash["variables.d/6e"] == b"1"
    assert bash["variables.d/6f"] == b'{"a":[1]}'
    assert sum(name.startswith("variables.d/sha256-") for name in bash) == 1
    assert "helpers/bash/cronium.sh" in bash
    assert not any(name.startswith("helpers/") and not name.startswith("helpers/bash/") for name in bash)

    python = build_run_files("PYTHON", "pass\n", input=[1, "✓"], event={}, variables={"x": 1})
    assert python["input.json"] == '[1,"✓"]\n'.encode()
    assert {"helpers/python/cronium.py", "helpers/python/cronium_run.py"} <= set(python)
    assert not any(name.startswith("variables.d/") for name in python)
    node = build_run_files("NODEJS", "", input={}, event={}, variables={})
    assert {"script.js", "helpers/nodejs/cronium.js", "helpers/nodejs/cronium_run.js"} <= set(node)

    with pytest.raises(ValueError, match="RUBY"):
        build_run_files("RUBY", "", input=None, event={}, variables={})
    with pytest.raises(ValueError, match=r"variables\.json"):
        build_run_files("BASH", "", input=None, event={}, variables={"": 1})
    with pytest.raises(ValueError, match=r"input\.json"):
        build_run_files("PYTHON", "", input=float("nan"), event={}, variables={})


def test_commands_and_environment() -> None:
    assert script_command("BASH", "/r/") == ["bash", "/r/script.sh"]
    assert script_command("PYTHON", "/r") == ["python3", "/r/helpers/python/cronium_run.py", "/r/script.py"]
    assert script_command("NODEJS", "/r") == ["node", "/r/helpers/nodejs/cronium_run.js", "/r/script.js"]
    assert script_environment("BASH", "/r") == {"CRONIUM_RUN_DIR": "/r", "BASH_ENV": "/r/helpers/bash/cronium.sh"}
    assert script_environment("NODEJS", "/r") == {"CRONIUM_RUN_DIR": "/r", "NODE_PATH": "/r/helpers/nodejs"}
    assert script_environment("PYTHON", "/r") == {
        "CRONIUM_RUN_DIR": "/r",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONIOENCODING": "utf-8",
    }
    assert RESULT_FILES == ("output.json", "condition.json", "variables.log", "output.txt", "actions.jsonl")


def test_write_run_folder_stays_inside(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="inside"):
        write_run_folder(tmp_path, {"../escape": b""})
    with pytest.raises(ValueError, match="inside"):
        write_run_folder(tmp_path, {"/etc/passwd": b""})
    write_run_folder(tmp_path / "r", {"a/b/c.txt": b"x"})
    assert (tmp_path / "r/a/b/c.txt").read_bytes() == b"x"
    assert collect_result_files(tmp_path / "r") == {}


def test_helpers_root() -> None:
    root = helpers_root()
    for name in ("bash/cronium.sh", "python/cronium.py", "python/cronium_run.py", "nodejs/cronium.js", "PROTOCOL.md"):
        assert (root / name).is_file(), name


_HUGE_NUMBER = b"9" * 5000  # past Python's 4300-digit limit for int()
_DEEP = b"[" * 100_000  # past the JSON decoder's recursion limit


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("output.json", _HUGE_NUMBER),
        ("output.json", _DEEP),
        ("condition.json", b'{"condition": ' + _HUGE_NUMBER + b"}"),
        ("condition.json", _DEEP),
        ("variables.log", b'{"op":"set","key":"k","value":' + _HUGE_NUMBER + b"}\n"),
        ("variables.log", b'{"op":"set","key":"k","value":' + _DEEP + b"\n"),
        ("actions.jsonl", _DEEP + b"\n"),
    ],
    ids=[
        "output-number",
        "output-nesting",
        "condition-number",
        "condition-nesting",
        "log-number",
        "log-nesting",
        "actions-nesting",
    ],
)
def test_a_result_file_with_a_huge_number_or_deep_nesting_is_refused_naming_it(name: str, data: bytes) -> None:
    """Python's json refuses integers of more than 4300 digits (ValueError) and nesting deeper than its
    recursion limit (RecursionError): either is a malformed result file, refused with its name."""
    with pytest.raises(ProtocolError, match=name.replace(".", r"\.")) as caught:
        read_results({name: data})
    assert "not valid JSON" in str(caught.value)


def test_a_malformed_result_file_keeps_the_runs_variable_changes() -> None:
    """A huge number or a deep nesting in output.json fails the run's results, but the variable changes
    the script made (which count even when a script fails) are kept."""
    from cronium_provider.runners.outcome import read_run_results

    journal = b'{"op":"set","key":"progress","value":"half"}\n'
    for bad in (_HUGE_NUMBER, _DEEP):
        results, problem = read_run_results({"variables.log": journal, "output.json": bad})
        assert problem is not None and "output.json" in str(problem)
        assert results is not None and results.variable_changes == (VariableChange("set", "progress", "half"),)


def test_an_output_txt_with_deep_nesting_or_a_huge_number_is_text() -> None:
    """``output.txt`` holds JSON text or any other text: what Python cannot decode as JSON is the text."""
    assert read_results({"output.txt": _DEEP}).output == _DEEP.decode()
    assert read_results({"output.txt": _HUGE_NUMBER}).output == _HUGE_NUMBER.decode()
