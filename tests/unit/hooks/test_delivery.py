"""hooks.delivery: the one "is this a video" check, the size cap setting, the URL route rule.

Transfers against real HTTP servers are in tests/integration/test_download.py; these are the
pure parts, and the refusals that must happen before any connection is made.
"""

from __future__ import annotations

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_seedance._compat import AirflowFailException
from airflow_provider_seedance.exceptions import SeedanceConfigurationError, SeedanceDownloadError
from airflow_provider_seedance.hooks.delivery import (
    DEFAULT_MAX_VIDEO_BYTES,
    SeedanceNotAVideoError,
    SeedanceVideoTooLargeError,
    SeedanceVideoURLRefusedError,
    allowed_host_of,
    describe_non_video,
    download_video,
    existing_video,
    video_size_cap,
)
from airflow_provider_seedance.hooks.retry import RetryPolicy

MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"


ONCE = RetryPolicy(attempts=1, min_wait=0, max_wait=0)


def test_an_mp4_head_is_a_video() -> None:
    assert describe_non_video(MP4_HEAD) is None
    assert describe_non_video(MP4_HEAD + b"\x00" * 4096, "application/octet-stream") is None


@pytest.mark.parametrize(
    ("head", "content_type", "kind"),
    [
        (b"<html><head><title>502 Bad Gateway</title></head>", "text/html", "an HTML page"),
        (b"\n  <!DOCTYPE html>\n<html>", "text/html; charset=utf-8", "an HTML page"),
        (b"<?xml version='1.0'?><Error><Code>AccessDenied</Code></Error>", "text/xml", "an XML document"),
        (b'{"message": "expired"}', "application/json", "a JSON document"),
        (b"", None, "an empty body"),
        (b"\x00\x00\x00\x18ftyp", None, "not an MP4"),  # too short to carry a brand
        (b"\x00\x00\x00\x18moov\x00\x00\x00\x00", "video/mp4", "not an MP4"),
        (b"GIF89a\x01\x00\x01\x00", "image/gif", "not an MP4"),
    ],
)
def test_anything_else_is_named_for_what_it_is(head: bytes, content_type: str | None, kind: str) -> None:
    problem = describe_non_video(head, content_type)
    assert problem is not None and kind in problem
    assert f"Content-Type {content_type or 'none'}" in problem


def test_the_description_shows_first_bytes_sanitised() -> None:
    problem = describe_non_video(b"<html>\x1b[31m\r\n\x00evil", "text/html\r\nX-Injected: 1")
    assert problem is not None
    assert "\x1b" not in problem and "\r" not in problem and "\n" not in problem and "\x00" not in problem
    assert "<html>.[31m...evil" in problem and "text/html??X-Injected: 1" in problem


def test_existing_video_uses_the_same_check(tmp_path) -> None:
    (tmp_path / "good.mp4").write_bytes(MP4_HEAD + b"\x00" * 100)
    (tmp_path / "page.mp4").write_bytes(b"<html><body>502 Bad Gateway</body></html>" * 3)
    found = existing_video(ObjectStoragePath(f"file://{tmp_path}/good.mp4"))
    assert found is not None and found.bytes == len(MP4_HEAD) + 100
    # An HTML page saved by an older release is not a video: the caller must deliver again.
    assert existing_video(ObjectStoragePath(f"file://{tmp_path}/page.mp4")) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, DEFAULT_MAX_VIDEO_BYTES),
        ("", DEFAULT_MAX_VIDEO_BYTES),
        (1, 1),
        (5_000_000, 5_000_000),
        (" 42 ", 42),
    ],
)
def test_size_cap_setting(value: object, expected: int) -> None:
    assert video_size_cap(value) == expected


def test_default_size_cap_is_two_gib() -> None:
    assert DEFAULT_MAX_VIDEO_BYTES == 2 * 1024**3


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "2GB", "abc", [1]])
def test_bad_size_cap_says_what_is_allowed(value: object) -> None:
    with pytest.raises(SeedanceConfigurationError, match=r"extra 'max_video_bytes' must be a positive whole"):
        video_size_cap(value, "Connection 'x': extra 'max_video_bytes'")


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("http://127.0.0.1:8765", "127.0.0.1:8765"),
        ("http://localhost:9000", "localhost:9000"),
        ("http://localhost", "localhost:80"),
        ("https://seedance.internal", "seedance.internal:443"),
        ("http://[::1]:8000", "::1:8000"),
        ("https://seedanceapi.org", None),
        ("https://8.8.8.8", None),
    ],
)
def test_only_a_non_public_base_url_grants_its_own_host(base_url: str, expected: str | None) -> None:
    assert allowed_host_of(base_url) == expected


@pytest.mark.parametrize(
    ("url", "allowed_host"),
    [
        ("http://127.0.0.1:1/v.mp4", None),
        ("http://127.1:1/v.mp4", None),
        ("http://[::ffff:127.0.0.1]:1/v.mp4", None),
        ("http://169.254.169.254/latest/meta-data", None),
        ("http://localhost:1/v.mp4", None),
        ("http://127.0.0.1:2/v.mp4", "127.0.0.1:1"),  # same host, other port: not the connection's
        ("http://localhost:1/v.mp4", "127.0.0.1:1"),  # no name resolution: another host
        ("ftp://example.com/v.mp4", None),
        ("file:///etc/passwd", None),
        ("https://127.0.0.1\\@example.com/v.mp4", None),
    ],
)
def test_a_refused_video_url_fails_before_any_connection(
    tmp_path, url: str, allowed_host: str | None
) -> None:
    # Port 1 has no server: reaching the network would show up as a retryable connection error.
    target = ObjectStoragePath(f"file://{tmp_path}/v.mp4")
    with pytest.raises(SeedanceVideoURLRefusedError, match="Refused to download from") as info:
        download_video(
            url,
            target,
            user_agent="t",
            retry_policy=ONCE,
            allowed_host=allowed_host,
        )
    assert info.value.retryable is False
    assert list(tmp_path.iterdir()) == []


def test_refusal_message_hides_the_signed_query() -> None:
    with pytest.raises(SeedanceVideoURLRefusedError) as info:
        download_video(
            "http://10.0.0.1/v.mp4?X-Signature=s3cr3t",
            ObjectStoragePath("file:///nonexistent/v.mp4"),
            user_agent="t",
            retry_policy=ONCE,
        )
    assert "s3cr3t" not in str(info.value) and "http://10.0.0.1/v.mp4" in str(info.value)


@pytest.mark.parametrize(
    "error",
    [
        SeedanceNotAVideoError("x"),
        SeedanceVideoURLRefusedError("x"),
        SeedanceVideoTooLargeError("http://cdn/v.mp4", 1024, 4096),
    ],
)
def test_delivery_refusals_are_typed_final_download_errors(error: SeedanceDownloadError) -> None:
    assert isinstance(error, SeedanceDownloadError) and isinstance(error, AirflowFailException)
    assert error.retryable is False


def test_too_large_says_the_cap_and_how_to_raise_it() -> None:
    message = str(SeedanceVideoTooLargeError("http://cdn/v.mp4", 2 * 1024**3, 3 * 1024**3))
    assert "2 GiB" in message and str(2 * 1024**3) in message and "announced 3221225472 bytes" in message
    assert "max_video_bytes" in message and "SeedanceHook(max_video_bytes=" in message
