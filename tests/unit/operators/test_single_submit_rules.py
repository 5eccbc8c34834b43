"""SeedanceGenerateOperator's money rules, branch by branch, with a fake hook and store.

Each test states a promise of the re-attach record (``reattach.py``) as the single operator
keeps it: the ``submitting`` mark is on record before the POST, the id right after it, an
uncertain mark stops the next try, and only an error that provably created nothing clears it.
The same promises against the real emulator: ``tests/integration/test_money_rules.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_seedance.exceptions import (
    CreationState,
    SeedanceBadRequestError,
    SeedanceBudgetExceededError,
    SeedanceConnectionError,
    SeedanceError,
    SeedanceGenerationFailedError,
    SeedanceServerError,
    SeedanceSubmissionUncertainError,
    SeedanceTaskNotFoundError,
)
from airflow_provider_seedance.models import GenerationRequest
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator
from tests.unit.fakes import FakeHook, Store, context, use

PROMPT = "a red fox in snow"
#: 480p, 4 s, no audio: 8 credits.
CHEAP = {"resolution": "480p", "duration": "4"}


def single(hook: FakeHook, **kwargs: Any) -> SeedanceGenerateOperator:
    kwargs.setdefault("prompt", PROMPT)
    kwargs.setdefault("deferrable", False)
    kwargs.setdefault("poll_interval", 0.001)
    return use(SeedanceGenerateOperator(task_id="generate", **kwargs), hook)


def fingerprint(**fields: Any) -> str:
    return GenerationRequest.from_mapping({"prompt": PROMPT, **fields}).fingerprint()


# ---------------------------------------------------------------- the submitting mark
def test_the_submitting_mark_is_saved_before_the_post_is_sent() -> None:
    store = Store()
    seen: list[dict[str, Any]] = []
    hook = FakeHook(on_post=lambda _request: seen.append(store.entries()))
    single(hook).execute(context(store))
    [at_post] = seen
    assert at_post[fingerprint()]["state"] == "submitting"


def test_the_returned_id_is_saved_before_any_status_read() -> None:
    store = Store()
    hook = FakeHook(statuses={"gen-1": ["IN_PROGRESS"]})
    result = single(hook, wait_for_completion=False).execute(context(store))
    entry = store.entries()[fingerprint()]
    assert entry["state"] == "submitted" and entry["seedance_task_id"] == "gen-1"
    assert entry["history"] == ["gen-1"] and result["task_id"] == "gen-1"


@pytest.mark.parametrize(
    "lost",
    [
        SeedanceSubmissionUncertainError("read timeout after sending"),
        SeedanceConnectionError("connection reset after sending", sent=True),
    ],
    ids=["uncertain-answer", "connection-error-after-sending"],
)
def test_a_lost_answer_keeps_the_mark_and_the_next_try_refuses_to_pay(lost: SeedanceError) -> None:
    store = Store()
    hook = FakeHook(submits=[lost])
    with pytest.raises(type(lost)):
        single(hook).execute(context(store))
    assert store.states() == ["submitting"]

    with pytest.raises(SeedanceSubmissionUncertainError, match="force_new=True"):
        single(hook).execute(context(store))
    assert len(hook.posts) == 1 and store.states() == ["submitting"]


@pytest.mark.parametrize(
    "refused",
    [
        SeedanceBadRequestError(400, "INVALID_PROMPT", "refused", creation=CreationState.REFUSED),
        SeedanceConnectionError("connection refused", sent=False),
    ],
    ids=["api-refused", "never-reached-the-server"],
)
def test_an_error_that_created_nothing_clears_the_mark_so_a_retry_may_send(refused: SeedanceError) -> None:
    store = Store()
    hook = FakeHook(submits=[refused])
    with pytest.raises(type(refused)):
        single(hook).execute(context(store))
    assert store.entries() == {}
    result = single(hook).execute(context(store))
    assert result["task_id"] == "gen-2" and len(hook.posts) == 2


def test_a_refused_resubmission_keeps_the_earlier_generation_on_record() -> None:
    store = Store()
    hook = FakeHook(
        submits=[
            None,
            SeedanceBadRequestError(400, "INVALID_PROMPT", "refused", creation=CreationState.REFUSED),
        ],
        statuses={"gen-1": ["FAILED"]},
    )
    with pytest.raises(SeedanceBadRequestError):
        single(hook, resubmit_on_failure=1).execute(context(store))
    entry = store.entries()[fingerprint()]
    assert entry["state"] == "submitted" and entry["seedance_task_id"] == "gen-1"
    assert entry["history"] == ["gen-1"]


def test_force_new_releases_an_uncertain_mark_once_then_reattaches() -> None:
    store = Store()
    hook = FakeHook(submits=[SeedanceSubmissionUncertainError("lost")])
    with pytest.raises(SeedanceSubmissionUncertainError):
        single(hook).execute(context(store))
    first = single(hook, force_new=True).execute(context(store))
    entry = store.entries()[fingerprint()]
    assert entry["state"] == "submitted" and len(entry["released"]) == 1
    assert first["task_id"] == "gen-2" and len(hook.posts) == 2
    again = single(hook, force_new=True).execute(context(store))
    assert again["task_id"] == "gen-2" and len(hook.posts) == 2


# ---------------------------------------------------------------- re-attach
@pytest.mark.parametrize("status", ["IN_PROGRESS", "SUCCESS", "QUEUED"])
def test_a_recorded_generation_that_did_not_fail_is_reattached_not_paid_again(status: str) -> None:
    store = Store()
    hook = FakeHook(statuses={"gen-1": [status, "SUCCESS"]})
    single(hook, wait_for_completion=False).execute(context(store))
    hook.statuses["gen-1"].extendleft([status])
    result = single(hook).execute(context(store))
    assert result["task_id"] == "gen-1" and result["status"] == "SUCCESS"
    assert len(hook.posts) == 1


@pytest.mark.parametrize(
    ("status", "error"),
    [("FAILED", None), ("IN_PROGRESS", SeedanceTaskNotFoundError(404, "TASK_NOT_FOUND", "gone"))],
    # the first try sees it IN_PROGRESS and returns; the retry reads ``status`` (or the error)
    ids=["failed", "task-not-found"],
)
def test_a_recorded_generation_that_failed_or_is_unknown_is_submitted_anew(
    status: str, error: BaseException | None
) -> None:
    store = Store()
    hook = FakeHook(statuses={"gen-1": ["IN_PROGRESS", status]})
    single(hook, wait_for_completion=False).execute(context(store))
    if error is not None:
        hook.status_errors["gen-1"] = error
    result = single(hook).execute(context(store))
    assert result["task_id"] == "gen-2" and len(hook.posts) == 2
    assert store.entries()[fingerprint()]["history"] == ["gen-1", "gen-2"]


def test_an_unreadable_status_of_a_recorded_generation_is_no_reason_to_pay_again() -> None:
    store = Store()
    hook = FakeHook(statuses={"gen-1": ["IN_PROGRESS"]})
    single(hook, wait_for_completion=False).execute(context(store))
    hook.status_errors["gen-1"] = SeedanceServerError(500, "INTERNAL_ERROR", "down")
    with pytest.raises(SeedanceServerError):
        single(hook).execute(context(store))
    assert len(hook.posts) == 1
    assert store.entries()[fingerprint()]["seedance_task_id"] == "gen-1"


@pytest.mark.parametrize(
    ("field", "first", "second"),
    [
        ("prompt", PROMPT, "a grey wolf in snow"),
        ("aspect_ratio", "16:9", "9:16"),
        ("resolution", "480p", "720p"),
        ("duration", "4", "8"),
        ("generate_audio", False, True),
        ("fixed_lens", False, True),
        ("image_urls", ["https://img.example.com/a.png"], ["https://img.example.com/b.png"]),
        ("callback_url", "https://hooks.example.com/a", "https://hooks.example.com/b"),
    ],
)
def test_a_changed_field_never_reattaches_to_the_video_of_the_old_value(
    field: str, first: Any, second: Any
) -> None:
    store = Store()
    hook = FakeHook()
    single(hook, **{field: first}).execute(context(store))
    result = single(hook, **{field: second}).execute(context(store))
    assert result["task_id"] == "gen-2" and len(hook.posts) == 2
    assert getattr(hook.posts[1], field) == GenerationRequest.from_mapping(
        {"prompt": PROMPT, field: second}
    ).__getattribute__(field)


# ---------------------------------------------------------------- resubmit_on_failure
@pytest.mark.parametrize("allowed", [0, 1, 2, 3])
def test_resubmit_on_failure_resubmits_exactly_n_times_then_fails(allowed: int) -> None:
    hook = FakeHook(statuses={f"gen-{n}": ["FAILED"] for n in range(1, 6)})
    with pytest.raises(SeedanceGenerationFailedError, match=f"gen-{allowed + 1}"):
        single(hook, resubmit_on_failure=allowed).execute(context(Store()))
    assert len(hook.posts) == allowed + 1


def test_resubmit_on_failure_stops_at_the_first_success() -> None:
    hook = FakeHook(statuses={"gen-1": ["FAILED"], "gen-2": ["SUCCESS"]})
    result = single(hook, resubmit_on_failure=3).execute(context(Store()))
    assert result["task_id"] == "gen-2" and result["seedance_task_ids"] == ["gen-1", "gen-2"]
    assert len(hook.posts) == 2


def test_resubmissions_count_across_tries() -> None:
    """A retry that re-attaches to a FAILED generation has used up the earlier resubmissions."""
    store = Store()
    hook = FakeHook(statuses={f"gen-{n}": ["FAILED"] for n in range(1, 6)})
    with pytest.raises(SeedanceGenerationFailedError):
        single(hook, resubmit_on_failure=1).execute(context(store))
    assert len(hook.posts) == 2
    with pytest.raises(SeedanceGenerationFailedError):
        single(hook, resubmit_on_failure=1).execute(context(store))
    assert len(hook.posts) == 3  # the recorded FAILED one is replaced once; no further resubmission


def test_negative_resubmit_on_failure_is_refused() -> None:
    with pytest.raises(ValueError, match="resubmit_on_failure"):
        SeedanceGenerateOperator(task_id="g", prompt=PROMPT, resubmit_on_failure=-1)


# ---------------------------------------------------------------- budget
@pytest.mark.parametrize(
    ("max_credits", "allowed"),
    [(None, True), (9, True), (8, True), (7, False), (0, False)],
    ids=["no-budget", "above", "equal", "below", "zero-is-a-budget"],
)
def test_budget_is_checked_before_any_http_call(max_credits: int | None, allowed: bool) -> None:
    hook = FakeHook()
    op = single(hook, max_credits=max_credits, **CHEAP)
    if allowed:
        assert op.execute(context(Store()))["status"] == "SUCCESS"
        assert len(hook.posts) == 1
    else:
        with pytest.raises(SeedanceBudgetExceededError) as raised:
            op.execute(context(Store()))
        assert raised.value.estimated_credits == 8 and raised.value.max_credits == max_credits
        assert hook.posts == [] and hook.reads == []


# ---------------------------------------------------------------- what a failure says it cost
def test_a_status_read_failing_after_the_post_records_the_generation_that_was_paid_for() -> None:
    ctx = context(Store())
    hook = FakeHook(status_errors={"gen-1": SeedanceServerError(500, "INTERNAL_ERROR", "down")})
    with pytest.raises(SeedanceServerError):
        single(hook).execute(ctx)
    failure = ctx["ti"].xcoms["seedance_result"]
    assert failure["outcome"] == "unknown" and failure["task_id"] == "gen-1"
    assert failure["status"] == "IN_PROGRESS" and failure["seedance_task_ids"] == ["gen-1"]
    assert failure["request"] == GenerationRequest(prompt=PROMPT).to_payload()


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (
            SeedanceBadRequestError(400, "INVALID_PROMPT", "refused", creation=CreationState.REFUSED),
            "refused",
        ),
        (SeedanceConnectionError("connection refused", sent=False), "not_sent"),
        (SeedanceSubmissionUncertainError("lost"), "uncertain"),
    ],
)
def test_a_failed_resubmission_is_recorded_as_itself_not_as_the_earlier_failed_generation(
    error: SeedanceError, outcome: str
) -> None:
    ctx = context(Store())
    hook = FakeHook(submits=[None, error], statuses={"gen-1": ["FAILED"]})
    with pytest.raises(type(error)):
        single(hook, resubmit_on_failure=1).execute(ctx)
    failure = ctx["ti"].xcoms["seedance_result"]
    assert failure["outcome"] == outcome and failure["task_id"] is None
    assert failure["consumed_credits"] == 0


def test_a_try_ended_while_the_post_is_in_flight_may_have_been_charged_never_nothing_sent() -> None:
    """Airflow's execution timeout (or a kill signal) interrupts the POST: it may have arrived."""
    ctx = context(Store())
    hook = FakeHook(submits=[KeyboardInterrupt("SIGTERM")])
    with pytest.raises(KeyboardInterrupt):
        single(hook).execute(ctx)
    failure = ctx["ti"].xcoms["seedance_result"]
    assert failure["outcome"] == "uncertain" and failure["task_id"] is None
    assert "may have been charged" in failure["error_message"] and "SIGTERM" in failure["error_message"]


