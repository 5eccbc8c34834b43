"""The callback receiver over real HTTP: the real emulator (``--allow-local-callbacks``) calls back
to the plugin's FastAPI app served by uvicorn, mounted at ``/seedance`` as the API server mounts
it, on the session's real metadata DB.

A real DAG run provides the task instance; the test then puts it in the state a deferring task
leaves it in (``DEFERRED`` on a ``SeedanceStatusTrigger`` row with a 300 s poll interval, which no
triggerer runs here), so that only the callback can resume it.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_seedance.callbacks import CALLBACK_PATH, CallbackIdentity, CallbackSettings, sign
from airflow_provider_seedance.emulator.testing import EmulatorProcess
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.models import GenerationRequest
from airflow_provider_seedance.triggers.seedance import SeedanceStatusTrigger
from tests.conftest import DAGS_FOLDER, connection_json

KEY = "sk-callback-S3CRET-0b1c2d3e"
SECRET = "callback-secret-for-tests-0123456789abcdef"
CONN_ID = "seedance_callbacks"
#: The same secret, on an emulator whose generations take 10 minutes: they stay IN_PROGRESS.
SLOW_CONN_ID = "seedance_callbacks_slow"
DAG_ID = "callback_probe"
PROBE_DAG = f'''
from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

with DAG("{DAG_ID}", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False):

    @task
    def generate() -> None:
        return None

    @task
    def other() -> None:
        return None

    generate()
    other()
'''

pytestmark = pytest.mark.timeout(180)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Receiver:
    base_url: str
    emulator: EmulatorProcess
    run_id: str

    def url(self, token: str) -> str:
        return self.base_url + CALLBACK_PATH + token


@pytest.fixture(scope="module")
def receiver(airflow_db: Path) -> Iterator[Receiver]:
    import uvicorn
    from fastapi import FastAPI

    from airflow_provider_seedance.plugins.seedance_view import app
    from tests.dag_support import run_dag

    dag_file = DAGS_FOLDER / f"{DAG_ID}.py"
    dag_file.write_text(PROBE_DAG)
    run = run_dag(DAGS_FOLDER, DAG_ID)
    assert run.state == "success", run.tasks

    port = _free_port()
    parent = FastAPI()
    parent.mount("/seedance", app)  # as the API server mounts the plugin
    server = uvicorn.Server(uvicorn.Config(parent, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    with (
        EmulatorProcess(api_keys={KEY: 100_000}, generation_seconds=2.0, allow_local_callbacks=True) as emu,
        EmulatorProcess(
            api_keys={KEY: 100_000}, generation_seconds=600.0, allow_local_callbacks=True
        ) as slow,
        pytest.MonkeyPatch.context() as mp,
    ):
        for conn_id, emulator in ((CONN_ID, emu), (SLOW_CONN_ID, slow)):
            mp.setenv(
                f"AIRFLOW_CONN_{conn_id.upper()}",
                connection_json(
                    emulator.base_url, KEY, callback_secret=SECRET, callback_base_url=base_url, emulator=True
                ),
            )
        deadline = time.time() + 20
        while not server.started and time.time() < deadline:
            time.sleep(0.05)
        yield Receiver(base_url, emu, run.run_id)
    server.should_exit = True
    thread.join(timeout=10)
    dag_file.unlink(missing_ok=True)


def identity(
    receiver: Receiver, task_id: str = "generate", conn_id: str = CONN_ID, try_number: int = 1
) -> CallbackIdentity:
    return CallbackIdentity.for_try(conn_id, DAG_ID, receiver.run_id, task_id, -1, try_number)


def defer_on(
    receiver: Receiver,
    seedance_task_id: str,
    task_id: str = "generate",
    conn_id: str = CONN_ID,
    try_number: int = 1,
    end_on_success: dict[str, Any] | None = None,
) -> None:
    """Leave ``task_id`` as a deferring operator leaves it: DEFERRED on our trigger."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    trigger = SeedanceStatusTrigger(
        seedance_task_id, conn_id, poll_interval=300.0, end_on_success=end_on_success
    )
    with create_session() as session:
        row = Trigger.from_object(trigger)
        session.add(row)
        session.flush()
        ti = (
            session.query(TaskInstance)
            .filter_by(dag_id=DAG_ID, run_id=receiver.run_id, task_id=task_id)
            .one()
        )
        ti.state = TaskInstanceState.DEFERRED
        ti.trigger_id = row.id
        ti.next_method = "execute_complete"
        ti.next_kwargs = {"seedance_task_id": seedance_task_id}
        ti.try_number = try_number


