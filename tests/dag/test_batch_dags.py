"""SeedanceBatchGenerateOperator in real Airflow (dag.test()) against the emulator."""

from __future__ import annotations

import threading

import pytest

from airflow_provider_seedance.batch_results import results_file_name
from tests.conftest import API_KEY
from tests.dag_support import TEST_DAGS, run_dag

pytestmark = pytest.mark.dag


@pytest.mark.parametrize("mode", ["deferrable", "blocking"])
def test_batch_in_order_bounded_and_delivered(dag_env, mode: str, tmp_path) -> None:
    # Slow answers make the submissions overlap, so the concurrency bound is really tested.
    dag_env.add_faults({"endpoint": "generate", "fault": "slow", "times": 6, "delay": 0.4})
    run = run_dag(TEST_DAGS, f"batch_{mode}", run_conf={"out": str(tmp_path)})
    assert run.state == "success"
    [outcome] = run.results("batch")
    results = outcome["results"]
    assert [r["id"] for r in results] == [f"sku-{n}" for n in range(6)]  # request order
    assert [r["request"]["prompt"] for r in results] == [f"product {n} on a turntable" for n in range(6)]
    assert all(r["status"] == "SUCCESS" and r["consumed_credits"] == 8 for r in results)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"sku-{n}.mp4" for n in range(6)]
    assert all(r["bytes"] == (tmp_path / f"{r['id']}.mp4").stat().st_size for r in results)
    assert outcome["totals"] == {
        "requests": 6,
        "succeeded": 6,
        "failed": 0,
        "in_progress": 0,
        "reused": 0,
        "generations": 6,
        "credits": 48,
        "dollars": 0.24,
        "dollars_text": "$0.24",
    }
    ledger = dag_env.ledger()
    assert ledger["generate_requests"] == 6
    assert ledger["max_concurrent_generate"] == 2  # never more than max_in_flight at once

    again = run_dag(TEST_DAGS, f"batch_{mode}", run_conf={"out": str(tmp_path)})
    [second] = again.results("batch")
    assert second["totals"]["reused"] == 6 and second["totals"]["credits"] == 0
    assert dag_env.ledger()["generate_requests"] == 6


def test_one_bad_request_fails_the_batch_before_any_http(dag_env, capfd) -> None:
    run = run_dag(TEST_DAGS, "batch_bad_request")
    assert run.tasks[("batch", -1)] == ("failed", 1)
    assert dag_env.ledger()["generate_requests"] == 0
    assert "Invalid requests[3].aspect_ratio: '2:1'" in capfd.readouterr().out


def test_batch_budget_is_checked_on_the_total(dag_env, capfd) -> None:
    run = run_dag(TEST_DAGS, "batch_budget")
    assert run.tasks[("batch", -1)] == ("failed", 1)
    assert dag_env.ledger()["generate_requests"] == 0
    assert "6 generations is 48 credits ($0.24), above max_credits=40" in capfd.readouterr().out


def test_partial_failure_returned_in_the_list(dag_env) -> None:
    dag_env.add_faults({"endpoint": "outcome", "fault": "failed", "times": 2, "error_message": "moderation"})
    run = run_dag(TEST_DAGS, "batch_partial_keep")
    assert run.state == "success"
    [outcome] = run.results("batch")
    statuses = [r["status"] for r in outcome["results"]]
    assert statuses.count("FAILED") == 2 and statuses.count("SUCCESS") == 4
    assert all(r["error_message"] == "moderation" for r in outcome["results"] if r["status"] == "FAILED")
    assert outcome["totals"]["failed"] == 2 and outcome["totals"]["credits"] == 32


def test_partial_failure_fails_the_task_by_default(dag_env, capfd) -> None:
    dag_env.add_faults({"endpoint": "outcome", "fault": "failed", "times": 1})
    run = run_dag(TEST_DAGS, "batch_partial_fail")
    assert run.tasks[("batch", -1)][0] == "failed"
    results = run.xcoms[("batch", -1, "seedance_batch_results")]
    assert results["totals"]["succeeded"] == 5 and results["totals"]["failed"] == 1
    out = capfd.readouterr().out
    assert "1 of 6 generations did not succeed" in out
    # The message names the failed request by its position in the request list.
    [index] = [i for i, r in enumerate(results["results"]) if r["status"] == "FAILED"]
    assert f"#{index} {results['results'][index]['task_id']} FAILED" in out


def test_failed_generations_are_resubmitted_back_on_the_worker(dag_env) -> None:
    dag_env.add_faults({"endpoint": "outcome", "fault": "failed", "times": 2})
    run = run_dag(TEST_DAGS, "batch_resubmit")
    assert run.state == "success" and run.tasks[("batch", -1)] == ("success", 1)
    [outcome] = run.results("batch")
    assert outcome["totals"]["succeeded"] == 6
    assert sorted(len(r["seedance_task_ids"]) for r in outcome["results"]) == [1, 1, 1, 1, 2, 2]
    ledger = dag_env.ledger()
    assert ledger["generate_requests"] == 8
    assert ledger["accounts"][API_KEY]["refunded"] == 16


def test_retry_reattaches_with_one_post_per_request(dag_env) -> None:
    run = run_dag(TEST_DAGS, "batch_reattach")  # the first try times out after submitting
    assert run.state == "success" and run.tasks[("batch", -1)][1] >= 2
    [outcome] = run.results("batch")
    assert outcome["totals"]["succeeded"] == 6
    assert dag_env.ledger()["generate_requests"] == 6


