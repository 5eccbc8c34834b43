"""``python -m airflow_provider_seedance.emulator``: same as the ``seedance-emulator`` script."""

from __future__ import annotations

from airflow_provider_seedance.emulator.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
