"""One error hierarchy for the provider, keyed by the Seedance API's error codes.

Every error here is safe to log: none of them ever holds the API key, request headers or
a raw response body (only a short, sanitised excerpt of a server message).

Classes that end a task for good (bad input, a bad key, a failed generation, a submission
whose outcome is unknown) also derive from Airflow's ``AirflowFailException`` so that a task
retry never repeats them: repeating them would either fail the same way or spend money
twice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_provider_seedance._compat import AirflowException, AirflowFailException

#: Longest server message excerpt kept in an exception (bodies may be HTML pages, or huge).
_MAX_SERVER_MESSAGE = 300
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


class SeedanceError(AirflowException):
    """Base class of every error raised by this provider."""


class SeedanceValidationError(AirflowFailException, SeedanceError, ValueError):
    """A request field is invalid; raised before any HTTP call. Never retried."""

    def __init__(self, field: str, value: Any, allowed: str, *, prefix: str = "") -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"Invalid {prefix}{field}: {describe_value(value)}. Allowed: {allowed}.")


class SeedanceConfigurationError(AirflowFailException, SeedanceError):
    """The Airflow connection is unusable (no API key, a base URL without a scheme, …)."""


class SeedanceAPIError(SeedanceError):
    """The Seedance API answered with an error.

    :param status_code: HTTP status of the answer (0 when there was none).
    :param error_code: the API's code token, e.g. ``INVALID_API_KEY``.
    :param server_message: a short, sanitised excerpt of the server's message.
    """

    retryable: bool = False

    def __init__(
        self,
        status_code: int,
        error_code: str,
        server_message: str = "",
        *,
        endpoint: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.status_code = status_code  # type: ignore[assignment]  # the HTTP status, may be 0
        self.error_code = error_code
        self.server_message = server_message
        self.endpoint = endpoint
        self.retry_after = retry_after
        where = f" from {endpoint}" if endpoint else ""
        detail = f": {server_message}" if server_message else ""
        super().__init__(f"Seedance API error {status_code} {error_code}{where}{detail}")

    @classmethod
    def from_response(
        cls,
        status_code: int,
        body: str | bytes | None,
        *,
        endpoint: str = "",
        retry_after: str | float | None = None,
    ) -> SeedanceAPIError:
        """Build the typed error for an HTTP error answer, whatever its body looks like."""
        error_code, server_message = parse_error_body(status_code, body)
        error_class = _class_for(status_code, error_code)
        return error_class(
            status_code,
            error_code,
            server_message,
            endpoint=endpoint,
            retry_after=parse_retry_after(retry_after),
        )


class SeedanceBadRequestError(AirflowFailException, SeedanceAPIError):
    """400: the server rejected the request's content (INVALID_PROMPT, TOO_MANY_IMAGES, …)."""


class SeedanceAuthError(AirflowFailException, SeedanceAPIError):
    """401 INVALID_API_KEY: the connection's API key is missing or wrong."""


class SeedanceInsufficientCreditsError(AirflowFailException, SeedanceAPIError):
    """402 INSUFFICIENT_CREDITS: top up the account, then clear the task."""


class SeedanceTaskNotFoundError(SeedanceAPIError):
    """404 TASK_NOT_FOUND: unknown task id, or a task of another account."""


class SeedanceRateLimitError(SeedanceAPIError):
    """429 RATE_LIMITED: slow down; ``retry_after`` holds the server's hint in seconds."""

    retryable = True


class SeedanceServerError(SeedanceAPIError):
    """5xx INTERNAL_ERROR (or a gateway error in front of the API)."""

    retryable = True


class SeedanceResponseError(SeedanceAPIError):
    """The server answered, but not with the JSON the contract describes."""

    retryable = True


class SeedanceConnectionError(SeedanceError):
    """The request did not get an answer (connection refused, reset, DNS, timeout)."""

    retryable = True

    def __init__(self, message: str, *, endpoint: str = "", sent: bool = True) -> None:
        self.endpoint = endpoint
        #: False only when the request provably never reached the server.
        self.sent = sent
        super().__init__(message)


def never_created(exc: BaseException) -> bool:
    """Whether a failed generate request provably created no generation (so nothing is owed
    and it may be sent again): the API refused it, or it never reached the server."""
    return isinstance(exc, SeedanceAPIError) or (isinstance(exc, SeedanceConnectionError) and not exc.sent)


class SeedanceSubmissionUncertainError(AirflowFailException, SeedanceError):
    """The generate request may have reached the server, and its answer was lost.

    A generation may exist (and be billed). It is never re-sent automatically: that could
    pay for the same video twice.
    """

    def __init__(self, reason: str, *, status_code: int = 0) -> None:
        self.status_code = status_code  # type: ignore[assignment]  # the HTTP status, may be 0
        self.reason = reason
        super().__init__(
            f"The generate request may have reached Seedance, but no usable answer came back "
            f"({reason}). A generation may exist and be billed: it was NOT resubmitted. Check the "
            f"account's dashboard before running this again."
        )


