"""SeedanceBatchGenerateOperator's money rules per item, with a fake hook and store.

The promises: each item's ``submitting`` mark is saved before its POST; an item whose answer
was lost stays uncertain (never resent, never taken for "rejected"); an item the API refused
is resubmitted by the next try; a recorded item is resubmitted only when the API says FAILED
or that it does not know it (never because its status could not be read); the budget counts
only what will be generated; ``resubmit_on_failure`` is exact.
The same promises against the real emulator: ``tests/integration/test_money_rules.py``.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_seedance.exceptions import (
    CreationState,
    SeedanceAuthError,
    SeedanceBadRequestError,
    SeedanceBatchFailedError,
    SeedanceBudgetExceededError,
    SeedanceConnectionError,
    SeedanceError,
    SeedanceServerError,
    SeedanceSubmissionUncertainError,
    SeedanceTaskNotFoundError,
)
from airflow_provider_seedance.operators.batch import XCOM_BATCH_RESULTS
from tests.unit.fakes import BATCH_ITEMS, FakeHook, Store, batch, context

#: 480p, 4 s, no audio: 8 credits each.
ITEMS = BATCH_ITEMS
#: A file that passes the MP4 check (``ftyp`` box at offset 4).
MP4 = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64


def prompts(hook: FakeHook) -> list[str]:
    return [request.prompt for request in hook.posts]


# ---------------------------------------------------------------- the submitting mark
@pytest.mark.parametrize("max_in_flight", [1, 2, 3])
def test_each_item_is_marked_submitting_in_the_store_before_its_post(max_in_flight: int) -> None:
    store = Store()
    seen: list[tuple[str, dict[str, Any]]] = []
    hook = FakeHook(on_post=lambda request: seen.append((request.prompt, store.entries())))
    batch(hook, max_in_flight=max_in_flight, wait_for_completion=False).execute(context(store))
    assert len(seen) == 3
    for prompt, saved in seen:
        states = {entry["state"] for entry in saved.values()}
        assert "submitting" in states, prompt
        # never more uncertain items on record than POSTs allowed at once
        assert sum(entry["state"] == "submitting" for entry in saved.values()) <= max_in_flight
    final = store.entries()
    assert sorted(e["seedance_task_id"] for e in final.values()) == ["gen-1", "gen-2", "gen-3"]
    assert {e["state"] for e in final.values()} == {"submitted"}


def test_an_answered_item_is_on_record_before_the_next_post() -> None:
    store = Store()
    seen: list[list[str]] = []
    hook = FakeHook(on_post=lambda _r: seen.append(sorted(e["state"] for e in store.entries().values())))
    batch(hook, wait_for_completion=False).execute(context(store))
    assert seen == [["submitting"], ["submitted", "submitting"], ["submitted", "submitted", "submitting"]]


# ---------------------------------------------------------------- uncertain and refused items
@pytest.mark.parametrize(
    "lost",
    [
        SeedanceSubmissionUncertainError("read timeout after sending"),
        SeedanceConnectionError("connection reset after sending", sent=True),
    ],
    ids=["uncertain-answer", "connection-error-after-sending"],
)
def test_an_item_whose_answer_was_lost_stays_uncertain_and_is_never_resent(lost: SeedanceError) -> None:
    store = Store()
    hook = FakeHook(submits=[None, lost, None])
    with pytest.raises(SeedanceBatchFailedError, match="answer was lost"):
        batch(hook).execute(context(store))
    assert store.states() == ["submitted", "submitted", "submitting"]
    assert prompts(hook) == ["item 0", "item 1", "item 2"]

    ctx = context(store)
    with pytest.raises(SeedanceBatchFailedError, match="uncertain"):
        batch(hook).execute(ctx)
    assert len(hook.posts) == 3 and store.states() == ["submitted", "submitted", "submitting"]
    results = ctx["ti"].xcoms[XCOM_BATCH_RESULTS]["results"]
    assert [r["outcome"] for r in results] == ["succeeded", "uncertain", "succeeded"]


def test_force_new_resends_only_the_uncertain_item() -> None:
    store = Store()
    hook = FakeHook(submits=[None, SeedanceSubmissionUncertainError("lost"), None])
    with pytest.raises(SeedanceBatchFailedError):
        batch(hook).execute(context(store))
    outcome = batch(hook, force_new=True).execute(context(store))
    assert outcome["totals"]["succeeded"] == 3
    assert prompts(hook) == ["item 0", "item 1", "item 2", "item 1"]
    batch(hook, force_new=True).execute(context(store))
    assert len(hook.posts) == 4


@pytest.mark.parametrize(
    ("refused", "said"),
    [
        (
            SeedanceBadRequestError(400, "INVALID_PROMPT", "refused", creation=CreationState.REFUSED),
            "refused",
        ),
        (SeedanceConnectionError("connection refused", sent=False), "not_sent"),
    ],
    ids=["api-refused", "never-reached-the-server"],
)
def test_an_item_that_created_nothing_is_rejected_and_the_next_try_submits_it(
    refused: SeedanceError, said: str
) -> None:
    store = Store()
    hook = FakeHook(submits=[None, refused, None])
    ctx = context(store)
    with pytest.raises(SeedanceBatchFailedError):
        batch(hook).execute(ctx)
    assert store.states() == ["rejected", "submitted", "submitted"]
    results = ctx["ti"].xcoms[XCOM_BATCH_RESULTS]["results"]
    assert [r["outcome"] for r in results] == ["succeeded", said, "succeeded"]
    outcome = batch(hook).execute(context(store))
    assert outcome["totals"]["succeeded"] == 3
    assert prompts(hook) == ["item 0", "item 1", "item 2", "item 1"]


def test_a_bad_key_stops_the_batch_and_sends_nothing_more() -> None:
    store = Store()
    hook = FakeHook(
        submits=[SeedanceAuthError(401, "INVALID_API_KEY", "bad key", creation=CreationState.REFUSED)]
    )
    ctx = context(store)
    with pytest.raises(SeedanceBatchFailedError, match="INVALID_API_KEY"):
        batch(hook).execute(ctx)
    assert len(hook.posts) == 1
    results = ctx["ti"].xcoms[XCOM_BATCH_RESULTS]["results"]
    # The one sent was refused by the service; the others were never sent.
    assert [r["outcome"] for r in results] == ["refused", "not_sent", "not_sent"]
    assert "INVALID_API_KEY" in results[1]["error_message"]


# ---------------------------------------------------------------- re-attach
def test_a_retry_reattaches_to_every_recorded_item() -> None:
    store = Store()
    hook = FakeHook(statuses={f"gen-{n}": ["IN_PROGRESS", "SUCCESS"] for n in range(1, 4)})
    batch(hook, wait_for_completion=False).execute(context(store))
    outcome = batch(hook).execute(context(store))
    assert outcome["totals"]["succeeded"] == 3 and len(hook.posts) == 3


@pytest.mark.parametrize(
    ("error", "resubmitted"),
    [
        (SeedanceServerError(500, "INTERNAL_ERROR", "down"), False),
        (SeedanceConnectionError("read timeout", sent=True), False),
        (SeedanceTaskNotFoundError(404, "TASK_NOT_FOUND", "unknown"), True),
    ],
    ids=["5xx", "timeout", "task-not-found"],
)
def test_only_the_apis_no_such_task_frees_a_recorded_item_whose_status_cannot_be_read(
    error: SeedanceError, resubmitted: bool
) -> None:
    store = Store()
    hook = FakeHook(statuses={"gen-1": ["IN_PROGRESS"]})
    batch(hook, ITEMS[:1], wait_for_completion=False).execute(context(store))
    hook.status_errors["gen-1"] = error
    try:
        batch(hook, ITEMS[:1], wait_for_completion=False).execute(context(store))
    except SeedanceBatchFailedError:
        assert not resubmitted
    assert len(hook.posts) == (2 if resubmitted else 1)
    [entry] = store.entries().values()
    assert entry["seedance_task_id"] == ("gen-2" if resubmitted else "gen-1")


def test_a_recorded_item_that_failed_is_submitted_anew_by_the_next_try() -> None:
    store = Store()
    hook = FakeHook(statuses={"gen-1": ["FAILED"]})  # the first try returns without reading it
    batch(hook, ITEMS[:1], wait_for_completion=False).execute(context(store))
    outcome = batch(hook, ITEMS[:1]).execute(context(store))
    assert outcome["totals"]["succeeded"] == 1 and len(hook.posts) == 2
    [entry] = store.entries().values()
    assert entry["history"] == ["gen-1", "gen-2"]


# ---------------------------------------------------------------- resubmit_on_failure
@pytest.mark.parametrize("allowed", [0, 1, 2])
def test_resubmit_on_failure_resubmits_each_item_exactly_n_times(allowed: int) -> None:
    hook = FakeHook(statuses={f"gen-{n}": ["FAILED"] for n in range(1, 10)})
    ctx = context(Store())
    with pytest.raises(SeedanceBatchFailedError, match="FAILED"):
        batch(hook, ITEMS[:1], resubmit_on_failure=allowed).execute(ctx)
    assert len(hook.posts) == allowed + 1
    [result] = ctx["ti"].xcoms[XCOM_BATCH_RESULTS]["results"]
    assert result["outcome"] == "generation_failed" and len(result["seedance_task_ids"]) == allowed + 1


def test_resubmit_on_failure_stops_at_the_first_success() -> None:
    hook = FakeHook(statuses={"gen-1": ["FAILED"], "gen-2": ["SUCCESS"]})
    outcome = batch(hook, ITEMS[:1], resubmit_on_failure=2).execute(context(Store()))
    assert outcome["totals"]["succeeded"] == 1 and len(hook.posts) == 2


# ---------------------------------------------------------------- budget
@pytest.mark.parametrize(
    ("max_credits", "allowed"),
    [(None, True), (25, True), (24, True), (23, False), (0, False)],
    ids=["no-budget", "above", "equal", "below", "zero-is-a-budget"],
)
def test_the_batch_budget_is_checked_before_any_http_call(max_credits: int | None, allowed: bool) -> None:
    hook = FakeHook()
    op = batch(hook, max_credits=max_credits)
    if allowed:
        assert op.execute(context(Store()))["totals"]["succeeded"] == 3
    else:
        with pytest.raises(SeedanceBudgetExceededError) as raised:
            op.execute(context(Store()))
        assert raised.value.estimated_credits == 24 and raised.value.max_credits == max_credits
        assert hook.posts == [] and hook.reads == []


def test_the_batch_budget_counts_only_the_items_to_generate(tmp_path: Path) -> None:
    for n in (0, 1):  # two of three videos are already delivered
        (tmp_path / f"{n}.mp4").write_bytes(MP4)
    hook = FakeHook()
    outcome = batch(
        hook, output_path_template=str(tmp_path / "{index}.mp4"), max_credits=8, wait_for_completion=False
    ).execute(context(Store()))
    assert prompts(hook) == ["item 2"]
    assert [r["outcome"] for r in outcome["results"][:2]] == ["reused", "reused"]
    with pytest.raises(SeedanceBudgetExceededError):
        batch(FakeHook(), output_path_template=str(tmp_path / "{index}.mp4"), max_credits=7).execute(
            context(Store())
        )


# ---------------------------------------------------------------- one write per answer
def test_each_answer_is_written_together_with_the_mark_of_the_item_taking_its_place() -> None:
    """After a kill at any write, at most ``max_in_flight`` items are uncertain and every id
    that came back is on record: one write per answer, holding the next item's mark."""
    store = Store()
    batch(FakeHook(), wait_for_completion=False).execute(context(store))
    assert store.states_after_each_write() == [
        ["submitting"],
        ["submitted", "submitting"],
        ["submitted", "submitted", "submitting"],
        ["submitted", "submitted", "submitted"],
    ]


