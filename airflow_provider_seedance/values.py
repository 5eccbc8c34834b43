"""Numbers a user gives (operator and trigger arguments, hook settings), checked in one place.

Each check returns the value as the code uses it or raises a
:class:`~airflow_provider_seedance.exceptions.SeedanceValidationError` that names the field,
the value and what is allowed, before any HTTP call.
"""

from __future__ import annotations

import math
from typing import Any

from airflow_provider_seedance.exceptions import SeedanceValidationError


def seconds_value(value: Any, field: str, *, zero_allowed: bool = False) -> float:
    """A duration in seconds as given: a finite number > 0 (>= 0 with ``zero_allowed``).

    A wait of 0 or less would poll without a pause (hammering the API through an outage); NaN
    or infinity would never poll again. ``zero_allowed`` is for tolerances (``max_outage``:
    0 gives up at the first failure).
    """
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value < 0 or (value == 0 and not zero_allowed):
        lowest = "0 or more" if zero_allowed else "greater than 0"
        raise SeedanceValidationError(field, value, f"a number of seconds {lowest}")
    return float(value)


def count_value(value: Any, field: str, *, minimum: int, what: str = "") -> int:
    """A whole number of things (attempts, resubmissions) as given: ``minimum`` or more."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SeedanceValidationError(field, value, f"a whole number{what}, {minimum} or more")
    return value
