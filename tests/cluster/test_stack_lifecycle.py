"""`cluster-up` / `cluster-down` on a machine where an earlier stack did not end cleanly.

A CI machine that ran the stack before (a killed job, a start interrupted before the state
file) must still bring the stack up; a stack that still runs must never be wiped under it.
These run in ``make test`` (no stack needed): they only use a temporary home.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import stack as stack_module
from tests.cluster.stack import Stack


def _stale_home(home: Path, *, with_state: bool) -> None:
    (home / "logs").mkdir(parents=True)
    (home / "logs" / "scheduler.log").write_text("from a run that was killed\n")
    if with_state:
        Stack(home=home, ports={"redis": 1}).save()


@pytest.fixture
def process_of(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A live process that belongs to the stack at ``tmp_path / 'home'`` (its home in its command line)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", str(tmp_path / "home")])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("with_state", [True, False], ids=["state-file", "no-state-file"])
def test_up_clears_the_home_of_a_stopped_stack(tmp_path: Path, with_state: bool) -> None:
    home = tmp_path / "home"
    _stale_home(home, with_state=with_state)
    Stack(home=home).clear_stopped_home()
    assert not home.exists()


def test_up_refuses_a_home_whose_stack_still_runs_and_names_the_process(
    tmp_path: Path, process_of: subprocess.Popen[bytes]
) -> None:
    home = tmp_path / "home"
    _stale_home(home, with_state=True)
    with pytest.raises(stack_module.StackRunning, match=rf"still runs at .*home.*\n\s+{process_of.pid} "):
        Stack(home=home).clear_stopped_home()
    assert (home / "logs" / "scheduler.log").exists()
    assert process_of.poll() is None


def test_down_without_a_state_file_stops_the_stacks_processes_and_removes_its_home(
    tmp_path: Path, process_of: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    _stale_home(home, with_state=False)
    monkeypatch.setenv("SEEDANCE_CLUSTER_HOME", str(home))
    assert stack_module.main(["down"]) == 0
    assert process_of.wait(timeout=15) is not None
    assert not home.exists()


def test_down_with_nothing_there_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setenv("SEEDANCE_CLUSTER_HOME", str(tmp_path / "absent"))
    assert stack_module.main(["down"]) == 0
    assert "no stack at" in capsys.readouterr().out


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
