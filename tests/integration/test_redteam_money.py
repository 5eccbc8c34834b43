"""Red-team tests for the re-attach record, ``force_new`` and the result XCom (issues 12 and 18).

Each test names a promise and drives the real operators against the real emulator process the
way ``test_money_rules.py`` does (``execute`` with a task-state-store stand-in that survives
between tries). A test marked ``xfail(strict=True)`` demonstrates a defect that is still open:
its ``reason`` states the defect; it starts failing (XPASS) the day the defect is fixed, and the
marker must then go.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from airflow_provider_seedance.exceptions import SeedanceError
from airflow_provider_seedance.operators.batch import XCOM_BATCH_RESULTS
from airflow_provider_seedance.reattach import SubmissionRecord
from tests.conftest import connection_json
from tests.integration.test_money_rules import TI, Store, batch, context, posts, single

pytestmark = pytest.mark.integration


# ---------------------------------------------------------------------------------------------
# A gateway in front of the emulator: forwards every request, and may replace an answer.
# ---------------------------------------------------------------------------------------------
Rewrite = Callable[[str, str, int, bytes], "tuple[int, bytes] | None"]


class _Gateway:
    """A reverse proxy in front of the emulator (as a load balancer or API gateway would be)."""

    def __init__(self, upstream: str, rewrite: Rewrite) -> None:
        self.upstream = upstream.rstrip("/")
        self.rewrite = rewrite
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                skip = ("host", "content-length")
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                answer = requests.request(
                    self.command, gateway.upstream + self.path, data=body, headers=headers, timeout=30
                )
                status, content = answer.status_code, answer.content
                replaced = gateway.rewrite(self.command, self.path, status, content)
                if replaced is not None:
                    status, content = replaced
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = _forward
            do_POST = _forward

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Gateway:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway(emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Rewrite], _Gateway]]:
    started: list[_Gateway] = []

    def start(rewrite: Rewrite) -> _Gateway:
        gw = _Gateway(emulator.base_url, rewrite).__enter__()
        started.append(gw)
        monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEFAULT", connection_json(gw.base_url))
        return gw

    yield start
    for gw in started:
        gw.__exit__(None, None, None)


def _once(predicate: Callable[[str, str], bool], status: int, body: dict[str, Any]) -> Rewrite:
    """Replace the first answer whose (method, path) matches ``predicate``."""
    used = threading.Event()

    def rewrite(method: str, path: str, _status: int, _content: bytes) -> tuple[int, bytes] | None:
        if predicate(method, path) and not used.is_set():
            used.set()
            return status, json.dumps(body).encode()
        return None

    return rewrite


# ---------------------------------------------------------------------------------------------
# Promise 1: a recorded id is never paid twice; a POST that may have created one is never resent.
# ---------------------------------------------------------------------------------------------
def test_5xx_naming_task_not_found_on_reattach_never_releases_a_recorded_id(emulator, gateway) -> None:
    store = Store()
    first = single(wait_for_completion=False).execute(context(store))
    assert posts(emulator) == 1
    gateway(
        _once(
            lambda m, p: m == "GET" and p.startswith("/v1/status"),
            503,
            {"code": 503, "message": "TASK_NOT_FOUND: upstream shard unavailable"},
        )
    )
    # A retry: the recorded id must be re-attached (or the try fail), never paid again.
    with contextlib.suppress(SeedanceError):
        single().execute(context(store))
    assert posts(emulator) == 1, f"recorded Seedance task {first['task_id']} was paid twice"


def test_batch_5xx_naming_task_not_found_never_releases_a_recorded_id(emulator, gateway) -> None:
    store = Store()
    items = [{"prompt": "one sku", "resolution": "480p", "duration": 4}]
    batch(items, wait_for_completion=False).execute(context(store))
    assert posts(emulator) == 1
    gateway(
        _once(
            lambda m, p: m == "GET" and p.startswith("/v1/status"),
            503,
            {"code": 503, "message": "TASK_NOT_FOUND: upstream shard unavailable"},
        )
    )
    with contextlib.suppress(SeedanceError):
        batch(items).execute(context(store))
    assert posts(emulator) == 1


def test_generate_503_naming_rate_limited_is_uncertain_not_resent(emulator, gateway) -> None:
    store = Store()
    gateway(
        _once(
            lambda m, p: m == "POST" and p.startswith("/v1/generate"),
            503,
            {"code": 503, "message": "RATE_LIMITED: back end overloaded"},
        )
    )
    with pytest.raises(SeedanceError):
        single().execute(context(store))
    assert posts(emulator) == 1  # the emulator created (and will charge) a generation
    with contextlib.suppress(SeedanceError):
        single().execute(context(store))  # Airflow's retry
    assert posts(emulator) == 1


# ---------------------------------------------------------------------------------------------
# Promise 1 on Airflow 3.1-3.2 (Variables): discard() after delivery un-records a paid id.
# ---------------------------------------------------------------------------------------------
class _Variables:
    """Airflow's Variable API as the record uses it (get/set/delete), in a dict."""

    data: dict[str, str] = {}

    @classmethod
    def get(cls, key: str, default: Any = None) -> Any:
        return cls.data.get(key, default)

    @classmethod
    def set(cls, key: str, value: str, description: str | None = None) -> None:
        cls.data[key] = value

    @classmethod
    def delete(cls, key: str) -> None:
        cls.data.pop(key, None)


