"""A POST answer that reaches a try Airflow already declared dead is not lost.

Such a try's task state store writes are refused (the Execution API answers 404 for a try
moved to the task instance's history), so it hands the task id over in an Airflow Variable;
the next try adopts it for the very ``submitting`` mark it answers and re-attaches: the
generation that was paid for is delivered, and nothing is paid twice. (Red-team finding on
the production shape: a Celery worker frozen mid-POST, an API server stalled past the
heartbeat timeout.)
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from airflow_provider_seedance.exceptions import SeedanceBatchFailedError, SeedanceSubmissionUncertainError
from airflow_provider_seedance.operators.batch import SeedanceBatchGenerateOperator
from airflow_provider_seedance.reattach import RECORD_KEY, SubmissionRecord, variable_name
from tests.unit.fakes import FakeHook, Store, context, use
from tests.unit.operators.test_single_submit_rules import CHEAP, single

_MISSING = object()


class Variables:
    """Airflow Variables as the task SDK offers them (``get``/``set``), in a dict: ``get`` of a
    missing key without a default raises ``KeyError``, as the SDK's does."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.descriptions: dict[str, str | None] = {}
        self.reads = 0

    def get(self, key: str, default: Any = _MISSING) -> Any:
        self.reads += 1
        if key not in self.values and default is _MISSING:
            raise KeyError(f"Variable {key} does not exist")
        return self.values.get(key, default)

    def set(self, key: str, value: str, description: str | None = None) -> None:
        self.values[key] = value
        self.descriptions[key] = description


@pytest.fixture
def variables(monkeypatch: pytest.MonkeyPatch) -> Variables:
    fake = Variables()
    monkeypatch.setattr("airflow.sdk.Variable", fake)
    monkeypatch.setattr("airflow_provider_seedance.reattach.SAVE_RETRY_SECONDS", 0)
    return fake


class DeclaredDead(Store):
    """The task state store of a try Airflow declared dead after ``allowed`` writes."""

    def __init__(self, allowed: int) -> None:
        super().__init__()
        self.allowed: int | None = allowed

    def set(self, key: str, value: Any) -> None:
        if self.allowed is not None and self.writes >= self.allowed:
            raise RuntimeError("404 Not Found: task instance is not the current try")
        super().set(key, value)

    def next_try(self) -> DeclaredDead:
        self.allowed = None  # the next try is the current one: its writes are accepted
        return self


LATE = variable_name("dag", "run", "task", -1, key=f"{RECORD_KEY}.late")


def test_an_answer_that_reached_a_dead_try_is_adopted_and_the_next_try_re_attaches(
    variables: Variables,
) -> None:
    store = DeclaredDead(allowed=1)  # the submitting mark was written; the answer's write is refused
    with pytest.raises(RuntimeError, match="404"):
        single(FakeHook(statuses={"gen-1": ["IN_PROGRESS"]}), **CHEAP).execute(context(store))
    assert "gen-1" in variables.values[LATE]
    assert variables.descriptions[LATE] == (
        "airflow-provider-seedance: generations submitted by task instance dag_id='dag' run_id='run' "
        "task_id='task' map_index=-1 (late answers)"
    ), "seedance-records prune finds it by this description"

    hook = FakeHook(statuses={"gen-1": ["SUCCESS"]})
    result = single(hook, **CHEAP).execute(context(store.next_try()))

    assert hook.posts == [], "the paid generation is re-attached, not paid again"
    assert result["task_id"] == "gen-1" and result["seedance_task_ids"] == ["gen-1"]
    [entry] = store.entries().values()
    assert (entry["state"], entry["seedance_task_id"]) == ("submitted", "gen-1"), "stored for good"
    assert entry["history"] == ["gen-1"]


def test_an_answer_to_an_older_mark_is_not_taken_for_the_current_one(variables: Variables) -> None:
    store = DeclaredDead(allowed=1)
    with pytest.raises(RuntimeError):
        single(FakeHook(), **CHEAP).execute(context(store))
    # the late answer says it answers a mark made at another time than the one on record
    variables.values[LATE] = variables.values[LATE].replace('"submitted_at": ', '"submitted_at": 1')

    hook = FakeHook()
    with pytest.raises(SeedanceSubmissionUncertainError):
        single(hook, **CHEAP).execute(context(store.next_try()))
    assert hook.posts == []


