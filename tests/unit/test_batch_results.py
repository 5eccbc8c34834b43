"""Reading a batch's results back, whichever form XCom holds, and the file's own promises.

The promises: :func:`load_batch_results` returns the inline list or the file's items (checked
against the manifest's count and digest); a missing, truncated, changed or corrupt file, or a
malformed manifest, is a :class:`BatchResultsError` (a ``ResultFormatError``, so every reader
that skips unreadable records skips it), never a ``KeyError``; the file is written atomically
(nothing at the destination and no temporary left when writing fails); the sample keeps the
first 20 failed and the first 20 other items in request order; file names are sanitised.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_seedance.batch_results import (
    BatchResultsError,
    ResultsManifest,
    batch_size,
    bounded_outcome,
    default_results_path,
    load_batch_results,
    results_file_name,
    sample,
    write_results_file,
)
from airflow_provider_seedance.results import (
    SCHEMA_VERSION,
    GenerationResult,
    Outcome,
    ResultFormatError,
    batch_totals,
    results_from_xcom,
)


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str, *args: Any) -> None:
        self.lines.append(message % args)

    warning = info


def results(count: int, failed_every: int = 0) -> list[GenerationResult]:
    found = []
    for n in range(count):
        failed = failed_every and n % failed_every == 0
        found.append(
            GenerationResult(
                outcome=Outcome.GENERATION_FAILED if failed else Outcome.SUCCEEDED,
                task_id=f"gen-{n}",
                seedance_task_ids=(f"gen-{n}",),
                status="FAILED" if failed else "SUCCESS",
                consumed_credits=0 if failed else 8,
                request={"prompt": f"item {n} ✓"},
                item_id=f"sku-{n}",
                index=n,
            )
        )
    return found


def manifest_form(tmp_path: Path, count: int = 5) -> dict[str, Any]:
    items = results(count)
    return bounded_outcome(
        items, batch_totals(items), limit=0, location=str(tmp_path), name="b.results.jsonl", log=Log()
    )


def test_the_inline_form_reads_back_as_its_list() -> None:
    items = results(3)
    assert load_batch_results({"results": [r.to_xcom() for r in items], "totals": {}}) == items


def test_the_manifest_form_reads_back_every_item_from_the_file(tmp_path: Path) -> None:
    value = manifest_form(tmp_path, 5)
    assert value["results_manifest"] == {
        "path": value["results_manifest"]["path"],
        "items": 5,
        "bytes": (tmp_path / "b.results.jsonl").stat().st_size,
        "sha256": value["results_manifest"]["sha256"],
        "schema": SCHEMA_VERSION,
    }
    assert load_batch_results(value) == results(5)
    assert batch_size(value) == 5


def test_a_missing_file_is_a_typed_error_naming_the_path(tmp_path: Path) -> None:
    value = manifest_form(tmp_path)
    (tmp_path / "b.results.jsonl").unlink()
    with pytest.raises(BatchResultsError, match=r"b\.results\.jsonl cannot be read"):
        load_batch_results(value)
    assert issubclass(BatchResultsError, ResultFormatError)


def test_a_truncated_file_is_refused_by_its_item_count(tmp_path: Path) -> None:
    value = manifest_form(tmp_path)
    path = tmp_path / "b.results.jsonl"
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:4]))
    with pytest.raises(BatchResultsError, match="holds 4 results, the manifest says 5"):
        load_batch_results(value)


def test_a_changed_file_is_refused_by_its_digest(tmp_path: Path) -> None:
    value = manifest_form(tmp_path)
    path = tmp_path / "b.results.jsonl"
    path.write_text(
        path.read_text(encoding="utf-8").replace('"consumed_credits":8', '"consumed_credits":9', 1)
    )
    with pytest.raises(BatchResultsError, match="sha256 differs"):
        load_batch_results(value)


@pytest.mark.parametrize(
    ("line", "problem"), [(b"{not json\n", "is not JSON"), (b"[1, 2]\n", "is not a JSON object")]
)
def test_a_corrupt_line_is_a_typed_error_naming_the_line(tmp_path: Path, line: bytes, problem: str) -> None:
    """A file whose size and digest the manifest matches (e.g. written by other code) but whose
    third line is not a result."""
    value = manifest_form(tmp_path, 2)
    path = tmp_path / "b.results.jsonl"
    path.write_bytes(path.read_bytes() + line)
    data = path.read_bytes()
    value["results_manifest"].update(items=3, bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    with pytest.raises(BatchResultsError, match=f"line 3 {problem}"):
        load_batch_results(value)


@pytest.mark.parametrize(
    ("manifest", "problem"),
    [
        ("s3://x", "must be a JSON object"),
        ({"items": 1, "bytes": 1, "sha256": "0" * 64, "schema": 2}, "path must be a non-empty string"),
        ({"path": "/x", "bytes": 1, "sha256": "0" * 64, "schema": 2}, "items must be a whole number"),
        ({"path": "/x", "items": 1, "bytes": 1, "sha256": "zz", "schema": 2}, "sha256 must be 64"),
        ({"path": "/x", "items": 1, "bytes": 1, "sha256": "0" * 64, "schema": 99}, "schema 99 is newer"),
    ],
)
def test_a_malformed_manifest_is_a_typed_error_never_a_key_error(manifest: Any, problem: str) -> None:
    with pytest.raises(BatchResultsError, match=problem):
        load_batch_results({"totals": {}, "results": [], "results_manifest": manifest})
    with pytest.raises(BatchResultsError, match=problem):
        batch_size({"results_manifest": manifest})


def test_a_failed_write_leaves_nothing_at_the_destination_and_no_temporary(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        write_results_file(str(tmp_path), "b.results.jsonl", [{"ok": 1}, {"not json": object()}])
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_location_keeps_the_results_inline_and_says_so(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    log = Log()
    items = results(3)
    value = bounded_outcome(
        items, batch_totals(items), limit=1, location=str(blocker / "sub"), name="b.results.jsonl", log=log
    )
    assert value == {"results": [r.to_xcom() for r in items], "totals": batch_totals(items)}
    assert any("could not write the results file" in line for line in log.lines)


def test_the_sample_is_the_first_20_failed_and_the_first_20_others_in_request_order() -> None:
    items = [r.to_xcom() for r in results(200, failed_every=5)]  # failed: 0, 5, 10, ...
    kept = sample(items)
    indexes = [item["index"] for item in kept]
    assert indexes == sorted(indexes)
    failed = [i for i in indexes if i % 5 == 0]
    assert failed == list(range(0, 100, 5))
    assert [i for i in indexes if i % 5] == [n for n in range(200) if n % 5][:20]


def test_the_manifest_forms_totals_are_the_whole_batchs(tmp_path: Path) -> None:
    items = results(50, failed_every=2)
    value = bounded_outcome(
        items, batch_totals(items), limit=10, location=str(tmp_path), name="b.results.jsonl", log=Log()
    )
    assert value["totals"] == batch_totals(items) and value["totals"]["requests"] == 50
    assert value["results_sample"] is True and len(value["results"]) == 10  # 5 failed, 5 others
    assert len(json.dumps(value)) < 64 * 1024


def test_the_sample_holds_at_most_20_of_each_kind_and_never_more_than_the_limit(tmp_path: Path) -> None:
    items = results(1_001, failed_every=2)
    big = bounded_outcome(
        items, batch_totals(items), limit=1_000, location=str(tmp_path), name="a.results.jsonl", log=Log()
    )
    assert len(big["results"]) == 40
    none = bounded_outcome(
        items[:3], batch_totals(items[:3]), limit=0, location=str(tmp_path), name="b.results.jsonl", log=Log()
    )
    assert none["results"] == [] and none["results_manifest"]["items"] == 3


def test_file_names_are_sanitised_and_name_the_try() -> None:
    name = results_file_name("dag", "manual__2026-01-01T00:00:00+00:00", "grp.batch", -1, 2)
    assert name.startswith("dag__manual__2026-01-01T00_00_00_00_00__grp.batch__-1__try2.")
    assert name.endswith(".results.jsonl")
    assert "/" not in results_file_name("d/../x", "r", "t", 3, 1)


def test_task_instances_whose_ids_differ_only_where_they_were_reduced_write_different_files() -> None:
    """Run ids ``r:1``, ``r+1`` and ``r_1`` all read ``r_1`` once reduced: one batch's results
    file must not overwrite another's."""
    names = {results_file_name("d", run_id, "t", -1, 1) for run_id in ("r:1", "r+1", "r_1")}
    assert len(names) == 3
    assert results_file_name("d", "r", "t", -1, 1) != results_file_name("d", "r", "t", -1, 2)
    assert results_file_name("d", "r", "t", 0, 1) != results_file_name("d", "r", "t", 1, 1)
    assert results_file_name("d", "r", "t", -1, 1) == results_file_name("d", "r", "t", -1, 1)


