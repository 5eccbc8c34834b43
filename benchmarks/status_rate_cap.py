"""N status triggers on one event loop, with and without the connection's status-read rate
cap (extra ``status_reads_per_second``): the request rate the API sees, and what the cap
costs in event latency.

    python -m benchmarks.status_rate_cap                  # CI size: N = 1,000 at 1 s polls, cap 200/s
    python -m benchmarks.status_rate_cap --n 10000 --poll-interval 10 --generation-seconds 40 --cap 500

Method. The emulator runs in its own process and logs every request it answers (its access
log, millisecond timestamps). Each case runs in a fresh worker process:

1. the parent resets the emulator and submits N generations (``generation_seconds`` G);
2. the worker starts N ``SeedanceStatusTrigger`` runs in one event loop, staggered uniformly
   over one poll interval, next to a ticker measuring event-loop lag; the connection carries
   the cap in the ``capped`` case and none in the ``uncapped`` one;
3. requests/s = the most ``GET /v1/status`` requests in any 1-s window ``[t, t + 1)`` of the
   emulator's log (what an API's rate limiter would count), cross-checked against the
   emulator's request counter; the same maximum over the bucket's own grants (the event
   loop's clock) shows the limiter itself, without the network's jitter;
4. event latency = time of the trigger's event - time the generation was due (an upper
   bound on its creation + G).

Both cases run in the same run against the same emulator; the latency ratios are capped /
uncapped. At the cap, each trigger's polls are spaced by N / cap seconds rather than the
poll interval, so the latency ratio grows with N / (cap x interval): the price of the cap.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

VARIANTS = ("uncapped", "capped")
BASELINE = "uncapped"
CONN_ID = "seedance_rate_bench"
#: An access-log line of a status read: ``<asctime> INFO aiohttp.access: ... "GET /v1/status?...``.
_STATUS_LINE = re.compile(
    r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+ aiohttp\.access: .*"GET /v1/status[?" ]'
)


def status_request_times(log_text: str) -> list[float]:
    """Epoch-like seconds (the log's local time) of each status request in an emulator log."""
    times = []
    for line in log_text.splitlines():
        match = _STATUS_LINE.match(line)
        if match:
            times.append(datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp())
    return times


# ---------------------------------------------------------------------------------- worker
async def _run_case(config: dict[str, Any]) -> dict[str, Any]:
    from aiolimiter import AsyncLimiter

    from airflow_provider_seedance.triggers.seedance import SeedanceStatusTrigger
    from benchmarks.trigger_poll_cost import _StubTI, _ticker

    loop = asyncio.get_running_loop()
    grants: list[float] = []
    real_acquire = AsyncLimiter.acquire

    async def recording(self: AsyncLimiter, amount: float = 1) -> None:
        await real_acquire(self, amount)
        grants.append(loop.time())

    AsyncLimiter.acquire = recording  # type: ignore[method-assign]

    ids: list[str] = config["ids"]
    dues: list[float] = config["dues"]
    interval = float(config["poll_interval"])
    rng = random.Random(1)  # noqa: S311 - stagger, not crypto
    offsets = [rng.uniform(0, interval) for _ in ids]
    events: dict[int, float] = {}
    statuses: dict[int, str] = {}

    async def one(i: int) -> None:
        trigger = SeedanceStatusTrigger(ids[i], seedance_conn_id=CONN_ID, poll_interval=interval)
        trigger.task_instance = _StubTI()
        await asyncio.sleep(offsets[i])
        async for event in trigger.run():
            events[i] = time.time()
            statuses[i] = str(event.payload["status"])
            return

    lags: list[float] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(_ticker(lags, [], stop))
    started = time.monotonic()
    tasks = [asyncio.create_task(one(i)) for i in range(len(ids))]
    done, pending = await asyncio.wait(tasks, timeout=float(config["timeout"]))
    for task in pending:
        task.cancel()
    errors = [repr(t.exception()) for t in done if not t.cancelled() and t.exception() is not None]
    if errors:
        raise RuntimeError(f"{len(errors)} triggers failed, e.g. {errors[0]}")
    wall = time.monotonic() - started
    stop.set()
    await ticker
    return {
        "wall_seconds": wall,
        "events": len(events),
        "event_statuses": sorted(set(statuses.values())),
        "timed_out": len(pending),
        "grants": grants,
        "lags": lags,
        "latencies": [events[i] - dues[i] for i in events],
    }


def worker_main() -> int:
    import logging

    # Imports (Airflow's are slow) done before the parent submits: READY, then the jobs.
    import airflow_provider_seedance.triggers.seedance  # noqa: F401
    import benchmarks.trigger_poll_cost  # noqa: F401

    logging.basicConfig(level=logging.INFO, handlers=[logging.FileHandler(os.devnull)], force=True)
    print("READY", flush=True)
    config = json.loads(sys.stdin.readline())
    print("RESULT " + json.dumps(asyncio.run(_run_case(config))), flush=True)
    return 0


# ---------------------------------------------------------------------------------- parent
def _worker_env(base_url: str, home: Path, cap: float | None) -> dict[str, str]:
    from benchmarks._common import API_KEY, worker_env

    extra = {} if cap is None else {"status_reads_per_second": cap}
    conn = {"conn_type": "seedance", "host": base_url, "password": API_KEY, "extra": extra}
    return worker_env(home, {CONN_ID: json.dumps(conn)})


def run_case(
    emulator: Any, variant: str, n: int, cap: float, interval: float, generation_seconds: float, workdir: Path
) -> dict[str, Any]:
    from benchmarks._common import max_per_window, percentile, read_line, submit_many, worker

    capped = variant == "capped"
    # Every trigger needs at least one read after its generation is due: at the cap that is
    # N / cap seconds for all of them, on top of G and the polls before.
    timeout = generation_seconds + 3 * interval + (3 * n / cap if capped else 0) + 60
    env = _worker_env(emulator.base_url, workdir, cap if capped else None)
    with worker("benchmarks.status_rate_cap", env=env) as proc:
        assert proc.stdin is not None
        read_line(proc, "READY")
        emulator.reset()
        submitted = asyncio.run(submit_many(emulator.base_url, n, generation_seconds))
        config = {
            "ids": [t for t, _ in submitted],
            "dues": [d for _, d in submitted],
            "poll_interval": interval,
            "timeout": timeout,
        }
        log_offset = emulator.log_path.stat().st_size
        before = emulator.ledger()["status_requests"]
        proc.stdin.write(json.dumps(config) + "\n")
        proc.stdin.flush()
        result = json.loads(read_line(proc, "RESULT ")[len("RESULT ") :])
    sent = emulator.ledger()["status_requests"] - before
    with open(emulator.log_path, "rb") as log:
        log.seek(log_offset)
        times = status_request_times(log.read().decode("utf-8", "replace"))
    grants, lags, latencies = result.pop("grants"), result.pop("lags"), result.pop("latencies")
    return {
        "variant": variant,
        "n": n,
        "cap_per_second": cap if capped else None,
        "poll_interval": interval,
        "generation_seconds": generation_seconds,
        **result,
        "status_requests": sent,
        "status_requests_logged": len(times),
        "mean_requests_per_second": sent / result["wall_seconds"] if result["wall_seconds"] else 0.0,
        "max_requests_per_1s_window": max_per_window(times),
        "max_grants_per_1s_window": max_per_window(grants) if grants else None,
        "lag_ms_p99": 1000 * percentile(lags, 99),
        "event_latency_s_p50": percentile(latencies, 50),
        "event_latency_s_p99": percentile(latencies, 99),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1000, help="triggers on one event loop")
    parser.add_argument("--cap", type=float, default=200.0, help="status_reads_per_second of the capped case")
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--generation-seconds", type=float, default=6.0)
    parser.add_argument("--results-dir", type=Path, default=None)
    parser.add_argument("--name", default="status_rate_cap", help="result file name (without .json)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main()

    from airflow_provider_seedance.emulator.testing import EmulatorProcess
    from benchmarks._common import API_KEY, CREDITS, table, write_result

    workdir = Path(tempfile.mkdtemp(prefix="seedance-bench-rate-"))
    # Info level: the access log is the emulator's record of each request and its time.
    emulator = EmulatorProcess(
        api_keys={API_KEY: CREDITS},
        generation_seconds=args.generation_seconds,
        extra_args=["--log-level", "info"],
        log_path=workdir / "emu.log",
    ).start()
    rows: list[dict[str, Any]] = []
    try:
        for variant in VARIANTS:
            started = time.monotonic()
            row = run_case(
                emulator, variant, args.n, args.cap, args.poll_interval, args.generation_seconds, workdir
            )
            print(
                f"  {variant:9s} N={args.n:,}: {row['status_requests']:,} reads, max "
                f"{row['max_requests_per_1s_window']}/s, latency p99 {row['event_latency_s_p99']:.2f}s "
                f"({time.monotonic() - started:.0f}s)",
                file=sys.stderr,
                flush=True,
            )
            rows.append(row)
    finally:
        with contextlib.suppress(Exception):
            emulator.stop()
    base = next(r for r in rows if r["variant"] == BASELINE)
    for row in rows:
        for key in ("event_latency_s_p50", "event_latency_s_p99"):
            row[key.replace("_s_", "_ratio_")] = row[key] / base[key] if base[key] else None
        row["max_rate_over_cap"] = (
            row["max_requests_per_1s_window"] / args.cap if row["cap_per_second"] else None
        )
    columns = [
        ("variant", "case"),
        ("n", "N"),
        ("cap_per_second", "cap /s"),
        ("status_requests", "status reads"),
        ("mean_requests_per_second", "mean /s"),
        ("max_requests_per_1s_window", "max /s (emulator log)"),
        ("max_grants_per_1s_window", "max /s (bucket clock)"),
        ("lag_ms_p99", "loop lag p99 ms"),
        ("event_latency_s_p50", "latency p50 s"),
        ("event_latency_s_p99", "latency p99 s"),
        ("event_latency_ratio_p99", "p99 x uncapped"),
    ]
    text = table(rows, columns)
    print(text)
    write_result(
        args.name,
        {
            "baseline": BASELINE,
            "cap_per_second": args.cap,
            "rows": rows,
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "table_markdown": text,
        },
        args.results_dir,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
