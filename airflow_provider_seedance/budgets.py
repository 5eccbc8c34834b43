"""Budgets that concurrent tasks share: per DAG run, and per connection per day and per month.

``max_credits`` caps one task; the budgets here are counters that every task of a deployment
draws from. A generation *reserves* its estimated price in every budget that applies before
its generate request is sent, in one database transaction whose conditional update
(``spent = spent + cost WHERE spent + cost <= limit``) either takes room in all of them or in
none; the reservation is *settled* to the generation's actual credits once they are known,
and *released* only when the request provably created nothing (or the generation FAILED,
which is not billed). A submission whose answer was lost keeps its reservation: a generation
may exist, and may be billed.

The counters live in a real shared database named by the connection's ``budget.store``
(a SQLAlchemy URL): SQLite (one machine; every transaction starts with ``BEGIN IMMEDIATE``)
or PostgreSQL (any number of machines; the conditional update takes the row lock and
re-checks its condition after waiting). Airflow Variables are not used: reading and writing a
Variable are two calls with no compare-and-set between them, so two tasks could both read
"40 of 50 spent" and both take 10. Airflow's metadata database is not reachable from task
code in Airflow 3.

Reservations are keyed by the logical request (task instance, request fingerprint and
submission number), so a try that reserves again after a crash finds its own reservation
instead of taking room twice; a try that re-attaches to a recorded generation reserves
nothing at all.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.util
import itertools
import json
import os.path
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import create_engine, event, make_url, text
from sqlalchemy.exc import ArgumentError, IntegrityError
from sqlalchemy.pool import NullPool

from airflow_provider_seedance.exceptions import (
    SeedanceConfigurationError,
    SeedanceError,
    SeedanceSharedBudgetExceededError,
    SeedanceValidationError,
)

#: The keys the connection extra ``budget`` accepts.
BUDGET_KEYS = ("daily_credits", "monthly_credits", "store")
#: Database schemes whose transactions make the conditional update atomic across processes.
STORE_SCHEMES = ("sqlite", "postgresql")
#: The largest limit accepted: far above any real budget, well inside a BIGINT counter.
MAX_CREDIT_LIMIT = 10**15

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS seedance_budget_counter ("
    " budget VARCHAR(400) NOT NULL, period VARCHAR(20) NOT NULL, spent BIGINT NOT NULL,"
    " PRIMARY KEY (budget, period))",
    "CREATE TABLE IF NOT EXISTS seedance_budget_reservation ("
    " reservation VARCHAR(64) NOT NULL, budget VARCHAR(400) NOT NULL, period VARCHAR(20) NOT NULL,"
    " credits BIGINT NOT NULL, state VARCHAR(16) NOT NULL, seedance_task_id VARCHAR(200),"
    " created_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (reservation, budget))",
    "CREATE INDEX IF NOT EXISTS seedance_budget_reservation_task"
    " ON seedance_budget_reservation (seedance_task_id)",
)
RESERVED, SETTLED, RELEASED = "reserved", "settled", "released"
_SPENT = text("SELECT spent FROM seedance_budget_counter WHERE budget = :b AND period = :p")
_OPEN = (
    "SELECT reservation, budget, period, credits FROM seedance_budget_reservation WHERE state = :open AND "
)
_HELD = text("SELECT state, seedance_task_id FROM seedance_budget_reservation WHERE reservation = :r")
#: The open reservations of one key, or of one generation.
_OPEN_BY = {
    "reservation": text(_OPEN + "reservation = :k"),
    "seedance_task_id": text(_OPEN + "seedance_task_id = :k"),
}


def credits_value(value: Any, field: str, *, what: str = "") -> int | None:
    """A credit limit as given (``None`` = no limit): a whole number >= 0, else the error."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_CREDIT_LIMIT:
        raise SeedanceValidationError(
            field,
            value,
            f"a whole number of credits from 0 to {MAX_CREDIT_LIMIT:_} (1 credit = $0.005){what}, "
            "or null for no limit",
        )
    return value


def redacted(value: Any) -> Any:
    """``value`` as errors and reprs may show it: a database URL without its password."""
    if not isinstance(value, str) or "@" not in value:
        return value
    try:
        url = make_url(value)
    except (ArgumentError, ValueError):
        return "<a value holding '@', not shown: it may carry a password>"
    return url.render_as_string(hide_password=True) if url.password else value


def _shared_by_every_worker(store: str) -> bool:
    """Whether a store URL parses and names one database for every worker: a SQLite store must
    be a file at an absolute path (a relative path is one database per working directory,
    ``sqlite://`` one per process)."""
    try:
        database = make_url(store).database
    except (ArgumentError, ValueError):
        return False
    if not store.startswith("sqlite"):
        return True
    return database is not None and database != ":memory:" and os.path.isabs(database)


