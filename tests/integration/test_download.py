"""SeedanceHook.download against the emulator's real MP4s: streaming, verified, atomic."""

from __future__ import annotations

import hashlib

import fsspec
import pytest
import requests
from airflow.sdk import ObjectStoragePath
from airflow.sdk.io import attach

from airflow_provider_seedance.exceptions import SeedanceDownloadError, SeedanceVideoExpiredError
from airflow_provider_seedance.hooks.delivery import existing_video
from airflow_provider_seedance.hooks.seedance import SeedanceHook

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
