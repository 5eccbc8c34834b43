"""Every example DAG, run for real with dag.test() against the emulator process."""

from __future__ import annotations

import pendulum
import pytest

from tests.conftest import API_KEY
from tests.dag_support import EXAMPLES, held_until_read, run_dag

pytestmark = pytest.mark.dag

EXAMPLE_DAGS = [
    "seedance_marketing_pipeline",
    "seedance_social_clips",
    "seedance_catalog_backfill",
    "seedance_external_task",
    "seedance_review_and_publish",  # run by tests/realproc/test_review_and_publish.py (a person answers)
    # Both run by tests/realproc/test_webhook_publish.py (the API server receives the callbacks).
    "seedance_webhook_publish",
    "seedance_webhook_upload",
]


def test_every_example_imports_without_errors(airflow_db) -> None:
    from tests.dag_support import _load_dag

    for dag_id in EXAMPLE_DAGS:
        assert _load_dag(EXAMPLES, dag_id).dag_id == dag_id


def test_marketing_pipeline_templated_mapped_deferrable(dag_env, capfd, tmp_path) -> None:
    conf = {
        "aspect_ratio": "9:16",
        "resolution": "480p",
        "output_dir": f"file://{tmp_path}",
        "scenes": ["in the rain", "on a rooftop", "at a finish line"],
    }
    day = pendulum.datetime(2026, 3, 1, 6, tz="UTC")
    run = run_dag(EXAMPLES, "seedance_marketing_pipeline", run_conf=conf, logical_date=day)
    assert run.state == "success"
    results = run.results("generate_video")
    assert len(results) == 3
    for result in results:
        assert result["status"] == "SUCCESS" and result["video_url"].endswith(".mp4")
        assert result["request"]["aspect_ratio"] == "9:16"  # rendered from params
        assert result["request"]["resolution"] == "480p"
        assert result["consumed_credits"] == 14
    delivered = sorted(tmp_path.rglob("*.mp4"))
    assert [p.relative_to(tmp_path).as_posix() for p in delivered] == [
        "2026-03-01/scene-0.mp4",
        "2026-03-01/scene-1.mp4",
        "2026-03-01/scene-2.mp4",
    ]
    assert all(p.read_bytes()[4:8] == b"ftyp" for p in delivered)
    assert sorted(run.results("publish")[0]) == sorted(r["output_path"] for r in results)
    assert dag_env.ledger()["generate_requests"] == 3  # exactly one POST per generation
    assert API_KEY not in capfd.readouterr().out

    # The same day again: every video is already delivered, so nothing is generated or paid.
    again = run_dag(EXAMPLES, "seedance_marketing_pipeline", run_conf=conf, logical_date=day.add(hours=1))
    assert all(r["reused_existing"] and r["consumed_credits"] == 0 for r in again.results("generate_video"))
    assert dag_env.ledger()["generate_requests"] == 3


def test_social_clips_mapped_with_pool(dag_env) -> None:
    from airflow.models.pool import Pool

    Pool.create_or_update_pool("seedance_submissions", slots=2, description="test", include_deferred=False)
    run = run_dag(EXAMPLES, "seedance_social_clips")
    assert run.state == "success"
    results = run.results("social_clip")
    assert len(results) == 3
    assert all(r["request"]["aspect_ratio"] == "9:16" and r["request"]["duration"] == "4" for r in results)
    assert dag_env.ledger()["generate_requests"] == 3


def test_catalog_backfill_second_pass_spends_nothing(dag_env, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SEEDANCE_OUTPUT_DIR", f"file://{tmp_path}")
    day = pendulum.datetime(2026, 3, 3, tz="UTC")
    run = run_dag(EXAMPLES, "seedance_catalog_backfill", logical_date=day)
    assert run.state == "success"
    results = run.results("animate_product")
    assert len(results) == 2  # CED-220 and DUN-305 launch on 2026-03-03
    assert all(len(r["request"]["image_urls"]) == 1 and r["consumed_credits"] == 14 for r in results)
    assert sorted(p.name for p in (tmp_path / "catalog").iterdir()) == ["CED-220.mp4", "DUN-305.mp4"]
    assert dag_env.ledger()["generate_requests"] == 2
    again = run_dag(EXAMPLES, "seedance_catalog_backfill", logical_date=day.add(hours=1))
    assert all(r["reused_existing"] and r["consumed_credits"] == 0 for r in again.results("animate_product"))
    assert dag_env.ledger()["generate_requests"] == 2


def test_external_task_submit_then_deferrable_sensor(dag_env) -> None:
    # Still rendering when the submitting task reads it after its POST, however slow the machine.
    with held_until_read(dag_env, 1):
        run = run_dag(EXAMPLES, "seedance_external_task")
    assert run.state == "success"
    [submitted] = run.results("submit")
    [waited] = run.results("wait_for_video")
    assert submitted["status"] == "IN_PROGRESS" and submitted["video_url"] is None
    assert waited["status"] == "SUCCESS" and waited["task_id"] == submitted["task_id"]
    assert run.results("report") == [waited["video_url"]]
    assert dag_env.ledger()["generate_requests"] == 1
