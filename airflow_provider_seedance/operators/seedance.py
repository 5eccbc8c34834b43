"""SeedanceGenerateOperator: one video generation as one DAG step.

The operator validates locally, submits once, records the Seedance task id durably and in
XCom *before* waiting, then waits in the triggerer (deferrable), on the worker (blocking),
or not at all. A retried try re-attaches to the generation an earlier try submitted (see
:mod:`airflow_provider_seedance.reattach`), so a crash costs time, never a second payment.
Whatever ends the task, its ``seedance_result`` XCom says what happened to the money.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator

from airflow_provider_seedance import metrics
from airflow_provider_seedance._compat import default_deferrable
from airflow_provider_seedance.budgets import SharedBudgets
from airflow_provider_seedance.callbacks import (
    CALLBACK_POLL_INTERVAL,
    CallbackIdentity,
    completion_asset_key,
    token_expiry,
)
from airflow_provider_seedance.exceptions import (
    SeedanceBudgetExceededError,
    SeedanceConfigurationError,
    SeedanceError,
    SeedanceGenerationFailedError,
    SeedanceSubmissionUncertainError,
    SeedanceTaskNotFoundError,
    SeedanceTimeoutError,
    never_created,
)
from airflow_provider_seedance.hooks.delivery import DownloadResult, probe_destination, task_destination
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.links import SeedanceVideoLink
from airflow_provider_seedance.models import (
    API_FIELDS,
    UNREAD_STATUS,
    GenerationRequest,
    SeedanceTask,
    TaskStatus,
    TriggerEventStatus,
)
from airflow_provider_seedance.reattach import SubmissionRecord
from airflow_provider_seedance.results import GenerationResult
from airflow_provider_seedance.task_identity import try_identity
from airflow_provider_seedance.task_support import (
    XCOM_LINK,
    XCOM_TASK_ID,
    SeedanceGenerating,
    asset_extra,
    attach_to_asset_events,
    deliver,
    push_progress,
    push_result,
    recording_failures,
    task_from_event,
)
from airflow_provider_seedance.templating import LiteralSafeTemplater
from airflow_provider_seedance.triggers.seedance import SeedanceStatusTrigger
from airflow_provider_seedance.values import seconds_value

if TYPE_CHECKING:
    from airflow.sdk import Asset, Context, ObjectStoragePath

#: Seconds between status reads unless the task says otherwise (the API guide's advice).
DEFAULT_POLL_INTERVAL = 10.0


@dataclass
class _Progress:
    """What this try knows of its generation, so a failure can say what it cost."""

    #: The request's payload (what was, or would be, sent).
    request: dict[str, Any] = field(default_factory=dict)
    spec: GenerationRequest | None = None
    record: SubmissionRecord | None = None
    history: tuple[str, ...] = ()
    last: SeedanceTask | None = None
    #: The ``callback_url`` this try adds to what it submits (never part of ``spec``, so never
    #: of the fingerprint: a retry re-attaches whatever token its predecessor sent).
    callback_url: str | None = None
    #: A generate request is in flight: whatever ends the try now, it may have reached Seedance.
    sending: bool = False
    #: This task submits its own generation (only a sensor watches one submitted elsewhere).
    watched_task_id: str | None = None

    def use(self, spec: GenerationRequest, record: SubmissionRecord) -> _Progress:
        self.spec, self.record, self.request = spec, record, spec.to_payload()
        return self

    @property
    def fingerprint(self) -> str:
        assert self.spec is not None
        return self.spec.fingerprint()


class SeedanceGenerateOperator(LiteralSafeTemplater, SeedanceGenerating, BaseOperator):
    """Generate one video with Seedance 2.0.

    :param prompt: text description (1..2000 characters); templated; may be a ``.txt``/``.j2`` file.
    :param aspect_ratio: ``1:1``, ``16:9``, ``9:16``, ``4:3``, ``3:4``, ``21:9`` or ``9:21``.
    :param resolution: ``480p`` or ``720p``.
    :param duration: ``"4"``, ``"8"`` or ``"12"`` seconds (ints accepted).
    :param generate_audio: add AI audio (about doubles the price).
    :param fixed_lens: lock the camera.
    :param image_urls: at most one http(s) reference image URL (image-to-video).
    :param callback_url: public https URL the service notifies on completion.
    :param seedance_conn_id: the ``seedance`` connection.
    :param wait_for_completion: wait for the generation to end (else return right after submitting).
    :param deferrable: wait in the triggerer, freeing the worker slot.
    :param poll_interval: seconds between status reads (default 10; with callbacks on, see
        ``callback_poll_interval``). A value given here always wins.
    :param callback_poll_interval: when the connection turns callbacks on (extras
        ``callback_secret`` and ``callback_base_url``, see docs/waiting.md), no ``callback_url``
        is given and the task defers, each submission gets a ``callback_url`` of its own, the
        callback resumes the task, and the trigger only polls every this many seconds (default
        300) as a safety net for a lost callback.
    :param timeout: seconds to wait for a generation before failing (the generation keeps
        running; the error names its task id). A generation resubmitted after FAILED gets
        its own ``timeout``.
    :param force_new: release an *uncertain* submission: when an earlier try of this task
        instance was interrupted while sending this exact request (or lost its answer), a
        generation may exist whose id nobody knows, and the task refuses to pay again; with
        ``force_new=True`` it submits anyway. It never re-pays a generation whose id is
        recorded: later tries re-attach to the forced submission like to any other.
    :param output_path: where to deliver the video after SUCCESS: a path, a URL such as
        ``s3://bucket/key.mp4`` or an ``ObjectStoragePath`` (templated). The result gains
        ``output_path``, ``bytes`` and ``sha256``.
    :param skip_if_exists: when ``output_path`` already holds a complete video, submit
        nothing and return it (``reused_existing: true``, 0 credits). Default: on when
        ``output_path`` is set.
    :param max_credits: fail before any HTTP call when the estimated price is higher.
    :param dag_run_max_credits: a budget the whole DAG run shares (set it in ``default_args``):
        every generation of the run reserves its estimate before its generate request and the
        task fails, without retries, when the run's budget has no room left. Needs the
        connection extra ``budget.store``; see docs/budgets.md.
    :param resubmit_on_failure: resubmit a FAILED generation up to this many more times
        (failed generations are not billed).
    :param completion_asset: fire-and-forget (``wait_for_completion=False``) with callbacks on
        for the connection: when the generation ends, the callback receiver records an event of
        this asset (an ``Asset`` or its URI) whose ``extra`` is the result, so a DAG scheduled
        on it runs with no task waiting anywhere. Not one of ``outlets`` (Airflow records
        those when the task ends, which here is at submission). See docs/waiting.md.
    :param end_in_triggerer: with ``deferrable=True``, let a successful generation end the
        task in the triggerer (one worker start instead of two) when nothing is left to do on
        a worker: no ``output_path`` and no ``outlets``. The task gets the same XComs; any other
        ending (FAILED, with or without resubmits left, a timeout, a polling error) resumes on
        a worker as usual. Off by default: see docs/waiting.md for what the worker would have
        done that the triggerer does not (OpenLineage's COMPLETE event, the re-attach record's
        outcome).
    :param hook_params: extra keyword arguments for :class:`SeedanceHook` (retry tuning).
    """

    template_fields: Sequence[str] = (
        "prompt",
        "aspect_ratio",
        "resolution",
        "duration",
        "image_urls",
        "callback_url",
        "seedance_conn_id",
        "output_path",
    )
    template_ext: Sequence[str] = (".txt", ".j2")
    template_fields_renderers: ClassVar[dict[str, str]] = {"prompt": "md"}
    ui_color = "#f2e6ff"
    operator_extra_links = (SeedanceVideoLink(),)

    def __init__(
        self,
        *,
        prompt: str,
        aspect_ratio: str | None = None,
        resolution: str | None = None,
        duration: str | int | None = None,
        generate_audio: bool | None = None,
        fixed_lens: bool | None = None,
        image_urls: list[str] | str | None = None,
        callback_url: str | None = None,
        seedance_conn_id: str = SeedanceHook.default_conn_name,
        wait_for_completion: bool = True,
        deferrable: bool = default_deferrable(),
        poll_interval: float | None = None,
        timeout: float | None = None,
        force_new: bool = False,
        output_path: str | ObjectStoragePath | None = None,
        skip_if_exists: bool | None = None,
        max_credits: int | None = None,
        resubmit_on_failure: int = 0,
        end_in_triggerer: bool = False,
        hook_params: dict[str, Any] | None = None,
        dag_run_max_credits: int | None = None,
        callback_poll_interval: float = CALLBACK_POLL_INTERVAL,
        completion_asset: Asset | str | None = None,
        **kwargs: Any,
    ) -> None:
        arguments = locals()  # read before any other local is bound
        super().__init__(**kwargs)
        self.completion_asset = completion_asset_key(
            completion_asset, wait_for_completion, callback_url, self.outlets
        )
        self._connect(
            seedance_conn_id,
            hook_params,
            DEFAULT_POLL_INTERVAL if poll_interval is None else poll_interval,
            deferrable,
        )
        self.poll_interval_given = poll_interval is not None
        self.callback_poll_interval = seconds_value(callback_poll_interval, "callback_poll_interval")
        self._keep_money_rules(
            skip_if_exists, max_credits, resubmit_on_failure, wait_for_completion, timeout, force_new
        )
        self._keep_shared_budget(dag_run_max_credits)
        self.output_path = output_path
        self.end_in_triggerer = end_in_triggerer
        # The API parameters are kept under their own names, taken from the one list of API
        # fields (a field added there without a parameter here fails every construction).
        for name in API_FIELDS:
            setattr(self, name, arguments[name])

    def build_request(self) -> GenerationRequest:
        """The validated request from the rendered fields (raises before any HTTP call).

        An optional field whose template rendered to an empty string is not set.
        """
        values = {name: getattr(self, name) for name in API_FIELDS}
        for name, value in values.items():
            if name != "prompt" and isinstance(value, str) and not value.strip():
                values[name] = None
        return GenerationRequest.from_mapping({k: v for k, v in values.items() if v is not None})

    # ------------------------------------------------------------------ execute
    def execute(self, context: Context) -> dict[str, Any]:
        progress = _Progress()
        with recording_failures(context, self.log, progress, self.keep_for_lineage):
            request = self.build_request()
            progress.request = request.to_payload()
            reused = self._reuse_existing(context, request)
            if reused is not None:
                return reused  # costs nothing, so no budget applies
            self.check_budget(request)
            self.log.info(
                "Seedance request: %s, %s, %ss%s; estimated %s",
                progress.request.get("aspect_ratio", "1:1 (default)"),
                progress.request.get("resolution", "720p (default)"),
                progress.request.get("duration", "8"),
                ", audio" if request.generate_audio else "",
                self.hook.describe_cost(request.estimated_credits),
            )
            # Resolve the connection before anything is sent: an unusable one must fail here,
            # not after the POST was paid for.
            if self.completion_asset is not None and self.hook.settings.callbacks is None:
                raise SeedanceConfigurationError(
                    f"completion_asset={self.completion_asset[1]!r} needs callbacks: set the extras "
                    f"'callback_secret' and 'callback_base_url' on connection {self.seedance_conn_id!r} "
                    "(docs/waiting.md). Nothing was sent."
                )
            self._open_budgets(context)
            progress.use(request, SubmissionRecord.for_context(context))
            progress.callback_url = self._callback_url(context, request)
            task = self._attach_or_submit(progress)
            return self._drive(context, progress, task)
        raise AssertionError("unreachable")  # pragma: no cover - the block returns or raises

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any] | None = None,
        seedance_task_id: str | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        """Resume after the trigger fired (templates are rendered again, so the request is rebuilt)."""
        progress = _Progress()
        if isinstance(seedance_task_id, str) and seedance_task_id.strip():
            # Submitted before the deferral: a failure from here on is never "nothing was sent".
            progress.last = SeedanceTask(seedance_task_id.strip(), UNREAD_STATUS)
        with recording_failures(context, self.log, progress, self.keep_for_lineage):
            progress.use(self.build_request(), SubmissionRecord.for_context(context))
            assert progress.record is not None
            progress.history = progress.record.history(progress.fingerprint)
            status, task, message = task_from_event(event, expected_task_id=seedance_task_id)
            progress.last = task
            if status is TriggerEventStatus.TIMEOUT:
                raise SeedanceTimeoutError(task.task_id, self.timeout or 0.0, task.status)
            if status is TriggerEventStatus.ERROR:
                raise SeedanceError(
                    f"{message} Nothing more was spent by waiting; a retry re-attaches to "
                    f"Seedance task {task.task_id} (set retries to let it)."
                )
            # After the trigger's own errors: a budget lookup must not hide what the wait said.
            self._open_budgets(context)
            assert progress.spec is not None
            progress.callback_url = self._callback_url(context, progress.spec)  # for a resubmission
            return self._drive(context, progress, task)
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ callbacks
    def _callbacks_on(self, request: GenerationRequest) -> bool:
        """This task's generations get callback URLs: the connection turns callbacks on, the user
        gave no ``callback_url`` of their own, and either the task defers (only a deferred task
        instance can be resumed by the API server) or it does not wait and has a
        ``completion_asset`` (the receiver records its event)."""
        if self.hook.settings.callbacks is None or request.callback_url is not None:
            return False
        if self.wait_for_completion:
            return self.deferrable
        return self.completion_asset is not None

    def _callback_url(self, context: Context, request: GenerationRequest) -> str | None:
        """The ``callback_url`` this try sends, bound to this task instance try, or ``None``."""
        callbacks = self.hook.settings.callbacks
        if callbacks is None or not self._callbacks_on(request):
            return None
        identity = CallbackIdentity.for_try(
            self.seedance_conn_id,
            *try_identity(context["ti"]),
            # set only for fire-and-forget (completion_asset_key refuses it beside a wait)
            asset=self.completion_asset,
        )
        now = time.time()
        end_time = now + self.timeout if self.timeout is not None else None
        return callbacks.url_for(identity, token_expiry(now, end_time))

    def _trigger_poll_interval(self, progress: _Progress) -> float:
        """The deferred wait's poll interval: the user's, else the slow fallback when callbacks
        resume this task, else the default."""
        if self.poll_interval_given or progress.spec is None or not self._callbacks_on(progress.spec):
            return self.poll_interval
        return self.callback_poll_interval

    # ------------------------------------------------------------------ steps
    def check_budget(self, request: GenerationRequest) -> None:
        """Over ``max_credits``, the budget error (before any HTTP call)."""
        if self.max_credits is not None and request.estimated_credits > self.max_credits:
            raise SeedanceBudgetExceededError(request.estimated_credits, self.max_credits)

    def _destination(self) -> ObjectStoragePath | None:
        if self.output_path in (None, ""):
            return None
        return task_destination(self.output_path, "output_path")  # type: ignore[arg-type]

    def existing_output(self, *, before_post: bool = False) -> DownloadResult | None:
        """The complete video already at ``output_path`` when ``skip_if_exists`` applies, else
        ``None``; an ``output_path`` that cannot be used raises (see
        :func:`~airflow_provider_seedance.hooks.delivery.probe_destination`). Without
        ``before_post`` it only reads the destination (``seedance-plan`` uses it too); with it,
        a local destination's folder is created, so that one that cannot be is found before
        paying."""
        destination = self._destination()
        if destination is None:
            return None
        skip = self.skip_if_exists if self.skip_if_exists is not None else True
        return probe_destination(destination, "output_path", reuse=skip, before_post=before_post)

    def _reuse_existing(self, context: Context, request: GenerationRequest) -> dict[str, Any] | None:
        existing = self.existing_output(before_post=True)
        if existing is None:
            return None
        context["ti"].xcom_push(key=XCOM_LINK, value={"output_path": existing.output_path})
        own = self._own_generation(context, request)
        if own is not None:
            # A clear after delivery: the video is the one an earlier try of this task instance
            # paid for. Its result keeps that generation (and its credits, counted once by id).
            self.log.info(
                "%s already holds the video of Seedance task %s, generated by an earlier try: "
                "nothing submitted",
                existing.output_path,
                own.task_id,
            )
            result = own.with_(output_path=existing.output_path, bytes=existing.bytes, sha256=existing.sha256)
            return self._succeed(context, result)
        self.log.info(
            "%s already holds a complete video (%d bytes): nothing submitted, 0 credits ($0.00)",
            existing.output_path,
            existing.bytes,
        )
        result = GenerationResult.reused(
            existing.output_path, existing.bytes, existing.sha256, request.to_payload()
        )
        return self._succeed(context, result)

    @staticmethod
    def _own_generation(context: Context, request: GenerationRequest) -> GenerationResult | None:
        """The successful generation an earlier try of this task instance recorded, if any."""
        previous = SubmissionRecord.for_context(context).get(request.fingerprint())
        if previous is None or not previous.outcome:
            return None
        task = SeedanceTask.from_dict(previous.outcome)
        if not task.is_success or task.task_id != previous.seedance_task_id:
            return None
        return GenerationResult.from_task(task, request.to_payload(), seedance_task_ids=previous.history)

    def _attach_or_submit(self, progress: _Progress) -> SeedanceTask:
        record = progress.record
        assert record is not None
        fingerprint = progress.fingerprint
        previous = record.get(fingerprint)
        progress.history = previous.history if previous is not None else ()
        if previous is not None and previous.uncertain:
            if not self.force_new:
                raise SeedanceSubmissionUncertainError(
                    f"an earlier try of this task was interrupted while submitting this exact request "
                    f"(recorded in {record.where}); if Airflow declared that try dead while its request "
                    "was in flight, its answer may still arrive: clear this task later and it "
                    "re-attaches if it did. Otherwise, after checking the account's dashboard, set "
                    f"force_new=True to release that uncertain submission and submit anyway"
                )
            self.log.warning(
                "force_new=True: releasing the uncertain submission of this request (recorded in %s). "
                "If it did reach Seedance, that generation may be billed too.",
                record.where,
            )
            return self._submit(progress)
        if previous is not None and previous.seedance_task_id:
            self._count_reattached()
            if self.force_new:
                self.log.info(
                    "force_new=True is ignored: an earlier try recorded Seedance task %s for this request "
                    "(force_new only releases an uncertain submission; a recorded one is never paid twice)",
                    previous.seedance_task_id,
                )
            # Known before the read: if it fails, the failure still names the recorded generation.
            progress.last = SeedanceTask(previous.seedance_task_id, UNREAD_STATUS, request=progress.request)
            try:
                task = self.hook.get_status(previous.seedance_task_id)
            except SeedanceTaskNotFoundError:
                self.log.warning(
                    "Earlier Seedance task %s is unknown to the API; submitting anew",
                    previous.seedance_task_id,
                )
                progress.last = None
            else:
                progress.last = task
                if not task.is_failed:
                    self.log.info(
                        "Re-attaching to Seedance task %s (%s) submitted by an earlier try",
                        task.task_id,
                        task.status,
                    )
                    return task
                self.log.info(
                    "Earlier Seedance task %s FAILED (%s, not billed); submitting anew",
                    task.task_id,
                    task.error_message,
                )
        return self._submit(progress)

    def _submit(self, progress: _Progress) -> SeedanceTask:
        record, request = progress.record, progress.spec
        assert record is not None and request is not None
        fingerprint = progress.fingerprint
        reservation = self._reserve(progress)
        record.mark_submitting(fingerprint)
        progress.last = None  # what follows concerns this submission, not an earlier one
        progress.sending = True
        try:
            seedance_task_id = self.hook.submit_request(request, callback_url=progress.callback_url)
        except SeedanceError as exc:
            if never_created(exc):
                progress.sending = False
                record.forget_attempt(fingerprint)  # the API said no, or was never reached
                self._release(reservation)
            raise
        progress.sending = False
        task = SeedanceTask(seedance_task_id, TaskStatus.IN_PROGRESS, request=request.to_payload())
        progress.last = task  # known before the record is written: a failed write still names it
        progress.history = (*record.history(fingerprint), seedance_task_id)
        record.mark_submitted((fingerprint, seedance_task_id))
        self._bind(reservation, seedance_task_id)
        return task

    def _drive(self, context: Context, progress: _Progress, task: SeedanceTask) -> dict[str, Any]:
        """Take ``task`` to its end: wait (or defer), resubmit FAILED ones while allowed, deliver."""
        record = progress.record
        assert record is not None
        fingerprint = progress.fingerprint
        while True:
            progress.last = task
            self._remember(context, task)
            if not task.is_terminal:
                task = self.hook.get_status(task.task_id)
                progress.last = task
            if task.is_failed:
                tried = record.history(fingerprint)
                if len(tried) <= self.resubmit_on_failure:
                    self.log.warning(
                        "Seedance task %s FAILED (%s; not billed). Resubmitting (%d of %d).",
                        task.task_id,
                        task.error_message or "no message",
                        len(tried),
                        self.resubmit_on_failure,
                    )
                    task = self._submit(progress)
                    continue
            if task.is_terminal or not self.wait_for_completion:
                return self._finish(context, progress, task)
            end_time = time.time() + self.timeout if self.timeout is not None else None
            if self.deferrable:
                # no Airflow-side timeout (the default): the trigger owns the deadline (end_time)
                self.defer(
                    trigger=SeedanceStatusTrigger(
                        seedance_task_id=task.task_id,
                        seedance_conn_id=self.seedance_conn_id,
                        poll_interval=self._trigger_poll_interval(progress),
                        end_time=end_time,
                        end_on_success=self._end_on_success(context, progress),
                        max_outage=self.hook.retry_policy.max_outage,
                    ),
                    method_name="execute_complete",
                    kwargs={"seedance_task_id": task.task_id},
                )
            task = self.hook.wait_for_completion(
                task.task_id, poll_interval=self.poll_interval, deadline=end_time
            )

    def _end_on_success(self, context: Context, progress: _Progress) -> dict[str, Any] | None:
        """What the trigger needs to end the task itself after SUCCESS, or ``None`` when a worker
        must finish it: not asked for, a delivery to do, outlets (asset events are emitted by a
        worker only), or a downstream task mapped over this one's result (the task runner pushes
        that with its length), ``multiple_outputs`` (the task runner pushes each key) or a DAG
        result (Airflow 3.3 marks that XCom as the run's result): a worker pushes those."""
        if not self.end_in_triggerer or self._destination() is not None or self.outlets:
            return None
        if self.multiple_outputs or getattr(self, "returns_dag_result", False):
            return None
        if self._feeds_a_mapped_task():
            return None
        assert progress.record is not None
        return {
            "request": progress.request,
            "seedance_task_ids": list(progress.record.history(progress.fingerprint)),
            "base_url": self.hook.settings.base_url,
            "return_value": bool(self.do_xcom_push),
            "links": self._link_xcoms(context),
        }

    def _feeds_a_mapped_task(self) -> bool:
        """A downstream task is mapped over this task's result."""
        return self.has_dag() and next(self.iter_mapped_dependants(), None) is not None

    def _link_xcoms(self, context: Context) -> dict[str, Any]:
        """``_link_<name>``: URL of each extra link, computed as Airflow's task runner does when a
        task ends on a worker (a task that ends in the triggerer pushes them with its XComs)."""
        ti = context["ti"]
        return {
            link.xcom_key: link.get_link(self, ti_key=ti)  # type: ignore[arg-type]  # as the task runner
            for link in self.operator_extra_links
        }

    def _remember(self, context: Context, task: SeedanceTask) -> None:
        push_progress(context, task, self.hook.settings.base_url)
        self.settle_budget(self._budgets, task)

    # ------------------------------------------------------------------ shared budgets
    _budgets: SharedBudgets | None = None

    def _open_budgets(self, context: Context) -> None:
        self._budgets = self.shared_budgets(context)

    def _reserve(self, progress: _Progress) -> str | None:
        """Take this submission's estimate in the shared budgets (the budget error if one has no
        room). Keyed by the submission's number, so a try that reserves again after a crash
        finds its own reservation; a released uncertain mark (``force_new``) counts as one."""
        if self._budgets is None:
            return None
        assert progress.record is not None and progress.spec is not None
        if progress.last is not None:  # a FAILED generation being replaced: it cost nothing
            self.settle_budget(self._budgets, progress.last)
        previous = progress.record.get(progress.fingerprint)
        attempt = 0
        if previous is not None:
            attempt = len(previous.history) + len(previous.released) + int(previous.uncertain)
        return self._budgets.reserve(progress.fingerprint, attempt, progress.spec.estimated_credits)

    def _release(self, reservation: str | None) -> None:
        """The POST provably created nothing: its reservation is free again."""
        if reservation is None:  # no shared budget
            return
        assert self._budgets is not None  # the reservation was taken there
        try:
            self._budgets.release(reservation)
        except Exception as exc:  # the room stays taken: never less than was spent
            self.log.warning("Seedance budget: could not release a reservation: %s", exc)

    def _bind(self, reservation: str | None, seedance_task_id: str) -> None:
        if reservation is None:  # no shared budget
            return
        assert self._budgets is not None  # the reservation was taken there
        try:
            self._budgets.bind(reservation, seedance_task_id)
        except Exception as exc:  # the reservation keeps its estimate: never less than was spent
            self.log.warning("Seedance budget: could not record task %s: %s", seedance_task_id, exc)

    def _count_reattached(self) -> None:
        metrics.incr("generations.reattached", dag_id=self.dag_id, task_id=self.task_id)

    def _finish(self, context: Context, progress: _Progress, task: SeedanceTask) -> dict[str, Any]:
        record = progress.record
        assert record is not None
        self._remember(context, task)
        tried = record.history(progress.fingerprint) or (task.task_id,)
        progress.history = tried
        if task.is_failed:
            attempts = f" after {len(tried)} attempts ({', '.join(tried)})" if len(tried) > 1 else ""
            raise SeedanceGenerationFailedError(
                task.task_id, f"{task.error_message or 'no message'}{attempts}"
            )
        result = GenerationResult.from_task(task, progress.request, seedance_task_ids=tried)
        if not task.is_success:
            self.log.info("Seedance task %s submitted (%s); not waiting for it", task.task_id, task.status)
            self.keep_for_lineage([result])
            push_result(context, result, self.log)
            return result.to_xcom()
        snapshot = task.to_dict()
        del snapshot["request"]  # the record keys the request by its fingerprint
        metrics.count_finished(
            record.mark_finished((progress.fingerprint, snapshot)), self.dag_id, self.task_id
        )
        result = deliver(self.hook, self.log, task, result, self._destination())
        return self._succeed(context, result)

    def _succeed(self, context: Context, result: GenerationResult) -> dict[str, Any]:
        self.keep_for_lineage([result])
        push_result(context, result, self.log)
        attach_to_asset_events(context, self.outlets, asset_extra(result))
        return result.to_xcom()


__all__ = [
    "XCOM_LINK",
    "XCOM_TASK_ID",
    "SeedanceGenerateOperator",
    "SeedanceVideoLink",
]