def ti_row(receiver: Receiver, task_id: str = "generate") -> tuple[str, Any]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = (
            session.query(TaskInstance)
            .filter_by(dag_id=DAG_ID, run_id=receiver.run_id, task_id=task_id)
            .one()
        )
        return str(ti.state), ti.next_kwargs


def submit(receiver: Receiver, callback_url: str | None, conn_id: str = CONN_ID) -> str:
    hook = SeedanceHook(conn_id)
    request = GenerationRequest(prompt="a lighthouse at dusk", resolution="480p", duration="4")
    return hook.submit_request(request, callback_url=callback_url)


def wait_for_state(receiver: Receiver, wanted: str, task_id: str = "generate", seconds: float = 30) -> str:
    deadline = time.time() + seconds
    state = ""
    while time.time() < deadline:
        state, _ = ti_row(receiver, task_id)
        if state == wanted:
            break
        time.sleep(0.2)
    return state


def decoded(next_kwargs: Any) -> dict[str, Any]:
    """A task instance's ``next_kwargs`` as the worker will read them (3.3 stores them with serde)."""
    try:
        from airflow.sdk.serde import deserialize
    except ImportError:  # pragma: no cover - Airflow 3.1
        return dict(next_kwargs)
    try:
        return dict(deserialize(next_kwargs))
    except Exception:
        return dict(next_kwargs)


def callbacks() -> CallbackSettings:
    settings = SeedanceHook(CONN_ID).settings.callbacks
    assert settings is not None
    return settings


@contextlib.contextmanager
def deferred_before_the_callback(receiver: Receiver) -> Iterator[None]:
    """The generation renders (and calls back) only once the block is done (the task instance
    has deferred, the run has ended), however slow the machine: a callback before that would
    find nothing to resume."""
    receiver.emulator.hold()
    try:
        yield
    finally:
        receiver.emulator.hold(False)


# --------------------------------------------------------------------------- resuming
def test_the_emulators_callback_resumes_the_deferred_task_with_the_triggers_own_event(receiver) -> None:
    url = callbacks().url_for(identity(receiver), time.time() + 600)
    with deferred_before_the_callback(receiver):
        seedance_task_id = submit(receiver, url)
        defer_on(receiver, seedance_task_id)

    assert wait_for_state(receiver, "scheduled") == "scheduled", "the callback did not resume the task"
    _, next_kwargs = ti_row(receiver)
    event = decoded(next_kwargs)["event"]
    assert event["status"] == "success" and event["task"]["task_id"] == seedance_task_id
    assert event["result"]["video_url"]
    assert receiver.emulator.ledger()["generate_requests"] >= 1


def test_a_repeated_callback_after_the_resume_does_nothing(receiver) -> None:
    token = sign(SECRET, identity(receiver), time.time() + 600)
    seedance_task_id = submit(receiver, None)
    defer_on(receiver, seedance_task_id)
    deadline = time.time() + 20
    while receiver.emulator.tasks()[-1]["status"] != "SUCCESS" and time.time() < deadline:
        time.sleep(0.2)
    first = requests.post(receiver.url(token), json={}, timeout=30)
    assert first.status_code == 200 and first.json() == {"status": "resumed"}
    again = requests.post(receiver.url(token), json={}, timeout=30)
    assert again.status_code == 202 and again.json() == {"status": "ignored"}


