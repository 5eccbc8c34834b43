"""What became of a generation: one typed value from the API's answer to the gallery's card.

:class:`GenerationResult` is the one shape the single operator, the batch operator (per item),
the sensor, the trigger events, XCom and the UI plugin share. It serialises to a JSON dict
with a schema version (:meth:`GenerationResult.to_xcom`) and reads back every shape the
released code wrote (:meth:`GenerationResult.from_xcom`), so existing galleries keep working.

Three endings that a user must be able to tell apart are separate outcomes here:
*nothing was sent* (0 credits, the reason) — or its sibling *the service refused the request*
(something was sent and answered with a 4xx: still 0 credits, the service's reason) —, *the
generation failed* (0 credits, the service's reason) and *paid, not delivered* (the credits,
the video link while it lasts, and why the task failed anyway). A submission whose answer was
lost is *uncertain*: it may have been charged. A video found at the destination is *reused*:
it is not a generation and costs nothing. :attr:`Outcome.summary` words each one as the task
log and the gallery say it.

Pure values, no I/O: this module sits beside :mod:`airflow_provider_seedance.models`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NoReturn, TypedDict

from airflow_provider_seedance._compat import StrEnum
from airflow_provider_seedance.models import (
    HasVideos,
    TaskStatus,
    credits_to_usd,
    estimate_credits,
    format_usd,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

#: Version of the dict :meth:`GenerationResult.to_xcom` writes. Records without it are the
#: released 0.x shape (read by :meth:`GenerationResult.from_xcom` all the same).
SCHEMA_VERSION = 2
#: Key of a large batch's value naming the file that holds its results (see
#: :mod:`airflow_provider_seedance.batch_results`, which reads it); its ``results`` is a sample.
RESULTS_MANIFEST_KEY = "results_manifest"


class Outcome(StrEnum):
    """How a generation (or the attempt to start one) ended, as a user needs to know it."""

    #: The generation succeeded (and was delivered, when a destination was set).
    SUCCEEDED = "succeeded"
    #: The destination already held the video: nothing was generated, 0 credits.
    REUSED = "reused"
    #: Submitted and not waited for (``wait_for_completion=False``), or still running.
    IN_PROGRESS = "in_progress"
    #: The service ended the generation FAILED: not billed.
    GENERATION_FAILED = "generation_failed"
    #: Nothing was sent (bad input, budget, unusable connection, service unreachable): nothing spent.
    NOT_SENT = "not_sent"
    #: The generate request was sent and the service refused it (a 4xx: bad key, no credits,
    #: a request it does not accept): no generation exists, nothing spent.
    REFUSED = "refused"
    #: The generate request may have created a generation whose id nobody knows.
    UNCERTAIN = "uncertain"
    #: The generation succeeded and was billed, but the Airflow task failed after that
    #: (delivery failed, the wait gave up, ...).
    PAID_NOT_DELIVERED = "paid_not_delivered"
    #: Submitted, but its end could not be learned (status unreadable, deadline passed).
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value

    @property
    def summary(self) -> str:
        """What this ending means for the user and the money, in the words the gallery uses."""
        return _SUMMARIES[self]

    @property
    def is_generation(self) -> bool:
        """Whether a generation exists (or may) for this outcome: reuse, not-sent and refused are not."""
        return self not in (Outcome.REUSED, Outcome.NOT_SENT, Outcome.REFUSED)

    @property
    def is_success(self) -> bool:
        return self in (Outcome.SUCCEEDED, Outcome.REUSED)


_SUMMARIES = {
    Outcome.SUCCEEDED: "Generated",
    Outcome.REUSED: "Reused from storage — not a generation, 0 credits",
    Outcome.IN_PROGRESS: "In progress",
    Outcome.GENERATION_FAILED: "The generation failed — not billed",
    Outcome.NOT_SENT: "Nothing was sent — nothing spent",
    Outcome.REFUSED: "The service refused the request — nothing spent",
    Outcome.PAID_NOT_DELIVERED: "Paid, not delivered",
    Outcome.UNCERTAIN: "Submission uncertain — may have been charged",
    Outcome.UNKNOWN: "Ended without a known result — may still be billed if it succeeds",
}


class ResultFormatError(ValueError):
    """A stored result cannot be read (hand-edited XCom, foreign data): skip it, never guess."""


def _credits(value: Any, *, where: str = "consumed_credits") -> int:
    """Whole, non-negative credits from a stored value; anything else is a :class:`ResultFormatError`."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ResultFormatError(f"{where} is a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise ResultFormatError(f"{where} is not a whole number of credits: {str(value)[:40]!r}")
    if number < 0 or number > 10**9:
        raise ResultFormatError(f"{where} is out of range: {number}")
    return number


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class Placement(TypedDict, total=False):
    """Where a result without a generation of its own stands: the submissions tried before (for
    a refused or uncertain request) and, for a batch item, its label and position."""

    seedance_task_ids: Iterable[str]
    item_id: str | None
    index: int | None


