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


# ---------------------------------------------------------------------------------------------
# gallery_mixed: every way a generation can end, for "the Spend view equals the ledger".
# Run with a fault that makes the first generation's outcome FAILED, so ``retried`` is
# FAILED (refunded) and then resubmitted once (charged). ``undelivered`` is paid and then
# cannot be written (a path under /proc): the task fails, the credits were spent.
def _submit_elsewhere() -> str:
    """A generation started outside any Seedance operator (a sensor watches it)."""
    from airflow_provider_seedance.hooks.seedance import SeedanceHook

    return SeedanceHook(**FAST).submit("A paper boat on a pond, top view", resolution="480p", duration=4)


with DAG(
    "gallery_mixed",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args={"retries": 0},
    params={"out": Param("/tmp/seedance-gallery", type="string")},
):
    from airflow.providers.standard.operators.python import PythonOperator

    from airflow_provider_seedance.operators.batch import SeedanceBatchGenerateOperator
    from airflow_provider_seedance.sensors.seedance import SeedanceStatusSensor

    _common = {"deferrable": False, "poll_interval": 0.2, "hook_params": FAST}
    retried = SeedanceGenerateOperator(
        task_id="retried",
        prompt="A lighthouse in a storm, resubmitted after a FAILED outcome",
        resolution="480p",
        duration=4,
        resubmit_on_failure=1,
        **_common,
    )
    clip = SeedanceGenerateOperator(
        task_id="clip",
        prompt="A hummingbird at a feeder, slow motion",
        resolution="480p",
        duration=4,
        output_path="file://{{ params.out }}/mixed-" + RUN + "-clip.mp4",
        skip_if_exists=False,
        **_common,
    )
    clip_again = SeedanceGenerateOperator(
        task_id="clip_again",
        prompt="A hummingbird at a feeder, slow motion",
        resolution="480p",
        duration=4,
        output_path="file://{{ params.out }}/mixed-" + RUN + "-clip.mp4",
        skip_if_exists=True,
        **_common,
    )
    watch_clip = SeedanceStatusSensor(
        task_id="watch_clip",
        seedance_task_id="{{ ti.xcom_pull(task_ids='clip', key='seedance_task_id') }}",
        **_common,
    )
    elsewhere = PythonOperator(task_id="submit_elsewhere", python_callable=_submit_elsewhere)
    watch_elsewhere = SeedanceStatusSensor(
        task_id="watch_elsewhere",
        seedance_task_id="{{ ti.xcom_pull(task_ids='submit_elsewhere') }}",
        **_common,
    )
    batch = SeedanceBatchGenerateOperator(
        task_id="batch",
        requests=[
            {"id": "tea", "prompt": "Steam rising from a cup of tea", "resolution": "480p", "duration": 4},
            {"id": "fern", "prompt": "A fern unfurling, time-lapse", "resolution": "480p", "duration": 4},
        ],
        output_path_template="file://{{ params.out }}/mixed-" + RUN + "-batch-{id}.mp4",
        skip_if_exists=False,
        **_common,
    )
    undelivered = SeedanceGenerateOperator(
        task_id="undelivered",
        prompt="A video paid for and never written",
        resolution="480p",
        duration=4,
        # The folder exists (the check before the POST passes); no file can be made there.
        output_path="file:///sys/kernel/seedance-cannot-write.mp4",
        skip_if_exists=False,
        **_common,
    )
    # Fails before sending anything: the aspect ratio is only known (and refused) at run time.
    SeedanceGenerateOperator(
        task_id="nothing_sent", prompt="Never sent", aspect_ratio="{{ '7:5' }}", **_common
    )
    # Sent, and refused by the service (a key it does not know: 401): nothing spent.
    SeedanceGenerateOperator(
        task_id="refused",
        prompt="Sent with a wrong key",
        resolution="480p",
        duration=4,
        seedance_conn_id="seedance_wrong_key",
        **_common,
    )
    retried >> clip >> clip_again >> watch_clip >> elsewhere >> watch_elsewhere >> batch >> undelivered
