"""Vertical 4-second social clips, one mapped task per prompt, submissions throttled by a Pool.

Create the pool once (it caps how many submissions run at the same time, whatever the
number of prompts)::

    airflow pools set seedance_submissions 4 "Seedance generate requests in flight"

480p, 4 s, no audio costs 8 credits ($0.04) a clip: a cheap way to A/B test hooks.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG

from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

POLL_INTERVAL = float(os.environ.get("SEEDANCE_POLL_INTERVAL", "10"))

PROMPTS = [
    "A barista pours latte art in slow motion, warm morning light, close-up",
    "A golden retriever catches a frisbee on a beach at sunset, slow motion",
    "Neon city street in the rain at night, reflections on wet asphalt, handheld",
]

with DAG(
    dag_id="seedance_social_clips",
    description="9:16 four-second clips for social platforms",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["seedance", "example"],
) as dag:
    SeedanceGenerateOperator.partial(
        task_id="social_clip",
        aspect_ratio="9:16",
        resolution="480p",
        duration=4,
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        pool="seedance_submissions",
        retries=2,
    ).expand(prompt=PROMPTS)
