"""Memory of one SeedanceBatchStatusTrigger per in-flight generation (issue 16 item 3).

    python -m benchmarks.batch_trigger_rss                     # CI size: N = 200 and 1,000
    python -m benchmarks.batch_trigger_rss --n 1000 10000      # the figures in BENCHMARKS.md
    python -m benchmarks.batch_trigger_rss --n 10000 --tracemalloc   # + what holds the memory

Method. The emulator runs in its own process; its generations last longer than the whole
case (``--generation-seconds``), so every item stays in flight while the trigger is sampled.
Each (alternative, N) case runs in a fresh worker process, so the RSS is the trigger's own:

1. the worker imports everything and opens the connection once (a throwaway status read, so
   the connection cache, the TLS/aiohttp set-up and the loop's first allocations are in the
   baseline), garbage-collects and measures ``rss_start``; it says READY;
2. the parent resets the emulator, submits N generations and writes their ids to a file;
3. the worker reads the ids (``rss_ids``: the ids as the triggerer holds them after
   deserialising the trigger's kwargs), garbage-collects, measures ``rss_before`` (RSS just
   before the trigger is built), builds the trigger and runs it on one event loop while a
   thread samples RSS every 20 ms, until the trigger has read every item ``--rounds`` times
   (all answers must say the generation is still running), then cancels it.

RSS per in-flight item = (peak RSS while all N are in flight - ``rss_before``) / N; the same
from ``rss_start`` (ids included) is reported next to it, and so is the weight of the
trigger's serialised kwargs per item (``json.dumps(trigger.serialize()[1])``, what the
metadata database stores). The marginal cost per item between two sizes,
(delta RSS at N2 - delta RSS at N1) / (N2 - N1), removes the fixed cost (session, pool).
With ``--tracemalloc`` a second run of each case traces Python allocations from just before
the trigger is built and lists the top allocation sites at the traced peak.

Alternatives:

* ``shipped``: :class:`SeedanceBatchStatusTrigger` as it is in this checkout: each round, a
  pool of ``max_concurrency`` readers walks the ids and reduces each answer as it arrives.
* ``gather_per_item``: the same trigger with its rounds as before the change measured here:
  one asyncio task per generation behind a semaphore (``asyncio.gather``), every parsed
  answer kept until the next round's have all arrived (the old ``run()`` held each round's
  answers in a local until the next ``gather`` returned).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

CONN_ID = "seedance_rss_bench"
SAMPLE_EVERY = 0.02
VARIANTS = ("shipped", "gather_per_item")


# ---------------------------------------------------------------------------------- worker
class _RssSampler:
    """Samples this process's RSS from a thread (the event loop may be busy for a while)."""

    def __init__(self) -> None:
        import psutil

        self._process = psutil.Process()
        self._stop = threading.Event()
        self.peak = 0
        self.samples = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            self.samples += 1
            self._stop.wait(SAMPLE_EVERY)

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def _gather_per_item_trigger() -> type[Any]:
    """SeedanceBatchStatusTrigger with its rounds as before 2026-12 (issue 16 item 3): one
    asyncio task per generation behind a semaphore, every parsed answer kept until the whole
    round has been read, and until the next round's answers are all in."""
    from airflow_provider_seedance.exceptions import SeedanceError
    from airflow_provider_seedance.hooks.seedance import SeedanceHook
    from airflow_provider_seedance.models import SeedanceTask
    from airflow_provider_seedance.triggers.batch import Read, SeedanceBatchStatusTrigger

    class GatherPerItemTrigger(SeedanceBatchStatusTrigger):
        _last_answers: list[SeedanceTask | SeedanceError] = []

        async def _read_round(self, hook: SeedanceHook, pending: list[str]) -> list[Read]:
            semaphore = asyncio.Semaphore(self.max_concurrency)

            async def read(task_id: str) -> SeedanceTask | SeedanceError:
                async with semaphore:
                    try:
                        return await hook.aget_status(task_id)
                    except SeedanceError as exc:
                        return exc

            answers = await asyncio.gather(*(read(task_id) for task_id in pending))
            # The old run() kept each round's answers in a local until the next round's
            # gather returned: two rounds of parsed answers were alive at the peak.
            self._last_answers = answers

            def reduced(answer: Any) -> Any:
                if not isinstance(answer, SeedanceTask):
                    return answer
                return answer.to_dict(compact=True) if answer.is_terminal else None

            return [reduced(a) for a in answers]

    return GatherPerItemTrigger


