"""From what happened on the wire to a typed error: the one place that reads HTTP answers.

Two readers share the envelope parsing, and both classify by **transport facts first**:

* :func:`status_answer` (``GET /v1/status``, safe to repeat): any 5xx is a
  :class:`SeedanceServerError` (retryable) whatever code its body names; a 4xx is refined
  by the body's code (401 → auth, 402 → credits, 404 + ``TASK_NOT_FOUND`` → not found,
  429 → rate limit, other 4xx → bad request); an HTTP 2xx whose envelope ``code`` is
  >= 400 is classified the same way by that code; anything unreadable is a
  :class:`SeedanceResponseError` (retryable).
* :func:`generate_answer` (``POST /v1/generate``, costs money): only a 4xx proves that
  nothing was created (``CreationState.REFUSED``), either as the HTTP status or as the
  envelope ``code`` of an HTTP 2xx answer. Everything else the server may have acted on
  means *a generation may exist* (:class:`SeedanceSubmissionUncertainError`,
  ``CreationState.MAY_EXIST``), whatever code the body names: any 5xx (a ``503`` saying
  ``RATE_LIMITED`` included), a 1xx/3xx, an HTTP 200 whose envelope says ``code: 500``
  (an answer from a server that may have created something), an unreadable or oversized
  body, and an answer without a task id. A 4xx body that is not JSON (a gateway's 429 page)
  is still a refusal: the status decides, the body only refines it.

Failures without an answer (:func:`requests_failure`, :func:`aiohttp_failure`) are
``NOT_SENT`` only when the request provably never left (refused, DNS, connect timeout,
proxy unreachable, a TLS handshake that failed: the request is written after it succeeds);
otherwise the request may have arrived. A rejected certificate has its own text (what it was
checked against, and which CA setting to change), never "connection refused".

Error texts say what happened to the money and what to do next, in plain words, without
transport-library noise (no ``HTTPConnectionPool(…)``, no ``Max retries exceeded``) and
without secrets (URLs are shown without their userinfo).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from airflow_provider_seedance.exceptions import (
    CreationState,
    SeedanceAPIError,
    SeedanceAuthError,
    SeedanceBadRequestError,
    SeedanceConnectionError,
    SeedanceDownloadError,
    SeedanceError,
    SeedanceInsufficientCreditsError,
    SeedanceRateLimitError,
    SeedanceResponseError,
    SeedanceServerError,
    SeedanceSubmissionUncertainError,
    SeedanceTaskNotFoundError,
    SeedanceVideoExpiredError,
)

if TYPE_CHECKING:
    import aiohttp
    import requests

    from airflow_provider_seedance.hooks.tls import TlsSettings

#: A status or generate answer this large is not one (a proxy error page, a runaway body).
MAX_BODY_BYTES = 2 * 1024 * 1024
#: Bytes read per step while enforcing :data:`MAX_BODY_BYTES`.
READ_CHUNK = 64 * 1024
#: Longest server message excerpt kept in an exception (bodies may be HTML pages, or huge).
MAX_SERVER_MESSAGE = 300

#: What every status-read failure says about money.
READ_SPENDS_NOTHING = "Reading a status spends nothing"
#: What a refused generate request says about money.
REFUSED_SPENT_NOTHING = "The service refused the generate request: nothing was created and nothing was spent"

_CODE_TOKEN = re.compile(r"^\s*([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[A-Z]{3,})\b")

#: Error code derived from the HTTP status when the body names none.
_CODE_BY_STATUS: dict[int, str] = {
    400: "INVALID_REQUEST",
    401: "INVALID_API_KEY",
    402: "INSUFFICIENT_CREDITS",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    429: "RATE_LIMITED",
}


# ---------------------------------------------------------------------------- reading bodies
def read_capped(response: requests.Response, limit: int = MAX_BODY_BYTES) -> bytes | None:
    """The body of a ``stream=True`` response, or ``None`` once it passes ``limit`` bytes.

    Never holds more than ``limit`` + one chunk in memory, whatever the server sends.
    """
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    buffer = bytearray()
    for chunk in response.iter_content(READ_CHUNK):
        buffer += chunk
        if len(buffer) > limit:
            return None
    return bytes(buffer)


async def aread_capped(response: aiohttp.ClientResponse, limit: int = MAX_BODY_BYTES) -> bytes | None:
    """Async :func:`read_capped`: bounded reads from an aiohttp response."""
    if response.content_length is not None and response.content_length > limit:
        return None
    if response.content_length is not None and not response.headers.get("Content-Encoding"):
        # aiohttp reads exactly the declared length: one read (a status answer, every poll). Not
        # for a compressed answer: its declared length is the compressed one, and aiohttp
        # inflates it (a few KB of gzip can be gigabytes).
        return await response.read()
    buffer = bytearray()
    while chunk := await response.content.read(READ_CHUNK):
        buffer += chunk
        if len(buffer) > limit:
            return None
    return bytes(buffer)


# ---------------------------------------------------------------------------- answers
@dataclass(frozen=True)
class _Answer:
    """An HTTP answer, read: either ``data``, or an API error, or a reason it is unreadable."""

    http_status: int
    #: The HTTP status, or the envelope's ``code`` when an HTTP 2xx carries an error code.
    status: int
    data: Mapping[str, Any] | None = None
    error_code: str = ""
    message: str = ""
    unreadable: str = ""


def _read_answer(http_status: int, body: bytes | None) -> _Answer:
    if body is None:
        return _Answer(
            http_status, http_status, unreadable=f"an answer too large (over {MAX_BODY_BYTES} bytes)"
        )
    if http_status >= 400:
        code, message = parse_error_body(http_status, body)
        return _Answer(http_status, http_status, error_code=code, message=message)
    if not 200 <= http_status < 300:
        return _Answer(http_status, http_status, unreadable=f"an unexpected HTTP {http_status} answer")
    try:
        payload = json.loads(body) if body.strip() else None
    except ValueError:
        if body.lstrip()[:1] == b"<":
            reason = "an HTML page instead of JSON (a proxy or wrong base URL?)"
        else:
            reason = "a body that is not JSON"
        return _Answer(http_status, http_status, unreadable=reason)
    if not isinstance(payload, Mapping):
        reason = "an empty body" if payload is None else "JSON that is not an object"
        return _Answer(http_status, http_status, unreadable=reason)
    envelope_code = payload.get("code")
    if isinstance(envelope_code, int) and not isinstance(envelope_code, bool) and envelope_code >= 400:
        # Some gateways answer HTTP 200 with the error in the envelope.
        error_code, message = parse_error_body(envelope_code, body)
        return _Answer(http_status, envelope_code, error_code=error_code, message=message)
    data = payload.get("data")
    if not isinstance(data, Mapping):
        return _Answer(http_status, http_status, unreadable="answer has no 'data' object")
    return _Answer(http_status, http_status, data=data)


def status_answer(
    http_status: int, body: bytes | None, *, endpoint: str, retry_after: str | None = None
) -> Mapping[str, Any]:
    """The ``data`` of a status answer, or the typed (status-first) error for it."""
    answer = _read_answer(http_status, body)
    if answer.unreadable:
        raise SeedanceResponseError(
            http_status, "MALFORMED_RESPONSE", answer.unreadable, endpoint=endpoint, note=READ_SPENDS_NOTHING
        )
    if answer.data is None:
        raise _error_of(answer, endpoint, retry_after, READ_SPENDS_NOTHING)
    return answer.data


def _error_of(
    answer: Any, endpoint: str, retry_after: str | None, note: str, creation: CreationState | None = None
) -> SeedanceAPIError:
    """The typed error for an answer that carries an error code (see :func:`api_error_class`)."""
    return api_error_class(answer.status, answer.error_code)(
        answer.status,
        answer.error_code,
        answer.message,
        endpoint=endpoint,
        retry_after=parse_retry_after(retry_after),
        note=note,
        creation=creation,
    )


def generate_answer(
    http_status: int, body: bytes | None, *, endpoint: str, retry_after: str | None = None
) -> str:
    """The task id of a generate answer, or the error that says what may exist (see module doc)."""
    answer = _read_answer(http_status, body)
    if answer.unreadable:
        raise SeedanceSubmissionUncertainError(
            f"HTTP {http_status} with {answer.unreadable}", status_code=http_status
        )
    if answer.data is None:
        if 400 <= answer.status < 500:
            note = REFUSED_SPENT_NOTHING + _refusal_next_step(answer.status, answer.error_code)
            raise _error_of(answer, endpoint, retry_after, note, CreationState.REFUSED)
        shown = f"HTTP {http_status}"
        if answer.status != http_status:
            shown += f", code {answer.status}"
        raise SeedanceSubmissionUncertainError(
            f"{shown} {answer.error_code}: a server error, which does not prove that nothing was created",
            status_code=answer.status,
            error_code=answer.error_code,
        )
    task_id = answer.data.get("task_id")
    if not isinstance(task_id, str) or not task_id.strip():
        raise SeedanceSubmissionUncertainError("the answer carried no task_id", status_code=http_status)
    return task_id.strip()


def _refusal_next_step(status: int, error_code: str) -> str:
    """What a user does about a refused generate request (the status decides, as in :func:`api_error`)."""
    error_class = _class_for_4xx(status, error_code)
    if error_class is SeedanceAuthError:
        return "; check the API key in the connection's password field."
    if error_class is SeedanceInsufficientCreditsError:
        return "; top up the account's credits (or ask for a shorter or smaller video), then clear the task."
    if error_class is SeedanceRateLimitError:
        return "; it may be sent again once the rate limit allows (the task's `retries` do that)."
    if status == 404 and error_code == "NOT_FOUND":
        return "; check the connection's base URL: it should be the service's root, e.g. https://seedanceapi.org."
    return "; fix what the service names and run the task again."


def error_from_answer(
    status: int, body: str | bytes | None, *, endpoint: str = "", retry_after: str | float | None = None
) -> SeedanceAPIError:
    """The typed error a status read raises for an error answer (status first, code refines a 4xx)."""
    code, message = parse_error_body(status, body)
    error_class = api_error_class(status, code)
    return error_class(status, code, message, endpoint=endpoint, retry_after=parse_retry_after(retry_after))


def api_error_class(status: int, error_code: str) -> type[SeedanceAPIError]:
    """The typed error for an error status: the status decides, a body code refines a 4xx."""
    if status >= 500:
        return SeedanceServerError
    if 400 <= status < 500:
        return _class_for_4xx(status, error_code)
    return SeedanceResponseError


def _class_for_4xx(status: int, error_code: str) -> type[SeedanceAPIError]:
    if status == 401 or error_code == "INVALID_API_KEY":
        return SeedanceAuthError
    if status == 402 or error_code == "INSUFFICIENT_CREDITS":
        return SeedanceInsufficientCreditsError
    if error_code == "TASK_NOT_FOUND":
        return SeedanceTaskNotFoundError
    if status == 429 or error_code == "RATE_LIMITED":
        return SeedanceRateLimitError
    return SeedanceBadRequestError


def parse_error_body(status_code: int, body: str | bytes | None) -> tuple[str, str]:
    """Return ``(error_code, short_message)`` from any error body: JSON or not, any shape.

    The code is read leniently, in this order: a ``code``/``error``/``error_code`` string
    field, the leading UPPER_SNAKE token of ``message``, else one derived from the status.
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    message = ""
    code: str | None = None
    try:
        payload = json.loads(text) if text.strip() else None
    except ValueError:
        payload = None
    if isinstance(payload, Mapping):
        code = _first_code_field(payload, ("error_code", "code", "error"))
        nested = payload.get("error")
        if code is None and isinstance(nested, Mapping):
            code = _first_code_field(nested, ("code", "error_code", "type"))
        raw_message = payload.get("message") or payload.get("detail") or payload.get("msg")
        if raw_message is None and isinstance(nested, Mapping):
            raw_message = nested.get("message")
        message = raw_message if isinstance(raw_message, str) else ""
    elif payload is None and text.strip() and not text.lstrip().startswith("<"):
        message = text
    if code is None and message:
        match = _CODE_TOKEN.match(message)
        if match:
            code = match.group(1)
    if code is None:
        code = _CODE_BY_STATUS.get(status_code) or ("INTERNAL_ERROR" if status_code >= 500 else "HTTP_ERROR")
    if not message and text.strip():
        message = "non-JSON body" if payload is None else ""
    return code, _sanitise(message)


