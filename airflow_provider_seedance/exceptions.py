"""One error hierarchy for the provider, keyed by the Seedance API's error codes.

Every error here is safe to log: none of them ever holds the API key, request headers or
a raw response body (only a short, sanitised excerpt of a server message).

Classes that end a task for good (bad input, a bad key, a failed generation, a submission
whose outcome is unknown) also derive from Airflow's ``AirflowFailException`` so that a task
retry never repeats them: repeating them would either fail the same way or spend money
twice.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_seedance._compat import AirflowException, AirflowFailException, StrEnum
from airflow_provider_seedance.money import format_usd


class CreationState(StrEnum):
    """What a failed ``POST /v1/generate`` left behind on the server (decided by transport facts).

    * ``NOT_SENT``: the request provably never reached the server (connection refused, DNS,
      connect timeout, bad input or configuration found before sending). Nothing exists,
      nothing was spent, it may be sent again.
    * ``REFUSED``: the server answered with a 4xx (HTTP status, or the envelope ``code`` of
      an HTTP 2xx answer). Nothing exists, nothing was spent.
    * ``MAY_EXIST``: the request may have reached the server and no usable answer came back
      (any 5xx whatever its body says, a 1xx/3xx, a dropped or timed-out connection after
      sending, an unreadable or oversized body, an envelope ``code`` >= 500 in an HTTP 200,
      an answer without a task id). A generation may exist and be billed.
    """

    NOT_SENT = "not_sent"
    REFUSED = "refused"
    MAY_EXIST = "may_exist"


class SeedanceError(AirflowException):
    """Base class of every error raised by this provider.

    Typed state, declared here so that no caller probes with ``getattr``:

    * ``retryable``: a transient failure that a status read may simply try again.
    * ``creation``: for a failed generate request, what it left behind (see
      :class:`CreationState`); ``None`` for errors that do not come from a generate request.
    * ``error_code``: the API's code token (``INVALID_API_KEY``…) when the server named one.
    * ``retry_after``: the server's ``Retry-After`` in seconds, when it sent one.
    """

    retryable: bool = False
    creation: CreationState | None = None
    error_code: str | None = None
    retry_after: float | None = None

    def __init__(self, message: str = "", /, **facts: Any) -> None:
        """``facts`` become attributes: the typed details a caller reads (task id, credits...)."""
        self.__dict__.update(facts)
        super().__init__(message)


class SeedanceValidationError(AirflowFailException, SeedanceError, ValueError):
    """A request field is invalid; raised before any HTTP call. Never retried."""

    creation = CreationState.NOT_SENT

    def __init__(self, field: str, value: Any, allowed: str, *, prefix: str = "") -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"Invalid {prefix}{field}: {describe_value(value)}. Allowed: {allowed}.")


class SeedanceConfigurationError(AirflowFailException, SeedanceError):
    """The Airflow connection is unusable (no API key, a base URL without a scheme, …).

    Found before anything is sent, so a generate request that fails with it created nothing.
    """

    creation = CreationState.NOT_SENT


class SeedanceAPIError(SeedanceError):
    """The Seedance API answered with an error.

    Built by the transport layer (``hooks/transport.py``), which classifies by HTTP status
    first and uses the body's code only to refine a 4xx.

    :param status_code: HTTP status of the answer (or the envelope's code in an HTTP 200).
    :param error_code: the API's code token, e.g. ``INVALID_API_KEY``.
    :param server_message: a short, sanitised excerpt of the server's message.
    :param note: one sentence on what happened to the money / what to do next.
    :param creation: for a generate request, what it left behind (always ``REFUSED`` for an
        API error: 5xx answers to the generate request become
        :class:`SeedanceSubmissionUncertainError` instead).
    """

    def __init__(
        self,
        status_code: int,
        error_code: str,
        server_message: str = "",
        *,
        endpoint: str = "",
        retry_after: float | None = None,
        note: str = "",
        creation: CreationState | None = None,
    ) -> None:
        self.status_code = status_code  # type: ignore[assignment]  # the HTTP status, may be 0
        self.error_code = error_code
        self.server_message = server_message
        self.endpoint = endpoint
        self.retry_after = retry_after
        self.creation = creation
        where = f" from {endpoint}" if endpoint else ""
        detail = f": {server_message}" if server_message else ""
        tail = f". {note}" if note else ""
        super().__init__(f"Seedance API error {status_code} {error_code}{where}{detail}{tail}")


class SeedanceBadRequestError(AirflowFailException, SeedanceAPIError):
    """4xx: the server rejected the request's content (INVALID_PROMPT, TOO_MANY_IMAGES, …)."""


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
    """5xx (INTERNAL_ERROR, a gateway error, whatever code the body names) to a status read."""

    retryable = True


class SeedanceResponseError(SeedanceAPIError):
    """The server answered, but not with the JSON the contract describes."""

    retryable = True


class SeedanceConnectionError(SeedanceError):
    """The request did not get an answer (connection refused, reset, DNS, timeout).

    ``creation`` is ``NOT_SENT`` when the request provably never reached the server, else
    ``MAY_EXIST`` (for a read, that only means "it may have been received").
    """

    retryable = True

    def __init__(self, message: str, *, endpoint: str = "", sent: bool = True) -> None:
        self.endpoint = endpoint
        self.creation = CreationState.MAY_EXIST if sent else CreationState.NOT_SENT
        super().__init__(message)

    @property
    def sent(self) -> bool:
        """False only when the request provably never reached the server."""
        return self.creation is not CreationState.NOT_SENT


def never_created(exc: BaseException) -> bool:
    """THE predicate: whether a failed generate request provably created no generation (so
    nothing is owed and it may be sent again). Reads only the typed ``creation`` state."""
    return isinstance(exc, SeedanceError) and exc.creation in (CreationState.NOT_SENT, CreationState.REFUSED)


class SeedanceSubmissionUncertainError(AirflowFailException, SeedanceError):
    """The generate request may have reached the server, and no usable answer came back.

    A generation may exist (and be billed). It is never re-sent automatically: that could
    pay for the same video twice. ``creation`` is always ``MAY_EXIST``.

    :param reason: what went wrong, in plain words (no transport-library text).
    :param status_code: HTTP status of the answer, 0 when there was none.
    :param error_code: the code the body named, if any (informative only: it decides nothing).
    """

    creation = CreationState.MAY_EXIST

    def __init__(self, reason: str, *, status_code: int = 0, error_code: str | None = None) -> None:
        self.status_code = status_code  # type: ignore[assignment]  # the HTTP status, may be 0
        self.reason = reason
        self.error_code = error_code
        super().__init__(
            f"The generate request may have reached Seedance, but no usable answer came back "
            f"({reason}). A generation may exist and may be billed: it was NOT sent again, and no "
            f"retry sends it or can re-attach to it (its id never came back). Check the account's "
            f"dashboard first; then `force_new=True` on a cleared try releases only this uncertain "
            f"submission (that try sends a new, separately billed request)."
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

    task_id: str
    error_message: str | None

    def __init__(self, task_id: str, error_message: str | None) -> None:
        text = f"Seedance task {task_id} FAILED: {error_message or 'no error message given'}"
        super().__init__(
            f"{text} (failed generations are not billed)", task_id=task_id, error_message=error_message
        )


class SeedanceBatchFailedError(SeedanceError):
    """Some generations of a batch did not succeed (``fail_on_any_failure``).

    A retry re-attaches to every generation already submitted and reuses every video
    already delivered, so it only pays for what is submitted again.
    """


class SeedanceBudgetExceededError(AirflowFailException, SeedanceError):
    """The estimated cost is above ``max_credits``; raised before any HTTP call."""

    creation = CreationState.NOT_SENT

    estimated_credits: int
    max_credits: int

    def __init__(self, estimated_credits: int, max_credits: int, what: str = "this generation") -> None:
        super().__init__(
            f"Estimated cost of {what} is {estimated_credits} credits ({format_usd(estimated_credits)}), "
            f"above max_credits={max_credits} ({format_usd(max_credits)}). Nothing was submitted.",
            estimated_credits=estimated_credits,
            max_credits=max_credits,
        )


class SeedanceSharedBudgetExceededError(AirflowFailException, SeedanceError):
    """A budget that concurrent tasks share (per DAG run, per connection per day or month) has
    no room for this generation; raised before its generate request, so nothing was sent."""

    creation = CreationState.NOT_SENT

    budget: str
    spent_credits: int
    limit_credits: int
    estimated_credits: int

    def __init__(
        self,
        budget: str,
        spent_credits: int,
        limit_credits: int,
        estimated_credits: int,
        what: str = "this generation",
    ) -> None:
        super().__init__(
            f"The {budget} is exhausted: {spent_credits} credits ({format_usd(spent_credits)}) spent or "
            f"reserved of {limit_credits} ({format_usd(limit_credits)}); {what} would cost "
            f"{estimated_credits} credits ({format_usd(estimated_credits)}). Nothing was submitted, and "
            "the task is not retried (raise the limit, or wait for the next period, then clear it).",
            budget=budget,
            spent_credits=spent_credits,
            limit_credits=limit_credits,
            estimated_credits=estimated_credits,
        )


class SeedanceDownloadError(SeedanceError):
    """Delivering a video failed; nothing partial was left at the destination."""

    def __init__(self, message: str, *, retryable: bool = False, retry_after: float | None = None) -> None:
        self.retryable = retryable  # per instance: a dropped transfer is retryable, a 404 is not
        self.retry_after = retry_after  # a CDN's 429/503 Retry-After, honoured by the retry policy
        super().__init__(message)


class SeedanceNotAVideoError(AirflowFailException, SeedanceDownloadError):
    """The video URL served something that is not an MP4 (an error page, JSON, ...)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)  # not retryable: the same URL serves the same answer


class SeedanceVideoURLRefusedError(AirflowFailException, SeedanceDownloadError):
    """The video URL, or a redirect from it, leads where a download may not go (or loops)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)  # not retryable: the same URL serves the same answer


class SeedanceVideoTooLargeError(AirflowFailException, SeedanceDownloadError):
    """The video is larger than the configured cap (``max_video_bytes``)."""

    def __init__(self, url: str, cap: int, size: int | None) -> None:
        self.cap = cap
        seen = f"announced {size} bytes" if size is not None else f"passed {cap} bytes while streaming"
        super().__init__(
            f"The video at {url} is larger than the delivery cap of {_human(cap)} ({cap} bytes; it "
            f"{seen}); nothing was written. Raise the cap with SeedanceHook(max_video_bytes=...) or "
            f"the connection extra 'max_video_bytes' if videos this large are expected.",
        )  # not retryable (SeedanceDownloadError's default): a retry fetches the same


class SeedanceVideoExpiredError(AirflowFailException, SeedanceDownloadError):
    """The video URL no longer serves the video (403/404/410)."""

    def __init__(self, url: str, status_code: int) -> None:
        self.url = url
        self.status_code = status_code  # type: ignore[assignment]
        super().__init__(
            f"The video URL {url} has expired (HTTP {status_code}): the video must be fetched again. "
            f"Generated videos are only served for a limited time (often 24-48 h). The generation was "
            f"paid for; a retry or clear of this run re-attaches to it and cannot fetch it either. To "
            f"get the video, generate it again in a new DAG run, delivered with output_path so it is "
            f"stored right away.",
        )  # not retryable (SeedanceDownloadError's default): a retry fetches the same


def describe_value(value: Any) -> str:
    """A short, readable rendering of a user value for an error message."""
    if isinstance(value, str) and len(value) > 60:
        return f"{value[:40]!r}… ({len(value)} characters)"
    text = repr(value)
    if isinstance(value, bool) or value is None or isinstance(value, (int, float, str)):
        return text
    shown = text if len(text) <= 80 else f"{text[:60]}…"
    return f"{shown} (type {type(value).__name__})"


def _human(size: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            return f"{size / factor:g} {unit}"
    return f"{size} bytes"
