"""A shared daily budget holds in real Airflow: eight mapped generations start at once on a
LocalExecutor with eight slots and race for a 40-credit daily budget of their connection
(8 credits each). Exactly five reserve and are generated; three are stopped before their
generate request, fail on their first try although retries are allowed, and say which budget
stopped them. The emulator's ledger is the measure of what was spent.
"""

from __future__ import annotations

import json
import time

import pytest

from airflow_provider_seedance.budgets import BudgetConfig, open_store
from tests.realproc.conftest import BUDGET_DAILY_CREDITS, RealprocEnv
from tests.realproc.dags.realproc_dags import BUDGET_TASKS

pytestmark = pytest.mark.realproc

DAG_ID = "realproc_budget"
CONN_ID = "seedance_budget"
COST = 8


def test_concurrent_tasks_never_spend_past_the_shared_daily_budget(realproc: RealprocEnv) -> None:
    cluster, emulator = realproc.cluster, realproc.emulators[CONN_ID]
    cluster.wait_for_dag(DAG_ID)
    cluster.unpause(DAG_ID)
    run_id = cluster.trigger(DAG_ID)
    run = cluster.wait_for_run(DAG_ID, run_id, timeout=300)
    assert run["state"] == "failed"  # the stopped tasks fail the run

    tis = {ti["map_index"]: ti for ti in cluster.task_instances(DAG_ID, run_id)}
    assert len(tis) == BUDGET_TASKS
    succeeded = sorted(m for m, ti in tis.items() if ti["state"] == "success")
    stopped = sorted(m for m, ti in tis.items() if ti["state"] == "failed")
    granted = BUDGET_DAILY_CREDITS // COST
    assert (len(succeeded), len(stopped)) == (granted, BUDGET_TASKS - granted), tis

    results = {
        row["map_index"]: json.loads(row["value"]) if isinstance(row["value"], str) else row["value"]
        for row in cluster.sql(
            "SELECT map_index, value FROM xcom WHERE dag_id=? AND run_id=? AND key='seedance_result'",
            (DAG_ID, run_id),
        )
    }
    for map_index in stopped:
        ti = tis[map_index]
        assert ti["try_number"] == 1, ti  # retries=2, yet never retried
        log = cluster.task_log(DAG_ID, run_id, "generate", 1, map_index)
        assert "The daily budget of connection 'seedance_budget'" in log
        assert f"of {BUDGET_DAILY_CREDITS}" in log and f"would cost {COST} credits" in log
        assert results[map_index]["outcome"] == "not_sent"  # it made no POST
    for map_index in succeeded:
        assert results[map_index]["consumed_credits"] == COST

    ledger = emulator.ledger()
    account = ledger["accounts"][realproc.api_key]
    charged = account["charged"] - account["refunded"]
    # Every POST the emulator received came from a task that succeeded: the stopped ones sent none.
    assert ledger["generate_requests"] == len(succeeded)
    assert charged <= BUDGET_DAILY_CREDITS

    config = BudgetConfig.from_extra(
        CONN_ID, {"budget": {"daily_credits": BUDGET_DAILY_CREDITS, "store": realproc.budget_store}}
    )
    (daily,) = config.budgets(DAG_ID, run_id, None, time.time())
    run_budget = config.budgets(DAG_ID, run_id, 1000, time.time())[0]
    store = open_store(realproc.budget_store)
    assert store.spent(daily) == charged  # settled to what the API charged
    assert store.spent(run_budget) == charged  # default_args reached every mapped task
    print(
        f"\nshared budget, measured: {BUDGET_TASKS} concurrent tasks x {COST} credits against a daily "
        f"budget of {BUDGET_DAILY_CREDITS}: {len(succeeded)} generated, {len(stopped)} stopped by the "
        f"budget (first try, no POST); emulator charged {charged} credits; overshoot "
        f"{max(0, charged - BUDGET_DAILY_CREDITS)} credits (bound: 0)"
    )