class SeedanceTimeoutError(SeedanceError):
    """The wall-clock deadline passed while the generation was still running.

    The generation keeps running on the server (the API has no cancel); ``task_id`` lets a
    later task or a ``SeedanceStatusSensor`` pick it up.
    """

    def __init__(self, task_id: str, waited_seconds: float, last_status: str = "IN_PROGRESS") -> None:
        self.task_id = task_id
        self.waited_seconds = waited_seconds
        self.last_status = last_status
        super().__init__(
            f"Seedance task {task_id} did not finish within {waited_seconds:.0f}s "
            f"(last status {last_status}). It may still finish: wait on it with "
            f"SeedanceStatusSensor(seedance_task_id={task_id!r})."
        )


class SeedanceGenerationFailedError(AirflowFailException, SeedanceError):
    """The generation ended FAILED. Failed generations are not billed."""

    def __init__(self, task_id: str, error_message: str | None) -> None:
        self.task_id = task_id
        self.error_message = error_message
        super().__init__(
            f"Seedance task {task_id} FAILED: {error_message or 'no error message given'} "
            f"(failed generations are not billed)"
        )


class SeedanceBatchFailedError(SeedanceError):
    """Some generations of a batch did not succeed (``fail_on_any_failure``).

    A retry re-attaches to every generation already submitted and reuses every video
    already delivered, so it only pays for what is submitted again.
    """


class SeedanceBudgetExceededError(AirflowFailException, SeedanceError):
    """The estimated cost is above ``max_credits``; raised before any HTTP call."""

    def __init__(self, estimated_credits: int, max_credits: int, what: str = "this generation") -> None:
        self.estimated_credits = estimated_credits
        self.max_credits = max_credits
        from airflow_provider_seedance.models import format_usd

        super().__init__(
            f"Estimated cost of {what} is {estimated_credits} credits ({format_usd(estimated_credits)}), "
            f"above max_credits={max_credits} ({format_usd(max_credits)}). Nothing was submitted."
        )


class SeedanceDownloadError(SeedanceError):
    """Delivering a video failed; nothing partial was left at the destination."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        self.retryable = retryable
        super().__init__(message)


class SeedanceVideoExpiredError(AirflowFailException, SeedanceDownloadError):
    """The video URL no longer serves the video (403/404/410)."""

    def __init__(self, url: str, status_code: int) -> None:
        self.url = url
        self.status_code = status_code  # type: ignore[assignment]
        super().__init__(
            f"The video URL {url} has expired (HTTP {status_code}): the video must be fetched again. "
            f"Generated videos are only served for a limited time (often 24-48 h); generate it again "
            f"(force_new=True) and deliver it with output_path so it is stored right away.",
            retryable=False,
        )


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
    elif payload is None and text.strip() and not _looks_like_markup(text):
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
    return seconds if seconds >= 0 else None


def _class_for(status_code: int, error_code: str) -> type[SeedanceAPIError]:
    if status_code == 401 or error_code == "INVALID_API_KEY":
        return SeedanceAuthError
    if status_code == 402 or error_code == "INSUFFICIENT_CREDITS":
        return SeedanceInsufficientCreditsError
    if error_code == "TASK_NOT_FOUND":
        return SeedanceTaskNotFoundError
    if status_code == 429 or error_code == "RATE_LIMITED":
        return SeedanceRateLimitError
    if status_code >= 500:
        return SeedanceServerError
    if 400 <= status_code < 500:
        return SeedanceBadRequestError
    return SeedanceResponseError


def _first_code_field(payload: Mapping[str, Any], names: Iterable[str]) -> str | None:
    for name in names:
        value = payload.get(name)
        if isinstance(value, str) and _CODE_TOKEN.match(value):
            return _CODE_TOKEN.match(value).group(1)  # type: ignore[union-attr]
    return None


def _looks_like_markup(text: str) -> bool:
    head = text.lstrip()[:20].lower()
    return head.startswith("<")


def _sanitise(message: str) -> str:
    one_line = " ".join(message.split())
    if len(one_line) > _MAX_SERVER_MESSAGE:
        one_line = one_line[: _MAX_SERVER_MESSAGE - 1] + "…"
    return one_line


def describe_value(value: Any) -> str:
    """A short, readable rendering of a user value for an error message."""
    if isinstance(value, str) and len(value) > 60:
        return f"{value[:40]!r}… ({len(value)} characters)"
    text = repr(value)
    if isinstance(value, bool) or value is None or isinstance(value, (int, float, str)):
        return text
    shown = text if len(text) <= 80 else f"{text[:60]}…"
    return f"{shown} (type {type(value).__name__})"
