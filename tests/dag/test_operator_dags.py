"""Every branch of the operator and the sensor, in real Airflow (dag.test()) against the emulator."""

from __future__ import annotations

import pytest

from airflow_provider_seedance.links import card_url
from tests.conftest import API_KEY
from tests.dag_support import TEST_DAGS, run_dag

pytestmark = pytest.mark.dag

MODES = ["blocking", "deferrable"]


@pytest.mark.parametrize("dag_id", ["op_blocking", "op_deferrable"])
def test_generate_waits_and_returns_the_result(dag_env, dag_id: str, capfd) -> None:
    run = run_dag(TEST_DAGS, dag_id)
    assert run.state == "success"
    [result] = run.results("generate")
    assert set(result) >= {
        "task_id",
        "status",
        "video_url",
        "video_urls",
        "consumed_credits",
        "request",
        "error_message",
    }
    assert result["status"] == "SUCCESS" and result["video_urls"] == [result["video_url"]]
    assert result["request"] == {
        "prompt": dag_id.replace("op_", "")
        .replace("blocking", "blocking wait")
        .replace("deferrable", "deferred wait")
    }
    assert result["consumed_credits"] == 28 and result["consumed_usd"] == 0.14
    assert run.xcoms[("generate", -1, "seedance_task_id")] == result["task_id"]
    # The extra link opens this task instance's card in the Seedance view (it lasts longer
    # than the service's video URL), and says so from the start.
    assert run.xcoms[("generate", -1, "_link_SeedanceVideoLink")] == card_url(
        dag_id, run.run_id, "generate", -1
    )
    # The final result is also recorded for the gallery, with its outcome.
    assert run.xcoms[("generate", -1, "seedance_result")]["outcome"] == "succeeded"
    assert dag_env.ledger()["generate_requests"] == 1
    assert API_KEY not in capfd.readouterr().out


def test_no_wait_returns_right_after_submitting(dag_env) -> None:
    dag_env.hold()  # still rendering when read after the POST, however slow the machine
    try:
        run = run_dag(TEST_DAGS, "op_no_wait")
    finally:
        dag_env.hold(False)
    [result] = run.results("generate")
    assert run.state == "success" and result["status"] == "IN_PROGRESS" and result["video_url"] is None
    # While in flight the link opens the card, which names the task id; never an empty link.
    assert run.xcoms[("generate", -1, "_link_SeedanceVideoLink")] == card_url(
        "op_no_wait", run.run_id, "generate", -1
    )
    assert run.xcoms[("generate", -1, "seedance_result")]["outcome"] == "in_progress"


@pytest.mark.parametrize("mode", MODES)
def test_failed_generation_fails_without_retry(dag_env, mode: str, capfd) -> None:
    dag_env.add_faults(
        {
            "endpoint": "outcome",
            "fault": "failed",
            "times": 5,
            "error_message": "CONTENT_POLICY_VIOLATION: nope",
        }
    )
    run = run_dag(TEST_DAGS, f"op_failed_{mode}")
    assert run.state == "failed"
    assert run.tasks[("generate", -1)] == ("failed", 1)  # retries=2, but a FAILED generation is final
    assert dag_env.ledger()["generate_requests"] == 1
    out = capfd.readouterr().out
    assert "CONTENT_POLICY_VIOLATION: nope" in out and "not billed" in out


@pytest.mark.parametrize("mode", MODES)
def test_timeout_names_the_task_id(slow_dag_env, mode: str, capfd) -> None:
    run = run_dag(TEST_DAGS, f"op_timeout_{mode}")
    assert run.state == "failed"
    seedance_id = run.xcoms[("generate", -1, "seedance_task_id")]
    out = capfd.readouterr().out
    assert f"Seedance task {seedance_id} did not finish" in out


@pytest.mark.parametrize("mode", MODES)
def test_retry_reattaches_instead_of_paying_again(dag_env, mode: str) -> None:
    # The first try submits, then every status read fails: the try dies after paying.
    dag_env.add_faults({"endpoint": "status", "fault": "http_500", "times": 3})
    run = run_dag(TEST_DAGS, f"op_reattach_{mode}")
    assert run.state == "success"
    assert run.tasks[("generate", -1)] == ("success", 2)
    [result] = run.results("generate")
    assert result["status"] == "SUCCESS"
    assert dag_env.ledger()["generate_requests"] == 1  # the retry re-attached


@pytest.mark.parametrize("dag_id", ["op_bad_input", "op_bad_template"])
def test_bad_input_fails_before_any_http_and_is_not_retried(dag_env, dag_id: str, capfd) -> None:
    run = run_dag(TEST_DAGS, dag_id)
    assert run.state == "failed" and run.tasks[("generate", -1)] == ("failed", 1)
    ledger = dag_env.ledger()
    assert ledger["generate_requests"] == 0 and ledger["status_requests"] == 0
    assert "Invalid aspect_ratio" in capfd.readouterr().out


def test_prompt_from_a_template_file(dag_env) -> None:
    run = run_dag(TEST_DAGS, "op_prompt_file")
    [result] = run.results("generate")
    assert result["request"]["prompt"].startswith("A product video of the Cedar kettle, steam rising")
    assert "{{" not in result["request"]["prompt"]


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_sensor_waits_for_a_task_submitted_elsewhere(dag_env, mode: str) -> None:
    run = run_dag(TEST_DAGS, f"sensor_{mode}")
    assert run.state == "success"
    [submitted] = run.results("submit")
    [result] = run.results("wait")
    assert result["task_id"] == submitted["task_id"] and result["status"] == "SUCCESS"
    assert result["request"] == {"prompt": "watched elsewhere"}
    assert dag_env.ledger()["generate_requests"] == 1


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
@pytest.mark.parametrize(("soft", "state"), [(False, "failed"), (True, "skipped")])
def test_sensor_on_failed_generation(dag_env, mode: str, soft: bool, state: str) -> None:
    dag_env.add_faults({"endpoint": "outcome", "fault": "failed", "times": 1})
    run = run_dag(TEST_DAGS, f"sensor_{mode}{'_soft' if soft else ''}")
    assert run.tasks[("wait", -1)] == (state, 1)


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
@pytest.mark.parametrize(("soft", "state"), [(False, "failed"), (True, "skipped")])
def test_sensor_timeout(slow_dag_env, mode: str, soft: bool, state: str) -> None:
    run = run_dag(TEST_DAGS, f"sensor_timeout_{mode}{'_soft' if soft else ''}")
    assert run.tasks[("wait", -1)][0] == state


def test_spend_counts_a_generation_whose_end_is_unknown_as_unsettled(slow_dag_env) -> None:
    """Red-team of issue 18: the task gave up while the generation was still running. Spend
    cannot know its credits yet (0 billed so far), but must not read as settled: the report
    says how many generations may still be billed, so it does not silently differ from the
    invoice."""
    from airflow.utils.session import create_session

    from airflow_provider_seedance.plugins import queries

    run = run_dag(TEST_DAGS, "op_timeout_deferrable")
    assert run.xcoms[("generate", -1, "seedance_result")]["outcome"] == "unknown"
    one = queries.GenerationFilter(
        dag_ids=frozenset({"op_timeout_deferrable"}), run_id=run.run_id, task_id="generate", map_index=-1
    )
    with create_session() as session:
        report = queries.spend(session, one)
    assert report["total"]["generations"] == 1 and report["total"]["credits"] == 0
    assert report["unsettled_generations"] == 1, report
