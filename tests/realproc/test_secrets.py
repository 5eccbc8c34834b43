"""After real runs, the Seedance API key appears nowhere Airflow or the emulator wrote.

Scanned: every file under the cluster's home (task logs, process logs, the SQLite file's raw
bytes), every row of every metadata table with Fernet-encrypted values decrypted (XComs,
rendered template fields, trigger kwargs, variables, ...), every trigger row seen while
tasks were deferred, what the REST API serves (rendered fields, XComs, task logs), and the
emulators' own logs. The runs include a failed generation, so exception messages are in
the logs too. Planted markers prove the scanner finds what it looks for.
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from airflow import __version__ as _airflow_version
from cryptography.fernet import Fernet, InvalidToken

from tests.airflow_processes import FERNET_KEY, AirflowCluster
from tests.realproc.conftest import CALLBACK_SECRET, RealprocEnv

AIRFLOW_VERSION = tuple(int(part) for part in _airflow_version.split(".")[:2])

pytestmark = pytest.mark.realproc

DAG_ID = "realproc_secrets"
FAILURE_MESSAGE = "CONTENT_POLICY_VIOLATION: planted by the secrets test"
_FERNET = Fernet(FERNET_KEY.encode())


# ---------------------------------------------------------------------- the scanner
def _plain_texts(value: Any) -> Iterator[str]:
    """The value as text, plus its plaintext when it is a Fernet token (encrypted columns)."""
    if value is None:
        return
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    yield text
    if text.startswith("gAAAAA"):
        with contextlib.suppress(InvalidToken):
            yield _FERNET.decrypt(text.encode()).decode("utf-8", "replace")


def files_containing(paths: Iterable[Path], needle: str) -> list[Path]:
    raw = needle.encode()
    return [p for p in paths if p.is_file() and raw in p.read_bytes()]


def db_cells_containing(db_path: Path, needle: str) -> list[str]:
    """``table.column`` of every metadata DB cell whose text (or decrypted text) has ``needle``."""
    hits: list[str] = []
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            cursor = db.execute(f'SELECT * FROM "{table}"')  # names come from sqlite_master
            columns = [d[0] for d in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row, strict=True):
                    if any(needle in text for text in _plain_texts(value)):
                        hits.append(f"{table}.{column}")
    return hits


@dataclass
class Sources:
    """Everything the scan reads, gathered once."""

    files: list[Path]
    trigger_kwargs: list[str]
    rest_texts: dict[str, str]

    def leaks(self, cluster: AirflowCluster, needle: str) -> list[str]:
        found = [f"file {p}" for p in files_containing(self.files, needle)]
        found += [f"db {cell}" for cell in db_cells_containing(cluster.db_path, needle)]
        found += [f"trigger kwargs {k[:80]}" for k in self.trigger_kwargs if needle in k]
        found += [f"REST {where}" for where, text in self.rest_texts.items() if needle in text]
        return found


def _rest_texts(cluster: AirflowCluster, runs: list[tuple[str, str]]) -> dict[str, str]:
    """Rendered fields, XCom values and logs of every task instance, as the API serves them."""
    texts: dict[str, str] = {}
    for dag_id, run_id in runs:
        for ti in cluster.task_instances(dag_id, run_id):
            task_id, map_index = ti["task_id"], ti["map_index"]
            where = f"{dag_id}/{run_id}/{task_id}[{map_index}]"
            texts[f"{where} rendered_fields"] = repr(ti.get("rendered_fields"))
            base = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries"
            for entry in cluster.api("GET", base, params={"map_index": map_index})["xcom_entries"]:
                value = cluster.api(
                    "GET", f"{base}/{entry['key']}", params={"map_index": map_index, "stringify": True}
                )
                texts[f"{where} xcom {entry['key']}"] = repr(value)
            for attempt in range(1, int(ti["try_number"]) + 1):
                texts[f"{where} log {attempt}"] = cluster.task_log(
                    dag_id, run_id, task_id, attempt, map_index
                )
    return texts


# ---------------------------------------------------------------------- the run
@pytest.fixture(scope="module")
def scanned(realproc: RealprocEnv) -> tuple[RealprocEnv, str, Sources]:
    """Run the secrets DAG (a FAILED generation, then a blocking and a deferred success)."""
    cluster = realproc.cluster
    emulator = realproc.emulators["seedance_secrets"]
    emulator.add_faults(
        {"endpoint": "outcome", "fault": "failed", "times": 1, "error_message": FAILURE_MESSAGE}
    )
    cluster.wait_for_dag(DAG_ID)
    cluster.unpause(DAG_ID)
    run_id = cluster.trigger(DAG_ID, conf={"note": "secrets scan"})

    def ended() -> bool:
        cluster.trigger_rows()  # remember the deferred tasks' trigger rows while they exist
        return str(cluster.dag_run(DAG_ID, run_id)["state"]) in ("success", "failed")

    cluster.wait_until(ended, timeout=180, interval=0.3, what="the secrets run to end")
    runs = [(r["dag_id"], r["dag_run_id"]) for r in cluster.api("GET", "/dags/~/dagRuns")["dag_runs"]]
    files = sorted(p for p in cluster.home.rglob("*") if p.is_file())
    files += [e.log_path for e in realproc.emulators.values()]
    sources = Sources(
        files=files,
        trigger_kwargs=[str(r["kwargs"]) for r in cluster.trigger_rows_seen.values()],
        rest_texts=_rest_texts(cluster, runs),
    )
    return realproc, run_id, sources


def test_secrets_run_produced_what_the_scan_must_cover(scanned: tuple[RealprocEnv, str, Sources]) -> None:
    """Guards against a vacuous scan: each source holds the run's real, non-secret data."""
    env, run_id, sources = scanned
    cluster = env.cluster
    states = {ti["task_id"]: ti["state"] for ti in cluster.task_instances(DAG_ID, run_id)}
    assert states == {"doomed": "failed", "ok_blocking": "success", "ok_deferrable": "success"}
    seedance_ids = [t["task_id"] for t in env.emulators["seedance_secrets"].tasks()]
    assert len(seedance_ids) == 3
    # The failure's exception message is in a scanned task log file and in the REST log.
    assert files_containing(cluster.task_log_files(), FAILURE_MESSAGE)
    assert any(FAILURE_MESSAGE in t for w, t in sources.rest_texts.items() if "doomed" in w and " log " in w)
    # XComs, rendered fields and trigger kwargs are in the scanned data.
    for seedance_id in seedance_ids:
        assert "xcom.value" in db_cells_containing(cluster.db_path, seedance_id)
    rendered = db_cells_containing(cluster.db_path, f"A templated clip, run {run_id}")
    assert "rendered_task_instance_fields.rendered_fields" in rendered
    if AIRFLOW_VERSION >= (3, 2):  # on 3.1 the REST text fetched here lacks them; the DB check covers them
        assert any(
            f"A templated clip, run {run_id}" in t for w, t in sources.rest_texts.items() if "rendered" in w
        )
    assert any(sid in kwargs for sid in seedance_ids for kwargs in sources.trigger_kwargs)
    assert any("seedance_task_id" in text for text in sources.trigger_kwargs)
    assert files_containing([env.emulators["seedance_secrets"].log_path], seedance_ids[0])


