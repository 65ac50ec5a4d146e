"""The cronium-real corpus: records written by Cronium's authors, checked as ``run_corpus.py`` checks them.

``../shared/cronium-corpus`` (beside the repository) holds the records, ``expectations.json`` and the
reference checker ``run_corpus.py``, whose ``check_plan`` and ``check_run`` judge every result here. With
``CI=true`` a missing corpus fails.

* ``test_record_loads``: every record loads (``cronium-airflow validate --json``), except one whose
  expectation tolerates a rejection (``validation: either``).
* ``test_plan``: the plan of each loaded record (``cronium-airflow plan --json``) is the expected one.
* ``test_run``: every run expectation without network. Plain script events run in one batch, four real
  containers at a time, through ``ContainerExecutor`` and the helper protocol as the operator runs them
  (``tests/support/corpus.py``); workflows, and any event DAG the batch does not cover, run as real
  ``dag.test()`` runs of the template DAG file.
* ``test_real_dag_run``: a sample of script events (Bash, Python, Node.js; success and failure) as real
  ``dag.test()`` runs too, judged the same way, so the batch is checked against Airflow itself.

As in ``run_corpus.py``, a record marked ``network`` is checked at validate and plan level only, and a
mismatch where the expectation is ``uncertain`` (or, for the plan, in its ``uncertain_fields``) is
reported as an expected failure (xfail) naming it, not as a provider fault.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import missing
from tests.support.airflow_run import load_dag_module, write_dag_file
from tests.support.corpus import (
    CORPUS,
    TEMPLATE,
    Corpus,
    batchable,
    cli_json,
    corpus_problem,
    describe,
    fresh_cronium_variables,
    load_expectations,
    open_corpus,
    run_expectations,
    run_real_dag,
    run_script_batch,
)

# Bash, Python and Node.js; outputs, conditions, variables, input from conf, and failing scripts.
REAL_SAMPLE = ["event:543", "event:816", "event:817", "event:818", "event:811"]
BATCH_WORKERS = 4

_PROBLEM = corpus_problem()
_EXPECTATIONS = load_expectations() if _PROBLEM is None else {}
# Without the corpus every test stands, and fails under CI=true through the corpus fixture (skips elsewhere).
KEYS = sorted(_EXPECTATIONS) or ["corpus-missing"]
RUN_KEYS = [k for k, e in sorted(_EXPECTATIONS.items()) if "run" in e and not e.get("network")] or KEYS
SAMPLE_KEYS = [k for k in REAL_SAMPLE if k in RUN_KEYS] or KEYS


def test_corpus_present() -> None:
    if _PROBLEM is not None:
        missing("cronium-real corpus", _PROBLEM)
    assert _EXPECTATIONS and RUN_KEYS, f"{CORPUS}: no expectations found"
    assert set(REAL_SAMPLE) <= set(RUN_KEYS), f"the real-run sample {REAL_SAMPLE} is not all run expectations"


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    if _PROBLEM is not None:
        missing("cronium-real corpus", _PROBLEM)
    return open_corpus()


@pytest.fixture(scope="module")
def validation(corpus: Corpus) -> dict[str, Any]:
    return cli_json("validate", "--json", str(corpus.records_dir))


@pytest.fixture(scope="module")
def plan(corpus: Corpus) -> dict[str, Any]:
    return cli_json("plan", "--json", str(corpus.records_dir))


# Where this provider now departs on purpose from what ``expectations.json`` (read-only here) expects, after
# reading Cronium's code: the expectations were written when a PAUSED record's DAG was paused and a DRAFT or
# ARCHIVED record built none. Cronium's Run works on any status (apps/cronium-app/src/server/api/routers/
# events.ts:573-698, workflows.ts:275-310) and only its scheduler looks at the status (lib/scheduler/
# scheduler.ts:422-430): every status builds an unpaused DAG and only ACTIVE keeps its schedule (docs/records.md,
# "What an event becomes"). Only these mismatches, for records of these statuses, are departures; they are
# reported as expected failures naming why, any other mismatch fails.
RUN_ON_ANY_STATUS = (
    "Cronium's Run works on any status (events.ts:573-698, workflows.ts:275-310): every status builds an "
    "unpaused DAG, only ACTIVE keeps its schedule"
)
DEPARTURES: dict[str, tuple[re.Pattern[str], str]] = {
    "PAUSED": (re.compile(r"^plan\.is_paused: False != expected True$"), RUN_ON_ANY_STATUS),
    "DRAFT": (re.compile(r"^plan: cronium_(event|workflow)_\d+ built, expected not built$"), RUN_ON_ANY_STATUS),
    "ARCHIVED": (re.compile(r"^plan: cronium_(event|workflow)_\d+ built, expected not built$"), RUN_ON_ANY_STATUS),
}


def departure(corpus: Corpus, key: str, problems: list[str]) -> None:
    """An expected failure when every mismatch is a departure listed in ``DEPARTURES`` for the record's status."""
    kind, rid = key.split(":")
    status = str(corpus.records[(kind, int(rid))][1].get("status", "ACTIVE")).upper()
    rule = DEPARTURES.get(status)
    if rule and all(rule[0].match(p) for p in problems):
        pytest.xfail(
            f"{corpus.label(key)}: departs from expectations.json on purpose: " + "; ".join(problems) + f" ({rule[1]})"
        )


