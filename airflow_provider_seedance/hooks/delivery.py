"""Streaming, verified, atomic delivery of a generated video into any Airflow object store.

Video URLs expire (24-48 h is common), so delivery is part of the job. The transfer streams
in chunks (never the whole video in memory) into a temporary object beside the
destination, checks the byte count against ``Content-Length``, hashes it, and only then
moves it into place. Whatever fails, nothing partial is left at the destination.

Only videos are delivered: the first bytes must be an MP4 ``ftyp`` box (the same check
:func:`existing_video` applies), otherwise nothing is written at all. Redirects are
followed by hand, each hop only to a public http(s) host (or the connection's own host,
as with the emulator), and a size cap is enforced while streaming.

The download never sends the API key: video URLs point at a CDN, not at the API.
"""

from __future__ import annotations

import contextlib
import hashlib
import numbers
import os
import re
import uuid
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urljoin, urlsplit

import requests
import tenacity

from airflow_provider_seedance.exceptions import (
    SeedanceConfigurationError,
    SeedanceDownloadError,
    SeedanceNotAVideoError,
    SeedanceVideoTooLargeError,
    SeedanceVideoURLRefusedError,
)
from airflow_provider_seedance.hooks.retry import RetryPolicy
from airflow_provider_seedance.hooks.transport import video_answer_error
from airflow_provider_seedance.hosts import is_public_host, is_public_url, split_url

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from airflow.sdk import ObjectStoragePath

CHUNK_BYTES = 1024 * 1024
#: MP4 files start with a box whose type is ``ftyp`` (bytes 4..8).
_MP4_MAGIC = b"ftyp"
#: Bytes needed to recognise an MP4: box size, ``ftyp``, major brand.
HEAD_BYTES = 12
#: Largest video delivered unless the hook or the connection extra says otherwise.
DEFAULT_MAX_VIDEO_BYTES = 2 * 1024**3
#: Redirect hops followed from the video URL before giving up.
MAX_REDIRECTS = 5
_PRINTABLE = re.compile(rb"[^\x20-\x7e]")


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


def task_destination(
    destination: str | os.PathLike[str] | ObjectStoragePath, field: str
) -> ObjectStoragePath:
    """A task's destination (``output_path`` …) as an ``ObjectStoragePath``, refusing a relative
    local path: it would land under whichever working directory each try's process has, so a
    retry, a resumed deferral or a re-run elsewhere would not find the paid video (and the
    Seedance page could not match the file to the task). ``~`` is expanded, as by
    :func:`as_storage_path`.

    :raises SeedanceConfigurationError: a relative path, naming ``field`` and the value.
    """
    if not isinstance(destination, (str, os.PathLike)):
        return as_storage_path(destination)
    text = os.fspath(destination)
    if "://" not in text and not os.path.isabs(os.path.expanduser(text)):
        raise SeedanceConfigurationError(
            f"{field} {text!r} is a relative path: where it lands would depend on the working "
            "directory of each try's process, so a retry or a re-run could miss the paid video. "
            "Use an absolute path, a file:// URL or an object-store URL (s3://bucket/key.mp4, "
            "…); nothing was sent."
        )
    return as_storage_path(text)


def resolve_filesystems(destinations: Iterable[ObjectStoragePath]) -> None:
    """Resolve each destination's filesystem (and the connection behind it) on the calling
    thread. Airflow caches one filesystem per store, so threads that later read or write these
    paths never look a connection up themselves (see ``SeedanceHook.prepare_for_threads``)."""
    for path in destinations:
        path.fs  # noqa: B018 -- the lookup is the point: it fills Airflow's per-store cache


def existing_video(destination: ObjectStoragePath) -> DownloadResult | None:
    """The video already at ``destination``, if one is there and looks complete.

    Objects appear at the destination only once complete (see :func:`download_video`), so a
    non-empty object that passes :func:`describe_non_video` is a finished video. Anything
    else (an HTML page saved by an older release, junk, nothing) is ``None``. Only "not found"
    means nothing is there: any other error (no access, no such store) is raised, since a
    destination that cannot be read cannot be trusted to take the video either.
    """
    try:
        if not destination.exists() or not destination.is_file():
            return None
        digest = hashlib.sha256()
        size = 0
        with destination.open("rb") as handle:
            head = handle.read(CHUNK_BYTES)
            if describe_non_video(head) is not None:
                return None
            while head:
                digest.update(head)
                size += len(head)
                head = handle.read(CHUNK_BYTES)
    except FileNotFoundError:  # removed between the check and the read
        return None
    return DownloadResult(str(destination), size, digest.hexdigest(), None)


