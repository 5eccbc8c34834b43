"""What a failure records about the money, for the single and the batch operator (narrow fakes)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_seedance.exceptions import (
    CreationState,
    SeedanceBadRequestError,
    SeedanceBatchFailedError,
    SeedanceBudgetExceededError,
    SeedanceServerError,
    SeedanceSubmissionUncertainError,
)
from airflow_provider_seedance.operators.batch import XCOM_BATCH_RESULTS, SeedanceBatchGenerateOperator
from tests.unit.fakes import FakeHook, OutletEvents, Store, context, use
from tests.unit.operators.test_single_submit_rules import CHEAP, PROMPT, single

ITEMS = [{"prompt": f"item {n}", "resolution": "480p", "duration": 4} for n in range(2)]


def batch(hook: FakeHook, items: list[dict[str, Any]], **kwargs: Any) -> SeedanceBatchGenerateOperator:
    kwargs.setdefault("deferrable", False)
    kwargs.setdefault("poll_interval", 0.001)
    return use(SeedanceBatchGenerateOperator(task_id="batch", requests=items, **kwargs), hook)


def test_a_failed_reattach_read_names_the_recorded_generation_not_nothing_sent() -> None:
    store = Store()
    single(FakeHook(), wait_for_completion=False, **CHEAP).execute(context(store))
    ctx = context(store)
    down = FakeHook(status_errors={"gen-1": SeedanceServerError(500, "INTERNAL_ERROR", "down")})
    with pytest.raises(SeedanceServerError):
        single(down, **CHEAP).execute(ctx)
    result = ctx["ti"].xcoms["seedance_result"]
    assert result["outcome"] == "unknown" and result["task_id"] == "gen-1"
    assert result["status"] == "UNKNOWN" and result["request"]["prompt"] == PROMPT
    assert down.posts == []


def test_an_uncertain_mark_refusal_tells_how_to_release_it() -> None:
    store = Store()
    with pytest.raises(SeedanceSubmissionUncertainError):
        single(FakeHook(submits=[SeedanceSubmissionUncertainError("lost")]), **CHEAP).execute(context(store))
    with pytest.raises(SeedanceSubmissionUncertainError) as info:
        single(FakeHook(), **CHEAP).execute(context(store))
    message = str(info.value)
    assert (
        "if Airflow declared that try dead while its request was in flight, its answer may still " in message
    )
    assert (
        "arrive: clear this task later and it re-attaches if it did. Otherwise, after checking the "
        in message
    )
    assert "account's dashboard, set force_new=True to release that uncertain submission" in message


def test_a_record_write_failing_after_the_post_still_names_the_generation(monkeypatch) -> None:
    monkeypatch.setattr("airflow_provider_seedance.reattach.SAVE_RETRY_SECONDS", 0)

    class FailingSecondWrite(Store):
        def set(self, key: str, value: Any) -> None:
            if self.writes >= 1:
                raise RuntimeError("state store unavailable")
            super().set(key, value)

    ctx = context(FailingSecondWrite())
    with pytest.raises(RuntimeError):
        single(FakeHook(), **CHEAP).execute(ctx)
    result = ctx["ti"].xcoms["seedance_result"]
    assert result["outcome"] != "not_sent" and result["task_id"] == "gen-1"


def test_a_refused_post_after_a_release_keeps_the_release_on_record() -> None:
    store = Store()
    lost = SeedanceSubmissionUncertainError("lost")
    refused = SeedanceBadRequestError(400, "INVALID_PROMPT", "no", creation=CreationState.REFUSED)
    with pytest.raises(SeedanceSubmissionUncertainError):
        single(FakeHook(submits=[lost]), **CHEAP).execute(context(store))
    with pytest.raises(SeedanceBadRequestError):
        single(FakeHook(submits=[refused]), force_new=True, **CHEAP).execute(context(store))
    [entry] = store.entries().values()
    assert entry["state"] == "rejected" and len(entry["released"]) == 1
    assert entry["history"] == [] and entry["seedance_task_id"] is None and entry["error"] == "not sent"
    assert isinstance(entry["submitted_at"], float)  # when the refused attempt was made
    # Nothing was created: the next try may send, without force_new.
    hook = FakeHook()
    single(hook, **CHEAP).execute(context(store))
    assert len(hook.posts) == 1
    [entry] = store.entries().values()
    assert entry["state"] == "submitted" and len(entry["released"]) == 1


def test_a_refused_post_without_a_release_leaves_no_entry() -> None:
    store = Store()
    refused = SeedanceBadRequestError(400, "INVALID_PROMPT", "no", creation=CreationState.REFUSED)
    with pytest.raises(SeedanceBadRequestError):
        single(FakeHook(submits=[refused]), **CHEAP).execute(context(store))
    assert store.entries() == {}


def test_a_batch_stopped_by_its_budget_records_every_item_as_not_sent() -> None:
    ctx = context(Store())
    hook = FakeHook()
    with pytest.raises(SeedanceBudgetExceededError):
        batch(hook, ITEMS, max_credits=8).execute(ctx)
    recorded = ctx["ti"].xcoms[XCOM_BATCH_RESULTS]
    assert [r["outcome"] for r in recorded["results"]] == ["not_sent", "not_sent"]
    assert "max_credits" in recorded["results"][0]["error_message"] and hook.posts == []


def test_a_partial_batch_failure_records_the_results() -> None:
    ctx = context(Store())
    hook = FakeHook(statuses={"gen-2": ["FAILED"]})
    with pytest.raises(SeedanceBatchFailedError):
        batch(hook, ITEMS, max_in_flight=1).execute(ctx)
    recorded = ctx["ti"].xcoms[XCOM_BATCH_RESULTS]
    assert [r["outcome"] for r in recorded["results"]] == ["succeeded", "generation_failed"]
    assert recorded["totals"]["credits"] == 8


def test_a_batch_success_gives_each_asset_event_its_videos() -> None:
    from airflow.sdk import Asset

    asset = Asset("seedance://catalog")
    ctx = context(Store())
    ctx["outlet_events"] = OutletEvents()
    batch(FakeHook(), ITEMS, outlets=[asset]).execute(ctx)
    extra = ctx["outlet_events"][asset].extra
    assert extra["totals"]["succeeded"] == 2 and [v["seedance_task_id"] for v in extra["videos"]] == [
        "gen-1",
        "gen-2",
    ]


def test_a_resume_with_an_unusable_event_names_the_submitted_generation_not_nothing_sent() -> None:
    """Red-team of issue 18: the task submitted (and deferred) before; on resume the trigger's
    event cannot be used (here: for another generation). That failure is after the POST: it
    must not be recorded, shown or logged as "nothing was sent"."""
    store = Store()
    single(FakeHook(), wait_for_completion=False, **CHEAP).execute(context(store))
    ctx = context(store)
    odd = {"status": "success", "task": {"task_id": "gen-other", "status": "SUCCESS"}}
    with pytest.raises(Exception, match="expected gen-1"):
        single(FakeHook(), **CHEAP).execute_complete(ctx, event=odd, seedance_task_id="gen-1")
    result = ctx["ti"].xcoms["seedance_result"]
    assert result["outcome"] == "unknown" and result["task_id"] == "gen-1", result


def test_a_refused_post_whose_record_update_then_fails_is_refused_not_may_have_been_charged(
    monkeypatch,
) -> None:
    """Once the service has refused the POST, the request is no longer in flight: a failure
    while forgetting its mark (the state store away) must not turn it into "may have been
    charged"."""
    monkeypatch.setattr("airflow_provider_seedance.reattach.SAVE_RETRY_SECONDS", 0)

    class FailingSecondWrite(Store):
        def set(self, key: str, value: Any) -> None:
            if self.writes >= 1:
                raise RuntimeError("state store unavailable")
            super().set(key, value)

    refused = SeedanceBadRequestError(400, "INVALID_PROMPT", "no", creation=CreationState.REFUSED)
    ctx = context(FailingSecondWrite())
    with pytest.raises(RuntimeError):
        single(FakeHook(submits=[refused]), **CHEAP).execute(ctx)
    result = ctx["ti"].xcoms["seedance_result"]
    assert result["outcome"] in ("not_sent", "refused"), result
