"""Fire-and-forget in real Airflow: the ``seedance_webhook_publish`` example submits 10
generations and ends; the emulator's callbacks reach the real API server, whose receiver
records one event of the completion asset per generation; the scheduler runs the
asset-scheduled ``seedance_webhook_upload``, which delivers all 10 videos. No task waits while
the videos render, and each generation is paid once.
"""

from __future__ import annotations

import pytest

from tests.realproc.conftest import RealprocEnv

pytestmark = pytest.mark.realproc

PUBLISH, UPLOAD = "seedance_webhook_publish", "seedance_webhook_upload"
ASSET_URI = "seedance://examples/webhook-publish/completed"
N = 10


def completion_events(env: RealprocEnv) -> list[dict[str, object]]:
    return env.cluster.sql(
        "SELECT e.source_dag_id, e.source_task_id, e.source_map_index, e.extra FROM asset_event e"
        " JOIN asset a ON a.id = e.asset_id WHERE a.uri = ?",
        (ASSET_URI,),
    )


def upload_runs(env: RealprocEnv) -> str:
    """What the upload DAG did (for a failure message): its runs, states and task logs."""
    runs = env.cluster.api("GET", f"/dags/{UPLOAD}/dagRuns")["dag_runs"]
    lines = []
    for run in runs:
        lines.append(f"{run['dag_run_id']}: {run['state']}")
        for ti in env.cluster.task_instances(UPLOAD, run["dag_run_id"]):
            lines.append(f"  {ti['task_id']} {ti['state']} try {ti['try_number']}")
            if ti["try_number"]:
                lines.append(
                    env.cluster.task_log(UPLOAD, run["dag_run_id"], "upload", ti["try_number"])[-3000:]
                )
    return "\n".join(lines) or "no upload run"


def test_ten_fire_and_forget_generations_become_ten_asset_events_and_ten_delivered_videos(
    realproc: RealprocEnv,
) -> None:
    cluster, emulator = realproc.cluster, realproc.emulators["seedance_webhook"]
    for dag_id in (PUBLISH, UPLOAD):
        cluster.wait_for_dag(dag_id)
        cluster.unpause(dag_id)
    prompts = [f"Product {i} turning slowly on a plinth" for i in range(N)]
    # Every generation renders until the publishing run has ended, however slow the machine.
    emulator.hold()
    try:
        run_id = cluster.trigger(PUBLISH, conf={"products": prompts})
        assert cluster.wait_for_run(PUBLISH, run_id, timeout=240)["state"] == "success"
        # The publishing run ended with its generations still rendering: nothing waited for them.
        assert [task["status"] for task in emulator.tasks()] == ["IN_PROGRESS"] * N
    finally:
        emulator.hold(False)

    try:
        events = cluster.wait_until(
            lambda: len(rows := completion_events(realproc)) >= N and rows,
            timeout=180,
            what=f"{N} completion events",
            interval=1.0,
        )
    except Exception as exc:
        found = len(completion_events(realproc))
        raise AssertionError(f"{found} of {N} events; emulator ledger {emulator.ledger()}") from exc
    assert len(events) == N, events
    assert sorted(int(e["source_map_index"]) for e in events) == list(range(N))
    assert {(e["source_dag_id"], e["source_task_id"]) for e in events} == {(PUBLISH, "submit")}

    delivered_dir = realproc.output_dir / "webhook"
    try:
        videos = cluster.wait_until(
            lambda: len(found := sorted(delivered_dir.glob("*.mp4"))) >= N and found,
            timeout=240,
            what=f"the upload DAG to deliver {N} videos",
            interval=1.0,
        )
    except Exception as exc:
        raise AssertionError(upload_runs(realproc)) from exc
    ids = {task["task_id"] for task in emulator.tasks()}
    assert {video.stem for video in videos} == ids
    assert all(video.read_bytes()[4:8] == b"ftyp" for video in videos)
    ledger = emulator.ledger()
    assert ledger["generate_requests"] == N  # one POST per generation, none again
    assert realproc.api_key not in str(events)
