"""Status reads and completion latency per generation: polling against callbacks, same run.

One real Airflow (API server with the plugin, scheduler, triggerer, LocalExecutor) runs three
DAGs of ``--n`` mapped deferrable generations at the same time, each against its own emulator:

* ``polling``: the trigger reads the status every ``--poll-interval`` seconds;
* ``callbacks``: the connection turns callbacks on; the emulator calls the plugin's receiver
  when a generation ends, and the trigger only polls every 300 s as a safety net; the receiver
  resumes the task, which a worker then finishes (``execute_complete``);
* ``callbacks_end_in_triggerer``: callbacks as above with ``end_in_triggerer=True`` (nothing to
  deliver): the receiver ends the task itself on a SUCCESS, no worker starts after deferring.

Per alternative: status reads per generation (the emulator's ledger) and the latency from the
generation's end on the service (created + its generation time) to the task instance's end, p50 and p95.

    python -m benchmarks.callbacks_vs_polling --n 20
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from airflow_provider_seedance.emulator.testing import EmulatorProcess
from benchmarks._common import API_KEY, CREDITS, machine, mean, percentile, table, write_result
from tests.airflow_processes import AirflowCluster, connection_uri_json, free_port

ALTERNATIVES = ("polling", "callbacks", "callbacks_end_in_triggerer")
#: The alternatives whose connection turns callbacks on.
WITH_CALLBACKS = ("callbacks", "callbacks_end_in_triggerer")
DAG_TEMPLATE = """
from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

for name, extra in (
    ("polling", {{"poll_interval": {poll}}}),
    ("callbacks", {{}}),
    ("callbacks_end_in_triggerer", {{"end_in_triggerer": True}}),
):
    with DAG(f"bench_{{name}}", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False):
        SeedanceGenerateOperator.partial(
            task_id="generate",
            seedance_conn_id=f"seedance_{{name}}",
            deferrable=True,
            resolution="480p",
            duration=4,
            **extra,
        ).expand(prompt=[f"clip {{i}}" for i in range({n})])
"""


def _epoch(stamp: str | None) -> float:
    import pendulum

    return float(pendulum.parse(stamp).timestamp()) if stamp else float("nan")  # type: ignore[union-attr]


def measure(cluster: AirflowCluster, emulator: EmulatorProcess, name: str, run_id: str) -> dict[str, Any]:
    dag_id = f"bench_{name}"
    run = cluster.wait_for_run(dag_id, run_id, timeout=600)
    tasks = emulator.tasks()
    ledger = emulator.ledger()
    due = sorted(_epoch(task["created_at"]) + float(task["generation_seconds"]) for task in tasks)
    ends = sorted(_epoch(ti.get("end_date")) for ti in cluster.task_instances(dag_id, run_id))
    # Pair the i-th generation to end on the service with the i-th task instance to end.
    latencies = [end - due_at for end, due_at in zip(ends, due, strict=False)]
    n = max(len(tasks), 1)
    return {
        "alternative": name,
        "run_state": run["state"],
        "generations": len(tasks),
        "generate_requests": ledger["generate_requests"],
        "status_reads_per_generation": ledger["status_requests"] / n,
        "callbacks_sent": ledger.get("callbacks_sent", 0),
        "latency_p50_s": percentile(latencies, 50),
        "latency_p95_s": percentile(latencies, 95),
        "latency_mean_s": mean(latencies),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=20, help="generations per alternative (default 20)")
    parser.add_argument("--generation-seconds", type=float, default=30.0)
    parser.add_argument(
        "--poll-interval", type=float, default=10.0, help="the polling alternative's interval"
    )
    parser.add_argument("--results-dir", type=Path, default=None)
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="seedance-bench-callbacks-"))
    dags = workdir / "dags"
    dags.mkdir()
    (dags / "bench_callback_dags.py").write_text(
        textwrap.dedent(DAG_TEMPLATE.format(n=args.n, poll=args.poll_interval))
    )
    emulators = {
        name: EmulatorProcess(
            api_keys={API_KEY: CREDITS},
            generation_seconds=args.generation_seconds,
            allow_local_callbacks=name in WITH_CALLBACKS,
            extra_args=["--log-level", "warning"],
        ).start()
        for name in ALTERNATIVES
    }
    try:
        api_port = free_port()
        callbacks = {
            "callback_secret": secrets.token_urlsafe(32),
            "callback_base_url": f"http://127.0.0.1:{api_port}",
            "emulator": True,
        }
        connections = {
            f"seedance_{name}": connection_uri_json(
                emulators[name].base_url, API_KEY, **(callbacks if name in WITH_CALLBACKS else {})
            )
            for name in ALTERNATIVES
        }
        cluster = AirflowCluster(
            dags=[dags],
            connections=connections,
            parallelism=8,
            config={("core", "max_active_tasks_per_dag"): "1000", ("logging", "logging_level"): "WARNING"},
        )
        cluster.port = api_port
        with cluster:
            runs = {}
            for name in ALTERNATIVES:
                cluster.wait_for_dag(f"bench_{name}")
                cluster.unpause(f"bench_{name}")
            started = time.time()
            for name in ALTERNATIVES:  # both at once: the same load for each
                runs[name] = cluster.trigger(f"bench_{name}")
            rows = [measure(cluster, emulators[name], name, runs[name]) for name in ALTERNATIVES]
            wall = time.time() - started
    finally:
        for emulator in emulators.values():
            emulator.stop()

    polling = rows[0]
    for row in rows:
        row["reads_vs_polling"] = row["status_reads_per_generation"] / polling["status_reads_per_generation"]
    columns = [
        ("alternative", "wait"),
        ("generations", "generations"),
        ("status_reads_per_generation", "status reads / generation"),
        ("reads_vs_polling", "reads vs polling"),
        ("latency_p50_s", "end → task done p50 (s)"),
        ("latency_p95_s", "p95 (s)"),
        ("callbacks_sent", "callbacks"),
    ]
    markdown = table(rows, columns)
    path = write_result(
        "callbacks_vs_polling",
        {
            "machine": machine(),
            "n": args.n,
            "generation_seconds": args.generation_seconds,
            "poll_interval": args.poll_interval,
            "wall_seconds": wall,
            "rows": rows,
            "table_markdown": markdown,
        },
        args.results_dir,
    )
    print(markdown)
    print(f"results: {path}")
    print("run states: " + ", ".join(f"{row['alternative']} {row['run_state']}" for row in rows))
    return 0 if all(row["run_state"] == "success" for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
