"""Real Airflow 3 processes for tests and benchmarks: ``AirflowCluster``.

Only real processes prove deferral, restarts and kills (see docs TESTING.md). This module
starts, in a throw-away ``AIRFLOW_HOME`` with SQLite and the LocalExecutor, the four
processes of an Airflow 3 deployment -- ``api-server``, ``scheduler``, ``dag-processor``
and ``triggerer`` -- each in its own process group with its own log file, waits until the
API reports them healthy, and stops every one of them (and every task process they
started) on exit, also when the body raised::

    with EmulatorProcess(generation_seconds=5) as emulator, AirflowCluster(
        dags=[Path("tests/realproc/dags/kill_dags.py")],
        connections={"seedance_default": connection_json(emulator.base_url, emulator.api_key)},
    ) as cluster:
        cluster.wait_for_dag("my_dag")
        cluster.unpause("my_dag")
        run_id = cluster.trigger("my_dag", {"n": 20})
        cluster.wait_for_run("my_dag", run_id, timeout=300)
        states = [ti["state"] for ti in cluster.task_instances("my_dag", run_id)]

A benchmark reuses it as is: pick ``parallelism``, trigger a DAG of N mapped tasks and time
``wait_for_run``; ``run_timings`` gives the run's start and end as Airflow recorded them.

Only stdlib, ``requests``, ``psutil`` and ``cryptography`` (all Airflow dependencies) are
imported here: the test process never imports Airflow for the cluster's sake.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil
import requests

#: Fixed so every process (and this module, to decrypt trigger kwargs) agrees.
FERNET_KEY = "Mh1eNBDrLbOy1aD3sXvLzJ8wqoyA6wq6Le0qg0s4lU0="
JWT_SECRET = "seedance-realproc-jwt-secret-not-for-production-0123456789"

#: The ``airflow`` sub-commands, by the name the harness uses for them.
COMMANDS: dict[str, list[str]] = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}
#: The key of each process in ``GET /api/v2/monitor/health`` (the api-server answers itself).
HEALTH_KEYS: dict[str, str] = {
    "scheduler": "scheduler",
    "dag-processor": "dag_processor",
    "triggerer": "triggerer",
}
DEFAULT_PROCESSES: tuple[str, ...] = ("api-server", "scheduler", "dag-processor", "triggerer")
#: Port of Airflow's worker log server: nothing of ours may be left listening there.
LOG_SERVER_PORTS = (8793, 8794)

#: Faster failure detection than production defaults, so kill tests take seconds, not minutes.
#: A SIGKILLed triggerer's triggers are re-assigned once its heartbeat is older than
#: ``triggerer_health_check_threshold`` (default 30 s; an *integer* option).
FAST_FAILOVER: dict[tuple[str, str], str] = {
    ("triggerer", "job_heartbeat_sec"): "1",
    ("triggerer", "triggerer_health_check_threshold"): "6",
    ("scheduler", "task_instance_heartbeat_timeout"): "30",
    ("scheduler", "task_instance_heartbeat_timeout_detection_interval"): "5",
}

TERMINAL_RUN_STATES = frozenset({"success", "failed"})


class ClusterError(RuntimeError):
    """A process did not start, died, or an API call failed; the message carries log tails."""


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def airflow_executable() -> str:
    """The ``airflow`` script of the interpreter running the tests (the dev venv)."""
    candidate = Path(sys.executable).with_name("airflow")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("airflow")
    if found is None:
        raise ClusterError("no `airflow` executable next to the interpreter or on PATH")
    return found


@dataclass
class ManagedProcess:
    """One Airflow process the cluster started."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    started_at: float

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return text[-chars:]


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _signal_group(pid: int, sig: int) -> None:
    """Signal the process group led by ``pid`` (each process gets its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class AirflowCluster:
    """Airflow 3 with SQLite + LocalExecutor in a temporary home, as real processes.

    :param dags: DAG files or folders copied into the cluster's DAGs folder.
    :param connections: ``conn_id -> JSON or URI``, exported as ``AIRFLOW_CONN_<ID>``.
    :param parallelism: ``[core] parallelism`` (concurrent task processes).
    :param config: extra ``{(section, key): value}`` options, as ``AIRFLOW__SECTION__KEY``;
        they override the defaults, including :data:`FAST_FAILOVER`.
    :param env: extra environment variables for every process.
    :param processes: which processes to start (all four by default).
    :param home: the AIRFLOW_HOME to use (default: a new temporary directory, removed on
        exit unless ``keep_home``).
    :param startup_timeout: seconds to wait for the migrated DB and a healthy cluster.
    """

    def __init__(
        self,
        dags: Iterable[str | os.PathLike[str]] = (),
        *,
        connections: Mapping[str, str] | None = None,
        parallelism: int = 4,
        config: Mapping[tuple[str, str], str] | None = None,
        env: Mapping[str, str] | None = None,
        processes: Sequence[str] = DEFAULT_PROCESSES,
        home: str | os.PathLike[str] | None = None,
        keep_home: bool = False,
        startup_timeout: float = 180.0,
    ) -> None:
        unknown = set(processes) - set(COMMANDS)
        if unknown:
            raise ValueError(f"unknown processes {sorted(unknown)}; known: {sorted(COMMANDS)}")
        self.dag_sources = [Path(d) for d in dags]
        self.connections = dict(connections or {})
        self.parallelism = parallelism
        self.config = {**FAST_FAILOVER, **dict(config or {})}
        self.extra_env = dict(env or {})
        self.process_names = tuple(processes)
        self._own_home = home is None
        self.home = Path(home) if home is not None else Path(tempfile.mkdtemp(prefix="seedance-cluster-"))
        self.keep_home = keep_home
        self.startup_timeout = startup_timeout
        #: Seconds each process gets to exit after SIGTERM when the cluster stops.
        self.stop_timeout = 15.0
        self.stop_seconds: dict[str, float] = {}
        #: Processes of this cluster still alive after :meth:`stop` stopped them in order.
        self.survivors: list[str] = []
        self.port = 0
        self.processes: dict[str, ManagedProcess] = {}
        #: Every process the cluster ever started (restarts included), for the final sweep.
        self._all_started: list[ManagedProcess] = []
        #: Every trigger row :meth:`trigger_rows` has seen, by id (rows vanish once fired).
        self.trigger_rows_seen: dict[int, dict[str, Any]] = {}
        self._session = requests.Session()
        self._token: str | None = None

    # ------------------------------------------------------------------ paths
    @property
    def dags_folder(self) -> Path:
        return self.home / "dags"

    @property
    def logs_folder(self) -> Path:
        """Task logs (``dag_id=.../run_id=.../task_id=.../attempt=N.log``)."""
        return self.home / "logs"

    @property
    def process_logs_folder(self) -> Path:
        return self.home / "process-logs"

    @property
    def db_path(self) -> Path:
        return self.home / "airflow.db"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_path(self, name: str) -> Path:
        """The stdout+stderr file of the process ``name`` (appended to across restarts)."""
        return self.process_logs_folder / f"{name}.log"

    def task_log_files(self) -> list[Path]:
        return sorted(p for p in self.logs_folder.rglob("*") if p.is_file())

    def all_log_files(self) -> list[Path]:
        """Task logs, process logs and anything else Airflow wrote under its home."""
        return self.task_log_files() + sorted(self.process_logs_folder.glob("*.log"))

    @property
    def pids(self) -> dict[str, int]:
        """The pid of each running process, by name."""
        return {name: p.pid for name, p in self.processes.items() if p.alive}

    # ------------------------------------------------------------------ environment
    def environment(self) -> dict[str, str]:
        """The environment every process gets: the caller's, minus any Airflow settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.db_path}",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__FERNET_KEY": FERNET_KEY,
                "AIRFLOW__API_AUTH__JWT_SECRET": JWT_SECRET,
                # Airflow 3.1's token checks reject a JWT without a string issuer.
                "AIRFLOW__API_AUTH__JWT_ISSUER": "seedance-realproc",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.logs_folder),
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "PYTHONUNBUFFERED": "1",
            }
        )
        for (section, key), value in self.config.items():
            env[f"AIRFLOW__{section.upper()}__{key.upper()}"] = str(value)
        for conn_id, value in self.connections.items():
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = value
        env.update(self.extra_env)
        return env

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> AirflowCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> AirflowCluster:
        """Prepare the home, migrate the DB, start every process, wait until healthy."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.dags_folder.mkdir(exist_ok=True)
        self.logs_folder.mkdir(exist_ok=True)
        self.process_logs_folder.mkdir(exist_ok=True)
        for source in self.dag_sources:
            if source.is_dir():
                shutil.copytree(
                    source, self.dags_folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                shutil.copy2(source, self.dags_folder / source.name)
        self.port = self.port or free_port()
        self.migrate()
        for name in self.process_names:
            self.start_process(name)
        self.wait_healthy()
        return self

    def migrate(self) -> None:
        log_path = self.process_logs_folder / "db-migrate.log"
        with open(log_path, "ab") as log_file:
            result = subprocess.run(
                [airflow_executable(), "db", "migrate"],
                env=self.environment(),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=self.startup_timeout,
                check=False,
            )
        if result.returncode != 0:
            raise ClusterError(f"airflow db migrate failed ({result.returncode}):\n{_tail(log_path)}")

    def start_process(self, name: str) -> ManagedProcess:
        """Start ``name`` (its own session/process group, output appended to its log file)."""
        if name not in COMMANDS:
            raise ValueError(f"unknown process {name!r}")
        current = self.processes.get(name)
        if current is not None and current.alive:
            raise ClusterError(f"{name} is already running (pid {current.pid})")
        log_path = self.log_path(name)
        with open(log_path, "ab") as log_file:
            log_file.write(f"\n===== starting {name} at {time.strftime('%H:%M:%S')} =====\n".encode())
            log_file.flush()
            popen = subprocess.Popen(
                [airflow_executable(), *COMMANDS[name]],
                env=self.environment(),
                cwd=self.home,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        process = ManagedProcess(name, popen, log_path, time.time())
        self.processes[name] = process
        self._all_started.append(process)
        return process

    def kill(self, name: str, sig: int = signal.SIGKILL, *, whole_group: bool = True) -> int:
        """Send ``sig`` to ``name`` -- by default to its whole process group, as when its
        container dies -- and, for SIGKILL, reap it. Returns the pid signalled."""
        process = self.processes[name]
        members = _descendants(process.pid) if whole_group else []
        if whole_group:
            _signal_group(process.pid, sig)
        else:
            with contextlib.suppress(ProcessLookupError):
                process.popen.send_signal(sig)
        if sig == signal.SIGKILL:
            process.popen.wait(timeout=30)
            # A killed child is reparented and its SIGKILL lands a moment later, more so on
            # a busy machine: wait until the whole group is gone, as a dead container's is.
            psutil.wait_procs(members, timeout=10)
        return process.pid

    def stop_process(self, name: str, timeout: float = 30.0) -> int | None:
        """Graceful stop: SIGTERM to the group, wait, then SIGKILL what is left."""
        process = self.processes.get(name)
        if process is None:
            return None
        return self._terminate(process, timeout)

    def restart(self, name: str, *, wait: bool = True) -> ManagedProcess:
        """Stop ``name`` if it runs, start it again; optionally wait until the API sees it healthy."""
        process = self.processes.get(name)
        if process is not None and process.alive:
            self._terminate(process, 30.0)
        started = self.start_process(name)
        if wait:
            self.wait_healthy(names=[name], since=started.started_at)
        return started

    def _terminate(self, process: ManagedProcess, timeout: float) -> int | None:
        children = _descendants(process.pid)
        if process.alive:
            # The scheduler gets SIGTERM alone: it stops its LocalExecutor workers in order (a
            # group-wide SIGTERM kills them under it, and it then hangs). The others stop
            # fastest when their whole group hears it (the triggerer's runner child included).
            if process.name == "scheduler":
                with contextlib.suppress(ProcessLookupError):
                    process.popen.terminate()
            else:
                _signal_group(process.pid, signal.SIGTERM)
            try:
                process.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.popen.wait(timeout=30)
        # The group is gone; anything that left it (or was re-parented) is killed by pid.
        _signal_group(process.pid, signal.SIGKILL)
        for child in children:
            with contextlib.suppress(psutil.Error):
                child.kill()
        psutil.wait_procs(children, timeout=10)
        return process.popen.returncode

    def stop(self) -> None:
        """Stop everything: API last, so the others can still report their tasks' ends."""
        order = ["triggerer", "scheduler", "dag-processor", "api-server"]
        ordered = sorted(
            self._all_started,
            key=lambda p: order.index(p.name) if p.name in order else len(order),
        )
        for process in ordered:
            try:
                started = time.monotonic()
                self._terminate(process, self.stop_timeout)
                self.stop_seconds[process.name] = time.monotonic() - started
            except Exception as exc:  # keep going: the others must stop too
                print(f"AirflowCluster: could not stop {process.name}: {exc}", file=sys.stderr)
        self._session.close()
        # Whatever outlived the orderly stop (an orphaned task process or log server) is a
        # finding: remember it for the caller to assert on, then kill it.
        self.survivors = [f"{p.pid} {' '.join(p.cmdline())[:120]}" for p in self.leftover_processes()]
        for proc in self.leftover_processes():
            with contextlib.suppress(psutil.Error):
                proc.kill()
        if self._own_home and not self.keep_home:
            shutil.rmtree(self.home, ignore_errors=True)

    def leftover_processes(self) -> list[psutil.Process]:
        """Processes still running with this cluster's home in their environment."""
        found = []
        marker = str(self.home)
        for proc in psutil.process_iter(["pid"]):
            if proc.pid == os.getpid():
                continue
            try:
                if proc.environ().get("AIRFLOW_HOME") == marker:
                    found.append(proc)
            except psutil.Error:
                continue
        return found

    # ------------------------------------------------------------------ health
    def check_alive(self) -> None:
        """Raise with the log tail if a process the cluster expects to run has exited."""
        for name, process in self.processes.items():
            if not process.alive:
                raise ClusterError(
                    f"{name} (pid {process.pid}) exited with {process.popen.returncode}:\n"
                    f"{_tail(process.log_path)}"
                )

    def health(self) -> dict[str, Any]:
        response = self._session.get(f"{self.base_url}/api/v2/monitor/health", timeout=10)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def wait_healthy(
        self, names: Sequence[str] | None = None, *, since: float | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """Wait until the API answers and reports each of ``names`` healthy (with a heartbeat
        newer than ``since``, an epoch time, when given)."""
        names = list(names if names is not None else self.processes)
        deadline = time.monotonic() + (timeout or self.startup_timeout)
        last: Any = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                last = self.health()
            except (requests.RequestException, ValueError) as exc:
                last = exc
            else:
                if all(self._component_healthy(last, name, since) for name in names):
                    return dict(last)
            time.sleep(1.0)
        raise ClusterError(f"cluster not healthy after {timeout or self.startup_timeout}s: {last}")

    @staticmethod
    def _component_healthy(health: Mapping[str, Any], name: str, since: float | None) -> bool:
        if name == "api-server":
            return health.get("metadatabase", {}).get("status") == "healthy"
        key = HEALTH_KEYS[name]
        component = health.get(key) or {}
        if component.get("status") != "healthy":
            return False
        if since is None:
            return True
        heartbeat = component.get(f"latest_{key}_heartbeat") or component.get("latest_heartbeat")
        if not heartbeat:
            return True
        return datetime.fromisoformat(str(heartbeat).replace("Z", "+00:00")).timestamp() >= since

    # ------------------------------------------------------------------ REST
    def token(self) -> str:
        """A JWT from the simple auth manager (``GET /auth/token`` works with all-admins)."""
        if self._token is None:
            response = self._session.get(f"{self.base_url}/auth/token", timeout=10)
            if response.status_code >= 400:
                raise ClusterError(f"GET /auth/token: HTTP {response.status_code}: {response.text[:300]}")
            self._token = str(response.json()["access_token"])
        return self._token

    def api(self, method: str, path: str, *, json_body: Any = None, params: Any = None) -> Any:
        """Call ``/api/v2{path}`` with the JWT; raise :class:`ClusterError` on HTTP errors."""
        response = self._session.request(
            method,
            f"{self.base_url}/api/v2{path}",
            json=json_body,
            params=params,
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=30,
        )
        if response.status_code >= 400:
            raise ClusterError(f"{method} /api/v2{path}: HTTP {response.status_code}: {response.text[:500]}")
        return response.json() if response.content else None

    def wait_for_dag(self, dag_id: str, timeout: float = 90.0) -> dict[str, Any]:
        """Wait until the dag-processor has parsed ``dag_id`` (and fail on its import errors)."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                result: dict[str, Any] = self.api("GET", f"/dags/{dag_id}")
                return result
            except ClusterError:
                errors = self.api("GET", "/importErrors").get("import_errors", [])
                if errors:
                    raise ClusterError(f"DAG import errors: {errors}") from None
                if time.monotonic() > deadline:
                    raise
            time.sleep(1.0)

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/dags/{dag_id}", json_body={"is_paused": False})

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None, run_id: str | None = None) -> str:
        """Create a manual run now; returns its run id."""
        run_id = run_id or f"manual__{uuid.uuid4().hex[:12]}"
        body = {"dag_run_id": run_id, "logical_date": None, "conf": dict(conf or {})}
        result = self.api("POST", f"/dags/{dag_id}/dagRuns", json_body=body)
        return str(result["dag_run_id"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
        return result

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300.0) -> dict[str, Any]:
        """Wait until the run is ``success`` or ``failed``; returns the run.

        A run that does not end in time fails with what it was stuck on: each task instance's
        state and trigger, the trigger table, and the tails of the scheduler and triggerer logs.
        """
        try:
            result: dict[str, Any] = self.wait_until(
                lambda: (run := self.dag_run(dag_id, run_id))["state"] in TERMINAL_RUN_STATES and run,
                timeout=timeout,
                what=f"run {dag_id}/{run_id} to end",
            )
        except ClusterError as exc:
            raise ClusterError(f"{exc}\n{self.describe_stuck_run(dag_id, run_id)}") from None
        return result

    def describe_stuck_run(self, dag_id: str, run_id: str) -> str:
        """Where a run is, for a failure message (every part best-effort: it is read while failing)."""
        parts: list[str] = []
        try:
            rows = self.sql(
                "SELECT task_id, map_index, state, try_number, trigger_id, queued_dttm, start_date,"
                " next_method FROM task_instance WHERE dag_id = ? AND run_id = ?"
                " ORDER BY task_id, map_index",
                (dag_id, run_id),
            )
            parts.append("task instances:\n" + "\n".join(f"  {row}" for row in rows))
            triggers = self.sql("SELECT id, classpath, triggerer_id, created_date FROM trigger")
            parts.append("trigger rows:\n" + "\n".join(f"  {row}" for row in triggers))
            jobs = self.sql(
                "SELECT id, job_type, state, hostname, latest_heartbeat FROM job"
                " WHERE job_type = 'TriggererJob' ORDER BY id"
            )
            parts.append("triggerer jobs:\n" + "\n".join(f"  {row}" for row in jobs))
        except sqlite3.Error as exc:
            parts.append(f"(metadata DB not readable: {exc})")
        for name in ("scheduler", "triggerer"):
            parts.append(f"--- {name} log tail ---\n{_tail(self.log_path(name), 4000)}")
        # Each try's own log: where a hung task stopped.
        run_logs = self.logs_folder / f"dag_id={dag_id}" / f"run_id={run_id}"
        for log in sorted(run_logs.rglob("attempt=*.log")):
            parts.append(f"--- {log.relative_to(self.logs_folder)} tail ---\n{_tail(log, 2000)}")
        return "\n".join(parts)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of the run (mapped ones included), 100 per page."""
        found: list[dict[str, Any]] = []
        while True:
            page = self.api(
                "GET",
                f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                params={"limit": 100, "offset": len(found)},
            )
            items = page.get("task_instances", [])
            found.extend(items)
            if not items or len(found) >= int(page.get("total_entries", 0)):
                return found

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        """A try's log as the API serves it (its JSON body, as text)."""
        response = self._session.get(
            f"{self.base_url}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"map_index": map_index, "full_content": True},
            headers={"Authorization": f"Bearer {self.token()}", "Accept": "application/json"},
            timeout=30,
        )
        response.raise_for_status()
        return response.text

    def wait_until(
        self, condition: Callable[[], Any], *, timeout: float, what: str, interval: float = 1.0
    ) -> Any:
        """Poll ``condition`` until it returns something truthy; fail if a process died."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                value = condition()
            except ClusterError as exc:
                last_error = exc
            else:
                if value:
                    return value
            time.sleep(interval)
        raise ClusterError(f"timed out after {timeout}s waiting for {what}; last error: {last_error}")

    # ------------------------------------------------------------------ metadata DB
    def sql(self, query: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Read the metadata DB directly (read-only, so it cannot disturb the cluster)."""
        with contextlib.closing(sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30)) as db:
            db.row_factory = sqlite3.Row
            return [dict(row) for row in db.execute(query, params)]

    def trigger_rows(self) -> list[dict[str, Any]]:
        """The ``trigger`` table now, kwargs decrypted; also remembered in ``trigger_rows_seen``."""
        from cryptography.fernet import Fernet

        fernet = Fernet(FERNET_KEY.encode())
        rows = self.sql("SELECT id, classpath, kwargs, triggerer_id FROM trigger")
        for row in rows:
            raw = str(row["kwargs"])
            row["encrypted_kwargs"] = raw
            row["kwargs"] = raw if raw.startswith("{") else fernet.decrypt(raw.encode()).decode()
            self.trigger_rows_seen[int(row["id"])] = dict(row)
        return rows

    def table_names(self) -> list[str]:
        return [r["name"] for r in self.sql("SELECT name FROM sqlite_master WHERE type='table'")]

    def run_timings(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """Start, end and duration of a run as Airflow recorded them (for benchmarks)."""
        run = self.dag_run(dag_id, run_id)
        return {
            "state": run["state"],
            "start_date": run.get("start_date"),
            "end_date": run.get("end_date"),
            "duration": run.get("duration"),
        }

    # ------------------------------------------------------------------ task processes
    def task_processes(self, ti_id: str) -> list[psutil.Process]:
        """The task-runner process of a task instance (its title is ``airflow worker -- <ti id>``)."""
        found = []
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmdline = " ".join(proc.info.get("cmdline") or []).strip()
            # The supervisor above it is titled ``airflow worker -- LocalExecutor: <workload>``.
            if cmdline == f"airflow worker -- {ti_id}":
                found.append(proc)
        return found


def processes_listening_on(ports: Iterable[int]) -> list[int]:
    """Pids listening on any of ``ports`` (used to prove no orphan log server survives)."""
    wanted = set(ports)
    pids: list[int] = []
    with contextlib.suppress(psutil.Error):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port in wanted and conn.pid:
                pids.append(conn.pid)
    return pids


@contextlib.contextmanager
def timed() -> Iterator[dict[str, float]]:
    """``with timed() as t: ...`` then ``t["seconds"]``."""
    result: dict[str, float] = {}
    start = time.monotonic()
    try:
        yield result
    finally:
        result["seconds"] = time.monotonic() - start


def connection_uri_json(base_url: str, api_key: str, **extra: object) -> str:
    """A ``seedance`` connection as the JSON ``AIRFLOW_CONN_*`` accepts."""
    return json.dumps({"conn_type": "seedance", "host": base_url, "password": api_key, "extra": extra})


__all__ = [
    "DEFAULT_PROCESSES",
    "FAST_FAILOVER",
    "FERNET_KEY",
    "AirflowCluster",
    "ClusterError",
    "ManagedProcess",
    "connection_uri_json",
    "free_port",
    "processes_listening_on",
    "timed",
]