def test_the_link_pushed_before_waiting_names_the_new_generation_and_its_request() -> None:
    ctx = context(Store())
    single(FakeHook(statuses={"gen-1": ["IN_PROGRESS", "SUCCESS"]})).execute(ctx)
    first_link = next(value for key, value in ctx["ti"].pushes if key == "seedance_link")
    assert first_link["task_id"] == "gen-1" and first_link["status"] == "IN_PROGRESS"
    assert first_link["request"] == GenerationRequest(prompt=PROMPT).to_payload()


def test_a_failure_after_a_resubmission_records_every_generation_tried() -> None:
    ctx = context(Store())
    down = SeedanceServerError(500, "INTERNAL_ERROR", "down")
    hook = FakeHook(statuses={"gen-1": ["FAILED"], "gen-2": [down]})
    with pytest.raises(SeedanceServerError):
        single(hook, resubmit_on_failure=1).execute(ctx)
    failure = ctx["ti"].xcoms["seedance_result"]
    assert failure["task_id"] == "gen-2" and failure["seedance_task_ids"] == ["gen-1", "gen-2"]


def test_a_failure_while_waiting_on_a_reattached_generation_records_its_history() -> None:
    store = Store()
    down = SeedanceServerError(500, "INTERNAL_ERROR", "down")
    hook = FakeHook(statuses={"gen-1": ["FAILED"], "gen-2": ["IN_PROGRESS"] * 3 + [down]})
    single(hook, resubmit_on_failure=1, wait_for_completion=False).execute(context(store))
    ctx = context(store)
    with pytest.raises(SeedanceServerError):
        single(hook, resubmit_on_failure=1).execute(ctx)
    failure = ctx["ti"].xcoms["seedance_result"]
    assert failure["outcome"] == "unknown" and failure["seedance_task_ids"] == ["gen-1", "gen-2"]
    assert len(hook.posts) == 2
