"""The "Seedance video" extra link: the generation's card in the Seedance view of the UI.

The link is built from the task instance's identity alone, so it exists from the moment the
task starts, never comes up empty and does not expire: the card shows the delivered copy
(through the view's media route) once there is one, and the service's URL (which expires,
and says so) only while there is none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk.types import TaskInstanceKey

#: Where the UI plugin mounts its app (``plugins.seedance_view.MOUNT``).
VIEW_MOUNT = "/seedance"


def card_url(dag_id: str, run_id: str, task_id: str, map_index: int | None = -1) -> str:
    """The Seedance view filtered to one task instance's generation."""
    try:
        from airflow.sdk import conf
    except ImportError:  # Airflow 3.1
        from airflow.configuration import conf  # type: ignore[assignment]
    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    query = urlencode(
        {
            "dag_id": dag_id,
            "run_id": run_id,
            "task_id": task_id,
            "map_index": -1 if map_index is None else map_index,
        }
    )
    return f"{base}{VIEW_MOUNT}/?{query}"


class SeedanceVideoLink(BaseOperatorLink):
    """Opens this task instance's card in the Seedance view (video, spend, status, errors)."""

    name = "Seedance video"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        return card_url(ti_key.dag_id, ti_key.run_id, ti_key.task_id, ti_key.map_index)
