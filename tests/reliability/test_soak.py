"""Fault soak: many generations under injected faults, then the emulator's books must balance.

Each generation runs the way Airflow runs it, in this process so the soak stays fast:
``SeedanceGenerateOperator.execute`` on a worker thread; if it defers, the trigger's
``run()`` on the event loop and then the resume method; a try that raises anything but a
final (``AirflowFailException``) error is retried with a fresh operator and the same
durable state store, as Airflow retries a task. Blocking and deferrable generations are
mixed, prices vary (resolution, duration, audio).

While they run, an injector keeps the emulator's fault book fed so that about
``SEEDANCE_SOAK_FAULT_RATE`` of all status polls fail (500, 429 with Retry-After, dropped
connection, slow answer, slow past the client's read timeout, truncated JSON) and about
``SEEDANCE_SOAK_FAILED_RATE`` of generations end FAILED.

Then: every generation the emulator created is reported by the provider exactly once, as
SUCCESS, as a clear failure naming it, or as an earlier try's FAILED generation in the
durable record (a retry that finds its earlier generation FAILED submits anew; failed
generations are free); the credits charged for successes equal the sum of
their prices, the refunds equal the prices of the FAILED ones, and there was exactly one
POST per created generation (never one after an ambiguous answer).

CI size by default; a larger run: ``SEEDANCE_SOAK_N=500 pytest tests/reliability -s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from airflow_provider_seedance._compat import AirflowFailException
from airflow_provider_seedance.emulator.testing import EmulatorProcess
from airflow_provider_seedance.exceptions import SeedanceGenerationFailedError
from airflow_provider_seedance.operators.seedance import XCOM_TASK_ID, SeedanceGenerateOperator
from airflow_provider_seedance.reattach import RECORD_KEY

try:  # Airflow 3.2+
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # Airflow 3.1
    from airflow.exceptions import TaskDeferred  # type: ignore[no-redef,attr-defined]

pytestmark = pytest.mark.realproc

N = int(os.environ.get("SEEDANCE_SOAK_N", "40"))
FAULT_RATE = float(os.environ.get("SEEDANCE_SOAK_FAULT_RATE", "0.2"))
FAILED_RATE = float(os.environ.get("SEEDANCE_SOAK_FAILED_RATE", "0.15"))
CONCURRENCY = int(os.environ.get("SEEDANCE_SOAK_CONCURRENCY", "40"))
SEED = int(os.environ.get("SEEDANCE_SOAK_SEED", "20260207"))
#: Tries per generation (Airflow's ``retries + 1``).
TRIES = 3
GENERATION_SECONDS = 1.5
#: The connection's timeout: a "slow past timeout" answer takes longer than connect + read.
CLIENT_TIMEOUT = 2.0
SOAK_KEY = "sk-soak-account-4e1f0a9d"
CONN_ID = "seedance_soak"

STATUS_FAULTS: dict[str, dict[str, Any]] = {
    "http_500": {"fault": "http_500"},
    "http_429": {"fault": "http_429", "retry_after": 0.5},
    "drop": {"fault": "drop"},
    "slow": {"fault": "slow", "delay": 0.8},
    "slow_past_timeout": {"fault": "slow", "delay": 2 * CLIENT_TIMEOUT + 1},
    "malformed": {"fault": "malformed"},
}
HOOK_PARAMS = {"status_retries": 4, "retry_min_wait": 0.1, "retry_max_wait": 0.5}


# ---------------------------------------------------------------------- Airflow stand-ins
class StateStore:
    """``context["task_state_store"]``: survives the tries of one task instance."""

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return json.loads(json.dumps(self._data[key])) if key in self._data else default

    def set(self, key: str, value: Any) -> None:
        self._data[key] = json.loads(json.dumps(value))


class FakeTI:
    def __init__(self, index: int) -> None:
        self.dag_id, self.run_id, self.task_id, self.map_index = "soak", "soak_run", "generate", index
        self.try_number = 1
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


@dataclass
class Outcome:
    index: int
    deferrable: bool
    kind: str = "lost"  # success | failed | error
    seedance_task_id: str | None = None
    #: Generations earlier tries submitted for this one (from the durable record), oldest first.
    earlier: list[str] = field(default_factory=list)
    credits: int = 0
    tries: int = 0
    errors: list[str] = field(default_factory=list)


def _operator(index: int) -> SeedanceGenerateOperator:
    return SeedanceGenerateOperator(
        task_id=f"generate_{index}",
        prompt=f"Soak clip {index}",
        resolution=("480p", "720p")[index % 2],
        duration=("4", "8", "12")[index % 3],
        generate_audio=index % 5 == 0,
        seedance_conn_id=CONN_ID,
        deferrable=index % 2 == 0,
        poll_interval=0.3,
        hook_params=HOOK_PARAMS,
    )


async def _first_event(trigger: Any, ti: FakeTI) -> dict[str, Any]:
    trigger.task_instance = SimpleNamespace(
        task_id=ti.task_id, dag_id=ti.dag_id, run_id=ti.run_id, map_index=ti.map_index
    )
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("trigger ended without an event")


def _submitted(store: StateStore) -> list[str]:
    """Every Seedance task id the operator recorded as submitted (``reattach`` history)."""
    record = store.get(RECORD_KEY) or {}
    return [task_id for entry in record.values() for task_id in entry.get("history", [])]


async def _generate(index: int, pool: ThreadPoolExecutor) -> Outcome:
    outcome = await _tries(index, store := StateStore(), pool)
    outcome.earlier = [t for t in _submitted(store) if t != outcome.seedance_task_id]
    return outcome


async def _tries(index: int, store: StateStore, pool: ThreadPoolExecutor) -> Outcome:
    loop = asyncio.get_running_loop()
    outcome = Outcome(index, deferrable=index % 2 == 0)
    for attempt in range(1, TRIES + 1):
        outcome.tries = attempt
        operator, ti = _operator(index), FakeTI(index)  # Airflow builds both anew for each try
        context: dict[str, Any] = {"ti": ti, "task_state_store": store}
        try:
            try:
                result = await loop.run_in_executor(pool, operator.execute, context)
            except TaskDeferred as deferred:
                event = await _first_event(deferred.trigger, ti)
                resume = partial(
                    getattr(operator, deferred.method_name), context, event=event, **(deferred.kwargs or {})
                )
                result = await loop.run_in_executor(pool, resume)
        except SeedanceGenerationFailedError as exc:
            outcome.kind, outcome.seedance_task_id = "failed", exc.task_id
            return outcome
        except AirflowFailException as exc:  # final, e.g. an uncertain submission
            outcome.kind, outcome.seedance_task_id = "error", ti.xcom.get(XCOM_TASK_ID)
            outcome.errors.append(f"{type(exc).__name__}: {exc}")
            return outcome
        except Exception as exc:  # Airflow would retry this try
            outcome.kind, outcome.seedance_task_id = "error", ti.xcom.get(XCOM_TASK_ID)
            outcome.errors.append(f"{type(exc).__name__}: {exc}")
            continue
        outcome.kind, outcome.seedance_task_id = "success", result["task_id"]
        outcome.credits = int(result["consumed_credits"])
        return outcome
    return outcome


# ---------------------------------------------------------------------- fault injection
@dataclass
class Injector:
    """Keeps injected faults at ``FAULT_RATE`` of status polls and ``FAILED_RATE`` of submits."""

    emulator: EmulatorProcess
    rng: random.Random
    added: Counter[str] = field(default_factory=Counter)

    def top_up(self) -> None:
        ledger = self.emulator.ledger()
        status_target = int(FAULT_RATE * ledger["status_requests"]) + 1
        while sum(v for k, v in self.added.items() if k != "failed_outcome") < status_target:
            kind = self.rng.choice(sorted(STATUS_FAULTS))
            self.emulator.add_faults({"endpoint": "status", "times": 1, **STATUS_FAULTS[kind]})
            self.added[kind] += 1
        # Outcome rules apply to the next submissions: stay ahead of the ones in flight.
        upcoming = min(N, ledger["generate_requests"] + CONCURRENCY)
        while self.added["failed_outcome"] < max(1, round(FAILED_RATE * upcoming)):
            self.emulator.add_faults(
                {
                    "endpoint": "outcome",
                    "fault": "failed",
                    "times": 1,
                    "error_message": "CONTENT_POLICY_VIOLATION: soak",
                }
            )
            self.added["failed_outcome"] += 1

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.to_thread(self.top_up)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)

    def injected(self) -> Counter[str]:
        """Added minus still pending: the faults the emulator actually applied."""
        pending = requests.get(f"{self.emulator.base_url}/_emulator/faults", timeout=10).json()["rules"]
        left: Counter[str] = Counter()
        for rule in pending:
            if rule["endpoint"] == "outcome":
                left["failed_outcome"] += rule["times"]
            else:
                kind = next(k for k, v in STATUS_FAULTS.items() if _matches(rule, v))
                left[kind] += rule["times"]
        return self.added - left


def _matches(rule: dict[str, Any], spec: dict[str, Any]) -> bool:
    return all(rule.get(k) == v for k, v in spec.items())


# ---------------------------------------------------------------------- the soak
@pytest.fixture(scope="module")
def soak_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    log_path = tmp_path_factory.mktemp("soak") / "emulator.log"
    with EmulatorProcess(
        api_keys={SOAK_KEY: 10_000_000}, generation_seconds=GENERATION_SECONDS, log_path=log_path
    ) as emulator:
        yield emulator


async def _soak(emulator: EmulatorProcess) -> tuple[list[Outcome], Counter[str]]:
    injector = Injector(emulator, random.Random(SEED))
    semaphore = asyncio.Semaphore(CONCURRENCY)
    stop = asyncio.Event()

    async def limited(index: int, pool: ThreadPoolExecutor) -> Outcome:
        async with semaphore:
            return await _generate(index, pool)

    with ThreadPoolExecutor(max_workers=CONCURRENCY, thread_name_prefix="soak-worker") as pool:
        feeding = asyncio.create_task(injector.run(stop))
        try:
            outcomes = await asyncio.gather(*(limited(i, pool) for i in range(N)))
        finally:
            stop.set()
            await feeding
    injected = injector.injected()
    emulator.clear_faults()
    return list(outcomes), injected


def test_soak_under_faults_reconciles_every_credit_and_loses_no_generation(
    soak_emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN_ID.upper()}",
        json.dumps(
            {
                "conn_type": "seedance",
                "host": soak_emulator.base_url,
                "password": SOAK_KEY,
                "extra": {"timeout": CLIENT_TIMEOUT},
            }
        ),
    )
    soak_emulator.reset()
    started = time.monotonic()
    outcomes, injected = asyncio.run(_soak(soak_emulator))
    wall = time.monotonic() - started

    created = {t["task_id"]: t for t in soak_emulator.tasks()}
    ledger = soak_emulator.ledger()
    account = ledger["accounts"][SOAK_KEY]
    kinds = Counter(o.kind for o in outcomes)
    successes = [o for o in outcomes if o.kind == "success"]
    failures = [o for o in outcomes if o.kind == "failed"]
    finals = [o.seedance_task_id for o in outcomes if o.seedance_task_id]
    earlier = [t for o in outcomes for t in o.earlier]
    reported = finals + earlier
    lost = sorted(set(created) - set(reported))
    duplicate_ids = sorted(i for i, n in Counter(reported).items() if n > 1)
    figures = {
        "generations": N,
        "outcomes": dict(kinds),
        "created_by_emulator": len(created),
        "generate_requests": ledger["generate_requests"],
        "status_requests": ledger["status_requests"],
        "faults_injected": dict(sorted(injected.items())),
        "retried_tries": sum(o.tries - 1 for o in outcomes),
        "resubmitted_after_failed": len(earlier),
        "lost": len(lost),
        "duplicate_ids": len(duplicate_ids),
        "charged": account["charged"],
        "refunded": account["refunded"],
        "wall_seconds": round(wall, 1),
    }
    print(f"\nsoak figures: {json.dumps(figures)}")

    # The soak really was under fire.
    assert injected["failed_outcome"] >= 1 and len(failures) >= 1
    assert sum(v for k, v in injected.items() if k != "failed_outcome") >= FAULT_RATE * N
    # Every POST created a generation (none was sent after an ambiguous answer), and every
    # generation is accounted for: the final one of each operator, or an earlier try's.
    assert ledger["generate_requests"] == len(created) == N + len(earlier)
    assert lost == [] and duplicate_ids == []
    # A second generation for one operator only ever replaces a FAILED (unbilled) one.
    assert [created[t]["status"] for t in earlier] == ["FAILED"] * len(earlier)
    # Retries absorb every transient fault: each generation ends SUCCESS or FAILED, not errored.
    assert kinds == Counter({"success": len(successes), "failed": len(failures)}), [
        o.errors for o in outcomes if o.kind == "error"
    ]
    # Every SUCCESS is charged its price once; every FAILED is refunded in full.
    for o in successes:
        assert o.seedance_task_id is not None
        assert created[o.seedance_task_id]["status"] == "SUCCESS"
        assert o.credits == created[o.seedance_task_id]["price"]
    for o in failures:
        assert o.seedance_task_id is not None
        assert created[o.seedance_task_id]["status"] == "FAILED"
    assert account["charged"] - account["refunded"] == sum(o.credits for o in successes)
    failed_ids = [o.seedance_task_id for o in failures] + earlier
    assert account["refunded"] == sum(created[t]["price"] for t in failed_ids)  # type: ignore[index]
    assert account["charged"] == sum(t["price"] for t in created.values())
