"""Parsing for one task: Airflow's parsing context names a DAG, and only that DAG is built.

A worker imports the DAG file before every task with ``_AIRFLOW_PARSING_CONTEXT_DAG_ID`` set (Airflow's
task runner, ``_airflow_parsing_context_manager``). The factory then builds that DAG alone, from the
records the parse index holds for it; the DAG processor's parse (no DAG id) still loads, validates and
reports every record. These tests check that the one DAG equals the full parse's, that the index is
never stale, that concurrent writers do not corrupt it, that bad records stay reported and refused, and
run one real task from a one-DAG parse with ``dag.test()``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cronium_provider import factory
from cronium_provider.factory import parse_dags
from cronium_provider.records import index as record_index
from tests.conftest import REPO
from tests.support.airflow_run import load_dag_module, run_dag, write_dag_file
from tests.support.http_receiver import HttpReceiver, json_answer

TEMPLATE = REPO / "dags_templates" / "cronium_dags.py"
# ids unique to this session (the metadata database keeps DAG runs between tests)
B = 600_000 + (uuid.uuid4().int % 1000) * 1000


def ev(n: int) -> str:
    return f"cronium_event_{B + n}"


def wf(n: int) -> str:
    return f"cronium_workflow_{B + n}"


def event(n: int, **fields: Any) -> dict[str, Any]:
    return {"id": B + n, "name": f"event {n}", "type": "BASH", "status": "ACTIVE", "content": "true", **fields}


def write_records(folder: Path, url: str = "http://127.0.0.1:9/none") -> None:
    """Records over several files and shapes, with references across them, and bad records."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "servers.yaml").write_text(
        "servers:\n"
        f"  - {{id: {B + 1}, name: app-1, address: 127.0.0.2, port: 22, username: cronium}}\n"
        f"  - {{id: {B + 2}, name: app-2, address: 127.0.0.3, port: 22, username: cronium}}\n"
    )
    http = {"type": "HTTP_REQUEST", "httpMethod": "GET", "httpUrl": f"{url}/ping"}
    events = [
        event(
            1,
            name="first",
            scheduleUnit="MINUTES",
            scheduleNumber=5,
            triggerType="SCHEDULE",
            envVars=[{"key": "REGION", "value": "eu"}],
            successEvents=[{"type": "SCRIPT", "targetEventId": B + 3}],
            alwaysEvents=[{"type": "SEND_MESSAGE", "toolId": 1, "message": "done", "emailAddresses": "a@b.c"}],
        ),
        event(2, type="PYTHON", status="PAUSED", runLocation="REMOTE", servers=[B + 1, B + 2], content="print(1)"),
        # DRAFT, built only because event 1's action starts it; its own action starts event 4
        event(3, status="DRAFT", conditionEvents=[{"type": "SCRIPT", "targetEventId": B + 4}]),
        event(4, name="ping", **http),
        event(6, scheduleUnit="FORTNIGHTS"),  # bad field
        event(7, successEvents=[{"type": "SCRIPT", "targetEventId": B + 6}]),  # starts the bad event
        event(8, runLocation="REMOTE", serverId=99),  # a missing server
    ]
    (folder / "events.json").write_text(json.dumps({"events": events}))
    (folder / "workflow-a.yaml").write_text(
        json.dumps(
            {
                "kind": "workflow",
                "id": B + 1,
                "name": "workflow a",
                "status": "ACTIVE",
                "triggerType": "MANUAL",
                "overrideEventServers": True,
                "overrideServerIds": [B + 2],
                "nodes": [
                    {"id": "n1", "type": "eventNode", "data": {"eventId": B + 1}},
                    {"id": "n2", "type": "eventNode", "data": {"eventId": B + 2}},
                    {"id": "n3", "type": "eventNode", "data": {"eventId": B + 4}},
                ],
                "edges": [
                    {"id": "e1", "source": "n1", "target": "n2", "data": {"connectionType": "ON_SUCCESS"}},
                    {"id": "e2", "source": "n1", "target": "n3", "data": {"connectionType": "ALWAYS"}},
                ],
            }
        )
    )
    # Cronium's workflow download: nodes carry their events nested; event 9 exists only there
    (folder / "workflow-b.json").write_text(
        json.dumps(
            {
                "id": B + 2,
                "name": "workflow b",
                "status": "ACTIVE",
                "triggerType": "MANUAL",
                "nodes": [
                    {"id": 1, "eventId": B + 4, "event": event(4, name="ping", **http)},
                    {"id": 2, "eventId": B + 9, "event": event(9, name="nested only")},
                ],
                "connections": [{"sourceNodeId": 1, "targetNodeId": 2, "connectionType": "ON_SUCCESS"}],
            }
        )
    )
    (folder / "workflow-c.json").write_text(
        json.dumps(
            {
                "kind": "workflow",
                "id": B + 3,
                "name": "workflow c",
                "status": "ACTIVE",
                "nodes": [{"id": "x", "eventId": B + 6}],  # the event with a bad schedule
                "connections": [],
            }
        )
    )


