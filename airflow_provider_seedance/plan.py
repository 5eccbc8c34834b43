"""``seedance-plan``: what a DAG's runs would generate and spend, before anything is spent.

For a DAG and a range of logical dates (a backfill's ``--from-date``/``--to-date``, or a list
of dates), every Seedance task those runs would execute is rendered the way the worker
renders it: templates with the run's context, mapped tasks expanded where their inputs are
known, batch requests counted, ``skip_if_exists`` checked against the destinations (read
only). Nothing is generated and nothing is written: no HTTP call to Seedance, no DAG run,
no XCom, no record.

An input that only exists at run time (an upstream task's XCom, a template that reads the
task instance) is reported as such, with a bound per generation from the task's
``max_credits`` when it has one. ``--run-upstream`` runs the upstream *Python* tasks
(``@task`` functions) that feed Seedance tasks in this process, so their results can be
planned too; their code runs here, and nothing is written to Airflow.

    seedance-plan seedance_catalog_backfill --from-date 2026-03-02 --to-date 2026-03-04 --run-upstream
    python -m airflow_provider_seedance.plan DAG_ID --dates 2026-03-02,2026-03-05 --json
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import inspect
import itertools
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import jinja2
import pendulum

from airflow_provider_seedance.exceptions import SeedanceError
from airflow_provider_seedance.money import format_usd
from airflow_provider_seedance.operators.batch import SeedanceBatchGenerateOperator
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

if TYPE_CHECKING:
    from airflow.sdk import DAG

SEEDANCE_OPERATORS = (SeedanceGenerateOperator, SeedanceBatchGenerateOperator)


class RuntimeOnly(Exception):
    """An input the plan cannot know: it only exists when the run executes."""


class _RefusedRun(Exception):
    """The run would fail before sending anything (its params are refused)."""


class _PlannedTaskInstance:
    """Stands for ``ti`` in templates: its identity is known (``map_index``, ``task_id``...);
    anything else (``xcom_pull``...) only exists at run time."""

    def __init__(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> None:
        self.dag_id, self.run_id, self.task_id, self.map_index = dag_id, run_id, task_id, map_index
        self.try_number = 1

    def __getattr__(self, name: str) -> Any:
        raise RuntimeOnly(f"a template reads ti.{name}, which only exists at run time")


# ---------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class PlannedItem:
    """One generation a run would create (or reuse)."""

    logical_date: str
    task_id: str
    label: str
    credits: int
    reused: bool
    output_path: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "logical_date": self.logical_date,
            "task_id": self.task_id,
            "label": self.label,
            "credits": self.credits,
            "usd": format_usd(self.credits),
            "reused": self.reused,
            "output_path": self.output_path,
        }


@dataclass
class TaskPlan:
    """What one Seedance task would do over the planned runs."""

    dag_id: str
    task_id: str
    runs: set[str] = field(default_factory=set)
    items: list[PlannedItem] = field(default_factory=list)
    #: Runs whose inputs are only known at run time: (logical date, why).
    unknown: list[tuple[str, str]] = field(default_factory=list)
    #: The task's ``max_credits`` (a bound per generation, or per batch), if set.
    max_credits: int | None = None
    #: Runs that would fail before any HTTP call: (logical date, the error).
    invalid: list[tuple[str, str]] = field(default_factory=list)
    #: A batch task (its ``max_credits`` bounds the whole batch, not each generation).
    batch: bool = False

    @property
    def to_create(self) -> list[PlannedItem]:
        return [item for item in self.items if not item.reused]

    @property
    def reused(self) -> int:
        return sum(item.reused for item in self.items)

    @property
    def credits(self) -> int:
        return sum(item.credits for item in self.to_create)

    def to_json(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "task_id": self.task_id,
            "runs": len(self.runs),
            "generations_to_create": len(self.to_create),
            "reused": self.reused,
            "credits": self.credits,
            "usd": format_usd(self.credits),
            "max_credits": self.max_credits,
            "known_at_run_time_only": [{"logical_date": d, "why": why} for d, why in self.unknown],
            "would_fail_before_sending": [{"logical_date": d, "error": e} for d, e in self.invalid],
        }


@dataclass
class Plan:
    """The plan of one DAG over a list of logical dates."""

    dag_id: str
    logical_dates: list[str]
    tasks: dict[str, TaskPlan] = field(default_factory=dict)

    def task(self, task: Any) -> TaskPlan:
        plan = self.tasks.get(task.task_id)
        if plan is None:
            max_credits = getattr(task, "max_credits", None)
            if max_credits is None:  # a mapped task keeps it among its partial kwargs
                max_credits = getattr(task, "partial_kwargs", {}).get("max_credits")
            batch = issubclass(getattr(task, "operator_class", type(task)), SeedanceBatchGenerateOperator)
            plan = self.tasks[task.task_id] = TaskPlan(
                self.dag_id, task.task_id, max_credits=max_credits, batch=batch
            )
        return plan

    @property
    def credits(self) -> int:
        return sum(task.credits for task in self.tasks.values())

    def largest(self, count: int) -> list[PlannedItem]:
        items = [item for task in self.tasks.values() for item in task.to_create]
        return sorted(items, key=lambda item: (-item.credits, item.logical_date, item.label))[:count]

    def to_json(self, top: int = 5) -> dict[str, Any]:
        tasks = list(self.tasks.values())
        return {
            "dag_id": self.dag_id,
            "logical_dates": self.logical_dates,
            "tasks": [task.to_json() for task in tasks],
            "total": {
                "generations_to_create": sum(len(task.to_create) for task in tasks),
                "reused": sum(task.reused for task in tasks),
                "credits": self.credits,
                "usd": format_usd(self.credits),
                "complete": not any(task.unknown or task.invalid for task in tasks),
            },
            "largest_items": [item.to_json() for item in self.largest(top)],
            "items": [item.to_json() for task in tasks for item in task.items],
        }

    def table(self, top: int = 5) -> str:
        header = ("DAG", "task", "runs", "create", "reused", "credits", "dollars")
        rows = [
            (
                t.dag_id,
                t.task_id,
                str(len(t.runs)),
                str(len(t.to_create)),
                str(t.reused),
                f"{t.credits}+?" if t.unknown else str(t.credits),
                f"{format_usd(t.credits)}+?" if t.unknown else format_usd(t.credits),
            )
            for t in self.tasks.values()
        ]
        total = self.to_json(top)["total"]
        rows.append(
            (
                "total",
                "",
                str(len(self.logical_dates)),
                str(total["generations_to_create"]),
                str(total["reused"]),
                str(total["credits"]) + ("" if total["complete"] else "+?"),
                total["usd"] + ("" if total["complete"] else "+?"),
            )
        )
        widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

        def line(row: Sequence[str]) -> str:
            cells = [
                cell.ljust(w) if i < 2 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ]
            return "  ".join(cells).rstrip()

        dates = [_short(d) for d in self.logical_dates]
        span = f"{dates[0]} .. {dates[-1]}" if len(dates) > 1 else (dates[0] if dates else "no run")
        out = [f"seedance-plan: {self.dag_id}, {len(dates)} run(s) ({span})", "", line(header)]
        out += [line(row) for row in rows]
        largest = self.largest(top)
        if largest:
            out += ["", "Largest items:"]
            out += [
                f"  {_short(i.logical_date)}  {i.label}  {i.credits} credits ({format_usd(i.credits)})"
                + (f"  -> {i.output_path}" if i.output_path else "")
                for i in largest
            ]
        if not total["complete"]:
            out.append("")
        for task in self.tasks.values():
            for why, runs in _grouped(task.unknown).items():
                bound = (
                    f" At most {task.max_credits} credits ({format_usd(task.max_credits)}) per "
                    f"{'batch' if task.batch else 'generation'} (max_credits); how many is known at run time."
                    if task.max_credits is not None
                    else " No max_credits is set, so there is no bound."
                )
                out.append(f"Known only at run time: {task.task_id} in {_runs(runs)}: {why}.{bound}")
            for error, runs in _grouped(task.invalid).items():
                out.append(f"Would fail before sending anything: {task.task_id} in {_runs(runs)}: {error}")
        if not total["complete"]:
            out.append("+? = the totals leave out what is only known at run time, or would fail (above).")
        out += ["", "Nothing was generated or written."]
        return "\n".join(out)


def _short(date: str) -> str:
    """``2026-03-02`` for a midnight UTC logical date, else the ISO timestamp."""
    return date[:10] if date.endswith("T00:00:00+00:00") else date


def _grouped(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for date, text in pairs:
        groups.setdefault(text, []).append(date)
    return groups


def _runs(dates: list[str]) -> str:
    shown = [_short(d) for d in dates]
    return f"the run of {shown[0]}" if len(shown) == 1 else f"{len(shown)} runs ({', '.join(shown)})"


# ---------------------------------------------------------------------------- the DAG
def load_dag(dag_id: str, dags_folder: str | None = None) -> DAG:
    """Parse the DAG files (Airflow's ``DagBag``, no database) and return ``dag_id``."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    if dags_folder is None:
        from airflow.configuration import conf

        dags_folder = conf.get("core", "dags_folder")
    options: dict[str, Any] = {}
    if "include_examples" in inspect.signature(DagBag).parameters:  # Airflow 3.1
        options["include_examples"] = False
    bag = DagBag(dag_folder=dags_folder, **options)
    if dag_id not in bag.dags:
        errors = "".join(
            f"\n  {path}: {error.strip().splitlines()[-1]}" for path, error in bag.import_errors.items()
        )
        known = ", ".join(sorted(bag.dags)) or "none"
        raise SystemExit(f"seedance-plan: no DAG {dag_id!r} in {dags_folder} (DAGs found: {known}){errors}")
    return bag.dags[dag_id]


def _core_timetable(dag: DAG) -> Any:
    try:  # Airflow 3.2+: the SDK's timetables are descriptions; the core one computes runs
        from airflow.serialization.encoders import coerce_to_core_timetable
    except ImportError:  # Airflow 3.1: the DAG holds a core timetable
        return dag.timetable
    return coerce_to_core_timetable(dag.timetable)


def runs_between(dag: DAG, start: dt.datetime, end: dt.datetime) -> list[tuple[pendulum.DateTime, Any]]:
    """The (logical date, data interval) of the scheduled runs from ``start`` to ``end`` (both
    included), as a backfill over that range would create them."""
    from airflow.timetables.base import TimeRestriction

    timetable = _core_timetable(dag)
    restriction = TimeRestriction(
        earliest=pendulum.instance(start), latest=pendulum.instance(end), catchup=True
    )
    runs = []
    info = timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
    while info is not None and info.logical_date is not None and info.logical_date <= end:
        runs.append((info.logical_date, info.data_interval))
        info = timetable.next_dagrun_info(
            last_automated_data_interval=info.data_interval, restriction=restriction
        )
    return runs


def runs_at(dag: DAG, dates: Sequence[dt.datetime]) -> list[tuple[pendulum.DateTime, Any]]:
    """The (logical date, data interval) of runs triggered at each of ``dates``."""
    timetable = _core_timetable(dag)
    return [
        (pendulum.instance(d), timetable.infer_manual_data_interval(run_after=pendulum.instance(d)))
        for d in dates
    ]


def _context(
    dag: DAG, logical_date: pendulum.DateTime, interval: Any, conf: dict[str, Any] | None = None
) -> dict[str, Any]:
    from airflow.sdk.execution_time import macros

    ts = logical_date.isoformat()
    run_id = f"backfill__{ts}"
    params = dag.params.dump() if hasattr(dag.params, "dump") else dict(dag.params)
    return {
        "dag": dag,
        "ds": logical_date.strftime("%Y-%m-%d"),
        "ds_nodash": logical_date.strftime("%Y%m%d"),
        "ts": ts,
        "ts_nodash": logical_date.strftime("%Y%m%dT%H%M%S"),
        "ts_nodash_with_tz": ts.replace("-", "").replace(":", ""),
        "logical_date": logical_date,
        "data_interval_start": interval.start if interval is not None else logical_date,
        "data_interval_end": interval.end if interval is not None else logical_date,
        "run_id": run_id,
        "params": {**params, **(conf or {})},
        "dag_run": SimpleNamespace(
            dag_id=dag.dag_id,
            run_id=run_id,
            logical_date=logical_date,
            conf=dict(conf or {}),
            run_type="backfill",
        ),
        "macros": macros,
    }


# ---------------------------------------------------------------------------- inputs
class _Inputs:
    """Resolves the inputs of mapped and batch tasks for one run (upstream results cached)."""

    def __init__(self, context: dict[str, Any], run_upstream: bool) -> None:
        self.context = context
        self.run_upstream = run_upstream
        self.results: dict[str, Any] = {}

    def resolve(self, value: Any) -> Any:
        from airflow.sdk.definitions.xcom_arg import PlainXComArg, XComArg

        if not isinstance(value, XComArg):
            return value
        if not isinstance(value, PlainXComArg) or value.key != "return_value":
            raise RuntimeOnly(
                f"its input is {type(value).__name__} of an upstream task, only known at run time"
            )
        upstream = value.operator
        callable_ = getattr(upstream, "python_callable", None)
        if callable_ is None or not self.run_upstream:
            hint = " (rerun with --run-upstream to run it here)" if callable_ is not None else ""
            raise RuntimeOnly(f"its input comes from task {upstream.task_id!r} at run time{hint}")
        if upstream.task_id not in self.results:
            args = [self.resolve(arg) for arg in getattr(upstream, "op_args", ())]
            kwargs = {k: self.resolve(v) for k, v in dict(getattr(upstream, "op_kwargs", {})).items()}
            for name in inspect.signature(callable_).parameters:
                if name not in kwargs and name in self.context:
                    kwargs[name] = self.context[name]
            self.results[upstream.task_id] = callable_(*args, **kwargs)
        return self.results[upstream.task_id]

    def instances(self, task: Any) -> Iterator[Any]:
        """The operators the run would execute for ``task`` (one per map index)."""
        from airflow.sdk.definitions._internal.expandinput import DictOfListsExpandInput
        from airflow.sdk.definitions.mappedoperator import MappedOperator

        if not isinstance(task, MappedOperator):
            yield copy.copy(task)
            return
        expand = task._get_specified_expand_input()
        if isinstance(expand, DictOfListsExpandInput):
            names = list(expand.value)
            lists = [list(self.resolve(expand.value[name])) for name in names]
            combos: list[dict[str, Any]] = [
                dict(zip(names, values, strict=True)) for values in itertools.product(*lists)
            ]
        else:
            combos = [dict(kwargs) for kwargs in self.resolve(expand.value)]
        for index, kwargs in enumerate(combos):
            op = task.unmap(kwargs)
            op.map_index = index  # names the item in the plan
            yield op


def _is_seedance(task: Any) -> bool:
    operator_class = getattr(task, "operator_class", None)
    if isinstance(operator_class, type):
        return issubclass(operator_class, SEEDANCE_OPERATORS)
    return isinstance(task, SEEDANCE_OPERATORS)


def _render(op: Any, context: dict[str, Any], dag: DAG) -> None:
    from airflow.sdk.definitions.param import process_params

    ti = _PlannedTaskInstance(dag.dag_id, context["run_id"], op.task_id, getattr(op, "map_index", -1))
    try:  # as the worker builds them: the DAG's params, the task's own, then the run's conf
        params = process_params(dag, op, context["dag_run"].conf, suppress_exception=False)
    except (ValueError, TypeError) as exc:  # ParamValidationError: the run is refused
        raise _RefusedRun(f"the run's params are refused: {exc}") from None
    full = {**context, "task": op, "ti": ti, "task_instance": ti, "params": params}
    try:
        op.render_template_fields(full, jinja_env=dag.get_template_env())
    except jinja2.UndefinedError as exc:
        raise RuntimeOnly(f"a template uses a value the plan does not have ({exc})") from None


# ---------------------------------------------------------------------------- planning
def plan_dag(
    dag: DAG,
    runs: Sequence[tuple[pendulum.DateTime, Any]],
    *,
    run_upstream: bool = False,
    conf: dict[str, Any] | None = None,
) -> Plan:
    """The plan of ``dag`` over ``runs``; sends nothing, writes nothing."""
    plan = Plan(dag.dag_id, [logical_date.isoformat() for logical_date, _ in runs])
    tasks = [task for task in dag.tasks if _is_seedance(task)]
    for logical_date, interval in runs:
        date = logical_date.isoformat()
        context = _context(dag, logical_date, interval, conf)
        inputs = _Inputs(context, run_upstream)
        for task in tasks:
            task_plan = plan.task(task)
            task_plan.runs.add(date)
            try:
                if task.get_closest_mapped_task_group() is not None:
                    raise RuntimeOnly("it is in a mapped task group, expanded at run time")
                planned: list[PlannedItem] = []
                for op in inputs.instances(task):
                    if isinstance(op, SeedanceBatchGenerateOperator):
                        op.requests = inputs.resolve(op.requests)
                    _render(op, context, dag)
                    planned.extend(_items(op, date))
                task_plan.items.extend(planned)
            except RuntimeOnly as exc:
                task_plan.unknown.append((date, str(exc)))
            except (SeedanceError, _RefusedRun) as exc:  # raised before any HTTP call
                task_plan.invalid.append((date, str(exc)))
            except Exception as exc:  # the plan must not stop at one task it cannot follow
                task_plan.unknown.append((date, f"could not be planned ({type(exc).__name__}: {exc})"))
    return plan


def _items(op: Any, date: str) -> list[PlannedItem]:
    map_index = getattr(op, "map_index", -1)
    name = op.task_id if map_index in (None, -1) else f"{op.task_id}[{map_index}]"
    if isinstance(op, SeedanceBatchGenerateOperator):
        items = op.build_items()
        existing = op.existing_videos(items)
        op.check_budget([item for item in items if item.index not in existing])
        return [
            PlannedItem(
                date,
                op.task_id,
                f"{name}[{item.label if item.label is not None else item.index}]",
                item.request.estimated_credits,
                item.index in existing,
                str(item.destination) if item.destination is not None else None,
            )
            for item in items
        ]
    request = op.build_request()
    found = op.existing_output()
    if found is None:  # a reused video costs nothing, so no budget applies
        op.check_budget(request)
    output = None if op.output_path in (None, "") else str(op.output_path)
    return [PlannedItem(date, op.task_id, name, request.estimated_credits, found is not None, output)]


# ---------------------------------------------------------------------------- command
def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="seedance-plan",
        description="What a DAG's runs would spend on Seedance. Sends nothing, writes nothing.",
    )
    cli.add_argument("dag_id")
    cli.add_argument("--dags-folder", help="where the DAG files are (default: Airflow's [core] dags_folder)")
    cli.add_argument("--from-date", type=_date, help="first logical date, as for `airflow backfill create`")
    cli.add_argument("--to-date", type=_date, help="last logical date (included)")
    cli.add_argument("--dates", type=_dates, help="comma-separated logical dates (instead of a range)")
    cli.add_argument(
        "--run-upstream",
        action="store_true",
        help="run the upstream @task functions that feed Seedance tasks here, to plan their results "
        "(their code runs in this process; nothing is written to Airflow)",
    )
    cli.add_argument("--conf", type=_conf, help="run conf (JSON object) that overrides the DAG's params")
    cli.add_argument("--json", action="store_true", help="print the plan as JSON")
    cli.add_argument("--top", type=int, default=5, help="how many of the largest items to list")
    cli.add_argument(
        "--max-credits",
        type=int,
        help="exit 3 when the plan would spend more credits than this (or is incomplete), for CI",
    )
    return cli


