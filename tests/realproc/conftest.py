"""One real Airflow cluster and three emulators for every test in tests/realproc.

Starting Airflow costs 30-60 s on a 2-core machine, so the cluster is shared by the
package. Each scenario gets its own emulator and connection (``seedance_kill``,
``seedance_reattach``, ``seedance_secrets``), so one test's ledger and injected faults are
never touched by another; the secrets scan then inspects everything the cluster produced.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_provider_seedance.emulator.testing import EmulatorProcess
from tests.airflow_processes import AirflowCluster, connection_uri_json, free_port

DAGS = Path(__file__).parent / "dags"
#: Example DAGs that need the real scheduler and triggerer (a person answers through the REST API).
EXAMPLES = [
    Path(__file__).parents[2] / "dags_examples" / name
    for name in ("seedance_review_and_publish.py", "seedance_webhook_publish.py")
]
#: Distinctive, so the secrets scan cannot confuse it with anything else.
REALPROC_API_KEY = "sk-realproc-L3AK-CANARY-7d41c9e2b8"
#: Generation time of each emulator, in seconds.
EMULATOR_SECONDS = {
    # The test holds its 20 generations in progress (``EmulatorProcess.hold``) until the
    # triggerer that replaced the killed one polls them.
    "seedance_kill": 5.0,
    "seedance_reattach": 6.0,
    "seedance_secrets": 3.0,
    "seedance_metrics": 2.0,
    "seedance_endtrig": 2.0,
    # The example DAGs' connection (the review-and-publish example runs here).
    "seedance_default": 2.0,
    # Concurrent generations that share a small daily budget (test_budgets.py).
    "seedance_budget": 3.0,
    # Deferred generations resumed by the emulator's callbacks (test_callbacks.py), held in
    # progress by the test until its hostile calls are done.
    "seedance_callbacks": 5.0,
    # A deferred generation with end_in_triggerer=True that its callback ends in the API server.
    "seedance_callbacks_end": 10.0,
    # Deferred generations whose callbacks the emulator drops: the fallback poll ends them.
    "seedance_callbacks_lost": 8.0,
    # Fire-and-forget generations whose callbacks record asset events (the webhook example);
    # held in progress by the test until the publishing run has ended.
    "seedance_webhook": 5.0,
}
#: The ``seedance_callbacks`` connection's HMAC secret (the secrets scan looks for it too).
CALLBACK_SECRET = "realproc-callback-S3CRET-5e8f1a2b3c4d5e6f7a8b"
#: The connections whose emulator calls back (the callback extras point at the API server).
CALLBACK_CONNECTIONS = (
    "seedance_callbacks",
    "seedance_callbacks_lost",
    "seedance_callbacks_end",
    "seedance_webhook",
)
#: The daily budget of the ``seedance_budget`` connection, in credits.
BUDGET_DAILY_CREDITS = 40

#: Every start of a task process (the first one and each resume) parses the DAG file and logs
#: this in the try's log (Airflow 3.1 to 3.3); the triggerer writes to its own log file.
WORKER_START = "Filling up the DagBag from"


def worker_starts(
    cluster: AirflowCluster, dag_id: str, run_id: str, task_id: str, map_index: int, attempt: int
) -> int:
    """Starts of a task process in the try's log (the triggerer and API server log elsewhere)."""
    folder = cluster.logs_folder / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    if map_index >= 0:  # Airflow's log path names the map index of mapped tasks only
        folder = folder / f"map_index={map_index}"
    log = folder / f"attempt={attempt}.log"
    return log.read_text(encoding="utf-8").count(WORKER_START)


class StatsdListener:
    """A StatsD server on loopback: every datagram line the cluster sends, kept in order."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, name="statsd", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65535)
            except (TimeoutError, OSError):
                continue
            self.lines.extend(data.decode("utf-8", "replace").splitlines())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@dataclass
class RealprocEnv:
    cluster: AirflowCluster
    emulators: dict[str, EmulatorProcess]
    statsd: StatsdListener
    api_key: str = REALPROC_API_KEY
    #: The shared budget store of the ``seedance_budget`` connection (a SQLAlchemy URL).
    budget_store: str = ""
    #: Where the example DAGs deliver (``SEEDANCE_OUTPUT_DIR`` of every process).
    output_dir: Path = Path()


@pytest.fixture(scope="package")
def realproc() -> Iterator[RealprocEnv]:
    """Emulators first (the connections name their ports), then the cluster; all stopped after."""
    workdir = Path(tempfile.mkdtemp(prefix="seedance-realproc-"))
    emulators: dict[str, EmulatorProcess] = {}
    statsd = StatsdListener()
    try:
        for conn_id, seconds in EMULATOR_SECONDS.items():
            emulators[conn_id] = EmulatorProcess(
                api_keys={REALPROC_API_KEY: 1_000_000},
                generation_seconds=seconds,
                log_path=workdir / f"emulator-{conn_id}.log",
                allow_local_callbacks=conn_id in CALLBACK_CONNECTIONS,
            ).start()
        budget_store = f"sqlite:///{workdir / 'budgets.db'}"
        #: The API server's port, known before it starts: the callback connection names it.
        api_port = free_port()
        extras: dict[str, dict[str, object]] = {
            "seedance_budget": {"budget": {"daily_credits": BUDGET_DAILY_CREDITS, "store": budget_store}},
            # The worker-kill test hangs each first status read until it kills the task: a read
            # that timed out (30 s by default) and was read again would spoil its count.
            "seedance_reattach": {"timeout": 300},
            **{
                conn_id: {
                    "callback_secret": CALLBACK_SECRET,
                    "callback_base_url": f"http://127.0.0.1:{api_port}",
                    "emulator": True,
                }
                for conn_id in CALLBACK_CONNECTIONS
            },
        }
        connections = {
            conn_id: connection_uri_json(emulator.base_url, REALPROC_API_KEY, **extras.get(conn_id, {}))
            for conn_id, emulator in emulators.items()
        }
        cluster = AirflowCluster(
            dags=[DAGS, *EXAMPLES],
            connections=connections,
            # The webhook example submits on its own connection and delivers under the workdir.
            env={
                "SEEDANCE_WEBHOOK_CONN_ID": "seedance_webhook",
                "SEEDANCE_WEBHOOK_SWEEP_CRON": "* * * * *",
                "SEEDANCE_OUTPUT_DIR": f"file://{workdir / 'out'}",
            },
            parallelism=8,
            # Every process sends Airflow's metrics (and ours) to the test's StatsD listener.
            config={
                ("metrics", "statsd_on"): "True",
                ("metrics", "statsd_host"): "127.0.0.1",
                ("metrics", "statsd_port"): str(statsd.port),
                # Tags in the datagram (``name,tag=value:1|c``): each test reads its own.
                ("metrics", "statsd_influxdb_enabled"): "True",
            },
            # Keep AIRFLOW_HOME (logs, DB) after the run for debugging.
            keep_home=bool(os.environ.get("SEEDANCE_REALPROC_KEEP_HOME")),
        )
        cluster.port = api_port
        with cluster:
            yield RealprocEnv(
                cluster=cluster,
                emulators=emulators,
                statsd=statsd,
                budget_store=budget_store,
                output_dir=workdir / "out",
            )
    finally:
        for emulator in emulators.values():
            emulator.stop()
        statsd.close()
    # The orderly stop left nothing of the cluster behind (no orphaned task process, no log
    # server on 8793/8794): anything still running with its AIRFLOW_HOME is a survivor.
    assert cluster.survivors == []
