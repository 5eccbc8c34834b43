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
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_seedance import metrics
from airflow_provider_seedance._compat import default_deferrable
from airflow_provider_seedance.batch_results import (
    DEFAULT_XCOM_RESULTS_LIMIT,
    bounded_outcome,
    default_results_path,
    results_file_name,
)
from airflow_provider_seedance.budgets import SharedBudgets
from airflow_provider_seedance.exceptions import (
    CreationState,
    SeedanceAuthError,
    SeedanceBatchFailedError,
    SeedanceBudgetExceededError,
    SeedanceError,
    SeedanceInsufficientCreditsError,
    SeedanceSharedBudgetExceededError,
    SeedanceTaskNotFoundError,
    SeedanceValidationError,
    never_created,
)
from airflow_provider_seedance.hooks.delivery import (
    existing_video,
    probe_destination,
    resolve_filesystems,
    task_destination,
)
from airflow_provider_seedance.hooks.retry import FailureStreaks, sleep_until_deadline
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.links import SeedanceVideoLink
from airflow_provider_seedance.models import BatchEventStatus, GenerationRequest, SeedanceTask, TaskStatus
from airflow_provider_seedance.reattach import BATCH_SHARD_SIZE, SubmissionRecord, SubmissionState
from airflow_provider_seedance.results import GenerationResult, Outcome, batch_totals
from airflow_provider_seedance.task_identity import try_identity
from airflow_provider_seedance.task_support import (
    SeedanceGenerating,
    attach_to_asset_events,
    on_failed_try,
    paid_not_delivered_text,
)
from airflow_provider_seedance.triggers.batch import SeedanceBatchStatusTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

#: Keys of a batch item that are not API fields.
ITEM_KEYS = ("id", "output_path")
#: XCom key holding the per-item results when the task fails on a partial failure.
XCOM_BATCH_RESULTS = "seedance_batch_results"
#: What giving up on running generations means for the money, and the next step.
STILL_RUNNING = (
    "They were submitted and may still be billed when they succeed; a retry (set `retries`) or a clear "
    "re-attaches to them without paying again"
)
#: What the record learns of a generation (one status read), or why it could not learn it.
Known = SeedanceTask | SeedanceError
#: Name prefix of the batch's worker threads (they do HTTP and file I/O, never talk to Airflow).
POOL_THREAD_PREFIX = "seedance-batch"


@dataclass
class _Item:
    index: int
    request: GenerationRequest
    key: str
    destination: ObjectStoragePath | None
    label: str | None
    #: The key 0.1 used (position among identical requests): records it wrote are still found.
    legacy_key: str | None = None
    #: What names ``destination`` in errors: the item's ``output_path`` or ``output_path_template``.
    destination_field: str = "output_path_template"

    def not_sent(self, reason: str) -> GenerationResult:
        return GenerationResult.not_sent(
            reason, self.request.to_payload(), item_id=self.label, index=self.index
        )

    def refused(self, reason: str, history: tuple[str, ...]) -> GenerationResult:
        return GenerationResult.refused(
            reason, self.request.to_payload(), seedance_task_ids=history, item_id=self.label, index=self.index
        )


@dataclass
class _BatchRun:
    """One try's view of the batch: the items, their record, and what is known of each."""

    items: list[_Item]
    record: SubmissionRecord
    reused: dict[int, GenerationResult]
    end_time: float | None
    #: Status (or read error) of each Seedance task id, as last learned.
    known: dict[str, Known] = field(default_factory=dict)
    #: Why submission stopped early (a bad key, no credits): items not sent say so.
    stopped: str | None = None
    #: Failed status reads in a row per generation, in the blocking wait (its wait policy).
    streaks: FailureStreaks | None = None

    #: The results were pushed to XCom (a failure after that must not overwrite them).
    recorded: bool = False
    #: Each item's result once the try got to its end (deliveries done), by index.
    finished: dict[int, GenerationResult] | None = None

    @classmethod
    def open(
        cls, context: Context, items: list[_Item], reused: dict[int, GenerationResult], end_time: float | None
    ) -> _BatchRun:
        """This try's run, with the record read from the task state store (legacy keys adopted)."""
        record = SubmissionRecord.for_context(context, shard_size=BATCH_SHARD_SIZE)
        _adopt_legacy_keys(record, items)
        return cls(items, record, reused, end_time)

    def __post_init__(self) -> None:
        for item in self.items:
            reused = self.reused.get(item.index)
            if reused is not None:
                self.reused[item.index] = self._own_generation(item, reused)

    def _own_generation(self, item: _Item, reused: GenerationResult) -> GenerationResult:
        """A video found at an item's destination that an earlier try of this task instance
        generated (a clear after delivery) keeps that generation and its credits."""
        sub = self.record.get(item.key)
        if sub is None or not sub.outcome or sub.outcome.get("task_id") != sub.seedance_task_id:
            return reused
        task = SeedanceTask.from_dict(sub.outcome)
        if not task.is_success:
            return reused
        own = GenerationResult.from_task(
            task,
            item.request.to_payload(),
            seedance_task_ids=sub.history,
            item_id=item.label,
            index=item.index,
        )
        return own.with_(output_path=reused.output_path, bytes=reused.bytes, sha256=reused.sha256)

    @property
    def todo(self) -> list[_Item]:
        return [item for item in self.items if item.index not in self.reused]


