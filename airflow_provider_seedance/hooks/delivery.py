"""Streaming, verified, atomic delivery of a generated video into any Airflow object store.

Video URLs expire (24-48 h is common), so delivery is part of the job. The transfer streams
in chunks (never the whole video in memory) into a temporary object beside the
destination, checks the byte count against ``Content-Length``, hashes it, and only then
moves it into place. Whatever fails, nothing partial is left at the destination.

The download never sends the API key: video URLs point at a CDN, not at the API.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import requests
import tenacity

from airflow_provider_seedance.exceptions import (
    SeedanceDownloadError,
    SeedanceVideoExpiredError,
)

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

CHUNK_BYTES = 1024 * 1024
#: HTTP answers that mean "this URL no longer serves the video".
EXPIRED_STATUSES = frozenset({403, 404, 410})
#: MP4 files start with a box whose type is ``ftyp`` (bytes 4..8).
_MP4_MAGIC = b"ftyp"


@dataclass(frozen=True)
class DownloadResult:
    """What landed where."""

    output_path: str
    bytes: int
    sha256: str
    source_url: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def as_storage_path(destination: str | os.PathLike[str] | ObjectStoragePath) -> ObjectStoragePath:
    """A destination as an ``ObjectStoragePath``; plain paths become local ``file://`` paths."""
    from airflow.sdk import ObjectStoragePath

    if isinstance(destination, ObjectStoragePath):
        return destination
    text = os.fspath(destination)
    if "://" not in text:
        text = "file://" + os.path.abspath(os.path.expanduser(text))
    return ObjectStoragePath(text)


def existing_video(destination: ObjectStoragePath) -> DownloadResult | None:
    """The video already at ``destination``, if one is there and looks complete.

    Objects appear at the destination only once complete (see :func:`download_video`), so a
    non-empty object with an MP4 header is a finished video.
    """
    try:
        if not destination.exists() or not destination.is_file():
            return None
        digest = hashlib.sha256()
        size = 0
        with destination.open("rb") as handle:
            head = handle.read(CHUNK_BYTES)
            if len(head) < 12 or head[4:8] != _MP4_MAGIC:
                return None
            while head:
                digest.update(head)
                size += len(head)
                head = handle.read(CHUNK_BYTES)
    except (OSError, ValueError):
        return None
    return DownloadResult(str(destination), size, digest.hexdigest(), None)


def download_video(
    url: str,
    destination: ObjectStoragePath,
    *,
    user_agent: str,
    timeout: tuple[float, float] = (10.0, 60.0),
    attempts: int = 4,
    min_wait: float = 1.0,
    max_wait: float = 20.0,
    log: Any = None,
) -> DownloadResult:
    """Stream ``url`` into ``destination``; retry dropped transfers; never leave a partial file."""

    def _before_sleep(state: tenacity.RetryCallState) -> None:
        if log is not None and state.outcome is not None:
            log.warning(
                "Video download attempt %d failed (%s); retrying",
                state.attempt_number,
                state.outcome.exception(),
            )

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_exponential(multiplier=min_wait, max=max_wait) + tenacity.wait_random(0, min_wait),
        retry=tenacity.retry_if_exception(
            lambda exc: isinstance(exc, SeedanceDownloadError) and exc.retryable
        ),
        before_sleep=_before_sleep,
        reraise=True,
    )
    with requests.Session() as session:
        session.headers["User-Agent"] = user_agent
        for attempt in retrying:
            with attempt:
                return _transfer_once(session, url, destination, timeout)
    raise AssertionError("unreachable")  # pragma: no cover


def _transfer_once(
    session: requests.Session, url: str, destination: ObjectStoragePath, timeout: tuple[float, float]
) -> DownloadResult:
    temporary = destination.parent / f".{destination.name}.part-{uuid.uuid4().hex[:12]}"
    try:
        try:
            response = session.get(url, stream=True, timeout=timeout, allow_redirects=True)
        except requests.RequestException as exc:
            raise SeedanceDownloadError(
                f"could not fetch {_safe(url)}: {type(exc).__name__}", retryable=True
            ) from None
        with response:
            if response.status_code in EXPIRED_STATUSES:
                raise SeedanceVideoExpiredError(_safe(url), response.status_code)
            if response.status_code >= 400:
                raise SeedanceDownloadError(
                    f"fetching {_safe(url)} answered HTTP {response.status_code}",
                    retryable=response.status_code >= 500 or response.status_code == 429,
                )
            expected = _content_length(response)
            digest = hashlib.sha256()
            written = 0
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                with temporary.open("wb") as handle:
                    for chunk in response.iter_content(chunk_size=CHUNK_BYTES):
                        handle.write(chunk)
                        digest.update(chunk)
                        written += len(chunk)
            except requests.RequestException as exc:  # a local OSError (disk full) propagates as is
                raise SeedanceDownloadError(
                    f"transfer of {_safe(url)} broke after {written} bytes ({type(exc).__name__})",
                    retryable=True,
                ) from None
        if expected is not None and written != expected:
            raise SeedanceDownloadError(
                f"transfer of {_safe(url)} ended at {written} of {expected} bytes", retryable=True
            )
        if written == 0:
            raise SeedanceDownloadError(f"{_safe(url)} served an empty body", retryable=True)
        temporary.rename(destination)
        return DownloadResult(str(destination), written, digest.hexdigest(), url)
    finally:
        _remove_quietly(temporary)


def _content_length(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None or response.headers.get("Content-Encoding"):
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _remove_quietly(path: ObjectStoragePath) -> None:
    with contextlib.suppress(OSError, ValueError):
        path.unlink(missing_ok=True)


def _safe(url: str) -> str:
    """A URL for messages: without its query string (signed URLs carry tokens there)."""
    return url.split("?", 1)[0]
