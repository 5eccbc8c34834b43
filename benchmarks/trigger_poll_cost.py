"""CPU per status poll of SeedanceStatusTrigger vs the HTTP provider's HttpSensorTrigger vs a
raw aiohttp loop on one shared session (the floor), at N concurrent triggers in one loop.

    python -m benchmarks.trigger_poll_cost            # CI size: N = 100 and 1,000, 1 s polls
    python -m benchmarks.trigger_poll_cost --full     # adds N = 10,000 at a 10 s interval

Method. The emulator runs in its own process (its CPU is not counted). Each (alternative, N)
case runs in a fresh worker process, so RSS and CPU belong to that case alone:

1. the worker imports everything, measures its idle CPU rate (the lag ticker alone) and its
   baseline RSS, and says READY;
2. the parent resets the emulator, submits N generations (``generation_seconds`` G, so they
   finish mid-run), reads the emulator's status-request counter and says GO;
3. the worker starts N triggers, staggered uniformly over one poll interval (as a triggerer
   picks them up over time), in one event loop, next to a ticker that measures how late a
   20 ms sleep wakes up (event-loop lag), and samples RSS every 0.5 s;
4. CPU per poll = (worker CPU time during the run - idle ticker CPU) / status requests the
   emulator counted during the run. RSS per trigger = (peak RSS - baseline) / N. Event
   latency = time of the trigger's event - time the generation was due (an upper bound on
   its creation time + G, so latency is slightly over-, never under-estimated).

Alternatives:

* ``raw_aiohttp``: ``sleep; GET /v1/status; json`` on one shared ``aiohttp.ClientSession``.
* ``seedance``: ``SeedanceStatusTrigger.run()`` as shipped: its hook shares one aiohttp
  session per event loop and connection, and sends each status read directly (tenacity's
  retry machinery is only built after a transient failure).
* ``seedance_per_trigger_session``: the same trigger with one aiohttp session (and
  connection pool) per trigger, as the hook had before 8b0dcdc, for reference.
* ``http_sensor``: ``HttpSensorTrigger`` (apache-airflow-providers-http) polling
  ``/v1/status`` with the ``Authorization`` header. It fires on the first non-404 answer, and
  the status endpoint answers 200 while a generation is still running, so it cannot wait for
  a generation at all: it polls a task id the emulator answers 404 for, for the same length
  of time as the Seedance case; its event latency is therefore n/a.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VARIANTS = ("raw_aiohttp", "seedance", "seedance_per_trigger_session", "http_sensor")
BASELINE = "raw_aiohttp"
TICK = 0.02
SEEDANCE_CONN = "seedance_bench"
HTTP_CONN = "http_bench"


@dataclass(frozen=True)
class Scale:
    n: int
    poll_interval: float
    generation_seconds: float


CI_SCALES = (Scale(100, 1.0, 6.0), Scale(1000, 1.0, 6.0))
FULL_SCALES = (*CI_SCALES, Scale(10_000, 10.0, 40.0))


# ---------------------------------------------------------------------------------- worker
async def _ticker(
    lags: list[float], rss: list[int], stop: asyncio.Event, fds: list[int] | None = None
) -> None:
    import psutil

    process = psutil.Process()
    loop = asyncio.get_running_loop()
    last_rss = 0.0
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(TICK)
        lags.append(max(0.0, loop.time() - before - TICK))
        if before - last_rss >= 0.5:
            last_rss = before
            rss.append(process.memory_info().rss)
            if fds is not None:
                fds.append(process.num_fds())


class GcPauses:
    """Collects the duration of every garbage collection, by generation (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._started)

    def summary(self) -> dict[str, Any]:
        full = self.pauses[2]
        return {
            "gc_collections": {str(g): len(p) for g, p in self.pauses.items()},
            "gc_full_pause_ms_max": 1000 * max(full) if full else 0.0,
            "gc_pause_ms_total": 1000 * sum(sum(p) for p in self.pauses.values()),
        }


