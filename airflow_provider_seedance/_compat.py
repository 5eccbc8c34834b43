"""The few Airflow names whose home moved between Airflow 3.1 and 3.3."""

from __future__ import annotations

from typing import Any

try:  # Airflow 3.2+: the task SDK owns the task-facing exceptions.
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )
except ImportError:  # Airflow 3.1
    from airflow.exceptions import (  # type: ignore[no-redef,attr-defined]
        AirflowException,
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )


def task_success_event() -> Any | None:
    """A trigger event that ends its task successfully (Airflow's ``TaskSuccessEvent``, in 3.1
    to 3.3), or ``None`` where this Airflow has none.

    Its own ``xcoms`` are not used: Airflow stores them JSON-encoded once more than the task
    runner does, so a downstream task would read a dict result as a string (3.1 to 3.3); see
    :func:`push_xcoms_from_trigger`.
    """
    try:
        from airflow.triggers.base import TaskSuccessEvent
    except ImportError:  # pragma: no cover - every supported Airflow has it
        return None
    return TaskSuccessEvent()


async def push_xcoms_from_trigger(ti: Any, xcoms: dict[str, Any], links: dict[str, Any]) -> None:
    """Push XComs of ``ti`` from a trigger exactly as the task runner pushes them on a worker:
    ``xcoms`` through ``XCom.set`` (the configured XCom backend), the extra links' ``links``
    straight to the metadata DB. The SDK's calls are synchronous: each runs in a thread
    (``sync_to_async``), which the triggerer's comms support, never blocking the event loop.
    """
    from airflow.sdk.execution_time.xcom import XCom
    from asgiref.sync import sync_to_async

    ids = {"dag_id": ti.dag_id, "task_id": ti.task_id, "run_id": ti.run_id, "map_index": ti.map_index}
    for key, value in links.items():
        await sync_to_async(XCom._set_xcom_in_db)(key=key, value=value, **ids)
    for key, value in xcoms.items():
        await sync_to_async(XCom.set)(key=key, value=value, **ids)


def default_deferrable() -> bool:
    """``[operators] default_deferrable``, the deployment-wide default for deferrable operators."""
    try:
        from airflow.sdk import conf
    except ImportError:  # Airflow 3.1
        from airflow.configuration import conf  # type: ignore[assignment]
    return conf.getboolean("operators", "default_deferrable", fallback=False)


__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "TaskDeferred",
    "default_deferrable",
    "push_xcoms_from_trigger",
    "task_success_event",
]
