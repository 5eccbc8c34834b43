"""What the batch operator promises about each item's ending, with a fake hook and store.

The promises: every result names its item (``id``, ``index``, the request) and what became of
it (not sent and why, uncertain and how to release it, still running, unreadable, delivered or
paid but not delivered); the failure summary names only the items that did not succeed; the
XCom of a failed batch is written once and keeps the deliveries; a resumed batch never sends an
item that was not on record and defers again with the same settings; the documented defaults
and limits hold (``max_in_flight``, ``max_parallel_downloads`` are bounds, not hints); a
blocking batch waits ``poll_interval`` between rounds and never past its deadline; the record
remembers each generation's ending so that a later try whose status read fails still reports
it; a changed request never re-attaches to the old generation.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.exceptions import TaskDeferred
from airflow.sdk import Asset

from airflow_provider_seedance import metrics
from airflow_provider_seedance.exceptions import (
    CreationState,
    SeedanceBadRequestError,
    SeedanceBatchFailedError,
    SeedanceBudgetExceededError,
    SeedanceConnectionError,
    SeedanceError,
    SeedanceServerError,
    SeedanceSubmissionUncertainError,
    SeedanceTaskNotFoundError,
    SeedanceValidationError,
)
from airflow_provider_seedance.hooks import retry as retry_module
from airflow_provider_seedance.hooks.delivery import DownloadResult
from airflow_provider_seedance.models import SeedanceTask
from airflow_provider_seedance.operators import batch as batch_module
from airflow_provider_seedance.operators.batch import XCOM_BATCH_RESULTS, SeedanceBatchGenerateOperator
from tests.unit.fakes import BATCH_ITEMS, MP4, FakeHook, OutletEvents, Store, batch, context

#: 480p, 4 s, no audio: 8 credits each.
ITEMS = BATCH_ITEMS
LOST = (
    "the submission's answer was lost: a generation may exist and may have been charged; "
    "not resubmitted (check the account's dashboard; force_new=True releases it)"
)


def refused(message: str = "prompt refused") -> SeedanceBadRequestError:
    return SeedanceBadRequestError(400, "INVALID_PROMPT", message, creation=CreationState.REFUSED)


def named(*labels: str) -> list[dict[str, Any]]:
    return [{**ITEMS[n], "id": label} for n, label in enumerate(labels)]


def task_dict(task_id: str, status: str, **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"task_id": task_id, "status": status}
    if status == "SUCCESS":
        fields.update(video_urls=["https://cdn.fake.seedance.test/v.mp4"], consumed_credits=8)
    fields.update(extra)
    return SeedanceTask(**fields).to_dict()


# ---------------------------------------------------------------- what each result says
def test_a_refused_item_is_refused_not_nothing_sent_and_its_result_names_the_item_and_the_reason() -> None:
    hook = FakeHook(submits=[refused()])
    outcome = batch(hook, named("a"), fail_on_any_failure=False).execute(context(Store()))
    [result] = outcome["results"]
    assert result["outcome"] == "refused" and result["consumed_credits"] == 0
    assert result["id"] == "a" and result["index"] == 0
    assert result["request"]["prompt"] == "item 0"
    assert "INVALID_PROMPT" in result["error_message"]
    assert outcome["totals"]["generations"] == 0 and outcome["totals"]["failed"] == 1


def test_an_item_that_never_reached_the_service_is_nothing_sent_not_refused() -> None:
    unreachable = SeedanceConnectionError("connection refused: nothing was sent", sent=False)
    outcome = batch(FakeHook(submits=[unreachable]), named("n"), fail_on_any_failure=False).execute(
        context(Store())
    )
    [result] = outcome["results"]
    assert result["outcome"] == "not_sent" and "connection refused" in result["error_message"]


def test_a_refusal_is_still_a_refusal_when_a_resumed_try_reports_it() -> None:
    """The record keeps that the service refused the item, so execute_complete reports it too."""
    store = Store()
    hook = FakeHook(submits=[refused(), None], statuses={"gen-2": ["IN_PROGRESS"]})
    with pytest.raises(TaskDeferred):
        deferrable(hook, named("r", "ok"), max_in_flight=1).execute(context(store))
    event = {"status": "done", "tasks": {"gen-2": task_dict("gen-2", "SUCCESS")}, "errors": {}, "pending": []}
    outcome = deferrable(hook, named("r", "ok"), max_in_flight=1, fail_on_any_failure=False).execute_complete(
        context(store), event
    )
    assert [r["outcome"] for r in outcome["results"]] == ["refused", "succeeded"]


def test_an_uncertain_items_result_names_its_earlier_generations_and_how_to_release_it() -> None:
    """A FAILED generation resubmitted, and that resubmission's answer lost."""
    hook = FakeHook(
        submits=[None, SeedanceSubmissionUncertainError("read timeout")], statuses={"gen-1": ["FAILED"]}
    )
    outcome = batch(hook, named("u"), resubmit_on_failure=1, fail_on_any_failure=False).execute(
        context(Store())
    )
    [result] = outcome["results"]
    assert result["outcome"] == "uncertain" and result["error_message"] == LOST
    assert result["seedance_task_ids"] == ["gen-1"]
    assert result["id"] == "u" and result["index"] == 0 and result["request"]["prompt"] == "item 0"
    assert len(hook.posts) == 2