def _adopt_legacy_keys(record: SubmissionRecord, items: list[_Item]) -> None:
    """Move entries written by 0.1 (keyed by position among identical requests) to today's keys.

    In memory only, as the record is read: the next write of the record stores them moved.
    """
    claimed = {item.key for item in items}
    for item in items:
        legacy = item.legacy_key
        if legacy is not None and item.key not in record and legacy in record and legacy not in claimed:
            record.rename(legacy, item.key)


def answered_in_flight(in_flight: Mapping[Future[str | SeedanceError], _Item]) -> list[tuple[str, str]]:
    """``(fingerprint, seedance task id)`` of the POSTs in flight whose answer came back."""
    arrived = []
    for future, item in list(in_flight.items()):
        if future.done() and not future.cancelled() and future.exception() is None:
            outcome = future.result()
            if isinstance(outcome, str):
                arrived.append((item.key, outcome))
    return arrived


class SeedanceBatchGenerateOperator(SeedanceGenerating, BaseOperator):
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
    :param dag_run_max_credits: a budget the whole DAG run shares (see
        :class:`~airflow_provider_seedance.operators.seedance.SeedanceGenerateOperator`); the
        batch reserves every item it is about to submit, all or none, before the first POST.
    :param resubmit_on_failure: resubmit each FAILED generation up to N more times.
    :param fail_on_any_failure: fail the task if any item did not succeed (the results are
        still pushed to XCom ``seedance_batch_results``); ``False`` returns failures in the list.
    :param max_parallel_downloads: deliveries at once.
    :param poll_interval: seconds between status rounds; :param timeout: wall-clock seconds.
    :param xcom_results_limit: a batch with more items than this keeps XCom small: every item's
        result goes to a JSON Lines file at ``results_path`` and XCom (``return_value`` and
        ``seedance_batch_results``) holds totals, a manifest of the file and a sample (see
        :mod:`airflow_provider_seedance.batch_results`). ``0``: always; ``None``: never.
    :param results_path: folder (local path, URL or ``ObjectStoragePath``) of the results files.
        Default: the videos' folder from ``output_path_template``, when it has no fields in it.
        Templated.
    """

    template_fields: Sequence[str] = ("requests", "output_path_template", "seedance_conn_id", "results_path")
    ui_color = "#e6d9ff"
    operator_extra_links = (SeedanceVideoLink(),)

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
        dag_run_max_credits: int | None = None,
        xcom_results_limit: int | None = DEFAULT_XCOM_RESULTS_LIMIT,
        results_path: str | ObjectStoragePath | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._connect(seedance_conn_id, hook_params, poll_interval, deferrable)
        self._keep_money_rules(
            skip_if_exists, max_credits, resubmit_on_failure, wait_for_completion, timeout, force_new
        )
        self._keep_shared_budget(dag_run_max_credits)
        self.requests = requests
        self.output_path_template = output_path_template
        self.fail_on_any_failure = fail_on_any_failure
        for name, count in (
            ("max_in_flight", max_in_flight),
            ("max_parallel_downloads", max_parallel_downloads),
            ("max_poll_concurrency", max_poll_concurrency),
        ):
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise SeedanceValidationError(name, count, "a whole number of at least 1")
        self.max_in_flight = max_in_flight
        self.max_parallel_downloads = max_parallel_downloads
        self.max_poll_concurrency = max_poll_concurrency
        if xcom_results_limit is not None and (
            isinstance(xcom_results_limit, bool)
            or not isinstance(xcom_results_limit, int)
            or xcom_results_limit < 0
        ):
            raise SeedanceValidationError(
                "xcom_results_limit",
                xcom_results_limit,
                "a whole number >= 0, or None (never a results file)",
            )
        self.xcom_results_limit = xcom_results_limit
        self.results_path = results_path

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
            destination = self._destination(index, raw, request, prefix)
            # Identical requests are distinct videos. An item is named by its ``id`` (else its
            # destination) so that a reordered list re-attaches each item to its own generation;
            # the position among equals only breaks the remaining ties.
            identity = f"id:{label}" if label is not None else f"at:{destination}" if destination else ""
            seen[fingerprint] += 1
            seen[f"{fingerprint}/{identity}"] += 1
            ordinal = seen[f"{fingerprint}/{identity}"]
            key = f"{fingerprint}-{identity}-{ordinal}" if identity else f"{fingerprint}-{ordinal}"
            items.append(
                _Item(
                    index,
                    request,
                    key,
                    destination,
                    None if label is None else str(label),
                    legacy_key=f"{fingerprint}-{seen[fingerprint]}",
                    destination_field=(
                        f"{prefix}output_path"
                        if raw.get("output_path") not in (None, "")
                        else f"output_path_template {self.output_path_template!r} for {prefix.rstrip('.')}:"
                    ),
                )
            )
        return items

    def _destination(
        self, index: int, raw: dict[str, Any], request: GenerationRequest, prefix: str
    ) -> ObjectStoragePath | None:
        explicit = raw.get("output_path")
        if explicit not in (None, ""):
            return task_destination(explicit, f"{prefix}output_path")
        if not self.output_path_template:
            return None
        fields = {**request.to_payload(), "index": index, "id": raw.get("id", index)}
        try:
            filled = self.output_path_template.format(**fields)
        except (KeyError, IndexError, ValueError) as exc:
            raise SeedanceValidationError(
                "output_path_template",
                self.output_path_template,
                f"a template whose fields are among {sorted(fields)} ({exc})",
                prefix=prefix,
            ) from None
        return task_destination(
            filled, f"output_path_template {self.output_path_template!r} for {prefix.rstrip('.')}"
        )

    # ------------------------------------------------------------------ execute
    def execute(self, context: Context) -> dict[str, Any]:
        items = self.build_items()
        self.check_destinations(items)
        run = _BatchRun.open(context, items, self.existing_videos(items), self._end_time())
        with on_failed_try(lambda exc: self._record_failure(context, run, exc)):
            todo = run.todo
            estimate = self.check_budget(todo)
            self.log.info(
                "Seedance batch: %d requests, %d already delivered, %d to generate; estimated %s",
                len(items),
                len(run.reused),
                len(todo),
                self.hook.describe_cost(estimate),
            )
            self.hook.settings  # noqa: B018 - an unusable connection fails here, before any POST
            self._budgets = self.shared_budgets(context)
            self._reattach(run)
            self._submit(run, [item for item in todo if self._needs_submission(run, item)])
            return self._drive(context, run)
        raise AssertionError("unreachable")  # pragma: no cover - the block returns or raises

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, **_: Any
    ) -> dict[str, Any]:
        status = event.get("status") if isinstance(event, dict) else None
        if not isinstance(event, dict) or status not in set(BatchEventStatus):
            raise SeedanceError(f"Seedance batch trigger returned an invalid event: {event!r}")
        items = self.build_items()
        run = _BatchRun.open(context, items, self.existing_videos(items), self._end_time())
        for task_id, data in (event.get("tasks") or {}).items():
            run.known[task_id] = SeedanceTask.from_dict(data)
        for task_id, message in (event.get("errors") or {}).items():
            # Whatever the trigger could not read is never resubmitted from here; a retry
            # reads it again (typed) before deciding anything.
            run.known[task_id] = SeedanceError(str(message))
        with on_failed_try(lambda exc: self._record_failure(context, run, exc)):
            if status == BatchEventStatus.ERROR:
                raise SeedanceError(
                    f"{event.get('message')} Nothing more was spent by waiting; a retry re-attaches to "
                    "the batch's generations (set retries to let it)."
                )
            if status == BatchEventStatus.TIMEOUT:
                pending = event.get("pending") or []
                raise SeedanceError(
                    f"{len(pending)} generations were still running at the deadline "
                    f"({', '.join(pending[:10])}{'…' if len(pending) > 10 else ''}). {STILL_RUNNING}"
                )
            # After the trigger's own errors: a budget lookup must not hide what the wait said.
            self._budgets = self.shared_budgets(context)
            return self._drive(context, run)
        raise AssertionError("unreachable")  # pragma: no cover

    def _record_failure(self, context: Context, run: _BatchRun, exc: BaseException) -> None:
        """Whatever ends the try, XCom ``seedance_batch_results`` says what each item cost.

        As for the single operator, a failed try turns a generation that succeeded (billed) but
        was not delivered into *paid, not delivered* (its credits, the video URL while it
        lasts, why the task failed), and one still running into *unknown* (may still be billed).
        """
        if not run.recorded:
            run.stopped = run.stopped or f"not submitted: {exc}"
            finished = run.finished or {}
            results = [finished.get(item.index) or self._result_of(run, item) for item in run.todo]
            self._push_results(
                context, run, self._outcome(context, run, [_on_failed_try(r, exc) for r in results])
            )

    def _outcome(
        self, context: Context, run: _BatchRun, todo_results: list[GenerationResult]
    ) -> dict[str, Any]:
        results = {**run.reused, **{r.index: r for r in todo_results if r.index is not None}}
        ordered = [results[item.index] for item in run.items]
        self.keep_for_lineage(ordered)
        return self._xcom_outcome(context, ordered, batch_totals(ordered))

    def _push_results(self, context: Context, run: _BatchRun, outcome: dict[str, Any]) -> None:
        try:
            context["ti"].xcom_push(key=XCOM_BATCH_RESULTS, value=outcome)
            run.recorded = True
        except Exception as exc:  # the task's own error matters more than this record
            self.log.warning("Could not record the batch results in XCom: %s", exc)

    # ------------------------------------------------------------------ steps
    def _end_time(self) -> float | None:
        return time.time() + self.timeout if self.timeout is not None else None

    def _skip(self, item: _Item) -> bool:
        return item.destination is not None and (self.skip_if_exists is not False)

    def check_budget(self, todo: list[_Item]) -> int:
        """The estimate of the items to generate; over ``max_credits``, the budget error
        (before any HTTP call). Reused items cost nothing and are not counted."""
        estimate = sum(item.request.estimated_credits for item in todo)
        if self.max_credits is not None and estimate > self.max_credits:
            raise SeedanceBudgetExceededError(estimate, self.max_credits, what=f"{len(todo)} generations")
        return estimate

    def check_destinations(self, items: list[_Item]) -> None:
        """Before any POST: every destination can take its video (its store resolves, a local
        folder is created, a remote one is read once), else the configuration error naming it.
        Read concurrently, like :meth:`existing_videos`."""
        targets = [item for item in items if item.destination is not None]
        with self._pool(
            self.max_parallel_downloads, [i.destination for i in targets], uses_hook=False
        ) as pool:
            list(
                pool.map(
                    lambda i: probe_destination(i.destination, i.destination_field, reuse=False), targets
                )
            )

    def existing_videos(self, items: list[_Item]) -> dict[int, GenerationResult]:
        """Items whose destination already holds a complete video (``skip_if_exists``), as
        reused results by index. It only reads the destinations (``seedance-plan`` uses it too)."""
        candidates = [item for item in items if self._skip(item)]
        found: dict[int, GenerationResult] = {}
        destinations = [item.destination for item in candidates]
        with self._pool(self.max_parallel_downloads, destinations, uses_hook=False) as pool:
            for item, existing in zip(
                candidates, pool.map(lambda i: existing_video(i.destination), candidates), strict=False
            ):
                if existing is not None:
                    found[item.index] = GenerationResult.reused(
                        existing.output_path,
                        existing.bytes,
                        existing.sha256,
                        item.request.to_payload(),
                        item_id=item.label,
                        index=item.index,
                    )
        return found

    def _pool(
        self, workers: int, destinations: Iterable[ObjectStoragePath | None] = (), *, uses_hook: bool = True
    ) -> ThreadPoolExecutor:
        """A thread pool whose threads only do HTTP and file I/O: the connection (when the
        threads use the hook) and the destinations' filesystems are resolved here first, on the
        task's own thread. Airflow 3.1's channel to the task supervisor is not thread-safe: two
        threads on it can hang the task for good."""
        if uses_hook:
            self.hook.prepare_for_threads()
        resolve_filesystems(path for path in destinations if path is not None)
        return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=POOL_THREAD_PREFIX)

    def _count_reattached(self, count: int) -> None:
        metrics.incr("generations.reattached", count, dag_id=self.dag_id, task_id=self.task_id)

    def _reattach(self, run: _BatchRun) -> None:
        """Status of the generations earlier tries recorded (read concurrently)."""
        ids = [
            sub.seedance_task_id
            for item in run.todo
            if (sub := run.record.get(item.key)) is not None and not sub.uncertain and sub.seedance_task_id
        ]
        if ids:
            self.log.info("Seedance batch: re-attaching to %d generations from earlier tries", len(ids))
            self._count_reattached(len(ids))
        self._learn(run, self._read_statuses(ids))

    def _needs_submission(self, run: _BatchRun, item: _Item) -> bool:
        sub = run.record.get(item.key)
        if sub is None or sub.state is SubmissionState.REJECTED:
            return True
        if sub.uncertain:
            # A generation may exist: never paid twice, unless force_new releases this mark.
            if self.force_new:
                self.log.warning(
                    "requests[%d]: force_new=True releases its uncertain submission; submitting anew "
                    "(if the earlier one did reach Seedance, it may be billed too)",
                    item.index,
                )
            return self.force_new
        state = run.known.get(sub.seedance_task_id or "")
        if isinstance(state, SeedanceTask):
            return state.is_failed
        # Only the API's definite "no such task" frees a recorded id; an unreadable status
        # (a 5xx, a timeout) says nothing about it.
        return isinstance(state, SeedanceTaskNotFoundError)

    def _read_statuses(self, task_ids: list[str]) -> dict[str, Known]:
        def read(task_id: str) -> Known:
            try:
                return self.hook.get_status(task_id)
            except SeedanceError as exc:
                return exc

        with self._pool(self.max_in_flight) as pool:
            return dict(zip(task_ids, pool.map(read, task_ids), strict=False))

    def _submit(self, run: _BatchRun, items: list[_Item]) -> None:
        """POST each item once, ``max_in_flight`` at a time, recording each id as it returns.

        An item is marked ``submitting`` only when its POST is about to start, and each answer
        is written together with the marks of the items that take its place, in one write: after
        a kill at any instant at most ``max_in_flight`` items are uncertain, and every id that
        had come back (bar the one being written) is on record.
        """
        if not items:
            return
        reservations = self._reserve_items(run, items)
        record = run.record
        queue = deque(items)

        def post(item: _Item) -> str | SeedanceError:
            try:
                return self.hook.submit_request(item.request)
            except SeedanceError as exc:
                return exc

        def take(count: int) -> list[_Item]:
            if run.stopped is not None:
                return []
            batch = [queue.popleft() for _ in range(min(count, len(queue)))]
            record.mark_submitting(*(item.key for item in batch), save=False)
            return batch

        submitted = 0
        with self._pool(self.max_in_flight) as pool:
            in_flight: dict[Future[str | SeedanceError], _Item] = {}
            starting = take(self.max_in_flight)
            record.flush()
            in_flight.update({pool.submit(post, item): item for item in starting})
            while in_flight:
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    item = in_flight.pop(future)
                    outcome = future.result()
                    if isinstance(outcome, str):
                        record.mark_submitted((item.key, outcome), save=False)
                        submitted += 1
                    elif never_created(outcome):
                        refused = outcome.creation is CreationState.REFUSED
                        record.mark_rejected(item.key, str(outcome), refused=refused, save=False)
                        if isinstance(outcome, (SeedanceAuthError, SeedanceInsufficientCreditsError)):
                            run.stopped = f"not submitted: {outcome}"  # the account is unusable
                        self.log.error(
                            "requests[%d]: %s: %s",
                            item.index,
                            "the service refused the request — nothing spent" if refused else "not submitted",
                            outcome,
                        )
                    else:  # a generation may exist: its "submitting" mark stays
                        self.log.error("requests[%d]: %s", item.index, outcome)
                starting = take(len(done))
                # answers that come back while this write is retried are handed over with it
                record.flush(arrived=lambda: answered_in_flight(in_flight))
                in_flight.update({pool.submit(post, item): item for item in starting})
        self.log.info("Seedance batch: submitted %d generations", submitted)
        self._bind_or_release(run, reservations)

    def _drive(self, context: Context, run: _BatchRun) -> dict[str, Any]:
        while True:
            self._sync_outcomes(run)
            pending: list[str] = []
            resubmit: list[_Item] = []
            for item in run.todo:
                sub = run.record.get(item.key)
                if sub is None or sub.state is not SubmissionState.SUBMITTED or not sub.seedance_task_id:
                    continue
                state = run.known.get(sub.seedance_task_id)
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
                self._submit(run, resubmit)
                continue
            if not pending or not self.wait_for_completion:
                return self._finish(context, run)
            if self.deferrable:
                # no Airflow-side timeout (the default): the trigger owns the deadline (end_time)
                self.defer(
                    trigger=SeedanceBatchStatusTrigger(
                        seedance_task_ids=pending,
                        seedance_conn_id=self.seedance_conn_id,
                        poll_interval=self.poll_interval,
                        end_time=run.end_time,
                        max_concurrency=self.max_poll_concurrency,
                        max_outage=self.hook.retry_policy.max_outage,
                    ),
                    method_name="execute_complete",
                )
            if run.end_time is not None and time.time() >= run.end_time:
                raise SeedanceError(
                    f"{len(pending)} generations were still running at the deadline. {STILL_RUNNING}"
                )
            sleep_until_deadline(self.poll_interval, run.end_time)
            self._learn(run, self._read_statuses(pending))

    def _learn(self, run: _BatchRun, statuses: dict[str, Known]) -> None:
        """What status reads said (on re-attaching, then each round of the blocking wait).

        The wait policy of the deferred wait (``SeedanceBatchStatusTrigger``): a generation whose
        reads keep failing transiently stays unknown, to be read again next round (or by the
        trigger), until they have failed for the hook's ``max_outage`` seconds in a row; only then
        (or at once for a definite answer such as TASK_NOT_FOUND) does its error stand as what is
        known of it. An unread generation is never submitted again (``_needs_submission``). A
        task that does not wait (``wait_for_completion=False``) reads nothing more: its errors
        stand, and its results say ``unknown`` with the error.
        """
        if run.streaks is None:
            run.streaks = self.hook.retry_policy.streaks()
        again: list[tuple[str, SeedanceError]] = []
        for task_id, state in statuses.items():
            if not isinstance(state, SeedanceError):
                run.streaks.succeeded(task_id)
            elif state.retryable and self.wait_for_completion and run.streaks.failed(task_id) is None:
                again.append((task_id, state))
                continue
            run.known[task_id] = state
        if again:
            self.log.warning(
                "Seedance batch: %d status reads failed (%s: %s); reading them again next round",
                len(again),
                *again[0],
            )

    def _sync_outcomes(self, run: _BatchRun) -> None:
        """Merge what the record remembers with what was just learned, and remember the new."""
        learned: list[tuple[str, dict[str, Any]]] = []
        for item in run.todo:
            sub = run.record.get(item.key)
            if sub is None or not sub.seedance_task_id:
                continue
            state = run.known.get(sub.seedance_task_id)
            if isinstance(state, SeedanceTask) and state.is_terminal:
                if sub.outcome is None:
                    snapshot = state.to_dict()
                    snapshot.pop("request", None)  # the record already has the request's fingerprint
                    learned.append((item.key, snapshot))
            elif not isinstance(state, SeedanceTask) and sub.outcome is not None:
                run.known[sub.seedance_task_id] = SeedanceTask.from_dict(sub.outcome)
        metrics.count_finished(run.record.mark_finished(*learned), self.dag_id, self.task_id)
        self._settle_known(run)

    def _result_of(self, run: _BatchRun, item: _Item) -> GenerationResult:
        """What became of one item, from its record entry and the status last learned."""
        sub = run.record.get(item.key)
        if sub is None:
            return item.not_sent(run.stopped or "not submitted")
        if sub.state is SubmissionState.REJECTED:
            if sub.refused:
                return item.refused(sub.error or "refused by the service", sub.history)
            return item.not_sent(sub.error or "not submitted")
        if sub.uncertain:
            return GenerationResult.uncertain(
                "the submission's answer was lost: a generation may exist and may have been charged; "
                "not resubmitted (check the account's dashboard; force_new=True releases it)",
                item.request.to_payload(),
                seedance_task_ids=sub.history,
                item_id=item.label,
                index=item.index,
            )
        state = run.known.get(sub.seedance_task_id or "")
        if isinstance(state, SeedanceTask):
            return GenerationResult.from_task(
                state,
                item.request.to_payload(),
                seedance_task_ids=sub.history,
                item_id=item.label,
                index=item.index,
            )
        return GenerationResult(
            outcome=Outcome.IN_PROGRESS if state is None else Outcome.UNKNOWN,
            task_id=sub.seedance_task_id,
            status=TaskStatus.IN_PROGRESS if state is None else None,
            request=item.request.to_payload(),
            error_message=None if state is None else str(state),
            seedance_task_ids=sub.history,
            item_id=item.label,
            index=item.index,
        )

    def _finish(self, context: Context, run: _BatchRun) -> dict[str, Any]:
        results: dict[int, GenerationResult] = dict(run.reused)
        deliveries: list[tuple[_Item, SeedanceTask]] = []
        for item in run.todo:
            results[item.index] = self._result_of(run, item)
            state = run.known.get(results[item.index].task_id or "")
            if isinstance(state, SeedanceTask) and state.is_success and item.destination is not None:
                deliveries.append((item, state))
        self._deliver(deliveries, results)
        run.finished = results
        ordered = [results[item.index] for item in run.items]
        self.keep_for_lineage(ordered)
        totals = batch_totals(ordered)
        self.log.info(
            "Seedance batch: %d succeeded (%d reused), %d failed; %s",
            totals["succeeded"],
            totals["reused"],
            totals["failed"],
            self.hook.describe_cost(totals["credits"]),
        )
        outcome = self._xcom_outcome(context, ordered, totals)
        metrics.count_results(context, ordered)
        self._emit_asset_events(context, ordered, totals)
        if self.fail_on_any_failure and totals["failed"]:
            self._push_results(context, run, outcome)
            failed = [r for r in ordered if not r.is_success and r.outcome is not Outcome.IN_PROGRESS]
            summary = "; ".join(
                f"#{r.index} {r.task_id or '-'} {_label(r)}: {r.error_message or ''}" for r in failed[:10]
            )
            raise SeedanceBatchFailedError(
                f"{totals['failed']} of {len(ordered)} generations did not succeed ({summary}). "
                f"Results are in XCom {XCOM_BATCH_RESULTS!r}; a retry re-attaches and reuses what succeeded."
            )
        return outcome

    def _xcom_outcome(
        self, context: Context, ordered: list[GenerationResult], totals: dict[str, Any]
    ) -> dict[str, Any]:
        """The batch's XCom value: every result inline, or (above ``xcom_results_limit``) a
        manifest of the results file. Runs on the task's own thread (the store is resolved here)."""
        return bounded_outcome(
            ordered,
            totals,
            limit=self.xcom_results_limit,
            location=self.results_path or default_results_path(self.output_path_template),
            name=lambda: results_file_name(*try_identity(context["ti"])),
            log=self.log,
        )

    # ------------------------------------------------------------------ shared budgets
    _budgets: SharedBudgets | None = None

    def _settle_known(self, run: _BatchRun) -> None:
        """Every generation known to have ended takes its actual credits (idempotent)."""
        for state in list(run.known.values()):
            if isinstance(state, SeedanceTask):
                self.settle_budget(self._budgets, state)

    def _reserve_items(self, run: _BatchRun, items: list[_Item]) -> dict[str, str]:
        """Reserve every item about to be submitted, all or none (the budget error, with nothing
        sent, when one does not fit). Keyed like the single operator's: an item whose earlier
        try reserved it finds its reservation."""
        budgets = self._budgets
        if budgets is None:
            return {}
        self._settle_known(run)  # FAILED generations being replaced cost nothing
        taken: dict[str, str] = {}
        try:
            for item in items:
                sub = run.record.get(item.key)
                attempt = 0 if sub is None else len(sub.history) + len(sub.released) + int(sub.uncertain)
                taken[item.key] = budgets.reserve(item.key, attempt, item.request.estimated_credits)
        except SeedanceSharedBudgetExceededError as exc:
            for key in taken.values():  # none of these was sent
                budgets.release(key)
            released = sum(item.request.estimated_credits for item in items if item.key in taken)
            raise SeedanceSharedBudgetExceededError(
                exc.budget,
                exc.spent_credits - released,
                exc.limit_credits,
                sum(item.request.estimated_credits for item in items),
                what=f"submitting {len(items)} generations",
            ) from None
        return taken

    def _bind_or_release(self, run: _BatchRun, reservations: dict[str, str]) -> None:
        """After the POSTs: a submitted item's reservation waits for its generation's end, a
        refused one is free again, an uncertain one (a generation may exist) stays taken."""
        budgets = self._budgets
        if budgets is None:
            return
        for item_key, reservation in reservations.items():
            sub = run.record.get(item_key)
            try:
                if sub is None or sub.state is SubmissionState.REJECTED:
                    budgets.release(reservation)
                elif sub.state is SubmissionState.SUBMITTED and sub.seedance_task_id:
                    budgets.bind(reservation, sub.seedance_task_id)
            except Exception as exc:  # book-keeping: the room stays taken, never less than was spent
                self.log.warning("Seedance budget: could not update a reservation: %s", exc)

    def _deliver(
        self, deliveries: list[tuple[_Item, SeedanceTask]], results: dict[int, GenerationResult]
    ) -> None:
        def deliver(pair: tuple[_Item, SeedanceTask]) -> tuple[int, GenerationResult]:
            item, task = pair
            result = results[item.index]
            try:
                done = self.hook.download(task, item.destination)  # type: ignore[arg-type]
            except (SeedanceError, OSError) as exc:  # OSError: the destination cannot be written
                return item.index, result.with_(
                    outcome=Outcome.PAID_NOT_DELIVERED,
                    error_message=paid_not_delivered_text(task.task_id, f"delivery failed: {exc}"),
                )
            return item.index, result.with_(
                output_path=done.output_path, bytes=done.bytes, sha256=done.sha256
            )

        with self._pool(self.max_parallel_downloads, [item.destination for item, _ in deliveries]) as pool:
            for index, result in pool.map(deliver, deliveries):
                results[index] = result

    def _emit_asset_events(
        self, context: Context, results: list[GenerationResult], totals: dict[str, Any]
    ) -> None:
        extra = {
            "totals": totals,
            "videos": [
                {"seedance_task_id": r.task_id, "output_path": r.output_path, "video_url": r.video_url}
                for r in results
                if r.is_success
            ],
        }
        attach_to_asset_events(context, self.outlets, extra)


def _on_failed_try(result: GenerationResult, exc: BaseException) -> GenerationResult:
    """What an item's result means once the batch's try failed (``exc``): the task returns no
    videos, so a billed generation not delivered to a destination is paid, not delivered, and
    one still running has an unknown end (billed if it succeeds)."""
    why = str(exc) or type(exc).__name__
    if result.outcome is Outcome.SUCCEEDED and result.output_path is None:
        return result.with_(
            outcome=Outcome.PAID_NOT_DELIVERED,
            error_message=f"the generation succeeded and was billed, but the batch task failed before "
            f"delivering it: {why}",
        )
    if result.outcome is Outcome.IN_PROGRESS:
        return result.with_(
            outcome=Outcome.UNKNOWN,
            status=None,
            error_message=f"still running when the batch task failed; it may still be billed if it "
            f"succeeds ({STILL_RUNNING}): {why}",
        )
    return result


def _label(result: GenerationResult) -> str:
    """An item's ending in a failure summary: the API's FAILED, else the outcome."""
    return str(result.status) if result.outcome is Outcome.GENERATION_FAILED else str(result.outcome)


__all__ = ["XCOM_BATCH_RESULTS", "SeedanceBatchFailedError", "SeedanceBatchGenerateOperator"]
