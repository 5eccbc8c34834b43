"""The callback receiver: ``POST /seedance/callbacks/{token}`` resumes a deferred generation.

Why the API server resumes the task itself (and not a triggerer): the API server is the one
Airflow component that is reachable over HTTP and already writes to the metadata DB; resuming
there is what the triggerer does when a trigger fires (``Trigger.submit_event``, the same call
on Airflow 3.1 and 3.3), so the scheduler picks the task up at its next loop. No triggerer needs
to listen for anything, and it works with any number of API servers and triggerers: the first
of them to resume the task instance wins, the others find it no longer deferred.

What the receiver trusts, in order:

1. The token (:mod:`airflow_provider_seedance.callbacks`): signed with the connection's
   ``callback_secret``, unexpired. Anything else is refused with one answer that says nothing
   about why.
2. The task instance the token names, only while it is deferred on *our* trigger for the same
   connection. A token of an earlier try of the same task instance is accepted (a retry
   re-attaches to the generation that try submitted); one for another task instance is not.
3. The generation's status as *it reads it* with the connection's key, for the generation the
   trigger waits for. The callback's body is never read beyond a size cap: a body claiming
   SUCCESS for a generation still IN_PROGRESS changes nothing.

Only a terminal status resumes, with exactly the event the trigger would have fired
(:func:`~airflow_provider_seedance.triggers.seedance.terminal_event`). A SUCCESS of a task
whose trigger carries ``end_on_success`` (``end_in_triggerer=True``, nothing to deliver) ends
it here instead, as the trigger would in the triggerer
(:func:`~airflow_provider_seedance.triggers.seedance.task_end`): its XComs stored as Airflow's
execution API stores a task runner's, then Airflow's ``TaskSuccessEvent``, in one transaction,
so no worker starts after the deferral. Everything is
idempotent: a repeat finds the task instance no longer deferred and does nothing. A callback
that arrives while the try it was made for is still running (a generation that ended between
the operator's status read and its deferral) waits up to :data:`DEFERRAL_WAIT_SECONDS` for the
deferral instead of being lost to the fallback poll.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow_provider_seedance._compat import (
    StrEnum,
    serialize_xcoms,
    store_serialized_xcoms,
    task_success_event,
)
from airflow_provider_seedance.callbacks import (
    CallbackIdentity,
    CallbackTokenError,
    unverified_conn_id,
    verify,
)
from airflow_provider_seedance.exceptions import SeedanceError
from airflow_provider_seedance.hooks.seedance import ConnectionSettings, SeedanceHook
from airflow_provider_seedance.plugins import queries, records
from airflow_provider_seedance.results import GenerationResult
from airflow_provider_seedance.task_support import asset_extra
from airflow_provider_seedance.triggers.seedance import (
    SeedanceStatusTrigger,
    TaskEnd,
    task_end,
    terminal_event,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from airflow_provider_seedance.models import SeedanceTask

log = logging.getLogger(__name__)

#: Largest callback body accepted (the body is only a hint; a status answer is far smaller).
MAX_CALLBACK_BODY = 64 * 1024
#: The receiver's status read: seconds to connect and to read, and attempts. A caller waits
#: for this, so it is short; a failure only leaves the task to its fallback poll.
STATUS_CONNECT_TIMEOUT = 3.0
STATUS_READ_TIMEOUT = 5.0
STATUS_ATTEMPTS = 2

#: A callback may come while the try that submitted is still on its way to deferring (a fast
#: generation ends between the operator's status read and its deferral): wait this long for it.
DEFERRAL_WAIT_SECONDS = 5.0
DEFERRAL_CHECK_SECONDS = 0.2

#: How long a connection's callback settings are remembered, and for how many connections.
SETTINGS_TTL_SECONDS = 30.0
SETTINGS_CACHE_SIZE = 256
_SETTINGS: dict[str, tuple[float, ConnectionSettings | None]] = {}
_SETTINGS_LOCK = threading.Lock()

TRIGGER_CLASSPATH = f"{SeedanceStatusTrigger.__module__}.{SeedanceStatusTrigger.__qualname__}"


class Outcome(StrEnum):
    """What a callback did; the receiver's answer says no more than this."""

    #: The token was refused (bad, forged, expired, or not one this task instance gave out for
    #: the connection its trigger waits with): 403.
    REFUSED = "refused"
    #: Valid, but nothing to do now (already resumed: a repeat; not finished yet): 202.
    IGNORED = "ignored"
    #: The task instance was resumed with its generation's terminal status: 200.
    RESUMED = "resumed"
    #: The generation's status could not be read: 503 (the fallback poll will find it).
    UNAVAILABLE = "unavailable"
    #: The generation succeeded and the task ended here, without a worker (``end_on_success``): 200.
    ENDED = "ended"
    #: Fire-and-forget: the generation ended and its asset event was recorded: 200.
    RECORDED = "recorded"


