"""`cluster-up` / `cluster-down` on a machine where an earlier stack did not end cleanly.

A CI machine that ran the stack before (a killed job, a start interrupted before the state
file) must still bring the stack up; a stack that still runs must never be wiped under it, and
a folder that is no stack's home is never removed. These run in ``make test`` (no stack
needed): they only use a temporary home and processes of their own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import stack as stack_module
from tests.cluster.stack import STACK_ENV, NotAStackHome, Stack, StackRunning

SLEEP = [sys.executable, "-c", "import time; time.sleep(120)"]


def _stale_home(home: Path, *, with_state: bool) -> None:
    home.mkdir(parents=True)
    if with_state:
        (home / "logs").mkdir()
        (home / "logs" / "scheduler.log").write_text("from a run that was killed\n")
        Stack(home=home, ports={"redis": 1}).save()


@pytest.fixture
def spawn() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start processes (killed at the end of the test)."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


@pytest.fixture
def process_of(tmp_path: Path, spawn: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """A live process that belongs to the stack at ``tmp_path / 'home'`` (its home in its command line)."""
    spawn.append(subprocess.Popen([*SLEEP, str(tmp_path / "home")]))
    return spawn[-1]


@pytest.mark.parametrize("with_state", [True, False], ids=["state-file", "killed-before-its-state-file"])
def test_up_clears_the_home_of_a_stopped_stack(tmp_path: Path, with_state: bool) -> None:
    home = tmp_path / "home"
    _stale_home(home, with_state=with_state)
    Stack(home=home).clear_stopped_home()
    assert not home.exists()


def test_a_home_removed_only_in_part_is_still_known_by_its_marker(tmp_path: Path) -> None:
    """The marker is written first and removed last: a home whose state file went but whose
    data did not (a removal cut short) is still a stack's, and the next `up` clears it."""
    home = tmp_path / "home"
    home.mkdir()
    (home / stack_module.HOME_MARKER).write_text("")
    (home / "pgdata").mkdir()
    (home / "pgdata" / "PG_VERSION").write_text("15\n")
    assert stack_module.is_stack_home(home)
    Stack(home=home).clear_stopped_home()
    assert not home.exists()


def test_up_refuses_a_home_whose_stack_still_runs_and_names_the_process(
    tmp_path: Path, process_of: subprocess.Popen[bytes]
) -> None:
    home = tmp_path / "home"
    _stale_home(home, with_state=True)
    with pytest.raises(StackRunning, match=rf"still runs at .*home.*\n\s+{process_of.pid} "):
        Stack(home=home).clear_stopped_home()
    assert (home / "logs" / "scheduler.log").exists()
    assert process_of.poll() is None


