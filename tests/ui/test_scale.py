"""The gallery and spend read right with 10,000 generations recorded (plus 10,000 other tasks).

The rows are clones of the ones real runs wrote (``gallery_runs``), inserted into a copy of
the session's SQLite metadata DB by the benchmark's cloner (:func:`benchmarks.ui_scale.clone_rows`),
so the shapes are Airflow's own. Only what the view returns is checked here (totals, order,
filters, outcomes); how fast it is, and how that grows to 100,000, is ``benchmarks/ui_scale.py``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from airflow_provider_seedance.plugins import queries, records, seedance_view
from benchmarks.ui_scale import DAGS, DAYS, FIRST_DAY, clone_rows
from tests.ui.conftest import GalleryRuns

pytestmark = pytest.mark.dag

GENERATIONS = 10_000
READABLE = frozenset(DAGS)


@pytest.fixture(scope="module")
def scale_engine(gallery_runs: GalleryRuns, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    import os

    source = Path(os.environ["AIRFLOW_HOME"]) / "airflow.db"
    copy = tmp_path_factory.mktemp("seedance-scale") / "airflow.db"
    with sqlite3.connect(source) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    engine = create_engine(f"sqlite:///{copy}")
    clone_rows(
        engine,
        "gallery_launch",
        gallery_runs.runs["gallery_launch"],
        "hero",
        GENERATIONS,
        decode=queries.decode_xcom,
    )
    yield engine
    engine.dispose()


def _successes(engine: Engine) -> tuple[int, int]:
    """How many clones recorded a result, and the credits each was billed (the template's)."""
    with engine.connect() as conn:
        values = conn.execute(
            text(
                "SELECT value FROM xcom WHERE run_id LIKE 'scale__%' AND task_id = 'generate'"
                " AND key = 'return_value'"
            )
        ).scalars()
        credits = [queries.decode_xcom(v)["consumed_credits"] for v in values]
    assert len(set(credits)) == 1
    return len(credits), credits[0]


def _card_key(card: dict[str, Any]) -> tuple[Any, ...]:
    return (card["dag_id"], card["run_id"], card["task_id"], card["map_index"], card["item"])


def test_ten_thousand_generations_pages_filters_and_spend(
    scale_engine: Engine, gallery_runs: GalleryRuns
) -> None:
    recorded = GENERATIONS + sum(gallery_runs.generations.get(dag_id, 0) for dag_id in READABLE)
    with Session(scale_engine) as session:
        everything = queries.GenerationFilter(dag_ids=READABLE)
        page = queries.list_generations(session, everything)
        # Every generation of the readable DAGs is counted, no noise task instance is.
        assert page.total == recorded and len(page.items) == 24
        ends = [item["end_date"] for item in page.items]
        assert ends == sorted(ends, reverse=True)

        # Pages are consecutive slices of one order: page 2 of 24 is cards 24..47 of a page of 100.
        hundred = queries.list_generations(session, everything, limit=100)
        second = queries.list_generations(session, everything, offset=24)
        assert [_card_key(i) for i in second.items] == [_card_key(i) for i in hundred.items[24:48]]

        deep = queries.list_generations(session, everything, limit=100, offset=9_000)
        assert len(deep.items) == 100 and deep.total == recorded
        deep_ends = [item["end_date"] for item in deep.items]
        assert deep_ends == sorted(deep_ends, reverse=True) and deep_ends[0] <= ends[-1]
        assert len({_card_key(i) for i in deep.items}) == 100

        narrow = queries.GenerationFilter(
            dag_ids=READABLE,
            dag_id="scale_a",
            status="failed",
            since=date(2026, 4, 1),
            until=date(2026, 4, 30),
        )
        filtered = queries.list_generations(session, narrow, limit=100)
        assert 0 < filtered.total == len(filtered.items) < 100
        assert {i["dag_id"] for i in filtered.items} == {"scale_a"}
        assert {i["ti_state"] for i in filtered.items} == {"failed"}
        assert all("2026-04-01" <= i["end_date"][:10] <= "2026-04-30" for i in filtered.items)
        # Released records of a failed task (only seedance_link, no status): ended unknown.
        assert {i["outcome"] for i in filtered.items} == {"unknown"}

        ninety = queries.GenerationFilter(
            dag_ids=READABLE, since=FIRST_DAY, until=FIRST_DAY + timedelta(days=DAYS - 1)
        )
        report = queries.spend(session, ninety)
        succeeded, credits_each = _successes(scale_engine)
        # Each clone is one generation (a failed one too: its id was sent, billed 0), each
        # success billed once, on its own day.
        assert report["total"]["generations"] == GENERATIONS and len(report["by_day"]) == DAYS
        assert report["total"]["credits"] == succeeded * credits_each
        assert report["total"]["credits"] == sum(d["credits"] for d in report["by_day"])
        assert {b["dag_id"] for b in report["by_dag"]} == READABLE
        assert report["skipped_records"] == 0

    # The HTTP layer too (auth replaced by a fixed set of readable DAGs).
    app = seedance_view.app
    app.dependency_overrides[seedance_view.readable_dags] = lambda: READABLE

    def session_override() -> Iterator[Session]:
        with Session(scale_engine) as s:
            yield s

    app.dependency_overrides[seedance_view.db_session] = session_override
    try:
        client = TestClient(app)
        response = client.get("/api/generations?limit=24")
        assert response.status_code == 200 and len(response.json()["items"]) == 24
        assert [_card_key(i) for i in response.json()["items"]] == [_card_key(i) for i in page.items]
        query = f"since={FIRST_DAY}&until={FIRST_DAY + timedelta(days=DAYS - 1)}"
        response = client.get(f"/api/spend?{query}")
        assert (
            response.status_code == 200 and response.json()["total"]["credits"] == report["total"]["credits"]
        )
        response = client.get(f"/api/spend.svg?{query}")
        assert response.status_code == 200 and response.text.count("<rect") > DAYS
    finally:
        app.dependency_overrides.clear()


def test_a_pages_xcoms_are_read_by_index_not_by_walking_every_xcom(scale_engine: Engine) -> None:
    """The XCom read of a page (and of each Spend chunk) is an index search on Airflow's
    ``idx_xcom_task_instance``; a walk of ``idx_xcom_key`` reads every XCom of the DB."""
    from airflow.models.xcom import XComModel

    with Session(scale_engine) as session:
        everything = queries.GenerationFilter(dag_ids=READABLE)
        cards = queries.list_generations(session, everything, limit=100, offset=5_000).items
        keys = [(c["dag_id"], c["run_id"], c["task_id"], c["map_index"]) for c in cards]
        clauses = queries._of_task_instances(XComModel, keys)
        assert clauses
        for clause in clauses:
            statement = select(XComModel.value).where(clause, XComModel.key.in_(records.XCOM_KEYS))
            sql = str(statement.compile(scale_engine, compile_kwargs={"literal_binds": True}))
            plan = " | ".join(
                row[-1] for row in session.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")
            )
            assert "idx_xcom_task_instance (dag_id=? AND task_id=? AND run_id=? AND map_index=?)" in plan, (
                plan
            )
            assert "idx_xcom_key" not in plan and "SCAN" not in plan, plan

        # Exactly the task instances asked for, whatever else their runs hold.
        asked = keys[::7]
        found = queries._load_xcoms(session, asked)
        assert set(found) == set(asked)
        for dag_id, run_id, task_id, map_index in asked:
            expected = session.execute(
                select(XComModel.key, XComModel.value).where(
                    XComModel.dag_id == dag_id,
                    XComModel.run_id == run_id,
                    XComModel.task_id == task_id,
                    XComModel.map_index == map_index,
                    XComModel.key.in_(records.XCOM_KEYS),
                )
            ).all()
            assert found[(dag_id, run_id, task_id, map_index)] == {
                key: queries.decode_xcom(value) for key, value in expected
            }
