"""What the operators do when their trigger fires (``execute_complete``), with a fake hook and store.

The promises: a deferrable try submits, records the id and defers; on resume the event's
task is taken as read (success is delivered, FAILED is resubmitted only while
``resubmit_on_failure`` allows, nothing is ever resubmitted because a status could not be
read), a timeout or error event fails the task naming the generation a retry re-attaches to,
an event for another generation or an invalid event is refused, and whatever ends the task,
its result XCom says what was spent. The real trigger round trip runs in tests/dags.
"""

from __future__ import annotations

from typing import Any

import pytest
from airflow.exceptions import TaskDeferred

from airflow_provider_seedance.exceptions import (
    SeedanceError,
    SeedanceGenerationFailedError,
    SeedanceTimeoutError,
)
from airflow_provider_seedance.models import GenerationRequest, SeedanceTask
from airflow_provider_seedance.operators.batch import XCOM_BATCH_RESULTS, SeedanceBatchGenerateOperator
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator
from airflow_provider_seedance.task_support import XCOM_RESULT
from tests.unit.fakes import FakeHook, Store, context, use

PROMPT = "a red fox in snow"
CHEAP = {"resolution": "480p", "duration": "4"}
ITEMS = [{"prompt": f"item {n}", "resolution": "480p", "duration": 4} for n in range(2)]


def single(hook: FakeHook, **kwargs: Any) -> SeedanceGenerateOperator:
    kwargs.setdefault("prompt", PROMPT)
    kwargs.setdefault("poll_interval", 0.001)
    kwargs.update(CHEAP)
    kwargs.setdefault("deferrable", True)
    return use(SeedanceGenerateOperator(task_id="generate", **kwargs), hook)


def task_dict(task_id: str, status: str, **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"task_id": task_id, "status": status}
    if status == "SUCCESS":
        fields.update(video_urls=["https://cdn.fake.seedance.test/v.mp4"], consumed_credits=8)
    if status == "FAILED":
        fields["error_message"] = "moderation"
    fields.update(extra)
    return SeedanceTask(**fields).to_dict()


def event(status: str, task: dict[str, Any], message: str = "") -> dict[str, Any]:
    return {"status": status, "task": task, "message": message}


def deferred(operator: Any, ctx: dict[str, Any]) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as info:
        operator.execute(ctx)
    return info.value


# ============================================================== the single operator
def test_a_deferrable_try_records_the_id_then_defers_to_a_trigger_for_that_generation() -> None:
    store, hook = Store(), FakeHook(statuses={"gen-1": ["IN_PROGRESS"]})
    ctx = context(store)

    deferral = deferred(single(hook, timeout=600), ctx)

    assert deferral.method_name == "execute_complete"
    assert deferral.kwargs == {"seedance_task_id": "gen-1"}
    assert deferral.trigger.seedance_task_id == "gen-1"
    assert deferral.trigger.end_time is not None
    assert [e["state"] for e in store.entries().values()] == ["submitted"]


def test_a_success_event_finishes_the_task_with_the_generation_and_its_cost() -> None:
    store, hook = Store(), FakeHook(statuses={"gen-1": ["IN_PROGRESS"]})
    operator = single(hook)
    deferred(operator, context(store))

    ctx = context(store)
    result = operator.execute_complete(
        ctx, event("success", task_dict("gen-1", "SUCCESS")), seedance_task_id="gen-1"
    )

    assert result["task_id"] == "gen-1" and result["consumed_credits"] == 8
    assert result["seedance_task_ids"] == ["gen-1"]
    assert result["request"] == GenerationRequest.from_mapping({"prompt": PROMPT, **CHEAP}).to_payload()
    assert ctx["ti"].xcoms[XCOM_RESULT]["outcome"] == "succeeded"
    assert len(hook.posts) == 1, "resuming never submits a finished generation again"
    # the record keeps the finished generation, so a clear after delivery re-pays nothing
    [entry] = store.entries().values()
    assert entry["outcome"]["task_id"] == "gen-1" and entry["outcome"]["status"] == "SUCCESS"