def valid_keys(validation: dict[str, Any]) -> set[str]:
    return {f"{kind[:-1]}:{rid}" for kind, ids in validation.get("valid", {}).items() for rid in ids}


def uncertain(corpus: Corpus, key: str, problems: list[str]) -> None:
    """Report mismatches of an uncertain expectation as an expected failure, saying why it is uncertain."""
    exp = corpus.expectations[key]
    pytest.xfail(f"{corpus.label(key)}: uncertain: " + "; ".join(problems) + f" ({exp.get('uncertain_why', '')})")


# --------------------------------------------------------------------------------------- loading and plans
@pytest.mark.parametrize("key", KEYS)
def test_record_loads(corpus: Corpus, validation: dict[str, Any], key: str) -> None:
    kind, rid = key.split(":")
    assert (kind, int(rid)) in corpus.records, f"{key}: in expectations.json but in no file of {corpus.records_dir}"
    if key in valid_keys(validation):
        return
    errors = [
        e["text"] for e in validation.get("errors", []) if (e.get("kind"), e.get("record_id")) == (kind, int(rid))
    ]
    exp = corpus.expectations[key]
    why = "; ".join(errors) or "rejected without an error naming this record"
    if exp.get("validation") == "either":
        pytest.skip(f"{corpus.label(key)}: rejected, tolerated (validation 'either'): {why}")
    pytest.fail(f"{corpus.label(key)}: rejected, expected valid: {why}")


def test_no_error_outside_the_records(corpus: Corpus, validation: dict[str, Any]) -> None:
    stray = [
        e["text"] for e in validation.get("errors", []) if (e.get("kind"), e.get("record_id")) not in corpus.records
    ]
    assert stray == [], f"validation errors tied to no corpus record: {stray}"


@pytest.mark.parametrize("key", KEYS)
def test_plan(corpus: Corpus, validation: dict[str, Any], plan: dict[str, Any], key: str) -> None:
    exp = corpus.expectations[key]
    if key not in valid_keys(validation):
        if exp.get("validation") == "either":
            pytest.skip(f"{corpus.label(key)}: rejected (tolerated), so not planned")
        pytest.fail(f"{corpus.label(key)}: not planned: the record was rejected (see test_record_loads)")
    problems = corpus.reference.check_plan(key, exp, plan)
    if not problems:
        return
    soft = exp.get("uncertain_fields", {})
    if soft and all(p.split(":")[0] in soft for p in problems):
        uncertain(corpus, key, problems)
    departure(corpus, key, problems)
    pytest.fail(f"{corpus.label(key)}: plan mismatch: " + "; ".join(problems))


