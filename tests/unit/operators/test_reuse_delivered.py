"""A video already at the destination is never paid for again (``skip_if_exists``).

The promises: with ``output_path`` set, a complete video already there is returned with no
POST and 0 credits (``reused_existing``); anything that is not a video there (junk, an HTML
page, nothing) does not count; ``skip_if_exists=False`` always generates; and after a clear
that follows a delivery, the video an earlier try of this task instance paid for keeps that
generation (its id and credits, counted once) instead of being reported as a free reuse.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_seedance.exceptions import SeedanceConfigurationError
from airflow_provider_seedance.hooks.delivery import as_storage_path
from airflow_provider_seedance.operators.batch import SeedanceBatchGenerateOperator
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator
from airflow_provider_seedance.task_support import XCOM_LINK, XCOM_RESULT
from tests.unit.fakes import MP4, FakeHook, Store, context, use

PROMPT = "a red fox in snow"
CHEAP = {"resolution": "480p", "duration": "4"}


def shown(path: Path) -> str:
    """How a result names a local destination (as an ObjectStoragePath)."""
    return str(as_storage_path(str(path)))


def single(hook: FakeHook, **kwargs: Any) -> SeedanceGenerateOperator:
    kwargs.setdefault("prompt", PROMPT)
    kwargs.update(CHEAP)
    return use(
        SeedanceGenerateOperator(task_id="generate", deferrable=False, poll_interval=0.001, **kwargs), hook
    )


def test_a_video_already_at_the_destination_is_returned_without_a_post(tmp_path: Path) -> None:
    target = tmp_path / "fox.mp4"
    target.write_bytes(MP4)
    hook = FakeHook()
    ctx = context(Store())

    result = single(hook, output_path=str(target)).execute(ctx)

    assert hook.posts == [] and hook.reads == []
    assert result["outcome"] == "reused" and result["reused_existing"] is True
    assert result["consumed_credits"] == 0 and result["task_id"] is None
    assert result["output_path"] == shown(target) and result["bytes"] == len(MP4)
    assert result["request"]["prompt"] == PROMPT
    assert ctx["ti"].xcoms[XCOM_LINK] == {"output_path": shown(target)}


@pytest.mark.parametrize(
    "content", [b"", b"<html>expired</html>", b"junk" * 40], ids=["empty", "html", "junk"]
)
def test_something_that_is_not_a_video_at_the_destination_does_not_count(
    tmp_path: Path, content: bytes
) -> None:
    target = tmp_path / "fox.mp4"
    target.write_bytes(content)
    hook = FakeHook()

    result = single(hook, output_path=str(target)).execute(context(Store()))

    assert len(hook.posts) == 1 and result["outcome"] == "succeeded" and result["consumed_credits"] == 8
    assert target.read_bytes() == MP4, "the generated video replaced what was there"


def test_skip_if_exists_false_always_generates(tmp_path: Path) -> None:
    target = tmp_path / "fox.mp4"
    target.write_bytes(MP4)
    hook = FakeHook()

    result = single(hook, output_path=str(target), skip_if_exists=False).execute(context(Store()))

    assert len(hook.posts) == 1 and result["outcome"] == "succeeded"


def test_an_empty_output_path_means_no_destination() -> None:
    hook = FakeHook()
    result = single(hook, output_path="").execute(context(Store()))
    assert len(hook.posts) == 1 and hook.downloads == [] and "output_path" not in result


def test_a_clear_after_delivery_keeps_the_generation_an_earlier_try_paid_for(tmp_path: Path) -> None:
    target = tmp_path / "fox.mp4"
    store, hook = Store(), FakeHook()
    first = single(hook, output_path=str(target)).execute(context(store))
    assert first["task_id"] == "gen-1" and hook.downloads == ["gen-1"]

    ctx = context(store)
    again = single(hook, output_path=str(target)).execute(ctx)

    assert len(hook.posts) == 1, "the delivered video is not paid for twice"
    assert again["bytes"] == first["bytes"] == target.stat().st_size
    assert ctx["ti"].xcoms[XCOM_RESULT] == again, "the gallery's record of this try"
    assert again["outcome"] == "succeeded" and again["reused_existing"] is False
    assert again["task_id"] == "gen-1" and again["consumed_credits"] == 8
    assert again["seedance_task_ids"] == ["gen-1"]
    assert again["output_path"] == shown(target) and again["sha256"] == first["sha256"]


def test_a_clear_after_delivery_keeps_the_request_and_every_generation_the_task_paid_for(
    tmp_path: Path,
) -> None:
    target = tmp_path / "fox.mp4"
    store, hook = Store(), FakeHook(statuses={"gen-1": ["FAILED"], "gen-2": ["SUCCESS"]})
    first = single(hook, output_path=str(target), resubmit_on_failure=1).execute(context(store))
    assert first["seedance_task_ids"] == ["gen-1", "gen-2"]

    again = single(hook, output_path=str(target), resubmit_on_failure=1).execute(context(store))

    assert len(hook.posts) == 2
    assert again["task_id"] == "gen-2" and again["seedance_task_ids"] == ["gen-1", "gen-2"]
    assert again["request"] == first["request"] and again["request"]["prompt"] == PROMPT


def test_a_video_for_another_request_is_a_free_reuse_not_an_earlier_generation(tmp_path: Path) -> None:
    target = tmp_path / "fox.mp4"
    store, hook = Store(), FakeHook()
    single(hook, output_path=str(target)).execute(context(store))

    ctx = context(store)
    other = single(hook, output_path=str(target), prompt="a grey wolf").execute(ctx)

    assert len(hook.posts) == 1
    assert other["bytes"] == target.stat().st_size
    assert other["sha256"] == hashlib.sha256(target.read_bytes()).hexdigest()
    assert ctx["ti"].xcoms[XCOM_RESULT] == other, "the gallery's record of this try"
    assert other["outcome"] == "reused" and other["task_id"] is None and other["consumed_credits"] == 0


def test_a_recorded_generation_that_did_not_succeed_is_not_claimed_for_a_found_video(tmp_path: Path) -> None:
    target = tmp_path / "fox.mp4"
    store = Store()
    hook = FakeHook(statuses={"gen-1": ["FAILED"]})
    with pytest.raises(Exception, match="FAILED"):
        single(hook, output_path=str(target)).execute(context(store))
    target.write_bytes(MP4)  # put there by someone else

    result = single(hook, output_path=str(target)).execute(context(store))

    assert result["outcome"] == "reused" and result["consumed_credits"] == 0 and result["task_id"] is None


# ---------------------------------------------------------------- the batch
ITEMS = [{"prompt": f"item {n}", "resolution": "480p", "duration": 4} for n in range(2)]


def batch(hook: FakeHook, template: str, **kwargs: Any) -> SeedanceBatchGenerateOperator:
    return use(
        SeedanceBatchGenerateOperator(
            task_id="batch",
            requests=ITEMS,
            deferrable=False,
            poll_interval=0.001,
            max_in_flight=1,
            output_path_template=template,
            **kwargs,
        ),
        hook,
    )


def test_a_batch_cleared_after_delivery_keeps_each_generation_it_paid_for(tmp_path: Path) -> None:
    template = str(tmp_path / "{index}.mp4")
    store, hook = Store(), FakeHook()
    first = batch(hook, template).execute(context(store))
    assert [r["task_id"] for r in first["results"]] == ["gen-1", "gen-2"]

    again = batch(hook, template).execute(context(store))

    assert len(hook.posts) == 2, "delivered videos are not paid for twice"
    results = again["results"]
    assert [r["outcome"] for r in results] == ["succeeded", "succeeded"]
    assert [r["task_id"] for r in results] == ["gen-1", "gen-2"]
    assert [r["consumed_credits"] for r in results] == [8, 8]
    assert [r["index"] for r in results] == [0, 1]
    assert [r["seedance_task_ids"] for r in results] == [["gen-1"], ["gen-2"]]
    assert [r["output_path"] for r in results] == [shown(tmp_path / "0.mp4"), shown(tmp_path / "1.mp4")]
    assert all(r["bytes"] == len(MP4) and r["sha256"] for r in results)
    assert again["totals"]["credits"] == 16 and again["totals"]["reused"] == 0


def test_a_batch_video_found_for_an_item_never_generated_here_is_a_free_reuse(tmp_path: Path) -> None:
    (tmp_path / "0.mp4").write_bytes(MP4)
    hook = FakeHook()

    outcome = batch(hook, str(tmp_path / "{index}.mp4")).execute(context(Store()))

    assert [r["outcome"] for r in outcome["results"]] == ["reused", "succeeded"]
    assert outcome["results"][0]["consumed_credits"] == 0 and outcome["results"][0]["task_id"] is None
    assert len(hook.posts) == 1


def test_a_batch_item_whose_recorded_generation_failed_is_not_claimed_for_a_found_video(
    tmp_path: Path,
) -> None:
    store = Store()
    hook = FakeHook(statuses={"gen-1": ["FAILED"]})
    with pytest.raises(Exception):  # noqa: B017 - the batch fails on the FAILED item; what matters follows
        batch(hook, str(tmp_path / "{index}.mp4")).execute(context(store))
    (tmp_path / "0.mp4").write_bytes(MP4)  # put there by someone else

    outcome = batch(hook, str(tmp_path / "{index}.mp4")).execute(context(store))

    first = outcome["results"][0]
    assert first["outcome"] == "reused" and first["consumed_credits"] == 0 and first["task_id"] is None


@pytest.mark.parametrize("skip_if_exists", [None, False])
def test_an_output_path_that_cannot_be_written_fails_before_the_post_as_not_sent(
    tmp_path: Path, skip_if_exists: bool | None
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    target = tmp_path / "a-file" / "fox.mp4"
    hook = FakeHook()
    ctx = context(Store())

    with pytest.raises(SeedanceConfigurationError) as caught:
        single(hook, output_path=str(target), skip_if_exists=skip_if_exists).execute(ctx)

    assert str(caught.value).startswith(
        f"output_path {shown(target)!r} cannot be written: NotADirectoryError"
    )
    assert str(caught.value).endswith("; nothing was sent.")
    assert hook.posts == []
    assert ctx["ti"].xcoms["seedance_result"]["outcome"] == "not_sent"


def test_the_plan_reads_the_destination_without_creating_its_folder(tmp_path: Path) -> None:
    target = tmp_path / "new" / "fox.mp4"
    operator = single(FakeHook(), output_path=str(target))

    assert operator.existing_output() is None
    assert not target.parent.exists()
    assert operator.existing_output(before_post=True) is None
    assert target.parent.is_dir()
