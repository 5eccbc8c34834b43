"""A try that runs after Airflow was upgraded from 3.1-3.2 to 3.3 finds what an earlier try submitted.

Before 3.3 the submission record is an Airflow Variable; from 3.3 on it is in the task state
store. A try that died on 3.2 after its POST and is retried on 3.3 must re-attach to the paid
generation (or refuse an uncertain mark), not submit again because the new store is empty. The
Variable is read only while the store holds no record. Variables and the store are faked
(narrow logic); the operators are the real ones. Also here: what Airflow 3.3 deletes by itself
(retention, ``clear_on_success``) never takes a record a clear needs.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from airflow_provider_seedance.exceptions import SeedanceSubmissionUncertainError
from airflow_provider_seedance.reattach import SubmissionRecord
from tests.state_store import Killed
from tests.unit.fakes import TI, FakeHook, Store
from tests.unit.operators.test_single_submit_rules import CHEAP, single

_MISSING = object()


class Variables:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.reads: list[str] = []

    def get(self, key: str, default: Any = _MISSING) -> Any:
        self.reads.append(key)
        if key not in self.values and default is _MISSING:
            raise KeyError(key)
        return self.values.get(key, default)

    def set(self, key: str, value: str, description: str | None = None) -> None:
        self.values[key] = value


@pytest.fixture
def variables(monkeypatch: pytest.MonkeyPatch) -> Variables:
    fake = Variables()
    monkeypatch.setattr("airflow.sdk.Variable", fake)
    monkeypatch.setattr("airflow_provider_seedance.reattach.SAVE_RETRY_SECONDS", 0)
    return fake


def try_of(number: int) -> TI:
    ti = TI()
    ti.try_number = number
    return ti


def on_3_2(number: int) -> dict[str, Any]:
    return {"ti": try_of(number), "outlet_events": defaultdict(lambda: None)}


def on_3_3(store: Store, number: int) -> dict[str, Any]:
    return {"task_state_store": store, "ti": try_of(number), "outlet_events": defaultdict(lambda: None)}


def test_a_generation_submitted_on_3_2_is_reattached_by_the_retry_on_3_3(variables: Variables) -> None:
    SubmissionRecord.for_context(on_3_2(1)).mark_submitted(("fp", "gen-7"))

    found = SubmissionRecord.for_context(on_3_3(Store(), 2)).get("fp")

    assert found is not None and found.seedance_task_id == "gen-7"


def test_the_single_operator_retried_across_the_upgrade_does_not_pay_again(variables: Variables) -> None:
    paid = FakeHook()
    single(paid, **CHEAP).execute(on_3_2(1))  # try 1 on 3.2: paid, recorded in its Variable
    assert len(paid.posts) == 1

    again = FakeHook()
    result = single(again, **CHEAP).execute(on_3_3(Store(), 2))  # cleared, runs on 3.3

    assert again.posts == [] and result["task_id"] == "gen-1"


def test_an_uncertain_mark_left_on_3_2_is_still_uncertain_on_3_3(variables: Variables) -> None:
    SubmissionRecord.for_context(on_3_2(1)).mark_submitting("fp")
    found = SubmissionRecord.for_context(on_3_3(Store(), 2)).get("fp")
    assert found is not None and found.uncertain


def test_once_the_store_holds_the_record_it_wins_over_the_old_variable(variables: Variables) -> None:
    SubmissionRecord.for_context(on_3_2(1)).mark_submitted(("fp", "gen-old"))
    store = Store()
    first = SubmissionRecord.for_context(on_3_3(store, 2))
    first.mark_submitted(("fp", "gen-new"))  # e.g. gen-old FAILED and was replaced

    found = SubmissionRecord.for_context(on_3_3(store, 3)).get("fp")

    assert found is not None and found.seedance_task_id == "gen-new"


def test_the_variable_is_read_only_while_the_store_is_empty(variables: Variables) -> None:
    store = Store()
    single(FakeHook(), **CHEAP).execute(on_3_3(store, 1))
    first = list(variables.reads)
    assert 1 <= len(first) <= 2  # the record's name, and release 0.1's
    single(FakeHook(), **CHEAP).execute(on_3_3(store, 2))
    assert variables.reads == first, "a Variable read per try would cost every task an API call"


def test_a_deferred_try_resumed_after_the_upgrade_finds_its_record(variables: Variables) -> None:
    """A task that deferred on 3.2 resumes on 3.3 as the same try (try 1): what it paid for is
    still its own."""
    SubmissionRecord.for_context(on_3_2(1)).mark_submitted(("fp", "gen-7"))
    found = SubmissionRecord.for_context(on_3_3(Store(), 1)).get("fp")
    assert found is not None and found.seedance_task_id == "gen-7"


def test_a_batch_record_in_parts_is_read_part_by_part_across_the_upgrade(variables: Variables) -> None:
    old = SubmissionRecord.for_context(on_3_2(1), shard_size=1)
    old.mark_submitted(("a", "gen-a"), ("b", "gen-b"))  # part 0 and part 1, in Variables
    store = Store()
    moved = SubmissionRecord.for_context(on_3_3(store, 2), shard_size=1)
    moved.mark_submitted(("b", "gen-b2"))  # both parts were copied to the store; part 1 is rewritten

    again = SubmissionRecord.for_context(on_3_3(store, 3), shard_size=1)

    a, b = again.get("a"), again.get("b")
    assert a is not None and a.seedance_task_id == "gen-a"  # part 0: the Variable's, as copied
    assert b is not None and b.seedance_task_id == "gen-b2"  # part 1: the store's, newer


def test_a_post_whose_answer_was_lost_on_3_2_is_not_sent_again_on_3_3(variables: Variables) -> None:
    lost = FakeHook(submits=[SeedanceSubmissionUncertainError("read timeout after sending")])
    with pytest.raises(SeedanceSubmissionUncertainError):
        single(lost, **CHEAP).execute(on_3_2(1))
    again = FakeHook()
    with pytest.raises(SeedanceSubmissionUncertainError, match="force_new=True"):
        single(again, **CHEAP).execute(on_3_3(Store(), 2))
    assert len(lost.posts) == 1 and again.posts == []


# ------------------------------------------------------------------ what Airflow deletes by itself
class RetentionStore(Store):
    """The 3.3 accessor's ``set`` signature: ``retention`` decides when the key may be deleted."""

    def __init__(self) -> None:
        super().__init__()
        self.retentions: list[Any] = []

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:  # type: ignore[override]
        self.retentions.append(retention)
        super().set(key, value)