def test_up_beside_a_running_stack_fails_and_stops_none_of_it(
    tmp_path: Path, process_of: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    home = tmp_path / "home"
    _stale_home(home, with_state=True)
    monkeypatch.setenv("SEEDANCE_CLUSTER_HOME", str(home))
    assert stack_module.main(["up"]) == 1
    assert "still runs" in capsys.readouterr().err
    assert process_of.poll() is None, "the running stack's process was stopped"
    assert (home / "stack.json").exists()


def test_a_folder_that_is_no_stacks_home_is_never_removed_nor_its_processes_stopped(
    tmp_path: Path, process_of: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SEEDANCE_CLUSTER_HOME set to a folder of the user's (the repository, $HOME): files and no
    stack.json. Neither `up` nor `down` may remove it or stop what runs there."""
    home = tmp_path / "home"
    (home / "docs").mkdir(parents=True)
    (home / "docs" / "a.txt").write_text("mine\n")
    monkeypatch.setenv("SEEDANCE_CLUSTER_HOME", str(home))
    with pytest.raises(NotAStackHome, match=r"neither \.seedance-cluster-home nor stack\.json"):
        Stack(home=home).clear_stopped_home()
    assert stack_module.main(["up"]) == 1
    assert stack_module.main(["down"]) == 1
    assert (home / "docs" / "a.txt").read_text() == "mine\n"
    assert process_of.poll() is None


def test_down_with_a_torn_state_file_stops_the_stacks_processes_and_removes_its_home(
    tmp_path: Path, process_of: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "stack.json").write_text("")  # killed while writing it
    monkeypatch.setenv("SEEDANCE_CLUSTER_HOME", str(home))
    assert stack_module.main(["down"]) == 0
    assert process_of.wait(timeout=15) is not None
    assert not home.exists()


def test_leftovers_match_whole_paths_and_the_stack_variable(
    tmp_path: Path, spawn: list[subprocess.Popen[bytes]]
) -> None:
    """The default home `/tmp/seedance-cluster` is a prefix of the test suite's own Airflow homes
    (`/tmp/seedance-cluster-XXXX`): those are not the stack's. A part whose command line does not
    name the home (moto) is found by the variable every part carries."""
    home = tmp_path / "seedance-cluster"
    sibling = f"{home}-x1"
    env = dict(os.environ)
    env.pop(STACK_ENV, None)
    spawn.append(subprocess.Popen([*SLEEP, f"{sibling}/logs"], env={**env, "AIRFLOW_HOME": sibling}))
    spawn.append(subprocess.Popen([*SLEEP, "--dir", f"{home}/pgdata"], env=env))
    spawn.append(subprocess.Popen([*SLEEP, "moto-like"], env={**env, STACK_ENV: str(home)}))
    spawn.append(subprocess.Popen(SLEEP, env={**env, "AIRFLOW_HOME": f"{home}/airflow"}))
    found = {proc.pid for proc in Stack(home=home).leftovers()}
    assert found == {spawn[1].pid, spawn[2].pid, spawn[3].pid}


def test_down_with_nothing_there_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setenv("SEEDANCE_CLUSTER_HOME", str(tmp_path / "absent"))
    assert stack_module.main(["down"]) == 0
    assert "no stack at" in capsys.readouterr().out


def test_status_of_a_stack_that_is_not_healthy_exits_non_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make cluster-status` is what a script waits on: a stack whose parts are gone is no
    success (it printed UNHEALTHY and exited 0)."""
    home = tmp_path / "home"
    home.mkdir()
    # a stack's state file whose processes are long gone (nothing listens on a port of its own)
    ports = {name: stack_module.free_port() for name in ("api-server", "emulator", "postgres", "redis", "s3")}
    Stack(home=home, ports=ports).save()
    monkeypatch.setenv("SEEDANCE_CLUSTER_HOME", str(home))
    assert stack_module.main(["status"]) == 1
    assert "UNHEALTHY" in capsys.readouterr().out


def test_down_never_signals_a_process_that_took_a_parts_pid(
    tmp_path: Path, spawn: list[subprocess.Popen[bytes]]
) -> None:
    """After a reboot (or a stack that died long ago) a part's pid may name another process,
    even a process group leader: `down` and a restart must leave it alone."""
    stranger = subprocess.Popen(SLEEP, start_new_session=True)  # leads a group, as a part did
    spawn.append(stranger)
    home = tmp_path / "home"
    home.mkdir()
    born = stack_module.psutil.Process(stranger.pid).create_time()
    part = stack_module.Part("redis", stranger.pid, 1, ["redis-server"], "redis.log", started_at=born - 3600)
    stack = Stack(home=home, ports={"redis": 1}, parts={"redis": part})
    assert not stack.alive("redis") and stack.group("redis") == []
    stack.signal("redis", signal.SIGKILL)
    stack.stop("redis", timeout=1)
    assert stranger.poll() is None, "a stranger's process was signalled as the stack's"
    # the part itself (its start time matches) is still stopped
    stack.parts["redis"] = stack_module.Part("redis", stranger.pid, 1, ["x"], "x.log", started_at=born)
    assert stack.alive("redis")
    stack.stop("redis", timeout=5)
    assert stranger.wait(timeout=10) is not None


def test_a_scenario_stopped_half_way_still_reports_what_it_measured() -> None:
    """A chaos run that fails before its end (a run never finishing, a fault that did not
    recover) prints the figures and recoveries it reached, and why it stopped (it printed none)."""
    from tests.cluster.test_production_shape import Fault, Outcome, summary

    ledger = {"generate_requests": 10, "accounts": {"k": {"charged": 280, "refunded": 0}}}
    partial = Outcome(date="d", logical_requests=5, injected_resubmissions=1, ledger_before=ledger)
    partial.faults.append(Fault("SIGKILL Celery worker after POST", "0 triggers, 4 tasks running", 115.6))
    partial.runs["cluster_catalog first"] = {"state": "running"}

    table = summary(partial, stopped=TimeoutError("cluster_catalog first did not end in 900 s"))

    assert "| POSTs received" in table and "not reached" in table
    assert "recovery: SIGKILL Celery worker after POST | 115.6 s" in table
    assert "run: cluster_catalog first" in table and "running" in table
    assert "STOPPED" in table and "did not end in 900 s" in table


def test_a_finished_scenario_reports_every_figure() -> None:
    from tests.cluster.test_production_shape import Outcome, summary

    def ledger(posts: int, charged: int) -> dict[str, Any]:
        return {"generate_requests": posts, "accounts": {"k": {"charged": charged, "refunded": 28}}}

    prompt = "Catalog d batch-0001: the product turns"
    done = Outcome(
        date="d",
        logical_requests=1,
        injected_resubmissions=0,
        ledger_before=ledger(0, 0),
        ledger_after_first=ledger(1, 28),
        ledger_after_second=ledger(1, 28),
        tasks=[{"status": "SUCCESS", "request": {"prompt": prompt}}],
        objects={"d/batch/batch-0001.mp4": b"mp4"},
        spend={
            "total": {"credits": 28},
            "possible_charges": {"submissions": 0, "estimated_credits": 0},
            "skipped_records": 0,
        },
        wall_seconds=12.0,
    )
    table = summary(done)
    assert "not reached" not in table and "STOPPED" not in table
    assert "| 1 (= requests + 0 injected" in table and "| 0, 0 |" in table and "1 match a successful" in table
    assert "| 28, 0 submissions (0 credits), 0 records |" in table


# ------------------------------------------------------------------ SEEDANCE_CLUSTER_EXTRA_DAGS
def test_extra_dags_go_into_the_dags_folder_beside_the_scenarios(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "my_catalog.py").write_text("# a user's DAG\n")
    (mine / "my_upload.py").write_text("# another\n")

    extra = stack_module.extra_dag_files(f"{mine / 'my_catalog.py'}::{mine / 'my_upload.py'}:")
    installed = stack_module.install_dags(tmp_path / "dags", extra)

    names = sorted(path.name for path in installed)
    scenarios = sorted(path.name for path in stack_module.SCENARIO_DAGS.glob("*.py"))
    assert scenarios and names == sorted([*scenarios, "my_catalog.py", "my_upload.py"])
    assert (tmp_path / "dags" / "my_catalog.py").read_text() == "# a user's DAG\n"


def test_no_extra_dags_installs_only_the_scenarios(tmp_path: Path) -> None:
    assert stack_module.extra_dag_files("") == []
    installed = stack_module.install_dags(tmp_path / "dags", [])
    assert sorted(p.name for p in installed) == sorted(
        p.name for p in stack_module.SCENARIO_DAGS.glob("*.py")
    )


@pytest.mark.parametrize("problem", ["missing", "not python", "a scenario's name", "twice"])
def test_bad_extra_dags_are_refused_before_anything_starts(tmp_path: Path, problem: str) -> None:
    scenario = sorted(stack_module.SCENARIO_DAGS.glob("*.py"))[0].name
    named = {
        "missing": [tmp_path / "gone.py"],
        "not python": [tmp_path / "notes.txt"],
        "a scenario's name": [tmp_path / scenario],
        "twice": [tmp_path / "a" / "dag.py", tmp_path / "b" / "dag.py"],
    }[problem]
    for path in named:
        if problem != "missing":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("# x\n")
    with pytest.raises(stack_module.BadExtraDags, match="SEEDANCE_CLUSTER_EXTRA_DAGS"):
        stack_module.extra_dag_files(":".join(str(p) for p in named))


def test_cluster_up_with_bad_extra_dags_exits_before_starting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("SEEDANCE_CLUSTER_HOME", str(home))
    monkeypatch.setenv("SEEDANCE_CLUSTER_EXTRA_DAGS", str(tmp_path / "gone.py"))
    assert stack_module.main(["up"]) == 2
    assert "gone.py is not a .py file that exists" in capsys.readouterr().err
    assert not home.exists()
