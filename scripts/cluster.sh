#!/usr/bin/env bash
# The production-shape stack on loopback: PostgreSQL, Redis, Airflow on CeleryExecutor (two
# workers, two triggerers, scheduler, dag-processor, api-server), S3 (moto) and the emulator.
# Usage: scripts/cluster.sh up|down|status   (VENV defaults to .venv; see tests/cluster/stack.py)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
command="${1:-status}"
if [ "$command" = "up" ]; then
  bash scripts/system_deps.sh
  # The stack's Python parts: Celery, Amazon (S3 through ObjectStoragePath), s3fs, psycopg2, moto.
  VIRTUAL_ENV="$VENV" "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" -e ".[dev,cluster]" \
    "apache-airflow==${AIRFLOW_VERSION:-3.3.2}"
fi
exec "$VENV/bin/python" -m tests.cluster.stack "$command"