def test_the_file_name_is_built_only_when_a_file_is_written(tmp_path) -> None:
    """Inline results need no name: a try whose identity cannot name a file still ends."""
    items = results(1)

    def no_name() -> str:
        raise AssertionError("the name was built for results that stay in XCom")

    inline = bounded_outcome(
        items, batch_totals(items), limit=5, location=str(tmp_path), name=no_name, log=Log()
    )
    assert len(inline["results"]) == 1 and list(tmp_path.iterdir()) == []
    big = bounded_outcome(
        items, batch_totals(items), limit=0, location=str(tmp_path), name=lambda: "x.results.jsonl", log=Log()
    )
    assert big["results_manifest"]["items"] == 1 and (tmp_path / "x.results.jsonl").exists()


@pytest.mark.parametrize(
    ("template", "folder"),
    [
        ("s3://bucket/catalog/{id}.mp4", "s3://bucket/catalog"),
        ("/data/out/{id}.mp4", "/data/out"),
        ("s3://bucket/{id}/video.mp4", None),
        ("{id}.mp4", None),
        (None, None),
    ],
)
def test_the_default_location_is_the_videos_folder_when_it_has_no_fields(
    template: str | None, folder: str | None
) -> None:
    assert default_results_path(template) == folder


def test_a_manifest_round_trips() -> None:
    manifest = ResultsManifest("file:///x.jsonl", 3, 10, "a" * 64)
    assert ResultsManifest.from_xcom(manifest.to_xcom()) == manifest


def test_the_pure_reader_refuses_a_manifest_rather_than_count_its_sample(tmp_path: Path) -> None:
    value = manifest_form(tmp_path, 5)
    with pytest.raises(ResultFormatError, match="load_batch_results"):
        results_from_xcom(value)


def test_only_results_files_are_read_and_never_past_the_manifests_size(tmp_path: Path) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("{}\n")
    manifest = {"path": str(other), "items": 1, "bytes": 3, "sha256": "0" * 64, "schema": 2}
    with pytest.raises(BatchResultsError, match=r"must name a \*\.results\.jsonl file"):
        load_batch_results({"results_manifest": manifest})
    value = manifest_form(tmp_path, 2)
    path = tmp_path / "b.results.jsonl"
    path.write_bytes(path.read_bytes() + b"x" * 10_000)  # no newline: one endless line
    with pytest.raises(BatchResultsError, match="larger than the manifest's"):
        load_batch_results(value)
