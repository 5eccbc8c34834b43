"""SeedanceStatusTrigger driven directly, as the triggerer does, against the emulator process."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from types import SimpleNamespace

import pytest

from airflow_provider_seedance.exceptions import SeedanceError, SeedanceTimeoutError
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.operators.batch import SeedanceBatchGenerateOperator
from airflow_provider_seedance.triggers.batch import SeedanceBatchStatusTrigger
from airflow_provider_seedance.triggers.seedance import SeedanceStatusTrigger
from tests.conftest import API_KEY, connection_json
from tests.integration.test_money_rules import Store, context

pytestmark = pytest.mark.integration


def submit(prompt: str = "p") -> str:
    return SeedanceHook().submit(prompt)


async def collect(trigger: SeedanceStatusTrigger) -> list[dict]:
    return [event.payload async for event in trigger.run()]


def fresh(trigger: SeedanceStatusTrigger) -> SeedanceStatusTrigger:
    """Rebuild from serialize(), as a triggerer does after a restart."""
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_seedance.triggers.seedance.SeedanceStatusTrigger"
    return SeedanceStatusTrigger(**json.loads(json.dumps(kwargs)))


def test_serialize_round_trip_is_json_primitives_without_secrets() -> None:
    trigger = SeedanceStatusTrigger("seed-1", "my_conn", poll_interval=3, end_time=1_800_000_000.5)
    path, kwargs = trigger.serialize()
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert kwargs == {
        "seedance_task_id": "seed-1",
        "seedance_conn_id": "my_conn",
        "poll_interval": 3.0,
        "end_time": 1_800_000_000.5,
        "max_poll_failures": None,
        "max_outage": 180.0,
    }
    assert fresh(trigger).serialize() == (path, kwargs)
    dumped = json.dumps(kwargs).lower()
    assert API_KEY.lower() not in dumped and "authorization" not in dumped and "bearer" not in dumped


def test_one_success_event_with_the_task(emulator) -> None:
    task_id = submit()
    trigger = SeedanceStatusTrigger(task_id, poll_interval=0.2)
    trigger.task_instance = SimpleNamespace(task_id="airflow_task", dag_id="d", run_id="r", map_index=-1)
    events = asyncio.run(collect(trigger))
    assert len(events) == 1
    [event] = events
    assert event["status"] == "success"
    assert event["task"]["task_id"] == task_id and event["task"]["video_url"].endswith(".mp4")
    assert event["task"]["consumed_credits"] == 28
    assert emulator.ledger()["generate_requests"] == 1  # the trigger never POSTs


def test_failed_generation_gives_a_failed_event(emulator) -> None:
    emulator.add_faults({"endpoint": "outcome", "fault": "failed", "times": 1, "error_message": "moderation"})
    [event] = asyncio.run(collect(SeedanceStatusTrigger(submit(), poll_interval=0.2)))
    assert event["status"] == "failed" and event["task"]["error_message"] == "moderation"
    assert "moderation" in event["message"]


def test_transient_poll_failures_are_tolerated(emulator) -> None:
    task_id = submit()
    emulator.add_faults(
        {"endpoint": "status", "fault": "http_500", "times": 2},
        {"endpoint": "status", "fault": "http_429", "times": 1, "retry_after": 0},
        {"endpoint": "status", "fault": "drop", "times": 1},
        {"endpoint": "status", "fault": "malformed", "times": 1},
    )
    [event] = asyncio.run(collect(SeedanceStatusTrigger(task_id, poll_interval=0.2)))
    assert event["status"] == "success"


def test_permanent_failure_is_bounded_and_does_not_hot_loop(emulator) -> None:
    task_id = submit()
    emulator.add_faults({"endpoint": "status", "fault": "http_500", "times": 1000})
    before = emulator.ledger()["status_requests"]
    started = time.monotonic()
    [event] = asyncio.run(collect(SeedanceStatusTrigger(task_id, poll_interval=0.05, max_poll_failures=3)))
    elapsed = time.monotonic() - started
    sent = emulator.ledger()["status_requests"] - before
    assert event["status"] == "error" and "INTERNAL_ERROR" in event["message"]
    assert event["error_code"] == "INTERNAL_ERROR"
    assert sent == 4  # the first read and three retries, no more
    assert elapsed >= 0.05 * 3  # backed off between attempts rather than hammering


def test_unknown_task_is_an_error_event_not_a_retry_storm(emulator) -> None:
    before = emulator.ledger()["status_requests"]
    [event] = asyncio.run(collect(SeedanceStatusTrigger("seed-unknown", poll_interval=0.05)))
    assert event["status"] == "error" and event["error_code"] == "TASK_NOT_FOUND"
    assert emulator.ledger()["status_requests"] - before == 1


def test_wall_clock_deadline_gives_a_timeout_event_naming_the_task(emulator) -> None:
    emulator.hold()  # still rendering at the deadline, however slow the machine
    task_id = submit()
    trigger = SeedanceStatusTrigger(task_id, poll_interval=0.1, end_time=time.time() + 2)
    [event] = asyncio.run(collect(trigger))
    assert event["status"] == "timeout" and task_id in event["message"]
    assert event["task"]["status"] == "IN_PROGRESS"


def test_deadline_survives_recreation(emulator) -> None:
    task_id = submit()
    original = SeedanceStatusTrigger(task_id, poll_interval=0.1, end_time=time.time() + 0.2)
    time.sleep(0.3)  # the triggerer was down past the deadline
    before = emulator.ledger()["status_requests"]
    [event] = asyncio.run(collect(fresh(original)))
    assert event["status"] == "timeout"
    assert emulator.ledger()["status_requests"] == before  # no poll once the deadline has passed


def test_two_copies_at_once_are_safe(emulator) -> None:
    """HA triggerers may run the same trigger twice: both read, neither submits."""
    task_id = submit()
    trigger = SeedanceStatusTrigger(task_id, poll_interval=0.1)

    async def both() -> list[list[dict]]:
        return list(await asyncio.gather(collect(trigger), collect(fresh(trigger))))

    first, second = asyncio.run(both())
    assert first[0]["status"] == second[0]["status"] == "success"
    assert emulator.ledger()["generate_requests"] == 1


def run_measuring_loop_lag(coro_factory):
    """Run a coroutine beside a 10 ms ticker; return (result, worst lag of the loop in seconds).

    Any synchronous I/O inside the coroutine stalls the ticker and shows up as lag.
    """

    async def main():
        loop = asyncio.get_running_loop()
        worst = 0.0

        async def ticker() -> None:
            nonlocal worst
            while True:
                before = loop.time()
                await asyncio.sleep(0.01)
                worst = max(worst, loop.time() - before - 0.01)

        tick = asyncio.create_task(ticker())
        await asyncio.sleep(0.02)
        try:
            result = await coro_factory()
            await asyncio.sleep(0.03)  # let the ticker observe the last stretch
        finally:
            tick.cancel()
        return result, worst

    return asyncio.run(main())


def test_lag_detector_catches_a_blocking_call() -> None:
    """Guards the next test: a sync sleep on the loop is seen."""

    async def blocking() -> None:
        time.sleep(0.3)

    _, lag = run_measuring_loop_lag(blocking)
    assert lag >= 0.25


def test_run_never_blocks_the_event_loop(emulator) -> None:
    task_id = submit()
    # A slow answer must be awaited, not waited for.
    emulator.add_faults({"endpoint": "status", "fault": "slow", "times": 1, "delay": 0.5})
    events, lag = run_measuring_loop_lag(lambda: collect(SeedanceStatusTrigger(task_id, poll_interval=0.2)))
    assert events[0]["status"] == "success"
    # A blocking read of the 0.5 s slow answer would stall the loop for 0.5 s or more.
    assert lag < 0.4


def test_on_kill_says_the_generation_cannot_be_cancelled(capsys, caplog) -> None:
    trigger = SeedanceStatusTrigger("seed-42")
    with caplog.at_level(logging.WARNING):
        asyncio.run(trigger.on_kill())
    # Airflow's logging may go through structlog (stdout) or the stdlib (caplog).
    lines = capsys.readouterr().out.splitlines() + [r.getMessage() for r in caplog.records]
    messages = [line for line in lines if "seed-42" in line]
    assert len(messages) == 1 and "no cancel API" in messages[0] and "billed" in messages[0]


def test_batch_trigger_reports_an_unusable_connection_as_one_error_event(monkeypatch) -> None:
    """Set-up failures end in an event the operator turns into a clear error, not a traceback."""
    conn = {"conn_type": "seedance", "host": "http://127.0.0.1:1"}  # no API key
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_NOKEY", json.dumps(conn))
    trigger = SeedanceBatchStatusTrigger(["seed-a", "seed-b"], "seedance_nokey", poll_interval=0.01)
    events = asyncio.run(collect(trigger))  # type: ignore[arg-type]
    assert len(events) == 1
    [event] = events
    assert event["status"] == "error" and event["pending"] == ["seed-a", "seed-b"]
    assert "has no API key" in event["message"]
    operator = SeedanceBatchGenerateOperator(task_id="b", requests=[{"prompt": "p"}])
    ctx = context(Store())
    with pytest.raises(SeedanceError, match=r"has no API key.*a retry re-attaches"):
        operator.execute_complete(ctx, event)  # type: ignore[arg-type]
    # What the batch's items cost is recorded even so (nothing was submitted by this try).
    assert ctx["ti"].xcoms["seedance_batch_results"]["totals"]["requests"] == 1


# ----------------------------------------------------------------------------- one wait policy
class _QuickBackoffHook(SeedanceHook):
    """The trigger's hook with a short backoff ceiling, so a long streak of failures is quick."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs["retry_min_wait"] = 0.01
        kwargs["retry_max_wait"] = 0.02
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