def test_a_generation_left_running_is_in_progress_with_its_id_and_no_error() -> None:
    outcome = batch(FakeHook(), named("p"), wait_for_completion=False).execute(context(Store()))
    [result] = outcome["results"]
    assert result["outcome"] == "in_progress" and result["status"] == "IN_PROGRESS"
    assert result["task_id"] == "gen-1" and result["seedance_task_ids"] == ["gen-1"]
    assert result["error_message"] is None
    assert result["id"] == "p" and result["index"] == 0 and result["request"]["prompt"] == "item 0"


def test_a_generation_whose_status_cannot_be_read_is_unknown_naming_the_read_error() -> None:
    store, hook = Store(), FakeHook(retry_policy=retry_module.RetryPolicy(max_outage=0))
    batch(hook, named("k"), wait_for_completion=False).execute(context(store))
    hook.status_errors["gen-1"] = SeedanceServerError(500, "INTERNAL_ERROR", "status store down")
    outcome = batch(hook, named("k"), fail_on_any_failure=False).execute(context(store))
    [result] = outcome["results"]
    assert result["outcome"] == "unknown" and result["status"] is None
    assert result["task_id"] == "gen-1" and result["seedance_task_ids"] == ["gen-1"]
    assert "status store down" in result["error_message"]
    assert result["id"] == "k" and result["request"]["prompt"] == "item 0"
    assert len(hook.posts) == 1


# ---------------------------------------------------------------- failure summary and XCom
def test_the_failure_summary_names_only_the_items_that_did_not_succeed() -> None:
    refusal = refused()
    hook = FakeHook(submits=[refusal], statuses={"gen-3": ["FAILED"]})
    with pytest.raises(SeedanceBatchFailedError) as info:
        batch(hook).execute(context(Store()))
    assert str(info.value).startswith(
        f"2 of 3 generations did not succeed (#0 - refused: {refusal}; #2 gen-3 FAILED: moderation). "
        f"Results are in XCom {XCOM_BATCH_RESULTS!r}"
    ), str(info.value)


def test_a_failure_without_a_message_is_summarised_with_an_empty_reason() -> None:
    store = Store()
    operator = batch(FakeHook(statuses={"gen-1": ["IN_PROGRESS"]}), ITEMS[:1], deferrable=True)
    with pytest.raises(TaskDeferred):
        operator.execute(context(store))
    event = {"status": "done", "tasks": {"gen-1": task_dict("gen-1", "FAILED")}, "errors": {}, "pending": []}
    with pytest.raises(SeedanceBatchFailedError) as info:
        operator.execute_complete(context(store), event)
    assert "(#0 gen-1 FAILED: ). Results" in str(info.value), str(info.value)


def test_the_failure_summary_names_at_most_ten_items() -> None:
    items = [{**ITEMS[0], "prompt": f"clip {n}"} for n in range(11)]
    hook = FakeHook(statuses={f"gen-{n}": ["FAILED"] for n in range(1, 12)})
    with pytest.raises(SeedanceBatchFailedError) as info:
        batch(hook, items).execute(context(Store()))
    message = str(info.value)
    assert message.startswith("11 of 11 generations did not succeed (#0 gen-1 FAILED")
    assert "#9 gen-10 FAILED: moderation). " in message and "#10 " not in message


