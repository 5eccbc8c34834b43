"""SeedanceGenerateOperator: one video generation as one DAG step.

The operator validates locally, submits once, records the Seedance task id durably and in
XCom *before* waiting, then waits in the triggerer (deferrable), on the worker (blocking),
or not at all. A retried try re-attaches to the generation an earlier try submitted (see
:mod:`airflow_provider_seedance.reattach`), so a crash costs time, never a second payment.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator, BaseOperatorLink

from airflow_provider_seedance._compat import default_deferrable
from airflow_provider_seedance.exceptions import (
    SeedanceBudgetExceededError,
    SeedanceError,
    SeedanceGenerationFailedError,
    SeedanceSubmissionUncertainError,
    SeedanceTaskNotFoundError,
    SeedanceTimeoutError,
    never_created,
)
from airflow_provider_seedance.hooks.delivery import as_storage_path, existing_video
from airflow_provider_seedance.hooks.seedance import STATUS_PATH, SeedanceHook
from airflow_provider_seedance.models import GenerationRequest, SeedanceTask, TaskStatus
from airflow_provider_seedance.reattach import SUBMITTING, SubmissionRecord
from airflow_provider_seedance.triggers.seedance import EVENT_STATUSES, SeedanceStatusTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath
    from airflow.sdk.types import TaskInstanceKey

#: XCom keys written while the task runs (before any wait).
XCOM_TASK_ID = "seedance_task_id"
XCOM_LINK = "seedance_link"


class SeedanceVideoLink(BaseOperatorLink):
    """Opens the generated video; while the generation runs, points at its task id."""

    name = "Seedance video"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        data = XCom.get_value(ti_key=ti_key, key=XCOM_LINK)
        if not isinstance(data, dict):
            return ""
        if data.get("video_url"):
            return str(data["video_url"])
        if data.get("output_path"):  # reused from storage: nothing was generated this time
            return str(data["output_path"])
        # In flight: the status URL names the task id (it needs the API key to open).
        if data.get("base_url") and data.get("task_id"):
            return f"{data['base_url']}{STATUS_PATH}?task_id={data['task_id']}"
        return ""


def result_from_task(task: SeedanceTask, request_payload: dict[str, Any]) -> dict[str, Any]:
    """The result every Seedance operator and sensor returns (XCom ``return_value``)."""
    return {
        "task_id": task.task_id,
        "status": task.status,
        "video_url": task.video_url,
        "video_urls": list(task.video_urls),
        "consumed_credits": task.consumed_credits or 0,
        "consumed_usd": float(task.consumed_usd),
        "request": dict(request_payload),
        "error_message": task.error_message,
    }


def push_task_xcoms(context: Context, task: SeedanceTask, base_url: str) -> None:
    """The task id and the link data, pushed before any wait (and again at the end).

    The link data also carries status, error and request, so that a failed generation
    (which has no ``return_value``) still says what it was and why it failed.
    """
    ti = context["ti"]
    ti.xcom_push(key=XCOM_TASK_ID, value=task.task_id)
    ti.xcom_push(
        key=XCOM_LINK,
        value={
            "task_id": task.task_id,
            "video_url": task.video_url,
            "base_url": base_url,
            "status": task.status,
            "error_message": task.error_message,
            "request": dict(task.request),
        },
    )


def deliver_success(
    hook: SeedanceHook,
    log: Any,
    task: SeedanceTask,
    destination: str | ObjectStoragePath | None,
    result: dict[str, Any],
) -> dict[str, Any]:
    """Deliver a finished video to ``destination`` (if any), record where, log the success."""
    if destination is not None:
        delivered = hook.download(task, destination)
        result.update(output_path=delivered.output_path, bytes=delivered.bytes, sha256=delivered.sha256)
    log.info(
        "Seedance task %s SUCCESS: %s — %s",
        task.task_id,
        result.get("output_path") or task.video_url,
        hook.describe_cost(task.consumed_credits),
    )
    return result


def attach_to_asset_events(context: Context, outlets: Any, extra: dict[str, Any]) -> None:
    """Add ``extra`` to the event of every ``Asset`` among ``outlets``."""
    for outlet in outlets or []:
        if type(outlet).__name__ == "Asset":
            context["outlet_events"][outlet].extra.update(extra)


def task_from_event(event: Any, *, expected_task_id: str | None = None) -> tuple[str, SeedanceTask, str]:
    """Check a trigger event and return ``(status, task, message)``; fail loudly on anything odd."""
    if not isinstance(event, dict):
        raise SeedanceError(f"Seedance trigger returned no usable event: {event!r}")
    status = event.get("status")
    if status not in EVENT_STATUSES:
        raise SeedanceError(f"Seedance trigger event has unknown status {status!r}: {event!r}")
    try:
        task = SeedanceTask.from_dict(event.get("task") or {})
    except SeedanceError as exc:
        raise SeedanceError(f"Seedance trigger event carries no valid task: {exc}") from None
    if expected_task_id is not None and task.task_id != expected_task_id:
        raise SeedanceError(f"Seedance trigger event is for task {task.task_id}, expected {expected_task_id}")
    return status, task, str(event.get("message") or "")


class SeedanceGenerateOperator(BaseOperator):
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
    :param poll_interval: seconds between status reads.
    :param timeout: seconds to wait for a generation before failing (the generation keeps
        running; the error names its task id). A generation resubmitted after FAILED gets
        its own ``timeout``.
    :param force_new: submit a new generation even if an earlier try of this task instance
        already submitted this exact request (re-attach is the default).
    :param output_path: where to deliver the video after SUCCESS: a path, a URL such as
        ``s3://bucket/key.mp4`` or an ``ObjectStoragePath`` (templated). The result gains
        ``output_path``, ``bytes`` and ``sha256``.
    :param skip_if_exists: when ``output_path`` already holds a complete video, submit
        nothing and return it (``reused_existing: true``, 0 credits). Default: on when
        ``output_path`` is set.
    :param max_credits: fail before any HTTP call when the estimated price is higher.
    :param resubmit_on_failure: resubmit a FAILED generation up to this many more times
        (failed generations are not billed).
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
        poll_interval: float = 10.0,
        timeout: float | None = None,
        force_new: bool = False,
        output_path: str | ObjectStoragePath | None = None,
        skip_if_exists: bool | None = None,
        max_credits: int | None = None,
        resubmit_on_failure: int = 0,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hook_params = dict(hook_params or {})
        self.output_path = output_path
        self.skip_if_exists = skip_if_exists
        self.max_credits = max_credits
        if resubmit_on_failure < 0:
            raise ValueError("resubmit_on_failure must be >= 0")
        self.resubmit_on_failure = resubmit_on_failure
        self.prompt = prompt
        self.aspect_ratio = aspect_ratio
        self.resolution = resolution
        self.duration = duration
        self.generate_audio = generate_audio
        self.fixed_lens = fixed_lens
        self.image_urls = image_urls
        self.callback_url = callback_url
        self.seedance_conn_id = seedance_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.force_new = force_new

    @cached_property
    def hook(self) -> SeedanceHook:
        return SeedanceHook(self.seedance_conn_id, **self.hook_params)

    def build_request(self) -> GenerationRequest:
        """The validated request from the rendered fields (raises before any HTTP call)."""
        image_urls = self.image_urls
        if isinstance(image_urls, str) and not image_urls.strip():
            image_urls = None
        return GenerationRequest(
            prompt=self.prompt,
            aspect_ratio=self.aspect_ratio or None,
            resolution=self.resolution or None,
            duration=self.duration if self.duration not in ("", None) else None,  # type: ignore[arg-type]
            generate_audio=self.generate_audio,
            fixed_lens=self.fixed_lens,
            image_urls=image_urls,  # type: ignore[arg-type]
            callback_url=self.callback_url or None,
        )

    # ------------------------------------------------------------------ execute
    def execute(self, context: Context) -> dict[str, Any]:
        request = self.build_request()
        payload = request.to_payload()
        reused = self._reuse_existing(context, payload)
        if reused is not None:
            return reused  # costs nothing, so no budget applies
        self._check_budget(request)
        self.log.info(
            "Seedance request: %s, %s, %ss%s; estimated %s",
            payload.get("aspect_ratio", "1:1 (default)"),
            payload.get("resolution", "720p (default)"),
            payload.get("duration", "8"),
            ", audio" if request.generate_audio else "",
            self.hook.describe_cost(request.estimated_credits),
        )
        record = SubmissionRecord.for_context(context)
        task = self._attach_or_submit(record, request)
        return self._drive(context, record, request, task)

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any] | None = None,
        seedance_task_id: str | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        """Resume after the trigger fired (templates are rendered again, so the request is rebuilt)."""
        status, task, message = task_from_event(event, expected_task_id=seedance_task_id)
        if status == "timeout":
            raise SeedanceTimeoutError(task.task_id, self.timeout or 0.0, task.status)
        if status == "error":
            raise SeedanceError(f"{message} (a retry re-attaches to Seedance task {task.task_id})")
        request = self.build_request()
        return self._drive(context, SubmissionRecord.for_context(context), request, task)

    # ------------------------------------------------------------------ steps
    def _check_budget(self, request: GenerationRequest) -> None:
        if self.max_credits is not None and request.estimated_credits > self.max_credits:
            raise SeedanceBudgetExceededError(request.estimated_credits, self.max_credits)

    def _destination(self) -> ObjectStoragePath | None:
        if self.output_path in (None, ""):
            return None
        return as_storage_path(self.output_path)  # type: ignore[arg-type]

    def _reuse_existing(self, context: Context, payload: dict[str, Any]) -> dict[str, Any] | None:
        destination = self._destination()
        skip = self.skip_if_exists if self.skip_if_exists is not None else destination is not None
        if destination is None or not skip:
            return None
        existing = existing_video(destination)
        if existing is None:
            return None
        self.log.info(
            "%s already holds a complete video (%d bytes): nothing submitted, 0 credits ($0.00)",
            existing.output_path,
            existing.bytes,
        )
        result = {
            "task_id": None,
            "status": TaskStatus.SUCCESS,
            "video_url": None,
            "video_urls": [],
            "consumed_credits": 0,
            "consumed_usd": 0.0,
            "request": dict(payload),
            "error_message": None,
            "reused_existing": True,
            "seedance_task_ids": [],
            **existing.to_dict(),
        }
        result.pop("source_url", None)
        context["ti"].xcom_push(key=XCOM_LINK, value={"output_path": existing.output_path})
        self._emit_asset_events(context, result)
        return result

    def _attach_or_submit(self, record: SubmissionRecord, request: GenerationRequest) -> SeedanceTask:
        fingerprint = request.fingerprint()
        previous = None if self.force_new else record.get(fingerprint)
        if previous is not None and previous.state == SUBMITTING:
            raise SeedanceSubmissionUncertainError(
                f"an earlier try of this task was interrupted while submitting this exact request "
                f"(recorded in {record.where}); set force_new=True to submit anyway"
            )
        if previous is not None and previous.seedance_task_id:
            try:
                task = self.hook.get_status(previous.seedance_task_id)
            except SeedanceTaskNotFoundError:
                self.log.warning(
                    "Earlier Seedance task %s is unknown to the API; submitting anew",
                    previous.seedance_task_id,
                )
            else:
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
        return self._submit(record, request)

    def _submit(self, record: SubmissionRecord, request: GenerationRequest) -> SeedanceTask:
        fingerprint = request.fingerprint()
        record.mark_submitting(fingerprint)
        try:
            seedance_task_id = self.hook.submit_request(request)
        except SeedanceError as exc:
            if never_created(exc):
                record.forget_attempt(fingerprint)  # the API said no, or was never reached
            raise
        record.mark_submitted((fingerprint, seedance_task_id))
        return SeedanceTask(
            task_id=seedance_task_id, status=TaskStatus.IN_PROGRESS, request=request.to_payload()
        )

    def _drive(
        self, context: Context, record: SubmissionRecord, request: GenerationRequest, task: SeedanceTask
    ) -> dict[str, Any]:
        """Take ``task`` to its end: wait (or defer), resubmit FAILED ones while allowed, deliver."""
        fingerprint = request.fingerprint()
        while True:
            self._remember(context, task)
            if not task.is_terminal:
                task = self.hook.get_status(task.task_id)
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
                    task = self._submit(record, request)
                    continue
            if task.is_terminal or not self.wait_for_completion:
                return self._finish(context, record, request, task)
            end_time = time.time() + self.timeout if self.timeout is not None else None
            if self.deferrable:
                self.defer(
                    trigger=SeedanceStatusTrigger(
                        seedance_task_id=task.task_id,
                        seedance_conn_id=self.seedance_conn_id,
                        poll_interval=self.poll_interval,
                        end_time=end_time,
                    ),
                    method_name="execute_complete",
                    kwargs={"seedance_task_id": task.task_id},
                    timeout=None,
                )
            task = self.hook.wait_for_completion(
                task.task_id, poll_interval=self.poll_interval, deadline=end_time
            )

    def _remember(self, context: Context, task: SeedanceTask) -> None:
        push_task_xcoms(context, task, self.hook.settings.base_url)

    def _finish(
        self, context: Context, record: SubmissionRecord, request: GenerationRequest, task: SeedanceTask
    ) -> dict[str, Any]:
        self._remember(context, task)
        tried = list(record.history(request.fingerprint())) or [task.task_id]
        if task.is_failed:
            attempts = f" after {len(tried)} attempts ({', '.join(tried)})" if len(tried) > 1 else ""
            raise SeedanceGenerationFailedError(
                task.task_id, f"{task.error_message or 'no message'}{attempts}"
            )
        result = result_from_task(task, request.to_payload())
        result["seedance_task_ids"] = tried
        if not task.is_success:
            self.log.info("Seedance task %s submitted (%s); not waiting for it", task.task_id, task.status)
            return result
        deliver_success(self.hook, self.log, task, self._destination(), result)
        self._emit_asset_events(context, result)
        return result

    def _emit_asset_events(self, context: Context, result: dict[str, Any]) -> None:
        """Attach the video's location, task id, credits and request to each outlet's asset event."""
        extra = {
            "video_url": result.get("video_url"),
            "output_path": result.get("output_path"),
            "seedance_task_id": result.get("task_id"),
            "consumed_credits": result.get("consumed_credits"),
            "consumed_usd": result.get("consumed_usd"),
            "reused_existing": bool(result.get("reused_existing")),
            "request": result.get("request"),
        }
        attach_to_asset_events(context, self.outlets, extra)


__all__ = [
    "SeedanceGenerateOperator",
    "SeedanceVideoLink",
    "push_task_xcoms",
    "result_from_task",
    "task_from_event",
]
