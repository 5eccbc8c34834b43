"""The shared budgets against the real emulator process: concurrent tasks draw from one daily
budget of their connection, and what a failed POST frees follows what the emulator did."""

from __future__ import annotations

import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_seedance.exceptions import (
    SeedanceRateLimitError,
    SeedanceSharedBudgetExceededError,
    SeedanceSubmissionUncertainError,
)
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator
from tests.conftest import connection_json
from tests.state_store import Store

pytestmark = pytest.mark.integration

FAST = {"retry_min_wait": 0.01, "retry_max_wait": 0.05, "status_retries": 2}
CHEAP = {"resolution": "480p", "duration": "4"}  # 8 credits


class TI:
    def __init__(self, task_id: str) -> None:
        self.dag_id, self.run_id, self.task_id, self.map_index = "budget_dag", "run-1", task_id, -1
        self.try_number = 1
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def context(task_id: str, store: Store | None = None) -> dict[str, Any]:
    return {
        "task_state_store": store or Store(),
        "ti": TI(task_id),
        "outlet_events": defaultdict(lambda: None),
    }


def single(**kwargs: Any) -> SeedanceGenerateOperator:
    return SeedanceGenerateOperator(
        task_id="generate", poll_interval=0.1, deferrable=False, hook_params=FAST, **{**CHEAP, **kwargs}
    )


@pytest.fixture
def budgeted(emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def configure(daily: int) -> None:
        budget = {"daily_credits": daily, "store": f"sqlite:///{tmp_path / 'budgets.db'}"}
        monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEFAULT", connection_json(emulator.base_url, budget=budget))

    return configure


def charged(emulator) -> int:
    [account] = [a for a in emulator.ledger()["accounts"].values() if a["charged"]] or [
        {"charged": 0, "refunded": 0}
    ]
    return int(account["charged"] - account["refunded"])


def test_concurrent_tasks_share_the_daily_budget_and_the_stopped_ones_post_nothing(
    emulator, budgeted
) -> None:
    budgeted(daily=24)
    outcomes: dict[str, str] = {}

    def run(n: int) -> None:
        try:
            single(prompt=f"clip {n}").execute(context(f"t{n}"))
            outcomes[f"t{n}"] = "generated"
        except SeedanceSharedBudgetExceededError:
            outcomes[f"t{n}"] = "stopped"

    threads = [threading.Thread(target=run, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes.values()) == ["generated"] * 3 + ["stopped"] * 3
    assert emulator.ledger()["generate_requests"] == 3
    assert charged(emulator) == 24


def test_a_lost_answer_keeps_its_reservation_a_refused_post_frees_it(emulator, budgeted) -> None:
    budgeted(daily=8)
    emulator.add_faults({"endpoint": "generate", "fault": "http_429", "times": 20})
    with pytest.raises(SeedanceRateLimitError):
        single(prompt="refused").execute(context("refused"))
    emulator.clear_faults()
    # The refusal created nothing: the whole budget is still there.
    emulator.add_faults({"endpoint": "generate", "fault": "drop", "times": 1})
    with pytest.raises(SeedanceSubmissionUncertainError):
        single(prompt="lost").execute(context("lost"))
    # The lost answer may be a generation: its 8 credits stay reserved.
    with pytest.raises(SeedanceSharedBudgetExceededError, match=r"8 credits .* spent or reserved of 8"):
        single(prompt="next").execute(context("next"))
    # It was one: the emulator created (and bills) the generation whose answer it dropped.
    assert charged(emulator) == 8


def test_a_rerun_whose_submission_record_is_gone_still_reserves_its_generation(emulator, budgeted) -> None:
    """A DAG run deleted and triggered again under the same run id (a re-run backfill), or a
    record deleted by hand, starts the same task instance with no record: its generate
    request must reserve anew, not find the settled reservation of the earlier generation
    under the same key and go out unbudgeted (2 generations charged against a limit of 1)."""
    budgeted(daily=8)
    single(prompt="clip").execute(context("clip"))
    with pytest.raises(SeedanceSharedBudgetExceededError, match=r"8 credits .* spent or reserved of 8"):
        single(prompt="clip").execute(context("clip", Store()))  # same task instance, no record
    assert emulator.ledger()["generate_requests"] == 1
    assert charged(emulator) == 8