def test_a_failed_event_resubmits_while_allowed_and_defers_again() -> None:
    store, hook = Store(), FakeHook(statuses={"gen-1": ["IN_PROGRESS"], "gen-2": ["IN_PROGRESS"]})
    operator = single(hook, resubmit_on_failure=1)
    deferred(operator, context(store))

    with pytest.raises(TaskDeferred) as info:
        operator.execute_complete(
            context(store), event("failed", task_dict("gen-1", "FAILED")), seedance_task_id="gen-1"
        )

    assert info.value.kwargs == {"seedance_task_id": "gen-2"}
    assert len(hook.posts) == 2
    ctx = context(store)
    with pytest.raises(SeedanceGenerationFailedError, match=r"after 2 attempts \(gen-1, gen-2\)"):
        operator.execute_complete(
            ctx, event("failed", task_dict("gen-2", "FAILED")), seedance_task_id="gen-2"
        )
    assert len(hook.posts) == 2, "resubmit_on_failure=1 allows one resubmission, not two"
    failure = ctx["ti"].xcoms[XCOM_RESULT]
    assert failure["seedance_task_ids"] == ["gen-1", "gen-2"] and failure["consumed_credits"] == 0


def test_a_timeout_event_fails_naming_the_generation_and_its_last_status() -> None:
    store, hook = Store(), FakeHook(statuses={"gen-1": ["IN_PROGRESS"]})
    operator = single(hook, timeout=600)
    deferred(operator, context(store))
    ctx = context(store)

    with pytest.raises(SeedanceTimeoutError) as info:
        operator.execute_complete(
            ctx, event("timeout", task_dict("gen-1", "IN_PROGRESS")), seedance_task_id="gen-1"
        )

    assert info.value.task_id == "gen-1" and "gen-1" in str(info.value) and "600" in str(info.value)
    assert "IN_PROGRESS" in str(info.value)
    assert len(hook.posts) == 1
    assert ctx["ti"].xcoms[XCOM_RESULT]["task_id"] == "gen-1"
    assert ctx["ti"].xcoms[XCOM_RESULT]["seedance_task_ids"] == ["gen-1"]


def test_an_error_event_fails_saying_nothing_more_was_spent_and_a_retry_re_attaches() -> None:
    store, hook = Store(), FakeHook(statuses={"gen-1": ["IN_PROGRESS", "SUCCESS"]})
    operator = single(hook)
    deferred(operator, context(store))

    with pytest.raises(SeedanceError) as info:
        operator.execute_complete(
            context(store),
            event("error", task_dict("gen-1", "IN_PROGRESS"), "Polling Seedance task gen-1 failed: 503."),
            seedance_task_id="gen-1",
        )

    message = str(info.value)
    assert message.startswith("Polling Seedance task gen-1 failed: 503.")
    assert "Nothing more was spent" in message and "re-attaches to Seedance task gen-1" in message
    assert len(hook.posts) == 1

    # and the next try re-attaches to the recorded generation instead of paying again
    result = single(hook, deferrable=False).execute(context(store))
    assert result["task_id"] == "gen-1" and len(hook.posts) == 1


@pytest.mark.parametrize(
    "bad",
    [None, {"status": "success"}, {"status": "bogus", "task": task_dict("gen-1", "SUCCESS")}],
    ids=["no-event", "no-task", "unknown-status"],
)
def test_an_invalid_event_is_refused_and_submits_nothing(bad: Any) -> None:
    store, hook = Store(), FakeHook(statuses={"gen-1": ["IN_PROGRESS"]})
    operator = single(hook)
    deferred(operator, context(store))

    ctx = context(store)
    with pytest.raises(SeedanceError, match="Seedance trigger"):
        operator.execute_complete(ctx, bad, seedance_task_id="gen-1")
    assert len(hook.posts) == 1
    # the failure still names the generation that was paid for, its status not read
    failure = ctx["ti"].xcoms[XCOM_RESULT]
    assert (failure["task_id"], failure["status"]) == ("gen-1", "UNKNOWN")
    assert failure["seedance_task_ids"] == ["gen-1"]


def test_a_task_deferred_without_the_task_id_argument_still_resumes() -> None:
    """A task instance deferred by a release whose ``execute_complete`` took no
    ``seedance_task_id`` resumes after an upgrade from its event alone."""
    store, hook = Store(), FakeHook(statuses={"gen-1": ["IN_PROGRESS"]})
    operator = single(hook)
    deferred(operator, context(store))

    result = operator.execute_complete(context(store), event("success", task_dict("gen-1", "SUCCESS")))

    assert result["task_id"] == "gen-1" and result["consumed_credits"] == 8
    assert len(hook.posts) == 1


def test_an_event_for_another_generation_is_refused() -> None:
    store, hook = Store(), FakeHook(statuses={"gen-1": ["IN_PROGRESS"]})
    operator = single(hook)
    deferred(operator, context(store))

    with pytest.raises(SeedanceError, match="expected gen-1"):
        operator.execute_complete(
            context(store), event("success", task_dict("gen-9", "SUCCESS")), seedance_task_id="gen-1"
        )