# events 6 and 7 get no DAG of their own (a bad schedule; an action starting event 6), but workflow c runs
# event 6 as a node all the same
BUILT = {ev(1), ev(2), ev(3), ev(4), ev(9), wf(1), wf(2), wf(3)}
REFUSED = {ev(6), ev(7), ev(8)}


@pytest.fixture
def records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The records folder; the index in its own folder; no racy-time wait (see test_recent_edit...)."""
    monkeypatch.setenv("CRONIUM_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.delenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", raising=False)
    monkeypatch.delenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID", raising=False)
    monkeypatch.setattr(factory, "RACY_NS", 0)
    folder = tmp_path / "records"
    write_records(folder)
    return folder


def serialized(dag: Any) -> dict[str, Any]:
    from airflow.serialization.serialized_objects import DagSerialization

    data: dict[str, Any] = DagSerialization.to_dict(dag)
    return data


def test_one_dag_is_built_alone_and_equals_the_full_parse(records: Path) -> None:
    full = parse_dags(records)
    assert full.mode == "full" and set(full.dags) == BUILT
    assert "index written" in full.detail
    for dag_id, dag in full.dags.items():
        one = parse_dags(records, dag_id=dag_id)
        assert one.mode == "index", (dag_id, one.detail)
        assert list(one.dags) == [dag_id]
        narrow = one.dags[dag_id]
        assert [(t.task_id, type(t)) for t in narrow.tasks] == [(t.task_id, type(t)) for t in dag.tasks]
        assert serialized(narrow) == serialized(dag), dag_id  # every task argument, schedule, docs, edges
    # a workflow DAG is built with its nodes' events, the events their actions start and the servers
    assert parse_dags(records, dag_id=wf(1)).detail == "7 record(s)"  # wf, events 1 2 3 4, servers 1 2
    # the DRAFT target is built as every status is (docs/records.md, "What an event becomes"), and says so alone too
    assert "a SCRIPT action starts it" in (parse_dags(records, dag_id=ev(3)).dags[ev(3)].doc_md or "")
    # what the full load refuses, the one-DAG parse refuses too: no DAG
    for dag_id in [*REFUSED, "cronium_event_123456789", "not_ours"]:
        one = parse_dags(records, dag_id=dag_id)
        assert one.dags == {} and one.mode == "index", dag_id


def test_the_dag_file_with_a_parsing_context_builds_one_dag(records: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRONIUM_RECORDS_DIR", str(records))
    parse_dags(records)  # the DAG processor's parse writes the index
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", wf(2))
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID", "node_1")
    path = records.parent / "cronium_dags.py"
    path.write_text(TEMPLATE.read_text())
    module = load_dag_module(path)
    built = sorted(name for name in vars(module) if name.startswith("cronium_"))
    assert built == [wf(2)]
    assert set(getattr(module, wf(2)).task_dict) >= {"node_1", "node_2", "workflow_result"}


def test_shards_each_build_their_own_records(records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "sharded"
    write_records(root / "a")
    (root / "b").mkdir()
    (root / "b" / "servers.yaml").write_text((root / "a" / "servers.yaml").read_text())
    (root / "b" / "events.json").write_text(json.dumps([event(50, runLocation="REMOTE", serverId=B + 1)]))
    monkeypatch.setenv("CRONIUM_RECORDS_DIR", str(root))
    modules = {}
    for shard in ("a", "b"):
        path = tmp_path / f"cronium_dags_{shard}.py"
        path.write_text(TEMPLATE.read_text().replace("CRONIUM_SHARD = None", f"CRONIUM_SHARD = {shard!r}"))
        modules[shard] = {name for name in vars(load_dag_module(path)) if name.startswith("cronium_")}
    assert modules == {"a": BUILT, "b": {ev(50)}}
    assert list(parse_dags(dag_id=ev(50), shard="b").dags) == [ev(50)]
    assert parse_dags(dag_id=ev(50), shard="a").dags == {}
    assert len(list((tmp_path / "index").glob("records-*.sqlite"))) == 2  # one index per shard


def test_no_index_yet_loads_everything_and_writes_it(records: Path) -> None:
    first = parse_dags(records, dag_id=wf(1))
    assert first.mode == "one" and list(first.dags) == [wf(1)]
    assert "no index yet" in first.detail and "index written" in first.detail
    assert {e.record_id for e in first.errors} >= {B + 6, B + 7, B + 8}
    assert parse_dags(records, dag_id=wf(1)).mode == "index"


def test_an_edit_is_seen_on_the_next_parse(records: Path) -> None:
    full = parse_dags(records)
    assert parse_dags(records, dag_id=ev(1)).dags[ev(1)].dag_display_name == "first"
    events = records / "events.json"
    before = events.stat()
    # same size, and the old mtime put back: only the ctime (and the content) tell
    events.write_text(events.read_text().replace('"first"', '"fresh"'))
    os.utime(events, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert events.stat().st_size == before.st_size and events.stat().st_mtime_ns == before.st_mtime_ns
    one = parse_dags(records, dag_id=ev(1))
    assert one.mode == "one" and "stale index" in one.detail
    assert one.dags[ev(1)].dag_display_name == "fresh"
    assert parse_dags(records, dag_id=ev(1)).mode == "index"
    assert parse_dags(records, dag_id=ev(1)).dags[ev(1)].dag_display_name == "fresh"

    # a new file sorted first holds another event 1: the full load keeps that copy (and reports the other)
    (records / "a-first.json").write_text(json.dumps([event(1, name="from a-first")]))
    one = parse_dags(records, dag_id=ev(1))
    assert one.mode == "one" and one.dags[ev(1)].dag_display_name == "from a-first"
    assert parse_dags(records).dags[ev(1)].dag_display_name == "from a-first"
    assert parse_dags(records, dag_id=ev(1)).dags[ev(1)].dag_display_name == "from a-first"
    # that copy starts no event 3: the DRAFT event 3 is built all the same, by either parse (every status is)
    assert list(parse_dags(records, dag_id=ev(3)).dags) == [ev(3)] and ev(3) in parse_dags(records).dags
    assert any(f"duplicate id: event {B + 1}" in str(e) for e in parse_dags(records).errors)

    # a removed file: its workflow is gone; a record fixed: its DAG appears
    (records / "workflow-a.yaml").unlink()
    assert parse_dags(records, dag_id=wf(1)).dags == {}
    assert parse_dags(records, dag_id=wf(1)).mode == "index"
    events.write_text(events.read_text().replace('"FORTNIGHTS"', '"DAYS"'))
    assert list(parse_dags(records, dag_id=ev(6)).dags) == [ev(6)]
    assert list(parse_dags(records, dag_id=ev(7)).dags) == [ev(7)]
    assert set(parse_dags(records).dags) == (BUILT | {ev(6), ev(7), wf(3)}) - {wf(1)}
    assert full.dags  # the first parse's DAGs are untouched


def test_recent_edit_is_not_indexed(records: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files changed within 2 s of a load may change again within one tick of their clock: no index."""
    monkeypatch.setattr(factory, "RACY_NS", record_index.RACY_NS)
    (records / "events.json").write_text((records / "events.json").read_text())
    full = parse_dags(records)
    assert "changed less than 2 s" in full.detail
    one = parse_dags(records, dag_id=ev(1))
    assert one.mode == "one" and list(one.dags) == [ev(1)]


