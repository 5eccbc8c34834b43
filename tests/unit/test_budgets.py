"""The shared budget store: all-or-nothing reservations under a limit, idempotent by key,
settled to the actual credits, released only when nothing was created; and its config checks."""

from __future__ import annotations

import datetime
import multiprocessing
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_seedance._compat import AirflowFailException
from airflow_provider_seedance.budgets import Budget, BudgetConfig, BudgetStore, open_store
from airflow_provider_seedance.exceptions import (
    SeedanceConfigurationError,
    SeedanceSharedBudgetExceededError,
    SeedanceValidationError,
)

DAILY = Budget("daily budget of connection 'c'", "conn:c:daily", "2026-12-01", 50)
RUN = Budget("dag_run_max_credits budget of DAG run 'd' / 'r'", "dag_run:d/r", "run", 20)


@pytest.fixture
def store(tmp_path: Path) -> BudgetStore:
    return BudgetStore(f"sqlite:///{tmp_path / 'budgets.db'}")


def test_a_reservation_takes_room_until_the_limit_then_names_budget_spent_limit_and_cost(
    store: BudgetStore,
) -> None:
    for n in range(6):
        assert store.reserve(f"k{n}", 8, [DAILY]) is True
    with pytest.raises(SeedanceSharedBudgetExceededError) as caught:
        store.reserve("k6", 8, [DAILY])
    error = caught.value
    assert isinstance(error, AirflowFailException)  # never retried
    assert (error.spent_credits, error.limit_credits, error.estimated_credits) == (48, 50, 8)
    assert "daily budget of connection 'c'" in str(error) and "48 credits" in str(error)
    assert "of 50" in str(error) and "would cost 8 credits" in str(error)
    assert store.spent(DAILY) == 48


def test_a_reservation_is_all_or_nothing_across_budgets(store: BudgetStore) -> None:
    store.reserve("a", 16, [DAILY, RUN])
    with pytest.raises(SeedanceSharedBudgetExceededError, match="dag_run_max_credits budget"):
        store.reserve("b", 8, [DAILY, RUN])  # the daily budget has room, the run's has not
    assert store.spent(DAILY) == 16 and store.spent(RUN) == 16


def test_the_same_key_reserves_once(store: BudgetStore) -> None:
    assert store.reserve("same", 8, [DAILY]) is True
    assert store.reserve("same", 8, [DAILY]) is False
    assert store.spent(DAILY) == 8


def test_a_release_frees_the_room_and_the_key(store: BudgetStore) -> None:
    store.reserve("k", 8, [DAILY, RUN])
    store.release("k")
    assert store.spent(DAILY) == 0 and store.spent(RUN) == 0
    assert store.reserve("k", 8, [DAILY]) is True
    assert store.spent(DAILY) == 8


def test_settling_takes_the_actual_credits_once(store: BudgetStore) -> None:
    store.reserve("k", 28, [DAILY])
    store.bind("k", "task-1")
    store.settle("task-1", 20)
    assert store.spent(DAILY) == 20
    store.settle("task-1", 0)  # already settled: nothing changes
    store.release("k")  # a settled generation was paid: a release cannot free it
    assert store.spent(DAILY) == 20


def test_a_failed_generation_settles_to_zero_and_unknown_credits_keep_the_estimate(
    store: BudgetStore,
) -> None:
    store.reserve("failed", 8, [DAILY])
    store.bind("failed", "t-failed")
    store.reserve("unknown", 14, [DAILY])
    store.bind("unknown", "t-unknown")
    store.settle("t-failed", 0)
    store.settle("t-unknown", None)
    assert store.spent(DAILY) == 14


def test_an_unbound_reservation_is_never_settled_by_another_generation(store: BudgetStore) -> None:
    store.reserve("uncertain", 8, [DAILY])  # its POST's answer was lost: a generation may exist
    store.settle("some-other-task", 0)
    assert store.spent(DAILY) == 8


