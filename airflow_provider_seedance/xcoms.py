"""The XComs a single generation leaves behind, as pure values (no I/O).

The worker pushes them one by one (:mod:`airflow_provider_seedance.task_support`); a task that
ends in the triggerer hands the same values to Airflow in one ``TaskSuccessEvent``
(:func:`success_xcoms`). Keeping both in one place is what makes the two endings
indistinguishable to downstream tasks, the extra link and the gallery.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from airflow_provider_seedance.models import SeedanceTask
from airflow_provider_seedance.results import GenerationResult

#: XCom keys written while the task runs (before any wait).
XCOM_TASK_ID = "seedance_task_id"
XCOM_LINK = "seedance_link"
#: The final :class:`GenerationResult` of a single generation, pushed on every ending (also
#: when the task fails, which then has no ``return_value``), for the gallery and Spend view.
XCOM_RESULT = "seedance_result"
#: Airflow's key for a task's return value.
XCOM_RETURN = "return_value"


def link_value(task: SeedanceTask, base_url: str) -> dict[str, Any]:
    """What the extra link and the gallery card read: the generation, its status, error and
    request (so that a failed generation still says what it was and why it failed)."""
    return {
        "task_id": task.task_id,
        "video_url": task.video_url,
        "base_url": base_url,
        "status": str(task.status),
        "error_message": task.error_message,
        "request": dict(task.request),
    }


def success_xcoms(
    task: SeedanceTask,
    request: Mapping[str, Any],
    seedance_task_ids: Iterable[str],
    base_url: str,
    *,
    return_value: bool = True,
) -> tuple[GenerationResult, dict[str, Any]]:
    """The result of a successful generation with nothing to deliver, and every XCom the worker
    would have pushed for it (``return_value`` only when the task pushes its return value)."""
    tried = tuple(seedance_task_ids) or (task.task_id,)
    result = GenerationResult.from_task(task, request, seedance_task_ids=tried)
    xcoms: dict[str, Any] = {
        XCOM_TASK_ID: task.task_id,
        XCOM_LINK: link_value(task, base_url),
        XCOM_RESULT: result.to_xcom(),
    }
    if return_value:
        xcoms[XCOM_RETURN] = result.to_xcom()
    return result, xcoms


__all__ = ["XCOM_LINK", "XCOM_RESULT", "XCOM_RETURN", "XCOM_TASK_ID", "link_value", "success_xcoms"]
