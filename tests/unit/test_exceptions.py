"""Error parsing: every documented code, any body shape, always a typed error.

The HTTP-answer → error mapping lives in ``hooks/transport.py``; the POST-specific rule
(what may exist) is tested in ``tests/unit/hooks/test_transport.py``.
"""

from __future__ import annotations

import json

import pytest

from airflow_provider_seedance._compat import AirflowFailException
from airflow_provider_seedance.exceptions import (
    SeedanceAPIError,
    SeedanceAuthError,
    SeedanceBadRequestError,
    SeedanceInsufficientCreditsError,
    SeedanceRateLimitError,
    SeedanceResponseError,
    SeedanceServerError,
    SeedanceTaskNotFoundError,
    SeedanceValidationError,
)
from airflow_provider_seedance.hooks.transport import status_answer as parse_envelope


def from_response(status: int, raw: str | bytes, *, retry_after: str | None = None) -> SeedanceAPIError:
    """The error a status read raises for this answer."""
    data = raw.encode() if isinstance(raw, str) else raw
    with pytest.raises(SeedanceAPIError) as info:
        parse_envelope(status, data, endpoint="GET /v1/status", retry_after=retry_after)
    return info.value


def body(status: int, message: str) -> bytes:
    return json.dumps({"code": status, "message": message, "data": None}).encode()


DOCUMENTED = [
    (400, "INVALID_PROMPT", SeedanceBadRequestError),
    (400, "INVALID_ASPECT_RATIO", SeedanceBadRequestError),
    (400, "INVALID_RESOLUTION", SeedanceBadRequestError),
    (400, "INVALID_DURATION", SeedanceBadRequestError),
    (400, "TOO_MANY_IMAGES", SeedanceBadRequestError),
    (401, "INVALID_API_KEY", SeedanceAuthError),
    (402, "INSUFFICIENT_CREDITS", SeedanceInsufficientCreditsError),
    (404, "TASK_NOT_FOUND", SeedanceTaskNotFoundError),
    (429, "RATE_LIMITED", SeedanceRateLimitError),
    (500, "INTERNAL_ERROR", SeedanceServerError),
]


@pytest.mark.parametrize(("status", "code", "cls"), DOCUMENTED)
def test_each_documented_code_from_the_message_token(status: int, code: str, cls: type) -> None:
    err = from_response(status, body(status, f"{code}: something went wrong"))
    assert type(err) is cls
    assert err.status_code == status and err.error_code == code
    assert code in str(err)


@pytest.mark.parametrize("field", ["code", "error", "error_code"])
def test_code_read_from_a_string_field(field: str) -> None:
    err = from_response(402, json.dumps({field: "INSUFFICIENT_CREDITS", "message": "top up"}))
    assert isinstance(err, SeedanceInsufficientCreditsError) and err.error_code == "INSUFFICIENT_CREDITS"


def test_nested_error_object() -> None:
    err = from_response(401, json.dumps({"error": {"code": "INVALID_API_KEY", "message": "no"}}))
    assert isinstance(err, SeedanceAuthError) and err.server_message == "no"


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (401, "INVALID_API_KEY", SeedanceAuthError),
        (402, "INSUFFICIENT_CREDITS", SeedanceInsufficientCreditsError),
        (429, "RATE_LIMITED", SeedanceRateLimitError),
        (502, "INTERNAL_ERROR", SeedanceServerError),
        (404, "NOT_FOUND", SeedanceBadRequestError),
        (418, "HTTP_ERROR", SeedanceBadRequestError),
    ],
)
def test_code_derived_from_status_when_body_is_not_json(status: int, code: str, cls: type) -> None:
    err = from_response(status, b"<html><body><h1>Bad Gateway</h1></body></html>")
    assert type(err) is cls and err.error_code == code
    assert "<html>" not in str(err)


def test_plain_404_from_a_proxy_is_not_task_not_found() -> None:
    # test_connection relies on TASK_NOT_FOUND meaning "the API knows this key": a wrong base
    # URL answering a bare 404 must not pass for it.
    err = from_response(404, b"Not Found")
    assert not isinstance(err, SeedanceTaskNotFoundError)


def test_retry_after_is_kept() -> None:
    err = from_response(429, b"", retry_after="7")
    assert isinstance(err, SeedanceRateLimitError) and err.retry_after == 7.0 and err.retryable


def test_huge_server_message_is_truncated() -> None:
    err = from_response(500, body(500, "INTERNAL_ERROR: " + "x" * 100_000))
    assert len(str(err)) < 500


