"""The emulator as a process: command line, readiness line, signals, restarts, state file, logs."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest
import requests
from emulator_helpers import Api, error_code

from airflow_provider_seedance.emulator.testing import EmulatorError, EmulatorProcess

PROMPT = "A peaceful river flowing through a forest with birds singing"
LISTENING = r"seedance-emulator listening on http://127\.0\.0\.1:(\d+)"


class RawCli(EmulatorProcess):
    """An EmulatorProcess started with exactly the given CLI arguments."""

    def __init__(self, *args: str) -> None:
        super().__init__()
        self.args = list(args)
        # The keys on the command line, so ledger() can map account labels back to them.
        keys = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "--api-key"]
        if keys:
            self.api_keys = dict.fromkeys(keys, 0)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "airflow_provider_seedance.emulator", "--port", "0", *self.args]


def _read_line(stream: IO[str] | None, timeout: float) -> str:
    assert stream is not None
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()))
    reader.start()
    reader.join(timeout)
    assert box, f"no line within {timeout}s"
    return box[0]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_prints_one_listening_line_and_exits_0_on_signal(signum: int, tmp_path: Path) -> None:
    with (tmp_path / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow_provider_seedance.emulator", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        line = _read_line(process.stdout, timeout=20)
        match = re.fullmatch(LISTENING + r"\n", line)
        assert match, line
        health = requests.get(f"http://127.0.0.1:{match.group(1)}/_emulator/health", timeout=5)
        assert health.status_code == 200
        process.send_signal(signum)
        rest, _ = process.communicate(timeout=10)
        assert rest == ""  # exactly one line on stdout
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_console_script_entry_point_is_main() -> None:
    from importlib.metadata import entry_points

    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts.get("seedance-emulator") == "airflow_provider_seedance.emulator.cli:main"


def test_default_account_is_the_documented_local_key() -> None:
    with RawCli("--generation-seconds", "0") as emulator:
        assert emulator.ledger()["accounts"] == {
            "sk-emulator-local": {"balance": 10000, "charged": 0, "refunded": 0, "tasks": 0}
        }
        response = Api(emulator).generate({"prompt": PROMPT}, key="sk-emulator-local")
        assert response.status_code == 200


def test_repeated_keys_pair_with_credits_in_order() -> None:
    args = ["--api-key", "sk-a-000000001", "--credits", "100", "--api-key", "sk-b-000000002"]
    args += ["--credits", "200", "--api-key", "sk-c-000000003"]
    with RawCli(*args) as emulator:
        balances = {key: a["balance"] for key, a in emulator.ledger()["accounts"].items()}
    assert balances == {"sk-a-000000001": 100, "sk-b-000000002": 200, "sk-c-000000003": 200}


def test_keys_without_any_credits_get_the_default() -> None:
    with RawCli("--api-key", "sk-a-000000001", "--api-key", "sk-b-000000002") as emulator:
        balances = {key: a["balance"] for key, a in emulator.ledger()["accounts"].items()}
    assert balances == {"sk-a-000000001": 10000, "sk-b-000000002": 10000}


def test_without_generation_seconds_durations_are_realistic() -> None:
    with RawCli() as emulator:
        api = Api(emulator, key=emulator.api_key)
        short = api.submit({"prompt": PROMPT, "resolution": "480p", "duration": "4"})
        long = api.submit({"prompt": PROMPT, "resolution": "720p", "duration": "12", "generate_audio": True})
        seconds = {t["task_id"]: t["generation_seconds"] for t in emulator.tasks()}
        assert seconds[short] == pytest.approx(30, abs=1)
        assert seconds[long] == pytest.approx(120, abs=1)
        assert api.status_data(short)["status"] == "IN_PROGRESS"


def test_fractional_generation_seconds_are_exact() -> None:
    with EmulatorProcess(generation_seconds=2.25) as emulator:
        api = Api(emulator, key=emulator.api_key)
        submitted = time.monotonic()
        task_id = api.submit()
        assert emulator.tasks()[0]["generation_seconds"] == 2.25
        assert api.status_data(task_id)["status"] == "IN_PROGRESS"
        time.sleep(max(0.0, 2.35 - (time.monotonic() - submitted)))
        assert api.status_data(task_id)["status"] == "SUCCESS"


def test_state_survives_a_restart(tmp_path: Path) -> None:
    key = "sk-state-test-key-0007"
    state_file = tmp_path / "state" / "emulator.json"
    with EmulatorProcess(api_keys={key: 1000}, generation_seconds=1.0, state_file=state_file) as emulator:
        api = Api(emulator, key=key)
        done = api.submit()
        emulator.add_faults({"endpoint": "outcome", "fault": "failed", "error_message": "LATE_FAILURE: x"})
        failing = api.submit()
        pending = api.submit({"prompt": PROMPT, "resolution": "480p", "duration": "4"})
        api.wait_finished(done, timeout=5)
        assert api.status_data(pending)["status"] in ("IN_PROGRESS", "SUCCESS")
        before_tasks = {t["task_id"]: t["request"] for t in emulator.tasks()}
        before = emulator.ledger()
        port = emulator.port

        emulator.restart()

        assert emulator.port == port
        assert {t["task_id"]: t["request"] for t in emulator.tasks()} == before_tasks
        after = emulator.ledger()
        # Counters and money survive; the status polls above were counted before the restart.
        assert after["generate_requests"] == before["generate_requests"] == 3
        assert after["status_requests"] == before["status_requests"]
        assert after["accounts"][key]["charged"] == 28 + 28 + 8
        assert after["accounts"][key]["tasks"] == 3

        # Tasks keep running on wall-clock time across the restart, and their outcome is kept.
        assert api.wait_finished(failing, timeout=5)["error_message"] == "LATE_FAILURE: x"
        assert api.wait_finished(pending, timeout=5)["status"] == "SUCCESS"
        assert emulator.ledger()["accounts"][key] == {
            "balance": 1000 - 36,
            "charged": 64,
            "refunded": 28,
            "tasks": 3,
        }
        assert requests.get(api.video_url(done), timeout=10).status_code == 200
        assert error_code(api.status(done, key="sk-emulator-local")) == "INVALID_API_KEY"

    saved = json.loads(state_file.read_text())
    assert saved["accounts"][key]["balance"] == 1000 - 36
    assert list(state_file.parent.iterdir()) == [state_file]  # no temp files left behind


def test_corrupt_state_file_fails_start_cleanly(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    state_file.write_text('{"version": 99}')
    emulator = EmulatorProcess(state_file=state_file, startup_timeout=10)
    with pytest.raises(EmulatorError, match="exited with code 1"):
        emulator.start()
    assert emulator.pid is None and not emulator.running


def test_start_on_a_busy_port_raises_and_leaves_no_process() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        emulator = EmulatorProcess(port=busy.getsockname()[1], startup_timeout=10)
        with pytest.raises(EmulatorError, match="before listening"):
            emulator.start()
    assert emulator.pid is None and not emulator.running
    assert "failed to start" in emulator.read_log()


def test_stop_is_clean_and_idempotent() -> None:
    emulator = EmulatorProcess(generation_seconds=0).start()
    process_port = emulator.port
    assert emulator.running
    assert emulator.stop() == 0
    assert emulator.stop() is None
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{process_port}/_emulator/health", timeout=2)


def test_api_keys_never_appear_in_the_log(tmp_path: Path) -> None:
    key = "sk-live-S3CRET-do-not-log-4242"
    other = "sk-other-S3CRET-account-9191"
    wrong = "sk-wrong-S3CRET-guess-7777"
    log_path = tmp_path / "emulator.log"
    with EmulatorProcess(
        api_keys={key: 100, other: 10},
        generation_seconds=0,
        allow_local_callbacks=True,
        extra_args=["--log-level", "debug"],
        log_path=log_path,
    ) as emulator:
        api = Api(emulator, key=key)
        task_id = api.submit()
        api.status_data(task_id)
        api.status(task_id, key=other)  # 404
        api.generate({"prompt": PROMPT, "duration": "12", "generate_audio": True}, key=other)  # 402
        api.generate(key=wrong)  # 401
        api.status(task_id, key=wrong)  # 401
        api.generate({"prompt": PROMPT, "callback_url": "http://127.0.0.1:9/hook"})
        emulator.add_faults({"endpoint": "status", "fault": "http_500"})
        api.status(task_id)
        requests.get(api.video_url(task_id), timeout=10)
        time.sleep(0.3)  # let the callback attempt be logged
    text = log_path.read_text()
    assert "task " in text and "rejected" in text  # the log did record these events
    for secret in (key, other, wrong, "S3CRET"):
        assert secret not in text
    assert "sk-…4242" in text  # masked form: enough to tell accounts apart
