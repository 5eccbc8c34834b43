"""Durable memory of what a task instance submitted, so a retry re-attaches instead of paying again.

A record is kept per task instance (dag_id, run_id, task_id, map_index) and holds, per
request fingerprint, the state of the submission:

* ``submitting`` — written just *before* ``POST /v1/generate``. Found by a later try, it
  means an earlier try died mid-request (or its answer was lost): a generation may exist
  whose id nobody knows, so the provider refuses to pay again. ``force_new=True`` releases
  exactly such an *uncertain* mark, and nothing else: the release is recorded, and the new
  submission is itself marked and recorded like any other.
* ``submitted`` with the Seedance ``task_id`` — written right after the POST returns.
  A later try reads it and re-attaches (IN_PROGRESS: wait; SUCCESS: use; FAILED or
  TASK_NOT_FOUND: submit anew), whatever ``force_new`` says: a recorded id is never paid twice.

Where the record lives:

* Airflow 3.3+: the task state store (``context["task_state_store"]``), Airflow's own
  per-task-instance durable state. It survives retries and clears; its keys never expire. A
  record a try wrote on Airflow 3.1-3.2 (below) is still read after an upgrade. With
  ``[state_store] clear_on_success`` on (Airflow would delete the record when the task
  succeeds), the record is kept in the Variable below instead.
* Airflow 3.1-3.2: an Airflow Variable named ``seedance_attach__<hash of dag, run, task,
  map index>`` (Variables are the durable key-value store a worker may write there; the hash
  keeps names unique and short, the description names the task instance). Records written
  by the released code under ``seedance_attach__<dag>__<run>__<task>__<map>`` are still read
  where that name is unambiguous. A record is kept after success, so that a clear re-attaches
  instead of paying again; ``seedance-records prune --older-than-days N`` removes old ones.

The fingerprint is part of the record, so a changed prompt never re-attaches to an old video.

A POST answer that arrives after Airflow declared its try dead (missed heartbeats: a frozen
worker, a stalled API server) cannot be written to the task state store any more: the
Execution API refuses a try that is no longer the task instance's. That try hands the task id
over in an Airflow Variable instead (:class:`LateAnswers`), and the next try that loads the
record adopts it for the very mark it answers: it re-attaches instead of calling the
submission uncertain.

A big batch keeps its record in **parts** of at most ``shard_size`` entries (see
:class:`SubmissionRecord`): part 0 under the name above, part ``i`` under ``<key>.<i>``. Each
write stores only the parts that changed, so what one item costs to record does not grow with
the size of the batch.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

import tenacity

from airflow_provider_seedance._compat import StrEnum
from airflow_provider_seedance.exceptions import SeedanceError
from airflow_provider_seedance.task_identity import instance_identity

log = logging.getLogger(__name__)

RECORD_KEY = "seedance_generation"
#: Airflow's limit on a Variable's key length.
MAX_VARIABLE_KEY = 250
#: How long a write of the record is retried while Airflow's API server or database is away
#: (a restart, a failover): once a POST has paid, losing its task id means a human must decide.
SAVE_RETRY_SECONDS = 180.0
#: How long a read of the record is retried while the API server or the store answers errors (a
#: read that fails stops the try before any POST; retrying it spares the try).
READ_RETRY_SECONDS = 60.0
#: Entries per part of a batch's record: a part with every generation's outcome in it (about
#: 600 bytes an entry) stays under Airflow's 64 KB ``[state_store] max_value_storage_bytes``.
BATCH_SHARD_SIZE = 64


class SubmissionState(StrEnum):
    """Where one request's submission stands in the record."""

    #: Written just before the POST: a generation may exist whose id is unknown.
    SUBMITTING = "submitting"
    #: The POST returned this task id.
    SUBMITTED = "submitted"
    #: The API refused the request (e.g. 400): nothing exists, nothing to wait for.
    REJECTED = "rejected"


SUBMITTING = SubmissionState.SUBMITTING
SUBMITTED = SubmissionState.SUBMITTED
REJECTED = SubmissionState.REJECTED


