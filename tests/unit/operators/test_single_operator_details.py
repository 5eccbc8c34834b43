"""The single operator's settings and records, with a fake hook and store.

The promises: its waits use the poll interval and the deadline (``timeout`` from now) it was
given, blocking or deferred, on its own connection; a template that renders an optional field
empty leaves it unset (the API default), never sent as ""; whatever ends the task, the
``seedance_result`` XCom equals what the task returned; a FAILED generation's error says why
and how many attempts it took; the record of a finished generation holds no request payload.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from airflow.exceptions import TaskDeferred

from airflow_provider_seedance.exceptions import (
    SeedanceGenerationFailedError,
    SeedanceTimeoutError,
    SeedanceValidationError,
)
from airflow_provider_seedance.models import SeedanceTask
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator
from airflow_provider_seedance.task_support import XCOM_RESULT
from tests.unit.fakes import FakeHook, Store, context, use

PROMPT = "a red fox in snow"


def single(hook: FakeHook | None = None, **kwargs: Any) -> SeedanceGenerateOperator:
    kwargs.setdefault("prompt", PROMPT)
    kwargs.setdefault("resolution", "480p")
    kwargs.setdefault("duration", "4")
    kwargs.setdefault("deferrable", False)
    operator = SeedanceGenerateOperator(task_id="generate", **kwargs)
    return use(operator, hook) if hook is not None else operator


def test_defaults_poll_every_ten_seconds_on_the_default_connection() -> None:
    operator = single()
    assert operator.poll_interval == 10.0 and operator.seedance_conn_id == "seedance_default"
    assert operator.hook_params == {}


def test_hook_params_reach_the_hook_and_the_connection_id_is_its_own() -> None:
    operator = single(seedance_conn_id="my_conn", hook_params={"status_retries": 2})
    assert operator.hook.seedance_conn_id == "my_conn" and operator.hook.status_retries == 2


def test_a_negative_resubmit_on_failure_is_refused() -> None:
    with pytest.raises(SeedanceValidationError, match=r"^Invalid resubmit_on_failure: -1\. Allowed: a whole"):
        single(resubmit_on_failure=-1)


def test_a_blocking_wait_uses_the_poll_interval_and_a_deadline_timeout_from_now() -> None:
    hook = FakeHook(statuses={"gen-1": ["IN_PROGRESS", "SUCCESS"]})
    before = time.time()
    single(hook, poll_interval=3, timeout=600).execute(context(Store()))
    [(task_id, kwargs)] = hook.waits
    assert task_id == "gen-1" and kwargs["poll_interval"] == 3
    assert before + 600 <= kwargs["deadline"] <= time.time() + 600


def test_a_blocking_wait_without_timeout_has_no_deadline() -> None:
    hook = FakeHook(statuses={"gen-1": ["IN_PROGRESS", "SUCCESS"]})
    single(hook).execute(context(Store()))
    assert hook.waits[0][1]["deadline"] is None


def test_a_deferred_wait_hands_the_trigger_the_connection_interval_and_deadline() -> None:
    hook = FakeHook(statuses={"gen-1": ["IN_PROGRESS"]})
    before = time.time()
    with pytest.raises(TaskDeferred) as info:
        single(hook, deferrable=True, seedance_conn_id="my_conn", poll_interval=7, timeout=600).execute(
            context(Store())
        )
    trigger = info.value.trigger
    assert trigger.seedance_conn_id == "my_conn" and trigger.poll_interval == 7.0
    assert before + 600 <= trigger.end_time <= time.time() + 600


@pytest.mark.parametrize("field", ["aspect_ratio", "resolution", "duration", "callback_url"])
def test_an_optional_field_rendered_empty_is_left_unset(field: str) -> None:
    request = single(**{field: "  "}).build_request()
    assert field not in request.to_payload()


def test_a_prompt_rendered_empty_is_refused() -> None:
    with pytest.raises(SeedanceValidationError) as info:
        single(prompt="  ").build_request()
    assert info.value.field == "prompt"


def test_not_waiting_returns_the_submitted_generation_and_records_it_in_xcom() -> None:
    hook = FakeHook(statuses={"gen-1": ["IN_PROGRESS"]})
    ctx = context(Store())
    result = single(hook, wait_for_completion=False).execute(ctx)
    assert result["outcome"] == "in_progress" and result["task_id"] == "gen-1"
    assert ctx["ti"].xcoms[XCOM_RESULT] == result


def test_a_success_is_recorded_in_xcom_as_returned_and_its_record_holds_no_request() -> None:
    store, hook = Store(), FakeHook()
    ctx = context(store)
    result = single(hook).execute(ctx)
    assert ctx["ti"].xcoms[XCOM_RESULT] == result
    [entry] = store.entries().values()
    assert entry["outcome"]["task_id"] == "gen-1" and "request" not in entry["outcome"]


def test_a_failed_generation_says_why_without_counting_a_single_attempt() -> None:
    hook = FakeHook(statuses={"gen-1": ["FAILED"]})
    with pytest.raises(SeedanceGenerationFailedError) as info:
        single(hook).execute(context(Store()))
    assert str(info.value) == "Seedance task gen-1 FAILED: moderation (failed generations are not billed)"


def test_a_failed_generation_without_a_message_says_so() -> None:
    hook = FakeHook(statuses={"gen-1": ["FAILED"]})
    hook.get_status = lambda task_id: SeedanceTask(task_id, "FAILED")  # type: ignore[method-assign]
    with pytest.raises(SeedanceGenerationFailedError, match=r"FAILED: no message \(failed"):
        single(hook).execute(context(Store()))


def test_a_timeout_event_without_a_timeout_setting_names_the_last_status() -> None:
    store, hook = Store(), FakeHook(statuses={"gen-1": ["IN_PROGRESS"]})
    operator = single(hook, deferrable=True)
    with pytest.raises(TaskDeferred):
        operator.execute(context(store))
    event = {"status": "timeout", "task": {"task_id": "gen-1", "status": "QUEUED"}, "message": ""}
    with pytest.raises(SeedanceTimeoutError) as info:
        operator.execute_complete(context(store), event, seedance_task_id="gen-1")
    assert info.value.last_status == "QUEUED" and info.value.waited_seconds == 0.0


@pytest.mark.parametrize("value", [0, -1, 0.0, float("nan"), float("inf"), True, "10", None])
@pytest.mark.parametrize("field", ["poll_interval", "callback_poll_interval"])
def test_a_wait_that_is_no_positive_number_of_seconds_is_refused_when_the_dag_is_parsed(
    field: str, value: Any
) -> None:
    """0 or less would poll the API without a pause through an outage (and a negative interval
    crashed the trigger after the POSTs were paid); NaN or infinity would never poll again."""
    from airflow_provider_seedance.operators.batch import SeedanceBatchGenerateOperator
    from airflow_provider_seedance.sensors.seedance import SeedanceStatusSensor

    if value is None and field == "poll_interval":
        value = -0.5  # None means "the default" for the single operator's poll_interval
    builders = [lambda: single(**{field: value})]
    if field == "poll_interval":
        builders += [
            lambda: SeedanceBatchGenerateOperator(
                task_id="b", requests=[{"prompt": PROMPT}], poll_interval=value
            ),
            lambda: SeedanceStatusSensor(task_id="s", seedance_task_id="gen-1", poll_interval=value),
        ]
    for build in builders:
        with pytest.raises(SeedanceValidationError) as info:
            build()
        assert info.value.field == field
        assert "greater than 0" in str(info.value) and repr(value)[:3] in str(info.value)


def test_any_positive_wait_is_kept_as_seconds() -> None:
    operator = single(poll_interval=2, callback_poll_interval=0.5)
    assert (operator.poll_interval, operator.callback_poll_interval) == (2.0, 0.5)