@dataclass(frozen=True)
class Budget:
    """One counter with its limit: ``name`` says which in errors, ``key``/``period`` find its row."""

    name: str
    key: str
    period: str
    limit: int


@dataclass(frozen=True)
class BudgetConfig:
    """A connection's ``budget`` extra, validated (nothing set: no shared budget)."""

    conn_id: str
    daily_credits: int | None = None
    monthly_credits: int | None = None
    #: Not in the repr: a PostgreSQL URL may hold a password.
    store: str | None = field(default=None, repr=False)

    @classmethod
    def from_extra(cls, conn_id: str, extra: Mapping[str, Any] | None) -> BudgetConfig:
        """Read ``extra["budget"]``; a bad value names its field, the value and what is allowed."""
        raw = (extra or {}).get("budget")
        if raw is None:
            return cls(conn_id)
        where = f"connection {conn_id!r} extra "
        if not isinstance(raw, Mapping):
            raise SeedanceValidationError(
                "budget",
                redacted(raw),
                'an object such as {"daily_credits": 500, "store": "sqlite:////path/db"}',
                prefix=where,
            )
        unknown = sorted(set(raw) - set(BUDGET_KEYS))
        if unknown:
            raise SeedanceValidationError(
                f"budget.{unknown[0]}",
                redacted(raw[unknown[0]]),
                f"only the keys {', '.join(BUDGET_KEYS)}",
                prefix=where,
            )
        store = raw.get("store")
        scheme = store.split(":", 1)[0].split("+")[0] if isinstance(store, str) else None
        if store is not None and (scheme not in STORE_SCHEMES or not _shared_by_every_worker(store)):
            raise SeedanceValidationError(
                "budget.store",
                redacted(store),
                "a SQLAlchemy URL of a database every worker reaches: sqlite:////absolute/path.db "
                "(one machine) or postgresql://... (any number of machines)",
                prefix=where,
            )
        return cls(
            conn_id,
            credits_value(raw.get("daily_credits"), f"{where}budget.daily_credits"),
            credits_value(raw.get("monthly_credits"), f"{where}budget.monthly_credits"),
            store,
        )

    @property
    def limited(self) -> bool:
        """Whether the connection sets a daily or monthly limit."""
        return self.daily_credits is not None or self.monthly_credits is not None

    def budgets(self, dag_id: str, run_id: str, dag_run_max_credits: int | None, now: float) -> list[Budget]:
        """The budgets a generation started at ``now`` (epoch seconds) draws from."""
        day = datetime.datetime.fromtimestamp(now, tz=datetime.timezone.utc)
        found: list[Budget] = []
        if dag_run_max_credits is not None:
            found.append(
                Budget(
                    f"dag_run_max_credits budget of DAG run {dag_id!r} / {run_id!r}",
                    "dag_run:" + json.dumps([dag_id, run_id]),
                    "run",
                    dag_run_max_credits,
                )
            )
        if self.daily_credits is not None:
            found.append(
                Budget(
                    f"daily budget of connection {self.conn_id!r} ({day:%Y-%m-%d} UTC)",
                    f"conn:{self.conn_id}:daily",
                    f"{day:%Y-%m-%d}",
                    self.daily_credits,
                )
            )
        if self.monthly_credits is not None:
            found.append(
                Budget(
                    f"monthly budget of connection {self.conn_id!r} ({day:%Y-%m} UTC)",
                    f"conn:{self.conn_id}:monthly",
                    f"{day:%Y-%m}",
                    self.monthly_credits,
                )
            )
        if found and self.store is None:
            needs = "budget.store" if self.limited else "dag_run_max_credits"
            raise SeedanceConfigurationError(
                f"Connection {self.conn_id!r}: {needs} needs a shared budget store; set the connection "
                'extra "budget": {"store": "sqlite:////absolute/path.db"} (one machine) or a postgresql:// '
                "URL (several machines), reachable from every worker."
            )
        return found


def reservation_key(*parts: Any) -> str:
    """A short, stable key for a logical request (its task instance, fingerprint, submission)."""
    return hashlib.sha256(json.dumps(list(parts), separators=(",", ":")).encode()).hexdigest()[:40]


#: PostgreSQL drivers, in the order a bare ``postgresql://`` URL uses them: Airflow's own
#: (psycopg2, what a deployment on PostgreSQL already has), then psycopg 3.
POSTGRES_DRIVERS = ("psycopg2", "psycopg")


