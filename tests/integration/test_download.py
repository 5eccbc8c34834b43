"""Delivery against real HTTP servers: streaming, verified, atomic, only videos, only where allowed."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Callable, Iterator
from typing import Any

import fsspec
import pytest
import requests
from airflow.sdk import ObjectStoragePath
from airflow.sdk.io import attach

from airflow_provider_seedance.exceptions import (
    SeedanceConfigurationError,
    SeedanceDownloadError,
    SeedanceNotAVideoError,
    SeedanceVideoExpiredError,
    SeedanceVideoTooLargeError,
    SeedanceVideoURLRefusedError,
)
from airflow_provider_seedance.hooks.delivery import download_video, existing_video
from airflow_provider_seedance.hooks.retry import RetryPolicy
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from tests.conftest import connection_json

pytestmark = pytest.mark.integration


def hook() -> SeedanceHook:
    return SeedanceHook(status_retries=3, retry_min_wait=0.01, retry_max_wait=0.05)


@pytest.fixture
def finished(emulator):
    h = hook()
    return h.wait_for_completion(
        h.submit("p", aspect_ratio="16:9", resolution="480p"), poll_interval=0.2, timeout=20
    )


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_download_matches_the_bytes_served(finished, tmp_path) -> None:
    served = requests.get(finished.video_url, timeout=10).content
    result = hook().download(finished, tmp_path / "out" / "video.mp4")
    written = (tmp_path / "out" / "video.mp4").read_bytes()
    assert written == served and written[4:8] == b"ftyp"
    assert result.bytes == len(served) and result.sha256 == hashlib.sha256(served).hexdigest()
    assert leftovers(tmp_path / "out") == ["video.mp4"]  # no temporary file left behind


def test_download_accepts_a_plain_url_and_an_object_storage_path(finished, tmp_path) -> None:
    target = ObjectStoragePath(f"file://{tmp_path}/a/b.mp4")
    result = hook().download(finished.video_url, target)
    assert target.exists() and result.output_path.endswith("/a/b.mp4")


def test_download_into_an_in_memory_filesystem(finished) -> None:
    attach("memory", fs=fsspec.filesystem("memory"))
    target = ObjectStoragePath("memory://bucket/videos/x.mp4")
    result = hook().download(finished, target)
    assert target.exists() and target.read_bytes()[4:8] == b"ftyp"
    assert existing_video(target) is not None and existing_video(target).sha256 == result.sha256


def test_interrupted_transfer_is_retried_and_leaves_no_partial_file(emulator, finished, tmp_path) -> None:
    emulator.add_faults({"endpoint": "video", "fault": "drop", "times": 1})
    before = emulator.ledger()["video_requests"]
    result = hook().download(finished, tmp_path / "v.mp4")
    assert emulator.ledger()["video_requests"] - before == 2
    assert result.bytes == (tmp_path / "v.mp4").stat().st_size
    assert leftovers(tmp_path) == ["v.mp4"]


def test_transfer_that_keeps_breaking_fails_and_leaves_nothing(emulator, finished, tmp_path) -> None:
    emulator.add_faults({"endpoint": "video", "fault": "drop", "times": 10})
    with pytest.raises(SeedanceDownloadError, match=r"broke after|ended at"):
        hook().download(finished, tmp_path / "v.mp4")
    assert leftovers(tmp_path) == []


def test_expired_url_says_the_video_must_be_fetched_again(emulator, finished, tmp_path) -> None:
    emulator.expire(finished.task_id)
    with pytest.raises(SeedanceVideoExpiredError, match="must be fetched again") as info:
        hook().download(finished, tmp_path / "v.mp4")
    assert info.value.status_code == 410
    assert leftovers(tmp_path) == []


def test_existing_video_is_recognised_only_when_complete(tmp_path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "junk.mp4").write_bytes(b"<html>not a video</html>")
    assert existing_video(ObjectStoragePath(f"file://{tmp_path}/empty.mp4")) is None
    assert existing_video(ObjectStoragePath(f"file://{tmp_path}/junk.mp4")) is None
    assert existing_video(ObjectStoragePath(f"file://{tmp_path}/missing.mp4")) is None


def test_download_never_sends_the_api_key(emulator, finished, tmp_path) -> None:
    # The video URL's host is the CDN's in real life: no Authorization header may go there.
    sent: dict = {}
    original = requests.Session.send

    def spy(self, request, **kwargs):
        sent.update(request.headers)
        return original(self, request, **kwargs)

    requests.Session.send = spy  # type: ignore[method-assign]
    try:
        hook().download(finished, tmp_path / "v.mp4")
    finally:
        requests.Session.send = original  # type: ignore[method-assign]
    assert "Authorization" not in sent and sent["User-Agent"].startswith("airflow-provider-seedance/")


# ------------------------------------------------------------------ hostile or broken servers
# A real HTTP server on 127.0.0.1 plays the CDN (or a proxy in front of it). Each case checks
# the destination afterwards: an older file there stays byte for byte, and nothing else
# (no temporary object) is left beside it.

MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(range(256)) * 64
OLD = b"the previous delivery, which must survive"
BAD_GATEWAY = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


class _Handler(http.server.BaseHTTPRequestHandler):
    """Answers each path with the route registered for it; records every request."""

    server: _CDN

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        route(self)

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass


class _CDN(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, Callable[[_Handler], None]] = {}
        self.hits: list[str] = []

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def host(self) -> str:  # what the hook passes when its base URL is this server
        return f"127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def cdn() -> Iterator[_CDN]:
    server = _CDN()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def internal() -> Iterator[_CDN]:
    """A second local server: what a redirect must not reach (metadata service, admin API)."""
    server = _CDN()
    server.routes["/internal"] = lambda h: answer(h, 200, MP4)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def answer(
    handler: _Handler,
    status: int,
    body: bytes,
    *,
    content_type: str = "video/mp4",
    length: int | None = -1,
    headers: dict[str, str] | None = None,
) -> None:
    """Send ``body``; ``length`` overrides Content-Length (``None`` omits it: body ends at close)."""
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    if length is not None:
        handler.send_header("Content-Length", str(len(body) if length == -1 else length))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


def redirect(location: str) -> Callable[[_Handler], None]:
    return lambda h: answer(h, 302, b"", content_type="text/plain", headers={"Location": location})


def fetch(cdn: _CDN, path: str, destination: ObjectStoragePath, **kwargs: Any) -> Any:
    options: dict[str, Any] = {
        "retry_policy": RetryPolicy(attempts=2, min_wait=0.01, max_wait=0.02),
        "allowed_host": cdn.host,
    }
    options.update(kwargs)
    return download_video(cdn.origin + path, destination, user_agent="test", **options)


@pytest.fixture(params=["replaces an older file", "creates the file"])
def target(request, tmp_path) -> Iterator[ObjectStoragePath]:
    """The destination, with or without an older delivery at it; afterwards it is unchanged."""
    path = tmp_path / "v.mp4"
    if request.param == "replaces an older file":
        path.write_bytes(OLD)
    yield ObjectStoragePath(f"file://{path}")
    if request.param == "replaces an older file":
        assert path.read_bytes() == OLD and leftovers(tmp_path) == ["v.mp4"]
    else:
        assert leftovers(tmp_path) == []


def test_a_502_html_page_is_retried_then_fails_leaving_the_destination_untouched(cdn, target) -> None:
    cdn.routes["/v.mp4"] = lambda h: answer(h, 502, BAD_GATEWAY, content_type="text/html")
    with pytest.raises(SeedanceDownloadError, match="answered HTTP 502"):
        fetch(cdn, "/v.mp4", target)
    assert cdn.hits == ["/v.mp4", "/v.mp4"]  # a 502 is transient: retried, then given up


def test_a_cdn_429_is_retried_no_sooner_than_its_retry_after(cdn, tmp_path, monkeypatch) -> None:
    """A rate-limited video host asks for a pause: the retry policy honours it for downloads as for
    the API (the pause asked for is recorded, nothing is timed)."""
    pauses: list[float] = []
    monkeypatch.setattr("tenacity.nap.time.sleep", pauses.append)
    first = True

    def rate_limited_once(handler: Any) -> None:
        nonlocal first
        if first:
            first = False
            answer(handler, 429, b"slow down", content_type="text/plain", headers={"Retry-After": "7"})
        else:
            answer(handler, 200, MP4)

    cdn.routes["/v.mp4"] = rate_limited_once
    target = ObjectStoragePath(f"file://{tmp_path / 'v.mp4'}")

    fetch(cdn, "/v.mp4", target)

    assert cdn.hits == ["/v.mp4", "/v.mp4"] and target.read_bytes() == MP4
    assert len(pauses) == 1 and 7.0 <= pauses[0] < 7.1  # the Retry-After, not the 0.01 s backoff


def test_an_html_page_served_as_200_is_not_a_video(cdn, target) -> None:
    cdn.routes["/v.mp4"] = lambda h: answer(h, 200, BAD_GATEWAY, content_type="text/html")
    with pytest.raises(SeedanceNotAVideoError, match=r"served an HTML page \(Content-Type text/html") as info:
        fetch(cdn, "/v.mp4", target)
    assert "<html><head><title>502 Bad" in str(info.value)
    assert cdn.hits == ["/v.mp4"]  # not retried: the same URL would serve the same page


def test_a_json_error_with_a_video_content_type_is_not_a_video(cdn, target) -> None:
    cdn.routes["/v.mp4"] = lambda h: answer(h, 200, b'{"error": "quota"}' * 10, content_type="video/mp4")
    with pytest.raises(SeedanceNotAVideoError, match="a JSON document"):
        fetch(cdn, "/v.mp4", target)


def test_a_redirect_to_loopback_is_refused_and_never_followed(cdn, internal, target) -> None:
    cdn.routes["/v.mp4"] = redirect(f"{internal.origin}/internal")
    with pytest.raises(SeedanceVideoURLRefusedError, match=r"a redirect from .*/v\.mp4 to .*/internal"):
        fetch(cdn, "/v.mp4", target)
    assert internal.hits == []  # the internal service was never contacted


@pytest.mark.parametrize(
    "location",
    [
        "http://127.1:{port}/internal",
        "http://0x7f.0.0.1:{port}/internal",
        "http://[::ffff:127.0.0.1]:{port}/internal",
        "http://localhost:{port}/internal",
        "file:///etc/passwd",
    ],
)
def test_a_redirect_to_any_spelling_of_a_non_public_host_is_refused(cdn, internal, target, location) -> None:
    cdn.routes["/v.mp4"] = redirect(location.format(port=internal.server_address[1]))
    with pytest.raises(SeedanceVideoURLRefusedError, match="Refused to download from a redirect"):
        fetch(cdn, "/v.mp4", target)
    assert internal.hits == []


def test_a_redirect_within_the_connections_own_host_is_followed(cdn, tmp_path) -> None:
    cdn.routes["/v.mp4"] = redirect("/cdn/v.mp4")
    cdn.routes["/cdn/v.mp4"] = lambda h: answer(h, 200, MP4)
    result = fetch(cdn, "/v.mp4", ObjectStoragePath(f"file://{tmp_path}/v.mp4"))
    assert (tmp_path / "v.mp4").read_bytes() == MP4 and result.bytes == len(MP4)
    assert cdn.hits == ["/v.mp4", "/cdn/v.mp4"]


def test_a_redirect_loop_is_refused(cdn, target) -> None:
    cdn.routes["/a"] = redirect("/b")
    cdn.routes["/b"] = redirect("/a")
    with pytest.raises(SeedanceVideoURLRefusedError, match=r"redirects in a loop: .*/a -> .*/b -> .*/a"):
        fetch(cdn, "/a", target)
    assert cdn.hits == ["/a", "/b"]


def test_too_many_redirects_are_refused(cdn, target) -> None:
    for hop in range(10):
        cdn.routes[f"/{hop}"] = redirect(f"/{hop + 1}")
    with pytest.raises(SeedanceVideoURLRefusedError, match="redirected more than 3 times"):
        fetch(cdn, "/0", target, max_redirects=3)
    assert cdn.hits == ["/0", "/1", "/2", "/3"]


def test_an_empty_body_fails_after_retries(cdn, target) -> None:
    cdn.routes["/v.mp4"] = lambda h: answer(h, 200, b"")
    with pytest.raises(SeedanceDownloadError, match="served an empty body"):
        fetch(cdn, "/v.mp4", target)
    assert len(cdn.hits) == 2


def test_a_truncated_body_fails_after_retries(cdn, target) -> None:
    cdn.routes["/v.mp4"] = lambda h: answer(h, 200, MP4[:5000], length=len(MP4))
    with pytest.raises(SeedanceDownloadError, match=r"broke after|ended at") as info:
        fetch(cdn, "/v.mp4", target)
    assert info.value.retryable and len(cdn.hits) == 2


def test_a_truncated_head_fails_after_retries(cdn, target) -> None:
    cdn.routes["/v.mp4"] = lambda h: answer(h, 200, MP4[:6], length=len(MP4))
    with pytest.raises(SeedanceDownloadError, match=r"broke after|ended at"):
        fetch(cdn, "/v.mp4", target)


def test_a_body_announced_above_the_cap_fails_before_reading(cdn, target) -> None:
    cdn.routes["/v.mp4"] = lambda h: answer(h, 200, MP4)
    with pytest.raises(SeedanceVideoTooLargeError, match=rf"cap of 1 KiB .*announced {len(MP4)} bytes"):
        fetch(cdn, "/v.mp4", target, max_bytes=1024)
    assert cdn.hits == ["/v.mp4"]  # not retried


def test_a_body_growing_past_the_cap_stops_and_fails(cdn, target) -> None:
    huge = MP4 + b"\x00" * (4 * 1024 * 1024)  # no Content-Length: only streaming can tell
    cdn.routes["/v.mp4"] = lambda h: answer(h, 200, huge, length=None)
    with pytest.raises(
        SeedanceVideoTooLargeError, match=r"cap of 1 MiB .*passed 1048576 bytes while streaming"
    ):
        fetch(cdn, "/v.mp4", target, max_bytes=1024 * 1024)
    assert cdn.hits == ["/v.mp4"]


def test_a_body_exactly_at_the_cap_is_delivered(cdn, tmp_path) -> None:
    cdn.routes["/v.mp4"] = lambda h: answer(h, 200, MP4, length=None)
    result = fetch(cdn, "/v.mp4", ObjectStoragePath(f"file://{tmp_path}/v.mp4"), max_bytes=len(MP4))
    assert result.bytes == len(MP4) and (tmp_path / "v.mp4").read_bytes() == MP4


# ------------------------------------------------------------------ through the hook (emulator)


def test_the_hook_refuses_a_video_url_on_another_non_public_host(emulator, cdn, tmp_path) -> None:
    # The connection's base URL is the emulator's 127.0.0.1:<port>; a video URL on another
    # local port is not the connection's host, so the hook never contacts it.
    cdn.routes["/v.mp4"] = lambda h: answer(h, 200, MP4)
    with pytest.raises(
        SeedanceVideoURLRefusedError, match=r"besides the connection's own host 127\.0\.0\.1:"
    ):
        hook().download(f"{cdn.origin}/v.mp4", tmp_path / "v.mp4")
    assert cdn.hits == [] and leftovers(tmp_path) == []


def test_hook_max_video_bytes_caps_the_emulators_video(emulator, finished, tmp_path) -> None:
    small = SeedanceHook(status_retries=3, retry_min_wait=0.01, retry_max_wait=0.05, max_video_bytes=1000)
    with pytest.raises(SeedanceVideoTooLargeError, match=r"cap of 1000 bytes"):
        small.download(finished, tmp_path / "v.mp4")
    assert leftovers(tmp_path) == []


def test_connection_extra_max_video_bytes_caps_the_emulators_video(
    emulator, finished, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_SEEDANCE_DEFAULT", connection_json(emulator.base_url, max_video_bytes=1000)
    )
    with pytest.raises(SeedanceVideoTooLargeError, match=r"cap of 1000 bytes"):
        hook().download(finished, tmp_path / "v.mp4")
    assert leftovers(tmp_path) == []


def test_a_bad_connection_extra_max_video_bytes_names_the_connection(
    emulator, finished, tmp_path, monkeypatch
):
    monkeypatch.setenv(
        "AIRFLOW_CONN_SEEDANCE_DEFAULT", connection_json(emulator.base_url, max_video_bytes="2GB")
    )
    with pytest.raises(
        SeedanceConfigurationError, match=r"'seedance_default': extra 'max_video_bytes'.*'2GB'"
    ):
        hook().download(finished, tmp_path / "v.mp4")
    assert leftovers(tmp_path) == []
