"""The OpenLineage events of the generating operators, emitted by real Airflow (dag.test()).

The DAG runs in a child process with the OpenLineage provider enabled through
``AIRFLOW__OPENLINEAGE__TRANSPORT`` (a ``file`` transport writing JSON lines to tmp_path), so
the provider's own listener calls the operators' ``get_openlineage_facets_on_complete``.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from airflow_provider_seedance.lineage import FACET_NAME
from airflow_provider_seedance.lineage.facets import schema as facet_schema
from tests.conftest import API_KEY, REPO
from tests.dag_support import collect

pytestmark = pytest.mark.dag

#: What an OpenLineage run event must be (tests/dag/openlineage_run_event.schema.json).
EVENT_SCHEMA = json.loads((Path(__file__).with_name("openlineage_run_event.schema.json")).read_text())
FACET_SCHEMA = json.loads(facet_schema())
#: The reference image of tests/dag_fixtures/seedance_lineage_scenarios.py, as lineage names it.
IMAGE = {"namespace": "https://images.example.com", "name": "/catalog/aur-001.jpg"}


def run_with_lineage(dag_id: str, tmp_path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run ``dag_id`` with OpenLineage on; its run and every event it emitted."""
    events_file = tmp_path / "openlineage.jsonl"
    result = tmp_path / "run.json"
    out = tmp_path / "videos"
    out.mkdir()
    env = {
        **os.environ,
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events_file), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "seedance-tests",
        "AIRFLOW__OPENLINEAGE__DISABLED": "False",
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.dag.run_dag", dag_id, json.dumps({"out": str(out)}), str(result)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    run = json.loads(result.read_text())
    text = events_file.read_text() if events_file.exists() else ""
    return run, [json.loads(line) for line in text.splitlines() if line.strip()]


def check_schemas(events: list[dict[str, Any]]) -> None:
    """Every event is an OpenLineage run event; every ``seedance`` facet keeps its shipped schema."""
    events_validator = jsonschema.Draft202012Validator(
        EVENT_SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    facet_validator = jsonschema.Draft202012Validator(FACET_SCHEMA)
    # The schemas have teeth: a run id that is no UUID, a facet without its producer fail.
    broken = copy.deepcopy(events[-1])
    broken["run"]["runId"] = "run-1"
    assert not events_validator.is_valid(broken)
    broken = copy.deepcopy(events[-1])
    next(iter(broken["run"]["facets"].values())).pop("_producer")
    assert not events_validator.is_valid(broken)
    for event in events:
        events_validator.validate(event)
        facet_validator.validate(event["run"].get("facets", {}))


def task_completion(events: list[dict[str, Any]], job: str) -> dict[str, Any]:
    [complete] = [e for e in events if e["job"]["name"] == job and e["eventType"] == "COMPLETE"]
    return complete


def datasets(event: dict[str, Any], direction: str) -> list[dict[str, str]]:
    return [{"namespace": d["namespace"], "name": d["name"]} for d in event[direction]]


def assert_secret_free(tmp_path: Path) -> None:
    text = (tmp_path / "openlineage.jsonl").read_text()
    for secret in (API_KEY, "SIGNED-5ec2e7", "X-Amz"):
        assert secret not in text


def test_a_deferred_generation_reports_its_image_its_video_and_what_it_cost(dag_env, tmp_path) -> None:
    run, events = run_with_lineage("lineage_single", tmp_path)
    assert run["state"] == "success"
    [result] = collect("lineage_single", run["run_id"]).results("generate")
    complete = task_completion(events, "lineage_single.generate")
    assert datasets(complete, "inputs") == [IMAGE]
    assert datasets(complete, "outputs") == [
        {"namespace": "file", "name": str(tmp_path / "videos" / "aur-001.mp4")}
    ]
    facet = complete["run"]["facets"][FACET_NAME]
    assert facet["seedanceTaskIds"] == [result["task_id"]]
    assert facet["consumedCredits"] == result["consumed_credits"] == 8
    assert facet["requests"] == [
        {
            "prompt": "The Aurora trail running shoe rotates on a turntable",
            "resolution": "480p",
            "duration": "4",
            "image_urls": ["https://images.example.com/catalog/aur-001.jpg"],
        }
    ]
    assert facet["outcomes"] == {"succeeded": 1}
    check_schemas(events)
    assert_secret_free(tmp_path)


def test_a_batch_reports_its_catalog_images_and_videos_and_its_total(dag_env, tmp_path) -> None:
    run, events = run_with_lineage("lineage_batch", tmp_path)
    assert run["state"] == "success"
    [outcome] = collect("lineage_batch", run["run_id"]).results("batch")
    complete = task_completion(events, "lineage_batch.batch")
    # The declared catalog inlet, then the one reference image two requests share.
    assert datasets(complete, "inputs") == [{"namespace": "file", "name": "/srv/catalog/catalog.json"}, IMAGE]
    assert datasets(complete, "outputs") == [
        {"namespace": "file", "name": str(tmp_path / "videos" / f"{sku}.mp4")}
        for sku in ("aur-001", "aur-002", "brz-114")
    ]
    facet = complete["run"]["facets"][FACET_NAME]
    assert facet["seedanceTaskIds"] == [r["task_id"] for r in outcome["results"]]
    assert facet["consumedCredits"] == outcome["totals"]["credits"] == 24
    assert facet["requestCount"] == 3 and facet["outcomes"] == {"succeeded": 3}
    check_schemas(events)
    assert_secret_free(tmp_path)
