"""SeedanceStatusSensor: wait for a generation submitted anywhere (another task, another system)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_seedance import task_support as steps
from airflow_provider_seedance._compat import AirflowSensorTimeout, AirflowSkipException, default_deferrable
from airflow_provider_seedance.exceptions import SeedanceError, SeedanceGenerationFailedError
from airflow_provider_seedance.hooks.delivery import task_destination
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.links import SeedanceVideoLink
from airflow_provider_seedance.models import SeedanceTask, TriggerEventStatus
from airflow_provider_seedance.results import GenerationResult
from airflow_provider_seedance.triggers.seedance import SeedanceStatusTrigger
from airflow_provider_seedance.values import seconds_value

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath


class SeedanceStatusSensor(steps.SeedanceConnected, BaseSensorOperator):
    """Wait until a Seedance generation ends; return the same result dict as the operator.

    SUCCESS completes the sensor; FAILED fails it without retries (or skips it with
    ``soft_fail``). In deferrable mode the wait runs in the triggerer and the sensor's
    ``timeout`` becomes the trigger's wall-clock deadline.

    :param seedance_task_id: the generation's task id (templated; typically pulled from XCom).
    :param seedance_conn_id: the ``seedance`` connection.
    :param poll_interval: seconds between status reads (also the poke interval).
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param output_path: deliver the video there after SUCCESS (path, URL or
        ``ObjectStoragePath``; templated); the result gains ``output_path``, ``bytes``, ``sha256``.
    :param hook_params: extra keyword arguments for :class:`SeedanceHook` (retry tuning).
    """

    template_fields: Sequence[str] = ("seedance_task_id", "seedance_conn_id", "output_path")
    ui_color = "#f2e6ff"
    operator_extra_links = (SeedanceVideoLink(),)

    def __init__(
        self,
        *,
        seedance_task_id: str,
        seedance_conn_id: str = SeedanceHook.default_conn_name,
        poll_interval: float = 10.0,
        deferrable: bool = default_deferrable(),
        output_path: str | ObjectStoragePath | None = None,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # Checked before Airflow's own check of ``poke_interval``, which names another field.
        kwargs.setdefault("poke_interval", seconds_value(poll_interval, "poll_interval"))
        super().__init__(**kwargs)
        self._connect(seedance_conn_id, hook_params, poll_interval, deferrable)
        self.output_path = output_path
        self.seedance_task_id = seedance_task_id

    @property
    def _watched_id(self) -> str:
        """The rendered task id without surrounding whitespace (as the hook sends it)."""
        value = self.seedance_task_id
        return value.strip() if isinstance(value, str) else value

    def _watch(self) -> _Watch:
        watched = self._watched_id
        return _Watch(watched_task_id=watched if isinstance(watched, str) and watched else None)

    def _check(self, context: Context, progress: _Watch, *, deadline: float | None = None) -> SeedanceTask:
        """One status read. With a ``deadline`` (a poke that holds its worker slot between pokes,
        as a blocking wait does), transient failures are read through by the wait policy of every
        wait, for the hook's ``max_outage`` and never past ``deadline``; else ``status_retries``
        reads (a reschedule-mode poke, or the deferrable sensor's first look: the trigger reads
        through outages)."""
        if self.output_path not in (None, ""):
            task_destination(self.output_path, "output_path")  # refused before the first read
        outage = self.hook.retry_policy.max_outage if deadline is not None else None
        task = self.hook.get_status(self._watched_id, outage=outage, deadline=deadline)
        progress.last = task
        progress.request = dict(task.request)
        self._push_link(context, task)
        return task

    def _push_link(self, context: Context, task: SeedanceTask) -> None:
        steps.push_progress(context, task, self.hook.settings.base_url)

    def _result(self, context: Context, task: SeedanceTask) -> dict[str, Any]:
        if task.is_failed:
            failure = SeedanceGenerationFailedError(task.task_id, task.error_message)
            if self.soft_fail:  # also when the first check, before any deferral, sees FAILED
                raise AirflowSkipException(f"{failure} (soft_fail)") from failure
            raise failure
        destination = self.output_path if self.output_path not in (None, "") else None
        result = steps.deliver(self.hook, self.log, task, GenerationResult.from_task(task), destination)
        steps.push_result(context, result, self.log)
        steps.attach_to_asset_events(context, self.outlets, steps.asset_extra(result))
        return result.to_xcom()

    #: Poke mode: when the sensor's ``timeout`` ends, counted from its first poke (``None`` until then).
    _poke_deadline: float | None = None

    def poke(self, context: Context) -> PokeReturnValue:
        progress = self._watch()
        deadline = None
        if self.mode == "poke":  # one process pokes until the end: its instance keeps the deadline
            if self._poke_deadline is None:
                self._poke_deadline = time.time() + float(self.timeout)
            deadline = self._poke_deadline
        with steps.recording_failures(context, self.log, progress):
            task = self._check(context, progress, deadline=deadline)
            if not task.is_terminal:
                self.log.info("Seedance task %s is %s", task.task_id, task.status)
                return PokeReturnValue(is_done=False)
            return PokeReturnValue(is_done=True, xcom_value=self._result(context, task))
        raise AssertionError("unreachable")  # pragma: no cover

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        started = time.time()
        progress = self._watch()
        with steps.recording_failures(context, self.log, progress):
            try:
                task = self._check(context, progress)
            except SeedanceError as exc:
                if not exc.retryable:
                    raise
                # the trigger reads through an outage (max_outage); no worker waits for it here
                self.log.warning(
                    "Seedance task %s: status unreadable (%s); waiting in the triggerer",
                    self._watched_id,
                    exc,
                )
            else:
                if task.is_terminal:
                    return self._result(context, task)
        self.defer(
            trigger=SeedanceStatusTrigger(
                seedance_task_id=self._watched_id,
                seedance_conn_id=self.seedance_conn_id,
                poll_interval=self.poll_interval,
                end_time=started + float(self.timeout),
                max_outage=self.hook.retry_policy.max_outage,
            ),
            method_name="execute_complete",
            timeout=None,
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        progress = self._watch()
        with steps.recording_failures(context, self.log, progress):
            status, task, message = steps.task_from_event(event, expected_task_id=self._watched_id)
            progress.last = task
            progress.request = dict(task.request)
            if status is TriggerEventStatus.TIMEOUT:
                # Decided here, not left to the base class: Airflow 3.1 fails instead of skipping.
                if self.soft_fail:
                    raise AirflowSkipException(f"{message} (soft_fail)")
                raise AirflowSensorTimeout(message)
            if status is TriggerEventStatus.ERROR:
                raise SeedanceError(message)
            self._push_link(context, task)
            return self._result(context, task)
        raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class _Watch:
    """What the sensor knows of the generation it watches (for the failure record).

    ``watched_task_id`` is set before the first read: a failure that comes before any status
    still names the generation, submitted elsewhere (the sensor sends nothing: never "not sent").
    """

    watched_task_id: str | None = None
    request: dict[str, Any] = field(default_factory=dict)
    last: SeedanceTask | None = None
    history: tuple[str, ...] = ()
    sending: bool = False
