"""The public callback receiver under hostile input, before any signature is checked.

The promises: whatever a caller puts in a token (deep JSON, a connection id of any shape, the
name of a connection that is broken) is refused with the same 403 and never a 500; a flood of
forged tokens looks each claimed connection up once per ``SETTINGS_TTL_SECONDS``, not once per
request; a caller that finds every callback slot busy waits a bounded time (a full queue: 503
at once), then gets 503; and a callback URL an
answer echoes (its token asks the receiver for status reads) is kept out of recorded results.
"""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_seedance.callbacks import TokenFormatError, unverified_conn_id
from airflow_provider_seedance.models import SeedanceTask
from airflow_provider_seedance.plugins import callback_receiver


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def token_claiming(claims: Any) -> str:
    body = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
    return f"v1.{b64(body)}.{b64(b'0' * 32)}"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 5000, id="deeply-nested"),
        pytest.param(b'{"c": "../../etc"}', id="path-like-conn-id"),
        pytest.param(b'{"c": "x" }'.replace(b"x", b"a" * 251), id="251-char-conn-id"),
        pytest.param('{"c": "séance"}'.encode(), id="non-ascii-conn-id"),
        pytest.param(b'{"c": ["seedance_default"]}', id="conn-id-not-a-string"),
    ],
)
def test_a_claimed_connection_id_of_any_bad_shape_is_a_format_error(body: bytes) -> None:
    with pytest.raises(TokenFormatError):
        unverified_conn_id(token_claiming(body))


