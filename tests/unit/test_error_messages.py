"""What each error carries (typed state callers branch on) and what its message tells a person.

The promises (STYLE.md, the API contract): bad input names the field, the value and what is
allowed; an API error names status, code, endpoint and what happened to the money; a timeout
names the generation and how to collect it; a download error says whether trying again can
help (``retryable``) and never is retried when it cannot. Callers read these attributes
(the operators' records, the results, the retry policy), so each is pinned here.
"""

from __future__ import annotations

import pytest

from airflow_provider_seedance.exceptions import (
    CreationState,
    SeedanceAPIError,
    SeedanceBudgetExceededError,
    SeedanceConnectionError,
    SeedanceDownloadError,
    SeedanceGenerationFailedError,
    SeedanceNotAVideoError,
    SeedanceSubmissionUncertainError,
    SeedanceTimeoutError,
    SeedanceValidationError,
    SeedanceVideoExpiredError,
    SeedanceVideoTooLargeError,
    SeedanceVideoURLRefusedError,
    describe_value,
    never_created,
)


# ----------------------------------------------------------------- bad input
def test_a_validation_error_names_field_value_and_what_is_allowed() -> None:
    err = SeedanceValidationError("resolution", "4k", "'480p' or '720p'")
    assert (err.field, err.value, err.allowed) == ("resolution", "4k", "'480p' or '720p'")
    assert str(err) == "Invalid resolution: '4k'. Allowed: '480p' or '720p'."
    assert never_created(err)


def test_a_validation_error_in_a_batch_item_names_the_item() -> None:
    err = SeedanceValidationError("duration", 5, "4, 8 or 12", prefix="requests[2].")
    assert str(err) == "Invalid requests[2].duration: 5. Allowed: 4, 8 or 12."


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("short", "'short'"),
        ("x" * 60, repr("x" * 60)),
        ("y" * 61, f"{'y' * 40!r}… (61 characters)"),
        (None, "None"),
        (True, "True"),
        (3, "3"),
        (2.5, "2.5"),
        ([1, 2], "[1, 2] (type list)"),
        ({"k": "v"}, "{'k': 'v'} (type dict)"),
    ],
)
def test_a_value_is_shown_short_and_readable_with_its_type_when_not_a_scalar(
    value: object, shown: str
) -> None:
    assert describe_value(value) == shown


def test_a_non_scalar_value_is_shown_whole_up_to_eighty_characters_then_cut_at_sixty() -> None:
    eighty = [1] * 25 + [100]
    assert len(repr(eighty)) == 80 and describe_value(eighty) == f"{eighty!r} (type list)"
    eighty_one = [1] * 27
    assert len(repr(eighty_one)) == 81
    assert describe_value(eighty_one) == f"{repr(eighty_one)[:60]}… (type list)"


# ----------------------------------------------------------------- API answers
def test_an_api_error_names_status_code_endpoint_server_message_and_what_it_cost() -> None:
    err = SeedanceAPIError(
        400,
        "INVALID_PROMPT",
        "prompt too long",
        endpoint="POST /v1/generate",
        retry_after=3.0,
        note="Nothing was created or spent",
        creation=CreationState.REFUSED,
    )
    assert str(err) == (
        "Seedance API error 400 INVALID_PROMPT from POST /v1/generate: prompt too long. "
        "Nothing was created or spent"
    )
    assert (err.status_code, err.error_code, err.server_message) == (400, "INVALID_PROMPT", "prompt too long")
    assert err.endpoint == "POST /v1/generate" and err.retry_after == 3.0
    assert err.creation is CreationState.REFUSED


def test_an_api_error_without_endpoint_message_or_note_says_only_status_and_code() -> None:
    err = SeedanceAPIError(503, "INTERNAL_ERROR")
    assert str(err) == "Seedance API error 503 INTERNAL_ERROR"
    assert err.endpoint == "" and err.server_message == "" and err.creation is None


@pytest.mark.parametrize(
    ("sent", "state"), [(True, CreationState.MAY_EXIST), (False, CreationState.NOT_SENT)]
)
def test_a_connection_error_says_whether_the_request_left(sent: bool, state: CreationState) -> None:
    err = SeedanceConnectionError("no answer", endpoint="GET /v1/status", sent=sent)
    assert err.creation is state and err.sent is sent and err.endpoint == "GET /v1/status"
    assert never_created(err) is not sent and err.retryable


def test_a_connection_error_is_taken_as_sent_unless_told_otherwise() -> None:
    err = SeedanceConnectionError("reset")
    assert err.sent and err.creation is CreationState.MAY_EXIST and not never_created(err)
    assert err.endpoint == ""


def test_an_uncertain_submission_keeps_its_reason_status_and_code_and_says_it_was_not_resent() -> None:
    err = SeedanceSubmissionUncertainError("HTTP 502", status_code=502, error_code="INTERNAL_ERROR")
    assert (err.reason, err.status_code, err.error_code) == ("HTTP 502", 502, "INTERNAL_ERROR")
    assert "(HTTP 502)" in str(err) and "NOT sent again" in str(err) and "force_new=True" in str(err)
    bare = SeedanceSubmissionUncertainError("read timeout")
    assert bare.status_code == 0 and bare.error_code is None and not never_created(bare)


