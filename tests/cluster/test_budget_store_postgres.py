"""The shared budget store on the stack's real PostgreSQL: what many Celery workers on many
machines would share. Processes race for one day's and one month's budget at once; the
conditional UPDATE grants exactly what fits (overshoot 0), all or nothing across budgets, and a
key reserved twice at the same moment holds its room once.
"""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_seedance.budgets import Budget, BudgetStore
from airflow_provider_seedance.exceptions import SeedanceSharedBudgetExceededError
from tests.cluster.stack import Stack

pytestmark = pytest.mark.cluster

DAY = Budget("daily budget of connection 'pg'", "conn:pg:daily", "2026-12-01", 100)
MONTH = Budget("monthly budget of connection 'pg'", "conn:pg:monthly", "2026-12", 60)
COST = 7
PROCESSES, EACH = 16, 4


@pytest.fixture
def store_url(stack: Stack) -> Iterator[str]:
    """A database of its own on the stack's PostgreSQL, dropped afterwards."""
    import psycopg2

    name = f"seedance_budgets_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(stack.pg_dsn, connect_timeout=5)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}")
        yield stack.pg_dsn.rsplit("/", 1)[0] + f"/{name}"
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        admin.close()


def _race(url: str, n: int, start: Any, out: Any) -> None:
    store = BudgetStore(url)  # its own engine and connections, as another worker would have
    start.wait()
    for i in range(EACH):
        # Half the reservations count against the month alone (a race on one counter row),
        # half against the day and the month at once (all or nothing).
        budgets = [MONTH] if i % 2 == 0 else [DAY, MONTH]
        try:
            out.put((f"p{n}-{i}", store.reserve(f"p{n}-{i}", COST, budgets)))
        except SeedanceSharedBudgetExceededError as exc:
            out.put((f"p{n}-{i}", str(exc)))
    # Every process also reserves the same key at about the same moment: held once.
    try:
        out.put(("shared", store.reserve("shared", 1, [DAY])))
    except SeedanceSharedBudgetExceededError as exc:  # pragma: no cover - the day has room
        out.put(("shared", str(exc)))


def test_racing_workers_get_exactly_what_fits_in_every_budget_on_postgres(store_url: str) -> None:
    BudgetStore(store_url)  # the schema exists before the race starts
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Barrier(PROCESSES), ctx.Queue()
    processes = [ctx.Process(target=_race, args=(store_url, n, start, out)) for n in range(PROCESSES)]
    for process in processes:
        process.start()
    answers = [out.get(timeout=120) for _ in range(PROCESSES * (EACH + 1))]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0

    granted = [key for key, answer in answers if key != "shared" and answer is True]
    refused = [answer for key, answer in answers if key != "shared" and answer is not True]
    store = BudgetStore(store_url)
    # The month (60) is the tighter budget: 8 of 64 reservations of 7 credits fit, and the
    # month took exactly those; the day took only those of them that were also against the
    # day (all or nothing: a reservation the month refused took nothing from the day).
    assert len(granted) == MONTH.limit // COST
    assert store.spent(MONTH) == COST * len(granted) <= MONTH.limit
    shared = [answer for key, answer in answers if key == "shared"]
    assert shared.count(True) == 1 and shared.count(False) == PROCESSES - 1
    with_day = [key for key in granted if int(key.rsplit("-", 1)[1]) % 2 == 1]
    assert store.spent(DAY) == COST * len(with_day) + 1
    assert len(refused) == PROCESSES * EACH - len(granted)
    assert all("monthly budget of connection 'pg'" in message for message in refused)
    spent = store.spent(MONTH)
    print(
        f"\nshared budget on PostgreSQL: {PROCESSES} processes x {EACH} reservations of {COST} credits"
        f" against a monthly budget of {MONTH.limit}: {len(granted)} granted, {len(refused)} refused;"
        f" spent {spent}, overshoot {max(0, spent - MONTH.limit)} credits"
    )
