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