def with_installed_driver(url: str) -> str:
    """``url`` with an installed PostgreSQL driver when it names none (``postgresql://``).

    SQLAlchemy picks a driver by its own version (psycopg2 in 1.4/2.0, psycopg 3 in 2.1), not
    by what is installed; a deployment has whichever of the two Airflow brought.
    """
    scheme, sep, rest = url.partition("://")
    if scheme != "postgresql" or not sep:
        return url
    for driver in POSTGRES_DRIVERS:
        if importlib.util.find_spec(driver) is not None:
            return f"postgresql+{driver}://{rest}"
    return url


class BudgetStore:
    """The shared counters and reservations in one SQL database (see the module docstring)."""

    def __init__(self, url: str) -> None:

        self.url = url
        self.sqlite = url.startswith("sqlite")
        if self.sqlite:
            # Each transaction takes the write lock at its start (BEGIN IMMEDIATE): two writers
            # never both read before writing. pysqlite's own transaction handling is turned off.
            engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": 60})

            @event.listens_for(engine, "connect")
            def _no_pysqlite_transactions(dbapi_connection: Any, _record: Any) -> None:
                dbapi_connection.isolation_level = None

            @event.listens_for(engine, "begin")
            def _begin_immediate(connection: Any) -> None:
                connection.exec_driver_sql("BEGIN IMMEDIATE")

        else:
            engine = create_engine(with_installed_driver(url), pool_pre_ping=True, poolclass=NullPool)
        self.engine = engine
        self._create_schema()

    def __repr__(self) -> str:
        return f"BudgetStore({redacted(self.url)!r})"

    def _create_schema(self) -> None:

        for attempt in range(3):
            try:
                with self.engine.begin() as conn:
                    for statement in _SCHEMA:
                        conn.execute(text(statement))
                return
            except IntegrityError:  # PostgreSQL: two processes created the table at once
                if attempt == 2:
                    raise

    # ------------------------------------------------------------------ operations
    def reserve(self, key: str, cost: int, budgets: Sequence[Budget]) -> bool:
        """Take ``cost`` in every budget at once, or raise the exhausted one's error.

        ``True``: reserved now; ``False``: ``key`` was reserved before (nothing taken again).
        """

        if not budgets:
            return False
        try:
            with self.engine.begin() as conn:
                if conn.execute(
                    text("SELECT 1 FROM seedance_budget_reservation WHERE reservation = :r"), {"r": key}
                ).first():
                    return False
                # A fixed order of the counters: two reservations never wait on each other's rows.
                for budget in sorted(budgets, key=lambda b: (b.key, b.period)):
                    row = {"b": budget.key, "p": budget.period, "c": cost, "l": budget.limit}
                    conn.execute(
                        text(
                            "INSERT INTO seedance_budget_counter (budget, period, spent) "
                            "VALUES (:b, :p, 0) ON CONFLICT DO NOTHING"
                        ),
                        row,
                    )
                    taken = conn.execute(
                        text(
                            "UPDATE seedance_budget_counter SET spent = spent + :c "
                            "WHERE budget = :b AND period = :p AND spent + :c <= :l"
                        ),
                        row,
                    )
                    if taken.rowcount != 1:
                        spent = conn.execute(_SPENT, row).scalar_one()
                        raise SeedanceSharedBudgetExceededError(budget.name, int(spent), budget.limit, cost)
                    conn.execute(
                        text(
                            "INSERT INTO seedance_budget_reservation "
                            "(reservation, budget, period, credits, state, created_at) "
                            "VALUES (:r, :b, :p, :c, :s, :t)"
                        ),
                        {**row, "r": key, "s": RESERVED, "t": time.time()},
                    )
        except IntegrityError:
            return False  # the same key reserved concurrently: it holds its room once
        return True

    def unused_key(self, key: str) -> str:
        """``key``, or the first of ``key.1``, ``key.2``, ... that no generation has used.

        A key is reused only while its reservation is open and bound to no generation (a try
        that died before its POST reserves again): when the record numbering a task instance's
        submissions was lost (its DAG run deleted and triggered again under the same run id, a
        record deleted by hand), a new POST must not ride on the settled or running
        generation's reservation.
        """
        with self.engine.begin() as conn:
            for n in itertools.count():
                candidate = f"{key}.{n}" if n else key
                held = conn.execute(_HELD, {"r": candidate}).first()
                if held is None or (held[0] == RESERVED and held[1] is None):
                    return candidate
        raise AssertionError("unreachable")  # pragma: no cover

    def bind(self, key: str, seedance_task_id: str) -> None:
        """The reservation's generation exists: remember its id (settled by id later)."""

        with self.engine.begin() as conn:
            conn.execute(
                text("UPDATE seedance_budget_reservation SET seedance_task_id = :t WHERE reservation = :r"),
                {"t": seedance_task_id, "r": key},
            )

    def release(self, key: str) -> None:
        """The request provably created nothing: its room is free again (and ``key`` may
        reserve anew, for the next send of the same request)."""

        self._close("reservation", key, 0, RELEASED)
        with self.engine.begin() as conn:
            conn.execute(
                text("DELETE FROM seedance_budget_reservation WHERE reservation = :r AND state = :s"),
                {"r": key, "s": RELEASED},
            )

    def settle(self, seedance_task_id: str, credits: int | None) -> None:
        """The generation ended and cost ``credits`` (0 when it FAILED; ``None``: unknown, the
        estimate stands): the counters take the difference from the estimate. Idempotent: only
        an open reservation is settled."""
        self._close("seedance_task_id", seedance_task_id, credits, SETTLED)

    def _close(self, by: str, value: str, credits: int | None, state: str) -> None:

        with self.engine.begin() as conn:
            rows = conn.execute(_OPEN_BY[by], {"k": value, "open": RESERVED}).all()
            for reservation, budget, period, reserved in rows:
                final = int(reserved) if credits is None else credits
                closed = conn.execute(
                    text(
                        "UPDATE seedance_budget_reservation SET state = :s, credits = :c "
                        "WHERE reservation = :r AND budget = :b AND state = :open"
                    ),
                    {"s": state, "c": final, "r": reservation, "b": budget, "open": RESERVED},
                )
                if closed.rowcount == 1:
                    conn.execute(
                        text(
                            "UPDATE seedance_budget_counter SET spent = spent + :d "
                            "WHERE budget = :b AND period = :p"
                        ),
                        {"d": final - int(reserved), "b": budget, "p": period},
                    )

    def spent(self, budget: Budget) -> int:
        """Credits spent or reserved in ``budget`` (0 when nothing was)."""

        with self.engine.begin() as conn:
            value = conn.execute(
                _SPENT,
                {"b": budget.key, "p": budget.period},
            ).scalar()
        return int(value or 0)