def _hook(conn_id: str, settings: ConnectionSettings) -> SeedanceHook:
    """A hook on the already resolved ``settings`` (no second lookup) whose status read is
    bounded (the caller of the endpoint waits for it)."""
    hook = SeedanceHook(conn_id, status_retries=STATUS_ATTEMPTS, retry_min_wait=0.5, retry_max_wait=1.0)
    hook.settings = dataclasses.replace(  # type: ignore[misc]
        settings,
        connect_timeout=min(settings.connect_timeout, STATUS_CONNECT_TIMEOUT),
        read_timeout=min(settings.read_timeout, STATUS_READ_TIMEOUT),
    )
    return hook


def _settings(conn_id: str) -> ConnectionSettings | None:
    """The connection's settings (``None``: missing or unreadable), remembered for
    :data:`SETTINGS_TTL_SECONDS`, so a flood of forged tokens does not look the same connection
    up in every secrets backend again (a new secret takes effect within that)."""
    now = time.monotonic()
    with _SETTINGS_LOCK:
        cached = _SETTINGS.get(conn_id)
    if cached is not None and cached[0] > now:
        return cached[1]
    settings: ConnectionSettings | None
    try:
        settings = SeedanceHook(conn_id).settings
    except Exception:  # any connection this cannot read is one no token can be checked against
        settings = None
    with _SETTINGS_LOCK:
        if len(_SETTINGS) >= SETTINGS_CACHE_SIZE:
            _SETTINGS.clear()
        _SETTINGS[conn_id] = (now + SETTINGS_TTL_SECONDS, settings)
    return settings


def _read_status(conn_id: str, settings: ConnectionSettings, seedance_task_id: str) -> SeedanceTask:
    """One bounded status read; the HTTP session is closed after it (the API server lives on)."""
    hook = _hook(conn_id, settings)
    try:
        return hook.get_status(seedance_task_id)
    finally:
        hook.close()


