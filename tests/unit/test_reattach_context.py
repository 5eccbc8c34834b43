"""Which record a task instance reads and writes (``SubmissionRecord.for_context``).

The promise: every try of one task instance (and only that task instance) finds the record
an earlier try wrote, so a retry re-attaches instead of paying again. On Airflow 3.3+ the
record lives in the task state store; on 3.1-3.2 in a Variable named for the task instance
(dag, run, task, map index, key), falling back to the name release 0.1 wrote. The Variable
API is faked (narrow logic); the real store is exercised in tests/dags.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import Variable
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_seedance.reattach import (
    RECORD_KEY,
    SubmissionRecord,
    _legacy_variable_name,
    variable_name,
)
from tests.unit.fakes import Store


class FakeVariables:
    def __init__(self, stored: dict[str, str] | None = None) -> None:
        self.stored = dict(stored or {})
        self.sets: list[tuple[str, str, str | None]] = []

    def get(self, key: str, default: Any = None, **_: Any) -> Any:
        return self.stored.get(key, default)

    def set(self, key: str, value: str, description: str | None = None, **_: Any) -> None:
        self.sets.append((key, value, description))
        self.stored[key] = value


@pytest.fixture
def variables(monkeypatch: pytest.MonkeyPatch) -> FakeVariables:
    fake = FakeVariables()
    monkeypatch.setattr(Variable, "get", fake.get)
    monkeypatch.setattr(Variable, "set", fake.set)
    return fake


def ti(map_index: Any = -1, dag_id: str = "videos", task_id: str = "generate") -> SimpleNamespace:
    return SimpleNamespace(dag_id=dag_id, run_id="manual__2026-01-01", task_id=task_id, map_index=map_index)


def test_with_a_task_state_store_the_record_lives_there(variables: FakeVariables) -> None:
    store = Store()
    record = SubmissionRecord.for_context({"task_state_store": store, "ti": ti()})
    record.mark_submitting("fp")
    assert record.where == "the task state store"
    assert store.entries()["fp"]["state"] == "submitting"
    assert variables.sets == []


def test_without_a_store_the_record_is_the_variable_named_for_the_task_instance(
    variables: FakeVariables,
) -> None:
    record = SubmissionRecord.for_context({"ti": ti(map_index=3)})
    record.mark_submitting("fp")

    name = variable_name("videos", "manual__2026-01-01", "generate", 3)
    assert record.where == f"Variable {name!r}"
    [(key, value, description)] = variables.sets
    assert key == name
    assert json.loads(value)["fp"]["state"] == "submitting"
    assert description == (
        "airflow-provider-seedance: generations submitted by task instance dag_id='videos' "
        "run_id='manual__2026-01-01' task_id='generate' map_index=3 (re-attach)"
    )


def test_the_next_try_of_the_same_task_instance_reads_what_the_first_wrote(variables: FakeVariables) -> None:
    first = SubmissionRecord.for_context({"ti": ti(map_index=None)})
    first.mark_submitted(("fp", "gen-1"))

    again = SubmissionRecord.for_context({"ti": ti(map_index=None)})
    submission = again.get("fp")
    assert submission is not None and submission.seedance_task_id == "gen-1"
    # an unmapped task instance (map_index None) is the same as map_index -1
    assert variables.sets[0][0] == variable_name("videos", "manual__2026-01-01", "generate", -1)


def test_another_mapped_instance_or_key_has_its_own_record(variables: FakeVariables) -> None:
    SubmissionRecord.for_context({"ti": ti(map_index=0)}).mark_submitted(("fp", "gen-1"))
    assert SubmissionRecord.for_context({"ti": ti(map_index=1)}).get("fp") is None
    assert SubmissionRecord.for_context({"ti": ti(map_index=0)}, key="other").get("fp") is None


def test_a_ti_without_a_map_index_is_unmapped(variables: FakeVariables) -> None:
    bare = SimpleNamespace(dag_id="videos", run_id="manual__2026-01-01", task_id="generate")
    SubmissionRecord.for_context({"ti": bare}).mark_submitting("fp")
    assert variables.sets[0][0] == variable_name("videos", "manual__2026-01-01", "generate", -1)


def test_a_record_written_by_release_0_1_is_found_under_its_old_name(variables: FakeVariables) -> None:
    written_then = Store()  # an entry as a record writes it
    writer = SubmissionRecord.for_context({"task_state_store": written_then, "ti": ti()})
    writer.mark_submitted(("fp", "gen-7"))
    old = "seedance_attach__videos__manual__2026-01-01__generate__-1"
    variables.stored[old] = json.dumps(written_then.entries())

    submission = SubmissionRecord.for_context({"ti": ti()}).get("fp")

    assert submission is not None and submission.seedance_task_id == "gen-7"


@pytest.mark.parametrize(
    ("ids", "key", "expected"),
    [
        (("d", "r", "t", -1), RECORD_KEY, "seedance_attach__d__r__t__-1"),
        (("d", "r", "t", 2), "other", "seedance_attach__d__r__t__2__other"),
        (("d__x", "r", "t", -1), RECORD_KEY, None),
        (("d", "r", "t__x", -1), RECORD_KEY, None),
        (("d", "r" * 250, "t", -1), RECORD_KEY, None),
        (("d", "r", "_z", -1), RECORD_KEY, None),
        (("d", "r", "z_", -1), RECORD_KEY, None),
        (("_d", "r", "z", -1), RECORD_KEY, None),
        (("d_", "r", "z", -1), RECORD_KEY, None),
        (("d_x", "r_", "t_y", -1), RECORD_KEY, "seedance_attach__d_x__r___t_y__-1"),
    ],
    ids=[
        "plain",
        "own-key",
        "dag-id-with-separator",
        "task-id-with-separator",
        "too-long",
        "task-id-starts-with-underscore",
        "task-id-ends-with-underscore",
        "dag-id-starts-with-underscore",
        "dag-id-ends-with-underscore",
        "inner-underscores",
    ],
)
def test_the_0_1_name_is_read_only_where_it_has_one_reader(
    ids: tuple[str, str, str, int], key: str, expected: str | None
) -> None:
    assert _legacy_variable_name(*ids, key=key) == expected


def test_the_0_1_name_may_be_exactly_the_key_limit() -> None:
    stem = "seedance_attach__d____t__-1"
    run_id = "r" * (250 - len(stem))
    name = _legacy_variable_name("d", run_id, "t", -1, RECORD_KEY)
    assert name is not None and len(name) == 250


_IDS = st.text(alphabet="ab_", min_size=1, max_size=6)


def _every_reading(name: str) -> set[tuple[str, str, str]]:
    """Every (dag, run, task) whose 0.1 joined name is ``name`` (map index -1)."""
    body = name.removeprefix("seedance_attach__").removesuffix("__-1")
    cuts = [i for i in range(len(body) - 1) if body[i : i + 2] == "__"]
    return {
        (body[:i], body[i + 2 : j], body[j + 2 :])
        for i in cuts
        for j in cuts
        if j >= i + 2 and i > 0 and j > i + 2 and j + 2 < len(body)
    }


@given(ids=st.tuples(_IDS, _IDS, _IDS))
def test_a_0_1_name_has_exactly_one_reader(ids: tuple[str, str, str]) -> None:
    """A 0.1 record read back by another task instance would hand it that instance's video:
    of every task instance whose joined name is the same, at most one reads it."""
    name = f"seedance_attach__{ids[0]}__{ids[1]}__{ids[2]}__-1"
    readers = {
        other for other in _every_reading(name) if _legacy_variable_name(*other, -1, RECORD_KEY) is not None
    }
    assert len(readers) <= 1
    if _legacy_variable_name(*ids, -1, RECORD_KEY) is not None:
        assert readers == {ids}


def test_underscores_at_an_edge_are_where_two_task_instances_would_share_a_name() -> None:
    # The collision the rule above exists for, in the joined form release 0.1 wrote.
    def joined(dag: str, run: str, task: str) -> str:
        return f"seedance_attach__{dag}__{run}__{task}__-1"

    assert joined("d", "r", "_z") == joined("d", "r_", "z")
    assert _legacy_variable_name("d", "r", "_z", -1, RECORD_KEY) is None
