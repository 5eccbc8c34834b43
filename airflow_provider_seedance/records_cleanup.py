"""``seedance-records prune``: remove old re-attach records kept in Airflow Variables.

On Airflow 3.1-3.2 each task instance that submitted a generation keeps its re-attach record in
an Airflow Variable (``seedance_attach__…``, see :mod:`airflow_provider_seedance.reattach`). The
record is kept after success on purpose: a clear of that task instance must re-attach to the
generation it paid for, never pay again. A worker cannot list Variables, so the records are
pruned from where the metadata database is reachable (the scheduler's host), by age::

    seedance-records prune --older-than-days 30 [--dry-run]

A record is pruned when its newest submission is older than the cut-off. Clearing a task
instance whose record was pruned, and whose video is not at its ``output_path``, submits anew.
On Airflow 3.3+ records live in the task state store, written to never expire; they go with
their task instance (``airflow db clean``). With ``[state_store] clear_on_success`` on, 3.3+
keeps them in Variables too, and this command prunes those.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

PREFIX = "seedance_attach__"


def _submission_times(raw: str | None) -> list[float] | None:
    """The ``submitted_at`` of every entry of a stored record (or part); ``None`` when it is
    not a record's shape (unreadable)."""
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        return None
    if not isinstance(value, Mapping):
        return None
    return [
        entry["submitted_at"]
        for entry in value.values()
        if isinstance(entry, Mapping)
        and isinstance(entry.get("submitted_at"), (int, float))
        and not isinstance(entry.get("submitted_at"), bool)
    ]


def newest_submission(raw: str | None) -> float | None:
    """The newest ``submitted_at`` in a stored record; ``None`` when it cannot be read."""
    times = _submission_times(raw)
    return max(times) if times else None


#: How the description of every Variable of one task instance's record begins (a batch's
#: record is in parts, one Variable each, all with the same description).
_DESCRIPTION_PREFIX = "airflow-provider-seedance:"


def prune(older_than_days: float, *, dry_run: bool = False, now: float | None = None) -> list[str]:
    """Delete (or with ``dry_run`` only list) the records older than ``older_than_days``.

    The parts of one task instance's record (a batch keeps its record in parts, each in a
    Variable with the same description) go together or not at all, by the newest submission
    in any of them: a retry reads parts up to the first missing one, so deleting one part
    alone would hide the parts after it. Records that cannot be read are left alone: an
    unreadable record is a question for a person (deleting it could make a clear pay again).
    """
    from airflow.models import Variable
    from airflow.utils.session import create_session

    cutoff = (now if now is not None else time.time()) - older_than_days * 86400
    pruned: list[str] = []
    with create_session() as session:
        rows = session.query(Variable).filter(Variable.key.like(f"{PREFIX}%")).all()
        records: dict[str, list[Any]] = {}
        for row in rows:
            description = row.description or ""
            owner = description if description.startswith(_DESCRIPTION_PREFIX) else f"key:{row.key}"
            records.setdefault(owner, []).append(row)
        for parts in records.values():
            times = [_submission_times(row.get_val()) for row in parts]
            if any(t is None for t in times):
                continue
            newest = max((t for part in times for t in part or ()), default=None)
            if newest is not None and newest < cutoff:
                for row in parts:
                    pruned.append(row.key)
                    if not dry_run:
                        session.delete(row)
    return sorted(pruned)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seedance-records", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prune_cmd = commands.add_parser("prune", help="delete re-attach records older than a number of days")
    prune_cmd.add_argument("--older-than-days", type=float, required=True)
    prune_cmd.add_argument("--dry-run", action="store_true", help="list what would be deleted")
    args: Any = parser.parse_args(argv)
    if args.older_than_days < 0:
        parser.error("--older-than-days must be >= 0")
    pruned = prune(args.older_than_days, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {len(pruned)} re-attach record(s) older than {args.older_than_days:g} days")
    for key in pruned:
        print(f"  {key}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
