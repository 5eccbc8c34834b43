"""The Seedance view at 10,000 and 100,000 generations: the gallery's pages and the 90-day
Spend view, and how each grows with the catalog (issue 16 item 5).

    python -m benchmarks.ui_scale                       # 10,000 and 100,000 generations
    python -m benchmarks.ui_scale --compare main        # and main's queries.py, same run, same DBs
    python -m benchmarks.ui_scale --sizes 200 2000 --repeat 1   # a smoke run

Method.

1. A worker process makes one real generation: a migrated SQLite metadata DB of its own, the
   emulator, and ``dag.test()`` of a one-task DAG (``SeedanceGenerateOperator``). Its task
   instance and XComs are the template: Airflow's own shapes, written by the real operator.
2. For each size N the template DB is copied and the template cloned into N generations
   (:func:`clone_rows`): N / 20 runs of 20 mapped ``generate`` task instances over 90 days in
   five DAGs, ~10 % failed (their record released: only the extra link's XCom), next to one
   ``noise`` task instance (another operator, with its own XCom) per generation.
3. Each case is timed best of ``--repeat`` (once if it takes over 5 s), on the query
   functions (one SQLAlchemy session) and through the plugin's FastAPI app (auth replaced
   by a fixed set of readable DAGs), and the XCom values each case decoded are counted (the
   work that should not grow with N).
4. The figures reported are ratios: largest N / smallest N per case (a page whose cost grows
   with N is the defect: ideally ~1, a count of the total aside), and, with ``--compare REF``,
   this checkout / REF's ``plugins/queries.py`` at each size (loaded from git into a module of
   its own, timed in the same run against the same DBs).

The spend view reads every record of its window by design: its ratio is reported next to
N's, with the cost per generation, which must stay flat (linear, not worse).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
import types
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

#: Five DAGs share the clones (the gallery's DAG filter picks one of them).
DAGS = ("gallery_launch", "gallery_moderated", "gallery_private", "scale_a", "scale_b")
READABLE = frozenset(DAGS)
PER_RUN = 20  # mapped generations per run
FIRST_DAY = date(2026, 3, 1)
DAYS = 90
CASES = (
    "first_page_24",
    "deep_page",
    "filtered_page",
    "spend_90_days",
    "http_generations",
    "http_spend_json",
    "http_spend_svg",
)
TEMPLATE_DAG = "ui_scale_template"
TEMPLATE_TASK = "hero"

DAG_FILE = """
from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    SeedanceGenerateOperator(
        task_id="{task_id}",
        prompt="A red kite over a windy beach at golden hour, wide shot",
        aspect_ratio="16:9",
        resolution="720p",
        duration=4,
        generate_audio=True,
        deferrable=False,
        poll_interval=0.2,
        hook_params={{"retry_min_wait": 0.01, "retry_max_wait": 0.05, "status_retries": 3}},
    )
