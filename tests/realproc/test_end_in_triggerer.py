"""``end_in_triggerer=True`` in real Airflow (scheduler, triggerer, LocalExecutor, emulator):
mapped deferrable generations end in the triggerer after one worker start instead of two, and
leave what today's path leaves: the same XComs, a working extra link, the same gallery cards,
and a clear after success re-attaches without paying again.

``dag.test()`` cannot show this: it runs a trigger in-process and hands any event to the
worker's ``execute_complete``; only a real triggerer ends a task with a ``TaskSuccessEvent``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_seedance.plugins.queries import decode_xcom
from tests.airflow_processes import AirflowCluster
from tests.realproc.conftest import RealprocEnv, worker_starts
from tests.realproc.dags.realproc_dags import END_IN_TRIGGERER_PROMPTS

pytestmark = pytest.mark.realproc

DAG_ID = "realproc_end_in_triggerer"
TASKS = {"worker": "ends_in_worker", "triggerer": "ends_in_triggerer"}
KEYS = {"return_value", "seedance_result", "seedance_link", "seedance_task_id", "_link_SeedanceVideoLink"}


def xcoms(cluster: AirflowCluster, run_id: str, task_id: str, map_index: int) -> dict[str, Any]:
    rows = cluster.sql(
        "SELECT key, value FROM xcom WHERE dag_id=? AND run_id=? AND task_id=? AND map_index=?",
        (DAG_ID, run_id, task_id, map_index),
    )
    # As the gallery reads them: Airflow stores the XComs of a task-end event JSON-encoded once
    # more than the task runner's (every reader, the task SDK's included, decodes both).
    return {r["key"]: decode_xcom(r["value"]) for r in rows}


def same_shape(value: Any, ids: dict[str, str]) -> Any:
    """``value`` with each generation's own ids and URLs replaced by a placeholder."""
    text = json.dumps(value, sort_keys=True)
    for real, placeholder in ids.items():
        text = text.replace(real, placeholder)
    return json.loads(text)


def test_mapped_generations_end_in_the_triggerer_after_one_worker_start_leaving_the_same_xcoms(
    realproc: RealprocEnv, tmp_path: Path
) -> None:
    cluster, emulator = realproc.cluster, realproc.emulators["seedance_endtrig"]
    cluster.wait_for_dag(DAG_ID)
    cluster.unpause(DAG_ID)
    n = len(END_IN_TRIGGERER_PROMPTS)
    # Every generation is still rendering when its task reads it after the POST, however slow
    # the machine, so every task defers (one that read SUCCESS would end on its first start).
    emulator.hold()
    try:
        run_id = cluster.trigger(DAG_ID)

        def all_deferred() -> bool:
            tis = [ti for ti in cluster.task_instances(DAG_ID, run_id) if ti["task_id"] in TASKS.values()]
            return len(tis) == 2 * n and all(ti["state"] == "deferred" for ti in tis)

        cluster.wait_until(all_deferred, timeout=300, what=f"{2 * n} deferred generations")
    finally:
        emulator.hold(False)  # each trigger's first poll comes RACE_SAFE_POLL after deferring
    run = cluster.wait_for_run(DAG_ID, run_id, timeout=300)
    assert run["state"] == "success", cluster.task_instances(DAG_ID, run_id)
    assert emulator.ledger()["generate_requests"] == 2 * n

    for index in range(n):
        # Today's path starts a worker twice (submit and defer; resume); the new one once.
        assert worker_starts(cluster, DAG_ID, run_id, TASKS["worker"], index, 1) == 2
        assert worker_starts(cluster, DAG_ID, run_id, TASKS["triggerer"], index, 1) == 1
        found = {where: xcoms(cluster, run_id, task, index) for where, task in TASKS.items()}
        assert set(found["worker"]) == set(found["triggerer"]) == KEYS
        shapes = {}
        for where, values in found.items():
            generation = values["seedance_task_id"]
            url = values["return_value"]["video_url"]
            created_at = values["return_value"].get("created_at")
            ids = {generation: "<generation>", url: "<url>", TASKS[where]: "<airflow task>"}
            if created_at:
                ids[str(created_at)] = "<created>"
            shapes[where] = same_shape(values, ids)
        assert shapes["triggerer"] == shapes["worker"]
        result = found["triggerer"]["return_value"]
        assert result["outcome"] == "succeeded" and result["consumed_credits"] == 8
        assert result["request"]["prompt"] == END_IN_TRIGGERER_PROMPTS[index]

    # A downstream task reads the results ended in the triggerer as it reads the others.
    for where in TASKS:
        assert xcoms(cluster, run_id, f"credits_of_{where}", -1)["return_value"] == 8 * n

    # The extra link and the gallery read the same XComs.
    links = cluster.api(
        "GET",
        f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASKS['triggerer']}/links",
        params={"map_index": 0},
    )
    assert any(url for url in links.values()), links
    gallery = requests.get(
        f"{cluster.base_url}/seedance/api/generations",
        params={"dag_id": DAG_ID, "run_id": run_id, "task_id": TASKS["triggerer"], "limit": 10},
        headers={"Authorization": f"Bearer {cluster.token()}"},
        timeout=30,
    )
    gallery.raise_for_status()
    cards = gallery.json()["items"]
    assert sorted(int(c["map_index"]) for c in cards) == list(range(n))
    assert {c["outcome"] for c in cards} == {"succeeded"}

    # A clear after success re-attaches to the recorded generation: nothing is paid again.
    paid = [xcoms(cluster, run_id, TASKS["triggerer"], i)["seedance_task_id"] for i in range(n)]
    cluster.api(
        "POST",
        f"/dags/{DAG_ID}/clearTaskInstances",
        json_body={"dry_run": False, "dag_run_id": run_id, "task_ids": [TASKS["triggerer"]]},
    )
    run = cluster.wait_for_run(DAG_ID, run_id, timeout=300)
    assert run["state"] == "success"
    assert emulator.ledger()["generate_requests"] == 2 * n
    again = [xcoms(cluster, run_id, TASKS["triggerer"], i)["return_value"]["task_id"] for i in range(n)]
    assert again == paid
