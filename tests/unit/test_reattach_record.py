"""SubmissionRecord keeps what a retry needs to decide "re-attach, wait or pay": each state
change keeps the request's history, its ``force_new`` releases and what it learned, and an
unreadable entry is an error, never "nothing submitted"."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_seedance.exceptions import SeedanceError
from airflow_provider_seedance.reattach import RECORD_KEY, SubmissionRecord
from tests.unit.fakes import Store, context

FP = "f" * 32


def record(store: Store) -> SubmissionRecord:
    return SubmissionRecord.for_context(context(store))


def saved(store: Store) -> dict[str, Any]:
    return store.entries()[FP]


def submitted_then_released(store: Store) -> SubmissionRecord:
    """gen-1 recorded and finished FAILED; then an uncertain mark released by force_new."""
    rec = record(store)
    rec.mark_submitting(FP)
    rec.mark_submitted((FP, "gen-1"))
    rec.mark_finished((FP, {"task_id": "gen-1", "status": "FAILED"}))
    rec.mark_submitting(FP)  # a resubmission whose answer is lost
    rec.mark_submitting(FP)  # force_new releases it
    return rec


def test_a_release_is_dated_and_keeps_the_history() -> None:
    store = Store()
    submitted_then_released(store)
    entry = saved(store)
    assert entry["state"] == "submitting" and entry["history"] == ["gen-1"]
    assert len(entry["released"]) == 1 and entry["released"][0] > 0


def test_a_refusal_keeps_history_releases_and_the_reason() -> None:
    store = Store()
    rec = submitted_then_released(store)
    rec.mark_rejected(FP, "INVALID_PROMPT: refused", refused=True)
    entry = saved(store)
    assert entry["state"] == "rejected" and entry["error"] == "INVALID_PROMPT: refused"
    assert entry["seedance_task_id"] == "gen-1" and entry["history"] == ["gen-1"]
    assert len(entry["released"]) == 1 and entry["submitted_at"] is not None


def test_a_refusal_of_a_first_submission_names_no_generation() -> None:
    store = Store()
    rec = record(store)
    rec.mark_submitting(FP)
    rec.mark_rejected(FP, "refused", refused=True)
    entry = saved(store)
    assert entry["state"] == "rejected" and entry["seedance_task_id"] is None and entry["history"] == []


def test_forgetting_a_submission_that_created_nothing_restores_the_one_before() -> None:
    store = Store()
    rec = record(store)
    rec.mark_submitting(FP)
    rec.mark_submitted((FP, "gen-1"))
    before = saved(store)
    rec.mark_finished((FP, {"task_id": "gen-1", "status": "FAILED"}))
    rec.mark_submitting(FP)
    rec.mark_submitting(FP)  # released by force_new
    rec.forget_attempt(FP)
    entry = saved(store)
    assert entry["state"] == "submitted" and entry["seedance_task_id"] == "gen-1"
    assert entry["history"] == ["gen-1"]
    assert entry["submitted_at"] is not None and len(entry["released"]) == 1
    assert before["submitted_at"] <= entry["submitted_at"]


def test_forgetting_a_first_submission_leaves_no_entry_and_saves_it() -> None:
    store = Store()
    rec = record(store)
    rec.mark_submitting(FP)
    rec.mark_submitting("other")
    rec.forget_attempt(FP)
    assert list(store.entries()) == ["other"]
    assert record(store).get(FP) is None
    rec.forget_attempt("never-marked")  # nothing to forget: nothing changes
    assert list(store.entries()) == ["other"]


def test_an_unreadable_entry_is_an_error_not_an_empty_record() -> None:
    store = Store()
    store.data[RECORD_KEY] = {FP: {"fingerprint": FP, "state": "lost-in-a-refactor"}}
    with pytest.raises(SeedanceError, match=r"unreadable entry.*fix or delete it"):
        record(store).get(FP)


def test_the_unreadable_entry_error_ends_with_what_to_do() -> None:
    store = Store()
    store.data[RECORD_KEY] = {FP: "not an entry"}
    with pytest.raises(SeedanceError) as raised:
        record(store).get(FP)
    assert str(raised.value).endswith("fix or delete it, then clear the task.")


def test_every_release_is_kept_with_the_time_of_the_mark_it_released() -> None:
    store = Store()
    rec = record(store)
    rec.mark_submitting(FP)
    first_mark = saved(store)["submitted_at"]
    rec.mark_submitting(FP)  # force_new releases the first mark
    second_mark = saved(store)["submitted_at"]
    rec.mark_submitting(FP)  # and, on a later try, the second one
    assert saved(store)["released"] == [first_mark, second_mark]


def test_an_answer_or_a_refusal_can_be_recorded_without_an_earlier_mark() -> None:
    store = Store()
    rec = record(store)
    rec.mark_submitted((FP, "gen-1"))
    rec.mark_rejected("other", "refused", refused=True)
    entry = saved(store)
    assert entry["state"] == "submitted" and entry["history"] == ["gen-1"] and entry["released"] == []
    other = store.entries()["other"]
    assert other["state"] == "rejected" and other["history"] == [] and other["released"] == []


@pytest.mark.parametrize("dies_at_write", [1, 2, 3])
def test_a_flush_cut_short_never_stores_a_part_after_one_it_did_not_store(dies_at_write: int) -> None:
    """Parts are read 0, 1, 2, ... up to the first missing one: a part stored after a missing
    one would be invisible, and its stale older copy (or nothing) read instead."""
    from airflow_provider_seedance.reattach import _TaskStateStoreBackend, part_key
    from tests.state_store import Killed

    store = Store()
    record = SubmissionRecord(_TaskStateStoreBackend(store, RECORD_KEY), where="test", shard_size=1)
    store.kill_at_write = dies_at_write
    with pytest.raises(Killed):
        record.mark_submitting("a", "b", "c")  # three parts, written by one flush
    stored = [part for part in range(3) if part_key(RECORD_KEY, part) in store.data]
    assert stored == list(range(len(stored))), f"parts stored: {stored}"
    assert len(stored) == dies_at_write - 1


class Restarting(Store):
    """A store whose reads fail while Airflow's API server restarts (``failures`` reads)."""

    def __init__(self, failures: int, error: BaseException) -> None:
        super().__init__()
        self.failures = failures
        self.error = error

    def get(self, key: str, default: Any = None) -> Any:
        if self.failures:
            self.failures -= 1
            raise self.error
        return super().get(key, default)


