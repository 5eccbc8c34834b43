"""SeedanceStatusSensor, branch by branch, with a scripted hook (no HTTP, no Airflow run).

The real-Airflow and real-emulator runs of the sensor live in tests/integration and tests/dag;
these pin each decision the sensor makes: when a poke is done, how FAILED and soft_fail end,
what a deferral carries, how each trigger event ends, and what a failure records.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from airflow_provider_seedance._compat import AirflowSensorTimeout, AirflowSkipException, TaskDeferred
from airflow_provider_seedance.exceptions import (
    SeedanceError,
    SeedanceGenerationFailedError,
    SeedanceServerError,
    SeedanceTaskNotFoundError,
)
from airflow_provider_seedance.hooks.delivery import DownloadResult
from airflow_provider_seedance.hooks.retry import RetryPolicy
from airflow_provider_seedance.models import SeedanceTask
from airflow_provider_seedance.results import Outcome
from airflow_provider_seedance.sensors.seedance import SeedanceStatusSensor
from airflow_provider_seedance.task_support import XCOM_LINK, XCOM_RESULT, XCOM_TASK_ID
from airflow_provider_seedance.triggers.seedance import SeedanceStatusTrigger
from tests.unit.fakes import FakeHook, Store, context, scripted_task, use
from tests.unit.hooks.test_hook_submit_status import Answer, make_hook, status_body


class DeliveringHook(FakeHook):
    """A fake hook that also "delivers": records the destination, never touches a disk."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deliveries: list[tuple[str, Any]] = []

    def download(self, task: SeedanceTask, destination: Any) -> DownloadResult:
        self.deliveries.append((task.task_id, destination))
        return DownloadResult(output_path=str(destination), bytes=3, sha256="abc", source_url=task.video_url)


def sensor(hook: FakeHook, **kwargs: Any) -> SeedanceStatusSensor:
    kwargs.setdefault("seedance_task_id", "gen-1")
    return use(SeedanceStatusSensor(task_id="watch", **kwargs), hook)


def event(status: str, task_status: str = "SUCCESS", task_id: str = "gen-1", message: str = "") -> dict:
    return {"status": status, "task": scripted_task(task_id, task_status).to_dict(), "message": message}


# ------------------------------------------------------------------ construction
def test_poll_interval_is_the_default_poke_interval() -> None:
    assert sensor(FakeHook(), poll_interval=3.0).poke_interval == 3.0


def test_an_explicit_poke_interval_wins_over_poll_interval() -> None:
    assert sensor(FakeHook(), poll_interval=3.0, poke_interval=7.0).poke_interval == 7.0


# ------------------------------------------------------------------ poke
def test_poke_on_a_running_generation_is_not_done_but_pushes_the_link() -> None:
    ctx = context(Store())
    answer = sensor(FakeHook(statuses={"gen-1": ["IN_PROGRESS"]})).poke(ctx)
    assert answer.is_done is False
    assert ctx["ti"].xcoms[XCOM_TASK_ID] == "gen-1"
    assert ctx["ti"].xcoms[XCOM_LINK]["status"] == "IN_PROGRESS"
    assert XCOM_RESULT not in ctx["ti"].xcoms


def test_poke_on_success_returns_the_result_and_records_it() -> None:
    ctx = context(Store())
    answer = sensor(FakeHook()).poke(ctx)
    assert answer.is_done is True
    assert answer.xcom_value["task_id"] == "gen-1"
    assert answer.xcom_value["video_url"] == "https://cdn.fake.seedance.test/v.mp4"
    assert answer.xcom_value["consumed_credits"] == 8
    assert ctx["ti"].xcoms[XCOM_RESULT]["task_id"] == "gen-1"


def test_the_watched_id_is_read_without_surrounding_whitespace() -> None:
    hook = FakeHook()
    sensor(hook, seedance_task_id="  gen-1\n").poke(context(Store()))
    assert hook.reads == ["gen-1"]


def test_poke_on_failed_generation_fails_with_the_generation_error_and_records_no_cost() -> None:
    ctx = context(Store())
    with pytest.raises(SeedanceGenerationFailedError, match="moderation"):
        sensor(FakeHook(statuses={"gen-1": ["FAILED"]})).poke(ctx)
    recorded = ctx["ti"].xcoms[XCOM_RESULT]
    assert recorded["outcome"] == Outcome.GENERATION_FAILED
    assert recorded["consumed_credits"] == 0