def _cpu() -> float:
    """This process's CPU time (all threads), in ns resolution: ``os.times`` counts 10 ms
    clock ticks, too coarse for the 2 s idle calibration and the small N = 100 cases."""
    return time.process_time()


def _per_trigger_session_trigger() -> Any:
    """SeedanceStatusTrigger with the hook's session handling from before 8b0dcdc: one
    aiohttp session (and connection pool) per trigger instead of one per loop and connection."""
    from airflow_provider_seedance.hooks.seedance import SeedanceHook
    from airflow_provider_seedance.hooks.tls import ssl_context
    from airflow_provider_seedance.triggers.seedance import SeedanceStatusTrigger

    class PerTriggerSessionHook(SeedanceHook):
        async def __aenter__(self) -> PerTriggerSessionHook:
            first = self._aio_depth == 0
            await super().__aenter__()
            if first:
                assert self._aio_settings is not None
                tls_context = ssl_context(self._aio_settings.tls)  # cached by super().__aenter__
                self._aio_session = self._own_session = self._aio_settings.client_session(tls_context)
            return self

        async def __aexit__(self, *exc_info: object) -> None:
            if self._aio_depth == 1:
                await self._own_session.close()
            await super().__aexit__(*exc_info)

    class PerTriggerSessionTrigger(SeedanceStatusTrigger):
        hook_class = PerTriggerSessionHook

    return PerTriggerSessionTrigger


class _StubTI:
    """What the triggerer sets as ``trigger.task_instance`` (only read for logging)."""

    dag_id = "bench"
    task_id = "bench"
    run_id = "bench"
    map_index = -1
    try_number = 1


async def _status_requests(base_url: str) -> int:
    """The emulator's count of status reads (its admin ledger)."""
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(f"{base_url}/_emulator/ledger") as answer:
        return int((await answer.json())["status_requests"])