def parse_retry_after(value: str | float | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form); ``None`` if absent or odd."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if 0 <= seconds < float("inf") else None


def _first_code_field(payload: Mapping[str, Any], names: Iterable[str]) -> str | None:
    for name in names:
        value = payload.get(name)
        match = _CODE_TOKEN.match(value) if isinstance(value, str) else None
        if match:
            return match.group(1)
    return None


def _sanitise(message: str) -> str:
    one_line = " ".join(message.split())
    if len(one_line) > MAX_SERVER_MESSAGE:
        one_line = one_line[: MAX_SERVER_MESSAGE - 1] + "…"
    return one_line


# ---------------------------------------------------------------------------- video answers
#: A video URL answering one of these no longer serves the video (expired signed URL, deleted object).
EXPIRED_STATUSES = frozenset({403, 404, 410})


def video_answer_error(
    status: int, shown_url: str, retry_after: str | float | None = None
) -> SeedanceDownloadError | None:
    """The typed error a video download raises for the answer ``status`` of the video's host
    (``None``: a body to read). ``shown_url`` is the URL as it may be shown (no signature); a
    5xx or 429 is transient and keeps its ``Retry-After`` for the retry policy."""
    if status in EXPIRED_STATUSES:
        return SeedanceVideoExpiredError(shown_url, status)
    if status >= 400:
        transient = status >= 500 or status == 429
        return SeedanceDownloadError(
            f"fetching {shown_url} answered HTTP {status}",
            retryable=transient,
            retry_after=parse_retry_after(retry_after) if transient else None,
        )
    if status not in (200, 203):
        return SeedanceDownloadError(f"fetching {shown_url} answered HTTP {status}, not a video body")
    return None