"""


# ------------------------------------------------------------------------------ the rows
def clone_rows(
    engine: Engine,
    template_dag: str,
    template_run: str,
    template_task: str,
    generations: int,
    *,
    decode: Callable[[Any], Any],
) -> None:
    """Clone one real generation (its dag run, task instance and XComs) into ``generations``
    generations, ``PER_RUN`` mapped ones per run spread over ``DAYS`` days from ``FIRST_DAY``
    in ``DAGS``; ~10 % failed with only the extra link recorded; one ``noise`` task instance
    (a PythonOperator with its own XCom) per generation. ``decode`` reads a stored XCom value.
    """
    from sqlalchemy import MetaData, Table, select

    meta = MetaData()
    dag_run, ti, xcom = (
        Table(name, meta, autoload_with=engine) for name in ("dag_run", "task_instance", "xcom")
    )
    runs_count = max(1, generations // PER_RUN)
    with engine.begin() as conn:
        template = (dag_run.c.dag_id == template_dag) & (dag_run.c.run_id == template_run)
        run_row = dict(conn.execute(select(dag_run).where(template)).mappings().one())
        ti_row = dict(
            conn.execute(
                select(ti).where(
                    ti.c.dag_id == template_dag, ti.c.run_id == template_run, ti.c.task_id == template_task
                )
            )
            .mappings()
            .one()
        )
        xcom_rows = [
            dict(r)
            for r in conn.execute(
                select(xcom).where(
                    xcom.c.dag_id == template_dag,
                    xcom.c.run_id == template_run,
                    xcom.c.task_id == template_task,
                )
            ).mappings()
        ]
        result = decode(next(r["value"] for r in xcom_rows if r["key"] == "return_value"))
        rng = random.Random(8)  # noqa: S311 (which clones failed: reproducible, not secret)
        runs = []
        for n in range(runs_count):
            when = datetime.combine(FIRST_DAY, datetime.min.time(), timezone.utc) + timedelta(
                minutes=n * DAYS * 24 * 60 // runs_count
            )
            run = dict(run_row)
            run.pop("id")
            run.update(
                dag_id=DAGS[n % len(DAGS)],
                run_id=f"scale__{n:06d}",
                logical_date=when,
                run_after=when,
                queued_at=when,
                start_date=when,
                end_date=when + timedelta(minutes=5),
            )
            runs.append(run)
        conn.execute(dag_run.insert(), runs)
        ids = dict(
            conn.execute(
                select(dag_run.c.run_id, dag_run.c.id).where(dag_run.c.run_id.like("scale__%"))
            ).all()
        )
        for first in range(0, len(runs), 100):
            tis: list[dict[str, Any]] = []
            xcoms: list[dict[str, Any]] = []
            for run in runs[first : first + 100]:
                for index in range(PER_RUN):
                    seedance_id = f"seedscale{run['run_id']}{index}"
                    failed = rng.random() < 0.1
                    for task_id, operator in (
                        ("generate", "SeedanceGenerateOperator"),
                        ("noise", "PythonOperator"),
                    ):
                        start = run["start_date"] + timedelta(seconds=index)
                        tis.append(
                            dict(
                                ti_row,
                                id=uuid.uuid4().hex,
                                dag_id=run["dag_id"],
                                run_id=run["run_id"],
                                task_id=task_id,
                                map_index=index,
                                operator=operator,
                                custom_operator_name=operator,
                                state="failed" if failed and task_id == "generate" else "success",
                                start_date=start,
                                end_date=start + timedelta(seconds=30),
                            )
                        )
                    key = {"dag_id": run["dag_id"], "run_id": run["run_id"], "map_index": index}
                    base = dict(
                        xcom_rows[0], dag_run_id=ids[run["run_id"]], timestamp=run["start_date"], **key
                    )
                    link = {"task_id": seedance_id, "video_url": None, "base_url": "http://seedance.invalid"}
                    xcoms.append(dict(base, task_id="generate", key="seedance_link", value=link))
                    xcoms.append(dict(base, task_id="noise", key="return_value", value={"rows": 1}))
                    if not failed:
                        value = dict(
                            result,
                            task_id=seedance_id,
                            seedance_task_ids=[seedance_id],
                            video_url=f"http://seedance.invalid/videos/{seedance_id}.mp4",
                            request=dict(result["request"], prompt=f"Scale test prompt {seedance_id}"),
                        )
                        xcoms.append(dict(base, task_id="generate", key="return_value", value=value))
            conn.execute(ti.insert(), tis)
            conn.execute(xcom.insert(), xcoms)


def copy_db(source: Path, target: Path) -> Path:
    """A consistent copy of a SQLite DB (the backup API, not a file copy)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with (
        contextlib.closing(sqlite3.connect(source)) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)
    return target