#: Protocols of the local filesystem, where the parent folder is created before the POST.
LOCAL_PROTOCOLS = frozenset({"file", "local"})

#: What registers an object store's scheme with Airflow: the provider package (with the fsspec
#: library it needs), named when a destination's scheme has no filesystem.
STORE_PROVIDERS = {
    **dict.fromkeys(("s3", "s3a"), "apache-airflow-providers-amazon[s3fs]"),
    **dict.fromkeys(("gs", "gcs"), "apache-airflow-providers-google"),
    **dict.fromkeys(("abfs", "abfss", "az", "adl"), "apache-airflow-providers-microsoft-azure"),
}


def probe_destination(
    destination: ObjectStoragePath, field: str, *, reuse: bool, before_post: bool = True
) -> DownloadResult | None:
    """Whether ``destination`` can take a video, checked before paying for one; with ``reuse``,
    also the video already there (:func:`existing_video`).

    The store's filesystem is resolved (a scheme with no filesystem registered, or a missing
    connection, fails here) and the destination is read once (``exists``, or the existing-video
    read). ``before_post``: a local destination's parent folder is created too (delivery would
    create it anyway), which finds a parent under a regular file or in a place that cannot be
    written. Remote stores get no write here: no bucket or object is ever created by a check.

    :param field: what names the destination in the error (``output_path``, …).
    :raises SeedanceConfigurationError: the destination cannot be used, with the reason.
    """
    try:
        destination.fs  # noqa: B018 -- resolving the store's filesystem is the first check
        if before_post and destination.protocol in LOCAL_PROTOCOLS:
            _make_parent(destination)
        if reuse:
            return existing_video(destination)
        destination.exists()
    except Exception as exc:  # any store's error: fsspec back-ends raise their own types
        sent = "; nothing was sent" if before_post else ""
        raise SeedanceConfigurationError(
            f"{field} {str(destination)!r} cannot be written: {_reason(exc)}"
            f"{_missing_store_hint(exc, destination.protocol)}{sent}."
        ) from None
    return None


def _missing_store_hint(exc: BaseException, protocol: str) -> str:
    """What to install when Airflow has no filesystem for the destination's scheme; else ""."""
    if not (isinstance(exc, ValueError) and str(exc).startswith("No filesystem registered for scheme")):
        return ""
    package = STORE_PROVIDERS.get(protocol)
    if package is None:
        return (
            f" (no installed Airflow provider registers {protocol!r}: install the provider of that "
            "store where the tasks run)"
        )
    return f" (install {package} on the workers)"


def _make_parent(destination: ObjectStoragePath) -> None:
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise NotADirectoryError(
            f"a part of its folder {str(destination.parent)!r} exists and is not a folder"
        ) from None


