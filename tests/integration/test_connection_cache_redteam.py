"""Red team (s4-review): a 401 storm re-resolves the connection once, not once per refused read."""

from __future__ import annotations

import asyncio

import pytest

from airflow_provider_seedance.exceptions import SeedanceAuthError
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


def test_refused_reads_spread_in_time_share_one_lookup_of_a_revoked_key(
    emulator,
    lookups,  # noqa: F811
    monkeypatch,
) -> None:
    """Each refused read arriving after the last fresh lookup had ended looked the connection up
    again (the fresh settings equal the refused ones): one lookup per read of a revoked key, and a
    flaky count under load. Reads one after the other, each hook twice."""
    task_id = SeedanceHook().submit("A koi pond", resolution="480p", duration=4)
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEFAULT", connection_json(emulator.base_url, REVOKED))

    async def scenario() -> list[object]:
        hooks = [SeedanceHook() for _ in range(20)]
        for hook in hooks:
            await hook.__aenter__()
        outcomes: list[object] = []
        try:
            for hook in hooks + hooks:
                outcomes += await asyncio.gather(hook.aget_status(task_id), return_exceptions=True)
        finally:
            for hook in hooks:
                await hook.__aexit__(None, None, None)
        return outcomes

    outcomes = asyncio.run(scenario())
    assert len(outcomes) == 40 and all(isinstance(r, SeedanceAuthError) for r in outcomes), outcomes
    assert len(lookups) == 2, f"{len(lookups)} connection lookups for one revoked key read 40 times"
