"""Submit now, wait elsewhere: ``wait_for_completion=False`` plus the deferrable sensor.

Useful when the wait belongs to another part of the pipeline (or another DAG): the
generate task returns as soon as Seedance accepted the request, and
``SeedanceStatusSensor`` waits in the triggerer on the task id it pulled from XCom.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator
from airflow_provider_seedance.sensors.seedance import SeedanceStatusSensor

POLL_INTERVAL = float(os.environ.get("SEEDANCE_POLL_INTERVAL", "10"))

with DAG(
    dag_id="seedance_external_task",
    description="Submit with one task, wait with a deferrable sensor",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["seedance", "example"],
) as dag:
    submit = SeedanceGenerateOperator(
        task_id="submit",
        prompt="A paper boat drifts down a rain-filled gutter, macro lens, overcast light",
        aspect_ratio="4:3",
        resolution="480p",
        duration=4,
        wait_for_completion=False,
    )

    wait = SeedanceStatusSensor(
        task_id="wait_for_video",
        seedance_task_id="{{ ti.xcom_pull(task_ids='submit', key='seedance_task_id') }}",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=3600,
    )

    @task
    def report(result: dict) -> str:
        print(f"video ready: {result['video_url']} ({result['consumed_credits']} credits)")
        return result["video_url"]

    submit >> wait
    report(wait.output)
