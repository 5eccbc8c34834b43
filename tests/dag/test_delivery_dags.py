"""Delivery and spend control in real Airflow (dag.test()) against the emulator."""

from __future__ import annotations

import hashlib
from importlib import resources

import pytest

from tests.dag_support import TEST_DAGS, run_dag

pytestmark = pytest.mark.dag


@pytest.mark.parametrize("mode", ["blocking", "deferrable"])
def test_output_path_delivers_and_a_rerun_costs_nothing(dag_env, mode: str, tmp_path) -> None:
    run = run_dag(TEST_DAGS, f"op_deliver_{mode}", run_conf={"out": str(tmp_path)})
    [result] = run.results("generate")
    [video] = list(tmp_path.glob("clip-*.mp4"))
    content = video.read_bytes()
    assert result["output_path"].endswith(video.name)
    assert result["bytes"] == len(content) and result["sha256"] == hashlib.sha256(content).hexdigest()
    assert result["consumed_credits"] == 8 and not result.get("reused_existing")
    first_mtime = video.stat().st_mtime_ns
    assert dag_env.ledger()["generate_requests"] == 1

    again = run_dag(TEST_DAGS, f"op_deliver_{mode}", run_conf={"out": str(tmp_path)})
    [second] = again.results("generate")
    assert second["reused_existing"] is True and second["consumed_credits"] == 0
    assert second["sha256"] == result["sha256"]
    assert dag_env.ledger()["generate_requests"] == 1  # the second run sent no generate request
    assert video.stat().st_mtime_ns == first_mtime  # and changed no file


def test_budget_below_the_estimate_makes_no_http_call(dag_env, capfd, tmp_path) -> None:
    run = run_dag(TEST_DAGS, "op_budget", run_conf={"out": str(tmp_path)})
    assert run.tasks[("generate", -1)] == ("failed", 1)
    ledger = dag_env.ledger()
    assert ledger["generate_requests"] == 0 and ledger["status_requests"] == 0
    out = capfd.readouterr().out
    assert "84 credits ($0.42), above max_credits=50 ($0.25)" in out

    # A video already at output_path costs nothing, so the budget does not stop its reuse.
    clip = resources.files("airflow_provider_seedance.emulator") / "clips" / "480p_16x9.mp4"
    (tmp_path / "dear.mp4").write_bytes(clip.read_bytes())
    again = run_dag(TEST_DAGS, "op_budget", run_conf={"out": str(tmp_path)})
    [result] = again.results("generate")
    assert result["reused_existing"] is True and result["consumed_credits"] == 0
    assert dag_env.ledger()["generate_requests"] == 0


@pytest.mark.parametrize("mode", ["blocking", "deferrable"])
def test_failed_generation_is_resubmitted_for_free(dag_env, mode: str) -> None:
    dag_env.add_faults({"endpoint": "outcome", "fault": "failed", "times": 1, "error_message": "moderation"})
    run = run_dag(TEST_DAGS, f"op_resubmit_{mode}")
    assert run.state == "success" and run.tasks[("generate", -1)] == ("success", 1)
    [result] = run.results("generate")
    assert len(result["seedance_task_ids"]) == 2 and result["task_id"] == result["seedance_task_ids"][-1]
    ledger = dag_env.ledger()
    assert ledger["generate_requests"] == 2
    from tests.conftest import API_KEY

    account = ledger["accounts"][API_KEY]
    assert account["charged"] == 56 and account["refunded"] == 28  # the failed one was refunded


def test_asset_event_carries_the_video(dag_env, tmp_path) -> None:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    run = run_dag(TEST_DAGS, "op_asset", run_conf={"out": str(tmp_path)})
    [result] = run.results("generate")
    with create_session() as session:
        events = session.query(AssetEvent).filter_by(source_dag_id="op_asset", source_run_id=run.run_id).all()
        extras = [dict(e.extra) for e in events]
    assert len(extras) == 1
    extra = extras[0]
    assert extra["seedance_task_id"] == result["task_id"] and extra["output_path"] == result["output_path"]
    assert extra["consumed_credits"] == 28 and extra["request"] == {"prompt": "announce me"}


def test_output_path_can_be_any_object_store(dag_env) -> None:
    run = run_dag(TEST_DAGS, "op_memory_output")
    [result] = run.results("generate")
    assert result["output_path"].startswith("memory://") and result["bytes"] > 1000


def test_sensor_delivers_too(dag_env, tmp_path) -> None:
    run = run_dag(TEST_DAGS, "sensor_deliver", run_conf={"out": str(tmp_path)})
    [result] = run.results("wait")
    assert (tmp_path / "sensed.mp4").stat().st_size == result["bytes"] > 1000