def receive(token: str, session: Session, *, now: float | None = None) -> Outcome:
    """Handle one callback for ``token`` (the body was already capped and is not needed)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    now = time.time() if now is None else now
    try:
        settings = _settings(unverified_conn_id(token))
        if settings is None or settings.callbacks is None:
            return Outcome.REFUSED
        identity = verify(settings.callbacks.secret, token, now)
    except CallbackTokenError:
        # A bad, forged or expired token, a connection that is missing, unreadable or has no
        # callbacks: the same answer, which says nothing about why.
        return Outcome.REFUSED

    key = (
        TaskInstance.dag_id == identity.dag_id,
        TaskInstance.run_id == identity.run_id,
        TaskInstance.task_id == identity.task_id,
        TaskInstance.map_index == identity.map_index,
    )
    ti = session.scalars(select(TaskInstance).where(*key)).one_or_none()
    if ti is None or (ti.try_number or 0) < identity.try_number:
        # No such task instance (another's token, or its run was deleted), or a try it never
        # had: not a token this task instance gave out.
        return Outcome.REFUSED
    if identity.asset is not None:
        return _record_completion(identity, identity.asset, settings, ti, key, session)
    # The try this token was made for may not have deferred yet: see its next commit.
    ti = _wait_while_running(session, key, ti, lambda row: row.try_number != identity.try_number)
    if ti is None:
        return Outcome.IGNORED
    if ti.state != TaskInstanceState.DEFERRED or ti.trigger_id is None:
        return Outcome.IGNORED
    trigger_id = ti.trigger_id
    trigger = session.get(Trigger, trigger_id)
    if trigger is None or trigger.classpath != TRIGGER_CLASSPATH:
        return Outcome.IGNORED
    kwargs = trigger.kwargs or {}
    seedance_task_id = kwargs.get("seedance_task_id")
    if kwargs.get("seedance_conn_id") != identity.conn_id:
        return Outcome.REFUSED  # signed for another connection than the one this task waits with
    if not isinstance(seedance_task_id, str):
        return Outcome.IGNORED
    ti_id = ti.id  # this try's row: a later try may defer on a reused trigger id (SQLite)
    task = _terminal_status(identity.conn_id, settings, seedance_task_id, session)
    if isinstance(task, Outcome):
        return task
    # The operator asked for no worker after a success: end the task here, as its trigger would.
    # Everything that does not need the row (the XComs, serialised by the configured backend) is
    # ready before the row is locked, so the lock is held only to write.
    ids = {
        "dag_id": identity.dag_id,
        "task_id": identity.task_id,
        "run_id": identity.run_id,
        "map_index": identity.map_index,
    }
    ending = _ending(kwargs.get("end_on_success"), task, ids)

    # Still deferred on the same trigger, in the same try? (A triggerer or another API server
    # may have won.)
    def locked() -> Any:
        return session.scalars(
            select(TaskInstance)
            .where(
                *key,
                TaskInstance.id == ti_id,
                TaskInstance.state == TaskInstanceState.DEFERRED,
                TaskInstance.trigger_id == trigger_id,
            )
            .with_for_update()
        ).one_or_none()

    still = locked()
    if still is None:
        session.rollback()
        return Outcome.IGNORED
    if ending is not None:
        end, values, event = ending
        try:
            store_serialized_xcoms(session, ids, values)
            Trigger.submit_event(trigger_id, event, session=session)
            session.commit()
        except Exception as exc:  # e.g. a conflict with the triggerer's own push: a worker finishes
            session.rollback()
            log.warning("Seedance callback: could not end the task here (%s); resuming it on a worker", exc)
            still = locked()
            if still is None:
                session.rollback()
                return Outcome.IGNORED
        else:
            # Counted once the ending is committed (a failed commit is retried by Seedance).
            end.report(
                log,
                still,
                _hook(identity.conn_id, settings).describe_cost(task.consumed_credits),
                "API server",
            )
            return Outcome.ENDED
    Trigger.submit_event(trigger_id, terminal_event(task), session=session)
    session.commit()
    log.info(
        "Seedance callback: task %s is %s; resumed %s.%s (run %s, map index %s)",
        task.task_id,
        task.status,
        identity.dag_id,
        identity.task_id,
        identity.run_id,
        identity.map_index,
    )
    return Outcome.RESUMED


def _ending(spec: Any, task: SeedanceTask, ids: dict[str, Any]) -> tuple[TaskEnd, dict[str, Any], Any] | None:
    """How to end the task here, as its trigger would in the triggerer: what to report and the
    XComs serialised as the execution API stores a task runner's (then Airflow's
    ``TaskSuccessEvent`` sets the state and sends the task's callbacks). ``None`` (the task
    resumes on a worker as any other) unless the operator asked for it and the generation
    succeeded, or when this Airflow has no such event or the XCom backend cannot serialise the
    values."""
    event = task_success_event()
    try:
        end = task_end(spec, task) if event is not None else None
        return None if end is None else (end, serialize_xcoms(ids, end.xcoms, end.links), event)
    except Exception as exc:  # the XCom backend, or a hand-edited end_on_success
        log.warning("Seedance callback: could not end the task here (%s); resuming on a worker", exc)
        return None


def _record_completion(
    identity: CallbackIdentity,
    asset: tuple[str, str],
    settings: ConnectionSettings,
    ti: Any,
    key: tuple[Any, ...],
    session: Session,
) -> Outcome:
    """Fire-and-forget: record the asset event of a generation that ended, once.

    The generation is the one this task instance recorded in its XCom (never one the body
    names), its status is read with the connection's key, and an event already recorded for
    it (a repeated callback, another API server) is not recorded again.
    """
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    # The try that submitted may not have recorded its task id yet: see its next commit.
    _wait_while_running(session, key, ti, lambda _: _recorded_task_id(session, identity) is not None)
    seedance_task_id = _recorded_task_id(session, identity)
    if seedance_task_id is None:
        log.info("Seedance callback for %s.%s: no submission recorded yet", identity.dag_id, identity.task_id)
        return Outcome.IGNORED
    task = _terminal_status(identity.conn_id, settings, seedance_task_id, session)
    if isinstance(task, Outcome):
        return task
    model = session.scalars(
        select(AssetModel).where(AssetModel.name == asset[0], AssetModel.uri == asset[1])
    ).first()
    if model is None:
        log.warning(
            "Seedance callback: task %s ended, but no DAG declares the asset %r, so no event was recorded",
            task.task_id,
            asset[1],
        )
        return Outcome.IGNORED
    # One event per generation: the task instance's row is the lock that orders callbacks.
    ti = session.scalars(select(TaskInstance).where(*key).with_for_update()).one()
    earlier = session.scalars(
        select(AssetEvent.extra).where(
            AssetEvent.asset_id == model.id,
            AssetEvent.source_dag_id == identity.dag_id,
            AssetEvent.source_run_id == identity.run_id,
            AssetEvent.source_task_id == identity.task_id,
            AssetEvent.source_map_index == identity.map_index,
        )
    ).all()
    if any(isinstance(extra, dict) and extra.get("seedance_task_id") == task.task_id for extra in earlier):
        session.rollback()
        return Outcome.IGNORED
    result = GenerationResult.from_task(task)
    extra = {**asset_extra(result), "status": result.status, "error_message": result.error_message}
    from airflow.assets.manager import asset_manager

    asset_manager.register_asset_change(task_instance=ti, asset=model, extra=extra, session=session)
    session.commit()
    log.info(
        "Seedance callback: task %s is %s; recorded an event of asset %r", task.task_id, task.status, asset[1]
    )
    return Outcome.RECORDED


def _wait_while_running(
    session: Session, key: tuple[Any, ...], ti: Any, settled: Callable[[Any], bool]
) -> Any:
    """The task instance re-read while it is RUNNING and not ``settled``, for at most
    :data:`DEFERRAL_WAIT_SECONDS` (the try that submitted has not committed its next step)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    waited_until = time.monotonic() + DEFERRAL_WAIT_SECONDS
    while (
        ti is not None
        and ti.state == TaskInstanceState.RUNNING
        and not settled(ti)
        and time.monotonic() < waited_until
    ):
        session.rollback()
        time.sleep(DEFERRAL_CHECK_SECONDS)
        ti = session.scalars(select(TaskInstance).where(*key)).one_or_none()
    return ti


