"""The triggers end on the guide's terminal statuses only, and say which one.

A status the guide does not define (the service may add some) means "not finished yet": a
trigger that took it for success would deliver nothing and report a video that does not exist;
one that took it for failure would let ``resubmit_on_failure`` pay again. The hooks are narrow
scripted fakes (no HTTP, no real sleeping: ``poll_interval=0.001``); the real polling against the
emulator is in ``tests/integration/test_trigger.py``.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest

from airflow_provider_seedance.exceptions import (
    SeedanceAuthError,
    SeedanceError,
    SeedanceServerError,
    SeedanceTaskNotFoundError,
)
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.models import SeedanceTask
from airflow_provider_seedance.triggers.batch import SeedanceBatchStatusTrigger
from airflow_provider_seedance.triggers.seedance import SeedanceStatusTrigger
from tests.unit.fakes import scripted_task

Script = dict[str, list["str | SeedanceError"]]


def scripted_hook(script: Script, reads: list[str]) -> type:
    """A hook class whose ``aget_status`` answers from ``script`` (the last answer repeats)."""
    queues = {task_id: deque(answers) for task_id, answers in script.items()}

    class ScriptedHook:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.retry_policy = SeedanceHook(*args, **kwargs).retry_policy  # the real hook's backoff

        async def __aenter__(self) -> ScriptedHook:
            return self

        async def __aexit__(self, *_: object) -> None:
            return None

        def describe_cost(self, credits: int | None) -> str:
            return f"{credits or 0} credits"

        async def aget_status(self, task_id: str, **_: Any) -> SeedanceTask:
            reads.append(task_id)
            queue = queues[task_id]
            answer = queue.popleft() if len(queue) > 1 else queue[0]
            if isinstance(answer, BaseException):
                raise answer
            return scripted_task(task_id, answer)

    return ScriptedHook


async def events_of(trigger: Any) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


# ---------------------------------------------------------------- one generation
@pytest.mark.parametrize(
    ("script", "status", "reads"),
    [
        (["SUCCESS"], "success", 1),
        (["FAILED"], "failed", 1),
        (["IN_PROGRESS", "SUCCESS"], "success", 2),
        (["QUEUED", "FAILED"], "failed", 2),
        (["QUEUED", "RENDERING", "SUCCESS"], "success", 3),
    ],
)
async def test_single_trigger_fires_once_on_a_terminal_status_only(
    script: list[str], status: str, reads: int
) -> None:
    seen: list[str] = []
    trigger = SeedanceStatusTrigger("gen-1", poll_interval=0.001)
    trigger.hook_class = scripted_hook({"gen-1": list(script)}, seen)  # type: ignore[assignment]
    [event] = await events_of(trigger)
    assert event["status"] == status and len(seen) == reads
    assert event["task"]["task_id"] == "gen-1" and event["task"]["status"] == script[-1]
    if status == "failed":
        assert "moderation" in event["message"]


async def test_single_trigger_reports_an_unknown_status_at_its_deadline_as_a_timeout() -> None:
    seen: list[str] = []
    trigger = SeedanceStatusTrigger("gen-1", poll_interval=0.001, end_time=0.0)
    trigger.hook_class = scripted_hook({"gen-1": ["QUEUED"]}, seen)  # type: ignore[assignment]
    [event] = await events_of(trigger)
    assert event["status"] == "timeout"


@pytest.mark.parametrize(
    "error",
    [
        SeedanceTaskNotFoundError(404, "TASK_NOT_FOUND", "unknown"),
        SeedanceAuthError(401, "INVALID_API_KEY", ""),
    ],
)
async def test_single_trigger_turns_a_status_error_into_an_error_event_never_success(
    error: SeedanceError,
) -> None:
    trigger = SeedanceStatusTrigger("gen-1", poll_interval=0.001)
    trigger.hook_class = scripted_hook({"gen-1": ["IN_PROGRESS", error]}, [])  # type: ignore[assignment]
    [event] = await events_of(trigger)
    assert event["status"] == "error" and event["error_code"] == error.error_code  # type: ignore[attr-defined]
    assert event["task"]["status"] == "IN_PROGRESS"


# ---------------------------------------------------------------- a batch
@pytest.fixture
def batch_hook(monkeypatch: pytest.MonkeyPatch):
    def install(script: Script) -> list[str]:
        reads: list[str] = []
        monkeypatch.setattr(SeedanceBatchStatusTrigger, "hook_class", scripted_hook(script, reads))
        return reads

    return install


async def test_batch_trigger_waits_for_every_generation_and_keeps_each_terminal_status(batch_hook) -> None:
    reads = batch_hook(
        {
            "a": ["QUEUED", "IN_PROGRESS", "SUCCESS"],
            "b": ["FAILED"],
            "c": ["RENDERING", "FAILED"],
        }
    )
    [event] = await events_of(SeedanceBatchStatusTrigger(["a", "b", "c", "a"], poll_interval=0.001))
    assert event["status"] == "done" and event["pending"] == [] and event["errors"] == {}
    assert {k: v["status"] for k, v in event["tasks"].items()} == {
        "a": "SUCCESS",
        "b": "FAILED",
        "c": "FAILED",
    }
    assert event["tasks"]["a"]["video_urls"] == ["https://cdn.fake.seedance.test/v.mp4"]
    assert sorted(reads) == ["a", "a", "a", "b", "c", "c"]


async def test_batch_trigger_never_takes_an_unknown_status_for_an_end(batch_hook) -> None:
    batch_hook({"a": ["QUEUED"]})
    trigger = SeedanceBatchStatusTrigger(["a"], poll_interval=0.001, end_time=0.0)
    [event] = await events_of(trigger)
    assert event["status"] == "timeout" and event["pending"] == ["a"] and event["tasks"] == {}


async def test_batch_trigger_reports_unreadable_generations_as_errors_not_results(batch_hook) -> None:
    down = SeedanceServerError(500, "INTERNAL_ERROR", "down")
    batch_hook(
        {
            "gone": [SeedanceTaskNotFoundError(404, "TASK_NOT_FOUND", "unknown")],
            "flaky": [down, down, "SUCCESS"],
            "down": [down],
        }
    )
    trigger = SeedanceBatchStatusTrigger(["gone", "flaky", "down"], poll_interval=0.001, max_poll_failures=2)
    [event] = await events_of(trigger)
    assert event["status"] == "done"
    assert set(event["tasks"]) == {"flaky"} and event["tasks"]["flaky"]["status"] == "SUCCESS"
    assert set(event["errors"]) == {"gone", "down"}
    assert "TASK_NOT_FOUND" in event["errors"]["gone"]
    assert "3 times in a row" in event["errors"]["down"]


# ---------------------------------------------------------------- rebuilt from serialize
@pytest.mark.parametrize(
    "trigger",
    [
        SeedanceStatusTrigger("gen-1", "my_conn", poll_interval=3, end_time=1234.5, max_poll_failures=4),
        SeedanceBatchStatusTrigger(
            ["a", "b"], "my_conn", poll_interval=3, end_time=1234.5, max_concurrency=5, max_poll_failures=4
        ),
    ],
    ids=["single", "batch"],
)
def test_a_trigger_rebuilt_from_serialize_watches_the_same_generations_the_same_way(trigger: Any) -> None:
    """The triggerer may rebuild a trigger from its row at any moment (HA, restarts)."""
    path, kwargs = trigger.serialize()
    module, _, name = path.rpartition(".")
    assert module == type(trigger).__module__ and name == type(trigger).__name__
    rebuilt = type(trigger)(**kwargs)
    assert rebuilt.serialize() == (path, kwargs)
    assert kwargs["seedance_conn_id"] == "my_conn" and kwargs["end_time"] == 1234.5
    assert kwargs["poll_interval"] == 3.0 and kwargs["max_poll_failures"] == 4
    if isinstance(trigger, SeedanceBatchStatusTrigger):
        assert kwargs["seedance_task_ids"] == ["a", "b"] and kwargs["max_concurrency"] == 5
    else:
        assert kwargs["seedance_task_id"] == "gen-1"


@pytest.mark.parametrize(
    ("status", "spec", "ends"),
    [
        pytest.param("SUCCESS", {"request": {"prompt": "p"}}, True, id="success-asked"),
        pytest.param("SUCCESS", None, False, id="success-not-asked"),
        pytest.param("FAILED", {"request": {"prompt": "p"}}, False, id="failed-asked"),
    ],
)
def test_only_an_asked_for_success_ends_a_task_without_a_worker(
    status: str, spec: dict[str, Any] | None, ends: bool
) -> None:
    """The trigger and the callback receiver both decide with ``task_end``: a FAILED generation
    (the worker may resubmit) or an operator that did not ask must resume on a worker."""
    from airflow_provider_seedance.triggers.seedance import task_end
    from airflow_provider_seedance.xcoms import XCOM_RETURN

    task = SeedanceTask(task_id="gen-1", status=status, video_urls=["https://v/1.mp4"], consumed_credits=8)
    end = task_end({**spec, "links": {"_link_SeedanceVideoLink": "https://l"}} if spec else None, task)
    assert (end is not None) is ends
    if end is not None:
        assert end.xcoms[XCOM_RETURN] == end.result.to_xcom()
        assert end.result.seedance_task_ids == ("gen-1",)
        assert end.links == {"_link_SeedanceVideoLink": "https://l"}