# --------------------------------------------------------------------------- ending without a worker
def xcom_rows(receiver: Receiver, task_id: str) -> dict[str, Any]:
    """The XCom rows of ``task_id`` as stored (no decoding)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter_by(dag_id=DAG_ID, run_id=receiver.run_id, task_id=task_id)
        return {row.key: row.value for row in rows}


def push_as_the_task_runner(
    receiver: Receiver, task_id: str, xcoms: dict[str, Any], links: dict[str, Any]
) -> None:
    """Store XComs through Airflow's own execution API route, with what the task runner sends it:
    ``XCom.set`` serialises with the XCom backend, ``XCom._set_xcom_in_db`` sends a link as is."""
    from airflow.api_fastapi.execution_api.routes.xcoms import set_xcom
    from airflow.sdk.execution_time.xcom import XCom
    from airflow.utils.session import create_session

    sent = {**links}
    for key, value in xcoms.items():
        sent[key] = XCom.serialize_value(
            value, key=key, task_id=task_id, dag_id=DAG_ID, run_id=receiver.run_id
        )
    with create_session() as session:
        for key, value in sent.items():
            set_xcom(DAG_ID, receiver.run_id, task_id, key, session, value=value, map_index=-1)


def test_a_success_callback_ends_an_end_on_success_task_with_the_xcoms_the_task_runner_stores(
    receiver,
) -> None:
    from airflow.sdk.execution_time.xcom import XCom

    from airflow_provider_seedance.triggers.seedance import task_end

    spec = {
        "request": {"prompt": "a lighthouse at dusk", "resolution": "480p", "duration": "4"},
        "base_url": "https://example.invalid/api",
        "return_value": True,
        "links": {"_link_SeedanceVideoLink": "https://example.invalid/video"},
    }
    url = callbacks().url_for(identity(receiver), time.time() + 600)
    with deferred_before_the_callback(receiver):
        seedance_task_id = submit(receiver, url)
        spec["seedance_task_ids"] = [seedance_task_id]
        defer_on(receiver, seedance_task_id, end_on_success=spec)

    # Ended, not resumed: no worker will run ``execute_complete``.
    assert wait_for_state(receiver, "success") == "success", "the callback did not end the task"
    stored = xcom_rows(receiver, "generate")
    task = SeedanceHook(CONN_ID).get_status(seedance_task_id)
    end = task_end(spec, task)
    assert end is not None
    assert set(stored) == set(end.xcoms) | set(end.links)

    # Byte for byte what Airflow stores when the task runner pushes the same values.
    push_as_the_task_runner(receiver, "other", end.xcoms, end.links)
    by_task_runner = xcom_rows(receiver, "other")
    assert {key: by_task_runner[key] for key in stored} == stored
    # A downstream task (the task SDK's reader) gets the result as a dict, not a string.
    returned = XCom.deserialize_value(type("Row", (), {"value": stored["return_value"]})())
    assert returned == end.result.to_xcom() and returned["task_id"] == seedance_task_id

    # The same callback again (a retry by the service, a replay): nothing more is written.
    again = requests.post(url, json={}, timeout=30)
    assert again.status_code == 202 and again.json() == {"status": "ignored"}
    assert xcom_rows(receiver, "generate") == stored and ti_row(receiver)[0] == "success"


# --------------------------------------------------------------------------- hostile callers
@pytest.fixture
def in_progress(receiver: Receiver) -> Iterator[str]:
    """A generation still rendering (10 minutes), its task instance deferred on it."""
    seedance_task_id = submit(receiver, None, conn_id=SLOW_CONN_ID)
    defer_on(receiver, seedance_task_id, conn_id=SLOW_CONN_ID)
    yield seedance_task_id


def slow(receiver: Receiver) -> CallbackIdentity:
    return identity(receiver, conn_id=SLOW_CONN_ID)


def assert_still_deferred(receiver: Receiver) -> None:
    assert ti_row(receiver)[0] == "deferred"


def test_a_body_claiming_success_for_a_generation_in_progress_resumes_nothing(receiver, in_progress) -> None:
    token = sign(SECRET, identity(receiver, conn_id=SLOW_CONN_ID), time.time() + 600)
    lie = {
        "code": 200,
        "data": {"task_id": in_progress, "status": "SUCCESS", "response": ["https://evil/x.mp4"]},
    }
    answer = requests.post(receiver.url(token), json=lie, timeout=30)
    assert answer.status_code == 202
    assert_still_deferred(receiver)


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(
            lambda r: sign("not-the-secret-0123456789abcdefghijkl", slow(r), time.time() + 600), id="forged"
        ),
        pytest.param(lambda r: sign(SECRET, slow(r), time.time() - 1), id="expired"),
        pytest.param(lambda r: "v1.garbage.garbage", id="garbage"),
    ],
)
def test_forged_expired_or_garbage_tokens_are_refused_alike(receiver, in_progress, make_token) -> None:
    answer = requests.post(receiver.url(make_token(receiver)), json={}, timeout=30)
    assert answer.status_code == 403 and answer.json() == {"status": "refused"}
    assert KEY not in answer.text and SECRET not in answer.text
    assert_still_deferred(receiver)


def test_no_token_reaches_nothing(receiver, in_progress) -> None:
    answer = requests.post(receiver.base_url + CALLBACK_PATH, json={}, timeout=30)
    assert answer.status_code in (404, 405)
    assert_still_deferred(receiver)


def test_another_task_instances_token_does_not_resume_this_one(receiver, in_progress) -> None:
    # A valid token of the other task instance (which is not deferred): nothing to do there, and
    # nothing happens here.
    token = sign(SECRET, identity(receiver, task_id="other", conn_id=SLOW_CONN_ID), time.time() + 600)
    answer = requests.post(receiver.url(token), json={}, timeout=30)
    assert answer.status_code == 202
    assert_still_deferred(receiver)


def test_a_token_of_a_task_instance_that_does_not_exist_is_refused(receiver, in_progress) -> None:
    token = sign(SECRET, identity(receiver, task_id="no_such_task", conn_id=SLOW_CONN_ID), time.time() + 600)
    answer = requests.post(receiver.url(token), json={}, timeout=30)
    assert answer.status_code == 403 and answer.json() == {"status": "refused"}
    assert_still_deferred(receiver)


def test_a_10_mb_body_is_refused_before_anything_is_read(receiver, in_progress) -> None:
    token = sign(SECRET, slow(receiver), time.time() + 600)
    answer = requests.post(receiver.url(token), data=b"x" * (10 * 1024 * 1024), timeout=60)
    assert answer.status_code == 413
    assert_still_deferred(receiver)


# --------------------------------------------------------------------------- which tokens resume
def finished(receiver: Receiver) -> str:
    """A generation that has ended on the fast emulator."""
    seedance_task_id = submit(receiver, None)
    deadline = time.time() + 20
    while time.time() < deadline:
        if any(t["task_id"] == seedance_task_id and t["finished"] for t in receiver.emulator.tasks()):
            break
        time.sleep(0.2)
    return seedance_task_id


def test_the_token_of_an_earlier_try_resumes_the_retry_that_reattached_to_its_generation(receiver) -> None:
    defer_on(receiver, finished(receiver), try_number=2)
    token = sign(SECRET, identity(receiver, try_number=1), time.time() + 600)
    answer = requests.post(receiver.url(token), json={}, timeout=30)
    assert answer.status_code == 200 and ti_row(receiver)[0] == "scheduled"


def test_a_token_of_a_later_try_than_the_task_instance_has_resumes_nothing(receiver) -> None:
    defer_on(receiver, finished(receiver), try_number=1)
    token = sign(SECRET, identity(receiver, try_number=2), time.time() + 600)
    answer = requests.post(receiver.url(token), json={}, timeout=30)
    assert answer.status_code == 403 and ti_row(receiver)[0] == "deferred"


def test_a_token_for_another_connection_than_the_triggers_resumes_nothing(receiver) -> None:
    defer_on(receiver, finished(receiver), conn_id=CONN_ID)
    token = sign(SECRET, identity(receiver, conn_id=SLOW_CONN_ID), time.time() + 600)
    answer = requests.post(receiver.url(token), json={}, timeout=30)
    assert answer.status_code == 403 and ti_row(receiver)[0] == "deferred"


def test_an_unreadable_status_answers_503_and_leaves_the_task_to_its_fallback_poll(receiver) -> None:
    defer_on(receiver, finished(receiver))
    receiver.emulator.add_faults({"endpoint": "status", "fault": "http_500", "times": 10})
    try:
        token = sign(SECRET, identity(receiver), time.time() + 600)
        answer = requests.post(receiver.url(token), json={}, timeout=30)
    finally:
        receiver.emulator.clear_faults()
    assert answer.status_code == 503 and ti_row(receiver)[0] == "deferred"
    assert KEY not in answer.text


def test_a_callback_that_arrives_before_the_try_has_deferred_waits_for_the_deferral(receiver) -> None:
    """A fast generation can end between the operator's status read and its deferral."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    seedance_task_id = finished(receiver)
    with create_session() as session:
        ti = (
            session.query(TaskInstance)
            .filter_by(dag_id=DAG_ID, run_id=receiver.run_id, task_id="generate")
            .one()
        )
        ti.state, ti.trigger_id, ti.try_number = TaskInstanceState.RUNNING, None, 1
    deferring = threading.Timer(0.5, defer_on, args=(receiver, seedance_task_id))
    deferring.start()
    try:
        token = sign(SECRET, identity(receiver), time.time() + 600)
        answer = requests.post(receiver.url(token), json={}, timeout=30)
    finally:
        deferring.join()
    assert answer.status_code == 200 and ti_row(receiver)[0] == "scheduled"


