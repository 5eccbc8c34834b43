"""Apache Airflow provider for Seedance 2.0 AI video generation."""

from __future__ import annotations

__version__ = "0.2.0.dev0"

__all__ = ["__version__"]
