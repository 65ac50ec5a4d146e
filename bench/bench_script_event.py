"""One script event task vs a plain DockerOperator running the same script in the same image.

Both run as real Airflow tasks (``dag.test()``) in one run of this benchmark, interleaved, with the same
limits (0.5 CPU, 512 MB, network none, user 1000); the figure is the median task duration of each and
their ratio (target <= 1.10x).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median, private_airflow_home, report

SCRIPT = "echo start; for i in 1 2 3 4 5; do echo line $i; done; echo done"
IMAGE = "cronium-runtime:2"


def write_dags(folder: Path) -> None:
    (folder / "bench_script_event.py").write_text(
        textwrap.dedent(
            f"""
            import pendulum
            from airflow.sdk import DAG
            from airflow.providers.docker.operators.docker import DockerOperator
            from cronium_provider.operators.container_script import CroniumScriptOperator

            start = pendulum.datetime(2024, 1, 1, tz="UTC")
            with DAG("bench_cronium", schedule=None, start_date=start) as cronium_dag:
                CroniumScriptOperator(task_id="run", language="BASH", script={SCRIPT!r}, image={IMAGE!r})
            with DAG("bench_docker", schedule=None, start_date=start) as docker_dag:
                DockerOperator(
                    task_id="run", image={IMAGE!r}, command=["bash", "-c", {SCRIPT!r}],
                    docker_url="unix://var/run/docker.sock", network_mode="none", mem_limit="512m",
                    cpus=0.5, user="1000:1000", auto_remove="force", mount_tmp_dir=False,
                )
            """
        )
    )


def task_seconds(dag_run, session) -> float:
    [ti] = dag_run.get_task_instances(session=session)
    assert str(getattr(ti.state, "value", ti.state)) == "success", ti.state
    return (ti.end_date - ti.start_date).total_seconds()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=12)
    args = parser.parse_args()
    home = private_airflow_home("cronium-bench-script-")
    write_dags(home / "dags")
    import importlib.util

    from airflow.utils.session import create_session

    spec = importlib.util.spec_from_file_location("bench_dags", home / "dags" / "bench_script_event.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dags = {"cronium": module.cronium_dag, "docker": module.docker_dag}
    task: dict[str, list[float]] = {"cronium": [], "docker": []}
    wall: dict[str, list[float]] = {"cronium": [], "docker": []}
    for dag in dags.values():  # warm-up: image cache, imports, first serialisation
        dag.test()
    for i in range(args.runs):
        order = ["cronium", "docker"] if i % 2 == 0 else ["docker", "cronium"]
        for name in order:
            started = time.perf_counter()
            dag_run = dags[name].test()
            wall[name].append(time.perf_counter() - started)
            with create_session() as session:
                task[name].append(task_seconds(dag_run, session))
    ok = report(
        f"Script event task vs plain DockerOperator, median of {args.runs} runs each (seconds)",
        [
            ("task duration", median(task["cronium"]), median(task["docker"])),
            ("whole DAG run (dag.test)", median(wall["cronium"]), median(wall["docker"])),
        ],
        target=1.10,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
