"""Scenario DAGs of the production-shape stack (tests/cluster), delivering to ``s3://``.

``cluster_catalog`` is a catalog at load, sized by its run conf: one batch of image-to-video
items, mapped deferrable generations and submit-then-sensor pairs. Every output path is
derived from ``params.catalog_date``, so a second run for the same date finds every video in
the bucket and spends nothing. ``cluster_worker_victim`` is one blocking generation: its
Celery worker is SIGKILLed while it waits right after the POST.

Deferrable tasks poll every 10 s and have retries (the Airflow race of a trigger firing
within seconds of deferral: apache/airflow#66374, #72716; see TESTING.md).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_seedance.operators.batch import SeedanceBatchGenerateOperator
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator
from airflow_provider_seedance.sensors.seedance import SeedanceStatusSensor

CONN = "seedance_cluster"
#: ``conn_id@bucket``: ObjectStoragePath takes the connection (with its endpoint_url) from it.
BUCKET = "s3://aws_cluster@seedance-cluster"
POLL = 10.0
#: Status reads retried quickly: the emulator and the API server are restarted under load.
HOOK = {"retry_min_wait": 0.5, "retry_max_wait": 4.0, "status_retries": 8}
DEFAULTS: dict[str, Any] = {"retries": 3, "retry_delay": timedelta(seconds=5)}
IMAGE = "https://images.example.com/catalog/{key}.jpg"


def item(kind: str, index: int, date: str) -> dict[str, Any]:
    """One logical request: its prompt names it, its video goes to a path of its own."""
    key = f"{kind}-{index:04d}"
    return {
        "prompt": f"Catalog {date} {key}: the product turns slowly on a turntable",
        "image_urls": [IMAGE.format(key=key)],
        "output_path": f"{BUCKET}/{date}/{kind}/{key}.mp4",
    }


with DAG(
    "cluster_catalog",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=64,
    default_args=DEFAULTS,
    params={
        "catalog_date": Param("2026-01-01", type="string"),
        "batch": Param(300, type="integer", minimum=0),
        "mapped": Param(100, type="integer", minimum=0),
        "pairs": Param(20, type="integer", minimum=0),
    },
):

    @task
    def batch_items(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        assert params is not None
        return [
            {"id": f"batch-{i:04d}", **item("batch", i, params["catalog_date"])}
            for i in range(params["batch"])
        ]

    @task
    def mapped_items(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        assert params is not None
        return [item("mapped", i, params["catalog_date"]) for i in range(params["mapped"])]

    @task
    def pair_items(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        assert params is not None
        return [item("pair", i, params["catalog_date"]) for i in range(params["pairs"])]

    @task
    def to_watch(submitted: Any, pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The sensor's work: each submitted generation (not those already in the bucket)."""
        return [
            {"seedance_task_id": result["task_id"], "output_path": pair["output_path"]}
            for result, pair in zip(submitted, pairs, strict=True)
            if not result.get("reused_existing")
        ]

    SeedanceBatchGenerateOperator(
        task_id="batch",
        requests=batch_items(),
        seedance_conn_id=CONN,
        max_in_flight=8,
        poll_interval=POLL,
        deferrable=True,
        hook_params=HOOK,
    )
    SeedanceGenerateOperator.partial(
        task_id="mapped",
        seedance_conn_id=CONN,
        deferrable=True,
        poll_interval=POLL,
        hook_params=HOOK,
    ).expand_kwargs(mapped_items())
    pairs = pair_items()
    submitted = SeedanceGenerateOperator.partial(
        task_id="submit",
        seedance_conn_id=CONN,
        wait_for_completion=False,
        hook_params=HOOK,
    ).expand_kwargs(pairs)
    SeedanceStatusSensor.partial(
        task_id="sensor",
        seedance_conn_id=CONN,
        deferrable=True,
        poll_interval=POLL,
        hook_params=HOOK,
    ).expand_kwargs(to_watch(submitted.output, pairs))

with DAG(
    "cluster_worker_victim",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args=DEFAULTS,
    params={"catalog_date": Param("2026-01-01", type="string")},
):
    SeedanceGenerateOperator(
        task_id="victim",
        seedance_conn_id=CONN,
        deferrable=False,  # waits in the worker: the kill lands while it holds a paid generation
        poll_interval=2.0,
        resubmit_on_failure=1,  # the scenario injects one FAILED outcome: resubmitted once
        hook_params=HOOK,
        **item("victim", 0, "{{ params.catalog_date }}"),
    )
