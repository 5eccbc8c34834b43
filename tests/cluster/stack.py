"""The production-shape stack: Airflow on CeleryExecutor, PostgreSQL, Redis, S3 (moto), emulator.

``scripts/cluster.sh up|down|status`` runs this module; the scenario tests (tests/cluster)
import it to find the running stack and to kill, stop and restart its parts. Every part runs
on loopback in its own process group (PostgreSQL through ``pg_ctl``), with its pid, port and
command recorded in ``<home>/stack.json``, so a separate process can stop exactly what ``up``
started, by pid, and nothing else.

Environment (read by ``up``):

* ``SEEDANCE_CLUSTER_HOME`` -- where everything lives (default ``$TMPDIR/seedance-cluster``);
* ``SEEDANCE_CLUSTER_EXTRA_DAGS`` -- more DAG files (``:``-separated), copied beside ours;
* ``SEEDANCE_CLUSTER_GENERATION_SECONDS`` -- the emulator's generation time (default 30);
* ``SEEDANCE_CLUSTER_WORKER_CONCURRENCY`` -- task slots per Celery worker (default 8).

Stdlib, ``requests``, ``psutil``, ``psycopg2`` and ``boto3`` only: Airflow is never imported here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests

from tests.airflow_processes import FAST_FAILOVER, AirflowCluster, connection_uri_json, free_port

REPO = Path(__file__).resolve().parents[2]
SCENARIO_DAGS = Path(__file__).parent / "dags"
BUCKET = "seedance-cluster"
API_KEY = "sk-cluster-0c7e5a9f31"
CREDITS = 10_000_000
S3_CONNECTION = "aws_cluster"
SEEDANCE_CONNECTION = "seedance_cluster"
TRIGGERERS = ("triggerer-1", "triggerer-2")
WORKERS = ("worker-1", "worker-2")
AIRFLOW_PARTS = ("api-server", "scheduler", "dag-processor", *TRIGGERERS, *WORKERS)
#: Start order; ``down`` stops in reverse (Airflow first, its database last).
ORDER = ("postgres", "redis", "s3", "emulator", *AIRFLOW_PARTS)
#: Seconds without a heartbeat after which a triggerer's triggers move (an integer option).
TRIGGERER_HEALTH_THRESHOLD = int(FAST_FAILOVER[("triggerer", "triggerer_health_check_threshold")])

#: A frozen process (SIGSTOP, a paused VM) keeps its open transaction and the row locks in
#: it; the other triggerer's ``FOR UPDATE SKIP LOCKED`` then skips those triggers for as long
#: as the freeze lasts. PostgreSQL ends such a session after this long (docs/running-at-scale.md).
PG_IDLE_IN_TRANSACTION_TIMEOUT = "60s"


def default_home() -> Path:
    return Path(os.environ.get("SEEDANCE_CLUSTER_HOME") or Path(tempfile.gettempdir()) / "seedance-cluster")


def pg_bin(tool: str) -> str:
    """``initdb``, ``pg_ctl``... of Debian's newest installed PostgreSQL."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if not versions:
        raise RuntimeError("PostgreSQL is not installed: run scripts/system_deps.sh")
    return str(versions[-1] / tool)


def as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the ``postgres`` user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


#: The environment variable that names a part's stack home.
STACK_ENV = "SEEDANCE_CLUSTER_STACK"


class StackRunning(RuntimeError):
    """``up`` found processes of a stack at its home: it leaves them (and the home) alone."""


class BadExtraDags(ValueError):
    """``SEEDANCE_CLUSTER_EXTRA_DAGS`` names something that cannot go in the DAGs folder."""


def extra_dag_files(value: str) -> list[Path]:
    """The DAG files ``SEEDANCE_CLUSTER_EXTRA_DAGS`` names (``:``-separated), checked before anything
    starts: each must be an existing ``.py`` file, and none may take the file name of one of our
    scenario DAGs (it would replace it) or of another extra file."""
    files = [Path(p).expanduser() for p in value.split(":") if p.strip()]
    taken = {path.name for path in SCENARIO_DAGS.glob("*.py")}
    for path in files:
        if path.suffix != ".py" or not path.is_file():
            raise BadExtraDags(f"SEEDANCE_CLUSTER_EXTRA_DAGS: {path} is not a .py file that exists")
        if path.name in taken:
            raise BadExtraDags(
                f"SEEDANCE_CLUSTER_EXTRA_DAGS: {path} has the file name of another DAG file on the "
                f"stack ({path.name}); rename it"
            )
        taken.add(path.name)
    return files