@dataclass(frozen=True)
class Submission:
    """One remembered submission."""

    fingerprint: str
    state: SubmissionState
    seedance_task_id: str | None = None
    submitted_at: float | None = None
    #: Every Seedance task id submitted for this request, oldest first.
    history: tuple[str, ...] = ()
    #: Why it was not created (state ``rejected``).
    error: str | None = None
    #: A ``rejected`` entry that reached the service and was refused (a 4xx), as opposed to one
    #: that never left this machine. Records written before this field read as never sent.
    refused: bool = False
    #: The generation's terminal status once seen (JSON primitives), so a resumed task
    #: need not ask again.
    outcome: dict[str, Any] | None = None
    #: When uncertain marks of this request were released by ``force_new`` (epoch seconds).
    released: tuple[float, ...] = ()

    @property
    def uncertain(self) -> bool:
        return self.state is SubmissionState.SUBMITTING

    def to_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "state": self.state.value,
            "seedance_task_id": self.seedance_task_id,
            "submitted_at": self.submitted_at,
            "history": list(self.history),
            "error": self.error,
            "outcome": self.outcome,
            "released": list(self.released),
            "refused": self.refused,
        }

    @classmethod
    def from_json(cls, value: Any) -> Submission | None:
        if not isinstance(value, Mapping) or not isinstance(value.get("fingerprint"), str):
            return None
        try:
            state = SubmissionState(value.get("state"))
        except ValueError:
            return None
        task_id = value.get("seedance_task_id")
        history = value.get("history")
        released = value.get("released")
        return cls(
            fingerprint=value["fingerprint"],
            state=state,
            seedance_task_id=task_id if isinstance(task_id, str) and task_id else None,
            submitted_at=value.get("submitted_at"),
            history=tuple(h for h in history if isinstance(h, str)) if isinstance(history, list) else (),
            error=value.get("error") if isinstance(value.get("error"), str) else None,
            outcome=dict(value["outcome"]) if isinstance(value.get("outcome"), Mapping) else None,
            released=tuple(
                float(t) for t in released if isinstance(t, (int, float)) and not isinstance(t, bool)
            )
            if isinstance(released, list)
            else (),
            refused=value.get("refused") is True,
        )


def part_key(key: str, part: int) -> str:
    """The store key of part ``part`` of a record kept under ``key`` (part 0: ``key`` itself,
    so records written before parts existed are part 0)."""
    return key if part == 0 else f"{key}.{part}"


class _Backend(Protocol):
    def load(self, part: int = 0) -> dict[str, Any] | None:
        """The part's entries; ``None`` when the part was never written."""

    def save(self, value: dict[str, Any], part: int = 0) -> None: ...


def record_value(stored: Any, where: str) -> dict[str, Any]:
    """A stored part of a record (a JSON object, or its JSON text) as a dict.

    Anything else raises: taken for an empty record, it would pay again for every request in it.
    ``where`` names the place for the error (``"Airflow Variable 'x'"``).
    """
    value = stored
    if isinstance(stored, str):
        with contextlib.suppress(ValueError):
            value = json.loads(stored)
    if not isinstance(value, Mapping):
        raise SeedanceError(
            f"{where} (this task's submission record) is not a JSON object; it was edited by hand? "
            "Fix or delete it, then clear the task."
        )
    return dict(value)


class _TaskStateStoreBackend:
    """Airflow 3.3+: ``context["task_state_store"]``.

    Every key is written to never expire (``NEVER_EXPIRE``): a record that
    ``[state_store] default_retention_days`` removed would let a clear of an old run pay again.
    It goes when Airflow deletes its task instance (``airflow db clean``).
    """

    def __init__(self, store: Any, key: str) -> None:
        self._store = store
        self._key = key
        forever = _never_expire()
        takes_retention = forever is not None and _accepts(store.set, "retention")
        self._set_options: dict[str, Any] = {"retention": forever} if takes_retention else {}

    def load(self, part: int = 0) -> dict[str, Any] | None:
        key = part_key(self._key, part)
        value = self._store.get(key, None)
        return None if value is None else record_value(value, f"The task state store key {key!r}")

    def save(self, value: dict[str, Any], part: int = 0) -> None:
        self._store.set(part_key(self._key, part), value, **self._set_options)