OUTAGE_FAULTS = 14  # more than the old limits: 5 in a row (blocking), 9 (deferrable)


def test_blocking_wait_rides_out_more_failures_than_an_attempt_count(emulator) -> None:
    hook = SeedanceHook(status_retries=2, retry_min_wait=0.01, retry_max_wait=0.02)
    task_id = hook.submit("p")
    emulator.add_faults({"endpoint": "status", "fault": "http_500", "times": OUTAGE_FAULTS})
    task = hook.wait_for_completion(task_id, poll_interval=0.1, timeout=120)
    assert task.is_success
    assert not emulator.ledger().get("pending_faults")


def test_deferrable_wait_rides_out_the_same_outage(emulator) -> None:
    task_id = submit()
    emulator.add_faults({"endpoint": "status", "fault": "http_500", "times": OUTAGE_FAULTS})
    trigger = SeedanceStatusTrigger(task_id, poll_interval=0.05)
    trigger.hook_class = _QuickBackoffHook
    [event] = asyncio.run(collect(trigger))
    assert event["status"] == "success"


def test_both_waits_give_up_once_the_outage_outlasts_max_outage(emulator) -> None:
    task_id = submit()
    emulator.add_faults({"endpoint": "status", "fault": "http_500", "times": 10_000})
    hook = SeedanceHook(retry_min_wait=0.01, retry_max_wait=0.02, max_outage=0.3)
    with pytest.raises(SeedanceError) as blocking:
        hook.wait_for_completion(task_id, poll_interval=0.1, timeout=120)
    assert blocking.value.retryable and "spends nothing" in str(blocking.value)
    trigger = SeedanceStatusTrigger(task_id, poll_interval=0.05, max_outage=0.3)
    trigger.hook_class = _QuickBackoffHook
    [event] = asyncio.run(collect(trigger))
    assert event["status"] == "error" and event["error_code"] == "INTERNAL_ERROR"


