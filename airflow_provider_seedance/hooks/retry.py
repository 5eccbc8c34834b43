"""The one retry policy of the provider (tenacity underneath) and the one deadline helper.

Everything that tries again uses :class:`RetryPolicy`: the generate request's pre-send
connection retries (only requests that provably never left), status reads sync and async,
the waits (blocking and deferrable, bounded by *outage time*), the batch trigger's rounds,
and (through :meth:`RetryPolicy.retrying`) deliveries. A server's ``Retry-After`` is
honoured in one place, :func:`retry_after_floor`, and nothing sleeps past a deadline
(:func:`until_deadline`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tenacity

from airflow_provider_seedance.exceptions import SeedanceError
from airflow_provider_seedance.values import count_value, seconds_value

#: A server's ``Retry-After`` is honoured up to this many seconds.
RETRY_AFTER_CAP = 120.0
#: A wait (blocking or deferrable) gives up on the service after this many seconds of
#: consecutive failed status reads (5xx, 429, network errors, unreadable answers).
DEFAULT_MAX_OUTAGE = 180.0
#: A retry bounded by time alone (a wait's ``max_outage``, no attempt cap) pauses at least this
#: long at first and doubles to at least :data:`TIMED_RETRY_LONGEST_PAUSE`, whatever
#: ``retry_min_wait``/``retry_max_wait`` say: zero waits would read a failing API in a tight loop
#: for the whole outage (tens of thousands of requests in 180 s), not about 190.
TIMED_RETRY_FIRST_PAUSE = 0.05
TIMED_RETRY_LONGEST_PAUSE = 1.0
#: A poller whose reads keep failing pauses at most six poll intervals, kept within a minute and
#: an hour (see :func:`poller_max_wait`).
POLLER_MAX_WAIT_INTERVALS = 6
POLLER_MAX_WAIT_BOUNDS = (60.0, 3600.0)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure that trying again may cure (its declared ``retryable``)."""
    return isinstance(exc, SeedanceError) and exc.retryable


def retry_after_floor(exc: BaseException | None) -> float:
    """The shortest wait the server asked for after ``exc`` (its ``Retry-After``, capped), or 0."""
    if not isinstance(exc, SeedanceError) or exc.retry_after is None:
        return 0.0
    return min(float(exc.retry_after), RETRY_AFTER_CAP)


def until_deadline(seconds: float, deadline: float | None) -> float:
    """``seconds``, shortened so that sleeping it does not pass ``deadline`` (epoch), never < 0."""
    if deadline is not None:
        seconds = min(seconds, deadline - time.time())
    return max(0.0, seconds)


def sleep_until_deadline(seconds: float, deadline: float | None) -> None:
    """Sleep ``seconds`` but not past ``deadline`` (sync side: workers only)."""
    time.sleep(until_deadline(seconds, deadline))


async def asleep_until_deadline(seconds: float, deadline: float | None) -> None:
    """Sleep ``seconds`` but not past ``deadline``, without blocking the event loop."""
    await asyncio.sleep(until_deadline(seconds, deadline))


def poller_max_wait(poll_interval: float) -> float:
    """The longest pause of a poller (a trigger, single or batch) whose reads keep failing: six
    poll intervals, within a minute and an hour: a slow poll backs off further, a fast one
    still eases off to a minute, a poll interval of days is not a backoff."""
    shortest, longest = POLLER_MAX_WAIT_BOUNDS
    return max(min(poll_interval * POLLER_MAX_WAIT_INTERVALS, longest), shortest)


def deadline_within_outage(started: float, outage: float | None, deadline: float | None) -> bool:
    """Whether retries that began at ``started`` end at ``deadline`` before the outage limit
    would end them: then a wait that failed is out of time (a timeout), not given up."""
    if deadline is None:
        return False
    return outage is None or deadline <= started + outage


