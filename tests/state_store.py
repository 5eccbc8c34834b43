"""A stand-in for Airflow 3.3's task state store, as far as the re-attach record uses it.

One store is one task instance's: it survives between tries (calls to ``execute``) and keeps
what each write left. A "kill" is :class:`Killed`, a ``BaseException`` thrown from the N-th
write, as a SIGKILL stops a worker between two instructions. Used by the unit, integration and
reliability tests alike, so all of them test the record against the same store.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

from airflow_provider_seedance.reattach import RECORD_KEY, part_key


class Killed(BaseException):
    """Stands for the worker dying (not an ``Exception``: nothing may catch it)."""


class Store:
    """A task state store that survives between tries; ``entries()`` is what a crash would leave."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.lock = threading.Lock()
        #: How many writes were made; with ``kill_at_write`` set, the write of that number
        #: (and every later one) raises :class:`Killed` instead of storing.
        self.writes = 0
        self.kill_at_write: int | None = None
        #: The record as each write left it, in order.
        self.snapshots: list[dict[str, Any]] = []

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        with self.lock:
            self.writes += 1
            if self.kill_at_write is not None and self.writes >= self.kill_at_write:
                raise Killed(f"killed at write {self.writes}")
            self.data[key] = copy.deepcopy(value)
            self.snapshots.append(copy.deepcopy(value))

    def entries(self) -> dict[str, Any]:
        """The record as written to the store (not as the operator holds it in memory): every
        part of it, read as the record reads them (parts 0, 1, ... up to the first missing)."""
        with self.lock:
            merged: dict[str, Any] = {}
            part = 0
            while (value := self.data.get(part_key(RECORD_KEY, part))) is not None:
                merged.update(copy.deepcopy(value))
                part += 1
            return merged

    def states(self) -> list[str]:
        """The states of the record's entries, sorted."""
        return sorted(entry["state"] for entry in self.entries().values())

    def states_after_each_write(self) -> list[list[str]]:
        with self.lock:
            return [sorted(entry["state"] for entry in record.values()) for record in self.snapshots]
