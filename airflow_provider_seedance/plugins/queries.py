"""What the Seedance view reads from Airflow's metadata DB: generations and their spend.

A *generation* is one task instance of a Seedance operator or sensor (``task_instance.operator``
names the class), with what the task recorded in XCom:

* ``return_value`` — the result dict (status, URLs, credits, request, and ``output_path``
  when the video was delivered);
* ``seedance_link`` / ``seedance_task_id`` — written before any wait, so they exist for
  failed and in-flight generations too (a failed generation raises: no ``return_value``);
* the rendered template fields (``rendered_task_instance_fields``) — the prompt and format of
  a generation that failed before returning anything (kept for the last N runs of a task).

No second database: every query here is a plain SELECT on ``task_instance``, ``xcom`` and
``rendered_task_instance_fields``, filtered to the DAG ids the caller may read. The gallery
pages on ``task_instance`` (one row per generation; no JSON parsing in SQL, so it runs the
same on SQLite, PostgreSQL and MySQL) and loads the XComs of one page only. Spend parses the
``return_value`` of the generations in the chosen range once, in Python.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, or_, select, tuple_

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: Operator classes whose task instances are generations (``task_instance.operator``).
SEEDANCE_OPERATORS: frozenset[str] = frozenset({"SeedanceGenerateOperator", "SeedanceStatusSensor"})
#: XCom keys the view reads (see the module docstring).
KEY_RESULT = "return_value"
KEY_LINK = "seedance_link"
KEY_TASK_ID = "seedance_task_id"
XCOM_KEYS = (KEY_RESULT, KEY_LINK, KEY_TASK_ID)

#: Status filter values -> the Airflow task-instance states they cover.
STATUS_FILTERS: dict[str, tuple[str, ...]] = {
    "success": ("success",),
    "failed": ("failed",),
    "running": ("running", "deferred", "up_for_retry", "up_for_reschedule", "queued", "restarting"),
}
#: States of task instances that never ran a generation (left out of the gallery).
NOT_RUN_STATES = ("skipped", "removed", "upstream_failed")
MAX_PAGE = 100
FAILED_WITHOUT_MESSAGE = "The Airflow task failed; the reason is in its log."


def operator_names() -> frozenset[str]:
    """The built-in classes plus ``[seedance] gallery_operators`` (comma separated, for subclasses)."""
    from airflow.configuration import conf

    extra = conf.get("seedance", "gallery_operators", fallback="") or ""
    return SEEDANCE_OPERATORS | {name.strip() for name in extra.split(",") if name.strip()}


@dataclass(frozen=True)
class GenerationFilter:
    """The gallery's filters; ``dag_ids`` is what the caller may read (an empty set shows nothing)."""

    dag_ids: frozenset[str]
    dag_id: str | None = None
    since: date | None = None
    until: date | None = None
    status: str | None = None
    operators: frozenset[str] = SEEDANCE_OPERATORS

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in STATUS_FILTERS:
            raise ValueError(f"status must be one of {sorted(STATUS_FILTERS)}")
        if self.since and self.until and self.since > self.until:
            raise ValueError("since must not be after until")


@dataclass
class Page:
    total: int
    limit: int
    offset: int
    items: list[dict[str, Any]] = field(default_factory=list)


def _ti_model() -> Any:
    from airflow.models.taskinstance import TaskInstance

    return TaskInstance


def _when(ti: Any) -> Any:
    """When a generation happened, for ordering and date filters: its end, else its start."""
    return func.coalesce(ti.end_date, ti.start_date)


def day_bounds(since: date | None, until: date | None) -> tuple[datetime | None, datetime | None]:
    """Inclusive UTC days -> ``[start, end)`` datetimes."""
    start = datetime.combine(since, time.min, tzinfo=timezone.utc) if since else None
    end = datetime.combine(until + timedelta(days=1), time.min, tzinfo=timezone.utc) if until else None
    return start, end


