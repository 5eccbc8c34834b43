"""SeedanceBatchStatusTrigger: one trigger watching a whole batch of generations.

A catalog of N videos as N deferred tasks costs N worker starts to submit and N more to
resume; this trigger lets one task wait for all of them. Each round it reads every
unfinished generation concurrently (bounded) on one shared aiohttp session, and it fires
a single event once every generation has ended (or the deadline passed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import TriggerEvent

from airflow_provider_seedance import metrics
from airflow_provider_seedance.exceptions import SeedanceError, SeedanceValidationError
from airflow_provider_seedance.hooks.retry import (
    DEFAULT_MAX_OUTAGE,
    RetryPolicy,
    asleep_until_deadline,
    poller_max_wait,
)
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.models import BatchEventStatus
from airflow_provider_seedance.triggers.polling import PollingTrigger
from airflow_provider_seedance.values import count_value, restored

BATCH_EVENT_STATUSES = frozenset(s.value for s in BatchEventStatus)
#: A round's outcome for one generation: ``None`` while it runs, its compact task dict
#: (``SeedanceTask.to_dict(compact=True)``) once it has ended, or the error its status read raised.
Read = dict[str, Any] | SeedanceError | None


class SeedanceBatchStatusTrigger(PollingTrigger):
    """Wait until every generation of a batch has ended; fire one event.

    Event: ``{"status": "done"|"timeout", "tasks": {id: task}, "errors": {id: message},
    "pending": [id, ...]}`` where ``tasks`` holds the terminal generations, ``errors`` the
    ones that could not be read (e.g. TASK_NOT_FOUND, or too many failures in a row) and
    ``pending`` those still running at the deadline; or ``{"status": "error", "message": str,
    "pending": [...]}`` when polling could not start (e.g. an unusable connection).

    :param seedance_task_ids: the generations to watch.
    :param max_concurrency: status reads in flight at once.
    :param max_outage: the wait policy, the same as the single trigger's and the blocking
        wait's: a generation whose status reads keep failing transiently (5xx, 429, network,
        unreadable answers) for this many seconds in a row is reported in ``errors``; rounds
        with failures back off exponentially (never below a 429's ``Retry-After``), never
        past ``end_time``.
    :param max_poll_failures: optional extra cap on failed reads in a row per generation
        (``None``: only ``max_outage``; kept for triggers serialized by earlier versions).
    """

    def __init__(
        self,
        seedance_task_ids: list[str],
        seedance_conn_id: str = SeedanceHook.default_conn_name,
        poll_interval: float = 10.0,
        end_time: float | None = None,
        max_concurrency: int = 32,
        max_poll_failures: int | None = None,
        max_outage: float = DEFAULT_MAX_OUTAGE,
    ) -> None:
        super().__init__(seedance_conn_id, poll_interval, end_time, max_poll_failures, max_outage)
        # as given unless a list or tuple (a string is no list of ids): checked when polling starts
        ids = seedance_task_ids
        self.seedance_task_ids = list(ids) if isinstance(ids, (list, tuple)) else ids
        self.max_concurrency = restored(max_concurrency, int)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "seedance_task_ids": self.seedance_task_ids,
                "max_concurrency": self.max_concurrency,
                **self.poll_kwargs(),
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        pending: list[str] = []
        finished: dict[str, dict[str, Any]] = {}
        errors: dict[str, str] = {}
        bad_rounds = 0
        transient: list[SeedanceError] = []
        try:
            pending = self._task_ids()  # the error event says which were not read
            self.check_settings()  # a bad one ends in an error event
            # One read per attempt (the rounds are the retries), backing off by the hook's policy.
            hook = self.hook_class(
                self.seedance_conn_id,
                status_retries=1,
                retry_min_wait=self.poll_interval,
                retry_max_wait=poller_max_wait(self.poll_interval),
                max_outage=self.max_outage,
            )
            policy = hook.retry_policy
            streaks = policy.streaks(self.max_poll_failures)
            async with hook, metrics.InFlight(len(pending)) as flight:
                while pending:
                    await asleep_until_deadline(self._pause(policy, bad_rounds, transient), self.end_time)
                    if self.end_time is not None and time.time() >= self.end_time:
                        break
                    outcomes = await self._read_round(hook, pending)
                    still: list[str] = []
                    transient = []
                    for task_id, outcome in zip(pending, outcomes, strict=True):
                        if not isinstance(outcome, SeedanceError):
                            streaks.succeeded(task_id)
                            if outcome is None:
                                still.append(task_id)
                            else:
                                finished[task_id] = outcome
                        elif outcome.retryable:
                            transient.append(outcome)
                            streak = streaks.failed(task_id)
                            if streak is None:
                                still.append(task_id)
                            else:
                                errors[task_id] = (
                                    f"status unreadable {streak.failures} times in a row "
                                    f"for {streak.seconds:.0f}s: {outcome}"
                                )
                        else:
                            errors[task_id] = str(outcome)
                    bad_rounds = bad_rounds + 1 if transient else 0
                    self.log.debug("Seedance batch: %d finished, %d running", len(finished), len(still))
                    pending = still
                    flight.set(len(pending))
        except SeedanceError as exc:
            # Only set-up can raise here (a bad wait setting, the connection; each read returns
            # its error): report it, as the single trigger does, not as a bare traceback.
            yield TriggerEvent(
                {
                    "status": BatchEventStatus.ERROR.value,
                    "message": f"Polling the Seedance batch failed: {exc}",
                    "pending": pending,
                }
            )
            return
        status = (BatchEventStatus.TIMEOUT if pending else BatchEventStatus.DONE).value
        yield TriggerEvent({"status": status, "tasks": finished, "errors": errors, "pending": pending})

    def check_settings(self) -> None:
        """The shared settings, then the batch's own: its ids and how many reads run at once."""
        super().check_settings()
        self._task_ids()
        count_value(self.max_concurrency, "max_concurrency", minimum=1, what=" of status reads at once")

    def _task_ids(self) -> list[str]:
        """The generations to read, each once; refused unless a list of ids."""
        ids = self.seedance_task_ids
        if not isinstance(ids, list) or not all(isinstance(task_id, str) for task_id in ids):
            raise SeedanceValidationError("seedance_task_ids", ids, "a list of Seedance task ids")
        return list(dict.fromkeys(ids))

    async def _read_round(self, hook: SeedanceHook, pending: list[str]) -> list[Read]:
        """One status read of each of ``pending``, ``max_concurrency`` at a time; the outcomes
        in ``pending``'s order.

        A fixed pool of readers walks the list, and each answer is reduced as it arrives to
        what the round needs (``None`` while running, the compact task dict, or the error): a
        round over 10,000 generations holds neither a task per generation nor 10,000 parsed
        answers at once (see BENCHMARKS.md, "Batch trigger memory").
        """
        outcomes: list[Read] = [None] * len(pending)
        work = iter(enumerate(pending))

        async def reader() -> None:
            for index, task_id in work:
                try:
                    task = await hook.aget_status(task_id)
                except SeedanceError as exc:
                    outcomes[index] = exc
                else:
                    outcomes[index] = task.to_dict(compact=True) if task.is_terminal else None

        await asyncio.gather(*(reader() for _ in range(min(self.max_concurrency, len(pending)))))
        return outcomes

    def _pause(self, policy: RetryPolicy, bad_rounds: int, errors: list[SeedanceError]) -> float:
        """The poll interval; after ``bad_rounds`` failing rounds in a row, the hook's retry policy's
        backoff (never less than the ``Retry-After`` of any of the last round's ``errors``). The
        caller clamps it to the deadline."""
        if not bad_rounds:
            return self.poll_interval
        return policy.backoff(bad_rounds + 1, *errors)

    async def on_kill(self) -> None:
        """Airflow 3.3+: called when a user kills the deferred task. Nothing can be cancelled."""
        ids = self.seedance_task_ids  # a row's, as restored: perhaps no list at all
        self.log.warning(
            "Seedance has no cancel API: the %s generations of this batch keep running and are billed "
            "if they succeed.",
            len(ids) if isinstance(ids, list) else "unknown number of",
        )
