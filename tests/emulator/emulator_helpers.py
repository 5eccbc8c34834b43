"""Helpers shared by the emulator tests (a module, not conftest, so tests can import it by name)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from airflow_provider_seedance.emulator.testing import EmulatorProcess

ALPHA = "sk-test-alpha-key-0001"
BRAVO = "sk-test-bravo-key-0002"
ALPHA_CREDITS = 5000
BRAVO_CREDITS = 50
#: Generation time of the "slow" shared emulator.
#: Long enough that IN_PROGRESS is seen after a few requests on a loaded machine.
SLOW_SECONDS = 1.5


class Api:
    """Speaks the Seedance API to one emulator, with the guide's headers.

    ``key`` arguments default to the client's own key (``ALPHA`` unless given); pass ``""`` to
    send no Authorization header at all.
    """

    alpha = ALPHA
    bravo = BRAVO

    def __init__(self, emulator: EmulatorProcess, key: str = ALPHA) -> None:
        self.emulator = emulator
        self.base_url = emulator.base_url
        self.key = key
        self.http = requests.Session()

    def _headers(self, key: str | None) -> dict[str, str]:
        key = self.key if key is None else key
        return {"Authorization": f"Bearer {key}"} if key else {}

    def generate(
        self, body: Any = None, key: str | None = None, timeout: float = 10, **kwargs: Any
    ) -> requests.Response:
        headers = {"Content-Type": "application/json", **self._headers(key)}
        if body is None:
            body = {"prompt": "A cinematic shot of mountains at sunrise with flowing clouds"}
        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        return self.http.post(
            f"{self.base_url}/v1/generate", data=data, headers=headers, timeout=timeout, **kwargs
        )

    def submit(self, body: Any = None, key: str | None = None) -> str:
        """Generate and return the task id, asserting success."""
        response = self.generate(body, key=key)
        assert response.status_code == 200, response.text
        task_id: str = response.json()["data"]["task_id"]
        return task_id

    def status(self, task_id: str | None, key: str | None = None, timeout: float = 10) -> requests.Response:
        params = {"task_id": task_id} if task_id is not None else {}
        return self.http.get(
            f"{self.base_url}/v1/status", params=params, headers=self._headers(key), timeout=timeout
        )

    def status_data(self, task_id: str, key: str | None = None) -> dict[str, Any]:
        response = self.status(task_id, key=key)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    def wait_finished(self, task_id: str, key: str | None = None, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            data = self.status_data(task_id, key=key)
            if data["status"] != "IN_PROGRESS":
                return data
            assert time.monotonic() < deadline, f"{task_id} still IN_PROGRESS after {timeout}s"
            time.sleep(0.05)

    def video_url(self, task_id: str, key: str | None = None) -> str:
        data = self.wait_finished(task_id, key=key)
        assert data["status"] == "SUCCESS", data
        url: str = data["response"][0]
        return url


def error_code(response: requests.Response) -> str:
    """The leading UPPER_SNAKE token of an error body's message, checking the body's shape."""
    body = response.json()
    assert set(body) == {"code", "message", "data"}, body
    assert body["code"] == response.status_code
    assert body["data"] is None
    code, sep, text = body["message"].partition(": ")
    assert sep and text, body
    return code


@dataclass
class Receiver:
    """A loopback webhook receiver that records what it is sent."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    reply_status: int = 200

    def wait(self, count: int = 1, timeout: float = 10) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"only {len(self.received)} callbacks after {timeout}s"
            time.sleep(0.02)
        return self.received


def wait_until(predicate: Callable[[], bool], timeout: float = 10, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(interval)
