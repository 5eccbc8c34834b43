"""The single operator's automatic ``callback_url``: only when the connection turns callbacks on,
bound to the task instance try, never part of the request's fingerprint (so a retry re-attaches
instead of paying again), and with the slow fallback poll unless the user chose an interval."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from airflow.exceptions import TaskDeferred

from airflow_provider_seedance.callbacks import CALLBACK_PATH, CallbackSettings, verify
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator
from tests.unit.fakes import FakeHook, Store, context, use

SECRET = "cb-secret-0123456789abcdefghijklmnopqrstuv"
BASE = "https://airflow.example.com"
PROMPT = "a red fox in snow"


def with_callbacks(hook: FakeHook) -> FakeHook:
    hook.settings = SimpleNamespace(base_url=hook.settings.base_url, callbacks=CallbackSettings(SECRET, BASE))
    return hook


def try_context(store: Store, try_number: int = 1) -> dict[str, Any]:
    ctx = context(store)
    ti = ctx["ti"]
    ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number = (
        "videos",
        "run-1",
        "generate",
        3,
        try_number,
    )
    return ctx


def single(hook: FakeHook, **kwargs: Any) -> SeedanceGenerateOperator:
    kwargs.setdefault("prompt", PROMPT)
    kwargs.setdefault("resolution", "480p")
    kwargs.setdefault("duration", "4")
    kwargs.setdefault("deferrable", True)
    return use(SeedanceGenerateOperator(task_id="generate", **kwargs), hook)


def defer(operator: SeedanceGenerateOperator, ctx: dict[str, Any]) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as info:
        operator.execute(ctx)
    return info.value


def test_with_callbacks_on_the_post_carries_a_callback_url_bound_to_this_try() -> None:
    hook = with_callbacks(FakeHook(statuses={"gen-1": ["IN_PROGRESS"]}))
    defer(single(hook, timeout=600), try_context(Store(), try_number=2))

    [url] = hook.callback_urls
    assert url is not None and url.startswith(BASE + CALLBACK_PATH)
    identity = verify(SECRET, url[len(BASE + CALLBACK_PATH) :], now=0)
    assert (identity.conn_id, identity.dag_id, identity.run_id, identity.task_id) == (
        "seedance_default",
        "videos",
        "run-1",
        "generate",
    )
    assert (identity.map_index, identity.try_number) == (3, 2)


def test_without_callback_extras_nothing_is_added_and_the_poll_interval_stays_10s() -> None:
    hook = FakeHook(statuses={"gen-1": ["IN_PROGRESS"]})
    deferral = defer(single(hook), try_context(Store()))
    assert hook.callback_urls == [None]
    assert deferral.trigger.poll_interval == 10.0


def test_a_user_given_callback_url_wins_over_the_automatic_one() -> None:
    hook = with_callbacks(FakeHook(statuses={"gen-1": ["IN_PROGRESS"]}))
    deferral = defer(single(hook, callback_url="https://hooks.example.org/mine"), try_context(Store()))
    assert hook.callback_urls == [None]
    assert hook.posts[0].callback_url == "https://hooks.example.org/mine"
    assert deferral.trigger.poll_interval == 10.0  # nobody resumes this task: keep polling


def test_a_blocking_wait_gets_no_callback_url() -> None:
    hook = with_callbacks(FakeHook(statuses={"gen-1": ["IN_PROGRESS", "SUCCESS"]}))
    single(hook, deferrable=False, poll_interval=0.001).execute(try_context(Store()))
    assert hook.callback_urls == [None]


def test_with_callbacks_the_trigger_falls_back_to_a_slow_poll_unless_the_user_chose_one() -> None:
    hook = with_callbacks(FakeHook(statuses={"gen-1": ["IN_PROGRESS"]}))
    assert defer(single(hook), try_context(Store())).trigger.poll_interval == 300.0

    hook = with_callbacks(FakeHook(statuses={"gen-1": ["IN_PROGRESS"]}))
    assert (
        defer(single(hook, callback_poll_interval=120), try_context(Store())).trigger.poll_interval == 120.0
    )

    hook = with_callbacks(FakeHook(statuses={"gen-1": ["IN_PROGRESS"]}))
    assert defer(single(hook, poll_interval=15), try_context(Store())).trigger.poll_interval == 15.0


def test_a_retry_with_callbacks_on_reattaches_instead_of_paying_again() -> None:
    store = Store()
    hook = with_callbacks(FakeHook(statuses={"gen-1": ["IN_PROGRESS"]}))
    defer(single(hook), try_context(store, try_number=1))
    # The first try dies while deferred; the second try builds a new token (a new nonce and try).
    deferral = defer(single(hook), try_context(store, try_number=2))

    assert len(hook.posts) == 1, "the retry paid for a second generation"
    assert deferral.trigger.seedance_task_id == "gen-1"


def test_the_request_recorded_in_the_result_never_carries_the_token() -> None:
    hook = with_callbacks(FakeHook(statuses={"gen-1": ["IN_PROGRESS"]}))
    result = single(hook, wait_for_completion=False, deferrable=True).execute(try_context(Store()))
    assert hook.callback_urls == [None]  # fire-and-forget: nothing would resume a task
    assert "callback_url" not in result["request"]


def test_a_fire_and_forget_token_names_its_completion_asset_and_a_waiting_token_names_none() -> None:
    def identity_sent(hook: FakeHook) -> Any:
        [url] = hook.callback_urls
        assert url is not None
        return verify(SECRET, url[len(BASE + CALLBACK_PATH) :], now=0)

    hook = with_callbacks(FakeHook(statuses={"gen-1": ["IN_PROGRESS"]}))
    single(hook, wait_for_completion=False, completion_asset="s3://videos/catalog").execute(
        try_context(Store())
    )
    assert identity_sent(hook).asset == ("s3://videos/catalog", "s3://videos/catalog")

    hook = with_callbacks(FakeHook(statuses={"gen-1": ["IN_PROGRESS"]}))
    defer(single(hook), try_context(Store()))
    assert identity_sent(hook).asset is None


def test_the_token_lives_as_long_as_the_wait_may_plus_an_hour_else_a_week(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_provider_seedance.callbacks import TokenExpiredError

    monkeypatch.setattr("time.time", lambda: 1_000_000.0)

    def token(**kwargs: Any) -> str:
        hook = with_callbacks(FakeHook(statuses={"gen-1": ["IN_PROGRESS"]}))
        defer(single(hook, **kwargs), try_context(Store()))
        [url] = hook.callback_urls
        assert url is not None
        return url[len(BASE + CALLBACK_PATH) :]

    bounded = token(timeout=600)
    verify(SECRET, bounded, now=1_000_000.0 + 600 + 3600 - 1)
    with pytest.raises(TokenExpiredError):
        verify(SECRET, bounded, now=1_000_000.0 + 600 + 3600 + 1)

    unbounded = token()
    verify(SECRET, unbounded, now=1_000_000.0 + 7 * 24 * 3600 - 1)
    with pytest.raises(TokenExpiredError):
        verify(SECRET, unbounded, now=1_000_000.0 + 7 * 24 * 3600 + 1)


def test_a_resubmission_after_a_failed_generation_carries_a_callback_url_for_the_resumed_try() -> None:
    store = Store()
    hook = with_callbacks(FakeHook(statuses={"gen-1": ["IN_PROGRESS"], "gen-2": ["IN_PROGRESS"]}))
    operator = single(hook, resubmit_on_failure=1)
    defer(operator, try_context(store))
    failed = {"status": "failed", "task": {"task_id": "gen-1", "status": "FAILED"}, "message": ""}

    with pytest.raises(TaskDeferred):
        operator.execute_complete(try_context(store, try_number=1), failed, seedance_task_id="gen-1")

    assert len(hook.posts) == 2
    first, second = hook.callback_urls
    assert first is not None and second is not None and second != first
    identity = verify(SECRET, second[len(BASE + CALLBACK_PATH) :], now=0)
    assert (identity.task_id, identity.map_index, identity.try_number) == ("generate", 3, 1)
