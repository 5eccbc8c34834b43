"""Status requests per second the bundled emulator sustains, so we know when it (and not the
client under test) is the bottleneck of the other benchmarks.

    python -m benchmarks.emulator_capacity            # CI size: 100 and 1,000 stored tasks
    python -m benchmarks.emulator_capacity --full     # adds 10,000 stored tasks

The emulator runs in its own process; this process is the client: one aiohttp session on
one event loop with C concurrent connections, each sending ``GET /v1/status`` back to back
for a fixed time, for tasks that are still running (the common case of a poll). The
emulator's own CPU use (psutil on its pid) shows whether it is saturated (about 1.0 core:
it is single-threaded). The number of tasks the emulator holds is varied because it finishes
due tasks by scanning all of them on every status request.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from benchmarks._common import API_KEY, start_emulator, submit_many, table, write_result

CI_TASKS = (100, 1000)
FULL_TASKS = (100, 1000, 10_000)
CONCURRENCY = (1, 10, 100)


async def hammer(base_url: str, ids: list[str], concurrency: int, seconds: float) -> dict[str, Any]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    count = 0
    errors = 0
    latencies: list[float] = []
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {API_KEY}"}, connector=connector
    ) as session:
        end = loop.time() + seconds

        async def worker(k: int) -> None:
            nonlocal count, errors
            i = k
            while loop.time() < end:
                started = loop.time()
                async with session.get(f"{base_url}/v1/status", params={"task_id": ids[i % len(ids)]}) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
                latencies.append(loop.time() - started)
                count += 1
                i += concurrency

        started = loop.time()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        wall = loop.time() - started
    latencies.sort()
    return {
        "requests": count,
        "errors": errors,
        "wall_seconds": wall,
        "requests_per_second": count / wall,
        "latency_ms_p50": 1000 * latencies[len(latencies) // 2] if latencies else None,
        "latency_ms_p99": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="also 10,000 stored tasks")
    parser.add_argument("--tasks", type=int, nargs="*", help="stored task counts to test")
    parser.add_argument("--concurrency", type=int, nargs="*", default=list(CONCURRENCY))
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each measurement")
    parser.add_argument("--results-dir", type=Path, default=None)
    parser.add_argument("--name", default="emulator_capacity")
    args = parser.parse_args(argv)
    task_counts = args.tasks or list(FULL_TASKS if args.full else CI_TASKS)

    rows: list[dict[str, Any]] = []
    # Generations never finish during the run: every poll is of a running task.
    emulator = start_emulator(generation_seconds=3600.0)
    try:
        emu_proc = psutil.Process(emulator.pid)
        for tasks in task_counts:
            emulator.reset()
            ids = [t for t, _ in asyncio.run(submit_many(emulator.base_url, tasks, 3600.0))]
            for concurrency in args.concurrency:
                cpu0 = sum(emu_proc.cpu_times()[:2])
                before = emulator.ledger()["status_requests"]
                t0 = time.monotonic()
                row = asyncio.run(hammer(emulator.base_url, ids, concurrency, args.seconds))
                wall = time.monotonic() - t0
                counted = emulator.ledger()["status_requests"] - before
                row.update(
                    {
                        "stored_tasks": tasks,
                        "concurrency": concurrency,
                        "counted_by_emulator": counted,
                        "emulator_cores": (sum(emu_proc.cpu_times()[:2]) - cpu0) / wall,
                    }
                )
                print(
                    f"  tasks={tasks:>6,} C={concurrency:>4}: {row['requests_per_second']:,.0f} req/s, "
                    f"emulator {row['emulator_cores']:.2f} cores",
                    file=sys.stderr,
                    flush=True,
                )
                rows.append(row)
    finally:
        emulator.stop()
    text = table(
        rows,
        [
            ("stored_tasks", "tasks stored"),
            ("concurrency", "connections"),
            ("requests_per_second", "status req/s"),
            ("latency_ms_p50", "latency p50 ms"),
            ("latency_ms_p99", "latency p99 ms"),
            ("emulator_cores", "emulator cores"),
            ("errors", "errors"),
        ],
    )
    print(text)
    write_result(args.name, {"rows": rows, "table_markdown": text}, args.results_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