def test_non_retryable_classes_are_airflow_fail_exceptions() -> None:
    for cls in (SeedanceBadRequestError, SeedanceAuthError, SeedanceInsufficientCreditsError):
        assert issubclass(cls, AirflowFailException)
    assert issubclass(SeedanceValidationError, ValueError) and issubclass(
        SeedanceValidationError, AirflowFailException
    )
    assert not issubclass(SeedanceServerError, AirflowFailException)


GOOD = json.dumps(
    {"code": 200, "message": "success", "data": {"task_id": "t", "status": "IN_PROGRESS"}}
).encode()


def test_envelope_success_returns_data() -> None:
    assert parse_envelope(200, GOOD, endpoint="GET /v1/status") == {"task_id": "t", "status": "IN_PROGRESS"}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "an empty body"),
        (b"not json at all", "not JSON"),
        (b"<!DOCTYPE html><html>proxy</html>", "HTML page"),
        (b'{"code": 200, "message": "success"}', "no 'data' object"),
        (b'{"code": 200, "data": null}', "no 'data' object"),
        (b"[1, 2]", "not an object"),
        (b'{"code": 200, "data": {"task_id": "t"', "not JSON"),
        (b" " * 10 + b"{" + b'"a":' * 1, "not JSON"),
    ],
)
def test_envelope_malformed_bodies_give_typed_errors(raw: bytes, reason: str) -> None:
    with pytest.raises(SeedanceResponseError, match=reason) as info:
        parse_envelope(200, raw, endpoint="GET /v1/status")
    assert info.value.error_code == "MALFORMED_RESPONSE"


def test_envelope_oversized_body_is_a_typed_retryable_error() -> None:
    # The transport hands over None once a body passes MAX_BODY_BYTES (it stops reading there).
    with pytest.raises(SeedanceResponseError, match="too large") as info:
        parse_envelope(200, None, endpoint="GET /v1/status")
    assert info.value.retryable


def test_envelope_http_200_with_error_code_in_body() -> None:
    with pytest.raises(SeedanceAuthError):
        parse_envelope(200, body(401, "INVALID_API_KEY: bad key"), endpoint="GET /v1/status")


def test_envelope_error_status() -> None:
    with pytest.raises(SeedanceTaskNotFoundError):
        parse_envelope(404, body(404, "TASK_NOT_FOUND: no such task"), endpoint="GET /v1/status")


def test_delivery_errors_that_no_retry_can_fix_are_not_retryable() -> None:
    """A non-video body, a refused URL, a video over the cap and an expired URL end the task:
    a retry would fetch the same thing again (and the status/download retry loops read
    ``retryable``), while a dropped transfer stays retryable."""
    from airflow_provider_seedance.exceptions import (
        SeedanceDownloadError,
        SeedanceNotAVideoError,
        SeedanceVideoExpiredError,
        SeedanceVideoTooLargeError,
        SeedanceVideoURLRefusedError,
    )

    terminal = [
        SeedanceNotAVideoError("an HTML page"),
        SeedanceVideoURLRefusedError("redirect to a private address"),
        SeedanceVideoTooLargeError("https://cdn.example/v.mp4", 1024, 4096),
        SeedanceVideoExpiredError("https://cdn.example/v.mp4", 410),
    ]
    for error in terminal:
        assert error.retryable is False, type(error).__name__
        assert isinstance(error, AirflowFailException), type(error).__name__
    assert SeedanceDownloadError("connection reset", retryable=True).retryable is True
    assert SeedanceDownloadError("404").retryable is False


def test_shared_budget_error_names_the_budget_and_every_amount_in_credits_and_dollars() -> None:
    from airflow_provider_seedance.exceptions import SeedanceSharedBudgetExceededError

    error = SeedanceSharedBudgetExceededError("daily budget of connection 'seedance_default'", 190, 200, 28)
    assert str(error) == (
        "The daily budget of connection 'seedance_default' is exhausted: 190 credits ($0.95) spent or "
        "reserved of 200 ($1.00); this generation would cost 28 credits ($0.14). Nothing was "
        "submitted, and the task is not retried (raise the limit, or wait for the next period, "
        "then clear it)."
    )
    assert error.budget == "daily budget of connection 'seedance_default'"
    assert (error.spent_credits, error.limit_credits, error.estimated_credits) == (190, 200, 28)
    assert isinstance(error, AirflowFailException)
    batch = SeedanceSharedBudgetExceededError("run budget", 0, 10, 56, what="2 items")
    assert "; 2 items would cost 56 credits ($0.28)." in str(batch)
