"""Injected faults on every endpoint, and the ledger counting requests before the fault hits."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests
from emulator_helpers import ALPHA_CREDITS, Api, error_code

from airflow_provider_seedance.emulator.testing import EmulatorError, EmulatorProcess


def _assert_not_json(response: requests.Response) -> None:
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)


# ---- generate ---------------------------------------------------------------------------------


def test_generate_http_500_creates_no_task_and_applies_times_then_stops(
    api: Api, emulator: EmulatorProcess
) -> None:
    emulator.add_faults({"endpoint": "generate", "fault": "http_500", "times": 2})
    for _ in range(2):
        response = api.generate()
        assert response.status_code == 500
        assert error_code(response) == "INTERNAL_ERROR"
    assert emulator.tasks() == []
    assert api.generate().status_code == 200
    ledger = emulator.ledger()
    assert ledger["generate_requests"] == 3
    assert ledger["accounts"][api.alpha]["charged"] == 28
    assert len(emulator.tasks()) == 1


@pytest.mark.parametrize(("retry_after", "header"), [(None, "1"), (3, "3"), (0.5, "0.5")])
def test_generate_http_429_sends_retry_after_and_creates_no_task(
    api: Api, emulator: EmulatorProcess, retry_after: float | None, header: str
) -> None:
    rule: dict[str, object] = {"endpoint": "generate", "fault": "http_429"}
    if retry_after is not None:
        rule["retry_after"] = retry_after
    emulator.add_faults(rule)
    response = api.generate()
    assert response.status_code == 429
    assert response.headers["Retry-After"] == header
    assert error_code(response) == "RATE_LIMITED"
    assert emulator.tasks() == []
    assert emulator.ledger()["generate_requests"] == 1
    assert emulator.ledger()["accounts"][api.alpha]["balance"] == ALPHA_CREDITS


def test_generate_drop_closes_the_connection_after_creating_and_charging(
    api: Api, emulator: EmulatorProcess
) -> None:
    emulator.add_faults({"endpoint": "generate", "fault": "drop"})
    with pytest.raises(requests.ConnectionError):
        api.generate()
    ledger = emulator.ledger()
    assert ledger["generate_requests"] == 1
    assert ledger["accounts"][api.alpha]["charged"] == 28
    [task] = emulator.tasks()
    assert task["price"] == 28


def test_generate_malformed_answers_200_with_broken_json_after_creating(
    api: Api, emulator: EmulatorProcess
) -> None:
    emulator.add_faults({"endpoint": "generate", "fault": "malformed"})
    response = api.generate()
    assert response.status_code == 200
    _assert_not_json(response)
    assert len(emulator.tasks()) == 1
    assert emulator.ledger()["accounts"][api.alpha]["charged"] == 28


def test_generate_slow_answers_late_and_the_task_exists_even_if_the_client_gave_up(
    api: Api, emulator: EmulatorProcess
) -> None:
    emulator.add_faults({"endpoint": "generate", "fault": "slow", "delay": 0.6, "times": 2})
    started = time.monotonic()
    response = api.generate()
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.6
    gave_up = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        api.generate(timeout=0.2)
    assert emulator.ledger()["generate_requests"] == 2
    assert len(emulator.tasks()) == 2  # the timed-out request still created (and charged) a task
    assert emulator.ledger()["accounts"][api.alpha]["charged"] == 56
    # Let the abandoned handler finish its sleep so it cannot overlap the next test's requests.
    time.sleep(max(0.0, 0.7 - (time.monotonic() - gave_up)))


def test_max_concurrent_generate_counts_overlapping_requests(api: Api, emulator: EmulatorProcess) -> None:
    emulator.add_faults({"endpoint": "generate", "fault": "slow", "delay": 2.5, "times": 3})
    statuses: list[int] = []

    def submit() -> None:
        statuses.append(Api(emulator).generate().status_code)

    threads = [threading.Thread(target=submit) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert statuses == [200, 200, 200]
    ledger = emulator.ledger()
    assert ledger["max_concurrent_generate"] == 3
    assert ledger["generate_requests"] == 3
    api.generate()
    assert emulator.ledger()["max_concurrent_generate"] == 3  # a peak, not a current count


# ---- status -----------------------------------------------------------------------------------


def test_status_http_500_then_normal(api: Api, emulator: EmulatorProcess) -> None:
    task_id = api.submit()
    emulator.add_faults({"endpoint": "status", "fault": "http_500"})
    failed = api.status(task_id)
    assert failed.status_code == 500
    assert error_code(failed) == "INTERNAL_ERROR"
    assert api.status(task_id).status_code == 200
    assert emulator.ledger()["status_requests"] == 2


def test_status_http_429_with_retry_after(api: Api, emulator: EmulatorProcess) -> None:
    task_id = api.submit()
    emulator.add_faults({"endpoint": "status", "fault": "http_429", "retry_after": 2})
    limited = api.status(task_id)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "2"
    assert error_code(limited) == "RATE_LIMITED"
    assert emulator.ledger()["status_requests"] == 1


def test_status_drop_is_a_connection_error_and_is_counted(api: Api, emulator: EmulatorProcess) -> None:
    task_id = api.submit()
    emulator.add_faults({"endpoint": "status", "fault": "drop", "times": 2})
    for _ in range(2):
        with pytest.raises(requests.ConnectionError):
            api.status(task_id)
    assert api.status(task_id).status_code == 200
    assert emulator.ledger()["status_requests"] == 3


def test_status_slow_delays_then_answers(api: Api, emulator: EmulatorProcess) -> None:
    task_id = api.submit()
    emulator.add_faults({"endpoint": "status", "fault": "slow", "delay": 0.5})
    started = time.monotonic()
    response = api.status(task_id)
    assert time.monotonic() - started >= 0.5
    assert response.json()["data"]["status"] == "SUCCESS"


def test_status_slow_is_counted_on_arrival(api: Api, emulator: EmulatorProcess) -> None:
    task_id = api.submit()
    emulator.add_faults({"endpoint": "status", "fault": "slow", "delay": 1})
    with pytest.raises(requests.ReadTimeout):
        api.status(task_id, timeout=0.3)
    assert emulator.ledger()["status_requests"] == 1  # counted although still sleeping


def test_status_malformed_is_200_with_truncated_json(api: Api, emulator: EmulatorProcess) -> None:
    task_id = api.submit()
    emulator.add_faults({"endpoint": "status", "fault": "malformed"})
    response = api.status(task_id)
    assert response.status_code == 200
    _assert_not_json(response)
    assert response.text.startswith('{"code":200')
    assert api.status(task_id).json()["data"]["task_id"] == task_id


def test_rules_for_one_endpoint_are_consumed_in_order(api: Api, emulator: EmulatorProcess) -> None:
    task_id = api.submit()
    emulator.add_faults(
        {"endpoint": "status", "fault": "http_500", "times": 1},
        {"endpoint": "video", "fault": "http_500", "times": 1},
        {"endpoint": "status", "fault": "http_429", "times": 1},
    )
    assert [api.status(task_id).status_code for _ in range(3)] == [500, 429, 200]
    assert api.generate().status_code == 200  # generate has no rule


def test_clear_faults_removes_pending_rules(api: Api, emulator: EmulatorProcess) -> None:
    task_id = api.submit()
    emulator.add_faults({"endpoint": "status", "fault": "http_500", "times": 10})
    emulator.clear_faults()
    assert api.status(task_id).status_code == 200


@pytest.mark.parametrize(
    "rule",
    [
        {"endpoint": "billing", "fault": "http_500"},
        {"endpoint": "status", "fault": "explode"},
        {"endpoint": "outcome", "fault": "http_500"},
        {"endpoint": "status", "fault": "http_500", "times": 0},
        {"endpoint": "status", "fault": "slow", "delay": -1},
    ],
)
def test_invalid_fault_rules_are_refused(emulator: EmulatorProcess, rule: dict[str, object]) -> None:
    with pytest.raises(EmulatorError, match="HTTP 400"):
        emulator.add_faults(rule)


# ---- video ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "code"), [("http_500", 500, "INTERNAL_ERROR"), ("http_429", 429, "RATE_LIMITED")]
)
def test_video_http_errors(api: Api, emulator: EmulatorProcess, fault: str, status: int, code: str) -> None:
    url = api.video_url(api.submit())
    emulator.add_faults({"endpoint": "video", "fault": fault})
    response = requests.get(url, timeout=10)
    assert response.status_code == status
    assert error_code(response) == code
    if fault == "http_429":
        assert response.headers["Retry-After"] == "1"
    assert requests.get(url, timeout=10).status_code == 200
    assert emulator.ledger()["video_requests"] == 2


def test_video_drop_sends_full_length_header_but_a_short_body(api: Api, emulator: EmulatorProcess) -> None:
    url = api.video_url(api.submit())
    full = requests.get(url, timeout=10).content
    emulator.add_faults({"endpoint": "video", "fault": "drop"})
    received = b""
    with requests.get(url, stream=True, timeout=10) as response:
        assert response.status_code == 200
        assert int(response.headers["Content-Length"]) == len(full)
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            for chunk in response.iter_content(4096):
                received += chunk
    assert 0 < len(received) < len(full)
    assert full.startswith(received)
    assert emulator.ledger()["video_requests"] == 2


def test_video_slow_delays_the_download(api: Api, emulator: EmulatorProcess) -> None:
    url = api.video_url(api.submit())
    emulator.add_faults({"endpoint": "video", "fault": "slow", "delay": 0.5})
    started = time.monotonic()
    response = requests.get(url, timeout=10)
    assert time.monotonic() - started >= 0.5
    assert response.status_code == 200
    assert response.content[4:8] == b"ftyp"


def test_video_malformed_is_200_but_not_an_mp4(api: Api, emulator: EmulatorProcess) -> None:
    url = api.video_url(api.submit())
    emulator.add_faults({"endpoint": "video", "fault": "malformed"})
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "video/mp4"
    assert response.content[4:8] != b"ftyp"
    assert requests.get(url, timeout=10).content[4:8] == b"ftyp"
