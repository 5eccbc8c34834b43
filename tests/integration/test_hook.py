"""SeedanceHook against the emulator started as a real process (HTTP on loopback)."""

from __future__ import annotations

import asyncio
import http.server
import json
import re
import threading
import urllib.error
import urllib.request

import pytest

from airflow_provider_seedance.exceptions import (
    CreationState,
    SeedanceAuthError,
    SeedanceBadRequestError,
    SeedanceConfigurationError,
    SeedanceConnectionError,
    SeedanceInsufficientCreditsError,
    SeedanceResponseError,
    SeedanceServerError,
    SeedanceSubmissionUncertainError,
    SeedanceTaskNotFoundError,
    SeedanceTimeoutError,
    SeedanceValidationError,
    never_created,
)
from airflow_provider_seedance.hooks.seedance import USER_AGENT, SeedanceHook
from airflow_provider_seedance.models import estimate_credits
from tests.conftest import API_KEY, OTHER_KEY, connection_json

pytestmark = pytest.mark.integration


def fast_hook(conn_id: str = "seedance_default") -> SeedanceHook:
    return SeedanceHook(conn_id, status_retries=4, retry_min_wait=0.05, retry_max_wait=0.2)


def test_text_to_video_end_to_end(emulator) -> None:
    hook = fast_hook()
    task_id = hook.submit(
        "A cinematic shot of mountains at sunrise", aspect_ratio="16:9", resolution="720p", duration=8
    )
    task = hook.wait_for_completion(task_id, poll_interval=0.2, timeout=30)
    assert task.is_success and task.video_url and task.video_url.endswith(".mp4")
    assert task.consumed_credits == estimate_credits("720p", "8", False) == 28
    assert task.request == {
        "prompt": "A cinematic shot of mountains at sunrise",
        "aspect_ratio": "16:9",
        "resolution": "720p",
        "duration": "8",
    }
    ledger = emulator.ledger()
    assert ledger["generate_requests"] == 1
    assert ledger["accounts"][API_KEY]["charged"] == 28


def test_image_to_video_end_to_end(emulator) -> None:
    hook = fast_hook()
    task_id = hook.submit(
        "The product turns slowly",
        image_urls=["https://example.com/p.jpg"],
        resolution="480p",
        duration="4",
        generate_audio=True,
        fixed_lens=True,
    )
    task = hook.wait_for_completion(task_id, poll_interval=0.2, timeout=30)
    assert task.is_success
    assert task.request["image_urls"] == ["https://example.com/p.jpg"]
    assert task.request["generate_audio"] is True and task.request["fixed_lens"] is True
    assert task.consumed_credits == 14


def test_only_set_fields_are_sent(emulator) -> None:
    hook = fast_hook()
    task_id = hook.submit("just a prompt")
    [record] = [t for t in emulator.tasks() if t["task_id"] == task_id]
    assert record["request"] == {"prompt": "just a prompt"}


def test_bad_input_never_reaches_the_server(emulator) -> None:
    hook = fast_hook()
    with pytest.raises(SeedanceValidationError, match="aspect_ratio"):
        hook.submit("p", aspect_ratio="5:4")
    with pytest.raises(SeedanceValidationError, match="duration"):
        hook.submit("p", duration=5)
    assert emulator.ledger()["generate_requests"] == 0


def test_user_agent_names_provider_and_airflow() -> None:
    assert USER_AGENT.startswith("airflow-provider-seedance/") and "apache-airflow/3." in USER_AGENT


def test_status_retried_on_500_429_drop_and_malformed(emulator) -> None:
    hook = fast_hook()
    task_id = hook.submit("p")
    emulator.add_faults(
        {"endpoint": "status", "fault": "http_500", "times": 1},
        {"endpoint": "status", "fault": "http_429", "times": 1, "retry_after": 0},
        {"endpoint": "status", "fault": "drop", "times": 1},
    )
    before = emulator.ledger()["status_requests"]
    task = hook.get_status(task_id)
    assert task.task_id == task_id
    assert emulator.ledger()["status_requests"] - before == 4  # three faults, then the answer


def test_status_gives_up_after_bounded_attempts(emulator) -> None:
    hook = fast_hook()
    task_id = hook.submit("p")
    emulator.add_faults({"endpoint": "status", "fault": "http_500", "times": 100})
    before = emulator.ledger()["status_requests"]
    with pytest.raises(SeedanceServerError):
        hook.get_status(task_id)
    assert emulator.ledger()["status_requests"] - before == 4


