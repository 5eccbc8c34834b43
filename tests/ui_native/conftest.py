"""The Airflow UI with this provider installed: reuses the real ``airflow api-server`` of tests/ui.

``gallery_runs`` (finished generations, recorded by ``dag.test()``) and ``api_server`` come
from ``tests/ui/conftest.py``; here they are instantiated once more for this package, with
connection testing switched on (``[core] test_connection``, off by default in Airflow).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.ui.conftest import api_server, gallery_runs  # noqa: F401  (re-exported fixtures)


@pytest.fixture(scope="session", autouse=True)
def connection_testing_enabled() -> Iterator[None]:
    """Set before ``api_server`` starts, which copies the environment."""
    saved = os.environ.get("AIRFLOW__CORE__TEST_CONNECTION")
    os.environ["AIRFLOW__CORE__TEST_CONNECTION"] = "Enabled"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("AIRFLOW__CORE__TEST_CONNECTION", None)
        else:
            os.environ["AIRFLOW__CORE__TEST_CONNECTION"] = saved
