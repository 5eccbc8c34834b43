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
from airflow_provider_seedance.task_support import recording_failures, result_on_error, task_from_event

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


def test_failure_while_running_says_it_may_still_be_billed_and_how_to_reattach() -> None:
    """Red-team of issue 18: the status became unreadable after the POST. The record is
    unbilled *so far*, but the card's text must not read as "nothing spent" (the status
    error says "Reading a status spends nothing"): it names the submitted generation, that
    it may still be billed (its price) and that a clear re-attaches without paying again."""
    running = SeedanceTask("seed-1", "IN_PROGRESS")
    error = SeedanceError(
        "Seedance API error 500 INTERNAL_ERROR from GET /v1/status. Reading a status spends nothing"
    )
    request = {"prompt": "p", "resolution": "480p", "duration": "4"}
    result = result_on_error(error, running, request, ("seed-1",))
    text = result.error_message or ""
    assert result.outcome is Outcome.UNKNOWN and result.consumed_credits == 0
    assert "seed-1" in text and "may still be billed" in text and "8 credits" in text, text
    assert "re-attaches" in text and "Reading a status spends nothing" in text, text


def test_a_failure_with_money_in_play_is_logged_with_what_happened_to_the_money() -> None:
    """The task log says it too, next to the raised error (which names only the last cause)."""
    lines: list[str] = []

    class Log:
        def error(self, message: str, *args: object) -> None:
            lines.append(message % args)

        warning = error

    class TI:
        def xcom_push(self, key: str, value: object) -> None:
            pass

    class State:
        last = SeedanceTask("seed-1", "IN_PROGRESS")
        request = {"prompt": "p"}
        history = ("seed-1",)

    with pytest.raises(SeedanceError), recording_failures({"ti": TI()}, Log(), State()):  # type: ignore[arg-type]
        raise SeedanceError("status unreadable")
    assert any("seed-1" in line and "may still be billed" in line for line in lines), lines


def test_a_failure_before_sending_is_logged_as_nothing_sent_nothing_spent() -> None:
    """Red-team of issue 18: a bad field value's error names the field and what is allowed,
    but not the money; the task log says it beside the error: nothing sent, nothing spent."""
    lines: list[str] = []

    class Log:
        def info(self, message: str, *args: object) -> None:
            lines.append(message % args)

        error = warning = info

    class TI:
        def xcom_push(self, key: str, value: object) -> None:
            pass

    class State:
        last = None
        request = {"prompt": "p"}
        history = ()

    with pytest.raises(SeedanceValidationError), recording_failures({"ti": TI()}, Log(), State()):  # type: ignore[arg-type]
        raise SeedanceValidationError("aspect_ratio", "5:4", "one of 1:1, 16:9")
    assert any("nothing was sent to seedance and nothing was spent" in line.lower() for line in lines), lines