def test_requests_from_an_upstream_xcom(dag_env) -> None:
    run = run_dag(TEST_DAGS, "batch_from_xcom")
    [outcome] = run.results("batch")
    assert [r["request"]["prompt"] for r in outcome["results"]] == ["item 0", "item 1", "item 2"]


def test_an_item_whose_destination_cannot_be_written_is_paid_not_delivered(dag_env, tmp_path, capfd) -> None:
    """Red-team of issue 18: a local write error (not a SeedanceError) during one item's
    delivery must not crash the batch with a bare OSError, leave the other items undelivered
    or record the charged item as "succeeded": it is *paid, not delivered*, with the reason."""
    run = run_dag(TEST_DAGS, "batch_unwritable_item", run_conf={"out": str(tmp_path)})
    assert run.tasks[("batch", -1)][0] == "failed"
    ok, unwritable = run.xcoms[("batch", -1, "seedance_batch_results")]["results"]
    assert ok["outcome"] == "succeeded" and (tmp_path / "ok.mp4").stat().st_size == ok["bytes"]
    assert unwritable["outcome"] == "paid_not_delivered", unwritable
    assert unwritable["consumed_credits"] == 8 and unwritable["task_id"]
    assert (
        "delivery failed" in unwritable["error_message"] and "/sys/kernel/" in (unwritable["error_message"])
    )
    assert "1 of 2 generations did not succeed" in capfd.readouterr().out
    assert dag_env.ledger()["generate_requests"] == 2


@pytest.mark.parametrize("mode", ["deferrable", "blocking"])
def test_batch_threads_never_talk_to_the_task_supervisor(dag_env, mode: str, tmp_path, monkeypatch) -> None:
    """Airflow 3.1's channel from a task to its supervisor has no lock: two threads using it at
    once can hang the task for good (a batch stuck in ``execute_complete`` on a real cluster).
    Connection lookups (which also send the secrets to mask), XComs and Variables therefore
    happen on the task's own thread; the batch's pools only do HTTP and file I/O. Covered: the
    submissions, the status reads, the deliveries and (second run) the existing-video checks."""
    from airflow.sdk.execution_time.supervisor import InProcessSupervisorComms

    from airflow_provider_seedance.operators.batch import POOL_THREAD_PREFIX

    seen: list[tuple[str, str]] = []
    send = InProcessSupervisorComms.send

    def recording(self, msg):  # type: ignore[no-untyped-def]
        seen.append((threading.current_thread().name, type(msg).__name__))
        return send(self, msg)

    monkeypatch.setattr(InProcessSupervisorComms, "send", recording)
    dag_env.add_faults({"endpoint": "status", "fault": "http_500", "times": 2})  # status reads retried
    first = run_dag(TEST_DAGS, f"batch_{mode}", run_conf={"out": str(tmp_path)})
    second = run_dag(TEST_DAGS, f"batch_{mode}", run_conf={"out": str(tmp_path)})
    assert (first.state, second.state) == ("success", "success")
    assert second.results("batch")[0]["totals"]["reused"] == 6  # the existing-video checks ran
    kinds = {kind for _, kind in seen}
    assert {"MaskSecret", "SetXCom"} <= kinds, kinds  # the recorder sees the task's own calls
    from_pools = [(thread, kind) for thread, kind in seen if thread.startswith(POOL_THREAD_PREFIX)]
    assert from_pools == []


#: What differs between two runs of the same requests: the generations themselves and where
#: their videos went.
RUN_SPECIFIC = (
    "task_id",
    "seedance_task_ids",
    "video_url",
    "video_urls",
    "created_at",
    "output_path",
    "sha256",
)


def test_a_batch_over_the_xcom_limit_keeps_a_small_manifest_and_its_file_has_every_result(
    dag_env, tmp_path
) -> None:
    import json

    from airflow_provider_seedance.batch_results import load_batch_results

    inline_run = run_dag(TEST_DAGS, "batch_results_inline", run_conf={"out": str(tmp_path / "inline")})
    run = run_dag(TEST_DAGS, "batch_results_manifest", run_conf={"out": str(tmp_path / "manifest")})
    assert inline_run.state == run.state == "success"
    [inline] = inline_run.results("batch")
    [outcome] = run.results("batch")
    assert "results_manifest" not in inline and len(inline["results"]) == 6

    manifest = outcome["results_manifest"]
    [written] = (tmp_path / "manifest").glob("*.results.jsonl")
    assert written.name == results_file_name("batch_results_manifest", run.run_id, "batch", -1, 1)
    assert written.name.startswith(f"batch_results_manifest__{_safe(run.run_id)}__batch__-1__try1.")
    assert manifest["path"] in (str(written), f"file://{written}")
    assert manifest["items"] == 6 and manifest["bytes"] == written.stat().st_size
    assert outcome["results_sample"] is True and len(outcome["results"]) == 1  # limit 3: 1 per kind
    lines = [json.loads(line) for line in written.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 6

    def same_requests(items: list[dict]) -> list[dict]:
        return [{k: v for k, v in item.items() if k not in RUN_SPECIFIC} for item in items]

    assert same_requests(lines) == same_requests(inline["results"])
    assert [line["output_path"].rsplit("/", 1)[1] for line in lines] == [f"sku-{n}.mp4" for n in range(6)]
    assert outcome["totals"] == inline["totals"]
    assert [r.to_xcom() for r in load_batch_results(outcome)] == lines
    assert len(json.dumps(outcome)) < len(json.dumps(inline)) and len(json.dumps(outcome)) < 64 * 1024
    assert dag_env.ledger()["generate_requests"] == 12  # one POST per item per run


def _safe(run_id: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", run_id)
