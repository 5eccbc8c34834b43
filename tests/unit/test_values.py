"""Numbers a user gives, checked in one place (``values``): every argument of the tasks, the
triggers and the hook that is a duration or a count is refused before any HTTP call with an
error naming the field and the value, and the hook's wait tolerance reaches the triggers the
tasks defer to (a deferred wait gives up when the blocking one would)."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any
from unittest import mock

import numpy  # in the dev extras (matplotlib, for the benchmarks' charts)
import pytest
from airflow.exceptions import TaskDeferred

from airflow_provider_seedance.exceptions import SeedanceError, SeedanceValidationError
from airflow_provider_seedance.hooks.retry import RetryPolicy
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator
from airflow_provider_seedance.sensors.seedance import SeedanceStatusSensor
from airflow_provider_seedance.triggers.batch import SeedanceBatchStatusTrigger
from airflow_provider_seedance.triggers.seedance import SeedanceStatusTrigger
from airflow_provider_seedance.values import check_poll_settings, count_value, restored, seconds_value
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


@pytest.mark.parametrize("value", [0, -1, 1.5, 0.0, float("inf"), float("nan"), True, "3", None])
def test_a_count_must_be_a_whole_number_from_its_minimum(value: Any) -> None:
    error = refused(
        lambda: count_value(value, "status_retries", minimum=1, what=" of attempts"), "status_retries", value
    )
    assert "a whole number of attempts, 1 or more" in str(error)


def test_a_count_at_its_minimum_is_kept() -> None:
    assert count_value(0, "resubmit_on_failure", minimum=0) == 0
    assert count_value(1, "status_retries", minimum=1) == 1


@pytest.mark.parametrize("value", [2.0, numpy.int64(2), numpy.uint8(2)])
def test_a_whole_count_given_as_a_float_or_numpy_number_is_kept_as_an_int(value: Any) -> None:
    kept = count_value(value, "status_retries", minimum=1)
    assert kept == 2 and type(kept) is int


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
        # hand-edited or hostile rows: nothing that fails to convert may raise in the constructor
        ({"poll_interval": "soon"}, "poll_interval", "soon"),
        ({"poll_interval": [1]}, "poll_interval", [1]),
        ({"max_outage": "forever"}, "max_outage", "forever"),
        ({"end_time": "tomorrow"}, "end_time", "tomorrow"),
        ({"end_time": float("nan")}, "end_time", None),
        ({"max_poll_failures": "many"}, "max_poll_failures", "many"),
        ({"max_poll_failures": float("inf")}, "max_poll_failures", float("inf")),
        ({"max_poll_failures": -1}, "max_poll_failures", -1),
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
    assert f"Invalid {field}: {shown}" in event["message"], event["message"]


HOSTILE = [
    # a Decimal that Airflow's serde restores: int() of it would take all memory (MemoryError)
    ({"max_poll_failures": Decimal("1e999999999")}, "max_poll_failures"),
    ({"max_poll_failures": True}, "max_poll_failures"),
    ({"max_poll_failures": 2.5}, "max_poll_failures"),  # never truncated to 2
    ({"poll_interval": "2.5"}, "poll_interval"),  # a string is no number, whatever it spells
    ({"poll_interval": Decimal("2.5")}, "poll_interval"),
    ({"max_outage": -(10**400)}, "max_outage"),  # not "infinite", as its sign was lost once
    ({"end_time": 10**400}, "end_time"),  # no time.time() compares with it as a float
    ({"seedance_conn_id": ["seedance_default"]}, "seedance_conn_id"),
    ({"seedance_conn_id": ""}, "seedance_conn_id"),
]


@pytest.mark.parametrize("trigger", TRIGGERS)
@pytest.mark.parametrize(("row", "field"), HOSTILE)
async def test_a_hostile_trigger_row_is_built_and_ends_its_task_naming_the_field(
    trigger: Any, row: dict[str, Any], field: str
) -> None:
    built = trigger(**ids_of(trigger), **row)
    built.hook_class = NoHook
    [event] = [e.payload async for e in built.run()]
    assert event["status"] == "error" and f"Invalid {field}: " in event["message"], event["message"]


@pytest.mark.parametrize("ids", ["abc", [["gen-1"]], [1, 2], None])
async def test_a_batch_trigger_row_without_a_list_of_ids_ends_its_task_with_an_error_event(ids: Any) -> None:
    built = SeedanceBatchStatusTrigger(ids)
    built.hook_class = NoHook  # type: ignore[assignment]
    [event] = [e.payload async for e in built.run()]
    assert event["status"] == "error" and "Invalid seedance_task_ids: " in event["message"]
    assert f"Invalid seedance_task_ids: {ids!r}" in event["message"], event["message"]
    assert event["message"].endswith("Allowed: a list of Seedance task ids."), event["message"]
    assert event["message"].startswith("Polling the Seedance batch failed: ")
    assert event["pending"] == []


@pytest.mark.parametrize(
    ("value", "kind", "kept"),
    [
        (8, int, 8),
        (8.0, int, 8),
        (numpy.int64(8), int, 8),
        (numpy.float32(2.5), float, 2.5),
        (3, float, 3.0),
        (2.5, int, 2.5),  # a fraction where a count is meant: kept, to be refused
        (True, int, True),
        ("8", int, "8"),
        (None, float, None),
        (10**400, float, 10**400),
    ],
)
def test_a_restored_setting_is_converted_only_from_a_number_of_its_kind(
    value: Any, kind: Any, kept: Any
) -> None:
    restored_value = restored(value, kind)
    assert restored_value == kept and type(restored_value) is type(kept)


async def test_a_trigger_row_without_a_connection_id_names_the_field_and_what_is_allowed() -> None:
    built = SeedanceStatusTrigger("gen-1", seedance_conn_id="")
    built.hook_class = NoHook  # type: ignore[assignment]
    [event] = [e.payload async for e in built.run()]
    assert "Invalid seedance_conn_id: ''. Allowed: a connection id." in event["message"], event["message"]


@pytest.mark.parametrize("value", [0, -3, "eight", float("inf"), None, Decimal("1e999999999")])
async def test_a_batch_trigger_row_that_reads_nothing_at_once_ends_its_task_with_an_error_event(
    value: Any,
) -> None:
    """``max_concurrency`` 0 (accepted by releases before the batch operator checked it) would start
    no reader: the batch would never be read and wait until its deadline, or forever."""
    built = SeedanceBatchStatusTrigger(["gen-1"], max_concurrency=value)
    built.hook_class = NoHook  # type: ignore[assignment]
    [event] = [e.payload async for e in built.run()]
    assert event["status"] == "error"
    assert f"Invalid max_concurrency: {value!r}" in event["message"], event["message"]
    assert "Allowed: a whole number of status reads at once, 1 or more." in event["message"]
    assert event["pending"] == ["gen-1"]


@pytest.mark.parametrize(
    ("ids", "said"), [(None, "unknown number of"), (7, "unknown number of"), (["a", "b"], "2")]
)
async def test_killing_a_batch_trigger_row_warns_whatever_its_ids(ids: Any, said: str) -> None:
    """``on_kill`` of a row without a list of ids raised ``TypeError`` (``len(None)``)."""
    built = SeedanceBatchStatusTrigger(ids)
    with mock.patch.object(type(built), "log") as log:
        await built.on_kill()
    [(args, _)] = log.warning.call_args_list
    assert args[1] == (2 if said == "2" else said)


@pytest.mark.parametrize("trigger", TRIGGERS)
def test_a_trigger_row_that_converts_is_kept_as_numbers(trigger: Any) -> None:
    """Rows of earlier releases carry numbers as strings or floats where ints are meant."""
    built = trigger(
        **ids_of(trigger), poll_interval=numpy.float32(2.5), end_time=10**4, max_poll_failures=8.0
    )
    assert (built.poll_interval, built.end_time, built.max_poll_failures) == (2.5, 10000.0, 8)
    assert isinstance(built.max_poll_failures, int) and isinstance(built.end_time, float)


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


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status_retries": 0}, "status_retries"),
        ({"retry_max_wait": float("nan")}, "retry_max_wait"),
        ({"max_outage": -5}, "max_outage"),
        ({"max_video_bytes": -1}, "max_video_bytes"),
        ({"status_retry": 3}, "hook_params"),
    ],
)
@pytest.mark.parametrize("build", ["single", "batch", "sensor"])
def test_bad_hook_params_are_refused_when_the_task_is_built_not_when_it_first_reads(
    params: dict[str, Any], field: str, build: str
) -> None:
    """A deferred task builds its hook again when it resumes on a worker, after it has paid: a
    setting its hook refuses must stop the DAG file from parsing instead, before any run."""
    with pytest.raises(SeedanceError) as info:
        make_task(build, hook_params=params)
    assert f"{field}" in str(info.value)
    if field == "hook_params":
        assert "status_retries" in str(info.value) and "status_retry" in str(info.value)


@pytest.mark.parametrize("params", ["{{ var.value.tuning }}", 5, [("status_retries", 3)], {1: 2}])
def test_hook_params_that_are_no_mapping_of_keywords_are_refused_naming_them(params: Any) -> None:
    with pytest.raises(SeedanceValidationError) as info:
        make_task("single", hook_params=params)
    assert info.value.field == "hook_params"


@pytest.mark.parametrize(("value", "kept"), [(numpy.int64(1000), 1000), (1000.0, 1000), (" 1000 ", 1000)])
def test_a_video_size_cap_given_as_a_whole_number_of_any_kind_is_kept(value: Any, kept: int) -> None:
    assert SeedanceHook("seedance_default", max_video_bytes=value).max_video_bytes == kept


@pytest.mark.parametrize("value", ["²", "1e6", 10.5, numpy.array([1000]), 0, True])
def test_a_video_size_cap_that_is_no_whole_number_of_bytes_is_a_configuration_error(value: Any) -> None:
    with pytest.raises(SeedanceError, match="max_video_bytes must be a positive whole number of bytes"):
        SeedanceHook("seedance_default", max_video_bytes=value)


def make_task(build: str, **kwargs: Any) -> Any:
    if build == "sensor":
        return SeedanceStatusSensor(task_id="wait", seedance_task_id="gen-1", **kwargs)
    if build == "batch":
        return batch([{"prompt": "p"}], **kwargs)
    return SeedanceGenerateOperator(task_id="generate", prompt="p", **kwargs)


@pytest.mark.parametrize("build", ["single", "batch", "sensor"])
def test_hook_params_given_as_floats_or_numpy_numbers_work_as_before(build: str) -> None:
    """Releases before the checks took ``status_retries=3.0`` (YAML, JSON) and numpy's numbers."""
    params = {
        "status_retries": 3.0,
        "retry_min_wait": numpy.float32(0.5),
        "retry_max_wait": numpy.int64(20),
        "max_outage": numpy.float64(60),
    }
    task = make_task(build, hook_params=params)
    policy = SeedanceHook(**task.hook_params).retry_policy
    assert (policy.attempts, policy.min_wait, policy.max_wait, policy.max_outage) == (3, 0.5, 20.0, 60.0)
    assert type(policy.attempts) is int and type(policy.max_wait) is float


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"max_outage": 0},
        {"max_outage": math.inf},
        {"end_time": None},
        {"end_time": 1.9e9},
        {"end_time": 2_000_000_000},
        {"end_time": math.inf},
        {"end_time": 0},
        {"max_poll_failures": None},
        {"max_poll_failures": 0},
        {"max_poll_failures": 8},
    ],
)
def test_poll_settings_at_their_limits_are_accepted(settings: dict[str, Any]) -> None:
    rest = dict(settings)  # a copy: parameters are shared by reruns in one process (mutmut)
    check_poll_settings(rest.pop("poll_interval", 0.001), rest.pop("max_outage", 180.0), **rest)


