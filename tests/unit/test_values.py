"""Numbers a user gives, checked in one place (``values``): every argument of the tasks, the
triggers and the hook that is a duration or a count is refused before any HTTP call with an
error naming the field and the value, and the hook's wait tolerance reaches the triggers the
tasks defer to (a deferred wait gives up when the blocking one would)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from airflow.exceptions import TaskDeferred

from airflow_provider_seedance.exceptions import SeedanceValidationError
from airflow_provider_seedance.hooks.retry import RetryPolicy
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator
from airflow_provider_seedance.sensors.seedance import SeedanceStatusSensor
from airflow_provider_seedance.triggers.batch import SeedanceBatchStatusTrigger
from airflow_provider_seedance.triggers.seedance import SeedanceStatusTrigger
from airflow_provider_seedance.values import count_value, seconds_value
from tests.unit.fakes import FakeHook, Store, batch, context, use

NOT_NUMBERS = [float("nan"), float("-inf"), True, "10", None, [1]]


def refused(build: Any, field: str, value: Any) -> SeedanceValidationError:
    with pytest.raises(SeedanceValidationError) as info:
        build()
    assert info.value.field == field and info.value.value is value
    assert f"Invalid {field}: " in str(info.value) and repr(value)[:3] in str(info.value)
    return info.value


@pytest.mark.parametrize("value", [0, 0.0, -1, -0.001, float("inf"), 10**400, *NOT_NUMBERS])
def test_a_wait_must_be_a_finite_number_of_seconds_above_zero(value: Any) -> None:
    assert "greater than 0" in str(
        refused(lambda: seconds_value(value, "poll_interval"), "poll_interval", value)
    )


@pytest.mark.parametrize("value", [-1, -0.001, *NOT_NUMBERS])
def test_a_tolerance_may_be_zero_or_unbounded_but_not_negative_or_no_number(value: Any) -> None:
    error = refused(
        lambda: seconds_value(value, "max_outage", zero_allowed=True, infinite_allowed=True),
        "max_outage",
        value,
    )
    assert "0 or more, or infinity" in str(error)


def test_a_zero_wait_is_refused_unless_zero_is_allowed_and_infinity_likewise() -> None:
    refused(lambda: seconds_value(0, "retry_min_wait"), "retry_min_wait", 0)
    assert seconds_value(0, "retry_min_wait", zero_allowed=True) == 0.0
    refused(lambda: seconds_value(math.inf, "retry_max_wait", zero_allowed=True), "retry_max_wait", math.inf)
    assert seconds_value(math.inf, "max_outage", infinite_allowed=True) == math.inf
    assert seconds_value(10**400, "max_outage", infinite_allowed=True) == math.inf


def test_accepted_seconds_come_back_as_floats() -> None:
    assert seconds_value(3, "x") == 3.0 and isinstance(seconds_value(3, "x"), float)
    assert seconds_value(0.001, "x") == 0.001
    assert seconds_value(0, "x", zero_allowed=True) == 0.0


@pytest.mark.parametrize("value", [0, -1, 1.5, 2.0, True, "3", None])
def test_a_count_must_be_a_whole_number_from_its_minimum(value: Any) -> None:
    error = refused(
        lambda: count_value(value, "status_retries", minimum=1, what=" of attempts"), "status_retries", value
    )
    assert "a whole number of attempts, 1 or more" in str(error)


def test_a_count_at_its_minimum_is_kept() -> None:
    assert count_value(0, "resubmit_on_failure", minimum=0) == 0
    assert count_value(1, "status_retries", minimum=1) == 1


# ------------------------------------------------------------------ where the checks are used
@pytest.mark.parametrize(
    ("field", "value"),
    [("status_retries", 0), ("retry_min_wait", -1), ("retry_max_wait", float("nan")), ("max_outage", -5)],
)
def test_the_hooks_retry_settings_are_checked_naming_the_hook_parameter(field: str, value: Any) -> None:
    refused(lambda: SeedanceHook("seedance_default", **{field: value}), field, value)


def test_a_hook_that_gives_up_at_the_first_failure_is_allowed() -> None:
    assert SeedanceHook("seedance_default", max_outage=0, retry_min_wait=0).retry_policy.max_outage == 0.0


def test_a_hook_that_never_gives_up_on_an_outage_is_allowed() -> None:
    assert SeedanceHook("seedance_default", max_outage=math.inf).retry_policy.max_outage == math.inf


@pytest.mark.parametrize("value", [-1, 1.5, "2", None])
def test_resubmit_on_failure_is_a_whole_number_from_zero(value: Any) -> None:
    refused(
        lambda: SeedanceGenerateOperator(task_id="t", prompt="p", resubmit_on_failure=value),
        "resubmit_on_failure",
        value,
    )


TRIGGERS = [SeedanceStatusTrigger, SeedanceBatchStatusTrigger]


def ids_of(trigger: Any) -> dict[str, Any]:
    return (
        {"seedance_task_id": "gen-1"}
        if trigger is SeedanceStatusTrigger
        else {"seedance_task_ids": ["gen-1"]}
    )


class NoHook:
    """A hook class that fails the test if a trigger builds it (it would poll)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("a trigger with a bad wait setting built its hook")


