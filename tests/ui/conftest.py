"""Real generations for the Seedance view, and a real ``airflow api-server`` that serves it.

``gallery_runs`` runs the DAGs of ``tests/ui/dags`` with ``dag.test()`` against an emulator of
their own (its video URLs must stay valid for the browser test), into the session's SQLite
metadata DB. ``api_server`` then starts ``airflow api-server`` on that DB with the plugin
loaded and users alice (admin), bob (viewer) and carol (viewer); DAGs are hidden per user by
``tests.ui.restricted_auth_manager``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pytest
import requests

from airflow_provider_seedance.emulator.testing import EmulatorProcess
from tests.conftest import DAGS_FOLDER, REPO, connection_json
from tests.dag_support import run_dag

GALLERY_DAGS = REPO / "tests" / "ui" / "dags" / "seedance_gallery_dags.py"
ARTIFACTS = REPO / "test-artifacts"
USERS = {"alice": "admin", "bob": "viewer", "carol": "viewer"}
#: bob may not read gallery_private; nobody but carol sees the impostor DAG.
HIDDEN = "bob=gallery_private|gallery_hostile;alice=gallery_hostile"
API_SECRET = "seedance-ui-tests-api-secret"

_link = DAGS_FOLDER / GALLERY_DAGS.name
if not _link.exists():
    _link.symlink_to(GALLERY_DAGS)


@dataclass
class GalleryRuns:
    emulator: EmulatorProcess
    output_dir: Path
    #: dag_id -> run_id
    runs: dict[str, str] = field(default_factory=dict)
    #: dag_id -> number of Seedance task instances it recorded
    generations: dict[str, int] = field(default_factory=dict)


GALLERY_DAG_IDS = (
    "gallery_mixed",
    "gallery_hostile",
    "gallery_private",
    "gallery_moderated",
    "gallery_launch",
)
#: Cards of gallery_mixed: retried, clip, clip_again (reuse), watch_clip, watch_elsewhere,
#: batch (2 items), undelivered (paid, not delivered), nothing_sent, refused (a wrong key: 401).
MIXED_CARDS = 10
#: A connection to the gallery's emulator whose key it does not know: the POST is refused (401).
WRONG_KEY_CONN = "AIRFLOW_CONN_SEEDANCE_WRONG_KEY"


def _forget_other_runs() -> None:
    """The gallery shows every Seedance generation in the DB: start from only the gallery's.

    (Earlier test modules of the same session ran their own DAGs into this DB.)
    """
    from airflow.models.dagrun import DagRun
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        for model in (XComModel, RenderedTaskInstanceFields, TaskInstanceHistory, TaskInstance, DagRun):
            session.query(model).filter(model.dag_id.notin_(GALLERY_DAG_IDS)).delete(
                synchronize_session=False
            )


@pytest.fixture(scope="session")
def gallery_runs(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GalleryRuns]:
    _forget_other_runs()
    output_dir = tmp_path_factory.mktemp("seedance-gallery-videos")
    saved = {
        k: os.environ.get(k)
        for k in ("AIRFLOW_CONN_SEEDANCE_DEFAULT", WRONG_KEY_CONN, "SEEDANCE_POLL_INTERVAL")
    }
    with EmulatorProcess(api_keys={"sk-ui-tests": 100_000}, generation_seconds=0.3) as emulator:
        os.environ["AIRFLOW_CONN_SEEDANCE_DEFAULT"] = connection_json(emulator.base_url, "sk-ui-tests")
        os.environ[WRONG_KEY_CONN] = connection_json(emulator.base_url, "sk-not-an-account")
        os.environ["SEEDANCE_POLL_INTERVAL"] = "0.2"
        try:
            gallery = GalleryRuns(emulator=emulator, output_dir=output_dir)
            conf = {"out": str(output_dir)}
            for dag_id, count, kwargs in (
                ("gallery_mixed", MIXED_CARDS, {"run_conf": conf}),
                ("gallery_hostile", 1, {}),
                ("gallery_private", 1, {"run_conf": conf}),
                ("gallery_moderated", 1, {}),
                ("gallery_launch", 3, {"run_conf": conf}),
            ):
                if dag_id in ("gallery_moderated", "gallery_mixed"):
                    emulator.add_faults(
                        {
                            "endpoint": "outcome",
                            "fault": "failed",
                            "times": 1,
                            "error_message": "CONTENT_POLICY_VIOLATION: gallery test rejection",
                        }
                    )
                result = run_dag(DAGS_FOLDER, dag_id, **kwargs)
                emulator.clear_faults()
                expected = "failed" if dag_id in ("gallery_moderated", "gallery_mixed") else "success"
                assert result.state == expected, (dag_id, result.tasks)
                gallery.runs[dag_id] = result.run_id
                gallery.generations[dag_id] = count
            yield gallery
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _entry_point_installed() -> bool:
    return any(
        ep.value.startswith("airflow_provider_seedance.")
        for ep in metadata.entry_points(group="airflow.plugins")
    )


@dataclass
class ApiServer:
    base_url: str
    log_path: Path
    tokens: dict[str, str] = field(default_factory=dict)

    def get(self, path: str, user: str | None = "alice", **kwargs: object) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})  # type: ignore[call-overload]
        if user is not None:
            headers["Authorization"] = f"Bearer {self.tokens[user]}"
        return requests.get(f"{self.base_url}{path}", headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]

    def patch(self, path: str, body: object, user: str = "alice") -> requests.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return requests.patch(f"{self.base_url}{path}", json=body, headers=headers, timeout=30)


@pytest.fixture(scope="session")
def api_server(gallery_runs: GalleryRuns, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    home = Path(os.environ["AIRFLOW_HOME"])
    work = tmp_path_factory.mktemp("seedance-api-server")
    plugins = work / "plugins"
    plugins.mkdir()
    if not _entry_point_installed():
        # Until pyproject declares the entry point, load the same class from a plugins folder.
        (plugins / "seedance_view_plugin.py").write_text(
            "from airflow_provider_seedance.plugins.seedance_view import SeedancePlugin  # noqa: F401\n"
        )
    passwords = work / "passwords.json"
    passwords.write_text(json.dumps({user: f"{user}-password" for user in USERS}))
    port = _free_port()
    env = os.environ.copy()
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
            "AIRFLOW__CORE__AUTH_MANAGER": "tests.ui.restricted_auth_manager.DagRestrictedAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in USERS.items()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API_AUTH__JWT_SECRET": "seedance-ui-tests-jwt-secret-0123456789",
            # Airflow 3.1 with a recent PyJWT refuses to sign a token without a string issuer.
            "AIRFLOW__API_AUTH__JWT_ISSUER": "seedance-ui-tests",
            "AIRFLOW__API__SECRET_KEY": API_SECRET,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "SEEDANCE_TEST_HIDDEN_DAGS": HIDDEN,
            # The connection form's Test button (off by default in Airflow): test_connection_ui.py.
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        }
    )
    log_path = work / "api-server.log"
    airflow = Path(sys.executable).with_name("airflow")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(airflow), "api-server", "--port", str(port), "--host", "127.0.0.1", "--workers", "1"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=work,
        )
    server = ApiServer(base_url=f"http://127.0.0.1:{port}", log_path=log_path)
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"api-server exited: {log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{server.base_url}/api/v2/monitor/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"api-server not healthy in 90 s: {log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        for user in USERS:
            response = requests.post(
                f"{server.base_url}/auth/token",
                json={"username": user, "password": f"{user}-password"},
                timeout=30,
            )
            assert response.status_code == 201, response.text
            server.tokens[user] = response.json()["access_token"]
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
