"""What the Seedance operators and the sensor share: XCom pushes, delivery, event checks.

This module sits below ``operators`` and ``sensors`` (both import it; it imports neither), so
a helper that several task types need never makes one of them borrow from another.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_seedance import metrics
from airflow_provider_seedance._compat import TaskDeferred
from airflow_provider_seedance.budgets import BudgetConfig, SharedBudgets, credits_value
from airflow_provider_seedance.exceptions import (
    CreationState,
    SeedanceError,
    SeedanceGenerationFailedError,
    SeedanceSubmissionUncertainError,
    SeedanceTaskNotFoundError,
    SeedanceValidationError,
    never_created,
)
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.hosts import url_for_logs
from airflow_provider_seedance.models import SeedanceTask, TriggerEventStatus, estimate_credits
from airflow_provider_seedance.results import GenerationResult, Outcome
from airflow_provider_seedance.task_identity import try_identity
from airflow_provider_seedance.values import count_value, seconds_value
from airflow_provider_seedance.xcoms import XCOM_LINK, XCOM_RESULT, XCOM_TASK_ID, link_value

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath


def checked_hook_params(hook_params: Mapping[str, Any] | None) -> dict[str, Any]:
    """``hook_params`` as a task is given them, checked when the task is built (when its DAG file
    is parsed), not when it first uses its hook: that may be after it has paid (a deferred task
    resumes on a worker). Building a hook reads no connection."""
    if hook_params is not None and not isinstance(hook_params, Mapping):
        raise SeedanceValidationError(
            "hook_params", hook_params, "a mapping of SeedanceHook keywords, or None"
        )
    params = dict(hook_params or {})
    try:
        SeedanceHook(SeedanceHook.default_conn_name, **params)
    except TypeError:  # an unknown keyword (the values themselves raise SeedanceValidationError)
        allowed = [
            name
            for name, parameter in inspect.signature(SeedanceHook).parameters.items()
            if parameter.kind is inspect.Parameter.KEYWORD_ONLY
        ]
        unknown = ", ".join(sorted(map(str, set(params) - set(allowed))))
        allowed_keys = f"keywords among {', '.join(allowed)}"
        raise SeedanceValidationError("hook_params", unknown, allowed_keys) from None
    return params


class SeedanceConnected:
    """What every Seedance task keeps of its connection: the conn id, hook tuning, the wait.

    A mixin for the operators and the sensor. The hook is built on first use, never in
    ``__init__`` (parsing a DAG file must not read a connection).
    """

    seedance_conn_id: str
    hook_params: dict[str, Any]
    poll_interval: float
    deferrable: bool

    def _connect(
        self,
        seedance_conn_id: str,
        hook_params: Mapping[str, Any] | None,
        poll_interval: float,
        deferrable: bool,
    ) -> None:
        self.seedance_conn_id = seedance_conn_id
        self.hook_params = checked_hook_params(hook_params)
        self.poll_interval = seconds_value(poll_interval, "poll_interval")
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> SeedanceHook:
        return SeedanceHook(self.seedance_conn_id, **self.hook_params)


class SeedanceGenerating(SeedanceConnected):
    """What both generating operators share beyond the connection: the money and wait rules."""

    skip_if_exists: bool | None
    max_credits: int | None
    dag_run_max_credits: int | None = None
    resubmit_on_failure: int
    wait_for_completion: bool
    timeout: float | None
    force_new: bool

    def _keep_money_rules(
        self,
        skip_if_exists: bool | None,
        max_credits: int | None,
        resubmit_on_failure: int,
        wait_for_completion: bool,
        timeout: float | None,
        force_new: bool,
    ) -> None:
        self.skip_if_exists = skip_if_exists
        self.max_credits = max_credits
        self.resubmit_on_failure = count_value(
            resubmit_on_failure, "resubmit_on_failure", minimum=0, what=" of new generations"
        )
        self.wait_for_completion = wait_for_completion
        self.timeout = timeout
        self.force_new = force_new

    # ------------------------------------------------------------------ lineage
    #: What this try's generations came to, kept for lineage when the try ends (successful or
    #: not). A deferred task resumes in a fresh instance: its ``execute_complete`` sets it on
    #: the instance the OpenLineage listener then reads.
    _lineage_results: tuple[GenerationResult, ...] = ()

    def keep_for_lineage(self, results: Iterable[GenerationResult]) -> None:
        self._lineage_results = tuple(results)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage's view of the ended try (called by the OpenLineage provider, if installed).

        Inputs: the reference images (and the declared ``inlets`` that are assets); outputs: the
        storage paths of the delivered videos (and the declared asset ``outlets``); run facet
        ``seedance``: task ids, request parameters (secret-free), outcomes and credits. The
        OpenLineage imports happen here, so the provider needs no OpenLineage package.
        """
        from airflow_provider_seedance.lineage import lineage_of
        from airflow_provider_seedance.lineage.facets import operator_lineage

        return operator_lineage(
            lineage_of(self._lineage_results),
            inlets=getattr(self, "inlets", ()),
            outlets=getattr(self, "outlets", ()),
        )

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """A failed try's lineage: what was sent, what it cost (the failure's result), no output
        that was not delivered."""
        return self.get_openlineage_facets_on_complete(task_instance)

    def _keep_shared_budget(self, dag_run_max_credits: int | None) -> None:
        self.dag_run_max_credits = credits_value(
            dag_run_max_credits, "dag_run_max_credits", what=" shared by every Seedance task of the DAG run"
        )

    def shared_budgets(self, context: Context) -> SharedBudgets | None:
        """The shared budgets this task instance draws from (``dag_run_max_credits``, the
        connection's ``budget`` extra), checked before any HTTP call; ``None`` when none is set."""
        config = BudgetConfig.from_extra(self.seedance_conn_id, self.hook.connection_extra())
        if not config.limited and self.dag_run_max_credits is None:
            return None
        dag_id, run_id, task_id, map_index, _ = try_identity(context["ti"])
        return SharedBudgets.open(config, self.dag_run_max_credits, (dag_id, run_id, task_id, map_index))

    def settle_budget(self, budgets: SharedBudgets | None, task: SeedanceTask) -> None:
        """A generation ended: its reservation takes its actual credits (0 when it FAILED).

        Book-keeping only: a store that cannot be written is logged, never fails a paid task
        (its reservation then keeps the estimate).
        """
        if budgets is None or not task.is_terminal:
            return
        try:
            budgets.settle(task.task_id, task.consumed_credits if task.is_success else 0)
        except Exception as exc:
            self.log.warning("Seedance budget: could not settle task %s: %s", task.task_id, exc)  # type: ignore[attr-defined]


