"""What the Seedance view reads from Airflow's metadata DB: generations and their spend.

A *generation* is a task instance of a Seedance operator or sensor (``task_instance.operator``
names the class) — or one item of a :class:`SeedanceBatchGenerateOperator` task instance —
with what the task recorded in XCom, read only through
:class:`~airflow_provider_seedance.results.GenerationResult` (see :mod:`.records` for the
keys and their order). The rendered template fields (``rendered_task_instance_fields``) give
the prompt of a generation that recorded no request, and decide which file may be served
(:mod:`.media`).

No second database: every query here is a plain SELECT on ``task_instance``, ``xcom`` and
``rendered_task_instance_fields``, filtered to the DAG ids the caller may read, with no JSON
parsing in SQL (so it runs the same on SQLite, PostgreSQL and MySQL). The gallery pages on
cards (see :func:`list_generations` for how batches are paged cheaply); spend reads every
record of the range once, in Python.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, func, or_, select

from airflow_provider_seedance.models import API_FIELDS, UNRECORDED_REQUEST_FIELDS, credits_to_usd, format_usd
from airflow_provider_seedance.plugins import records
from airflow_provider_seedance.results import Outcome

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: Operator classes whose task instances are generations (``task_instance.operator``).
BATCH_OPERATORS: frozenset[str] = frozenset({"SeedanceBatchGenerateOperator"})
SEEDANCE_OPERATORS: frozenset[str] = frozenset(
    {"SeedanceGenerateOperator", "SeedanceStatusSensor", *BATCH_OPERATORS}
)

#: Status filter values -> the Airflow task-instance states they cover.
STATUS_FILTERS: dict[str, tuple[str, ...]] = {
    "success": ("success",),
    "failed": ("failed",),
    "running": ("running", "deferred", "up_for_retry", "up_for_reschedule", "queued", "restarting"),
}
#: States of task instances that never ran a generation (left out of the gallery).
NOT_RUN_STATES = ("skipped", "removed", "upstream_failed")
MAX_PAGE = 100


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
    #: One task instance (the extra link's card route): run, task and map index.
    run_id: str | None = None
    task_id: str | None = None
    map_index: int | None = None

    @property
    def one_task(self) -> bool:
        return self.run_id is not None and self.task_id is not None

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
    #: Cards on this page whose recorded result could not be read (shown as such).
    skipped_records: int = 0


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
    conditions: list[Any] = [ti.dag_id.in_(sorted(readable)), ti.operator.in_(sorted(flt.operators))]
    if flt.one_task:
        # The extra link's card route: that task instance whatever its state (never an empty page).
        conditions += [ti.run_id == flt.run_id, ti.task_id == flt.task_id]
        if flt.map_index is not None:
            conditions.append(ti.map_index == flt.map_index)
    else:
        conditions += [ti.start_date.is_not(None), or_(ti.state.is_(None), ti.state.not_in(NOT_RUN_STATES))]
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
    # The stored JSON may itself be a JSON document held as a string (Airflow 3.1's REST API
    # stores an edited XCom that way): decode again while a string holds an object or a list.
    for _ in range(2):
        if not (isinstance(value, str) and value.lstrip()[:1] in ("{", "[")):
            break
        try:
            value = json.loads(value)
        except ValueError:
            break
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

#: Task instances per XCom / rendered-fields query (their bound parameters stay far below every
#: database's limit).
KEYS_PER_QUERY = 500


def _of_task_instances(model: Any, keys: Collection[TiKey]) -> list[Any]:
    """WHERE clauses that find ``model``'s rows of these task instances by index, one query each.

    Airflow indexes ``xcom`` and ``rendered_task_instance_fields`` on ``dag_id, task_id,
    run_id, map_index``; each clause is ``dag_id = ? AND task_id = ? AND run_id IN (...) AND
    map_index IN (...)``, which every database answers with index searches. (A row-value
    ``IN (VALUES ...)``, or an OR of per-run terms, is not: SQLite plans them as a walk of the
    ``key`` index or of a whole DAG's task, a pass over every XCom of the DB per query, so a
    page cost O(all XComs) and spend O(window x all XComs).) A clause may also match other
    task instances of those runs (callers keep only the keys they asked for); where runs x
    map indexes would exceed 4 x the keys, the group is split by run to keep that bounded.
    """
    groups: dict[tuple[str, str], dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    for dag_id, run_id, task_id, map_index in keys:
        groups[(dag_id, task_id)][run_id].add(map_index)
    clauses = []
    for (dag_id, task_id), runs in groups.items():
        indexes = set().union(*runs.values())
        wanted = sum(len(found) for found in runs.values())
        split = [runs] if len(runs) * len(indexes) <= 4 * wanted else [{r: m} for r, m in runs.items()]
        for part in split:
            clauses.append(
                and_(
                    model.dag_id == dag_id,
                    model.task_id == task_id,
                    model.run_id.in_(sorted(part)),
                    model.map_index.in_(sorted(set().union(*part.values()))),
                )
            )
    return clauses


def _chunks(keys: list[TiKey]) -> Iterable[list[TiKey]]:
    for first in range(0, len(keys), KEYS_PER_QUERY):
        yield keys[first : first + KEYS_PER_QUERY]


def _load_xcoms(
    session: Session, keys: list[TiKey], xcom_keys: Collection[str] = records.XCOM_KEYS
) -> dict[TiKey, dict[str, Any]]:
    from airflow.models.xcom import XComModel as X

    found: dict[TiKey, dict[str, Any]] = defaultdict(dict)
    for chunk in _chunks(keys):
        asked = set(chunk)
        for clause in _of_task_instances(X, chunk):
            rows = session.execute(
                select(X.dag_id, X.run_id, X.task_id, X.map_index, X.key, X.value).where(
                    clause, X.key.in_(xcom_keys)
                )
            )
            for dag_id, run_id, task_id, map_index, key, value in rows:
                ti_key = (dag_id, run_id, task_id, map_index)
                if ti_key in asked:
                    found[ti_key][key] = decode_xcom(value)
    return found


def _load_rendered(session: Session, keys: list[TiKey]) -> dict[TiKey, dict[str, Any]]:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as R

    found: dict[TiKey, dict[str, Any]] = {}
    for chunk in _chunks(keys):
        asked = set(chunk)
        for clause in _of_task_instances(R, chunk):
            rows = session.execute(
                select(R.dag_id, R.run_id, R.task_id, R.map_index, R.rendered_fields).where(clause)
            )
            for dag_id, run_id, task_id, map_index, fields in rows:
                ti_key = (dag_id, run_id, task_id, map_index)
                if ti_key not in asked:
                    continue
                fields = decode_xcom(fields)
                if isinstance(fields, dict):
                    found[ti_key] = fields
    return found


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat()


#: The request fields a card shows from the rendered fields (the API's, minus those kept out of
#: results; lists such as ``image_urls`` are dropped by their type below).
REQUEST_FIELDS = tuple(field for field in API_FIELDS if field not in UNRECORDED_REQUEST_FIELDS)


def _rendered_request(rendered: Mapping[str, Any] | None) -> dict[str, Any]:
    """The prompt and format of a single generation that recorded no request (rendered fields)."""
    if not rendered:
        return {}
    return {k: rendered[k] for k in REQUEST_FIELDS if isinstance(rendered.get(k), (str, int, float, bool))}


def build_cards(
    ti: Mapping[str, Any],
    xcoms: Mapping[str, Any],
    rendered: Mapping[str, Any] | None = None,
    window: slice | None = None,
) -> list[dict[str, Any]]:
    """The cards of one task instance: one per batch item (``window`` of them), else one."""
    row = {**ti, "start_date": _iso(ti.get("start_date")), "end_date": _iso(ti.get("end_date"))}
    found = records.read_results(xcoms, ti.get("state"), window)
    cards = [records.card(row, index, result, xcoms) for index, result in found] or [
        records.card(row, None, None, xcoms)
    ]
    for item in cards:
        if not item["request"] and item["item"] is None:
            item["request"] = _rendered_request(rendered)
    return cards


def build_generation(
    ti: Mapping[str, Any], xcoms: Mapping[str, Any], rendered: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The first card of a task instance (a single generation's only card)."""
    return build_cards(ti, xcoms, rendered, slice(0, 1))[0]


