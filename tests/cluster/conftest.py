"""The production-shape scenarios need the stack of ``make cluster-up``; ``make test`` skips them.

Every test here is marked ``cluster``; the project's pytest options deselect that marker
(``-m "not cluster"``) and ``make test-cluster`` selects it (``-m cluster``).
"""

from __future__ import annotations

import pytest

from tests.cluster.stack import Stack


@pytest.fixture(scope="session")
def stack() -> Stack:
    """The running stack (``make cluster-up``), every part healthy."""
    stack = Stack.load()
    stack.wait_healthy(timeout=120)
    return stack