def _trigger_class(variant: str) -> type[Any]:
    from airflow_provider_seedance.triggers.batch import SeedanceBatchStatusTrigger

    classes: dict[str, Callable[[], type[Any]]] = {
        "shipped": lambda: SeedanceBatchStatusTrigger,
        "gather_per_item": _gather_per_item_trigger,
    }
    return classes[variant]()


def _counting(trigger_cls: type[Any]) -> tuple[type[Any], dict[str, int]]:
    """``trigger_cls`` whose hook counts status reads and the answers that were terminal."""
    from airflow_provider_seedance.models import SeedanceTask

    counts = {"reads": 0, "terminal": 0}

    class CountingHook(trigger_cls.hook_class):  # type: ignore[name-defined,misc]
        async def aget_status(self, task_id: str, **kwargs: Any) -> SeedanceTask:
            task: SeedanceTask = await super().aget_status(task_id, **kwargs)
            counts["reads"] += 1
            counts["terminal"] += task.is_terminal
            return task

    counting = type(trigger_cls.__name__, (trigger_cls,), {"hook_class": CountingHook})
    return counting, counts


async def _run_case(variant: str, config: dict[str, Any]) -> dict[str, Any]:
    import psutil

    from airflow_provider_seedance.exceptions import SeedanceError
    from airflow_provider_seedance.hooks.seedance import SeedanceHook

    process = psutil.Process()
    trigger_cls, counts = _counting(_trigger_class(variant))
    # Warm-up: the connection resolved and cached, one session opened and closed.
    async with SeedanceHook(CONN_ID) as hook:
        with contextlib.suppress(SeedanceError):  # TASK_NOT_FOUND: the expected answer
            await hook.aget_status("warm-up-0000")
    gc.collect()
    rss_start = process.memory_info().rss
    print("READY", flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    ids: list[str] = json.loads(Path(line.split(" ", 1)[1].strip()).read_text())
    n = len(ids)
    gc.collect()
    rss_ids = process.memory_info().rss
    rounds = int(config["rounds"])
    traced = bool(config.get("tracemalloc"))
    before_snapshot = None
    if traced:
        tracemalloc.start(int(config.get("trace_frames", 1)))
        before_snapshot = tracemalloc.take_snapshot()
    gc.collect()
    rss_before = process.memory_info().rss

    started, cpu_started = time.monotonic(), time.process_time()
    with _RssSampler() as sampler:
        trigger = trigger_cls(
            seedance_task_ids=ids,
            seedance_conn_id=CONN_ID,
            poll_interval=float(config["poll_interval"]),
        )
        kwargs_bytes = len(json.dumps(trigger.serialize()[1]))
        events: list[Any] = []

        async def consume() -> None:
            async for event in trigger.run():
                events.append(event.payload)

        task = asyncio.create_task(consume())
        peak_snapshot, peak_traced = None, 0
        while counts["reads"] < rounds * n and not task.done():
            await asyncio.sleep(0.05)
            if traced:
                current = tracemalloc.get_traced_memory()[0]
                if current > peak_traced:
                    peak_traced, peak_snapshot = current, tracemalloc.take_snapshot()
        rss_end = process.memory_info().rss
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    wall, cpu = time.monotonic() - started, time.process_time() - cpu_started
    top: list[str] = []
    if traced and peak_snapshot is not None and before_snapshot is not None:
        tracemalloc.stop()
        stats = peak_snapshot.compare_to(before_snapshot, "lineno")
        top = [str(stat) for stat in stats[:15]]
    return {
        "variant": variant,
        "n": n,
        "rounds": counts["reads"] / n if n else 0,
        "status_reads": counts["reads"],
        "terminal_reads": counts["terminal"],
        "events": len(events),
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "rss_start": rss_start,
        "rss_ids": rss_ids,
        "rss_before": rss_before,
        "rss_end": rss_end,
        "peak_rss": max(sampler.peak, rss_end),
        "rss_samples": sampler.samples,
        "kwargs_bytes": kwargs_bytes,
        "tracemalloc": traced,
        "traced_peak_bytes": peak_traced if traced else None,
        "tracemalloc_top": top,
    }


def worker_main(variant: str) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING, force=True)
    config = json.loads(sys.stdin.readline())
    result = asyncio.run(_run_case(variant, config))
    print("RESULT " + json.dumps(result), flush=True)
    return 0