# ---------------------------------------------------------------------------- no answer
_DROPPED = "the connection dropped before an answer"


def mask_url(url: str | None) -> str | None:
    """``url`` with any ``user:password@`` replaced by ``***@`` (safe to log and show)."""
    if not url:
        return url
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def no_answer(
    endpoint: str, base_url: str, reason: str, state: CreationState, *, next_step: str | None = None
) -> SeedanceError:
    """The error for a request that got no answer, saying what happened to the money.

    ``next_step`` (a sentence without its final full stop) replaces the default advice of a
    request that never left: check the base URL and that the service is running.
    """
    shown = mask_url(base_url)
    if endpoint.startswith("POST"):
        if state is CreationState.NOT_SENT:
            step = next_step or f"check the connection's base URL {shown} and that the service is running"
            return SeedanceConnectionError(
                f"Seedance {endpoint} could not reach {shown} ({reason}): nothing was sent and nothing "
                f"was spent; {step}.",
                endpoint=endpoint,
                sent=False,
            )
        return SeedanceSubmissionUncertainError(f"{reason} after the request was sent to {shown}")
    check = ""
    if state is CreationState.NOT_SENT:
        step = next_step or "check the connection's base URL and that the service is running"
        check = f" {step[:1].upper()}{step[1:]}."
    return SeedanceConnectionError(
        f"Seedance {endpoint} got no answer from {shown} ({reason}). {READ_SPENDS_NOTHING}.{check}",
        endpoint=endpoint,
        sent=state is not CreationState.NOT_SENT,
    )


