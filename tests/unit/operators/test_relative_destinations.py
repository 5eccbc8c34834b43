"""A task's destination must not depend on the worker's working directory (red team 3 of #18).

Found: ``output_path="videos/fox.mp4"`` was taken against the current directory of whichever
process ran the try. ``airflow dags test`` delivered it under the shell's directory; a retry,
a resumed deferral or a re-run in another worker process looks elsewhere, so the
already-paid video is not found (and a re-run pays again), and the Seedance page cannot
match the delivered file to the rendered relative field, so the card falls back to the
expiring service URL. A relative local destination of a task is now refused before any HTTP
call, naming the field, the value and what is allowed. (``SeedanceHook.download`` from Python
keeps resolving a relative path: there the caller's directory is the point.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_seedance.exceptions import SeedanceConfigurationError
from airflow_provider_seedance.operators.batch import SeedanceBatchGenerateOperator
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator
from tests.unit.fakes import FakeHook, Store, context, use

REQUEST = {"prompt": "a red fox in snow", "resolution": "480p", "duration": 4}


def single(hook: FakeHook, **kwargs: Any) -> SeedanceGenerateOperator:
    operator = SeedanceGenerateOperator(
        task_id="generate", deferrable=False, poll_interval=0.001, **REQUEST, **kwargs
    )
    return use(operator, hook)


def batch(hook: FakeHook, requests: list[dict[str, Any]], **kwargs: Any) -> SeedanceBatchGenerateOperator:
    operator = SeedanceBatchGenerateOperator(
        task_id="batch", requests=requests, deferrable=False, poll_interval=0.001, max_in_flight=1, **kwargs
    )
    return use(operator, hook)


@pytest.mark.parametrize("relative", ["videos/fox.mp4", "fox.mp4", "./out/fox.mp4"])
def test_a_relative_output_path_is_refused_before_any_post(
    relative: str, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    hook = FakeHook()
    with pytest.raises(SeedanceConfigurationError) as info:
        single(hook, output_path=relative).execute(context(Store()))
    text = str(info.value)
    assert f"output_path {relative!r}" in text and "relative" in text and "nothing was sent" in text
    assert "absolute path" in text and "file://" in text
    assert hook.posts == [] and not list(tmp_path.iterdir())  # no POST, no folder made


@pytest.mark.parametrize(
    ("field", "kwargs", "item_extra"),
    [
        ("output_path_template", {"output_path_template": "out/{id}.mp4"}, {}),
        ("requests[0].output_path", {}, {"output_path": "out/a.mp4"}),
    ],
)
def test_a_relative_batch_destination_is_refused_before_any_post(
    field: str, kwargs: dict[str, Any], item_extra: dict[str, Any], tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    hook = FakeHook()
    with pytest.raises(SeedanceConfigurationError, match="relative") as info:
        batch(hook, [{**REQUEST, "id": "a", **item_extra}], **kwargs).execute(context(Store()))
    assert field in str(info.value) and "nothing was sent" in str(info.value)
    assert hook.posts == []


@pytest.mark.parametrize("absolute", ["{tmp}/fox.mp4", "file://{tmp}/fox.mp4", "~/red18-never-written.mp4"])
def test_absolute_destinations_and_home_paths_are_still_taken(
    absolute: str, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    hook = FakeHook()
    result = single(hook, output_path=absolute.format(tmp=tmp_path)).execute(context(Store()))
    assert len(hook.posts) == 1 and result["output_path"].startswith(f"file://{tmp_path}")


def test_a_sensor_with_a_relative_output_path_is_refused_before_its_first_read(
    tmp_path: Path, monkeypatch
) -> None:
    """The sensor pays nothing, but its delivered copy is what its card's link lasts by: refused
    at the first check, not after the watched generation succeeded."""
    from airflow_provider_seedance.sensors.seedance import SeedanceStatusSensor

    monkeypatch.chdir(tmp_path)
    hook = FakeHook(statuses={"gen-1": ["IN_PROGRESS"]})
    watch = SeedanceStatusSensor(task_id="watch", seedance_task_id="gen-1", output_path="out/v.mp4")
    sensor = use(watch, hook)
    with pytest.raises(SeedanceConfigurationError, match=r"output_path 'out/v.mp4' is a relative path"):
        sensor.poke(context(Store()))
    assert hook.reads == [] and hook.downloads == [] and not list(tmp_path.iterdir())
