"""A secrets backend stub for the in-process trigger tests (``airflow dags test``).

Airflow loads it by dotted path from ``[secrets] backend``; it serves the ``seedance_default``
connection from the ``SEEDANCE_STUB_CONNECTION`` environment variable (a JSON connection),
so a test can prove the wait resolves a connection that only a secrets backend knows.
It imports nothing from ``tests`` (its importer must not pick up the test configuration).
"""

from __future__ import annotations

import os

from airflow.secrets.base_secrets import BaseSecretsBackend


class StubSecretsBackend(BaseSecretsBackend):
    """Knows one connection, ``seedance_default``, and counts nothing else."""

    def get_conn_value(self, conn_id: str, team_name: str | None = None) -> str | None:
        if conn_id == "seedance_default":
            return os.environ.get("SEEDANCE_STUB_CONNECTION")
        return None
