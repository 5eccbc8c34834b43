"""SeedanceStatusTrigger: wait for a generation in the triggerer, holding no worker slot.

The trigger only *reads* (``GET /v1/status``); it never submits. It is safe to run twice
at once (two triggerers in HA) and to be rebuilt from :meth:`serialize` at any moment,
because everything it needs is in its kwargs and its deadline is an absolute wall-clock
time computed once on the worker.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from airflow.triggers.base import TriggerEvent

from airflow_provider_seedance import metrics
from airflow_provider_seedance._compat import push_xcoms_from_trigger, task_success_event
from airflow_provider_seedance.exceptions import SeedanceError
from airflow_provider_seedance.hooks.retry import (
    DEFAULT_MAX_OUTAGE,
    asleep_until_deadline,
    deadline_within_outage,
    poller_max_wait,
)
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.hosts import url_for_logs
from airflow_provider_seedance.models import UNREAD_STATUS, SeedanceTask, TaskStatus, TriggerEventStatus
from airflow_provider_seedance.results import GenerationResult
from airflow_provider_seedance.triggers.polling import PollingTrigger
from airflow_provider_seedance.xcoms import success_xcoms

#: Event statuses the operator and the sensor accept.
EVENT_STATUSES = frozenset(s.value for s in TriggerEventStatus)
#: No count cap by default: the wait policy bounds an outage by its duration (``max_outage``).
DEFAULT_MAX_POLL_FAILURES: int | None = None


class SeedanceStatusTrigger(PollingTrigger):
    """Poll one Seedance generation until it ends, then fire exactly one event.

    The event is ``{"status": "success"|"failed"|"timeout"|"error", "task": <task dict>,
    "result": <GenerationResult.to_xcom()>,
    "message": str}``.

    :param seedance_task_id: the generation to wait for (named so because the triggerer
        overwrites a trigger's ``task_id`` attribute with the Airflow task id).
    :param seedance_conn_id: the ``seedance`` connection; the key is looked up in the
        triggerer, never carried in the trigger's kwargs.
    :param poll_interval: seconds between status reads.
    :param end_time: absolute epoch deadline (``time.time()`` based), or ``None``.
    :param max_outage: the wait policy, the same as the blocking wait's
        (``SeedanceHook.wait_for_completion``): transient status failures (5xx, 429 with its
        ``Retry-After``, network errors, unreadable answers) are retried with exponential
        backoff and jitter for as long as they last less than this many seconds in a row
        (default 180), never past ``end_time``; then an ``error`` event (or ``timeout`` if
        the deadline came first).
    :param max_poll_failures: optional extra cap on the number of failures in a row
        (``None``: only ``max_outage`` bounds them; kept for triggers serialized by
        earlier versions, which carry ``8``).
    :param end_on_success: set by the operator when nothing is left to do on a worker after a
        SUCCESS (``end_in_triggerer=True``, no ``output_path``, no outlets): the task then ends
        here with Airflow's ``TaskSuccessEvent``, carrying the XComs the worker would have
        pushed. Keys: ``request`` (the payload), ``seedance_task_ids`` (the record's history),
        ``base_url`` (for the link data), ``return_value`` (push it or not) and ``links`` (the
        extra links' XComs, which the task runner pushes when a task ends on a worker). Any other ending,
        or a run without a task instance (``dag.test()``), fires the usual event and the task
        resumes on a worker.
    """

    def __init__(
        self,
        seedance_task_id: str,
        seedance_conn_id: str = SeedanceHook.default_conn_name,
        poll_interval: float = 10.0,
        end_time: float | None = None,
        max_poll_failures: int | None = DEFAULT_MAX_POLL_FAILURES,
        max_outage: float = DEFAULT_MAX_OUTAGE,
        end_on_success: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(seedance_conn_id, poll_interval, end_time, max_poll_failures, max_outage)
        self.seedance_task_id = seedance_task_id
        # as given unless a mapping: anything else resumes the task on a worker (see _task_end)
        self.end_on_success = dict(end_on_success) if isinstance(end_on_success, Mapping) else end_on_success

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "seedance_task_id": self.seedance_task_id,
                **self.poll_kwargs(),
                **({"end_on_success": self.end_on_success} if self.end_on_success is not None else {}),
            },
        )

    def _hook(self) -> SeedanceHook:
        self.check_settings()  # a bad one ends in an error event
        return self.hook_class(
            self.seedance_conn_id,
            retry_min_wait=min(self.poll_interval, 2.0),
            retry_max_wait=poller_max_wait(self.poll_interval),
            max_outage=self.max_outage,
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        task_id = self.seedance_task_id
        last = SeedanceTask(task_id=task_id, status=UNREAD_STATUS)
        unknown_reported: set[str] = set()
        read_started = time.time()
        # one logger for the whole wait: Airflow's is a lazy proxy that binds anew on each use
        debug = self.log.debug
        try:
            async with self._hook() as hook, metrics.InFlight(1):
                attempts = self.max_poll_failures + 1 if self.max_poll_failures is not None else None
                while True:
                    # The deferring task has just read the status: wait before the first poll.
                    await asleep_until_deadline(self.poll_interval, self.end_time)
                    if self._past_deadline():
                        yield status_event(TriggerEventStatus.TIMEOUT, last, self._timeout_message(last))
                        return
                    read_started = time.time()
                    last = await hook.aget_status(
                        task_id, deadline=self.end_time, outage=self.max_outage, attempts=attempts
                    )
                    if last.is_success:
                        yield await self._task_end(hook, last) or terminal_event(last)
                        return
                    if last.is_failed:
                        yield terminal_event(last)
                        return
                    if last.status not in TaskStatus.KNOWN and last.status not in unknown_reported:
                        unknown_reported.add(last.status)
                        self.log.warning("Seedance task %s reports unknown status %r", task_id, last.status)
                    debug("Seedance task %s is %s", task_id, last.status)
        except SeedanceError as exc:
            # Retries of a transient failure stop early rather than sleep past the deadline:
            # when the deadline, not the outage limit, ended them, the wait ran out of time.
            if exc.retryable and deadline_within_outage(read_started, self.max_outage, self.end_time):
                yield status_event(TriggerEventStatus.TIMEOUT, last, self._timeout_message(last))
            else:
                event = status_event(
                    TriggerEventStatus.ERROR, last, f"Polling Seedance task {task_id} failed: {exc}"
                )
                event.payload["error_code"] = exc.error_code
                yield event

    async def on_kill(self) -> None:
        """Airflow 3.3+: called when the trigger is cancelled: a user killed the deferred task, or
        the task ended elsewhere (a callback ended or resumed it). Nothing can be cancelled."""
        self.log.warning(
            "Seedance has no cancel API: if generation %s had not finished, it keeps running on the "
            "server and is billed if it succeeds (a task ended by its callback needs nothing). Its "
            "result can still be collected with "
            "SeedanceStatusSensor(seedance_task_id=%r).",
            self.seedance_task_id,
            self.seedance_task_id,
        )

    async def _task_end(self, hook: SeedanceHook, task: SeedanceTask) -> TriggerEvent | None:
        """End the task with its success here: the XComs, the metrics and the log line the
        worker's ``execute_complete`` would have produced; ``None`` to resume on a worker.

        Only where the operator asked for it and a real triggerer runs this trigger:
        ``dag.test()`` runs it without a task instance, and would resume the task with the
        task-end event's bare payload.
        """
        ti = self.task_instance
        if ti is None or self.end_on_success is None or (event := task_success_event()) is None:
            return None
        try:
            end = task_end(self.end_on_success, task)
            if end is None:
                return None
            await push_xcoms_from_trigger(ti, end.xcoms, end.links)
        except Exception as exc:  # e.g. a hand-edited end_on_success: the worker resumes and pushes them
            self.log.warning("Could not end the task in the triggerer (%s); resuming on a worker", exc)
            return None
        end.report(self.log, ti, hook.describe_cost(task.consumed_credits), "triggerer")
        return event  # type: ignore[no-any-return]

    def _past_deadline(self) -> bool:
        return self.end_time is not None and time.time() >= self.end_time

    def _timeout_message(self, last: SeedanceTask) -> str:
        return (
            f"Seedance task {self.seedance_task_id} was still {last.status} at its deadline; "
            f"it keeps running on the server and can be collected with "
            f"SeedanceStatusSensor(seedance_task_id={self.seedance_task_id!r})"
        )


@dataclasses.dataclass(frozen=True)
class TaskEnd:
    """A successful generation's task ended without a worker: what it leaves behind.

    The trigger (in the triggerer) and the callback receiver (in the API server) both end a task
    this way when the operator put ``end_on_success`` in the trigger's kwargs; both take it from
    :func:`task_end`, so the two endings leave the same XComs, metrics and log line.
    """

    task: SeedanceTask
    result: GenerationResult
    #: XComs the worker's ``execute_complete`` would push (``XCom.set``: the XCom backend).
    xcoms: dict[str, Any]
    #: The extra links' XComs (``_link_<name>``), which the task runner writes straight to the DB.
    links: dict[str, Any]

    def report(self, log: Any, ti: Any, cost: str, where: str) -> None:
        """The metrics and the log line of the worker's ``execute_complete`` for the task
        instance ``ti`` (anything with its ``dag_id`` and ``task_id``)."""
        metrics.count_finished([self.task.to_dict()], str(ti.dag_id), str(ti.task_id))
        metrics.count_results({"ti": ti}, [self.result])
        log.info(
            "Seedance task %s SUCCESS: %s — %s (the task ends here, in the %s)",
            self.task.task_id,
            url_for_logs(self.task.video_url),
            cost,
            where,
        )


def task_end(end_on_success: Mapping[str, Any] | None, task: SeedanceTask) -> TaskEnd | None:
    """How ``task`` ends its Airflow task without a worker, or ``None`` when a worker must resume it
    (no ``end_on_success`` in the trigger's kwargs, or the generation did not succeed)."""
    if not isinstance(end_on_success, Mapping) or not task.is_success:
        return None
    spec = end_on_success
    result, xcoms = success_xcoms(
        task,
        spec.get("request") or {},
        spec.get("seedance_task_ids") or (),
        str(spec.get("base_url") or ""),
        return_value=bool(spec.get("return_value", True)),
    )
    return TaskEnd(task, result, xcoms, dict(spec.get("links") or {}))


def status_event(status: TriggerEventStatus, task: SeedanceTask, message: str) -> TriggerEvent:
    """The event of :class:`SeedanceStatusTrigger`. ``task``: the generation as last read;
    ``result``: the same as a :class:`GenerationResult`."""
    return TriggerEvent(
        {
            "status": status.value,
            "task": task.to_dict(),
            "result": GenerationResult.from_task(task).to_xcom(),
            "message": message,
        }
    )


def terminal_event(task: SeedanceTask) -> TriggerEvent:
    """The event the trigger fires for a generation it read as SUCCESS or FAILED: one function, so
    the callback receiver resumes a task with exactly what the trigger would have sent."""
    if task.is_success:
        return status_event(TriggerEventStatus.SUCCESS, task, f"Seedance task {task.task_id} succeeded")
    if task.is_failed:
        message = f"Seedance task {task.task_id} FAILED: {task.error_message or 'no message'}"
        return status_event(TriggerEventStatus.FAILED, task, message)
    raise ValueError(f"Seedance task {task.task_id} is {task.status}, not SUCCESS or FAILED")
