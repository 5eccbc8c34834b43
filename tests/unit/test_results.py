"""GenerationResult: the one shape of a generation's result, and every shape it reads back."""

from __future__ import annotations

import json

import pytest

from airflow_provider_seedance.models import SeedanceTask, estimate_credits
from airflow_provider_seedance.results import (
    SCHEMA_VERSION,
    GenerationResult,
    Outcome,
    ResultFormatError,
    batch_totals,
    results_from_xcom,
)

SUCCESS = SeedanceTask("seed-1", "SUCCESS", ["https://cdn.example.com/v.mp4"], 28, request={"prompt": "p"})


def test_round_trip_through_json_keeps_every_field() -> None:
    result = GenerationResult.from_task(SUCCESS).with_(output_path="s3://b/k.mp4", bytes=10, sha256="ab")
    stored = json.loads(json.dumps(result.to_xcom()))
    assert stored["schema"] == SCHEMA_VERSION and stored["outcome"] == "succeeded"
    assert GenerationResult.from_xcom(stored) == result


def test_documented_return_value_keys_stay() -> None:
    keys = set(GenerationResult.from_task(SUCCESS).to_xcom())
    assert {
        "task_id",
        "status",
        "video_url",
        "video_urls",
        "consumed_credits",
        "consumed_usd",
        "request",
        "error_message",
        "seedance_task_ids",
        "reused_existing",
    } <= keys


def test_only_a_success_is_billed() -> None:
    failed = SeedanceTask("seed-2", "FAILED", consumed_credits=28, error_message="moderated")
    assert GenerationResult.from_task(failed).consumed_credits == 0
    assert GenerationResult.from_task(failed).outcome is Outcome.GENERATION_FAILED
    running = SeedanceTask("seed-3", "QUEUED")  # an unknown status is never a success
    assert GenerationResult.from_task(running).outcome is Outcome.IN_PROGRESS


@pytest.mark.parametrize(
    ("released", "outcome", "credits"),
    [
        (
            {"task_id": "s1", "status": "SUCCESS", "consumed_credits": 28, "consumed_usd": 0.14},
            "succeeded",
            28,
        ),
        (
            {"task_id": None, "status": "SUCCESS", "reused_existing": True, "output_path": "/v.mp4"},
            "reused",
            0,
        ),
        ({"task_id": "s2", "status": "FAILED", "consumed_credits": 28}, "generation_failed", 0),
        ({"task_id": "s3", "status": "IN_PROGRESS"}, "in_progress", 0),
        ({"task_id": None, "status": "ERROR", "error_message": "refused"}, "not_sent", 0),
        ({"task_id": "s4", "status": "ERROR", "error_message": "unreadable"}, "unknown", 0),
        (  # a released batch item whose delivery failed: the success record, status overwritten
            {
                "task_id": "s6",
                "status": "ERROR",
                "video_url": "https://cdn/v.mp4",
                "consumed_credits": 28,
                "error_message": "delivery failed: 403",
            },
            "paid_not_delivered",
            28,
        ),
        ({"task_id": "s7", "status": "ERROR", "consumed_credits": 28}, "paid_not_delivered", 28),
        ({"task_id": "s8", "status": "ERROR", "video_url": "https://cdn/v.mp4"}, "paid_not_delivered", 0),
        ({"task_id": "s5", "video_url": None, "base_url": "x", "status": "IN_PROGRESS"}, "in_progress", 0),
    ],
)
def test_reads_every_released_shape(released: dict, outcome: str, credits: int) -> None:
    result = GenerationResult.from_xcom(released)
    assert result.outcome.value == outcome and result.consumed_credits == credits


@pytest.mark.parametrize(
    "bad",
    [
        "a string",
        [],
        {"task_id": "s", "status": "SUCCESS", "consumed_credits": "lots"},
        {"task_id": "s", "status": "SUCCESS", "consumed_credits": 1e400},
        {"task_id": "s", "status": "SUCCESS", "consumed_credits": -5},
        {"task_id": "s", "status": "SUCCESS", "consumed_credits": 2.5},
        {"task_id": "s", "status": "SUCCESS", "consumed_credits": True},
        {"schema": 99, "outcome": "succeeded"},
        {"outcome": "bribed", "task_id": "s"},
        {"status": "IN_PROGRESS"},  # names neither a generation nor a reuse
    ],
)
def test_unreadable_records_raise_a_typed_error(bad: object) -> None:
    with pytest.raises(ResultFormatError):
        GenerationResult.from_xcom(bad)


def test_batch_value_gives_one_result_per_item_in_order() -> None:
    value = {
        "results": [
            {"task_id": "a", "status": "SUCCESS", "consumed_credits": 8, "id": "sku-1"},
            {"task_id": None, "status": "SUCCESS", "reused_existing": True, "output_path": "/x.mp4"},
            {"task_id": None, "status": "ERROR", "error_message": "not submitted"},
        ],
        "totals": {},
    }
    results = results_from_xcom(value)
    assert [r.index for r in results] == [0, 1, 2]
    assert [r.outcome for r in results] == [Outcome.SUCCEEDED, Outcome.REUSED, Outcome.NOT_SENT]
    assert results[0].item_id == "sku-1"
    totals = batch_totals(results)
    assert totals["credits"] == 8 and totals["generations"] == 1 and totals["reused"] == 1
    assert totals["succeeded"] == 2 and totals["failed"] == 1 and totals["dollars_text"] == "$0.04"


