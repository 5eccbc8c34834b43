"""The one reading of who is running: a submission record, a callback token and a batch's
results file are found by it, so a wrong reading makes a retry miss its record and pay again."""

from __future__ import annotations

from types import SimpleNamespace

from airflow_provider_seedance.reattach import RECORD_KEY, SubmissionRecord, variable_name
from airflow_provider_seedance.task_identity import instance_identity, try_identity


def _ti(**fields: object) -> SimpleNamespace:
    base: dict[str, object] = {"dag_id": "videos", "run_id": "run-1", "task_id": "generate", "try_number": 3}
    return SimpleNamespace(**{**base, **fields})


def test_a_try_is_identified_by_dag_run_task_map_index_and_try_number() -> None:
    assert try_identity(_ti(map_index=7)) == ("videos", "run-1", "generate", 7, 3)
    assert instance_identity(_ti(map_index=7)) == ("videos", "run-1", "generate", 7)
    # map index 0 is a mapped task's first instance, not "unmapped"
    assert instance_identity(_ti(map_index=0))[3] == 0


def test_an_unmapped_task_is_map_index_minus_one_however_it_is_sent() -> None:
    # the execution API may send None, a task instance may carry no map index at all, or a string
    assert instance_identity(_ti(map_index=None)) == ("videos", "run-1", "generate", -1)
    assert instance_identity(_ti()) == ("videos", "run-1", "generate", -1)
    assert instance_identity(_ti(map_index="-1")) == ("videos", "run-1", "generate", -1)
    assert try_identity(_ti(map_index=None, try_number="2")) == ("videos", "run-1", "generate", -1, 2)


def test_every_try_of_a_task_instance_finds_the_same_submission_record() -> None:
    """The record is named by the instance, not the try: try 2 finds what try 1 submitted."""
    names = set()
    for try_number in (1, 2, 7):
        for map_index in (None, -1):
            ti = _ti(map_index=map_index, try_number=try_number)
            record = SubmissionRecord.for_context({"ti": ti})
            names.add(record.where)
    assert names == {f"Variable {variable_name('videos', 'run-1', 'generate', -1, key=RECORD_KEY)!r}"}
