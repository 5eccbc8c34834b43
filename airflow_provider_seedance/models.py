"""Requests, results and prices of the Seedance 2.0 API: pure values, no I/O.

The request type validates every field the public API guide defines *before* anything is
sent (bad input must never cost an HTTP round trip, let alone credits). The result type
reads the status payload leniently: the real service may add fields or statuses.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from airflow_provider_seedance._compat import StrEnum as StrEnum  # re-export (compat)
from airflow_provider_seedance.exceptions import (
    SeedanceResponseError,
    SeedanceValidationError,
)
from airflow_provider_seedance.hosts import is_public_host as is_public_host  # re-export (compat)
from airflow_provider_seedance.hosts import is_public_url
from airflow_provider_seedance.money import USD_PER_CREDIT, credits_to_usd, format_usd  # noqa: F401

# emulator/catalog.py keeps its own copy of these tables on purpose (the emulator models the
# server and shares no code with the client); the duplicate-code check lists that pair.
ASPECT_RATIOS: tuple[str, ...] = ("1:1", "16:9", "9:16", "4:3", "3:4", "21:9", "9:21")
RESOLUTIONS: tuple[str, ...] = ("480p", "720p")
DURATIONS: tuple[str, ...] = ("4", "8", "12")
MAX_PROMPT_CHARS = 2000
MAX_IMAGE_URLS = 1

#: What the API uses when a field is omitted (the guide's defaults).
DEFAULT_RESOLUTION = "720p"
DEFAULT_DURATION = "8"

#: The guide's price table as printed: credits by resolution and audio, for 4, 8 and 12 seconds.
_GUIDE_PRICES: dict[str, dict[bool, tuple[int, int, int]]] = {
    "480p": {False: (8, 14, 19), True: (14, 28, 38)},
    "720p": {False: (14, 28, 42), True: (28, 56, 84)},
}
#: Credits by (resolution, duration, generate_audio).
PRICE_TABLE: dict[tuple[str, str, bool], int] = {
    (resolution, duration, audio): credits
    for resolution, by_audio in _GUIDE_PRICES.items()
    for audio, row in by_audio.items()
    for duration, credits in zip(DURATIONS, row, strict=True)
}


class TaskStatus(StrEnum):
    """The status strings the guide defines. Anything else means "not finished yet".

    A status read from the API stays a ``str`` (the service may add new ones); compare it
    with these members, never with literals.
    """

    IN_PROGRESS = "IN_PROGRESS"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"

    # Set below the class (sets of members); kept for code written against the released class.
    TERMINAL: ClassVar[frozenset[str]]
    KNOWN: ClassVar[frozenset[str]]


#: The statuses that end a generation, and every status the guide defines.
TERMINAL_STATUSES: frozenset[str] = frozenset({TaskStatus.SUCCESS, TaskStatus.FAILED})
KNOWN_STATUSES: frozenset[str] = frozenset(TaskStatus)
# Kept as class attributes for code written against the released ``TaskStatus`` class.
TaskStatus.TERMINAL = TERMINAL_STATUSES
TaskStatus.KNOWN = KNOWN_STATUSES


#: The status a generation has in our records before any read of it answered (not a status the
#: guide defines: it never comes from the API, and it is not terminal).
UNREAD_STATUS = "UNKNOWN"


class TriggerEventStatus(StrEnum):
    """``status`` of the event :class:`SeedanceStatusTrigger` fires."""

    SUCCESS = "success"
    FAILED = "failed"
    TIMEOUT = "timeout"
    ERROR = "error"


class BatchEventStatus(StrEnum):
    """``status`` of the event :class:`SeedanceBatchStatusTrigger` fires."""

    DONE = "done"
    TIMEOUT = "timeout"
    ERROR = "error"


def _one_of(values: Sequence[str]) -> str:
    return "one of " + ", ".join(values)


def normalize_aspect_ratio(value: Any, *, prefix: str = "") -> str:
    if not isinstance(value, str) or value.strip() not in ASPECT_RATIOS:
        raise SeedanceValidationError("aspect_ratio", value, _one_of(ASPECT_RATIOS), prefix=prefix)
    return value.strip()


def normalize_resolution(value: Any, *, prefix: str = "") -> str:
    if not isinstance(value, str) or value.strip().lower() not in RESOLUTIONS:
        raise SeedanceValidationError("resolution", value, _one_of(RESOLUTIONS), prefix=prefix)
    return value.strip().lower()


def normalize_duration(value: Any, *, prefix: str = "") -> str:
    """Accept "4"/"8"/"12" and the ints 4/8/12; the API receives the string."""
    allowed = '"4", "8" or "12" (seconds; the ints 4, 8, 12 are accepted too)'
    if isinstance(value, bool):
        raise SeedanceValidationError("duration", value, allowed, prefix=prefix)
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise SeedanceValidationError("duration", value, allowed, prefix=prefix)
    if text not in DURATIONS:
        raise SeedanceValidationError("duration", value, allowed, prefix=prefix)
    return text


def _normalize_flag(name: str, value: Any, prefix: str) -> bool:
    if not isinstance(value, bool):
        raise SeedanceValidationError(name, value, "true or false (a boolean)", prefix=prefix)
    return value


def _normalize_prompt(value: Any, prefix: str) -> str:
    allowed = f"a non-blank string of 1 to {MAX_PROMPT_CHARS} characters"
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_PROMPT_CHARS:
        raise SeedanceValidationError("prompt", value, allowed, prefix=prefix)
    return value


def _normalize_image_urls(value: Any, prefix: str) -> tuple[str, ...]:
    allowed = (
        f"a list of at most {MAX_IMAGE_URLS} http(s) URL on a public host (the server fetches it: "
        "no localhost, loopback, private, link-local or reserved address, in any notation)"
    )
    urls: list[Any]
    if isinstance(value, str):
        urls = [value]
    elif isinstance(value, (list, tuple)):
        urls = list(value)
    else:
        raise SeedanceValidationError("image_urls", value, allowed, prefix=prefix)
    if len(urls) > MAX_IMAGE_URLS:
        raise SeedanceValidationError("image_urls", value, allowed, prefix=prefix)
    for url in urls:
        if not isinstance(url, str) or not is_public_url(url):
            raise SeedanceValidationError("image_urls", value, allowed, prefix=prefix)
    return tuple(urls)


def _normalize_callback_url(value: Any, prefix: str) -> str:
    allowed = (
        "a publicly reachable https:// URL (no localhost, loopback, private, link-local or "
        "reserved address, in any notation)"
    )
    if not isinstance(value, str) or not is_public_url(value.strip(), schemes=("https",)):
        raise SeedanceValidationError("callback_url", value, allowed, prefix=prefix)
    return value.strip()


def estimate_credits(
    resolution: str | None = None, duration: str | int | None = None, generate_audio: bool | None = None
) -> int:
    """Credits a generation costs, from the guide's price table (``None`` = the API default)."""
    key = (
        normalize_resolution(resolution if resolution is not None else DEFAULT_RESOLUTION),
        normalize_duration(duration if duration is not None else DEFAULT_DURATION),
        bool(generate_audio),
    )
    return PRICE_TABLE[key]