class RetryAfterWait(tenacity.wait.wait_base):
    """Exponential backoff with jitter, never shorter than the server's ``Retry-After``."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        return self._policy.backoff(retry_state.attempt_number, exc)


@dataclass(frozen=True)
class RetryPolicy:
    """How the provider tries again.

    :param attempts: attempts of one standalone operation (a status read, a download).
    :param min_wait: first backoff, in seconds.
    :param max_wait: longest backoff, in seconds (a ``Retry-After`` may ask for more).
    :param max_outage: a *wait* tolerates consecutive failures for this many seconds.
    """

    attempts: int = 5
    min_wait: float = 1.0
    max_wait: float = 30.0
    max_outage: float = DEFAULT_MAX_OUTAGE

    def __post_init__(self) -> None:
        # named as the hook's parameters, which is where users set them
        checked = {
            "attempts": count_value(self.attempts, "status_retries", minimum=1, what=" of attempts"),
            "min_wait": seconds_value(self.min_wait, "retry_min_wait", zero_allowed=True),
            "max_wait": seconds_value(self.max_wait, "retry_max_wait", zero_allowed=True),
            "max_outage": seconds_value(
                self.max_outage, "max_outage", zero_allowed=True, infinite_allowed=True
            ),
        }
        for name, value in checked.items():  # kept as plain numbers (3.0 or numpy's int64 given)
            object.__setattr__(self, name, value)

    def backoff(self, failures: int, *errors: BaseException | None) -> float:
        """Pause after the ``failures``-th consecutive failure: exponential, capped at
        ``max_wait``, plus jitter up to ``min_wait``; never below the ``Retry-After`` of any of
        the ``errors`` that caused it (a batch round's reads fail together)."""
        # the doubling stops at 2**60 (past any max_wait): an outage never given up (max_outage
        # infinite) must not overflow a float after its thousandth failure
        exponential = min(self.min_wait * 2 ** min(max(0, failures - 1), 60), self.max_wait)
        jitter = random.uniform(0, self.min_wait)  # noqa: S311 - jitter, not crypto
        return max([exponential + jitter, *(retry_after_floor(exc) for exc in errors)])

    def paced(self) -> RetryPolicy:
        """This policy for a retry bounded by time alone: its pauses start at
        :data:`TIMED_RETRY_FIRST_PAUSE` at least and grow to :data:`TIMED_RETRY_LONGEST_PAUSE` at
        least (longer waits kept as given)."""
        return dataclasses.replace(
            self,
            min_wait=max(self.min_wait, TIMED_RETRY_FIRST_PAUSE),
            max_wait=max(self.max_wait, TIMED_RETRY_LONGEST_PAUSE),
        )

    def streaks(self, max_failures: int | None = None) -> FailureStreaks:
        """The wait rule for things read in rounds rather than one at a time (the batch trigger's
        generations): each one's failures in a row, given up as :meth:`retrying` gives up a wait
        (``max_outage`` seconds, or more than ``max_failures`` failures when given)."""
        return FailureStreaks(self.max_outage, max_failures)

    def retrying(
        self,
        predicate: Callable[[BaseException], bool] = is_transient,
        *,
        attempts: int | None = None,
        outage: float | None = None,
        deadline: float | None = None,
        before_sleep: Callable[[tenacity.RetryCallState], None] | None = None,
        asynchronous: bool = False,
    ) -> Any:
        """A tenacity ``Retrying`` (or ``AsyncRetrying``) that retries exceptions matching
        ``predicate`` with this policy's backoff and re-raises the last one.

        It stops at whichever comes first: ``attempts`` (default: this policy's, ``None``
        for none when ``outage`` is given), ``outage`` seconds since the first attempt, and
        the absolute ``deadline`` (it never sleeps past it).
        """
        limit = attempts if attempts is not None else (None if outage is not None else self.attempts)
        stop: tenacity.stop.stop_base = tenacity.stop_never
        if limit is not None:
            stop = tenacity.stop_after_attempt(max(1, limit))
        if outage is not None:
            stop = stop | tenacity.stop_before_delay(outage)
        if deadline is not None:
            stop = stop | _StopBeforeDeadline(deadline)
        retrying_class = tenacity.AsyncRetrying if asynchronous else tenacity.Retrying
        return retrying_class(
            stop=stop,
            wait=RetryAfterWait(self if limit is not None else self.paced()),
            retry=tenacity.retry_if_exception(predicate),
            before_sleep=before_sleep,
            reraise=True,
        )


@dataclass(frozen=True)
class Streak:
    """A run of failed reads in a row: how many, and for how long (seconds)."""

    failures: int
    seconds: float


class FailureStreaks:
    """Failures in a row of each of several things read in rounds (see :meth:`RetryPolicy.streaks`)."""

    def __init__(self, max_outage: float, max_failures: int | None = None) -> None:
        self._max_outage = max_outage
        self._max_failures = max_failures
        self._runs: dict[str, tuple[int, float]] = {}

    def succeeded(self, key: str) -> None:
        """A good read of ``key``: its failures no longer count."""
        self._runs.pop(key, None)

    def failed(self, key: str) -> Streak | None:
        """A failed read of ``key``: ``None`` while the policy still tolerates its streak, else
        the streak that made it give up."""
        failures, since = self._runs.get(key, (0, time.time()))
        failures += 1
        self._runs[key] = (failures, since)
        seconds = time.time() - since
        if (self._max_failures is not None and failures > self._max_failures) or seconds >= self._max_outage:
            return Streak(failures, seconds)
        return None


class _StopBeforeDeadline(tenacity.stop.stop_base):
    """Stop when the next sleep would end past an absolute epoch deadline."""

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        upcoming = retry_state.upcoming_sleep or 0.0
        return time.time() + upcoming >= self._deadline
