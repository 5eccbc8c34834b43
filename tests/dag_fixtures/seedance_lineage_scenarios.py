"""Lineage scenarios, run by tests/dag/test_lineage_events.py with OpenLineage enabled."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Asset, Param

from airflow_provider_seedance.operators.batch import SeedanceBatchGenerateOperator
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")
FAST = {"retry_min_wait": 0.01, "retry_max_wait": 0.05, "status_retries": 3}
#: A signed reference image URL: its query string must never reach a lineage event.
SIGNED_IMAGE = (
    "https://images.example.com/catalog/aur-001.jpg?X-Amz-Signature=SIGNED-5ec2e7&X-Amz-Expires=600"
)
SMALL = {"resolution": "480p", "duration": 4}
CATALOG = Asset("file:///srv/catalog/catalog.json")


def lineage_dag(dag_id: str) -> DAG:
    return DAG(
        dag_id,
        schedule=None,
        start_date=START,
        catchup=False,
        params={"out": Param("/tmp/seedance-lineage-out", type="string")},
    )


with lineage_dag("lineage_single"):
    SeedanceGenerateOperator(
        task_id="generate",
        prompt="The Aurora trail running shoe rotates on a turntable",
        resolution="480p",
        duration=4,
        image_urls=[SIGNED_IMAGE],
        output_path="{{ params.out }}/aur-001.mp4",
        deferrable=True,
        poll_interval=0.3,
        hook_params=FAST,
    )

with lineage_dag("lineage_batch"):
    SeedanceBatchGenerateOperator(
        task_id="batch",
        # The catalog file the requests come from, declared: it is an input dataset too.
        inlets=[CATALOG],
        requests=[
            {"id": "aur-001", "prompt": "shoe on a turntable", "image_urls": [SIGNED_IMAGE], **SMALL},
            {"id": "aur-002", "prompt": "shoe in the rain", "image_urls": [SIGNED_IMAGE], **SMALL},
            {"id": "brz-114", "prompt": "linen shirt in a breeze", **SMALL},
        ],
        output_path_template="{{ params.out }}/{id}.mp4",
        deferrable=True,
        poll_interval=0.3,
        hook_params=FAST,
    )
