"""What ``seedance-plan`` must plan (tests/dag/test_plan.py): a templated single task, a batch
with per-item destinations, and a task whose prompt is an upstream XCom (known at run time)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_seedance.operators.batch import SeedanceBatchGenerateOperator
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

with DAG(
    dag_id="seedance_plan_scenarios",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 3, 1, tz="UTC"),
    catchup=False,
    params={"aspect_ratio": "16:9", "output_dir": "file:///tmp/seedance-plan-scenarios"},
    tags=["seedance", "test"],
):
    SeedanceGenerateOperator(
        task_id="daily_teaser",
        prompt="Teaser for {{ ds }}: a sunrise over the harbour",
        aspect_ratio="{{ params.aspect_ratio }}",
        resolution="480p",
        duration=8,  # 14 credits
    )
    SeedanceBatchGenerateOperator(
        task_id="catalog_batch",
        requests=[
            {"id": "lamp", "prompt": "A desk lamp switches on", "resolution": "720p", "duration": 4},  # 14
            {"id": "kettle", "prompt": "A kettle pours", "resolution": "720p", "duration": 12},  # 42
            {"id": "bag", "prompt": "A bag on a bench", "resolution": "480p", "duration": 4},  # 8
        ],
        output_path_template="{{ params.output_dir }}/{{ ds }}/{id}.mp4",
        max_credits=500,
    )

    @task
    def write_prompt() -> str:
        return "A prompt written by an upstream task"

    (
        SeedanceGenerateOperator(
            task_id="from_upstream_xcom",
            prompt="{{ ti.xcom_pull(task_ids='write_prompt') }}",
            resolution="720p",
            duration=8,
            max_credits=28,
        )
        << write_prompt()
    )
