from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_seedance.emulator.testing import EmulatorProcess
from tests.conftest import API_KEY, connection_json


@pytest.fixture
def dag_env(emulator, airflow_db, monkeypatch):
    """Airflow with a migrated DB, the emulator as ``seedance_default``, fast polling."""
    monkeypatch.setenv("SEEDANCE_POLL_INTERVAL", "0.3")
    return emulator


@pytest.fixture(scope="session")
def slow_emulator_process() -> Iterator[EmulatorProcess]:
    """Generations that take a minute: for deadlines, whatever the speed of the machine."""
    with EmulatorProcess(api_keys={API_KEY: 100_000}, generation_seconds=60.0) as emu:
        yield emu


@pytest.fixture
def slow_dag_env(slow_emulator_process, airflow_db, monkeypatch) -> EmulatorProcess:
    slow_emulator_process.reset()
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEFAULT", connection_json(slow_emulator_process.base_url))
    monkeypatch.setenv("SEEDANCE_POLL_INTERVAL", "0.3")
    return slow_emulator_process
