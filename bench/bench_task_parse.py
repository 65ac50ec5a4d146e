"""Parse time: the parse a worker does before each task, and the DAG processor's full parse at scale.

Worker: before a task starts, Airflow's task runner imports the DAG file with the parsing context set to
the task's DAG and task (env ``_AIRFLOW_PARSING_CONTEXT_DAG_ID`` / ``_AIRFLOW_PARSING_CONTEXT_TASK_ID``,
airflow/sdk/execution_time/task_runner.py) through a DagBag of that one file. Here each such parse runs in
a fresh process, the same DAG (``cronium_event_1``, the same record in every folder: the generator is
seeded) over a folder of 1 event, 2,000 and 10,000 events (one export file each, as Cronium writes it),
alternately; the figures are the medians of the DagBag's time. Targets: 2,000 and 10,000 events <= 1.2x
1 event. Shown without a target: a workflow DAG of 10 nodes among 10,000 events and 1,000 workflows, and
the parse with no index (``CRONIUM_INDEX_DIR=off``: every record loaded, one DAG rendered).

DAG processor: the full parse (no parsing context) of 10,000 events and 1,000 workflows of 10 nodes
against a hand-written file of the same DAGs (bench_dag_parse.py's baseline), each in a fresh process,
alternately; the index is removed before every template parse, so each measured parse also writes it
(the worst case: the records changed). Targets: wall and CPU time <= 1.10x the hand-written file's, and
CPU time <= 0.8x Airflow's defaults ``[core] dagbag_import_timeout`` (30 s, the import of the file) and
``[dag_processor] dag_file_processor_timeout`` (50 s, the whole parse). The parse is one thread: on an idle
core its wall time is its CPU time; on a machine busy with other work it is longer, so the wall time
against the timeouts is shown, with the load average, without a target. The import timeout is raised here
so that a slow parse is measured rather than stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dag_parse import TEMPLATE, handwritten_source, make_events, make_workflows, parse
from common import median, report

DAG_FILE_PROCESSOR_TIMEOUT = 50.0  # [dag_processor] dag_file_processor_timeout: the whole parse of one file
DAGBAG_IMPORT_TIMEOUT = 30.0  # [core] dagbag_import_timeout: the import of the file (raised here, to measure)

PARSE_TASK = r"""
import json, os, sys, time
from airflow.dag_processing.dagbag import DagBag
start = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False, load_op_links=False)
seconds = time.perf_counter() - start
assert not bag.import_errors, bag.import_errors
dag = bag.dags[os.environ["_AIRFLOW_PARSING_CONTEXT_DAG_ID"]]
assert os.environ["_AIRFLOW_PARSING_CONTEXT_TASK_ID"] in dag.task_dict
print("RESULT " + json.dumps({"seconds": seconds, "dags": len(bag.dags), "tasks": len(dag.tasks)}))
"""


def write_records(folder: Path, records: dict[str, Any]) -> Path:
    """One export file, dated a minute ago (older than the index's 2 s racy window)."""
    folder.mkdir(parents=True)
    path = folder / "export.json"
    path.write_text(json.dumps(records))
    past = time.time() - 60
    os.utime(path, (past, past))
    return folder


def task_parse(dag_file: Path, records_dir: Path, index_dir: str, dag_id: str, task_id: str) -> dict[str, Any]:
    env = dict(
        os.environ,
        CRONIUM_RECORDS_DIR=str(records_dir),
        CRONIUM_INDEX_DIR=index_dir,
        _AIRFLOW_PARSING_CONTEXT_DAG_ID=dag_id,
        _AIRFLOW_PARSING_CONTEXT_TASK_ID=task_id,
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
    )
    proc = subprocess.run(
        [sys.executable, "-c", PARSE_TASK, str(dag_file)], capture_output=True, text=True, env=env, timeout=600
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"task parse of {dag_id} over {records_dir} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[0][len("RESULT ") :])
    output = proc.stdout + proc.stderr
    result["from_index"] = "from the parse index" in output
    if result["dags"] != 1:
        raise SystemExit(f"the task parse of {dag_id} built {result['dags']} DAGs, not 1")
    return result


def task_parses(work: Path, runs: int) -> bool:
    dag_dir = work / "dags"
    dag_dir.mkdir(parents=True)
    dag_file = dag_dir / "cronium_dags.py"
    shutil.copy(TEMPLATE, dag_file)
    index_dir = work / "index"
    workflows = make_workflows(1000, 10)["workflows"]
    folders = {
        "1": write_records(work / "r1", {"events": make_events(1)}),
        "2000": write_records(work / "r2000", {"events": make_events(2000)}),
        "10000": write_records(work / "r10000", {"events": make_events(10000)}),
        "10000+wf": write_records(work / "r10000wf", {"events": make_events(10000), "workflows": workflows}),
    }
    time.sleep(2.1)  # older than the index's racy window (the ctime, which utime does not set back, counts)
    cases = {
        "1": (folders["1"], str(index_dir), "cronium_event_1", "run"),
        "2000": (folders["2000"], str(index_dir), "cronium_event_1", "run"),
        "10000": (folders["10000"], str(index_dir), "cronium_event_1", "run"),
        "workflow": (folders["10000+wf"], str(index_dir), "cronium_workflow_500", "workflow_result"),
        "no index": (folders["10000"], "off", "cronium_event_1", "run"),
    }
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in cases}
    for name, case in cases.items():  # the first task parse finds no index: it loads everything, writes it
        first = task_parse(dag_file, *case)
        print(f"first task parse, '{name}' (no index yet; written unless off): {first['seconds']:.2f} s")
    retaken = 0
    for i in range(runs):
        names = list(cases)
        for name in names[i % len(names) :] + names[: i % len(names)]:
            result = task_parse(dag_file, *cases[name])
            for _ in range(2):  # the index went stale (the records or the provider's code changed): it is
                if result["from_index"] or name == "no index":  # rewritten by that parse; measure again
                    break
                retaken += 1
                result = task_parse(dag_file, *cases[name])
            if result["from_index"] != (name != "no index"):
                raise SystemExit(f"task parse '{name}': from the index: {result['from_index']}")
            results[name].append(result)
    if retaken:
        print(f"{retaken} task parse(s) found a stale index (code or records changed meanwhile) and were retaken")
    print(f"load average (1 min) after the task parses: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"task parses: each built 1 DAG; tasks in the workflow DAG: {results['workflow'][0]['tasks']}")

    def seconds(name: str) -> float:
        return median([r["seconds"] for r in results[name]])

    return report(
        f"Worker parse before one task (DagBag of the DAG file, parsing context set), median of {runs}; "
        "baseline: the same DAG with 1 event in the folder",
        [
            ("2,000 events (s)", seconds("2000"), seconds("1")),
            ("10,000 events (s)", seconds("10000"), seconds("1")),
            ("workflow DAG, 10k events + 1k wf (s)", seconds("workflow"), seconds("1"), None),
            ("10,000 events, no index (s)", seconds("no index"), seconds("1"), None),
        ],
        target=1.2,
    )


def dag_processor_parse(work: Path, events: int, workflows: int, nodes: int, runs: int) -> bool:
    records = {"events": make_events(events), "workflows": make_workflows(workflows, nodes)["workflows"]}
    records_dir = write_records(work / "records", records)
    template_dir, hand_dir, index_dir = work / "template", work / "handwritten", work / "full-index"
    template_dir.mkdir(parents=True)
    hand_dir.mkdir(parents=True)
    shutil.copy(TEMPLATE, template_dir / "cronium_dags.py")
    (hand_dir / "handwritten_dags.py").write_text(handwritten_source(records_dir))
    results: dict[str, list[dict[str, Any]]] = {"template": [], "hand": []}
    for i in range(runs):
        order = ["template", "hand"] if i % 2 == 0 else ["hand", "template"]
        for name in order:
            if name == "template":
                shutil.rmtree(index_dir, ignore_errors=True)
                os.environ["CRONIUM_INDEX_DIR"] = str(index_dir)
                results[name].append(parse(template_dir, records_dir, timeout=1200))
                if not list(index_dir.glob("records-*.sqlite")):
                    raise SystemExit("the full parse wrote no index")
            else:
                results[name].append(parse(hand_dir, records_dir, timeout=1200))
    t, h = results["template"], results["hand"]
    assert t[0]["dags"] == h[0]["dags"] and t[0]["tasks"] == h[0]["tasks"], (t[0], h[0])
    print(f"\n{t[0]['dags']} DAGs, {t[0]['tasks']} tasks in each file")
    ours, cpu = median([r["seconds"] for r in t]), median([r["cpu"] for r in t])
    print(f"load average (1 min) after the parses: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    ok = report(
        f"DAG processor's full parse, {events} events + {workflows} workflows of {nodes} nodes, median of {runs} "
        "parses (each also writing the index)",
        [
            ("wall time vs hand-written (s)", ours, median([r["seconds"] for r in h])),
            ("CPU time vs hand-written (s)", cpu, median([r["cpu"] for r in h])),
            ("CPU time vs 50 s processor timeout", cpu, DAG_FILE_PROCESSOR_TIMEOUT, 0.8),
            ("CPU time vs 30 s import timeout", cpu, DAGBAG_IMPORT_TIMEOUT, 0.8),
            ("wall time vs 50 s processor timeout", ours, DAG_FILE_PROCESSOR_TIMEOUT, None),
            ("wall time vs 30 s import timeout", ours, DAGBAG_IMPORT_TIMEOUT, None),
            (
                "peak RSS vs hand-written (MB)",
                median([r["peak_kb"] / 1024 for r in t]),
                median([r["peak_kb"] / 1024 for r in h]),
                None,
            ),
        ],
        target=1.10,
    )
    per_1000 = cpu / (t[0]["tasks"] / 1000)
    print(
        f"full parse: {ours:.1f} s ({cpu:.1f} s of CPU) for {t[0]['dags']} DAGs, {t[0]['tasks']} tasks "
        f"({per_1000:.2f} CPU s per 1,000 tasks); on an idle core the 30 s import timeout is reached near "
        f"{DAGBAG_IMPORT_TIMEOUT / per_1000 * 1000:,.0f} tasks, the 50 s one near "
        f"{DAG_FILE_PROCESSOR_TIMEOUT / per_1000 * 1000:,.0f}"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7, help="task parses per folder")
    parser.add_argument("--full-runs", type=int, default=3, help="full parses of each file")
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--workflows", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--only", choices=["task", "full"], default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cronium-bench-task-parse-"))
    os.environ.setdefault("AIRFLOW_HOME", str(work / "airflow_home"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ["AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT"] = "600"  # measure past Airflow's limits rather than stop
    ok = True
    try:
        if args.only in (None, "task"):
            ok &= task_parses(work / "task", args.runs)
        if args.only in (None, "full"):
            ok &= dag_processor_parse(work / "full", args.events, args.workflows, args.nodes, args.full_runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
