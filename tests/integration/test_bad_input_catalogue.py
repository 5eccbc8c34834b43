"""The bad-input catalogue: every bad value gets one clear error, and bad input costs no HTTP.

Each row names what is wrong and what the error must say. Rows about *input* also assert
that the emulator received no request at all; rows about bad *server answers* use a small
real HTTP server on loopback that answers exactly what a broken proxy or API would.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from airflow_provider_seedance.exceptions import (
    SeedanceBudgetExceededError,
    SeedanceConfigurationError,
    SeedanceError,
    SeedanceResponseError,
    SeedanceServerError,
    SeedanceValidationError,
)
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.operators.batch import SeedanceBatchGenerateOperator
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator
from tests.conftest import connection_json

pytestmark = pytest.mark.integration


def submit(**fields: Any) -> Callable[[], Any]:
    fields.setdefault("prompt", "a valid prompt")
    return lambda: SeedanceHook().submit(**fields)


def operator_request(**fields: Any) -> Callable[[], Any]:
    fields.setdefault("prompt", "a valid prompt")
    return lambda: SeedanceGenerateOperator(task_id="t", **fields).build_request()


def operator_budget(**fields: Any) -> Callable[[], Any]:
    def run() -> None:
        op = SeedanceGenerateOperator(task_id="t", prompt="p", **fields)
        op.check_budget(op.build_request())

    return run


def batch(requests: Any, **kwargs: Any) -> Callable[[], Any]:
    return lambda: SeedanceBatchGenerateOperator(task_id="b", requests=requests, **kwargs).build_items()


V = SeedanceValidationError
INPUT_CASES: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    ("empty prompt", submit(prompt=""), V, "Invalid prompt: ''"),
    ("blank prompt", submit(prompt="   \n"), V, "Invalid prompt"),
    ("prompt over 2000 characters", submit(prompt="x" * 2001), V, "2001 characters"),
    ("prompt not a string", submit(prompt=42), V, "Invalid prompt: 42"),
    ("prompt missing (None)", submit(prompt=None), V, "Invalid prompt: None"),
    (
        "aspect ratio 5:4",
        submit(aspect_ratio="5:4"),
        V,
        "Invalid aspect_ratio: '5:4'. Allowed: one of 1:1, 16:9",
    ),
    ("aspect ratio 16:10", submit(aspect_ratio="16:10"), V, "Invalid aspect_ratio"),
    ("aspect ratio as a number", submit(aspect_ratio=1.78), V, "Invalid aspect_ratio: 1.78"),
    (
        "resolution 1080p",
        submit(resolution="1080p"),
        V,
        "Invalid resolution: '1080p'. Allowed: one of 480p, 720p",
    ),
    ("resolution without p", submit(resolution="720"), V, "Invalid resolution"),
    ("resolution as int", submit(resolution=720), V, "Invalid resolution: 720"),
    ("duration 5", submit(duration=5), V, 'Invalid duration: 5. Allowed: "4", "8" or "12"'),
    ("duration '5'", submit(duration="5"), V, "Invalid duration: '5'"),
    ("duration with unit", submit(duration="4s"), V, "Invalid duration: '4s'"),
    ("duration boolean", submit(duration=True), V, "Invalid duration: True"),
    ("duration float", submit(duration=4.0), V, "Invalid duration: 4.0"),
    ("duration zero", submit(duration=0), V, "Invalid duration: 0"),
    ("generate_audio as text", submit(generate_audio="yes"), V, "Invalid generate_audio: 'yes'"),
    ("fixed_lens as int", submit(fixed_lens=1), V, "Invalid fixed_lens: 1"),
    ("two image URLs", submit(image_urls=["https://a/1.jpg", "https://a/2.jpg"]), V, "at most 1"),
    ("ftp image URL", submit(image_urls=["ftp://a/1.jpg"]), V, "Invalid image_urls"),
    ("relative image URL", submit(image_urls=["images/1.jpg"]), V, "Invalid image_urls"),
    ("image URL not a string", submit(image_urls=[None]), V, "Invalid image_urls"),
    ("image URLs as a dict", submit(image_urls={"u": "https://a/1.jpg"}), V, "Invalid image_urls"),
    ("callback over http", submit(callback_url="http://hooks.example.com/cb"), V, "Invalid callback_url"),
    ("callback to localhost", submit(callback_url="https://localhost/cb"), V, "publicly reachable https://"),
    ("callback to a private IP", submit(callback_url="https://10.1.2.3/cb"), V, "Invalid callback_url"),
    ("callback to loopback", submit(callback_url="https://127.0.0.1/cb"), V, "Invalid callback_url"),
    ("callback to IPv6 loopback", submit(callback_url="https://[::1]/cb"), V, "Invalid callback_url"),
    (
        "callback to link-local metadata",
        submit(callback_url="https://169.254.169.254/"),
        V,
        "Invalid callback_url",
    ),
    ("status for an empty task id", lambda: SeedanceHook().get_status(""), V, "Invalid seedance_task_id"),
    ("status for a None task id", lambda: SeedanceHook().get_status(None), V, "Invalid seedance_task_id"),
    (
        "operator: templated ratio rendered bad",
        operator_request(aspect_ratio="square"),
        V,
        "Invalid aspect_ratio: 'square'",
    ),
    ("operator: duration rendered as '16'", operator_request(duration="16"), V, "Invalid duration: '16'"),
    (
        "operator: budget below estimate",
        operator_budget(resolution="720p", duration=12, max_credits=20),
        SeedanceBudgetExceededError,
        "42 credits ($0.21), above max_credits=20",
    ),
    (
        "operator: negative resubmissions",
        lambda: SeedanceGenerateOperator(task_id="t", prompt="p", resubmit_on_failure=-1),
        V,
        "Invalid resubmit_on_failure: -1",
    ),
    ("batch: requests not a list", batch("prompt"), V, "Invalid requests"),
    (
        "batch: item without prompt",
        batch([{"prompt": "ok"}, {"duration": 4}]),
        V,
        "Invalid requests[1].prompt",
    ),
    ("batch: unknown field", batch([{"prompt": "ok", "colour": "red"}]), V, "Invalid requests[0].colour"),
    ("batch: item not a dict", batch(["just a prompt"]), V, "Invalid requests[0].request"),
    (
        "batch: bad output template",
        batch([{"prompt": "ok"}], output_path_template="/out/{sku}.mp4"),
        V,
        "Invalid requests[0].output_path_template",
    ),
]


@pytest.mark.parametrize(("case", "call", "error", "message"), INPUT_CASES, ids=[c[0] for c in INPUT_CASES])
def test_bad_input_gives_one_clear_error_and_no_http(emulator, case, call, error, message) -> None:
    before = emulator.ledger()
    with pytest.raises(error) as info:
        call()
    assert message in str(info.value)
    after = emulator.ledger()
    assert after["generate_requests"] == before["generate_requests"]
    assert after["status_requests"] == before["status_requests"]


CONNECTION_CASES = [
    ("no API key", {"conn_type": "seedance", "host": "https://seedanceapi.org"}, "has no API key"),
    ("blank API key", {"conn_type": "seedance", "host": "https://x.org", "password": "  "}, "has no API key"),
    (
        "base URL without scheme",
        {"conn_type": "seedance", "host": "seedanceapi.org", "password": "k"},
        "'seedanceapi.org' has no scheme",
    ),
    (
        "base URL with ftp",
        {"conn_type": "seedance", "host": "ftp://seedanceapi.org", "password": "k"},
        "is not an http(s) URL",
    ),
    (
        "timeout not a number",
        {"conn_type": "seedance", "host": "https://x.org", "password": "k", "extra": {"timeout": "soon"}},
        "extra 'timeout' must be a number",
    ),
    (
        "negative timeout",
        {"conn_type": "seedance", "host": "https://x.org", "password": "k", "extra": {"timeout": -1}},
        "must be > 0",
    ),
    (
        "proxy not a URL string",
        {"conn_type": "seedance", "host": "https://x.org", "password": "k", "extra": {"proxy": 3128}},
        "extra 'proxy' must be a URL string",
    ),
]


@pytest.mark.parametrize(("case", "conn", "message"), CONNECTION_CASES, ids=[c[0] for c in CONNECTION_CASES])
def test_bad_connection_is_named_before_any_http(monkeypatch, case, conn, message) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_CATALOGUE", json.dumps(conn))
    with pytest.raises(SeedanceConfigurationError) as info:
        SeedanceHook("seedance_catalogue").submit("p")
    assert message in str(info.value) and "seedance_catalogue" in str(info.value)


def test_missing_connection_names_the_conn_id() -> None:
    with pytest.raises(SeedanceConfigurationError, match=r"seedance_nowhere.*could not be loaded"):
        SeedanceHook("seedance_nowhere").submit("p")


class _OddServer:
    """A real HTTP server on loopback that answers a fixed (broken) response."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b""
        self.content_type = "application/json"
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                self.send_response(server.status)
                self.send_header("Content-Type", server.content_type)
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def odd_server(monkeypatch) -> Iterator[_OddServer]:
    server = _OddServer()
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_ODD", connection_json(server.url))
    yield server
    server.httpd.shutdown()


