"""A script's variable keys stay in its own namespace; owners' namespaces are disjoint.

A Cronium key is 1 to 100 of ``A-Z a-z 0-9 _ . -`` with no ``..``. The Airflow Task SDK puts a Variable key
into the Execution API's URL as it is, so ``x/../cronium.env.5.DB_PASSWORD`` would reach a Variable outside
``cronium_``: every helper refuses such a key, the worker refuses it again in ``variables.log`` (a script may
write the journal itself) and a template's variable lookup reads nothing with it. Real containers and real
Airflow runs (``dag.test()``): one DAG of several tasks per case, a loopback HTTP receiver for Slack.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from cronium_provider.variables import VariableNamespace
from tests.support.airflow_run import (
    delete_variables,
    load_dag_module,
    run_dag,
    set_variable,
    variable,
    write_dag_file,
)
from tests.support.http_receiver import HttpReceiver, text_answer

SLACK_PATH = "/services/T1/B1/keys"
RULE = "1 to 100 of A-Z a-z 0-9 _ . - with no '..'"


def all_variable_keys() -> list[str]:
    from airflow.models import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        return [row.key for row in session.query(Variable).all()]


def dag_of(tasks: str) -> Any:
    """A DAG file holding ``tasks`` (operator calls, one a line, at the DAG's level of indentation)."""
    dag_id = f"keys_{uuid.uuid4().hex[:8]}"
    body = "".join(f"    {line}\n" for line in tasks.strip().splitlines())
    source = (
        "import datetime\nimport pendulum\nfrom airflow.sdk import DAG\n"
        "from cronium_provider.operators.container_script import CroniumScriptOperator\n"
        "from cronium_provider.operators.tool_action import CroniumToolActionOperator\n\n"
        f'with DAG({dag_id!r}, schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:\n'
        f"{body}"
    )
    return load_dag_module(write_dag_file(f"{dag_id}.py", source)).dag


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    server = HttpReceiver(routes={f"POST {SLACK_PATH}": lambda r: text_answer("ok")}).start()
    yield server
    server.stop()


# -- finding: keys that climb out of the namespace ---------------------------------------------------------

BASH = r"""
set +e
bad=(
  "x/../cronium.env.{E}.DB_PASSWORD"
  "x/../cronium.internal.canary{T}"
  "x/../other_var{T}"
  "x/../planted{T}"
  "x%2F..%2Fother_var{T}"
  "$(printf 'k%.0s' {1..101})"
)
for k in "${bad[@]}"; do
  for f in cronium_setVariable cronium_set_variable cronium.setVariable cronium_append_variable \
           cronium_increment_variable cronium_delete_variable cronium_deleteVariable cronium.deleteVariable \
           cronium_getVariable cronium_get_variable cronium.getVariable cronium_variable_exists; do
    "$f" "$k" 1 >/dev/null
    echo "bash $f status $?"
  done
done
cronium_setVariable ok{T}_bash 1
"""

PYTHON = r"""
bad = [
    "x/../cronium.env.{E}.DB_PASSWORD", "x/../cronium.internal.canary{T}", "x/../other_var{T}",
    "x/../planted{T}", "x%2F..%2Fother_var{T}", "k" * 101,
]
names = ["setVariable", "set_variable", "appendVariable", "append_variable", "deleteVariable",
         "delete_variable", "getVariable", "get_variable"]
for k in bad:
    for name in names:
        call = getattr(cronium, name)
        try:
            call(k) if name.startswith(("get", "delete")) else call(k, "pwned")
            print("python", name, "accepted", k)
        except ValueError as exc:
            print("python", name, "refused:", exc)
cronium.setVariable("ok{T}_python", 1)
cronium.send_slack_message(
    "#ops",
    "in-script:{{lookup cronium.getVariables 'x/../cronium.env.{E}.DB_PASSWORD'}}"
    ":{{cronium.getVariable 'x/../other_var{T}'}}:{{cronium.getVariables.[x/../cronium.internal.canary{T}]}}:end",
    toolId={S},
)
"""

NODEJS = r"""
const bad = ['x/../cronium.env.{E}.DB_PASSWORD', 'x/../cronium.internal.canary{T}', 'x/../other_var{T}',
  'x/../planted{T}', 'x%2F..%2Fother_var{T}', 'k'.repeat(101)];
const names = ['setVariable', 'appendVariable', 'deleteVariable', 'getVariable'];
const promised = require('cronium');
(async () => {
  for (const k of bad) {
    for (const name of names) {
      try { cronium[name](k, 'pwned'); console.log('nodejs', name, 'accepted', k); }
      catch (error) { console.log('nodejs', name, 'refused:', error.message); }
      try { await promised[name](k, 'pwned'); console.log('nodejs async', name, 'accepted', k); }
      catch (error) { console.log('nodejs async', name, 'refused:', error.message); }
      try { await promised.cronium[name](k, 'pwned'); console.log('nodejs instance', name, 'accepted', k); }
      catch (error) { console.log('nodejs instance', name, 'refused:', error.message); }
    }
  }
  cronium.setVariable('ok{T}_nodejs', 1);
})();
"""

# a script that writes the journal itself, bypassing the helpers: the good lines count, the bad are refused
FORGED = r"""
{
  printf '%s\n' '{"op":"set","key":"ok{T}_forged","value":1}'
  printf '%s\n' '{"op":"set","key":"x/../other_var{T}","value":"pwned"}'
  printf '%s\n' '{"op":"delete","key":"x/../cronium.env.{E}.DB_PASSWORD"}'
  printf '%s\n' '{"op":"append","key":"x/../planted{T}","value":"pwned"}'
  printf '%s\n' '{"op":"set","key":"ok{T}_forged2","value":2}'
} >> "$CRONIUM_RUN_DIR/variables.log"
"""

TEMPLATE = (
    "tool:{{lookup cronium.getVariables 'x/../other_var{T}'}}"
    ":{{cronium.getVariable 'x/../cronium.env.{E}.DB_PASSWORD'}}"
    ":{{cronium.variables.[x/../cronium.internal.canary{T}]}}:{{cronium.getVariables.ok{T}_seen}}:end"
)


@pytest.mark.docker
def test_no_script_or_template_reaches_a_variable_outside_its_namespace(
    airflow_db: Any, capfd: Any, monkeypatch: pytest.MonkeyPatch, receiver: HttpReceiver
) -> None:
    """Bash (every name), Python and Node.js (sync, promise and instance forms) scripts try to write, delete
    and read other events' env secrets, the provider's bookkeeping and a non-Cronium Variable through
    ``x/../``; a script forges ``variables.log``; an in-script Slack message and a tool action template
    look them up. Every helper refuses the key naming it and the rule, nothing outside ``cronium_`` changes
    or is created, no secret appears in a log, an XCom or a message, and the honest changes still count."""
    tag = uuid.uuid4().hex[:10]
    event_id = 900_000 + int(tag[:4], 16)
    slack = 990_000 + int(tag[4:8], 16)
    monkeypatch.setenv(
        f"AIRFLOW_CONN_CRONIUM_TOOL_{slack}",
        json.dumps({"conn_type": "slackwebhook", "password": f"{receiver.url}{SLACK_PATH}"}),
    )
    guarded = {
        f"cronium.env.{event_id}.DB_PASSWORD": f"secret-{tag}-env",
        f"cronium.internal.canary{tag}": f"secret-{tag}-internal",
        f"other_var{tag}": f"secret-{tag}-other",
    }
    for key, value in guarded.items():
        set_variable(key, value)
    set_variable(f"cronium_ok{tag}_seen", json.dumps("visible"))

    def script(text: str) -> str:
        return text.replace("{E}", str(event_id)).replace("{T}", tag).replace("{S}", str(slack))

    event = {"id": event_id + 1, "name": "probe", "userId": None}
    common = f"event={event!r}, execution_timeout=datetime.timedelta(seconds=120)"
    dag = dag_of(
        f"""
CroniumScriptOperator(task_id="bash", language="BASH", script={script(BASH)!r}, {common})
CroniumScriptOperator(task_id="python", language="PYTHON", script={script(PYTHON)!r}, {common})
CroniumScriptOperator(task_id="nodejs", language="NODEJS", script={script(NODEJS)!r}, {common})
CroniumScriptOperator(task_id="forged", language="BASH", script={script(FORGED)!r}, {common})
CroniumToolActionOperator(task_id="template", tool_id={slack}, parameters={{"text": {script(TEMPLATE)!r}}}, {common})
"""
    )
    try:
        result = run_dag(dag, capfd=capfd)
        text = result.log_text()
        states = result.task_states
        assert states["bash"] == states["python"] == states["nodejs"] == "success", text[-4000:]
        assert states["template"] == "success", text[-4000:]

        # nothing outside the namespace changed, nothing was planted, the honest changes count
        for key, value in guarded.items():
            assert variable(key) == value, key
        mine = sorted(k for k in all_variable_keys() if tag in k and k not in guarded)
        assert mine == sorted(
            [f"cronium_ok{tag}_{name}" for name in ("bash", "python", "nodejs", "forged", "forged2", "seen")]
        )
        assert not [k for k in all_variable_keys() if ".." in k or "/" in k or "%" in k]

        # every helper refused every bad key, naming it and the rule
        assert len(re.findall(r"\[stdout\] bash \S+ status 2 \[", text)) == 6 * 12, text[-4000:]
        assert not re.findall(r"\[stdout\] bash \S+ status [^2]", text)
        for name in ("cronium_setVariable", "cronium_increment_variable", "cronium_delete_variable"):
            assert f"{name}: variable key 'x/../other_var{tag}' is refused: a key is {RULE}" in text
        assert " accepted " not in text
        assert len(re.findall(r"\[stdout\] python \S+ refused: cronium: variable key", text)) == 6 * 8
        assert f"refused: cronium: variable key 'x%2F..%2Fother_var{tag}' is refused: a key is {RULE}" in text
        for form in ("nodejs", "nodejs async", "nodejs instance"):
            found = re.findall(rf"\[stdout\] {form} \S+ refused: cronium: variable key '[^']+' is refused", text)
            assert len(found) == 6 * 4, form

        # a forged journal: the run fails naming the key; the good lines still count
        assert states["forged"] == "failed"
        assert f"variables.log line 2: variable key 'x/../other_var{tag}' is refused: a key is {RULE}" in text
        assert f"line 4: variable key 'x/../planted{tag}' is refused" in text
        assert json.loads(variable(f"cronium_ok{tag}_forged")) == 1
        assert json.loads(variable(f"cronium_ok{tag}_forged2")) == 2

        # templates read nothing with a bad key, and no secret went anywhere
        texts = sorted(r.json()["text"] for r in receiver.requests if r.path == SLACK_PATH)
        assert texts == ["in-script::::end", "tool::::visible:end"]
        seen = text + json.dumps(result.xcoms, default=str) + "".join(r.body.decode() for r in receiver.requests)
        for value in guarded.values():
            assert value not in seen
    finally:
        for key in guarded:
            delete_variables(key)
        delete_variables(f"cronium_ok{tag}")


# -- finding: owners' namespaces overlap ------------------------------------------------------------------


@pytest.mark.docker
def test_owners_whose_names_overlap_keep_apart(airflow_db: Any, capfd: Any) -> None:
    """Scoped by owner, ``alice`` and ``alice_x`` (one name the start of the other), and ``a b``, ``a_b``
    and ``a@b`` (which a character replacement would merge) each read only their own variables and write
    only their own ``counter``."""
    tag = uuid.uuid4().hex[:8]
    owners = [f"alice{tag}", f"alice{tag}_x", f"a b{tag}", f"a_b{tag}", f"a@b{tag}"]
    namespaces = {owner: VariableNamespace(owner=owner, scope_by_owner=True) for owner in owners}
    keys = {owner: namespaces[owner].airflow_key("counter") for owner in owners}
    for owner in owners:
        set_variable(keys[owner], json.dumps(f"{owner} before"))
    script = (
        "import json, os\n"
        "seen = json.load(open(os.path.join(os.environ['CRONIUM_RUN_DIR'], 'variables.json')))\n"
        "cronium.setVariable('counter', cronium.event()['userId'] + ' wrote')\n"
        "cronium.output(seen)\n"
    )
    tasks = "\n".join(
        f'CroniumScriptOperator(task_id="owner_{n}", language="PYTHON", script={script!r}, '
        f"event={{'id': {n + 1}, 'name': 'count', 'userId': {owner!r}}}, scope_variables_by_owner=True)"
        for n, owner in enumerate(owners)
    )
    try:
        result = run_dag(dag_of(tasks), capfd=capfd)
        assert result.state == "success", result.log_text()[-4000:]
        for n, owner in enumerate(owners):
            assert result.xcom(f"owner_{n}") == {"counter": f"{owner} before"}, owner
            assert json.loads(variable(keys[owner])) == f"{owner} wrote", owner
        assert len(set(keys.values())) == len(owners)
    finally:
        for owner in owners:
            delete_variables(namespaces[owner].prefix)


def test_a_legacy_env_variable_is_out_of_every_scripts_reach(airflow_db: Any, capfd: Any) -> None:
    """Before 0.2 an event's env var values were kept as ``cronium_env_<id>_<KEY>``, inside the variables'
    prefix; a sync moves the ones it knows, but older ones may stay. The key ``env_<id>_<KEY>`` is a valid
    Cronium key, yet no script reads it (not in its variables, ``getVariable`` sees nothing) and none writes
    it: the run that tries fails naming the key, and the Variable is as it was."""
    event_id = int(uuid.uuid4().int % 10**8)
    legacy = f"cronium_env_{event_id}_TOKEN"
    set_variable(legacy, "legacy-secret-value")
    read = (
        "import json, os\n"
        "seen = json.load(open(os.path.join(os.environ['CRONIUM_RUN_DIR'], 'variables.json')))\n"
        f"cronium.output({{'seen': sorted(seen), 'got': cronium.getVariable('env_{event_id}_TOKEN')}})\n"
    )
    write = f"cronium.setVariable('env_{event_id}_TOKEN', 'overwritten')\n"
    tasks = (
        f"CroniumScriptOperator(task_id='reads', language='PYTHON', script={read!r}, event={{'id': 1}})\n"
        f"CroniumScriptOperator(task_id='writes', language='PYTHON', script={write!r}, event={{'id': 2}})\n"
    )
    try:
        result = run_dag(dag_of(tasks), capfd=capfd)
        assert result.task_states == {"reads": "success", "writes": "failed"}, result.log_text()[-3000:]
        output = result.xcom("reads")
        assert output["got"] is None and f"env_{event_id}_TOKEN" not in output["seen"], output
        assert f"variable key 'env_{event_id}_TOKEN' is refused" in result.log_text()
        assert variable(legacy) == "legacy-secret-value"
        assert "legacy-secret-value" not in json.dumps(result.xcoms)
    finally:
        delete_variables(legacy)