class _WithEarlier:
    """A record kept in ``primary``, which still reads what ``earlier`` holds of it.

    A record whose first part ``primary`` has never held is read from ``earlier`` (where the same
    task instance's record was kept before: Airflow 3.1-3.2's Variable before an upgrade to 3.3,
    or the task state store before ``clear_on_success`` was turned on) and moved to ``primary``
    whole as it is read: ``earlier`` may be wiped (the store on success) or left behind, and a
    record must not depend on it once it was read. The parts are copied last to first, so a
    first part in ``primary`` means every part is there: from then on ``earlier`` is never read
    (a try resumed from deferral, or a batch looking for its next part, does not depend on the
    old place being readable). Writes go to ``primary`` only.
    """

    def __init__(self, primary: _Backend, earlier: _Backend) -> None:
        self._primary = primary
        self._earlier = earlier

    def load(self, part: int = 0) -> dict[str, Any] | None:
        found = self._primary.load(part)
        if found is not None or part != 0:
            return found
        earlier: list[dict[str, Any]] = []
        while (value := self._earlier.load(len(earlier))) is not None:
            earlier.append(value)
        for index in reversed(range(len(earlier))):
            self._primary.save(earlier[index], index)
        return earlier[0] if earlier else None

    def save(self, value: dict[str, Any], part: int = 0) -> None:
        self._primary.save(value, part)


def _never_expire() -> Any | None:
    """Airflow's ``NEVER_EXPIRE`` retention (3.3+), ``None`` where there is none."""
    try:
        from airflow.sdk.execution_time.context import NEVER_EXPIRE
    except ImportError:
        return None
    return NEVER_EXPIRE


def _accepts(function: Callable[..., Any], name: str) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def _store_clears_on_success() -> bool:
    """Whether Airflow deletes a task instance's task state store keys when it succeeds
    (``[state_store] clear_on_success``, 3.3+): a record kept there would be gone for a clear."""
    try:
        from airflow.sdk.configuration import conf
    except ImportError:  # task SDK before 3.3
        from airflow.configuration import conf
    try:
        return conf.getboolean("state_store", "clear_on_success", fallback=False)
    except Exception:  # unreadable setting: the store's default (nothing is cleared)
        return False


class _VariableBackend:
    """Airflow 3.1-3.2: an Airflow Variable per task instance."""

    def __init__(
        self,
        name: str,
        *,
        legacy_name: str | None = None,
        description: str = "",
        part_name: Callable[[int], str] | None = None,
        read_retry_seconds: float | None = None,
    ) -> None:
        self._name = name
        self._legacy_name = legacy_name
        self._description = description
        self._part_name = part_name
        self._read_retry_seconds = read_retry_seconds

    def _name_of(self, part: int) -> str:
        if part == 0:
            return self._name
        if self._part_name is None:
            raise ValueError("this record is kept in one Variable (no parts)")
        return self._part_name(part)

    def _read(self, name: str) -> dict[str, Any] | None:
        # Only a missing variable means "nothing submitted yet"; any other failure to read it
        # propagates, because taking it for an empty record would pay for the POST again.
        # An emptied Variable is not a missing one: taken for "never written", the parts after it
        # would not be read and every request in them would be paid again.
        raw = read_variable(name, retry_seconds=self._read_retry_seconds)
        return None if raw is None else record_value(raw, f"Airflow Variable {name!r}")

    def load(self, part: int = 0) -> dict[str, Any] | None:
        found = self._read(self._name_of(part))
        if found is None and part == 0 and self._legacy_name is not None:
            found = self._read(self._legacy_name)
        return found

    def save(self, value: dict[str, Any], part: int = 0) -> None:
        write_variable(self._name_of(part), json.dumps(value, sort_keys=True), self._description)


def _supervisor() -> Any | None:
    """The task's channel to its supervisor (``None`` outside a running task)."""
    try:
        from airflow.sdk.execution_time import task_runner
    except ImportError:
        return None
    return getattr(task_runner, "SUPERVISOR_COMMS", None)