def _conditions(ti: Any, flt: GenerationFilter) -> list[Any]:
    readable = set(flt.dag_ids)
    if flt.dag_id is not None:
        readable &= {flt.dag_id}
    conditions: list[Any] = [
        ti.dag_id.in_(sorted(readable)),
        ti.operator.in_(sorted(flt.operators)),
        ti.start_date.is_not(None),
        or_(ti.state.is_(None), ti.state.not_in(NOT_RUN_STATES)),
    ]
    if flt.status is not None:
        conditions.append(ti.state.in_(STATUS_FILTERS[flt.status]))
    start, end = day_bounds(flt.since, flt.until)
    if start is not None:
        conditions.append(_when(ti) >= start)
    if end is not None:
        conditions.append(_when(ti) < end)
    return conditions


def decode_xcom(value: Any) -> Any:
    """An XCom value as stored (JSON, possibly a JSON string of JSON) -> Python."""
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    if isinstance(value, dict) and "__classname__" in value:
        try:
            from airflow.models.xcom import XComModel

            class _Row:
                pass

            row = _Row()
            row.value = json.dumps(value)  # type: ignore[attr-defined]
            return XComModel.deserialize_value(row)
        except Exception:
            return value
    return value


TiKey = tuple[str, str, str, int]


def _load_xcoms(session: Session, keys: list[TiKey]) -> dict[TiKey, dict[str, Any]]:
    from airflow.models.xcom import XComModel as X

    found: dict[TiKey, dict[str, Any]] = defaultdict(dict)
    if not keys:
        return found
    rows = session.execute(
        select(X.dag_id, X.run_id, X.task_id, X.map_index, X.key, X.value).where(
            tuple_(X.dag_id, X.run_id, X.task_id, X.map_index).in_(keys), X.key.in_(XCOM_KEYS)
        )
    )
    for dag_id, run_id, task_id, map_index, key, value in rows:
        found[(dag_id, run_id, task_id, map_index)][key] = decode_xcom(value)
    return found


def _load_rendered(session: Session, keys: list[TiKey]) -> dict[TiKey, dict[str, Any]]:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as R

    found: dict[TiKey, dict[str, Any]] = {}
    if not keys:
        return found
    rows = session.execute(
        select(R.dag_id, R.run_id, R.task_id, R.map_index, R.rendered_fields).where(
            tuple_(R.dag_id, R.run_id, R.task_id, R.map_index).in_(keys)
        )
    )
    for dag_id, run_id, task_id, map_index, fields in rows:
        fields = decode_xcom(fields)
        if isinstance(fields, dict):
            found[(dag_id, run_id, task_id, map_index)] = fields
    return found


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat()


REQUEST_FIELDS = ("prompt", "aspect_ratio", "resolution", "duration", "generate_audio", "fixed_lens")


