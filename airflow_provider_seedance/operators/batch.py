"""SeedanceBatchGenerateOperator: a whole catalog of videos in one task.

Mapped tasks cost Airflow a worker process per video to submit and another to resume;
for catalogs of hundreds or thousands of videos that overhead, not the rendering,
dominates. This operator validates every request up front, submits them with bounded
concurrency, records every Seedance task id durably as it goes (a retry re-attaches, as
for the single operator), defers **once** to :class:`SeedanceBatchStatusTrigger`, and
delivers the videos with bounded parallel downloads.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_seedance._compat import default_deferrable
from airflow_provider_seedance.exceptions import (
    SeedanceAPIError,
    SeedanceAuthError,
    SeedanceBudgetExceededError,
    SeedanceError,
    SeedanceInsufficientCreditsError,
    SeedanceTaskNotFoundError,
    SeedanceValidationError,
    never_created,
)
from airflow_provider_seedance.hooks.delivery import as_storage_path, existing_video
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.models import (
    GenerationRequest,
    SeedanceTask,
    TaskStatus,
    credits_to_usd,
    format_usd,
)
from airflow_provider_seedance.operators.seedance import attach_to_asset_events, result_from_task
from airflow_provider_seedance.reattach import REJECTED, SUBMITTING, SubmissionRecord
from airflow_provider_seedance.triggers.batch import BATCH_EVENT_STATUSES, SeedanceBatchStatusTrigger, slim

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

#: Keys of a batch item that are not API fields.
ITEM_KEYS = ("id", "output_path")
#: XCom key holding the per-item results when the task fails on a partial failure.
XCOM_BATCH_RESULTS = "seedance_batch_results"


class SeedanceBatchFailedError(SeedanceError):
    """Some generations of the batch did not succeed (``fail_on_any_failure``).

    A retry re-attaches to every generation already submitted and reuses every video
    already delivered, so it only pays for what is submitted again.
    """


@dataclass
class _Item:
    index: int
    request: GenerationRequest
    key: str
    destination: ObjectStoragePath | None
    label: str | None


class SeedanceBatchGenerateOperator(BaseOperator):
    """Generate many videos in one task: bounded submission, one deferral, parallel delivery.

    :param requests: list of dicts with the API fields (``prompt``, ``aspect_ratio``, ...),
        optionally ``id`` (used in ``output_path_template``) and ``output_path``; or an
        XComArg producing that list. Templated.
    :param max_in_flight: generate requests sent at once (bounded concurrency).
    :param output_path_template: where to deliver each video, e.g.
        ``"s3://bucket/catalog/{id}.mp4"``; fields: ``{index}``, ``{id}`` and the request's
        API fields. Templated (Jinja first, then these fields).
    :param skip_if_exists: items whose destination already holds a complete video are not
        submitted (0 credits). Default: on when a destination is set.
    :param max_credits: budget for the whole batch, checked before any HTTP call.
    :param resubmit_on_failure: resubmit each FAILED generation up to N more times.
    :param fail_on_any_failure: fail the task if any item did not succeed (the results are
        still pushed to XCom ``seedance_batch_results``); ``False`` returns failures in the list.
    :param max_parallel_downloads: deliveries at once.
    :param poll_interval: seconds between status rounds; :param timeout: wall-clock seconds.
    """

    template_fields: Sequence[str] = ("requests", "output_path_template", "seedance_conn_id")
    ui_color = "#e6d9ff"

    def __init__(
        self,
        *,
        requests: list[dict[str, Any]] | Any,
        seedance_conn_id: str = SeedanceHook.default_conn_name,
        max_in_flight: int = 8,
        output_path_template: str | None = None,
        skip_if_exists: bool | None = None,
        max_credits: int | None = None,
        resubmit_on_failure: int = 0,
        fail_on_any_failure: bool = True,
        wait_for_completion: bool = True,
        deferrable: bool = default_deferrable(),
        poll_interval: float = 10.0,
        timeout: float | None = None,
        max_parallel_downloads: int = 4,
        max_poll_concurrency: int = 32,
        force_new: bool = False,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if max_in_flight < 1 or max_parallel_downloads < 1:
            raise ValueError("max_in_flight and max_parallel_downloads must be >= 1")
        if resubmit_on_failure < 0:
            raise ValueError("resubmit_on_failure must be >= 0")
        self.requests = requests
        self.seedance_conn_id = seedance_conn_id
        self.max_in_flight = max_in_flight
        self.output_path_template = output_path_template
        self.skip_if_exists = skip_if_exists
        self.max_credits = max_credits
        self.resubmit_on_failure = resubmit_on_failure
        self.fail_on_any_failure = fail_on_any_failure
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.max_parallel_downloads = max_parallel_downloads
        self.max_poll_concurrency = max_poll_concurrency
        self.force_new = force_new
        self.hook_params = dict(hook_params or {})

    @cached_property
    def hook(self) -> SeedanceHook:
        return SeedanceHook(self.seedance_conn_id, **self.hook_params)

    # ------------------------------------------------------------------ requests
    def build_items(self) -> list[_Item]:
        """Validate every request before any HTTP call; the first bad one names its index."""
        requests = self.requests
        if isinstance(requests, dict) or not isinstance(requests, Iterable) or isinstance(requests, str):
            raise SeedanceValidationError("requests", requests, "a list of request dicts")
        items: list[_Item] = []
        seen: Counter[str] = Counter()
        for index, raw in enumerate(list(requests)):
            prefix = f"requests[{index}]."
            if not isinstance(raw, dict):
                raise SeedanceValidationError(
                    "request", raw, "a dict with at least a 'prompt'", prefix=prefix
                )
            api_fields = {k: v for k, v in raw.items() if k not in ITEM_KEYS}
            request = GenerationRequest.from_mapping(api_fields, field_prefix=prefix)
            label = raw.get("id")
            fingerprint = request.fingerprint()
            seen[fingerprint] += 1  # identical requests are distinct videos
            destination = self._destination(index, raw, request, prefix)
            items.append(
                _Item(
                    index,
                    request,
                    f"{fingerprint}-{seen[fingerprint]}",
                    destination,
                    None if label is None else str(label),
                )
            )
        return items

    def _destination(
        self, index: int, raw: dict[str, Any], request: GenerationRequest, prefix: str
    ) -> ObjectStoragePath | None:
        explicit = raw.get("output_path")
        if explicit not in (None, ""):
            return as_storage_path(explicit)
        if not self.output_path_template:
            return None
        fields = {**request.to_payload(), "index": index, "id": raw.get("id", index)}
        try:
            return as_storage_path(self.output_path_template.format(**fields))
        except (KeyError, IndexError, ValueError) as exc:
            raise SeedanceValidationError(
                "output_path_template",
                self.output_path_template,
                f"a template whose fields are among {sorted(fields)} ({exc})",
                prefix=prefix,
            ) from None

    # ------------------------------------------------------------------ execute
    def execute(self, context: Context) -> dict[str, Any]:
        items = self.build_items()
        reused = self._reused(items)
        todo = [item for item in items if item.index not in reused]
        estimate = sum(item.request.estimated_credits for item in todo)
        if self.max_credits is not None and estimate > self.max_credits:
            raise SeedanceBudgetExceededError(estimate, self.max_credits, what=f"{len(todo)} generations")
        self.log.info(
            "Seedance batch: %d requests, %d already delivered, %d to generate; estimated %s",
            len(items),
            len(reused),
            len(todo),
            self.hook.describe_cost(estimate),
        )
        record = SubmissionRecord.for_context(context)
        known = self._reattach(record, todo)
        to_submit = [item for item in todo if self._needs_submission(record, item, known)]
        self._submit(record, to_submit)
        return self._drive(context, record, items, reused, known, end_time=self._end_time())

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, **_: Any
    ) -> dict[str, Any]:
        if not isinstance(event, dict) or event.get("status") not in BATCH_EVENT_STATUSES:
            raise SeedanceError(f"Seedance batch trigger returned an invalid event: {event!r}")
        known: dict[str, SeedanceTask | str] = {}
        for task_id, data in (event.get("tasks") or {}).items():
            known[task_id] = SeedanceTask.from_dict(data)
        for task_id, message in (event.get("errors") or {}).items():
            known[task_id] = str(message)
        if event["status"] == "error":
            raise SeedanceError(f"{event.get('message')} (a retry re-attaches to the batch's generations)")
        if event["status"] == "timeout":
            pending = event.get("pending") or []
            raise SeedanceError(
                f"{len(pending)} generations were still running at the deadline ({', '.join(pending[:10])}"
                f"{'…' if len(pending) > 10 else ''}); a retry re-attaches to them"
            )
        items = self.build_items()
        record = SubmissionRecord.for_context(context)
        return self._drive(context, record, items, self._reused(items), known, end_time=self._end_time())

    # ------------------------------------------------------------------ steps
    def _end_time(self) -> float | None:
        return time.time() + self.timeout if self.timeout is not None else None

    def _skip(self, item: _Item) -> bool:
        return item.destination is not None and (self.skip_if_exists is not False)

    def _reused(self, items: list[_Item]) -> dict[int, dict[str, Any]]:
        candidates = [item for item in items if self._skip(item)]
        found: dict[int, dict[str, Any]] = {}
        with ThreadPoolExecutor(max_workers=self.max_parallel_downloads) as pool:
            for item, existing in zip(
                candidates, pool.map(lambda i: existing_video(i.destination), candidates), strict=False
            ):
                if existing is not None:
                    found[item.index] = {
                        **_empty_result(item, TaskStatus.SUCCESS),
                        "reused_existing": True,
                        "output_path": existing.output_path,
                        "bytes": existing.bytes,
                        "sha256": existing.sha256,
                    }
        return found

    def _reattach(self, record: SubmissionRecord, items: list[_Item]) -> dict[str, SeedanceTask | str]:
        """Status of the generations earlier tries submitted (read concurrently)."""
        if self.force_new:
            return {}
        ids = [
            sub.seedance_task_id
            for item in items
            if (sub := record.get(item.key)) is not None and sub.state != SUBMITTING and sub.seedance_task_id
        ]
        if ids:
            self.log.info("Seedance batch: re-attaching to %d generations from earlier tries", len(ids))
        return self._read_statuses(ids)

    def _needs_submission(
        self, record: SubmissionRecord, item: _Item, known: dict[str, SeedanceTask | str]
    ) -> bool:
        sub = None if self.force_new else record.get(item.key)
        if sub is None or sub.state == REJECTED:
            return True
        if sub.state == SUBMITTING:
            return False  # a generation may exist: reported as an error, never paid twice
        state = known.get(sub.seedance_task_id or "")
        if isinstance(state, SeedanceTask):
            return state.is_failed
        return isinstance(state, str) and "TASK_NOT_FOUND" in state

    def _read_statuses(self, task_ids: list[str]) -> dict[str, SeedanceTask | str]:
        def read(task_id: str) -> SeedanceTask | str:
            try:
                return self.hook.get_status(task_id)
            except SeedanceTaskNotFoundError as exc:
                return f"TASK_NOT_FOUND: {exc}"
            except SeedanceError as exc:
                return str(exc)

        with ThreadPoolExecutor(max_workers=self.max_in_flight) as pool:
            return dict(zip(task_ids, pool.map(read, task_ids), strict=False))

    def _submit(self, record: SubmissionRecord, items: list[_Item]) -> None:
        """POST each item once, ``max_in_flight`` at a time, recording ids as they come."""
        if not items:
            return
        stop: list[SeedanceAPIError] = []

        def submit(item: _Item) -> tuple[_Item, str | Exception]:
            if stop:  # the account or key is unusable: do not keep knocking
                return item, stop[0]
            try:
                return item, self.hook.submit_request(item.request)
            except (SeedanceAuthError, SeedanceInsufficientCreditsError) as exc:
                stop.append(exc)
                return item, exc
            except SeedanceError as exc:
                return item, exc

        for start in range(0, len(items), self.max_in_flight * 4):
            wave = items[start : start + self.max_in_flight * 4]
            record.mark_submitting(*(item.key for item in wave))
            with ThreadPoolExecutor(max_workers=self.max_in_flight) as pool:
                outcomes = list(pool.map(submit, wave))
            submitted = [(item.key, out) for item, out in outcomes if isinstance(out, str)]
            if submitted:
                record.mark_submitted(*submitted)
            for item, out in outcomes:
                if isinstance(out, SeedanceError) and never_created(out):
                    record.mark_rejected(item.key, str(out))
                elif isinstance(out, Exception):
                    self.log.error("requests[%d]: %s", item.index, out)
        self.log.info("Seedance batch: submitted %d generations", len(items))

    def _drive(
        self,
        context: Context,
        record: SubmissionRecord,
        items: list[_Item],
        reused: dict[int, dict[str, Any]],
        known: dict[str, SeedanceTask | str],
        *,
        end_time: float | None,
    ) -> dict[str, Any]:
        todo = [item for item in items if item.index not in reused]
        while True:
            self._sync_outcomes(record, todo, known)
            pending: list[str] = []
            resubmit: list[_Item] = []
            for item in todo:
                sub = record.get(item.key)
                if sub is None or sub.state in (SUBMITTING, REJECTED) or not sub.seedance_task_id:
                    continue
                state = known.get(sub.seedance_task_id)
                if state is None or (isinstance(state, SeedanceTask) and not state.is_terminal):
                    pending.append(sub.seedance_task_id)
                elif (
                    isinstance(state, SeedanceTask)
                    and state.is_failed
                    and len(sub.history) <= self.resubmit_on_failure
                ):
                    self.log.warning(
                        "requests[%d]: Seedance task %s FAILED (%s; not billed); resubmitting (%d of %d)",
                        item.index,
                        state.task_id,
                        state.error_message or "no message",
                        len(sub.history),
                        self.resubmit_on_failure,
                    )
                    resubmit.append(item)
            if resubmit:
                self._submit(record, resubmit)
                continue
            if not pending or not self.wait_for_completion:
                return self._finish(context, record, items, reused, known)
            if self.deferrable:
                self.defer(
                    trigger=SeedanceBatchStatusTrigger(
                        seedance_task_ids=pending,
                        seedance_conn_id=self.seedance_conn_id,
                        poll_interval=self.poll_interval,
                        end_time=end_time,
                        max_concurrency=self.max_poll_concurrency,
                    ),
                    method_name="execute_complete",
                    timeout=None,
                )
            if end_time is not None and time.time() >= end_time:
                raise SeedanceError(f"{len(pending)} generations were still running at the deadline")
            time.sleep(
                self.poll_interval
                if end_time is None
                else max(0.0, min(self.poll_interval, end_time - time.time()))
            )
            known.update(self._read_statuses(pending))

    @staticmethod
    def _sync_outcomes(
        record: SubmissionRecord, items: list[_Item], known: dict[str, SeedanceTask | str]
    ) -> None:
        """Merge what the record remembers with what was just learned, and remember the new."""
        learned: list[tuple[str, dict[str, Any]]] = []
        for item in items:
            sub = record.get(item.key)
            if sub is None or not sub.seedance_task_id:
                continue
            state = known.get(sub.seedance_task_id)
            if isinstance(state, SeedanceTask) and state.is_terminal:
                if sub.outcome is None:
                    learned.append((item.key, slim(state)))
            elif state is None and sub.outcome is not None:
                known[sub.seedance_task_id] = SeedanceTask.from_dict(sub.outcome)
        record.mark_finished(*learned)

    def _finish(
        self,
        context: Context,
        record: SubmissionRecord,
        items: list[_Item],
        reused: dict[int, dict[str, Any]],
        known: dict[str, SeedanceTask | str],
    ) -> dict[str, Any]:
        results: dict[int, dict[str, Any]] = dict(reused)
        deliveries: list[tuple[_Item, SeedanceTask]] = []
        for item in items:
            if item.index in results:
                continue
            sub = record.get(item.key)
            if sub is None or sub.state == REJECTED:
                error = sub.error if sub is not None and sub.error else "not submitted"
                results[item.index] = {**_empty_result(item, "ERROR"), "error_message": error}
                continue
            if sub.state == SUBMITTING:
                results[item.index] = {
                    **_empty_result(item, "ERROR"),
                    "error_message": "the submission's answer was lost: a generation may exist; "
                    "not resubmitted (force_new=True to submit anyway)",
                }
                continue
            state = known.get(sub.seedance_task_id or "")
            if isinstance(state, str) or state is None:
                results[item.index] = {
                    **_empty_result(item, "ERROR" if state else TaskStatus.IN_PROGRESS),
                    "task_id": sub.seedance_task_id,
                    "error_message": state,
                }
            else:
                results[item.index] = result_from_task(state, item.request.to_payload())
                if state.is_success and item.destination is not None:
                    deliveries.append((item, state))
            results[item.index]["seedance_task_ids"] = list(sub.history)
            if item.label is not None:
                results[item.index]["id"] = item.label
        self._deliver(deliveries, results)
        ordered = [results[item.index] for item in items]
        totals = _totals(ordered)
        self.log.info(
            "Seedance batch: %d succeeded (%d reused), %d failed; %s",
            totals["succeeded"],
            totals["reused"],
            totals["failed"],
            self.hook.describe_cost(totals["credits"]),
        )
        outcome = {"results": ordered, "totals": totals}
        self._emit_asset_events(context, outcome)
        if self.fail_on_any_failure and totals["failed"]:
            context["ti"].xcom_push(key=XCOM_BATCH_RESULTS, value=outcome)
            failed = [
                (i, r)
                for i, r in enumerate(ordered)
                if r["status"] not in (TaskStatus.SUCCESS, TaskStatus.IN_PROGRESS)
            ]
            summary = "; ".join(
                f"#{i} {r.get('task_id') or '-'} {r['status']}: {r.get('error_message') or ''}"
                for i, r in failed[:10]
            )
            raise SeedanceBatchFailedError(
                f"{totals['failed']} of {len(ordered)} generations did not succeed ({summary}). "
                f"Results are in XCom {XCOM_BATCH_RESULTS!r}; a retry re-attaches and reuses what succeeded."
            )
        return outcome

    def _deliver(
        self, deliveries: list[tuple[_Item, SeedanceTask]], results: dict[int, dict[str, Any]]
    ) -> None:
        def deliver(pair: tuple[_Item, SeedanceTask]) -> tuple[int, dict[str, Any]]:
            item, task = pair
            try:
                done = self.hook.download(task, item.destination)  # type: ignore[arg-type]
            except SeedanceError as exc:
                return item.index, {"status": "ERROR", "error_message": f"delivery failed: {exc}"}
            return item.index, {"output_path": done.output_path, "bytes": done.bytes, "sha256": done.sha256}

        with ThreadPoolExecutor(max_workers=self.max_parallel_downloads) as pool:
            for index, update in pool.map(deliver, deliveries):
                results[index].update(update)

    def _emit_asset_events(self, context: Context, outcome: dict[str, Any]) -> None:
        extra = {
            "totals": outcome["totals"],
            "videos": [
                {
                    "seedance_task_id": r.get("task_id"),
                    "output_path": r.get("output_path"),
                    "video_url": r.get("video_url"),
                }
                for r in outcome["results"]
                if r["status"] == TaskStatus.SUCCESS
            ],
        }
        attach_to_asset_events(context, self.outlets, extra)


def _empty_result(item: _Item, status: str) -> dict[str, Any]:
    result = result_from_task(SeedanceTask(task_id="-", status=status), item.request.to_payload())
    result["task_id"] = None
    result["seedance_task_ids"] = []
    if item.label is not None:
        result["id"] = item.label
    return result


def _totals(results: list[dict[str, Any]]) -> dict[str, Any]:
    credits = sum(int(r.get("consumed_credits") or 0) for r in results)
    succeeded = sum(1 for r in results if r["status"] == TaskStatus.SUCCESS)
    running = sum(1 for r in results if r["status"] == TaskStatus.IN_PROGRESS)
    return {
        "requests": len(results),
        "succeeded": succeeded,
        "failed": len(results) - succeeded - running,
        "in_progress": running,
        "reused": sum(1 for r in results if r.get("reused_existing")),
        "credits": credits,
        "dollars": float(credits_to_usd(credits)),
        "dollars_text": format_usd(credits),
    }