@pytest.mark.parametrize("trigger", TRIGGERS)
@pytest.mark.parametrize(
    ("row", "field", "value"),
    [
        # what releases before the check let through: a row written then is rebuilt after upgrade
        ({"poll_interval": 0.0, "max_poll_failures": 8}, "poll_interval", 0.0),
        ({"poll_interval": -1}, "poll_interval", -1.0),
        ({"poll_interval": float("inf")}, "poll_interval", float("inf")),
        ({"max_outage": -1}, "max_outage", -1.0),
        ({"max_outage": float("nan")}, "max_outage", None),
    ],
)
async def test_a_trigger_row_with_a_bad_wait_is_rebuilt_and_ends_its_task_with_an_error_event(
    trigger: Any, row: dict[str, Any], field: str, value: Any
) -> None:
    """Airflow's triggerer survives only a TypeError from a trigger's constructor: anything else
    stops the trigger runner and every trigger on it (and then the other triggerer, which takes
    the row over). So a bad setting is never refused when the trigger is built; its run reports
    it, naming field and value, before any status read."""
    built = trigger(**ids_of(trigger), **row)  # the triggerer does this with the row's kwargs
    built.hook_class = NoHook
    [event] = [e.payload async for e in built.run()]
    assert event["status"] == "error"
    shown = "nan" if value is None else repr(value)
    assert f"Invalid {field}: {shown}." in event["message"], event["message"]


@pytest.mark.parametrize("trigger", TRIGGERS)
def test_a_trigger_keeps_its_wait_settings_through_serialization(trigger: Any) -> None:
    ids = ids_of(trigger)
    _, kwargs = trigger(**ids, poll_interval=3, max_outage=0).serialize()
    assert (kwargs["poll_interval"], kwargs["max_outage"]) == (3.0, 0.0)
    rebuilt = trigger(**kwargs)
    assert (rebuilt.poll_interval, rebuilt.max_outage) == (3.0, 0.0)


def tolerant_hook(**kwargs: Any) -> FakeHook:
    return FakeHook(retry_policy=RetryPolicy(max_outage=42.5), **kwargs)


def deferred(task: Any) -> Any:
    with pytest.raises(TaskDeferred) as info:
        task.execute(context(Store()))
    return info.value.trigger


def test_the_single_operators_trigger_tolerates_the_outage_its_hook_does() -> None:
    hook = tolerant_hook(statuses={"gen-1": ["IN_PROGRESS"]})
    operator = use(SeedanceGenerateOperator(task_id="g", prompt="p", deferrable=True), hook)
    assert deferred(operator).max_outage == 42.5


def test_the_batchs_trigger_tolerates_the_outage_its_hook_does() -> None:
    hook = tolerant_hook(statuses={"gen-1": ["IN_PROGRESS"], "gen-2": ["IN_PROGRESS"]})
    assert deferred(batch(hook, deferrable=True)).max_outage == 42.5


def test_the_sensors_trigger_tolerates_the_outage_its_hook_does() -> None:
    hook = tolerant_hook(statuses={"gen-1": ["IN_PROGRESS"]})
    sensor = use(
        SeedanceStatusSensor(task_id="s", seedance_task_id="gen-1", deferrable=True, timeout=600), hook
    )
    assert deferred(sensor).max_outage == 42.5


def test_hook_params_set_the_tolerance_of_the_real_hook() -> None:
    operator = SeedanceGenerateOperator(task_id="g", prompt="p", hook_params={"max_outage": 7})
    assert operator.hook.retry_policy.max_outage == 7.0