def build_generation(
    ti: Mapping[str, Any], xcoms: Mapping[str, Any], rendered: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """One gallery record from a task instance row, its XComs and its rendered fields."""
    result = xcoms.get(KEY_RESULT)
    result = result if isinstance(result, dict) else {}
    link = xcoms.get(KEY_LINK)
    link = link if isinstance(link, dict) else {}
    request = result.get("request") if isinstance(result.get("request"), dict) else None
    if request is None:
        request = link.get("request") if isinstance(link.get("request"), dict) else None
    if request is None and rendered:
        request = {k: rendered[k] for k in REQUEST_FIELDS if rendered.get(k) not in (None, "")}
    request = {k: request.get(k) for k in REQUEST_FIELDS if k in request} if request else {}

    ti_state = ti.get("state")
    status = result.get("status") or link.get("status")
    error = result.get("error_message") or link.get("error_message")
    if ti_state == "failed":
        # The operator raised: a FAILED generation, a timeout, or an error around it.
        status = "FAILED"
        error = error or FAILED_WITHOUT_MESSAGE
    elif status is None:
        running = ti_state in STATUS_FILTERS["running"]
        status = "IN_PROGRESS" if running else str(ti_state or "UNKNOWN").upper()

    seedance_task_id = result.get("task_id") or link.get("task_id") or xcoms.get(KEY_TASK_ID)
    output_path = result.get("output_path")
    return {
        "dag_id": ti["dag_id"],
        "run_id": ti["run_id"],
        "task_id": ti["task_id"],
        "map_index": ti["map_index"],
        "operator": ti.get("operator"),
        "ti_state": ti_state,
        "try_number": ti.get("try_number"),
        "start_date": _iso(ti.get("start_date")),
        "end_date": _iso(ti.get("end_date")),
        "seedance_task_id": seedance_task_id if isinstance(seedance_task_id, str) else None,
        "status": status,
        "error_message": error if status != "SUCCESS" else None,
        "request": request,
        "video_url": result.get("video_url") or link.get("video_url"),
        "output_path": output_path if isinstance(output_path, str) else None,
        "bytes": result.get("bytes"),
        "sha256": result.get("sha256"),
        "reused_existing": bool(result.get("reused_existing")),
        "consumed_credits": int(result.get("consumed_credits") or 0),
        "consumed_usd": float(result.get("consumed_usd") or 0.0),
    }


_TI_COLUMNS = ("dag_id", "run_id", "task_id", "map_index", "state", "operator", "try_number")


def list_generations(session: Session, flt: GenerationFilter, *, limit: int = 24, offset: int = 0) -> Page:
    """Newest first; one page of records, with the total for the pager."""
    limit = max(1, min(int(limit), MAX_PAGE))
    offset = max(0, int(offset))
    if not flt.dag_ids:
        return Page(total=0, limit=limit, offset=offset)
    ti = _ti_model()
    conditions = _conditions(ti, flt)
    total = session.scalar(select(func.count()).select_from(ti).where(*conditions)) or 0
    columns = [getattr(ti, name) for name in _TI_COLUMNS]
    rows = session.execute(
        select(*columns, ti.start_date, ti.end_date)
        .where(*conditions)
        .order_by(_when(ti).desc(), ti.dag_id, ti.run_id, ti.task_id, ti.map_index)
        .limit(limit)
        .offset(offset)
    ).all()
    records = [dict(zip((*_TI_COLUMNS, "start_date", "end_date"), row, strict=True)) for row in rows]
    keys: list[TiKey] = [(r["dag_id"], r["run_id"], r["task_id"], r["map_index"]) for r in records]
    xcoms = _load_xcoms(session, keys)
    need_rendered = [k for k in keys if not isinstance(xcoms.get(k, {}).get(KEY_RESULT), dict)]
    rendered = _load_rendered(session, need_rendered)
    items = [
        build_generation(r, xcoms.get(k, {}), rendered.get(k)) for r, k in zip(records, keys, strict=True)
    ]
    return Page(total=int(total), limit=limit, offset=offset, items=items)


def dags_with_generations(session: Session, dag_ids: Collection[str], operators: Iterable[str]) -> list[str]:
    """The readable DAG ids that have at least one generation (for the DAG filter)."""
    if not dag_ids:
        return []
    ti = _ti_model()
    rows = session.scalars(
        select(ti.dag_id)
        .where(ti.dag_id.in_(sorted(dag_ids)), ti.operator.in_(sorted(operators)))
        .distinct()
        .order_by(ti.dag_id)
    )
    return list(rows)


def find_result(session: Session, key: TiKey, operators: Iterable[str]) -> dict[str, Any] | None:
    """The ``return_value`` of one Seedance task instance (None if it is not one, or has none)."""
    from airflow.models.xcom import XComModel as X

    ti = _ti_model()
    dag_id, run_id, task_id, map_index = key
    value = session.scalar(
        select(X.value)
        .join(
            ti,
            and_(
                ti.dag_id == X.dag_id,
                ti.run_id == X.run_id,
                ti.task_id == X.task_id,
                ti.map_index == X.map_index,
            ),
        )
        .where(
            X.dag_id == dag_id,
            X.run_id == run_id,
            X.task_id == task_id,
            X.map_index == map_index,
            X.key == KEY_RESULT,
            ti.operator.in_(sorted(operators)),
        )
    )
    value = decode_xcom(value)
    return value if isinstance(value, dict) else None


# ---------------------------------------------------------------------------------- spend


def spend(session: Session, flt: GenerationFilter) -> dict[str, Any]:
    """Credits and dollars per UTC day and per DAG over ``flt``'s range (both ends inclusive).

    Billed figures come from ``return_value`` (failed generations are not billed). A generation
    watched by several tasks (an operator and a sensor) counts once, by its Seedance task id.
    """
    from airflow.models.xcom import XComModel as X

    ti = _ti_model()
    by_day: dict[str, dict[str, Any]] = {}
    by_dag: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    total: dict[str, Any] = _bucket()
    if flt.dag_ids:
        conditions = _conditions(ti, flt)
        rows = session.execute(
            select(ti.dag_id, _when(ti), X.value)
            .join(
                X,
                and_(
                    X.dag_id == ti.dag_id,
                    X.run_id == ti.run_id,
                    X.task_id == ti.task_id,
                    X.map_index == ti.map_index,
                    X.key == KEY_RESULT,
                ),
            )
            .where(*conditions)
        )
        for dag_id, when, value in rows:
            result = decode_xcom(value)
            if not isinstance(result, dict):
                continue
            seedance_id = result.get("task_id")
            if isinstance(seedance_id, str):
                if seedance_id in seen:
                    continue
                seen.add(seedance_id)
            credits = int(result.get("consumed_credits") or 0)
            usd = float(result.get("consumed_usd") or 0.0)
            if isinstance(when, str):
                when = datetime.fromisoformat(when)
            day = (when.astimezone(timezone.utc) if when.tzinfo else when).date().isoformat()
            day_bucket = by_day.setdefault(day, _bucket(date=day, by_dag={}))
            for bucket in (day_bucket, by_dag.setdefault(dag_id, _bucket(dag_id=dag_id)), total):
                bucket["credits"] += credits
                bucket["usd"] += usd
                bucket["generations"] += 1
            per_dag = day_bucket["by_dag"].setdefault(dag_id, {"credits": 0, "usd": 0.0})
            per_dag["credits"] += credits
            per_dag["usd"] += usd
    days = _all_days(flt.since, flt.until, by_day)
    for bucket in [*days, *by_dag.values(), total]:
        bucket["usd"] = round(bucket["usd"], 4)
        for per_dag in bucket.get("by_dag", {}).values():
            per_dag["usd"] = round(per_dag["usd"], 4)
    return {
        "since": flt.since.isoformat() if flt.since else None,
        "until": flt.until.isoformat() if flt.until else None,
        "dag_id": flt.dag_id,
        "total": total,
        "by_day": days,
        "by_dag": sorted(by_dag.values(), key=lambda b: (-b["credits"], b["dag_id"])),
    }


def _bucket(**labels: Any) -> dict[str, Any]:
    return {**labels, "credits": 0, "usd": 0.0, "generations": 0}


def _all_days(
    since: date | None, until: date | None, found: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Every day of the range, zeros included, so the chart's x axis is continuous."""
    if not found and (since is None or until is None):
        return []
    first = since or min(date.fromisoformat(d) for d in found)
    last = until or max(date.fromisoformat(d) for d in found)
    days = []
    day = first
    while day <= last:
        key = day.isoformat()
        days.append(found.get(key) or _bucket(date=key, by_dag={}))
        day += timedelta(days=1)
    return days


__all__ = [
    "SEEDANCE_OPERATORS",
    "STATUS_FILTERS",
    "GenerationFilter",
    "Page",
    "build_generation",
    "dags_with_generations",
    "decode_xcom",
    "find_result",
    "list_generations",
    "operator_names",
    "spend",
]
