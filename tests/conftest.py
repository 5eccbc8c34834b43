"""Test set-up shared by every layer.

Airflow reads its configuration at import time, so this file points it at a throw-away
home (SQLite, no examples, our example DAGs) before anything imports Airflow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: A child process of the tests that imports this file (e.g. a DAG run with OpenLineage enabled,
#: see tests/dag/test_lineage_events.py) shares the session's home, its database and its DAGs folder.
#: Under pytest-xdist (``make test`` runs the suite on several workers) each worker has a home of
#: its own: its own SQLite database and DAGs folder, as if it were a separate session. A worker
#: inherits the controller's home in its environment and replaces it once; its child processes
#: inherit the worker's and keep it.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_inherited = os.environ.get("SEEDANCE_TEST_HOME")
if os.environ.get("SEEDANCE_TEST_HOME_OF") != _WORKER:
    _inherited = None
_HOME = Path(_inherited or tempfile.mkdtemp(prefix=f"seedance-airflow-home-{_WORKER}"))
os.environ["SEEDANCE_TEST_HOME"] = str(_HOME)
os.environ["SEEDANCE_TEST_HOME_OF"] = _WORKER
#: One DAGs folder for the whole session (Airflow caches the bundle's path): the example
#: DAGs and the test DAGs side by side, as links to the real files.
DAGS_FOLDER = _HOME / "dags"
if not DAGS_FOLDER.exists():
    DAGS_FOLDER.mkdir()
    for _source in (REPO / "dags_examples", REPO / "tests" / "dag_fixtures"):
        for _entry in _source.iterdir():
            if _entry.name != "__pycache__":
                (DAGS_FOLDER / _entry.name).symlink_to(_entry)
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_HOME}/airflow.db"
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_FOLDER)
os.environ["AIRFLOW__CORE__FERNET_KEY"] = "Mh1eNBDrLbOy1aD3sXvLzJ8wqoyA6wq6Le0qg0s4lU0="
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")

from airflow_provider_seedance.emulator.testing import EmulatorProcess  # noqa: E402

#: The API key used by every test; distinctive so that leak scans can look for it.
API_KEY = "sk-test-S3CRET-7f3a9c21d4"
#: A second account, for per-key scoping.
OTHER_KEY = "sk-test-other-account-55"


def connection_json(base_url: str, api_key: str = API_KEY, **extra: object) -> str:
    return json.dumps({"conn_type": "seedance", "host": base_url, "password": api_key, "extra": extra})


@pytest.fixture(scope="session")
def emulator_process() -> Iterator[EmulatorProcess]:
    """One emulator process for the session; each test gets it reset."""
    with EmulatorProcess(api_keys={API_KEY: 1_000_000, OTHER_KEY: 1_000}, generation_seconds=1.0) as emu:
        yield emu


@pytest.fixture
def emulator(emulator_process: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> EmulatorProcess:
    """The emulator, reset, with ``seedance_default`` pointing at it."""
    emulator_process.reset()
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEFAULT", connection_json(emulator_process.base_url))
    return emulator_process


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata database (what ``dag.test()`` needs)."""
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())
    return _HOME


#: Folders whose tests share one expensive set-up (a real Airflow per package, the gallery's
#: runs per session): under pytest-xdist each runs whole on one worker. Every other test file
#: is a unit of its own. Listed longest first, so that they start first and no worker is left
#: with a long tail at the end.
_WHOLE_FOLDERS = ("realproc", "ui")
_FIRST = ("realproc", "ui", "bench", "reliability", "dag", "integration")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def folder(item: pytest.Item) -> str:
        parts = Path(str(item.path)).parts[:-1]  # the folders above the test file
        below = [n for n, part in enumerate(parts) if part == "tests"]
        return parts[below[-1] + 1] if below and below[-1] + 1 < len(parts) else ""

    for item in items:
        name = folder(item)
        group = name if name in _WHOLE_FOLDERS else str(item.path)
        item.add_marker(pytest.mark.xdist_group(group))
    if _WORKER:  # each worker collects, in the same order, and the controller hands out groups
        order = {name: rank for rank, name in enumerate(_FIRST)}
        items.sort(key=lambda item: order.get(folder(item), len(order)))
