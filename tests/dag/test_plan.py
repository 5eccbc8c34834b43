"""``seedance-plan`` on real DAG files: what runs would spend, and that planning spends nothing.

The catalog backfill is planned over a range where some videos already exist, then the
runs are executed with ``dag.test()`` against the emulator process: the credits the
emulator charged must equal the plan, and the plan itself must have made no request.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pendulum
import pytest

from airflow_provider_seedance import plan
from tests.dag_support import EXAMPLES, run_dag

pytestmark = pytest.mark.dag

#: A complete-looking MP4 head (what the delivery check accepts as an existing video).
MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 64


def run_plan(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    capsys.readouterr()  # what earlier steps printed is not the plan
    code = plan.main([*args, "--dags-folder", str(EXAMPLES), "--json"])
    return code, json.loads(capsys.readouterr().out)


def requests_seen(emulator) -> tuple[int, int, int]:
    ledger = emulator.ledger()
    return ledger["generate_requests"], ledger["status_requests"], ledger["video_requests"]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_catalog_backfill_plan_equals_what_the_runs_then_charge(
    dag_env, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("SEEDANCE_OUTPUT_DIR", f"file://{tmp_path}")
    # The middle date was already run: its two videos exist.
    first = run_dag(
        EXAMPLES, "seedance_catalog_backfill", logical_date=pendulum.datetime(2026, 3, 3, tz="UTC")
    )
    assert first.state == "success"
    before_requests, before_files = requests_seen(dag_env), snapshot(tmp_path)
    charged_before = dag_env.ledger()["accounts"]

    code, planned = run_plan(
        "seedance_catalog_backfill",
        "--from-date",
        "2026-03-02",
        "--to-date",
        "2026-03-04",
        "--run-upstream",
        capsys=capsys,
    )

    assert code == 0
    assert requests_seen(dag_env) == before_requests  # planning sent nothing to Seedance
    assert snapshot(tmp_path) == before_files  # and wrote nothing
    [task] = planned["tasks"]
    assert (task["task_id"], task["runs"], task["generations_to_create"], task["reused"]) == (
        "animate_product",
        3,
        3,
        2,
    )
    assert planned["total"] == {
        "generations_to_create": 3,
        "reused": 2,
        "credits": 42,
        "usd": "$0.21",
        "complete": True,
    }
    to_create = sorted(Path(i["output_path"]).name for i in planned["items"] if not i["reused"])
    assert to_create == ["AUR-001.mp4", "BRZ-114.mp4", "ELM-412.mp4"]

    # Now run the range for real: what the emulator charges is what the plan said. (The
    # middle date runs again an hour later: a second run of an existing logical date.)
    for when in ((2, 0), (3, 1), (4, 0)):
        day = pendulum.datetime(2026, 3, when[0], when[1], tz="UTC")
        assert run_dag(EXAMPLES, "seedance_catalog_backfill", logical_date=day).state == "success"
    after = dag_env.ledger()
    charged = sum(a["charged"] for a in after["accounts"].values()) - sum(
        a["charged"] for a in charged_before.values()
    )
    assert charged == planned["total"]["credits"]
    assert after["generate_requests"] - before_requests[0] == planned["total"]["generations_to_create"]


def test_without_run_upstream_the_catalog_is_known_only_at_run_time_with_its_bound(
    airflow_db, capsys
) -> None:
    code, planned = run_plan(
        "seedance_catalog_backfill",
        "--from-date",
        "2026-03-02",
        "--to-date",
        "2026-03-04",
        "--max-credits",
        "1000",
        capsys=capsys,
    )
    assert code == 3  # incomplete: CI must not take it for "0 credits"
    [task] = planned["tasks"]
    assert task["generations_to_create"] == 0 and task["max_credits"] == 14
    assert [u["logical_date"][:10] for u in task["known_at_run_time_only"]] == [
        "2026-03-02",
        "2026-03-03",
        "2026-03-04",
    ]
    assert "products_for" in task["known_at_run_time_only"][0]["why"]
    assert planned["total"]["complete"] is False


def test_table_names_the_bound_and_the_upstream_task(airflow_db) -> None:
    command = [
        str(Path(sys.executable).with_name("seedance-plan")),
        "seedance_catalog_backfill",
        "--dags-folder",
        str(EXAMPLES),
        "--from-date",
        "2026-03-02",
        "--to-date",
        "2026-03-04",
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    assert "seedance-plan: seedance_catalog_backfill, 3 run(s) (2026-03-02 .. 2026-03-04)" in out
    assert "Known only at run time: animate_product in 3 runs" in out
    assert "--run-upstream" in out and "At most 14 credits ($0.07) per generation" in out
    assert out.rstrip().endswith("Nothing was generated or written.")


def test_batch_items_are_counted_and_each_destination_checked(airflow_db, tmp_path, capsys) -> None:
    day = tmp_path / "2026-03-05"
    day.mkdir()
    (day / "kettle.mp4").write_bytes(MP4)  # the 42-credit item already exists
    (day / "bag.mp4").write_bytes(b"<html>not a video</html>")  # junk is not a video: generated again
    conf = json.dumps({"output_dir": f"file://{tmp_path}"})
    code, planned = run_plan(
        "seedance_plan_scenarios", "--dates", "2026-03-05", "--conf", conf, capsys=capsys
    )
    assert code == 0  # a report, not a crash: the other tasks are still planned
    assert code == 0
    tasks = {t["task_id"]: t for t in planned["tasks"]}
    batch = tasks["catalog_batch"]
    assert (batch["generations_to_create"], batch["reused"], batch["credits"]) == (2, 1, 14 + 8)
    items = {i["label"]: i for i in planned["items"] if i["task_id"] == "catalog_batch"}
    assert items["catalog_batch[kettle]"]["reused"] is True
    assert items["catalog_batch[bag]"]["output_path"].endswith("2026-03-05/bag.mp4")
    assert tasks["daily_teaser"]["credits"] == 14
    assert planned["largest_items"][0]["label"] == "catalog_batch[lamp]"  # 14 credits, before "daily_teaser"


def test_a_template_reading_an_upstream_xcom_is_reported_with_max_credits(airflow_db, capsys) -> None:
    code, planned = run_plan("seedance_plan_scenarios", "--dates", "2026-03-05", capsys=capsys)
    task = {t["task_id"]: t for t in planned["tasks"]}["from_upstream_xcom"]
    assert task["generations_to_create"] == 0 and task["max_credits"] == 28
    [unknown] = task["known_at_run_time_only"]
    assert "ti.xcom_pull" in unknown["why"]
    assert planned["total"]["complete"] is False and code == 0


def test_a_run_that_would_fail_before_sending_is_named_with_field_and_value(airflow_db, capsys) -> None:
    conf = json.dumps({"aspect_ratio": "5:4"})
    code, planned = run_plan(
        "seedance_plan_scenarios", "--dates", "2026-03-05", "--conf", conf, capsys=capsys
    )
    assert code == 0  # a report, not a crash: the other tasks are still planned
    teaser = {t["task_id"]: t for t in planned["tasks"]}["daily_teaser"]
    [failure] = teaser["would_fail_before_sending"]
    assert "aspect_ratio" in failure["error"] and "5:4" in failure["error"] and "16:9" in failure["error"]
    assert teaser["generations_to_create"] == 0


def test_mapped_literal_lists_are_expanded_without_running_anything(airflow_db, capsys) -> None:
    code, planned = run_plan("seedance_social_clips", "--dates", "2026-03-01", capsys=capsys)
    assert code == 0
    [task] = planned["tasks"]
    assert task["generations_to_create"] == 3 and planned["total"]["complete"] is True
    assert planned["total"]["credits"] == 3 * 8  # 480p, 4 s: 8 credits each (the guide's table)
    assert [i["label"] for i in planned["items"]] == ["social_clip[0]", "social_clip[1]", "social_clip[2]"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from-date", "2026-03-04", "--to-date", "2026-03-02"], "is after --to-date"),
        (["--dates", "2026-03-02", "--from-date", "2026-03-01"], "either --dates or"),
        ([], "give the runs to plan"),
        (["--dates", "yesterday-ish"], "not a date"),
        (["--dates", "2026-03-02", "--conf", "[1]"], "must be a JSON object"),
    ],
)
def test_bad_arguments_are_refused_with_the_reason(args, message, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        plan.main(["seedance_catalog_backfill", "--dags-folder", str(EXAMPLES), *args])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_a_range_over_an_unscheduled_dag_asks_for_dates(airflow_db) -> None:
    with pytest.raises(SystemExit) as exited:
        plan.main(
            [
                "seedance_social_clips",
                "--dags-folder",
                str(EXAMPLES),
                "--from-date",
                "2026-03-01",
                "--to-date",
                "2026-03-09",
            ]
        )
    assert "no scheduled run" in str(exited.value.code) and "--dates" in str(exited.value.code)


def test_an_unknown_dag_lists_the_dags_found(airflow_db) -> None:
    with pytest.raises(SystemExit) as exited:
        plan.main(["no_such_dag", "--dags-folder", str(EXAMPLES), "--dates", "2026-03-02"])
    assert "no DAG 'no_such_dag'" in str(exited.value.code)
    assert "seedance_catalog_backfill" in str(exited.value.code)
