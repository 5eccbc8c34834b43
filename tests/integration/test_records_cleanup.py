"""``seedance-records prune``: old re-attach Variables go, recent and unreadable ones stay."""

from __future__ import annotations

import json
import time

import pytest

from airflow_provider_seedance.records_cleanup import main, newest_submission, prune


def _record(*times: float) -> str:
    return json.dumps({f"fp{n}": {"state": "submitted", "submitted_at": t} for n, t in enumerate(times)})


@pytest.fixture
def variables(airflow_db):
    from airflow.models import Variable
    from airflow.utils.session import create_session

    day = 86400.0
    now = time.time()
    rows = {
        "seedance_attach__old": _record(now - 40 * day, now - 35 * day),
        "seedance_attach__recent": _record(now - 40 * day, now - 1 * day),
        "seedance_attach__unreadable": "{not json",
        "someone_elses_variable": _record(now - 400 * day),
    }
    with create_session() as session:
        session.query(Variable).filter(Variable.key.in_(list(rows))).delete(synchronize_session=False)
        for key, value in rows.items():
            session.add(Variable(key=key, val=value))
    yield rows
    with create_session() as session:
        session.query(Variable).filter(Variable.key.in_(list(rows))).delete(synchronize_session=False)


def _keys() -> set[str]:
    from airflow.models import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        return {row.key for row in session.query(Variable).all()}


def test_prune_deletes_only_old_seedance_records(variables) -> None:
    assert prune(30, dry_run=True) == ["seedance_attach__old"]
    assert "seedance_attach__old" in _keys()  # a dry run deletes nothing
    assert prune(30) == ["seedance_attach__old"]
    assert _keys() >= {"seedance_attach__recent", "seedance_attach__unreadable", "someone_elses_variable"}
    assert "seedance_attach__old" not in _keys()


def test_cli_prints_what_it_deleted(variables, capsys) -> None:
    assert main(["prune", "--older-than-days", "30"]) == 0
    out = capsys.readouterr().out
    assert "deleted 1 re-attach record(s) older than 30 days" in out and "seedance_attach__old" in out


def test_newest_submission_reads_only_record_shapes() -> None:
    assert newest_submission(_record(5.0, 7.0)) == 7.0
    assert newest_submission("[1, 2]") is None and newest_submission(None) is None
    assert newest_submission(json.dumps({"fp": {"submitted_at": True}})) is None


def test_the_parts_of_one_batch_record_are_pruned_together(airflow_db) -> None:
    """A retry reads a batch record's parts up to the first missing one: an old part deleted
    alone would hide the recent parts after it (and their items would be paid again)."""
    from airflow.models import Variable
    from airflow.utils.session import create_session

    day = 86400.0
    now = time.time()
    same = "airflow-provider-seedance: generations submitted by task instance dag_id='d' (re-attach)"
    other = "airflow-provider-seedance: generations submitted by task instance dag_id='e' (re-attach)"
    rows = {
        # one task instance: an old part 0, a recent part 1 -> both stay
        "seedance_attach__kept0": (_record(now - 40 * day), same),
        "seedance_attach__kept1": (_record(now - 1 * day), same),
        # another: an old part and an empty one -> both go
        "seedance_attach__gone0": (_record(now - 40 * day), other),
        "seedance_attach__gone1": ("{}", other),
    }
    with create_session() as session:
        session.query(Variable).filter(Variable.key.in_(list(rows))).delete(synchronize_session=False)
        for key, (value, description) in rows.items():
            session.add(Variable(key=key, val=value, description=description))
    try:
        assert prune(30) == ["seedance_attach__gone0", "seedance_attach__gone1"]
        assert _keys() >= {"seedance_attach__kept0", "seedance_attach__kept1"}
    finally:
        with create_session() as session:
            session.query(Variable).filter(Variable.key.in_(list(rows))).delete(synchronize_session=False)
