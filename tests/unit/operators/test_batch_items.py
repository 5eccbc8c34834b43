"""How the batch operator reads its ``requests`` into items (``build_items``), with a fake hook.

The promises: every item is validated before any HTTP call and a bad one names its index;
each item has its own destination (its ``output_path``, else the template filled with its
fields, ``{index}`` and ``{id}``); identical requests are distinct videos; and a retried try
re-attaches each item to its own generation even when the list was reordered, as long as the
items carry an ``id`` or a destination.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_seedance.exceptions import SeedanceConfigurationError, SeedanceValidationError
from airflow_provider_seedance.hooks.delivery import as_storage_path
from airflow_provider_seedance.operators.batch import SeedanceBatchGenerateOperator
from tests.unit.fakes import FakeHook, Store, context, use


def item(prompt: str = "a fox", **extra: Any) -> dict[str, Any]:
    return {"prompt": prompt, "resolution": "480p", "duration": 4, **extra}


def batch(hook: FakeHook, requests: Any, **kwargs: Any) -> SeedanceBatchGenerateOperator:
    operator = SeedanceBatchGenerateOperator(
        task_id="batch", requests=requests, deferrable=False, poll_interval=0.001, max_in_flight=1, **kwargs
    )
    return use(operator, hook)


def shown(path: Path) -> str:
    return str(as_storage_path(str(path)))


@pytest.mark.parametrize("requests", [{"prompt": "a fox"}, "a fox", 42], ids=["dict", "str", "int"])
def test_requests_that_are_not_a_list_are_refused_before_any_call(requests: Any) -> None:
    hook = FakeHook()
    with pytest.raises(SeedanceValidationError) as info:
        batch(hook, requests).execute(context(Store()))
    assert (info.value.field, info.value.value, info.value.allowed) == (
        "requests",
        requests,
        "a list of request dicts",
    )
    assert hook.posts == []


def test_an_item_that_is_not_a_dict_is_named_by_its_index() -> None:
    hook = FakeHook()
    with pytest.raises(SeedanceValidationError) as info:
        batch(hook, [item(), "a wolf"]).execute(context(Store()))
    assert (info.value.field, info.value.value) == ("request", "a wolf")
    assert info.value.allowed == "a dict with at least a 'prompt'"
    assert str(info.value).startswith("Invalid requests[1].request: 'a wolf'.")
    assert hook.posts == []


def test_a_bad_field_in_a_later_item_stops_the_whole_batch_before_any_post() -> None:
    hook = FakeHook()
    with pytest.raises(SeedanceValidationError, match=r"^Invalid requests\[2\]\.resolution: '4k'"):
        batch(hook, [item("a"), item("b"), item("c", resolution="4k")]).execute(context(Store()))
    assert hook.posts == []


def test_each_item_goes_to_its_own_output_path_or_the_filled_template(tmp_path: Path) -> None:
    template = str(tmp_path / "{id}-{index}-{resolution}.mp4")
    explicit = tmp_path / "chosen.mp4"
    requests = [
        item("a", id="intro"),
        item("b"),
        item("c", output_path=str(explicit)),
        item("d", output_path=""),
    ]

    outcome = batch(FakeHook(), requests, output_path_template=template).execute(context(Store()))

    assert [r["output_path"] for r in outcome["results"]] == [
        shown(tmp_path / "intro-0-480p.mp4"),
        shown(tmp_path / "1-1-480p.mp4"),
        shown(explicit),
        shown(tmp_path / "3-3-480p.mp4"),
    ]
    assert [r.get("id") for r in outcome["results"]] == ["intro", None, None, None]


def test_without_a_template_or_output_path_nothing_is_delivered() -> None:
    hook = FakeHook()
    outcome = batch(hook, [item()]).execute(context(Store()))
    assert hook.downloads == [] and "output_path" not in outcome["results"][0]


def test_a_template_naming_an_unknown_field_is_refused_naming_the_fields_it_may_use() -> None:
    hook = FakeHook()
    with pytest.raises(SeedanceValidationError) as info:
        batch(hook, [item()], output_path_template="/videos/{colour}.mp4").execute(context(Store()))
    err = info.value
    assert err.field == "output_path_template" and err.value == "/videos/{colour}.mp4"
    assert "a template whose fields are among [" in err.allowed and "'index'" in err.allowed
    assert "'colour'" in err.allowed
    assert str(err).startswith("Invalid requests[0].output_path_template:")
    assert hook.posts == []


def test_identical_requests_are_distinct_videos() -> None:
    hook = FakeHook()
    outcome = batch(hook, [item(), item(), item()]).execute(context(Store()))
    assert len(hook.posts) == 3
    assert [r["task_id"] for r in outcome["results"]] == ["gen-1", "gen-2", "gen-3"]


def test_a_retry_of_identical_requests_re_attaches_each_to_its_own_generation() -> None:
    store, hook = Store(), FakeHook()
    batch(hook, [item(), item()], wait_for_completion=False).execute(context(store))

    again = batch(hook, [item(), item()]).execute(context(store))

    assert len(hook.posts) == 2
    assert [r["task_id"] for r in again["results"]] == ["gen-1", "gen-2"]


@pytest.mark.parametrize("naming", ["id", "output_path"])
def test_a_reordered_list_re_attaches_each_named_item_to_its_own_generation(
    naming: str, tmp_path: Path
) -> None:
    def named(label: str) -> dict[str, Any]:
        if naming == "id":
            return item(id=label)
        return item(output_path=str(tmp_path / f"{label}.mp4"))

    store, hook = Store(), FakeHook()
    batch(hook, [named("first"), named("second")], wait_for_completion=False).execute(context(store))

    again = batch(hook, [named("second"), named("first")]).execute(context(store))

    assert len(hook.posts) == 2, "a reordered list pays for nothing again"
    assert [r["task_id"] for r in again["results"]] == ["gen-2", "gen-1"]


def test_items_with_the_same_id_and_request_are_still_distinct() -> None:
    hook = FakeHook()
    outcome = batch(hook, [item(id="x"), item(id="x")]).execute(context(Store()))
    assert len(hook.posts) == 2 and [r["id"] for r in outcome["results"]] == ["x", "x"]


def test_a_destination_that_cannot_be_written_is_refused_before_any_post_naming_where_it_came_from(
    tmp_path: Path,
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    under_a_file = f"file://{tmp_path}/a-file"
    hook = FakeHook()

    with pytest.raises(SeedanceConfigurationError) as from_template:
        batch(hook, [item(id="a")], output_path_template=under_a_file + "/{id}.mp4").execute(context(Store()))
    with pytest.raises(SeedanceConfigurationError) as from_item:
        batch(hook, [item(), item("a wolf", output_path=under_a_file + "/wolf.mp4")]).execute(
            context(Store())
        )

    assert str(from_template.value).startswith(
        f"output_path_template {under_a_file + '/{id}.mp4'!r} for requests[0]: {under_a_file + '/a.mp4'!r} "
        "cannot be written: NotADirectoryError:"
    )
    assert str(from_item.value).startswith(
        f"requests[1].output_path {under_a_file + '/wolf.mp4'!r} cannot be"
    )
    assert str(from_item.value).endswith("; nothing was sent.")
    assert hook.posts == []


def test_before_any_post_each_local_destination_folder_is_created(tmp_path: Path) -> None:
    hook = FakeHook()
    operator = batch(hook, [item(id="a"), item("a wolf", output_path=str(tmp_path / "own" / "wolf.mp4"))])
    operator.output_path_template = str(tmp_path / "tpl" / "{id}.mp4")

    operator.check_destinations(operator.build_items())

    assert (tmp_path / "tpl").is_dir() and (tmp_path / "own").is_dir()
    assert hook.posts == []
