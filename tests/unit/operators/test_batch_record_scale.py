"""The batch's re-attach record at scale: what recording one item costs does not grow with N,
and the money rule holds across the record's parts.

The record of a big batch is kept in parts of ``BATCH_SHARD_SIZE`` entries and each write stores
only the parts that changed. These tests count writes and bytes written (never time): written
whole for every item, as before, the bytes per item grew with N (8x from 128 to 1,024 items).
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from typing import Any

import pytest

from airflow_provider_seedance.exceptions import SeedanceBatchFailedError
from airflow_provider_seedance.reattach import BATCH_SHARD_SIZE, RECORD_KEY, SubmissionRecord, part_key
from tests.state_store import Killed, Store
from tests.unit.fakes import FakeHook, batch, context


class MeteredStore(Store):
    """The test store, also counting the JSON bytes each write sends (as Airflow's store does)."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes_written = 0
        self.largest_write = 0

    def set(self, key: str, value: Any) -> None:
        size = len(json.dumps(value))
        super().set(key, value)
        self.bytes_written += size
        self.largest_write = max(self.largest_write, len(value))


def items(n: int) -> list[dict[str, Any]]:
    return [{"prompt": f"item {i}", "resolution": "480p", "duration": 4} for i in range(n)]


def submit(n: int, max_in_flight: int = 1) -> MeteredStore:
    store = MeteredStore()
    op = batch(FakeHook(), items(n), max_in_flight=max_in_flight, wait_for_completion=False)
    op.execute(context(store))
    return store


@pytest.mark.parametrize("max_in_flight", [1, 8])
def test_recording_an_item_costs_the_same_whatever_the_batch_size(max_in_flight: int) -> None:
    small, large = 2 * BATCH_SHARD_SIZE, 16 * BATCH_SHARD_SIZE
    stores = {n: submit(n, max_in_flight) for n in (small, large)}
    writes = {n: store.writes / n for n, store in stores.items()}
    written = {n: store.bytes_written / n for n, store in stores.items()}
    # Writes per item and bytes per item stay flat (a whole-record write per item: 8x).
    assert writes[large] <= writes[small] * 1.05, writes
    assert written[large] <= written[small] * 1.25, written
    # No write holds more than one part's entries, however big the batch.
    assert stores[large].largest_write <= BATCH_SHARD_SIZE
    # Every item is on record, each in exactly one part.
    assert len(stores[large].entries()) == large
    keys = [k for k in stores[large].data if k == RECORD_KEY or k.startswith(f"{RECORD_KEY}.")]
    assert len(keys) == large // BATCH_SHARD_SIZE


def test_each_post_is_preceded_by_its_durable_mark_across_parts() -> None:
    """Items beyond the first part are marked in a part of their own before their POSTs."""
    store = Store()
    n = BATCH_SHARD_SIZE + 6
    missing: list[str] = []

    def check(request: Any) -> None:
        entries = store.entries().values()
        marked = {entry["fingerprint"] for entry in entries if entry["state"] == "submitting"}
        if not any(request.fingerprint() in key for key in marked):
            missing.append(request.prompt)

    op = batch(FakeHook(on_post=check), items(n), max_in_flight=3, wait_for_completion=False)
    op.execute(context(store))
    assert missing == []
    assert len(store.entries()) == n


@pytest.mark.parametrize("kill_at", range(BATCH_SHARD_SIZE - 3, BATCH_SHARD_SIZE + 6))
def test_a_kill_at_any_write_around_a_part_boundary_never_pays_twice(kill_at: int) -> None:
    """One POST at a time, one write per answer: writes BATCH_SHARD_SIZE + 1 and + 2 store
    the last answer of part 0 and the first mark of part 1."""
    store = Store()
    hook = FakeHook()
    store.kill_at_write = kill_at
    with pytest.raises(Killed):
        batch(hook, items(BATCH_SHARD_SIZE + 8), wait_for_completion=False).execute(context(store))
    store.kill_at_write = None
    # An item whose answer the kill lost stays uncertain and fails the retry; never resent.
    with contextlib.suppress(SeedanceBatchFailedError):
        batch(hook, items(BATCH_SHARD_SIZE + 8), wait_for_completion=False).execute(context(store))
    posts = Counter(request.prompt for request in hook.posts)
    assert max(posts.values()) == 1, [p for p, count in posts.items() if count > 1]
    assert len(store.entries()) == BATCH_SHARD_SIZE + 8


def test_a_record_in_parts_reads_back_whole_and_stops_at_the_first_missing_part() -> None:
    store = Store()
    record = SubmissionRecord.for_context(context(store), shard_size=2)
    record.mark_submitting("a", "b", "c", "d", "e")
    assert sorted(store.data) == [RECORD_KEY, part_key(RECORD_KEY, 1), part_key(RECORD_KEY, 2)]
    again = SubmissionRecord.for_context(context(store), shard_size=2)
    assert sorted(again.entries) == ["a", "b", "c", "d", "e"]
    # A change to one entry writes its part only.
    writes = store.writes
    again.mark_submitted(("d", "gen-d"))
    assert store.writes == writes + 1 and store.data[part_key(RECORD_KEY, 1)]["d"]["state"] == "submitted"
    # An entry renamed (a key written by 0.1) stays in its part, and is stored on the next write.
    again.rename("a", "a2")
    again.flush()
    assert "a2" in store.data[RECORD_KEY] and "a" not in store.data[RECORD_KEY]


def test_parts_of_one_entry_each_work_and_a_size_below_one_is_refused() -> None:
    store = Store()
    record = SubmissionRecord.for_context(context(store), shard_size=1)
    record.mark_submitting("a", "b")
    assert sorted(store.data) == [RECORD_KEY, part_key(RECORD_KEY, 1)]
    with pytest.raises(ValueError, match=r"shard_size must be >= 1 \(or None: one part\)"):
        SubmissionRecord.for_context(context(store), shard_size=0)


def test_rename_never_overwrites_a_taken_key_nor_invents_an_absent_one() -> None:
    store = Store()
    record = SubmissionRecord.for_context(context(store), shard_size=4)
    record.mark_submitting("a")
    record.mark_submitted(("b", "gen-b"))
    record.rename("a", "b")  # "b" is taken: both stay as they are
    record.rename("absent", "c")  # nothing to move
    record.flush()
    assert store.entries()["b"]["seedance_task_id"] == "gen-b"
    assert sorted(store.entries()) == ["a", "b"]