class DeliveryFails(FakeHook):
    """Delivers every item but the one whose prompt is ``fails``, whose destination cannot be written."""

    def __init__(self, fails: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fails = fails
        self.prompts: dict[str, str] = {}

    def submit_request(self, request: Any) -> str:
        task_id = super().submit_request(request)
        self.prompts[task_id] = request.prompt
        return task_id

    def download(self, task: SeedanceTask, destination: Any) -> DownloadResult:
        if self.prompts[task.task_id] == self.fails:
            raise OSError("disk full")
        return super().download(task, destination)


def test_a_paid_video_that_cannot_be_delivered_says_so_and_keeps_its_credits(tmp_path: Path) -> None:
    hook = DeliveryFails("item 1")
    outcome = batch(
        hook, ITEMS[:2], output_path_template=str(tmp_path / "{index}.mp4"), fail_on_any_failure=False
    ).execute(context(Store()))
    delivered, lost = outcome["results"]
    assert delivered["outcome"] == "succeeded" and delivered["bytes"] == len(MP4)
    assert delivered["sha256"] and delivered["output_path"].endswith("0.mp4")
    assert lost["outcome"] == "paid_not_delivered" and lost["consumed_credits"] == 8
    assert lost["error_message"].startswith("delivery failed: disk full. ")
    # Red team 3 of #18: the item's text says how to get the paid video without paying again
    # (a clear of this batch re-attaches to it and delivers it; a new run would pay again).
    assert f"Seedance generation {lost['task_id']} is paid for" in lost["error_message"]
    assert "without paying again" in lost["error_message"] and "a new run pays again" in lost["error_message"]


def test_a_failed_batchs_xcom_is_written_once_and_keeps_what_was_delivered(tmp_path: Path) -> None:
    hook = DeliveryFails("item 1", statuses={"gen-3": ["FAILED"]})
    ctx = context(Store())
    with pytest.raises(SeedanceBatchFailedError):
        batch(hook, output_path_template=str(tmp_path / "{index}.mp4")).execute(ctx)
    pushes = [value for key, value in ctx["ti"].pushes if key == XCOM_BATCH_RESULTS]
    assert len(pushes) == 1, "a failure after the results were recorded must not overwrite them"
    results = pushes[0]["results"]
    assert [r["outcome"] for r in results] == ["succeeded", "paid_not_delivered", "generation_failed"]
    assert results[0]["output_path"].endswith("0.mp4") and results[0]["bytes"] == len(MP4)


def test_a_batch_stopped_before_sending_records_the_totals_too() -> None:
    ctx = context(Store())
    with pytest.raises(SeedanceBudgetExceededError):
        batch(FakeHook(), max_credits=1).execute(ctx)
    totals = ctx["ti"].xcoms[XCOM_BATCH_RESULTS]["totals"]
    assert totals["requests"] == 3 and totals["credits"] == 0 and totals["succeeded"] == 0


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def logged(monkeypatch: pytest.MonkeyPatch) -> Collect:
    """What the batch operator logs (a plain stdlib logger in place of Airflow's, on any version)."""
    logger = logging.getLogger("tests.batch_outcomes")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = Collect()
    logger.addHandler(handler)
    monkeypatch.setattr(SeedanceBatchGenerateOperator, "log", logger)
    monkeypatch.setattr(logger, "handlers", [handler])
    return handler


def test_an_xcom_that_cannot_be_written_is_logged_and_the_tasks_own_error_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = logged(monkeypatch)
    ctx = context(Store())

    def unavailable(**_: Any) -> None:
        raise RuntimeError("xcom backend down")

    ctx["ti"].xcom_push = unavailable
    with pytest.raises(SeedanceBudgetExceededError):
        batch(FakeHook(), max_credits=1).execute(ctx)
    assert [m for m in log.messages if "Could not record the batch results in XCom: xcom backend down" in m]


def test_recording_a_failure_logs_no_recording_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    log = logged(monkeypatch)
    ctx = context(Store())
    with pytest.raises(SeedanceBudgetExceededError):
        batch(FakeHook(), max_credits=1).execute(ctx)
    assert XCOM_BATCH_RESULTS in ctx["ti"].xcoms
    assert not [m for m in log.messages if "Could not record" in m]


def test_the_metrics_name_the_task_that_spent() -> None:
    counted: list[tuple[str, int, dict[str, Any] | None]] = []
    fake = SimpleNamespace(incr=lambda stat, count=1, *, tags=None: counted.append((stat, count, tags)))
    ctx = context(Store())
    ctx["ti"].dag_id, ctx["ti"].task_id = "catalog_dag", "batch"
    operator = batch(FakeHook(statuses={"gen-2": ["FAILED"]}), ITEMS[:2], fail_on_any_failure=False)
    original = metrics._stats
    metrics._stats = lambda: fake  # type: ignore[assignment]
    try:
        operator.execute(ctx)
    finally:
        metrics._stats = original  # type: ignore[assignment]
    tags = {stat: tag for stat, _, tag in counted}
    assert tags["seedance.generations.succeeded"] == {"dag_id": str(operator.dag_id), "task_id": "batch"}
    assert tags["seedance.generations.failed"] == {"dag_id": "catalog_dag", "task_id": "batch"}


# ---------------------------------------------------------------- reused videos
def test_a_clear_after_delivery_keeps_each_named_items_request_and_generations(tmp_path: Path) -> None:
    template = str(tmp_path / "{id}.mp4")
    store, hook = Store(), FakeHook()
    batch(hook, named("a", "b"), output_path_template=template).execute(context(store))
    again = batch(hook, named("a", "b"), output_path_template=template).execute(context(store))
    assert len(hook.posts) == 2
    results = again["results"]
    assert [r["id"] for r in results] == ["a", "b"] and [r["index"] for r in results] == [0, 1]
    assert [r["request"]["prompt"] for r in results] == ["item 0", "item 1"]
    assert [r["seedance_task_ids"] for r in results] == [["gen-1"], ["gen-2"]]


def test_a_clear_after_delivery_keeps_every_generation_an_item_paid_for_or_resubmitted(
    tmp_path: Path,
) -> None:
    template = str(tmp_path / "{index}.mp4")
    store, hook = Store(), FakeHook(statuses={"gen-1": ["FAILED"]})
    batch(hook, ITEMS[:1], output_path_template=template, resubmit_on_failure=1).execute(context(store))
    again = batch(hook, ITEMS[:1], output_path_template=template, resubmit_on_failure=1).execute(
        context(store)
    )
    [result] = again["results"]
    assert result["outcome"] == "succeeded" and result["task_id"] == "gen-2"
    assert result["seedance_task_ids"] == ["gen-1", "gen-2"] and len(hook.posts) == 2


def test_a_video_found_for_an_item_whose_generation_never_ended_on_record_is_a_free_reuse(
    tmp_path: Path,
) -> None:
    template = str(tmp_path / "{id}.mp4")
    store, hook = Store(), FakeHook()
    batch(hook, named("a"), output_path_template=template, wait_for_completion=False).execute(context(store))
    (tmp_path / "a.mp4").write_bytes(MP4)  # put there by someone else before the generation's end was read
    outcome = batch(hook, named("a"), output_path_template=template).execute(context(store))
    [result] = outcome["results"]
    assert result["outcome"] == "reused" and result["consumed_credits"] == 0 and result["task_id"] is None
    assert result["id"] == "a" and result["index"] == 0 and result["request"]["prompt"] == "item 0"
    assert len(hook.posts) == 1


@pytest.mark.parametrize(("skip", "posts"), [(True, 0), (False, 1)])
def test_skip_if_exists_decides_whether_a_delivered_video_is_generated_again(
    tmp_path: Path, skip: bool, posts: int
) -> None:
    (tmp_path / "0.mp4").write_bytes(MP4)
    hook = FakeHook()
    batch(hook, ITEMS[:1], output_path_template=str(tmp_path / "{index}.mp4"), skip_if_exists=skip).execute(
        context(Store())
    )
    assert len(hook.posts) == posts


# ---------------------------------------------------------------- the record
def test_a_generations_ending_is_remembered_when_a_later_status_read_fails() -> None:
    """The first item's answer is lost; the second succeeds. A retry that cannot read the
    second's status still reports it succeeded (from the record), without sending anything."""
    store = Store()
    hook = FakeHook(submits=[SeedanceSubmissionUncertainError("lost"), None])
    with pytest.raises(SeedanceBatchFailedError):
        batch(hook, ITEMS[:2]).execute(context(store))
    entry = next(e for e in store.entries().values() if e["seedance_task_id"] == "gen-2")
    assert entry["outcome"]["status"] == "SUCCESS"
    assert "request" not in entry["outcome"], "the record keeps the fingerprint, not the request again"

    hook.status_errors["gen-2"] = SeedanceServerError(500, "INTERNAL_ERROR", "down")
    outcome = batch(hook, ITEMS[:2], fail_on_any_failure=False).execute(context(store))
    assert [r["outcome"] for r in outcome["results"]] == ["uncertain", "succeeded"]
    assert outcome["results"][1]["consumed_credits"] == 8 and len(hook.posts) == 2


def test_a_changed_request_never_re_attaches_to_the_old_generation() -> None:
    store, hook = Store(), FakeHook()
    batch(hook, ITEMS[:1]).execute(context(store))
    outcome = batch(hook, [{**ITEMS[0], "resolution": "720p"}]).execute(context(store))
    assert len(hook.posts) == 2 and outcome["results"][0]["task_id"] == "gen-2"


def test_identical_requests_recorded_by_0_1_are_each_adopted_when_named() -> None:
    store, hook = (
        Store(),
        FakeHook(statuses={"gen-1": ["IN_PROGRESS", "SUCCESS"], "gen-2": ["IN_PROGRESS", "SUCCESS"]}),
    )
    same = [ITEMS[0], ITEMS[0]]
    batch(hook, same, wait_for_completion=False).execute(context(store))  # keys of 0.1: position among equals
    outcome = batch(hook, [{**ITEMS[0], "id": "x"}, {**ITEMS[0], "id": "y"}]).execute(context(store))
    assert len(hook.posts) == 2
    assert [r["task_id"] for r in outcome["results"]] == ["gen-1", "gen-2"]


def test_a_resubmission_the_api_refuses_is_not_sent_again_in_the_same_try() -> None:
    hook = FakeHook(submits=[None, refused()], statuses={"gen-1": ["FAILED"]})
    outcome = batch(hook, ITEMS[:1], resubmit_on_failure=3, fail_on_any_failure=False).execute(
        context(Store())
    )
    assert len(hook.posts) == 2
    [result] = outcome["results"]
    # Refused, and the FAILED generation before it stays on record (0 credits, one generation).
    assert result["outcome"] == "refused" and result["seedance_task_ids"] == ["gen-1"]


# ---------------------------------------------------------------- settings
def test_the_documented_defaults() -> None:
    operator = SeedanceBatchGenerateOperator(task_id="batch", requests=[])
    assert operator.seedance_conn_id == "seedance_default"
    assert operator.max_in_flight == 8 and operator.max_parallel_downloads == 4
    assert operator.max_poll_concurrency == 32 and operator.poll_interval == 10.0
    assert operator.skip_if_exists is None and operator.max_credits is None
    assert operator.resubmit_on_failure == 0 and operator.fail_on_any_failure is True
    assert operator.wait_for_completion is True and operator.force_new is False
    assert operator.timeout is None and operator.hook_params == {}


def test_the_connection_and_hook_params_are_kept() -> None:
    operator = SeedanceBatchGenerateOperator(
        task_id="batch", requests=[], seedance_conn_id="seedance_eu", hook_params={"status_retries": 2}
    )
    assert operator.seedance_conn_id == "seedance_eu" and operator.hook_params == {"status_retries": 2}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_in_flight", 0),
        ("max_in_flight", -1),
        ("max_parallel_downloads", 0),
        ("max_poll_concurrency", 0),
        ("max_poll_concurrency", 2.5),
        ("max_in_flight", True),
    ],
)
def test_counts_below_one_or_not_whole_are_refused_naming_the_field_and_value(field: str, value: Any) -> None:
    # A poll concurrency of 0 would start no status reader: the batch would wait until its
    # timeout with every generation "running". Refused when the DAG is parsed.
    with pytest.raises(SeedanceValidationError) as caught:
        SeedanceBatchGenerateOperator(task_id="batch", requests=[], **{field: value})
    assert caught.value.field == field and caught.value.value is value
    assert field in str(caught.value) and "at least 1" in str(caught.value)


