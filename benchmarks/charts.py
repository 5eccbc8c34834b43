"""Charts of the latest results (``benchmarks/results/*.json`` -> ``*.png``), with matplotlib.

    python -m benchmarks.charts [--results-dir DIR]

Reads whichever result files exist; for the trigger benchmark it merges the CI-size file and
the full-size one (``trigger_poll_cost_full.json``) when both are present.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks._common import RESULTS_DIR

LABELS = {
    "raw_aiohttp": "raw aiohttp, one session (floor)",
    "seedance": "SeedanceStatusTrigger",
    "seedance_per_trigger_session": "SeedanceStatusTrigger, one session per trigger",
    "http_sensor": "HttpSensorTrigger",
    "mapped_deferrable": "(a) N mapped deferrable",
    "mapped_poke_sensors": "(b) submit + N poke sensors",
    "batch": "(c) one batch operator",
}


COLORS = {"mapped_deferrable": "#7a7a7a", "mapped_poke_sensors": "#c98b2b", "batch": "#2b7ac9"}


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def poll_chart(results: Path) -> Path | None:
    rows: list[dict[str, Any]] = []
    for name in ("trigger_poll_cost.json", "trigger_poll_cost_full.json"):
        doc = _load(results / name)
        if doc:
            rows += doc["rows"]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # The full-size file repeats the CI sizes: keep the latest row per (variant, n).
    latest: dict[tuple[str, int], dict[str, Any]] = {}
    for row in rows:
        latest[(row["variant"], row["n"])] = row
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 5.2))
    for variant in LABELS:
        points = sorted((n, r) for (v, n), r in latest.items() if v == variant)
        if not points:
            continue
        ns = [n for n, _ in points]
        ax1.plot(ns, [r["cpu_ms_per_poll"] for _, r in points], marker="o", label=LABELS[variant])
        ax2.plot(ns, [r["lag_ms_p99"] for _, r in points], marker="o", label=LABELS[variant])
    for ax, title, unit in (
        (ax1, "Client CPU per status poll", "CPU ms per poll"),
        (ax2, "Event-loop lag, p99", "ms"),
    ):
        ax.set_xscale("log")
        ax.set_xlabel("concurrent triggers in one event loop (1 s interval; 10,000 at 10 s)")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
    ax1.set_ylim(bottom=0)
    ax2.set_yscale("log")
    handles, labels = ax1.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    out = results / "trigger_poll_cost.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def catalog_chart(results: Path) -> Path | None:
    docs = sorted(results.glob("catalog_throughput_n*.json"), key=lambda p: int(p.stem.rsplit("n", 1)[1]))
    docs = [d for d in docs if _load(d)]
    if not docs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(docs), 3, figsize=(13, 3.6 * len(docs)), squeeze=False)
    for row_axes, path in zip(axes, docs, strict=True):
        doc = _load(path)
        assert doc is not None
        rows = doc["rows"]
        names = [LABELS.get(r["variant"], r["variant"]).split(" ", 1)[0] for r in rows]
        for ax, key, title in zip(
            row_axes,
            ("overhead_seconds", "worker_cpu_seconds", "requests"),
            ("Wall time beyond generation (s)", "Worker CPU (s)", "API requests"),
            strict=True,
        ):
            values = [r[key] for r in rows]
            colors = [COLORS.get(r["variant"], "#999999") for r in rows]
            bars = ax.bar(names, values, color=colors)
            ax.bar_label(
                bars, labels=[f"{v:,}" if isinstance(v, int) else f"{v:,.1f}" for v in values], fontsize=8
            )
            unfinished = any(r.get("timed_out") for r in rows)
            note = " (a: unfinished, lower bound)" if unfinished else ""
            ax.set_title(f"{title}, N = {doc['n']:,}{note}", fontsize=9)
            ax.grid(True, axis="y", alpha=0.3)
    fig.text(
        0.5,
        0.005,
        "(a) N mapped deferrable SeedanceGenerateOperator  (b) submitter + N poke-mode "
        "SeedanceStatusSensor  (c) one SeedanceBatchGenerateOperator",
        ha="center",
        fontsize=8,
    )
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    out = results / "catalog_throughput.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("charts: matplotlib is not installed (uv pip install matplotlib); no PNG written")
        return 0
    for chart in (poll_chart, catalog_chart):
        out = chart(args.results_dir)
        print(f"wrote {out}" if out else f"{chart.__name__}: no results yet")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
