"""Airflow UI plugin of the Seedance provider: gallery of generated videos and spend.

Registered through the ``airflow.plugins`` entry point (see :mod:`.seedance_view` for the
design). Importing this package is cheap; the plugin class lives in :mod:`.seedance_view`.
"""

from __future__ import annotations
