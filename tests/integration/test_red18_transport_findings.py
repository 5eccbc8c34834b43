# ruff: noqa: F811  (fixtures imported from test_tls_private_ca are used by name)
"""Red team #18: configurations where the generate POST is paid but a later step of the same
task cannot work, for a reason knowable before paying (real emulator processes, real HTTP).

Each test names the rule it protects (each failed before the fix):

* the video download (delivery) uses the same TLS trust as the POST and the status reads
  (extra ``verify`` / ``cert``), and the connection's proxy;
* the async status reads follow the connection's ``trust_env: false`` as the sync POST does
  (no environment proxy on one side only);
* a proxy scheme the async side cannot use (``socks5://``) is refused before the POST.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from airflow_provider_seedance.emulator.testing import EmulatorProcess
from airflow_provider_seedance.exceptions import (
    SeedanceConfigurationError,
    SeedanceDownloadError,
    SeedanceError,
)
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.triggers.seedance import SeedanceStatusTrigger
from tests.conftest import API_KEY
from tests.integration.test_tls_private_ca import (  # noqa: F401 -- fixtures used by name
    CONN_ID,
    charged,
    emulator_tls,
    https_emulator,
    private_ca,
    use_connection,
)
from tests.tls_certs import PrivateCA

pytestmark = pytest.mark.integration

#: A proxy nobody listens on (the discard port): any request routed through it fails.
DEAD_PROXY = "http://127.0.0.1:9"


async def _deferred_wait(task_id: str) -> list[dict]:
    trigger = SeedanceStatusTrigger(task_id, CONN_ID, poll_interval=0.2, max_outage=1.0)
    trigger.task_instance = SimpleNamespace(task_id="t", dag_id="d", run_id="r", map_index=-1)
    return [event.payload async for event in trigger.run()]


def test_the_download_trusts_the_ca_of_the_connections_verify_extra_like_the_paid_post(
    emulator_tls: EmulatorProcess, private_ca: PrivateCA, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    # docs/connection.md: behind a private CA / TLS-inspecting proxy, set the extra 'verify'.
    use_connection(monkeypatch, emulator_tls.base_url, verify=str(private_ca.ca_file))
    hook = SeedanceHook(CONN_ID, retry_min_wait=0.0, retry_max_wait=0.0)
    task = hook.wait_for_completion(
        hook.submit("a fox in snow", duration=4, resolution="480p"), poll_interval=0.2, timeout=60
    )
    assert task.is_success and charged(emulator_tls) > 0  # paid

    # Before the fix: SeedanceDownloadError "could not fetch https://…: SSLError" after 4 attempts —
    # the download uses a bare requests.Session, not the connection's TLS decision.
    delivered = hook.download(task, tmp_path / "fox.mp4")

    assert delivered.bytes > 0


def test_the_download_follows_the_connections_verify_false_like_the_paid_post(
    emulator_tls: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    use_connection(monkeypatch, emulator_tls.base_url, verify=False)
    hook = SeedanceHook(CONN_ID, retry_min_wait=0.0, retry_max_wait=0.0)
    task = hook.wait_for_completion(
        hook.submit("a fox in snow", duration=4, resolution="480p"), poll_interval=0.2, timeout=60
    )
    assert task.is_success and charged(emulator_tls) > 0

    delivered = hook.download(task, tmp_path / "fox.mp4")

    assert delivered.bytes > 0


def test_the_download_goes_through_the_connections_proxy_extra(
    emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    # The connection's proxy carries the POST and the status reads; the download must take it
    # too (a network that needs the proxy has no direct route). Here the proxy is dead: a
    # download that uses it fails. Before the fix it went direct and succeeds: the proxy is ignored.
    hook = SeedanceHook(retry_min_wait=0.0, retry_max_wait=0.0)
    task = hook.wait_for_completion(
        hook.submit("a fox in snow", duration=4, resolution="480p"), poll_interval=0.2, timeout=60
    )
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEFAULT", _conn(emulator.base_url, proxy=DEAD_PROXY))
    proxied = SeedanceHook(retry_min_wait=0.0, retry_max_wait=0.0)

    with pytest.raises(SeedanceDownloadError):
        proxied.download(task, tmp_path / "fox.mp4")


def test_trust_env_false_keeps_the_status_reads_off_the_environments_proxy_like_the_paid_post(
    emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A user whose environment has a proxy that cannot reach the service bypasses it with the
    # extra trust_env: false (HttpHook's extra): requests then ignores HTTP(S)_PROXY.
    monkeypatch.setenv("HTTP_PROXY", DEAD_PROXY)
    monkeypatch.setenv("HTTPS_PROXY", DEAD_PROXY)
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", _conn(emulator.base_url, trust_env=False))

    task_id = SeedanceHook(CONN_ID).submit("a fox in snow", duration=4, resolution="480p")
    assert emulator.ledger()["generate_requests"] == 1  # the POST went direct: paid

    # Before the fix: every status read goes to the dead environment proxy ("the proxy could not be
    # reached"), the wait fails, the paid video is never delivered.
    events = asyncio.run(_deferred_wait(task_id))

    assert [event["status"] for event in events] == ["success"], events


def test_a_proxy_the_status_reads_cannot_use_is_refused_before_the_post(
    emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests sends through socks5:// (PySocks installed, as requests[socks]); aiohttp cannot:
    # it speaks HTTP to the SOCKS port, every status read "dropped before an answer".
    # A working SOCKS proxy therefore means paid and never waited for; knowable before paying.
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN_ID.upper()}", _conn(emulator.base_url, proxy="socks5://127.0.0.1:1080")
    )

    with pytest.raises(SeedanceConfigurationError):
        SeedanceHook(CONN_ID, retry_min_wait=0.0, retry_max_wait=0.0).submit(
            "a fox in snow", duration=4, resolution="480p"
        )


def _conn(base_url: str, **extra: object) -> str:
    return json.dumps({"conn_type": "seedance", "host": base_url, "password": API_KEY, "extra": extra})


class _ProxyAuthRequired(BaseHTTPRequestHandler):
    """A corporate proxy that wants credentials: 407 to everything (CONNECT included)."""

    def _answer(self) -> None:
        body = b"<html><body>Proxy Authentication Required</body></html>"
        self.send_response(407)
        self.send_header("Proxy-Authenticate", 'Basic realm="corp"')
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET = do_CONNECT = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def auth_proxy() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyAuthRequired)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_proxy_asking_for_credentials_is_named_not_blamed_on_the_service_http_base_url(
    emulator: EmulatorProcess, auth_proxy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", _conn(emulator.base_url, proxy=auth_proxy))

    with pytest.raises(SeedanceError) as raised:
        SeedanceHook(CONN_ID, retry_min_wait=0.0, retry_max_wait=0.0).submit(
            "a fox", duration=4, resolution="480p"
        )

    # Before the fix: "Seedance API error 407 HTTP_ERROR … The service refused the generate request …
    # fix what the service names" — the service never saw it; the proxy wants credentials.
    text = str(raised.value)
    assert "proxy" in text.lower() and "service refused" not in text, text
    assert emulator.ledger()["generate_requests"] == 0


def test_a_proxy_asking_for_credentials_is_not_reported_as_unreachable_https_base_url(
    emulator_tls: EmulatorProcess, private_ca: PrivateCA, auth_proxy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_connection(monkeypatch, emulator_tls.base_url, verify=str(private_ca.ca_file), proxy=auth_proxy)

    with pytest.raises(SeedanceError) as raised:
        SeedanceHook(CONN_ID, retry_min_wait=0.0, retry_max_wait=0.0).submit(
            "a fox", duration=4, resolution="480p"
        )

    # Before the fix: "(the proxy could not be reached) … check the connection's base URL … and that the
    # service is running" — the proxy answered (407 to CONNECT): its credentials are the fix.
    text = str(raised.value)
    assert "could not be reached" not in text and "407" in text, text
