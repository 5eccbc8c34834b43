"""SeedanceGenerateOperator and the shared budgets (narrow fakes, a real SQLite store): a
generation reserves before its POST, re-attaching reserves nothing, the money rules decide
what a failure frees."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_seedance._compat import AirflowFailException
from airflow_provider_seedance.budgets import BudgetConfig, open_store
from airflow_provider_seedance.exceptions import (
    CreationState,
    SeedanceBadRequestError,
    SeedanceBatchFailedError,
    SeedanceSharedBudgetExceededError,
    SeedanceSubmissionUncertainError,
    SeedanceValidationError,
)
from airflow_provider_seedance.operators.batch import SeedanceBatchGenerateOperator
from tests.unit.fakes import TI, FakeHook, Store, context, use
from tests.unit.operators.test_single_submit_rules import CHEAP, single


class RunTI(TI):
    def __init__(self, task_id: str) -> None:
        super().__init__()
        self.dag_id, self.run_id, self.task_id, self.map_index = "dag", "run-1", task_id, -1


def ctx(store: Store, task_id: str = "generate") -> dict[str, Any]:
    found = context(store)
    found["ti"] = RunTI(task_id)
    return found


def hook_with(url: str, *, daily: int | None = None, **kwargs: Any) -> FakeHook:
    hook = FakeHook(**kwargs)
    hook.extra = {"budget": {"daily_credits": daily, "store": url}}
    return hook


def spent(url: str, daily: int | None = 1000, run: int | None = None) -> int:
    config = BudgetConfig.from_extra("seedance_default", {"budget": {"daily_credits": daily, "store": url}})
    budget = config.budgets("dag", "run-1", run, time.time())[0]
    return open_store(url).spent(budget)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'budgets.db'}"


def test_a_task_without_room_fails_without_retry_and_posts_nothing(url: str) -> None:
    single(hook_with(url, daily=10), **CHEAP).execute(ctx(Store(), "first"))
    second = hook_with(url, daily=10)
    context_b = ctx(Store(), "second")
    with pytest.raises(SeedanceSharedBudgetExceededError) as caught:
        single(second, **CHEAP).execute(context_b)
    assert isinstance(caught.value, AirflowFailException)
    assert "daily budget of connection 'seedance_default'" in str(caught.value)
    assert "8 credits ($0.04) spent or reserved of 10" in str(caught.value)
    assert second.posts == []
    assert context_b["ti"].xcoms["seedance_result"]["outcome"] == "not_sent"


def test_a_success_settles_to_the_credits_the_api_reports(url: str) -> None:
    single(hook_with(url, daily=100), **{"resolution": "720p", "duration": "8"}).execute(ctx(Store()))
    assert spent(url, 100) == 8  # reserved the 720p/8 s estimate, the fake API charged 8


def test_a_retry_that_reattaches_reserves_nothing_again(url: str) -> None:
    store = Store()
    first = hook_with(url, daily=100, statuses={"gen-1": ["IN_PROGRESS"]})
    single(first, wait_for_completion=False, **CHEAP).execute(ctx(store))
    assert spent(url, 100) == 8
    retry = hook_with(url, daily=8)  # no room left for a second reservation
    single(retry, **CHEAP).execute(ctx(store))
    assert retry.posts == [] and spent(url, 8) == 8


def test_a_refused_post_releases_its_reservation(url: str) -> None:
    refused = SeedanceBadRequestError(400, "INVALID_PARAMS", "no", creation=CreationState.REFUSED)
    hook = hook_with(url, daily=100, submits=[refused])
    with pytest.raises(SeedanceBadRequestError):
        single(hook, **CHEAP).execute(ctx(Store()))
    assert spent(url, 100) == 0


def test_an_uncertain_post_keeps_its_reservation_and_force_new_reserves_again(url: str) -> None:
    store = Store()
    lost = hook_with(url, daily=100, submits=[SeedanceSubmissionUncertainError("lost")])
    with pytest.raises(SeedanceSubmissionUncertainError):
        single(lost, **CHEAP).execute(ctx(store))
    assert spent(url, 100) == 8  # a generation may exist, and may be billed
    with pytest.raises(SeedanceSubmissionUncertainError):
        single(hook_with(url, daily=100), **CHEAP).execute(ctx(store))
    assert spent(url, 100) == 8  # the refusal to re-pay reserves nothing
    single(hook_with(url, daily=100), force_new=True, **CHEAP).execute(ctx(store))
    assert spent(url, 100) == 16  # the forced POST may be the second billed generation


def test_a_failed_generation_frees_its_room_for_the_resubmission(url: str) -> None:
    hook = hook_with(url, daily=8, statuses={"gen-1": ["FAILED"]})
    single(hook, resubmit_on_failure=1, **CHEAP).execute(ctx(Store()))
    assert len(hook.posts) == 2 and spent(url, 8) == 8


def test_a_resumed_task_resubmitting_a_failed_generation_frees_its_room_and_reserves_again(url: str) -> None:
    from airflow_provider_seedance._compat import TaskDeferred

    store = Store()
    hook = hook_with(url, daily=8, statuses={"gen-1": ["IN_PROGRESS"], "gen-2": ["IN_PROGRESS"]})
    operator = single(hook, resubmit_on_failure=1, deferrable=True, **CHEAP)
    with pytest.raises(TaskDeferred):
        operator.execute(ctx(store))
    assert spent(url, 8) == 8
    failed = {"status": "failed", "task": {"task_id": "gen-1", "status": "FAILED"}, "message": ""}

    with pytest.raises(TaskDeferred):
        operator.execute_complete(ctx(store), failed, seedance_task_id="gen-1")

    assert len(hook.posts) == 2 and spent(url, 8) == 8  # gen-1 settled at 0, gen-2 reserved
    open_store(url).settle("gen-2", 0)  # the room taken is gen-2's own: it ends with gen-2
    assert spent(url, 8) == 0


def test_the_dag_run_budget_is_shared_by_the_run_s_tasks(url: str) -> None:
    hook = FakeHook()
    hook.extra = {"budget": {"store": url}}
    single(hook, dag_run_max_credits=12, **CHEAP).execute(ctx(Store(), "a"))
    other = FakeHook()
    other.extra = {"budget": {"store": url}}
    with pytest.raises(SeedanceSharedBudgetExceededError, match=r"dag_run_max_credits budget of DAG run"):
        single(other, dag_run_max_credits=12, **CHEAP).execute(ctx(Store(), "b"))
    assert other.posts == []


@pytest.mark.parametrize("value", [-5, "10", 1.5, True])
def test_a_bad_dag_run_max_credits_is_refused_at_construction(value: object) -> None:
    with pytest.raises(SeedanceValidationError, match=r"Invalid dag_run_max_credits: .*whole number"):
        single(FakeHook(), dag_run_max_credits=value)


def test_a_bad_budget_extra_fails_before_any_post(url: str) -> None:
    hook = FakeHook()
    hook.extra = {"budget": {"daily_credits": -3, "store": url}}
    with pytest.raises(SeedanceValidationError, match=r"budget.daily_credits: -3"):
        single(hook, **CHEAP).execute(ctx(Store()))
    assert hook.posts == [] and hook.reads == []


# ---------------------------------------------------------------------- the batch operator
def batch(hook: FakeHook, count: int, **kwargs: Any) -> SeedanceBatchGenerateOperator:
    items = [{"prompt": f"item {n}", **CHEAP} for n in range(count)]
    kwargs.setdefault("deferrable", False)
    operator = SeedanceBatchGenerateOperator(task_id="batch", requests=items, poll_interval=0.001, **kwargs)
    return use(operator, hook)


def test_a_batch_reserves_all_its_items_or_none_and_posts_nothing_without_room(url: str) -> None:
    hook = hook_with(url, daily=20)
    with pytest.raises(SeedanceSharedBudgetExceededError) as caught:
        batch(hook, 3).execute(ctx(Store(), "batch"))
    assert isinstance(caught.value, AirflowFailException)
    assert "0 credits ($0.00) spent or reserved of 20" in str(caught.value)
    assert "submitting 3 generations would cost 24 credits" in str(caught.value)
    assert hook.posts == [] and spent(url, 20) == 0


def test_a_batch_settles_its_generations_and_a_retry_reserves_nothing_again(url: str) -> None:
    store = Store()
    running = hook_with(url, daily=16, statuses={"gen-1": ["IN_PROGRESS"], "gen-2": ["IN_PROGRESS"]})
    batch(running, 2, wait_for_completion=False).execute(ctx(store, "batch"))
    assert len(running.posts) == 2 and spent(url, 16) == 16
    retry = hook_with(url, daily=16)
    batch(retry, 2).execute(ctx(store, "batch"))
    assert retry.posts == [] and spent(url, 16) == 16


def test_a_batch_item_refused_by_the_api_frees_its_room(url: str) -> None:
    refused = SeedanceBadRequestError(400, "INVALID_PROMPT", "no", creation=CreationState.REFUSED)
    hook = hook_with(url, daily=16, submits=[None, refused])
    with pytest.raises(SeedanceBatchFailedError):
        batch(hook, 2).execute(ctx(Store(), "batch"))
    assert spent(url, 16) == 8


# ---------------------------------------------------------------------- what the red team checked
def test_a_store_that_fails_at_the_reservation_sends_nothing(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A locked or vanished store (here: the reservation's transaction fails) fails the task
    before its POST: no generate request goes out without a reservation."""
    from sqlalchemy.exc import OperationalError

    from airflow_provider_seedance.budgets import BudgetStore

    def locked(self: BudgetStore, key: str, cost: int, budgets: Any) -> bool:
        raise OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))

    monkeypatch.setattr(BudgetStore, "reserve", locked)
    hook = hook_with(url, daily=100)
    context_a = ctx(Store())
    with pytest.raises(OperationalError):
        single(hook, **CHEAP).execute(context_a)
    assert hook.posts == [] and context_a["ti"].xcoms["seedance_result"]["outcome"] == "not_sent"
    many = hook_with(url, daily=100)
    with pytest.raises(OperationalError):
        batch(many, 3).execute(ctx(Store(), "batch"))
    assert many.posts == []


