"""The re-attach record and ``force_new``, driven against the real emulator process.

Each test runs an operator's ``execute`` the way a task try does (its context with a task state
store that survives between tries), with the emulator counting the generate POSTs it received:
the promise under test is always "no generation whose task id is recorded is paid twice".
A "kill" is a ``BaseException`` thrown from the store's write, as a SIGKILL would stop a worker
between two instructions.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any

import pytest

from airflow_provider_seedance.exceptions import (
    SeedanceBatchFailedError,
    SeedanceSubmissionUncertainError,
)
from airflow_provider_seedance.operators.batch import SeedanceBatchGenerateOperator
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator
from tests.state_store import Killed, Store

pytestmark = pytest.mark.integration

FAST = {"retry_min_wait": 0.01, "retry_max_wait": 0.05, "status_retries": 2}


class TI:
    def __init__(self) -> None:
        self.dag_id, self.run_id, self.task_id = "money", "run", "task"
        self.map_index, self.try_number = -1, 1
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def context(store: Store) -> dict[str, Any]:
    return {"task_state_store": store, "ti": TI(), "outlet_events": defaultdict(lambda: None)}


def single(**kwargs: Any) -> SeedanceGenerateOperator:
    kwargs.setdefault("deferrable", False)
    return SeedanceGenerateOperator(
        task_id="generate", prompt="a red fox in snow", poll_interval=0.1, hook_params=FAST, **kwargs
    )


def batch(requests: list[dict[str, Any]], **kwargs: Any) -> SeedanceBatchGenerateOperator:
    kwargs.setdefault("deferrable", False)
    return SeedanceBatchGenerateOperator(
        task_id="batch", requests=requests, poll_interval=0.1, hook_params=FAST, **kwargs
    )


def posts(emulator) -> int:
    return emulator.ledger()["generate_requests"]


def test_lost_answer_is_never_resent_and_force_new_releases_it_once(emulator) -> None:
    store = Store()
    emulator.add_faults({"endpoint": "generate", "fault": "drop", "times": 1})
    with pytest.raises(SeedanceSubmissionUncertainError):
        single().execute(context(store))
    assert posts(emulator) == 1
    [entry] = store.entries().values()
    assert entry["state"] == "submitting"

    # A plain retry refuses to pay again.
    with pytest.raises(SeedanceSubmissionUncertainError, match="force_new=True"):
        single().execute(context(store))
    assert posts(emulator) == 1

    # force_new releases the uncertain mark: one new POST, recorded like any other.
    ctx = context(store)
    result = single(force_new=True).execute(ctx)
    assert posts(emulator) == 2 and result["status"] == "SUCCESS"
    [entry] = store.entries().values()
    assert entry["state"] == "submitted" and len(entry["released"]) == 1
    assert entry["seedance_task_id"] == result["task_id"]

    # force_new left in the DAG file: later tries re-attach to the recorded id, never pay.
    again = single(force_new=True).execute(context(store))
    assert again["task_id"] == result["task_id"]
    assert posts(emulator) == 2


def test_force_new_never_repays_a_recorded_generation_whose_delivery_failed(emulator, tmp_path) -> None:
    store = Store()
    target = tmp_path / "fox.mp4"
    emulator.add_faults({"endpoint": "video", "fault": "http_500", "times": 100})
    for _ in range(2):  # delivery fails on two tries in a row
        ctx = context(store)
        with pytest.raises(Exception, match=r"(?i)500|download|deliver|fetch"):
            single(force_new=True, output_path=str(target)).execute(ctx)
        # What failed was paid for: the record of the failure says so.
        failure = ctx["ti"].xcoms["seedance_result"]
        assert failure["outcome"] == "paid_not_delivered" and failure["consumed_credits"] > 0
    emulator.clear_faults()
    result = single(force_new=True, output_path=str(target)).execute(context(store))
    assert result["output_path"].endswith("fox.mp4") and target.stat().st_size == result["bytes"]
    assert posts(emulator) == 1


def test_validation_error_records_that_nothing_was_sent(emulator) -> None:
    ctx = context(Store())
    with pytest.raises(ValueError, match="aspect_ratio"):
        single(aspect_ratio="2:1").execute(ctx)
    failure = ctx["ti"].xcoms["seedance_result"]
    assert failure["outcome"] == "not_sent" and failure["consumed_credits"] == 0
    assert "aspect_ratio" in failure["error_message"]
    assert posts(emulator) == 0


def test_generation_failed_records_zero_credits_and_the_reason(emulator) -> None:
    ctx = context(Store())
    emulator.add_faults({"endpoint": "outcome", "fault": "failed", "times": 1})
    with pytest.raises(Exception, match="FAILED"):
        single().execute(ctx)
    failure = ctx["ti"].xcoms["seedance_result"]
    assert failure["outcome"] == "generation_failed" and failure["consumed_credits"] == 0
    assert "moderation" in failure["error_message"]


def test_resubmit_on_failure_resubmits_exactly_n_times(emulator) -> None:
    emulator.add_faults({"endpoint": "outcome", "fault": "failed", "times": 2})
    result = single(resubmit_on_failure=2).execute(context(Store()))
    assert result["status"] == "SUCCESS" and len(result["seedance_task_ids"]) == 3
    assert posts(emulator) == 3

    emulator.reset()
    emulator.add_faults({"endpoint": "outcome", "fault": "failed", "times": 2})
    with pytest.raises(Exception, match="FAILED"):
        single(resubmit_on_failure=1).execute(context(Store()))
    assert posts(emulator) == 2


def test_changed_resolution_never_reattaches_to_the_old_video(emulator) -> None:
    store = Store()
    first = single(resolution="480p").execute(context(store))
    second = single(resolution="720p").execute(context(store))
    assert first["task_id"] != second["task_id"] and posts(emulator) == 2
    assert second["request"]["resolution"] == "720p"


ITEMS = [{"prompt": f"item {n}", "resolution": "480p", "duration": 4} for n in range(3)]


def test_batch_force_new_releases_only_the_uncertain_item(emulator) -> None:
    store = Store()
    emulator.add_faults({"endpoint": "generate", "fault": "drop", "times": 1})
    with pytest.raises(SeedanceBatchFailedError):
        batch(ITEMS, max_in_flight=1).execute(context(store))
    assert posts(emulator) == 3
    states = sorted(e["state"] for e in store.entries().values())
    assert states == ["submitted", "submitted", "submitting"]

    # A retry re-attaches to the two recorded items and leaves the uncertain one alone.
    with pytest.raises(SeedanceBatchFailedError, match="uncertain"):
        batch(ITEMS, max_in_flight=1).execute(context(store))
    assert posts(emulator) == 3

    # force_new, as the error advises: one POST for the uncertain item, none for the others.
    outcome = batch(ITEMS, max_in_flight=1, force_new=True).execute(context(store))
    assert outcome["totals"]["succeeded"] == 3 and posts(emulator) == 4
    charged = emulator.ledger()["accounts"][emulator_key(emulator)]
    assert charged["charged"] - charged["refunded"] == 4 * 8
    # Left in the DAG file, force_new pays for nothing more.
    batch(ITEMS, max_in_flight=1, force_new=True).execute(context(store))
    assert posts(emulator) == 4


def test_batch_records_each_id_the_moment_its_post_returns(emulator) -> None:
    store = Store()
    items = [{"prompt": f"sku {n}", "resolution": "480p", "duration": 4} for n in range(4)]
    emulator.add_faults({"endpoint": "generate", "fault": "slow", "delay": 4, "times": 1})
    worker = threading.Thread(
        target=lambda: batch(items, max_in_flight=4, wait_for_completion=False).execute(context(store)),
        daemon=True,
    )
    worker.start()
    deadline = time.time() + 10
    while time.time() < deadline:
        states = [e["state"] for e in store.entries().values()]
        if states.count("submitted") == 3:
            break
        time.sleep(0.05)
    # Three answers came back while one POST hangs: all three are on record already.
    entries = list(store.entries().values())
    assert sorted(e["state"] for e in entries) == ["submitted", "submitted", "submitted", "submitting"]
    assert all(e["seedance_task_id"] for e in entries if e["state"] == "submitted")
    worker.join(timeout=30)


def test_batch_kill_at_any_write_leaves_at_most_max_in_flight_uncertain(emulator) -> None:
    items = [{"prompt": f"frame {n}", "resolution": "480p", "duration": 4} for n in range(6)]
    kills = 0
    for kill_at in range(1, 30):
        emulator.reset()
        store = Store()
        store.kill_at_write = kill_at
        try:
            batch(items, max_in_flight=2, wait_for_completion=False).execute(context(store))
        except Killed:
            kills += 1
        else:
            break  # this try wrote fewer times than kill_at: every kill point was tried
        entries = list(store.entries().values())
        uncertain = [e for e in entries if e["state"] == "submitting"]
        recorded = {e["seedance_task_id"] for e in entries if e["state"] == "submitted"}
        assert len(uncertain) <= 2
        # Every POST the server answered is on record but those whose answer was being written
        # when the kill came (at most max_in_flight).
        answered = posts(emulator)
        assert answered - len(recorded) <= 2
        # The next try pays only for the items that were never marked: nothing recorded is
        # sent again, and nothing uncertain either.
        store.kill_at_write = None
        try:
            batch(items, max_in_flight=2, wait_for_completion=False).execute(context(store))
        except SeedanceBatchFailedError:
            assert uncertain  # only uncertain items can fail a no-wait batch
        assert posts(emulator) == answered + (6 - len(entries))
    assert kills >= 3


def test_batch_unreadable_status_is_not_a_reason_to_resubmit(emulator) -> None:
    store = Store()
    items = ITEMS[:2]
    batch(items, wait_for_completion=False).execute(context(store))
    assert posts(emulator) == 2
    emulator.add_faults({"endpoint": "status", "fault": "http_500", "times": 1000})
    try:
        with pytest.raises(SeedanceBatchFailedError, match="unknown"):
            batch(items, wait_for_completion=False).execute(context(store))
    finally:
        emulator.clear_faults()
    assert posts(emulator) == 2
    # Once the status can be read again, the same record re-attaches: still no new POST.
    outcome = batch(items).execute(context(store))
    assert outcome["totals"]["succeeded"] == 2 and posts(emulator) == 2


def emulator_key(emulator) -> str:
    from tests.conftest import API_KEY

    return API_KEY
