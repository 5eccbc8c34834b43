"""Crashes in real Airflow processes cost time, never a lost or doubly paid generation.

* The triggerer is SIGKILLed (with its whole process group) while 20 generations wait in
  it; a new triggerer takes the triggers over and every task succeeds on its first try.
* A task's process is SIGKILLed right after it paid for a generation (it hangs in its first
  status read); the retry re-attaches to that generation instead of submitting again.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import psutil
import pytest
from airflow import __version__ as _airflow_version

from airflow_provider_seedance.emulator.testing import EmulatorProcess
from tests.airflow_processes import AirflowCluster
from tests.realproc.conftest import RealprocEnv
from tests.realproc.dags.realproc_dags import RACE_SAFE_POLL, TRIGGERER_KILL_N

pytestmark = pytest.mark.realproc

TRIGGER_CLASSPATH = "airflow_provider_seedance.triggers.seedance.SeedanceStatusTrigger"


def _start_run(cluster: AirflowCluster, dag_id: str) -> str:
    cluster.wait_for_dag(dag_id)
    cluster.unpause(dag_id)
    return cluster.trigger(dag_id)


def _results(cluster: AirflowCluster, dag_id: str, run_id: str) -> dict[tuple[str, int], Any]:
    """``return_value`` XComs of the run, by (task_id, map_index), read from the metadata DB."""
    import json

    rows = cluster.sql(
        "SELECT task_id, map_index, value FROM xcom WHERE dag_id=? AND run_id=? AND key='return_value'",
        (dag_id, run_id),
    )
    return {(r["task_id"], r["map_index"]): json.loads(r["value"]) for r in rows}


AIRFLOW_VERSION = tuple(int(part) for part in _airflow_version.split(".")[:2])


def test_triggerer_sigkill_loses_no_deferred_generation_and_pays_for_none_twice(
    realproc: RealprocEnv,
) -> None:
    cluster = realproc.cluster
    emulator = realproc.emulators["seedance_kill"]
    dag_id = "realproc_triggerer_kill"
    # Every generation stays in progress until the new triggerer polls, however long a loaded
    # machine takes to defer all 20 (with a timer, the first ones could end before the last defers).
    emulator.hold()
    try:
        _kill_the_triggerer_mid_render(cluster, emulator, dag_id)
    finally:
        emulator.hold(False)


def _kill_the_triggerer_mid_render(cluster: AirflowCluster, emulator: EmulatorProcess, dag_id: str) -> None:
    run_id = _start_run(cluster, dag_id)
    started = time.monotonic()

    def all_deferred() -> list[dict[str, Any]] | None:
        tis = cluster.task_instances(dag_id, run_id)
        if len(tis) == TRIGGERER_KILL_N and all(ti["state"] == "deferred" for ti in tis):
            return tis
        return None

    cluster.wait_until(all_deferred, timeout=300, what=f"{TRIGGERER_KILL_N} deferred tasks")
    deferred_at = time.monotonic()
    deferred_after = deferred_at - started

    def one_row_per_task() -> list[dict[str, Any]] | None:
        rows = cluster.trigger_rows()
        return rows if len(rows) == TRIGGERER_KILL_N else None

    rows = cluster.wait_until(one_row_per_task, timeout=30, what="one trigger row per deferred task")
    assert {r["classpath"] for r in rows} == {TRIGGER_CLASSPATH}
    in_progress = [t for t in emulator.tasks() if t["status"] == "IN_PROGRESS"]
    # The kill hits while every generation is still running: the triggers have work to do.
    assert len(in_progress) == TRIGGERER_KILL_N

    old = cluster.processes["triggerer"]
    group = [old.popen.pid, *(p.pid for p in psutil.Process(old.pid).children(recursive=True))]
    cluster.kill("triggerer", signal.SIGKILL)
    killed_at = time.monotonic()
    assert not [pid for pid in group if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    status_reads_at_kill = emulator.ledger()["status_requests"]
    cluster.start_process("triggerer")
    cluster.wait_until(
        lambda: emulator.ledger()["status_requests"] > status_reads_at_kill,
        timeout=300,
        interval=0.2,
        what="the new triggerer's first status poll",
    )
    polling_again_after = time.monotonic() - killed_at
    # The generations end now (those past their time at once), but no sooner after the last
    # deferral than Airflow's stale-event race allows (see RACE_SAFE_POLL).
    time.sleep(max(0.0, RACE_SAFE_POLL - (time.monotonic() - deferred_at)))
    emulator.hold(False)

    run = cluster.wait_for_run(dag_id, run_id, timeout=240)
    print(
        f"\n{TRIGGERER_KILL_N} deferred after {deferred_after:.1f}s; polling again "
        f"{polling_again_after:.1f}s and run ended {time.monotonic() - killed_at:.1f}s after the SIGKILL"
    )
    assert run["state"] == "success"
    tis = cluster.task_instances(dag_id, run_id)
    assert sorted((ti["state"], ti["try_number"]) for ti in tis) == [("success", 1)] * TRIGGERER_KILL_N

    ledger = emulator.ledger()
    assert ledger["generate_requests"] == TRIGGERER_KILL_N  # one POST per generation, none again
    assert ledger["status_requests"] > status_reads_at_kill  # the new triggerer did the polling
    created = {t["task_id"] for t in emulator.tasks()}
    reported = {r["task_id"] for r in _results(cluster, dag_id, run_id).values() if r["status"] == "SUCCESS"}
    assert reported == created and len(created) == TRIGGERER_KILL_N


def test_task_process_killed_after_paying_reattaches_on_retry(realproc: RealprocEnv) -> None:
    cluster = realproc.cluster
    emulator = realproc.emulators["seedance_reattach"]
    dag_id = "realproc_worker_kill"
    modes = ("blocking", "deferrable")
    # Each task's first status read (right after it submitted and recorded the id) hangs.
    emulator.add_faults({"endpoint": "status", "fault": "slow", "times": len(modes), "delay": 120})
    run_id = _start_run(cluster, dag_id)

    def hanging() -> list[dict[str, Any]] | None:
        ledger = emulator.ledger()
        tis = cluster.task_instances(dag_id, run_id)
        running = [ti for ti in tis if ti["state"] == "running" and ti["try_number"] == 1]
        if ledger["status_requests"] == len(modes) and len(running) == len(modes):
            return running
        return None

    running = cluster.wait_until(hanging, timeout=120, what="both tasks hanging after submitting")
    assert emulator.ledger()["generate_requests"] == len(modes)
    for ti in running:
        [process] = cluster.task_processes(ti["id"])
        process.kill()  # SIGKILL: no finally, no on_kill, no chance to report anything
        process.wait(timeout=30)

    run = cluster.wait_for_run(dag_id, run_id, timeout=180)
    if run["state"] == "failed" and AIRFLOW_VERSION < (3, 2):
        # Airflow 3.1 fails a SIGKILLed task without using its retries. The user's way back is
        # to clear it, which is the same re-attach path: the new try must not pay again.
        tis = {ti["task_id"]: ti for ti in cluster.task_instances(dag_id, run_id)}
        assert {m: tis[m]["state"] for m in modes} == {m: "failed" for m in modes}
        cluster.api(
            "POST",
            f"/dags/{dag_id}/clearTaskInstances",
            json_body={"dry_run": False, "dag_run_id": run_id, "task_ids": list(modes), "only_failed": True},
        )
        run = cluster.wait_for_run(dag_id, run_id, timeout=180)
    assert run["state"] == "success"
    tis = {ti["task_id"]: ti for ti in cluster.task_instances(dag_id, run_id)}
    assert {m: (tis[m]["state"], tis[m]["try_number"]) for m in modes} == {m: ("success", 2) for m in modes}

    created = {t["task_id"]: t for t in emulator.tasks()}
    assert emulator.ledger()["generate_requests"] == len(modes) == len(created)
    results = _results(cluster, dag_id, run_id)
    assert {results[(m, -1)]["task_id"] for m in modes} == set(created)
    for mode in modes:
        seedance_id = results[(mode, -1)]["task_id"]
        assert results[(mode, -1)]["status"] == "SUCCESS"
        assert results[(mode, -1)]["consumed_credits"] == created[seedance_id]["price"]
        second_try = cluster.logs_folder / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={mode}"
        log_text = (second_try / "attempt=2.log").read_text(encoding="utf-8")
        assert f"Re-attaching to Seedance task {seedance_id}" in log_text
