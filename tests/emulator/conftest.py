"""Fixtures for the emulator's own tests: real emulator processes and a thin HTTP client.

Shared emulators are started once per session and reset before each test, because starting a
process costs ~0.3 s and the suite must stay fast; tests that need special flags start their own.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from emulator_helpers import ALPHA, ALPHA_CREDITS, BRAVO, BRAVO_CREDITS, SLOW_SECONDS, Api, Receiver

from airflow_provider_seedance.emulator.testing import EmulatorProcess


@pytest.fixture(scope="session")
def shared_emulator() -> Iterator[EmulatorProcess]:
    """Two accounts, instant generations, no local callbacks."""
    with EmulatorProcess(
        api_keys={ALPHA: ALPHA_CREDITS, BRAVO: BRAVO_CREDITS}, generation_seconds=0
    ) as emulator:
        yield emulator


@pytest.fixture
def emulator(shared_emulator: EmulatorProcess) -> EmulatorProcess:
    shared_emulator.reset()
    return shared_emulator


@pytest.fixture
def api(emulator: EmulatorProcess) -> Api:
    return Api(emulator)


@pytest.fixture(scope="session")
def shared_slow_emulator() -> Iterator[EmulatorProcess]:
    """Generations take SLOW_SECONDS (1.5 s), so IN_PROGRESS is observable; local callbacks allowed."""
    with EmulatorProcess(
        api_keys={ALPHA: ALPHA_CREDITS, BRAVO: BRAVO_CREDITS},
        generation_seconds=SLOW_SECONDS,
        allow_local_callbacks=True,
    ) as emulator:
        yield emulator


@pytest.fixture
def slow_emulator(shared_slow_emulator: EmulatorProcess) -> EmulatorProcess:
    shared_slow_emulator.reset()
    return shared_slow_emulator


@pytest.fixture
def slow_api(slow_emulator: EmulatorProcess) -> Api:
    return Api(slow_emulator)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            rec = box["receiver"]
            rec.received.append({"path": self.path, "headers": dict(self.headers), "json": json.loads(body)})
            self.send_response(rec.reply_status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box["receiver"] = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hook")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box["receiver"]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver_url(receiver: Receiver) -> Iterator[str]:
    """A receiver that fails the test if anything reaches it."""
    yield receiver.url
    assert receiver.received == [], "the emulator connected to a host it must not call"
