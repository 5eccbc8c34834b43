"""`cluster-up` / `cluster-down` on a machine where an earlier stack did not end cleanly.

A CI machine that ran the stack before (a killed job, a start interrupted before the state
file) must still bring the stack up; a stack that still runs must never be wiped under it, and
a folder that is no stack's home is never removed. These run in ``make test`` (no stack
needed): they only use a temporary home and processes of their own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

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