@pytest.mark.parametrize("stored", ["not json", '{"fp": "gen-1"}', "[1, 2]"])
def test_an_unreadable_hand_over_leaves_the_mark_uncertain_and_sends_nothing(
    variables: Variables, stored: str
) -> None:
    store = DeclaredDead(allowed=1)
    with pytest.raises(RuntimeError):
        single(FakeHook(), **CHEAP).execute(context(store))
    variables.values[LATE] = stored

    hook = FakeHook()
    with pytest.raises(SeedanceSubmissionUncertainError):
        single(hook, **CHEAP).execute(context(store.next_try()))
    assert hook.posts == []


def three_items(hook: FakeHook) -> SeedanceBatchGenerateOperator:
    """A blocking batch of three cheap items, all three POSTs in flight at once."""
    items = [{"prompt": f"item {n}", **CHEAP} for n in range(3)]
    return use(
        SeedanceBatchGenerateOperator(
            task_id="batch", requests=items, deferrable=False, poll_interval=0.001, max_in_flight=3
        ),
        hook,
    )


def test_a_batch_whose_record_writes_were_refused_re_attaches_every_answered_item(
    variables: Variables,
) -> None:
    store = DeclaredDead(allowed=1)  # the three marks went in one write, then the try was declared dead
    with pytest.raises(RuntimeError, match="404"):
        three_items(FakeHook()).execute(context(store))

    hook = FakeHook()
    outcome = three_items(hook).execute(context(store.next_try()))

    assert hook.posts == []
    assert sorted(r["task_id"] for r in outcome["results"]) == ["gen-1", "gen-2", "gen-3"]
    assert all(r["outcome"] == "succeeded" for r in outcome["results"])


def test_a_record_without_uncertain_marks_never_reads_the_hand_over(variables: Variables) -> None:
    store = Store()
    single(FakeHook(), **CHEAP).execute(context(store))
    # Read while the store is empty: the record an Airflow 3.1-3.2 try may have left (its name
    # and release 0.1's).
    first = variables.reads
    assert first <= 2
    single(FakeHook(), **CHEAP).execute(context(store))
    assert variables.reads == first, "a Variable read per try would cost every task an API call"