def test_poke_on_failed_generation_with_soft_fail_skips() -> None:
    with pytest.raises(AirflowSkipException, match="soft_fail"):
        sensor(FakeHook(statuses={"gen-1": ["FAILED"]}), soft_fail=True).poke(context(Store()))


def test_a_status_read_error_propagates_and_records_the_watched_generation_not_nothing_sent() -> None:
    ctx = context(Store())
    with pytest.raises(SeedanceError, match="boom"):
        sensor(FakeHook(status_errors={"gen-1": SeedanceError("boom")})).poke(ctx)
    result = ctx["ti"].xcoms[XCOM_RESULT]
    assert result["outcome"] == Outcome.UNKNOWN and result["task_id"] == "gen-1"
    assert result["consumed_credits"] == 0 and "submitted elsewhere" in result["error_message"]
    assert "boom" in result["error_message"]


def test_a_deferrable_sensors_failed_first_read_names_the_watched_generation() -> None:
    ctx = context(Store())
    with pytest.raises(SeedanceError, match="boom"):
        sensor(FakeHook(status_errors={"gen-1": SeedanceError("boom")}), deferrable=True).execute(ctx)
    result = ctx["ti"].xcoms[XCOM_RESULT]
    assert result["outcome"] == Outcome.UNKNOWN and result["task_id"] == "gen-1"


# ------------------------------------------------------------------ delivery
def test_success_delivers_to_output_path_and_the_result_says_where() -> None:
    hook = DeliveringHook()
    answer = sensor(hook, output_path="/videos/a.mp4").poke(context(Store()))
    assert hook.deliveries == [("gen-1", "/videos/a.mp4")]
    assert answer.xcom_value["output_path"] == "/videos/a.mp4"
    assert answer.xcom_value["sha256"] == "abc"


def test_an_output_path_that_rendered_empty_delivers_nothing() -> None:
    hook = DeliveringHook()
    answer = sensor(hook, output_path="").poke(context(Store()))
    assert hook.deliveries == []
    assert "output_path" not in answer.xcom_value


# ------------------------------------------------------------------ deferrable execute
def test_deferrable_execute_on_a_finished_generation_returns_without_deferring() -> None:
    result = sensor(FakeHook(), deferrable=True).execute(context(Store()))
    assert result["task_id"] == "gen-1"


def test_deferrable_execute_defers_to_the_status_trigger_with_the_sensor_timeout_as_deadline() -> None:
    watcher = sensor(
        FakeHook(statuses={"gen-1": ["IN_PROGRESS"]}),
        deferrable=True,
        timeout=600,
        poll_interval=4.0,
        seedance_conn_id="my_conn",
    )
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        watcher.execute(context(Store()))
    after = time.time()
    trigger = deferred.value.trigger
    assert isinstance(trigger, SeedanceStatusTrigger)
    _, kwargs = trigger.serialize()
    assert kwargs["seedance_task_id"] == "gen-1"
    assert kwargs["seedance_conn_id"] == "my_conn"
    assert kwargs["poll_interval"] == 4.0
    assert before + 600 <= kwargs["end_time"] <= after + 600
    assert deferred.value.method_name == "execute_complete"


def test_deferring_records_no_failure() -> None:
    ctx = context(Store())
    with pytest.raises(TaskDeferred):
        sensor(FakeHook(statuses={"gen-1": ["IN_PROGRESS"]}), deferrable=True).execute(ctx)
    assert XCOM_RESULT not in ctx["ti"].xcoms


# ------------------------------------------------------------------ execute_complete
def test_success_event_returns_the_result_and_pushes_the_link() -> None:
    ctx = context(Store())
    result = sensor(FakeHook()).execute_complete(ctx, event("success"))
    assert result["task_id"] == "gen-1"
    assert ctx["ti"].xcoms[XCOM_LINK]["status"] == "SUCCESS"


def test_failed_event_fails_with_the_generation_error() -> None:
    with pytest.raises(SeedanceGenerationFailedError):
        sensor(FakeHook()).execute_complete(context(Store()), event("failed", "FAILED"))


def test_timeout_event_fails_as_a_sensor_timeout() -> None:
    with pytest.raises(AirflowSensorTimeout, match="still running"):
        sensor(FakeHook()).execute_complete(
            context(Store()), event("timeout", "IN_PROGRESS", message="still running")
        )


def test_timeout_event_with_soft_fail_skips() -> None:
    with pytest.raises(AirflowSkipException, match="soft_fail"):
        sensor(FakeHook(), soft_fail=True).execute_complete(context(Store()), event("timeout", "IN_PROGRESS"))