_STORES: dict[str, BudgetStore] = {}
_STORES_LOCK = threading.Lock()


def _without_password(message: str, url: str) -> str:
    """``message`` with the password of ``url`` masked (a driver may echo its connection string)."""
    try:
        password = make_url(url).password
    except (ArgumentError, ValueError):
        return "<the error, not shown: the store URL could not be parsed to mask its password>"
    return message.replace(str(password), "***") if password else message


def open_store(url: str) -> BudgetStore:
    """The store at ``url`` (one per process and URL: the schema is created once)."""
    with _STORES_LOCK:
        store = _STORES.get(url)
        if store is None:
            try:
                store = _STORES[url] = BudgetStore(url)
            except SeedanceError:
                raise
            except Exception as exc:
                raise SeedanceConfigurationError(
                    f"The budget store could not be opened at {redacted(url)} "
                    f"({type(exc).__name__}: {_without_password(str(exc), url)}); nothing was submitted."
                ) from None
        return store


@dataclass
class SharedBudgets:
    """The budgets one task instance draws from, and its identity for reservation keys."""

    store: BudgetStore
    config: BudgetConfig
    dag_run_max_credits: int | None
    #: ``(dag_id, run_id, task_id, map_index)`` of the task instance.
    identity: tuple[str, str, str, int]

    @classmethod
    def open(
        cls, config: BudgetConfig, dag_run_max_credits: int | None, identity: tuple[str, str, str, int]
    ) -> SharedBudgets | None:
        """The task instance's budgets (config checked now), or ``None`` when none applies."""
        if not config.budgets(identity[0], identity[1], dag_run_max_credits, time.time()):
            return None
        assert config.store is not None  # budgets() refuses budgets without a store
        return cls(open_store(config.store), config, dag_run_max_credits, identity)

    def reserve(self, request_key: str, attempt: int, cost: int) -> str:
        """Reserve ``cost`` for submission ``attempt`` of the request; the reservation's key."""
        dag_id, run_id = self.identity[0], self.identity[1]
        budgets = self.config.budgets(dag_id, run_id, self.dag_run_max_credits, time.time())
        key = self.store.unused_key(reservation_key(*self.identity, request_key, attempt))
        self.store.reserve(key, cost, budgets)
        return key

    def bind(self, key: str, seedance_task_id: str) -> None:
        self.store.bind(key, seedance_task_id)

    def release(self, key: str) -> None:
        self.store.release(key)

    def settle(self, seedance_task_id: str, credits: int | None) -> None:
        self.store.settle(seedance_task_id, credits)


__all__ = [
    "BUDGET_KEYS",
    "Budget",
    "BudgetConfig",
    "BudgetStore",
    "SharedBudgets",
    "credits_value",
    "open_store",
    "redacted",
    "reservation_key",
]