def test_async_status_gives_up_after_the_same_bounded_attempts_and_counts_them(emulator, capfd) -> None:
    """The trigger's read: the fast first attempt and tenacity's retries are one budget."""
    hook = fast_hook()
    task_id = hook.submit("p")
    emulator.add_faults({"endpoint": "status", "fault": "http_500", "times": 100})
    before = emulator.ledger()["status_requests"]
    capfd.readouterr()
    with pytest.raises(SeedanceServerError):
        asyncio.run(hook.aget_status(task_id))
    assert emulator.ledger()["status_requests"] - before == hook.status_retries == 4
    out = capfd.readouterr()
    logged = re.findall(r"status read failed \(attempt (\d) of (\d)\)", out.out + out.err)
    assert logged == [("1", "4"), ("2", "4"), ("3", "4")]


def test_malformed_status_answer_is_a_typed_error(emulator) -> None:
    hook = SeedanceHook(status_retries=1)
    task_id = hook.submit("p")
    emulator.add_faults({"endpoint": "status", "fault": "malformed", "times": 1})
    with pytest.raises(SeedanceResponseError, match="MALFORMED_RESPONSE"):
        hook.get_status(task_id)


def test_retry_after_is_honoured(emulator) -> None:
    import time

    hook = fast_hook()
    task_id = hook.submit("p")
    emulator.add_faults({"endpoint": "status", "fault": "http_429", "times": 1, "retry_after": 1})
    started = time.monotonic()
    hook.get_status(task_id)
    assert time.monotonic() - started >= 1.0


@pytest.mark.parametrize("fault", ["http_500", "drop", "malformed"])
def test_generate_is_never_replayed_after_an_ambiguous_failure(emulator, fault: str) -> None:
    hook = fast_hook()
    emulator.add_faults({"endpoint": "generate", "fault": fault, "times": 1})
    with pytest.raises(SeedanceSubmissionUncertainError, match="may exist"):
        hook.submit("p")
    assert emulator.ledger()["generate_requests"] == 1