def test_an_uncertain_submission_does_not_promise_a_retry_that_never_comes() -> None:
    """Red team 3 of issue 18: the text said "if the task has `retries` set, a task retry
    re-attaches to it", but the error fails the task without retrying (an
    AirflowFailException; seen with retries=1 under `airflow dags test`), and no try knows the
    lost generation's id to re-attach to (a batch's retry leaves such an item alone too). It
    says what does happen and the one way on."""
    from airflow.exceptions import AirflowFailException

    err = SeedanceSubmissionUncertainError("timed out waiting for the answer")
    text = str(err)
    assert isinstance(err, AirflowFailException)
    assert "retry re-attaches" not in text and "no retry sends it or can re-attach to it" in text
    assert "dashboard" in text and "force_new=True" in text and "separately billed" in text


# ----------------------------------------------------------------- the generation's end
def test_a_timeout_names_the_generation_the_wait_and_how_to_collect_it() -> None:
    err = SeedanceTimeoutError("gen-1", 600.4, "QUEUED")
    assert (err.task_id, err.waited_seconds, err.last_status) == ("gen-1", 600.4, "QUEUED")
    assert str(err) == (
        "Seedance task gen-1 did not finish within 600s (last status QUEUED). It may still finish: "
        "wait on it with SeedanceStatusSensor(seedance_task_id='gen-1')."
    )
    assert SeedanceTimeoutError("gen-2", 5).last_status == "IN_PROGRESS"


def test_a_failed_generation_names_the_task_and_its_reason_and_says_it_is_not_billed() -> None:
    err = SeedanceGenerationFailedError("gen-1", "moderation")
    assert err.task_id == "gen-1" and err.error_message == "moderation"
    assert str(err) == "Seedance task gen-1 FAILED: moderation (failed generations are not billed)"
    silent = SeedanceGenerationFailedError("gen-2", None)
    assert (
        str(silent)
        == "Seedance task gen-2 FAILED: no error message given (failed generations are not billed)"
    )


def test_a_budget_error_states_estimate_limit_and_that_nothing_was_submitted() -> None:
    err = SeedanceBudgetExceededError(16, 8)
    assert (err.estimated_credits, err.max_credits) == (16, 8)
    assert str(err) == (
        "Estimated cost of this generation is 16 credits ($0.08), above max_credits=8 ($0.04). "
        "Nothing was submitted."
    )
    assert never_created(err)
    assert str(SeedanceBudgetExceededError(24, 10, "this batch")).startswith(
        "Estimated cost of this batch is"
    )


# ----------------------------------------------------------------- delivery
def test_a_download_error_is_final_unless_told_it_was_a_dropped_transfer() -> None:
    assert SeedanceDownloadError("404").retryable is False
    assert SeedanceDownloadError("dropped", retryable=True).retryable is True


@pytest.mark.parametrize(
    "err",
    [
        SeedanceNotAVideoError("an HTML page"),
        SeedanceVideoURLRefusedError("redirect loop"),
        SeedanceVideoTooLargeError("https://cdn/v.mp4", 1024, 4096),
        SeedanceVideoExpiredError("https://cdn/v.mp4", 410),
    ],
    ids=["not-a-video", "refused", "too-large", "expired"],
)
def test_a_delivery_that_cannot_succeed_by_trying_again_is_never_retryable(
    err: SeedanceDownloadError,
) -> None:
    assert err.retryable is False
    assert str(err)  # a message, not the class name alone
    assert type(err).__name__ not in str(err)


def test_not_a_video_keeps_the_description_of_what_was_served() -> None:
    assert str(SeedanceNotAVideoError("an HTML page (Content-Type text/html)")) == (
        "an HTML page (Content-Type text/html)"
    )
    assert str(SeedanceVideoURLRefusedError("redirect to a private host")) == "redirect to a private host"


@pytest.mark.parametrize(
    ("cap", "shown"),
    [
        (2 * 1024**3, "2 GiB"),
        (1024**3, "1 GiB"),
        (1536 * 1024**2, "1.5 GiB"),
        (5 * 1024**2, "5 MiB"),
        (1024**2, "1 MiB"),
        (3 * 1024, "3 KiB"),
        (1024, "1 KiB"),
        (1000, "1000 bytes"),
    ],
)
def test_too_large_states_the_cap_in_readable_units_and_bytes(cap: int, shown: str) -> None:
    err = SeedanceVideoTooLargeError("https://cdn/v.mp4", cap, None)
    assert err.cap == cap
    assert (
        f"larger than the delivery cap of {shown} ({cap} bytes; it passed {cap} bytes while streaming)"
        in str(err)
    )


def test_too_large_says_the_size_the_server_announced() -> None:
    err = SeedanceVideoTooLargeError("https://cdn/v.mp4", 1024, 4096)
    assert "(1024 bytes; it announced 4096 bytes)" in str(err) and "max_video_bytes" in str(err)


def test_an_expired_video_names_the_url_and_status_and_how_to_get_the_video() -> None:
    err = SeedanceVideoExpiredError("https://cdn/v.mp4", 410)
    assert err.url == "https://cdn/v.mp4" and err.status_code == 410
    assert str(err).startswith("The video URL https://cdn/v.mp4 has expired (HTTP 410)")
    assert "output_path" in str(err)
