"""Webhook callbacks: sent on completion without polling, counted, and localhost only when allowed.

The slow emulator (1.5 s generations) runs with ``--allow-local-callbacks``; the shared instant
emulator runs without it and must refuse loopback callback URLs.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from emulator_helpers import SLOW_SECONDS, Api, Receiver, error_code, wait_until

from airflow_provider_seedance.emulator.testing import EmulatorProcess

PROMPT = "A serene mountain landscape at sunrise, time-lapse style"


def test_callback_is_posted_on_success_without_any_polling(
    slow_api: Api, slow_emulator: EmulatorProcess, receiver: Receiver
) -> None:
    submitted = time.monotonic()
    task_id = slow_api.submit({"prompt": PROMPT, "duration": "8", "callback_url": receiver.url})
    [call] = receiver.wait(1, timeout=5)
    assert time.monotonic() - submitted >= SLOW_SECONDS - 0.05  # not before the generation is done
    assert slow_emulator.ledger()["status_requests"] == 0  # nobody polled
    assert call["path"] == "/hook"
    assert call["headers"]["Content-Type"].startswith("application/json")
    payload = call["json"]
    assert payload["code"] == 200 and payload["message"] == "success"
    assert payload["data"]["task_id"] == task_id
    assert payload["data"]["status"] == "SUCCESS"
    assert payload["data"]["consumed_credits"] == 28
    # The callback carries exactly what GET /v1/status returns.
    assert payload == slow_api.status(task_id).json()
    wait_until(lambda: slow_emulator.ledger()["callbacks_sent"] == 1)
    assert slow_emulator.ledger()["callbacks_failed"] == 0


def test_callback_reports_failure_and_refund(
    slow_api: Api, slow_emulator: EmulatorProcess, receiver: Receiver
) -> None:
    slow_emulator.add_faults({"endpoint": "outcome", "fault": "failed", "error_message": "NSFW: rejected"})
    task_id = slow_api.submit({"prompt": PROMPT, "callback_url": receiver.url})
    [call] = receiver.wait(1, timeout=5)
    data = call["json"]["data"]
    assert data["task_id"] == task_id
    assert data["status"] == "FAILED"
    assert data["error_message"] == "NSFW: rejected"
    assert data["consumed_credits"] == 0
    account = slow_emulator.ledger()["accounts"][slow_api.alpha]
    assert account["refunded"] == 28 and account["charged"] == 28


def test_tasks_without_callback_url_send_nothing(
    slow_api: Api, slow_emulator: EmulatorProcess, receiver: Receiver
) -> None:
    with_hook = slow_api.submit({"prompt": PROMPT, "callback_url": receiver.url})
    slow_api.submit({"prompt": PROMPT})
    receiver.wait(1, timeout=5)
    time.sleep(0.3)
    assert [call["json"]["data"]["task_id"] for call in receiver.received] == [with_hook]


def test_rejected_callback_counts_as_failed(
    slow_api: Api, slow_emulator: EmulatorProcess, receiver: Receiver
) -> None:
    receiver.reply_status = 500
    slow_api.submit({"prompt": PROMPT, "callback_url": receiver.url})
    receiver.wait(1, timeout=5)
    wait_until(lambda: slow_emulator.ledger()["callbacks_failed"] == 1)
    assert slow_emulator.ledger()["callbacks_sent"] == 0


def test_unreachable_callback_counts_as_failed(slow_api: Api, slow_emulator: EmulatorProcess) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    slow_api.submit({"prompt": PROMPT, "callback_url": f"http://127.0.0.1:{port}/hook"})
    wait_until(lambda: slow_emulator.ledger()["callbacks_failed"] == 1, timeout=5)
    assert slow_emulator.ledger()["callbacks_sent"] == 0


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:{port}/hook", "https://localhost/hook", "http://10.1.2.3/hook"],
)
def test_local_callback_refused_without_the_flag(api: Api, emulator: EmulatorProcess, url: str) -> None:
    response = api.generate({"prompt": PROMPT, "callback_url": url.format(port=9)})
    assert response.status_code == 400
    assert error_code(response) == "INVALID_CALLBACK_URL"
    assert emulator.tasks() == []


def test_flag_allows_local_http_but_not_public_http(slow_api: Api) -> None:
    assert slow_api.generate({"prompt": PROMPT, "callback_url": "http://127.0.0.1:9/hook"}).status_code == 200
    assert slow_api.generate({"prompt": PROMPT, "callback_url": "http://localhost:9/hook"}).status_code == 200
    public_http = slow_api.generate({"prompt": PROMPT, "callback_url": "http://example.com/hook"})
    assert public_http.status_code == 400
    assert error_code(public_http) == "INVALID_CALLBACK_URL"


def test_callback_owed_across_a_restart_is_sent_exactly_once(receiver: Receiver, tmp_path: Path) -> None:
    key = "sk-callback-restart-0009"
    with EmulatorProcess(
        api_keys={key: 100},
        generation_seconds=3.0,
        allow_local_callbacks=True,
        state_file=tmp_path / "state.json",
    ) as emulator:
        submitted = time.monotonic()
        task_id = Api(emulator, key=key).submit({"prompt": PROMPT, "callback_url": receiver.url})
        emulator.stop()  # down before the task is due
        time.sleep(max(0.0, 3.2 - (time.monotonic() - submitted)))  # now it is due
        assert receiver.received == []
        emulator.start()
        receiver.wait(1, timeout=5)
        wait_until(lambda: emulator.ledger()["callbacks_sent"] == 1)
        time.sleep(0.3)
        assert [call["json"]["data"]["task_id"] for call in receiver.received] == [task_id]
        assert receiver.received[0]["json"]["data"]["status"] == "SUCCESS"