def test_the_hand_over_is_written_at_the_first_refused_write_not_after_the_retries(
    variables: Variables, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Airflow kills a dead try seconds after it notices; the retries last up to minutes."""
    monkeypatch.setattr("airflow_provider_seedance.reattach.SAVE_RETRY_SECONDS", 60)
    monkeypatch.setattr("tenacity.nap.time.sleep", lambda _s: None)
    store = Store()
    record = SubmissionRecord.for_context(context(store))
    seen: list[bool] = []
    record.mark_submitting("fp")  # the mark is written; the answer's write is refused twice
    attempts = iter([True, True, False])

    def flaky(key: str, value: Any) -> None:
        seen.append(LATE in variables.values)
        if next(attempts):
            raise RuntimeError("404")
        Store.set(store, key, value)

    store.set = flaky  # type: ignore[method-assign]
    record.mark_submitted(("fp", "gen-9"))

    assert seen == [False, True, True], "handed over after the first refusal"


def test_no_hand_over_is_kept_once_the_answer_is_stored(variables: Variables) -> None:
    store = DeclaredDead(allowed=2)  # the mark and the answer are stored, the outcome is refused
    record = SubmissionRecord.for_context(context(store))
    assert record.get("fp") is None  # loaded: the empty store's Variable fallback is read here
    loaded = variables.reads
    record.mark_submitting("fp")
    record.mark_submitted(("fp", "gen-9"))
    with pytest.raises(RuntimeError, match="404"):
        record.mark_finished(("fp", {"task_id": "gen-9", "status": "SUCCESS"}))
    assert LATE not in variables.values and variables.reads == loaded


def test_batch_failure_is_still_reported_when_items_stay_uncertain(variables: Variables) -> None:
    """Without a hand-over (the dead try was killed first), the items stay uncertain: nothing
    is paid again, and the batch says so."""
    store = DeclaredDead(allowed=1)
    items = [{"prompt": "item 0", **CHEAP}]
    operator = SeedanceBatchGenerateOperator(
        task_id="batch", requests=items, deferrable=False, poll_interval=0.001
    )
    with pytest.raises(RuntimeError):
        use(operator, FakeHook()).execute(context(store))
    del variables.values[LATE]

    hook = FakeHook()
    with pytest.raises(SeedanceBatchFailedError, match="uncertain"):
        use(operator, hook).execute(context(store.next_try()))
    assert hook.posts == []


class StalledVariables(Variables):
    """The API server stalled: the next ``failing_sets`` writes and ``failing_gets`` reads fail."""

    def __init__(self) -> None:
        super().__init__()
        self.failing_sets = self.failing_gets = 0

    def get(self, key: str, default: Any = None) -> Any:
        if self.failing_gets:
            self.failing_gets -= 1
            raise RuntimeError("503 API server stalled")
        return super().get(key, default)

    def set(self, key: str, value: str, description: str | None = None) -> None:
        if self.failing_sets:
            self.failing_sets -= 1
            raise RuntimeError("503 API server stalled")
        super().set(key, value, description)


@pytest.fixture
def stalled(monkeypatch: pytest.MonkeyPatch) -> StalledVariables:
    fake = StalledVariables()
    monkeypatch.setattr("airflow.sdk.Variable", fake)
    monkeypatch.setattr("airflow_provider_seedance.reattach.SAVE_RETRY_SECONDS", 0.3)
    monkeypatch.setattr("tenacity.nap.time.sleep", lambda _s: None)
    return fake


def test_a_hand_over_that_failed_is_tried_again_while_the_record_write_is(stalled: StalledVariables) -> None:
    """Found by review: the stalled API server refused the first hand-over too; the answers
    must still be handed over once Variables answer again."""
    stalled.failing_sets = 1
    store = DeclaredDead(allowed=1)
    with pytest.raises(RuntimeError, match="404"):
        single(FakeHook(), **CHEAP).execute(context(store))
    assert "gen-1" in stalled.values[LATE]

    hook = FakeHook()
    assert single(hook, **CHEAP).execute(context(store.next_try()))["task_id"] == "gen-1"
    assert hook.posts == []


def test_a_hand_over_never_overwrites_what_it_could_not_read(stalled: StalledVariables) -> None:
    """Found by review: taking an unreadable Variable for an empty one would drop the answers
    an earlier dead try handed over."""
    from airflow_provider_seedance.reattach import LateAnswers

    late = LateAnswers(LATE, "test")
    assert late.write({"fp-a": ("gen-a", 1.5)})
    stalled.failing_gets = 1
    assert not late.write({"fp-b": ("gen-b", 2.5)}), "not written over an unread value"
    assert late.read() == {"fp-a": ("gen-a", 1.5)}
    assert late.write({"fp-b": ("gen-b", 2.5)})
    assert late.read() == {"fp-a": ("gen-a", 1.5), "fp-b": ("gen-b", 2.5)}


def test_only_well_formed_answers_are_read() -> None:
    import json

    from airflow_provider_seedance.reattach import LateAnswers

    fake = Variables()
    fake.values[LATE] = json.dumps(
        {
            "empty-id": {"seedance_task_id": "", "submitted_at": 1.0},
            "text-time": {"seedance_task_id": "gen-2", "submitted_at": "1.0"},
            "number-id": {"seedance_task_id": 7, "submitted_at": 1.0},
            "flag-time": {"seedance_task_id": "gen-3", "submitted_at": True},  # JSON true, not a time
            "good": {"seedance_task_id": "gen-4", "submitted_at": 4},
        }
    )
    import airflow.sdk

    real, airflow.sdk.Variable = airflow.sdk.Variable, fake  # type: ignore[misc]
    try:
        assert LateAnswers(LATE, "test").read() == {"good": ("gen-4", 4.0)}
    finally:
        airflow.sdk.Variable = real  # type: ignore[misc]


def test_an_answer_to_another_mark_does_not_stop_the_adoption_of_the_next(variables: Variables) -> None:
    import json

    store = DeclaredDead(allowed=1)
    with pytest.raises(RuntimeError):
        single(FakeHook(), **CHEAP).execute(context(store))
    handed = json.loads(variables.values[LATE])
    [(fingerprint, answer)] = handed.items()
    # an answer for a request this task no longer makes, listed first, is passed over
    variables.values[LATE] = json.dumps({"0-other": {**answer, "submitted_at": 1.0}, fingerprint: answer})

    hook = FakeHook()
    assert single(hook, **CHEAP).execute(context(store.next_try()))["task_id"] == "gen-1"
    assert hook.posts == []


@pytest.mark.parametrize("edited", ["[]", "not json", '"a string"'])
def test_a_hand_over_edited_into_no_json_object_is_unreadable_and_kept(
    variables: Variables, edited: str
) -> None:
    """The late answers are read with the record's own Variable codec: a value that is no JSON
    object is unreadable (nothing adopted) and is never written over."""
    from airflow_provider_seedance.reattach import LateAnswers

    variables.values[LATE] = edited
    late = LateAnswers(LATE, "test")
    assert late.read() == {}
    assert not late.write({"fp-a": ("gen-a", 1.5)})
    assert variables.values[LATE] == edited


def test_answers_that_arrive_while_a_refused_write_is_retried_are_handed_over_too(
    variables: Variables, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Production-shape finding: a batch writes one answer while its other POSTs are still in
    flight; the write is refused (the try was declared dead) and retried, and the answers that
    come back meanwhile were neither written nor handed over: killed seconds later, the try left
    them uncertain, and the next run paid for them again. They are handed over with the first."""
    monkeypatch.setattr("airflow_provider_seedance.reattach.SAVE_RETRY_SECONDS", 1.0)
    pause = time.sleep
    monkeypatch.setattr("tenacity.nap.time.sleep", lambda _s: pause(0.01))  # retries without the waits
    declared_dead = threading.Event()

    def answered_after_the_refusal(request: Any) -> None:
        if request.prompt != "item 0":
            declared_dead.wait(timeout=60)

    class Refusing(DeclaredDead):
        def set(self, key: str, value: Any) -> None:
            if self.allowed is not None and self.writes >= self.allowed:
                declared_dead.set()
            super().set(key, value)

    store = Refusing(allowed=1)  # the three marks went in one write; the first answer's is refused
    with pytest.raises(RuntimeError, match="404"):
        three_items(FakeHook(on_post=answered_after_the_refusal)).execute(context(store))

    hook = FakeHook()
    outcome = three_items(hook).execute(context(store.next_try()))

    assert hook.posts == []
    assert sorted(r["task_id"] for r in outcome["results"]) == ["gen-1", "gen-2", "gen-3"]
    assert all(r["outcome"] == "succeeded" for r in outcome["results"])


def test_a_new_mark_for_a_request_already_handed_over_is_handed_over_in_its_turn(
    variables: Variables,
) -> None:
    """A try whose writes are refused hands an answer over, then marks the same request again (a
    resubmission) and gets another answer: that one answers the mark on record, and is the one the
    next try must find; the earlier hand-over must not stand for it."""
    from airflow_provider_seedance import reattach

    store = DeclaredDead(allowed=1)
    record = SubmissionRecord.for_context(context(store))
    record.mark_submitting("fp")  # stored: the last write the store accepts
    first = record.get("fp")
    record.mark_submitting("other", save=False)
    with pytest.raises(RuntimeError, match="404"):
        record.flush(arrived=lambda: [("fp", "gen-1")])
    assert reattach.LateAnswers(LATE, "late").read()["fp"] == ("gen-1", first.submitted_at)

    time.sleep(0.01)  # a later mark
    record.mark_submitting("fp", save=False)
    second = record.get("fp")
    assert second.submitted_at != first.submitted_at
    with pytest.raises(RuntimeError, match="404"):
        record.flush(arrived=lambda: [("fp", "gen-2")])

    assert reattach.LateAnswers(LATE, "late").read()["fp"] == ("gen-2", second.submitted_at)


def test_adopting_reads_the_hand_over_like_a_record_and_handing_over_reads_it_once(
    variables: Variables, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next try's read of the hand-over is retried while the API server restarts (an answer not
    read leaves its generation uncertain and fails the task); the dying try's read is never waited on."""
    from airflow_provider_seedance import reattach

    waits: list[float | None] = []
    real = reattach.read_variable

    def spy(name: str, retry_seconds: float | None = None) -> str | None:
        waits.append(retry_seconds)
        return real(name, retry_seconds=retry_seconds)

    monkeypatch.setattr(reattach, "read_variable", spy)
    late = reattach.LateAnswers(LATE, "late")
    assert late.write({"fp": ("gen-1", 1.0)})
    assert waits == [0]
    assert late.read() == {"fp": ("gen-1", 1.0)}
    assert waits == [0, None]  # None: READ_RETRY_SECONDS, as for the record itself
