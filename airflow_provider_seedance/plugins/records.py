"""What a Seedance task instance recorded, read only through :class:`GenerationResult`.

Every result the view shows or counts comes from :meth:`GenerationResult.from_xcom` (one
result) or, for a batch, from it applied per item. The XCom keys are tried in this order:

1. ``seedance_result`` — the final result of a single generation, pushed on every ending
   (also when the task failed: not sent, generation failed, paid but not delivered, ...);
2. ``return_value`` — the same on success, or a batch's ``{"results": [...], "totals": ...}``
   (or, for a large batch, its manifest form: the items are read from the results file it
   names, see :mod:`airflow_provider_seedance.batch_results`);
3. ``seedance_batch_results`` — the batch's dict when the batch task failed;
4. ``seedance_link`` — the progress record pushed before waiting. Released versions wrote
   only this for a failed task, so it is read too (the task's failure then decides whether
   the generation failed, was paid and not delivered, or ended unknown).

A record that cannot be read (hand-edited XCom, foreign data) is never guessed at: the
readers return ``None`` in its place and the caller counts it (``skipped_records``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from airflow_provider_seedance import batch_results
from airflow_provider_seedance.results import GenerationResult, Outcome, ResultFormatError

KEY_RESULT = "seedance_result"
KEY_RETURN = "return_value"
KEY_BATCH = "seedance_batch_results"
KEY_LINK = "seedance_link"
KEY_TASK_ID = "seedance_task_id"
#: Keys holding final results, most trusted first.
RESULT_KEYS = (KEY_RESULT, KEY_RETURN, KEY_BATCH)
XCOM_KEYS = (*RESULT_KEYS, KEY_LINK, KEY_TASK_ID)

#: Task-instance states of a generation that has not ended yet.
_NOT_ENDED = frozenset(
    {None, "running", "deferred", "up_for_retry", "up_for_reschedule", "queued", "scheduled", "restarting"}
)
#: Longest error text a card shows (the full text is in the task log).
MAX_ERROR_CHARS = 300
_SECRETS = (
    (re.compile(r"(?i)\b(bearer)(\s+)\S+"), r"\1\2[hidden]"),
    # A value only after ":" or "=": "the connection's password field" is advice, not a secret.
    (
        re.compile(r"(?i)\b(authorization|api[_-]?key|password|token)(\s*[:=]\s*)\S+"),
        r"\1\2[hidden]",
    ),
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{4,}"), "[hidden]"),
    (re.compile(r"(://)[^/@\s]+@"), r"\1[hidden]@"),
)


def clean_error(text: Any) -> str | None:
    """An error for a card: one line, at most :data:`MAX_ERROR_CHARS`, no key/password/userinfo."""
    if not isinstance(text, str) or not text.strip():
        return None
    line = " ".join(text.split())
    for pattern, replacement in _SECRETS:
        line = pattern.sub(replacement, line)
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 1] + "…"


def stored_value(xcoms: Mapping[str, Any]) -> tuple[str | None, Any]:
    """The most trusted final-result XCom present (key, value), or ``(None, None)``."""
    for key in RESULT_KEYS:
        if xcoms.get(key) is not None:
            return key, xcoms[key]
    return None, None


def batch_items(value: Any) -> list[Any] | None:
    """A batch value's per-item list (``None`` for a single result); a manifest's items come
    from its results file, cached by manifest (digest included) across page views.

    :raises batch_results.BatchResultsError: the manifest or its file cannot be read.
    """
    return batch_results.batch_items(value, cached=True)


def batch_size(value: Any) -> int | None:
    """How many items a batch value records without reading a results file (``None`` for a single
    result, or a manifest that cannot be read: one unreadable card)."""
    try:
        return batch_results.batch_size(value)
    except batch_results.BatchResultsError:
        return None


def _read_one(value: Any) -> GenerationResult | None:
    try:
        return GenerationResult.from_xcom(value)
    except (ResultFormatError, TypeError, ValueError, OverflowError):
        return None


def _legacy_failed(result: GenerationResult) -> GenerationResult:
    """A released record of a failed task (only ``seedance_link``): what the failure means."""
    if result.outcome is Outcome.SUCCEEDED:
        return result.with_(outcome=Outcome.PAID_NOT_DELIVERED)
    if result.outcome is Outcome.IN_PROGRESS:
        return result.with_(outcome=Outcome.UNKNOWN)
    return result


def read_results(
    xcoms: Mapping[str, Any], ti_state: str | None, window: slice | None = None
) -> list[tuple[int | None, GenerationResult | None]]:
    """``(item index, result)`` pairs of one task instance; ``None`` marks an unreadable record.

    ``window`` limits a batch to the items shown (only those are parsed). An empty list means
    nothing final is recorded yet (in flight, or failed before recording anything).
    """
    key, value = stored_value(xcoms)
    if key is None:
        link = xcoms.get(KEY_LINK)
        if not isinstance(link, Mapping) or not link.get("task_id"):
            return []  # nothing, or the reuse marker ({"output_path": ...}) pushed before return
        result = _read_one(link)
        if result is not None and ti_state == "failed":
            result = _legacy_failed(result)
        return [(None, result)]
    size = batch_size(value)
    if size is None:
        return [(None, None if batch_results.is_manifest(value) else _read_one(value))]
    positions = range(*(window or slice(None)).indices(size))
    try:
        items = batch_items(value) or []
    except batch_results.BatchResultsError:
        return [(position, None) for position in positions]  # shown and counted as unreadable
    found: list[tuple[int | None, GenerationResult | None]] = []
    for position in positions:
        result = _read_one(items[position])
        if result is not None and result.index is None:
            result = result.with_(index=position)
        found.append((position if result is None or result.index is None else result.index, result))
    return found


def card(
    ti: Mapping[str, Any], index: int | None, result: GenerationResult | None, xcoms: Mapping[str, Any]
) -> dict[str, Any]:
    """One gallery card: a task instance's generation (or a batch item), as JSON primitives."""
    ti_state = ti.get("state")
    base: dict[str, Any] = {
        "dag_id": ti["dag_id"],
        "run_id": ti["run_id"],
        "task_id": ti["task_id"],
        "map_index": ti["map_index"],
        "item": index,
        "operator": ti.get("operator"),
        "ti_state": ti_state,
        "try_number": ti.get("try_number"),
        "start_date": ti.get("start_date"),
        "end_date": ti.get("end_date"),
        "unreadable": False,
    }
    if result is None:
        link = xcoms.get(KEY_LINK)
        seedance_id = xcoms.get(KEY_TASK_ID) or (link.get("task_id") if isinstance(link, Mapping) else None)
        running = ti_state in _NOT_ENDED
        unreadable = bool(stored_value(xcoms)[0]) or index is not None
        return {
            **base,
            "unreadable": unreadable,
            "outcome": None,
            "outcome_text": None,
            "status": "IN_PROGRESS" if running else str(ti_state or "unknown").upper(),
            "seedance_task_id": seedance_id if isinstance(seedance_id, str) else None,
            "seedance_task_ids": [],
            "item_id": None,
            "error_message": "The recorded result could not be read." if unreadable else None,
            "request": {},
            "video_url": None,
            "video_url_expires": False,
            "output_path": None,
            "delivered_to": None,
            "bytes": None,
            "sha256": None,
            "reused_existing": False,
            "possible_credits": None,
            "consumed_credits": 0,
            "consumed_usd": 0.0,
            "consumed_usd_text": "$0",
        }
    return {
        **base,
        "outcome": result.outcome.value,
        "outcome_text": result.outcome.summary,
        "status": result.status or ("SUCCESS" if result.is_success else result.outcome.value.upper()),
        "seedance_task_id": result.task_id,
        "seedance_task_ids": list(result.seedance_task_ids),
        "item_id": result.item_id,
        "error_message": None if result.outcome is Outcome.SUCCEEDED else clean_error(result.error_message),
        "request": {k: v for k, v in result.request.items() if isinstance(v, (str, int, float, bool))},
        "video_url": result.video_url,
        "video_url_expires": result.video_url is not None and result.output_path is None,
        "output_path": result.output_path,
        # Where the video was delivered, as a card shows it (no userinfo or key in a URL).
        "delivered_to": clean_error(result.output_path) if result.is_success else None,
        "bytes": result.bytes,
        "sha256": result.sha256,
        "reused_existing": result.reused_existing,
        "possible_credits": result.possible_credits,
        "consumed_credits": result.consumed_credits,
        "consumed_usd": float(result.consumed_usd),
        "consumed_usd_text": result.consumed_usd_text,
    }


__all__ = [
    "KEY_BATCH",
    "KEY_LINK",
    "KEY_RESULT",
    "KEY_RETURN",
    "KEY_TASK_ID",
    "RESULT_KEYS",
    "XCOM_KEYS",
    "batch_items",
    "batch_size",
    "card",
    "clean_error",
    "read_results",
    "stored_value",
]
