"""The cross-event canary: one event's secret is unreadable and unwritable from another event's scripts,
and appears in no log line, XCom, rendered field, serialized DAG or plan."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.conftest import venv_bin
from tests.support.airflow_run import set_variable, variable
from tests.test_event_dags import Factory

PROBES = {
    "BASH": """
set +e
echo "env: $(env | sort | tr '\\n' ' ')"
echo "snapshot: $(cat "$CRONIUM_RUN_DIR"/variables.json 2>/dev/null)"
for k in env_{A}_SECRET env.{A}.SECRET .env.{A}.SECRET; do echo "get $k: $(cronium_getVariable "$k")"; done
cronium_setVariable env_{A}_SECRET '"pwned"'
cronium_setVariable .env.{A}.SECRET '"pwned"'
exit 0
""",
    "PYTHON": """
import json, os
print("env:", dict(os.environ))
print("snapshot:", open(os.path.join(os.environ["CRONIUM_RUN_DIR"], "variables.json")).read())
for k in ("env_{A}_SECRET", "env.{A}.SECRET", ".env.{A}.SECRET"):
    print("get", k, cronium.getVariable(k))
cronium.setVariable("env_{A}_SECRET", "pwned")
""",
    "NODEJS": """
const fs = require('fs'), path = require('path');
console.log('env:', JSON.stringify(process.env));
console.log('snapshot:', fs.readFileSync(path.join(process.env.CRONIUM_RUN_DIR, 'variables.json'), 'utf8'));
for (const k of ['env_{A}_SECRET', 'env.{A}.SECRET', '.env.{A}.SECRET']) console.log('get', k, cronium.getVariable(k));
cronium.setVariable('env_{A}_SECRET', 'pwned');
""",
}


@pytest.fixture
def factory(tmp_path: Path, capfd, monkeypatch, airflow_db) -> Factory:
    folder = tmp_path / "records"
    folder.mkdir()
    return Factory(folder, capfd, monkeypatch)


@pytest.mark.docker
def test_an_events_secret_stays_with_its_event(factory: Factory) -> None:
    secret = f"canary-{uuid.uuid4().hex}"
    owner = factory.event(
        name="owner of the secret",
        envVars=[{"key": "SECRET"}],
        content='cronium_output "{\\"len\\": ${#SECRET}, \\"head\\": \\"${SECRET:0:7}\\"}"',
    )
    set_variable(f"cronium.env.{owner['id']}.SECRET", secret)
    probes = {
        language: factory.event(name=f"probe {language}", type=language, content=code.replace("{A}", str(owner["id"])))
        for language, code in PROBES.items()
    }
    module = factory.load()
    texts = []
    for language, probe in probes.items():
        result = factory.run(module, probe)
        # env_<id>_<KEY> is where env var values were kept before 0.2: setting it fails the run, naming the key
        assert result.task_states["run"] == "failed", (language, result.log_text()[-3000:])
        assert f"variable key 'env_{owner['id']}_SECRET' is refused" in result.log_text(), language
        texts.append(result.log_text())
        texts.append(json.dumps(result.xcoms, default=str))
    assert variable(f"cronium.env.{owner['id']}.SECRET") == secret  # nothing overwrote it
    owned = factory.run(module, owner)
    assert owned.xcom("run") == {"len": len(secret), "head": "canary-"}  # and the owner still reads it
    texts.append(owned.log_text())
    texts.append(json.dumps(owned.xcoms, default=str))

    from airflow.serialization.serialized_objects import DagSerialization

    for event in (owner, *probes.values()):
        dag = getattr(module, f"cronium_event_{event['id']}")
        texts.append(json.dumps(DagSerialization.to_dict(dag), default=str))
        task = dag.get_task("run")
        texts.append(json.dumps({f: getattr(task, f, None) for f in task.template_fields}, default=str))
    plan = subprocess.run(
        [venv_bin("cronium-airflow"), "plan", "--json", str(factory.folder)], capture_output=True, text=True
    )
    texts.append(plan.stdout + plan.stderr)
    for text in texts:
        assert secret not in text


@pytest.mark.docker
@pytest.mark.parametrize("mode", ["attached", "deferred"])
def test_each_line_of_a_multi_line_secret_is_masked(factory: Factory, monkeypatch, mode: str) -> None:
    """A multi-line env value (a key file) printed by its script line by line, or a few of its lines alone,
    is masked line by line in the run's ``stdout``/``stderr`` XComs (``{{cronium.event.output}}`` and
    ``error`` of its messages), as in the task's log: Airflow masks a value only whole. The same whether the
    task waits for the script or defers."""
    if mode == "deferred":
        monkeypatch.setenv("AIRFLOW__CRONIUM__DEFERRABLE", "True")
    middle = [uuid.uuid4().hex, uuid.uuid4().hex]
    key = "\n".join(["-----BEGIN TEST KEY-----", *middle, "-----END TEST KEY-----"])
    event = factory.event(
        name="deploy",
        envVars=[{"key": "DEPLOY_KEY"}],
        content='echo "$DEPLOY_KEY"; echo "$DEPLOY_KEY" | sed -n 2p; echo "$DEPLOY_KEY" | sed -n 3p >&2',
    )
    set_variable(f"cronium.env.{event['id']}.DEPLOY_KEY", key)
    module = factory.load()
    result = factory.run(module, event)
    assert result.state == "success", result.log_text()[-3000:]
    assert ("Deferred: container" in result.log_text()) is (mode == "deferred")
    stdout, stderr = result.xcom("run", "stdout"), result.xcom("run", "stderr")
    assert set(stdout.replace("\n", "")) == {"*"} and stderr == "***", (stdout, stderr)
    assert not [line for line in middle if line in json.dumps(result.xcoms)], result.xcoms
