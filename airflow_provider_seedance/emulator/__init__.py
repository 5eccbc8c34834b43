"""A local emulator of the Seedance 2.0 API server, for development and tests.

``create_app`` builds the aiohttp application; ``EmulatorProcess`` runs it as a subprocess.
Both are imported lazily so that ``EmulatorProcess`` (stdlib only) does not pull in aiohttp
and the command line starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_seedance.emulator.server import create_app
    from airflow_provider_seedance.emulator.testing import EmulatorProcess

__all__ = ["EmulatorProcess", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from airflow_provider_seedance.emulator.server import create_app

        return create_app
    if name == "EmulatorProcess":
        from airflow_provider_seedance.emulator.testing import EmulatorProcess

        return EmulatorProcess
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
