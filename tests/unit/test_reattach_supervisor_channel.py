"""In a running task, a Variable record is read and written through the task's supervisor, and
only "not found" reads as "nothing submitted yet".

Red-team finding: ``Variable.get(name, default=None)`` answers ``default`` for *any* failure to
read on some task SDK versions (the execution-API secrets backend takes an API server error for
"not found"), and ``Variable.set`` logs a failed write and returns on others. Either one lets a
retry that starts while the API server restarts read an empty record, or a ``submitting`` mark
go unstored before its POST: a generation paid twice. The supervisor channel is faked here with
the task SDK's own message types (narrow logic); real Airflow runs it in tests/dag.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowRuntimeError, ErrorType
from airflow.sdk.execution_time.comms import ErrorResponse, GetVariable, PutVariable, VariableResult

from airflow_provider_seedance.exceptions import SeedanceError
from airflow_provider_seedance.reattach import SubmissionRecord, read_variable, write_variable
from tests.unit.fakes import TI, FakeHook, Store
from tests.unit.operators.test_single_submit_rules import CHEAP, single


class Supervisor:
    """The supervisor's side of ``GetVariable``/``PutVariable``: a dict, or a failing API server."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.failing: Any = None  # an ErrorResponse to answer, or an exception to raise
        self.sent: list[Any] = []
        #: Per message type: (failure, how many more messages get it; None: all).
        self.faults: dict[type, tuple[Any, int | None]] = {}

    def fail(self, kind: type, failure: Any, times: int | None = None) -> None:
        """Answer ``failure`` to messages of ``kind``: the next ``times`` of them, or all."""
        self.faults[kind] = (failure, times)

    def send(self, msg: Any) -> Any:
        self.sent.append(msg)
        failure = self.failing
        if type(msg) in self.faults:
            failure, times = self.faults.pop(type(msg))
            if times is None or times > 1:
                self.faults[type(msg)] = (failure, None if times is None else times - 1)
        if isinstance(failure, BaseException):
            raise failure
        if failure is not None:
            return failure
        if isinstance(msg, GetVariable):
            if msg.key not in self.values:
                return ErrorResponse(error=ErrorType.VARIABLE_NOT_FOUND, detail={"key": msg.key})
            return VariableResult(key=msg.key, value=self.values[msg.key])
        if isinstance(msg, PutVariable):
            self.values[msg.key] = msg.value or ""
            return None
        raise AssertionError(f"unexpected message {msg!r}")


@pytest.fixture
def supervisor(monkeypatch: pytest.MonkeyPatch) -> Supervisor:
    from airflow.sdk.execution_time import task_runner

    fake = Supervisor()
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", fake, raising=False)

    def public_api_not_used(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("the record must not be read through Variable.get/set in a task")

    monkeypatch.setattr("airflow.sdk.Variable.get", public_api_not_used)
    monkeypatch.setattr("airflow.sdk.Variable.set", public_api_not_used)
    monkeypatch.setattr("airflow_provider_seedance.reattach.SAVE_RETRY_SECONDS", 0)
    monkeypatch.setattr("airflow_provider_seedance.reattach.READ_RETRY_SECONDS", 0)
    return fake


API_DOWN = [
    ErrorResponse(error=ErrorType.API_SERVER_ERROR, detail={"status_code": 503}),
    ErrorResponse(error=ErrorType.GENERIC_ERROR, detail={}),
    AirflowRuntimeError(ErrorResponse(error=ErrorType.API_SERVER_ERROR, detail={})),
]
API_DOWN_IDS = ["api-server-error", "generic-error", "error-frame"]


def on_3_2(number: int = 1) -> dict[str, Any]:
    ti = TI()
    ti.try_number = number
    return {"ti": ti, "outlet_events": defaultdict(lambda: None)}


def test_a_missing_variable_is_an_empty_record_and_a_present_one_is_read(supervisor: Supervisor) -> None:
    assert read_variable("nope") is None
    write_variable("k", '{"a": 1}', "desc")
    assert read_variable("k") == '{"a": 1}'
    [put] = [m for m in supervisor.sent if isinstance(m, PutVariable)]
    assert put.description == "desc"


@pytest.mark.parametrize("failure", API_DOWN, ids=API_DOWN_IDS)
def test_a_record_that_cannot_be_read_stops_the_task_before_any_post(
    supervisor: Supervisor, failure: Any
) -> None:
    SubmissionRecord.for_context(on_3_2()).mark_submitted(("fp", "gen-1"))
    supervisor.failing = failure
    hook = FakeHook()
    with pytest.raises(SeedanceError, match=r"could not be read.*nothing was sent"):
        single(hook, **CHEAP).execute(on_3_2(2))
    assert hook.posts == []


@pytest.mark.parametrize("failure", API_DOWN, ids=API_DOWN_IDS)
def test_a_submitting_mark_that_was_not_stored_sends_no_post(supervisor: Supervisor, failure: Any) -> None:
    hook = FakeHook()
    supervisor.fail(PutVariable, failure)
    with pytest.raises((SeedanceError, AirflowRuntimeError)):
        single(hook, **CHEAP).execute(on_3_2())
    assert hook.posts == []


def test_on_3_3_the_upgrade_fallback_reads_through_the_supervisor_too(supervisor: Supervisor) -> None:
    SubmissionRecord.for_context(on_3_2()).mark_submitted(("fp", "gen-7"))
    supervisor.failing = API_DOWN[0]
    context = {**on_3_2(2), "task_state_store": Store()}
    with pytest.raises(SeedanceError, match="could not be read"):
        SubmissionRecord.for_context(context).get("fp")
    supervisor.failing = None
    found = SubmissionRecord.for_context(context).get("fp")
    assert found is not None and found.seedance_task_id == "gen-7"


def test_a_refused_write_says_which_variable_was_not_stored(supervisor: Supervisor) -> None:
    supervisor.failing = API_DOWN[0]
    with pytest.raises(SeedanceError, match=r"Variable 'k' could not be stored \(.*API_SERVER_ERROR"):
        write_variable("k", "{}", "desc")


@pytest.mark.parametrize("failure", API_DOWN, ids=API_DOWN_IDS)
def test_a_read_that_fails_while_the_api_server_restarts_is_read_again(
    supervisor: Supervisor, failure: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart of the API server (or a failover of its database) costs the try a wait, not the
    try: the record is read again until it answers, and then re-attached to."""
    paid = FakeHook()
    first = single(paid, **CHEAP).execute(on_3_2(1))
    monkeypatch.setattr("airflow_provider_seedance.reattach.READ_RETRY_SECONDS", 30)
    monkeypatch.setattr("tenacity.nap.time.sleep", lambda _s: None)
    supervisor.fail(GetVariable, failure, times=2)
    hook = FakeHook()
    result = single(hook, **CHEAP).execute(on_3_2(2))
    assert len(paid.posts) == 1 and hook.posts == [] and GetVariable not in supervisor.faults
    assert result["task_id"] == first["task_id"]