# ----------------------------------------------------------------- the template (worker)
def _worker_template(home: Path) -> None:
    """In a worker process with its own AIRFLOW_HOME: migrate, run the template DAG once."""
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True)
    try:  # Airflow 3.2+: dag.test() serializes the bundle itself
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(home / "dags"))
    except ImportError:  # Airflow 3.1: the DAG must be in the database first
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.models.dagbag import DagBag, sync_bag_to_db  # type: ignore[attr-defined,no-redef]

        DagBundlesManager().sync_bundles_to_db()
        bag = DagBag(dag_folder=str(home / "dags"), include_examples=False)  # type: ignore[call-arg]
        sync_bag_to_db(bag, "dags-folder", None)
    if bag.import_errors:
        raise RuntimeError(f"template DAG does not import: {bag.import_errors}")
    dag = bag.get_dag(TEMPLATE_DAG)
    run = dag.test()
    print("TEMPLATE " + json.dumps({"run_id": run.run_id, "state": str(run.state)}), flush=True)


def make_template(workdir: Path) -> tuple[Path, str]:
    """A SQLite metadata DB holding one real generation; returns (DB path, its run id)."""
    from benchmarks._common import connection_json, read_line, start_emulator, worker, worker_env

    home = workdir / "template-home"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / "ui_scale_template.py").write_text(
        textwrap.dedent(DAG_FILE.format(dag_id=TEMPLATE_DAG, task_id=TEMPLATE_TASK))
    )
    emulator = start_emulator(0.3, log_path=workdir / "emulator.log")
    try:
        env = worker_env(home, {"seedance_default": connection_json(emulator.base_url)})
        env["AIRFLOW__CORE__DAGS_FOLDER"] = str(home / "dags")
        env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
        with worker("benchmarks.ui_scale", str(home), env=env) as proc:
            line = read_line(proc, "TEMPLATE ")
        found = json.loads(line.split(" ", 1)[1])
    finally:
        emulator.stop()
    if found["state"] != "success":
        raise RuntimeError(f"the template run ended {found['state']}")
    return home / "airflow.db", str(found["run_id"])


# --------------------------------------------------------------------------- the timings
def load_queries(ref: str) -> types.ModuleType:
    """``airflow_provider_seedance/plugins/queries.py`` as of git ``ref``, as a module of its own."""
    from benchmarks._common import REPO

    source = subprocess.run(
        ["git", "show", f"{ref}:airflow_provider_seedance/plugins/queries.py"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="seedance-bench-queries-")) / "queries_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("seedance_queries_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses look their module up while it executes)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _counting_decodes(module: types.ModuleType) -> Iterator[list[int]]:
    """Count the XCom values ``module`` decodes (its ``decode_xcom`` is looked up at call time)."""
    real = getattr(module, "decode_xcom")  # noqa: B009
    count = [0]

    def counted(value: Any) -> Any:
        count[0] += 1
        return real(value)

    setattr(module, "decode_xcom", counted)  # noqa: B010 (a module attribute, patched)
    try:
        yield count
    finally:
        setattr(module, "decode_xcom", real)  # noqa: B010


def _digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


#: A case whose first call takes longer than this runs once (noise is small next to it).
LONG_SECONDS = 5.0


def _best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any, int]:
    """The best wall and CPU time (this process) of ``repeat`` calls, the last value, the calls
    made (one only if the first is longer than ``LONG_SECONDS``). CPU time is what to read on a
    shared machine: wall time also counts waiting for a core."""
    best, best_cpu, value, calls = float("inf"), float("inf"), None, 0
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        value = fn()
        calls += 1
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
        best = min(best, time.perf_counter() - start)
        if best > LONG_SECONDS:
            break
    return best, best_cpu, value, calls


