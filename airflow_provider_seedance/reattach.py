"""Durable memory of what a task instance submitted, so a retry re-attaches instead of paying again.

A record is kept per task instance (dag_id, run_id, task_id, map_index) and holds, per
request fingerprint, the state of the submission:

* ``submitting`` — written just *before* ``POST /v1/generate``. Found by a later try, it
  means an earlier try died mid-request: a generation may exist whose id nobody knows, so
  the provider refuses to pay again without an explicit ``force_new=True``.
* ``submitted`` with the Seedance ``task_id`` — written right after the POST returns.
  A later try reads it and re-attaches (IN_PROGRESS: wait; SUCCESS: use; FAILED or
  TASK_NOT_FOUND: submit anew).

Where the record lives:

* Airflow 3.3+: the task state store (``context["task_state_store"]``), Airflow's own
  per-task-instance durable state. It survives retries and clears.
* Airflow 3.1-3.2: an Airflow Variable named ``seedance_attach__<dag>__<run>__<task>__<map>``
  (Variables are the durable key-value store a worker may write there).

The fingerprint is part of the record, so a changed prompt never re-attaches to an old video.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

import tenacity

from airflow_provider_seedance.exceptions import SeedanceError

RECORD_KEY = "seedance_generation"
#: How long a write of the record is retried while Airflow's API server or database is away
#: (a restart, a failover): once a POST has paid, losing its task id means a human must decide.
SAVE_RETRY_SECONDS = 180.0
SUBMITTING = "submitting"
SUBMITTED = "submitted"
#: The API refused the request (e.g. 400): nothing exists, nothing to wait for.
REJECTED = "rejected"


@dataclass(frozen=True)
class Submission:
    """One remembered submission."""

    fingerprint: str
    state: str
    seedance_task_id: str | None = None
    submitted_at: float | None = None
    #: Every Seedance task id submitted for this request, oldest first.
    history: tuple[str, ...] = ()
    #: Why the API refused it (state ``rejected``).
    error: str | None = None
    #: The generation's terminal status once seen (JSON primitives), so a resumed task
    #: need not ask again.
    outcome: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "state": self.state,
            "seedance_task_id": self.seedance_task_id,
            "submitted_at": self.submitted_at,
            "history": list(self.history),
            "error": self.error,
            "outcome": self.outcome,
        }

    @classmethod
    def from_json(cls, value: Any) -> Submission | None:
        if not isinstance(value, Mapping) or not isinstance(value.get("fingerprint"), str):
            return None
        state = value.get("state")
        if state not in (SUBMITTING, SUBMITTED, REJECTED):
            return None
        task_id = value.get("seedance_task_id")
        history = value.get("history")
        return cls(
            fingerprint=value["fingerprint"],
            state=state,
            seedance_task_id=task_id if isinstance(task_id, str) and task_id else None,
            submitted_at=value.get("submitted_at"),
            history=tuple(h for h in history if isinstance(h, str)) if isinstance(history, list) else (),
            error=value.get("error") if isinstance(value.get("error"), str) else None,
            outcome=dict(value["outcome"]) if isinstance(value.get("outcome"), Mapping) else None,
        )


class _Backend(Protocol):
    def load(self) -> dict[str, Any]: ...

    def save(self, value: dict[str, Any]) -> None: ...


class _TaskStateStoreBackend:
    """Airflow 3.3+: ``context["task_state_store"]``."""

    def __init__(self, store: Any, key: str) -> None:
        self._store = store
        self._key = key

    def load(self) -> dict[str, Any]:
        value = self._store.get(self._key, None)
        return dict(value) if isinstance(value, Mapping) else {}

    def save(self, value: dict[str, Any]) -> None:
        self._store.set(self._key, value)


class _VariableBackend:
    """Airflow 3.1-3.2: an Airflow Variable per task instance."""

    def __init__(self, name: str) -> None:
        self._name = name

    def load(self) -> dict[str, Any]:
        from airflow.sdk import Variable

        # Only a missing variable means "nothing submitted yet"; any other failure to read it
        # propagates, because taking it for an empty record would pay for the POST again.
        raw = Variable.get(self._name, default=None)
        if not raw:
            return {}
        try:
            value = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            value = None
        if not isinstance(value, Mapping):
            raise SeedanceError(
                f"Airflow Variable {self._name!r} (this task's submission record) is not a JSON "
                "object; it was edited by hand? Fix or delete it, then clear the task."
            )
        return dict(value)

    def save(self, value: dict[str, Any]) -> None:
        from airflow.sdk import Variable

        Variable.set(
            self._name,
            json.dumps(value, sort_keys=True),
            description="airflow-provider-seedance: generations this task instance submitted (re-attach)",
        )


class SubmissionRecord:
    """The submissions of one task instance, keyed by request fingerprint.

    Entries are read once and written back after each change (or each batch of changes):
    only one try of a task instance runs at a time, so nobody else writes this record.
    """

    def __init__(
        self, backend: _Backend, *, where: str, save_retry_seconds: float = SAVE_RETRY_SECONDS
    ) -> None:
        self._backend = backend
        self._entries: dict[str, Any] | None = None
        #: Human description of the storage, for log lines.
        self.where = where
        self.save_retry_seconds = save_retry_seconds

    @classmethod
    def for_context(cls, context: Mapping[str, Any], *, key: str = RECORD_KEY) -> SubmissionRecord:
        store = context.get("task_state_store")
        if store is not None:
            return cls(_TaskStateStoreBackend(store, key), where="the task state store")
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        map_index = -1 if map_index is None else map_index
        name = f"seedance_attach__{ti.dag_id}__{ti.run_id}__{ti.task_id}__{map_index}"
        if key != RECORD_KEY:
            name += f"__{key}"
        return cls(_VariableBackend(name), where=f"Variable {name!r}")

    @property
    def entries(self) -> dict[str, Any]:
        if self._entries is None:
            self._entries = self._backend.load()
        return self._entries

    def _save(self) -> None:
        """Write the record, retrying while the store is unreachable (it is idempotent)."""
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_delay(self.save_retry_seconds),
            wait=tenacity.wait_exponential(multiplier=0.5, max=10.0),
            reraise=True,
        )
        retrying(self._backend.save, self.entries)

    def get(self, fingerprint: str) -> Submission | None:
        return Submission.from_json(self.entries.get(fingerprint))

    def history(self, fingerprint: str) -> tuple[str, ...]:
        previous = self.get(fingerprint)
        return previous.history if previous is not None else ()

    def _set(self, submission: Submission) -> None:
        self.entries[submission.fingerprint] = submission.to_json()

    def mark_submitting(self, *fingerprints: str) -> None:
        """Written just before the POSTs: a crash from here on must not lead to a second POST."""
        for fingerprint in fingerprints:
            self._set(
                Submission(
                    fingerprint, SUBMITTING, submitted_at=time.time(), history=self.history(fingerprint)
                )
            )
        self._save()

    def mark_submitted(self, *pairs: tuple[str, str]) -> None:
        """``(fingerprint, seedance_task_id)`` pairs whose POST returned a task id."""
        for fingerprint, seedance_task_id in pairs:
            history = (*self.history(fingerprint), seedance_task_id)
            self._set(Submission(fingerprint, SUBMITTED, seedance_task_id, time.time(), history))
        self._save()

    def mark_finished(self, *pairs: tuple[str, dict[str, Any]]) -> None:
        """``(fingerprint, terminal task dict)`` pairs: remember how generations ended."""
        for fingerprint, outcome in pairs:
            previous = self.get(fingerprint)
            if previous is not None and previous.seedance_task_id == outcome.get("task_id"):
                self._set(replace(previous, outcome=dict(outcome)))
        if pairs:
            self._save()

    def mark_rejected(self, fingerprint: str, error: str) -> None:
        """The API refused the POST (nothing was created); remember why."""
        previous = self.get(fingerprint)
        history = previous.history if previous is not None else ()
        self._set(
            Submission(fingerprint, REJECTED, history[-1] if history else None, time.time(), history, error)
        )
        self._save()

    def forget_attempt(self, fingerprint: str) -> None:
        """The API refused the POST or was never reached: drop the "submitting" mark."""
        previous = self.get(fingerprint)
        if previous is None:
            return
        if previous.history:
            self._set(
                Submission(
                    fingerprint, SUBMITTED, previous.history[-1], previous.submitted_at, previous.history
                )
            )
        else:
            self.entries.pop(fingerprint, None)
        self._save()
