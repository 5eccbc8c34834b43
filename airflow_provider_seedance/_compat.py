"""The few names whose home moved: between Airflow 3.1 and 3.3, and between Python 3.10 and 3.11."""

from __future__ import annotations

import sys
from enum import Enum
from typing import Any

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # Python 3.10

    class StrEnum(str, Enum):
        """A string enum that prints, formats and serialises as its value (``enum.StrEnum``)."""

        def __str__(self) -> str:
            return str(self.value)

        def __format__(self, spec: str) -> str:
            return format(str(self.value), spec)


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


def serialize_xcoms(ids: dict[str, Any], xcoms: dict[str, Any], links: dict[str, Any]) -> dict[str, Any]:
    """The values the task runner sends to Airflow's execution API for these XComs of the task
    instance ``ids`` (``dag_id``, ``task_id``, ``run_id``, ``map_index``): ``xcoms`` serialised by
    the configured XCom backend (``XCom.set`` on a worker), the extra links' ``links`` as they are
    (``XCom._set_xcom_in_db``). A custom backend may raise here (or write its payload away)."""
    from airflow.sdk.execution_time.xcom import XCom

    values = dict(links)
    for key, value in xcoms.items():
        values[key] = XCom.serialize_value(value=value, key=key, **ids)
    return values


def store_serialized_xcoms(session: Any, ids: dict[str, Any], values: dict[str, Any]) -> None:
    """Store :func:`serialize_xcoms`' ``values`` through ``session`` as the execution API's
    ``set_xcom`` route stores a task runner's push: unchanged (3.2+: ``XComModel.set(...,
    serialize=False)``; 3.1, whose ``XComModel.set`` always serialises: the route's own delete
    of the key and insert). Nothing is committed: the caller's transaction holds it."""
    import inspect

    from airflow.models.xcom import XComModel

    if "serialize" in inspect.signature(XComModel.set).parameters:
        for key, value in values.items():
            XComModel.set(key=key, value=value, serialize=False, session=session, **ids)
        return
    from airflow.models.dagrun import DagRun
    from sqlalchemy import delete, select

    dag_run_id = session.scalar(
        select(DagRun.id).where(DagRun.dag_id == ids["dag_id"], DagRun.run_id == ids["run_id"])
    )
    if dag_run_id is None:
        raise ValueError(f"DAG run not found on DAG {ids['dag_id']!r} with ID {ids['run_id']!r}")
    for key, value in values.items():
        session.execute(
            delete(XComModel).where(
                XComModel.key == key,
                XComModel.dag_id == ids["dag_id"],
                XComModel.run_id == ids["run_id"],
                XComModel.task_id == ids["task_id"],
                XComModel.map_index == ids["map_index"],
            )
        )
        session.add(XComModel(dag_run_id=dag_run_id, key=key, value=value, **ids))
    session.flush()


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
    "serialize_xcoms",
    "store_serialized_xcoms",
    "task_success_event",
]