class FrozenRequest(dict):  # type: ignore[type-arg]
    """A result's request: a ``dict`` (JSON, equality and ``isinstance`` work as for any dict) that
    cannot be changed in place, so one result shared by a task, its XCom and the UI stays what it
    was. ``dict(r)``, ``copy.deepcopy`` and pickle work; a changed request is a new result
    (``result.with_(request=...)``). Only the top level is frozen: its values are the request's."""

    def _refuse(self, *_: Any, **__: Any) -> NoReturn:
        raise TypeError(
            "a GenerationResult's request cannot be changed in place; "
            "make a new result with result.with_(request={...})"
        )

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenRequest, (dict(self),))

    def __copy__(self) -> FrozenRequest:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenRequest:
        return FrozenRequest(copy.deepcopy(dict(self), memo))


@dataclass(frozen=True)
class GenerationResult(HasVideos):
    """One generation's result (or the reason there is none).

    ``task_id`` is the Seedance task id (``None`` when nothing was created or it is unknown);
    ``status`` the API status last seen (``None`` when nothing was sent). ``consumed_credits``
    is what the service billed for this generation (0 unless it succeeded).
    """

    outcome: Outcome
    task_id: str | None = None
    status: str | None = None
    video_urls: tuple[str, ...] = ()
    consumed_credits: int = 0
    request: Mapping[str, Any] = field(default_factory=dict)
    error_message: str | None = None
    #: Every Seedance task id submitted for this request, oldest first (resubmissions).
    seedance_task_ids: tuple[str, ...] = ()
    output_path: str | None = None
    bytes: int | None = None
    sha256: str | None = None
    created_at: str | None = None
    #: A batch item's ``id`` (its label) and position in the request list.
    item_id: str | None = None
    index: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.request, FrozenRequest):  # every way of building one, with_() too
            object.__setattr__(self, "request", FrozenRequest(self.request))

    # ------------------------------------------------------------------ views
    @property
    def consumed_usd(self) -> Decimal:
        return credits_to_usd(self.consumed_credits)

    @property
    def consumed_usd_text(self) -> str:
        return format_usd(self.consumed_credits)

    @property
    def possible_credits(self) -> int | None:
        """What this result may still cost beyond ``consumed_credits``: the request's estimate
        for a submission that may have been charged (uncertain) or may still be billed (running,
        end unknown), and for a paid generation whose record holds no credits (a released
        ``seedance_link`` of a task that failed after it); ``None`` for every settled ending, or
        when the request is not recorded."""
        unpriced_payment = self.outcome is Outcome.PAID_NOT_DELIVERED and self.consumed_credits == 0
        if not unpriced_payment and self.outcome not in (
            Outcome.UNCERTAIN,
            Outcome.UNKNOWN,
            Outcome.IN_PROGRESS,
        ):
            return None
        if not self.request:
            return None
        try:
            request = self.request
            return estimate_credits(
                request.get("resolution"), request.get("duration"), request.get("generate_audio")
            )
        except (ValueError, KeyError, TypeError):
            return None

    @property
    def reused_existing(self) -> bool:
        return self.outcome is Outcome.REUSED

    @property
    def is_success(self) -> bool:
        return self.outcome.is_success

    def with_(self, **changes: Any) -> GenerationResult:
        """A copy with ``changes`` (e.g. the delivery's ``output_path``, a failed task's outcome)."""
        return replace(self, **changes)

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_task(
        cls,
        task: Any,
        request: Mapping[str, Any] | None = None,
        *,
        seedance_task_ids: Iterable[str] = (),
        item_id: str | None = None,
        index: int | None = None,
    ) -> GenerationResult:
        """The result of a generation as the status API reported it (a :class:`SeedanceTask`)."""
        status = str(task.status)
        if status == TaskStatus.SUCCESS:
            outcome = Outcome.SUCCEEDED
        elif status == TaskStatus.FAILED:
            outcome = Outcome.GENERATION_FAILED
        else:
            outcome = Outcome.IN_PROGRESS
        ids = tuple(seedance_task_ids) or (task.task_id,)
        return cls(
            outcome=outcome,
            task_id=task.task_id,
            status=status,
            video_urls=tuple(task.video_urls),
            # Only a success is billed; a FAILED one is refunded whatever the payload says.
            consumed_credits=(task.consumed_credits or 0) if outcome is Outcome.SUCCEEDED else 0,
            request=dict(request if request is not None else task.request),
            error_message=task.error_message,
            seedance_task_ids=ids,
            created_at=task.created_at,
            item_id=item_id,
            index=index,
        )

    @classmethod
    def reused(
        cls,
        output_path: str,
        size: int,
        sha256: str,
        request: Mapping[str, Any],
        *,
        item_id: str | None = None,
        index: int | None = None,
    ) -> GenerationResult:
        """The destination already held this video: nothing submitted, 0 credits."""
        return cls(
            outcome=Outcome.REUSED,
            status=TaskStatus.SUCCESS,
            request=dict(request),
            output_path=output_path,
            bytes=size,
            sha256=sha256,
            item_id=item_id,
            index=index,
        )

    @classmethod
    def not_sent(
        cls, reason: str, request: Mapping[str, Any] | None = None, **where: Unpack[Placement]
    ) -> GenerationResult:
        """Nothing reached the service: nothing spent."""
        return cls._without_generation(Outcome.NOT_SENT, reason, request, where)

    @classmethod
    def refused(
        cls, reason: str, request: Mapping[str, Any] | None = None, **where: Unpack[Placement]
    ) -> GenerationResult:
        """The generate request reached the service and it refused it (4xx): nothing created,
        nothing spent. ``seedance_task_ids`` are earlier (FAILED, unbilled) submissions of it."""
        return cls._without_generation(Outcome.REFUSED, reason, request, where)

    @classmethod
    def uncertain(
        cls, reason: str, request: Mapping[str, Any] | None = None, **where: Unpack[Placement]
    ) -> GenerationResult:
        """The generate request may have reached the service and no task id came back: a
        generation may exist and may have been charged (not counted as spend, shown as possible)."""
        return cls._without_generation(Outcome.UNCERTAIN, reason, request, where)

    @classmethod
    def _without_generation(
        cls, outcome: Outcome, reason: str, request: Mapping[str, Any] | None, where: Placement
    ) -> GenerationResult:
        """A result with no generation of its own to describe (not sent, refused, uncertain)."""
        return cls(
            outcome=outcome,
            request=dict(request or {}),
            error_message=reason,
            seedance_task_ids=tuple(where.get("seedance_task_ids", ())),
            item_id=where.get("item_id"),
            index=where.get("index"),
        )

    # ------------------------------------------------------------------ XCom
    def to_xcom(self) -> dict[str, Any]:
        """JSON primitives with the schema version; the keys the README documents are kept."""
        value: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "outcome": self.outcome.value,
            "task_id": self.task_id,
            "status": self.status,
            "video_url": self.video_url,
            "video_urls": list(self.video_urls),
            "consumed_credits": self.consumed_credits,
            "consumed_usd": float(self.consumed_usd),
            "consumed_usd_text": self.consumed_usd_text,
            "request": dict(self.request),
            "error_message": self.error_message,
            "seedance_task_ids": list(self.seedance_task_ids),
            "created_at": self.created_at,
            "reused_existing": self.reused_existing,
        }
        if self.output_path is not None:
            value.update(output_path=self.output_path, bytes=self.bytes, sha256=self.sha256)
        if self.item_id is not None:
            value["id"] = self.item_id
        if self.index is not None:
            value["index"] = self.index
        return value

    @classmethod
    def from_xcom(cls, value: Any) -> GenerationResult:
        """Read a stored result: this schema, or any shape the released code wrote.

        Released shapes: the operator's and sensor's ``return_value`` (no ``schema``; reuse
        marked by ``reused_existing``; a batch item's failure as status ``"ERROR"``), the
        ``seedance_link`` XCom pushed before waiting, and a trigger event's ``task`` dict.

        :raises ResultFormatError: the value is not a result (never a guess, never a 500).
        """
        if not isinstance(value, Mapping):
            raise ResultFormatError(f"a result must be a JSON object, not {type(value).__name__}")
        schema = value.get("schema")
        if schema is not None and (not isinstance(schema, int) or schema > SCHEMA_VERSION):
            raise ResultFormatError(f"unknown result schema {schema!r}")
        task_id = _text(value.get("task_id"))
        status = _text(value.get("status"))
        status = status.strip().upper() if status else None
        urls_raw = value.get("video_urls")
        if isinstance(urls_raw, list):
            urls = tuple(u for u in urls_raw if isinstance(u, str) and u)
        elif _text(value.get("video_url")):
            urls = (value["video_url"],)
        elif isinstance(value.get("response"), list):  # an API ``data`` object
            urls = tuple(u for u in value["response"] if isinstance(u, str) and u)
        else:
            urls = ()
        outcome_raw = value.get("outcome")
        credits = _credits(value.get("consumed_credits"))
        if outcome_raw is not None:
            try:
                outcome = Outcome(outcome_raw)
            except ValueError:
                raise ResultFormatError(f"unknown outcome {outcome_raw!r}") from None
        else:
            outcome = _legacy_outcome(value, task_id, status, paid=bool(urls) or credits > 0)
        if outcome is not Outcome.SUCCEEDED and outcome is not Outcome.PAID_NOT_DELIVERED:
            credits = 0  # only a success is billed (released records wrote FAILED ones' credits)
        ids_raw = value.get("seedance_task_ids")
        ids = tuple(i for i in ids_raw if isinstance(i, str) and i) if isinstance(ids_raw, list) else ()
        if not ids and task_id:
            ids = (task_id,)
        request = value.get("request")
        size = value.get("bytes")
        index = value.get("index")
        label = value.get("id")
        return cls(
            outcome=outcome,
            task_id=task_id,
            status=status,
            video_urls=urls,
            consumed_credits=credits,
            request=dict(request) if isinstance(request, Mapping) else {},
            error_message=_text(value.get("error_message")),
            seedance_task_ids=ids,
            output_path=_text(value.get("output_path")),
            bytes=size if isinstance(size, int) and not isinstance(size, bool) else None,
            sha256=_text(value.get("sha256")),
            created_at=_text(value.get("created_at")),
            item_id=None if label is None or isinstance(label, (dict, list)) else str(label),
            index=index if isinstance(index, int) and not isinstance(index, bool) else None,
        )