def read_variable(name: str, retry_seconds: float | None = None) -> str | None:
    """An Airflow Variable's value; ``None`` only when the API server says it does not exist.

    ``Variable.get(name, default=None)`` cannot be used for a record: some task SDK versions
    answer ``default`` for any failure to read (an API server restarting or answering 5xx), and a
    record read as missing is a POST paid again. In a running task the Variable is read from the
    API server through the supervisor, and every answer but "not found" is an error, read again
    for up to :data:`READ_RETRY_SECONDS` (a restart or failover of the API server or its database
    costs the try a wait, not the try). (Limit: an Airflow API server whose own metadata database
    fails during the read answers "not found".)
    """
    comms = _supervisor()
    if comms is None:  # not in a running task (a test's fake, a script): the public API
        from airflow.sdk import Variable

        try:
            return Variable.get(name, default=None)
        except ImportError:  # this task SDK reads Variables only inside a running task: none here
            return None
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_delay(READ_RETRY_SECONDS if retry_seconds is None else retry_seconds),
        wait=tenacity.wait_exponential(multiplier=0.5, max=10.0),
        retry=tenacity.retry_if_exception_type(_UnreadableVariable),
        reraise=True,
    )
    try:
        return retrying(_read_through, comms, name)
    except _UnreadableVariable as exc:
        raise SeedanceError(
            f"Airflow Variable {name!r} (this task's submission record) could not be read ({exc}); "
            "nothing was sent. The next try reads it again."
        ) from exc.__cause__


class _UnreadableVariable(Exception):
    """The supervisor could not read a Variable (the API server failed): worth reading again."""


def _read_through(comms: Any, name: str) -> str | None:
    from airflow.sdk.exceptions import ErrorType
    from airflow.sdk.execution_time.comms import ErrorResponse, GetVariable, VariableResult

    try:
        answer = comms.send(GetVariable(key=name))
    except Exception as exc:  # the supervisor answered with an error: the API server failed
        raise _UnreadableVariable(str(exc)) from exc
    if isinstance(answer, ErrorResponse) and answer.error == ErrorType.VARIABLE_NOT_FOUND:
        return None
    if isinstance(answer, VariableResult):
        return answer.value
    raise _UnreadableVariable(f"{type(answer).__name__}: {getattr(answer, 'error', '')}")


def write_variable(name: str, value: str, description: str) -> None:
    """Store an Airflow Variable, raising when it was not stored.

    Some task SDK versions log a failed ``Variable.set`` and return as if it had worked; a
    ``submitting`` mark that silently was not stored would let a POST go out unrecorded.
    """
    comms = _supervisor()
    if comms is None:
        from airflow.sdk import Variable

        Variable.set(name, value, description=description)
        return
    from airflow.sdk.execution_time.comms import ErrorResponse, PutVariable

    answer = comms.send(PutVariable(key=name, value=value, description=description))
    if isinstance(answer, ErrorResponse):
        raise SeedanceError(f"Airflow Variable {name!r} could not be stored ({answer.error})")


class LateAnswers:
    """Task ids whose POST answered after the try that sent it lost its task state store.

    Airflow moves a try it declares dead to the task instance's history, and from then on its
    task state store writes are refused (404); Variables are not bound to a try. So when a
    write of the record fails, the answers it held are handed over here, keyed by fingerprint
    with the time of the ``submitting`` mark they answer; a later try adopts an answer only
    for a record entry that is still that very mark (:meth:`SubmissionRecord._adopt_late_answers`).
    Reading or writing it is best effort: without it the mark simply stays uncertain, which
    never pays twice.
    """

    def __init__(self, name: str, description: str) -> None:
        self.name = name
        # A later try adopting answers reads like a record (again while the API server restarts:
        # an answer not read leaves its item uncertain, and the task failed); a hand-over reads
        # once, never waited on: it races the kill of a try declared dead.
        self._adopting = _VariableBackend(name, description=description)
        self._variable = _VariableBackend(name, description=description, read_retry_seconds=0)

    def read(self) -> dict[str, tuple[str, float]]:
        """``{fingerprint: (seedance task id, time of the mark it answers)}`` ({} when unreadable)."""
        return self._read(self._adopting) or {}

    def _read(self, variable: _VariableBackend) -> dict[str, tuple[str, float]] | None:
        """What was handed over; ``None`` when the Variable could not be read (or is no JSON object)."""
        try:
            value = variable.load() or {}
        except Exception as exc:  # best effort: the marks stay uncertain
            log.warning("Seedance: could not read late answers (Variable %r): %s", self.name, exc)
            return None
        answers: dict[str, tuple[str, float]] = {}
        for fingerprint, entry in value.items():
            task_id = entry.get("seedance_task_id") if isinstance(entry, Mapping) else None
            marked_at = entry.get("submitted_at") if isinstance(entry, Mapping) else None
            if isinstance(marked_at, bool) or not isinstance(marked_at, (int, float)):
                continue  # JSON true/false is no time
            if isinstance(task_id, str) and task_id:
                answers[fingerprint] = (task_id, float(marked_at))
        return answers

    def write(self, answers: Mapping[str, tuple[str, float]]) -> bool:
        """Add ``answers`` to those already handed over; whether that was stored (best effort,
        logged). Nothing is written when what is there could not be read: that would drop it."""
        stored = self._read(self._variable)
        if stored is None:
            return False
        value = {
            fp: {"seedance_task_id": tid, "submitted_at": at}
            for fp, (tid, at) in {**stored, **answers}.items()
        }
        try:
            self._variable.save(value)
        except Exception as exc:
            log.warning("Seedance: could not hand over late answers (Variable %r): %s", self.name, exc)
            return False
        log.warning(
            "Seedance: the submission record could not be written; task id(s) %s handed over in "
            "Variable %r for the next try to re-attach to",
            ", ".join(sorted(tid for tid, _ in answers.values())),
            self.name,
        )
        return True