class _VariableTI(TI):
    def __init__(self, dag_id: str = "catalog", run_id: str = "manual__1", task_id: str = "generate") -> None:
        super().__init__()
        self.dag_id, self.run_id, self.task_id, self.map_index = dag_id, run_id, task_id, -1


@pytest.fixture
def variables(monkeypatch: pytest.MonkeyPatch) -> type[_Variables]:
    import airflow.sdk

    monkeypatch.setattr(_Variables, "data", {})
    monkeypatch.setattr(airflow.sdk, "Variable", _Variables, raising=False)
    return _Variables


def _variable_context(ti: _VariableTI | None = None) -> dict[str, Any]:
    """Airflow 3.1-3.2: no task state store, so the record lives in a Variable."""
    return {"ti": ti or _VariableTI(), "outlet_events": {}}


def test_on_the_task_state_store_a_clear_after_delivery_reattaches(emulator, tmp_path) -> None:
    """Control for the next test: Airflow 3.3 keeps the record, so a clear re-attaches."""
    store = Store()
    target = tmp_path / "fox.mp4"
    single(output_path=str(target), skip_if_exists=False).execute(context(store))
    single(output_path=str(target), skip_if_exists=False).execute(context(store))
    assert posts(emulator) == 1


def test_on_variables_a_clear_after_delivery_does_not_pay_again(emulator, variables, tmp_path) -> None:
    target = tmp_path / "fox.mp4"
    single(output_path=str(target), skip_if_exists=False).execute(_variable_context())
    assert posts(emulator) == 1
    single(output_path=str(target), skip_if_exists=False).execute(_variable_context())  # a clear
    assert posts(emulator) == 1


def test_on_variables_a_clear_after_the_file_was_moved_does_not_pay_again(
    emulator, variables, tmp_path
) -> None:
    target = tmp_path / "fox.mp4"
    single(output_path=str(target)).execute(_variable_context())
    target.rename(tmp_path / "archived.mp4")
    single(output_path=str(target)).execute(_variable_context())
    assert posts(emulator) == 1


def test_a_legacy_variable_name_has_at_most_one_reader(variables) -> None:
    # The released code wrote this record under the joined name, which two task instances share.
    legacy = "seedance_attach__a__b__r__t__-1"
    variables.data[legacy] = json.dumps(
        {"fp": {"fingerprint": "fp", "state": "submitted", "seedance_task_id": "task-of-a__b"}}
    )
    readers = [
        _VariableTI(dag_id="a__b", run_id="r", task_id="t"),
        _VariableTI(dag_id="a", run_id="b__r", task_id="t"),
        _VariableTI(dag_id="a", run_id="b", task_id="r__t"),
    ]
    found = [SubmissionRecord.for_context({"ti": ti}).get("fp") is not None for ti in readers]
    assert found.count(True) <= 1
    # A record under the hashed name is never shared, and wins over a legacy one.
    for ti in readers:
        assert SubmissionRecord.for_context({"ti": ti}).where not in {f"Variable {legacy!r}"}


