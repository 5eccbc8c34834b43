"""Red team (s4-review): plans that disagree with what the run would do. Expected to fail on
main until seedance-plan is fixed; each test names the run-time behaviour the plan misses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_seedance import plan

pytestmark = pytest.mark.dag

DAGS = Path(__file__).with_name("redteam_plan_dags")


def planned(dag_id: str, capsys: pytest.CaptureFixture[str]) -> dict:
    capsys.readouterr()
    code = plan.main([dag_id, "--dags-folder", str(DAGS), "--dates", "2026-03-02", "--json"])
    assert code == 0
    return json.loads(capsys.readouterr().out)


def test_task_level_params_are_rendered_as_the_worker_renders_them(airflow_db, capsys) -> None:
    # Airflow's process_params merges DAG params, then the task's own params, then the conf.
    tasks = {t["task_id"]: t for t in planned("params", capsys)["tasks"]}
    assert tasks["t"]["credits"] == 42  # duration 12 (task params), not the DAG's 4


def test_a_task_over_its_max_credits_would_fail_before_sending_and_spend_nothing(airflow_db, capsys) -> None:
    result = planned("budget", capsys)
    tasks = {t["task_id"]: t for t in result["tasks"]}
    assert tasks["g"]["would_fail_before_sending"] and tasks["g"]["credits"] == 0
    assert tasks["b"]["would_fail_before_sending"] and tasks["b"]["credits"] == 0


def test_a_mapped_task_group_is_planned_not_crashed(airflow_db, capsys) -> None:
    [task] = planned("mtg", capsys)["tasks"]
    assert task["generations_to_create"] == 3 or task["known_at_run_time_only"]


def test_json_stdout_stays_json_when_airflow_logs_a_template_error(airflow_db) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "airflow_provider_seedance.plan",
            "plainx",
            "--dags-folder",
            str(DAGS),
            "--dates",
            "2026-03-02",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=os.environ,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    json.loads(done.stdout)
