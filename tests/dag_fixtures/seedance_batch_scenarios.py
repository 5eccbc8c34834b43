"""Batch generation scenarios, run by tests/dag/test_batch_dags.py with dag.test()."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_seedance.operators.batch import SeedanceBatchGenerateOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")
FAST = {"retry_min_wait": 0.01, "retry_max_wait": 0.05, "status_retries": 3}
SIX = [
    {"id": f"sku-{n}", "prompt": f"product {n} on a turntable", "resolution": "480p", "duration": 4}
    for n in range(6)
]


def batch_dag(dag_id: str, **kwargs) -> DAG:
    return DAG(
        dag_id,
        schedule=None,
        start_date=START,
        catchup=False,
        default_args={"retries": 2, "retry_delay": timedelta(seconds=0)},
        params={"out": Param("/tmp/seedance-batch-out", type="string")},
        **kwargs,
    )


for mode in ("deferrable", "blocking"):
    with batch_dag(f"batch_{mode}"):
        SeedanceBatchGenerateOperator(
            task_id="batch",
            requests=SIX,
            max_in_flight=2,
            output_path_template="{{ params.out }}/{id}.mp4",
            deferrable=mode == "deferrable",
            poll_interval=0.3,
            hook_params=FAST,
        )

with batch_dag("batch_bad_request"):
    SeedanceBatchGenerateOperator(
        task_id="batch",
        requests=[*SIX[:3], {"prompt": "bad", "aspect_ratio": "2:1"}, *SIX[3:]],
    )

with batch_dag("batch_budget"):
    SeedanceBatchGenerateOperator(task_id="batch", requests=SIX, max_credits=40)  # 6 x 8 = 48 credits

for policy in ("keep", "fail"):
    with batch_dag(f"batch_partial_{policy}"):
        SeedanceBatchGenerateOperator(
            task_id="batch",
            requests=SIX,
            fail_on_any_failure=policy == "fail",
            deferrable=True,
            poll_interval=0.3,
            hook_params=FAST,
            retries=0,
        )

with batch_dag("batch_resubmit"):
    SeedanceBatchGenerateOperator(
        task_id="batch",
        requests=SIX,
        resubmit_on_failure=1,
        deferrable=True,
        poll_interval=0.3,
        hook_params=FAST,
    )

with batch_dag("batch_reattach"):
    SeedanceBatchGenerateOperator(
        task_id="batch",
        requests=SIX,
        deferrable=False,
        poll_interval=0.2,
        timeout=0.3,
        hook_params=FAST,
    )

with batch_dag("batch_from_xcom"):
    from airflow.sdk import task

    @task
    def catalog() -> list[dict]:
        return [{"prompt": f"item {n}", "aspect_ratio": "9:16"} for n in range(3)]

    SeedanceBatchGenerateOperator(
        task_id="batch", requests=catalog(), deferrable=True, poll_interval=0.3, hook_params=FAST
    )

with batch_dag("batch_unwritable_item"):
    # Red-team of issue 18: one item's destination cannot be created (a local OSError).
    SeedanceBatchGenerateOperator(
        task_id="batch",
        requests=[
            {**SIX[0], "output_path": "{{ params.out }}/ok.mp4"},
            {
                **SIX[1],
                "output_path": "/sys/kernel/seedance-not-writable.mp4",
            },  # passes the pre-POST check, fails to write
        ],
        deferrable=True,
        poll_interval=0.3,
        hook_params=FAST,
        retries=0,
    )

for form, limit in (("manifest", 3), ("inline", None)):
    # Issue 16: above xcom_results_limit the results go to a JSON Lines file next to the videos.
    with batch_dag(f"batch_results_{form}"):
        SeedanceBatchGenerateOperator(
            task_id="batch",
            requests=SIX,
            output_path_template="{{ params.out }}/{id}.mp4",
            xcom_results_limit=limit,
            deferrable=True,
            poll_interval=0.3,
            hook_params=FAST,
        )
