"""The ``seedance_result`` record: what a generation cost, written and read back exactly.

The promises: a result survives the XCom round trip field for field (the UI, the cleanup
command and later tasks read it); only a success is billed; a reuse costs 0 and names the
file; a stored value that is not a result is refused, never guessed; the shapes released
0.x code wrote are still read; a batch's totals add up its items.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_seedance.models import SeedanceTask
from airflow_provider_seedance.results import (
    SCHEMA_VERSION,
    GenerationResult,
    Outcome,
    ResultFormatError,
    batch_totals,
    results_from_xcom,
)

REQUEST = {"prompt": "a fox", "resolution": "480p", "duration": "4"}


def full_result() -> GenerationResult:
    return GenerationResult(
        outcome=Outcome.SUCCEEDED,
        task_id="gen-2",
        status="SUCCESS",
        video_urls=("https://cdn/v.mp4", "https://cdn/w.mp4"),
        consumed_credits=16,
        request=REQUEST,
        error_message="first try failed",
        seedance_task_ids=("gen-1", "gen-2"),
        output_path="s3://bucket/v.mp4",
        bytes=1234,
        sha256="ab" * 32,
        created_at="2026-01-01T00:00:00Z",
        item_id="intro",
        index=3,
    )


def test_a_result_survives_the_xcom_round_trip_field_for_field() -> None:
    result = full_result()
    stored = result.to_xcom()
    assert stored["schema"] == SCHEMA_VERSION and stored["outcome"] == "succeeded"
    assert stored["video_url"] == "https://cdn/v.mp4"
    assert stored["consumed_usd"] == 0.08 and stored["consumed_usd_text"] == "$0.08"
    assert (stored["output_path"], stored["bytes"], stored["sha256"]) == (
        "s3://bucket/v.mp4",
        1234,
        "ab" * 32,
    )
    assert stored["id"] == "intro" and stored["index"] == 3 and stored["reused_existing"] is False
    assert GenerationResult.from_xcom(stored) == result


def test_a_result_without_delivery_or_batch_position_leaves_those_keys_out() -> None:
    stored = GenerationResult(outcome=Outcome.IN_PROGRESS, task_id="gen-1", status="IN_PROGRESS").to_xcom()
    assert not {"output_path", "bytes", "sha256", "id", "index"} & set(stored)
    back = GenerationResult.from_xcom(stored)
    assert back.item_id is None and back.index is None and back.bytes is None
    assert back.seedance_task_ids == ("gen-1",), "a single generation's history is itself"


def test_a_reuse_costs_nothing_and_names_the_file_it_found() -> None:
    result = GenerationResult.reused("/data/v.mp4", 99, "cd" * 32, REQUEST, item_id="a", index=1)
    assert result.outcome is Outcome.REUSED and result.reused_existing and result.is_success
    assert result.status == "SUCCESS" and result.consumed_credits == 0 and result.task_id is None
    assert (result.output_path, result.bytes, result.sha256) == ("/data/v.mp4", 99, "cd" * 32)
    assert result.request == REQUEST and (result.item_id, result.index) == ("a", 1)
    assert GenerationResult.from_xcom(result.to_xcom()) == result


def test_not_sent_says_why_and_costs_nothing() -> None:
    result = GenerationResult.not_sent("budget", REQUEST, item_id="b", index=2)
    assert result.outcome is Outcome.NOT_SENT and result.error_message == "budget"
    assert result.request == REQUEST and (result.item_id, result.index) == ("b", 2)
    assert result.consumed_credits == 0 and not result.outcome.is_generation
    assert GenerationResult.not_sent("no connection").request == {}


@pytest.mark.parametrize(
    ("status", "outcome", "credits"),
    [
        ("SUCCESS", Outcome.SUCCEEDED, 8),
        ("FAILED", Outcome.GENERATION_FAILED, 0),
        ("QUEUED", Outcome.IN_PROGRESS, 0),
    ],
)
def test_from_task_bills_only_a_success(status: str, outcome: Outcome, credits: int) -> None:
    task = SeedanceTask(
        "gen-1",
        status,
        video_urls=["https://cdn/v.mp4"],
        consumed_credits=8,
        created_at="2026-01-01T00:00:00Z",
        request={"prompt": "from the task"},
        error_message="why",
    )
    result = GenerationResult.from_task(task, item_id="x", index=4)
    assert result.outcome is outcome and result.consumed_credits == credits
    assert result.task_id == "gen-1" and result.status == status
    assert result.video_urls == ("https://cdn/v.mp4",) and result.error_message == "why"
    assert result.request == {"prompt": "from the task"} and result.created_at == "2026-01-01T00:00:00Z"
    assert result.seedance_task_ids == ("gen-1",) and (result.item_id, result.index) == ("x", 4)
    explicit = GenerationResult.from_task(task, REQUEST, seedance_task_ids=["gen-0", "gen-1"])
    assert explicit.request == REQUEST and explicit.seedance_task_ids == ("gen-0", "gen-1")


def test_a_success_without_credits_counts_zero() -> None:
    assert GenerationResult.from_task(SeedanceTask("gen-1", "SUCCESS")).consumed_credits == 0


# ---------------------------------------------------------------- reading stored values
@pytest.mark.parametrize(
    ("value", "credits"),
    [(None, 0), (8, 8), (8.0, 8), ("12", 12), (" 12 ", 12), (0, 0), (10**9, 10**9)],
)
def test_stored_credits_are_read_as_whole_numbers(value: Any, credits: int) -> None:
    stored = {"task_id": "gen-1", "status": "SUCCESS", "consumed_credits": value}
    assert GenerationResult.from_xcom(stored).consumed_credits == credits


@pytest.mark.parametrize("value", [True, 8.5, float("inf"), "8a", "-3", -1, 10**9 + 1, [8], "٣"])
def test_stored_credits_that_are_not_a_whole_amount_are_refused(value: Any) -> None:
    with pytest.raises(ResultFormatError, match="consumed_credits"):
        GenerationResult.from_xcom({"task_id": "gen-1", "status": "SUCCESS", "consumed_credits": value})


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ([1], "must be a JSON object, not list"),
        ({"schema": SCHEMA_VERSION + 1, "task_id": "gen-1"}, "unknown result schema"),
        ({"schema": "2", "task_id": "gen-1"}, "unknown result schema"),
        ({"outcome": "exploded", "task_id": "gen-1"}, "unknown outcome 'exploded'"),
        ({"status": "QUEUED"}, "neither a generation nor a reuse"),
        ({}, "neither a generation nor a reuse"),
    ],
)
def test_a_value_that_is_not_a_result_is_refused_never_guessed(value: Any, match: str) -> None:
    with pytest.raises(ResultFormatError, match=match):
        GenerationResult.from_xcom(value)


def test_this_schema_and_older_ones_are_read() -> None:
    assert (
        GenerationResult.from_xcom({"schema": SCHEMA_VERSION, "task_id": "g", "status": "SUCCESS"}).task_id
        == "g"
    )
    assert GenerationResult.from_xcom({"schema": 1, "task_id": "g", "status": "SUCCESS"}).task_id == "g"


@pytest.mark.parametrize(
    ("value", "outcome"),
    [
        ({"task_id": "g", "status": "success"}, Outcome.SUCCEEDED),
        ({"status": "SUCCESS", "output_path": "/v.mp4"}, Outcome.REUSED),
        ({"task_id": "g", "status": "SUCCESS", "reused_existing": True}, Outcome.REUSED),
        ({"task_id": "g", "status": "FAILED"}, Outcome.GENERATION_FAILED),
        ({"task_id": "g", "status": "ERROR"}, Outcome.UNKNOWN),
        ({"status": "ERROR", "error_message": "refused"}, Outcome.NOT_SENT),
        ({"task_id": "g", "status": "IN_PROGRESS"}, Outcome.IN_PROGRESS),
        ({"task_id": "g"}, Outcome.IN_PROGRESS),
    ],
)
def test_released_shapes_are_read_with_the_outcome_they_meant(
    value: dict[str, Any], outcome: Outcome
) -> None:
    assert GenerationResult.from_xcom(value).outcome is outcome


def test_a_released_failed_record_with_credits_is_read_as_not_billed() -> None:
    stored = {"task_id": "g", "status": "FAILED", "consumed_credits": 8}
    assert GenerationResult.from_xcom(stored).consumed_credits == 0
    paid = {"outcome": "paid_not_delivered", "task_id": "g", "status": "SUCCESS", "consumed_credits": 8}
    assert GenerationResult.from_xcom(paid).consumed_credits == 8


@pytest.mark.parametrize(
    ("value", "urls"),
    [
        ({"video_urls": ["a", "", 3, "b"]}, ("a", "b")),
        ({"video_url": "a"}, ("a",)),
        ({"video_url": ""}, ()),
        ({"response": ["a", None, "b"]}, ("a", "b")),
        ({"response": "a"}, ()),
    ],
)
def test_video_urls_are_read_from_each_stored_shape(value: dict[str, Any], urls: tuple[str, ...]) -> None:
    assert GenerationResult.from_xcom({"task_id": "g", "status": "SUCCESS", **value}).video_urls == urls


def test_odd_field_types_are_dropped_not_trusted() -> None:
    stored = {
        "task_id": "g",
        "status": "SUCCESS",
        "request": "not a mapping",
        "bytes": True,
        "index": False,
        "id": {"nested": 1},
        "seedance_task_ids": ["g0", "", 7, "g"],
        "error_message": "",
        "sha256": 5,
    }
    result = GenerationResult.from_xcom(stored)
    assert result.request == {} and result.bytes is None and result.index is None
    assert result.item_id is None and result.seedance_task_ids == ("g0", "g")
    assert result.error_message is None and result.sha256 is None
    assert GenerationResult.from_xcom({"task_id": "g", "status": "SUCCESS", "id": 7}).item_id == "7"


def test_a_batch_value_yields_each_item_with_its_position() -> None:
    items = [
        {"task_id": "g1", "status": "SUCCESS"},
        {"task_id": "g2", "status": "FAILED", "index": 7},
    ]
    results = results_from_xcom({"results": items})
    assert [r.task_id for r in results] == ["g1", "g2"] and [r.index for r in results] == [0, 7]
    [single] = results_from_xcom({"task_id": "g1", "status": "SUCCESS"})
    assert single.task_id == "g1"


def test_batch_totals_count_each_outcome_and_add_the_spend() -> None:
    results = [
        GenerationResult(outcome=Outcome.SUCCEEDED, task_id="a", consumed_credits=8),
        GenerationResult.reused("/v.mp4", 1, "x", {}),
        GenerationResult(outcome=Outcome.IN_PROGRESS, task_id="b"),
        GenerationResult(outcome=Outcome.GENERATION_FAILED, task_id="c"),
        GenerationResult.not_sent("budget"),
        GenerationResult(outcome=Outcome.PAID_NOT_DELIVERED, task_id="d", consumed_credits=16),
    ]
    assert batch_totals(results) == {
        "requests": 6,
        "succeeded": 2,
        "failed": 3,
        "in_progress": 1,
        "reused": 1,
        "generations": 4,
        "credits": 24,
        "dollars": 0.12,
        "dollars_text": "$0.12",
    }
