"""Callbacks in real Airflow (API server with the plugin, scheduler, triggerer, LocalExecutor)
and the real emulator calling back over loopback (``--allow-local-callbacks``).

Three deferred generations whose trigger would first poll 300 s after deferring (callbacks on,
no ``poll_interval``) all succeed on their callbacks: each generation is read twice (the
operator's read after submitting and the receiver's own read), never by the trigger. While they
render, hostile callers hit the real API server without an Airflow login and resume nothing.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from airflow_provider_seedance.callbacks import CALLBACK_PATH, CallbackIdentity, sign
from airflow_provider_seedance.plugins.queries import decode_xcom
from tests.realproc.conftest import CALLBACK_SECRET, RealprocEnv, worker_starts
from tests.realproc.dags.realproc_dags import CALLBACK_N, LOST_CALLBACK_N, RACE_SAFE_POLL

pytestmark = pytest.mark.realproc

DAG_ID = "realproc_callbacks"
CONN_ID = "seedance_callbacks"


def deferred_tis(env: RealprocEnv, run_id: str) -> list[dict[str, Any]]:
    return env.cluster.sql(
        "SELECT task_id, map_index, try_number, state FROM task_instance WHERE dag_id = ? AND run_id = ?"
        " AND state = 'deferred' ORDER BY map_index",
        (DAG_ID, run_id),
    )


def states(env: RealprocEnv, run_id: str) -> dict[int, str]:
    rows = env.cluster.sql(
        "SELECT map_index, state FROM task_instance WHERE dag_id = ? AND run_id = ?", (DAG_ID, run_id)
    )
    return {int(r["map_index"]): str(r["state"]) for r in rows}


def token_for(
    run_id: str, map_index: int, try_number: int, *, secret: str = CALLBACK_SECRET, ttl: float = 600
) -> str:
    identity = CallbackIdentity.for_try(CONN_ID, DAG_ID, run_id, "generate", map_index, try_number)
    return sign(secret, identity, time.time() + ttl)


def test_deferred_generations_are_resumed_by_callbacks_and_hostile_callers_resume_nothing(
    realproc: RealprocEnv,
) -> None:
    cluster, emulator = realproc.cluster, realproc.emulators[CONN_ID]
    cluster.wait_for_dag(DAG_ID)
    cluster.unpause(DAG_ID)
    # The generations stay in progress (no callback either) until the hostile calls are done,
    # however slow the machine; then they end and call back.
    emulator.hold()
    try:
        run_id = cluster.trigger(DAG_ID)
        deferred_at = _hostile_callers_resume_nothing(realproc, run_id)
        # No callback sooner after deferring than Airflow's stale-event race allows (a resumed
        # try would fail and its retry read the status once more; see RACE_SAFE_POLL).
        time.sleep(max(0.0, RACE_SAFE_POLL - (time.monotonic() - deferred_at)))
    finally:
        emulator.hold(False)

    # The trigger's first poll is 300 s after deferring: only the callbacks can end the run.
    run = cluster.wait_for_run(DAG_ID, run_id, timeout=240)
    assert run["state"] == "success", states(realproc, run_id)
    ledger = emulator.ledger()
    assert ledger["generate_requests"] == CALLBACK_N
    assert ledger["callbacks_sent"] >= CALLBACK_N
    # Per generation: the operator's read after submitting and the receiver's own read; plus the
    # one read the validly signed lying callback above cost. None by the trigger.
    assert ledger["status_requests"] == 2 * CALLBACK_N + 1, ledger


def _hostile_callers_resume_nothing(realproc: RealprocEnv, run_id: str) -> float:
    """The hostile calls, once every generation has deferred (that moment is returned)."""
    cluster, emulator = realproc.cluster, realproc.emulators[CONN_ID]
    deferred = cluster.wait_until(
        lambda: len(rows := deferred_tis(realproc, run_id)) == CALLBACK_N and rows,
        timeout=300,
        what="every generation to defer",
        interval=0.5,
    )
    deferred_at = time.monotonic()
    assert all(task["status"] == "IN_PROGRESS" for task in emulator.tasks()), "generations ended too soon"

    receiver = cluster.base_url + CALLBACK_PATH
    first = deferred[0]
    valid = token_for(run_id, first["map_index"], first["try_number"])
    answers = {
        "no token": requests.post(receiver, json={}, timeout=30),
        "forged": requests.post(
            receiver + token_for(run_id, 0, 1, secret="forged-secret-0123456789abcdefghijklmnop"), timeout=30
        ),
        "expired": requests.post(receiver + token_for(run_id, 0, 1, ttl=-1), timeout=30),
        "another task instance": requests.post(receiver + token_for(run_id, CALLBACK_N + 5, 1), timeout=30),
        "10 MB body": requests.post(receiver + valid, data=b"x" * (10 * 1024 * 1024), timeout=120),
        "body claiming SUCCESS": requests.post(
            receiver + valid,
            json={"code": 200, "data": {"status": "SUCCESS", "response": ["https://evil.example/x.mp4"]}},
            timeout=30,
        ),
    }
    codes = {name: answer.status_code for name, answer in answers.items()}
    assert codes["no token"] in (404, 405)
    assert codes["forged"] == codes["expired"] == 403
    assert codes["another task instance"] == 403  # no such task instance: not a token it gave out
    assert codes["10 MB body"] == 413
    assert codes["body claiming SUCCESS"] == 202, "a body was believed"
    assert all(t["status"] == "IN_PROGRESS" for t in emulator.tasks()), "the checks above were not mid-render"
    assert set(states(realproc, run_id).values()) == {"deferred"}, "a hostile caller resumed a task"
    for answer in answers.values():
        assert realproc.api_key not in answer.text and CALLBACK_SECRET not in answer.text
    return deferred_at


def test_lost_callbacks_cost_latency_never_the_video(realproc: RealprocEnv) -> None:
    """The emulator drops every callback: the trigger's slow fallback poll still ends each
    generation, none is lost and none is paid for twice."""
    cluster, emulator = realproc.cluster, realproc.emulators["seedance_callbacks_lost"]
    emulator.add_faults({"endpoint": "callback", "fault": "drop", "times": LOST_CALLBACK_N})
    dag_id = "realproc_callbacks_lost"
    cluster.wait_for_dag(dag_id)
    cluster.unpause(dag_id)
    run_id = cluster.trigger(dag_id)
    run = cluster.wait_for_run(dag_id, run_id, timeout=240)
    assert run["state"] == "success", cluster.describe_stuck_run(dag_id, run_id)
    ledger = emulator.ledger()
    assert ledger["callbacks_dropped"] == LOST_CALLBACK_N and ledger["callbacks_sent"] == 0, ledger
    assert ledger["generate_requests"] == LOST_CALLBACK_N, ledger
    assert all(task["status"] == "SUCCESS" for task in emulator.tasks())
    tis = cluster.task_instances(dag_id, run_id)
    assert sorted(ti["map_index"] for ti in tis if ti["state"] == "success") == list(range(LOST_CALLBACK_N))


def test_a_callback_ends_an_end_in_triggerer_generation_with_no_worker_after_deferral(
    realproc: RealprocEnv,
) -> None:
    """``end_in_triggerer=True`` with callbacks: the API server's receiver ends the task on the
    callback (the trigger's first poll is 300 s away), so no worker starts after the deferral,
    and a downstream task reads the return value as a dict."""
    cluster, emulator = realproc.cluster, realproc.emulators["seedance_callbacks_end"]
    dag_id = "realproc_callbacks_end_in_triggerer"
    cluster.wait_for_dag(dag_id)
    cluster.unpause(dag_id)
    # No callback before the task has deferred (it would find nothing to end), however slow the
    # machine, nor sooner after it than Airflow's stale-event race allows.
    emulator.hold()
    try:
        run_id = cluster.trigger(dag_id)

        def deferred() -> bool:
            tis = cluster.task_instances(dag_id, run_id)
            return [ti["state"] for ti in tis if ti["task_id"] == "generate"] == ["deferred"]

        cluster.wait_until(
            deferred,
            timeout=300,
            what="the generation to defer",
        )
        time.sleep(RACE_SAFE_POLL)
    finally:
        emulator.hold(False)
    run = cluster.wait_for_run(dag_id, run_id, timeout=240)
    assert run["state"] == "success", cluster.describe_stuck_run(dag_id, run_id)

    (generate,) = cluster.sql(
        "SELECT try_number, state, next_method FROM task_instance WHERE dag_id = ? AND run_id = ?"
        " AND task_id = 'generate'",
        (dag_id, run_id),
    )
    assert generate["try_number"] == 1 and generate["state"] == "success", generate
    # One task-process start (submit and defer); none after it to run execute_complete.
    assert worker_starts(cluster, dag_id, run_id, "generate", -1, 1) == 1
    ledger = emulator.ledger()
    assert ledger["generate_requests"] == 1 and ledger["callbacks_sent"] >= 1, ledger
    # The operator's read after submitting and the receiver's own: the trigger never polled.
    assert ledger["status_requests"] == 2, ledger
    (task,) = emulator.tasks()
    (read,) = cluster.sql(
        "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = 'read_result'"
        " AND key = 'return_value'",
        (dag_id, run_id),
    )
    assert decode_xcom(read["value"]) == task["task_id"]
