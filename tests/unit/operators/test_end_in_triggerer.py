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

import pendulum
import pytest
from airflow.exceptions import TaskDeferred
from airflow.sdk import DAG, Asset, task
from airflow.triggers.base import TaskSuccessEvent

from airflow_provider_seedance import metrics
from airflow_provider_seedance.links import SeedanceVideoLink
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator
from airflow_provider_seedance.triggers import seedance as trigger_module
from airflow_provider_seedance.triggers.seedance import SeedanceStatusTrigger
from airflow_provider_seedance.xcoms import XCOM_RETURN
from tests.unit.fakes import FakeHook, Store, context, scripted_task, use
from tests.unit.operators.test_resume_after_trigger import CHEAP, deferred, single
from tests.unit.triggers.test_terminal_status import scripted_hook

TI = SimpleNamespace(dag_id="dag", run_id="run", task_id="generate", map_index=3)
#: The extra link's XCom, which Airflow's task runner pushes when a task ends on a worker.
LINK_KEY = "_link_SeedanceVideoLink"


def task_context(store: Store) -> dict[str, Any]:
    """A fake context whose task instance has the identity the extra link is built from."""
    ctx = context(store)
    vars(ctx["ti"]).update(vars(TI))
    return ctx


def deferral_trigger(**kwargs: Any) -> SeedanceStatusTrigger:
    """The trigger a deferrable try defers to, rebuilt from its kwargs as the triggerer does."""
    store, hook = Store(), FakeHook(statuses={"gen-1": ["IN_PROGRESS"]})
    trigger = deferred(single(hook, **kwargs), task_context(store)).trigger
    path, trigger_kwargs = trigger.serialize()
    assert path.endswith("SeedanceStatusTrigger")
    return SeedanceStatusTrigger(**trigger_kwargs)


@pytest.fixture(autouse=True)
def pushed(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What the trigger pushes through the task SDK's XCom API (narrowly faked: no triggerer)."""
    found: dict[str, Any] = {}

    async def push(ti: Any, xcoms: dict[str, Any], links: dict[str, Any]) -> None:
        assert ti is TI
        found.update(links)
        found.update(xcoms)

    monkeypatch.setattr(trigger_module, "push_xcoms_from_trigger", push)
    return found


async def first_event(trigger: SeedanceStatusTrigger, answers: list[str], ti: Any = TI) -> Any:
    trigger.hook_class = scripted_hook({"gen-1": answers}, [])  # type: ignore[assignment]
    trigger.task_instance = ti
    return await anext(trigger.run())


async def test_a_success_ends_the_task_in_the_triggerer_with_the_xcoms_the_worker_would_push(
    pushed: dict[str, Any],
) -> None:
    # The worker path: the same operator resumes on the trigger's usual event.
    store, hook = Store(), FakeHook(statuses={"gen-1": ["IN_PROGRESS"]})
    operator = single(hook, end_in_triggerer=True)
    trigger = deferred(operator, task_context(store)).trigger
    usual = await first_event(SeedanceStatusTrigger(**trigger.serialize()[1]), ["SUCCESS"], ti=None)
    assert not isinstance(usual, TaskSuccessEvent), "without a task instance the worker resumes"
    ctx = task_context(store)
    returned = operator.execute_complete(ctx, usual.payload, seedance_task_id="gen-1")
    link = SeedanceVideoLink().get_link(operator, ti_key=ctx["ti"])
    worker_xcoms = {**ctx["ti"].xcoms, XCOM_RETURN: returned, LINK_KEY: link}

    ended = await first_event(SeedanceStatusTrigger(**trigger.serialize()[1]), ["SUCCESS"])

    assert isinstance(ended, TaskSuccessEvent)
    assert pushed == worker_xcoms
    assert "task_id=generate" in pushed[LINK_KEY] and "map_index=3" in pushed[LINK_KEY]
    assert pushed[XCOM_RETURN]["outcome"] == "succeeded"
    assert pushed[XCOM_RETURN]["request"]["prompt"] == "a red fox in snow"


async def test_a_task_that_pushes_no_return_value_ends_without_one(pushed: dict[str, Any]) -> None:
    ended = await first_event(deferral_trigger(end_in_triggerer=True, do_xcom_push=False), ["SUCCESS"])
    assert isinstance(ended, TaskSuccessEvent)
    assert XCOM_RETURN not in pushed and "seedance_result" in pushed


async def test_when_the_xcoms_cannot_be_pushed_the_task_resumes_on_a_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(*_: Any) -> None:
        raise RuntimeError("api-server away")

    monkeypatch.setattr(trigger_module, "push_xcoms_from_trigger", broken)
    event = await first_event(deferral_trigger(end_in_triggerer=True), ["SUCCESS"])
    assert not isinstance(event, TaskSuccessEvent) and event.payload["status"] == "success"


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
        # The task runner pushes each key of the result as an XCom of its own.
        pytest.param({"end_in_triggerer": True, "multiple_outputs": True}, id="multiple outputs"),
    ],
)
async def test_the_worker_finishes_the_task_when_it_has_something_left_to_do(kwargs: dict[str, Any]) -> None:
    trigger = deferral_trigger(**kwargs)
    assert trigger.end_on_success is None
    event = await first_event(trigger, ["SUCCESS"])
    assert not isinstance(event, TaskSuccessEvent) and event.payload["status"] == "success"


