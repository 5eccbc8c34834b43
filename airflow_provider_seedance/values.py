"""Numbers a user gives (operator and trigger arguments, hook settings), checked in one place.

Each check returns the value as the code uses it or raises a
:class:`~airflow_provider_seedance.exceptions.SeedanceValidationError` that names the field,
the value and what is allowed, before any HTTP call.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from airflow_provider_seedance.exceptions import SeedanceValidationError


def seconds_value(
    value: Any, field: str, *, zero_allowed: bool = False, infinite_allowed: bool = False
) -> float:
    """A duration in seconds as given: a finite number > 0, else the error.

    A wait of 0 or less would poll without a pause (hammering the API through an outage); NaN
    or infinity would never poll again. ``zero_allowed`` and ``infinite_allowed`` are for
    tolerances (``max_outage``: 0 gives up at the first failure, infinity never does; the
    deadline still ends the wait).
    """
    try:
        seconds = float(value) if _number(value) else math.nan  # NaN: every comparison below is False
    except OverflowError:  # an int past float's range, either way
        seconds = math.inf if value > 0 else -math.inf
    positive = seconds > 0 or (zero_allowed and seconds == 0)
    if not positive or not (math.isfinite(seconds) or infinite_allowed):
        allowed = "0 or more" if zero_allowed else "greater than 0"
        raise SeedanceValidationError(
            field, value, f"a number of seconds {allowed}{', or infinity' if infinite_allowed else ''}"
        )
    return seconds


def restored(value: Any, kind: type[int] | type[float]) -> Any:
    """A number restored from a trigger's kwargs as ``kind`` (``int`` or ``float``); anything
    else (``None``, a string, a fraction where a whole number is meant, a ``Decimal``) as given.

    For a trigger's constructor, which must not raise on kwargs restored from the database:
    Airflow's triggerer survives only a ``TypeError`` there, and a row written by an earlier
    release (or edited by hand) must end its own task, not the trigger runner with every trigger
    on it. Only numbers are converted, so no value can make the conversion itself slow or fail
    (``int(Decimal("1e999999999"))`` takes all memory); what is kept as given is refused by
    :func:`check_poll_settings` when polling starts.
    """
    if not _number(value):
        return value
    try:
        if kind is not int:
            return float(value)
        whole = _whole(value)  # 8.0, as a JSON round trip may give it, too
        return whole if whole is not None else value
    except Exception:  # never from a trigger's constructor (an OverflowError, ...)
        return value


def check_poll_settings(
    poll_interval: Any,
    max_outage: Any,
    *,
    end_time: Any = None,
    max_poll_failures: Any = None,
) -> None:
    """A poll loop's settings, checked: ``poll_interval`` (> 0), ``max_outage`` (>= 0, or
    infinity), ``end_time`` (an epoch time, or ``None``) and ``max_poll_failures`` (0 or more, or
    ``None``).

    The triggers call it when they start polling, not when they are built (see :func:`restored`):
    a row written by a release that let ``poll_interval=0`` through ends
    its own task with an ``error`` event naming the field, before any read.
    """
    seconds_value(poll_interval, "poll_interval")
    seconds_value(max_outage, "max_outage", zero_allowed=True, infinite_allowed=True)
    if end_time is not None and not _real(end_time):
        raise SeedanceValidationError("end_time", end_time, "an epoch time in seconds (time.time()), or None")
    if max_poll_failures is not None:
        count_value(max_poll_failures, "max_poll_failures", minimum=0, what=" of failed reads in a row")


def _number(value: Any) -> bool:
    """A real number, numpy's included, and not a bool (``True`` is no duration)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _whole(value: Any) -> int | None:
    """``value`` as an ``int`` when it is a whole number (``3``, numpy's ``int64(3)``, ``3.0``),
    else ``None`` (a bool, a fraction, anything else)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _real(value: Any) -> bool:
    """A number within float's range that is not NaN (an infinite deadline is no deadline)."""
    if not _number(value):
        return False
    try:
        return not math.isnan(float(value))
    except OverflowError:  # 10**400: no time.time() to compare with
        return False


def count_value(value: Any, field: str, *, minimum: int, what: str = "") -> int:
    """A whole number of things (attempts, resubmissions) as given: ``minimum`` or more."""
    whole = _whole(value)  # numpy's integers, and 3.0 as a YAML or JSON config may give it
    if whole is None or whole < minimum:
        raise SeedanceValidationError(field, value, f"a whole number{what}, {minimum} or more")
    return whole
