"""The triggers' wait policy and their events, branch by branch (scripted hooks, no sleeping).

The promises: a trigger polls with the connection it was given and the deadline, outage limit
and failure cap it was built with; it sleeps between rounds by the retry policy (backing off
after failing rounds, never below a ``Retry-After``, never past the deadline); its events say
which generation ended how, and a deadline reached while the service was failing is a
timeout, not an error. ``asleep_until_deadline`` is replaced by a recorder, so "how long"
is asserted as the pause asked for, never by a clock.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest

from airflow_provider_seedance.exceptions import (
    SeedanceAuthError,
    SeedanceConfigurationError,
    SeedanceError,
    SeedanceRateLimitError,
    SeedanceServerError,
)
from airflow_provider_seedance.hooks.retry import RetryPolicy
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.models import SeedanceTask
from airflow_provider_seedance.triggers import batch as batch_module
from airflow_provider_seedance.triggers import seedance as single_module
from airflow_provider_seedance.triggers.batch import SeedanceBatchStatusTrigger
from airflow_provider_seedance.triggers.seedance import SeedanceStatusTrigger

FAR = 4_000_000_000.0  # an end_time far in the future (epoch seconds)


class Recorder:
    """What the scripted hooks were built with and asked, and the pauses the trigger requested."""

    def __init__(self) -> None:
        self.built: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self.reads: list[tuple[str, dict[str, Any]]] = []
        self.pauses: list[tuple[float, float | None]] = []


def scripted_hook(
    script: dict[str, list[Any]], rec: Recorder, enter_error: BaseException | None = None
) -> type:
    queues = {task_id: deque(answers) for task_id, answers in script.items()}

    class ScriptedHook:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            rec.built.append((args, kwargs))
            # the real hook's retry policy for these arguments (the batch trigger backs off by it)
            self.retry_policy = SeedanceHook(*args, **kwargs).retry_policy

        async def __aenter__(self) -> ScriptedHook:
            if enter_error is not None:
                raise enter_error
            return self

        async def __aexit__(self, *_: object) -> None:
            return None

        async def aget_status(self, task_id: str, **kwargs: Any) -> SeedanceTask:
            rec.reads.append((task_id, kwargs))
            queue = queues[task_id]
            answer = queue.popleft() if len(queue) > 1 else queue[0]
            if isinstance(answer, BaseException):
                raise answer
            return SeedanceTask(
                task_id=task_id,
                status=answer,
                video_urls=["https://cdn.example.com/v.mp4"] if answer == "SUCCESS" else [],
                consumed_credits=8 if answer == "SUCCESS" else 0,
                error_message="moderation" if answer == "FAILED" else None,
            )

    return ScriptedHook


@pytest.fixture
def rec(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()

    async def no_sleep(seconds: float, deadline: float | None) -> None:
        recorder.pauses.append((seconds, deadline))

    monkeypatch.setattr(single_module, "asleep_until_deadline", no_sleep)
    monkeypatch.setattr(batch_module, "asleep_until_deadline", no_sleep)
    return recorder


async def events_of(trigger: Any) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


def busy() -> SeedanceServerError:
    return SeedanceServerError(503, "INTERNAL_ERROR", "busy")


# ============================================================== one generation
async def test_single_trigger_polls_with_its_connection_deadline_outage_and_failure_cap(
    rec: Recorder,
) -> None:
    trigger = SeedanceStatusTrigger(
        "gen-1", "my_conn", poll_interval=5, end_time=FAR, max_poll_failures=3, max_outage=90
    )
    trigger.hook_class = scripted_hook({"gen-1": ["IN_PROGRESS", "SUCCESS"]}, rec)  # type: ignore[assignment]

    await events_of(trigger)

    [(args, kwargs)] = rec.built
    assert args == ("my_conn",)
    # backoff between failed reads: starts at the poll interval (at most 2 s), grows to at
    # least a minute (six poll intervals for slow polls); the outage limit is the trigger's
    assert kwargs == {"retry_min_wait": 2.0, "retry_max_wait": 60.0, "max_outage": 90.0}
    assert [kw for _, kw in rec.reads] == [{"deadline": FAR, "outage": 90.0, "attempts": 4}] * 2
    assert rec.pauses == [(5.0, FAR), (5.0, FAR)]


def test_single_trigger_backoff_bounds_follow_a_slow_poll_interval() -> None:
    hook = SeedanceStatusTrigger("gen-1", poll_interval=30)._hook()
    assert hook.retry_min_wait == 2.0 and hook.retry_max_wait == 180.0
    hook = SeedanceStatusTrigger("gen-1", poll_interval=1)._hook()
    assert hook.retry_min_wait == 1.0 and hook.retry_max_wait == 60.0


@pytest.mark.parametrize(("poll_interval", "max_wait"), [(1, 60.0), (30, 180.0), (86_400, 3600.0)])
async def test_both_triggers_back_off_to_six_poll_intervals_within_a_minute_and_an_hour(
    poll_interval: float, max_wait: float, rec: Recorder
) -> None:
    """One rule for the longest pause of a failing poller, single or batch (a poll interval of
    days is no backoff; a batch polled every 30 minutes does not come back every 5)."""
    single = SeedanceStatusTrigger("gen-1", poll_interval=poll_interval)._hook()
    assert single.retry_max_wait == max_wait
    batch = SeedanceBatchStatusTrigger(["gen-1"], poll_interval=poll_interval)
    batch.hook_class = scripted_hook({"gen-1": ["SUCCESS"]}, rec)  # type: ignore[assignment]
    await events_of(batch)
    [(_, kwargs)] = rec.built
    assert kwargs["retry_max_wait"] == max_wait


async def test_single_trigger_without_a_failure_cap_is_bounded_by_the_outage_only(rec: Recorder) -> None:
    trigger = SeedanceStatusTrigger("gen-1", poll_interval=0.001)
    trigger.hook_class = scripted_hook({"gen-1": ["SUCCESS"]}, rec)  # type: ignore[assignment]

    await events_of(trigger)

    assert rec.reads[0][1]["attempts"] is None and rec.reads[0][1]["deadline"] is None


def test_single_trigger_defaults_poll_every_ten_seconds_like_the_operator() -> None:
    _, kwargs = SeedanceStatusTrigger("gen-1").serialize()
    assert kwargs["poll_interval"] == 10.0 and kwargs["max_poll_failures"] is None


async def test_single_trigger_past_its_deadline_before_any_read_times_out_naming_the_task(
    rec: Recorder,
) -> None:
    trigger = SeedanceStatusTrigger("gen-1", poll_interval=0.001, end_time=1.0)
    trigger.hook_class = scripted_hook({"gen-1": ["SUCCESS"]}, rec)  # type: ignore[assignment]

    [event] = await events_of(trigger)

    assert rec.reads == [], "a trigger past its deadline reads nothing"
    assert event["status"] == "timeout"
    assert event["task"]["task_id"] == "gen-1" and event["task"]["status"] == "UNKNOWN"
    assert (
        "gen-1" in event["message"] and "SeedanceStatusSensor(seedance_task_id='gen-1')" in event["message"]
    )
    assert "UNKNOWN" in event["message"]


async def test_single_trigger_events_carry_a_message_naming_the_task_and_its_end(rec: Recorder) -> None:
    trigger = SeedanceStatusTrigger("gen-1", poll_interval=0.001)
    trigger.hook_class = scripted_hook({"gen-1": ["SUCCESS"]}, rec)  # type: ignore[assignment]
    [done] = await events_of(trigger)
    assert done["message"] == "Seedance task gen-1 succeeded"
    assert done["result"]["task_id"] == "gen-1" and done["result"]["consumed_credits"] == 8

    trigger = SeedanceStatusTrigger("gen-2", poll_interval=0.001)
    hook = scripted_hook({"gen-2": ["FAILED"]}, rec)

    async def failed_without_message(self: Any, task_id: str, **_: Any) -> SeedanceTask:
        return SeedanceTask(task_id=task_id, status="FAILED")

    hook.aget_status = failed_without_message  # type: ignore[attr-defined]
    trigger.hook_class = hook  # type: ignore[assignment]
    [failed] = await events_of(trigger)
    assert failed["status"] == "failed" and failed["message"] == "Seedance task gen-2 FAILED: no message"


async def test_a_failing_service_until_the_deadline_is_a_timeout_not_an_error(rec: Recorder) -> None:
    # the deadline comes before the outage limit would: the wait ran out of time
    trigger = SeedanceStatusTrigger("gen-1", poll_interval=0.001, end_time=FAR, max_outage=FAR)
    trigger.hook_class = scripted_hook({"gen-1": ["IN_PROGRESS", busy()]}, rec)  # type: ignore[assignment]

    [event] = await events_of(trigger)

    assert event["status"] == "timeout"
    assert event["task"]["task_id"] == "gen-1" and event["task"]["status"] == "IN_PROGRESS"
    assert "still IN_PROGRESS at its deadline" in event["message"]


async def test_a_failing_service_past_the_outage_limit_before_the_deadline_is_an_error(rec: Recorder) -> None:
    trigger = SeedanceStatusTrigger("gen-1", poll_interval=0.001, end_time=FAR, max_outage=60)
    trigger.hook_class = scripted_hook({"gen-1": [busy()]}, rec)  # type: ignore[assignment]

    [event] = await events_of(trigger)

    assert event["status"] == "error" and event["error_code"] == "INTERNAL_ERROR"
    assert event["message"].startswith("Polling Seedance task gen-1 failed:")


async def test_a_failing_service_without_a_deadline_is_an_error(rec: Recorder) -> None:
    trigger = SeedanceStatusTrigger("gen-1", poll_interval=0.001)
    trigger.hook_class = scripted_hook({"gen-1": [busy()]}, rec)  # type: ignore[assignment]
    [event] = await events_of(trigger)
    assert event["status"] == "error"


async def test_a_permanent_error_is_an_error_even_before_the_deadline(rec: Recorder) -> None:
    trigger = SeedanceStatusTrigger("gen-1", poll_interval=0.001, end_time=FAR, max_outage=FAR)
    error = SeedanceAuthError(401, "INVALID_API_KEY", "bad key")
    trigger.hook_class = scripted_hook({"gen-1": [error]}, rec)  # type: ignore[assignment]
    [event] = await events_of(trigger)
    assert event["status"] == "error" and event["error_code"] == "INVALID_API_KEY"


async def test_an_unknown_status_is_logged_once_however_many_polls_report_it(
    rec: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    trigger = SeedanceStatusTrigger("gen-1", poll_interval=0.001)
    script = ["QUEUED", "QUEUED", "QUEUED", "IN_PROGRESS", "IN_PROGRESS", "SUCCESS"]
    trigger.hook_class = scripted_hook({"gen-1": script}, rec)  # type: ignore[assignment]

    await events_of(trigger)

    out = capsys.readouterr()
    lines = [line for line in (out.out + out.err).splitlines() if "unknown status" in line]
    assert len(lines) == 1 and "QUEUED" in lines[0]


# ============================================================== a batch
def test_a_compact_task_dict_keeps_what_the_worker_needs_under_the_task_dict_names() -> None:
    task = SeedanceTask("gen-1", "FAILED", video_urls=[], consumed_credits=0, error_message="moderation")
    assert task.to_dict(compact=True) == {
        "task_id": "gen-1",
        "status": "FAILED",
        "video_urls": [],
        "consumed_credits": 0,
        "error_message": "moderation",
    }
    # a compact task reads back as the task it came from
    assert SeedanceTask.from_dict(task.to_dict(compact=True)) == task


def test_a_compact_task_dict_keeps_a_request_and_a_creation_time_when_there_are_some() -> None:
    task = SeedanceTask(
        "gen-2",
        "SUCCESS",
        video_urls=["https://cdn.example.com/a.mp4", "https://cdn.example.com/b.mp4"],
        consumed_credits=28,
        created_at="2026-01-01T00:00:00Z",
        request={"prompt": "a fox"},
    )
    compact = task.to_dict(compact=True)
    assert compact == {k: v for k, v in task.to_dict().items() if k != "video_url"}
    assert SeedanceTask.from_dict(compact) == task
    assert SeedanceTask.from_dict(compact).video_url == "https://cdn.example.com/a.mp4"


def test_batch_trigger_defaults() -> None:
    _, kwargs = SeedanceBatchStatusTrigger(["gen-1"]).serialize()
    assert kwargs["poll_interval"] == 10.0 and kwargs["max_concurrency"] == 32


async def test_batch_trigger_reads_each_generation_once_per_round_on_its_connection(rec: Recorder) -> None:
    trigger = SeedanceBatchStatusTrigger(["gen-1", "gen-2", "gen-1"], "my_conn", poll_interval=0.001)
    trigger.hook_class = scripted_hook(  # type: ignore[assignment]
        {"gen-1": ["IN_PROGRESS", "SUCCESS"], "gen-2": ["SUCCESS"]}, rec
    )

    [event] = await events_of(trigger)

    # one read per attempt: the trigger's own rounds are the retries, backing off by the hook's
    # policy from the poll interval to six of them (at least a minute), giving a generation up
    # after max_outage
    assert rec.built == [
        (
            ("my_conn",),
            {"status_retries": 1, "retry_min_wait": 0.001, "retry_max_wait": 60.0, "max_outage": 180.0},
        )
    ]
    assert [task_id for task_id, _ in rec.reads] == ["gen-1", "gen-2", "gen-1"]
    assert event["status"] == "done" and sorted(event["tasks"]) == ["gen-1", "gen-2"]
    assert event["errors"] == {} and event["pending"] == []


async def test_batch_trigger_sleeps_the_poll_interval_until_the_deadline_between_good_rounds(
    rec: Recorder,
) -> None:
    trigger = SeedanceBatchStatusTrigger(["gen-1"], poll_interval=7, end_time=FAR)
    trigger.hook_class = scripted_hook({"gen-1": ["IN_PROGRESS", "IN_PROGRESS", "SUCCESS"]}, rec)  # type: ignore[assignment]

    await events_of(trigger)

    assert rec.pauses == [(7.0, FAR)] * 3


async def test_batch_trigger_backs_off_after_failing_rounds_and_resets_after_a_good_one(
    rec: Recorder,
) -> None:
    trigger = SeedanceBatchStatusTrigger(["gen-1"], poll_interval=1)
    script = [busy(), busy(), "IN_PROGRESS", "SUCCESS"]
    trigger.hook_class = scripted_hook({"gen-1": script}, rec)  # type: ignore[assignment]

    [event] = await events_of(trigger)

    pauses = [seconds for seconds, _ in rec.pauses]
    assert pauses[0] == 1.0  # before the first read
    assert 2.0 <= pauses[1] <= 3.0  # after one failing round: 2 x interval (+ jitter <= interval)
    assert 4.0 <= pauses[2] <= 5.0  # after two: 4 x interval
    assert pauses[3] == 1.0  # a good round resets the backoff
    assert event["status"] == "done" and event["tasks"]["gen-1"]["status"] == "SUCCESS"


async def test_batch_trigger_never_polls_sooner_than_a_retry_after(rec: Recorder) -> None:
    trigger = SeedanceBatchStatusTrigger(["gen-1"], poll_interval=0.001)
    limited = SeedanceRateLimitError(429, "RATE_LIMITED", "slow down", retry_after=42.0)
    trigger.hook_class = scripted_hook({"gen-1": [limited, "SUCCESS"]}, rec)  # type: ignore[assignment]

    await events_of(trigger)

    assert rec.pauses[0][0] == 0.001 and rec.pauses[1][0] >= 42.0


async def test_batch_trigger_waits_the_longest_retry_after_of_a_round(rec: Recorder) -> None:
    trigger = SeedanceBatchStatusTrigger(["gen-1", "gen-2", "gen-3"], poll_interval=0.001)
    slow = SeedanceRateLimitError(429, "RATE_LIMITED", "slow down", retry_after=42.0)
    quick = SeedanceRateLimitError(429, "RATE_LIMITED", "slow down", retry_after=7.0)
    trigger.hook_class = scripted_hook(  # type: ignore[assignment]
        {"gen-1": [quick, "SUCCESS"], "gen-2": [slow, "SUCCESS"], "gen-3": [busy(), "SUCCESS"]}, rec
    )

    [event] = await events_of(trigger)

    assert 42.0 <= rec.pauses[1][0] < 43.0  # not the first error's 7 s, not more than asked
    assert sorted(event["tasks"]) == ["gen-1", "gen-2", "gen-3"]


def test_batch_pause_is_the_interval_after_a_good_round_and_the_policy_backoff_after_bad_ones() -> None:
    trigger = SeedanceBatchStatusTrigger(["gen-1"], poll_interval=3)
    policy = RetryPolicy(min_wait=3, max_wait=300)
    limited = SeedanceRateLimitError(429, "RATE_LIMITED", "slow down", retry_after=100.0)
    assert trigger._pause(policy, 0, []) == 3.0
    assert 6.0 <= trigger._pause(policy, 1, [busy()]) <= 9.0
    assert 12.0 <= trigger._pause(policy, 2, [busy()]) <= 15.0
    assert trigger._pause(policy, 1, [busy(), limited]) == 100.0


async def test_batch_trigger_gives_a_generation_up_after_its_failure_cap_and_keeps_the_others(
    rec: Recorder,
) -> None:
    trigger = SeedanceBatchStatusTrigger(["gen-1", "gen-2"], poll_interval=0.001, max_poll_failures=2)
    trigger.hook_class = scripted_hook(  # type: ignore[assignment]
        {"gen-1": [busy()], "gen-2": ["IN_PROGRESS", "IN_PROGRESS", "IN_PROGRESS", "SUCCESS"]}, rec
    )

    [event] = await events_of(trigger)

    assert [t for t, _ in rec.reads].count("gen-1") == 3  # the cap is failures *beyond* 2
    assert event["errors"]["gen-1"].startswith("status unreadable 3 times in a row for 0s:")
    assert event["tasks"]["gen-2"]["status"] == "SUCCESS" and event["pending"] == []


async def test_batch_trigger_failure_count_restarts_after_a_good_read(rec: Recorder) -> None:
    trigger = SeedanceBatchStatusTrigger(["gen-1"], poll_interval=0.001, max_poll_failures=1)
    script = [busy(), "IN_PROGRESS", busy(), "IN_PROGRESS", "SUCCESS"]
    trigger.hook_class = scripted_hook({"gen-1": script}, rec)  # type: ignore[assignment]

    [event] = await events_of(trigger)

    assert event["errors"] == {} and event["tasks"]["gen-1"]["status"] == "SUCCESS"


async def test_batch_trigger_outage_is_measured_from_the_first_failure_in_a_row(
    rec: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # per failing read: when the failure began (kept from the first), the outage check, the message
    clock = iter([1000.0, 1000.0, 1050.0, 1050.0, 1100.0, 1100.0, 1100.0])
    monkeypatch.setattr(batch_module.time, "time", lambda: next(clock))
    trigger = SeedanceBatchStatusTrigger(["gen-1"], poll_interval=0.001, max_outage=100)
    trigger.hook_class = scripted_hook({"gen-1": [busy()]}, rec)  # type: ignore[assignment]

    [event] = await events_of(trigger)

    assert len(rec.reads) == 3  # at 1000 and 1050 still within the outage; at 1100 it is over
    assert "status unreadable 3 times in a row for 100s" in event["errors"]["gen-1"]


async def test_batch_trigger_past_its_deadline_reports_the_generations_still_running(rec: Recorder) -> None:
    trigger = SeedanceBatchStatusTrigger(["gen-1", "gen-2"], poll_interval=0.001, end_time=1.0)
    trigger.hook_class = scripted_hook({"gen-1": ["SUCCESS"], "gen-2": ["SUCCESS"]}, rec)  # type: ignore[assignment]

    [event] = await events_of(trigger)

    assert event == {"status": "timeout", "tasks": {}, "errors": {}, "pending": ["gen-1", "gen-2"]}


async def test_batch_trigger_reports_a_set_up_failure_as_an_error_event_with_the_pending_ids(
    rec: Recorder,
) -> None:
    trigger = SeedanceBatchStatusTrigger(["gen-1", "gen-2"], poll_interval=0.001)
    error = SeedanceConfigurationError("Connection 'seedance_default' could not be loaded")
    trigger.hook_class = scripted_hook({}, rec, enter_error=error)  # type: ignore[assignment]

    [event] = await events_of(trigger)

    assert event == {
        "status": "error",
        "message": f"Polling the Seedance batch failed: {error}",
        "pending": ["gen-1", "gen-2"],
    }


async def test_batch_trigger_reports_a_permanent_read_error_per_generation(rec: Recorder) -> None:
    trigger = SeedanceBatchStatusTrigger(["gen-1", "gen-2"], poll_interval=0.001)
    error: SeedanceError = SeedanceAuthError(401, "INVALID_API_KEY", "bad key")
    trigger.hook_class = scripted_hook({"gen-1": [error], "gen-2": ["FAILED"]}, rec)  # type: ignore[assignment]

    [event] = await events_of(trigger)

    assert event["errors"] == {"gen-1": str(error)}
    assert event["tasks"]["gen-2"]["error_message"] == "moderation"
