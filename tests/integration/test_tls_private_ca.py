"""A service behind a private CA (or a TLS-inspecting proxy), over real HTTPS.

The emulator process serves HTTPS with a certificate signed by a throw-away CA. The money
rule under test: the side that pays (the sync generate POST) and the side that waits (the
async status reads of a deferred wait, as the triggerer runs them) trust the same CA, so
either both work or the POST fails first, before anything is charged, with a TLS message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from airflow_provider_seedance.emulator.testing import EmulatorProcess
from airflow_provider_seedance.exceptions import CreationState, SeedanceConnectionError
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.triggers.seedance import SeedanceStatusTrigger
from tests.conftest import API_KEY, connection_json
from tests.tls_certs import PrivateCA, make_private_ca

pytestmark = pytest.mark.integration

CONN_ID = "seedance_tls"


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> PrivateCA:
    return make_private_ca(tmp_path_factory.mktemp("private-ca"))


@pytest.fixture(scope="module")
def https_emulator(private_ca: PrivateCA) -> Iterator[EmulatorProcess]:
    with EmulatorProcess(
        api_keys={API_KEY: 1_000},
        generation_seconds=0.5,
        ssl_certfile=private_ca.server_cert,
        ssl_keyfile=private_ca.server_key,
        ssl_cafile=private_ca.ca_file,
    ) as emu:
        yield emu


@pytest.fixture
def emulator_tls(https_emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> EmulatorProcess:
    """The HTTPS emulator, reset; no CA bundle in the environment (the machine's is removed)."""
    https_emulator.reset()
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    return https_emulator


def use_connection(monkeypatch: pytest.MonkeyPatch, base_url: str, **extra: object) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", connection_json(base_url, **extra))


def charged(emulator: EmulatorProcess) -> int:
    return int(emulator.ledger()["accounts"][API_KEY]["charged"])


async def deferred_wait(task_id: str) -> list[dict]:
    """The deferred wait as the triggerer runs it: the trigger's async status reads."""
    trigger = SeedanceStatusTrigger(task_id, CONN_ID, poll_interval=0.2, max_outage=1.0)
    trigger.task_instance = SimpleNamespace(task_id="t", dag_id="d", run_id="r", map_index=-1)
    return [event.payload async for event in trigger.run()]


def test_with_the_ca_in_requests_ca_bundle_the_paid_post_and_the_deferred_wait_both_work(
    emulator_tls: EmulatorProcess, private_ca: PrivateCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert emulator_tls.base_url.startswith("https://")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(private_ca.ca_file))
    use_connection(monkeypatch, emulator_tls.base_url)

    task_id = SeedanceHook(CONN_ID).submit("a fox in snow", duration=4, resolution="480p")
    events = asyncio.run(deferred_wait(task_id))

    assert [event["status"] for event in events] == ["success"], events
    assert events[0]["task"]["task_id"] == task_id
    assert emulator_tls.ledger()["generate_requests"] == 1 and charged(emulator_tls) > 0


def test_with_the_ca_in_the_connections_verify_extra_both_sides_use_it(
    emulator_tls: EmulatorProcess, private_ca: PrivateCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_connection(monkeypatch, emulator_tls.base_url, verify=str(private_ca.ca_file))

    task_id = SeedanceHook(CONN_ID).submit("a fox in snow", duration=4, resolution="480p")

    assert [event["status"] for event in asyncio.run(deferred_wait(task_id))] == ["success"]


def test_without_the_ca_the_post_fails_before_paying_and_says_it_is_a_certificate_problem(
    emulator_tls: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_connection(monkeypatch, emulator_tls.base_url)

    with pytest.raises(SeedanceConnectionError) as posted:
        SeedanceHook(CONN_ID, retry_min_wait=0.0, retry_max_wait=0.0).submit(
            "a fox", duration=4, resolution="480p"
        )

    text = str(posted.value)
    assert posted.value.creation is CreationState.NOT_SENT
    assert "TLS certificate was not accepted" in text and "nothing was sent and nothing was spent" in text
    assert "checked against certifi's CA bundle" in text and "REQUESTS_CA_BUNDLE" in text
    assert emulator_tls.ledger()["generate_requests"] == 0 and charged(emulator_tls) == 0


def test_without_the_ca_the_async_status_read_names_the_certificate_not_a_refusal(
    emulator_tls: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_connection(monkeypatch, emulator_tls.base_url)

    async def read() -> BaseException:
        with pytest.raises(SeedanceConnectionError) as caught:
            await SeedanceHook(CONN_ID).aget_status("any-task", attempts=1)
        return caught.value

    text = str(asyncio.run(read()))
    assert "TLS certificate was not accepted" in text and "Reading a status spends nothing" in text
    assert "Set the connection's extra 'verify' (or REQUESTS_CA_BUNDLE)" in text
    assert "refused" not in text


def test_verify_false_turns_checks_off_for_the_post_and_the_wait_alike(
    emulator_tls: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_connection(monkeypatch, emulator_tls.base_url, verify=False)

    with pytest.warns(Warning, match="Unverified HTTPS request"):  # urllib3 says so on each request
        task_id = SeedanceHook(CONN_ID).submit("a fox", duration=4, resolution="480p")

    assert [event["status"] for event in asyncio.run(deferred_wait(task_id))] == ["success"]


def test_the_emulator_serves_https_only_with_both_files_readable(tmp_path: Path) -> None:
    emulator = EmulatorProcess(ssl_certfile=tmp_path / "missing.pem", startup_timeout=20)
    with pytest.raises(Exception, match="exited with code 1"):
        emulator.start()