def _terminal_status(
    conn_id: str, settings: ConnectionSettings, seedance_task_id: str, session: Session
) -> SeedanceTask | Outcome:
    """The generation's status read with the connection's key, if it has ended; else the outcome
    to answer (unreadable: ``UNAVAILABLE``; still running: ``IGNORED``)."""
    session.rollback()  # no transaction held open over the status read
    try:
        task = _read_status(conn_id, settings, seedance_task_id)
    except SeedanceError as exc:
        log.warning("Seedance callback: could not read task %s (%s)", seedance_task_id, type(exc).__name__)
        return Outcome.UNAVAILABLE
    if not task.is_terminal:
        log.info("Seedance callback for task %s, which is still %s: nothing to do", task.task_id, task.status)
        return Outcome.IGNORED
    return task


def _recorded_task_id(session: Session, identity: CallbackIdentity) -> str | None:
    """The Seedance task id the task instance recorded (its result, or the link pushed at
    submission), or ``None``."""
    key = (identity.dag_id, identity.run_id, identity.task_id, identity.map_index)
    record = queries.find_record(session, key, queries.operator_names())
    if record is None:
        return None
    for _, result in records.read_results(record.xcoms, record.state):
        if result is not None and result.task_id:
            return result.task_id
    return None


__all__ = ["MAX_CALLBACK_BODY", "Outcome", "receive"]