_TI_COLUMNS = ("dag_id", "run_id", "task_id", "map_index", "state", "operator", "try_number")


def _batch_sizes(session: Session, keys: list[TiKey]) -> dict[TiKey, int]:
    """How many cards each batch task instance has (its recorded item count).

    Decodes each batch's stored JSON to count its items but builds no result from it: only
    the items on the requested page are parsed into results (see :func:`list_generations`).
    """
    stored = _load_xcoms(session, keys, records.RESULT_KEYS)
    sizes = {}
    for key, values in stored.items():
        size = records.batch_size(records.stored_value(values)[1])
        if size:
            sizes[key] = size
    return sizes


def list_generations(session: Session, flt: GenerationFilter, *, limit: int = 24, offset: int = 0) -> Page:
    """Newest first; one page of cards (a batch has one per item), with the total for the pager.

    Without batch task instances in the filter this pages in SQL as before. With some, each
    batch's item count is taken from its stored JSON (decoded, no result built), the ordered
    task instances are streamed (light columns) only up to the page's end, and of a batch
    only the items on the page become results.
    """
    limit = max(1, min(int(limit), MAX_PAGE))
    offset = max(0, int(offset))
    if not flt.dag_ids:
        return Page(total=0, limit=limit, offset=offset)
    ti = _ti_model()
    conditions = _conditions(ti, flt)
    columns = [getattr(ti, name) for name in _TI_COLUMNS]
    ordered = (
        select(*columns, ti.start_date, ti.end_date)
        .where(*conditions)
        .order_by(_when(ti).desc(), ti.dag_id, ti.run_id, ti.task_id, ti.map_index)
    )
    names = (*_TI_COLUMNS, "start_date", "end_date")
    batch_ops = sorted(flt.operators & BATCH_OPERATORS)
    # One pass counts the task instances and, of them, the batches (the count is the one read
    # that must see every matching row: the pager shows the total).
    counted = [func.count()]
    if batch_ops:
        counted.append(func.count(case((ti.operator.in_(batch_ops), 1))))
    counts = session.execute(select(*counted).select_from(ti).where(*conditions)).one()
    rows_total, batch_rows = int(counts[0] or 0), int(counts[1] or 0) if batch_ops else 0
    windows: list[tuple[dict[str, Any], slice | None]] = []
    if not batch_rows:
        total = rows_total
        rows = session.execute(ordered.limit(limit).offset(offset)).all()
        windows = [(dict(zip(names, row, strict=True)), None) for row in rows]
    else:
        batch_keys: list[TiKey] = [
            (r[0], r[1], r[2], r[3])
            for r in session.execute(
                select(ti.dag_id, ti.run_id, ti.task_id, ti.map_index).where(
                    *conditions, ti.operator.in_(batch_ops)
                )
            )
        ]
        sizes = _batch_sizes(session, batch_keys)
        total = rows_total - batch_rows + sum(sizes.get(k, 1) for k in batch_keys)
        position, end = 0, offset + limit
        # Walk the ordered rows only up to the page's end (streamed, light columns).
        result = session.execute(ordered.execution_options(yield_per=500))
        try:
            for row in result:
                record = dict(zip(names, row, strict=True))
                count = sizes.get(_key(record), 1)
                if position + count > offset:
                    first = max(0, offset - position)
                    window = slice(first, min(count, end - position)) if _key(record) in sizes else None
                    windows.append((record, window))
                position += count
                if position >= end:
                    break
        finally:
            result.close()
    keys = [_key(r) for r, _ in windows]
    xcoms = _load_xcoms(session, keys)
    # The prompt of a single generation that recorded none (nothing sent, released records).
    need_rendered = [
        k for (r, _), k in zip(windows, keys, strict=True) if r["operator"] not in BATCH_OPERATORS
    ]
    rendered = _load_rendered(session, need_rendered)
    items: list[dict[str, Any]] = []
    for (record, window), key in zip(windows, keys, strict=True):
        items.extend(build_cards(record, xcoms.get(key, {}), rendered.get(key), window))
    skipped = sum(1 for item in items if item["unreadable"])
    return Page(total=int(total), limit=limit, offset=offset, items=items, skipped_records=skipped)