def test_the_dag_run_budget_is_not_shared_across_runs(url: str) -> None:
    hook = FakeHook()
    hook.extra = {"budget": {"store": url}}
    single(hook, dag_run_max_credits=8, **CHEAP).execute(ctx(Store(), "a"))
    next_run = ctx(Store(), "a")
    next_run["ti"].run_id = "run-2"
    other = FakeHook()
    other.extra = {"budget": {"store": url}}
    single(other, dag_run_max_credits=8, **CHEAP).execute(next_run)  # a full budget of its own
    assert len(other.posts) == 1


def test_a_batch_item_whose_answer_was_lost_keeps_its_room(url: str) -> None:
    """Some items sent, then one answer lost: the sent item settles, the lost one stays
    reserved (a generation may exist and be billed), and a retry sends neither again."""
    store = Store()
    hook = hook_with(url, daily=16, submits=[None, SeedanceSubmissionUncertainError("read timeout")])
    with pytest.raises(SeedanceBatchFailedError):
        batch(hook, 2).execute(ctx(store, "batch"))
    assert spent(url, 16) == 16
    retry = hook_with(url, daily=16)
    with pytest.raises(SeedanceBatchFailedError):
        batch(retry, 2).execute(ctx(store, "batch"))
    assert retry.posts == [] and spent(url, 16) == 16


