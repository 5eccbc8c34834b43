"""How the batch operator's cost per item grows with N: submit phase, trigger, resume.

    python -m benchmarks.batch_submit_scale                      # CI size: N = 200 and 1,000
    python -m benchmarks.batch_submit_scale --n 500 2000 5000    # the figures in BENCHMARKS.md
    python -m benchmarks.batch_submit_scale --n 2000 --profile   # + cProfile's top functions

Method. The emulator runs in its own process (its CPU is not counted). For each N, in this
process, one deferrable :class:`SeedanceBatchGenerateOperator` runs the way a task try does:

1. **submit**: ``execute`` validates, POSTs N generations (``max_in_flight`` 8) and writes the
   re-attach record to a task state store until it defers; the store serialises each value to
   JSON as Airflow's does (counted: writes and bytes);
2. **trigger**: the deferral's :class:`SeedanceBatchStatusTrigger` runs to its event;
3. **resume**: ``execute_complete`` with that event, up to the XCom value (no delivery).

Per-item cost = the phase's CPU time of this process (``time.process_time``, all threads) / N;
the row to read is the ratio of each N's per-item cost to the smallest N's (~1.0 means linear,
N times more items cost N times more). Absolute times are for context only.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks._common import REQUEST_BODY, connection_json, fmt, start_emulator, table, write_result

CONN_ID = "seedance_scale_bench"


class JsonStore:
    """A task state store that keeps what Airflow's keeps (a JSON copy) and counts the cost."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.writes = 0
        self.bytes_written = 0

    def get(self, key: str, default: Any = None) -> Any:
        raw = self.data.get(key)
        return default if raw is None else json.loads(raw)

    def set(self, key: str, value: Any) -> None:
        raw = json.dumps(value)
        self.writes += 1
        self.bytes_written += len(raw)
        self.data[key] = raw


class _TI:
    dag_id, run_id, task_id, map_index, try_number = "scale", "manual__1", "batch", -1, 1

    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def _context(store: JsonStore) -> dict[str, Any]:
    return {"task_state_store": store, "ti": _TI(), "outlet_events": defaultdict(lambda: None)}


def run_one(n: int, *, poll_interval: float, profile: bool) -> dict[str, Any]:
    from airflow_provider_seedance._compat import TaskDeferred
    from airflow_provider_seedance.operators.batch import SeedanceBatchGenerateOperator

    requests = [{**REQUEST_BODY, "id": f"item-{i:06d}"} for i in range(n)]
    operator = SeedanceBatchGenerateOperator(
        task_id="batch",
        requests=requests,
        seedance_conn_id=CONN_ID,
        deferrable=True,
        poll_interval=poll_interval,
        xcom_results_limit=None,
    )
    store = JsonStore()
    profiler = cProfile.Profile() if profile else None
    row: dict[str, Any] = {"n": n}

    cpu, wall = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    try:
        operator.execute(_context(store))
        raise RuntimeError("the batch did not defer")
    except TaskDeferred as deferred:
        trigger = deferred.trigger
    finally:
        if profiler:
            profiler.disable()
    row["submit_cpu_s"] = time.process_time() - cpu
    row["submit_wall_s"] = time.perf_counter() - wall
    row["record_writes"] = store.writes
    row["record_bytes"] = store.bytes_written

    async def first_event() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise RuntimeError("the trigger ended without an event")

    cpu, wall = time.process_time(), time.perf_counter()
    event = asyncio.run(first_event())
    row["trigger_cpu_s"] = time.process_time() - cpu
    row["trigger_wall_s"] = time.perf_counter() - wall

    writes, written = store.writes, store.bytes_written
    cpu, wall = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    try:
        outcome = operator.execute_complete(_context(store), event)
    finally:
        if profiler:
            profiler.disable()
    row["resume_cpu_s"] = time.process_time() - cpu
    row["resume_wall_s"] = time.perf_counter() - wall
    row["resume_record_bytes"] = store.bytes_written - written
    row["resume_record_writes"] = store.writes - writes
    row["succeeded"] = outcome["totals"]["succeeded"]
    for phase in ("submit", "trigger", "resume"):
        row[f"{phase}_ms_per_item"] = 1000 * row[f"{phase}_cpu_s"] / n
    row["record_bytes_per_item"] = row["record_bytes"] / n
    row["record_writes_per_item"] = row["record_writes"] / n
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(25)
        row["profile_top"] = text.getvalue()
    return row


COLUMNS = [
    ("n", "N"),
    ("submit_ms_per_item", "submit CPU ms/item"),
    ("submit_ratio", "vs smallest N"),
    ("trigger_ms_per_item", "trigger CPU ms/item"),
    ("trigger_ratio", "vs smallest N"),
    ("resume_ms_per_item", "resume CPU ms/item"),
    ("resume_ratio", "vs smallest N"),
    ("record_writes_per_item", "record writes/item"),
    ("record_bytes_per_item", "record bytes/item"),
    ("submit_wall_s", "submit wall s"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--generation-seconds", type=float, default=1.0)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions per N")
    parser.add_argument("--name", default="batch_submit_scale")
    parser.add_argument("--results-dir", default=None)
    args = parser.parse_args(argv)

    rows: list[dict[str, Any]] = []
    with start_emulator(args.generation_seconds) as emulator:
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = connection_json(emulator.base_url)
        for n in sorted(args.n):
            emulator.reset()
            row = run_one(n, poll_interval=args.poll_interval, profile=args.profile)
            print(f"N = {n}: {json.dumps({k: v for k, v in row.items() if k != 'profile_top'})}", flush=True)
            if args.profile:
                print(row["profile_top"], flush=True)
            rows.append(row)
    base = rows[0]
    for row in rows:
        for phase in ("submit", "trigger", "resume"):
            row[f"{phase}_ratio"] = row[f"{phase}_ms_per_item"] / base[f"{phase}_ms_per_item"]
    markdown = table(rows, COLUMNS)
    print(markdown)
    last = rows[-1]
    ratio = fmt(last["submit_ratio"])
    print(f"per-item submit cost at N = {fmt(last['n'])} vs N = {fmt(base['n'])}: {ratio}x")

    write_result(
        args.name,
        {
            "rows": [{k: v for k, v in row.items() if k != "profile_top"} for row in rows],
            "table_markdown": markdown,
        },
        Path(args.results_dir) if args.results_dir else None,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