def test_dollars_use_the_logs_rounding() -> None:
    result = GenerationResult.from_task(SeedanceTask("s", "SUCCESS", consumed_credits=19))
    assert result.consumed_usd_text == "$0.095"


def test_paid_not_delivered_keeps_the_credits() -> None:
    result = GenerationResult.from_task(SUCCESS).with_(outcome=Outcome.PAID_NOT_DELIVERED)
    back = GenerationResult.from_xcom(result.to_xcom())
    assert back.outcome is Outcome.PAID_NOT_DELIVERED and back.consumed_credits == 28
    assert Outcome.PAID_NOT_DELIVERED.is_generation and not Outcome.REUSED.is_generation


# ------------------------------------------------------------------ the outcomes' words and money
def test_a_refusal_reads_back_as_a_refusal_and_is_not_a_generation() -> None:
    refused = GenerationResult.refused(
        "Seedance API error 401 INVALID_API_KEY", {"prompt": "p"}, seedance_task_ids=("seed-0",)
    )
    back = GenerationResult.from_xcom(refused.to_xcom())
    assert back.outcome is Outcome.REFUSED and back.consumed_credits == 0
    assert back.error_message == "Seedance API error 401 INVALID_API_KEY"
    assert back.seedance_task_ids == ("seed-0",)
    totals = batch_totals([back])
    assert (totals["generations"], totals["failed"], totals["credits"]) == (0, 1, 0)


def test_each_outcome_has_its_own_words() -> None:
    words = {outcome: outcome.summary for outcome in Outcome}
    assert len(set(words.values())) == len(Outcome)
    assert words[Outcome.NOT_SENT] == "Nothing was sent — nothing spent"
    assert words[Outcome.REFUSED] == "The service refused the request — nothing spent"
    assert words[Outcome.PAID_NOT_DELIVERED] == "Paid, not delivered"
    assert "may have been charged" in words[Outcome.UNCERTAIN]


def test_what_a_result_may_still_cost_is_the_estimate_only_while_unsettled() -> None:
    request = {"prompt": "p", "resolution": "480p", "duration": "4"}
    assert GenerationResult.uncertain("lost", request).possible_credits == 8
    assert GenerationResult(outcome=Outcome.UNKNOWN, task_id="s", request=request).possible_credits == 8
    assert GenerationResult.refused("no", request).possible_credits is None
    assert GenerationResult.not_sent("no", request).possible_credits is None
    assert GenerationResult(outcome=Outcome.SUCCEEDED, request=request).possible_credits is None
    assert GenerationResult.uncertain("lost").possible_credits is None  # request not recorded
    assert GenerationResult.uncertain("lost", {"resolution": "8k"}).possible_credits is None


def test_a_paid_record_without_credits_counts_its_estimate_as_possible() -> None:
    """A released ``seedance_link`` of a task that failed after its generation succeeded holds
    the request but no credits: the Spend view must not count that payment as nothing."""
    paid = GenerationResult.from_xcom(
        {
            "task_id": "s9",
            "status": "ERROR",
            "video_url": "https://cdn/v.mp4",
            "request": {"resolution": "480p", "duration": 4, "generate_audio": False},
        }
    )
    assert paid.outcome is Outcome.PAID_NOT_DELIVERED and paid.consumed_credits == 0
    assert paid.possible_credits == estimate_credits("480p", 4, False) > 0
    priced = paid.with_(consumed_credits=28)
    assert priced.possible_credits is None  # its credits are known: nothing more is possible


def test_a_results_request_cannot_be_changed_in_place_but_copies_and_serialises() -> None:
    """One result is shared by the task, its XCom and the UI: a caller that edits its request would
    change what the others see. Every way of building one freezes it; copies stay usable."""
    import copy
    import json
    import pickle

    built = [
        GenerationResult(outcome=Outcome.NOT_SENT, request={"prompt": "p", "image_urls": ["a"]}),
        GenerationResult.not_sent("budget", {"prompt": "p", "image_urls": ["a"]}),
        GenerationResult.from_xcom(
            GenerationResult.not_sent("budget", {"prompt": "p", "image_urls": ["a"]}).to_xcom()
        ),
        GenerationResult(outcome=Outcome.NOT_SENT).with_(request={"prompt": "p", "image_urls": ["a"]}),
    ]
    for result in built:
        request = result.request
        for change in (
            lambda r: r.__setitem__("prompt", "x"),
            lambda r: r.__delitem__("prompt"),
            lambda r: r.update(prompt="x"),
            lambda r: r.pop("prompt"),
            lambda r: r.popitem(),
            lambda r: r.setdefault("seed", 1),
            lambda r: r.clear(),
        ):
            with pytest.raises(TypeError, match="cannot be changed in place"):
                change(request)
        with pytest.raises(TypeError, match="cannot be changed in place"):
            request |= {"prompt": "x"}
        assert result.request == {"prompt": "p", "image_urls": ["a"]}
        assert json.loads(json.dumps(result.to_xcom()))["request"] == {"prompt": "p", "image_urls": ["a"]}
        for twin in (copy.deepcopy(result), pickle.loads(pickle.dumps(result)), copy.copy(result)):
            assert twin == result and twin.request == result.request
        editable = dict(result.request)
        editable["prompt"] = "x"
        assert result.request["prompt"] == "p"
