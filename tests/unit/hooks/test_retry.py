"""The one retry policy: backoff, Retry-After in one place, never past a deadline."""

from __future__ import annotations

import time
from typing import Any

import pytest

from airflow_provider_seedance.exceptions import (
    SeedanceAuthError,
    SeedanceConnectionError,
    SeedanceRateLimitError,
    SeedanceServerError,
)
from airflow_provider_seedance.hooks.retry import (
    RETRY_AFTER_CAP,
    RetryPolicy,
    is_transient,
    retry_after_floor,
    until_deadline,
)


def test_backoff_grows_exponentially_to_the_cap_with_bounded_jitter() -> None:
    policy = RetryPolicy(min_wait=1.0, max_wait=8.0)
    for failures, base in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        for _ in range(20):
            assert base <= policy.backoff(failures) <= base + 1.0


@pytest.mark.parametrize("failures", [1025, 10**6])
def test_backoff_after_thousands_of_failures_stays_at_the_cap(failures: int) -> None:
    """An outage never given up (``max_outage`` infinite) keeps backing off at ``max_wait``; the
    doubling must not overflow a float (it did at the 1,025th failure in a row)."""
    policy = RetryPolicy(min_wait=1.0, max_wait=30.0, max_outage=float("inf"))
    assert 30.0 <= policy.backoff(failures) <= 31.0


def test_retry_after_is_a_floor_capped_at_two_minutes() -> None:
    policy = RetryPolicy(min_wait=0.0, max_wait=0.0)
    assert policy.backoff(1, SeedanceRateLimitError(429, "RATE_LIMITED", retry_after=7)) == 7.0
    assert (
        retry_after_floor(SeedanceRateLimitError(429, "RATE_LIMITED", retry_after=10_000)) == RETRY_AFTER_CAP
    )
    assert retry_after_floor(ValueError("x")) == 0.0 and retry_after_floor(None) == 0.0


def test_transient_is_the_declared_attribute() -> None:
    assert is_transient(SeedanceServerError(500, "INTERNAL_ERROR"))
    assert is_transient(SeedanceConnectionError("x"))
    assert not is_transient(SeedanceAuthError(401, "INVALID_API_KEY"))
    assert not is_transient(RuntimeError("x"))


def test_until_deadline_never_passes_it() -> None:
    assert until_deadline(5.0, None) == 5.0
    assert until_deadline(5.0, time.time() - 10) == 0.0
    assert 0.0 < until_deadline(5.0, time.time() + 1.0) <= 1.0


def _failing(times: int, exc: Exception):
    calls = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise exc
        return "ok"

    return call, calls


def test_retrying_stops_after_the_attempts_and_reraises_the_error() -> None:
    call, calls = _failing(10, SeedanceServerError(500, "INTERNAL_ERROR"))
    with pytest.raises(SeedanceServerError):
        for attempt in RetryPolicy(attempts=3, min_wait=0.0, max_wait=0.0).retrying():
            with attempt:
                call()
    assert len(calls) == 3


def test_retrying_only_retries_what_the_predicate_accepts() -> None:
    call, calls = _failing(10, SeedanceAuthError(401, "INVALID_API_KEY"))
    with pytest.raises(SeedanceAuthError):
        for attempt in RetryPolicy(attempts=5, min_wait=0.0, max_wait=0.0).retrying():
            with attempt:
                call()
    assert len(calls) == 1


def test_retrying_by_outage_is_not_bounded_by_the_attempt_count() -> None:
    call, calls = _failing(4, SeedanceServerError(500, "INTERNAL_ERROR"))
    for attempt in RetryPolicy(attempts=2, min_wait=0.0, max_wait=0.0).retrying(outage=60.0):
        with attempt:
            result = call()
    assert result == "ok" and len(calls) == 5


def _pauses(retrying: Any, failures: int) -> list[float]:
    """The pauses ``retrying`` takes between ``failures`` failed calls (it does not sleep them)."""
    pauses: list[float] = []
    retrying.sleep = pauses.append
    call, _ = _failing(failures, SeedanceServerError(503, "INTERNAL_ERROR"))
    for attempt in retrying:
        with attempt:
            call()
    return pauses


def test_a_wait_bounded_by_time_alone_never_reads_a_failing_api_in_a_tight_loop() -> None:
    """``retry_min_wait=0`` (and ``retry_max_wait=0``) with a wait's outage tolerance read a failing
    API back to back for the whole ``max_outage``: tens of thousands of requests in 180 s. A retry
    bounded by time alone starts at 50 ms and doubles to at least a second."""
    policy = RetryPolicy(min_wait=0.0, max_wait=0.0, max_outage=180.0)
    pauses = _pauses(policy.retrying(outage=180.0), 20)
    bases = [0.05, 0.1, 0.2, 0.4, 0.8] + [1.0] * 15
    # each pause: its base plus jitter up to the first pause (50 ms)
    assert [base <= pause <= base + 0.05 for base, pause in zip(bases, pauses, strict=True)] == [True] * 20
    # so 180 s of outage costs about 190 reads, not one per round trip


def test_waits_given_by_the_user_are_kept_when_longer_and_attempt_capped_retries_keep_zero() -> None:
    slow = RetryPolicy(min_wait=2.0, max_wait=8.0)
    pauses = _pauses(slow.retrying(outage=180.0), 5)
    assert [base <= pause <= base + 2.0 for base, pause in zip([2, 4, 8, 8, 8], pauses, strict=True)] == [
        True
    ] * 5, pauses
    # an attempt-capped retry is bounded by its count: zero waits stay zero
    assert _pauses(RetryPolicy(attempts=5, min_wait=0.0, max_wait=0.0).retrying(), 4) == [0.0] * 4


def test_retrying_does_not_sleep_past_the_deadline() -> None:
    # Backoff of 30 s against a deadline 1 s away: the error comes back at once.
    call, calls = _failing(10, SeedanceServerError(500, "INTERNAL_ERROR"))
    policy = RetryPolicy(attempts=5, min_wait=30.0, max_wait=30.0)
    with pytest.raises(SeedanceServerError):
        for attempt in policy.retrying(deadline=time.time() + 1.0):
            with attempt:
                call()
    assert len(calls) == 1


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