def test_bad_records_are_still_reported_by_the_full_parse(records: Path) -> None:
    first = parse_dags(records)
    second = parse_dags(records)  # the index is up to date: the full parse still validates everything
    assert second.detail == "index up to date"
    for result in (first, second):
        text = "\n".join(str(e) for e in result.errors)
        assert f"event {B + 6}: field scheduleUnit" in text
        assert f"event {B + 7}: field successEvents[0].targetEventId" in text
        assert f"event {B + 8}: field serverId" in text
        assert f"workflow {B + 3}:" not in text  # it runs event 6 as a node all the same
        assert not REFUSED & set(result.dags)


def test_nested_copies_that_differ_are_warnings_in_both_parses_and_the_index_serves_their_dags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Event 1 given on its own and nested, differing, in workflow 1's download; event 2 nested, differing,
    in workflows 2 and 3 only. The full parse and a worker's parse without an index both give the same two
    warnings and no error; the index still holds every DAG, and its one-DAG parse equals the full one."""
    monkeypatch.setenv("CRONIUM_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setattr(factory, "RACY_NS", 0)
    folder = tmp_path / "records"
    folder.mkdir()

    def download(n: int, nested: dict[str, Any]) -> dict[str, Any]:
        node = {"id": 1, "eventId": nested["id"], "event": nested}
        return {"id": B + n, "name": f"flow {n}", "status": "ACTIVE", "triggerType": "MANUAL", "nodes": [node]}

    (folder / "step.json").write_text(json.dumps(event(1, content="echo new")))
    (folder / "flow-1.json").write_text(json.dumps(download(1, event(1, content="echo old"))))
    (folder / "flows.json").write_text(
        json.dumps([download(2, event(2, name="two")), download(3, event(2, name="two, renamed"))])
    )

    full = parse_dags(folder)
    assert full.errors == [] and "index written" in full.detail
    assert set(full.dags) == {ev(1), ev(2), wf(1), wf(2), wf(3)}
    assert [(w.path, w.record_id, w.field, w.severity) for w in full.warnings] == [
        (str(folder / "flow-1.json"), B + 1, "content", "warning"),
        (str(folder / "flows.json"), B + 2, "name", "warning"),
    ]
    for dag_id, dag in full.dags.items():
        one = parse_dags(folder, dag_id=dag_id)
        assert one.mode == "index", (dag_id, one.detail)
        assert serialized(one.dags[dag_id]) == serialized(dag), dag_id
    assert full.dags[ev(2)].dag_display_name == "two"  # the first copy read

    for path in (tmp_path / "index").iterdir():
        path.unlink()
    one = parse_dags(folder, dag_id=wf(3))
    assert one.mode == "one" and list(one.dags) == [wf(3)]
    assert one.errors == [] and one.warnings == full.warnings


WRITER = r"""
import sys
from pathlib import Path
from cronium_provider import factory
from cronium_provider.plan.build import build_plan
from cronium_provider.records.index import index_file, load_with_raws, write_index

