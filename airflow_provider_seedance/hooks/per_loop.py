"""State kept per running event loop: the one mechanism behind the hook's shared sessions,
resolved connection settings and status-read rate caps.

A triggerer runs thousands of triggers on one event loop, so what they share (a connection
pool, a resolved connection, a rate cap) is shared per loop. Objects bound to a loop (aiohttp
sessions, futures, timers) must never be used from another one, and a process may run several
loops one after the other (``dag.test()``, tests, benchmarks): each loop gets its own dict, and
the dict goes when its loop is garbage-collected.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class PerLoop(Generic[K, V]):
    """A dict per event loop; :meth:`here` is the running loop's."""

    def __init__(self) -> None:
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[K, V]] = (
            weakref.WeakKeyDictionary()
        )

    def here(self) -> dict[K, V]:
        """The running loop's dict, created on first use (call only inside a running loop)."""
        return self._by_loop.setdefault(asyncio.get_running_loop(), {})
