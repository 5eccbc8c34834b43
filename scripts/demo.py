"""`make demo`: the marketing pipeline DAG, run for real against the bundled emulator.

Starts the emulator on a free loopback port, gives Airflow a throw-away home (SQLite),
runs ``seedance_marketing_pipeline`` with ``dag.test()`` (real task runner, real triggers,
real XCom), prints where each video landed and what it cost, runs the same day a second
time to show that a rerun costs nothing, and stops the emulator.

Nothing here talks to the internet; with a real API key only the connection changes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: ``make ui`` browses what the demo left here; the demo's own test points it elsewhere.
OUTPUT = Path(os.environ.get("SEEDANCE_DEMO_OUTPUT", REPO / "demo-output")).resolve()
VIDEOS = OUTPUT / "videos"
DEMO_KEY = "sk-demo-" + os.urandom(6).hex()


def _silence_third_party_warnings() -> None:
    """Filter the one warning that third-party code raises about third-party code.

    ``dag.test()`` serves Airflow's execution API in-process; that API imports ``svcs``, whose
    FastAPI integration imports ``starlette.testclient``, and Starlette then warns that its
    test client's use of ``httpx`` is deprecated. Neither the demo nor this provider uses the
    test client, and nobody running the demo can act on it, so it is ignored by its exact text
    (any other warning still shows).
    """
    warnings.filterwarnings(
        "ignore",
        message=r"Using `httpx` with `starlette\.testclient` is deprecated",
        category=UserWarning,  # StarletteDeprecationWarning derives from it
    )


def _prepare_airflow(home: Path, emulator_url: str) -> None:
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags_examples"),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AIRFLOW_CONN_SEEDANCE_DEFAULT": json.dumps(
                {"conn_type": "seedance", "host": emulator_url, "password": DEMO_KEY}
            ),
            "SEEDANCE_POLL_INTERVAL": "1",
            "SEEDANCE_OUTPUT_DIR": f"file://{VIDEOS}",
        }
    )
    airflow = Path(sys.executable).with_name("airflow")
    print("» preparing a throw-away Airflow (SQLite) …", flush=True)
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True)


def _run_pipeline(logical_date: object) -> list[dict]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    try:
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    except ImportError:  # Airflow 3.1
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.models.dagbag import DagBag, sync_bag_to_db  # type: ignore[attr-defined,no-redef]

        DagBundlesManager().sync_bundles_to_db()
        bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"], include_examples=False)
        sync_bag_to_db(bag, "dags-folder", None)
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    dag = bag.get_dag("seedance_marketing_pipeline")
    run = dag.test(logical_date=logical_date)
    if str(run.state) != "success":
        raise SystemExit(f"the pipeline ended {run.state}")
    with create_session() as session:
        rows = (
            session.query(XComModel)
            .filter_by(dag_id=dag.dag_id, run_id=run.run_id, task_id="generate_video", key="return_value")
            .order_by(XComModel.map_index)
            .all()
        )
        return [XComModel.deserialize_value(row) for row in rows]


def _table(results: list[dict]) -> str:
    lines = [f"{'prompt':<58} {'file':<44} {'size':>9} {'credits':>7} {'dollars':>8}"]
    for r in results:
        path = r["output_path"].replace(f"file://{REPO}/", "").replace(f"file://{OUTPUT.parent}/", "")
        prompt = r["request"]["prompt"]
        prompt = prompt if len(prompt) <= 56 else prompt[:55] + "…"
        dollars = f"${r['consumed_usd']:.3f}"
        lines.append(f"{prompt:<58} {path:<44} {r['bytes']:>8,}B {r['consumed_credits']:>7} {dollars:>8}")
    credits = sum(r["consumed_credits"] for r in results)
    total = f"${sum(r['consumed_usd'] for r in results):.3f}"
    lines.append(f"{'total':<58} {'':<44} {'':>9} {credits:>7} {total:>8}")
    return "\n".join(lines)


def main() -> int:
    import pendulum

    from airflow_provider_seedance.emulator.testing import EmulatorProcess

    _silence_third_party_warnings()
    OUTPUT.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(VIDEOS, ignore_errors=True)  # a fresh run each time: generate, then reuse
    started = time.monotonic()
    print("» starting the bundled Seedance emulator …", flush=True)
    with EmulatorProcess(api_keys={DEMO_KEY: 10_000}, generation_seconds=3.0) as emulator:
        print(f"  emulator at {emulator.base_url} (a real HTTP server on loopback)")
        home = OUTPUT / "airflow-home"  # kept: `make ui` browses what the demo made
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        _prepare_airflow(home, emulator.base_url)
        day = pendulum.now("UTC").start_of("day")
        print("» running DAG seedance_marketing_pipeline (deferrable generations, delivery) …", flush=True)
        results = _run_pipeline(day)
        ledger = emulator.ledger()
        print("\nVideos delivered (real MP4 files you can open):\n")
        print(_table(results))
        account = ledger["accounts"][DEMO_KEY]
        print(
            f"\nEmulator ledger: {ledger['generate_requests']} generate requests, "
            f"{account['charged']} credits charged, balance {account['balance']}."
        )
        print("\n» running the same day again (a rerun or backfill) …", flush=True)
        again = _run_pipeline(day.add(hours=1))
        reused = sum(1 for r in again if r.get("reused_existing"))
        ledger2 = emulator.ledger()
        print(
            f"  {reused} of {len(again)} videos already delivered: "
            f"{ledger2['generate_requests'] - ledger['generate_requests']} new generate requests, "
            f"{sum(r['consumed_credits'] for r in again)} credits spent."
        )
    print(f"\nVideos are in {VIDEOS} — done in {time.monotonic() - started:.0f}s.")
    print("Watch them in the Airflow UI: `make ui`, then open http://127.0.0.1:8080 and click Seedance.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
