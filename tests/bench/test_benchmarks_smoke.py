"""Smoke runs of every benchmark at a tiny size, so they never rot.

They check that each benchmark runs end to end and writes its JSON with the expected keys
and sane values; they assert nothing about speed (see BENCHMARKS.md for the figures).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from benchmarks import (
    batch_submit_scale,
    batch_trigger_rss,
    callbacks_vs_polling,
    catalog_throughput,
    emulator_capacity,
    poll_cost_split,
    status_rate_cap,
    trigger_poll_cost,
    ui_scale,
)


def _load(path: Path) -> dict[str, Any]:
    assert path.exists(), f"{path} was not written"
    document: dict[str, Any] = json.loads(path.read_text())
    for key in ("benchmark", "generated_at", "machine", "rows", "table_markdown"):
        assert key in document, key
    assert document["machine"]["nproc"] >= 1
    assert document["machine"]["airflow"].startswith("3.")
    return document


def test_emulator_capacity_smoke(tmp_path: Path) -> None:
    argv = ["--tasks", "10", "--concurrency", "1", "4", "--seconds", "0.5", "--results-dir", str(tmp_path)]
    assert emulator_capacity.main(argv) == 0
    rows = _load(tmp_path / "emulator_capacity.json")["rows"]
    assert [(r["stored_tasks"], r["concurrency"]) for r in rows] == [(10, 1), (10, 4)]
    for row in rows:
        assert row["requests"] > 0 and row["errors"] == 0
        # Every request the client sent was counted by the emulator, and no other.
        assert row["counted_by_emulator"] == row["requests"]
        assert row["requests_per_second"] > 0
        assert row["emulator_cores"] > 0


def test_trigger_poll_cost_smoke(tmp_path: Path) -> None:
    n = 30
    argv = ["--sizes", str(n), "--generation-seconds", "1", "--poll-interval", "0.25"]
    argv += ["--idle-seconds", "0.2", "--results-dir", str(tmp_path)]
    assert trigger_poll_cost.main(argv) == 0
    document = _load(tmp_path / "trigger_poll_cost.json")
    rows = {r["variant"]: r for r in document["rows"]}
    assert set(rows) == set(trigger_poll_cost.VARIANTS)
    for variant, row in rows.items():
        assert row["n"] == n
        assert row["status_requests"] >= n, variant
        # At this tiny size one variant's CPU can round to 0 (10 ms clock ticks): each row is
        # only checked for sanity here, the total below must be clearly measured.
        assert row["cpu_ms_per_poll"] >= 0 and math.isfinite(row["cpu_ms_per_poll"]), variant
        assert math.isnan(row["cpu_per_poll_ratio"]) or row["cpu_per_poll_ratio"] >= 0
        assert row["lag_ms_p99"] >= row["lag_ms_p50"] >= 0
        assert row["peak_rss"] >= row["baseline_rss"] > 0
        if variant == "http_sensor":
            assert row["events"] == 0 and row["event_latency_s_p50"] is None
        else:
            assert row["events"] == n and row["event_statuses"] == ["success"], variant
            assert not row["timed_out"]
            # How late the event comes is a speed figure: measured in BENCHMARKS.md, never
            # bounded here (it is measured from the client's clock, so it may even be below 0).
            assert math.isfinite(row["event_latency_s_p50"]), variant
    assert sum(row["cpu_ms_per_poll"] for row in rows.values()) > 0
    # The floor's own count of polls matches the emulator's ledger exactly.
    assert rows["raw_aiohttp"]["client_polls"] == rows["raw_aiohttp"]["status_requests"]
    if rows["raw_aiohttp"]["cpu_ms_per_poll"] > 0:
        assert rows["raw_aiohttp"]["cpu_per_poll_ratio"] == 1.0


@pytest.mark.realproc
def test_catalog_throughput_smoke(tmp_path: Path) -> None:
    n = 3
    # Race-safe intervals (10 s polls, 12 s generations) for the deferrable variants, as in
    # test_callbacks_vs_polling_smoke: with 0.5 s polls a mapped deferrable task failed once
    # under load (a trigger firing within seconds of deferring races the scheduler on 3.1-3.3).
    argv = ["--n", str(n), "--generation-seconds", "12", "--poll-interval", "10", "--timeout", "240"]
    argv += ["--xcom-results-limit", "1"]  # batch_results_file writes its file even at N = 3
    argv += ["--results-dir", str(tmp_path)]
    assert catalog_throughput.main(argv) == 0
    rows = {r["variant"]: r for r in _load(tmp_path / f"catalog_throughput_n{n}.json")["rows"]}
    assert set(rows) == set(catalog_throughput.VARIANTS)
    for variant, row in rows.items():
        assert row["run_state"] == "success", row
        assert row["generate_requests"] == n, variant  # one paid submission per video, no more
        assert row["status_requests"] >= 1, variant
        assert row["wall_seconds"] >= row["generation_seconds"], variant
        assert row["worker_cpu_seconds"] > 0, variant
        # (A one-task batch can finish between two samples, and Airflow 3.1's REST duration of a
        # resumed deferred task is unusable: slot seconds may legitimately be 0 here.)
        assert row["slot_seconds"] >= 0, variant
        assert row["overhead_seconds_ratio"] is not None
    assert rows["mapped_deferrable"]["task_instances"] == n
    assert rows["mapped_deferrable_end_in_triggerer"]["task_instances"] == n
    assert rows["mapped_poke_sensors"]["task_instances"] == n + 1
    assert rows["batch"]["task_instances"] == 1
    assert rows["batch_results_file"]["results_file_bytes"] > 0 and rows["batch"]["results_file_bytes"] == 0
    assert rows["batch"]["xcom_bytes"] > 0 and rows["batch_results_file"]["xcom_bytes"] > 0
    assert rows["mapped_deferrable"]["overhead_seconds_ratio"] == 1.0


def test_poll_cost_split_recovers_per_poll_and_per_trigger_costs() -> None:
    """Two runs of CPU = 0.2 ms x polls + 0.5 ms per trigger (the floor: 0.1 ms + 0.05 ms)."""

    def row(variant: str, polls_per_trigger: int, per_poll_ms: float, start_ms: float) -> dict[str, Any]:
        n = 100
        cpu_ms = n * (per_poll_ms * polls_per_trigger + start_ms)
        return {
            "n": n,
            "variant": variant,
            "status_requests": n * polls_per_trigger,
            "cpu_seconds": cpu_ms / 1000,
        }

    short = [row("raw_aiohttp", 6, 0.1, 0.05), row("seedance", 6, 0.2, 0.5), row("http_sensor", 6, 1, 0)]
    long = [row("raw_aiohttp", 30, 0.1, 0.05), row("seedance", 30, 0.2, 0.5)]
    rows = {r["variant"]: r for r in poll_cost_split.split_rows(short, long, baseline="raw_aiohttp")}
    assert set(rows) == {"raw_aiohttp", "seedance"}  # only alternatives measured in both runs
    assert rows["seedance"]["ms_per_poll"] == pytest.approx(0.2)
    assert rows["seedance"]["ms_per_trigger"] == pytest.approx(0.5)
    assert rows["seedance"]["poll_ratio"] == pytest.approx(2.0)
    assert rows["raw_aiohttp"]["ms_per_trigger"] == pytest.approx(0.05)
    with pytest.raises(ValueError, match="poll more often"):
        poll_cost_split.split(long[0], short[0])


def test_max_per_window_finds_the_busiest_one_second_window() -> None:
    from benchmarks._common import max_per_window

    assert max_per_window([0.0, 0.5, 0.99, 1.0, 1.2]) == 4  # [0.5, 1.5) holds four
    assert max_per_window([0.0, 0.5, 0.99, 1.0, 1.2], window=0.5) == 3  # [0.99, 1.49)
    assert max_per_window([0.0, 1.0, 2.0]) == 1  # half-open: 1.0 is not in [0, 1)
    assert max_per_window([]) == 0


def test_status_rate_cap_smoke(tmp_path: Path) -> None:
    n, cap = 20, 10.0
    argv = ["--n", str(n), "--cap", str(cap), "--poll-interval", "0.25", "--generation-seconds", "1"]
    argv += ["--results-dir", str(tmp_path)]
    assert status_rate_cap.main(argv) == 0
    rows = {r["variant"]: r for r in _load(tmp_path / "status_rate_cap.json")["rows"]}
    assert set(rows) == set(status_rate_cap.VARIANTS)
    for variant, row in rows.items():
        assert row["events"] == n and row["event_statuses"] == ["success"] and not row["timed_out"], variant
        # The emulator's log has every status request its counter counted, and no other.
        assert row["status_requests_logged"] == row["status_requests"] >= n, variant
        assert row["event_latency_s_p99"] >= row["event_latency_s_p50"], variant
    assert rows["uncapped"]["cap_per_second"] is None and rows["uncapped"]["max_grants_per_1s_window"] is None
    assert rows["uncapped"]["event_latency_ratio_p99"] == 1.0
    capped = rows["capped"]
    # The bucket's own clock: never more than the cap plus its one token (a limiter property).
    assert capped["cap_per_second"] == cap and capped["max_grants_per_1s_window"] <= cap + 1
    assert capped["event_latency_ratio_p99"] is not None


def test_status_request_times_reads_only_status_lines_of_the_access_log() -> None:
    access = '2026-01-02 03:04:{} INFO aiohttp.access: 127.0.0.1 "{} HTTP/1.1" 200 9 0.001s'
    log = "\n".join(
        [
            access.format("05,250", "GET /v1/status?task_id=a"),
            access.format("05,900", "POST /v1/generate"),
            access.format("06,000", "GET /_emulator/ledger"),
            "2026-01-02 03:04:06,100 WARNING seedance: GET /v1/status was slow",
            access.format("06,750", "GET /v1/status?task_id=b"),
        ]
    )
    times = status_rate_cap.status_request_times(log)
    assert len(times) == 2 and times[1] - times[0] == pytest.approx(1.5)


def test_batch_submit_scale_smoke(tmp_path: Path) -> None:
    argv = ["--n", "20", "70", "--generation-seconds", "0.2", "--poll-interval", "0.2"]
    assert batch_submit_scale.main([*argv, "--results-dir", str(tmp_path)]) == 0
    rows = _load(tmp_path / "batch_submit_scale.json")["rows"]
    assert [row["n"] for row in rows] == [20, 70]
    for row in rows:
        # Every item was submitted, waited for and finished; the record was written.
        assert row["succeeded"] == row["n"]
        assert row["record_writes"] >= 1 and row["record_bytes"] > 0
        assert row["submit_ms_per_item"] > 0
    assert rows[0]["submit_ratio"] == 1.0


def test_callbacks_vs_polling_smoke(tmp_path: Path) -> None:
    # Intervals of 10 s or more: a trigger firing within seconds of deferring races the
    # scheduler on Airflow 3.1-3.3 (see tests/realproc/dags/realproc_dags.py, RACE_SAFE_POLL).
    argv = ["--n", "2", "--generation-seconds", "12", "--poll-interval", "10", "--results-dir", str(tmp_path)]
    assert callbacks_vs_polling.main(argv) == 0
    rows = {r["alternative"]: r for r in _load(tmp_path / "callbacks_vs_polling.json")["rows"]}
    assert set(rows) == {"polling", "callbacks", "callbacks_end_in_triggerer"}
    for row in rows.values():
        assert row["run_state"] == "success" and row["generate_requests"] == 2, row
        assert not math.isnan(row["latency_p95_s"])
    assert rows["polling"]["callbacks_sent"] == 0
    for name in ("callbacks", "callbacks_end_in_triggerer"):
        assert rows[name]["callbacks_sent"] == 2 and rows[name]["status_reads_per_generation"] <= 2


def test_batch_trigger_rss_smoke(tmp_path: Path) -> None:
    argv = ["--n", "20", "60", "--rounds", "2", "--poll-interval", "0.1", "--generation-seconds", "60"]
    assert batch_trigger_rss.main([*argv, "--results-dir", str(tmp_path)]) == 0
    rows = _load(tmp_path / "batch_trigger_rss.json")["rows"]
    assert [(row["variant"], row["n"]) for row in rows] == [
        (variant, n) for n in (20, 60) for variant in batch_trigger_rss.VARIANTS
    ]
    for row in rows:
        # Every item was read at least twice while still running: all were in flight when sampled.
        assert row["status_reads"] >= 2 * row["n"] and row["terminal_reads"] == 0 and row["events"] == 0
        assert row["peak_rss"] >= row["rss_before"] > 0 and row["rss_start"] > 0
        assert row["rss_samples"] >= 1
        # The kwargs hold every id (the emulator's ids are longer than 10 characters).
        assert row["kwargs_bytes_per_item"] > 10
    assert "marginal_kb_per_item" in rows[-1]


def test_ui_scale_smoke(tmp_path: Path) -> None:
    argv = ["--sizes", "100", "400", "--repeat", "1", "--compare", "HEAD", "--results-dir", str(tmp_path)]
    assert ui_scale.main(argv) == 0
    document = _load(tmp_path / "ui_scale_vs_HEAD.json")
    rows = {(r["variant"], r["n"], r["case"]): r for r in document["rows"]}
    assert set(rows) == {
        (v, n, c) for v in ("baseline_HEAD", "current") for n in (100, 400) for c in ui_scale.CASES
    }
    for (variant, n, case), row in rows.items():
        assert row["seconds"] > 0 and row["cpu_seconds"] >= 0 and row["xcoms_decoded"] >= 0, (
            variant,
            n,
            case,
        )
        # The same queries on the same DB answer the same, whichever module ran them.
        assert row["same_result_as_baseline"], (variant, n, case, row["summary"])
        assert row["growth_ratio"] is not None and row["n_ratio"] == n / 100
    # Spend reads (and decodes) its whole window: more generations, more XComs decoded.
    assert (
        rows[("current", 400, "spend_90_days")]["xcoms_decoded"]
        > rows[("current", 100, "spend_90_days")]["xcoms_decoded"]
    )
    assert rows[("current", 100, "spend_90_days")]["summary"]["days"] == ui_scale.DAYS
    assert rows[("current", 400, "first_page_24")]["summary"]["items"] == 24