def install_dags(folder: Path, extra: list[Path]) -> list[Path]:
    """Copy our scenario DAGs and the ``extra`` ones into the DAGs ``folder``; the files there."""
    folder.mkdir(parents=True, exist_ok=True)
    installed = []
    for source in [*sorted(SCENARIO_DAGS.glob("*.py")), *extra]:
        installed.append(Path(shutil.copy2(source, folder / source.name)))
    return installed


class NotAStackHome(RuntimeError):
    """The home holds files but neither the home marker nor ``stack.json``: not a stack's, so
    nothing there is touched."""

    def __init__(self, home: Path) -> None:
        super().__init__(
            f"{home} holds files but neither {HOME_MARKER} nor stack.json: it is not a stack's "
            "home, so it is left alone; set SEEDANCE_CLUSTER_HOME to a new folder"
        )


#: Written first into a new home and removed last from it: a home that could be removed only in
#: part is still known as a stack's.
HOME_MARKER = ".seedance-cluster-home"


def is_stack_home(home: Path) -> bool:
    """A stack's home: ``up`` writes :data:`HOME_MARKER` and ``stack.json`` (through
    ``stack.json.partial``) right after creating it; an empty folder is one whose start was
    killed before that."""
    state = (HOME_MARKER, "stack.json", "stack.json.partial")
    return any((home / name).exists() for name in state) or not any(home.iterdir())


def remove_home(home: Path) -> bool:
    """Remove a stack's home, its marker last; whether all of it went."""
    for entry in home.iterdir():
        if entry.name != HOME_MARKER:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
    if any(entry.name != HOME_MARKER for entry in home.iterdir()):
        return False
    (home / HOME_MARKER).unlink(missing_ok=True)
    home.rmdir()
    return True


@dataclass
class Part:
    """One running component of the stack."""

    name: str
    pid: int
    port: int
    command: list[str]
    log: str
    #: The ``job`` row of a triggerer (whose ``trigger.triggerer_id`` points at it).
    job_id: int | None = None
    #: When the process started (``psutil``'s create time): a pid the system gave to another
    #: process since (the stack died, the machine rebooted) is never signalled as this part.
    started_at: float | None = None

    def process(self) -> psutil.Process | None:
        """This part's process, ``None`` when it is gone (or its pid now names another process)."""
        try:
            proc = psutil.Process(self.pid)
            if self.started_at is not None and abs(proc.create_time() - self.started_at) > 0.5:
                return None
            return proc
        except psutil.Error:
            return None


