"""Metrics through Airflow's own ``Stats`` (StatsD or OpenTelemetry, as the deployment configures
``[metrics]``); nothing is sent when metrics are off.

Every name starts with ``seedance.`` (after Airflow's ``statsd_prefix``, ``airflow`` by default).
Tags go where the backend supports them (Datadog, InfluxDB, OpenTelemetry); a name that must be
split per value on plain StatsD carries the value in the name too.

============================================  =======  ===========================================
name                                          type     when
============================================  =======  ===========================================
``seedance.generations.submitted``            counter  a generate POST returned a task id
``seedance.generations.succeeded``            counter  a generation ended SUCCESS (billed), counted
                                                       once whatever the retries and clears
``seedance.generations.failed``               counter  a task ended with a FAILED generation
                                                       (not billed)
``seedance.generations.resubmitted``          counter  a FAILED generation was submitted anew
``seedance.generations.reattached``           counter  a try found its generation from an earlier
                                                       try and waited for it instead of paying
``seedance.generations.reused``               counter  a video already at the destination: nothing
                                                       generated
``seedance.credits.consumed``                 counter  credits of each succeeded generation, once
``seedance.status_read_errors.<kind>``        counter  a status read failed; ``kind``: ``connection``
                                                       (no answer: refused, reset, timed out),
                                                       ``server`` (5xx), ``rate_limited`` (429),
                                                       ``bad_answer`` (not the documented JSON),
                                                       ``not_found``, ``auth``, ``other``
``seedance.triggerer.in_flight.<hostname>``   gauge    generations this triggerer is waiting for
============================================  =======  ===========================================

Tags: ``dag_id`` and ``task_id`` on the ``generations.*``/``credits`` metrics that a task emits,
``conn_id`` on those the hook emits, ``kind``/``hostname`` on the last two. A metric is never
allowed to fail a task or to block the triggerer (StatsD is a UDP datagram; OpenTelemetry
exports in the background).
"""

from __future__ import annotations

import logging
import re
import socket
import sys
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_seedance.exceptions import (
    SeedanceAuthError,
    SeedanceConnectionError,
    SeedanceError,
    SeedanceRateLimitError,
    SeedanceResponseError,
    SeedanceServerError,
    SeedanceTaskNotFoundError,
)
from airflow_provider_seedance.models import TaskStatus

if TYPE_CHECKING:
    from airflow_provider_seedance.results import GenerationResult

log = logging.getLogger(__name__)

PREFIX = "seedance"

#: Error class -> the ``kind`` of a failed status read (first match wins).
_KINDS: tuple[tuple[type[BaseException], str], ...] = (
    (SeedanceRateLimitError, "rate_limited"),
    (SeedanceResponseError, "bad_answer"),
    (SeedanceAuthError, "auth"),
    (SeedanceTaskNotFoundError, "not_found"),
    (SeedanceServerError, "server"),
    (SeedanceConnectionError, "connection"),
)


#: Airflow 3.2+ carries two copies of its stats module: the task runner sets up the task SDK's,
#: the triggerer (and the other servers) the core one. Metrics go to the one this process set up.
_STATS_MODULES = (
    "airflow.sdk._shared.observability.metrics.stats",
    "airflow._shared.observability.metrics.stats",
)


def _stats() -> Any:
    for name in _STATS_MODULES:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "_factory", None) is not None:
            return module
    try:  # Airflow 3.2+, not set up in this process (``airflow dags test``): metrics are off
        from airflow.sdk.observability import stats
    except ImportError:  # Airflow 3.1: one Stats, which sets itself up from [metrics]
        from airflow.stats import Stats

        return Stats
    return stats


def _safe(text: str) -> str:
    """A stat-name part from any text (StatsD names allow letters, digits, ``_ . -``)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)[:100] or "unknown"


def incr(name: str, count: int = 1, **tags: str) -> None:
    """Add ``count`` to the counter ``seedance.<name>``; never raises."""
    if count <= 0:
        return
    try:
        _stats().incr(f"{PREFIX}.{name}", count, tags=tags or None)
    except Exception as exc:  # a metric must never fail the task
        log.debug("Seedance metric %s not sent: %s", name, exc)


def gauge(name: str, value: int, **tags: str) -> None:
    """Set the gauge ``seedance.<name>``; never raises."""
    try:
        _stats().gauge(f"{PREFIX}.{name}", value, tags=tags or None)
    except Exception as exc:
        log.debug("Seedance metric %s not sent: %s", name, exc)


# ---------------------------------------------------------------------------- what is counted
def generation_submitted(conn_id: str) -> None:
    incr("generations.submitted", conn_id=conn_id)


def status_read_failed(exc: SeedanceError, conn_id: str) -> None:
    kind = next((kind for cls, kind in _KINDS if isinstance(exc, cls)), "other")
    incr(f"status_read_errors.{kind}", conn_id=conn_id, kind=kind)


def count_results(context: Any, results: list[GenerationResult]) -> None:
    """The metrics of a task's final results: FAILED generations, reused videos, resubmissions.

    Counted per task ending (a cleared task that ends again counts again); succeeded
    generations and their credits are counted once per generation by :func:`count_finished`.
    """
    from airflow_provider_seedance.results import Outcome

    outcomes = Counter(result.outcome for result in results)
    tags = _task_tags(context)
    incr("generations.failed", outcomes[Outcome.GENERATION_FAILED], **tags)
    incr("generations.reused", outcomes[Outcome.REUSED], **tags)
    # Every id beyond the first in a result's history is a resubmission after FAILED.
    incr("generations.resubmitted", sum(max(0, len(r.seedance_task_ids) - 1) for r in results), **tags)


def count_finished(outcomes: list[dict[str, Any]], dag_id: str, task_id: str) -> None:
    """Generations whose end the re-attach record stores for the first time: succeeded ones and
    their credits (what the API bills), once per generation whatever the retries and clears."""
    succeeded = [o for o in outcomes if o.get("status") == TaskStatus.SUCCESS]
    tags = {"dag_id": str(dag_id), "task_id": str(task_id)}
    incr("generations.succeeded", len(succeeded), **tags)
    incr("credits.consumed", sum(int(o.get("consumed_credits") or 0) for o in succeeded), **tags)


def _task_tags(context: Any) -> dict[str, str]:
    """``dag_id`` and ``task_id`` of the running task (``unknown`` where a context lacks them)."""
    ti = context.get("ti") if isinstance(context, Mapping) else None
    return {name: str(getattr(ti, name, None) or "unknown") for name in ("dag_id", "task_id")}


class InFlight:
    """The generations this process's triggers wait for, as a gauge per triggerer host.

    ``async with InFlight(n) as flight:`` around a trigger's wait; ``flight.set(m)`` when fewer
    remain. Exiting (an event, a cancel when the trigger moves) removes what it still held.
    """

    total = 0

    def __init__(self, count: int = 1) -> None:
        self.hostname = _safe(socket.gethostname())
        self.count = 0
        self._initial = count

    def set(self, count: int) -> None:
        InFlight.total += count - self.count
        self.count = count
        gauge(f"triggerer.in_flight.{self.hostname}", InFlight.total, hostname=self.hostname)

    async def __aenter__(self) -> InFlight:
        self.set(self._initial)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.set(0)
