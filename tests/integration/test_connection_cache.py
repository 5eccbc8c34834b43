"""Triggers resolve their connection once per event loop and TTL, and a rotated key still
takes effect at the next read (hooks/seedance.py ``_SettingsCache``), against the emulator."""

from __future__ import annotations

import asyncio

import pytest

from airflow_provider_seedance.exceptions import SeedanceAuthError
from airflow_provider_seedance.hooks import seedance as hook_module
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from tests.conftest import API_KEY, connection_json

pytestmark = pytest.mark.integration

REVOKED = "sk-revoked-key-000000000"


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each connection lookup a hook makes through Airflow."""
    seen: list[str] = []
    real = SeedanceHook._aresolve_settings

    async def counting(self: SeedanceHook):  # type: ignore[no-untyped-def]
        seen.append(self.seedance_conn_id)
        return await real(self)

    monkeypatch.setattr(SeedanceHook, "_aresolve_settings", counting)
    return seen


def test_a_thousand_triggers_starting_together_resolve_the_connection_once(emulator, lookups) -> None:
    task_id = SeedanceHook().submit("A koi pond", resolution="480p", duration=4)

    async def scenario() -> None:
        async def one() -> str:
            async with SeedanceHook() as hook:
                return (await hook.aget_status(task_id)).task_id

        assert set(await asyncio.gather(*(one() for _ in range(1000)))) == {task_id}
        async with SeedanceHook() as hook:  # later, within the TTL: still cached
            await hook.aget_status(task_id)

    asyncio.run(scenario())
    assert lookups == ["seedance_default"]


def test_after_the_ttl_the_connection_is_resolved_again(emulator, lookups, monkeypatch) -> None:
    monkeypatch.setattr(hook_module, "SETTINGS_TTL_SECONDS", 0.0)
    task_id = SeedanceHook().submit("A koi pond", resolution="480p", duration=4)

    async def scenario() -> None:
        for _ in range(3):
            async with SeedanceHook() as hook:
                await hook.aget_status(task_id)

    asyncio.run(scenario())
    assert lookups == ["seedance_default"] * 3


def test_a_key_rotated_while_a_trigger_waits_takes_effect_at_the_next_read(emulator, monkeypatch) -> None:
    task_id = SeedanceHook().submit("A koi pond", resolution="480p", duration=4)
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEFAULT", connection_json(emulator.base_url, REVOKED))

    async def scenario() -> str:
        async with SeedanceHook() as hook:  # resolved (and cached) with the old key
            monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEFAULT", connection_json(emulator.base_url, API_KEY))
            before = emulator.ledger()["status_requests"]
            task = await hook.aget_status(task_id)
            assert emulator.ledger()["status_requests"] - before == 2  # refused, then sent again
            async with SeedanceHook() as other:  # a new trigger gets the new key from the cache
                await other.aget_status(task_id)
            return task.task_id

    assert asyncio.run(scenario()) == task_id


def test_a_refused_key_that_was_not_rotated_fails_once_without_a_loop(emulator, monkeypatch) -> None:
    task_id = SeedanceHook().submit("A koi pond", resolution="480p", duration=4)
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEFAULT", connection_json(emulator.base_url, REVOKED))
    before = emulator.ledger()["status_requests"]

    async def scenario() -> None:
        async with SeedanceHook() as hook:
            await hook.aget_status(task_id)

    with pytest.raises(SeedanceAuthError):
        asyncio.run(scenario())
    assert emulator.ledger()["status_requests"] - before == 1


def test_a_failed_lookup_is_not_cached(emulator, monkeypatch) -> None:
    task_id = SeedanceHook().submit("A koi pond", resolution="480p", duration=4)
    good = connection_json(emulator.base_url)

    async def scenario() -> None:
        monkeypatch.delenv("AIRFLOW_CONN_SEEDANCE_DEFAULT")
        with pytest.raises(Exception, match="seedance_default"):
            async with SeedanceHook():
                pass
        monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEFAULT", good)  # defined now: found at once
        async with SeedanceHook() as hook:
            await hook.aget_status(task_id)

    asyncio.run(scenario())