PROXY_STEP = "check the connection's proxy (extra 'proxy', or HTTPS_PROXY/HTTP_PROXY) and that it is running"
#: HTTP 407: only a proxy answers it; the service never saw the request.
PROXY_AUTH_REQUIRED = 407


def proxy_wants_credentials(endpoint: str, base_url: str) -> SeedanceError:
    """The proxy between here and the service asked for credentials (HTTP 407)."""
    return no_answer(
        endpoint,
        base_url,
        "the proxy asked for credentials: HTTP 407 Proxy Authentication Required",
        CreationState.NOT_SENT,
        next_step=(
            "put the proxy's user and password in the connection's proxy URL "
            "(http://user:password@proxy:port; the password is masked in logs)"
        ),
    )


def _preparation_errors() -> tuple[type[Exception], ...]:
    """``requests`` errors raised while the request is prepared, before a byte is sent."""
    import requests

    errors = requests.exceptions
    return (
        errors.InvalidURL,
        errors.InvalidHeader,
        errors.MissingSchema,
        errors.InvalidSchema,
        errors.URLRequired,
    )


def requests_failure(
    endpoint: str, base_url: str, exc: requests.exceptions.RequestException, *, tls: TlsSettings | None = None
) -> SeedanceError:
    """The typed error for a ``requests`` failure without an answer (``tls``: what checked the
    server's certificate, named in a certificate error)."""
    import requests
    from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NameResolutionError, NewConnectionError
    from urllib3.exceptions import SSLError as Urllib3SSLError

    if isinstance(exc, _preparation_errors()):  # raised while preparing: nothing was written
        return no_answer(
            endpoint, base_url, f"the request could not be built ({exc})", CreationState.NOT_SENT
        )
    if isinstance(exc, requests.exceptions.ProxyError):
        if "407" in str(exc):
            return proxy_wants_credentials(endpoint, base_url)
        return no_answer(
            endpoint,
            base_url,
            "the proxy could not be reached",
            CreationState.NOT_SENT,
            next_step=PROXY_STEP,
        )
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return no_answer(endpoint, base_url, "timed out connecting", CreationState.NOT_SENT)
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return no_answer(endpoint, base_url, "timed out waiting for the answer", CreationState.MAY_EXIST)
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason: Any = exc.args[0] if exc.args else None
        if isinstance(reason, MaxRetryError):  # urllib3 wraps the cause
            reason = reason.reason
        if isinstance(reason, NameResolutionError):
            return no_answer(endpoint, base_url, "the host name did not resolve", CreationState.NOT_SENT)
        if isinstance(reason, NewConnectionError):  # a ConnectTimeoutError subclass: test it first
            return no_answer(endpoint, base_url, "connection refused", CreationState.NOT_SENT)
        if isinstance(reason, ConnectTimeoutError):
            return no_answer(endpoint, base_url, "timed out connecting", CreationState.NOT_SENT)
        cause = reason.args[0] if isinstance(reason, Urllib3SSLError) and reason.args else reason
        tls_error = _tls_handshake_failure(endpoint, base_url, cause, tls)
        if tls_error is not None:
            return tls_error
        return no_answer(endpoint, base_url, _DROPPED, CreationState.MAY_EXIST)
    return no_answer(endpoint, base_url, f"{type(exc).__name__} before an answer", CreationState.MAY_EXIST)