class Lookups:
    """Stands in for SeedanceHook in the receiver: counts lookups, raises like a broken one."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[str] = []
        self.error = error

    def __call__(self, conn_id: str, **_: Any) -> Any:
        self.calls.append(conn_id)
        if self.error is not None:
            raise self.error
        return SimpleNamespace(settings=SimpleNamespace(callbacks=None))


@pytest.fixture(autouse=True)
def empty_settings_cache() -> None:
    callback_receiver._SETTINGS.clear()


@pytest.mark.parametrize(
    "error",
    [AttributeError("'list' object has no attribute 'get'"), ValueError("Invalid IPv6 URL"), OSError()],
)
def test_a_forged_token_naming_a_broken_connection_is_refused_not_a_server_error(monkeypatch, error) -> None:
    lookups = Lookups(error)
    monkeypatch.setattr(callback_receiver, "SeedanceHook", lookups)
    outcome = callback_receiver.receive(token_claiming({"c": "broken_conn"}), session=None)  # type: ignore[arg-type]
    assert outcome is callback_receiver.Outcome.REFUSED and lookups.calls == ["broken_conn"]


def test_a_flood_of_forged_tokens_looks_each_connection_up_once_per_ttl(monkeypatch) -> None:
    lookups = Lookups()
    monkeypatch.setattr(callback_receiver, "SeedanceHook", lookups)
    clock = [1000.0]
    monkeypatch.setattr(callback_receiver.time, "monotonic", lambda: clock[0])
    for _ in range(50):
        assert callback_receiver.receive(token_claiming({"c": "seedance_default"}), None) is (  # type: ignore[arg-type]
            callback_receiver.Outcome.REFUSED
        )
    assert lookups.calls == ["seedance_default"]
    clock[0] += callback_receiver.SETTINGS_TTL_SECONDS + 1  # a new secret takes effect after the TTL
    callback_receiver.receive(token_claiming({"c": "seedance_default"}), None)  # type: ignore[arg-type]
    assert lookups.calls == ["seedance_default", "seedance_default"]


def test_the_settings_cache_stays_bounded_whatever_ids_a_flood_claims(monkeypatch) -> None:
    monkeypatch.setattr(callback_receiver, "SeedanceHook", Lookups())
    for n in range(callback_receiver.SETTINGS_CACHE_SIZE * 3):
        callback_receiver.receive(token_claiming({"c": f"conn_{n}"}), None)  # type: ignore[arg-type]
    assert len(callback_receiver._SETTINGS) <= callback_receiver.SETTINGS_CACHE_SIZE


@pytest.mark.parametrize("waiting", [0, 64], ids=["slots-stay-busy", "queue-full"])
def test_when_every_callback_slot_stays_busy_the_caller_gets_503(monkeypatch, waiting: int) -> None:
    """A callback waits (without a thread) for a slot up to CALLBACK_QUEUE_SECONDS, then 503;
    when CALLBACK_QUEUE_LIMIT callers wait already, 503 at once. Nothing is handled either way."""
    import time

    from fastapi.testclient import TestClient

    from airflow_provider_seedance.plugins import seedance_view

    state = {"slots": SimpleNamespace(available_tokens=0), "waiting": [waiting]}

    class Full:
        def here(self) -> dict[str, Any]:
            return state

    monkeypatch.setattr(seedance_view, "_CALLBACK_SLOTS", Full())
    # A full queue is given 60 s to wait: turned away at once, it answers long before that.
    queue_seconds = 0.3 if waiting == 0 else 60.0
    monkeypatch.setattr(seedance_view, "CALLBACK_QUEUE_SECONDS", queue_seconds)
    monkeypatch.setattr(seedance_view, "CALLBACK_QUEUE_LIMIT", 64)
    handled: list[str] = []
    monkeypatch.setattr(
        seedance_view.callback_receiver, "receive", lambda token, session: handled.append(token)
    )
    started = time.monotonic()
    answer = TestClient(seedance_view.app).post("/callbacks/v1.a.b", json={})
    waited = time.monotonic() - started
    assert (answer.status_code, answer.json(), handled) == (503, {"status": "busy"}, [])
    assert state["waiting"] == [waiting]  # a waiter always leaves the queue count as it found it
    if waiting == 0:
        assert waited >= queue_seconds  # it did wait for a slot before giving up
    else:
        assert waited < queue_seconds  # a full queue turns the caller away at once


def test_a_callback_waiting_for_a_slot_is_handled_once_one_frees(monkeypatch) -> None:
    import threading

    from fastapi.testclient import TestClient

    from airflow_provider_seedance.plugins import callback_receiver, seedance_view

    slots = SimpleNamespace(available_tokens=0)
    state = {"slots": slots, "waiting": [0]}

    class Busy:
        def here(self) -> dict[str, Any]:
            return state

    monkeypatch.setattr(seedance_view, "_CALLBACK_SLOTS", Busy())
    monkeypatch.setattr(seedance_view, "CALLBACK_QUEUE_SECONDS", 10.0)

    async def run_sync(function: Any, limiter: Any = None) -> Any:
        return function()

    monkeypatch.setattr(seedance_view.anyio.to_thread, "run_sync", run_sync)
    monkeypatch.setattr(
        seedance_view.callback_receiver, "receive", lambda token, session: callback_receiver.Outcome.IGNORED
    )
    threading.Timer(0.3, lambda: setattr(slots, "available_tokens", 1)).start()
    answer = TestClient(seedance_view.app).post("/callbacks/v1.a.b", json={})
    assert (answer.status_code, answer.json()) == (202, {"status": "ignored"})


def test_an_echoed_callback_url_is_kept_out_of_the_recorded_request() -> None:
    answer = {
        "task_id": "t-1",
        "status": "SUCCESS",
        "request": {
            "prompt": "a fox",
            "resolution": "480p",
            "callback_url": "https://airflow.example.com/seedance/callbacks/v1.abc.def",
        },
    }
    task = SeedanceTask.from_api(answer)
    assert task.request == {"prompt": "a fox", "resolution": "480p"}
    assert "callbacks" not in json.dumps(task.to_dict())


def test_the_status_read_uses_the_checked_settings_bounded_and_closes_its_session(monkeypatch) -> None:
    """A valid callback's status read is made with the settings its token was checked against
    (no second connection lookup), with the receiver's short timeouts, and the HTTP session it
    opened is closed afterwards even when the read fails (the API server is long-lived)."""
    from airflow.sdk import Connection

    from airflow_provider_seedance.exceptions import SeedanceConnectionError
    from airflow_provider_seedance.hooks.seedance import ConnectionSettings, SeedanceHook

    conn = Connection(conn_id="c", conn_type="seedance", host="http://h", password="sk-key-123")
    checked = ConnectionSettings.from_connection(conn, {"timeout": 300})
    monkeypatch.setattr(SeedanceHook, "_resolve_settings", lambda self: pytest.fail("looked up again"))
    seen: list[tuple[float, float]] = []
    closed: list[bool] = []

    class Session:
        def close(self) -> None:
            closed.append(True)

    def get_status(self: SeedanceHook, task_id: str) -> Any:
        self.__dict__["_session"] = Session()
        seen.append((self.settings.connect_timeout, self.settings.read_timeout))
        raise SeedanceConnectionError("no answer")

    monkeypatch.setattr(SeedanceHook, "get_status", get_status)
    with pytest.raises(SeedanceConnectionError):
        callback_receiver._read_status("c", checked, "t-1")
    assert seen == [(callback_receiver.STATUS_CONNECT_TIMEOUT, callback_receiver.STATUS_READ_TIMEOUT)]
    assert closed == [True]