def _date(text: str) -> dt.datetime:
    try:
        value = pendulum.parse(text)
    except (ValueError, pendulum.parsing.exceptions.ParserError) as exc:  # type: ignore[attr-defined]
        raise argparse.ArgumentTypeError(f"not a date: {text!r} ({exc})") from None
    if not isinstance(value, dt.datetime):
        value = pendulum.datetime(value.year, value.month, value.day, tz="UTC")  # type: ignore[union-attr]
    return value


def _dates(text: str) -> list[dt.datetime]:
    return [_date(part.strip()) for part in text.split(",") if part.strip()]


def _conf(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--conf is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"--conf must be a JSON object, not {type(value).__name__}")
    return value


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Python's ``sys.stdout`` and file descriptor 1 both point at stderr inside the block."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no file descriptor 1 (embedded)
        saved = None
    if saved is not None:
        os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.dates and (args.from_date or args.to_date):
        parser().error("give either --dates or --from-date/--to-date")
    if not args.dates and not (args.from_date and args.to_date):
        parser().error("give the runs to plan: --from-date and --to-date, or --dates")
    if args.from_date and args.to_date and args.from_date > args.to_date:
        parser().error(f"--from-date {args.from_date.date()} is after --to-date {args.to_date.date()}")
    # Airflow logs (the parse, template errors) go to stdout; the plan's output (``--json`` for
    # CI) owns stdout, so everything else is sent to stderr while the plan is made.
    with _stdout_to_stderr():
        dag = load_dag(args.dag_id, args.dags_folder)
        runs = runs_at(dag, args.dates) if args.dates else runs_between(dag, args.from_date, args.to_date)
        if not runs:
            raise SystemExit(
                f"seedance-plan: {args.dag_id} has no scheduled run from {args.from_date.date()} to "
                f"{args.to_date.date()} (schedule: {getattr(dag.timetable, 'summary', 'none')}); "
                "name the runs with --dates"
            )
        plan = plan_dag(dag, runs, run_upstream=args.run_upstream, conf=args.conf)
    summary = plan.to_json(args.top)
    print(json.dumps(summary, indent=2) if args.json else plan.table(args.top))
    if args.max_credits is not None:
        total = summary["total"]
        if total["credits"] > args.max_credits or not total["complete"]:
            print(
                f"seedance-plan: over budget or incomplete: {total['credits']} credits planned "
                f"(limit {args.max_credits}); complete: {total['complete']}",
                file=sys.stderr,
            )
            return 3
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
