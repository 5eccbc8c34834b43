"""Run one test DAG with ``dag.test()`` in a process of its own, OpenLineage enabled by its env.

The OpenLineage provider reads its configuration once per process (and registers its listener
only when a transport is configured), so a DAG run that must emit events gets a fresh process.
It shares the test session's Airflow home (see tests/conftest.py).
Usage: ``python -m tests.dag.run_dag DAG_ID RUN_CONF_JSON OUT_JSON``; writes the run's state and id
to ``OUT_JSON`` (stdout is Airflow's log).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.dag_support import TEST_DAGS, run_dag

if __name__ == "__main__":
    run = run_dag(TEST_DAGS, sys.argv[1], run_conf=json.loads(sys.argv[2]))
    Path(sys.argv[3]).write_text(json.dumps({"state": run.state, "run_id": run.run_id}))
