"""The one "is this a video" check (``describe_non_video``) and the existing-video check.

The promises: only an MP4 is written or reused; anything else is named for what it is (an
empty body, an HTML page, an XML or JSON document, other data), so the error tells a person
what the URL served instead; the description never carries control characters and never
fails on an odd Content-Type; a file already at the destination counts only when it is a
video, and then with its exact size and sha256 (a rerun reports the same file it found).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from airflow_provider_seedance.hooks.delivery import (
    CHUNK_BYTES,
    as_storage_path,
    describe_non_video,
    existing_video,
)

MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"


def kind_of(head: bytes, content_type: str | None = None) -> str:
    problem = describe_non_video(head, content_type)
    assert problem is not None
    return problem.split(" (Content-Type", 1)[0]


def test_the_shortest_mp4_head_is_a_video() -> None:
    assert describe_non_video(MP4_HEAD[:12]) is None
    assert describe_non_video(MP4_HEAD[:11]) is not None


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"", "an empty body"),
        (b"<!doctype html><head><title>x</title>", "an HTML page"),
        (b"<!DOCTYPE HTML><head>", "an HTML page"),
        (b"<HTML><HEAD>", "an HTML page"),
        (b"<!-- proxy --><html lang=en>", "an HTML page"),
        (b"<!-- proxy --><body>blocked</body>", "an HTML page"),
        (b"\xef\xbb\xbf\r\n <html>", "an HTML page"),
        (b"<?xml version='1.0'?><Error/>", "an XML document"),
        (b"\n  <?xml version='1.0'?><Error/>", "an XML document"),
        (b'{"message": "expired"}', "a JSON document"),
        (b'[{"message": "expired"}]', "a JSON document"),
        (b'\xef\xbb\xbf{"message": "expired"}', "a JSON document"),
        (b'X-Error: {"message": "expired"}', "data that is not an MP4 video"),
        (b"GIF89a\x01\x00\x01\x00", "data that is not an MP4 video"),
    ],
)
def test_a_body_that_is_not_a_video_is_named_for_what_it_is(head: bytes, kind: str) -> None:
    assert kind_of(head) == kind


def test_only_the_first_kibibyte_is_sniffed() -> None:
    assert kind_of(b"x" * 1019 + b"<body>") == "an HTML page"
    assert kind_of(b"x" * 1020 + b"<body>") == "data that is not an MP4 video"


def test_the_description_shows_the_content_type_and_the_first_32_bytes_printable() -> None:
    head = b"GIF89a" + bytes(range(26)) + b"tail-not-shown"
    problem = describe_non_video(head, "image/gif")
    assert problem == (
        f"data that is not an MP4 video (Content-Type image/gif, {len(head)} first bytes "
        f"{'GIF89a' + '.' * 26!r})"
    )


def test_a_missing_content_type_is_shown_as_none() -> None:
    assert "(Content-Type none, 0 first bytes '')" in (describe_non_video(b"") or "")


def test_an_odd_content_type_is_shown_safely_and_cut_at_80_characters() -> None:
    # aiohttp keeps undecodable header bytes as surrogate escapes: never a crash here
    problem = describe_non_video(b"junk", "text/\udce9html")
    assert problem is not None and "Content-Type text/?html," in problem
    long_type = "t" * 100
    shown = (describe_non_video(b"junk", long_type) or "").split("Content-Type ", 1)[1].split(",", 1)[0]
    assert shown == "t" * 80


# ---------------------------------------------------------------- existing video
def test_a_video_at_the_destination_is_reported_with_its_exact_size_and_sha256(tmp_path: Path) -> None:
    body = MP4_HEAD + b"\x01" * (CHUNK_BYTES + 10)  # more than one read
    target = tmp_path / "v.mp4"
    target.write_bytes(body)

    found = existing_video(as_storage_path(str(target)))

    assert found is not None
    assert found.output_path == str(as_storage_path(str(target)))
    assert found.bytes == len(body)
    assert found.sha256 == hashlib.sha256(body).hexdigest()
    assert found.source_url is None


@pytest.mark.parametrize("content", [b"", b"<html>gone</html>", b"\x00" * 64])
def test_something_else_at_the_destination_is_no_video(tmp_path: Path, content: bytes) -> None:
    target = tmp_path / "v.mp4"
    target.write_bytes(content)
    assert existing_video(as_storage_path(str(target))) is None


def test_nothing_or_a_directory_at_the_destination_is_no_video(tmp_path: Path) -> None:
    assert existing_video(as_storage_path(str(tmp_path / "missing.mp4"))) is None
    (tmp_path / "dir.mp4").mkdir()
    assert existing_video(as_storage_path(str(tmp_path / "dir.mp4"))) is None
