"""Review before publish: a person watches the draft in the Airflow UI and approves it, or asks
for another take with an edited prompt.

``draft`` generates the video into a review folder; ``review`` (Airflow's human-in-the-loop
operator, Airflow 3.1+) waits without holding a worker slot until someone answers in the UI
(Browse > Required Actions, or the task's page) or through the REST API. Its text links to the
draft's card in the Seedance view, where the video plays. On **Publish** the draft is copied
to the published folder; on **Regenerate** a second take is generated from the edited prompt
(the original if left empty) and reviewed in turn (``review_take_2``: Approve publishes it,
Reject publishes nothing). Nothing is published that nobody approved.

Answer through the REST API (what the tests do)::

    PATCH /api/v2/dags/seedance_review_and_publish/dagRuns/{run_id}/taskInstances/review/-1/hitlDetails
    {"chosen_options": ["Regenerate"], "params_input": {"edited_prompt": "The same shot, at dusk"}}
"""

from __future__ import annotations

import os

import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLOperator
from airflow.sdk import DAG, Param, task

from airflow_provider_seedance.links import card_url
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

POLL_INTERVAL = float(os.environ.get("SEEDANCE_POLL_INTERVAL", "10"))
OUTPUT_DIR = os.environ.get("SEEDANCE_OUTPUT_DIR", "file:///tmp/seedance-videos")
#: One folder per run (run ids hold ':' and '+', which object stores dislike).
RUN_FOLDER = "{{ params.output_dir }}/review/{{ run_id | replace(':', '-') | replace('+', '-') }}"
PUBLISH = "Publish"
REGENERATE = "Regenerate"

with DAG(
    dag_id="seedance_review_and_publish",
    description="Generate, let a person approve or ask for another take, then publish",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "prompt": Param(
            "A ceramic mug of coffee steams on a sunlit windowsill, slow push-in", type="string", minLength=1
        ),
        "output_dir": Param(OUTPUT_DIR, type="string"),
    },
    tags=["seedance", "example"],
    # The draft's card in the Seedance view (the same URL as its "Seedance video" extra link).
    user_defined_macros={"seedance_card": card_url},
) as dag:
    draft = SeedanceGenerateOperator(
        task_id="draft",
        prompt="{{ params.prompt }}",
        resolution="480p",
        duration=4,
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        output_path=RUN_FOLDER + "/draft.mp4",
        max_credits=8,
    )

    review = HITLOperator(
        task_id="review",
        subject="Publish this video?",
        body=(
            "**Prompt**: {{ params.prompt }}\n\n"
            "**Draft**: {{ ti.xcom_pull(task_ids='draft')['output_path'] }} "
            "({{ ti.xcom_pull(task_ids='draft')['consumed_credits'] }} credits)\n\n"
            "[Watch it in the Seedance view]({{ seedance_card(dag.dag_id, run_id, 'draft') }})\n\n"
            f"Choose **{PUBLISH}**, or **{REGENERATE}** with an edited prompt below "
            "(left empty, the same prompt is used again)."
        ),
        options=[PUBLISH, REGENERATE],
        defaults=None,
        params={"edited_prompt": Param("", type="string", description="For Regenerate: the new prompt")},
    )

    @task.branch
    def decide(answer: dict) -> str:
        return "use_draft" if answer["chosen_options"] == [PUBLISH] else "regenerate"

    use_draft = EmptyOperator(task_id="use_draft")
    regenerate = SeedanceGenerateOperator(
        task_id="regenerate",
        prompt=(
            "{{ ti.xcom_pull(task_ids='review')['params_input'].get('edited_prompt') or params.prompt }}"
        ),
        resolution="480p",
        duration=4,
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        output_path=RUN_FOLDER + "/take-2.mp4",
        # A cleared review answered with another prompt must not find the earlier take-2 and
        # publish it: the take is always this prompt's (re-attached, not paid again, if it is).
        skip_if_exists=False,
        max_credits=8,
    )
    review_take_2 = ApprovalOperator(
        task_id="review_take_2",
        subject="Publish the second take?",
        body=(
            "**Prompt**: {{ ti.xcom_pull(task_ids='regenerate')['request']['prompt'] }}\n\n"
            "[Watch it in the Seedance view]({{ seedance_card(dag.dag_id, run_id, 'regenerate') }})\n\n"
            "Approve publishes it; Reject publishes nothing."
        ),
    )

    @task(trigger_rule="none_failed_min_one_success")
    def publish(ti=None, params: dict | None = None) -> str:  # type: ignore[no-untyped-def]
        """Copy the approved take to the published folder (a stand-in for a CMS upload)."""
        from airflow.sdk import ObjectStoragePath

        assert ti is not None and params is not None
        chosen = ti.xcom_pull(task_ids="regenerate") or ti.xcom_pull(task_ids="draft")
        source = ObjectStoragePath(chosen["output_path"])
        target = ObjectStoragePath(f"{params['output_dir']}/published/{source.parent.name}.mp4")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
        return str(target)

    draft >> review
    decide(review.output) >> [use_draft, regenerate]
    regenerate >> review_take_2
    [use_draft, review_take_2] >> publish()