# ============================================================== the batch operator
def batch(hook: FakeHook, **kwargs: Any) -> SeedanceBatchGenerateOperator:
    kwargs.setdefault("poll_interval", 0.001)
    kwargs.setdefault("max_in_flight", 1)
    return use(
        SeedanceBatchGenerateOperator(task_id="batch", requests=ITEMS, deferrable=True, **kwargs), hook
    )


def running_batch(**kwargs: Any) -> tuple[SeedanceBatchGenerateOperator, FakeHook, Store, TaskDeferred]:
    store = Store()
    hook = FakeHook(statuses={"gen-1": ["IN_PROGRESS"], "gen-2": ["IN_PROGRESS"]})
    operator = batch(hook, **kwargs)
    return operator, hook, store, deferred(operator, context(store))


def test_a_deferrable_batch_records_every_id_then_defers_to_one_trigger_for_them() -> None:
    _, hook, store, deferral = running_batch()

    assert deferral.method_name == "execute_complete"
    assert sorted(deferral.trigger.seedance_task_ids) == ["gen-1", "gen-2"]
    assert len(hook.posts) == 2
    assert {e["state"] for e in store.entries().values()} == {"submitted"}


def test_a_done_event_finishes_the_batch_with_each_generation_in_item_order() -> None:
    operator, hook, store, _ = running_batch()
    ctx = context(store)

    outcome = operator.execute_complete(
        ctx,
        {
            "status": "done",
            "tasks": {"gen-2": task_dict("gen-2", "SUCCESS"), "gen-1": task_dict("gen-1", "SUCCESS")},
            "errors": {},
            "pending": [],
        },
    )

    results = outcome["results"]
    assert [r["task_id"] for r in results] == ["gen-1", "gen-2"]
    assert [r["index"] for r in results] == [0, 1]
    assert outcome["totals"]["credits"] == 16 and outcome["totals"]["succeeded"] == 2
    assert len(hook.posts) == 2


def test_a_generation_the_trigger_could_not_read_is_not_resubmitted_on_resume() -> None:
    operator, hook, store, _ = running_batch(resubmit_on_failure=3)
    ctx = context(store)

    with pytest.raises(SeedanceError):
        operator.execute_complete(
            ctx,
            {
                "status": "done",
                "tasks": {"gen-2": task_dict("gen-2", "SUCCESS")},
                "errors": {"gen-1": "status unreadable 9 times in a row for 180s: HTTP 503"},
                "pending": [],
            },
        )

    assert len(hook.posts) == 2, "an unreadable status never pays again"
    by_index = {r["index"]: r for r in ctx["ti"].xcoms[XCOM_BATCH_RESULTS]["results"]}
    assert by_index[0]["task_id"] == "gen-1" and "unreadable" in (by_index[0]["error_message"] or "")
    assert by_index[1]["status"] == "SUCCESS"


@pytest.mark.parametrize("pending", [["gen-1", "gen-2"], [f"gen-{n}" for n in range(12)]])
def test_a_timeout_event_fails_the_batch_naming_the_generations_still_running(pending: list[str]) -> None:
    operator, hook, store, _ = running_batch()
    ctx = context(store)

    with pytest.raises(SeedanceError) as info:
        operator.execute_complete(ctx, {"status": "timeout", "tasks": {}, "errors": {}, "pending": pending})

    message = str(info.value)
    assert message.startswith(f"{len(pending)} generations were still running at the deadline")
    assert ", ".join(pending[:10]) in message and "re-attaches to them without paying again" in message
    assert ("…" in message) is (len(pending) > 10)
    assert len(hook.posts) == 2
    assert len(ctx["ti"].xcoms[XCOM_BATCH_RESULTS]["results"]) == 2


def test_an_error_event_fails_the_batch_saying_a_retry_re_attaches() -> None:
    operator, hook, store, _ = running_batch()

    with pytest.raises(SeedanceError) as info:
        operator.execute_complete(
            context(store),
            {
                "status": "error",
                "message": "Polling the Seedance batch failed: no connection.",
                "pending": [],
            },
        )

    assert str(info.value).startswith("Polling the Seedance batch failed: no connection. Nothing more")
    assert "a retry re-attaches to the batch's generations" in str(info.value)
    assert len(hook.posts) == 2


@pytest.mark.parametrize(
    "bad", [None, "done", {"status": "finished"}, {}], ids=["none", "str", "bad", "empty"]
)
def test_an_invalid_batch_event_is_refused(bad: Any) -> None:
    operator, hook, store, _ = running_batch()

    with pytest.raises(SeedanceError, match="invalid event"):
        operator.execute_complete(context(store), bad)
    assert len(hook.posts) == 2
