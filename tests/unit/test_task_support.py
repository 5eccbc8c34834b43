"""Checks of trigger events and what a failure records about the money."""

from __future__ import annotations

import pytest

from airflow_provider_seedance.exceptions import (
    SeedanceError,
    SeedanceSubmissionUncertainError,
    SeedanceValidationError,
)
from airflow_provider_seedance.models import SeedanceTask, TriggerEventStatus
from airflow_provider_seedance.results import Outcome
from airflow_provider_seedance.task_support import result_on_error, task_from_event

EVENT = {"status": "success", "task": {"task_id": "seed-1", "status": "SUCCESS"}, "message": "ok"}


def test_event_for_the_watched_id_with_surrounding_whitespace_is_accepted() -> None:
    status, task, _ = task_from_event(EVENT, expected_task_id="  seed-1\n")
    assert status is TriggerEventStatus.SUCCESS and task.task_id == "seed-1"


@pytest.mark.parametrize(
    "event",
    [None, [], {"status": "maybe", "task": EVENT["task"]}, {"status": "success", "task": {}}],
)
def test_odd_events_fail_loudly(event: object) -> None:
    with pytest.raises(SeedanceError):
        task_from_event(event)


def test_event_for_another_generation_is_refused() -> None:
    with pytest.raises(SeedanceError, match="expected seed-2"):
        task_from_event(EVENT, expected_task_id="seed-2")


def test_failure_before_sending_is_not_sent_with_the_reason() -> None:
    error = SeedanceValidationError("aspect_ratio", "2:1", "one of 1:1, 16:9")
    result = result_on_error(error, None, {"prompt": "p"}, ())
    assert result.outcome is Outcome.NOT_SENT and result.consumed_credits == 0
    assert "aspect_ratio" in (result.error_message or "")


def test_lost_submit_answer_is_uncertain() -> None:
    result = result_on_error(SeedanceSubmissionUncertainError("dropped"), None, {"prompt": "p"}, ())
    assert result.outcome is Outcome.UNCERTAIN


def test_failure_after_success_is_paid_not_delivered_with_the_credits() -> None:
    done = SeedanceTask("seed-1", "SUCCESS", ["https://cdn.example.com/v.mp4"], 28)
    result = result_on_error(OSError("disk full"), done, {"prompt": "p"}, ("seed-1",))
    assert result.outcome is Outcome.PAID_NOT_DELIVERED and result.consumed_credits == 28
    assert result.error_message == "disk full" and result.video_url


def test_failure_while_running_is_unknown_and_unbilled() -> None:
    running = SeedanceTask("seed-1", "IN_PROGRESS")
    result = result_on_error(SeedanceError("deadline"), running, {"prompt": "p"}, ("seed-1",))
    assert result.outcome is Outcome.UNKNOWN and result.task_id == "seed-1" and result.consumed_credits == 0