def test_a_refusal_is_written_together_with_the_next_mark() -> None:
    store = Store()
    hook = FakeHook(
        submits=[
            SeedanceBadRequestError(400, "INVALID_PROMPT", "refused", creation=CreationState.REFUSED),
            None,
        ]
    )
    batch(hook, ITEMS[:2], wait_for_completion=False, fail_on_any_failure=False).execute(context(store))
    assert store.states_after_each_write() == [
        ["submitting"],
        ["rejected", "submitting"],
        ["rejected", "submitted"],
    ]


def test_a_refused_items_result_says_why() -> None:
    hook = FakeHook(
        submits=[
            SeedanceBadRequestError(400, "INVALID_PROMPT", "prompt refused", creation=CreationState.REFUSED)
        ]
    )
    outcome = batch(hook, ITEMS[:1], fail_on_any_failure=False).execute(context(Store()))
    [result] = outcome["results"]
    assert result["outcome"] == "refused" and "INVALID_PROMPT" in result["error_message"]


def test_an_answer_is_recorded_while_another_post_still_hangs() -> None:
    store = Store()
    recorded = threading.Event()

    def on_post(request: Any) -> None:
        if request.prompt == "item 0":  # hangs until the other item's id is on record
            for _ in range(500):
                if "submitted" in store.states():
                    recorded.set()
                    return
                time.sleep(0.01)

    batch(FakeHook(on_post=on_post), ITEMS[:2], max_in_flight=2, wait_for_completion=False).execute(
        context(store)
    )
    assert recorded.is_set()