# ---------------------------------------------------------------------------------- parent
def run_case(emulator: Any, variant: str, n: int, workdir: Path, config: dict[str, Any]) -> dict[str, Any]:
    from benchmarks._common import connection_json, read_line, submit_many, worker, worker_env

    env = worker_env(workdir, {CONN_ID: connection_json(emulator.base_url)})
    with worker("benchmarks.batch_trigger_rss", variant, env=env) as proc:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(config) + "\n")
        proc.stdin.flush()
        read_line(proc, "READY")
        emulator.reset()
        submitted = asyncio.run(submit_many(emulator.base_url, n, emulator.generation_seconds))
        jobs = workdir / f"ids-{variant}-{n}.json"
        jobs.write_text(json.dumps([task_id for task_id, _ in submitted]))
        proc.stdin.write(f"GO {jobs}\n")
        proc.stdin.flush()
        row: dict[str, Any] = json.loads(read_line(proc, "RESULT ")[len("RESULT ") :])
    if row["terminal_reads"] or row["events"]:
        raise RuntimeError(
            f"{variant} N={n}: items left flight while sampling ({row['terminal_reads']} terminal "
            "answers): raise --generation-seconds"
        )
    row["rss_kb_per_item"] = (row["peak_rss"] - row["rss_before"]) / 1024 / n
    row["rss_kb_per_item_with_ids"] = (row["peak_rss"] - row["rss_start"]) / 1024 / n
    row["ids_kb_per_item"] = (row["rss_ids"] - row["rss_start"]) / 1024 / n
    row["kwargs_bytes_per_item"] = row["kwargs_bytes"] / n
    # All threads' CPU (the RSS sampler's too, ~50 reads/s), per status read: context only.
    row["cpu_ms_per_read"] = 1000 * row["cpu_seconds"] / row["status_reads"] if row["status_reads"] else None
    if row["traced_peak_bytes"] is not None:
        row["traced_kb_per_item"] = row["traced_peak_bytes"] / 1024 / n
    return row


COLUMNS = [
    ("variant", "alternative"),
    ("n", "N"),
    ("rounds", "rounds read"),
    ("rss_kb_per_item", "RSS KB/item"),
    ("marginal_kb_per_item", "marginal KB/item"),
    ("rss_kb_per_item_with_ids", "RSS KB/item incl. ids"),
    ("kwargs_bytes_per_item", "kwargs bytes/item"),
    ("peak_rss_mb", "peak RSS MB"),
    ("cpu_ms_per_read", "CPU ms/read"),
    ("wall_seconds", "wall s"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--rounds", type=int, default=3, help="status reads per item while sampled")
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument(
        "--generation-seconds", type=float, default=600.0, help="longer than any case: nothing ends"
    )
    parser.add_argument("--tracemalloc", action="store_true", help="also trace each case's allocations")
    parser.add_argument("--name", default="batch_trigger_rss")
    parser.add_argument("--results-dir", type=Path, default=None)
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(args.worker)

    from benchmarks._common import fmt, start_emulator, table, write_result

    workdir = Path(tempfile.mkdtemp(prefix="seedance-bench-rss-"))
    config = {"rounds": args.rounds, "poll_interval": args.poll_interval}
    rows: list[dict[str, Any]] = []
    traces: list[dict[str, Any]] = []
    with start_emulator(args.generation_seconds, log_path=workdir / "emu.log") as emulator:
        for n in sorted(args.n):
            for variant in args.variants:
                row = run_case(emulator, variant, n, workdir, config)
                row["peak_rss_mb"] = row["peak_rss"] / 2**20
                print(
                    f"  {variant:10s} N={n:>6,}: {row['rss_kb_per_item']:.2f} KB/item "
                    f"({row['rounds']:g} rounds, {row['wall_seconds']:.0f}s)",
                    file=sys.stderr,
                    flush=True,
                )
                rows.append(row)
                if args.tracemalloc:
                    trace = run_case(emulator, variant, n, workdir, {**config, "tracemalloc": True})
                    print(f"  tracemalloc {variant} N={n:,}: {fmt(trace['traced_kb_per_item'])} KB/item")
                    print("\n".join(f"    {line}" for line in trace["tracemalloc_top"]))
                    traces.append(trace)
    for row in rows:
        smaller = [r for r in rows if r["variant"] == row["variant"] and r["n"] < row["n"]]
        if smaller:
            base = max(smaller, key=lambda r: r["n"])
            grown = (row["peak_rss"] - row["rss_before"]) - (base["peak_rss"] - base["rss_before"])
            row["marginal_kb_per_item"] = grown / 1024 / (row["n"] - base["n"])
    markdown = table(rows, COLUMNS)
    print(markdown)
    write_result(
        args.name,
        {
            "config": {**config, "generation_seconds": args.generation_seconds},
            "rows": rows,
            "tracemalloc_runs": traces,
            "table_markdown": markdown,
        },
        args.results_dir,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
