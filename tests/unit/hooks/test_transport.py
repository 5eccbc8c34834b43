"""The transport layer: what an HTTP answer (or its absence) means, decided by transport facts.

The POST rule protects money: only a 4xx proves that a generate request created nothing;
every other answer the server may have acted on means "a generation may exist", whatever
code its body names. The status rule classifies by status first too.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError

from airflow_provider_seedance.exceptions import (
    CreationState,
    SeedanceAuthError,
    SeedanceBadRequestError,
    SeedanceConfigurationError,
    SeedanceConnectionError,
    SeedanceDownloadError,
    SeedanceError,
    SeedanceInsufficientCreditsError,
    SeedanceRateLimitError,
    SeedanceServerError,
    SeedanceSubmissionUncertainError,
    SeedanceTaskNotFoundError,
    SeedanceTimeoutError,
    SeedanceValidationError,
    SeedanceVideoExpiredError,
    never_created,
)
from airflow_provider_seedance.hooks import transport
from airflow_provider_seedance.hooks.transport import (
    MAX_BODY_BYTES,
    aread_capped,
    generate_answer,
    mask_url,
    read_capped,
    requests_failure,
    status_answer,
    video_answer_error,
)

GENERATE = "POST /v1/generate"
STATUS = "GET /v1/status"
SERVER_STATUSES = [500, 501, 502, 503, 504, 507, 520, 599]
BODY_CODES = [
    "RATE_LIMITED",
    "INVALID_API_KEY",
    "INSUFFICIENT_CREDITS",
    "TASK_NOT_FOUND",
    "INVALID_PROMPT",
    "INTERNAL_ERROR",
]


def envelope(code: int, message: str) -> bytes:
    return json.dumps({"code": code, "message": message, "data": None}).encode()


def body_variants(status: int, code: str) -> list[bytes]:
    """The shapes one code can come in: message token, code field, nested error, plain text."""
    return [
        envelope(status, f"{code}: back end overloaded"),
        json.dumps({"code": code, "message": "x"}).encode(),
        json.dumps({"error": {"code": code, "message": "x"}}).encode(),
        f"{code}: plain text".encode(),
    ]


def generate_error(status: int, body: bytes | None) -> SeedanceError:
    with pytest.raises(SeedanceError) as info:
        generate_answer(status, body, endpoint=GENERATE)
    return info.value


def status_error(status: int, body: bytes | None) -> SeedanceError:
    with pytest.raises(SeedanceError) as info:
        status_answer(status, body, endpoint=STATUS)
    return info.value


# ----------------------------------------------------------------------------- POST rule
@pytest.mark.parametrize("status", SERVER_STATUSES)
@pytest.mark.parametrize("code", BODY_CODES)
def test_any_5xx_to_the_generate_post_may_have_created_a_generation(status: int, code: str) -> None:
    for raw in body_variants(status, code):
        err = generate_error(status, raw)
        assert type(err) is SeedanceSubmissionUncertainError, raw
        assert err.creation is CreationState.MAY_EXIST and not never_created(err)
        assert err.status_code == status


@pytest.mark.parametrize("status", SERVER_STATUSES)
def test_5xx_without_a_json_body_may_have_created_a_generation(status: int) -> None:
    for raw in (b"", b"<html><h1>Bad Gateway</h1></html>", None):
        err = generate_error(status, raw)
        assert isinstance(err, SeedanceSubmissionUncertainError) and not never_created(err)


@pytest.mark.parametrize("envelope_code", [500, 502, 503, 504])
@pytest.mark.parametrize("code", BODY_CODES)
def test_http_200_whose_envelope_says_5xx_may_have_created_a_generation(
    envelope_code: int, code: str
) -> None:
    err = generate_error(200, envelope(envelope_code, f"{code}: oops"))
    assert isinstance(err, SeedanceSubmissionUncertainError) and not never_created(err)
    assert err.status_code == envelope_code and f"code {envelope_code}" in str(err)


FOUR_XX = [
    (400, "INVALID_PROMPT", SeedanceBadRequestError),
    (400, "TOO_MANY_IMAGES", SeedanceBadRequestError),
    (401, "INVALID_API_KEY", SeedanceAuthError),
    (401, "SOMETHING_ELSE", SeedanceAuthError),
    (402, "INSUFFICIENT_CREDITS", SeedanceInsufficientCreditsError),
    (403, "INVALID_API_KEY", SeedanceAuthError),
    (403, "FORBIDDEN", SeedanceBadRequestError),
    (404, "TASK_NOT_FOUND", SeedanceTaskNotFoundError),
    (404, "NOT_FOUND", SeedanceBadRequestError),
    (409, "INSUFFICIENT_CREDITS", SeedanceInsufficientCreditsError),
    (422, "INVALID_DURATION", SeedanceBadRequestError),
    (429, "RATE_LIMITED", SeedanceRateLimitError),
    (429, "SLOW_DOWN", SeedanceRateLimitError),
    (400, "RATE_LIMITED", SeedanceRateLimitError),
]


@pytest.mark.parametrize(("status", "code", "cls"), FOUR_XX)
def test_a_4xx_to_the_generate_post_is_a_refusal_refined_by_the_body_code(
    status: int, code: str, cls: type
) -> None:
    for raw in body_variants(status, code):
        err = generate_error(status, raw)
        assert type(err) is cls and err.error_code == code, raw
        assert err.creation is CreationState.REFUSED and never_created(err)
        assert "nothing was spent" in str(err)


@pytest.mark.parametrize(("status", "code", "cls"), FOUR_XX)
def test_a_4xx_code_in_an_http_200_envelope_is_a_refusal_too(status: int, code: str, cls: type) -> None:
    err = generate_error(200, envelope(status, f"{code}: no"))
    assert type(err) is cls and err.creation is CreationState.REFUSED and never_created(err)


@pytest.mark.parametrize("status", [400, 401, 402, 404, 429])
def test_a_4xx_with_a_non_json_body_is_still_a_refusal(status: int) -> None:
    # A gateway's rate limiter answers 429 with an empty body or a page: the status decides.
    for raw in (b"", b"<html>Too Many Requests</html>", b"slow down"):
        err = generate_error(status, raw)
        assert never_created(err) and not isinstance(err, SeedanceSubmissionUncertainError)


@pytest.mark.parametrize(
    "raw",
    [
        None,  # over MAX_BODY_BYTES: the transport stopped reading
        b"",
        b"<!DOCTYPE html><html>proxy</html>",
        b"not json",
        b"[1]",
        b'{"code": 200, "message": "success"}',
        b'{"code": 200, "data": {"status": "IN_PROGRESS"}}',
        b'{"code": 200, "data": {"task_id": ""}}',
        b'{"code": 200, "data": {"task_id": 42}}',
        b'{"code": 200, "data": {"task_id": "t"',
    ],
)
def test_a_2xx_without_a_readable_task_id_may_have_created_a_generation(raw: bytes | None) -> None:
    err = generate_error(200, raw)
    assert isinstance(err, SeedanceSubmissionUncertainError) and not never_created(err)


@pytest.mark.parametrize("status", [100, 204, 301, 302, 307])
def test_other_statuses_to_the_generate_post_may_have_created_a_generation(status: int) -> None:
    assert isinstance(generate_error(status, b""), SeedanceSubmissionUncertainError)


def test_a_good_answer_gives_the_task_id() -> None:
    raw = json.dumps({"code": 200, "data": {"task_id": " seed-1 ", "status": "IN_PROGRESS"}}).encode()
    assert generate_answer(200, raw, endpoint=GENERATE) == "seed-1"


# ----------------------------------------------------------------------------- status rule
@pytest.mark.parametrize("status", SERVER_STATUSES)
@pytest.mark.parametrize("code", BODY_CODES)
def test_any_5xx_to_a_status_read_is_a_retryable_server_error(status: int, code: str) -> None:
    for raw in body_variants(status, code):
        err = status_error(status, raw)
        assert type(err) is SeedanceServerError and err.retryable, raw
        assert "spends nothing" in str(err)


@pytest.mark.parametrize(("status", "code", "cls"), FOUR_XX)
def test_a_4xx_to_a_status_read_is_refined_by_the_body_code(status: int, code: str, cls: type) -> None:
    err = status_error(status, envelope(status, f"{code}: no"))
    assert type(err) is cls and err.retryable == (cls is SeedanceRateLimitError)
    assert err.creation is None  # a read creates nothing and says nothing about creation


def test_a_status_read_keeps_retry_after() -> None:
    with pytest.raises(SeedanceRateLimitError) as info:
        status_answer(429, b"", endpoint=STATUS, retry_after="7")
    assert info.value.retry_after == 7.0


@pytest.mark.parametrize("value", ["-1", "soon", "inf", "nan"])
def test_odd_retry_after_is_ignored(value: str) -> None:
    assert transport.parse_retry_after(value) is None


@pytest.mark.parametrize(
    "credits", [1e400, "1e400", "lots", float("nan"), float("inf"), -5, 10**400, "12.5", [3], True]
)
def test_an_insane_credit_count_reads_as_unknown_never_overflow(credits: object) -> None:
    from airflow_provider_seedance.models import SeedanceTask

    raw = json.dumps(
        {"code": 200, "data": {"task_id": "t", "status": "SUCCESS", "consumed_credits": credits}},
        default=str,
    ).replace('"Infinity"', "1e400")
    task = SeedanceTask.from_api(status_answer(200, raw.encode(), endpoint=STATUS))
    assert task.consumed_credits is None


@pytest.mark.parametrize(("credits", "expected"), [(28, 28), ("14", 14), (8.0, 8), ("1e3", 1000)])
def test_a_sane_credit_count_is_read(credits: object, expected: int) -> None:
    from airflow_provider_seedance.models import SeedanceTask

    raw = json.dumps(
        {"code": 200, "data": {"task_id": "t", "status": "SUCCESS", "consumed_credits": credits}}
    )
    assert (
        SeedanceTask.from_api(status_answer(200, raw.encode(), endpoint=STATUS)).consumed_credits == expected
    )


# ----------------------------------------------------------------------------- one predicate
@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (SeedanceValidationError("duration", 5, "4, 8, 12"), True),
        (SeedanceConfigurationError("no key"), True),
        (SeedanceConnectionError("refused", sent=False), True),
        (SeedanceConnectionError("dropped", sent=True), False),
        (SeedanceSubmissionUncertainError("dropped"), False),
        (SeedanceServerError(503, "RATE_LIMITED"), False),  # a read's error: no creation state
        (SeedanceTimeoutError("t", 1.0), False),
        (SeedanceError("what?"), False),
        (ValueError("not ours"), False),
    ],
)
def test_never_created_reads_only_the_typed_creation_state(exc: BaseException, expected: bool) -> None:
    assert never_created(exc) is expected


# ----------------------------------------------------------------------------- no answer
def _refused() -> requests.exceptions.ConnectionError:
    cause = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")  # type: ignore[arg-type]
    return requests.exceptions.ConnectionError(
        MaxRetryError(None, "/v1/generate", cause)  # type: ignore[arg-type]
    )


def _unresolved() -> requests.exceptions.ConnectionError:
    cause = NameResolutionError("nowhere.invalid", None, OSError("Name or service not known"))  # type: ignore[arg-type]
    return requests.exceptions.ConnectionError(MaxRetryError(None, "/v1/generate", cause))  # type: ignore[arg-type]


NOISE = ("HTTPConnectionPool", "Max retries exceeded", "urllib3", "NewConnectionError", "Errno")


@pytest.mark.parametrize("failure", [_refused, _unresolved, lambda: requests.exceptions.ConnectTimeout("x")])
def test_a_post_that_never_left_says_nothing_was_sent_or_spent_without_library_noise(failure) -> None:
    err = requests_failure(GENERATE, "http://seedance.internal:8080", failure())
    assert isinstance(err, SeedanceConnectionError) and err.creation is CreationState.NOT_SENT
    text = str(err)
    assert "nothing was sent and nothing was spent" in text
    assert "check the connection's base URL http://seedance.internal:8080" in text
    assert "service is running" in text
    assert not any(noise in text for noise in NOISE), text


@pytest.mark.parametrize(
    "failure",
    [
        lambda: requests.exceptions.ReadTimeout("read timed out"),
        lambda: requests.exceptions.ConnectionError("Connection aborted. RemoteDisconnected"),
        lambda: requests.exceptions.ChunkedEncodingError("broken"),
    ],
)
def test_a_post_that_may_have_arrived_says_a_generation_may_exist_and_what_to_do(failure) -> None:
    err = requests_failure(GENERATE, "http://h", failure())
    assert isinstance(err, SeedanceSubmissionUncertainError) and not never_created(err)
    text = str(err)
    assert "A generation may exist and may be billed" in text
    # No promise of a retry that re-attaches: the id never came back (red team 3 of #18).
    assert "no retry sends it or can re-attach to it" in text
    assert "`force_new=True` on a cleared try releases only this uncertain submission" in text
    assert not any(noise in text for noise in NOISE), text


@pytest.mark.parametrize(
    "failure",
    [_refused, lambda: requests.exceptions.ReadTimeout("x"), lambda: requests.exceptions.ConnectionError()],
)
def test_a_failed_status_read_says_it_spent_nothing(failure) -> None:
    err = requests_failure(STATUS, "http://h", failure())
    assert isinstance(err, SeedanceConnectionError) and err.retryable
    assert "Reading a status spends nothing" in str(err)
    assert not any(noise in str(err) for noise in NOISE)


def test_error_texts_never_show_url_credentials() -> None:
    err = requests_failure(GENERATE, "http://user:hunter2@h:8080", _refused())
    assert "hunter2" not in str(err) and "***@h:8080" in str(err)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:s3cret@proxy:3128", "http://***@proxy:3128"),
        ("http://token@proxy", "http://***@proxy"),
        ("http://proxy:3128", "http://proxy:3128"),
        (None, None),
    ],
)
def test_mask_url_hides_userinfo(url: str | None, shown: str | None) -> None:
    assert mask_url(url) == shown


# ----------------------------------------------------------------------------- bounded reads
class _Stream:
    """A response whose body is endless: counts how many chunks the reader pulled."""

    def __init__(self, headers: dict[str, str] | None = None) -> None:
        self.headers = headers or {}
        self.pulled = 0

    def iter_content(self, size: int):
        while True:
            self.pulled += 1
            yield b"x" * size


def test_sync_read_stops_once_past_the_cap() -> None:
    stream = _Stream()
    assert read_capped(stream, limit=MAX_BODY_BYTES) is None  # type: ignore[arg-type]
    assert stream.pulled * transport.READ_CHUNK <= MAX_BODY_BYTES + transport.READ_CHUNK


def test_sync_read_refuses_a_declared_huge_body_without_reading() -> None:
    stream = _Stream({"Content-Length": str(200 * 1024 * 1024)})
    assert read_capped(stream) is None  # type: ignore[arg-type]
    assert stream.pulled == 0


class _AsyncContent:
    def __init__(self) -> None:
        self.pulled = 0

    async def read(self, size: int) -> bytes:
        self.pulled += 1
        return b"x" * size


class _AsyncResponse:
    def __init__(self, content_length: int | None) -> None:
        self.content_length = content_length
        self.content = _AsyncContent()


def test_async_read_stops_once_past_the_cap() -> None:
    response = _AsyncResponse(None)
    assert asyncio.run(aread_capped(response)) is None  # type: ignore[arg-type]
    assert response.content.pulled * transport.READ_CHUNK <= MAX_BODY_BYTES + transport.READ_CHUNK


def test_async_read_refuses_a_declared_huge_body_without_reading() -> None:
    response = _AsyncResponse(200 * 1024 * 1024)
    assert asyncio.run(aread_capped(response)) is None  # type: ignore[arg-type]
    assert response.content.pulled == 0


async def _answer_of(raw: bytes) -> bytes | None:
    """``aread_capped`` of what a raw socket server sends (status line, headers, body) as it is."""
    import aiohttp

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(raw)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/") as response:
            return await aread_capped(response)
    finally:
        server.close()


def test_async_read_of_a_declared_length_is_the_body_and_a_short_one_a_client_error() -> None:
    """The one-read path for a declared length: the whole body; a body cut short is aiohttp's
    ``ClientPayloadError`` (a ``ClientError``, which the hook types as a transient failure)."""
    import aiohttp

    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n"
    assert asyncio.run(_answer_of(head + b'{"data": 1}')) == b'{"data": 1}'
    with pytest.raises(aiohttp.ClientError):
        asyncio.run(_answer_of(head + b'{"da'))


def test_async_read_of_a_small_compressed_answer_that_inflates_past_the_cap_is_refused() -> None:
    """The declared length of a gzip answer is the compressed one: 3 MB of JSON in ~3 KB. aiohttp
    inflates it, so the cap counts what it inflates to (the one-read path returned it all)."""
    inflated = b'{"data": "' + b"0" * (MAX_BODY_BYTES + 1024 * 1024) + b'"}'
    bomb = gzip.compress(inflated, 9)
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(bomb)
    assert len(bomb) < 64 * 1024
    assert asyncio.run(_answer_of(head + bomb)) is None
    small = gzip.compress(b'{"data": 1}')
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(small)
    assert asyncio.run(_answer_of(head + small)) == b'{"data": 1}'


def test_async_read_of_a_chunked_body_past_the_cap_is_refused() -> None:
    chunk = b"x" * 65536
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(MAX_BODY_BYTES // len(chunk) + 2))
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert asyncio.run(_answer_of(head + body + b"0\r\n\r\n")) is None
    small = b"b\r\n" + b'{"data": 1}' + b"\r\n0\r\n\r\n"
    assert asyncio.run(_answer_of(head + small)) == b'{"data": 1}'


@pytest.mark.parametrize(
    "failure",
    [
        lambda: requests.exceptions.InvalidURL(
            "Failed to parse: Host 'exa mple.com' contains invalid character"
        ),
        lambda: requests.exceptions.InvalidHeader("Invalid leading whitespace in header value"),
        lambda: requests.exceptions.MissingSchema("No scheme supplied"),
        lambda: requests.exceptions.InvalidSchema("No connection adapters were found"),
    ],
)
def test_a_request_that_could_not_even_be_built_was_never_sent(failure) -> None:
    # Raised while preparing the request: reporting "a generation may exist" would block the
    # task (its submitting mark kept) for a POST that never left.
    err = requests_failure(GENERATE, "http://h", failure())
    assert never_created(err) and not isinstance(err, SeedanceSubmissionUncertainError)
    assert "nothing was sent and nothing was spent" in str(err)


@pytest.mark.parametrize(
    ("status", "error", "retryable", "retry_after"),
    [
        (200, None, False, None),
        (203, None, False, None),
        (403, SeedanceVideoExpiredError, False, None),
        (404, SeedanceVideoExpiredError, False, None),
        (410, SeedanceVideoExpiredError, False, None),
        (400, SeedanceDownloadError, False, None),
        (429, SeedanceDownloadError, True, 5.0),
        (500, SeedanceDownloadError, True, 5.0),
        (503, SeedanceDownloadError, True, 5.0),
        (204, SeedanceDownloadError, False, None),
        (302, SeedanceDownloadError, False, None),
    ],
)
def test_a_video_hosts_answer_maps_to_one_typed_error(
    status: int, error: type | None, retryable: bool, retry_after: float | None
) -> None:
    """Expired URLs fail for good, 5xx/429 are retried (keeping their Retry-After), any other
    non-video answer fails; the URL shown is the one given (no signature)."""
    found = video_answer_error(status, "https://cdn.example.com/v.mp4", "5")
    if error is None:
        assert found is None
        return
    assert type(found) is error
    assert found.retryable is retryable and found.retry_after == retry_after
    assert "https://cdn.example.com/v.mp4" in str(found) and str(status) in str(found)
