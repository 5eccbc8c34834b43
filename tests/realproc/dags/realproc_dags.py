"""DAGs run by the real-process tests (tests/realproc): one connection per emulator.

Each scenario talks to its own emulator through its own connection, so ledgers and
injected faults of one test can never be consumed by another.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_seedance.operators.batch import SeedanceBatchGenerateOperator
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")
#: Status-read retries fast enough for tests.
FAST = {"retry_min_wait": 0.2, "retry_max_wait": 1.0, "status_retries": 4}
#: Mapped generations in the triggerer-kill DAG.
TRIGGERER_KILL_N = 20
#: Poll interval of deferrable tasks whose trigger could otherwise fire within seconds of
#: deferring. Airflow 3.2-3.3 race (apache/airflow#66374, #72716): when a trigger fires
#: before the scheduler has drained the executor's "success" event of the deferring try,
#: the stale event fails the resumed task ("state mismatch"). Seen here 1 run in 3 with a
#: 1 s interval; the first poll comes one interval after deferring.
RACE_SAFE_POLL = 10.0

with DAG(
    "realproc_triggerer_kill",
    schedule=None,
    start_date=START,
    catchup=False,
    max_active_tasks=64,
    # No retries: a triggerer crash must cost no try at all.
    default_args={"retries": 0},
):
    SeedanceGenerateOperator.partial(
        task_id="generate",
        seedance_conn_id="seedance_kill",
        deferrable=True,
        poll_interval=2.0,
        hook_params=FAST,
    ).expand(prompt=[f"Deferred clip number {i}" for i in range(TRIGGERER_KILL_N)])

with DAG(
    "realproc_worker_kill",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=1)},
):
    for mode in ("blocking", "deferrable"):
        SeedanceGenerateOperator(
            task_id=mode,
            prompt=f"Survives a worker kill ({mode})",
            seedance_conn_id="seedance_reattach",
            deferrable=mode == "deferrable",
            poll_interval=RACE_SAFE_POLL if mode == "deferrable" else 1.0,
            hook_params=FAST,
        )

with DAG(
    "realproc_secrets",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args={"retries": 0},
):
    # Runs first and gets the injected FAILED outcome: its exception lands in the logs.
    doomed = SeedanceGenerateOperator(
        task_id="doomed",
        prompt="Rejected by moderation",
        seedance_conn_id="seedance_secrets",
        deferrable=False,
        poll_interval=0.5,
        hook_params=FAST,
    )
    for mode in ("blocking", "deferrable"):
        doomed >> SeedanceGenerateOperator(
            task_id=f"ok_{mode}",
            prompt="A {{ params.adjective }} clip, run {{ run_id }}",
            params={"adjective": "templated"},
            seedance_conn_id="seedance_secrets",
            deferrable=mode == "deferrable",
            poll_interval=RACE_SAFE_POLL if mode == "deferrable" else 0.5,
            trigger_rule="all_done",
            hook_params=FAST,
        )

with DAG(
    "realproc_metrics",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args={"retries": 0},
):
    # The emulator fails its first generation: resubmitted once, then succeeds.
    one = SeedanceGenerateOperator(
        task_id="one_video",
        prompt="A lighthouse at dusk",
        resolution="480p",
        duration=4,  # 8 credits
        seedance_conn_id="seedance_metrics",
        deferrable=True,
        poll_interval=RACE_SAFE_POLL,
        resubmit_on_failure=1,
        hook_params=FAST,
    )
    # One video is already at its destination (the test puts it there): reused.
    one >> SeedanceBatchGenerateOperator(
        task_id="batch",
        requests=[
            {"id": "kept", "prompt": "Already delivered"},
            {"id": "a", "prompt": "A red kite", "resolution": "720p", "duration": 4},  # 14
            {"id": "b", "prompt": "A blue kite", "resolution": "480p", "duration": 8},  # 14
        ],
        output_path_template="{{ dag_run.conf['out'] }}/{id}.mp4",
        seedance_conn_id="seedance_metrics",
        deferrable=True,
        poll_interval=RACE_SAFE_POLL,
        hook_params=FAST,
    )

#: Mapped generations racing for the ``seedance_budget`` connection's daily budget.
BUDGET_TASKS = 8

with DAG(
    "realproc_budget",
    schedule=None,
    start_date=START,
    catchup=False,
    max_active_tasks=16,
    # Retries are allowed: a task stopped by a budget must not use them. The DAG-run budget is
    # set for every task through default_args (larger than the daily one: both are reserved).
    default_args={"retries": 2, "retry_delay": timedelta(seconds=1), "dag_run_max_credits": 1000},
):
    SeedanceGenerateOperator.partial(
        task_id="generate",
        seedance_conn_id="seedance_budget",
        resolution="480p",
        duration=4,  # 8 credits each
        deferrable=False,  # every task holds its worker slot: eight reservations at once
        poll_interval=1.0,
        hook_params=FAST,
    ).expand(prompt=[f"Budgeted clip number {i}" for i in range(BUDGET_TASKS)])


#: Prompts of each mapped task in the end-in-triggerer DAG (one video per map index).
END_IN_TRIGGERER_PROMPTS = ["A paper boat on a pond", "A kite over the dunes"]

with DAG(
    "realproc_end_in_triggerer",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args={"retries": 0},
):
    # The same mapped generations twice: today's path (resume on a worker) and ending in the
    # triggerer; the test compares what each leaves behind.
    for where in ("worker", "triggerer"):
        generated = SeedanceGenerateOperator.partial(
            task_id=f"ends_in_{where}",
            seedance_conn_id="seedance_endtrig",
            deferrable=True,
            poll_interval=RACE_SAFE_POLL,
            resolution="480p",
            duration=4,  # 8 credits
            end_in_triggerer=where == "triggerer",
            hook_params=FAST,
        ).expand(prompt=END_IN_TRIGGERER_PROMPTS)

        @task(task_id=f"credits_of_{where}")
        def total_credits(results: list[dict]) -> int:
            """A downstream task reads the mapped results (the return values) as dicts."""
            return sum(int(result["consumed_credits"]) for result in results)

        total_credits(generated.output)


#: Deferred generations resumed by callbacks (test_callbacks.py).
CALLBACK_N = 3

with DAG(
    "realproc_callbacks",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=1)},
):
    # No poll_interval: with callbacks on, the trigger's first poll is 300 s after deferring.
    SeedanceGenerateOperator.partial(
        task_id="generate",
        seedance_conn_id="seedance_callbacks",
        deferrable=True,
        resolution="480p",
        duration=4,
        hook_params=FAST,
    ).expand(prompt=[f"Resumed by its callback, clip {i}" for i in range(CALLBACK_N)])


#: Deferred generations whose callbacks are all lost (test_callbacks.py): the fallback poll,
#: here every RACE_SAFE_POLL seconds instead of 300, ends them.
LOST_CALLBACK_N = 4

with DAG("realproc_callbacks_lost", schedule=None, start_date=START, catchup=False):
    SeedanceGenerateOperator.partial(
        task_id="generate",
        seedance_conn_id="seedance_callbacks_lost",
        deferrable=True,
        resolution="480p",
        duration=4,
        callback_poll_interval=RACE_SAFE_POLL,
        hook_params=FAST,
    ).expand(prompt=[f"Its callback is lost, clip {i}" for i in range(LOST_CALLBACK_N)])


with DAG(
    "realproc_callbacks_end_in_triggerer",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=1)},
):
    # Callbacks on (the fallback poll is 300 s away) and nothing to do on a worker after a
    # success: the API server's callback receiver ends the task itself.
    ended = SeedanceGenerateOperator(
        task_id="generate",
        seedance_conn_id="seedance_callbacks_end",
        deferrable=True,
        end_in_triggerer=True,
        prompt="Ended by its callback",
        resolution="480p",
        duration=4,
        hook_params=FAST,
    )

    @task
    def read_result(result: dict) -> str:
        """A downstream task reads the return value as a dict (a string would fail here)."""
        return str(result["task_id"])

    read_result(ended.output)
