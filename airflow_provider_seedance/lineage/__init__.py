"""What a Seedance task's lineage says: its input and output datasets and its run facet.

Pure values built from the task's :class:`~airflow_provider_seedance.results.GenerationResult`
list; no OpenLineage import here, so the provider works without the OpenLineage provider.
:mod:`airflow_provider_seedance.lineage.facets` turns a :class:`Lineage` into OpenLineage
objects, and is only imported from the operators' ``get_openlineage_facets_on_*`` methods.

Datasets are named as the OpenLineage naming spec names files and object stores
(``s3://bucket`` + key, ``gs://bucket`` + key, ``file`` + absolute path, ...). No name,
namespace or facet field carries a secret: a URL loses its user info (a connection id or a
password) and its query string and fragment (a signed URL's signature, a token).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlsplit

from airflow_provider_seedance.models import credits_to_usd
from airflow_provider_seedance.results import GenerationResult

#: At most this many input datasets, output datasets, Seedance task ids and requests are
#: listed for one task (a batch of 10,000 videos must not make a 10,000-dataset event);
#: the run facet says how many there were in all.
MAX_LISTED = 100

#: The run facet's key in ``run.facets``.
FACET_NAME = "seedance"

#: Request fields that are URLs: published without user info, query string or fragment.
_URL_FIELDS = ("callback_url",)


@dataclass(frozen=True)
class DatasetRef:
    """An OpenLineage dataset identity: ``namespace`` + ``name``."""

    namespace: str
    name: str


def _split(url: str) -> tuple[SplitResult, str] | None:
    """``url``'s parts and its ``host[:port]``; ``None`` when it does not parse (a bad port, a
    broken IPv6 host): lineage is built after the try ended and must not fail on one path."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname or ""
    return parts, f"{host}:{port}" if port is not None else host


def public_url(url: str) -> str:
    """``url`` without user info, query string and fragment (what may carry a secret); ``""``
    when it does not parse."""
    split = _split(url.strip())
    if split is None:
        return ""
    parts, host = split
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else parts.path


def dataset_for(uri: str) -> DatasetRef | None:
    """The OpenLineage dataset a file, object or URL is, named as the naming spec says.

    ``file:///a/b`` and ``/a/b`` -> (``file``, ``/a/b``); ``file://host/a`` -> (``file://host``,
    ``/a``); ``s3://bucket/k`` -> (``s3://bucket``, ``k``); ``gs://`` and ``gcs://`` ->
    (``gs://bucket``, key); any other ``scheme://host/path`` (``https`` reference images,
    ``hdfs``, ``abfs``, ...) -> (``scheme://host[:port]``, ``/path``). User info (an Airflow
    connection id such as ``s3://aws_default@bucket``, a password) and any query string or
    fragment are dropped. ``None`` for an empty value or one that does not parse.
    """
    text = str(uri).strip()
    if not text:
        return None
    if "://" not in text:
        return DatasetRef("file", text if text.startswith("/") else "/" + text)
    split = _split(text)
    if split is None:
        return None
    parts, host = split
    scheme = parts.scheme.lower()
    path = parts.path or "/"
    if scheme == "file":
        return DatasetRef(f"file://{host}", path) if host else DatasetRef("file", path)
    if scheme in ("s3", "s3a", "s3n"):
        return DatasetRef(f"s3://{host}", path.lstrip("/"))
    if scheme in ("gs", "gcs"):
        return DatasetRef(f"gs://{host}", path.lstrip("/"))
    return DatasetRef(f"{scheme}://{host}", path)


def request_parameters(request: Mapping[str, Any]) -> dict[str, Any]:
    """A request's API fields as lineage may publish them: URLs stripped of what may be secret.

    The request never holds the API key (that lives in the connection); what remains to guard
    is a URL carrying a token or a signature in its query string or user info.
    """
    published: dict[str, Any] = {}
    for key, value in request.items():
        if key == "image_urls" and isinstance(value, (list, tuple)):
            published[key] = [public_url(str(u)) for u in value]
        elif key in _URL_FIELDS and isinstance(value, str):
            published[key] = public_url(value)
        else:
            published[key] = value
    return published


@dataclass(frozen=True)
class Lineage:
    """One task's lineage: bounded dataset lists and the ``seedance`` run facet's fields."""

    inputs: tuple[DatasetRef, ...] = ()
    outputs: tuple[DatasetRef, ...] = ()
    #: The run facet's fields (see :func:`lineage_of` and docs/lineage.md).
    run_facet: dict[str, Any] = field(default_factory=dict)


def _unique(refs: Iterable[DatasetRef | None]) -> list[DatasetRef]:
    return list(dict.fromkeys(ref for ref in refs if ref is not None))


def lineage_of(results: Iterable[GenerationResult], *, limit: int = MAX_LISTED) -> Lineage:
    """The lineage of a task that ended with ``results`` (one, or a batch's, in request order).

    Inputs: the reference images of the requests. Outputs: the storage paths the videos were
    delivered to or found at (``skip_if_exists``); a video only at the service's expiring URL
    is not a dataset. Each list keeps the first ``limit`` distinct datasets; the run facet
    counts them all.
    """
    items = list(results)
    inputs = _unique(
        dataset_for(public_url(str(url)))
        for result in items
        for url in (result.request.get("image_urls") or ())
        if isinstance(url, str)
    )
    outputs = _unique(dataset_for(r.output_path) for r in items if r.output_path and r.is_success)
    task_ids = list(dict.fromkeys(tid for r in items for tid in (r.seedance_task_ids or ()) if tid))
    credits = sum(r.consumed_credits for r in items)
    outcomes = Counter(r.outcome.value for r in items)
    run_facet: dict[str, Any] = {
        "seedanceTaskIds": task_ids[:limit],
        "seedanceTaskIdCount": len(task_ids),
        "requests": [request_parameters(r.request) for r in items[:limit]],
        "requestCount": len(items),
        "outcomes": dict(sorted(outcomes.items())),
        "consumedCredits": credits,
        "consumedUsd": float(credits_to_usd(credits)),
        "inputCount": len(inputs),
        "outputCount": len(outputs),
        "listLimit": limit,
    }
    return Lineage(tuple(inputs[:limit]), tuple(outputs[:limit]), run_facet)


__all__ = [
    "FACET_NAME",
    "MAX_LISTED",
    "DatasetRef",
    "Lineage",
    "dataset_for",
    "lineage_of",
    "public_url",
    "request_parameters",
]