def variable_name(dag_id: str, run_id: str, task_id: str, map_index: int, key: str = RECORD_KEY) -> str:
    """The Variable holding a task instance's record on Airflow 3.1-3.2: unique and short.

    Joining the ids with a separator collides (``a__b`` + ``c`` vs ``a`` + ``b__c``) and can pass
    Airflow's 250-character key limit; a hash of the JSON list of the ids does neither.
    """
    identity = json.dumps([dag_id, run_id, task_id, map_index, key], separators=(",", ":"))
    return "seedance_attach__" + hashlib.sha256(identity.encode()).hexdigest()[:40]


def _legacy_variable_name(dag_id: str, run_id: str, task_id: str, map_index: int, key: str) -> str | None:
    """The 0.1 name, read only by a task instance whose dag and task ids hold no ``__`` and
    neither begin nor end with ``_``.

    Joined names are ambiguous, but among task instances whose dag and task ids are free of the
    separator, and of an underscore that would run into it, a joined name has one reader only
    (the dag id is what precedes the first ``__``, the task id what sits between the last two;
    run ids, which hold ``__``, are the rest). An underscore at an edge runs into the separator:
    dag ``d`` + run ``r`` + task ``_z`` and dag ``d`` + run ``r_`` + task ``z`` both join to
    ``d__r___z``. A 0.1 record of such ids is not read back (its retry may submit once more
    during the upgrade); the one task instance that could read it instead re-attaches only to
    the identical request (records are keyed by the request's fingerprint).
    """
    if any("__" in part or part.startswith("_") or part.endswith("_") for part in (dag_id, task_id)):
        return None
    name = f"seedance_attach__{dag_id}__{run_id}__{task_id}__{map_index}"
    if key != RECORD_KEY:
        name += f"__{key}"
    return name if len(name) <= MAX_VARIABLE_KEY else None


