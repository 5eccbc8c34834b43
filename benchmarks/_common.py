"""Shared helpers for the benchmarks: machine description, emulator set-up, submissions,
tables and JSON results.

Benchmarks compare alternatives measured in the same run, against the same emulator, and
report ratios to a baseline of that run; absolute figures are printed for context only.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

from airflow_provider_seedance.emulator.testing import EmulatorProcess

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "benchmarks" / "results"
#: The emulator account every benchmark uses; plenty of credits for 10,000 generations.
API_KEY = "sk-bench-0000000000000000"
CREDITS = 1_000_000_000
#: The cheapest request: 480p, 4 s, no audio (8 credits).
REQUEST_BODY: dict[str, Any] = {"prompt": "a product on a turntable", "resolution": "480p", "duration": 4}


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    try:
        from importlib.metadata import version

        airflow_version = version("apache-airflow")
        aiohttp_version = version("aiohttp")
        http_provider = version("apache-airflow-providers-http")
    except Exception:  # pragma: no cover - metadata missing
        airflow_version = aiohttp_version = http_provider = "unknown"
    return {
        "nproc": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "airflow": airflow_version,
        "aiohttp": aiohttp_version,
        "apache_airflow_providers_http": http_provider,
        "platform": platform.platform(),
        # Other work on the machine competes for the same cores: recorded with every result.
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def start_emulator(generation_seconds: float, log_path: Path | None = None) -> EmulatorProcess:
    """An emulator in its own process, logging warnings only (no access log per request)."""
    return EmulatorProcess(
        api_keys={API_KEY: CREDITS},
        generation_seconds=generation_seconds,
        extra_args=["--log-level", "warning"],
        log_path=log_path,
    ).start()


def connection_json(base_url: str, api_key: str = API_KEY) -> str:
    return json.dumps({"conn_type": "seedance", "host": base_url, "password": api_key})


async def submit_many(
    base_url: str, n: int, generation_seconds: float, concurrency: int = 32
) -> list[tuple[str, float]]:
    """Submit ``n`` generations; returns ``(task_id, due_at)`` with ``due_at`` an upper bound
    (answer time + generation time, epoch seconds)."""
    import aiohttp

    headers = {"Authorization": f"Bearer {API_KEY}"}
    semaphore = asyncio.Semaphore(concurrency)
    results: list[tuple[str, float]] = []

    async with aiohttp.ClientSession(headers=headers) as session:

        async def one() -> None:
            async with semaphore, session.post(f"{base_url}/v1/generate", json=REQUEST_BODY) as response:
                body = await response.json()
                if response.status != 200:
                    raise RuntimeError(f"submit failed: HTTP {response.status}: {body}")
                results.append((str(body["data"]["task_id"]), time.time() + generation_seconds))

        await asyncio.gather(*(one() for _ in range(n)))
    return results


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), nearest-rank on sorted values; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return float(ordered[rank])


def max_per_window(times: Sequence[float], window: float = 1.0) -> int:
    """The most events in any half-open window ``[t, t + window)``; the busiest such window
    starts at an event, so only those starts are tried."""
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, t + window) - i for i, t in enumerate(ordered)), default=0)


def mean(values: Sequence[float]) -> float:
    return float(statistics.fmean(values)) if values else float("nan")


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:.{digits}f}".rstrip("0").rstrip(".")
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """A Markdown table of ``rows`` with ``(key, header)`` columns."""
    header = "| " + " | ".join(h for _, h in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    lines = [header, rule]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row.get(k)) for k, _ in columns) + " |")
    return "\n".join(lines)


def write_result(name: str, payload: Mapping[str, Any], results_dir: Path | None = None) -> Path:
    """Write ``<results_dir>/<name>.json`` (with the machine and the command line added)."""
    directory = results_dir or RESULTS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    document = {
        "benchmark": name,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        **payload,
    }
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return path


# ------------------------------------------------------------------ worker processes
def worker_env(home: Path, connections: Mapping[str, str]) -> dict[str, str]:
    """The environment of a benchmark's worker process: its own Airflow home and SQLite DB,
    ``connections`` (conn id -> JSON) as ``AIRFLOW_CONN_*``, and this checkout importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            **{f"AIRFLOW_CONN_{conn_id.upper()}": value for conn_id, value in connections.items()},
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
    )
    return env


@contextlib.contextmanager
def worker(module: str, *args: str, env: Mapping[str, str]) -> Iterator[subprocess.Popen[str]]:
    """``python -m module --worker *args``, talking JSON lines on stdin/stdout; killed on exit."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--worker", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=None,
        env=dict(env),
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def read_line(proc: subprocess.Popen[str], prefix: str) -> str:
    """The worker's next output line that starts with ``prefix``."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(prefix):
            return line
    raise RuntimeError(f"worker exited ({proc.wait()}) before printing {prefix!r}")
