"""Injected faults: the failures a real service shows rarely, on demand and countable.

A client's error handling is only as good as the failures it was tested against. Each rule
applies to the next ``times`` requests to one endpoint, so a test can say exactly "the next
two status polls get a 500" and then check the client's retries in the ledger.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

REQUEST_ENDPOINTS: frozenset[str] = frozenset({"generate", "status", "video"})
REQUEST_FAULTS: frozenset[str] = frozenset({"http_500", "http_429", "drop", "slow", "malformed"})
OUTCOME_ENDPOINT = "outcome"
OUTCOME_FAULTS: frozenset[str] = frozenset({"failed"})
#: Callback faults apply to the next ``times`` generations submitted with a ``callback_url``
#: and are decided at submit time, like the outcome: ``drop`` never POSTs the callback,
#: ``delay`` POSTs it ``delay`` seconds late, ``duplicate`` POSTs it twice, ``wrong_body``
#: first POSTs a forged body (SUCCESS, bogus URL and credits) while the task is still
#: IN_PROGRESS, then the true callback when it finishes.
CALLBACK_ENDPOINT = "callback"
CALLBACK_FAULTS: frozenset[str] = frozenset({"drop", "delay", "duplicate", "wrong_body"})

DEFAULT_RETRY_AFTER = 1.0
DEFAULT_DELAY = 5.0
DEFAULT_FAILURE_MESSAGE = "CONTENT_POLICY_VIOLATION: the prompt was rejected by moderation"


@dataclass
class FaultRule:
    """One rule: ``fault`` on the next ``times`` requests to ``endpoint``."""

    endpoint: str
    fault: str
    times: int = 1
    retry_after: float = DEFAULT_RETRY_AFTER
    delay: float = DEFAULT_DELAY
    error_message: str = DEFAULT_FAILURE_MESSAGE

    @classmethod
    def from_json(cls, raw: Any) -> FaultRule:
        """Validate one rule from the admin API; ``ValueError`` says what is wrong."""
        if not isinstance(raw, dict):
            raise ValueError("each rule must be a JSON object")
        endpoint = raw.get("endpoint")
        fault = raw.get("fault")
        if endpoint in REQUEST_ENDPOINTS:
            if fault not in REQUEST_FAULTS:
                raise ValueError(f"fault for {endpoint!r} must be one of {sorted(REQUEST_FAULTS)}")
        elif endpoint == OUTCOME_ENDPOINT:
            if fault not in OUTCOME_FAULTS:
                raise ValueError(f"fault for 'outcome' must be one of {sorted(OUTCOME_FAULTS)}")
        elif endpoint == CALLBACK_ENDPOINT:
            if fault not in CALLBACK_FAULTS:
                raise ValueError(f"fault for 'callback' must be one of {sorted(CALLBACK_FAULTS)}")
        else:
            endpoints = REQUEST_ENDPOINTS | {OUTCOME_ENDPOINT, CALLBACK_ENDPOINT}
            raise ValueError(f"endpoint must be one of {sorted(endpoints)}")
        times = raw.get("times", 1)
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError("times must be a positive integer")
        retry_after = _non_negative(raw, "retry_after", DEFAULT_RETRY_AFTER)
        delay = _non_negative(raw, "delay", DEFAULT_DELAY)
        message = raw.get("error_message", DEFAULT_FAILURE_MESSAGE)
        if not isinstance(message, str) or not message:
            raise ValueError("error_message must be a non-empty string")
        return cls(str(endpoint), str(fault), times, retry_after, delay, message)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _non_negative(raw: dict[str, Any], name: str, default: float) -> float:
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a non-negative number")
    return float(value)


class FaultBook:
    """The pending rules, consumed in the order they were added.

    Handlers run on one event loop, but the lock keeps ``take`` atomic should a caller ever
    use the book from another thread.
    """

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, rules: list[FaultRule]) -> None:
        with self._lock:
            self._rules.extend(rules)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def take(self, endpoint: str) -> FaultRule | None:
        """Consume one use of the first rule for ``endpoint`` that has uses left."""
        with self._lock:
            for rule in self._rules:
                if rule.endpoint == endpoint and rule.times > 0:
                    rule.times -= 1
                    taken = FaultRule(**asdict(rule))
                    if rule.times == 0:
                        self._rules.remove(rule)
                    return taken
        return None

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.to_json() for rule in self._rules]
