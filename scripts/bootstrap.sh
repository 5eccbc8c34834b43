#!/usr/bin/env bash
# Create a venv and install the provider with its dev tools and a pinned Airflow.
# Usage: bootstrap.sh PYTHON VENV AIRFLOW_VERSION
# Works on a fresh Debian with Python 3.11: uses uv (from PyPI) for fast, reproducible installs.
set -euo pipefail
PYTHON="${1:-python3}"
VENV="${2:-.venv}"
AIRFLOW_VERSION="${3:-3.3.2}"

echo ">> setting up $VENV (Airflow $AIRFLOW_VERSION)"
if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
    # Debian without python3-venv's ensurepip: make the venv bare and let the host pip fill it.
    rm -rf "$VENV"
    "$PYTHON" -m venv --without-pip "$VENV"
    "$PYTHON" -m pip --python "$VENV/bin/python" install -q pip
  fi
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "uv>=0.4"
CONSTRAINTS=()
if [ -f "constraints/airflow-${AIRFLOW_VERSION}.txt" ]; then
  CONSTRAINTS=(--constraint "constraints/airflow-${AIRFLOW_VERSION}.txt")
fi
VIRTUAL_ENV="$VENV" "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" "${CONSTRAINTS[@]}" \
  -e ".[dev]" "apache-airflow==${AIRFLOW_VERSION}"
echo ">> $VENV ready"