class SubmissionRecord:
    """The submissions of one task instance, keyed by request fingerprint.

    Entries are read once and written back after each change (or each group of changes made
    with ``save=False`` and then :meth:`flush`): only one try of a task instance runs at a time,
    so nobody else writes this record.

    With ``shard_size`` (the batch operator), the record is kept in parts of at most that many
    entries, and a write stores only the parts holding a changed entry: recording one item
    costs the same whether the batch has 500 items or 10,000 (writing the whole record for
    every item made a batch's submission cost grow with the square of its size). What keeps
    the money rule ("a mark is durable before its POST") intact:

    * :meth:`flush` writes every changed part before it returns, and callers send a POST only
      after the flush that stored its ``submitting`` mark, exactly as with one part;
    * an entry stays in the part it was first put in; new entries fill the last part, and a
      new part is opened only when the last one is full;
    * a flush writes the changed parts in ascending order and stops at the first that cannot
      be written, so part ``i + 1`` is never stored while part ``i`` is not: reading parts 0,
      1, 2, ... up to the first one missing finds every entry ever stored.

    Without ``shard_size`` (the single operator) the record is one value, as it always was.
    """

    def __init__(
        self,
        backend: _Backend,
        *,
        where: str,
        save_retry_seconds: float | None = None,
        shard_size: int | None = None,
        late: LateAnswers | None = None,
    ) -> None:
        if shard_size is not None and shard_size < 1:
            raise ValueError("shard_size must be >= 1 (or None: one part)")
        self._backend = backend
        #: Where a try whose record writes are refused hands its answers over (task state store).
        self._late = late
        #: Answers to ``submitting`` marks not yet written: ``{fingerprint: (task id, mark time)}``.
        self._answered: dict[str, tuple[str, float]] = {}
        #: (fingerprint, time of the mark) of the answers handed over already: a mark made again
        #: for the same request (a resubmission) is another answer, handed over in its turn.
        self._handed_over: set[tuple[str, float]] = set()
        #: The entries of each part, as read and then changed in memory.
        self._parts: list[dict[str, Any]] | None = None
        #: The part holding each fingerprint.
        self._part_of: dict[str, int] = {}
        #: Parts changed in memory since they were last written.
        self._dirty: set[int] = set()
        #: Human description of the storage, for log lines.
        self.where = where
        self.save_retry_seconds = save_retry_seconds
        self.shard_size = shard_size

    @classmethod
    def for_context(
        cls, context: Mapping[str, Any], *, key: str = RECORD_KEY, shard_size: int | None = None
    ) -> SubmissionRecord:
        store = context.get("task_state_store")
        ids = instance_identity(context["ti"])
        owner = (
            "airflow-provider-seedance: generations submitted by task instance "
            f"dag_id={ids[0]!r} run_id={ids[1]!r} task_id={ids[2]!r} map_index={ids[3]}"
        )
        name = variable_name(*ids, key=key)
        variables = _VariableBackend(
            name,
            legacy_name=_legacy_variable_name(*ids, key=key),
            description=f"{owner} (re-attach)",
            part_name=lambda part: variable_name(*ids, key=part_key(key, part)),
        )
        if store is None:
            return cls(variables, where=f"Variable {name!r}", shard_size=shard_size)
        in_store = _TaskStateStoreBackend(store, key)
        if _store_clears_on_success():
            # Airflow would delete the record when the task succeeds, and a clear would pay again.
            return cls(
                _WithEarlier(variables, in_store),
                where=f"Variable {name!r} ([state_store] clear_on_success is on)",
                shard_size=shard_size,
            )
        late = LateAnswers(variable_name(*ids, key=f"{key}.late"), f"{owner} (late answers)")
        return cls(
            _WithEarlier(in_store, variables), where="the task state store", shard_size=shard_size, late=late
        )

    def _load(self) -> list[dict[str, Any]]:
        if self._parts is None:
            parts = [self._read(0) or {}]
            if self.shard_size is not None:
                while (part := self._read(len(parts))) is not None:
                    parts.append(part)
            self._part_of = {fingerprint: i for i, part in enumerate(parts) for fingerprint in part}
            self._parts = parts
            self._adopt_late_answers()
        return self._parts

    def _read(self, part: int) -> dict[str, Any] | None:
        """A part, read again for up to :data:`READ_RETRY_SECONDS` while the store cannot be
        reached (Airflow's API server or database restarting): a failed read stops the try
        before any POST, and a try spent on a restart is one fewer for the generation."""
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_delay(READ_RETRY_SECONDS),
            wait=tenacity.wait_exponential(multiplier=0.5, max=10.0),
            # an unreadable record (SeedanceError) will not read better; a kill is no error
            retry=tenacity.retry_if_exception(
                lambda exc: isinstance(exc, Exception) and not isinstance(exc, SeedanceError)
            ),
            reraise=True,
        )
        return retrying(self._backend.load, part)

    def _adopt_late_answers(self) -> None:
        """Record the task id a try declared dead handed over (:class:`LateAnswers`) for each
        ``submitting`` mark it answers: the same fingerprint, marked at the same time (an
        answer to an older, released mark is not this one's). In memory; stored by the next
        write."""
        if self._late is None:
            return
        marks = {
            fingerprint: raw.get("submitted_at")
            for part in self._parts or ()
            for fingerprint, raw in part.items()
            if isinstance(raw, Mapping) and raw.get("state") == SUBMITTING.value
        }
        if not marks:
            return
        for fingerprint, (seedance_task_id, marked_at) in self._late.read().items():
            if fingerprint not in marks or marks[fingerprint] != marked_at:
                continue
            mark = self.get(fingerprint)
            assert mark is not None
            self._set(
                replace(
                    mark,
                    state=SUBMITTED,
                    seedance_task_id=seedance_task_id,
                    history=(*mark.history, seedance_task_id),
                )
            )
            log.warning(
                "Seedance: adopted task %s, whose answer reached a try Airflow had declared dead; "
                "re-attaching to it instead of calling the submission uncertain",
                seedance_task_id,
            )

    @property
    def entries(self) -> dict[str, Any]:
        """Every entry of every part (a new dict: change entries through the methods)."""
        return {fingerprint: raw for part in self._load() for fingerprint, raw in part.items()}

    def __contains__(self, fingerprint: object) -> bool:
        self._load()
        return fingerprint in self._part_of

    @property
    def parts(self) -> int:
        """How many parts the record has (in memory, written or about to be)."""
        return len(self._load())

    def flush(self, arrived: Callable[[], Iterable[tuple[str, str]]] | None = None) -> None:
        """Write every part changed since its last write, in ascending order, each retried
        while the store is unreachable (idempotent; nothing changed: nothing written).

        ``arrived`` lists ``(fingerprint, seedance task id)`` answers that came back while the
        write is retried (POSTs still in flight when it began); they are handed over with the
        others if the write fails (:meth:`_hand_over`), and recorded by the caller afterwards.
        """
        seconds = SAVE_RETRY_SECONDS if self.save_retry_seconds is None else self.save_retry_seconds
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_delay(seconds),
            wait=tenacity.wait_exponential(multiplier=0.5, max=10.0),
            before_sleep=lambda _state: self._hand_over(arrived),
            reraise=True,
        )
        parts = self._load()
        try:
            for part in sorted(self._dirty):
                retrying(self._backend.save, parts[part], part)
                self._dirty.discard(part)
        except Exception:
            self._hand_over(arrived)
            raise
        self._answered.clear()

    def _hand_over(self, arrived: Callable[[], Iterable[tuple[str, str]]] | None = None) -> None:
        """A write of the record failed: hand the answers it holds over to the next try at once
        (a try Airflow declared dead is killed seconds later, and its writes never succeed);
        tried again at each retry of the write until the hand-over is stored. Answers that
        ``arrived`` since (each for a ``submitting`` mark of this record) go with them."""
        for fingerprint, seedance_task_id in arrived() if arrived is not None else ():
            mark = self.get(fingerprint)
            if mark is None or mark.state is not SUBMITTING or mark.submitted_at is None:
                continue
            if (fingerprint, mark.submitted_at) not in self._handed_over:
                self._answered[fingerprint] = (seedance_task_id, mark.submitted_at)
        if self._late is not None and self._answered and self._late.write(self._answered):
            self._handed_over.update((fp, at) for fp, (_, at) in self._answered.items())
            self._answered = {}

    def get(self, fingerprint: str) -> Submission | None:
        parts = self._load()
        part = self._part_of.get(fingerprint)
        if part is None:
            return None
        submission = Submission.from_json(parts[part][fingerprint])
        if submission is None:
            # Taking an unreadable entry for "nothing submitted" would pay for it again.
            raise SeedanceError(
                f"The submission record in {self.where} has an unreadable entry for this request "
                "(edited by hand?): fix or delete it, then clear the task."
            )
        return submission

    def history(self, fingerprint: str) -> tuple[str, ...]:
        previous = self.get(fingerprint)
        return previous.history if previous is not None else ()

    def _part_for_new_entry(self) -> int:
        parts = self._load()
        last = len(parts) - 1
        if self.shard_size is None or len(parts[last]) < self.shard_size:
            return last
        parts.append({})
        return last + 1

    def _put(self, fingerprint: str, raw: dict[str, Any]) -> None:
        part = self._part_of.get(fingerprint)
        if part is None:
            part = self._part_for_new_entry()
            self._part_of[fingerprint] = part
        self._load()[part][fingerprint] = raw
        self._dirty.add(part)

    def _remove(self, fingerprint: str) -> None:
        self._load()
        part = self._part_of.pop(fingerprint, None)
        if part is not None:
            del self._load()[part][fingerprint]
            self._dirty.add(part)

    def _set(self, submission: Submission) -> None:
        self._put(submission.fingerprint, submission.to_json())

    def rename(self, old: str, new: str) -> None:
        """Key an entry written under an older naming (``old``) by today's (``new``), in its own
        part: in memory, stored by the next write. Nothing happens when ``new`` is taken or
        ``old`` is absent."""
        self._load()
        part = self._part_of.get(old)
        if part is None or new in self._part_of:
            return
        raw = self._load()[part].pop(old)
        del self._part_of[old]
        self._load()[part][new] = {**raw, "fingerprint": new}
        self._part_of[new] = part
        self._dirty.add(part)

    def _save(self, save: bool) -> None:
        if save:
            self.flush()

    def mark_submitting(self, *fingerprints: str, save: bool = True) -> None:
        """Written just before the POST: a crash from here on must not lead to a second POST.

        Marking a request whose earlier mark is still uncertain is a release of that mark
        (``force_new``): its time is kept in ``released``.
        """
        now = time.time()
        for fingerprint in fingerprints:
            previous = self.get(fingerprint)
            released = previous.released if previous is not None else ()
            if previous is not None and previous.uncertain:
                released = (*released, previous.submitted_at or now)
            self._set(
                Submission(
                    fingerprint,
                    SUBMITTING,
                    submitted_at=now,
                    history=previous.history if previous is not None else (),
                    released=released,
                )
            )
        self._save(save)

    def mark_submitted(self, *pairs: tuple[str, str], save: bool = True) -> None:
        """``(fingerprint, seedance_task_id)`` pairs whose POST returned a task id."""
        for fingerprint, seedance_task_id in pairs:
            previous = self.get(fingerprint)
            if previous is not None and previous.submitted_at is not None:  # the mark it answers
                self._answered[fingerprint] = (seedance_task_id, previous.submitted_at)
            history = (*(previous.history if previous else ()), seedance_task_id)
            released = previous.released if previous is not None else ()
            self._set(
                Submission(fingerprint, SUBMITTED, seedance_task_id, time.time(), history, released=released)
            )
        self._save(save)

    def mark_finished(self, *pairs: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
        """``(fingerprint, terminal task dict)`` pairs: remember how generations ended.

        Returns the outcomes recorded for the first time (an earlier try had not seen that
        generation end): what metrics count, once per generation whatever the clears.
        """
        changed, first_seen = False, []
        for fingerprint, outcome in pairs:
            previous = self.get(fingerprint)
            if previous is not None and previous.seedance_task_id == outcome.get("task_id"):
                if previous.outcome is None:
                    first_seen.append(dict(outcome))
                self._set(replace(previous, outcome=dict(outcome)))
                changed = True
        self._save(changed)
        return first_seen

    def mark_rejected(self, fingerprint: str, error: str, *, refused: bool, save: bool = True) -> None:
        """The API refused the POST (``refused``), or it never reached the API: nothing was created."""
        previous = self.get(fingerprint)
        history = previous.history if previous is not None else ()
        self._set(
            Submission(
                fingerprint,
                REJECTED,
                history[-1] if history else None,
                time.time(),
                history,
                error,
                released=previous.released if previous is not None else (),
                refused=refused,
            )
        )
        self._save(save)

    def forget_attempt(self, fingerprint: str, *, save: bool = True) -> None:
        """The POST provably created nothing: drop its "submitting" mark (keep what came before)."""
        previous = self.get(fingerprint)
        if previous is None:
            return
        if previous.history:
            self._set(
                Submission(
                    fingerprint,
                    SUBMITTED,
                    previous.history[-1],
                    previous.submitted_at,
                    previous.history,
                    outcome=previous.outcome,
                    released=previous.released,
                )
            )
        elif previous.released:
            # Nothing was created, but the releases of earlier uncertain marks stay on record.
            self._set(
                Submission(
                    fingerprint,
                    REJECTED,
                    None,
                    previous.submitted_at,
                    (),
                    "not sent",
                    released=previous.released,
                )
            )
        else:
            self._remove(fingerprint)
        self._save(save)
