"""Daily marketing videos: prompts from the DAG's params, generated in the triggerer, delivered, published.

Copy this file into your DAGs folder and point the ``seedance_default`` connection at the
real service (or at the bundled emulator: ``seedance-emulator``). Trigger it with other
params from the UI to change product, tone, format or where the videos go.

* Waiting happens in the triggerer (``deferrable=True``): no worker slot is held while
  Seedance renders.
* Each video is streamed into ``output_dir`` (any Airflow object storage URL: ``file://``,
  ``s3://``, ``gs://``...) as soon as it is ready: service URLs expire.
* A retry re-attaches to the generation the first try submitted, and a rerun of the same
  day finds its videos already delivered and submits nothing (0 credits).
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

#: Seconds between status polls. 10 s is the API guide's advice; the bundled emulator's
#: fast runs (``make demo``, the tests) set SEEDANCE_POLL_INTERVAL lower.
POLL_INTERVAL = float(os.environ.get("SEEDANCE_POLL_INTERVAL", "10"))
#: Where videos land unless the run's params say otherwise.
OUTPUT_DIR = os.environ.get("SEEDANCE_OUTPUT_DIR", "file:///tmp/seedance-videos")

with DAG(
    dag_id="seedance_marketing_pipeline",
    description="Daily product videos from Seedance 2.0, published downstream",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    params={
        "product": Param("Aurora trail running shoe", type="string", minLength=1),
        "tone": Param("bright, energetic, cinematic", type="string"),
        "scenes": Param(
            ["on a misty mountain trail at sunrise", "splashing through a forest stream"],
            type="array",
            minItems=1,
        ),
        "aspect_ratio": Param("16:9", enum=["1:1", "16:9", "9:16", "4:3", "3:4", "21:9", "9:21"]),
        "resolution": Param("720p", enum=["480p", "720p"]),
        "output_dir": Param(OUTPUT_DIR, type="string", description="Object storage URL for the videos"),
    },
    tags=["seedance", "example"],
) as dag:

    @task
    def build_prompts(params: dict | None = None) -> list[str]:
        """One prompt per scene, written for the model (specific beats short)."""
        assert params is not None
        return [
            f"{params['product']} {scene}, tracked by a steadicam at ankle height, {params['tone']}, "
            f"shot for a product launch"
            for scene in params["scenes"]
        ]

    videos = SeedanceGenerateOperator.partial(
        task_id="generate_video",
        aspect_ratio="{{ params.aspect_ratio }}",
        resolution="{{ params.resolution }}",
        duration=8,
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=3600,
        output_path="{{ params.output_dir }}/{{ ds }}/scene-{{ ti.map_index }}.mp4",
        max_credits=60,
    ).expand(prompt=build_prompts())

    @task
    def publish(results: list[dict]) -> list[str]:
        """Reads each delivered file and hands it on (a stand-in for a CMS or ad platform upload)."""
        from airflow.sdk import ObjectStoragePath

        published = []
        # ``results`` is a lazy sequence of the mapped tasks' XComs: a slice reads them all
        # in one request (a ``for`` loop over it probes one index past the end, and Airflow
        # logs that probe's 404 as an error).
        for result in results[:]:
            video = ObjectStoragePath(result["output_path"])
            with video.open("rb") as handle:
                header = handle.read(12)
            if header[4:8] != b"ftyp":
                raise ValueError(f"{video} is not an MP4 file")
            print(
                f"publishing {video} ({video.stat().st_size} bytes, sha256 {result['sha256'][:12]}…, "
                f"{result['consumed_credits']} credits ${result['consumed_usd']:.3f})"
            )
            published.append(str(video))
        return published

    publish(videos.output)
