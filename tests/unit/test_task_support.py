"""Checks of trigger events and what a failure records about the money."""

from __future__ import annotations

import pytest

from airflow_provider_seedance.exceptions import (
    CreationState,
    SeedanceAuthError,
    SeedanceBadRequestError,
    SeedanceConnectionError,
    SeedanceError,
    SeedanceInsufficientCreditsError,
    SeedanceServerError,
    SeedanceSubmissionUncertainError,
    SeedanceTaskNotFoundError,
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
    assert result.error_message.startswith("disk full") and result.video_url


def test_paid_not_delivered_says_how_to_get_the_paid_video_without_paying_again() -> None:
    """Red team 3 of issue 18: a delivery that failed after the bill (an unwritable file) told
    the log and the card only the OS error; the user, told nothing of the money's next step,
    re-runs the DAG (a new run) and pays again. The text names the generation and that a retry
    or clear re-attaches and delivers it without paying again."""
    done = SeedanceTask("seed-7", "SUCCESS", ["https://cdn.example.com/v.mp4?sig=SECRET"], 8)
    result = result_on_error(PermissionError(13, "Permission denied"), done, {"prompt": "p"}, ("seed-7",))
    text = result.error_message or ""
    assert text.startswith("[Errno 13] Permission denied")
    assert "seed-7" in text and "without paying again" in text and "retries" in text
    assert "a new run pays again" in text
    assert "SECRET" not in text
    # A cause that ends its own sentence is not given a second full stop.
    again = result_on_error(SeedanceError("the service went away."), done, {"prompt": "p"}, ("seed-7",))
    assert (again.error_message or "").startswith("the service went away. Seedance generation seed-7")


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
        sending = False
        watched_task_id = None

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
        sending = False
        watched_task_id = None

    with pytest.raises(SeedanceValidationError), recording_failures({"ti": TI()}, Log(), State()):  # type: ignore[arg-type]
        raise SeedanceValidationError("aspect_ratio", "5:4", "one of 1:1, 16:9")
    assert any("nothing was sent to seedance and nothing was spent" in line.lower() for line in lines), lines


# ------------------------------------------------------------------ refused, sent, watched
@pytest.mark.parametrize(
    "error",
    [
        SeedanceBadRequestError(400, "INVALID_PROMPT", "prompt refused", creation=CreationState.REFUSED),
        SeedanceAuthError(401, "INVALID_API_KEY", "bad key", creation=CreationState.REFUSED),
        SeedanceInsufficientCreditsError(
            402, "INSUFFICIENT_CREDITS", "top up", creation=CreationState.REFUSED
        ),
    ],
    ids=["400", "401", "402"],
)
def test_a_4xx_refusal_of_the_post_is_refused_not_nothing_sent(error: SeedanceError) -> None:
    """Red team D4: something was sent and the service said no: nothing spent, its own words."""
    result = result_on_error(error, None, {"prompt": "p"}, (), sending=True)
    assert result.outcome is Outcome.REFUSED and result.consumed_credits == 0
    assert result.error_message == str(error) and not result.outcome.is_generation
    assert result.outcome.summary == "The service refused the request — nothing spent"


def test_a_post_that_never_left_is_nothing_sent() -> None:
    error = SeedanceConnectionError("connection refused: nothing was sent", sent=False)
    result = result_on_error(error, None, {"prompt": "p"}, (), sending=True)
    assert result.outcome is Outcome.NOT_SENT
    assert result.outcome.summary == "Nothing was sent — nothing spent"


def test_a_try_ended_mid_post_by_a_non_seedance_error_may_have_been_charged() -> None:
    result = result_on_error(TimeoutError("execution_timeout"), None, {"prompt": "p"}, (), sending=True)
    assert result.outcome is Outcome.UNCERTAIN and "may have been charged" in (result.error_message or "")
    assert "execution_timeout" in (result.error_message or "")


def test_the_same_error_outside_a_post_is_nothing_sent() -> None:
    result = result_on_error(TimeoutError("execution_timeout"), None, {"prompt": "p"}, (), sending=False)
    assert result.outcome is Outcome.NOT_SENT


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (SeedanceServerError(500, "INTERNAL_ERROR", "down"), "its status could not be read"),
        (SeedanceConnectionError("connection refused", sent=False), "its status could not be read"),
        (SeedanceTaskNotFoundError(404, "TASK_NOT_FOUND", "no such task"), "the service does not know it"),
    ],
)
def test_a_sensors_failed_first_read_names_the_watched_generation_never_nothing_sent(
    error: SeedanceError, said: str
) -> None:
    """Red team D7c: the sensor sends nothing; it watches a generation submitted elsewhere."""
    result = result_on_error(error, None, {}, (), watched_task_id="seed-9")
    assert result.outcome is Outcome.UNKNOWN and result.task_id == "seed-9"
    assert result.seedance_task_ids == ("seed-9",) and result.consumed_credits == 0
    message = result.error_message or ""
    assert "seed-9 was submitted elsewhere" in message and "sent nothing" in message
    assert said in message.lower() and str(error) in message


def test_a_refusal_is_logged_as_refused_with_nothing_spent() -> None:
    lines: list[str] = []

    class Log:
        def error(self, message: str, *args: object) -> None:
            lines.append(message % args)

        info = warning = error

    class TI:
        def xcom_push(self, key: str, value: object) -> None:
            pass

    class State:
        last = None
        request = {"prompt": "p"}
        history = ()
        sending = True
        watched_task_id = None

    error = SeedanceAuthError(401, "INVALID_API_KEY", "bad key", creation=CreationState.REFUSED)
    with pytest.raises(SeedanceAuthError), recording_failures({"ti": TI()}, Log(), State()):  # type: ignore[arg-type]
        raise error
    assert any(
        line.startswith("The service refused the request — nothing spent") and "INVALID_API_KEY" in line
        for line in lines
    ), lines
    assert not any("nothing was sent" in line.lower() for line in lines), lines
