"""Red team #18: an ``output_path`` that can never receive the video was found only after the
generation was paid for (real emulator process, the operator's ``execute`` as a try runs it).

Before the fix, ``existing_video`` (the skip_if_exists check before the POST) treated every ``OSError`` and
``ValueError`` as "no video there", so a destination that cannot be written — a scheme with no
filesystem registered, a path under a regular file, a parent that cannot be created — passes,
the POST is sent and charged, and delivery then fails: ``paid_not_delivered`` for a reason
knowable before paying. Reproduced the same through ``dag.test()`` (single and batch).
Expected: the task fails before the POST ("nothing was sent"), naming the destination.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_seedance.results import Outcome
from tests.integration.test_money_rules import batch, context, posts, single
from tests.state_store import Store

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _forget_the_unregistered_memory_store():
    """Resolving ``memory://`` with no filesystem registered leaves Airflow a cached store
    without one (``airflow.sdk.io.store._STORE_CACHE``): later tests in this process that
    attach fsspec's memory filesystem would get that broken store back. Drop it again."""
    from airflow.sdk.io import store

    had = "memory" in store._STORE_CACHE
    yield
    if not had:
        store._STORE_CACHE.pop("memory", None)


def _destinations(tmp_path: Path) -> dict[str, str]:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    return {
        "a scheme with no filesystem registered": "nosuchstore://red18-bucket/fox.mp4",
        "a path under a regular file": f"file://{a_file}/fox.mp4",
        "a parent that cannot be created": "file:///proc/seedance-red18/fox.mp4",
    }


@pytest.mark.parametrize(
    "case",
    [
        "a scheme with no filesystem registered",
        "a path under a regular file",
        "a parent that cannot be created",
    ],
)
def test_an_output_path_that_cannot_be_written_fails_before_the_paid_post(emulator, tmp_path, case) -> None:
    ctx = context(Store())

    with pytest.raises(Exception):  # noqa: B017 -- which error is the product's choice
        single(output_path=_destinations(tmp_path)[case], duration=4, resolution="480p").execute(ctx)

    # Before the fix: 1 POST, 8 credits charged, outcome paid_not_delivered.
    assert posts(emulator) == 0, ctx["ti"].xcoms.get("seedance_result")
    assert ctx["ti"].xcoms["seedance_result"]["outcome"] == Outcome.NOT_SENT.value


def test_a_batch_output_path_template_that_cannot_be_written_fails_before_any_paid_post(
    emulator, tmp_path
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    ctx = context(Store())

    with pytest.raises(Exception):  # noqa: B017
        batch(
            [{"id": "a", "prompt": "a red mug", "duration": 4, "resolution": "480p"}],
            output_path_template=f"file://{a_file}/{{id}}.mp4",
        ).execute(ctx)

    assert posts(emulator) == 0
