"""Run a DAG file's DAG with ``dag.test()`` on Airflow 3.1 and 3.3, and read what it left behind."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_seedance.emulator.testing import EmulatorProcess
from tests.conftest import DAGS_FOLDER

#: Both the examples and the test DAGs are in the session's one DAGs folder.
EXAMPLES = TEST_DAGS = DAGS_FOLDER


@dataclass
class DagRunResult:
    state: str
    #: (task_id, map_index) -> (state, try_number)
    tasks: dict[tuple[str, int], tuple[str | None, int]] = field(default_factory=dict)
    #: (task_id, map_index, key) -> value
    xcoms: dict[tuple[str, int, str], Any] = field(default_factory=dict)
    run_id: str = ""

    def task_states(self, task_id: str) -> list[str | None]:
        return [state for (tid, _), (state, _) in sorted(self.tasks.items()) if tid == task_id]

    def results(self, task_id: str) -> list[Any]:
        return [
            v
            for (tid, _, key), v in sorted(self.xcoms.items(), key=lambda kv: kv[0][1])
            if tid == task_id and key == "return_value"
        ]


def _load_dag(folder: Path, dag_id: str) -> Any:
    try:  # Airflow 3.2+: dag.test() serializes the bundle itself
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(folder))
    except ImportError:  # Airflow 3.1: the DAG must be in the database first
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.models.dagbag import DagBag, sync_bag_to_db  # type: ignore[attr-defined,no-redef]

        DagBundlesManager().sync_bundles_to_db()
        bag = DagBag(dag_folder=str(folder), include_examples=False)
        sync_bag_to_db(bag, "dags-folder", None)
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag(dag_id)
    assert dag is not None, f"no DAG {dag_id} in {folder}"
    return dag


def run_dag(folder: Path, dag_id: str, **test_kwargs: Any) -> DagRunResult:
    """``dag.test()`` the DAG ``dag_id`` found in ``folder``; collect states and XComs."""
    dag = _load_dag(folder, dag_id)
    dag_run = dag.test(**test_kwargs)
    return collect(dag_id, dag_run.run_id)


def collect(dag_id: str, run_id: str) -> DagRunResult:
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        dag_run = session.query(DagRun).filter_by(dag_id=dag_id, run_id=run_id).one()
        result = DagRunResult(state=str(dag_run.state), run_id=run_id)
        for ti in session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run_id):
            result.tasks[(ti.task_id, ti.map_index)] = (str(ti.state) if ti.state else None, ti.try_number)
        for row in session.query(XComModel).filter_by(dag_id=dag_id, run_id=run_id):
            result.xcoms[(row.task_id, row.map_index, row.key)] = XComModel.deserialize_value(row)
    return result


@contextlib.contextmanager
def held_until_read(emulator: EmulatorProcess, reads: int, timeout: float = 120.0) -> Iterator[None]:
    """The emulator's generations stay in progress until it has answered ``reads`` more status
    reads (then a thread releases them): a task's first look after its POST sees IN_PROGRESS
    however slow the machine, and a later wait still sees the generation end."""
    emulator.hold()
    before = emulator.ledger()["status_requests"]
    done = threading.Event()

    def release() -> None:
        deadline = time.monotonic() + timeout
        while not done.is_set() and time.monotonic() < deadline:
            if emulator.ledger()["status_requests"] - before >= reads:
                break
            time.sleep(0.05)
        emulator.hold(False)

    releaser = threading.Thread(target=release, name="emulator-release", daemon=True)
    releaser.start()
    try:
        yield
    finally:
        done.set()
        releaser.join(timeout=30)
