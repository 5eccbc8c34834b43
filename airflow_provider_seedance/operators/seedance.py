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
    SeedanceError,
    SeedanceGenerationFailedError,
    SeedanceSubmissionUncertainError,
    SeedanceTaskNotFoundError,
    SeedanceTimeoutError,
)
from airflow_provider_seedance.hooks.seedance import STATUS_PATH, SeedanceHook
from airflow_provider_seedance.models import GenerationRequest, SeedanceTask, TaskStatus
from airflow_provider_seedance.reattach import SUBMITTING, SubmissionRecord
from airflow_provider_seedance.triggers.seedance import EVENT_STATUSES, SeedanceStatusTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context
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
    :param timeout: seconds to wait for the generation before failing (the generation keeps
        running; the error names its task id).
    :param force_new: submit a new generation even if an earlier try of this task instance
        already submitted this exact request (re-attach is the default).
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
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hook_params = dict(hook_params or {})
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
        self.log.info(
            "Seedance request: %s, %s, %ss%s; estimated %s",
            payload.get("aspect_ratio", "1:1 (default)"),
            payload.get("resolution", "720p (default)"),
            payload.get("duration", "8"),
            ", audio" if request.generate_audio else "",
            self.hook.describe_cost(request.estimated_credits),
        )
        task = self._attach_or_submit(context, request)
        self._remember(context, task)
        if not task.is_terminal:
            task = self.hook.get_status(task.task_id)
        if task.is_terminal or not self.wait_for_completion:
            return self._finish(context, task, payload)
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
                kwargs={"request_payload": payload, "seedance_task_id": task.task_id},
                timeout=None,
            )
        task = self.hook.wait_for_completion(
            task.task_id, poll_interval=self.poll_interval, deadline=end_time
        )
        return self._finish(context, task, payload)

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any] | None = None,
        request_payload: dict[str, Any] | None = None,
        seedance_task_id: str | None = None,
    ) -> dict[str, Any]:
        """Resume after the trigger fired."""
        status, task, message = task_from_event(event, expected_task_id=seedance_task_id)
        payload = request_payload if request_payload is not None else self.build_request().to_payload()
        if status == "timeout":
            raise SeedanceTimeoutError(task.task_id, self.timeout or 0.0, task.status)
        if status == "error":
            raise SeedanceError(f"{message} (a retry re-attaches to Seedance task {task.task_id})")
        return self._finish(context, task, payload)

    # ------------------------------------------------------------------ steps
    def _attach_or_submit(self, context: Context, request: GenerationRequest) -> SeedanceTask:
        record = SubmissionRecord.for_context(context)
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
        record.mark_submitting(fingerprint)
        try:
            seedance_task_id = self.hook.submit_request(request)
        except SeedanceSubmissionUncertainError:
            raise  # keep the "submitting" mark: a generation may exist
        except BaseException:
            record.forget(fingerprint)  # the API answered "no": nothing was created
            raise
        record.mark_submitted(fingerprint, seedance_task_id)
        return SeedanceTask(
            task_id=seedance_task_id, status=TaskStatus.IN_PROGRESS, request=request.to_payload()
        )

    def _remember(self, context: Context, task: SeedanceTask) -> None:
        ti = context["ti"]
        ti.xcom_push(key=XCOM_TASK_ID, value=task.task_id)
        ti.xcom_push(
            key=XCOM_LINK,
            value={
                "task_id": task.task_id,
                "video_url": task.video_url,
                "base_url": self.hook.settings.base_url,
            },
        )

    def _finish(self, context: Context, task: SeedanceTask, payload: dict[str, Any]) -> dict[str, Any]:
        self._remember(context, task)
        if task.is_failed:
            raise SeedanceGenerationFailedError(task.task_id, task.error_message)
        if task.is_success:
            self.log.info(
                "Seedance task %s SUCCESS: %s — %s",
                task.task_id,
                task.video_url,
                self.hook.describe_cost(task.consumed_credits),
            )
        else:
            self.log.info("Seedance task %s submitted (%s); not waiting for it", task.task_id, task.status)
        return result_from_task(task, payload)


__all__ = ["SeedanceGenerateOperator", "SeedanceVideoLink", "result_from_task", "task_from_event"]