def test_generate_is_never_replayed_after_a_read_timeout(emulator, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_SLOW", connection_json(emulator.base_url, timeout=1))
    emulator.add_faults({"endpoint": "generate", "fault": "slow", "times": 1, "delay": 3})
    with pytest.raises(SeedanceSubmissionUncertainError, match="may exist"):
        SeedanceHook("seedance_slow").submit("p")
    assert emulator.ledger()["generate_requests"] == 1


def test_generate_retried_only_when_the_server_was_never_reached(monkeypatch) -> None:
    # Port 9 (discard) is closed on loopback: connection refused, provably never sent.
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEAD", connection_json("http://127.0.0.1:9"))
    monkeypatch.setattr("airflow_provider_seedance.hooks.seedance.time.sleep", lambda s: None)
    with pytest.raises(SeedanceConnectionError) as info:
        SeedanceHook("seedance_dead").submit("p")
    assert info.value.sent is False


def test_typed_errors_for_auth_credits_and_unknown_task(emulator, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_BAD", connection_json(emulator.base_url, api_key="sk-wrong"))
    with pytest.raises(SeedanceAuthError) as auth:
        SeedanceHook("seedance_bad").submit("p")
    assert auth.value.status_code == 401 and auth.value.error_code == "INVALID_API_KEY"
    with pytest.raises(SeedanceTaskNotFoundError):
        fast_hook().get_status("seed-does-not-exist")
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_POOR", connection_json(emulator.base_url, api_key=OTHER_KEY))
    poor = SeedanceHook("seedance_poor")
    for _ in range(1000 // 84):
        poor.submit("p", resolution="720p", duration="12", generate_audio=True)
    with pytest.raises(SeedanceInsufficientCreditsError) as credits:
        poor.submit("p", resolution="720p", duration="12", generate_audio=True)
    assert credits.value.status_code == 402


def test_tasks_are_scoped_per_key(emulator, monkeypatch) -> None:
    task_id = fast_hook().submit("mine")
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_OTHER", connection_json(emulator.base_url, api_key=OTHER_KEY))
    with pytest.raises(SeedanceTaskNotFoundError):
        SeedanceHook("seedance_other").get_status(task_id)


def test_wait_for_completion_times_out_with_the_task_id(emulator) -> None:
    hook = fast_hook()
    task_id = hook.submit("p")
    with pytest.raises(SeedanceTimeoutError) as info:
        hook.wait_for_completion(task_id, poll_interval=0.1, timeout=0.3)
    assert info.value.task_id == task_id and task_id in str(info.value)


def test_failed_generation_is_returned_not_raised_by_the_hook(emulator) -> None:
    emulator.add_faults({"endpoint": "outcome", "fault": "failed", "times": 1, "error_message": "moderation"})
    hook = fast_hook()
    task = hook.wait_for_completion(hook.submit("p"), poll_interval=0.2, timeout=30)
    assert task.is_failed and task.error_message == "moderation"
    account = emulator.ledger()["accounts"][API_KEY]
    assert account["charged"] == 28 and account["refunded"] == 28


def test_async_status_reuses_one_session(emulator) -> None:
    hook = fast_hook()
    task_id = hook.submit("p")

    async def poll() -> list[str]:
        statuses = []
        async with hook:
            session = hook._aio_session
            for _ in range(3):
                statuses.append((await hook.aget_status(task_id)).status)
                assert hook._aio_session is session
        assert hook._aio_session is None
        return statuses

    statuses = asyncio.run(poll())
    assert set(statuses) <= {"IN_PROGRESS", "SUCCESS"}


def test_hooks_on_one_event_loop_share_one_session(emulator) -> None:
    """Thousands of triggers in one triggerer share one connection pool per connection."""
    task_id = fast_hook().submit("p")
    hooks = [fast_hook() for _ in range(5)]

    async def poll_all() -> tuple[set[int], int]:
        for hook in hooks:
            await hook.__aenter__()
        sessions = {id(hook._aio_session) for hook in hooks}
        await asyncio.gather(*(hook.aget_status(task_id) for hook in hooks))
        for hook in hooks:
            await hook.__aexit__(None, None, None)
        return sessions, sum(1 for hook in hooks if hook._aio_session is not None)

    sessions, still_open = asyncio.run(poll_all())
    assert len(sessions) == 1 and still_open == 0


def test_async_status_retries_transient_failures(emulator) -> None:
    hook = fast_hook()
    task_id = hook.submit("p")
    emulator.add_faults(
        {"endpoint": "status", "fault": "http_500", "times": 1},
        {"endpoint": "status", "fault": "drop", "times": 1},
    )
    task = asyncio.run(hook.aget_status(task_id))
    assert task.task_id == task_id


def test_connection_test_is_credit_free(emulator, monkeypatch) -> None:
    ok, message = SeedanceHook().test_connection()
    assert ok and "API key accepted" in message
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_BAD", connection_json(emulator.base_url, api_key="sk-wrong"))
    ok, message = SeedanceHook("seedance_bad").test_connection()
    assert not ok and "INVALID_API_KEY" in message
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEAD", connection_json("http://127.0.0.1:9"))
    ok, message = SeedanceHook("seedance_dead").test_connection()
    assert not ok and "no answer" in message
    assert emulator.ledger()["generate_requests"] == 0


@pytest.mark.parametrize(
    ("conn", "message"),
    [
        ({"conn_type": "seedance", "host": "http://127.0.0.1:1"}, "has no API key"),
        ({"conn_type": "seedance", "host": "seedanceapi.org", "password": "k"}, "has no scheme"),
        ({"conn_type": "seedance", "host": "ftp://x", "password": "k"}, "not an http"),
        (
            {"conn_type": "seedance", "host": "https://x", "password": "k", "extra": {"timeout": "soon"}},
            "timeout",
        ),
    ],
)
def test_unusable_connection_is_a_clear_error(monkeypatch, conn: dict, message: str) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_ODD", json.dumps(conn))
    with pytest.raises(SeedanceConfigurationError, match=message):
        SeedanceHook("seedance_odd").submit("p")


def test_base_url_written_like_the_guide_with_v1_works(emulator, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_V1", connection_json(emulator.base_url + "/v1"))
    assert SeedanceHook("seedance_v1").submit("p")


def test_api_key_is_in_no_error_or_repr(emulator, monkeypatch) -> None:
    hook = fast_hook()
    assert API_KEY not in repr(hook.settings)
    emulator.add_faults({"endpoint": "generate", "fault": "http_500", "times": 1})
    with pytest.raises(Exception) as info:
        hook.submit("p")
    assert API_KEY not in str(info.value) and API_KEY not in repr(info.value)


# ----------------------------------------------------------------------------- local HTTP helpers
class _Relay(http.server.ThreadingHTTPServer):
    """A loopback HTTP server in front of the emulator, acting as a forward proxy (absolute
    request URIs) or as a gateway (relative ones). It records what it was asked, forwards to
    the emulator, and can replace the answer (a gateway that got overloaded after the
    back end had already acted)."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _RelayHandler)
        self.upstream = upstream
        #: (method, absolute URL asked for, Proxy-Authorization header)
        self.seen: list[tuple[str, str, str | None]] = []
        #: (status, body) to answer instead of the emulator's answer, per method
        self.replace: dict[str, tuple[int, bytes]] = {}
        #: bytes of an endless status body written before the client hung up
        self.endless_written: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> _Relay:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _RelayHandler(http.server.BaseHTTPRequestHandler):
    server: _Relay

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _relay(self) -> None:
        relay = self.server
        target = self.path if "://" in self.path else relay.upstream + self.path
        relay.seen.append((self.command, target, self.headers.get("Proxy-Authorization")))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if relay.endless_written is not None and self.command == "GET":
            self._endless()
            return
        skip = {"host", "proxy-authorization", "proxy-connection", "connection", "content-length"}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
        request = urllib.request.Request(target, data=body, method=self.command, headers=headers)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=10) as answer:
                status, data = answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            status, data = exc.code, exc.read()
        status, data = relay.replace.get(self.command, (status, data))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _endless(self) -> None:
        """A 200 MiB status body without a length: the client must stop reading on its own."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Connection", "close")
        self.end_headers()
        chunk = b'{"code": 200, "data": {"pad": "' + b"x" * (1024 * 1024)
        try:
            for _ in range(200):
                self.wfile.write(chunk)
                self.server.endless_written = (self.server.endless_written or 0) + len(chunk)
        except OSError:  # the client hung up: what we want
            pass

    do_GET = do_POST = _relay


def _envelope(status: int, message: str) -> bytes:
    return json.dumps({"code": status, "message": message, "data": None}).encode()


NOISE = ("HTTPConnectionPool", "Max retries exceeded", "urllib3", "NewConnectionError", "Errno")


# ----------------------------------------------------------------------------- POST rule, end to end
@pytest.mark.parametrize("status", [500, 502, 503, 504])
@pytest.mark.parametrize(
    "code", ["RATE_LIMITED", "INVALID_API_KEY", "INSUFFICIENT_CREDITS", "TASK_NOT_FOUND"]
)
def test_a_5xx_naming_a_4xx_code_after_the_back_end_charged_is_uncertain_and_sent_once(
    emulator, monkeypatch, status: int, code: str
) -> None:
    """Issue 12 item 1: a gateway answers 5xx with a body naming RATE_LIMITED (etc.) after the
    emulator behind it created and charged a generation. The client must not treat it as a
    refusal: one POST, one charge, an uncertain submission."""
    with _Relay(emulator.base_url) as gateway:
        gateway.replace["POST"] = (status, _envelope(status, f"{code}: back end overloaded"))
        monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_GW", connection_json(gateway.url))
        with pytest.raises(SeedanceSubmissionUncertainError) as info:
            SeedanceHook("seedance_gw").submit("p", resolution="480p", duration=4)
    assert not never_created(info.value) and info.value.creation is CreationState.MAY_EXIST
    assert [method for method, _, _ in gateway.seen] == ["POST"]
    ledger = emulator.ledger()
    assert ledger["generate_requests"] == 1 and ledger["accounts"][API_KEY]["charged"] == 8


@pytest.mark.parametrize("fault", ["http_500", "drop", "malformed"])
def test_each_emulator_post_fault_is_uncertain_after_exactly_one_post(emulator, fault: str) -> None:
    emulator.add_faults({"endpoint": "generate", "fault": fault, "times": 1})
    with pytest.raises(SeedanceSubmissionUncertainError) as info:
        fast_hook().submit("p")
    assert not never_created(info.value)
    assert emulator.ledger()["generate_requests"] == 1
    text = str(info.value)
    # It says what may have happened and the way on, and promises no automatic re-attach
    # (no try knows the lost id).
    assert "may be billed" in text and "NOT sent again" in text and "force_new=True" in text
    assert "re-attaches" not in text and not any(n in text for n in NOISE)


def test_a_refused_post_says_nothing_was_spent_and_may_be_sent_again(emulator, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_BAD", connection_json(emulator.base_url, api_key="sk-wrong"))
    with pytest.raises(SeedanceAuthError) as info:
        SeedanceHook("seedance_bad").submit("p")
    assert never_created(info.value) and info.value.creation is CreationState.REFUSED
    assert "nothing was spent" in str(info.value)
    assert emulator.ledger()["generate_requests"] == 1


def test_unreachable_service_says_nothing_was_sent_and_where_to_look(monkeypatch) -> None:
    """Issue 18 item 4: no transport-library noise, the base URL and the next step."""
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEAD", connection_json("http://127.0.0.1:9"))
    hook = SeedanceHook("seedance_dead", retry_min_wait=0.0, retry_max_wait=0.0)
    with pytest.raises(SeedanceConnectionError) as info:
        hook.submit("p")
    text = str(info.value)
    assert never_created(info.value) and info.value.creation is CreationState.NOT_SENT
    assert "nothing was sent and nothing was spent" in text
    assert "check the connection's base URL http://127.0.0.1:9 and that the service is running" in text
    assert not any(noise in text for noise in NOISE), text
    with pytest.raises(SeedanceConnectionError) as read:
        hook.get_status("seed-1")
    assert "Reading a status spends nothing" in str(read.value)


# ----------------------------------------------------------------------------- URLs and proxies
def test_host_with_a_path_and_a_separate_port_reaches_the_right_url(emulator, monkeypatch) -> None:
    """Issue 12: host=http://h/v1 with port=P must send to http://h:P/v1/..., as the
    server in front of the emulator sees it."""
    with _Relay(emulator.base_url) as gateway:
        port = gateway.server_address[1]
        conn = {"conn_type": "seedance", "host": "http://127.0.0.1/v1", "port": port, "password": API_KEY}
        monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_PORT", json.dumps(conn))
        hook = SeedanceHook("seedance_port")
        task_id = hook.submit("p")
        assert hook.get_status(task_id).task_id == task_id
        assert asyncio.run(hook.aget_status(task_id)).task_id == task_id
    assert [(m, url.split("?")[0]) for m, url, _ in gateway.seen] == [
        ("POST", f"{gateway.upstream}/v1/generate"),
        ("GET", f"{gateway.upstream}/v1/status"),
        ("GET", f"{gateway.upstream}/v1/status"),
    ]
    assert emulator.ledger()["generate_requests"] == 1


def _proxied_urls(proxy: _Relay) -> list[str]:
    return [url.split("?")[0] for _, url, _ in proxy.seen]


def test_connection_proxy_is_used_by_the_sync_and_the_async_path(emulator, monkeypatch) -> None:
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with _Relay(emulator.base_url) as proxy:
        proxy_url = proxy.url.replace("http://", "http://user:pr0xy-pass@")
        monkeypatch.setenv(
            "AIRFLOW_CONN_SEEDANCE_PROXIED", connection_json(emulator.base_url, proxy=proxy_url)
        )
        hook = SeedanceHook("seedance_proxied")
        task_id = hook.submit("p")
        hook.get_status(task_id)
        asyncio.run(hook.aget_status(task_id))
        assert "pr0xy-pass" not in repr(hook.settings) and "pr0xy-pass" not in str(hook.settings)
    base = emulator.base_url
    assert _proxied_urls(proxy) == [f"{base}/v1/generate", f"{base}/v1/status", f"{base}/v1/status"]
    # Both paths send the proxy's credentials from the URL.
    assert all(auth and auth.startswith("Basic ") for _, _, auth in proxy.seen)


def test_environment_proxy_is_honoured_by_both_paths_and_the_connection_proxy_wins(
    emulator, monkeypatch
) -> None:
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with _Relay(emulator.base_url) as env_proxy, _Relay(emulator.base_url) as conn_proxy:
        monkeypatch.setenv("HTTP_PROXY", env_proxy.url)
        monkeypatch.setenv("http_proxy", env_proxy.url)
        hook = SeedanceHook()  # no proxy in the connection: the environment's
        task_id = hook.submit("p")
        asyncio.run(hook.aget_status(task_id))
        monkeypatch.setenv(
            "AIRFLOW_CONN_SEEDANCE_PROXIED", connection_json(emulator.base_url, proxy=conn_proxy.url)
        )
        explicit = SeedanceHook("seedance_proxied")
        explicit.get_status(task_id)
        asyncio.run(explicit.aget_status(task_id))
    assert [m for m, _, _ in env_proxy.seen] == ["POST", "GET"]
    assert [m for m, _, _ in conn_proxy.seen] == ["GET", "GET"]


# ----------------------------------------------------------------------------- bounded status bodies
def test_a_200_mib_status_body_is_not_read_whole_sync_or_async(emulator, monkeypatch) -> None:
    task_id = fast_hook().submit("p")
    with _Relay(emulator.base_url) as gateway:
        monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_HUGE", connection_json(gateway.url))
        hook = SeedanceHook("seedance_huge", status_retries=1)
        for read in (lambda: hook.get_status(task_id), lambda: asyncio.run(hook.aget_status(task_id))):
            gateway.endless_written = 0
            with pytest.raises(SeedanceResponseError, match="too large"):
                read()
            # The client hung up after about MAX_BODY_BYTES; the rest was never sent.
            assert gateway.endless_written < 64 * 1024 * 1024


def test_refused_connection_is_named_refused_not_a_timeout(monkeypatch) -> None:
    """Red-team of issue 18 item 4: urllib3's NewConnectionError is a ConnectTimeoutError
    subclass; a closed port must not read as "timed out connecting" (a firewall hint)."""
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEAD", connection_json("http://127.0.0.1:9"))
    hook = SeedanceHook("seedance_dead", retry_min_wait=0.0, retry_max_wait=0.0)
    with pytest.raises(SeedanceConnectionError) as info:
        hook.submit("p")
    assert "(connection refused)" in str(info.value), str(info.value)


def test_https_to_a_plain_http_service_says_nothing_was_sent(emulator, monkeypatch) -> None:
    """Red-team of issue 18: a newcomer who writes https:// for the (plain HTTP) service fails
    in the TLS handshake, before the request leaves: nothing sent, nothing spent, and a
    retry may send it. It must not read as "may be billed"."""
    base = emulator.base_url.replace("http://", "https://")
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_TLS", connection_json(base))
    hook = SeedanceHook("seedance_tls", retry_min_wait=0.0, retry_max_wait=0.0)
    with pytest.raises(SeedanceConnectionError) as info:
        hook.submit("p")
    text = str(info.value)
    assert never_created(info.value) and info.value.creation is CreationState.NOT_SENT, text
    assert "nothing was sent and nothing was spent" in text and "check the connection's base URL" in text
    assert emulator.ledger()["accounts"][API_KEY]["tasks"] == 0


@pytest.mark.parametrize(
    ("key", "suffix", "error", "next_step"),
    [
        ("sk-wrong-S3CRET", "", SeedanceAuthError, "check the API key in the connection's password field"),
        (OTHER_KEY, "", SeedanceInsufficientCreditsError, "top up the account's credits"),
        (API_KEY, "/not-the-api-root", SeedanceBadRequestError, "check the connection's base URL"),
    ],
    ids=["401", "402", "404-base-url"],
)
def test_a_refused_generate_request_says_what_to_do_next(
    emulator, monkeypatch, key: str, suffix: str, error: type, next_step: str
) -> None:
    """Red-team of issue 18: a refusal says nothing was spent *and* the next step, no key."""
    conn = connection_json(emulator.base_url + suffix, api_key=key)
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_REFUSED", conn)
    duration = "12" if key == OTHER_KEY else "4"
    with pytest.raises(error) as info:
        for _ in range(20):  # OTHER_KEY holds 1,000 credits: 12 videos of 84, then 402
            hook = SeedanceHook("seedance_refused")
            hook.submit("p", resolution="720p", duration=duration, generate_audio=True)
    text = str(info.value)
    assert "nothing was created and nothing was spent" in text, text
    assert next_step in text, text
    assert key not in text and "S3CRET" not in text
