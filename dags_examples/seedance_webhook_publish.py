"""Fire-and-forget with callbacks: submit, end at once, publish when the service says it is done.

``seedance_webhook_publish`` submits one generation per product and ends right after the
POSTs: no task waits while the videos render. Each generation is sent with a callback URL
bound to its task instance (the connection needs the extras ``callback_secret`` and
``callback_base_url``, see docs/waiting.md). When the service calls back, the plugin's receiver
reads the status itself and records one event of ``COMPLETED`` whose ``extra`` is the result.

``seedance_webhook_upload`` runs on that asset's events (and every 10 minutes as a safety net)
and delivers each finished video not delivered yet to ``SEEDANCE_OUTPUT_DIR`` (a path or an
``s3://`` URL), named by its Seedance task id, so a repeated event delivers nothing twice.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, Param, task

try:  # Airflow 3.2+
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable
except ImportError:  # Airflow 3.1
    from airflow.timetables.assets import AssetOrTimeSchedule  # type: ignore[no-redef]
    from airflow.timetables.trigger import CronTriggerTimetable  # type: ignore[no-redef]

from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

COMPLETED = Asset("seedance://examples/webhook-publish/completed")
OUTPUT_DIR = os.environ.get("SEEDANCE_OUTPUT_DIR", "file:///tmp/seedance-videos")
CONN_ID = os.environ.get("SEEDANCE_WEBHOOK_CONN_ID", "seedance_default")
#: How often the upload DAG also runs without a new event (a cron expression, UTC).
SWEEP_CRON = os.environ.get("SEEDANCE_WEBHOOK_SWEEP_CRON", "*/10 * * * *")
#: How many of the latest completion events each upload run looks at.
RECENT_EVENTS = 500
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
    # On each completion event, and every SWEEP_CRON as a safety net: Airflow folds events that
    # arrive while it creates a run into a later run, and the last ones of a burst may have no
    # later event to wake it.
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(SWEEP_CRON, timezone="UTC"), assets=[COMPLETED]
    ),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["seedance", "example"],
):

    @task(inlets=[COMPLETED])
    def upload(*, inlet_events: Any = None) -> list[str]:
        """Deliver every recent completion not delivered yet (named by its Seedance task id, so a
        repeated or re-read event delivers nothing twice); failed generations are logged."""
        from airflow.sdk import ObjectStoragePath

        hook = SeedanceHook(CONN_ID)
        delivered = []
        for event in list(inlet_events[COMPLETED])[-RECENT_EVENTS:]:
            extra = event.extra or {}
            task_id, status = extra.get("seedance_task_id"), extra.get("status")
            if status != "SUCCESS" or not extra.get("video_url"):
                print(f"generation {task_id} ended {status}: nothing to deliver")
                continue
            destination = ObjectStoragePath(f"{OUTPUT_DIR}/webhook/{task_id}.mp4")
            if not destination.exists():
                hook.download(extra["video_url"], destination)
                delivered.append(str(destination))
        return delivered

    upload()