def test_error_event_fails_with_its_message_and_records_what_was_last_seen() -> None:
    ctx = context(Store())
    with pytest.raises(SeedanceError, match="poll budget spent"):
        sensor(FakeHook()).execute_complete(ctx, event("error", "IN_PROGRESS", message="poll budget spent"))
    recorded = ctx["ti"].xcoms[XCOM_RESULT]
    assert recorded["outcome"] == Outcome.UNKNOWN
    assert recorded["task_id"] == "gen-1"


def test_an_event_for_another_task_is_refused() -> None:
    with pytest.raises(SeedanceError, match="expected gen-1"):
        sensor(FakeHook()).execute_complete(context(Store()), event("success", task_id="gen-9"))


@pytest.mark.parametrize("bad", [None, {"status": "nonsense", "task": {"task_id": "gen-1"}}])
def test_a_missing_or_unknown_event_fails_loudly(bad: Any) -> None:
    with pytest.raises(SeedanceError, match="trigger"):
        sensor(FakeHook()).execute_complete(context(Store()), bad)


def test_a_poke_reads_through_an_outage_as_every_wait_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """Poke mode follows the wait policy (failures tolerated for the hook's ``max_outage``), not
    ``status_retries`` reads: a status endpoint down for a few reads does not fail the sensor."""
    monkeypatch.setattr("time.sleep", lambda _s: None)
    busy = Answer(503, {"code": 503, "message": "INTERNAL_ERROR: busy"})
    hook, adapter = make_hook(busy, busy, busy, busy, status_body(task_id="gen-1", status="IN_PROGRESS"))
    poking = SeedanceStatusSensor(task_id="wait", seedance_task_id="gen-1", poll_interval=1.0)
    poking.__dict__["hook"] = hook

    assert poking.poke(context(Store())).is_done is False
    assert len(adapter.sent) == 5, "four failures in a row, more than status_retries=3, then the status"


def test_a_poke_reads_with_the_tasks_outage_limit() -> None:
    hook = FakeHook(statuses={"gen-1": ["IN_PROGRESS"]}, retry_policy=RetryPolicy(max_outage=600))
    sensor(hook).poke(context(Store()))
    assert hook.outages == [600.0]


def test_a_poke_never_reads_through_an_outage_past_the_sensors_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Even with an outage never given up (``max_outage`` infinite), a poke stops reading when the
    sensor's own ``timeout`` ends."""
    monkeypatch.setattr("time.sleep", lambda _s: None)
    busy = Answer(503, {"code": 503, "message": "INTERNAL_ERROR: busy"})
    hook, adapter = make_hook(*[busy] * 5, status_body(task_id="gen-1", status="IN_PROGRESS"))
    hook.retry_policy = RetryPolicy(attempts=3, min_wait=0, max_wait=0, max_outage=float("inf"))
    poking = SeedanceStatusSensor(task_id="wait", seedance_task_id="gen-1", poll_interval=1.0, timeout=0)
    poking.__dict__["hook"] = hook
    with pytest.raises(SeedanceError):
        poking.poke(context(Store()))
    assert len(adapter.sent) == 1


def test_a_reschedule_mode_poke_reads_status_retries_times_and_frees_its_slot() -> None:
    """Between reschedules no process holds the wait: each poke reads as a single read does."""
    hook = FakeHook(statuses={"gen-1": ["IN_PROGRESS"]}, retry_policy=RetryPolicy(max_outage=600))
    sensor(hook, mode="reschedule").poke(context(Store()))
    assert hook.outages == [None]


def test_a_deferrable_sensor_that_cannot_read_at_first_defers_to_the_trigger() -> None:
    """The trigger reads through an outage (``max_outage``); the worker does not wait for it."""
    hook = FakeHook(statuses={"gen-1": [SeedanceServerError(503, "SERVICE_UNAVAILABLE")]})
    before = time.time()
    with pytest.raises(TaskDeferred) as info:
        sensor(hook, deferrable=True, timeout=600).execute(context(Store()))
    trigger = info.value.trigger
    assert trigger.seedance_task_id == "gen-1" and hook.outages == [None]
    assert before + 600 <= trigger.end_time <= time.time() + 600


def test_a_deferrable_sensor_fails_at_once_on_a_definite_answer() -> None:
    hook = FakeHook(status_errors={"gen-1": SeedanceTaskNotFoundError(404, "TASK_NOT_FOUND")})
    with pytest.raises(SeedanceTaskNotFoundError):
        sensor(hook, deferrable=True).execute(context(Store()))