def test_bounds_of_one_are_accepted() -> None:
    operator = SeedanceBatchGenerateOperator(
        task_id="batch", requests=[], max_in_flight=1, max_parallel_downloads=1
    )
    assert operator.max_in_flight == 1 and operator.max_parallel_downloads == 1


class Gauge:
    """Counts calls in progress at once; each call waits a moment for others to join it, so
    an unbounded pool shows more than its bound."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.lock = threading.Lock()

    def hold(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        time.sleep(0.2)
        with self.lock:
            self.now -= 1


def test_deliveries_run_at_most_max_parallel_downloads_at_once(tmp_path: Path) -> None:
    gauge = Gauge()

    class Slow(FakeHook):
        def download(self, task: SeedanceTask, destination: Any) -> DownloadResult:
            gauge.hold()
            return super().download(task, destination)

    items = [{**ITEMS[0], "prompt": f"clip {n}"} for n in range(5)]
    batch(
        Slow(), items, output_path_template=str(tmp_path / "{index}.mp4"), max_parallel_downloads=2
    ).execute(context(Store()))
    assert gauge.peak == 2


def test_destination_checks_run_at_most_max_parallel_downloads_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gauge = Gauge()

    def existing(destination: Any) -> None:
        gauge.hold()

    monkeypatch.setattr(batch_module, "existing_video", existing)
    items = [{**ITEMS[0], "prompt": f"clip {n}"} for n in range(5)]
    operator = batch(
        FakeHook(), items, output_path_template=str(tmp_path / "{index}.mp4"), max_parallel_downloads=2
    )
    operator.existing_videos(operator.build_items())
    assert gauge.peak == 2


def test_re_attach_reads_at_most_max_in_flight_statuses_at_once() -> None:
    gauge = Gauge()

    class Slow(FakeHook):
        def get_status(self, task_id: str) -> SeedanceTask:
            gauge.hold()
            return super().get_status(task_id)

    items = [{**ITEMS[0], "prompt": f"clip {n}"} for n in range(5)]
    store, hook = Store(), Slow()
    batch(hook, items, max_in_flight=2, wait_for_completion=False).execute(context(store))
    batch(hook, items, max_in_flight=2, wait_for_completion=False).execute(context(store))
    assert gauge.peak == 2 and len(hook.posts) == 5


# ---------------------------------------------------------------- waiting
class Clock:
    """The batch module's ``time``: a clock that moves only when the operator sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        assert len(self.sleeps) < 10, f"still waiting after {self.sleeps}"
        self.now += max(seconds, 0.001)