def push_progress(context: Context, task: SeedanceTask, base_url: str) -> None:
    """The task id and the link data, pushed before any wait (and again at the end).

    The link data also carries status, error and request, so that a failed generation
    still says what it was and why it failed.
    """
    ti = context["ti"]
    ti.xcom_push(key=XCOM_TASK_ID, value=task.task_id)
    ti.xcom_push(key=XCOM_LINK, value=link_value(task, base_url))


def push_result(context: Context, result: GenerationResult, log: Any = None) -> None:
    """Push the final result under :data:`XCOM_RESULT` and count it in the metrics; never masks
    the error being raised."""
    metrics.count_results(context, [result])
    try:
        context["ti"].xcom_push(key=XCOM_RESULT, value=result.to_xcom())
    except Exception as exc:  # the task's own error matters more than the gallery's record
        if log is not None:
            log.warning("Could not record the Seedance result in XCom: %s", exc)


class FailureState(Protocol):
    """What a try knows of its generation when it fails (the operator's and the sensor's state).

    ``last``: the last :class:`SeedanceTask` seen, or ``None``; ``request``: the payload;
    ``history``: the Seedance task ids submitted for it; ``sending``: a generate request is in
    flight (it may have reached the service); ``watched_task_id``: the generation a sensor
    watches (it sends nothing itself), ``None`` for a task that submits.
    """

    last: SeedanceTask | None
    request: dict[str, Any]
    history: tuple[str, ...]
    sending: bool
    watched_task_id: str | None


