"""``airflow connections test`` for a ``seedance`` connection, run as a real CLI process.

The test must tell a good key from a bad key from an unreachable host, in a sentence a
person can act on, and must never generate (never spend a credit). The REST/UI path
(``POST /api/v2/connections/test``) is covered in ``tests/ui/test_connection_ui.py``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_seedance.hooks.seedance import SeedanceHook
from tests.conftest import API_KEY, connection_json

pytestmark = pytest.mark.integration

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there once the socket is closed


def start_cli_test(conn_json: str) -> subprocess.Popen[str]:
    env = os.environ.copy()
    env["AIRFLOW_CONN_SEEDANCE_DEFAULT"] = conn_json
    env["AIRFLOW__CORE__TEST_CONNECTION"] = "Enabled"  # Airflow disables connection tests by default
    return subprocess.Popen(
        [AIRFLOW, "connections", "test", "seedance_default"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_cli_connection_test_tells_good_key_bad_key_and_unreachable_host_apart(emulator) -> None:
    # Three CLI processes at once: each spends most of its time importing Airflow.
    good = start_cli_test(connection_json(emulator.base_url))
    bad = start_cli_test(connection_json(emulator.base_url, "sk-not-a-real-key"))
    down = start_cli_test(connection_json(closed_port_url()))
    out = {
        name: proc.communicate(timeout=120)[0]
        for name, proc in (("good", good), ("bad", bad), ("down", down))
    }

    assert "Connection success!" in out["good"], out["good"]
    # The CLI prints no message on success (the REST API returns it: see tests/ui/test_connection_ui.py).

    assert "Connection failed!" in out["bad"], out["bad"]
    assert f"{emulator.base_url} rejected the API key (the password field)" in out["bad"]
    assert "INVALID_API_KEY" in out["bad"]

    assert "Connection failed!" in out["down"], out["down"]
    assert "Cannot reach http://127.0.0.1:" in out["down"] and "check the base URL" in out["down"]

    for text in out.values():
        assert API_KEY not in text and "sk-not-a-real-key" not in text  # the key is never echoed
    ledger = emulator.ledger()
    assert ledger["generate_requests"] == 0
    assert ledger["status_requests"] == 2  # one probe each for the good and the bad key
    assert ledger["accounts"][API_KEY]["charged"] == 0


def test_hook_connection_test_without_key_says_where_to_put_it(monkeypatch, emulator) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEFAULT", connection_json(emulator.base_url, ""))
    ok, message = SeedanceHook().test_connection()
    assert not ok
    assert "has no API key" in message and "password field" in message
    assert emulator.ledger()["status_requests"] == 0


def test_hook_connection_test_reports_a_server_error_without_retrying(emulator) -> None:
    emulator.add_faults({"endpoint": "status", "fault": "http_500", "times": 3})
    ok, message = SeedanceHook().test_connection()
    assert not ok and "500" in message and "INTERNAL_ERROR" in message
    assert emulator.ledger()["status_requests"] == 1  # a person is waiting: one probe, no backoff


def test_hook_connection_test_with_a_base_url_that_is_not_the_api_root_says_so(monkeypatch, emulator) -> None:
    """Red-team of issue 18: a base URL with a stray path answers 404 "no such endpoint" (not
    TASK_NOT_FOUND); the test must name the base URL as what to fix, not just relay the 404."""
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_PATH", connection_json(emulator.base_url + "/nope"))
    ok, message = SeedanceHook("seedance_path").test_connection()
    assert not ok
    assert "check the base URL" in message and "https://seedanceapi.org" in message, message
