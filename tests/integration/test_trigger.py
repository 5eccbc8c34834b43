"""SeedanceStatusTrigger driven directly, as the triggerer does, against the emulator process."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from types import SimpleNamespace

import pytest

from airflow_provider_seedance.exceptions import SeedanceError
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.operators.batch import SeedanceBatchGenerateOperator
from airflow_provider_seedance.triggers.batch import SeedanceBatchStatusTrigger
from airflow_provider_seedance.triggers.seedance import SeedanceStatusTrigger
from tests.conftest import API_KEY

pytestmark = pytest.mark.integration


def submit(prompt: str = "p") -> str:
    return SeedanceHook().submit(prompt)


async def collect(trigger: SeedanceStatusTrigger) -> list[dict]:
    return [event.payload async for event in trigger.run()]


def fresh(trigger: SeedanceStatusTrigger) -> SeedanceStatusTrigger:
    """Rebuild from serialize(), as a triggerer does after a restart."""
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_seedance.triggers.seedance.SeedanceStatusTrigger"
    return SeedanceStatusTrigger(**json.loads(json.dumps(kwargs)))


def test_serialize_round_trip_is_json_primitives_without_secrets() -> None:
    trigger = SeedanceStatusTrigger("seed-1", "my_conn", poll_interval=3, end_time=1_800_000_000.5)
    path, kwargs = trigger.serialize()
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert kwargs == {
        "seedance_task_id": "seed-1",
        "seedance_conn_id": "my_conn",
        "poll_interval": 3.0,
        "end_time": 1_800_000_000.5,
        "max_poll_failures": None,
        "max_outage": 180.0,
    }
    assert fresh(trigger).serialize() == (path, kwargs)
    dumped = json.dumps(kwargs).lower()
    assert API_KEY.lower() not in dumped and "authorization" not in dumped and "bearer" not in dumped


def test_one_success_event_with_the_task(emulator) -> None:
    task_id = submit()
    trigger = SeedanceStatusTrigger(task_id, poll_interval=0.2)
    trigger.task_instance = SimpleNamespace(task_id="airflow_task", dag_id="d", run_id="r", map_index=-1)
    events = asyncio.run(collect(trigger))
    assert len(events) == 1
    [event] = events
    assert event["status"] == "success"
    assert event["task"]["task_id"] == task_id and event["task"]["video_url"].endswith(".mp4")
    assert event["task"]["consumed_credits"] == 28
    assert emulator.ledger()["generate_requests"] == 1  # the trigger never POSTs


def test_failed_generation_gives_a_failed_event(emulator) -> None:
    emulator.add_faults({"endpoint": "outcome", "fault": "failed", "times": 1, "error_message": "moderation"})
    [event] = asyncio.run(collect(SeedanceStatusTrigger(submit(), poll_interval=0.2)))
    assert event["status"] == "failed" and event["task"]["error_message"] == "moderation"
    assert "moderation" in event["message"]


def test_transient_poll_failures_are_tolerated(emulator) -> None:
    task_id = submit()
    emulator.add_faults(
        {"endpoint": "status", "fault": "http_500", "times": 2},
        {"endpoint": "status", "fault": "http_429", "times": 1, "retry_after": 0},
        {"endpoint": "status", "fault": "drop", "times": 1},
        {"endpoint": "status", "fault": "malformed", "times": 1},
    )
    [event] = asyncio.run(collect(SeedanceStatusTrigger(task_id, poll_interval=0.2)))
    assert event["status"] == "success"


def test_permanent_failure_is_bounded_and_does_not_hot_loop(emulator) -> None:
    task_id = submit()
    emulator.add_faults({"endpoint": "status", "fault": "http_500", "times": 1000})
    before = emulator.ledger()["status_requests"]
    started = time.monotonic()
    [event] = asyncio.run(collect(SeedanceStatusTrigger(task_id, poll_interval=0.05, max_poll_failures=3)))
    elapsed = time.monotonic() - started
    sent = emulator.ledger()["status_requests"] - before
    assert event["status"] == "error" and "INTERNAL_ERROR" in event["message"]
    assert event["error_code"] == "INTERNAL_ERROR"
    assert sent == 4  # the first read and three retries, no more
    assert elapsed >= 0.05 * 3  # backed off between attempts rather than hammering


def test_unknown_task_is_an_error_event_not_a_retry_storm(emulator) -> None:
    before = emulator.ledger()["status_requests"]
    [event] = asyncio.run(collect(SeedanceStatusTrigger("seed-unknown", poll_interval=0.05)))
    assert event["status"] == "error" and event["error_code"] == "TASK_NOT_FOUND"
    assert emulator.ledger()["status_requests"] - before == 1


def test_wall_clock_deadline_gives_a_timeout_event_naming_the_task(emulator) -> None:
    task_id = submit()
    trigger = SeedanceStatusTrigger(task_id, poll_interval=0.1, end_time=time.time() + 0.3)
    [event] = asyncio.run(collect(trigger))
    assert event["status"] == "timeout" and task_id in event["message"]
    assert event["task"]["status"] == "IN_PROGRESS"


def test_deadline_survives_recreation(emulator) -> None:
    task_id = submit()
    original = SeedanceStatusTrigger(task_id, poll_interval=0.1, end_time=time.time() + 0.2)
    time.sleep(0.3)  # the triggerer was down past the deadline
    before = emulator.ledger()["status_requests"]
    [event] = asyncio.run(collect(fresh(original)))
    assert event["status"] == "timeout"
    assert emulator.ledger()["status_requests"] == before  # no poll once the deadline has passed


def test_two_copies_at_once_are_safe(emulator) -> None:
    """HA triggerers may run the same trigger twice: both read, neither submits."""
    task_id = submit()
    trigger = SeedanceStatusTrigger(task_id, poll_interval=0.1)

    async def both() -> list[list[dict]]:
        return list(await asyncio.gather(collect(trigger), collect(fresh(trigger))))

    first, second = asyncio.run(both())
    assert first[0]["status"] == second[0]["status"] == "success"
    assert emulator.ledger()["generate_requests"] == 1


def run_measuring_loop_lag(coro_factory):
    """Run a coroutine beside a 10 ms ticker; return (result, worst lag of the loop in seconds).

    Any synchronous I/O inside the coroutine stalls the ticker and shows up as lag.
    """

    async def main():
        loop = asyncio.get_running_loop()
        worst = 0.0

        async def ticker() -> None:
            nonlocal worst
            while True:
                before = loop.time()
                await asyncio.sleep(0.01)
                worst = max(worst, loop.time() - before - 0.01)

        tick = asyncio.create_task(ticker())
        await asyncio.sleep(0.02)
        try:
            result = await coro_factory()
            await asyncio.sleep(0.03)  # let the ticker observe the last stretch
        finally:
            tick.cancel()
        return result, worst

    return asyncio.run(main())


def test_lag_detector_catches_a_blocking_call() -> None:
    """Guards the next test: a sync sleep on the loop is seen."""

    async def blocking() -> None:
        time.sleep(0.3)

    _, lag = run_measuring_loop_lag(blocking)
    assert lag >= 0.25


def test_run_never_blocks_the_event_loop(emulator) -> None:
    task_id = submit()
    # A slow answer must be awaited, not waited for.
    emulator.add_faults({"endpoint": "status", "fault": "slow", "times": 1, "delay": 0.5})
    events, lag = run_measuring_loop_lag(lambda: collect(SeedanceStatusTrigger(task_id, poll_interval=0.2)))
    assert events[0]["status"] == "success"
    assert lag < 0.1


def test_on_kill_says_the_generation_cannot_be_cancelled(capsys, caplog) -> None:
    trigger = SeedanceStatusTrigger("seed-42")
    with caplog.at_level(logging.WARNING):
        asyncio.run(trigger.on_kill())
    # Airflow's logging may go through structlog (stdout) or the stdlib (caplog).
    lines = capsys.readouterr().out.splitlines() + [r.getMessage() for r in caplog.records]
    messages = [line for line in lines if "seed-42" in line]
    assert len(messages) == 1 and "no cancel API" in messages[0] and "billed" in messages[0]


def test_batch_trigger_reports_an_unusable_connection_as_one_error_event(monkeypatch) -> None:
    """Set-up failures end in an event the operator turns into a clear error, not a traceback."""
    conn = {"conn_type": "seedance", "host": "http://127.0.0.1:1"}  # no API key
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_NOKEY", json.dumps(conn))
    trigger = SeedanceBatchStatusTrigger(["seed-a", "seed-b"], "seedance_nokey", poll_interval=0.01)
    events = asyncio.run(collect(trigger))  # type: ignore[arg-type]
    assert len(events) == 1
    [event] = events
    assert event["status"] == "error" and event["pending"] == ["seed-a", "seed-b"]
    assert "has no API key" in event["message"]
    operator = SeedanceBatchGenerateOperator(task_id="b", requests=[{"prompt": "p"}])
    with pytest.raises(SeedanceError, match=r"has no API key.*a retry re-attaches"):
        operator.execute_complete({}, event)  # type: ignore[arg-type]
