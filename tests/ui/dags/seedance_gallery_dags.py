"""DAGs whose runs fill the Seedance gallery in tests/ui: delivered, URL-only, mapped, failed, private."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, BaseOperator, Param

from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")
#: The run id, made safe for a file name.
RUN = "{{ run_id | replace(':', '_') | replace('+', '_') }}"
FAST = {"retry_min_wait": 0.01, "retry_max_wait": 0.05, "status_retries": 3}

with DAG(
    "gallery_launch",
    schedule=None,
    start_date=START,
    catchup=False,
    params={"out": Param("/tmp/seedance-gallery", type="string")},
):
    # Delivered to a local file: the gallery plays it from the file.
    SeedanceGenerateOperator(
        task_id="hero",
        prompt="A red kite over a windy beach at golden hour, wide shot",
        aspect_ratio="16:9",
        resolution="720p",
        duration=4,
        generate_audio=True,
        output_path="file://{{ params.out }}/" + RUN + "-hero.mp4",
        skip_if_exists=False,
        deferrable=False,
        poll_interval=0.2,
        hook_params=FAST,
    )
    # Not delivered: the gallery plays the service URL; mapped, so two cards.
    SeedanceGenerateOperator.partial(
        task_id="social",
        aspect_ratio="9:16",
        resolution="480p",
        duration=4,
        deferrable=False,
        poll_interval=0.2,
        hook_params=FAST,
    ).expand(prompt=["A barista pours latte art, close-up", "Neon street in the rain at night"])

with DAG("gallery_moderated", schedule=None, start_date=START, catchup=False, default_args={"retries": 0}):
    SeedanceGenerateOperator(
        task_id="rejected",
        prompt="A prompt the moderation will reject",
        aspect_ratio="1:1",
        resolution="480p",
        duration=4,
        deferrable=False,
        poll_interval=0.2,
        hook_params=FAST,
    )

with DAG(
    "gallery_private",
    schedule=None,
    start_date=START,
    catchup=False,
    params={"out": Param("/tmp/seedance-gallery", type="string")},
):
    SeedanceGenerateOperator(
        task_id="secret_cut",
        prompt="Unreleased product teaser, studio lighting",
        aspect_ratio="4:3",
        resolution="480p",
        duration=4,
        output_path="file://{{ params.out }}/private-" + RUN + ".mp4",
        skip_if_exists=False,
        deferrable=False,
        poll_interval=0.2,
        hook_params=FAST,
    )


def _hostile_execute(self, context):
    """A task that *claims* to be a Seedance generation and "delivered" a non-video file."""
    path = __file__
    import os

    return {
        "task_id": "seed-hostile",
        "status": "SUCCESS",
        "video_url": None,
        "video_urls": [],
        "consumed_credits": 0,
        "consumed_usd": 0.0,
        "request": {"prompt": "not a video"},
        "error_message": None,
        "output_path": f"file://{path}",
        "bytes": os.path.getsize(path),
    }


# Same class name as the real operator, so task_instance.operator matches: what a DAG author
# could do to make the API server serve an arbitrary file. The media endpoint must refuse it.
_Impostor = type("SeedanceGenerateOperator", (BaseOperator,), {"execute": _hostile_execute})

with DAG("gallery_hostile", schedule=None, start_date=START, catchup=False):
    _Impostor(task_id="impostor")