def test_a_batch_rerun_without_its_record_reserves_again(url: str) -> None:
    batch(hook_with(url, daily=8), 1).execute(ctx(Store(), "batch"))
    again = hook_with(url, daily=8)
    with pytest.raises(SeedanceSharedBudgetExceededError):
        batch(again, 1).execute(ctx(Store(), "batch"))  # the same task instance, its record gone
    assert again.posts == [] and spent(url, 8) == 8


# ---------------------------------------------------------------------- one reservation per POST
# A reservation left open and unbound by an uncertain POST (a generation may exist, and may be
# billed) must never be taken over by a later POST of the same task instance: each submission
# is numbered (history + released marks + an open uncertain mark) and reserves under its number.
def test_every_forced_post_after_uncertain_ones_takes_room_of_its_own(url: str) -> None:
    store = Store()
    lost = SeedanceSubmissionUncertainError("lost")
    with pytest.raises(SeedanceSubmissionUncertainError):
        single(hook_with(url, daily=100, submits=[lost]), **CHEAP).execute(ctx(store))
    with pytest.raises(SeedanceSubmissionUncertainError):
        single(hook_with(url, daily=100, submits=[lost]), force_new=True, **CHEAP).execute(ctx(store))
    assert spent(url, 100) == 16
    single(hook_with(url, daily=100), force_new=True, **CHEAP).execute(ctx(store))
    assert spent(url, 100) == 24  # three POSTs, each possibly billed


def test_a_resubmission_after_a_forced_post_failed_never_rides_on_the_uncertain_reservation(url: str) -> None:
    store = Store()
    with pytest.raises(SeedanceSubmissionUncertainError):
        lost = SeedanceSubmissionUncertainError("lost")
        single(hook_with(url, daily=100, submits=[lost]), **CHEAP).execute(ctx(store))
    forced = hook_with(url, daily=100, statuses={"gen-1": ["FAILED"]})
    single(forced, force_new=True, resubmit_on_failure=1, **CHEAP).execute(ctx(store))
    assert len(forced.posts) == 2
    # the uncertain POST (8, kept) + the FAILED one (0) + its resubmission (8)
    assert spent(url, 100) == 16


def test_a_changed_request_after_an_uncertain_post_takes_room_of_its_own(url: str) -> None:
    store = Store()
    with pytest.raises(SeedanceSubmissionUncertainError):
        lost = SeedanceSubmissionUncertainError("lost")
        single(hook_with(url, daily=100, submits=[lost]), **CHEAP).execute(ctx(store))
    changed = hook_with(url, daily=100)
    single(changed, prompt="a grey wolf in snow", **CHEAP).execute(ctx(store))
    assert len(changed.posts) == 1 and spent(url, 100) == 16


