"""The per-connection cap on status reads (connection extra ``status_reads_per_second``).

Every status read a hook sends from an event loop takes one token from its connection's
bucket on that loop, so all the triggers of one triggerer (single and batch, their retries
included) share one cap per connection: a triggerer waiting on 10,000 generations stays under
an API rate limit. Off by default. Two connections never share a bucket, and a bucket never
leaves its loop (:class:`~airflow_provider_seedance.hooks.per_loop.PerLoop`).

The bucket is ``aiolimiter.AsyncLimiter`` holding a single token that refills every
``1 / rate`` seconds: no burst, so reads are spaced at least ``1 / rate`` apart on the loop's
clock and no one-second window holds more than the cap. Waiting for a token is an
``await`` (a timer on the loop), never a blocking sleep; waiters are served in arrival order.
"""

from __future__ import annotations

import math
from typing import Any

from aiolimiter import AsyncLimiter

from airflow_provider_seedance.exceptions import SeedanceConfigurationError
from airflow_provider_seedance.hooks.per_loop import PerLoop

#: The connection extra that sets the cap.
EXTRA = "status_reads_per_second"


def parse_status_rate(conn_id: str | None, value: Any) -> float | None:
    """The cap in reads per second from the extra's ``value``; ``None`` (no cap) when unset.

    :raises SeedanceConfigurationError: not a finite number > 0 (naming the connection, the
        field and the value).
    """
    if value is None or value == "":
        return None
    allowed = "a number of status reads per second > 0 (e.g. 200 or 0.5), or empty for no cap"
    rate: float | None = None
    if not isinstance(value, bool):
        try:
            rate = float(value)
        except (TypeError, ValueError):
            rate = None
    if rate is None or not math.isfinite(rate) or rate <= 0:
        raise SeedanceConfigurationError(
            f"Connection {conn_id!r}: extra {EXTRA!r} must be {allowed}; got {value!r}."
        )
    return rate


class StatusReadCaps:
    """The status-read buckets, per event loop and connection id."""

    def __init__(self) -> None:
        self._buckets: PerLoop[str, tuple[float, AsyncLimiter]] = PerLoop()

    def bucket(self, conn_id: str, rate: float | None) -> AsyncLimiter | None:
        """The running loop's bucket for ``conn_id`` at ``rate`` (``None``: no cap).

        A connection edited to another rate gets a new bucket at its next resolution; reads
        already waiting on the old one are still served by it.
        """
        buckets = self._buckets.here()
        if rate is None:
            buckets.pop(conn_id, None)
            return None
        entry = buckets.get(conn_id)
        if entry is None or entry[0] != rate:
            entry = buckets[conn_id] = (rate, AsyncLimiter(1, 1 / rate))
        return entry[1]


STATUS_READ_CAPS = StatusReadCaps()
