"""Who is running: the one reading of a task instance's identity.

A submission record, a callback token and a batch's results file are all bound to it, so it
is read in one place: an unmapped task's ``map_index`` is -1 (a task instance may not carry
one, and the execution API may send None for it).
"""

from __future__ import annotations

from typing import Any


def instance_identity(ti: Any) -> tuple[str, str, str, int]:
    """``(dag_id, run_id, task_id, map_index)`` of a task instance, the same on every try."""
    map_index = getattr(ti, "map_index", None)  # None or absent: not mapped
    return (str(ti.dag_id), str(ti.run_id), str(ti.task_id), -1 if map_index is None else int(map_index))


def try_identity(ti: Any) -> tuple[str, str, str, int, int]:
    """``(dag_id, run_id, task_id, map_index, try_number)`` of one try of a task instance."""
    return (*instance_identity(ti), int(ti.try_number))
