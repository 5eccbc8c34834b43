"""A batch trigger's round: bounded concurrency, results in the ids' order.

Each round reads every unfinished generation with at most ``max_concurrency`` status reads in
flight (the API's rate limits and the triggerer's sockets), and the event lists generations in
the order the operator gave them, whatever order the answers arrive in. The hook is a narrow
fake whose answers take a different number of event-loop turns per id (no sleeping, no HTTP).
"""

from __future__ import annotations

import asyncio
from typing import Any

from airflow_provider_seedance.exceptions import SeedanceServerError
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.models import SeedanceTask
from airflow_provider_seedance.triggers.batch import SeedanceBatchStatusTrigger
from tests.unit.fakes import scripted_task


class UnevenHook:
    """Answers ``SUCCESS`` for ``done-*`` ids, ``IN_PROGRESS`` for the others the first
    time, then ``SUCCESS``; ``flaky-*`` ids fail once with a 503. Later ids answer sooner."""

    in_flight = 0
    most_in_flight = 0
    reads: list[str] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.retry_policy = SeedanceHook(*args, **kwargs).retry_policy  # the real hook's backoff

    async def __aenter__(self) -> UnevenHook:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None

    async def aget_status(self, task_id: str, **_: Any) -> SeedanceTask:
        cls = type(self)
        first = task_id not in cls.reads
        cls.reads.append(task_id)
        cls.in_flight += 1
        cls.most_in_flight = max(cls.most_in_flight, cls.in_flight)
        try:
            for _turn in range(50 - int(task_id.rsplit("-", 1)[1])):
                await asyncio.sleep(0)
        finally:
            cls.in_flight -= 1
        if first and task_id.startswith("flaky-"):
            raise SeedanceServerError(503, "SERVICE_UNAVAILABLE", "busy")
        running = first and not task_id.startswith("done-")
        return scripted_task(task_id, "IN_PROGRESS" if running else "SUCCESS")


async def test_batch_round_keeps_max_concurrency_reads_in_flight_and_the_ids_order() -> None:
    ids = [f"{('done', 'slow', 'flaky')[i % 3]}-{i}" for i in range(40)]
    UnevenHook.reads, UnevenHook.in_flight, UnevenHook.most_in_flight = [], 0, 0
    trigger = SeedanceBatchStatusTrigger(ids, poll_interval=0.001, max_concurrency=7)
    trigger.hook_class = UnevenHook  # type: ignore[assignment]
    [event] = [event.payload async for event in trigger.run()]
    assert event["status"] == "done" and event["errors"] == {} and event["pending"] == []
    # Never more than 7 reads at once, and the pool did use all 7.
    assert UnevenHook.most_in_flight == 7
    # One read of each id in the first round, one more of each unfinished one in the second.
    assert len(UnevenHook.reads) == 40 + sum(not i.startswith("done-") for i in ids)
    # Finished in round 1 first (in the ids' order), then round 2's, in the ids' order too.
    done_first = [i for i in ids if i.startswith("done-")]
    assert list(event["tasks"]) == done_first + [i for i in ids if i not in done_first]
    assert all(task["status"] == "SUCCESS" for task in event["tasks"].values())


async def test_a_batch_read_one_at_a_time_reads_every_generation() -> None:
    """``max_concurrency=1``, the smallest allowed: one reader walks the whole round."""
    ids = [f"slow-{i}" for i in range(5)]
    UnevenHook.reads, UnevenHook.in_flight, UnevenHook.most_in_flight = [], 0, 0
    trigger = SeedanceBatchStatusTrigger(ids, poll_interval=0.001, max_concurrency=1)
    trigger.hook_class = UnevenHook  # type: ignore[assignment]
    [event] = [event.payload async for event in trigger.run()]
    assert event["status"] == "done" and list(event["tasks"]) == ids
    assert UnevenHook.most_in_flight == 1