def test_batch_trigger_reports_an_item_once_its_outage_outlasts_max_outage(emulator) -> None:
    ids = [submit("a"), submit("b")]
    emulator.add_faults({"endpoint": "status", "fault": "http_500", "times": 10_000})
    trigger = SeedanceBatchStatusTrigger(ids, poll_interval=0.02, max_outage=0.2)
    [event] = [e.payload for e in asyncio.run(_events(trigger))]
    assert event["status"] == "done" and sorted(event["errors"]) == sorted(ids)
    assert all("in a row" in message for message in event["errors"].values())


async def _events(trigger: SeedanceBatchStatusTrigger) -> list:
    return [event async for event in trigger.run()]


def test_a_deadline_during_an_outage_is_a_timeout_not_an_error(emulator) -> None:
    task_id = submit()
    emulator.add_faults({"endpoint": "status", "fault": "http_500", "times": 10_000})
    hook = SeedanceHook(retry_min_wait=0.05, retry_max_wait=0.1)
    with pytest.raises(SeedanceTimeoutError) as info:
        hook.wait_for_completion(task_id, poll_interval=0.1, timeout=0.5)
    assert info.value.task_id == task_id


# ----------------------------------------------------------------------------- where the connection lives
def test_async_lookup_falls_back_to_the_sync_lookup_off_the_loop(emulator, monkeypatch) -> None:
    """Where the async lookup has no backend (the in-process trigger of dag.test()), the
    hook resolves the connection with the sync lookup in a worker thread."""
    import threading

    def no_async_backend(*args: object, **kwargs: object) -> None:
        raise RuntimeError("The conn_id `seedance_default` isn't defined")

    monkeypatch.setattr("airflow.providers.common.compat.connection.get_async_connection", no_async_backend)
    loop_threads: list[bool] = []
    original = SeedanceHook._resolve_settings

    def spy(self: SeedanceHook):  # type: ignore[no-untyped-def]
        loop_threads.append(threading.current_thread() is threading.main_thread())
        return original(self)

    task_id = submit()
    monkeypatch.setattr(SeedanceHook, "_resolve_settings", spy)
    task = asyncio.run(SeedanceHook().aget_status(task_id))
    assert task.task_id == task_id
    assert loop_threads == [False]  # resolved once, and not on the event loop's thread


