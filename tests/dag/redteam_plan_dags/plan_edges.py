"""DAGs that seedance-plan mis-plans (s4-review red team); parsed by tests/dag/test_plan_redteam.py only."""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import DAG, TaskGroup, task, task_group

from airflow_provider_seedance.operators.batch import SeedanceBatchGenerateOperator
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

S = pendulum.datetime(2026, 3, 2, tz="UTC")
C = dict(duration=4, resolution="720p")

with DAG("cart", schedule=None, start_date=S):
    SeedanceGenerateOperator.partial(task_id="m", **C).expand(
        prompt=["a", "b", "c"], aspect_ratio=["16:9", "9:16"]
    )

with DAG("ekw", schedule=None, start_date=S):
    SeedanceGenerateOperator.partial(task_id="m", **C).expand_kwargs(
        [{"prompt": "a"}, {"prompt": "b", "aspect_ratio": "9:16"}]
    )

with DAG("tg", schedule=None, start_date=S), TaskGroup("grp"):
    SeedanceGenerateOperator(task_id="g", prompt="x", **C)

with DAG("mtg", schedule=None, start_date=S):

    @task_group
    def per(prompt):
        SeedanceGenerateOperator(task_id="g", prompt=prompt, **C)

    per.expand(prompt=["a", "b", "c"])

with DAG("enddate", schedule="@daily", start_date=S, end_date=pendulum.datetime(2026, 3, 3, tz="UTC")):
    SeedanceGenerateOperator(task_id="g", prompt="x {{ ds }}", **C)

with DAG("startlate", schedule="@daily", start_date=pendulum.datetime(2026, 3, 5, tz="UTC")):
    SeedanceGenerateOperator(task_id="g", prompt="x {{ ds }}", **C)

with DAG("once", schedule="@once", start_date=S):
    SeedanceGenerateOperator(task_id="g", prompt="x", **C)

with DAG("delta", schedule=dt.timedelta(hours=12), start_date=S):
    SeedanceGenerateOperator(task_id="g", prompt="x", **C)

with DAG("cont", schedule="@continuous", start_date=S, max_active_runs=1):
    SeedanceGenerateOperator(task_id="g", prompt="x", **C)

with DAG("macros", schedule=None, start_date=S):
    SeedanceGenerateOperator(
        task_id="g", prompt="x {{ macros.ds_add(ds, 3) }} {{ macros.datetime.now().year }}", **C
    )

with DAG("params", schedule=None, start_date=S, params={"dur": 4, "p": "hello"}):
    SeedanceGenerateOperator(
        task_id="g", prompt="{{ params.p }}", duration="{{ params.dur }}", resolution="720p"
    )
    SeedanceGenerateOperator(
        task_id="t",
        prompt="{{ params.p }}",
        duration="{{ params.dur }}",
        resolution="720p",
        params={"dur": 12},
    )

with DAG("budget", schedule=None, start_date=S):
    SeedanceGenerateOperator(task_id="g", prompt="x", duration=12, resolution="720p", max_credits=10)
    SeedanceBatchGenerateOperator(
        task_id="b", requests=[{"prompt": "a", **C}, {"prompt": "b", **C}], max_credits=20
    )

with DAG("batchx", schedule=None, start_date=S):

    @task
    def reqs():
        print("HELLO FROM UPSTREAM")
        return [{"prompt": "a", **C}, {"prompt": "b", **C}]

    SeedanceBatchGenerateOperator(task_id="b", requests=reqs())

with DAG("plainx", schedule=None, start_date=S):

    @task
    def prm():
        return "hello"

    SeedanceGenerateOperator(task_id="g", prompt=prm(), **C)

with DAG("noskip", schedule=None, start_date=S):
    SeedanceGenerateOperator(
        task_id="g", prompt="x", output_path="file:///tmp/s4r/out/x.mp4", skip_if_exists=False, **C
    )
    SeedanceGenerateOperator(task_id="h", prompt="x", output_path="file:///tmp/s4r/out/x.mp4", **C)
