"""Small DAGs, one per operator/sensor behaviour, run by tests/dag with dag.test()."""

from __future__ import annotations

from datetime import timedelta

import fsspec
import pendulum
from airflow.sdk import DAG, Asset, ObjectStoragePath, Param
from airflow.sdk.io import attach

from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator
from airflow_provider_seedance.sensors.seedance import SeedanceStatusSensor

# An in-memory object store (fsspec's), to show output_path works beyond local files.
attach("memory", fs=fsspec.filesystem("memory"))

START = pendulum.datetime(2026, 1, 1, tz="UTC")
FAST = {"retry_min_wait": 0.01, "retry_max_wait": 0.05, "status_retries": 3}
RETRY = {"retries": 2, "retry_delay": timedelta(seconds=0)}


def scenario(dag_id: str, **kwargs) -> DAG:
    kwargs.setdefault("default_args", RETRY)
    return DAG(dag_id, schedule=None, start_date=START, catchup=False, **kwargs)


with scenario("op_blocking"):
    SeedanceGenerateOperator(
        task_id="generate", prompt="blocking wait", deferrable=False, poll_interval=0.2, hook_params=FAST
    )

with scenario("op_deferrable"):
    SeedanceGenerateOperator(
        task_id="generate", prompt="deferred wait", deferrable=True, poll_interval=0.2, hook_params=FAST
    )

with scenario("op_no_wait"):
    SeedanceGenerateOperator(task_id="generate", prompt="fire and forget", wait_for_completion=False)

for mode in ("blocking", "deferrable"):
    with scenario(f"op_failed_{mode}"):
        SeedanceGenerateOperator(
            task_id="generate",
            prompt="will be moderated",
            deferrable=mode == "deferrable",
            poll_interval=0.2,
            hook_params=FAST,
        )

    with scenario(f"op_timeout_{mode}", default_args={"retries": 0}):
        SeedanceGenerateOperator(
            task_id="generate",
            prompt="too slow",
            deferrable=mode == "deferrable",
            poll_interval=0.2,
            timeout=0.5,
            hook_params=FAST,
        )

    with scenario(f"op_reattach_{mode}"):
        SeedanceGenerateOperator(
            task_id="generate",
            prompt="survives a crash",
            deferrable=mode == "deferrable",
            poll_interval=0.2,
            hook_params=FAST,
        )

with scenario("op_bad_input"):
    SeedanceGenerateOperator(task_id="generate", prompt="p", aspect_ratio="5:4")

with scenario("op_bad_template", params={"ratio": Param("square", type="string")}):
    SeedanceGenerateOperator(task_id="generate", prompt="p", aspect_ratio="{{ params.ratio }}")

with scenario("op_prompt_file", template_searchpath=[__import__("os").path.dirname(__file__)]):
    SeedanceGenerateOperator(
        task_id="generate",
        prompt="prompt.txt",
        deferrable=True,
        poll_interval=0.2,
        params={"product": "Cedar kettle"},
        hook_params=FAST,
    )

for mode in ("poke", "deferrable"):
    for soft in (False, True):
        suffix = f"{mode}{'_soft' if soft else ''}"
        with scenario(f"sensor_{suffix}"):
            submit = SeedanceGenerateOperator(
                task_id="submit", prompt="watched elsewhere", wait_for_completion=False
            )
            submit >> SeedanceStatusSensor(
                task_id="wait",
                seedance_task_id="{{ ti.xcom_pull(task_ids='submit', key='seedance_task_id') }}",
                deferrable=mode == "deferrable",
                poll_interval=0.2,
                soft_fail=soft,
                hook_params=FAST,
            )
        with scenario(f"sensor_timeout_{suffix}", default_args={"retries": 0}):
            submit = SeedanceGenerateOperator(
                task_id="submit", prompt="watched elsewhere", wait_for_completion=False
            )
            submit >> SeedanceStatusSensor(
                task_id="wait",
                seedance_task_id="{{ ti.xcom_pull(task_ids='submit', key='seedance_task_id') }}",
                deferrable=mode == "deferrable",
                poll_interval=0.2,
                timeout=0.5,
                soft_fail=soft,
                hook_params=FAST,
            )

DELIVERY_PARAMS = {"out": Param("/tmp/seedance-test-out", type="string")}

for mode in ("blocking", "deferrable"):
    with scenario(f"op_deliver_{mode}", params=DELIVERY_PARAMS):
        SeedanceGenerateOperator(
            task_id="generate",
            prompt="delivered to storage",
            aspect_ratio="9:16",
            resolution="480p",
            duration=4,
            output_path="{{ params.out }}/clip-{{ ds }}.mp4",
            deferrable=mode == "deferrable",
            poll_interval=0.2,
            hook_params=FAST,
        )

    with scenario(f"op_resubmit_{mode}"):
        SeedanceGenerateOperator(
            task_id="generate",
            prompt="moderated once, then fine",
            resubmit_on_failure=2,
            deferrable=mode == "deferrable",
            poll_interval=0.2,
            hook_params=FAST,
        )

with scenario("op_budget", params=DELIVERY_PARAMS):
    SeedanceGenerateOperator(
        task_id="generate",
        prompt="too dear",
        resolution="720p",
        duration=12,
        generate_audio=True,
        max_credits=50,
        output_path="{{ params.out }}/dear.mp4",
    )

with scenario("op_asset", params=DELIVERY_PARAMS):
    SeedanceGenerateOperator(
        task_id="generate",
        prompt="announce me",
        output_path="{{ params.out }}/asset.mp4",
        outlets=[Asset("seedance://videos/announce")],
        deferrable=True,
        poll_interval=0.2,
        hook_params=FAST,
    )

with scenario("op_memory_output"):
    SeedanceGenerateOperator(
        task_id="generate",
        prompt="into memory",
        output_path=ObjectStoragePath("memory://bucket/videos/clip.mp4"),
        poll_interval=0.2,
        hook_params=FAST,
    )

with scenario("sensor_deliver", params=DELIVERY_PARAMS):
    submit = SeedanceGenerateOperator(
        task_id="submit", prompt="watched and delivered", wait_for_completion=False
    )
    submit >> SeedanceStatusSensor(
        task_id="wait",
        seedance_task_id="{{ ti.xcom_pull(task_ids='submit', key='seedance_task_id') }}",
        deferrable=True,
        poll_interval=0.2,
        output_path="{{ params.out }}/sensed.mp4",
        hook_params=FAST,
    )
