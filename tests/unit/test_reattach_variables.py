"""How the Airflow 3.1-3.2 submission record reads its Variable: narrow logic, Variable faked."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk import Variable

from airflow_provider_seedance.exceptions import SeedanceError
from airflow_provider_seedance.reattach import SubmissionRecord, _VariableBackend


def fake_get(value: Any = None, error: Exception | None = None) -> Any:
    def get(key: str, default: Any = None, **_: Any) -> Any:
        if error is not None:
            raise error
        return default if value is None else value

    return get


def test_a_missing_variable_is_an_empty_record(monkeypatch) -> None:
    monkeypatch.setattr(Variable, "get", fake_get())
    # The backend says "never written" (a record's parts are read up to the first such)...
    assert _VariableBackend("seedance_record_x").load() is None
    # ...and the record over it holds nothing.
    record = SubmissionRecord(_VariableBackend("seedance_record_x"), where="test")
    assert record.entries == {} and record.get("fp") is None


def test_a_stored_record_is_read(monkeypatch) -> None:
    monkeypatch.setattr(Variable, "get", fake_get('{"fp": {"state": "submitted"}}'))
    assert _VariableBackend("seedance_record_x").load() == {"fp": {"state": "submitted"}}


def test_a_failed_read_is_not_taken_for_an_empty_record(monkeypatch) -> None:
    """An empty record means 'nothing submitted': the next POST would pay again."""
    monkeypatch.setattr(Variable, "get", fake_get(error=ConnectionError("api-server unreachable")))
    with pytest.raises(ConnectionError, match="unreachable"):
        _VariableBackend("seedance_record_x").load()


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", "", "null"])
def test_a_corrupt_record_is_a_clear_error(monkeypatch, raw: str) -> None:
    monkeypatch.setattr(Variable, "get", fake_get(raw))
    with pytest.raises(SeedanceError, match=r"'seedance_record_x'.*not a JSON object"):
        _VariableBackend("seedance_record_x").load()


def test_variable_names_never_collide_and_stay_under_airflow_key_limit() -> None:
    from airflow_provider_seedance.reattach import MAX_VARIABLE_KEY, variable_name

    # Joined with "__", these two task instances had the same name in the released code.
    first = variable_name("a__b", "run", "c", -1)
    second = variable_name("a", "b__run", "c", -1)
    assert first != second
    assert variable_name("d" * 250, "r" * 250, "t" * 250, 12_000) != variable_name("d", "r", "t", 1)
    assert len(variable_name("d" * 250, "r" * 250, "t" * 250, 12_000)) <= MAX_VARIABLE_KEY
    assert variable_name("d", "r", "t", 1) == variable_name("d", "r", "t", 1)  # stable across tries


def test_a_record_written_under_the_released_name_is_still_read(monkeypatch) -> None:
    """A retry after upgrading must find what the try before the upgrade submitted."""
    stored = {"seedance_attach__dag__run__task__-1": '{"fp": {"state": "submitted"}}'}
    monkeypatch.setattr(Variable, "get", lambda key, default=None, **_: stored.get(key, default))
    backend = _VariableBackend("seedance_attach__newhash", legacy_name="seedance_attach__dag__run__task__-1")
    assert backend.load() == {"fp": {"state": "submitted"}}


def test_an_unreadable_entry_is_an_error_never_nothing_submitted() -> None:
    from airflow_provider_seedance.reattach import SubmissionRecord

    class Backend:
        def load(self, part: int = 0) -> dict[str, Any] | None:
            return {"fp": {"fingerprint": "fp", "state": "half-written"}}

        def save(self, value: dict[str, Any], part: int = 0) -> None:
            raise AssertionError("must not write")

    with pytest.raises(SeedanceError, match="unreadable entry"):
        SubmissionRecord(Backend(), where="test").get("fp")


def test_force_new_release_is_recorded_and_the_history_kept() -> None:
    from airflow_provider_seedance.reattach import SubmissionRecord, SubmissionState

    class Backend:
        value: dict[str, Any] = {}

        def load(self, part: int = 0) -> dict[str, Any] | None:
            return dict(self.value)

        def save(self, value: dict[str, Any], part: int = 0) -> None:
            self.value = dict(value)

    record = SubmissionRecord(Backend(), where="test")
    record.mark_submitting("fp")
    record.mark_submitted(("fp", "seed-1"))
    record.mark_submitting("fp")  # a resubmission after FAILED: not a release
    assert record.get("fp").released == ()  # type: ignore[union-attr]
    record.mark_submitting("fp")  # the earlier mark was still uncertain: released
    entry = record.get("fp")
    assert entry is not None and entry.state is SubmissionState.SUBMITTING
    assert len(entry.released) == 1 and entry.history == ("seed-1",)
    record.mark_submitted(("fp", "seed-2"))
    assert record.get("fp").history == ("seed-1", "seed-2")  # type: ignore[union-attr]


class FlakyBackend:
    """A store that is unreachable for its first ``failures`` writes (an API server restart)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.saved: list[dict[str, Any]] = []

    def load(self, part: int = 0) -> dict[str, Any] | None:
        return {}

    def save(self, value: dict[str, Any], part: int = 0) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("api-server unreachable")
        self.saved.append(dict(value))


def test_a_paid_submission_is_recorded_once_the_store_is_back() -> None:
    """Seen on the production-shape stack: the POST paid, the API server was restarting, the
    try failed with the record still 'submitting', and the retry refused to go on (a human)."""
    backend = FlakyBackend(failures=2)
    record = SubmissionRecord(backend, where="test", save_retry_seconds=30)
    record.mark_submitted(("fp", "seed15abcpro"))
    assert backend.saved[-1]["fp"]["state"] == "submitted"
    assert backend.saved[-1]["fp"]["seedance_task_id"] == "seed15abcpro"


def test_a_store_that_stays_away_still_fails_the_write() -> None:
    backend = FlakyBackend(failures=1_000)
    record = SubmissionRecord(backend, where="test", save_retry_seconds=0)
    with pytest.raises(ConnectionError):
        record.mark_submitted(("fp", "seed15abcpro"))


def test_a_batch_record_in_parts_keeps_each_part_in_its_own_variable(monkeypatch) -> None:
    """Airflow 3.1-3.2: part i of a batch's record is a Variable of its own (a hashed name per
    part, the task instance's description on each), read back in order up to the first missing."""
    from types import SimpleNamespace

    from airflow_provider_seedance.reattach import RECORD_KEY, part_key, variable_name

    stored: dict[str, str] = {}
    descriptions: dict[str, str] = {}

    def set_(key: str, value: str, description: str | None = None, **_: Any) -> None:
        stored[key] = value
        descriptions[key] = description or ""

    monkeypatch.setattr(Variable, "get", lambda key, default=None, **_: stored.get(key, default))
    monkeypatch.setattr(Variable, "set", set_)
    ti = SimpleNamespace(dag_id="dag", run_id="run", task_id="task", map_index=-1)
    record = SubmissionRecord.for_context({"ti": ti}, shard_size=2)
    record.mark_submitting("a", "b", "c")
    names = [variable_name("dag", "run", "task", -1, key=part_key(RECORD_KEY, part)) for part in (0, 1)]
    assert names[0] == variable_name("dag", "run", "task", -1)  # part 0: the record's usual name
    assert sorted(stored) == sorted(names)
    assert len(set(descriptions.values())) == 1 and "dag_id='dag'" in descriptions[names[0]]
    again = SubmissionRecord.for_context({"ti": ti}, shard_size=2)
    assert sorted(again.entries) == ["a", "b", "c"]