def _status(data: dict[str, Any]) -> bytes:
    return json.dumps({"code": 200, "message": "success", "data": data}).encode()


ANSWER_CASES: list[tuple[str, int, bytes, str, type[Exception], str]] = [
    (
        "HTML error page from a proxy",
        502,
        b"<html><body><h1>502 Bad Gateway</h1></body></html>",
        "text/html",
        SeedanceServerError,
        "Seedance API error 502 INTERNAL_ERROR",
    ),
    (
        "HTML page with 200 (wrong base URL)",
        200,
        b"<!doctype html><html>login</html>",
        "text/html",
        SeedanceResponseError,
        "an HTML page instead of JSON",
    ),
    ("empty 200 body", 200, b"", "application/json", SeedanceResponseError, "an empty body"),
    (
        "huge body",
        200,
        _status({"task_id": "t", "status": "IN_PROGRESS", "pad": "x" * 3_000_000}),
        "application/json",
        SeedanceResponseError,
        "too large",
    ),
    (
        "JSON without data",
        200,
        b'{"code": 200, "message": "success"}',
        "application/json",
        SeedanceResponseError,
        "no 'data' object",
    ),
    (
        "data without a status",
        200,
        _status({"task_id": "t"}),
        "application/json",
        SeedanceResponseError,
        "task t has no status",
    ),
    (
        "truncated JSON",
        200,
        b'{"code": 200, "data": {"task_id": "t", "sta',
        "application/json",
        SeedanceResponseError,
        "not JSON",
    ),
]


@pytest.mark.parametrize(
    ("case", "status", "body", "ctype", "error", "message"), ANSWER_CASES, ids=[c[0] for c in ANSWER_CASES]
)
def test_bad_server_answer_gives_a_typed_error(odd_server, case, status, body, ctype, error, message) -> None:
    odd_server.status, odd_server.body, odd_server.content_type = status, body, ctype
    with pytest.raises(error) as info:
        SeedanceHook("seedance_odd", status_retries=1).get_status("t")
    assert message in str(info.value)
    assert not isinstance(info.value, (KeyError, ValueError)) or isinstance(info.value, SeedanceError)


def test_unknown_status_from_the_server_is_neither_terminal_nor_success(odd_server) -> None:
    odd_server.body = _status({"task_id": "t", "status": "QUEUED"})
    task = SeedanceHook("seedance_odd").get_status("t")
    assert task.status == "QUEUED" and not task.is_terminal and not task.is_success