def test_a_read_refused_by_a_restarting_api_server_is_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tenacity.nap.time.sleep", lambda _s: None)
    store = Restarting(0, RuntimeError("API_SERVER_ERROR: connection refused"))
    record(store).mark_submitted((FP, "gen-1"))
    store.failures = 3
    found = record(store).get(FP)
    assert found is not None and found.seedance_task_id == "gen-1" and store.failures == 0


def test_a_store_that_stays_unreachable_stops_the_try(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("airflow_provider_seedance.reattach.READ_RETRY_SECONDS", 0)
    store = Restarting(1, RuntimeError("API_SERVER_ERROR: connection refused"))
    with pytest.raises(RuntimeError, match="connection refused"):
        record(store).get(FP)


def test_an_unreadable_entry_or_a_kill_is_not_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retrying either would only delay (an edited entry) or outlive (a killed worker) the try."""
    monkeypatch.setattr("tenacity.nap.time.sleep", lambda _s: None)
    for error in (SeedanceError("unreadable record"), KeyboardInterrupt()):
        store = Restarting(1, error)
        with pytest.raises(type(error)):
            record(store).get(FP)
        assert store.failures == 0
        assert record(store).get(FP) is None  # the next read is the store's answer


@pytest.mark.parametrize("stored", ["not json", "[1, 2]", 42, ["gen-1"], '"text"'])
def test_a_store_value_that_is_no_json_object_is_an_unreadable_record_not_an_empty_one(stored: Any) -> None:
    """Read as empty, a damaged record would send the POST of every request in it again."""
    from airflow_provider_seedance.reattach import _TaskStateStoreBackend, part_key

    store = Store()
    store.data[part_key(RECORD_KEY, 0)] = stored
    record = SubmissionRecord(_TaskStateStoreBackend(store, RECORD_KEY), where="test")
    with pytest.raises(SeedanceError, match="not a JSON object"):
        record.get(FP)


def test_a_record_kept_as_json_text_in_the_store_is_read() -> None:
    from airflow_provider_seedance.reattach import _TaskStateStoreBackend, part_key

    store = Store()
    writer = SubmissionRecord(_TaskStateStoreBackend(store, RECORD_KEY), where="test")
    writer.mark_submitted((FP, "gen-1"))
    key = part_key(RECORD_KEY, 0)
    store.data[key] = json.dumps(store.data[key])
    reader = SubmissionRecord(_TaskStateStoreBackend(store, RECORD_KEY), where="test")
    found = reader.get(FP)
    assert found is not None and found.history == ("gen-1",)