def test_a_batch_item_forced_after_an_uncertain_post_takes_room_of_its_own(url: str) -> None:
    store = Store()
    hook = hook_with(url, daily=100, submits=[SeedanceSubmissionUncertainError("read timeout")])
    with pytest.raises(SeedanceBatchFailedError):
        batch(hook, 1).execute(ctx(store, "batch"))
    assert spent(url, 100) == 8
    forced = hook_with(url, daily=100)
    batch(forced, 1, force_new=True).execute(ctx(store, "batch"))
    assert len(forced.posts) == 1 and spent(url, 100) == 16
    # and a retry of that try re-attaches: no room taken again
    again = hook_with(url, daily=100)
    batch(again, 1, force_new=True).execute(ctx(store, "batch"))
    assert again.posts == [] and spent(url, 100) == 16


def test_a_batch_resubmission_after_a_forced_post_failed_takes_room_of_its_own(url: str) -> None:
    store = Store()
    hook = hook_with(url, daily=100, submits=[SeedanceSubmissionUncertainError("read timeout")])
    with pytest.raises(SeedanceBatchFailedError):
        batch(hook, 1).execute(ctx(store, "batch"))
    forced = hook_with(url, daily=100, statuses={"gen-1": ["FAILED"]})
    batch(forced, 1, force_new=True, resubmit_on_failure=1).execute(ctx(store, "batch"))
    assert len(forced.posts) == 2
    # the uncertain POST (8, kept) + the FAILED one (0) + its resubmission (8)
    assert spent(url, 100) == 16


def test_every_forced_batch_post_after_uncertain_ones_takes_room_of_its_own(url: str) -> None:
    store = Store()
    lost = SeedanceSubmissionUncertainError("read timeout")
    with pytest.raises(SeedanceBatchFailedError):
        batch(hook_with(url, daily=100, submits=[lost]), 1).execute(ctx(store, "batch"))
    with pytest.raises(SeedanceBatchFailedError):
        forced_lost = hook_with(url, daily=100, submits=[SeedanceSubmissionUncertainError("dropped")])
        batch(forced_lost, 1, force_new=True).execute(ctx(store, "batch"))
    assert spent(url, 100) == 16
    forced = hook_with(url, daily=100)
    batch(forced, 1, force_new=True).execute(ctx(store, "batch"))
    assert len(forced.posts) == 1 and spent(url, 100) == 24, "three POSTs may each be billed"


def test_a_batch_without_room_names_the_budget_and_what_the_whole_batch_would_cost(url: str) -> None:
    with pytest.raises(SeedanceSharedBudgetExceededError) as info:
        batch(hook_with(url, daily=20), 3).execute(ctx(Store(), "batch"))
    error = info.value
    assert error.budget.startswith("daily budget") and "seedance_default" in error.budget
    assert (error.spent_credits, error.limit_credits, error.estimated_credits) == (0, 20, 24)
    assert spent(url, 20) == 0, "the items that fitted were released again"


def test_the_batch_honours_dag_run_max_credits(url: str) -> None:
    hook = FakeHook()
    hook.extra = {"budget": {"store": url}}
    with pytest.raises(SeedanceSharedBudgetExceededError, match=r"dag_run_max_credits budget of DAG run"):
        batch(hook, 2, dag_run_max_credits=12).execute(ctx(Store(), "batch"))
    assert hook.posts == []


def test_a_resumed_batch_resubmitting_a_failed_item_frees_its_room_and_reserves_again(url: str) -> None:
    from airflow_provider_seedance._compat import TaskDeferred

    store = Store()
    hook = hook_with(url, daily=8, statuses={"gen-1": ["IN_PROGRESS"], "gen-2": ["IN_PROGRESS"]})
    operator = batch(hook, 1, deferrable=True, resubmit_on_failure=1)
    with pytest.raises(TaskDeferred):
        operator.execute(ctx(store, "batch"))
    assert spent(url, 8) == 8
    failed = {
        "status": "done",
        "tasks": {"gen-1": {"task_id": "gen-1", "status": "FAILED"}},
        "errors": {},
        "pending": [],
    }

    with pytest.raises(TaskDeferred):
        operator.execute_complete(ctx(store, "batch"), failed)

    assert len(hook.posts) == 2 and spent(url, 8) == 8  # gen-1 settled at 0, gen-2 reserved
    open_store(url).settle("gen-2", 0)  # the room taken is gen-2's own: it ends with gen-2
    assert spent(url, 8) == 0