@dataclass(frozen=True)
class GenerationRequest:
    """A validated ``POST /v1/generate`` body.

    Fields left as ``None`` are not sent, so the API applies its own defaults. Building one
    raises :class:`SeedanceValidationError` naming the first bad field, its value and what is
    allowed. ``field_prefix`` (e.g. ``"requests[3]."``) locates the request in a batch.
    """

    prompt: str
    aspect_ratio: str | None = None
    resolution: str | None = None
    duration: str | None = None
    generate_audio: bool | None = None
    fixed_lens: bool | None = None
    image_urls: tuple[str, ...] | None = None
    callback_url: str | None = None
    field_prefix: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        p = self.field_prefix
        set_ = object.__setattr__
        set_(self, "prompt", _normalize_prompt(self.prompt, p))
        if self.aspect_ratio is not None:
            set_(self, "aspect_ratio", normalize_aspect_ratio(self.aspect_ratio, prefix=p))
        if self.resolution is not None:
            set_(self, "resolution", normalize_resolution(self.resolution, prefix=p))
        if self.duration is not None:
            set_(self, "duration", normalize_duration(self.duration, prefix=p))
        if self.generate_audio is not None:
            _normalize_flag("generate_audio", self.generate_audio, p)
        if self.fixed_lens is not None:
            _normalize_flag("fixed_lens", self.fixed_lens, p)
        if self.image_urls is not None:
            set_(self, "image_urls", _normalize_image_urls(self.image_urls, p))
        if self.callback_url is not None:
            set_(self, "callback_url", _normalize_callback_url(self.callback_url, p))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, field_prefix: str = "") -> GenerationRequest:
        """Build from a dict (a batch item, a stored request); unknown keys are an error."""
        if not isinstance(values, Mapping):
            raise SeedanceValidationError(
                "request", values, "a mapping with at least a 'prompt'", prefix=field_prefix
            )
        known = set(API_FIELDS)
        unknown = sorted(set(values) - known)
        if unknown:
            raise SeedanceValidationError(
                unknown[0],
                values[unknown[0]],
                "one of the API fields " + ", ".join(API_FIELDS),
                prefix=field_prefix,
            )
        if "prompt" not in values:
            raise SeedanceValidationError("prompt", None, "a non-blank string", prefix=field_prefix)
        return cls(**{k: values[k] for k in values}, field_prefix=field_prefix)

    def to_payload(self) -> dict[str, Any]:
        """The JSON body to send: only the fields that were set."""
        payload: dict[str, Any] = {"prompt": self.prompt}
        for name in API_FIELDS[1:]:
            value = getattr(self, name)
            if value is not None:
                payload[name] = list(value) if name == "image_urls" else value
        return payload

    @property
    def estimated_credits(self) -> int:
        return estimate_credits(self.resolution, self.duration, self.generate_audio)

    def fingerprint(self) -> str:
        """A stable hash of what is sent: a changed prompt never matches an old generation."""
        canonical = json.dumps(self.to_payload(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]


#: The generate fields of the API guide, in the guide's order.
API_FIELDS: tuple[str, ...] = (
    "prompt",
    "aspect_ratio",
    "resolution",
    "duration",
    "generate_audio",
    "fixed_lens",
    "image_urls",
    "callback_url",
)


class HasVideos:
    """A generation's videos: the API answers with a list, and its first entry is *the* video."""

    video_urls: Sequence[str]

    @property
    def video_url(self) -> str | None:
        return self.video_urls[0] if self.video_urls else None


#: Request fields an answer may echo that are kept out of results: the ``callback_url`` carries
#: a token that lets its holder ask our callback receiver to read the status.
UNRECORDED_REQUEST_FIELDS = frozenset({"callback_url"})


def _echoed_request(request: Any) -> dict[str, Any]:
    """The request as the answer echoes it, minus :data:`UNRECORDED_REQUEST_FIELDS`."""
    if not isinstance(request, Mapping):
        return {}
    return {k: v for k, v in request.items() if k not in UNRECORDED_REQUEST_FIELDS}


@dataclass(frozen=True)
class SeedanceTask(HasVideos):
    """One generation as ``GET /v1/status`` reports it."""

    task_id: str
    status: str
    video_urls: list[str] = field(default_factory=list)
    consumed_credits: int | None = None
    created_at: str | None = None
    request: dict[str, Any] = field(default_factory=dict)
    error_message: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def is_success(self) -> bool:
        return self.status == TaskStatus.SUCCESS

    @property
    def is_failed(self) -> bool:
        return self.status == TaskStatus.FAILED

    @property
    def consumed_usd(self) -> Decimal:
        return credits_to_usd(self.consumed_credits)

    @classmethod
    def from_api(cls, data: Any) -> SeedanceTask:
        """Parse the ``data`` object of a status answer, leniently but never silently wrong."""
        if not isinstance(data, Mapping):
            raise SeedanceResponseError(200, "MALFORMED_RESPONSE", "status answer has no 'data' object")
        task_id = data.get("task_id")
        status = data.get("status")
        if not isinstance(task_id, str) or not task_id:
            raise SeedanceResponseError(200, "MALFORMED_RESPONSE", "status answer has no task_id")
        if not isinstance(status, str) or not status:
            raise SeedanceResponseError(200, "MALFORMED_RESPONSE", f"task {task_id} has no status")
        raw_urls = data.get("response")
        if isinstance(raw_urls, str):
            urls = [raw_urls]
        elif isinstance(raw_urls, list):
            urls = [u for u in raw_urls if isinstance(u, str) and u]
        else:
            urls = []
        request = data.get("request")
        error_message = data.get("error_message")
        return cls(
            task_id=task_id,
            status=status.strip().upper(),
            video_urls=urls,
            consumed_credits=_as_int(data.get("consumed_credits")),
            created_at=data.get("created_at") if isinstance(data.get("created_at"), str) else None,
            request=_echoed_request(request),
            error_message=str(error_message) if error_message not in (None, "") else None,
        )

    def to_dict(self, *, compact: bool = False) -> dict[str, Any]:
        """JSON primitives only: fit for XCom and trigger events.

        ``compact``: without what :meth:`from_dict` does without (``video_url``, which is the
        first of ``video_urls``; an empty ``request``; no ``created_at``), for the event of a
        batch of thousands of generations.
        """
        data = {
            "task_id": self.task_id,
            "status": self.status,
            "video_url": self.video_url,
            "video_urls": list(self.video_urls),
            "consumed_credits": self.consumed_credits,
            "created_at": self.created_at,
            "request": dict(self.request),
            "error_message": self.error_message,
        }
        if compact:
            del data["video_url"]
            for empty in [name for name in ("created_at", "request") if not data[name]]:
                del data[empty]
        return data

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SeedanceTask:
        """Inverse of :meth:`to_dict` (also accepts an API ``data`` object)."""
        data = dict(values)
        if "response" not in data:
            data["response"] = data.get("video_urls") or []
        return cls.from_api(data)


def _as_int(value: Any) -> int | None:
    """A credit count from an API answer, or ``None`` when it is not a sane one.

    ``None`` (shown as "unknown") rather than an error: a generation whose credit count is
    garbled still succeeded and must still be delivered. Non-finite, fractional, negative
    and absurdly large values (``1e400``, ``"lots"``, NaN, ``-5``, ``10**400``) are all ``None``;
    nothing here can raise ``OverflowError``.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, (float, str)):
        try:
            number = Decimal(value.strip() if isinstance(value, str) else value)
        except ArithmeticError:  # decimal.InvalidOperation: not a number at all
            return None
    else:
        return None
    if not number.is_finite() or number < 0 or number > _MAX_CREDITS or number != number.to_integral_value():
        return None
    return int(number)


#: Larger credit counts are not credit counts (about $5 billion).
_MAX_CREDITS = 10**12