@pytest.mark.parametrize(
    ("settings", "field", "allowed"),
    [
        ({"poll_interval": 0}, "poll_interval", "a number of seconds greater than 0"),
        ({"max_outage": -0.5}, "max_outage", "a number of seconds 0 or more, or infinity"),
        ({"end_time": "soon"}, "end_time", "an epoch time in seconds (time.time()), or None"),
        ({"end_time": True}, "end_time", "an epoch time in seconds (time.time()), or None"),
        ({"end_time": math.nan}, "end_time", "an epoch time in seconds (time.time()), or None"),
        (
            {"max_poll_failures": -1},
            "max_poll_failures",
            "a whole number of failed reads in a row, 0 or more",
        ),
        (
            {"max_poll_failures": 1.5},
            "max_poll_failures",
            "a whole number of failed reads in a row, 0 or more",
        ),
    ],
)
def test_a_bad_poll_setting_is_refused_naming_the_field_value_and_what_is_allowed(
    settings: dict[str, Any], field: str, allowed: str
) -> None:
    [value] = settings.values()
    rest = dict(settings)  # a copy: parameters are shared by reruns in one process (mutmut)
    poll_interval, max_outage = rest.pop("poll_interval", 1.0), rest.pop("max_outage", 180.0)
    with pytest.raises(SeedanceValidationError) as info:
        check_poll_settings(poll_interval, max_outage, **rest)
    assert (info.value.field, info.value.allowed) == (field, allowed)
    assert info.value.value is value or (value != value and info.value.value != info.value.value)