def result_on_error(
    exc: BaseException,
    last: SeedanceTask | None,
    request: Mapping[str, Any],
    history: tuple[str, ...],
    *,
    sending: bool = False,
    watched_task_id: str | None = None,
) -> GenerationResult:
    """What the task's failure means for the money, from what was last known of the generation.

    With nothing seen of a generation: a sensor's watched generation is *unknown* (it exists
    elsewhere and was never sent from here); a generate request whose answer was lost (an
    uncertain error, or anything that ended the try while it was ``sending``) *may have been
    charged*; one the service answered with a 4xx was *refused*; otherwise nothing was sent.
    """
    message = str(exc)
    if last is None:
        if watched_task_id:
            return _watch_failed(watched_task_id, request, exc)
        if isinstance(exc, SeedanceSubmissionUncertainError) or (sending and not never_created(exc)):
            if not isinstance(exc, SeedanceSubmissionUncertainError):
                cause = message or type(exc).__name__
                message = (
                    f"The try ended while the generate request was being sent ({cause}): "
                    "it may have reached Seedance, so a generation may exist and may have been charged. "
                    "It is not sent again; check the account's dashboard, then force_new=True releases it."
                )
            return GenerationResult.uncertain(message, request, seedance_task_ids=history)
        if isinstance(exc, SeedanceError) and exc.creation is CreationState.REFUSED:
            return GenerationResult.refused(message, request, seedance_task_ids=history)
        return GenerationResult.not_sent(message, request)
    result = GenerationResult.from_task(last, request, seedance_task_ids=history)
    if last.is_success:
        return result.with_(
            outcome=Outcome.PAID_NOT_DELIVERED,
            error_message=paid_not_delivered_text(last.task_id, message or type(exc).__name__),
        )
    if last.is_failed or isinstance(exc, SeedanceGenerationFailedError):
        return result.with_(outcome=Outcome.GENERATION_FAILED, consumed_credits=0)
    return result.with_(
        outcome=Outcome.UNKNOWN, error_message=_may_still_be_billed(last.task_id, request, message)
    )


def _watch_failed(task_id: str, request: Mapping[str, Any], exc: BaseException) -> GenerationResult:
    """A sensor that never learned its generation's status: it sent nothing, the generation was
    submitted elsewhere, and its end (and bill) is unknown here."""
    if isinstance(exc, SeedanceTaskNotFoundError):
        read = f"the service does not know it ({exc})"
    else:
        read = f"its status could not be read ({exc or type(exc).__name__})"
    return GenerationResult(
        outcome=Outcome.UNKNOWN,
        task_id=task_id,
        request=dict(request),
        error_message=(
            f"Seedance generation {task_id} was submitted elsewhere; this sensor only watches it and "
            f"sent nothing. {read[0].upper()}{read[1:]}: its end and cost are not known here."
        ),
        seedance_task_ids=(task_id,),
    )


def paid_not_delivered_text(task_id: str, cause: str) -> str:
    """The next step for a generation paid for but not delivered: re-attach, never a new run."""
    cause = cause.rstrip().rstrip(".")
    return (
        f"{cause}. Seedance generation {task_id} is paid for: a retry (set retries) or clearing the "
        "task re-attaches to it and delivers its video without paying again, while the service "
        "still serves the video; a new run pays again."
    )


def _may_still_be_billed(task_id: str, request: Mapping[str, Any], cause: str) -> str:
    """The money of a generation whose end is unknown: unbilled so far, billed if it succeeds."""
    try:
        price = estimate_credits(
            request.get("resolution"), request.get("duration"), request.get("generate_audio")
        )
        cost = f" ({price} credits if it succeeds)"
    except (SeedanceError, KeyError, TypeError, ValueError):
        cost = ""
    return (
        f"Seedance generation {task_id} was submitted and may still be billed{cost}: its end could not be "
        f"learned. Clearing the task re-attaches to it without paying again. Last error: {cause}"
    )


def deliver(
    hook: SeedanceHook,
    log: Any,
    task: SeedanceTask,
    result: GenerationResult,
    destination: str | ObjectStoragePath | None,
) -> GenerationResult:
    """Deliver a finished video to ``destination`` (if any), record where, log the success."""
    if destination is not None:
        delivered = hook.download(task, destination)
        result = result.with_(
            output_path=delivered.output_path, bytes=delivered.bytes, sha256=delivered.sha256
        )
    log.info(
        "Seedance task %s SUCCESS: %s — %s",
        task.task_id,
        result.output_path or url_for_logs(task.video_url),
        hook.describe_cost(task.consumed_credits),
    )
    return result