def test_scanner_finds_planted_markers_in_files_and_encrypted_rows(
    scanned: tuple[RealprocEnv, str, Sources],
) -> None:
    env, _, sources = scanned
    cluster = env.cluster
    marker = f"sk-planted-{uuid.uuid4().hex}"
    planted_file = cluster.logs_folder / "planted" / "attempt=1.log"
    planted_file.parent.mkdir(exist_ok=True)
    planted_file.write_text(f'{{"event": "Authorization: Bearer {marker}"}}\n', encoding="utf-8")
    # A Variable is stored Fernet-encrypted: only a decrypting scan can see it.
    cluster.api("POST", "/variables", json_body={"key": "planted_marker", "value": f"x{marker}x"})
    try:
        planted = Sources(files=[*sources.files, planted_file], trigger_kwargs=[marker], rest_texts={})
        leaks = planted.leaks(cluster, marker)
        assert f"file {planted_file}" in leaks
        assert "db variable.val" in leaks
        assert any(leak.startswith("trigger kwargs") for leak in leaks)
        [raw] = cluster.sql("SELECT val FROM variable WHERE key='planted_marker'")
        assert marker not in raw["val"]  # it really was encrypted
    finally:
        cluster.api("DELETE", "/variables/planted_marker")
        planted_file.unlink()
        planted_file.parent.rmdir()


def test_api_key_appears_in_no_log_xcom_rendered_field_trigger_row_or_emulator_log(
    scanned: tuple[RealprocEnv, str, Sources],
) -> None:
    env, _, sources = scanned
    assert sources.leaks(env.cluster, env.api_key) == []


def test_callback_secret_appears_in_no_log_xcom_rendered_field_trigger_row_or_emulator_log(
    scanned: tuple[RealprocEnv, str, Sources],
) -> None:
    """The ``seedance_callbacks`` connection's HMAC key (test_callbacks.py ran its DAG on this
    cluster) is kept like the API key."""
    env, _, sources = scanned
    assert sources.leaks(env.cluster, CALLBACK_SECRET) == []