def test_a_record_in_the_task_state_store_never_expires(variables: Variables) -> None:
    """``[state_store] default_retention_days`` (30) would delete it, and a clear of a month-old
    run would pay again. (Before 3.3 there is no task state store and no retention to pass.)"""
    try:
        from airflow.sdk.execution_time.context import NEVER_EXPIRE
    except ImportError:
        NEVER_EXPIRE = None

    store = RetentionStore()
    single(FakeHook(), **CHEAP).execute(on_3_3(store, 1))
    assert store.retentions and all(r is NEVER_EXPIRE for r in store.retentions)


class ClearedOnSuccess(Store):
    """``[state_store] clear_on_success``: Airflow deletes every key when the task succeeds."""

    def wipe(self) -> None:
        self.data.clear()


@pytest.fixture
def clear_on_success(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__STATE_STORE__CLEAR_ON_SUCCESS", "True")


def test_with_clear_on_success_a_clear_after_success_does_not_pay_again(
    variables: Variables, clear_on_success: None
) -> None:
    store = ClearedOnSuccess()
    paid = FakeHook()
    single(paid, **CHEAP).execute(on_3_3(store, 1))
    store.wipe()  # the task succeeded: Airflow deleted its keys

    again = FakeHook()
    result = single(again, **CHEAP).execute(on_3_3(store, 2))  # a clear

    assert len(paid.posts) == 1 and again.posts == [] and result["task_id"] == "gen-1"


def test_turning_clear_on_success_on_keeps_the_record_the_store_held_past_the_wipe(
    variables: Variables, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ClearedOnSuccess()
    paid = FakeHook()
    single(paid, **CHEAP).execute(on_3_3(store, 1))  # recorded in the store (setting off)
    monkeypatch.setenv("AIRFLOW__STATE_STORE__CLEAR_ON_SUCCESS", "True")
    retried = FakeHook()
    result = single(retried, **CHEAP).execute(on_3_3(store, 2))  # re-attaches: writes nothing new
    store.wipe()  # it succeeded: Airflow deleted its keys

    again = FakeHook()
    cleared = single(again, **CHEAP).execute(on_3_3(store, 3))

    assert len(paid.posts) == 1 and retried.posts == [] and again.posts == []
    assert result["task_id"] == cleared["task_id"] == "gen-1"


def test_a_record_read_from_the_old_place_is_copied_forward_part_by_part(variables: Variables) -> None:
    old = SubmissionRecord.for_context(on_3_2(1), shard_size=1)
    old.mark_submitted(("a", "gen-a"), ("b", "gen-b"))
    store = Store()
    assert SubmissionRecord.for_context(on_3_3(store, 2), shard_size=1).get("b") is not None
    variables.values.clear()  # the Variables are pruned: the store holds the whole record now
    again = SubmissionRecord.for_context(on_3_3(store, 3), shard_size=1)
    a, b = again.get("a"), again.get("b")
    assert a is not None and a.seedance_task_id == "gen-a" and b is not None and b.seedance_task_id == "gen-b"


def test_once_the_store_holds_the_record_the_old_place_is_never_read_again(
    variables: Variables, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A try resumed from deferral, or a batch looking for a part past its last, must not fail
    because the Variables cannot be read (the API server restarting): the record is the store's."""
    monkeypatch.setattr("airflow_provider_seedance.reattach.READ_RETRY_SECONDS", 0)  # fail at once if read
    store = Store()
    first = SubmissionRecord.for_context(on_3_3(store, 1), shard_size=1)
    first.mark_submitted(("a", "gen-a"), ("b", "gen-b"))

    def unreachable(key: str, default: Any = None) -> Any:
        raise RuntimeError(f"API server restarting (reading {key})")

    monkeypatch.setattr(variables, "get", unreachable)
    again = SubmissionRecord.for_context(on_3_3(store, 2), shard_size=1)
    b = again.get("b")
    assert b is not None and b.seedance_task_id == "gen-b" and again.parts == 2


def test_a_copy_forward_cut_short_leaves_no_part_behind(variables: Variables) -> None:
    """The old record is copied last part first: a worker killed during the copy leaves the
    store without a first part, so the next try copies the whole record again (a first part
    copied before a later one would make the store look complete with that later part missing,
    and its generation paid again once the Variables are pruned)."""
    SubmissionRecord.for_context(on_3_2(1), shard_size=1).mark_submitted(("a", "gen-a"), ("b", "gen-b"))
    store = Store()
    store.kill_at_write = 2  # the copy's second write never happens
    with pytest.raises(Killed):
        SubmissionRecord.for_context(on_3_3(store, 2), shard_size=1).get("a")
    store.kill_at_write = None
    SubmissionRecord.for_context(on_3_3(store, 3), shard_size=1).get("a")  # copies again, whole
    variables.values.clear()  # then the Variables are pruned

    again = SubmissionRecord.for_context(on_3_3(store, 4), shard_size=1)
    a, b = again.get("a"), again.get("b")
    assert a is not None and a.seedance_task_id == "gen-a" and b is not None and b.seedance_task_id == "gen-b"