folder, cache, key = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[4]
records, raws = load_with_raws([folder])
entries = factory._entries(build_plan(records))
print("READY", flush=True)
sys.stdin.readline()
for _ in range(int(sys.argv[3])):
    write_index(index_file(cache, [folder]), key, records, raws, entries)
"""


@pytest.fixture
def many_records(records: Path) -> Iterator[Path]:
    """The records plus 400 more events in their own file: a bigger index, slower to write."""
    extra = [event(100 + i, successEvents=[{"type": "SCRIPT", "targetEventId": B + 100 + i - 1}]) for i in range(400)]
    extra[0].pop("successEvents")
    (records / "more.json").write_text(json.dumps(extra))
    yield records


def test_concurrent_writers_do_not_corrupt_the_index(many_records: Path, tmp_path: Path) -> None:
    cache = tmp_path / "index"
    factory._code_stamp.cache_clear()  # the code on disk now (other work may have changed it)
    state = record_index.folder_state([many_records], factory._code_stamp())
    assert state is not None
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(many_records), str(cache), "15", state.key],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for _ in range(3)
    ]
    for writer in writers:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "READY"
    for writer in writers:  # start writing at once
        assert writer.stdin is not None
        writer.stdin.write("go\n")
        writer.stdin.flush()
    target = record_index.index_file(cache, [many_records])
    seen: dict[str, int] = {}
    while any(w.poll() is None for w in writers):
        found = record_index.lookup(target, state.key, ev(150))
        status = found.status if found.status != "miss" else found.reason
        seen[status] = seen.get(status, 0) + 1
        assert found.status == "hit" or found.reason == "no index yet", found.reason
        if found.status == "hit":
            assert len(found.raws) == 51  # event 150 and the 50 events its actions start, one after another
    assert all(w.wait() == 0 for w in writers)
    assert seen.get("hit", 0) > 0, seen
    assert [p.name for p in cache.iterdir()] == [target.name]  # no temporary file left behind
    assert os.stat(target).st_mode & 0o777 == 0o600
    full = parse_dags(many_records)
    assert full.detail == "index up to date"
    one = parse_dags(many_records, dag_id=ev(150))
    assert one.mode == "index" and serialized(one.dags[ev(150)]) == serialized(full.dags[ev(150)])


def test_concurrent_parses_with_no_index(many_records: Path, tmp_path: Path) -> None:
    """Several workers start tasks at once after a change: each loads everything, and the index they
    write (each to its own temporary file, then renamed) is whole."""
    script = (
        "import sys; from cronium_provider.factory import parse_dags; "
        "r = parse_dags(sys.argv[1], dag_id=sys.argv[2]); print(r.mode, sorted(r.dags))"
    )
    env = dict(os.environ, CRONIUM_INDEX_DIR=str(tmp_path / "index"))
    time.sleep(2.1)  # older than the racy window: these parses write the index
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(many_records), dag_id], stdout=subprocess.PIPE, text=True, env=env
        )
        for dag_id in (ev(1), wf(1), ev(150), wf(2))
    ]
    outputs = [p.communicate(timeout=300)[0].strip().splitlines()[-1] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert outputs[1].endswith(f"['{wf(1)}']"), outputs
    factory._code_stamp.cache_clear()  # the stamp of the code on disk, as the subprocesses saw it
    for dag_id in (ev(1), wf(1), ev(150), wf(2)):
        assert parse_dags(many_records, dag_id=dag_id).mode == "index"


def test_a_one_dag_parse_imports_only_the_operators_its_dag_uses(records: Path, tmp_path: Path) -> None:
    """A worker's parse before each task imports what its DAG's tasks need and no more: a script event's
    DAG does not pay for the HTTP provider's hook and ``aiohttp`` or the standard provider's
    ``TriggerDagRunOperator`` (a tenth of a second and more of CPU at every task start, measured by
    bench/bench_deferrable.py); the DAGs that use them import them."""
    heavy = (
        "cronium_provider.operators.http",
        "airflow.providers.http.hooks.http",
        "cronium_provider.operators.conditional_actions",
        "airflow.providers.standard.operators.trigger_dagrun",
    )
    script = (
        "import sys; from cronium_provider.factory import parse_dags; "
        "r = parse_dags(sys.argv[1], dag_id=sys.argv[2]); "
        f"print(sorted(r.dags), [m for m in {heavy!r} if m in sys.modules])"
    )
    parse_dags(records)
    env = dict(os.environ, CRONIUM_INDEX_DIR=os.environ["CRONIUM_INDEX_DIR"])
    found = {}
    for dag_id in (ev(9), ev(4), ev(3)):
        proc = subprocess.run(
            [sys.executable, "-c", script, str(records), dag_id], capture_output=True, text=True, env=env, timeout=300
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        found[dag_id] = proc.stdout.strip().splitlines()[-1]
    assert found[ev(9)] == f"['{ev(9)}'] []"  # a BASH script event
    assert found[ev(4)] == f"['{ev(4)}'] {list(heavy[:2])}"  # an HTTP request event
    assert found[ev(3)] == f"['{ev(3)}'] {list(heavy[2:])}"  # its condition action starts another event


@pytest.fixture
def http_server() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver(routes={"GET /ping": lambda r: json_answer({"pong": True})}).start()
    yield receiver
    receiver.stop()


def test_a_task_runs_from_a_one_dag_parse(
    records: Path, http_server: HttpReceiver, monkeypatch: pytest.MonkeyPatch, capfd: Any, airflow_db: Path
) -> None:
    write_records(records, http_server.url)
    monkeypatch.setenv("CRONIUM_RECORDS_DIR", str(records))
    assert parse_dags(records).mode == "full"  # the DAG processor's parse: writes the index
    # what the task runner does before the task: import the DAG file with the parsing context set
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", ev(4))
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID", "run")
    assert parse_dags(records, dag_id=ev(4)).mode == "index"
    module = load_dag_module(write_dag_file(f"cronium_dags_{uuid.uuid4().hex[:8]}.py", TEMPLATE.read_text()))
    assert sorted(name for name in vars(module) if name.startswith("cronium_")) == [ev(4)]
    dag = getattr(module, ev(4))
    # dag.test() re-parses the dags folder to sync it to the database, as the DAG processor would
    monkeypatch.delenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID")
    monkeypatch.delenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID")
    result = run_dag(dag, capfd=capfd)
    assert result.state == "success", result.log_text()[-3000:]
    assert result.xcom("run") == {"pong": True}
    assert http_server.requests and http_server.requests[-1].path == "/ping"


def yaml_alias_bomb(levels: int) -> str:
    """A valid event record whose ignored field ``x`` expands to 9**levels strings through YAML aliases."""
    lines = [f"kind: event\nid: {B + 50}\nname: bomb\ntype: BASH\nstatus: ACTIVE\ncontent: 'true'"]
    lines += ["x:", '  l0: &l0 ["xxxxxxxx"]']
    lines += [f"  l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_by_name_and_hides_no_good_dag(tmp_path: Path) -> None:
    """As the DAG processor does (a DagBag in a fresh process): a YAML file of a few hundred bytes whose
    aliases expand to millions of values is reported by name, the good record beside it still builds its
    DAG, and the parse index written for the folder stays small."""
    folder = tmp_path / "records"
    folder.mkdir()
    bomb = folder / "bomb.yaml"
    bomb.write_text(yaml_alias_bomb(6))
    assert len(bomb.read_bytes()) < 600
    (folder / "good.yaml").write_text(json.dumps(event(51, name="good")))
    time.sleep(2.1)  # older than the racy window: this parse writes the index
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "cronium_dags.py").write_text(TEMPLATE.read_text())
    code = (
        "import json; from airflow.dag_processing.dagbag import DagBag; "
        f"bag = DagBag(dag_folder={str(dags)!r}); "
        "print('RESULT ' + json.dumps({'dags': sorted(bag.dags), 'errors': bag.import_errors}))"
    )
    env = dict(os.environ, CRONIUM_RECORDS_DIR=str(folder), CRONIUM_INDEX_DIR=str(tmp_path / "index"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    output = proc.stdout + proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert len(lines) == 1, output[-3000:]
    result = json.loads(lines[0][len("RESULT ") :])
    assert result["dags"] == [ev(51)] and result["errors"] == {}
    assert f"{bomb}: " in output and "aliases" in output, output[-3000:]
    written = list((tmp_path / "index").glob("records-*.sqlite"))
    assert written, output[-3000:]
    assert sum(path.stat().st_size for path in written) < 200_000