# --------------------------------------------------------------------------- fire-and-forget
FIRE_DAG_ID = "fire_and_forget_probe"
UPLOAD_DAG_ID = "fire_and_forget_upload"
COMPLETED_URI = "seedance://tests/fire-and-forget"
FIRE_DAGS = f'''
from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Asset, task

from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

COMPLETED = Asset("{COMPLETED_URI}")

with DAG("{FIRE_DAG_ID}", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False):
    SeedanceGenerateOperator(
        task_id="submit",
        prompt="a lighthouse at dusk",
        resolution="480p",
        duration=4,
        seedance_conn_id="{CONN_ID}",
        wait_for_completion=False,
        completion_asset=COMPLETED,
    )

with DAG("{UPLOAD_DAG_ID}", schedule=[COMPLETED], start_date=pendulum.datetime(2026, 1, 1), catchup=False):

    @task
    def upload() -> None:
        return None

    upload()
'''


def completion_events() -> list[tuple[dict[str, Any], tuple[str, str, str, int]]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(AssetEvent)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .filter(AssetModel.uri == COMPLETED_URI)
            .all()
        )
        return [
            (
                dict(row.extra or {}),
                (row.source_dag_id, row.source_run_id, row.source_task_id, row.source_map_index),
            )
            for row in rows
        ]