def asset_extra(result: GenerationResult) -> dict[str, Any]:
    """What an asset event says about one video."""
    return {
        "video_url": result.video_url,
        "output_path": result.output_path,
        "seedance_task_id": result.task_id,
        "consumed_credits": result.consumed_credits,
        "consumed_usd": float(result.consumed_usd),
        "reused_existing": result.reused_existing,
        "request": dict(result.request),
    }


def attach_to_asset_events(context: Context, outlets: Any, extra: dict[str, Any]) -> None:
    """Add ``extra`` to the event of every ``Asset`` among ``outlets``."""
    for outlet in outlets or []:
        if type(outlet).__name__ == "Asset":
            context["outlet_events"][outlet].extra.update(extra)


def task_from_event(
    event: Any, *, expected_task_id: str | None = None
) -> tuple[TriggerEventStatus, SeedanceTask, str]:
    """Check a trigger event and return ``(status, task, message)``; fail loudly on anything odd."""
    if not isinstance(event, dict):
        raise SeedanceError(f"Seedance trigger returned no usable event: {event!r}")
    try:
        status = TriggerEventStatus(event.get("status"))
    except ValueError:
        raise SeedanceError(f"Seedance trigger event has unknown status {event.get('status')!r}") from None
    try:
        task = SeedanceTask.from_dict(event.get("task") or {})
    except SeedanceError as exc:
        raise SeedanceError(f"Seedance trigger event carries no valid task: {exc}") from None
    expected = expected_task_id.strip() if isinstance(expected_task_id, str) else None
    if expected is not None and task.task_id != expected:
        raise SeedanceError(f"Seedance trigger event is for task {task.task_id}, expected {expected}")
    return status, task, str(event.get("message") or "")


@contextlib.contextmanager
def on_failed_try(record: Callable[[BaseException], None]) -> Iterator[None]:
    """Call ``record`` with whatever ends the try, before it propagates.

    A deferral is not an ending (the task resumes after the trigger fires); anything else is,
    also Airflow's execution timeout and termination signals.
    """
    try:
        yield
    except TaskDeferred:
        raise
    except BaseException as exc:
        record(exc)
        raise


def recording_failures(
    context: Context,
    log: Any,
    state: FailureState,
    keep: Callable[[list[GenerationResult]], None] | None = None,
) -> contextlib.AbstractContextManager[None]:
    """Push what a failure means for the money (``seedance_result``) before it propagates.

    ``state`` is a :class:`FailureState`; ``keep`` also receives that result (the operator keeps
    it for lineage).
    """

    def record(exc: BaseException) -> None:
        result = result_on_error(
            exc,
            state.last,
            state.request,
            state.history,
            sending=state.sending,
            watched_task_id=state.watched_task_id,
        )
        if keep is not None:
            keep([result])
        push_result(context, result, log)
        if result.outcome is Outcome.NOT_SENT:
            log.info(
                "Nothing was sent to Seedance and nothing was spent; fix the cause and run the task again."
            )
        elif result.outcome is Outcome.REFUSED:
            log.error(
                "The service refused the request — nothing spent (no generation was created): %s",
                result.error_message,
            )
        elif result.outcome is Outcome.UNCERTAIN:
            log.error("%s: %s", result.outcome.summary, result.error_message)
        elif result.outcome is Outcome.UNKNOWN:
            log.error("%s", result.error_message)
        elif result.outcome is Outcome.PAID_NOT_DELIVERED:
            log.error(
                "Seedance generation %s succeeded and was billed %s credits, but the task failed: %s",
                result.task_id,
                result.consumed_credits,
                result.error_message,
            )

    return on_failed_try(record)


__all__ = [
    "XCOM_LINK",
    "XCOM_RESULT",
    "XCOM_TASK_ID",
    "FailureState",
    "SeedanceConnected",
    "SeedanceGenerating",
    "asset_extra",
    "attach_to_asset_events",
    "deliver",
    "on_failed_try",
    "paid_not_delivered_text",
    "push_progress",
    "push_result",
    "recording_failures",
    "result_on_error",
    "task_from_event",
]