def test_the_dag_s_result_task_ends_on_a_worker_which_marks_that_xcom_as_the_run_s_result() -> None:
    store, hook = Store(), FakeHook(statuses={"gen-1": ["IN_PROGRESS"]})
    operator = single(hook, end_in_triggerer=True)
    assert deferred(operator, task_context(store)).trigger.end_on_success is not None

    # what ``dag.result = task.output`` sets on Airflow 3.3 (set by hand: 3.1 has no such API)
    store, hook = Store(), FakeHook(statuses={"gen-1": ["IN_PROGRESS"]})
    operator = single(hook, end_in_triggerer=True)
    operator.returns_dag_result = True
    assert deferred(operator, task_context(store)).trigger.end_on_success is None


def test_without_dag_results_airflow_3_1_still_ends_in_the_triggerer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow 3.1 has no ``returns_dag_result``: its absence is "not the DAG's result"."""
    from airflow.sdk.definitions._internal.abstractoperator import AbstractOperator

    if hasattr(AbstractOperator, "returns_dag_result"):  # 3.3: take it away, as on 3.1
        monkeypatch.delattr(AbstractOperator, "returns_dag_result")
    store, hook = Store(), FakeHook(statuses={"gen-1": ["IN_PROGRESS"]})
    operator = single(hook, end_in_triggerer=True)
    assert not hasattr(operator, "returns_dag_result")
    assert deferred(operator, task_context(store)).trigger.end_on_success is not None


async def test_a_generation_resubmitted_after_failed_ends_in_the_triggerer_with_its_history(
    pushed: dict[str, Any],
) -> None:
    store, hook = Store(), FakeHook(statuses={"gen-1": ["IN_PROGRESS"], "gen-2": ["IN_PROGRESS"]})
    operator = single(hook, end_in_triggerer=True, resubmit_on_failure=1)
    deferred(operator, task_context(store))
    failed = {"status": "failed", "task": scripted_task("gen-1", "FAILED").to_dict(), "message": ""}
    with pytest.raises(TaskDeferred) as info:
        operator.execute_complete(task_context(store), failed, seedance_task_id="gen-1")

    rebuilt = SeedanceStatusTrigger(**info.value.trigger.serialize()[1])
    rebuilt.hook_class = scripted_hook({"gen-2": ["SUCCESS"]}, [])  # type: ignore[assignment]
    rebuilt.task_instance = TI
    ended = await anext(rebuilt.run())

    assert isinstance(ended, TaskSuccessEvent)
    assert pushed[XCOM_RETURN]["seedance_task_ids"] == ["gen-1", "gen-2"]
    assert len(hook.posts) == 2


async def test_a_trigger_asked_to_end_the_task_pushes_the_return_value_unless_told_not_to(
    pushed: dict[str, Any],
) -> None:
    trigger = SeedanceStatusTrigger("gen-1", poll_interval=0.001, end_on_success={"request": {"prompt": "p"}})
    assert isinstance(await first_event(trigger, ["SUCCESS"]), TaskSuccessEvent)
    assert pushed[XCOM_RETURN]["seedance_task_ids"] == ["gen-1"]


@pytest.mark.parametrize("spec", ["abc", {"request": 5}, {"links": 5}, {"seedance_task_ids": 7}])
async def test_a_hand_edited_ending_resumes_the_task_on_a_worker_with_the_usual_event(
    spec: Any, pushed: dict[str, Any]
) -> None:
    """An ``end_on_success`` the trigger cannot use never fails the trigger after the video was
    paid for: the task resumes on a worker, which pushes its XComs as usual."""
    trigger = SeedanceStatusTrigger("gen-1", poll_interval=0.001, end_on_success=spec)
    event = await first_event(trigger, ["SUCCESS"])
    assert not isinstance(event, TaskSuccessEvent)
    assert event.payload["status"] == "success"
    assert event.payload["task"]["task_id"] == "gen-1"
    assert pushed == {}


def in_a_dag(mapped_downstream: bool) -> SeedanceGenerateOperator:
    with DAG("catalog", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        operator = SeedanceGenerateOperator(
            task_id="generate",
            prompt="p",
            deferrable=True,
            end_in_triggerer=True,
            poll_interval=0.001,
            **CHEAP,
        )

        @task
        def publish(result: Any) -> None: ...

        if mapped_downstream:
            publish.expand(result=operator.output)
        else:
            publish(operator.output)
    return operator


@pytest.mark.parametrize(("mapped_downstream", "ends_here"), [(True, False), (False, True)])
def test_a_task_mapped_over_the_result_keeps_the_ending_on_a_worker(
    mapped_downstream: bool, ends_here: bool
) -> None:
    store, hook = Store(), FakeHook(statuses={"gen-1": ["IN_PROGRESS"]})
    operator = use(in_a_dag(mapped_downstream), hook)
    trigger = deferred(operator, task_context(store)).trigger
    assert (trigger.end_on_success is not None) is ends_here
