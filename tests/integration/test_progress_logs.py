"""A blocking wait says what it is doing in the task log, without flooding it.

``SeedanceHook.wait_for_completion`` (what a non-deferrable operator runs on the worker)
logs at INFO at most one progress line per poll interval (and at most one per 30 s), each
with the status, the time waited and the expected cost, and one closing line with the
video, the credits and the dollars.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from airflow_provider_seedance.hooks.seedance import SeedanceHook

pytestmark = pytest.mark.integration

PROGRESS = re.compile(
    r"^Seedance task (?P<id>\S+): (?P<status>IN_PROGRESS) after (?P<elapsed>\d+)s, "
    r"expected cost (?P<credits>\d+) credits \((?P<usd>\$[\d.]+)\)$"
)
DONE = re.compile(
    r"^Seedance task (?P<id>\S+) SUCCESS after (?P<elapsed>\d+)s: video (?P<video>http\S+\.mp4), "
    r"(?P<credits>\d+) credits \((?P<usd>\$[\d.]+)\)$"
)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def hook_log() -> Iterator[tuple[SeedanceHook, _Collect]]:
    hook = SeedanceHook(status_retries=3, retry_min_wait=0.05, retry_max_wait=0.1)
    # Airflow routes hook.log through structlog (3.3) or the stdlib (3.1); a plain stdlib
    # logger in its place records exactly what the hook emits, on either version.
    logger = logging.getLogger("tests.progress_logs")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = _Collect()
    logger.addHandler(handler)
    hook._log = logger
    try:
        yield hook, handler
    finally:
        logger.removeHandler(handler)


def test_blocking_wait_logs_one_progress_line_then_video_credits_and_dollars(emulator, hook_log) -> None:
    hook, handler = hook_log
    # The generation renders until the wait has polled it five times, however slow the machine.
    emulator.hold()
    task_id = hook.submit("A paper boat on a rain puddle", resolution="480p", duration=8, generate_audio=True)
    before = emulator.ledger()["status_requests"]
    handler.records.clear()

    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(hook.wait_for_completion, task_id, poll_interval=0.1, timeout=60)
        try:
            deadline = time.monotonic() + 60
            while emulator.ledger()["status_requests"] - before < 5 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            emulator.hold(False)
        task = waiting.result(timeout=60)

    polls = emulator.ledger()["status_requests"] - before
    assert task.is_success
    info = [
        r.getMessage() for r in handler.records if r.levelno == logging.INFO and task_id in r.getMessage()
    ]
    progress = [m for m in info if PROGRESS.match(m)]
    done = [m for m in info if DONE.match(m)]
    # Five polls or more, but one progress line: never one per poll.
    assert polls >= 5, polls
    assert len(progress) == 1, info
    assert len(done) == 1, info
    assert info == progress + done  # nothing else at INFO from the wait
    line = PROGRESS.match(progress[0])
    assert line is not None
    # 480p, 8 s, with audio: 28 credits by the price table, i.e. $0.14.
    assert (line["id"], line["credits"], line["usd"]) == (task_id, "28", "$0.14")
    end = DONE.match(done[0])
    assert end is not None
    assert (end["video"], end["credits"], end["usd"]) == (task.video_url, "28", "$0.14")
    assert task.consumed_credits == 28


def test_failed_generation_ends_the_wait_with_a_line_naming_no_video_and_no_charge(
    emulator, hook_log
) -> None:
    hook, handler = hook_log
    emulator.add_faults({"endpoint": "outcome", "fault": "failed", "times": 1, "error_message": "NSFW"})
    task_id = hook.submit("A moderated prompt", resolution="720p", duration=4)

    task = hook.wait_for_completion(task_id, poll_interval=0.2, timeout=30)

    assert task.is_failed
    info = [
        r.getMessage() for r in handler.records if r.levelno == logging.INFO and task_id in r.getMessage()
    ]
    assert sum(bool(PROGRESS.match(m)) for m in info) == 1, info
    # A failed generation ends with a closing line too: no video, 0 credits (not billed).
    assert info[-1].startswith(f"Seedance task {task_id} FAILED after ")
    assert "video none (NSFW" in info[-1] and info[-1].endswith("0 credits ($0.00)"), info[-1]