def test_the_budget_error_says_how_many_generations_it_priced() -> None:
    with pytest.raises(SeedanceBudgetExceededError, match="3 generations"):
        batch(FakeHook(), max_credits=1).execute(context(Store()))


def test_a_blocking_batch_gives_up_at_its_deadline_without_paying_again() -> None:
    hook = FakeHook(statuses={"gen-1": ["IN_PROGRESS"]})
    with pytest.raises(SeedanceError, match="still running at the deadline"):
        batch(hook, ITEMS[:1], timeout=0).execute(context(Store()))
    assert len(hook.posts) == 1


def test_a_record_written_under_the_positional_key_of_0_1_is_adopted_not_paid_again() -> None:
    """0.1 keyed an item by its position among identical requests; naming it later keeps it."""
    store = Store()
    hook = FakeHook(statuses={"gen-1": ["IN_PROGRESS", "SUCCESS"]})
    batch(hook, ITEMS[:1], wait_for_completion=False).execute(context(store))
    [legacy_key] = store.entries()
    outcome = batch(hook, [{**ITEMS[0], "id": "a"}]).execute(context(store))
    assert len(hook.posts) == 1
    assert outcome["totals"]["succeeded"] == 1
    [(key, entry)] = store.entries().items()
    assert key != legacy_key and entry["fingerprint"] == key and entry["seedance_task_id"] == "gen-1"


