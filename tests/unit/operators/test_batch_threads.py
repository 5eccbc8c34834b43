"""The batch operator's thread pools only do HTTP and file I/O.

Airflow 3.1's channel from a task to its supervisor has no lock: two threads that use it at once
(a connection lookup sends the secrets to mask) can hang the task for good. So every pool first
resolves, on the task's own thread, the hook's connection (when its threads use the hook) and
the filesystem of each destination its threads will read or write. The end-to-end proof, with
Airflow's own supervisor channel, is tests/dag/test_batch_dags.py.
"""

from __future__ import annotations

import threading
from typing import Any

from airflow_provider_seedance.operators.batch import POOL_THREAD_PREFIX, SeedanceBatchGenerateOperator
from tests.unit.fakes import FakeHook, Store, context, use


class Destination:
    """A destination whose filesystem lookup records the thread it ran on."""

    def __init__(self) -> None:
        self.resolved_on: list[str] = []

    @property
    def fs(self) -> object:
        self.resolved_on.append(threading.current_thread().name)
        return object()


def batch(hook: FakeHook, count: int = 1) -> SeedanceBatchGenerateOperator:
    requests = [{"prompt": f"clip {n}", "resolution": "480p", "duration": 4} for n in range(count)]
    operator = SeedanceBatchGenerateOperator(
        task_id="batch", requests=requests, deferrable=False, poll_interval=0.001, max_in_flight=2
    )
    return use(operator, hook)


def test_a_pool_resolves_the_connection_and_each_destination_before_its_threads_run() -> None:
    hook = FakeHook()
    first, second = Destination(), Destination()
    with batch(hook)._pool(2, [first, None, second]) as pool:  # type: ignore[list-item]
        names = set(pool.map(lambda _: threading.current_thread().name, range(4)))
    assert hook.prepared == 1
    main = threading.main_thread().name
    assert (first.resolved_on, second.resolved_on) == ([main], [main])
    assert names and all(name.startswith(POOL_THREAD_PREFIX) for name in names)


def test_a_pool_that_never_calls_the_hook_resolves_no_connection() -> None:
    # Existing-video checks (also run by seedance-plan, where no connection may be defined).
    hook = FakeHook()
    destination = Destination()
    with batch(hook)._pool(2, [destination], uses_hook=False):
        pass
    assert hook.prepared == 0 and destination.resolved_on == [threading.main_thread().name]


def test_every_post_is_sent_after_the_connection_was_resolved_on_the_task_thread() -> None:
    prepared_at_post: list[tuple[int, bool]] = []
    hook = FakeHook()

    def on_post(_: Any) -> None:
        prepared_at_post.append(
            (hook.prepared, threading.current_thread().name.startswith(POOL_THREAD_PREFIX))
        )

    hook.on_post = on_post
    outcome = batch(hook, count=3).execute(context(Store()))
    assert outcome["totals"]["succeeded"] == 3
    assert len(prepared_at_post) == 3 and all(
        prepared >= 1 and pooled for prepared, pooled in prepared_at_post
    )
