"""DAG parsing: the template DAG file over 2,000 event records vs a hand-written DAG file.

The hand-written file builds the same DAGs with the same operators and arguments, written out as literal
Python (what a user would write without the factory). Each file is parsed by a DagBag in a fresh process,
alternately, several times; the figures are the median parse time and peak memory of each and their
ratios (targets: time <= 1.10x, memory <= 1.2x).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median, report

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "dags_templates" / "cronium_dags.py"

PARSE = r"""
import json, os, resource, sys, time
from airflow.dag_processing.dagbag import DagBag
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rss_before = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
start, cpu = time.perf_counter(), time.process_time()
bag = DagBag(dag_folder=sys.argv[1])
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
assert not bag.import_errors, bag.import_errors
print("RESULT " + json.dumps({"seconds": seconds, "cpu": cpu, "dags": len(bag.dags),
      "tasks": sum(len(d.tasks) for d in bag.dags.values()), "peak_kb": peak, "added_kb": peak - rss_before}))
"""


def make_events(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """A realistic mix: mostly scripts, some HTTP and tool actions, a third with conditional actions."""
    rng = random.Random(seed)
    kinds = ["BASH"] * 35 + ["PYTHON"] * 30 + ["NODEJS"] * 15 + ["HTTP_REQUEST"] * 15 + ["TOOL_ACTION"] * 5
    units = [("MINUTES", 5), ("MINUTES", 15), ("HOURS", 1), ("HOURS", 6), ("DAYS", 1)]
    events: list[dict[str, Any]] = []
    for i in range(1, count + 1):
        kind = rng.choice(kinds)
        event: dict[str, Any] = {
            "id": i,
            "userId": f"user-{i % 7}",
            "name": f"{kind.lower()} job {i}",
            "description": f"Generated {kind} event number {i}.",
            "tags": [rng.choice(["etl", "ops", "reports", "billing"])],
            "type": kind,
            "status": rng.choice(["ACTIVE"] * 4 + ["PAUSED"]),
            "triggerType": rng.choice(["SCHEDULE", "SCHEDULE", "MANUAL"]),
            "timeoutValue": rng.choice([30, 60, 300]),
            "timeoutUnit": "SECONDS",
            "retries": rng.choice([0, 0, 1, 3]),
            "envVars": [{"key": "REGION", "value": "eu"}] if i % 4 == 0 else [],
        }
        unit, number = rng.choice(units)
        event["scheduleUnit"], event["scheduleNumber"] = unit, number
        if i % 10 == 0:
            event["customSchedule"] = "30 2 * * 1-5"
        if kind in ("BASH", "PYTHON", "NODEJS"):
            event["content"] = f"echo 'job {i}'\n" * rng.randint(1, 20)
        elif kind == "HTTP_REQUEST":
            event |= {
                "httpMethod": rng.choice(["GET", "POST"]),
                "httpUrl": f"http://127.0.0.1:8080/jobs/{i}",
                "httpHeaders": [{"key": "Accept", "value": "application/json"}],
                "httpBody": '{"id": 1}',
            }
        else:
            event["toolActionConfig"] = {
                "toolType": "slack",
                "actionId": "slack-send-message",
                "toolId": 1,
                "parameters": {"text": f"job {i}"},
            }
        if i % 3 == 0 and i > 3:
            event["successEvents"] = [{"type": "SCRIPT", "targetEventId": i - 1}]
            event["alwaysEvents"] = [{"type": "SCRIPT", "targetEventId": i - 2}]
            if i % 2 == 0:
                event["conditionEvents"] = [{"type": "SCRIPT", "targetEventId": i - 3}]
        events.append(event)
    return events


def make_workflows(count: int, size: int, seed: int = 11) -> dict[str, Any]:
    """``count`` workflows of ``size`` nodes over a shared pool of events, every connection type used."""
    rng = random.Random(seed)
    events = [e for e in make_events(300, seed) if e["type"] != "TOOL_ACTION"]
    for e in events:
        e.pop("successEvents", None), e.pop("alwaysEvents", None), e.pop("conditionEvents", None)
    kinds = ["ALWAYS", "ON_SUCCESS", "ON_SUCCESS", "ON_FAILURE", "ON_CONDITION"]
    workflows = []
    for w in range(1, count + 1):
        nodes = [
            {
                "id": f"n{k}",
                "type": "eventNode",
                "position": {"x": k, "y": 0},
                "data": {"eventId": rng.choice(events)["id"]},
            }
            for k in range(size)
        ]
        edges = []
        for k in range(1, size):
            parent = rng.randrange(0, k)
            edges.append(
                {
                    "id": f"e{k}",
                    "source": f"n{parent}",
                    "target": f"n{k}",
                    "data": {"connectionType": rng.choice(kinds)},
                }
            )
            if k > 3 and k % 4 == 0:  # a merge
                other = rng.randrange(0, k)
                if other != parent:
                    edges.append(
                        {"id": f"m{k}", "source": f"n{other}", "target": f"n{k}", "data": {"connectionType": "ALWAYS"}}
                    )
        workflows.append(
            {
                "id": w,
                "name": f"workflow {w}",
                "status": "ACTIVE",
                "triggerType": "MANUAL",
                "nodes": nodes,
                "edges": edges,
            }
        )
    return {"events": [dict(e, status="DRAFT") for e in events], "workflows": workflows}


def handwritten_source(records_dir: Path) -> str:
    """The same DAGs, written out as literal operator calls (the baseline a user would maintain by hand).

    Each task is its operator class called with the literal arguments the plan gives it, so both files
    build exactly the same operators; only the factory's own work (loading, validating, planning) differs.
    """
    from cronium_provider.plan.build import build_plan
    from cronium_provider.records.validation import load_records
    from cronium_provider.render.dags import OPERATORS, render_schedule

    records = load_records([records_dir])
    plan = build_plan(records)
    imports = sorted({(cls.__module__, cls.__name__) for cls in OPERATORS.values()})
    out = [
        "import datetime",
        "from airflow.sdk import DAG, Param",
        "from cronium_provider.timetables import CroniumTimetable",
        *[f"from {module} import {name}" for module, name in imports],
        "",
    ]
    for dag in plan.dags:
        timetable = render_schedule(dag.schedule)
        schedule = "None" if timetable is None else f"CroniumTimetable(**{timetable.serialize()!r})"
        out.append(
            f"with DAG(dag_id={dag.dag_id!r}, dag_display_name={dag.name!r}, "
            f"description={(dag.description or dag.name)[:200]!r}, doc_md={dag.doc_md!r}, "
            f"schedule={schedule}, start_date=datetime.datetime.fromisoformat({dag.start_date!r}), "
            f"catchup={dag.catchup!r}, max_active_runs={dag.max_active_runs!r}, "
            f"is_paused_upon_creation={dag.is_paused!r}, tags={list(dag.tags)!r}, "
            "params={'input': Param({}, type=['object', 'null'], description='cronium.input() for this run')}"
            f") as dag_{dag.record_id}:"
        )
        names = {}
        for task in dag.tasks:
            var = f"t_{task.task_id}"
            names[task.task_id] = var
            arguments = ", ".join(f"{key}={value!r}" for key, value in task.arguments().items())
            out.append(f"    {var} = {OPERATORS[type(task)].__name__}({arguments})")
        for edge in dag.edges:
            out.append(f"    {names[edge.upstream]} >> {names[edge.downstream]}")
        out.append("")
    return "\n".join(out)


def parse(folder: Path, records_dir: Path, timeout: float = 600) -> dict[str, Any]:
    """One DagBag parse of ``folder`` in a fresh process: wall and CPU seconds, DAGs, tasks, peak memory."""
    env = dict(os.environ, CRONIUM_RECORDS_DIR=str(records_dir))
    proc = subprocess.run(
        [sys.executable, "-c", PARSE, str(folder)], capture_output=True, text=True, env=env, timeout=timeout
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"parse of {folder} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[0][len("RESULT ") :])


def compare(title: str, records: dict[str, Any], runs: int, generator: Any) -> bool:
    work = Path(tempfile.mkdtemp(prefix="cronium-bench-parse-"))
    os.environ.setdefault("AIRFLOW_HOME", str(work / "airflow_home"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    try:
        records_dir = work / "records"
        records_dir.mkdir()
        (records_dir / "export.json").write_text(json.dumps(records))
        template_dir, hand_dir = work / "template", work / "handwritten"
        template_dir.mkdir()
        hand_dir.mkdir()
        shutil.copy(TEMPLATE, template_dir / "cronium_dags.py")
        (hand_dir / "handwritten_dags.py").write_text(generator(records_dir))
        results: dict[str, list[dict[str, Any]]] = {"template": [], "hand": []}
        parse(template_dir, records_dir)  # warm the OS file cache for both
        parse(hand_dir, records_dir)
        for i in range(runs):
            order = [("template", template_dir), ("hand", hand_dir)]
            for name, folder in order if i % 2 == 0 else reversed(order):
                results[name].append(parse(folder, records_dir))
        t, h = results["template"], results["hand"]
        assert t[0]["dags"] == h[0]["dags"] and t[0]["tasks"] == h[0]["tasks"], (t[0], h[0])
        print(f"\n{t[0]['dags']} DAGs, {t[0]['tasks']} tasks in each file")
        return report(
            title,
            [
                ("parse time (s)", median([r["seconds"] for r in t]), median([r["seconds"] for r in h])),
                (
                    "peak RSS of the process (MB)",
                    median([r["peak_kb"] / 1024 for r in t]),
                    median([r["peak_kb"] / 1024 for r in h]),
                    1.2,
                ),
                (
                    "memory added by parsing (MB)",
                    median([r["added_kb"] / 1024 for r in t]),
                    median([r["added_kb"] / 1024 for r in h]),
                    None,
                ),
            ],
            target=1.10,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--workflows", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", choices=["events", "workflows"], default=None)
    args = parser.parse_args()
    ok = True
    if args.only in (None, "events"):
        ok &= compare(
            f"Template DAG file vs hand-written DAG file, {args.events} events, median of {args.runs} parses",
            {"events": make_events(args.events)},
            args.runs,
            handwritten_source,
        )
    if args.only in (None, "workflows"):
        ok &= compare(
            f"Template DAG file vs hand-written DAG file, {args.workflows} workflows of {args.nodes} nodes, "
            f"median of {args.runs} parses",
            make_workflows(args.workflows, args.nodes),
            args.runs,
            handwritten_source,
        )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
