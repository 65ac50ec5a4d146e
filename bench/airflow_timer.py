"""Airflow's own defer-and-resume floor, the baseline of the deferral benchmarks.

``timer_dags`` writes a DAG file of one-task DAGs ``<prefix>0`` .. ``<prefix><count>``: the task defers to
Airflow's ``TimeDeltaTrigger`` (a timer in the triggerer) for ``seconds`` (1 s for ``<prefix>0``, the warm-up)
and resumes on a worker, which returns ``{"n": n}``. Like a deferred Cronium script it costs two task executions
(the start and the resume) around a wait in the triggerer, and nothing else: many of them at once against one
is what Airflow itself pays to defer and resume, on the same stack.
"""

from __future__ import annotations

import textwrap


def timer_dags(prefix: str, count: int, seconds: int) -> str:
    return textwrap.dedent(
        f"""\
        import datetime

        import pendulum
        from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
        from airflow.sdk import DAG, BaseOperator


        class TimerDeferral(BaseOperator):
            def __init__(self, *, seconds, n, **kwargs):
                super().__init__(**kwargs)
                self.seconds = seconds
                self.n = n

            def execute(self, context):
                self.log.info("Deferred: a timer of %s s", self.seconds)
                self.defer(trigger=TimeDeltaTrigger(datetime.timedelta(seconds=self.seconds)), method_name="resume")

            def resume(self, context, event=None):
                return {{"n": self.n}}


        for n in range({count} + 1):
            with DAG(f"{prefix}{{n}}", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
                TimerDeferral(
                    task_id="run",
                    seconds=1 if n == 0 else {seconds},
                    n=n,
                    execution_timeout=datetime.timedelta(minutes=10),
                )
            globals()[dag.dag_id] = dag
        """
    )