#: The status released batch code wrote for an item without a usable ending (its own, not the API's).
_LEGACY_ERROR_STATUS = "ERROR"


def _legacy_outcome(
    value: Mapping[str, Any], task_id: str | None, status: str | None, *, paid: bool
) -> Outcome:
    """The outcome of a record written before outcomes were recorded. ``paid``: the record holds
    a video URL or credits (the generation succeeded and was billed)."""
    if value.get("reused_existing") is True:
        return Outcome.REUSED
    if status == TaskStatus.SUCCESS:
        return Outcome.SUCCEEDED if task_id else Outcome.REUSED
    if status == TaskStatus.FAILED:
        return Outcome.GENERATION_FAILED
    if status == _LEGACY_ERROR_STATUS:
        # A released batch item: a success whose delivery failed kept its URL and credits and
        # was overwritten with this status (paid, not delivered); otherwise no usable answer.
        if task_id and paid:
            return Outcome.PAID_NOT_DELIVERED
        return Outcome.UNKNOWN if task_id else Outcome.NOT_SENT
    if task_id:
        return Outcome.IN_PROGRESS
    raise ResultFormatError("a result names neither a generation nor a reuse")


def results_from_xcom(value: Any) -> list[GenerationResult]:
    """Every generation in a stored value: one result, or a batch's ``{"results": [...]}``.

    An unreadable item raises :class:`ResultFormatError` (the caller skips and counts it), and so
    does a large batch's manifest form, whose ``results`` is only a sample: read it with
    :func:`airflow_provider_seedance.batch_results.load_batch_results` (never a silent undercount).
    """
    if isinstance(value, Mapping) and value.get(RESULTS_MANIFEST_KEY) is not None:
        raise ResultFormatError(
            "this batch's results are in the file its results_manifest names (XCom holds a sample): "
            "read them with airflow_provider_seedance.batch_results.load_batch_results"
        )
    if isinstance(value, Mapping) and isinstance(value.get("results"), list):
        found = []
        for position, item in enumerate(value["results"]):
            result = GenerationResult.from_xcom(item)
            found.append(result if result.index is not None else result.with_(index=position))
        return found
    return [GenerationResult.from_xcom(value)]


def batch_totals(results: Iterable[GenerationResult]) -> dict[str, Any]:
    """Counts and spend of a batch's results (what the batch operator returns as ``totals``)."""
    items = list(results)
    credits = sum(r.consumed_credits for r in items)
    succeeded = sum(1 for r in items if r.is_success)
    running = sum(1 for r in items if r.outcome is Outcome.IN_PROGRESS)
    return {
        "requests": len(items),
        "succeeded": succeeded,
        "failed": len(items) - succeeded - running,
        "in_progress": running,
        "reused": sum(1 for r in items if r.outcome is Outcome.REUSED),
        "generations": sum(1 for r in items if r.outcome.is_generation),
        "credits": credits,
        "dollars": float(credits_to_usd(credits)),
        "dollars_text": format_usd(credits),
    }


__all__ = [
    "RESULTS_MANIFEST_KEY",
    "SCHEMA_VERSION",
    "GenerationResult",
    "Outcome",
    "ResultFormatError",
    "batch_totals",
    "results_from_xcom",
]
