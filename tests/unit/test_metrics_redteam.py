"""Red team (s4-review): credits.consumed counts a generation once, not once per try that sees it.

Expected to fail on main: a cleared task re-attaches to the generation an earlier try already
counted (and paid once), and counts its credits again; the Spend page counts each id once.
"""

from __future__ import annotations

from airflow_provider_seedance import metrics
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator
from tests.unit.fakes import FakeHook, Store, context, use
from tests.unit.test_metrics import FakeStats


def test_a_cleared_task_that_reattaches_does_not_count_the_credits_again(monkeypatch) -> None:
    stats = FakeStats()
    monkeypatch.setattr(metrics, "_stats", lambda: stats)
    store, hook = Store(), FakeHook()
    operator = SeedanceGenerateOperator(
        task_id="generate",
        prompt="a red fox",
        resolution="480p",
        duration=4,
        deferrable=False,
        poll_interval=0,
    )
    use(operator, hook)
    operator.execute(context(store))  # try 1: paid, 8 credits
    operator.execute(context(store))  # a clear: re-attaches to the same generation, pays nothing
    assert len(hook.posts) == 1  # one generation, paid once
    consumed = sum(n for kind, name, n, _ in stats.sent if name == "seedance.credits.consumed")
    assert consumed == 8, f"credits.consumed counted {consumed} for one 8-credit generation"
