"""The status-read rate cap (connection extra ``status_reads_per_second``, hooks/rate_cap.py):
validated before anything is sent, off by default, one bucket per (event loop, connection).

That the cap holds for real reads sent to the emulator is in
tests/integration/test_status_rate_cap.py.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import pytest
from airflow.sdk import Connection

from airflow_provider_seedance.exceptions import SeedanceConfigurationError
from airflow_provider_seedance.hooks.rate_cap import STATUS_READ_CAPS, parse_status_rate
from airflow_provider_seedance.hooks.seedance import ConnectionSettings, SeedanceHook

#: Nothing listens here: a request sent to it fails with a connection error, not a config error.
NOWHERE = "http://127.0.0.1:9"


def _settings(**extra: object) -> ConnectionSettings:
    conn = Connection(conn_id="c", conn_type="seedance", host="http://h", password="sk-key-123")
    return ConnectionSettings.from_connection(conn, extra)


def _define(monkeypatch: pytest.MonkeyPatch, conn_id: str, **extra: Any) -> None:
    conn = {"conn_type": "seedance", "host": NOWHERE, "password": "sk-key-123", "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


@pytest.mark.parametrize(("value", "rate"), [(200, 200.0), ("200", 200.0), (0.5, 0.5), ("2.5", 2.5)])
def test_a_positive_rate_is_read_from_the_extra(value: object, rate: float) -> None:
    assert _settings(status_reads_per_second=value).status_reads_per_second == rate


@pytest.mark.parametrize("extra", [{}, {"status_reads_per_second": None}, {"status_reads_per_second": ""}])
def test_no_cap_unless_the_extra_sets_one(extra: dict[str, object]) -> None:
    assert _settings(**extra).status_reads_per_second is None


@pytest.mark.parametrize("value", [0, -5, "0", "fast", True, math.nan, math.inf, "inf", [10], {"rate": 1}])
def test_a_bad_rate_names_the_connection_field_value_and_what_is_allowed(value: object) -> None:
    with pytest.raises(SeedanceConfigurationError) as raised:
        _settings(status_reads_per_second=value)
    text = str(raised.value)
    assert "'c'" in text and "'status_reads_per_second'" in text
    assert repr(value) in text and "> 0" in text and "no cap" in text


def test_parse_names_the_connection_it_was_given() -> None:
    with pytest.raises(SeedanceConfigurationError, match="Connection 'video_api'"):
        parse_status_rate("video_api", -1)


def test_a_bad_rate_fails_an_async_read_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sent, the read would fail to connect (nothing listens at NOWHERE); it fails on the extra."""
    _define(monkeypatch, "capped_bad", status_reads_per_second="lots")

    async def read() -> None:
        await SeedanceHook("capped_bad").aget_status("t-1")

    with pytest.raises(SeedanceConfigurationError, match="status_reads_per_second"):
        asyncio.run(read())


def test_a_bad_rate_fails_a_submit_before_the_post(monkeypatch: pytest.MonkeyPatch) -> None:
    _define(monkeypatch, "capped_bad", status_reads_per_second=0)
    with pytest.raises(SeedanceConfigurationError, match="status_reads_per_second"):
        SeedanceHook("capped_bad").submit("a fox", resolution="480p", duration=4)


def test_hooks_of_one_connection_on_one_loop_share_one_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    _define(monkeypatch, "capped_a", status_reads_per_second=50)
    _define(monkeypatch, "capped_b", status_reads_per_second=50)

    async def buckets() -> tuple[Any, Any, Any]:
        async with (
            SeedanceHook("capped_a") as one,
            SeedanceHook("capped_a") as two,
            SeedanceHook("capped_b") as other,
        ):
            return one._aio_cap, two._aio_cap, other._aio_cap

    one, two, other = asyncio.run(buckets())
    assert one is not None and one is two  # every trigger of the connection takes from it
    assert other is not None and other is not one  # another connection has its own cap


def test_the_cap_is_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    _define(monkeypatch, "uncapped")

    async def bucket() -> Any:
        async with SeedanceHook("uncapped") as hook:
            return hook._aio_cap

    assert asyncio.run(bucket()) is None


def test_a_bucket_does_not_leave_its_event_loop() -> None:
    async def bucket() -> Any:
        return STATUS_READ_CAPS.bucket("c", 10.0)

    first, second = asyncio.run(bucket()), asyncio.run(bucket())
    assert first is not None and second is not None and first is not second


def test_a_new_rate_gets_a_new_bucket_and_no_rate_none() -> None:
    async def scenario() -> None:
        ten = STATUS_READ_CAPS.bucket("c", 10.0)
        assert STATUS_READ_CAPS.bucket("c", 10.0) is ten
        twenty = STATUS_READ_CAPS.bucket("c", 20.0)
        assert twenty is not None and twenty is not ten
        assert STATUS_READ_CAPS.bucket("c", None) is None
        assert STATUS_READ_CAPS.bucket("c", 20.0) is not twenty  # the cap was dropped, not kept

    asyncio.run(scenario())


def test_the_bucket_has_no_burst_so_a_second_read_waits() -> None:
    """One token, refilled every 1/rate s: no one-second window can hold more than the cap."""

    async def scenario() -> tuple[bool, bool, float]:
        bucket = STATUS_READ_CAPS.bucket("c", 4.0)
        assert bucket is not None
        before = bucket.has_capacity()
        await bucket.acquire()
        return before, bucket.has_capacity(), bucket.time_period / bucket.max_rate

    free, after_one, seconds_per_token = asyncio.run(scenario())
    assert free and not after_one
    assert seconds_per_token == pytest.approx(0.25)