# ---------------------------------------------------------------------------------------------- runs
@pytest.fixture(scope="module")
def corpus_dags(corpus: Corpus, airflow_db: Path) -> dict[str, Any]:
    """The DAGs the corpus builds, as the DAG processor's parse of the template DAG file builds them."""
    from cronium_provider.factory import parse_dags

    return parse_dags(corpus.records_dir).dags


@pytest.fixture(scope="module")
def batch(corpus: Corpus, corpus_dags: dict[str, Any], docker_client: Any) -> dict[str, dict[str, Any]]:
    """Every plain script event with a run expectation, run at once; key -> report."""
    jobs = {}
    for key in run_expectations(corpus):
        exp = corpus.expectations[key]
        dag = corpus_dags.get(exp["plan"]["dag_id"])
        if dag is not None and batchable(dag) is None:
            jobs[key] = (dag, exp["run"].get("conf", {}))
    started = time.monotonic()
    reports = run_script_batch(jobs, workers=BATCH_WORKERS)
    print(f"\ncorpus batch: {len(reports)} script runs in {time.monotonic() - started:.1f} s")
    return reports


def real_run(corpus: Corpus, dag_id: str, conf: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A real ``dag.test()`` of ``dag_id`` from the template DAG file over the corpus records."""
    monkeypatch.setenv("CRONIUM_RECORDS_DIR", str(corpus.records_dir))
    module = load_dag_module(write_dag_file("cronium_corpus_dags.py", TEMPLATE.read_text()))
    dag = getattr(module, dag_id, None)
    assert dag is not None, f"the template DAG file over {corpus.records_dir} builds no {dag_id}"
    with fresh_cronium_variables():
        return run_real_dag(dag, conf)


def judge_run(corpus: Corpus, key: str, report: dict[str, Any], how: str) -> None:
    exp = corpus.expectations[key]
    problems = [report["error"]] if "error" in report else corpus.reference.check_run(exp, report)
    if not problems:
        return
    if exp.get("uncertain"):
        uncertain(corpus, key, problems)
    pytest.fail(f"{corpus.label(key)} ({how}): " + "; ".join(problems) + "\n" + describe(report))


def blocked(corpus: Corpus, key: str, dags: dict[str, Any]) -> str:
    """The record's DAG id; fails (or skips, for a tolerated rejection) when the DAG was not built."""
    exp = corpus.expectations[key]
    dag_id: str = exp["plan"]["dag_id"]
    if dag_id not in dags:
        message = f"{corpus.label(key)}: run blocked: {dag_id} not built"
        if exp.get("validation") == "either":
            pytest.skip(message + " (rejection tolerated)")
        pytest.fail(message)
    return dag_id


@pytest.mark.docker
@pytest.mark.airflow
@pytest.mark.parametrize("key", RUN_KEYS)
def test_run(
    corpus: Corpus,
    corpus_dags: dict[str, Any],
    batch: dict[str, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    key: str,
) -> None:
    dag_id = blocked(corpus, key, corpus_dags)
    if key in batch:
        judge_run(corpus, key, batch[key], "batch run")
        return
    report = real_run(corpus, dag_id, corpus.expectations[key]["run"].get("conf", {}), monkeypatch)
    judge_run(corpus, key, report, f"real DAG run: {batchable(corpus_dags[dag_id])}")


@pytest.mark.docker
@pytest.mark.airflow
@pytest.mark.parametrize("key", SAMPLE_KEYS)
def test_real_dag_run(
    corpus: Corpus, corpus_dags: dict[str, Any], docker_client: Any, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    dag_id = blocked(corpus, key, corpus_dags)
    report = real_run(corpus, dag_id, corpus.expectations[key]["run"].get("conf", {}), monkeypatch)
    judge_run(corpus, key, report, "real DAG run")