@pytest.fixture
def connection_in_metadata_db(emulator, airflow_db, monkeypatch):
    """``seedance_default`` stored only in Airflow's metadata database (no env var)."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    monkeypatch.delenv("AIRFLOW_CONN_SEEDANCE_DEFAULT")
    monkeypatch.setenv("SEEDANCE_POLL_INTERVAL", "0.3")
    with create_session() as session:
        session.query(Connection).filter_by(conn_id="seedance_default").delete()
        session.add(
            Connection(
                conn_id="seedance_default", conn_type="seedance", host=emulator.base_url, password=API_KEY
            )
        )
    yield emulator
    with create_session() as session:
        session.query(Connection).filter_by(conn_id="seedance_default").delete()


@pytest.mark.parametrize("where", ["metadata_db", "env"])
def test_dag_test_deferrable_run_resolves_the_connection(request, emulator, airflow_db, where: str) -> None:
    """Issue 18 item 1, in process: dag.test() runs the trigger in line; the connection may be
    stored in the metadata DB (no async backend there) or in an environment variable."""
    from tests.dag_support import TEST_DAGS, run_dag

    if where == "metadata_db":
        request.getfixturevalue("connection_in_metadata_db")
    run = run_dag(TEST_DAGS, "op_deferrable")
    assert run.state == "success"
    [result] = run.results("generate")
    assert result["status"] == "SUCCESS" and result["video_url"]
    assert emulator.ledger()["generate_requests"] == 1


CLI_DAG = """
from __future__ import annotations

import os

from airflow.sdk import DAG

from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

with DAG("seedance_cli_deferrable", schedule=None, catchup=False):
    SeedanceGenerateOperator(
        task_id="generate",
        prompt="A lighthouse at dusk",
        resolution="480p",
        duration=4,
        deferrable=True,
        poll_interval=0.5,
        output_path=os.environ["SEEDANCE_TEST_OUTPUT"],
    )

from airflow_provider_seedance.operators.batch import SeedanceBatchGenerateOperator
from airflow_provider_seedance.sensors.seedance import SeedanceStatusSensor

# Another conn_id, and every waiting task type, deferred (red-team of issue 18).
with DAG("seedance_cli_other_conn", schedule=None, catchup=False):
    single = SeedanceGenerateOperator(
        task_id="generate",
        seedance_conn_id="my_seedance",
        prompt="A lighthouse at dawn",
        resolution="480p",
        duration=4,
        deferrable=True,
        poll_interval=0.5,
    )
    single >> SeedanceStatusSensor(
        task_id="watch",
        seedance_conn_id="my_seedance",
        seedance_task_id="{{ ti.xcom_pull(task_ids='generate')['task_id'] }}",
        deferrable=True,
        poll_interval=0.5,
    )
    SeedanceBatchGenerateOperator(
        task_id="batch",
        seedance_conn_id="my_seedance",
        requests=[{"id": "a", "prompt": "A lighthouse at noon", "resolution": "480p", "duration": 4}],
        output_path_template=os.environ["SEEDANCE_TEST_OUTPUT"] + ".{id}.mp4",
        deferrable=True,
        poll_interval=0.5,
    )
