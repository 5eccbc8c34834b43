"""The spend chart as inline SVG: credits per day, stacked by DAG. No JavaScript, no library."""

from __future__ import annotations

import math
from html import escape
from typing import Any

from airflow_provider_seedance.models import format_usd

PALETTE = ("#7c3aed", "#0ea5e9", "#f59e0b", "#10b981", "#ef4444", "#6366f1", "#ec4899", "#84cc16")
OTHER_COLOR = "#9ca3af"
MAX_SERIES = len(PALETTE)


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _usd(figures: dict[str, Any]) -> str:
    """Dollars as the logs write them ($0.095), from the report's integer credits."""
    return format_usd(int(figures.get("credits") or 0))


def spend_svg(report: dict[str, Any], width: int = 960, height: int = 300) -> str:
    """Render :func:`.queries.spend`'s report; every label is escaped."""
    days: list[dict[str, Any]] = report.get("by_day") or []
    dags = [b["dag_id"] for b in report.get("by_dag") or []]
    shown = dags[: MAX_SERIES - 1] if len(dags) > MAX_SERIES else dags
    colors = {dag: PALETTE[i] for i, dag in enumerate(shown)}
    left, right, top, bottom = 56, 16, 28, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = _nice_max(max((d["credits"] for d in days), default=0))
    total = report.get("total") or {"credits": 0, "usd": 0.0}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-label="Seedance credits per day" class="spend-chart">',
        f'<text x="{left}" y="18" font-size="13" fill="currentColor">'
        f"Credits per day — total {int(total['credits'])} credits ({escape(_usd(total))})</text>",
    ]
    for i in range(5):
        value = peak * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d1d5db" '
            f'stroke-width="1"/><text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="currentColor">{value:g}</text>'
        )
    if days:
        slot = plot_w / len(days)
        bar = max(1.0, slot * 0.7)
        label_every = max(1, math.ceil(len(days) / 12))
        for index, day in enumerate(days):
            x = left + index * slot + (slot - bar) / 2
            y = top + plot_h
            for dag, figures in sorted(day.get("by_dag", {}).items()):
                h = plot_h * figures["credits"] / peak
                if h <= 0:
                    continue
                y -= h
                title = f"{day['date']} · {dag}: {figures['credits']} credits ({_usd(figures)})"
                parts.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                    f'fill="{colors.get(dag, OTHER_COLOR)}"><title>{escape(title)}</title></rect>'
                )
            if index % label_every == 0:
                parts.append(
                    f'<text x="{left + index * slot + slot / 2:.1f}" y="{top + plot_h + 16}" font-size="10" '
                    f'text-anchor="middle" fill="currentColor">{escape(day["date"][5:])}</text>'
                )
    else:
        parts.append(
            f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" '
            f'fill="currentColor">No billed generations in this range</text>'
        )
    legend = [(dag, colors[dag]) for dag in shown]
    if len(dags) > len(shown):
        legend.append(("other DAGs", OTHER_COLOR))
    x = left
    for name, color in legend:
        label = escape(name if len(name) <= 28 else name[:27] + "…")
        parts.append(
            f'<rect x="{x}" y="{height - 14}" width="10" height="10" fill="{color}"/>'
            f'<text x="{x + 14}" y="{height - 5}" font-size="11" fill="currentColor">{label}</text>'
        )
        x += 24 + 7 * min(len(name), 28)
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["spend_svg"]
