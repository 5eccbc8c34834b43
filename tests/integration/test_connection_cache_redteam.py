"""Red team (s4-review): a 401 storm re-resolves the connection once, not once per refused read."""

from __future__ import annotations

import asyncio

import pytest

from airflow_provider_seedance.exceptions import SeedanceAuthError
from airflow_provider_seedance.hooks import seedance as hook_module
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from tests.conftest import API_KEY, connection_json
from tests.integration.test_connection_cache import REVOKED, lookups  # noqa: F401

pytestmark = pytest.mark.integration


def test_a_rotated_key_seen_by_many_waiting_triggers_is_resolved_once(emulator, lookups, monkeypatch) -> None:  # noqa: F811
    task_id = SeedanceHook().submit("A koi pond", resolution="480p", duration=4)
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEFAULT", connection_json(emulator.base_url, REVOKED))

    async def scenario() -> set[str]:
        hooks = [SeedanceHook() for _ in range(50)]
        for hook in hooks:
            await hook.__aenter__()  # 50 triggers waiting, resolved (cached) with the old key
        monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEFAULT", connection_json(emulator.base_url, API_KEY))
        try:
            done = await asyncio.gather(*(h.aget_status(task_id) for h in hooks))
        finally:
            for hook in hooks:
                await hook.__aexit__(None, None, None)
        return {t.task_id for t in done}

    assert asyncio.run(scenario()) == {task_id}
    assert len(lookups) == 2, f"{len(lookups)} connection lookups for one rotation"


def test_a_revoked_key_polled_by_many_triggers_does_not_look_the_connection_up_per_read(
    emulator,
    lookups,  # noqa: F811
    monkeypatch,
) -> None:
    task_id = SeedanceHook().submit("A koi pond", resolution="480p", duration=4)
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEFAULT", connection_json(emulator.base_url, REVOKED))

    async def scenario() -> list[object]:
        hooks = [SeedanceHook() for _ in range(50)]
        for hook in hooks:
            await hook.__aenter__()
        try:
            return await asyncio.gather(*(h.aget_status(task_id) for h in hooks), return_exceptions=True)
        finally:
            for hook in hooks:
                await hook.__aexit__(None, None, None)

    results = asyncio.run(scenario())
    assert all(isinstance(r, SeedanceAuthError) for r in results)
    assert len(lookups) < 10, f"{len(lookups)} connection lookups for one revoked key (50 triggers)"


def test_a_rotated_key_takes_effect_for_a_trigger_that_started_before_the_cache_was_refreshed(
    emulator,
    lookups,  # noqa: F811
    monkeypatch,
) -> None:
    """Trigger A resolved the connection (a key the server has since revoked); its cache entry
    expired and trigger B's start looked the connection up again (equal settings, another object);
    then the connection got the new key. A's refused read must look the connection up afresh and go
    on with the new key: B's lookup predates the rotation. (Evicting only the very settings object a
    read used left A refused, its task failed, until the entry expired.)"""
    monkeypatch.setattr(hook_module, "SETTINGS_TTL_SECONDS", 0.2)
    task_id = SeedanceHook().submit("A koi pond", resolution="480p", duration=4)
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEFAULT", connection_json(emulator.base_url, REVOKED))

    async def scenario() -> str:
        a = SeedanceHook()
        await a.__aenter__()  # lookup 1: the old key
        try:
            await asyncio.sleep(0.3)  # A's entry expires
            async with SeedanceHook():  # lookup 2, B's start: the old key again
                rotated = connection_json(emulator.base_url, API_KEY)
                monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEFAULT", rotated)
                return (await a.aget_status(task_id)).task_id  # refused, lookup 3, sent again
        finally:
            await a.__aexit__(None, None, None)

    assert asyncio.run(scenario()) == task_id
    assert len(lookups) == 3, lookups


def test_reads_refused_together_share_one_lookup_however_their_answers_are_spread(
    emulator,
    lookups,  # noqa: F811
    monkeypatch,
) -> None:
    """Reads sent together with a revoked key whose refusals arrive one by one, the later ones after
    the fresh lookup has ended (under load, the red-team count above once reached 11): that lookup
    started after they were sent, so it answers all of them."""
    task_id = SeedanceHook().submit("A koi pond", resolution="480p", duration=4)
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEFAULT", connection_json(emulator.base_url, REVOKED))
    real_send = SeedanceHook._asend_status
    delays = iter([0.0] + [0.05 * i for i in range(1, 20)])

    async def staggered(self: SeedanceHook, task_id: str) -> object:
        delay = next(delays, 0.0)  # taken when the read is sent
        try:
            return await real_send(self, task_id)
        finally:
            await asyncio.sleep(delay)  # its answer arrives this much later

    monkeypatch.setattr(SeedanceHook, "_asend_status", staggered)

    async def scenario() -> list[object]:
        hooks = [SeedanceHook() for _ in range(20)]
        for hook in hooks:
            await hook.__aenter__()
        try:
            return await asyncio.gather(*(h.aget_status(task_id) for h in hooks), return_exceptions=True)
        finally:
            for hook in hooks:
                await hook.__aexit__(None, None, None)

    outcomes = asyncio.run(scenario())
    assert all(isinstance(r, SeedanceAuthError) for r in outcomes), outcomes
    assert len(lookups) == 2, f"{len(lookups)} connection lookups for 20 reads refused together"