@pytest.mark.parametrize(
    ("timeout", "sleeps"),
    [(5.5, [5.0, 0.5]), (12.0, [5.0, 5.0, 2.0]), (0.0, [])],
    ids=["last-wait-shorter-than-a-second", "last-wait-cut-to-the-deadline", "deadline-at-once"],
)
def test_a_blocking_batch_waits_poll_interval_and_never_past_its_deadline(
    monkeypatch: pytest.MonkeyPatch, timeout: float, sleeps: list[float]
) -> None:
    clock = Clock()
    monkeypatch.setattr(batch_module, "time", clock)
    monkeypatch.setattr(retry_module, "time", clock)  # the one "sleep, not past the deadline"
    hook = FakeHook(statuses={"gen-1": ["IN_PROGRESS"]})
    with pytest.raises(SeedanceError, match="still running at the deadline"):
        batch(hook, ITEMS[:1], poll_interval=5.0, timeout=timeout).execute(context(Store()))
    assert clock.sleeps == sleeps
    assert len(hook.posts) == 1


def test_without_a_deadline_a_blocking_batch_waits_poll_interval_between_rounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(batch_module, "time", clock)
    monkeypatch.setattr(retry_module, "time", clock)  # the one "sleep, not past the deadline"
    hook = FakeHook(statuses={"gen-1": ["IN_PROGRESS", "IN_PROGRESS", "SUCCESS"]})
    outcome = batch(hook, ITEMS[:1], poll_interval=7.0).execute(context(Store()))
    assert clock.sleeps == [7.0, 7.0, 7.0] and outcome["totals"]["succeeded"] == 1