def _reason(exc: BaseException) -> str:
    """An error as a short reason: its type and its text."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def describe_non_video(head: bytes, content_type: str | None = None) -> str | None:
    """``None`` if ``head`` (a body's first bytes) starts an MP4, else what it is instead.

    The one check for "is this a video": used on a download before anything is written and
    on a file already at the destination.
    """
    if len(head) >= HEAD_BYTES and head[4:8] == _MP4_MAGIC:
        return None
    if not head:
        kind = "an empty body"
    else:
        text = head[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
        if text.startswith((b"<!doctype html", b"<html")) or b"<html" in text or b"<body" in text:
            kind = "an HTML page"
        elif text.startswith(b"<"):
            kind = "an XML document"
        elif text.startswith((b"{", b"[")):
            kind = "a JSON document"
        else:
            kind = "data that is not an MP4 video"
    sample = _PRINTABLE.sub(b".", head[:32]).decode("ascii")
    ctype = _PRINTABLE.sub(b"?", (content_type or "none").encode("utf-8", "replace")[:80]).decode("ascii")
    return f"{kind} (Content-Type {ctype}, {len(head)} first bytes {sample!r})"


def video_size_cap(value: Any, where: str = "max_video_bytes") -> int:
    """A ``max_video_bytes`` setting as a positive int (``None`` = the 2 GiB default)."""
    if value is None or value == "":
        return DEFAULT_MAX_VIDEO_BYTES
    number: int | None = None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        number = int(value)  # numpy's integers too
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdecimal():
        number = int(value.strip())  # ASCII digits only: "²" is a digit that int() refuses
    if number is None or number < 1:
        raise SeedanceConfigurationError(
            f"{where} must be a positive whole number of bytes (default {DEFAULT_MAX_VIDEO_BYTES}, "
            f"2 GiB), got {value!r}."
        )
    return number


def allowed_host_of(base_url: str) -> str | None:
    """``host:port`` of ``base_url`` when that host is not public (an emulator), else ``None``.

    Downloads may reach such a host only because the connection itself points there.
    """
    try:
        parts = urlsplit(base_url)
        hostname, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not hostname or is_public_host(hostname):
        return None
    return f"{hostname}:{port or _DEFAULT_PORTS.get(parts.scheme.lower(), 0)}"


_DEFAULT_PORTS = {"http": 80, "https": 443}


def download_video(
    url: str,
    destination: ObjectStoragePath,
    *,
    user_agent: str,
    timeout: tuple[float, float] = (10.0, 60.0),
    retry_policy: RetryPolicy | None = None,
    log: Any = None,
    allowed_host: str | None = None,
    max_bytes: int = DEFAULT_MAX_VIDEO_BYTES,
    max_redirects: int = MAX_REDIRECTS,
    verify: bool | str = True,
    cert: str | tuple[str, str] | None = None,
    proxies: Mapping[str, str] | None = None,
    trust_env: bool = True,
) -> DownloadResult:
    """Stream ``url`` into ``destination``; retry dropped transfers; never leave a partial file.

    :param retry_policy: the hook's :class:`RetryPolicy` (dropped transfers, 5xx and 429 are
        retried with its backoff; default: 4 attempts).
    :param allowed_host: ``host:port`` (see :func:`allowed_host_of`) that may be fetched
        although it is not public: the connection's own host. Every other URL, the first
        and each redirect, must be http(s) on a public host.
    :param max_bytes: the largest body accepted; checked against ``Content-Length`` before
        reading and while streaming.
    :param verify: requests' ``verify`` for every request (False, or a CA bundle path; the
        hook passes its connection's TLS decision, :meth:`TlsSettings.requests_verify`).
    :param cert: client certificate (the connection's extra ``cert``).
    :param proxies: requests' per-request ``proxies`` (the connection's extra ``proxy``).
    :param trust_env: whether requests reads the environment (proxy variables, ``.netrc``,
        CA bundle variables), as the connection's own session does.
    :raises SeedanceNotAVideoError: the body is not an MP4 (nothing is written).
    :raises SeedanceVideoURLRefusedError: a URL or redirect leads to a refused host, or the
        redirects loop or exceed ``max_redirects``.
    :raises SeedanceVideoTooLargeError: the body is larger than ``max_bytes``.
    """
    route = _Route(allowed_host, max_redirects)
    route.check(url, None)  # before any connection: a refused URL costs no request

    def _before_sleep(state: tenacity.RetryCallState) -> None:
        if log is not None and state.outcome is not None:
            log.warning(
                "Video download attempt %d failed (%s); retrying",
                state.attempt_number,
                state.outcome.exception(),
            )

    policy = (
        retry_policy if retry_policy is not None else RetryPolicy(attempts=4, min_wait=1.0, max_wait=20.0)
    )
    retrying = policy.retrying(
        lambda exc: isinstance(exc, SeedanceDownloadError) and exc.retryable, before_sleep=_before_sleep
    )
    # Per request, like the hook's own requests: they win over requests' reading of the environment.
    options = {"verify": verify, "cert": cert, "proxies": dict(proxies) if proxies else None}
    with requests.Session() as session:
        session.headers["User-Agent"] = user_agent
        session.trust_env = trust_env
        for attempt in retrying:
            with attempt:
                return _transfer_once(session, route, url, destination, timeout, max_bytes, options)
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class _Route:
    """Where a download may go: public http(s) hosts, plus the connection's own host."""

    allowed_host: str | None
    max_redirects: int

    def check(self, url: str, came_from: str | None) -> None:
        parts = split_url(url)
        scheme = parts.scheme.lower() if parts is not None else ""
        if parts is not None and scheme in _DEFAULT_PORTS:
            if is_public_url(url):
                return
            if self.allowed_host == f"{parts.hostname}:{parts.port or _DEFAULT_PORTS[scheme]}":
                return
        what = f"a redirect from {_safe(came_from)} to {_safe(url)}" if came_from else _safe(url)
        own = f" besides the connection's own host {self.allowed_host}" if self.allowed_host else ""
        raise SeedanceVideoURLRefusedError(
            f"Refused to download from {what}: a video is fetched only over http(s) from a public "
            f"host{own}; loopback, private, link-local and reserved addresses, localhost and "
            f"single-label names are refused. Nothing was written."
        )

    def open(
        self,
        session: requests.Session,
        url: str,
        timeout: tuple[float, float],
        options: Mapping[str, Any] | None = None,
    ) -> requests.Response:
        """GET ``url`` (streamed), following at most ``max_redirects`` checked redirects."""
        visited: list[str] = []
        current = url
        while True:
            try:
                response = session.get(
                    current, stream=True, timeout=timeout, allow_redirects=False, **(options or {})
                )
            except requests.RequestException as exc:
                raise SeedanceDownloadError(
                    f"could not fetch {_safe(current)}: {type(exc).__name__}", retryable=True
                ) from None
            target = session.get_redirect_target(response)
            if target is None:
                return response
            response.close()
            visited.append(current)
            following = urljoin(current, target)
            if following in visited:
                chain = " -> ".join(_safe(u) for u in [*visited, following])
                raise SeedanceVideoURLRefusedError(f"The video URL redirects in a loop: {chain}")
            if len(visited) > self.max_redirects:
                raise SeedanceVideoURLRefusedError(
                    f"The video URL {_safe(url)} redirected more than {self.max_redirects} times "
                    f"(last to {_safe(following)}); refusing to follow further."
                )
            self.check(following, current)
            current = following


