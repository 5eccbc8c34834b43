"""A deferrable generation may end in the triggerer (``end_in_triggerer=True``): one worker
start instead of two, and nothing else differs.

The promises: the trigger ends the task only on SUCCESS with nothing left for a worker (no
``output_path``, no outlets), with exactly the XComs the worker's ``execute_complete`` pushes
for the same answer, and counts the same metrics; any other ending (FAILED, which may need a
resubmission, i.e. a new POST) resumes on a worker; without a task instance (``dag.test()``)
the trigger never ends the task. The real round trip (scheduler, triggerer, emulator) is in
tests/realproc/test_end_in_triggerer.py.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import Asset
from airflow.triggers.base import TaskSuccessEvent

from airflow_provider_seedance import metrics
from airflow_provider_seedance.triggers.seedance import SeedanceStatusTrigger
from airflow_provider_seedance.xcoms import XCOM_RETURN
from tests.unit.fakes import FakeHook, Store, context
from tests.unit.operators.test_resume_after_trigger import deferred, single
from tests.unit.triggers.test_terminal_status import scripted_hook

TI = SimpleNamespace(dag_id="dag", task_id="generate", map_index=3)


def deferral_trigger(**kwargs: Any) -> SeedanceStatusTrigger:
    """The trigger a deferrable try defers to, rebuilt from its kwargs as the triggerer does."""
    store, hook = Store(), FakeHook(statuses={"gen-1": ["IN_PROGRESS"]})
    trigger = deferred(single(hook, **kwargs), context(store)).trigger
    path, trigger_kwargs = trigger.serialize()
    assert path.endswith("SeedanceStatusTrigger")
    return SeedanceStatusTrigger(**trigger_kwargs)


async def first_event(trigger: SeedanceStatusTrigger, answers: list[str], ti: Any = TI) -> Any:
    trigger.hook_class = scripted_hook({"gen-1": answers}, [])  # type: ignore[assignment]
    trigger.task_instance = ti
    return await anext(trigger.run())


async def test_a_success_ends_the_task_in_the_triggerer_with_the_xcoms_the_worker_would_push() -> None:
    # The worker path: the same operator resumes on the trigger's usual event.
    store, hook = Store(), FakeHook(statuses={"gen-1": ["IN_PROGRESS"]})
    operator = single(hook, end_in_triggerer=True)
    trigger = deferred(operator, context(store)).trigger
    usual = await first_event(SeedanceStatusTrigger(**trigger.serialize()[1]), ["SUCCESS"], ti=None)
    assert not isinstance(usual, TaskSuccessEvent), "without a task instance the worker resumes"
    ctx = context(store)
    returned = operator.execute_complete(ctx, usual.payload, seedance_task_id="gen-1")
    worker_xcoms = {**ctx["ti"].xcoms, XCOM_RETURN: returned}

    ended = await first_event(SeedanceStatusTrigger(**trigger.serialize()[1]), ["SUCCESS"])

    assert isinstance(ended, TaskSuccessEvent)
    assert ended.xcoms == worker_xcoms
    assert ended.xcoms[XCOM_RETURN]["outcome"] == "succeeded"
    assert ended.xcoms[XCOM_RETURN]["request"]["prompt"] == "a red fox in snow"


async def test_a_task_that_pushes_no_return_value_ends_without_one() -> None:
    ended = await first_event(deferral_trigger(end_in_triggerer=True, do_xcom_push=False), ["SUCCESS"])
    assert isinstance(ended, TaskSuccessEvent) and ended.xcoms is not None
    assert XCOM_RETURN not in ended.xcoms and "seedance_result" in ended.xcoms


async def test_the_triggerer_counts_the_success_and_its_credits_like_the_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counted: list[tuple[str, int, dict[str, str]]] = []
    monkeypatch.setattr(metrics, "incr", lambda name, count=1, **tags: counted.append((name, count, tags)))
    await first_event(deferral_trigger(end_in_triggerer=True), ["IN_PROGRESS", "SUCCESS"])
    tags = {"dag_id": "dag", "task_id": "generate"}
    assert ("generations.succeeded", 1, tags) in counted
    assert ("credits.consumed", 8, tags) in counted


async def test_a_failed_generation_resumes_on_a_worker_which_decides_about_resubmitting() -> None:
    event = await first_event(deferral_trigger(end_in_triggerer=True, resubmit_on_failure=0), ["FAILED"])
    assert not isinstance(event, TaskSuccessEvent)
    assert event.payload["status"] == "failed"


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({}, id="not asked for"),
        pytest.param({"end_in_triggerer": True, "output_path": "/tmp/v.mp4"}, id="a delivery to do"),
        pytest.param({"end_in_triggerer": True, "outlets": [Asset("s3://b/v.mp4")]}, id="asset events"),
    ],
)
async def test_the_worker_finishes_the_task_when_it_has_something_left_to_do(kwargs: dict[str, Any]) -> None:
    trigger = deferral_trigger(**kwargs)
    assert trigger.end_on_success is None
    event = await first_event(trigger, ["SUCCESS"])
    assert not isinstance(event, TaskSuccessEvent) and event.payload["status"] == "success"
