"""The gallery and the Spend view read a batch whose results went to a file (issue 16, item 3).

A real ``dag.test()`` run of a 6-item batch with ``xcom_results_limit=3`` records only a
manifest (and a one-item sample) in XCom. The gallery must still show one card per item and
page over them, and the Spend view count every item's credits, read from the results file;
a results file that has gone is shown and counted as unreadable, never a 500.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_seedance import batch_results
from airflow_provider_seedance.plugins import queries
from tests.dag_support import TEST_DAGS, DagRunResult, run_dag

pytestmark = pytest.mark.dag

DAG_ID = "batch_results_manifest"
READABLE = frozenset({DAG_ID})


@pytest.fixture
def manifest_run(emulator, airflow_db, monkeypatch, tmp_path: Path) -> Iterator[tuple[DagRunResult, Path]]:
    monkeypatch.setenv("SEEDANCE_POLL_INTERVAL", "0.3")
    run = run_dag(TEST_DAGS, DAG_ID, run_conf={"out": str(tmp_path)})
    assert run.state == "success"
    try:
        yield run, tmp_path
    finally:
        _forget(DAG_ID)  # the other UI tests count every generation in the DB


def _forget(dag_id: str) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        for model in (XComModel, RenderedTaskInstanceFields, TaskInstanceHistory, TaskInstance, DagRun):
            session.query(model).filter(model.dag_id == dag_id).delete(synchronize_session=False)


def test_the_gallery_and_spend_count_every_item_of_a_manifest_batch(manifest_run) -> None:
    from airflow.utils.session import create_session

    run, out = manifest_run
    [outcome] = run.results("batch")
    assert outcome["results_manifest"]["items"] == 6 and len(outcome["results"]) == 1  # only a sample in XCom
    only = queries.GenerationFilter(dag_ids=READABLE, run_id=run.run_id, task_id="batch")
    with create_session() as session:
        page = queries.list_generations(session, only)
        assert page.total == 6 and page.skipped_records == 0
        assert [card["item_id"] for card in page.items] == [f"sku-{n}" for n in range(6)]
        assert all(card["outcome"] == "succeeded" and card["output_path"] for card in page.items)
        second = queries.list_generations(session, only, limit=4, offset=4)
        assert [card["item"] for card in second.items] == [4, 5]

        report = queries.spend(session, queries.GenerationFilter(dag_ids=READABLE))
        assert report["total"]["generations"] == 6 and report["total"]["credits"] == 48
        assert report["skipped_records"] == 0

        # The file has gone (and is not in the reader's cache): unreadable cards, counted as such.
        for path in out.glob("*.results.jsonl"):
            os.remove(path)
        batch_results._cached_file.cache_clear()
        gone = queries.list_generations(session, only)
        assert gone.total == 6 and gone.skipped_records == 6
        assert all(card["unreadable"] for card in gone.items)
        after = queries.spend(session, queries.GenerationFilter(dag_ids=READABLE))
        assert after["skipped_records"] == 6 and after["total"]["credits"] == 0