def _key(record: Mapping[str, Any]) -> TiKey:
    return (record["dag_id"], record["run_id"], record["task_id"], record["map_index"])


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


@dataclass
class TaskRecord:
    """What the media route needs of one Seedance task instance."""

    operator: str
    state: str | None
    xcoms: dict[str, Any]
    rendered: dict[str, Any] | None


def find_record(session: Session, key: TiKey, operators: Iterable[str]) -> TaskRecord | None:
    """The XComs and rendered fields of one Seedance task instance (None if it is not one)."""
    ti = _ti_model()
    dag_id, run_id, task_id, map_index = key
    row = session.execute(
        select(ti.operator, ti.state).where(
            ti.dag_id == dag_id,
            ti.run_id == run_id,
            ti.task_id == task_id,
            ti.map_index == map_index,
            ti.operator.in_(sorted(operators)),
        )
    ).first()
    if row is None:
        return None
    return TaskRecord(
        operator=row[0],
        state=row[1],
        xcoms=dict(_load_xcoms(session, [key]).get(key, {})),
        rendered=_load_rendered(session, [key]).get(key),
    )


# ---------------------------------------------------------------------------------- spend


def spend(session: Session, flt: GenerationFilter) -> dict[str, Any]:
    """Credits and dollars per UTC day and per DAG over ``flt``'s range (both ends inclusive).

    Each Seedance task id counts once (an operator and a sensor may both name it; a
    resubmission's earlier ids count as generations with 0 credits): its credits are the
    most any record of it says was billed (a FAILED one is 0), attributed to the day and DAG
    of the first task instance (newest first) that names it. Reuse is not a generation and
    costs nothing. A submission whose answer was lost (*uncertain*, no task id) is not spend:
    it is listed apart as a possible charge (``possible_charges``: how many, per DAG, and what
    they would cost had each become a generation), and so is a paid generation whose record
    holds no credits (a released record of a task that failed after it), at its request's
    price. Credits are summed as integers; dollars are converted once per figure with
    :func:`airflow_provider_seedance.models.credits_to_usd`
    (``usd_text`` as the logs write it). A record that cannot be read is skipped and counted
    (``skipped_records``).
    """
    ti = _ti_model()
    places: dict[str, tuple[str, str]] = {}  # seedance id -> (day, dag_id)
    billed: dict[str, int] = {}
    reused: dict[tuple[str, str], int] = defaultdict(int)
    # Generations last seen running (the task ended or gave up first): billed if they succeed.
    pending: set[str] = set()
    settled: set[str] = set()
    # Submissions that may have been charged (no task id came back): never counted as spend.
    possible: dict[str, int] = defaultdict(int)
    possible_credits = 0
    #: Paid generations whose records hold no credits: Seedance task id -> (dag, estimate).
    unpriced: dict[str, tuple[str, int]] = {}
    skipped = 0
    if flt.dag_ids:
        rows = session.execute(
            select(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.state, _when(ti))
            .where(*_conditions(ti, flt))
            .order_by(_when(ti).desc(), ti.dag_id, ti.run_id, ti.task_id, ti.map_index)
        ).all()
        # Newest first, a chunk at a time: each record is read once, by index, and dropped.
        for first in range(0, len(rows), KEYS_PER_QUERY):
            chunk = rows[first : first + KEYS_PER_QUERY]
            keys: list[TiKey] = [(r[0], r[1], r[2], r[3]) for r in chunk]
            xcoms = _load_xcoms(session, keys)
            for (dag_id, _run, _task, _map, state, when), key in zip(chunk, keys, strict=True):
                day = _day(when)
                for _index, result in records.read_results(xcoms.get(key, {}), state):
                    if result is None:
                        skipped += 1
                        continue
                    if result.outcome is Outcome.REUSED:
                        reused[(day, dag_id)] += 1
                        continue
                    if result.outcome is Outcome.UNCERTAIN and not result.task_id:
                        possible[dag_id] += 1
                        possible_credits += result.possible_credits or 0
                    if (
                        result.outcome is Outcome.PAID_NOT_DELIVERED
                        and result.possible_credits
                        and result.task_id
                    ):
                        # counted below unless another record of that generation says what it cost
                        unpriced.setdefault(result.task_id, (dag_id, result.possible_credits))
                    ids = list(result.seedance_task_ids)
                    if result.task_id and result.task_id not in ids:
                        ids.append(result.task_id)
                    for seedance_id in ids:
                        places.setdefault(seedance_id, (day, dag_id))
                        billed.setdefault(seedance_id, 0)
                    if result.task_id:
                        billed[result.task_id] = max(billed[result.task_id], result.consumed_credits)
                        unsettled = result.outcome in (Outcome.UNKNOWN, Outcome.IN_PROGRESS)
                        (pending if unsettled else settled).add(result.task_id)
    for seedance_id, (dag_id, estimate) in unpriced.items():
        if billed.get(seedance_id, 0) == 0:
            possible[dag_id] += 1
            possible_credits += estimate
    figures: dict[tuple[str, str], dict[str, int]] = defaultdict(
        lambda: {"credits": 0, "generations": 0, "reused": 0}
    )
    for seedance_id, place in places.items():
        figures[place]["credits"] += billed[seedance_id]
        figures[place]["generations"] += 1
    for place, count in reused.items():
        figures[place]["reused"] += count
    by_day: dict[str, dict[str, Any]] = {}
    by_dag: dict[str, dict[str, Any]] = {}
    total = _bucket()
    for (day, dag_id), counts in sorted(figures.items()):
        day_bucket = by_day.setdefault(day, _bucket(date=day, by_dag={}))
        for bucket in (day_bucket, by_dag.setdefault(dag_id, _bucket(dag_id=dag_id)), total):
            for name, value in counts.items():
                bucket[name] += value
        day_bucket["by_dag"][dag_id] = {"credits": counts["credits"]}
    days = _all_days(flt.since, flt.until, by_day)
    for bucket in [*days, *by_dag.values(), total]:
        _dollars(bucket)
        for per_dag in bucket.get("by_dag", {}).values():
            _dollars(per_dag)
    return {
        "since": flt.since.isoformat() if flt.since else None,
        "until": flt.until.isoformat() if flt.until else None,
        "dag_id": flt.dag_id,
        "total": total,
        "by_day": days,
        "by_dag": sorted(by_dag.values(), key=lambda b: (-b["credits"], b["dag_id"])),
        "skipped_records": skipped,
        #: Generations whose end no record knows: not in the credits, possibly billed later.
        "unsettled_generations": len(pending - settled),
        #: Submissions whose answer was lost: they may have been charged (not in the credits).
        "possible_charges": {
            "submissions": sum(possible.values()),
            "estimated_credits": possible_credits,
            "usd": float(credits_to_usd(possible_credits)),
            "usd_text": format_usd(possible_credits),
            "by_dag": dict(sorted(possible.items())),
        },
    }


