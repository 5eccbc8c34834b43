"""The review-and-publish example on real Airflow: a person answers through the REST API.

Three runs of ``seedance_review_and_publish``: the first draft is approved (it is published,
one generation paid); the second is sent back with an edited prompt and its second take is
approved (that take is published, generated from the edited prompt); the third is sent back
and its second take rejected (nothing is published). Each review waits without a worker slot
and its text links to the take's card in the Seedance view.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.realproc.conftest import RealprocEnv

pytestmark = pytest.mark.realproc

DAG_ID = "seedance_review_and_publish"
PROMPT = "A ceramic mug of coffee steams on a sunlit windowsill, slow push-in"
EDITED = "The same mug, at dusk, rain on the glass"
#: A person takes more than a moment to answer; an answer within ~1 s of the task pausing hits
#: the Airflow 3.2-3.3 race of tests/realproc/dags/realproc_dags.py RACE_SAFE_POLL
#: (apache/airflow#66374: the pausing try's stale "success" event fails the resumed task).
THINKING_SECONDS = 10.0


def hitl_path(run_id: str, task_id: str) -> str:
    return f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails"


def wait_for_review(realproc: RealprocEnv, run_id: str, task_id: str) -> dict[str, Any]:
    """The human-in-the-loop request of ``task_id``, once it waits for an answer."""
    cluster = realproc.cluster

    def waiting() -> dict[str, Any] | None:
        states = {ti["task_id"]: ti["state"] for ti in cluster.task_instances(DAG_ID, run_id)}
        assert not {"failed", "upstream_failed"} & set(states.values()), states
        if states.get(task_id) not in ("deferred", "awaiting_input"):
            return None
        return cluster.api("GET", hitl_path(run_id, task_id))

    request = cluster.wait_until(waiting, timeout=240, what=f"{task_id} of {run_id}")
    time.sleep(THINKING_SECONDS)
    return request


def answer(
    realproc: RealprocEnv, run_id: str, request: dict[str, Any], options: list[str], **edits: Any
) -> None:
    """Answer as the UI's form does: every field of the request, as shown, with ``edits``.
    (Airflow 3.1 shows the DAG's params in the form too; 3.3 only the task's.)"""
    shown = {
        name: spec.get("value") if isinstance(spec, dict) else spec
        for name, spec in (request.get("params") or {}).items()
    }
    body = {"chosen_options": options, "params_input": {**shown, **edits}}
    realproc.cluster.api("PATCH", hitl_path(run_id, request["task_instance"]["task_id"]), json_body=body)


def test_only_approved_takes_are_published_and_a_second_take_uses_the_edited_prompt(
    realproc: RealprocEnv, tmp_path: Path
) -> None:
    cluster, emulator = realproc.cluster, realproc.emulators["seedance_default"]
    cluster.wait_for_dag(DAG_ID)
    cluster.unpause(DAG_ID)
    runs = {
        name: cluster.trigger(DAG_ID, conf={"output_dir": f"file://{tmp_path / name}"})
        for name in ("approved", "second_take", "all_rejected")
    }

    first = wait_for_review(realproc, runs["approved"], "review")
    assert first["options"] == ["Publish", "Regenerate"]
    assert "/seedance/?dag_id=seedance_review_and_publish" in first["body"]
    assert "task_id=draft" in first["body"] and "draft.mp4" in first["body"]
    answer(realproc, runs["approved"], first, ["Publish"])

    for name in ("second_take", "all_rejected"):
        request = wait_for_review(realproc, runs[name], "review")
        answer(realproc, runs[name], request, ["Regenerate"], edited_prompt=EDITED)
    for name, verdict in (("second_take", "Approve"), ("all_rejected", "Reject")):
        request = wait_for_review(realproc, runs[name], "review_take_2")
        assert "task_id=regenerate" in request["body"] and EDITED in request["body"]
        answer(realproc, runs[name], request, [verdict])

    for run_id in runs.values():
        run = cluster.wait_for_run(DAG_ID, run_id, timeout=300)
        states = {ti["task_id"]: ti["state"] for ti in cluster.task_instances(DAG_ID, run_id)}
        assert run["state"] == "success", (run_id, sorted(states.items()))

    [published] = (tmp_path / "approved" / "published").glob("*.mp4")
    [draft] = (tmp_path / "approved" / "review").rglob("draft.mp4")
    assert published.read_bytes() == draft.read_bytes()

    [republished] = (tmp_path / "second_take" / "published").glob("*.mp4")
    [take_two] = (tmp_path / "second_take" / "review").rglob("take-2.mp4")
    assert republished.read_bytes() == take_two.read_bytes()

    assert not (tmp_path / "all_rejected" / "published").exists()  # nobody approved a take

    prompts = sorted(task["request"]["prompt"] for task in emulator.tasks())
    assert prompts == sorted([PROMPT, PROMPT, PROMPT, EDITED, EDITED])  # three drafts, two second takes
    assert emulator.ledger()["generate_requests"] == 5  # no take was paid twice