def outage(clock: Clock, monkeypatch: pytest.MonkeyPatch, answers: list[Any], **policy: Any) -> Any:
    """A one-item blocking batch whose status reads answer ``answers`` in turn, polled every 5 s."""
    monkeypatch.setattr(batch_module, "time", clock)
    monkeypatch.setattr(retry_module, "time", clock)
    hook = FakeHook(statuses={"gen-1": answers}, retry_policy=retry_module.RetryPolicy(**policy))
    operator = batch(hook, ITEMS[:1], poll_interval=5.0, fail_on_any_failure=False)
    return operator.execute(context(Store())), hook


def unreadable() -> SeedanceServerError:
    return SeedanceServerError(503, "SERVICE_UNAVAILABLE")


def test_a_blocking_batch_reads_again_through_an_outage_shorter_than_max_outage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The deferred wait's policy (max_outage seconds of failed reads in a row), not one failed
    read per generation: a short outage of the status endpoint loses no video."""
    clock = Clock()
    answers = ["IN_PROGRESS", unreadable(), unreadable(), unreadable(), "SUCCESS"]
    outcome, hook = outage(clock, monkeypatch, answers, max_outage=60.0)
    [result] = outcome["results"]
    assert result["outcome"] == "succeeded", result
    assert len(hook.posts) == 1 and outcome["totals"]["succeeded"] == 1


def test_a_blocking_batch_gives_up_on_a_generation_unreadable_for_max_outage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    outcome, hook = outage(clock, monkeypatch, ["IN_PROGRESS", unreadable()], max_outage=12.0)
    [result] = outcome["results"]
    assert result["outcome"] == "unknown" and "503" in result["error_message"], result
    # read at 5 s: IN_PROGRESS; at 10, 15, 20 s: failed, tolerated (0, 5, 10 s in a row); at 25 s:
    # failed for 15 s >= 12 s, given up
    assert clock.sleeps == [5.0] * 5 and len(hook.posts) == 1


def test_a_retry_reads_again_a_generation_it_could_not_read_on_re_attaching(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The wait policy holds from the first read of a retried try: a status read that fails on
    re-attaching leaves the generation to be read again, not given up as unknown (its video paid
    for and never collected), and nothing is submitted again."""
    clock = Clock()
    monkeypatch.setattr(batch_module, "time", clock)
    monkeypatch.setattr(retry_module, "time", clock)
    store = Store()
    hook = FakeHook(statuses={"gen-1": [unreadable(), "SUCCESS"]}, retry_policy=retry_module.RetryPolicy())
    batch(hook, ITEMS[:1], wait_for_completion=False).execute(context(store))  # try 1 submits
    outcome = batch(hook, ITEMS[:1], poll_interval=5.0).execute(context(store))  # try 2 re-attaches
    [result] = outcome["results"]
    assert result["outcome"] == "succeeded", result
    assert len(hook.posts) == 1 and clock.sleeps == [5.0]


