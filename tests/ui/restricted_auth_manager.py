"""A SimpleAuthManager that can also hide DAGs from users, for the gallery's authorization tests.

Airflow's SimpleAuthManager authorizes by role (and by team in multi-team mode), never by DAG
id, so it cannot express "bob may read every DAG except gallery_private". This subclass adds
exactly that, read from ``SEEDANCE_TEST_HIDDEN_DAGS`` (``user=dag1|dag2;user2=dag3``); every
other decision, login and token included, is SimpleAuthManager's own. It stands in for FAB or
Keycloak per-DAG permissions, which reach the view through the same two calls.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager


def hidden_dags() -> dict[str, set[str]]:
    hidden: dict[str, set[str]] = {}
    for part in os.environ.get("SEEDANCE_TEST_HIDDEN_DAGS", "").split(";"):
        user, _, dags = part.partition("=")
        if user.strip():
            hidden[user.strip()] = {d for d in dags.split("|") if d}
    return hidden


class DagRestrictedAuthManager(SimpleAuthManager):
    def is_authorized_dag(
        self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None
    ) -> bool:
        dag_id = getattr(details, "id", None)
        if dag_id is not None and dag_id in hidden_dags().get(user.get_name(), set()):
            return False
        return super().is_authorized_dag(
            method=method, user=user, access_entity=access_entity, details=details
        )
