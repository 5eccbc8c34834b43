"""Split a trigger's CPU into a cost per poll and a cost per trigger start-up.

Two ``trigger_poll_cost`` runs of the same N with different polls per trigger (the CI run:
G = 6 s at 1 s, and ``trigger_poll_cost_steady``: G = 30 s at 1 s) give, per alternative,
two points of ``CPU per trigger = a * polls per trigger + b``; ``a`` is the cost of a poll,
``b`` what a trigger costs once (start-up and its event).

    python -m benchmarks.poll_cost_split            # results/trigger_poll_cost{,_steady}.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks._common import RESULTS_DIR, table


def split(short: Mapping[str, Any], long: Mapping[str, Any]) -> tuple[float, float]:
    """``(ms per poll, ms per trigger)`` from two result rows of the same alternative and N."""
    if short["n"] != long["n"]:
        raise ValueError(f"different N: {short['n']} and {long['n']}")
    n = short["n"]
    polls_short, polls_long = short["status_requests"] / n, long["status_requests"] / n
    if polls_long <= polls_short:
        raise ValueError("the second run must poll more often per trigger than the first")
    cpu_short, cpu_long = 1000 * short["cpu_seconds"] / n, 1000 * long["cpu_seconds"] / n
    per_poll = (cpu_long - cpu_short) / (polls_long - polls_short)
    return per_poll, cpu_short - per_poll * polls_short


def split_rows(
    short_rows: Sequence[Mapping[str, Any]], long_rows: Sequence[Mapping[str, Any]], baseline: str
) -> list[dict[str, Any]]:
    """One row per (N, alternative) present in both runs, with the ratio to ``baseline``."""
    long_by_key = {(r["n"], r["variant"]): r for r in long_rows}
    rows = []
    for short in short_rows:
        long = long_by_key.get((short["n"], short["variant"]))
        if long is None:
            continue
        per_poll, per_trigger = split(short, long)
        polls = [r["status_requests"] / r["n"] for r in (short, long)]
        rows.append(
            {
                "n": short["n"],
                "variant": short["variant"],
                "polls_per_trigger": f"{polls[0]:.1f} / {polls[1]:.1f}",
                "ms_per_poll": per_poll,
                "ms_per_trigger": per_trigger,
            }
        )
    for row in rows:
        base = next((r for r in rows if r["n"] == row["n"] and r["variant"] == baseline), None)
        row["poll_ratio"] = row["ms_per_poll"] / base["ms_per_poll"] if base else None
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--short", type=Path, default=RESULTS_DIR / "trigger_poll_cost.json")
    parser.add_argument("--long", type=Path, default=RESULTS_DIR / "trigger_poll_cost_steady.json")
    args = parser.parse_args(argv)
    short, long = (json.loads(path.read_text()) for path in (args.short, args.long))
    rows = split_rows(short["rows"], long["rows"], baseline=short.get("baseline", "raw_aiohttp"))
    columns = [
        ("n", "N"),
        ("variant", "alternative"),
        ("polls_per_trigger", "polls per trigger (runs)"),
        ("ms_per_poll", "CPU ms per poll"),
        ("poll_ratio", "per poll: x floor"),
        ("ms_per_trigger", "CPU ms per trigger start-up"),
    ]
    print(table(rows, columns))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