def _started_at(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


@dataclass
class Stack:
    home: Path
    ports: dict[str, int] = field(default_factory=dict)
    parts: dict[str, Part] = field(default_factory=dict)
    generation_seconds: float = 30.0
    worker_concurrency: int = 8

    # ------------------------------------------------------------------ persistence
    @property
    def state_path(self) -> Path:
        return self.home / "stack.json"

    def save(self) -> None:
        data = {
            "home": str(self.home),
            "ports": self.ports,
            "generation_seconds": self.generation_seconds,
            "worker_concurrency": self.worker_concurrency,
            "parts": {name: asdict(part) for name, part in self.parts.items()},
        }
        # Whole or not at all: a kill mid-write must not leave a torn state file.
        partial = self.state_path.with_name("stack.json.partial")
        partial.write_text(json.dumps(data, indent=2))
        os.replace(partial, self.state_path)

    @classmethod
    def load(cls, home: Path | None = None) -> Stack:
        home = home or default_home()
        path = home / "stack.json"
        if not path.exists():
            raise RuntimeError(f"no stack at {home} (run `make cluster-up`)")
        data = json.loads(path.read_text())
        stack = cls(
            home=home,  # where it was found: a state file never points down at another folder
            ports={k: int(v) for k, v in data["ports"].items()},
            generation_seconds=float(data["generation_seconds"]),
            worker_concurrency=int(data["worker_concurrency"]),
        )
        stack.parts = {name: Part(**raw) for name, raw in data["parts"].items()}
        return stack

    # ------------------------------------------------------------------ addresses
    @property
    def pg_data(self) -> Path:
        return self.home / "pgdata"

    @property
    def pg_socket_dir(self) -> Path:
        return self.home / "pgsocket"

    @property
    def pg_dsn(self) -> str:
        return f"postgresql://airflow@127.0.0.1:{self.ports['postgres']}/airflow"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api-server']}"

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['emulator']}"

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    def connections(self) -> dict[str, str]:
        return {
            SEEDANCE_CONNECTION: connection_uri_json(self.emulator_url, API_KEY),
            S3_CONNECTION: json.dumps(
                {
                    "conn_type": "aws",
                    "login": "testing",
                    "password": "testing",
                    "extra": {"endpoint_url": self.s3_url, "region_name": "us-east-1"},
                }
            ),
        }

    def airflow(self) -> AirflowCluster:
        """The shared real-process helper, pointed at this stack (REST calls, environment)."""
        cluster = AirflowCluster(
            dags=[],
            connections=self.connections(),
            parallelism=32,
            home=self.airflow_home,
            keep_home=True,
            config={
                ("core", "executor"): "CeleryExecutor",
                (
                    "database",
                    "sql_alchemy_conn",
                ): f"postgresql+psycopg2://airflow@127.0.0.1:{self.ports['postgres']}/airflow",
                ("celery", "broker_url"): f"redis://127.0.0.1:{self.ports['redis']}/0",
                (
                    "celery",
                    "result_backend",
                ): f"db+postgresql+psycopg2://airflow@127.0.0.1:{self.ports['postgres']}/airflow",
                ("celery", "worker_concurrency"): str(self.worker_concurrency),
                ("core", "max_active_tasks_per_dag"): "64",
                ("api", "workers"): "1",
                # A SIGKILLed Celery worker takes the messages it had reserved with it (the Redis
                # broker returns them only after its visibility timeout, hours): the scheduler
                # re-queues such tasks after task_queued_timeout (default 600 s, checked every
                # 120 s; no try is used). Tuned as a deployment that expects worker kills would.
                ("scheduler", "task_queued_timeout"): "180",
                ("scheduler", "task_queued_timeout_check_interval"): "15",
            },
        )
        cluster.port = self.ports["api-server"]
        return cluster

    def airflow_env(self) -> dict[str, str]:
        """Every Airflow process's environment (the config above replaces SQLite and LocalExecutor)."""
        return self.airflow().environment()

    # ------------------------------------------------------------------ start
    def _spawn(
        self, name: str, command: list[str], env: Mapping[str, str] | None = None, port: int = 0
    ) -> Part:
        log = self.home / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as handle:
            handle.write(f"\n===== starting {name} at {time.strftime('%H:%M:%S')} =====\n".encode())
            handle.flush()
            popen = subprocess.Popen(
                command,
                # Every part carries its stack's home, so `leftovers` finds even one whose command
                # line does not name it (moto). Redis rewrites its title over its command line and
                # environment: it is stopped by the pid in stack.json.
                env={**(env if env is not None else os.environ), STACK_ENV: str(self.home)},
                cwd=self.home,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        part = Part(name, popen.pid, port, command, str(log), started_at=_started_at(popen.pid))
        self.parts[name] = part
        self.save()
        return part

    def command_of(self, name: str) -> tuple[list[str], dict[str, str], int]:
        """The command line, environment and port of part ``name``."""
        venv_bin = Path(sys.executable).parent
        if name == "redis":
            port = self.ports["redis"]
            return (
                [
                    "redis-server",
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                dict(os.environ),
                port,
            )
        if name == "s3":
            port = self.ports["s3"]
            return [str(venv_bin / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], dict(os.environ), port
        if name == "emulator":
            port = self.ports["emulator"]
            command = [
                str(venv_bin / "seedance-emulator"),
                "--port", str(port),
                "--api-key", API_KEY,
                "--credits", str(CREDITS),
                "--generation-seconds", str(self.generation_seconds),
                "--state-file", str(self.home / "emulator-state.json"),
                "--log-level", "warning",
            ]  # fmt: skip
            return command, dict(os.environ), port
        airflow = str(venv_bin / "airflow")
        env = self.airflow_env()
        if name == "api-server":
            return [airflow, "api-server"], env, self.ports["api-server"]
        if name == "scheduler":
            return [airflow, "scheduler", "--skip-serve-logs"], env, 0
        if name == "dag-processor":
            return [airflow, "dag-processor"], env, 0
        if name in TRIGGERERS:
            return [airflow, "triggerer", "--skip-serve-logs"], env, 0
        if name in WORKERS:
            port = self.ports[name]
            env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(port)
            command = [airflow, "celery", "worker", "--concurrency", str(self.worker_concurrency),
                       "--celery-hostname", f"{name}@%h"]  # fmt: skip
            return command, env, port
        raise ValueError(f"unknown part {name!r}; known: {', '.join(ORDER)}")

    def start(self, name: str) -> Part:
        """Start (or start again) part ``name`` on its recorded port."""
        if name == "postgres":
            return self.pg_start()
        command, env, port = self.command_of(name)
        before = self.triggerer_job_ids() if name in TRIGGERERS else set()
        part = self._spawn(name, command, env, port)
        if name in TRIGGERERS:
            part.job_id = self._wait_new_triggerer_job(before, part)
            self.save()
        return part

    def up(self, extra_dags: list[Path]) -> None:
        if self.home.exists():
            self.clear_stopped_home()
        self.home.mkdir(parents=True)
        (self.home / HOME_MARKER).write_text("the home of a `make cluster-up` stack\n")
        self.home.chmod(0o755)  # the postgres user must reach its data dir below it
        for name in ("postgres", "redis", "s3", "emulator", "api-server", *WORKERS):
            self.ports[name] = free_port()
        self.save()
        self.pg_init()
        self.pg_start()
        for name in ("redis", "s3", "emulator"):
            self.start(name)
        self.wait_for(lambda: self.health("redis"), "redis")
        self.wait_for(lambda: self.health("s3"), "the S3 server")
        self.wait_for(lambda: self.health("emulator"), "the emulator")
        self.create_bucket()
        install_dags(self.airflow_home / "dags", extra_dags)
        airflow = self.airflow()
        airflow.home.mkdir(parents=True, exist_ok=True)
        airflow.process_logs_folder.mkdir(exist_ok=True)
        # The shared helper migrates with its own environment: give it the stack's.
        result = subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
            env=self.airflow_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"airflow db migrate failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            )
        for name in AIRFLOW_PARTS:
            self.start(name)
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 300.0) -> None:
        self.wait_for(lambda: all(self.health(name)[0] for name in ORDER), "every part healthy", timeout)

    def wait_for(self, condition: Any, what: str, timeout: float = 120.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                value = condition()
                if value and (not isinstance(value, tuple) or value[0]):
                    return value
            time.sleep(1.0)
        raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}:\n{self.status_text()}")

    # ------------------------------------------------------------------ PostgreSQL
    def pg_init(self) -> None:
        self.pg_data.mkdir()
        self.pg_socket_dir.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.pg_data, "postgres", "postgres")
            shutil.chown(self.pg_socket_dir, "postgres", "postgres")
        subprocess.run(
            as_postgres_user(
                [pg_bin("initdb"), "-D", str(self.pg_data), "-U", "airflow", "--auth=trust", "-E", "UTF8"]
            ),
            check=True,
            capture_output=True,
        )

    def pg_ctl(self, *args: str) -> None:
        log = self.home / "logs" / "postgres.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0 and log.exists():
            shutil.chown(log, "postgres", "postgres")
        subprocess.run(
            as_postgres_user([pg_bin("pg_ctl"), "-D", str(self.pg_data), *args]),
            check=True,
            capture_output=True,
        )

    def pg_start(self) -> Part:
        port = self.ports["postgres"]
        log = self.home / "logs" / "postgres.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.touch()
        if os.geteuid() == 0:
            shutil.chown(log, "postgres", "postgres")
        options = (
            f"-p {port} -k {self.pg_socket_dir} -c listen_addresses=127.0.0.1 -c max_connections=300"
            f" -c idle_in_transaction_session_timeout={PG_IDLE_IN_TRANSACTION_TIMEOUT}"
        )
        self.pg_ctl("start", "-w", "-l", str(log), "-o", options)
        pid = int((self.pg_data / "postmaster.pid").read_text().split()[0])
        if not (self.pg_data / "created").exists():
            subprocess.run(
                [pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "airflow", "airflow"],
                check=True,
            )
            (self.pg_data / "created").touch()
        command = [pg_bin("postgres"), *options.split()]
        part = Part("postgres", pid, port, command, str(log), started_at=_started_at(pid))
        self.parts["postgres"] = part
        self.save()
        return part

    def pg_stop(self) -> None:
        """Stop PostgreSQL (fast mode: open sessions are cut, as in a failover)."""
        self.pg_ctl("stop", "-m", "fast", "-w")

    # ------------------------------------------------------------------ S3
    def s3_client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def create_bucket(self) -> None:
        self.s3_client().create_bucket(Bucket=BUCKET)

    def objects(self) -> dict[str, bytes]:
        """Every object in the bucket, by key."""
        client = self.s3_client()
        found: dict[str, bytes] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            for item in page.get("Contents", []):
                found[item["Key"]] = client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
        return found

    # ------------------------------------------------------------------ SQL
    @contextlib.contextmanager
    def db(self) -> Iterator[Any]:
        import psycopg2

        connection = psycopg2.connect(self.pg_dsn, connect_timeout=5)
        try:
            yield connection.cursor()
        finally:
            connection.close()

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.db() as cursor:
            cursor.execute(query, params)
            return list(cursor.fetchall())

    def triggerer_job_ids(self) -> set[int]:
        rows = self.sql("SELECT id FROM job WHERE job_type = 'TriggererJob' AND state = 'running'")
        return {int(r[0]) for r in rows}

    def _wait_new_triggerer_job(self, before: set[int], part: Part) -> int:
        def new_job() -> int | None:
            if not psutil.pid_exists(part.pid):
                raise RuntimeError(f"{part.name} exited; see {part.log}")
            fresh = self.triggerer_job_ids() - before
            return min(fresh) if fresh else None

        return int(self.wait_for(new_job, f"{part.name}'s job row"))

    def triggers_by_triggerer(self) -> dict[int | None, int]:
        rows = self.sql("SELECT triggerer_id, count(*) FROM trigger GROUP BY triggerer_id")
        return {(int(r[0]) if r[0] is not None else None): int(r[1]) for r in rows}

    # ------------------------------------------------------------------ signals
    def alive(self, name: str) -> bool:
        part = self.parts.get(name)
        proc = part.process() if part is not None else None
        if proc is None:
            return False
        try:
            return proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def group(self, name: str) -> list[psutil.Process]:
        """The part's process and everything below it (Celery pool, task processes...)."""
        root = self.parts[name].process()
        if root is None:
            return []
        try:
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def signal(self, name: str, sig: int) -> None:
        """Send ``sig`` to the part's whole process group (as when its container dies/pauses)."""
        members = self.group(name)
        if not members:  # gone (or its pid is another process's now): nothing of ours to signal
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.parts[name].pid, sig)
        for proc in members:  # anything that left the group (Celery's pool does not, but be sure)
            with contextlib.suppress(psutil.Error):
                proc.send_signal(sig)
        if sig == signal.SIGKILL:
            psutil.wait_procs(members, timeout=30)

    def stop(self, name: str, timeout: float = 30.0) -> None:
        """SIGTERM the part (its group), wait, then SIGKILL what is left."""
        if name == "postgres":
            if (self.pg_data / "postmaster.pid").exists():
                with contextlib.suppress(subprocess.CalledProcessError):
                    self.pg_ctl("stop", "-m", "fast", "-w")
            return
        if name not in self.parts:
            return
        members = self.group(name)
        part = self.parts[name]
        if not members:  # gone (or its pid is another process's now): never signal a stranger
            return
        if name == "scheduler":  # alone first: it stops its own children in order
            with contextlib.suppress(ProcessLookupError):
                os.kill(part.pid, signal.SIGTERM)
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(part.pid, signal.SIGTERM)
        _, alive = psutil.wait_procs(members, timeout=timeout)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(part.pid, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=10)

    def restart(self, name: str) -> Part:
        self.stop(name)
        return self.start(name)

    def down(self) -> list[str]:
        """Stop everything (Airflow first, PostgreSQL last); returns what still runs (nothing)."""

        def stop(name: str) -> None:
            try:
                self.stop(name)
            except Exception as exc:  # keep going: the others must stop too
                print(f"could not stop {name}: {exc}", file=sys.stderr)

        # Airflow's parts together (each may take its SIGTERM grace), then what they used.
        with ThreadPoolExecutor(len(AIRFLOW_PARTS)) as pool:
            list(pool.map(stop, AIRFLOW_PARTS))
        for name in reversed(ORDER):
            if name not in AIRFLOW_PARTS:
                stop(name)
        leftovers = self.leftovers()
        for proc in leftovers:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(leftovers, timeout=10)
        return [f"{p.pid} {' '.join(p.cmdline())[:100]}" for p in leftovers if p.is_running()]

    def clear_stopped_home(self) -> None:
        """Remove what a stopped stack left at ``home`` (a killed run, a failed ``down``).

        A stack whose processes still run is never touched: ``up`` refuses and names them. A
        folder that is no stack's home (``SEEDANCE_CLUSTER_HOME`` set to a folder of yours) is
        never removed.
        """
        if not is_stack_home(self.home):
            raise NotAStackHome(self.home)
        running = self.leftovers()
        if running:
            names = "\n".join(f"  {p.pid} {' '.join(p.cmdline())[:100]}" for p in running)
            raise StackRunning(f"a stack still runs at {self.home}: run `make cluster-down` first\n{names}")
        print(f"removing the leftovers of a stopped stack at {self.home}", file=sys.stderr)
        if not remove_home(self.home):
            raise RuntimeError(f"could not remove all of {self.home}")

    def leftovers(self) -> list[psutil.Process]:
        """Live processes of this stack: those that name its home (or a path below it) in their
        command line, carry it in :data:`STACK_ENV`, or have their ``AIRFLOW_HOME`` below it.
        Paths match whole (``/tmp/seedance-cluster`` is not ``/tmp/seedance-cluster-x1``)."""
        marker = str(self.home)
        below = marker.rstrip(os.sep) + os.sep

        def ours(path: str) -> bool:
            return path == marker or path.startswith(below)

        found = []
        for proc in psutil.process_iter(["pid", "cmdline", "status"]):
            if proc.pid == os.getpid() or proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            try:
                args = proc.info["cmdline"] or []
                if any(arg == marker or below in arg for arg in args):
                    found.append(proc)
                    continue
                environ = proc.environ()
                if environ.get(STACK_ENV) == marker or ours(environ.get("AIRFLOW_HOME") or ""):
                    found.append(proc)
            except psutil.Error:
                continue
        return found

    # ------------------------------------------------------------------ health
    def health(self, name: str) -> tuple[bool, str]:
        """(healthy, detail) of one part."""
        if name == "postgres":
            try:
                self.sql("SELECT 1")
                return True, "accepts connections"
            except Exception as exc:
                return False, type(exc).__name__
        if not self.alive(name):
            return False, "not running"
        try:
            if name == "redis":
                with socket.create_connection(("127.0.0.1", self.ports["redis"]), timeout=3) as sock:
                    sock.sendall(b"PING\r\n")
                    reply = sock.recv(16)
                return reply.startswith(b"+PONG"), reply.decode(errors="replace").strip()
            if name == "s3":
                buckets = [b["Name"] for b in self.s3_client().list_buckets().get("Buckets", [])]
                return True, f"buckets {buckets}"
            if name == "emulator":
                ok = requests.get(f"{self.emulator_url}/_emulator/health", timeout=5).ok
                return ok, "health ok" if ok else "health failed"
            if name in WORKERS:
                with socket.create_connection(("127.0.0.1", self.ports[name]), timeout=3):
                    return True, "log server up"
            health = requests.get(f"{self.api_url}/api/v2/monitor/health", timeout=10).json()
            if name == "api-server":
                ok = health.get("metadatabase", {}).get("status") == "healthy"
                return ok, f"metadatabase {health.get('metadatabase', {}).get('status')}"
            if name in TRIGGERERS:
                job_id = self.parts[name].job_id
                rows = self.sql(
                    "SELECT extract(epoch from now() - latest_heartbeat) FROM job WHERE id = %s", (job_id,)
                )
                age = float(rows[0][0]) if rows else float("inf")
                return age < TRIGGERER_HEALTH_THRESHOLD, f"job {job_id}, heartbeat {age:.0f}s ago"
            key = {"scheduler": "scheduler", "dag-processor": "dag_processor"}[name]
            state = (health.get(key) or {}).get("status")
            return state == "healthy", str(state)
        except Exception as exc:
            return False, f"{type(exc).__name__}: {str(exc)[:60]}"

    def status_text(self) -> str:
        return self.status()[0]

    def status(self) -> tuple[str, bool]:
        """The health table, and whether every part is healthy."""
        lines = [f"{'part':<14} {'pid':>8} {'port':>6}  health"]
        healthy = True
        for name in ORDER:
            part = self.parts.get(name)
            ok, detail = self.health(name) if part else (False, "never started")
            healthy = healthy and ok
            lines.append(
                f"{name:<14} {part.pid if part else '-':>8} {part.port if part and part.port else '-':>6}  "
                f"{'healthy' if ok else 'UNHEALTHY'} ({detail})"
            )
        return "\n".join(lines), healthy

    def env_text(self) -> str:
        """What a user needs to reach the stack (the API key is the emulator's, not a secret)."""
        env = self.airflow_env()
        keys = sorted(
            k
            for k in env
            if k.startswith(
                ("AIRFLOW__CORE__EXECUTOR", "AIRFLOW__DATABASE", "AIRFLOW__CELERY__BROKER", "AIRFLOW_CONN_")
            )
        )
        lines = [
            f"AIRFLOW_HOME={self.airflow_home}",
            f"AIRFLOW__CORE__DAGS_FOLDER={env['AIRFLOW__CORE__DAGS_FOLDER']}",
        ]
        lines += [f"{k}={env[k]}" for k in keys]
        lines.append(f"# API server (simple auth, all admins): {self.api_url}")
        return "\n".join(lines)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "status"
    home = default_home()
    if command == "up":
        stack = Stack(
            home=home,
            generation_seconds=float(os.environ.get("SEEDANCE_CLUSTER_GENERATION_SECONDS", "30")),
            worker_concurrency=int(os.environ.get("SEEDANCE_CLUSTER_WORKER_CONCURRENCY", "8")),
        )
        try:
            extra = extra_dag_files(os.environ.get("SEEDANCE_CLUSTER_EXTRA_DAGS", ""))
        except BadExtraDags as exc:  # said before anything starts
            print(exc, file=sys.stderr)
            return 2
        started = time.monotonic()
        try:
            stack.up(extra)
        except (StackRunning, NotAStackHome) as exc:  # not ours to stop or remove
            print(exc, file=sys.stderr)
            return 1
        except BaseException:
            print(stack.status_text(), file=sys.stderr)
            print(f"start failed; logs in {stack.home / 'logs'}; stopping what started", file=sys.stderr)
            stack.down()
            raise
        print(f"stack up in {time.monotonic() - started:.0f}s at {stack.home}\n")
        print(stack.status_text())
        print("\n" + stack.env_text())
        return 0
    if command == "status":
        try:
            stack = Stack.load(home)
        except RuntimeError as exc:
            print(exc)
            return 1
        text, healthy = stack.status()
        print(text)
        print("\n" + stack.env_text())
        return 0 if healthy else 1  # scripts can wait on `make cluster-status`
    if command == "down":
        if not home.exists():
            print(f"no stack at {home}")
            return 0
        if not is_stack_home(home):
            print(NotAStackHome(home), file=sys.stderr)
            return 1
        try:
            stack = Stack.load(home)
        except (RuntimeError, ValueError, KeyError, TypeError, AttributeError, ArithmeticError, OSError):
            # no state file (a start killed early) or a torn one: the stack is found by its home
            stack = Stack(home=home)
        survivors = stack.down()
        if survivors:
            print("still running after down:\n" + "\n".join(survivors), file=sys.stderr)
            return 1
        if not remove_home(home):  # harmless: the next `up` clears a stopped stack's home
            print(f"could not remove all of {home}", file=sys.stderr)
        print(f"stack at {home} stopped; no process left")
        return 0
    print("usage: cluster.sh up|down|status", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
