#!/usr/bin/env bash
# `make ui`: the Airflow UI (API server) over what `make demo` made, with the Seedance page.
# Open http://127.0.0.1:${PORT:-8080} and click "Seedance" in the navigation.
set -euo pipefail
VENV="${1:-.venv}"
HOME_DIR="$(pwd)/demo-output/airflow-home"
if [ ! -f "$HOME_DIR/airflow.db" ]; then
  echo "run 'make demo' first: it makes the videos this UI shows" >&2
  exit 1
fi
export AIRFLOW_HOME="$HOME_DIR"
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$HOME_DIR/airflow.db"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_FOLDER="$(pwd)/dags_examples"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT="${PORT:-8080}"
export AIRFLOW__API__WORKERS=1
echo "Airflow UI with the Seedance page: http://127.0.0.1:${AIRFLOW__API__PORT}  (Ctrl-C to stop)"
exec "$VENV/bin/airflow" api-server
