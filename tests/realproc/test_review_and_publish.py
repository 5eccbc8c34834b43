"""The review-and-publish example on real Airflow: a person answers through the REST API.

Two runs of ``seedance_review_and_publish``: one is approved (the draft is published, one
generation paid), one is sent back with an edited prompt (a second take is generated from
that prompt and published; the draft is not). The review waits without a worker slot and
its text links to the draft's card in the Seedance view.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.realproc.conftest import RealprocEnv

pytestmark = pytest.mark.realproc

DAG_ID = "seedance_review_and_publish"


def wait_for_review(realproc: RealprocEnv, run_id: str) -> dict[str, Any]:
    """The review's human-in-the-loop request, once the task waits for an answer."""
    cluster = realproc.cluster
    path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/review/-1/hitlDetails"

    def waiting() -> dict[str, Any] | None:
        states = {ti["task_id"]: ti["state"] for ti in cluster.task_instances(DAG_ID, run_id)}
        assert not {"failed", "upstream_failed"} & set(states.values()), states
        if states.get("review") not in ("deferred", "awaiting_input"):
            return None
        return cluster.api("GET", path)

    return cluster.wait_until(waiting, timeout=240, what=f"the review of {run_id}")


def answer(
    realproc: RealprocEnv, run_id: str, request: dict[str, Any], options: list[str], **edits: Any
) -> None:
    """Answer as the UI's form does: every field of the request, as shown, with ``edits``.
    (Airflow 3.1 shows the DAG's params in the form too; 3.3 only the task's.)"""
    shown = {
        name: spec.get("value") if isinstance(spec, dict) else spec
        for name, spec in (request.get("params") or {}).items()
    }
    assert "edited_prompt" in shown, request.get("params")
    path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/review/-1/hitlDetails"
    body = {"chosen_options": options, "params_input": {**shown, **edits}}
    realproc.cluster.api("PATCH", path, json_body=body)


def test_approved_draft_is_published_and_rejected_one_is_regenerated_from_the_edited_prompt(
    realproc: RealprocEnv, tmp_path: Path
) -> None:
    cluster, emulator = realproc.cluster, realproc.emulators["seedance_default"]
    cluster.wait_for_dag(DAG_ID)
    cluster.unpause(DAG_ID)
    approved = cluster.trigger(DAG_ID, conf={"output_dir": f"file://{tmp_path / 'approved'}"})
    rejected = cluster.trigger(DAG_ID, conf={"output_dir": f"file://{tmp_path / 'rejected'}"})

    request = wait_for_review(realproc, approved)
    assert request["options"] == ["Publish", "Regenerate"]
    assert "/seedance/?dag_id=seedance_review_and_publish" in request["body"]
    assert "task_id=draft" in request["body"] and "draft.mp4" in request["body"]
    answer(realproc, approved, request, ["Publish"])

    second = wait_for_review(realproc, rejected)
    answer(
        realproc, rejected, second, ["Regenerate"], edited_prompt="The same mug, at dusk, rain on the glass"
    )

    for run_id in (approved, rejected):
        run = cluster.wait_for_run(DAG_ID, run_id, timeout=300)
        states = {ti["task_id"]: ti["state"] for ti in cluster.task_instances(DAG_ID, run_id)}
        assert run["state"] == "success", states

    [published] = (tmp_path / "approved" / "published").glob("*.mp4")
    [draft] = (tmp_path / "approved" / "review").rglob("draft.mp4")
    assert published.read_bytes() == draft.read_bytes()
    assert not list((tmp_path / "approved" / "review").rglob("take-2.mp4"))

    [republished] = (tmp_path / "rejected" / "published").glob("*.mp4")
    [take_two] = (tmp_path / "rejected" / "review").rglob("take-2.mp4")
    assert republished.read_bytes() == take_two.read_bytes()

    prompts = [task["request"]["prompt"] for task in emulator.tasks()]
    assert sorted(prompts) == sorted(
        [
            "A ceramic mug of coffee steams on a sunlit windowsill, slow push-in",  # approved draft
            "A ceramic mug of coffee steams on a sunlit windowsill, slow push-in",  # rejected draft
            "The same mug, at dusk, rain on the glass",  # the second take
        ]
    )
    assert emulator.ledger()["generate_requests"] == 3  # no take was paid twice
