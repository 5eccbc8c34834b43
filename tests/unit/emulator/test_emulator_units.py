"""Pure pieces of the emulator that are cheaper to pin down directly than over HTTP."""

from __future__ import annotations

import logging
import sys
from importlib import resources

import pytest

from airflow_provider_seedance.emulator import catalog
from airflow_provider_seedance.emulator.cli import accounts_from_args
from airflow_provider_seedance.emulator.faults import FaultBook, FaultRule
from airflow_provider_seedance.emulator.redact import RedactingFormatter, mask_key
from airflow_provider_seedance.emulator.state import FAILED, SUCCESS, EmulatorState, Task
from airflow_provider_seedance.emulator.video import parse_range


@pytest.mark.parametrize(
    ("key", "masked"),
    [
        ("sk-emulator-local", "sk-…ocal"),
        ("abcdefghijklmnop", "…mnop"),
        ("sk-short", "sk-…"),  # too short to show any of it
        ("", "…"),
    ],
)
def test_mask_key_shows_at_most_the_last_four_characters(key: str, masked: str) -> None:
    assert mask_key(key) == masked


def test_redacting_formatter_scrubs_keys_from_messages_and_tracebacks() -> None:
    formatter = RedactingFormatter(["sk-secret-value-1234"], fmt="%(message)s")
    try:
        raise ValueError("bad key sk-secret-value-1234")
    except ValueError:
        record = logging.LogRecord(
            "t", logging.ERROR, __file__, 1, "got %s", ("sk-secret-value-1234",), sys.exc_info()
        )
    text = formatter.format(record)
    assert "sk-secret-value-1234" not in text
    assert text.startswith("got sk-…1234\n")
    assert "ValueError: bad key sk-…1234" in text


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, 999)),
        ("bytes=-10", (990, 999)),
        ("bytes=900-5000", (900, 999)),
        ("bytes=0-1,5-6", None),  # multi-range is ignored: whole file
        ("items=0-1", None),
    ],
)
def test_parse_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5-2", "bytes=-0"])
def test_unsatisfiable_ranges_raise(header: str) -> None:
    with pytest.raises(ValueError):
        parse_range(header, 1000)


def test_realistic_generation_times_span_30_to_120_seconds() -> None:
    assert catalog.realistic_generation_seconds("480p", "4", False) == pytest.approx(30)
    assert catalog.realistic_generation_seconds("720p", "12", True) == pytest.approx(120)
    ordered = [
        catalog.realistic_generation_seconds(r, d, a)
        for r in catalog.RESOLUTIONS
        for d in catalog.DURATIONS
        for a in (False, True)
    ]
    assert all(30 <= s <= 120 for s in ordered)


def test_accounts_from_args_pairs_in_order_and_reuses_the_last_credit() -> None:
    assert accounts_from_args(None, None) == {"sk-emulator-local": 10000}
    assert accounts_from_args(["a", "b", "c"], [5, 7]) == {"a": 5, "b": 7, "c": 7}
    assert accounts_from_args(["a"], None) == {"a": 10000}
    assert accounts_from_args(None, [42]) == {"sk-emulator-local": 42}


def test_fault_book_consumes_first_matching_rule_with_uses_left() -> None:
    book = FaultBook()
    book.add(
        [
            FaultRule.from_json({"endpoint": "status", "fault": "http_500", "times": 2}),
            FaultRule.from_json({"endpoint": "video", "fault": "drop"}),
            FaultRule.from_json({"endpoint": "status", "fault": "slow", "delay": 0.1}),
        ]
    )
    taken = [book.take("status") for _ in range(4)]
    assert [r.fault if r else None for r in taken] == ["http_500", "http_500", "slow", None]
    assert [r["endpoint"] for r in book.pending()] == ["video"]


def test_every_frame_size_is_even_and_has_the_right_shape() -> None:
    for (resolution, aspect), (width, height) in catalog.FRAME_SIZES.items():
        assert width % 2 == 0 and height % 2 == 0
        assert min(width, height) == int(resolution[:-1])
        a, b = (int(n) for n in aspect.split(":"))
        assert width / height == pytest.approx(a / b, rel=0.01)
    assert len(catalog.FRAME_SIZES) == len(catalog.RESOLUTIONS) * len(catalog.ASPECT_RATIOS)


def test_all_clips_are_bundled_and_small() -> None:
    clips = resources.files("airflow_provider_seedance.emulator") / "clips"
    total = 0
    for resolution, aspect in catalog.FRAME_SIZES:
        data = (clips / catalog.clip_name(resolution, aspect)).read_bytes()
        assert data[4:8] == b"ftyp"
        total += len(data)
    assert total < 1_000_000


def _task(state: EmulatorState, task_id: str, due_at: float, failure: str | None = None) -> Task:
    task = Task(task_id, "sk-a", {}, 0.0, due_at, 10, "480p", "16:9", failure=failure)
    state.add_task(task)
    return task


def test_tasks_finish_at_their_due_time_in_due_order_and_failures_are_refunded(tmp_path) -> None:
    state = EmulatorState(initial_credits={"sk-a": 100}, state_file=tmp_path / "state.json")
    _task(state, "late", 30.0)
    _task(state, "early", 10.0, failure="moderation")
    _task(state, "middle", 20.0)
    assert state.next_due() == 10.0
    assert state.settle_due(9.9) == []
    assert [t.task_id for t in state.settle_due(20.0)] == ["early", "middle"]
    assert state.tasks["early"].status == FAILED and state.tasks["middle"].status == SUCCESS
    assert state.accounts["sk-a"].balance == 100 - 30 + 10
    assert state.next_due() == 30.0
    # A restart (state file) keeps what is still due, and only that.
    state.save()
    reloaded = EmulatorState.load({"sk-a": 100}, tmp_path / "state.json")
    assert reloaded.next_due() == 30.0
    assert [t.task_id for t in reloaded.settle_due(31.0)] == ["late"]
    assert reloaded.next_due() is None and reloaded.settle_due(1e9) == []


def test_reset_forgets_tasks_that_were_due() -> None:
    state = EmulatorState(initial_credits={"sk-a": 100})
    _task(state, "t", 10.0)
    state.reset()
    assert state.next_due() is None and state.settle_due(11.0) == []
    _task(state, "t", 10.0)  # the same id again after a reset settles once
    assert [t.task_id for t in state.settle_due(11.0)] == ["t"]


def test_every_config_option_of_the_cli_reaches_the_emulator_config(tmp_path):
    from airflow_provider_seedance.emulator.cli import build_parser, config_from_args

    state = tmp_path / "state.json"
    args = build_parser().parse_args(
        [
            "--api-key=k1",
            "--generation-seconds=0.5",
            f"--state-file={state}",
            "--allow-local-callbacks",
            "--video-ttl-seconds=7",
        ]
    )
    config = config_from_args(args, {"k1": 3})
    assert config.api_keys == {"k1": 3}
    assert config.generation_seconds == 0.5
    assert config.state_file == state
    assert config.allow_local_callbacks is True
    assert config.video_ttl_seconds == 7


@pytest.mark.parametrize(
    ("key", "size"),
    [(("480p", "16:9"), (854, 480)), (("720p", "9:21"), (720, 1680)), (("480p", "3:4"), (480, 640))],
)
def test_computed_frame_sizes_match_the_bundled_clips_sizes(key, size) -> None:
    """The clips in emulator/clips were rendered at these sizes; the table must not drift."""
    assert catalog.FRAME_SIZES[key] == size
