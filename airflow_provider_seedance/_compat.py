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


def task_success_event(xcoms: dict[str, Any]) -> Any | None:
    """A trigger event that ends its task successfully with ``xcoms`` pushed (Airflow's
    ``TaskSuccessEvent``, in 3.1 to 3.3), or ``None`` where this Airflow has none."""
    try:
        from airflow.triggers.base import TaskSuccessEvent
    except ImportError:  # pragma: no cover - every supported Airflow has it
        return None
    return TaskSuccessEvent(xcoms=xcoms)


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
    "task_success_event",
]
