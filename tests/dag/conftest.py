from __future__ import annotations

import pytest


@pytest.fixture
def dag_env(emulator, airflow_db, monkeypatch):
    """Airflow with a migrated DB, the emulator as ``seedance_default``, fast polling."""
    monkeypatch.setenv("SEEDANCE_POLL_INTERVAL", "0.3")
    return emulator