def test_a_0_1_key_that_is_another_items_key_today_is_not_taken_from_it() -> None:
    """An item with an ``id`` whose 0.1 key (``<fp>-1``) is today's key of an identical item
    without one must not adopt that item's entry: the other item would be paid again."""
    from airflow_provider_seedance.models import GenerationRequest
    from airflow_provider_seedance.reattach import RECORD_KEY, SUBMITTED, Submission

    fingerprint = GenerationRequest.from_mapping(ITEMS[0]).fingerprint()
    store = Store()
    taken = f"{fingerprint}-1"  # the item without an id, recorded by an earlier try
    store.data[RECORD_KEY] = {taken: Submission(taken, SUBMITTED, "gen-0", 1.0, ("gen-0",)).to_json()}
    hook = FakeHook()
    batch(hook, [{**ITEMS[0], "id": "a"}, ITEMS[0]], wait_for_completion=False).execute(context(store))
    assert len(hook.posts) == 1  # only the item with the id is new
    entries = store.entries()
    assert entries[taken]["seedance_task_id"] == "gen-0"
    assert sorted(e["seedance_task_id"] for e in entries.values()) == ["gen-0", "gen-1"]


def test_the_deadline_error_says_the_generations_may_still_be_billed_and_how_to_reattach() -> None:
    """Red-team of issue 18: giving up at the deadline leaves paid-for-if-they-succeed
    generations behind; the error says so and names the next step, not only the count."""
    hook = FakeHook(statuses={"gen-1": ["IN_PROGRESS"]})
    with pytest.raises(SeedanceError) as info:
        batch(hook, ITEMS[:1], timeout=0).execute(context(Store()))
    text = str(info.value)
    assert "may still be billed" in text and "re-attaches to them without paying again" in text, text
