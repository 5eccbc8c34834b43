"""Narrow fakes for driving an operator's or the sensor's methods without HTTP: a hook, a TI, a state store.

The fake hook answers ``submit_request`` and ``get_status`` from a script and counts the
generate POSTs it received; the store is Airflow's per-task-instance state store as far as the
re-attach record uses it, and survives between "tries" (calls to ``execute``).
"""

from __future__ import annotations

import hashlib
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from types import SimpleNamespace
from typing import Any

from airflow_provider_seedance.hooks.delivery import DownloadResult
from airflow_provider_seedance.hooks.retry import RetryPolicy
from airflow_provider_seedance.models import GenerationRequest, SeedanceTask
from tests.state_store import Store as Store  # re-export: the one store of the tests

#: Bytes that pass the MP4 check (an ``ftyp`` box at offset 4).
MP4 = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64


def scripted_task(task_id: str, status: str) -> SeedanceTask:
    """A status answer as the fakes script it: SUCCESS has a video and costs 8 credits,
    FAILED says "moderation", anything else is still running."""
    return SeedanceTask(
        task_id=task_id,
        status=status,
        video_urls=["https://cdn.fake.seedance.test/v.mp4"] if status == "SUCCESS" else [],
        consumed_credits=8 if status == "SUCCESS" else 0,
        error_message="moderation" if status == "FAILED" else None,
    )


class TI:
    """A running task instance try: its identity (as the execution API gives it) and XComs."""

    def __init__(self) -> None:
        self.dag_id, self.run_id, self.task_id, self.map_index, self.try_number = "dag", "run", "task", -1, 1
        self.xcoms: dict[str, Any] = {}
        self.pushes: list[tuple[str, Any]] = []

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value
        self.pushes.append((key, value))


def context(store: Store) -> dict[str, Any]:
    return {"task_state_store": store, "ti": TI(), "outlet_events": defaultdict(lambda: None)}


class FakeHook:
    """The part of ``SeedanceHook`` the operators call, scripted.

    :param submits: what each successive ``submit_request`` does: an exception instance is
        raised, anything else is ignored and a fresh task id returned (default: all succeed).
    :param statuses: per task id (in submission order: ``gen-1``, ``gen-2``, ...), the statuses
        successive reads return (an exception is raised); the last one repeats. Default ``SUCCESS``.
    :param status_errors: per task id, an exception every status read raises.
    :param on_post: called with the request at the moment a POST "is sent".
    :param retry_policy: the hook's (what ``hook_params`` set on a real hook).
    """

    def __init__(
        self,
        *,
        submits: Iterable[Any] = (),
        statuses: dict[str, list[Any]] | None = None,
        status_errors: dict[str, BaseException] | None = None,
        on_post: Callable[[GenerationRequest], None] | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        self.retry_policy = retry_policy or RetryPolicy()
        self.submits = deque(submits)
        self.statuses = {k: deque(v) for k, v in (statuses or {}).items()}
        self.status_errors = dict(status_errors or {})
        self.on_post = on_post
        self.posts: list[GenerationRequest] = []
        self.reads: list[str] = []
        #: The ``outage`` of each status read (the wait policy the caller asked for).
        self.outages: list[float | None] = []
        self.downloads: list[str] = []
        #: ``(task_id, keyword arguments)`` of each blocking wait.
        self.waits: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.settings = SimpleNamespace(base_url="https://fake.seedance.test", callbacks=None)
        #: The ``callback_url`` each POST carried beside its request (``None``: none added).
        self.callback_urls: list[str | None] = []
        #: How many times the connection was resolved for thread pools.
        self.prepared = 0
        #: The connection's extra (the shared budgets read ``budget`` there).
        self.extra: dict[str, Any] = {}

    def describe_cost(self, credits: int | None) -> str:
        return f"{credits or 0} credits"

    def connection_extra(self) -> dict[str, Any]:
        return dict(self.extra)

    def prepare_for_threads(self) -> None:
        self.prepared += 1

    def submit_request(self, request: GenerationRequest, *, callback_url: str | None = None) -> str:
        with self.lock:
            self.posts.append(request)
            self.callback_urls.append(callback_url)
            number = len(self.posts)
            outcome = self.submits.popleft() if self.submits else None
        if self.on_post is not None:
            self.on_post(request)
        if isinstance(outcome, BaseException):
            raise outcome
        return f"gen-{number}"

    def get_status(
        self, task_id: str, *, outage: float | None = None, deadline: float | None = None
    ) -> SeedanceTask:
        with self.lock:
            self.reads.append(task_id)
            self.outages.append(outage)
            if task_id in self.status_errors:
                raise self.status_errors[task_id]
            script = self.statuses.get(task_id)
            status = (script.popleft() if len(script) > 1 else script[0]) if script else "SUCCESS"
        if isinstance(status, BaseException):
            raise status
        return scripted_task(task_id, status)

    def download(self, task: SeedanceTask, destination: Any) -> DownloadResult:
        """Deliver a finished task: writes an MP4-looking file (``MP4``) at ``destination``."""
        with self.lock:
            self.downloads.append(task.task_id)
        with destination.open("wb") as handle:  # an ObjectStoragePath
            handle.write(MP4)
        return DownloadResult(str(destination), len(MP4), hashlib.sha256(MP4).hexdigest(), task.video_url)

    def wait_for_completion(self, task_id: str, **kwargs: Any) -> SeedanceTask:
        self.waits.append((task_id, kwargs))
        while True:
            task = self.get_status(task_id)
            if task.is_terminal:
                return task


def use(operator: Any, hook: FakeHook) -> Any:
    """Give ``operator`` the fake hook (its ``hook`` is a cached property)."""
    operator.__dict__["hook"] = hook
    return operator


#: Three cheap, distinct batch items (8 credits each).
BATCH_ITEMS = [{"prompt": f"item {n}", "resolution": "480p", "duration": 4} for n in range(3)]


def batch(hook: FakeHook, items: list[dict[str, Any]] = BATCH_ITEMS, **kwargs: Any) -> Any:
    """A blocking batch operator on ``hook``, one POST at a time, no pause between polls."""
    from airflow_provider_seedance.operators.batch import SeedanceBatchGenerateOperator

    kwargs.setdefault("deferrable", False)
    kwargs.setdefault("poll_interval", 0.001)
    kwargs.setdefault("max_in_flight", 1)
    return use(SeedanceBatchGenerateOperator(task_id="batch", requests=items, **kwargs), hook)


class OutletEvents:
    """``context["outlet_events"]``, keyed by identity (Airflow 3.1's ``Asset`` is not hashable)."""

    def __init__(self) -> None:
        self.events: dict[int, SimpleNamespace] = {}

    def __getitem__(self, outlet: Any) -> SimpleNamespace:
        return self.events.setdefault(id(outlet), SimpleNamespace(extra={}))
