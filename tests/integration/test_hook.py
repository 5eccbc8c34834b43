"""SeedanceHook against the emulator started as a real process (HTTP on loopback)."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from airflow_provider_seedance.exceptions import (
    SeedanceAuthError,
    SeedanceConfigurationError,
    SeedanceConnectionError,
    SeedanceInsufficientCreditsError,
    SeedanceResponseError,
    SeedanceServerError,
    SeedanceSubmissionUncertainError,
    SeedanceTaskNotFoundError,
    SeedanceTimeoutError,
    SeedanceValidationError,
)
from airflow_provider_seedance.hooks.seedance import USER_AGENT, SeedanceHook
from airflow_provider_seedance.models import estimate_credits
from tests.conftest import API_KEY, OTHER_KEY, connection_json

pytestmark = pytest.mark.integration


def fast_hook(conn_id: str = "seedance_default") -> SeedanceHook:
    return SeedanceHook(conn_id, status_retries=4, retry_min_wait=0.05, retry_max_wait=0.2)


def test_text_to_video_end_to_end(emulator) -> None:
    hook = fast_hook()
    task_id = hook.submit(
        "A cinematic shot of mountains at sunrise", aspect_ratio="16:9", resolution="720p", duration=8
    )
    task = hook.wait_for_completion(task_id, poll_interval=0.2, timeout=30)
    assert task.is_success and task.video_url and task.video_url.endswith(".mp4")
    assert task.consumed_credits == estimate_credits("720p", "8", False) == 28
    assert task.request == {
        "prompt": "A cinematic shot of mountains at sunrise",
        "aspect_ratio": "16:9",
        "resolution": "720p",
        "duration": "8",
    }
    ledger = emulator.ledger()
    assert ledger["generate_requests"] == 1
    assert ledger["accounts"][API_KEY]["charged"] == 28


def test_image_to_video_end_to_end(emulator) -> None:
    hook = fast_hook()
    task_id = hook.submit(
        "The product turns slowly",
        image_urls=["https://example.com/p.jpg"],
        resolution="480p",
        duration="4",
        generate_audio=True,
        fixed_lens=True,
    )
    task = hook.wait_for_completion(task_id, poll_interval=0.2, timeout=30)
    assert task.is_success
    assert task.request["image_urls"] == ["https://example.com/p.jpg"]
    assert task.request["generate_audio"] is True and task.request["fixed_lens"] is True
    assert task.consumed_credits == 14


def test_only_set_fields_are_sent(emulator) -> None:
    hook = fast_hook()
    task_id = hook.submit("just a prompt")
    [record] = [t for t in emulator.tasks() if t["task_id"] == task_id]
    assert record["request"] == {"prompt": "just a prompt"}


def test_bad_input_never_reaches_the_server(emulator) -> None:
    hook = fast_hook()
    with pytest.raises(SeedanceValidationError, match="aspect_ratio"):
        hook.submit("p", aspect_ratio="5:4")
    with pytest.raises(SeedanceValidationError, match="duration"):
        hook.submit("p", duration=5)
    assert emulator.ledger()["generate_requests"] == 0


def test_user_agent_names_provider_and_airflow() -> None:
    assert USER_AGENT.startswith("airflow-provider-seedance/") and "apache-airflow/3." in USER_AGENT


def test_status_retried_on_500_429_drop_and_malformed(emulator) -> None:
    hook = fast_hook()
    task_id = hook.submit("p")
    emulator.add_faults(
        {"endpoint": "status", "fault": "http_500", "times": 1},
        {"endpoint": "status", "fault": "http_429", "times": 1, "retry_after": 0},
        {"endpoint": "status", "fault": "drop", "times": 1},
    )
    before = emulator.ledger()["status_requests"]
    task = hook.get_status(task_id)
    assert task.task_id == task_id
    assert emulator.ledger()["status_requests"] - before == 4  # three faults, then the answer


def test_status_gives_up_after_bounded_attempts(emulator) -> None:
    hook = fast_hook()
    task_id = hook.submit("p")
    emulator.add_faults({"endpoint": "status", "fault": "http_500", "times": 100})
    before = emulator.ledger()["status_requests"]
    with pytest.raises(SeedanceServerError):
        hook.get_status(task_id)
    assert emulator.ledger()["status_requests"] - before == 4


def test_async_status_gives_up_after_the_same_bounded_attempts_and_counts_them(emulator, capfd) -> None:
    """The trigger's read: the fast first attempt and tenacity's retries are one budget."""
    hook = fast_hook()
    task_id = hook.submit("p")
    emulator.add_faults({"endpoint": "status", "fault": "http_500", "times": 100})
    before = emulator.ledger()["status_requests"]
    capfd.readouterr()
    with pytest.raises(SeedanceServerError):
        asyncio.run(hook.aget_status(task_id))
    assert emulator.ledger()["status_requests"] - before == hook.status_retries == 4
    out = capfd.readouterr()
    logged = re.findall(r"status read failed \(attempt (\d) of (\d)\)", out.out + out.err)
    assert logged == [("1", "4"), ("2", "4"), ("3", "4")]


def test_malformed_status_answer_is_a_typed_error(emulator) -> None:
    hook = SeedanceHook(status_retries=1)
    task_id = hook.submit("p")
    emulator.add_faults({"endpoint": "status", "fault": "malformed", "times": 1})
    with pytest.raises(SeedanceResponseError, match="MALFORMED_RESPONSE"):
        hook.get_status(task_id)


def test_retry_after_is_honoured(emulator) -> None:
    import time

    hook = fast_hook()
    task_id = hook.submit("p")
    emulator.add_faults({"endpoint": "status", "fault": "http_429", "times": 1, "retry_after": 1})
    started = time.monotonic()
    hook.get_status(task_id)
    assert time.monotonic() - started >= 1.0


@pytest.mark.parametrize("fault", ["http_500", "drop", "malformed"])
def test_generate_is_never_replayed_after_an_ambiguous_failure(emulator, fault: str) -> None:
    hook = fast_hook()
    emulator.add_faults({"endpoint": "generate", "fault": fault, "times": 1})
    with pytest.raises(SeedanceSubmissionUncertainError, match="may exist"):
        hook.submit("p")
    assert emulator.ledger()["generate_requests"] == 1


def test_generate_is_never_replayed_after_a_read_timeout(emulator, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_SLOW", connection_json(emulator.base_url, timeout=1))
    emulator.add_faults({"endpoint": "generate", "fault": "slow", "times": 1, "delay": 3})
    with pytest.raises(SeedanceSubmissionUncertainError, match="may exist"):
        SeedanceHook("seedance_slow").submit("p")
    assert emulator.ledger()["generate_requests"] == 1


def test_generate_retried_only_when_the_server_was_never_reached(monkeypatch) -> None:
    # Port 9 (discard) is closed on loopback: connection refused, provably never sent.
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEAD", connection_json("http://127.0.0.1:9"))
    monkeypatch.setattr("airflow_provider_seedance.hooks.seedance.time.sleep", lambda s: None)
    with pytest.raises(SeedanceConnectionError) as info:
        SeedanceHook("seedance_dead").submit("p")
    assert info.value.sent is False


def test_typed_errors_for_auth_credits_and_unknown_task(emulator, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_BAD", connection_json(emulator.base_url, api_key="sk-wrong"))
    with pytest.raises(SeedanceAuthError) as auth:
        SeedanceHook("seedance_bad").submit("p")
    assert auth.value.status_code == 401 and auth.value.error_code == "INVALID_API_KEY"
    with pytest.raises(SeedanceTaskNotFoundError):
        fast_hook().get_status("seed-does-not-exist")
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_POOR", connection_json(emulator.base_url, api_key=OTHER_KEY))
    poor = SeedanceHook("seedance_poor")
    for _ in range(1000 // 84):
        poor.submit("p", resolution="720p", duration="12", generate_audio=True)
    with pytest.raises(SeedanceInsufficientCreditsError) as credits:
        poor.submit("p", resolution="720p", duration="12", generate_audio=True)
    assert credits.value.status_code == 402


def test_tasks_are_scoped_per_key(emulator, monkeypatch) -> None:
    task_id = fast_hook().submit("mine")
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_OTHER", connection_json(emulator.base_url, api_key=OTHER_KEY))
    with pytest.raises(SeedanceTaskNotFoundError):
        SeedanceHook("seedance_other").get_status(task_id)


def test_wait_for_completion_times_out_with_the_task_id(emulator) -> None:
    hook = fast_hook()
    task_id = hook.submit("p")
    with pytest.raises(SeedanceTimeoutError) as info:
        hook.wait_for_completion(task_id, poll_interval=0.1, timeout=0.3)
    assert info.value.task_id == task_id and task_id in str(info.value)


def test_failed_generation_is_returned_not_raised_by_the_hook(emulator) -> None:
    emulator.add_faults({"endpoint": "outcome", "fault": "failed", "times": 1, "error_message": "moderation"})
    hook = fast_hook()
    task = hook.wait_for_completion(hook.submit("p"), poll_interval=0.2, timeout=30)
    assert task.is_failed and task.error_message == "moderation"
    account = emulator.ledger()["accounts"][API_KEY]
    assert account["charged"] == 28 and account["refunded"] == 28


def test_async_status_reuses_one_session(emulator) -> None:
    hook = fast_hook()
    task_id = hook.submit("p")

    async def poll() -> list[str]:
        statuses = []
        async with hook:
            session = hook._aio_session
            for _ in range(3):
                statuses.append((await hook.aget_status(task_id)).status)
                assert hook._aio_session is session
        assert hook._aio_session is None
        return statuses

    statuses = asyncio.run(poll())
    assert set(statuses) <= {"IN_PROGRESS", "SUCCESS"}


def test_hooks_on_one_event_loop_share_one_session(emulator) -> None:
    """Thousands of triggers in one triggerer share one connection pool per connection."""
    task_id = fast_hook().submit("p")
    hooks = [fast_hook() for _ in range(5)]

    async def poll_all() -> tuple[set[int], int]:
        for hook in hooks:
            await hook.__aenter__()
        sessions = {id(hook._aio_session) for hook in hooks}
        await asyncio.gather(*(hook.aget_status(task_id) for hook in hooks))
        for hook in hooks:
            await hook.__aexit__(None, None, None)
        return sessions, sum(1 for hook in hooks if hook._aio_session is not None)

    sessions, still_open = asyncio.run(poll_all())
    assert len(sessions) == 1 and still_open == 0


def test_async_status_retries_transient_failures(emulator) -> None:
    hook = fast_hook()
    task_id = hook.submit("p")
    emulator.add_faults(
        {"endpoint": "status", "fault": "http_500", "times": 1},
        {"endpoint": "status", "fault": "drop", "times": 1},
    )
    task = asyncio.run(hook.aget_status(task_id))
    assert task.task_id == task_id


def test_connection_test_is_credit_free(emulator, monkeypatch) -> None:
    ok, message = SeedanceHook().test_connection()
    assert ok and "API key accepted" in message
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_BAD", connection_json(emulator.base_url, api_key="sk-wrong"))
    ok, message = SeedanceHook("seedance_bad").test_connection()
    assert not ok and "INVALID_API_KEY" in message
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEAD", connection_json("http://127.0.0.1:9"))
    ok, message = SeedanceHook("seedance_dead").test_connection()
    assert not ok and "no answer" in message
    assert emulator.ledger()["generate_requests"] == 0


@pytest.mark.parametrize(
    ("conn", "message"),
    [
        ({"conn_type": "seedance", "host": "http://127.0.0.1:1"}, "has no API key"),
        ({"conn_type": "seedance", "host": "seedanceapi.org", "password": "k"}, "has no scheme"),
        ({"conn_type": "seedance", "host": "ftp://x", "password": "k"}, "not an http"),
        (
            {"conn_type": "seedance", "host": "https://x", "password": "k", "extra": {"timeout": "soon"}},
            "timeout",
        ),
    ],
)
def test_unusable_connection_is_a_clear_error(monkeypatch, conn: dict, message: str) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_ODD", json.dumps(conn))
    with pytest.raises(SeedanceConfigurationError, match=message):
        SeedanceHook("seedance_odd").submit("p")


def test_base_url_written_like_the_guide_with_v1_works(emulator, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_V1", connection_json(emulator.base_url + "/v1"))
    assert SeedanceHook("seedance_v1").submit("p")


def test_api_key_is_in_no_error_or_repr(emulator, monkeypatch) -> None:
    hook = fast_hook()
    assert API_KEY not in repr(hook.settings)
    emulator.add_faults({"endpoint": "generate", "fault": "http_500", "times": 1})
    with pytest.raises(Exception) as info:
        hook.submit("p")
    assert API_KEY not in str(info.value) and API_KEY not in repr(info.value)