def time_cases(
    engine: Engine, q: types.ModuleType, generations: int, repeat: int
) -> dict[str, dict[str, Any]]:
    """Each case's best time, what it returned (a summary) and the XCom values it decoded."""
    from fastapi.testclient import TestClient
    from sqlalchemy.orm import Session

    from airflow_provider_seedance.plugins import seedance_view

    until = FIRST_DAY + timedelta(days=DAYS - 1)
    everything = q.GenerationFilter(dag_ids=READABLE)
    # Two thirds down the catalog, a full page.
    deep_offset = max(0, (generations * 9 // 10 * 2) // 3)
    narrow = q.GenerationFilter(
        dag_ids=READABLE, dag_id="scale_a", status="failed", since=date(2026, 4, 1), until=date(2026, 4, 30)
    )
    ninety = q.GenerationFilter(dag_ids=READABLE, since=FIRST_DAY, until=until)
    found: dict[str, dict[str, Any]] = {}

    def measure(case: str, fn: Callable[[], Any], summary: Callable[[Any], Any]) -> None:
        with _counting_decodes(q) as decoded:
            seconds, cpu_seconds, value, calls = _best_of(fn, repeat)
        found[case] = {
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "calls": calls,
            "xcoms_decoded": decoded[0] // calls,
            "summary": summary(value),
        }

    def page_summary(page: Any) -> dict[str, Any]:
        cards = [
            [
                i["dag_id"],
                i["run_id"],
                i["task_id"],
                i["map_index"],
                i["item"],
                i["seedance_task_id"],
                i["outcome"],
            ]
            for i in page.items
        ]
        return {
            "total": page.total,
            "items": len(page.items),
            # Which cards, in which order, with what outcome (compared across query modules).
            "cards_sha256": _digest(json.dumps(cards, default=str).encode()),
            "outcomes": sorted({str(i["outcome"]) for i in page.items}),
        }

    def spend_summary(report: Any) -> dict[str, Any]:
        total = report["total"]
        return {
            "credits": total["credits"],
            "generations": total["generations"],
            "days": len(report["by_day"]),
            "report_sha256": _digest(json.dumps(report, sort_keys=True, default=str).encode()),
        }

    with Session(engine) as session:
        measure("first_page_24", lambda: q.list_generations(session, everything), page_summary)
        measure(
            "deep_page",
            lambda: q.list_generations(session, everything, limit=100, offset=deep_offset),
            page_summary,
        )
        measure("filtered_page", lambda: q.list_generations(session, narrow), page_summary)
        measure("spend_90_days", lambda: q.spend(session, ninety), spend_summary)

    app = seedance_view.app
    saved = seedance_view.queries
    seedance_view.queries = q  # type: ignore[attr-defined]
    app.dependency_overrides[seedance_view.readable_dags] = lambda: READABLE

    def session_override() -> Iterator[Session]:
        with Session(engine) as s:
            yield s

    app.dependency_overrides[seedance_view.db_session] = session_override
    try:
        client = TestClient(app)
        query = f"since={FIRST_DAY}&until={until}"

        def http(path: str) -> Callable[[], Any]:
            def get() -> Any:
                response = client.get(path)
                if response.status_code != 200:
                    raise RuntimeError(f"GET {path}: HTTP {response.status_code}: {response.text[:300]}")
                return response

            return get

        measure("http_generations", http("/api/generations?limit=24"), lambda r: _digest(r.content))
        measure("http_spend_json", http(f"/api/spend?{query}"), lambda r: _digest(r.content))
        measure("http_spend_svg", http(f"/api/spend.svg?{query}"), lambda r: _digest(r.content))
    finally:
        app.dependency_overrides.clear()
        seedance_view.queries = saved  # type: ignore[attr-defined]
    return found


# --------------------------------------------------------------------------------- main
def _ensure_airflow_home() -> None:
    """The timings never touch Airflow's own DB, but importing Airflow wants a home."""
    if "AIRFLOW_HOME" not in os.environ:
        home = Path(tempfile.mkdtemp(prefix="seedance-bench-ui-home-"))
        os.environ["AIRFLOW_HOME"] = str(home)
        os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home}/airflow.db"
        os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="generations")
    parser.add_argument("--repeat", type=int, default=5, help="best of k (default 5)")
    parser.add_argument("--compare", default=None, help="also time queries.py of this git ref (e.g. main)")
    parser.add_argument("--results-dir", type=Path, default=None)
    parser.add_argument(
        "--name", default=None, help="result file name (default ui_scale, ui_scale_vs_<REF> with --compare)"
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker_template(Path(args.worker))
        return 0
    _ensure_airflow_home()
    from sqlalchemy import create_engine

    from airflow_provider_seedance.plugins import queries
    from benchmarks._common import table, write_result

    sizes = sorted(set(args.sizes))
    variants: dict[str, types.ModuleType] = {"current": queries}
    if args.compare:
        variants = {f"baseline_{args.compare}": load_queries(args.compare), "current": queries}
    workdir = Path(tempfile.mkdtemp(prefix="seedance-bench-ui-"))
    rows: list[dict[str, Any]] = []
    try:
        t0 = time.monotonic()
        template_db, template_run = make_template(workdir)
        print(f"  template run {template_run} in {time.monotonic() - t0:.0f}s", file=sys.stderr, flush=True)
        for n in sizes:
            t0 = time.monotonic()
            db = copy_db(template_db, workdir / f"n{n}" / "airflow.db")
            engine = create_engine(f"sqlite:///{db}")
            try:
                clone_rows(engine, TEMPLATE_DAG, template_run, TEMPLATE_TASK, n, decode=queries.decode_xcom)
                print(f"  N={n:,}: rows cloned in {time.monotonic() - t0:.0f}s", file=sys.stderr, flush=True)
                for variant, module in variants.items():
                    for case, figures in time_cases(engine, module, n, args.repeat).items():
                        rows.append({"variant": variant, "n": n, "case": case, **figures})
                        print(
                            f"  N={n:,} {variant:16s} {case:16s} {figures['seconds'] * 1000:9.1f} ms "
                            f"{figures['xcoms_decoded']:8,} XComs decoded",
                            file=sys.stderr,
                            flush=True,
                        )
            finally:
                engine.dispose()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    smallest = sizes[0]
    by_key = {(r["variant"], r["n"], r["case"]): r for r in rows}
    baseline = next(iter(variants))
    for row in rows:
        row["ms"] = row["seconds"] * 1000
        small = by_key[(row["variant"], smallest, row["case"])]
        row["growth_ratio"] = row["seconds"] / small["seconds"] if small["seconds"] > 0 else None
        row["n_ratio"] = row["n"] / smallest
        row["us_per_generation"] = row["seconds"] * 1e6 / row["n"]
        row["cpu_ms"] = row["cpu_seconds"] * 1000
        row["cpu_us_per_generation"] = row["cpu_seconds"] * 1e6 / row["n"]
        row["cpu_growth_ratio"] = (
            row["cpu_seconds"] / small["cpu_seconds"] if small["cpu_seconds"] > 0 else None
        )
        base = by_key[(baseline, row["n"], row["case"])]
        row["vs_baseline_ratio"] = row["seconds"] / base["seconds"] if base["seconds"] > 0 else None
        row["same_result_as_baseline"] = row["summary"] == base["summary"]
    columns = [
        ("variant", "queries"),
        ("case", "case"),
        ("n", "generations"),
        ("ms", "best ms"),
        ("xcoms_decoded", "XComs decoded"),
        ("growth_ratio", f"time / time at {smallest:,}"),
        ("n_ratio", f"N / {smallest:,}"),
        ("us_per_generation", "µs per generation"),
        ("cpu_ms", "best CPU ms"),
        ("cpu_growth_ratio", f"CPU / CPU at {smallest:,}"),
        ("cpu_us_per_generation", "CPU µs per generation"),
        ("vs_baseline_ratio", f"time / {baseline}"),
    ]
    text = table(rows, columns)
    print(text)
    name = args.name or (
        "ui_scale_vs_" + "".join(c if c.isalnum() else "_" for c in args.compare)
        if args.compare
        else "ui_scale"
    )
    write_result(
        name,
        {
            "sizes": sizes,
            "repeat": args.repeat,
            "variants": list(variants),
            "baseline": baseline,
            "rows": rows,
            "table_markdown": text,
        },
        args.results_dir,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
