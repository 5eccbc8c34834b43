"""Fire-and-forget with callbacks: submit, end at once, publish when the service says it is done.

``seedance_webhook_publish`` submits one generation per product and ends right after the
POSTs: no task waits while the videos render. Each generation is sent with a callback URL
bound to its task instance (the connection needs the extras ``callback_secret`` and
``callback_base_url``, see docs/waiting.md). When the service calls back, the plugin's receiver
reads the status itself and records one event of ``COMPLETED`` whose ``extra`` is the result.

``seedance_webhook_upload`` is scheduled on that asset: each run takes the events that
triggered it and delivers each finished video to ``SEEDANCE_OUTPUT_DIR`` (a path or an
``s3://`` URL), named by its Seedance task id, so a repeated event delivers nothing twice.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, Param, task

from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

COMPLETED = Asset("seedance://examples/webhook-publish/completed")
OUTPUT_DIR = os.environ.get("SEEDANCE_OUTPUT_DIR", "file:///tmp/seedance-videos")
CONN_ID = os.environ.get("SEEDANCE_WEBHOOK_CONN_ID", "seedance_default")
PRODUCTS = [
    "A matte-black water bottle rotating on a slate plinth, soft studio light",
    "A linen tote bag swaying on a hook by a sunny window",
]

with DAG(
    dag_id="seedance_webhook_publish",
    description="Submit generations and end; the service's callbacks record completion events",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"products": Param(PRODUCTS, type="array", minItems=1)},
    tags=["seedance", "example"],
):

    @task
    def prompts(params: Any = None) -> list[str]:
        return [str(prompt) for prompt in params["products"]]

    SeedanceGenerateOperator.partial(
        task_id="submit",
        seedance_conn_id=CONN_ID,
        resolution="480p",
        duration=4,
        wait_for_completion=False,
        completion_asset=COMPLETED,
    ).expand(prompt=prompts())


with DAG(
    dag_id="seedance_webhook_upload",
    description="Deliver each finished generation recorded on the completion asset",
    schedule=[COMPLETED],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["seedance", "example"],
):

    @task
    def upload(*, triggering_asset_events: Any = None) -> list[str]:
        """Deliver the videos of the events that triggered this run (failed ones are logged)."""
        from airflow.sdk import ObjectStoragePath

        hook = SeedanceHook(CONN_ID)
        delivered = []
        for event in triggering_asset_events[COMPLETED]:
            extra = event.extra or {}
            if extra.get("status") != "SUCCESS" or not extra.get("video_url"):
                task_id, status = extra.get("seedance_task_id"), extra.get("status")
                print(f"generation {task_id} ended {status}: nothing to deliver")
                continue
            destination = ObjectStoragePath(f"{OUTPUT_DIR}/webhook/{extra['seedance_task_id']}.mp4")
            if not destination.exists():
                hook.download(extra["video_url"], destination)
            delivered.append(str(destination))
        return delivered

    upload()
