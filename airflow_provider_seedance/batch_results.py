"""A batch's per-item results, inline in XCom or as a JSON Lines file named by a small manifest.

A catalog of 10,000 videos has 10,000 results; in one XCom that is megabytes in the metadata
DB, read back whole by every downstream task and gallery page. Above a size
(``xcom_results_limit``) the batch operator writes every item's :meth:`GenerationResult.to_xcom`
dict as one JSON line to object storage and keeps XCom small (:func:`bounded_outcome`)::

    {"totals": {...},                      # as in the small form
     "results": [...],                     # a SAMPLE: the first k failed + the first k others
     "results_sample": true,               # ... which "results" is (absent in the small form)
     "results_manifest": {"path": "s3://.../dag__run__task__-1__try1.<hash>.results.jsonl",
                          "items": 10000, "bytes": 8123456, "sha256": "<hex>", "schema": 2}}

with ``k = min(20, limit // 2)``: the manifest form never holds more results than the limit
(``0``: no sample), so its size does not grow with the batch.

:func:`load_batch_results` reads either form back into :class:`GenerationResult` values (the
file streamed and checked against the manifest's item count and digest); a missing, changed
or corrupt file is a :class:`BatchResultsError`, never a ``KeyError``.

The file is written like a delivered video: into a temporary object beside it, then moved
into place, so a reader never sees half of it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_seedance.hooks.delivery import as_storage_path, atomic_file
from airflow_provider_seedance.results import (
    RESULTS_MANIFEST_KEY,
    SCHEMA_VERSION,
    GenerationResult,
    Outcome,
    ResultFormatError,
    results_from_xcom,
)

if TYPE_CHECKING:
    import logging

    from airflow.sdk import ObjectStoragePath

#: XCom key of the manifest in a batch's value.
MANIFEST_KEY = RESULTS_MANIFEST_KEY
#: Marks the manifest form's ``results`` as a sample (absent, i.e. false, in the small form).
SAMPLE_KEY = "results_sample"
#: Items kept in the manifest form's sample: at most this many failed and this many others.
SAMPLE_EACH = 20
#: Default ``xcom_results_limit``: batches with more items write a results file.
DEFAULT_XCOM_RESULTS_LIMIT = 1000
#: Suffix of a results file.
SUFFIX = ".results.jsonl"
#: Bytes read at a time from a results file.
READ_BYTES = 1024 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class BatchResultsError(ResultFormatError):
    """The results file a manifest names is missing, unreadable, or not what the manifest says."""


@dataclass(frozen=True)
class ResultsManifest:
    """Where a batch's full results are, and what the file must be (count, size, digest)."""

    path: str
    items: int
    bytes: int
    sha256: str
    schema: int = SCHEMA_VERSION

    def to_xcom(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_xcom(cls, value: Any) -> ResultsManifest:
        """:raises BatchResultsError: not a manifest this version can read."""
        if not isinstance(value, Mapping):
            raise BatchResultsError(f"{MANIFEST_KEY} must be a JSON object, not {type(value).__name__}")
        path, items, size, digest, schema = (
            value.get(k) for k in ("path", "items", "bytes", "sha256", "schema")
        )
        if not isinstance(path, str) or not path:
            raise BatchResultsError(f"{MANIFEST_KEY}.path must be a non-empty string, got {path!r}")
        for name, number in (("items", items), ("bytes", size), ("schema", schema)):
            if not isinstance(number, int) or isinstance(number, bool) or number < 0:
                raise BatchResultsError(f"{MANIFEST_KEY}.{name} must be a whole number >= 0, got {number!r}")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise BatchResultsError(f"{MANIFEST_KEY}.sha256 must be 64 lowercase hex digits, got {digest!r}")
        if schema > SCHEMA_VERSION:  # type: ignore[operator]
            raise BatchResultsError(f"{MANIFEST_KEY}.schema {schema} is newer than this version reads")
        return cls(path, items, size, digest, schema)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- writing


def results_file_name(dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> str:
    """``<dag_id>__<run_id>__<task_id>__<map_index>__try<N>.<hash>.results.jsonl``: readable parts
    reduced to ``[A-Za-z0-9._-]`` (a run id's ``:`` and ``+`` become ``_``), and a hash of the
    exact identity, so two task instances whose ids differ only where they were reduced
    (run ids ``a:1`` and ``a+1``) never write the same file."""
    identity = json.dumps([dag_id, run_id, task_id, map_index, try_number], separators=(",", ":"))
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    parts = [_UNSAFE.sub("_", str(part)) for part in (dag_id, run_id, task_id, map_index)]
    return "__".join([*parts, f"try{try_number}"]) + f".{digest}" + SUFFIX


def default_results_path(output_path_template: str | None) -> str | None:
    """The folder of the videos, when ``output_path_template`` names one without fields in it."""
    if not output_path_template or "/" not in output_path_template:
        return None
    parent = output_path_template.rsplit("/", 1)[0]
    if not parent or "{" in parent or parent.endswith(":/") or parent.endswith(":"):
        return None
    return parent


def write_results_file(
    directory: str | ObjectStoragePath, name: str, items: Sequence[Mapping[str, Any]]
) -> ResultsManifest:
    """Write ``items`` as JSON Lines to ``directory/name`` (temporary object, then moved into place).

    Call it on the task's own thread: resolving the store may ask the task supervisor for a
    connection.
    """
    folder = as_storage_path(directory)
    destination = folder / name
    digest = hashlib.sha256()
    size = 0
    with atomic_file(destination) as handle:
        for item in items:
            line = (json.dumps(item, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
            handle.write(line)
            digest.update(line)
            size += len(line)
    return ResultsManifest(str(destination), len(items), size, digest.hexdigest())


#: Outcomes the sample counts as "others" (every other outcome is a failure of some kind).
_NOT_FAILED = frozenset({Outcome.SUCCEEDED.value, Outcome.REUSED.value, Outcome.IN_PROGRESS.value})


def sample(items: Sequence[Mapping[str, Any]], each: int = SAMPLE_EACH) -> list[Mapping[str, Any]]:
    """The first ``each`` failed items and the first ``each`` others, in request order."""
    failed: list[int] = []
    others: list[int] = []
    if each <= 0:
        return []
    for position, item in enumerate(items):
        bucket = others if item.get("outcome") in _NOT_FAILED else failed
        if len(bucket) < each:
            bucket.append(position)
        if len(failed) >= each and len(others) >= each:
            break
    return [items[position] for position in sorted(failed + others)]


def bounded_outcome(
    results: Sequence[GenerationResult],
    totals: Mapping[str, Any],
    *,
    limit: int | None,
    location: str | ObjectStoragePath | None,
    name: str | Callable[[], str],
    log: logging.Logger | Any,
) -> dict[str, Any]:
    """What the batch puts in XCom: the small form ``{"results", "totals"}`` when the batch has at
    most ``limit`` items (``None``: always), else the manifest form (see the module docstring),
    the results file written to ``location``/``name`` (``name`` may be a function, called only
    when a file is written).

    Without a ``location`` (or when the file cannot be written) the small form is kept and a
    warning says how to bound the XCom.
    """
    inline = [result.to_xcom() for result in results]
    if limit is None or len(inline) <= limit:
        return {"results": inline, "totals": dict(totals)}
    if location is None or location == "":
        log.warning(
            "Seedance batch: %d results go to XCom whole (more than xcom_results_limit=%d) because no "
            "results location is known; set results_path (or an output_path_template) to keep XCom "
            "to a small manifest, or xcom_results_limit=None to silence this",
            len(inline),
            limit,
        )
        return {"results": inline, "totals": dict(totals)}
    try:
        manifest = write_results_file(location, name() if callable(name) else name, inline)
    except Exception as exc:  # any store's error (not all are OSError): the results stay in XCom
        log.warning(
            "Seedance batch: could not write the results file to %s (%s); the %d results go to XCom whole",
            location,
            exc,
            len(inline),
        )
        return {"results": inline, "totals": dict(totals)}
    log.info(
        "Seedance batch: %d results written to %s (%d bytes); XCom holds a manifest and a sample",
        manifest.items,
        manifest.path,
        manifest.bytes,
    )
    return {
        "totals": dict(totals),
        "results": sample(inline, min(SAMPLE_EACH, limit // 2)),
        SAMPLE_KEY: True,
        MANIFEST_KEY: manifest.to_xcom(),
    }


# ---------------------------------------------------------------------------------- reading


def is_manifest(value: Any) -> bool:
    """Whether a stored batch value is the manifest form."""
    return isinstance(value, Mapping) and value.get(MANIFEST_KEY) is not None


def read_results_file(manifest: ResultsManifest) -> list[dict[str, Any]]:
    """Every item's stored dict, streamed from the file and checked against the manifest.

    :raises BatchResultsError: the file is missing or unreadable, a line is not a JSON object,
        or the item count or digest differs from the manifest's.
    """
    if not manifest.path.endswith(SUFFIX):
        # Only files the batch writes are read (an edited XCom cannot point a reader elsewhere).
        raise BatchResultsError(f"{MANIFEST_KEY}.path must name a *{SUFFIX} file, got {manifest.path!r}")
    digest = hashlib.sha256()
    items: list[dict[str, Any]] = []
    total = 0
    pending = b""
    try:
        with as_storage_path(manifest.path).open("rb") as handle:
            while True:
                # Never more than the manifest's size (+1 byte to notice more): a wrong or
                # endless file costs a bounded read.
                chunk = handle.read(min(READ_BYTES, manifest.bytes + 1 - total))
                if not chunk:
                    break
                total += len(chunk)
                if total > manifest.bytes:
                    raise BatchResultsError(
                        f"{manifest.path} is larger than the manifest's {manifest.bytes} bytes"
                    )
                digest.update(chunk)
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    items.append(_item(manifest, len(items) + 1, line))
    except BatchResultsError:
        raise
    except (OSError, ValueError) as exc:
        raise BatchResultsError(f"the batch results file {manifest.path} cannot be read: {exc}") from None
    if pending:
        items.append(_item(manifest, len(items) + 1, pending))
    if len(items) != manifest.items:
        raise BatchResultsError(
            f"{manifest.path} holds {len(items)} results, the manifest says {manifest.items}"
        )
    if digest.hexdigest() != manifest.sha256:
        raise BatchResultsError(f"{manifest.path} is not the file the batch wrote (its sha256 differs)")
    return items


def _item(manifest: ResultsManifest, number: int, line: bytes) -> dict[str, Any]:
    try:
        item = json.loads(line)
    except ValueError:
        raise BatchResultsError(f"{manifest.path}: line {number} is not JSON") from None
    if not isinstance(item, dict):
        raise BatchResultsError(f"{manifest.path}: line {number} is not a JSON object")
    return item


@functools.lru_cache(maxsize=4)
def _cached_file(manifest: ResultsManifest) -> tuple[dict[str, Any], ...]:
    return tuple(read_results_file(manifest))


def batch_items(value: Any, *, cached: bool = False) -> list[Any] | None:
    """A batch value's per-item stored dicts (from the file for the manifest form); ``None`` for a
    value that is not a batch's. ``cached``: keep the last few files read, by manifest (digest
    included), for readers that come back to the same batch (the gallery); do not change them.

    :raises BatchResultsError: the manifest or its file cannot be read.
    """
    if is_manifest(value):
        manifest = ResultsManifest.from_xcom(value[MANIFEST_KEY])
        return list(_cached_file(manifest)) if cached else read_results_file(manifest)
    if isinstance(value, Mapping) and isinstance(value.get("results"), list):
        return list(value["results"])
    return None


def batch_size(value: Any) -> int | None:
    """How many items a batch value records (the manifest's count: the file is not read)."""
    if is_manifest(value):
        return ResultsManifest.from_xcom(value[MANIFEST_KEY]).items
    if isinstance(value, Mapping) and isinstance(value.get("results"), list):
        return len(value["results"])
    return None


def load_batch_results(value: Any) -> list[GenerationResult]:
    """Every item's result of a batch's XCom value, whichever form it has.

    :raises BatchResultsError: the manifest's file is missing, unreadable or not the one written.
    :raises ResultFormatError: an item cannot be read as a result.
    """
    if is_manifest(value):
        return results_from_xcom({"results": batch_items(value)})
    return results_from_xcom(value)


__all__ = [
    "DEFAULT_XCOM_RESULTS_LIMIT",
    "MANIFEST_KEY",
    "SAMPLE_EACH",
    "SAMPLE_KEY",
    "BatchResultsError",
    "ResultsManifest",
    "batch_items",
    "batch_size",
    "bounded_outcome",
    "default_results_path",
    "is_manifest",
    "load_batch_results",
    "read_results_file",
    "results_file_name",
    "sample",
    "write_results_file",
]
