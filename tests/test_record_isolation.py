"""One record never takes the others down: validation catches what rendering needs, and a DAG that still
fails to render is left out alone, logged with its record's file and id."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, airflow_env


def _event(event_id: int, **fields: object) -> dict[str, object]:
    return {"kind": "event", "id": event_id, "name": f"e{event_id}", "type": "BASH", "status": "ACTIVE", **fields}


def test_a_tool_action_without_its_tool_is_refused_by_validation_and_hides_nothing(tmp_path: Path) -> None:
    """The record that used to break the whole DAG file: TOOL_ACTION with no ``toolId``."""
    folder = tmp_path / "records"
    folder.mkdir()
    good = [_event(i, content="true") for i in range(1, 6)]
    bad = _event(9, type="TOOL_ACTION", toolActionConfig={"toolType": "slack", "actionId": "slack-send-message"})
    (folder / "events.json").write_text(json.dumps([*good, bad]))
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "cronium_dags.py").write_text((REPO / "dags_templates" / "cronium_dags.py").read_text())
    code = (
        "import json; from airflow.dag_processing.dagbag import DagBag; "
        f"bag = DagBag(dag_folder={str(dags)!r}); "
        "print('RESULT ' + json.dumps({'dags': sorted(bag.dags), 'errors': bag.import_errors}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env=airflow_env(CRONIUM_RECORDS_DIR=str(folder)),
    )
    [line] = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    result = json.loads(line[len("RESULT ") :])
    assert result == {"dags": [f"cronium_event_{i}" for i in range(1, 6)], "errors": {}}
    output = proc.stdout + proc.stderr
    assert "events.json: event 9: field toolActionConfig: toolId: a tool action needs the id of its tool" in output


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_dag_that_fails_to_render_is_left_out_alone(tmp_path: Path) -> None:
    from cronium_provider.plan.build import build_plan
    from cronium_provider.plan.specs import HttpRequestSpec
    from cronium_provider.records.validation import load_records
    from cronium_provider.render import dags as render

    (tmp_path / "e.json").write_text(
        json.dumps(
            [_event(1, content="true"), _event(2, type="HTTP_REQUEST", httpUrl="http://127.0.0.1:9/"), _event(3)]
        )
    )
    plan = build_plan(load_records([tmp_path]))

    class Broken:
        def __init__(self, **kwargs: object) -> None:
            raise ValueError("url: cannot be rendered")

    table = {**render.OPERATORS, HttpRequestSpec: Broken}
    collect = _Collect()
    render.log.addHandler(collect)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(render, "OPERATORS", table)
            built = render.render_plan(plan)
    finally:
        render.log.removeHandler(collect)
    assert sorted(built) == ["cronium_event_1", "cronium_event_3"]
    [message] = collect.messages
    assert str(tmp_path / "e.json") in message and "event 2" in message
    assert "cronium_event_2: ValueError: url: cannot be rendered" in message


PARSE_AND_LOG = """
import json, logging
from airflow.dag_processing.dagbag import DagBag
seen = []
class Keep(logging.Handler):
    def emit(self, record):
        seen.append([record.levelname, record.getMessage()])
logging.getLogger("airflow.cronium").addHandler(Keep(logging.DEBUG))
bag = DagBag(dag_folder={dags!r})
print("RESULT " + json.dumps({{"dags": sorted(bag.dags), "errors": bag.import_errors, "log": seen}}))
"""


def test_the_dag_processor_logs_a_nested_copy_that_differs_as_a_warning(tmp_path: Path) -> None:
    """A workflow download whose nested event differs from the event given on its own: both DAGs are built from
    the copy given on its own, and the DAG processor's log says so at WARNING level with the text validate
    prints, never "left out"; a worker's parse for the workflow's task (from the parse index when the DAG
    processor could write it, else from every record) leaves nothing out either."""
    from cronium_provider.records.validation import load_records

    folder = tmp_path / "records"
    folder.mkdir()
    (folder / "step.json").write_text(json.dumps(_event(1, content="echo new")))
    nested = {k: v for k, v in _event(1, name="old name", content="echo old").items() if k != "kind"}
    flow = {"id": 60, "name": "flow", "status": "ACTIVE", "triggerType": "MANUAL", "connections": []}
    flow["nodes"] = [{"id": "n1", "eventId": 1, "event": nested}]
    (folder / "flow.json").write_text(json.dumps(flow))
    [warning] = load_records([folder]).warnings
    text = str(warning)
    assert str(folder / "flow.json") in text and "event 1: field name, content" in text and "nodes[0].event" in text
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "cronium_dags.py").write_text((REPO / "dags_templates" / "cronium_dags.py").read_text())

    def parse(**env: str) -> tuple[dict[str, object], str]:
        proc = subprocess.run(
            [sys.executable, "-c", PARSE_AND_LOG.format(dags=str(dags))],
            capture_output=True,
            text=True,
            timeout=300,
            env=airflow_env(CRONIUM_RECORDS_DIR=str(folder), CRONIUM_INDEX_DIR=str(tmp_path / "index"), **env),
        )
        [line] = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        return json.loads(line[len("RESULT ") :]), proc.stdout + proc.stderr

    result, output = parse()
    assert result["dags"] == ["cronium_event_1", "cronium_workflow_60"] and result["errors"] == {}
    assert ["WARNING", f"Cronium record warning: {text}"] in result["log"]
    assert not [level for level, _ in result["log"] if level == "ERROR"], result["log"]
    assert "left out" not in output, output

    result, output = parse(_AIRFLOW_PARSING_CONTEXT_DAG_ID="cronium_workflow_60")
    assert result["dags"] == ["cronium_workflow_60"] and result["errors"] == {}
    assert "left out" not in output, output
    assert not [level for level, _ in result["log"] if level == "ERROR"], result["log"]