#: TLS failures that only the handshake raises (the request is written after it succeeds).
_HANDSHAKE_REASONS = frozenset(
    {"WRONG_VERSION_NUMBER", "UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION"}
)


#: The next step after a rejected certificate (the same advice for both sides of the hook).
TLS_NEXT_STEP = (
    "set the connection's extra 'verify' (or REQUESTS_CA_BUNDLE) to the file of the CA that signed "
    "the server's certificate (a private CA, or a TLS-inspecting proxy's), then run the task again"
)


def _tls_handshake_failure(
    endpoint: str, base_url: str, cause: BaseException | None, tls: TlsSettings | None
) -> SeedanceError | None:
    """The error for a failed TLS handshake, when ``cause`` proves the handshake failed.

    Certificate checks and a non-TLS answer to the client hello happen before a byte of the
    request is written (``NOT_SENT``); any other TLS error (one while reading the answer)
    proves nothing and returns None.
    """
    import ssl

    if isinstance(cause, ssl.SSLCertVerificationError) or type(cause).__name__ == "CertificateError":
        detail = getattr(cause, "verify_message", None) or ""
        reason = "the server's TLS certificate was not accepted" + (f": {detail}" if detail else "")
        if tls is not None:
            reason += f"; {tls.describe()}"
        step = TLS_NEXT_STEP
        if _names_the_wrong_host(detail, cause):
            step = (
                "check the connection's base URL: its host must be a name (or IP address) the server's "
                "certificate names"
            )
        return no_answer(endpoint, base_url, reason, CreationState.NOT_SENT, next_step=step)
    if isinstance(cause, ssl.SSLError) and getattr(cause, "reason", None) in _HANDSHAKE_REASONS:
        return no_answer(
            endpoint,
            base_url,
            "the TLS handshake failed: the server does not speak TLS there",
            CreationState.NOT_SENT,
            next_step="check the connection's base URL: it may need http://, not https://",
        )
    return None


