"""What each metric counts (narrow logic; tests/realproc/test_metrics.py proves they reach
a real StatsD server from the task processes and the triggerer)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_seedance import metrics
from airflow_provider_seedance.exceptions import (
    SeedanceAuthError,
    SeedanceConnectionError,
    SeedanceError,
    SeedanceRateLimitError,
    SeedanceResponseError,
    SeedanceServerError,
    SeedanceTaskNotFoundError,
)
from airflow_provider_seedance.models import SeedanceTask
from airflow_provider_seedance.results import GenerationResult


class FakeStats:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, float, dict[str, Any] | None]] = []

    def incr(self, stat: str, count: int = 1, *, tags: dict[str, Any] | None = None) -> None:
        self.sent.append(("c", stat, count, tags))

    def gauge(self, stat: str, value: float, *, tags: dict[str, Any] | None = None) -> None:
        self.sent.append(("g", stat, value, tags))


@pytest.fixture
def stats(monkeypatch: pytest.MonkeyPatch) -> FakeStats:
    fake = FakeStats()
    monkeypatch.setattr(metrics, "_stats", lambda: fake)
    return fake


CONTEXT = {"ti": SimpleNamespace(dag_id="d", task_id="t")}
TAGS = {"dag_id": "d", "task_id": "t"}


def succeeded(credits: int, ids: tuple[str, ...] = ("a",)) -> GenerationResult:
    task = SeedanceTask(ids[-1], "SUCCESS", video_urls=["https://v/x.mp4"], consumed_credits=credits)
    return GenerationResult.from_task(task, {"prompt": "p"}, seedance_task_ids=ids)


def test_task_endings_count_failed_reused_and_resubmitted_not_the_billing(stats: FakeStats) -> None:
    failed = GenerationResult.from_task(SeedanceTask("f", "FAILED", error_message="no"), {"prompt": "p"})
    reused = GenerationResult.reused("file:///x.mp4", 10, "ab", {"prompt": "p"})
    not_sent = GenerationResult.not_sent("bad input", {"prompt": "p"})
    metrics.count_results(CONTEXT, [succeeded(14, ("x", "y", "z")), succeeded(8), failed, reused, not_sent])
    assert sorted(stats.sent) == sorted(
        [
            ("c", "seedance.generations.failed", 1, TAGS),
            ("c", "seedance.generations.reused", 1, TAGS),
            ("c", "seedance.generations.resubmitted", 2, TAGS),  # x and y failed before z
        ]
    )


def test_generations_first_recorded_as_ended_count_succeeded_and_their_credits(stats: FakeStats) -> None:
    outcomes = [
        {"task_id": "a", "status": "SUCCESS", "consumed_credits": 14},
        {"task_id": "b", "status": "SUCCESS", "consumed_credits": 8},
        {"task_id": "c", "status": "FAILED", "consumed_credits": 0},
    ]
    metrics.count_finished(outcomes, "d", "t")
    assert sorted(stats.sent) == sorted(
        [("c", "seedance.generations.succeeded", 2, TAGS), ("c", "seedance.credits.consumed", 22, TAGS)]
    )


def test_nothing_is_sent_for_a_zero_count(stats: FakeStats) -> None:
    metrics.count_results(CONTEXT, [GenerationResult.not_sent("bad input", {"prompt": "p"})])
    assert stats.sent == []


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (SeedanceConnectionError("reset", endpoint="GET /v1/status"), "connection"),
        (SeedanceServerError(500, "INTERNAL_ERROR"), "server"),
        (SeedanceRateLimitError(429, "RATE_LIMITED"), "rate_limited"),
        (SeedanceResponseError(200, "MALFORMED"), "bad_answer"),
        (SeedanceTaskNotFoundError(404, "TASK_NOT_FOUND"), "not_found"),
        (SeedanceAuthError(401, "INVALID_API_KEY"), "auth"),
        (SeedanceError("something else"), "other"),
    ],
)
def test_a_failed_status_read_is_counted_by_kind(stats: FakeStats, error: SeedanceError, kind: str) -> None:
    metrics.status_read_failed(error, "seedance_default")
    assert stats.sent == [
        ("c", f"seedance.status_read_errors.{kind}", 1, {"conn_id": "seedance_default", "kind": kind})
    ]


def test_a_broken_metrics_backend_never_fails_the_task(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> Any:
        raise OSError("statsd host unknown")

    monkeypatch.setattr(metrics, "_stats", broken)
    metrics.generation_submitted("seedance_default")  # no exception
    metrics.gauge("triggerer.in_flight.h", 1)


def test_in_flight_is_the_sum_over_this_processes_triggers(stats: FakeStats) -> None:
    async def scenario() -> None:
        async with metrics.InFlight(1), metrics.InFlight(3) as batch:
            batch.set(1)  # two of the batch finished
        assert metrics.InFlight.total == 0

    asyncio.run(scenario())
    values = [value for kind, _, value, _ in stats.sent if kind == "g"]
    assert values == [1, 4, 2, 1, 0]
    assert all(name.startswith("seedance.triggerer.in_flight.") for _, name, _, _ in stats.sent)


def test_a_hostname_is_made_a_valid_stat_name_part() -> None:
    assert metrics._safe("worker-1.example.com") == "worker-1_example_com"
    assert metrics._safe("") == "unknown"


def test_a_context_without_task_identity_still_counts_and_never_fails(stats: FakeStats) -> None:
    metrics.count_results(
        {"ti": object()}, [GenerationResult.reused("file:///x.mp4", 1, "ab", {"prompt": "p"})]
    )
    assert ("c", "seedance.generations.reused", 1, {"dag_id": "unknown", "task_id": "unknown"}) in stats.sent


def test_every_pushed_result_is_counted(stats: FakeStats) -> None:
    from airflow_provider_seedance.task_support import push_result

    pushed: list[Any] = []
    ti = SimpleNamespace(dag_id="d", task_id="t", xcom_push=lambda key, value: pushed.append(key))
    push_result({"ti": ti}, GenerationResult.reused("file:///x.mp4", 1, "ab", {"prompt": "p"}))
    assert pushed == ["seedance_result"]
    assert ("c", "seedance.generations.reused", 1, TAGS) in stats.sent


def test_a_try_that_reattaches_counts_it_and_never_the_credits_again(stats: FakeStats) -> None:
    """A retry or clear that finds its generation counts ``generations.reattached``; the first
    try, which submitted it, does not."""
    from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator
    from tests.unit.fakes import FakeHook, Store, context, use

    store, hook = Store(), FakeHook()
    operator = SeedanceGenerateOperator(
        task_id="generate",
        prompt="a red fox",
        resolution="480p",
        duration=4,
        deferrable=False,
        poll_interval=0.001,
    )
    use(operator, hook)
    operator.execute(context(store))
    assert not [s for s in stats.sent if s[1] == "seedance.generations.reattached"]
    operator.execute(context(store))  # a clear: the same generation, found again
    reattached = [s for s in stats.sent if s[1] == "seedance.generations.reattached"]
    assert reattached == [
        ("c", "seedance.generations.reattached", 1, {"dag_id": operator.dag_id, "task_id": "generate"})
    ]
    # ...and its success and credits stay counted once: one POST, one 8-credit generation.
    assert len(hook.posts) == 1
    consumed = sum(n for _, name, n, _ in stats.sent if name == "seedance.credits.consumed")
    assert consumed == 8, f"credits.consumed counted {consumed} for one 8-credit generation"


def test_a_batch_try_that_reattaches_counts_each_generation_it_finds(stats: FakeStats) -> None:
    from airflow_provider_seedance.operators.batch import SeedanceBatchGenerateOperator
    from tests.unit.fakes import FakeHook, Store, context, use

    store, hook = Store(), FakeHook()
    requests = [{"id": i, "prompt": f"clip {i}", "resolution": "480p", "duration": 4} for i in ("a", "b")]
    operator = SeedanceBatchGenerateOperator(
        task_id="batch", requests=requests, deferrable=False, poll_interval=0.001
    )
    use(operator, hook)
    operator.execute(context(store))
    operator.execute(context(store))  # a clear: both generations found again, nothing paid
    assert len(hook.posts) == 2
    reattached = [s for s in stats.sent if s[1] == "seedance.generations.reattached"]
    assert reattached == [
        ("c", "seedance.generations.reattached", 2, {"dag_id": operator.dag_id, "task_id": "batch"})
    ]
