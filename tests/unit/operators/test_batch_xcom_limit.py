"""When the batch operator keeps its results in XCom and when it writes them to a file.

The promises: a batch of at most ``xcom_results_limit`` items keeps today's small form
(``{"results", "totals"}``, nothing written); one item more writes every item's result as one
JSON line next to the videos (or at ``results_path``) and XCom holds the totals, a manifest of
that file and a marked sample; ``0`` always writes the file, ``None`` never; with no place to
write, the small form is kept and a warning says how to bound the XCom; the failure XCom
``seedance_batch_results`` follows the same rule; a bad limit fails before any HTTP call.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_seedance.batch_results import load_batch_results
from airflow_provider_seedance.exceptions import SeedanceBatchFailedError, SeedanceValidationError
from airflow_provider_seedance.operators.batch import XCOM_BATCH_RESULTS, SeedanceBatchGenerateOperator
from tests.unit.fakes import FakeHook, Store, context, use

ITEMS = [{"id": f"sku-{n}", "prompt": f"item {n}", "resolution": "480p", "duration": 4} for n in range(4)]


def batch(
    hook: FakeHook, items: list[dict[str, Any]] = ITEMS, **kwargs: Any
) -> SeedanceBatchGenerateOperator:
    kwargs.setdefault("deferrable", False)
    kwargs.setdefault("poll_interval", 0.001)
    return use(SeedanceBatchGenerateOperator(task_id="batch", requests=items, **kwargs), hook)


def files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.results.jsonl"))


def test_a_batch_of_exactly_the_limit_keeps_every_result_inline_and_writes_nothing(tmp_path: Path) -> None:
    outcome = batch(FakeHook(), xcom_results_limit=4, results_path=str(tmp_path)).execute(context(Store()))
    assert set(outcome) == {"results", "totals"}
    assert [r["id"] for r in outcome["results"]] == ["sku-0", "sku-1", "sku-2", "sku-3"]
    assert list(tmp_path.iterdir()) == []


def test_one_item_over_the_limit_writes_every_result_as_a_json_line_and_xcom_holds_a_manifest(
    tmp_path: Path,
) -> None:
    inline = batch(FakeHook(), xcom_results_limit=None).execute(context(Store()))
    outcome = batch(FakeHook(), xcom_results_limit=3, results_path=str(tmp_path)).execute(context(Store()))
    [written] = files(tmp_path)
    lines = written.read_bytes().splitlines()
    assert [json.loads(line) for line in lines] == inline["results"]
    manifest = outcome["results_manifest"]
    assert manifest["path"] == str(written) or manifest["path"] == f"file://{written}"
    assert manifest["items"] == 4 and manifest["bytes"] == written.stat().st_size
    assert manifest["schema"] == inline["results"][0]["schema"]
    assert outcome["totals"] == inline["totals"]
    # The sample never holds more than the limit: here the first failed (none) and first other.
    assert outcome["results_sample"] is True and outcome["results"] == inline["results"][:1]
    assert [r.to_xcom() for r in load_batch_results(outcome)] == inline["results"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_limit_zero_writes_the_file_even_for_one_item(tmp_path: Path) -> None:
    outcome = batch(FakeHook(), ITEMS[:1], xcom_results_limit=0, results_path=str(tmp_path)).execute(
        context(Store())
    )
    assert outcome["results_manifest"]["items"] == 1
    assert len(files(tmp_path)) == 1


def test_limit_none_never_writes_a_file_and_never_warns(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    many = [{**ITEMS[0], "id": f"sku-{n}"} for n in range(1_001)]
    outcome = batch(
        FakeHook(), many, xcom_results_limit=None, results_path=str(tmp_path), max_in_flight=8
    ).execute(context(Store()))
    assert len(outcome["results"]) == 1_001 and "results_manifest" not in outcome
    assert files(tmp_path) == []
    assert "xcom_results_limit" not in capfd.readouterr().out


def test_the_default_limit_is_a_thousand_items() -> None:
    assert SeedanceBatchGenerateOperator(task_id="b", requests=ITEMS).xcom_results_limit == 1_000


def test_over_the_limit_without_a_location_keeps_the_results_inline_and_says_how_to_bound_them(
    capfd: pytest.CaptureFixture[str],
) -> None:
    outcome = batch(FakeHook(), xcom_results_limit=2).execute(context(Store()))
    assert set(outcome) == {"results", "totals"} and len(outcome["results"]) == 4
    out = capfd.readouterr().out
    assert "4 results go to XCom whole (more than xcom_results_limit=2)" in out
    assert "set results_path" in out


def test_the_results_file_goes_next_to_the_videos_by_default(tmp_path: Path) -> None:
    (tmp_path / "videos").mkdir()  # the fake hook's delivery does not create folders
    outcome = batch(
        FakeHook(), xcom_results_limit=1, output_path_template=f"{tmp_path}/videos/{{id}}.mp4"
    ).execute(context(Store()))
    [written] = files(tmp_path / "videos")
    assert outcome["results_manifest"]["path"].endswith(str(written))
    assert sorted(p.name for p in (tmp_path / "videos").glob("*.mp4")) == [f"sku-{n}.mp4" for n in range(4)]


def test_results_path_wins_over_the_videos_folder(tmp_path: Path) -> None:
    (tmp_path / "videos").mkdir()
    batch(
        FakeHook(),
        xcom_results_limit=1,
        output_path_template=f"{tmp_path}/videos/{{id}}.mp4",
        results_path=str(tmp_path / "results"),
    ).execute(context(Store()))
    assert len(files(tmp_path / "results")) == 1 and files(tmp_path / "videos") == []


def test_the_failure_xcom_is_bounded_the_same_way(tmp_path: Path) -> None:
    ctx = context(Store())
    hook = FakeHook(statuses={"gen-2": ["FAILED"]})
    with pytest.raises(SeedanceBatchFailedError):
        batch(hook, xcom_results_limit=3, results_path=str(tmp_path)).execute(ctx)
    pushed = ctx["ti"].xcoms[XCOM_BATCH_RESULTS]
    assert pushed["results_manifest"]["items"] == 4 and pushed["totals"]["failed"] == 1
    assert [r.outcome.value for r in load_batch_results(pushed)] == [
        "succeeded",
        "generation_failed",
        "succeeded",
        "succeeded",
    ]


@pytest.mark.parametrize("limit", [-1, True, "3", 2.5])
def test_a_bad_limit_is_refused_when_the_task_is_defined(limit: Any) -> None:
    with pytest.raises(SeedanceValidationError) as info:
        SeedanceBatchGenerateOperator(task_id="b", requests=ITEMS, xcom_results_limit=limit)
    assert str(info.value).startswith("Invalid xcom_results_limit: ")
    assert "a whole number >= 0, or None" in str(info.value)


def test_each_task_instance_try_writes_its_own_results_file(tmp_path: Path) -> None:
    # Another run, another map index or another try of the same task never overwrites a file.
    names = []
    for run_id, map_index, try_number in [
        ("run_a", -1, 1),
        ("run_b", -1, 1),
        ("run_a", 3, 1),
        ("run_a", -1, 2),
    ]:
        ctx = context(Store())
        ctx["ti"].run_id, ctx["ti"].map_index, ctx["ti"].try_number = run_id, map_index, try_number
        outcome = batch(FakeHook(), xcom_results_limit=0, results_path=str(tmp_path)).execute(ctx)
        names.append(Path(outcome["results_manifest"]["path"]).name)
    assert len(set(names)) == 4 and len(files(tmp_path)) == 4
    assert all("run_" in name for name in names) and "__3__" in names[2] and "try2" in names[3]