def _day(when: Any) -> str:
    if isinstance(when, str):
        when = datetime.fromisoformat(when)
    if when is None:
        return datetime.now(timezone.utc).date().isoformat()
    return (when.astimezone(timezone.utc) if when.tzinfo else when).date().isoformat()


def _dollars(bucket: dict[str, Any]) -> None:
    """Dollars from the bucket's integer credits, converted once (never a float sum)."""
    bucket["usd"] = float(credits_to_usd(bucket["credits"]))
    bucket["usd_text"] = format_usd(bucket["credits"])


def _bucket(**labels: Any) -> dict[str, Any]:
    return {**labels, "credits": 0, "usd": 0.0, "generations": 0, "reused": 0}


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
        days.append(found.get(key) or _dollars_of(_bucket(date=key, by_dag={})))
        day += timedelta(days=1)
    return days


def _dollars_of(bucket: dict[str, Any]) -> dict[str, Any]:
    _dollars(bucket)
    return bucket


__all__ = [
    "BATCH_OPERATORS",
    "SEEDANCE_OPERATORS",
    "STATUS_FILTERS",
    "GenerationFilter",
    "Page",
    "TaskRecord",
    "build_cards",
    "build_generation",
    "dags_with_generations",
    "decode_xcom",
    "find_record",
    "list_generations",
    "operator_names",
    "spend",
]
