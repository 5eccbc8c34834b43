"""Numbers a user gives (operator and trigger arguments, hook settings), checked in one place.

Each check returns the value as the code uses it or raises a
:class:`~airflow_provider_seedance.exceptions.SeedanceValidationError` that names the field,
the value and what is allowed, before any HTTP call.
"""

from __future__ import annotations

import math
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
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    try:
        seconds = float(value) if number else math.nan  # NaN: every comparison below is False
    except OverflowError:  # an int past float's range
        seconds = math.inf
    positive = seconds > 0 or (zero_allowed and seconds == 0)
    if not positive or not (math.isfinite(seconds) or infinite_allowed):
        allowed = "0 or more" if zero_allowed else "greater than 0"
        raise SeedanceValidationError(
            field, value, f"a number of seconds {allowed}{', or infinity' if infinite_allowed else ''}"
        )
    return seconds


def check_poll_settings(poll_interval: Any, max_outage: Any) -> None:
    """A poll loop's ``poll_interval`` (> 0) and ``max_outage`` (>= 0, or infinity), checked.

    The triggers call it when they start polling, not when they are built: Airflow's triggerer
    survives only a ``TypeError`` from a trigger's constructor, and a row written by a release
    that let ``poll_interval=0`` through must end its own task (an ``error`` event), not the
    triggerer with every trigger it runs.
    """
    seconds_value(poll_interval, "poll_interval")
    seconds_value(max_outage, "max_outage", zero_allowed=True, infinite_allowed=True)


def count_value(value: Any, field: str, *, minimum: int, what: str = "") -> int:
    """A whole number of things (attempts, resubmissions) as given: ``minimum`` or more."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SeedanceValidationError(field, value, f"a whole number{what}, {minimum} or more")
    return value
