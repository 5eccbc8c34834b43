"""Image-to-video for a product catalog, one DAG run per launch date.

Each run takes the products whose ``launch_date`` is the run's logical date from
``data/catalog.json`` (shipped beside this file) and animates each product photo. Run it
over a range of dates with a backfill::

    airflow backfill create --dag-id seedance_catalog_backfill \\
        --from-date 2026-03-02 --to-date 2026-03-04

Each product is one mapped task whose video is delivered to
``<output_dir>/catalog/<sku>.mp4``. Backfills are idempotent and cheap to repeat:

* ``skip_if_exists`` (on because ``output_path`` is set): a product whose video is already
  there is not generated again. A second backfill over the same dates sends no generate
  request and spends **0 credits** (each result says ``"reused_existing": true``).
* a retried task re-attaches to the generation it already paid for.
* ``max_credits`` caps what any one product may cost (720p, 4 s = 14 credits, $0.07).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

CATALOG = Path(__file__).with_name("data") / "catalog.json"
POLL_INTERVAL = float(os.environ.get("SEEDANCE_POLL_INTERVAL", "10"))
OUTPUT_DIR = os.environ.get("SEEDANCE_OUTPUT_DIR", "file:///tmp/seedance-videos")

with DAG(
    dag_id="seedance_catalog_backfill",
    description="Animate each product photo of the catalog, per launch date",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 3, 2, tz="UTC"),
    end_date=pendulum.datetime(2026, 3, 4, tz="UTC"),
    catchup=False,
    max_active_tasks=8,
    tags=["seedance", "example"],
) as dag:

    @task
    def products_for(ds: str | None = None) -> list[dict]:
        """The generation requests for the products launching on ``ds``."""
        catalog = json.loads(CATALOG.read_text())
        return [
            {
                "prompt": f"Product video: the {item['name']} {item['motion']}. Clean studio look.",
                "image_urls": [item["image_url"]],
                "output_path": f"{OUTPUT_DIR}/catalog/{item['sku']}.mp4",
            }
            for item in catalog
            if item["launch_date"] == ds
        ]

    SeedanceGenerateOperator.partial(
        task_id="animate_product",
        aspect_ratio="1:1",
        resolution="720p",
        duration=4,
        fixed_lens=True,
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        retries=2,
        max_credits=14,
    ).expand_kwargs(products_for())