def _names_the_wrong_host(detail: str, cause: BaseException | None) -> bool:
    """The certificate is fine but names another host or IP address than the base URL's."""
    text = f"{detail} {cause}".lower()
    return any(words in text for words in ("hostname mismatch", "ip address mismatch", "doesn't match"))


def aiohttp_failure(
    endpoint: str, base_url: str, exc: BaseException, *, tls: TlsSettings | None = None
) -> SeedanceError:
    """The typed error for an aiohttp failure (or timeout) without an answer (``tls``: what
    checked the server's certificate, named in a certificate error)."""
    import socket
    import ssl

    import aiohttp

    # aiohttp >= 3.10 tells a connect timeout apart; older ones may not (then: may have arrived).
    connect_timeout: Any = getattr(aiohttp, "ConnectionTimeoutError", ())
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return no_answer(endpoint, base_url, "the proxy could not be reached", CreationState.NOT_SENT)
    # Certificate and handshake errors are ClientConnectorError subclasses: before that test.
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        tls_error = _tls_handshake_failure(endpoint, base_url, exc.certificate_error, tls)
        if tls_error is not None:
            return tls_error
    if isinstance(exc, aiohttp.ClientSSLError):
        cause = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else exc
        tls_error = _tls_handshake_failure(endpoint, base_url, cause, tls)
        if tls_error is not None:
            return tls_error
        return no_answer(
            endpoint,
            base_url,
            f"the TLS handshake failed ({getattr(cause, 'reason', None) or type(cause).__name__})",
            CreationState.NOT_SENT,
            next_step="check the connection's base URL and the server's TLS set-up",
        )
    if isinstance(exc, ssl.SSLError):  # raised bare by some aiohttp versions during the handshake
        tls_error = _tls_handshake_failure(endpoint, base_url, exc, tls)
        if tls_error is not None:
            return tls_error
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, socket.gaierror):
            return no_answer(endpoint, base_url, "the host name did not resolve", CreationState.NOT_SENT)
        return no_answer(endpoint, base_url, "connection refused", CreationState.NOT_SENT)
    if isinstance(exc, connect_timeout):
        return no_answer(endpoint, base_url, "timed out connecting", CreationState.NOT_SENT)
    if isinstance(exc, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        return no_answer(endpoint, base_url, "timed out waiting for the answer", CreationState.MAY_EXIST)
    return no_answer(endpoint, base_url, _DROPPED, CreationState.MAY_EXIST)