def unpause(dag_id: str) -> None:
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagModel).filter(DagModel.dag_id == dag_id).update({"is_paused": False})


def queued_upload_runs() -> int:
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.query(AssetDagRunQueue).filter(AssetDagRunQueue.target_dag_id == UPLOAD_DAG_ID).count()


def test_a_fire_and_forget_generation_records_one_asset_event_with_its_result_when_it_ends(receiver) -> None:
    """The task submits and ends at once; the emulator's callback makes the receiver read the
    status and record one event of ``completion_asset`` (the result in ``extra``), which
    queues the DAG scheduled on it. The same callback again records nothing more."""
    from tests.dag_support import run_dag

    dag_file = DAGS_FOLDER / "fire_and_forget_probe.py"
    dag_file.write_text(FIRE_DAGS)
    try:
        # Both DAGs in the database (a dag.test() writes its file's DAGs), the upload DAG
        # unpaused as in a deployment (Airflow queues no run for a paused DAG).
        assert run_dag(DAGS_FOLDER, UPLOAD_DAG_ID).state == "success"
        unpause(UPLOAD_DAG_ID)
        before = receiver.emulator.ledger()["generate_requests"]
        with deferred_before_the_callback(receiver):  # still rendering when the run ends
            run = run_dag(DAGS_FOLDER, FIRE_DAG_ID)
            assert run.state == "success", run.tasks
            (submitted,) = run.results("submit")
            assert submitted["status"] == "IN_PROGRESS"
        assert receiver.emulator.ledger()["generate_requests"] == before + 1

        deadline = time.time() + 30
        while not completion_events() and time.time() < deadline:
            time.sleep(0.3)
        events = completion_events()
        assert len(events) == 1, events
        extra, source = events[0]
        assert source == (FIRE_DAG_ID, run.run_id, "submit", -1)
        assert extra["seedance_task_id"] == submitted["task_id"]
        assert extra["status"] == "SUCCESS" and extra["video_url"] and extra["consumed_credits"] > 0
        assert KEY not in json.dumps(extra)
        assert queued_upload_runs() == 1

        # The service calls again (a retry of its callback): idempotent.
        fire = CallbackIdentity.for_try(
            CONN_ID, FIRE_DAG_ID, run.run_id, "submit", -1, 1, asset=(COMPLETED_URI, COMPLETED_URI)
        )
        again = requests.post(receiver.url(sign(SECRET, fire, time.time() + 600)), json={}, timeout=30)
        assert (again.status_code, again.json()) == (202, {"status": "ignored"})
        assert len(completion_events()) == 1
        assert receiver.emulator.ledger()["generate_requests"] == before + 1
    finally:
        dag_file.unlink(missing_ok=True)


def test_a_fire_and_forget_task_on_a_connection_without_callbacks_fails_before_sending(receiver) -> None:
    from airflow.sdk import Connection

    from airflow_provider_seedance.exceptions import SeedanceConfigurationError
    from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

    operator = SeedanceGenerateOperator(
        task_id="submit",
        prompt="a fox",
        seedance_conn_id="seedance_no_callbacks",
        wait_for_completion=False,
        completion_asset=COMPLETED_URI,
    )
    before = receiver.emulator.ledger()["generate_requests"]
    with pytest.MonkeyPatch.context() as mp:
        conn = Connection(
            conn_id="seedance_no_callbacks",
            conn_type="seedance",
            host=receiver.emulator.base_url,
            password=KEY,
        )
        mp.setenv("AIRFLOW_CONN_SEEDANCE_NO_CALLBACKS", conn.as_json())
        with pytest.raises(SeedanceConfigurationError, match=r"needs callbacks.*Nothing was sent"):
            operator.execute({"ti": None})  # type: ignore[arg-type]
    assert receiver.emulator.ledger()["generate_requests"] == before