def test_concurrent_threads_are_granted_exactly_floor_limit_over_cost(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'threads.db'}"
    BudgetStore(url)  # the schema exists before the race starts
    granted: list[str] = []
    start = threading.Barrier(16)

    def one(n: int) -> None:
        own = BudgetStore(url)  # its own engine, as another worker would have
        start.wait()
        try:
            own.reserve(f"t{n}", 8, [DAILY])
            granted.append(f"t{n}")
        except SeedanceSharedBudgetExceededError:
            pass

    threads = [threading.Thread(target=one, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 50 // 8
    assert BudgetStore(url).spent(DAILY) == 8 * len(granted) <= 50


def _reserve_in_process(url: str, n: int, start: Any, out: Any) -> None:
    store = BudgetStore(url)
    start.wait()
    try:
        store.reserve(f"p{n}", 14, [DAILY])
        out.put(True)
    except SeedanceSharedBudgetExceededError:
        out.put(False)


def test_concurrent_processes_are_granted_exactly_floor_limit_over_cost(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'processes.db'}"
    BudgetStore(url)
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Barrier(8), ctx.Queue()
    processes = [ctx.Process(target=_reserve_in_process, args=(url, n, start, out)) for n in range(8)]
    for process in processes:
        process.start()
    answers = [out.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert answers.count(True) == 50 // 14
    assert BudgetStore(url).spent(DAILY) == 14 * (50 // 14)


# ---------------------------------------------------------------------- config
def test_no_budget_extra_means_no_shared_budget() -> None:
    config = BudgetConfig.from_extra("c", {"timeout": 5})
    assert not config.limited and config.budgets("d", "r", None, 0.0) == []


@pytest.mark.parametrize(
    ("budget", "field", "shown"),
    [
        ({"daily_credits": -1}, "budget.daily_credits", "-1"),
        ({"monthly_credits": "100"}, "budget.monthly_credits", "'100'"),
        ({"daily_credits": True}, "budget.daily_credits", "True"),
        ({"daily_credits": 2.5}, "budget.daily_credits", "2.5"),
        ({"weekly_credits": 5}, "budget.weekly_credits", "5"),
        ({"daily_credits": 5, "store": "mysql://db/x"}, "budget.store", "mysql://db/x"),
        ({"daily_credits": 5, "store": 7}, "budget.store", "7"),
        ([500], "budget", "[500]"),
    ],
)
def test_a_bad_budget_extra_names_field_value_and_what_is_allowed(
    budget: object, field: str, shown: str
) -> None:
    with pytest.raises(SeedanceValidationError) as caught:
        BudgetConfig.from_extra("c", {"budget": budget})
    message = str(caught.value)
    assert f"connection 'c' extra {field}" in message and shown in message and "Allowed:" in message


def test_a_limit_without_a_store_is_refused_before_anything_is_sent() -> None:
    config = BudgetConfig.from_extra("c", {"budget": {"daily_credits": 100}})
    with pytest.raises(SeedanceConfigurationError, match=r"budget.store needs a shared budget store"):
        config.budgets("d", "r", None, 0.0)
    with pytest.raises(SeedanceConfigurationError, match=r"dag_run_max_credits needs a shared budget store"):
        BudgetConfig.from_extra("c", None).budgets("d", "r", 10, 0.0)


def test_day_and_month_budgets_are_per_utc_calendar_period() -> None:
    config = BudgetConfig.from_extra(
        "c", {"budget": {"daily_credits": 10, "monthly_credits": 300, "store": "sqlite:////x.db"}}
    )
    late = datetime.datetime(2026, 1, 31, 23, 59, tzinfo=datetime.timezone.utc).timestamp()
    daily, monthly = config.budgets("d", "r", None, late)
    next_daily, next_monthly = config.budgets("d", "r", None, late + 120)
    assert (daily.period, monthly.period) == ("2026-01-31", "2026-01")
    assert (next_daily.period, next_monthly.period) == ("2026-02-01", "2026-02")
    assert (daily.limit, monthly.limit) == (10, 300)


def test_an_unreachable_store_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(SeedanceConfigurationError, match="budget store could not be opened"):
        open_store(f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}")


def test_a_postgresql_url_without_a_driver_uses_the_installed_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_seedance import budgets

    installed: set[str] = {"psycopg"}
    monkeypatch.setattr(
        budgets.importlib.util, "find_spec", lambda name: object() if name in installed else None
    )
    assert budgets.with_installed_driver("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    installed.add("psycopg2")  # Airflow's own driver first
    assert budgets.with_installed_driver("postgresql://u@h/db") == "postgresql+psycopg2://u@h/db"
    # A URL that names its driver, or another database, is left alone.
    assert budgets.with_installed_driver("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert budgets.with_installed_driver("sqlite:////tmp/b.db") == "sqlite:////tmp/b.db"


# ---------------------------------------------------------------------- keys of a task instance
def shared(url: str, limit: int) -> Any:
    from airflow_provider_seedance.budgets import SharedBudgets

    config = BudgetConfig.from_extra("c", {"budget": {"daily_credits": limit, "store": url}})
    return SharedBudgets.open(config, None, ("d", "r", "t", -1))


def test_a_try_that_reserves_again_before_sending_finds_its_own_reservation(tmp_path: Path) -> None:
    budgets = shared(f"sqlite:///{tmp_path / 'b.db'}", 8)
    first = budgets.reserve("fingerprint", 0, 8)  # then the worker died before the POST
    assert budgets.reserve("fingerprint", 0, 8) == first  # the retry: no room taken twice


@pytest.mark.parametrize("ended", ["settled", "bound"])
def test_a_key_whose_generation_exists_never_lets_a_new_post_ride_on_it(tmp_path: Path, ended: str) -> None:
    """The record that numbers a task instance's submissions can be lost (the DAG run deleted
    and triggered again under the same run id, a record deleted by hand): the same key then
    comes again for a new POST, which must take room of its own."""
    budgets = shared(f"sqlite:///{tmp_path / 'b.db'}", 12)
    first = budgets.reserve("fingerprint", 0, 8)
    budgets.bind(first, "gen-1")
    if ended == "settled":
        budgets.settle("gen-1", 8)
    with pytest.raises(SeedanceSharedBudgetExceededError, match=r"8 credits .* of 12"):
        budgets.reserve("fingerprint", 0, 8)
    roomy = shared(f"sqlite:///{tmp_path / 'roomy.db'}", 100)
    one = roomy.reserve("fingerprint", 0, 8)
    roomy.bind(one, "gen-1")
    other = roomy.reserve("fingerprint", 0, 8)
    assert other != one and roomy.reserve("fingerprint", 0, 8) == other
    assert roomy.store.spent(roomy.config.budgets("d", "r", None, time.time())[0]) == 16


# ---------------------------------------------------------------------- secrets and odd values
SECRET_URL = "postgresql://budget_user:s3cret-pw@db.internal/budgets"


@pytest.mark.parametrize(
    "budget",
    [
        {"daily_credits": 5, "store": "postgres://budget_user:s3cret-pw@db.internal/budgets"},  # alias
        {"daily_credits": 5, "store": "mysql://budget_user:s3cret-pw@db.internal/budgets"},
        {"daily_credits": 5, "url": SECRET_URL},  # a misspelt key
        SECRET_URL,  # the URL given where the object belongs
    ],
)
def test_a_bad_budget_extra_never_shows_the_store_password(budget: object) -> None:
    with pytest.raises(SeedanceValidationError) as caught:
        BudgetConfig.from_extra("c", {"budget": budget})
    message = str(caught.value)
    assert "s3cret-pw" not in message and "s3cret-pw" not in repr(caught.value.value)
    assert "db.internal" in message and "Allowed:" in message  # it still says which value


def test_the_store_password_is_in_no_repr() -> None:
    from airflow_provider_seedance.budgets import SharedBudgets

    config = BudgetConfig.from_extra("c", {"budget": {"daily_credits": 5, "store": SECRET_URL}})
    assert "s3cret-pw" not in repr(config)
    store = BudgetStore.__new__(BudgetStore)
    store.url = SECRET_URL
    assert "s3cret-pw" not in repr(store)
    assert "s3cret-pw" not in repr(SharedBudgets(store, config, None, ("d", "r", "t", -1)))


def test_a_store_that_cannot_be_opened_never_shows_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_seedance import budgets

    def refuse(url: str) -> None:
        raise RuntimeError(f"could not connect with {url}")  # a driver that echoes its DSN

    monkeypatch.setattr(budgets.BudgetStore, "__init__", lambda self, url: refuse(url))
    with pytest.raises(SeedanceConfigurationError, match="could not be opened") as caught:
        open_store(SECRET_URL)
    assert "s3cret-pw" not in str(caught.value)


@pytest.mark.parametrize(
    ("budget", "field", "shown"),
    [
        ({"daily_credits": 10**30}, "budget.daily_credits", str(10**30)),
        ({"monthly_credits": 2**63}, "budget.monthly_credits", str(2**63)),
        ({"daily_credits": 5, "store": "sqlite:///budgets.db"}, "budget.store", "sqlite:///budgets.db"),
        ({"daily_credits": 5, "store": "sqlite://"}, "budget.store", "sqlite://"),
        ({"daily_credits": 5, "store": "sqlite:///:memory:"}, "budget.store", "sqlite:///:memory:"),
        ({"daily_credits": 5, "store": "postgresql://u@h:port/db"}, "budget.store", "not shown"),
    ],
)
def test_a_limit_the_database_cannot_hold_or_a_store_no_other_worker_shares_is_refused(
    budget: object, field: str, shown: str
) -> None:
    """A huge limit would fail inside the database at the first reservation (an overflow, not
    a clear error); a relative or in-memory SQLite store is a different database for every
    worker directory or process, so the budget would not be shared at all."""
    with pytest.raises(SeedanceValidationError) as caught:
        BudgetConfig.from_extra("c", {"budget": budget})
    message = str(caught.value)
    assert f"connection 'c' extra {field}" in message and shown in message and "Allowed:" in message


def test_a_zero_daily_limit_without_a_store_names_the_store_field() -> None:
    with pytest.raises(SeedanceConfigurationError, match=r"budget.store needs a shared budget store"):
        BudgetConfig.from_extra("c", {"budget": {"daily_credits": 0}}).budgets("d", "r", None, 0.0)
