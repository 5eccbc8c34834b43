"""No raw key on the admin surface or in logs; the state file is written only when state
changes and a bad one stops the start with one clear line; hosts are checked over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from emulator_helpers import ALPHA, BRAVO, Api, error_code, wait_until

from airflow_provider_seedance.emulator.redact import account_label
from airflow_provider_seedance.emulator.testing import EmulatorProcess

PROMPT = "Waves rolling onto a black sand beach at dusk"


def test_admin_endpoints_never_show_a_raw_key(api: Api, emulator: EmulatorProcess) -> None:
    api.submit()
    raw_ledger = requests.get(f"{emulator.base_url}/_emulator/ledger", timeout=10).text
    raw_tasks = requests.get(f"{emulator.base_url}/_emulator/tasks", timeout=10).text
    reset = requests.post(f"{emulator.base_url}/_emulator/reset", timeout=10).text
    for text in (raw_ledger, raw_tasks, reset):
        assert ALPHA not in text and BRAVO not in text
    assert set(json.loads(raw_ledger)["accounts"]) == {account_label(ALPHA), account_label(BRAVO)}
    assert json.loads(raw_tasks)[0]["account"] == account_label(ALPHA)


def test_ledger_helper_maps_labels_back_to_the_keys_it_started_with(
    api: Api, emulator: EmulatorProcess
) -> None:
    api.submit()
    assert emulator.ledger()["accounts"][ALPHA]["charged"] == 28
    assert emulator.tasks()[0]["account"] == ALPHA
    assert ALPHA not in emulator.ledger(raw=True)["accounts"]


def test_account_labels_differ_for_keys_with_the_same_tail() -> None:
    assert account_label("sk-first-key-0001") != account_label("sk-other-key-0001")
    assert "0001" in account_label("sk-first-key-0001")


def _fill(api: Api, count: int) -> None:
    for _ in range(count):
        api.submit({"prompt": PROMPT, "duration": "4", "resolution": "480p"})


def test_status_reads_do_not_rewrite_the_state_file(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    key = "sk-state-writes-0012"
    with EmulatorProcess(api_keys={key: 100000}, generation_seconds=0, state_file=state_file) as emulator:
        api = Api(emulator, key=key)
        _fill(api, 5)
        task_id = api.submit()
        api.wait_finished(task_id)
        time.sleep(0.8)  # let the coalesced write of the finished tasks land
        stamp = state_file.stat().st_mtime_ns, state_file.stat().st_ino
        for _ in range(20):
            assert api.status_data(task_id)["status"] == "SUCCESS"
        emulator.ledger()
        time.sleep(0.8)
        assert (state_file.stat().st_mtime_ns, state_file.stat().st_ino) == stamp
        # A charge is a change: it is on disk by the time the answer arrives.
        new_id = api.submit()
        assert new_id in {t["task_id"] for t in json.loads(state_file.read_text())["tasks"]}
        assert list(tmp_path.iterdir()) == [state_file]
    # The status reads were counted and written at shutdown.
    assert json.loads(state_file.read_text())["counters"]["status_requests"] >= 21


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"{not json", "is not valid JSON"),
        (b"\xff\xfe\x00garbage", "is not valid JSON"),
        (b'{"version": 99}', "unsupported version 99"),
        (b"[1, 2, 3]", "unsupported version None"),
        (b'{"version": 1, "tasks": [{"task_id": "x"}]}', "does not hold emulator state"),
        (b'{"version": 1, "accounts": {"k": 5}}', "does not hold emulator state"),
    ],
)
def test_a_bad_state_file_stops_the_start_with_one_clear_line(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    state_file = tmp_path / "state.json"
    state_file.write_bytes(content)
    _assert_clean_refusal(state_file, expected)


def test_an_unreadable_state_file_stops_the_start_with_one_clear_line(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    state_file.mkdir()  # exists but cannot be read as a file (permissions do not bind root)
    _assert_clean_refusal(state_file, "cannot read state file")


def _assert_clean_refusal(state_file: Path, expected: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "airflow_provider_seedance.emulator",
            "--port",
            "0",
            "--state-file",
            str(state_file),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert result.returncode == 1
    assert result.stdout == ""  # never reached "listening"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "seedance-emulator failed to start" in lines[0] and expected in lines[0]
    assert str(state_file) in lines[0]
    assert "Traceback" not in result.stderr


# ---- hosts over HTTP ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://127.1/hook",
        "https://0x7f.0.0.1/hook",
        "https://0177.0.0.1/hook",
        "https://2130706433/hook",
        "https://10.1/hook",
        "https://169.254.43518/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11/hook",
        "https://localhost./hook",
        "https://api.localhost/hook",
    ],
)
def test_numeric_and_disguised_local_callbacks_are_refused(
    api: Api, emulator: EmulatorProcess, url: str
) -> None:
    response = api.generate({"prompt": PROMPT, "callback_url": url})
    assert response.status_code == 400
    assert error_code(response) == "INVALID_CALLBACK_URL"
    assert emulator.tasks() == []


@pytest.mark.parametrize(
    "url", ["https://127.1/a.jpg", "http://0x7f.1/a.jpg", "https://[::1]/a.jpg", "https://10.1/a.jpg"]
)
def test_local_image_urls_are_refused(api: Api, emulator: EmulatorProcess, url: str) -> None:
    response = api.generate({"prompt": PROMPT, "image_urls": [url]})
    assert response.status_code == 400
    assert error_code(response) == "INVALID_IMAGE_URLS"
    assert emulator.tasks() == []


def test_public_image_url_is_accepted(api: Api) -> None:
    assert (
        api.generate({"prompt": PROMPT, "image_urls": ["https://images.example.com/a.jpg"]}).status_code
        == 200
    )


def test_a_local_callback_on_record_is_never_called_without_the_flag(
    tmp_path: Path, receiver_url: str
) -> None:
    """A task stored with a loopback callback (say, by a run with the flag) reaches the
    emulator again without it: the callback must not connect to loopback."""
    state_file = tmp_path / "state.json"
    key = "sk-guard-test-key-0013"
    with EmulatorProcess(
        api_keys={key: 100}, generation_seconds=0.3, allow_local_callbacks=True, state_file=state_file
    ) as emulator:
        emulator.hold()  # it stops before the generation ends, however slow the machine
        Api(emulator, key=key).submit({"prompt": PROMPT, "callback_url": receiver_url})
    with EmulatorProcess(api_keys={key: 100}, generation_seconds=0.3, state_file=state_file) as emulator:
        wait_until(lambda: emulator.ledger()["callbacks_failed"] == 1, timeout=5)
        assert emulator.ledger()["callbacks_sent"] == 0
        assert "refused: not a public host" in emulator.read_log()