def _transfer_once(
    session: requests.Session,
    route: _Route,
    url: str,
    destination: ObjectStoragePath,
    timeout: tuple[float, float],
    max_bytes: int,
    options: Mapping[str, Any],
) -> DownloadResult:
    written = 0
    response = route.open(session, url, timeout, options)
    with response:
        try:
            error = video_answer_error(response.status_code, _safe(url), response.headers.get("Retry-After"))
            if error is not None:
                raise error
            expected = _content_length(response)
            if expected is not None and expected > max_bytes:
                raise SeedanceVideoTooLargeError(_safe(url), max_bytes, expected)
            chunks = response.iter_content(chunk_size=CHUNK_BYTES)
            head, ended = _read_head(chunks)
            if ended and expected is not None and len(head) < expected:
                raise _truncated(url, len(head), expected)
            if not head:
                raise SeedanceDownloadError(f"{_safe(url)} served an empty body", retryable=True)
            problem = describe_non_video(head, response.headers.get("Content-Type"))
            if problem is not None:
                raise SeedanceNotAVideoError(
                    f"{_safe(url)} served {problem}, not an MP4 video; nothing was written to {destination}."
                )
            digest = hashlib.sha256()
            with atomic_file(destination) as handle:
                for chunk in _prepend(head, chunks):
                    if written + len(chunk) > max_bytes:
                        raise SeedanceVideoTooLargeError(_safe(url), max_bytes, None)
                    handle.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
                if expected is not None and written != expected:
                    raise _truncated(url, written, expected)
        except requests.RequestException as exc:  # a local OSError (disk full) propagates as is
            raise SeedanceDownloadError(
                f"transfer of {_safe(url)} broke after {written} bytes ({type(exc).__name__})",
                retryable=True,
            ) from None
    return DownloadResult(str(destination), written, digest.hexdigest(), url)


@contextlib.contextmanager
def atomic_file(destination: ObjectStoragePath) -> Iterator[BinaryIO]:
    """A binary handle on a temporary sibling of ``destination`` that is moved into place when
    the block ends without an error, and removed otherwise: readers never see a partial file."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.parent / f".{destination.name}.part-{uuid.uuid4().hex[:12]}"
    try:
        with temporary.open("wb") as handle:
            yield handle
        temporary.rename(destination)
    except BaseException:
        _remove_quietly(temporary)
        raise


def _read_head(chunks: Iterator[bytes]) -> tuple[bytes, bool]:
    """The first ``HEAD_BYTES`` or more of a body, and whether the body ended already."""
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) >= HEAD_BYTES:
            return head, False
    return head, True


def _prepend(head: bytes, chunks: Iterator[bytes]) -> Iterator[bytes]:
    yield head
    yield from chunks


def _truncated(url: str, received: int, expected: int) -> SeedanceDownloadError:
    return SeedanceDownloadError(
        f"transfer of {_safe(url)} ended at {received} of {expected} bytes", retryable=True
    )


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


def _safe(url: str | None) -> str:
    """A URL for messages: without its query string (signed URLs carry tokens there)."""
    return (url or "").split("?", 1)[0]
