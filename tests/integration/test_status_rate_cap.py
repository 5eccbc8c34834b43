"""The status-read rate cap holds for real triggers reading the emulator over HTTP: single
and batch triggers on one event loop share one bucket per connection, every read sent takes
a token, and no one-second window of the bucket's grants holds more than the cap plus its
one-token burst.

Counted on the limiter's own clock (the event loop's), not timed: a slow machine only spreads
the reads further apart, it cannot make this test fail.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiolimiter import AsyncLimiter

from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.triggers.batch import SeedanceBatchStatusTrigger
from airflow_provider_seedance.triggers.seedance import SeedanceStatusTrigger
from benchmarks._common import max_per_window
from tests.conftest import connection_json

pytestmark = pytest.mark.integration

CAP = 20.0
BURST = 1  # the bucket holds one token


@pytest.fixture
def grants(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, float]]:
    """(bucket id, loop time) of each token the real bucket grants."""
    seen: list[tuple[int, float]] = []
    real = AsyncLimiter.acquire

    async def recording(self: AsyncLimiter, amount: float = 1) -> None:
        await real(self, amount)
        seen.append((id(self), asyncio.get_running_loop().time()))

    monkeypatch.setattr(AsyncLimiter, "acquire", recording)
    return seen


def test_single_and_batch_triggers_on_one_loop_stay_under_the_connection_cap(
    emulator, monkeypatch, grants
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_SEEDANCE_DEFAULT", connection_json(emulator.base_url, status_reads_per_second=CAP)
    )
    hook = SeedanceHook()
    singles = [hook.submit(f"single {i}", resolution="480p", duration=4) for i in range(24)]
    batch = [hook.submit(f"batch {i}", resolution="480p", duration=4) for i in range(8)]
    ti = SimpleNamespace(task_id="t", dag_id="d", run_id="r", map_index=-1)

    async def first_event(trigger: Any) -> dict[str, Any]:
        trigger.task_instance = ti
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("no event")

    async def scenario() -> list[dict[str, Any]]:
        # Uncapped, these would ask ~250 times a second (0.1 s polls).
        triggers: list[Any] = [SeedanceStatusTrigger(t, poll_interval=0.1) for t in singles]
        triggers.append(SeedanceBatchStatusTrigger(batch, poll_interval=0.1))
        return await asyncio.gather(*(first_event(t) for t in triggers))

    before = emulator.ledger()["status_requests"]
    events = asyncio.run(scenario())
    sent = emulator.ledger()["status_requests"] - before

    assert [e["status"] for e in events[:-1]] == ["success"] * len(singles)
    assert events[-1]["status"] == "done" and sorted(events[-1]["tasks"]) == sorted(batch)
    assert len({bucket for bucket, _ in grants}) == 1  # one bucket for the connection on this loop
    assert len(grants) == sent  # every read the emulator received took a token, and no more
    assert sent > CAP  # enough reads for the windows to mean something
    assert max_per_window([t for _, t in grants]) <= CAP + BURST