# ---------------------------------------------------------------------------------------------
# Promise 3: the result XCom says what happened to the money, whatever ended the task.
# ---------------------------------------------------------------------------------------------
class _FlakyStore(Store):
    """The task state store answers an error (API server restarting) on one write."""

    def __init__(self, fail_at_write: int) -> None:
        super().__init__()
        self.fail_at_write = fail_at_write

    def set(self, key: str, value: Any) -> None:
        if self.writes + 1 >= self.fail_at_write:
            self.writes += 1
            raise RuntimeError("task state store unavailable (503 from the API server)")
        super().set(key, value)


def test_record_write_failure_after_post_is_not_reported_as_nothing_sent(emulator, monkeypatch) -> None:
    # The write is retried while the store is away; here it stays away past the retry budget.
    monkeypatch.setattr("airflow_provider_seedance.reattach.SAVE_RETRY_SECONDS", 0.3)
    store = _FlakyStore(fail_at_write=2)  # write 1: 'submitting'; write 2 on: the returned id
    ctx = context(store)
    with pytest.raises(RuntimeError):
        single().execute(ctx)
    assert posts(emulator) == 1
    result = ctx["ti"].xcoms["seedance_result"]
    assert result["outcome"] != "not_sent", "a generation was created, the record says nothing was sent"


def test_execution_timeout_during_delivery_records_paid_not_delivered(emulator, tmp_path) -> None:
    try:
        from airflow.sdk.exceptions import AirflowTaskTimeout
    except ImportError:  # Airflow 3.1
        from airflow.exceptions import AirflowTaskTimeout  # type: ignore[no-redef]
    from airflow.sdk.execution_time.timeout import TimeoutPosix

    emulator.add_faults({"endpoint": "video", "fault": "slow", "delay": 20, "times": 1})
    ctx = context(Store())
    with pytest.raises(AirflowTaskTimeout), TimeoutPosix(seconds=4):
        single(output_path=str(tmp_path / "fox.mp4")).execute(ctx)
    assert posts(emulator) == 1
    result = ctx["ti"].xcoms.get("seedance_result")
    assert result is not None and result["outcome"] == "paid_not_delivered"


def test_batch_deadline_still_records_its_results(emulator) -> None:
    items = [{"prompt": f"sku {n}", "resolution": "480p", "duration": 4} for n in range(2)]
    ctx = context(Store())
    with pytest.raises(SeedanceError, match="deadline"):
        batch(items, timeout=0.2).execute(ctx)
    assert posts(emulator) == 2
    assert XCOM_BATCH_RESULTS in ctx["ti"].xcoms


# ---------------------------------------------------------------------------------------------
# Batch keys: identical requests are keyed by position among equals, not by the item.
# ---------------------------------------------------------------------------------------------
def test_batch_identical_requests_reattach_by_item_not_by_position(emulator, tmp_path) -> None:
    store = Store()
    same = {"prompt": "white sneaker on white", "resolution": "480p", "duration": 4}
    items = [{**same, "id": "a"}, {**same, "id": "b"}]
    first = batch(items, wait_for_completion=False).execute(context(store))
    submitted = {r["id"]: r["task_id"] for r in first["results"]}
    again = batch(list(reversed(items)), output_path_template=str(tmp_path / "{id}.mp4")).execute(
        context(store)
    )
    assert posts(emulator) == 2
    delivered = {r["id"]: r["task_id"] for r in again["results"]}
    assert delivered == submitted


# ---------------------------------------------------------------------------------------------
# Issue 18: errors say what to do next; force_new is only for an uncertain submission.
# ---------------------------------------------------------------------------------------------
def test_expired_video_advice_leads_somewhere(emulator, tmp_path) -> None:
    from airflow_provider_seedance.exceptions import SeedanceVideoExpiredError

    store = Store()
    first = single(wait_for_completion=True).execute(context(store))  # no destination yet
    emulator.expire(first["task_id"])
    target = str(tmp_path / "fox.mp4")
    with pytest.raises(SeedanceVideoExpiredError) as advised:
        single(output_path=target).execute(context(store))
    if "force_new=True" in str(advised.value):
        # Follow the advice: it must lead to a video (one new generation), not the same error.
        result = single(output_path=target, force_new=True).execute(context(store))
        assert result["output_path"].endswith("fox.mp4")