def test_a_batch_that_does_not_wait_says_unknown_for_what_it_could_not_read_on_re_attaching(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a wait nothing reads it again: the result names the read error, not "in progress"."""
    clock = Clock()
    monkeypatch.setattr(batch_module, "time", clock)
    monkeypatch.setattr(retry_module, "time", clock)
    store = Store()
    hook = FakeHook(statuses={"gen-1": [unreadable(), "SUCCESS"]}, retry_policy=retry_module.RetryPolicy())
    batch(hook, ITEMS[:1], wait_for_completion=False).execute(context(store))
    outcome = batch(hook, ITEMS[:1], wait_for_completion=False, fail_on_any_failure=False).execute(
        context(store)
    )
    [result] = outcome["results"]
    assert result["outcome"] == "unknown" and "503" in result["error_message"], result
    assert clock.sleeps == [] and len(hook.posts) == 1


def test_a_blocking_batch_takes_a_definite_answer_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    gone = SeedanceTaskNotFoundError(404, "TASK_NOT_FOUND")
    outcome, _ = outage(clock, monkeypatch, ["IN_PROGRESS", gone], max_outage=600.0)
    [result] = outcome["results"]
    assert result["outcome"] == "unknown" and clock.sleeps == [5.0, 5.0]


# ---------------------------------------------------------------- deferral and resume
def deferrable(
    hook: FakeHook, items: list[dict[str, Any]] = ITEMS[:2], **kwargs: Any
) -> SeedanceBatchGenerateOperator:
    return batch(hook, items, deferrable=True, **kwargs)


def test_the_trigger_gets_the_batchs_connection_interval_deadline_and_concurrency() -> None:
    hook = FakeHook(statuses={"gen-1": ["IN_PROGRESS"], "gen-2": ["IN_PROGRESS"]})
    before = time.time()
    with pytest.raises(TaskDeferred) as info:
        deferrable(
            hook, seedance_conn_id="seedance_eu", poll_interval=3, max_poll_concurrency=5, timeout=600
        ).execute(context(Store()))
    trigger = info.value.trigger
    assert trigger.seedance_conn_id == "seedance_eu" and trigger.poll_interval == 3.0
    assert trigger.max_concurrency == 5
    assert before + 600 <= trigger.end_time <= time.time() + 600


def test_a_resumed_batch_that_resubmits_defers_again_with_a_deadline() -> None:
    store = Store()
    hook = FakeHook(statuses={"gen-1": ["IN_PROGRESS"], "gen-2": ["IN_PROGRESS"]})
    operator = deferrable(hook, ITEMS[:1], resubmit_on_failure=1, timeout=600, seedance_conn_id="seedance_eu")
    with pytest.raises(TaskDeferred):
        operator.execute(context(store))
    before = time.time()
    event = {"status": "done", "tasks": {"gen-1": task_dict("gen-1", "FAILED")}, "errors": {}, "pending": []}
    with pytest.raises(TaskDeferred) as info:
        operator.execute_complete(context(store), event)
    trigger = info.value.trigger
    assert trigger.seedance_task_ids == ["gen-2"] and trigger.seedance_conn_id == "seedance_eu"
    assert trigger.end_time is not None and before + 600 <= trigger.end_time <= time.time() + 600
    assert len(hook.posts) == 2


def test_a_resumed_batch_gives_its_asset_events_the_videos() -> None:
    asset = Asset("seedance://catalog")
    store = Store()
    operator = deferrable(
        FakeHook(statuses={"gen-1": ["IN_PROGRESS"], "gen-2": ["IN_PROGRESS"]}), outlets=[asset]
    )
    with pytest.raises(TaskDeferred):
        operator.execute(context(store))
    ctx = context(store)
    ctx["outlet_events"] = OutletEvents()
    tasks = {"gen-1": task_dict("gen-1", "SUCCESS"), "gen-2": task_dict("gen-2", "SUCCESS")}
    operator.execute_complete(ctx, {"status": "done", "tasks": tasks, "errors": {}, "pending": []})
    videos = ctx["outlet_events"][asset].extra["videos"]
    assert videos == [
        {
            "seedance_task_id": f"gen-{n}",
            "output_path": None,
            "video_url": "https://cdn.fake.seedance.test/v.mp4",
        }
        for n in (1, 2)
    ]


def test_a_resume_never_sends_an_item_that_was_not_on_record() -> None:
    """An item added to the list while the batch waited: the resume reports it not sent."""
    store = Store()
    hook = FakeHook(statuses={"gen-1": ["IN_PROGRESS"]})
    with pytest.raises(TaskDeferred):
        deferrable(hook, ITEMS[:1]).execute(context(store))
    event = {"status": "done", "tasks": {"gen-1": task_dict("gen-1", "SUCCESS")}, "errors": {}, "pending": []}
    outcome = deferrable(hook, ITEMS[:2], fail_on_any_failure=False).execute_complete(context(store), event)
    assert len(hook.posts) == 1
    added = outcome["results"][1]
    assert added["outcome"] == "not_sent" and added["error_message"] == "not submitted"


def test_a_resume_that_fails_says_why_the_items_not_on_record_were_not_sent() -> None:
    store = Store()
    hook = FakeHook(statuses={"gen-1": ["IN_PROGRESS"]})
    with pytest.raises(TaskDeferred):
        deferrable(hook, ITEMS[:1]).execute(context(store))
    ctx = context(store)
    with pytest.raises(SeedanceError):
        deferrable(hook, ITEMS[:2]).execute_complete(
            ctx, {"status": "timeout", "tasks": {}, "errors": {}, "pending": ["gen-1"]}
        )
    added = ctx["ti"].xcoms[XCOM_BATCH_RESULTS]["results"][1]
    assert added["outcome"] == "not_sent"
    assert added["error_message"].startswith(
        "not submitted: 1 generations were still running at the deadline"
    )


@pytest.mark.parametrize("count", [10, 11])
def test_a_timeout_event_lists_the_first_ten_generations_and_marks_the_rest(count: int) -> None:
    store = Store()
    hook = FakeHook(statuses={"gen-1": ["IN_PROGRESS"], "gen-2": ["IN_PROGRESS"]})
    operator = deferrable(hook)
    with pytest.raises(TaskDeferred):
        operator.execute(context(store))
    pending = [f"run-{n:02d}" for n in range(count)]
    with pytest.raises(SeedanceError) as info:
        operator.execute_complete(
            context(store), {"status": "timeout", "tasks": {}, "errors": {}, "pending": pending}
        )
    shown = ", ".join(pending[:10]) + ("…" if count > 10 else "")
    assert f"({shown}). They were submitted" in str(info.value), str(info.value)


# ---------------------------------------------------------------- a failed try's items
def _resume_failing(event: dict[str, Any], labels: tuple[str, ...] = ("paid", "running")) -> dict[str, Any]:
    """Two items deferred; the resume gets ``event`` and fails: what XCom says of each item."""
    store = Store()
    hook = FakeHook(statuses={"gen-1": ["IN_PROGRESS"], "gen-2": ["IN_PROGRESS"]})
    with pytest.raises(TaskDeferred):
        deferrable(hook, named(*labels)).execute(context(store))
    ctx = context(store)
    with pytest.raises(SeedanceError):
        deferrable(hook, named(*labels)).execute_complete(ctx, event)
    return {r["id"]: r for r in ctx["ti"].xcoms[XCOM_BATCH_RESULTS]["results"]}


def test_a_deadline_leaves_a_succeeded_item_paid_not_delivered_with_its_credits_and_link() -> None:
    event = {
        "status": "timeout",
        "tasks": {"gen-1": task_dict("gen-1", "SUCCESS")},
        "errors": {},
        "pending": ["gen-2"],
    }
    results = _resume_failing(event)
    paid, running = results["paid"], results["running"]
    assert paid["outcome"] == "paid_not_delivered" and paid["consumed_credits"] == 8
    assert paid["video_url"] == "https://cdn.fake.seedance.test/v.mp4"
    assert "still running at the deadline" in paid["error_message"]  # why the task failed
    assert running["outcome"] == "unknown" and running["task_id"] == "gen-2"
    assert running["consumed_credits"] == 0 and "may still be billed" in running["error_message"]


def test_a_batch_trigger_error_leaves_a_succeeded_item_paid_not_delivered() -> None:
    event = {
        "status": "error",
        "message": "status reads kept failing",
        "tasks": {"gen-1": task_dict("gen-1", "SUCCESS")},
        "errors": {"gen-2": "HTTP 500"},
        "pending": [],
    }
    results = _resume_failing(event)
    assert results["paid"]["outcome"] == "paid_not_delivered" and results["paid"]["consumed_credits"] == 8
    assert "status reads kept failing" in results["paid"]["error_message"]
    assert results["running"]["outcome"] == "unknown" and "HTTP 500" in results["running"]["error_message"]


def test_a_failed_try_keeps_an_item_delivered_before_the_failure_as_generated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The failure comes after delivery (the XCom value cannot be built): the file is there."""

    def broken(*_: Any, **__: Any) -> dict[str, Any]:
        raise OSError("results store down")

    ctx = context(Store())
    operator = batch(FakeHook(), named("d"), output_path_template=str(tmp_path / "{id}.mp4"))
    calls: list[int] = []
    original = operator._xcom_outcome

    def second_call_fails(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(1)
        return broken() if len(calls) == 1 else original(*args, **kwargs)

    monkeypatch.setattr(operator, "_xcom_outcome", second_call_fails)
    with pytest.raises(OSError, match="results store down"):
        operator.execute(ctx)
    [result] = ctx["ti"].xcoms[XCOM_BATCH_RESULTS]["results"]
    assert result["outcome"] == "succeeded" and result["output_path"].endswith("d.mp4")


def test_a_batch_stopped_by_an_unusable_account_records_each_unsent_item_with_its_request() -> None:
    from airflow_provider_seedance.exceptions import SeedanceAuthError

    items = [{"id": f"sku-{n}", "prompt": f"item {n}", "resolution": "480p", "duration": 4} for n in range(3)]
    refused = SeedanceAuthError(401, "INVALID_API_KEY", "bad key", creation=CreationState.REFUSED)
    ctx = context(Store())
    with pytest.raises(SeedanceBatchFailedError):
        batch(FakeHook(submits=[refused]), items, fail_on_any_failure=True).execute(ctx)

    results = ctx["ti"].xcoms[XCOM_BATCH_RESULTS]["results"]
    unsent = [r for r in results if r["outcome"] == "not_sent"]
    assert [(r["id"], r["index"], r["request"]["prompt"]) for r in unsent] == [
        ("sku-1", 1, "item 1"),
        ("sku-2", 2, "item 2"),
    ]