"""


@pytest.fixture(scope="module")
def cli_home(tmp_path_factory):
    """A separate Airflow home for the CLI, with its own migrated DB and the DAG above."""
    import subprocess
    import sys
    from pathlib import Path

    home = tmp_path_factory.mktemp("cli-airflow-home")
    (home / "dags").mkdir()
    (home / "dags" / "cli_dag.py").write_text(CLI_DAG)
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("AIRFLOW", "SEEDANCE"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        AIRFLOW__CORE__FERNET_KEY="Mh1eNBDrLbOy1aD3sXvLzJ8wqoyA6wq6Le0qg0s4lU0=",
        PYTHONPATH=str(Path(__file__).resolve().parent),
    )
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    return airflow, env, home


@pytest.mark.parametrize("where", ["metadata_db", "env", "secrets_backend"])
def test_airflow_dags_test_cli_delivers_with_the_connection_wherever_it_lives(
    emulator, cli_home, tmp_path, where: str
) -> None:
    """Issue 18 item 1 as a user meets it: `airflow connections add` (or an env var, or a
    secrets backend), then `airflow dags test` of a deferrable DAG: one charge, one video."""
    import subprocess

    airflow, base_env, _ = cli_home
    env = dict(base_env, SEEDANCE_TEST_OUTPUT=str(tmp_path / "video.mp4"))
    conn = connection_json(emulator.base_url)
    subprocess.run([airflow, "connections", "delete", "seedance_default"], env=env, capture_output=True)
    if where == "metadata_db":
        add = [airflow, "connections", "add", "seedance_default", "--conn-type", "seedance"]
        add += ["--conn-host", emulator.base_url, "--conn-password", API_KEY]
        subprocess.run(add, env=env, check=True, capture_output=True)
    elif where == "env":
        env["AIRFLOW_CONN_SEEDANCE_DEFAULT"] = conn
    else:
        env["AIRFLOW__SECRETS__BACKEND"] = "secrets_stub.StubSecretsBackend"
        env["SEEDANCE_STUB_CONNECTION"] = conn
    done = subprocess.run(
        [airflow, "dags", "test", "seedance_cli_deferrable"], env=env, capture_output=True, text=True
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "isn't defined" not in output
    assert (tmp_path / "video.mp4").stat().st_size > 0
    assert emulator.ledger()["generate_requests"] == 1
    assert API_KEY not in output


@pytest.mark.parametrize("form", ["conn_uri", "conn_json_with_extra"])
def test_airflow_dags_test_finds_a_cli_connection_in_any_form_for_every_deferred_task_type(
    emulator, cli_home, tmp_path, form: str
) -> None:
    """Red-team of issue 18: `airflow connections add` with --conn-uri (the base URL's scheme
    in the path, an extra as a query parameter) or --conn-json (with extras), under a conn_id
    other than seedance_default; the deferred single operator, sensor and batch operator of
    `airflow dags test` all find it: each POST charged once and nothing fails after paying."""
    import subprocess

    airflow, base_env, _ = cli_home
    env = dict(base_env, SEEDANCE_TEST_OUTPUT=str(tmp_path / "video.mp4"))
    subprocess.run([airflow, "connections", "delete", "my_seedance"], env=env, capture_output=True)
    if form == "conn_uri":
        host = emulator.base_url.split("://", 1)[1]
        spec = ["--conn-uri", f"seedance://:{API_KEY}@{host}/http?timeout=30"]
    else:
        spec = ["--conn-json", connection_json(emulator.base_url, timeout=30)]
    subprocess.run(
        [airflow, "connections", "add", "my_seedance", *spec], env=env, check=True, capture_output=True
    )
    done = subprocess.run(
        [airflow, "dags", "test", "seedance_cli_other_conn"], env=env, capture_output=True, text=True
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "isn't defined" not in output and API_KEY not in output
    assert (tmp_path / "video.mp4.a.mp4").stat().st_size > 0
    ledger = emulator.ledger()
    assert ledger["generate_requests"] == 2 and ledger["accounts"][API_KEY]["charged"] == 16, ledger
