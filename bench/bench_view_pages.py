"""The web UI's Cronium view: a page of 10,000 records against a page of 100 records.

Both catalogs are written by the DAG processor's own function (``factory._save_catalog``, after the same load
and plan as its full parse), then the view's app (``cronium_provider.view.app.create_app``) serves pages of
100 records in-process through Starlette's test client, as the api-server mounts it: the records page
(first, middle and last page), a name search and the left-out page. The baseline is the same page of a
catalog of 100 records: paging and filtering in SQL should keep a page of 10,000 as fast as a page of 100
(target <= 1.5x; a name search reads every name, held to 10x). The signed-in user is replaced by one who
may read everything, and the last-run lookup
(one query per page in the api-server, bounded by the page's size, not the catalog's) by a stand-in: what is
measured is the catalog's share. The first request after the DAG processor writes a new catalog
reads its notes and needs once (shown without a target); later pages read the file's stat only.
``tests/test_cronium_view.py`` times the same pages in a browser against
a real api-server (under 1 s each).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_dag_parse import make_events
from common import median, report

PAGE = 100


class AllowAll:
    """An auth manager whose user may read every DAG, the import errors and the connections."""

    def is_authorized_dag(self, **kwargs: Any) -> bool:
        return True

    def get_authorized_dag_ids(self, **kwargs: Any) -> set[str]:
        return set()

    def is_authorized_view(self, **kwargs: Any) -> bool:
        return True

    def is_authorized_connection(self, **kwargs: Any) -> bool:
        return True


def write_catalog(folder: Path, count: int, cache: Path) -> None:
    import json

    from cronium_provider import factory
    from cronium_provider.config import read_settings
    from cronium_provider.plan.build import build_plan
    from cronium_provider.records.index import load_with_raws

    folder.mkdir(parents=True)
    (folder / "events.json").write_text(json.dumps({"events": make_events(count)}))
    factory.RACY_NS = 0
    settings = read_settings()
    started_ns = time.time_ns()
    state = factory._state(folder)
    records, _ = load_with_raws([folder])
    plan = build_plan(records, settings)
    detail = factory._save_catalog(cache, folder, state, started_ns, records, plan, settings)
    print(f"{count} events: {detail}")


def client(cache: Path) -> Any:
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from cronium_provider.view import app as view_app

    os.environ["CRONIUM_INDEX_DIR"] = str(cache)
    view_app.get_auth_manager = AllowAll  # type: ignore[assignment]
    view_app._runs = lambda dag_ids: {d: {"in_airflow": True} for d in dag_ids}  # type: ignore[assignment]
    app = view_app.create_app()
    app.dependency_overrides[get_user] = lambda: object()
    root = FastAPI()
    root.mount("/cronium-view", app)
    return TestClient(root)


def timed(http: Any, url: str, repeat: int, expect: str, cold: bool = False) -> float:
    from cronium_provider.view import catalog as view_catalog

    http.get(url)  # the first request of a client builds the app's templates: not a page's cost
    times = []
    for _ in range(repeat):
        if cold:  # as the first request after the DAG processor wrote the catalog
            view_catalog._read_cache.clear()
        start = time.perf_counter()
        answer = http.get(url)
        times.append(time.perf_counter() - start)
        if answer.status_code != 200 or expect not in answer.text:
            raise SystemExit(f"{url}: HTTP {answer.status_code}, {expect!r} not in the page")
    return median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=31)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cronium-bench-view-"))
    os.environ.setdefault("AIRFLOW_HOME", str(work / "airflow_home"))
    small, large = work / "small", work / "large"
    write_catalog(small / "records", 100, small / "index")
    write_catalog(large / "records", args.events, large / "index")
    last = -(-args.events // PAGE)
    as_json = f"/cronium-view/api/records?size={PAGE}"
    pages = [
        ("records, first page", f"/cronium-view/?size={PAGE}", f"/cronium-view/?size={PAGE}", "job"),
        ("records, middle page", f"/cronium-view/?size={PAGE}&page={last // 2}", f"/cronium-view/?size={PAGE}", "job"),
        ("records, last page", f"/cronium-view/?size={PAGE}&page={last}", f"/cronium-view/?size={PAGE}", "job"),
        ("name search", f"/cronium-view/?size={PAGE}&q=job+99", f"/cronium-view/?size={PAGE}&q=job+99", "job 99"),
        ("left-out page", "/cronium-view/left-out", "/cronium-view/left-out", "Severity"),
        (
            "records as JSON",
            f"{as_json}&page={last}",
            as_json,
            "job",
        ),
    ]
    rows: list[tuple[Any, ...]] = []
    for name, large_url, small_url, expect in pages:
        ours = timed(client(large / "index"), large_url, args.repeat, expect)
        base = timed(client(small / "index"), small_url, args.repeat, expect)
        # a search for a part of a name reads every name (SQL LIKE): it grows with the records, held to 10x
        rows.append((f"{name} (s)", ours, base, 10.0 if name == "name search" else 1.5))
    ours = timed(client(large / "index"), pages[0][1], args.repeat, "job", cold=True)
    base = timed(client(small / "index"), pages[0][2], args.repeat, "job", cold=True)
    rows.append(("first page after a new catalog (s)", ours, base, None))
    ok = report(f"a page of {PAGE} from {args.events} records vs from 100 records (median of {args.repeat})", rows, 1.5)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
