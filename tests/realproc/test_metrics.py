"""Our metrics reach a real StatsD listener through Airflow's own Stats, from the processes
that emit them in production: the task processes (submissions, results, credits) and the
triggerer (in-flight generations, status reads while waiting).

The run: a deferrable generation that the emulator fails once (resubmitted), then a batch
with one video already at its destination; the first two status reads get HTTP 500.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from tests.realproc.conftest import RealprocEnv

pytestmark = pytest.mark.realproc

DAG_ID = "realproc_metrics"
CONN_ID = "seedance_metrics"
MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 64


def parse(lines: list[str]) -> list[tuple[str, dict[str, str], float, str]]:
    """(name, tags, value, type) of each StatsD line (InfluxDB tags: ``name,k=v:1|c``)."""
    parsed = []
    for line in lines:
        head, _, rest = line.partition(":")
        name, *pairs = head.split(",")
        value, _, kind = rest.partition("|")
        tags = dict(pair.split("=", 1) for pair in pairs if "=" in pair)
        parsed.append((name, tags, float(value), kind.split("|")[0]))
    return parsed


def test_generations_credits_read_errors_and_in_flight_reach_statsd(
    realproc: RealprocEnv, tmp_path: Path
) -> None:
    cluster, emulator = realproc.cluster, realproc.emulators["seedance_metrics"]
    (tmp_path / "kept.mp4").write_bytes(MP4)
    emulator.add_faults(
        {"endpoint": "outcome", "fault": "failed", "times": 1},
        {"endpoint": "status", "fault": "http_500", "times": 2},
    )
    before = len(realproc.statsd.lines)
    cluster.wait_for_dag(DAG_ID)
    cluster.unpause(DAG_ID)
    run_id = cluster.trigger(DAG_ID, conf={"out": f"file://{tmp_path}"})
    run = cluster.wait_for_run(DAG_ID, run_id, timeout=300)
    assert run["state"] == "success", cluster.task_instances(DAG_ID, run_id)
    assert sorted(p.name for p in tmp_path.glob("*.mp4")) == ["a.mp4", "b.mp4", "kept.mp4"]

    ledger = emulator.ledger()
    account = ledger["accounts"][realproc.api_key]
    charged = account["charged"] - account["refunded"]
    assert ledger["generate_requests"] == 4 and charged == 8 + 14 + 14

    lines = realproc.statsd.lines[before:]
    ours: dict[tuple[str, str], float] = defaultdict(float)
    in_flight: dict[str, list[float]] = defaultdict(list)
    for name, tags, value, kind in parse(lines):
        if not name.startswith("airflow.seedance."):
            continue
        if kind == "c" and (tags.get("dag_id") == DAG_ID or tags.get("conn_id") == CONN_ID):
            ours[(name.removeprefix("airflow.seedance."), tags.get("task_id", tags.get("conn_id", "")))] += (
                value
            )
        elif kind == "g" and name.startswith("airflow.seedance.triggerer.in_flight."):
            assert tags["hostname"] in name
            in_flight[name].append(value)
    assert dict(ours) == {
        ("generations.submitted", CONN_ID): 4,  # = the POSTs the emulator received
        ("generations.succeeded", "one_video"): 1,
        ("generations.resubmitted", "one_video"): 1,
        ("credits.consumed", "one_video"): 8,
        ("generations.succeeded", "batch"): 2,
        ("generations.reused", "batch"): 1,
        ("credits.consumed", "batch"): 28,
        ("status_read_errors.server", CONN_ID): 2,
    }
    assert in_flight, "no in-flight gauge from the triggerer"
    for values in in_flight.values():
        assert max(values) >= 1 and values[-1] == 0  # the triggerer saw waits, and all ended
    assert realproc.api_key not in "\n".join(realproc.statsd.lines)