async def _run_case(variant: str, config: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    from airflow_provider_seedance.triggers.seedance import SeedanceStatusTrigger

    base_url: str = config["base_url"]
    interval = float(config["poll_interval"])
    raw_session: aiohttp.ClientSession | None = None
    trigger_cls: Any = SeedanceStatusTrigger
    if variant == "seedance_per_trigger_session":
        trigger_cls = _per_trigger_session_trigger()
    if variant == "raw_aiohttp":
        raw_session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {config['api_key']}"})

    # Warm-up and idle calibration: imports done, the ticker alone for a while.
    stop = asyncio.Event()
    lags: list[float] = []
    rss: list[int] = []
    idle_task = asyncio.create_task(_ticker(lags, rss, stop))
    idle_cpu0, idle_t0 = _cpu(), time.monotonic()
    await asyncio.sleep(float(config.get("idle_seconds", 2.0)))
    stop.set()
    await idle_task
    idle_rate = (_cpu() - idle_cpu0) / (time.monotonic() - idle_t0)
    gc.collect()
    import psutil

    baseline_rss = psutil.Process().memory_info().rss

    print("READY", flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    jobs = json.loads(Path(line.split(" ", 1)[1].strip()).read_text())
    ids: list[str] = jobs["ids"]
    dues: list[float] = jobs["dues"]
    window = float(jobs["window"])
    n = len(ids)
    events: dict[int, float] = {}
    client_polls = 0
    statuses: dict[int, str] = {}
    rng = random.Random(1)  # noqa: S311 - stagger, not crypto
    offsets = [rng.uniform(0, interval) for _ in range(n)]

    async def raw(i: int) -> None:
        nonlocal client_polls
        assert raw_session is not None
        await asyncio.sleep(offsets[i])
        while True:
            await asyncio.sleep(interval)
            async with raw_session.get(f"{base_url}/v1/status", params={"task_id": ids[i]}) as response:
                data = (await response.json())["data"]
            client_polls += 1
            if data["status"] in ("SUCCESS", "FAILED"):
                events[i] = time.time()
                statuses[i] = str(data["status"]).lower()
                return

    async def seedance(i: int) -> None:
        trigger = trigger_cls(seedance_task_id=ids[i], seedance_conn_id=SEEDANCE_CONN, poll_interval=interval)
        trigger.task_instance = _StubTI()
        await asyncio.sleep(offsets[i])
        async for event in trigger.run():
            events[i] = time.time()
            statuses[i] = str(event.payload["status"])
            return

    async def http_sensor(i: int) -> None:
        from airflow.providers.http.triggers.http import HttpSensorTrigger

        trigger = HttpSensorTrigger(
            endpoint="v1/status",
            http_conn_id=HTTP_CONN,
            data={"task_id": f"never-exists-{i}"},
            headers={"Authorization": f"Bearer {config['api_key']}"},
            poke_interval=interval,
        )
        trigger.task_instance = _StubTI()  # type: ignore[assignment]
        await asyncio.sleep(offsets[i])
        async for _event in trigger.run():
            events[i] = time.time()
            statuses[i] = "fired"
            return

    one: Callable[[int], Coroutine[Any, Any, None]] = {
        "raw_aiohttp": raw,
        "seedance": seedance,
        "seedance_per_trigger_session": seedance,
        "http_sensor": http_sensor,
    }[variant]

    lags.clear()
    rss.clear()
    gc_pauses = GcPauses()
    gc.callbacks.append(gc_pauses)
    stop = asyncio.Event()
    fds: list[int] = []
    ticker = asyncio.create_task(_ticker(lags, rss, stop, fds))
    polled_before = await _status_requests(base_url) if variant == "http_sensor" else 0
    cpu0, t0 = _cpu(), time.monotonic()
    tasks = [asyncio.create_task(one(i)) for i in range(n)]
    timed_out = False
    if variant == "http_sensor":
        # It never fires, so it polls for the window the Seedance triggers need, and on a
        # loaded machine on until every trigger could have polled once (n status requests).
        await asyncio.sleep(window)
        deadline = time.monotonic() + window * 3 + 60
        while await _status_requests(base_url) - polled_before < n and time.monotonic() < deadline:
            await asyncio.sleep(interval)
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [repr(o) for o in outcomes if isinstance(o, Exception)]
        if errors:
            raise RuntimeError(f"{len(errors)} HttpSensorTriggers failed, e.g. {errors[0]}")
    else:
        done, pending = await asyncio.wait(tasks, timeout=window * 3 + 60)
        timed_out = bool(pending)
        for task in pending:
            task.cancel()
        errors = [repr(t.exception()) for t in done if not t.cancelled() and t.exception() is not None]
        if errors:
            raise RuntimeError(f"{len(errors)} triggers failed, e.g. {errors[0]}")
    wall = time.monotonic() - t0
    cpu = _cpu() - cpu0
    gc.callbacks.remove(gc_pauses)
    rss.append(psutil.Process().memory_info().rss)
    stop.set()
    await ticker
    if raw_session is not None:
        await raw_session.close()
    latencies = [events[i] - dues[i] for i in events] if variant != "http_sensor" else []
    return {
        "variant": variant,
        "n": n,
        "wall_seconds": wall,
        "cpu_seconds_raw": cpu,
        "idle_cpu_rate": idle_rate,
        "cpu_seconds": max(0.0, cpu - idle_rate * wall),
        "events": len(events),
        "client_polls": client_polls if variant == "raw_aiohttp" else None,
        "event_statuses": sorted(set(statuses.values())),
        "timed_out": timed_out,
        "baseline_rss": baseline_rss,
        "peak_rss": max(rss),
        "peak_open_fds": max(fds) if fds else None,
        **gc_pauses.summary(),
        "lags": lags,
        "latencies": latencies,
    }


def worker_main(variant: str) -> int:
    import logging

    # Trigger and hook logs are formatted and written, as in a triggerer, but to /dev/null.
    handler = logging.FileHandler(os.devnull)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    config = json.loads(sys.stdin.readline())
    result = asyncio.run(_run_case(variant, config))
    print("RESULT " + json.dumps(result), flush=True)
    return 0


# ---------------------------------------------------------------------------------- parent
def _worker_env(base_url: str, api_key: str, home: Path) -> dict[str, str]:
    from benchmarks._common import connection_json, worker_env

    return worker_env(
        home,
        {
            SEEDANCE_CONN: connection_json(base_url, api_key),
            HTTP_CONN: json.dumps({"conn_type": "http", "host": base_url}),
        },
    )


def run_case(
    emulator: Any, variant: str, scale: Scale, workdir: Path, idle_seconds: float = 2.0
) -> dict[str, Any]:
    from benchmarks._common import API_KEY, mean, percentile, read_line, submit_many, worker

    env = _worker_env(emulator.base_url, API_KEY, workdir)
    config = {
        "base_url": emulator.base_url,
        "api_key": API_KEY,
        "poll_interval": scale.poll_interval,
        "idle_seconds": idle_seconds,
    }
    with worker("benchmarks.trigger_poll_cost", variant, env=env) as proc:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(config) + "\n")
        proc.stdin.flush()
        read_line(proc, "READY")
        emulator.reset()
        submitted = asyncio.run(submit_many(emulator.base_url, scale.n, scale.generation_seconds))
        jobs = workdir / f"jobs-{variant}-{scale.n}.json"
        # The window HttpSensorTrigger polls for: as long as the Seedance triggers need.
        window = scale.generation_seconds + 2 * scale.poll_interval
        jobs.write_text(
            json.dumps(
                {"ids": [t for t, _ in submitted], "dues": [d for _, d in submitted], "window": window}
            )
        )
        before = emulator.ledger()["status_requests"]
        proc.stdin.write(f"GO {jobs}\n")
        proc.stdin.flush()
        result = json.loads(read_line(proc, "RESULT ")[len("RESULT ") :])
        polls = emulator.ledger()["status_requests"] - before
    lags = result.pop("lags")
    latencies = result.pop("latencies")
    result.update(
        {
            "poll_interval": scale.poll_interval,
            "generation_seconds": scale.generation_seconds,
            "status_requests": polls,
            "polls_per_second": polls / result["wall_seconds"] if result["wall_seconds"] else 0.0,
            "cpu_ms_per_poll": 1000 * result["cpu_seconds"] / polls if polls else float("nan"),
            "cpu_ms_per_poll_raw": 1000 * result["cpu_seconds_raw"] / polls if polls else float("nan"),
            "cpu_cores": result["cpu_seconds_raw"] / result["wall_seconds"],
            "rss_kb_per_trigger": (result["peak_rss"] - result["baseline_rss"]) / 1024 / scale.n,
            "lag_ms_p50": 1000 * percentile(lags, 50),
            "lag_ms_p99": 1000 * percentile(lags, 99),
            "lag_ms_max": 1000 * max(lags) if lags else float("nan"),
            "event_latency_s_p50": percentile(latencies, 50) if latencies else None,
            "event_latency_s_p99": percentile(latencies, 99) if latencies else None,
            "event_latency_s_mean": mean(latencies) if latencies else None,
        }
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="also N = 10,000 at a 10 s interval")
    parser.add_argument(
        "--sizes", type=int, nargs="*", help="N values (1 s interval) instead of the CI sizes"
    )
    parser.add_argument(
        "--scales",
        nargs="*",
        metavar="N:INTERVAL:G",
        help="explicit cases, e.g. 10000:10:40 (N triggers, poll interval s, generation s)",
    )
    parser.add_argument("--poll-interval", type=float, default=None, help="override the poll interval")
    parser.add_argument("--generation-seconds", type=float, default=None, help="override G")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--idle-seconds", type=float, default=2.0, help="idle-CPU calibration time per case")
    parser.add_argument(
        "--repeat", type=int, default=1, help="run each case R times (order rotated); report the median"
    )
    parser.add_argument("--results-dir", type=Path, default=None)
    parser.add_argument("--name", default="trigger_poll_cost", help="result file name (without .json)")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(args.worker)

    from benchmarks._common import start_emulator, table, write_result

    scales = list(FULL_SCALES if args.full else CI_SCALES)
    if args.sizes:
        scales = [Scale(n, 1.0, 6.0) for n in args.sizes]
    if args.scales:
        scales = [Scale(int(n), float(p), float(g)) for n, p, g in (x.split(":") for x in args.scales)]
    if args.poll_interval is not None or args.generation_seconds is not None:
        scales = [
            Scale(s.n, args.poll_interval or s.poll_interval, args.generation_seconds or s.generation_seconds)
            for s in scales
        ]
    variants = [BASELINE, *[v for v in args.variants if v != BASELINE]]
    rows: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    workdir = Path(tempfile.mkdtemp(prefix="seedance-bench-poll-"))
    emulator = start_emulator(generation_seconds=scales[0].generation_seconds, log_path=workdir / "emu.log")
    try:
        for scale in scales:
            if emulator.generation_seconds != scale.generation_seconds:
                emulator.stop()
                emulator.generation_seconds = scale.generation_seconds
                emulator.start()
            for repetition in range(args.repeat):
                # Rotate the order each repetition, so no alternative always runs first.
                shift = repetition % len(variants)
                for variant in variants[shift:] + variants[:shift]:
                    started = time.monotonic()
                    row = run_case(emulator, variant, scale, workdir, args.idle_seconds)
                    row["repetition"] = repetition
                    print(
                        f"  {variant:16s} N={scale.n:>6,} P={scale.poll_interval:g}s: "
                        f"{row['cpu_ms_per_poll']:.3f} ms/poll, {row['status_requests']:,} polls, "
                        f"lag p99 {row['lag_ms_p99']:.1f} ms ({time.monotonic() - started:.0f}s)",
                        file=sys.stderr,
                        flush=True,
                    )
                    runs.append(row)
    finally:
        emulator.stop()
    # One row per (N, alternative): the repetition with the median CPU per poll, with the spread.
    for scale in scales:
        for variant in variants:
            mine = sorted(
                (r for r in runs if r["n"] == scale.n and r["variant"] == variant),
                key=lambda r: r["cpu_ms_per_poll"],
            )
            if mine:
                row = dict(mine[(len(mine) - 1) // 2])
                row["repetitions"] = len(mine)
                row["cpu_ms_per_poll_min"] = mine[0]["cpu_ms_per_poll"]
                row["cpu_ms_per_poll_max"] = mine[-1]["cpu_ms_per_poll"]
                rows.append(row)
    for row in rows:
        base = next(r for r in rows if r["n"] == row["n"] and r["variant"] == BASELINE)
        floor = base["cpu_ms_per_poll"]
        row["cpu_per_poll_ratio"] = row["cpu_ms_per_poll"] / floor if floor > 0 else float("nan")
    columns = [
        ("variant", "alternative"),
        ("n", "N"),
        ("poll_interval", "interval s"),
        ("status_requests", "polls"),
        ("cpu_ms_per_poll", "CPU ms/poll"),
        ("cpu_per_poll_ratio", "x floor"),
        ("cpu_cores", "cores used"),
        ("lag_ms_p50", "lag p50 ms"),
        ("lag_ms_p99", "lag p99 ms"),
        ("rss_kb_per_trigger", "RSS KB/trigger"),
        ("peak_open_fds", "open fds"),
        ("event_latency_s_p50", "event latency p50 s"),
        ("event_latency_s_p99", "p99 s"),
    ]
    text = table(rows, columns)
    print(text)
    write_result(
        args.name,
        {
            "baseline": BASELINE,
            "scales": [s.__dict__ for s in scales],
            "rows": rows,
            "runs": runs,
            "table_markdown": text,
        },
        args.results_dir,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
