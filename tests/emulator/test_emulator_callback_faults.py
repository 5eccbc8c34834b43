"""Callback faults (``POST /_emulator/faults`` with ``endpoint: callback``) and posting one
fault rule without the ``{"rules": [...]}`` wrapper."""

from __future__ import annotations

import time

import pytest
import requests
from emulator_helpers import SLOW_SECONDS, Api, Receiver, wait_until

from airflow_provider_seedance.emulator.testing import EmulatorError, EmulatorProcess

PROMPT = "A lighthouse beam sweeping over a stormy sea"


def test_drop_never_posts_the_callback(
    slow_api: Api, slow_emulator: EmulatorProcess, receiver: Receiver
) -> None:
    slow_emulator.add_faults({"endpoint": "callback", "fault": "drop"})
    dropped = slow_api.submit({"prompt": PROMPT, "callback_url": receiver.url})
    delivered = slow_api.submit({"prompt": PROMPT, "callback_url": receiver.url})  # the rule was used up
    receiver.wait(1, timeout=5)
    wait_until(lambda: slow_emulator.ledger()["callbacks_dropped"] == 1)
    assert slow_api.status_data(dropped)["status"] == "SUCCESS"  # the task itself is fine
    time.sleep(SLOW_SECONDS)
    assert [c["json"]["data"]["task_id"] for c in receiver.received] == [delivered]
    assert slow_emulator.ledger()["callbacks_sent"] == 1


def test_delay_posts_the_callback_late(
    slow_api: Api, slow_emulator: EmulatorProcess, receiver: Receiver
) -> None:
    slow_emulator.add_faults({"endpoint": "callback", "fault": "delay", "delay": 3.0})
    task_id = slow_api.submit({"prompt": PROMPT, "callback_url": receiver.url})
    slow_api.wait_finished(task_id)
    finished = time.monotonic()
    assert receiver.received == []  # finished, but the callback is held back
    [call] = receiver.wait(1, timeout=5)
    assert time.monotonic() - finished >= 0.5
    assert call["json"] == slow_api.status(task_id).json()


def test_duplicate_posts_the_same_callback_twice(
    slow_api: Api, slow_emulator: EmulatorProcess, receiver: Receiver
) -> None:
    slow_emulator.add_faults({"endpoint": "callback", "fault": "duplicate"})
    task_id = slow_api.submit({"prompt": PROMPT, "callback_url": receiver.url})
    first, second = receiver.wait(2, timeout=5)
    assert first["json"] == second["json"] == slow_api.status(task_id).json()
    wait_until(lambda: slow_emulator.ledger()["callbacks_sent"] == 2)


def test_wrong_body_claims_success_while_the_task_is_in_progress(
    slow_api: Api, slow_emulator: EmulatorProcess, receiver: Receiver
) -> None:
    slow_emulator.add_faults(
        {"endpoint": "outcome", "fault": "failed", "error_message": "MODERATION: no"},
        {"endpoint": "callback", "fault": "wrong_body"},
    )
    task_id = slow_api.submit({"prompt": PROMPT, "callback_url": receiver.url})
    [forged] = receiver.wait(1, timeout=5)
    data = forged["json"]["data"]
    assert data["task_id"] == task_id and data["status"] == "SUCCESS"
    assert data["consumed_credits"] != 28 and data["response"][0].startswith("https://forged.invalid/")
    assert slow_api.status_data(task_id)["status"] == "IN_PROGRESS"  # the body lied
    # The true callback still follows, and it says FAILED.
    _, true = receiver.wait(2, timeout=5)
    assert true["json"]["data"]["status"] == "FAILED"
    assert true["json"] == slow_api.status(task_id).json()
    wait_until(lambda: slow_emulator.ledger()["callbacks_forged"] == 1)


def test_callback_faults_skip_generations_without_a_callback_url(
    slow_api: Api, slow_emulator: EmulatorProcess, receiver: Receiver
) -> None:
    slow_emulator.add_faults({"endpoint": "callback", "fault": "drop"})
    slow_api.submit({"prompt": PROMPT})  # no callback_url: does not use the rule
    [pending] = slow_emulator.faults()
    assert (pending["endpoint"], pending["times"]) == ("callback", 1)  # still pending
    slow_api.submit({"prompt": PROMPT, "callback_url": receiver.url})
    wait_until(lambda: slow_emulator.ledger()["callbacks_dropped"] == 1)
    assert receiver.received == []


@pytest.mark.parametrize(
    "rule",
    [
        {"endpoint": "callback", "fault": "http_500"},
        {"endpoint": "callback", "fault": "delay", "delay": -1},
        {"endpoint": "callback", "fault": "drop", "times": 0},
    ],
)
def test_invalid_callback_rules_are_refused(emulator: EmulatorProcess, rule: dict[str, object]) -> None:
    with pytest.raises(EmulatorError, match="HTTP 400"):
        emulator.add_faults(rule)


def test_one_rule_may_be_posted_without_the_rules_wrapper(api: Api, emulator: EmulatorProcess) -> None:
    response = requests.post(
        f"{emulator.base_url}/_emulator/faults",
        json={"endpoint": "status", "fault": "http_500", "times": 1},
        timeout=10,
    )
    assert response.status_code == 200
    assert [r["fault"] for r in response.json()["rules"]] == ["http_500"]
    task_id = api.submit()
    assert api.status(task_id).status_code == 500
    assert api.status(task_id).status_code == 200


@pytest.mark.parametrize("body", [[{"endpoint": "status", "fault": "http_500"}], {"fault": "http_500"}, "x"])
def test_a_body_that_is_neither_a_rule_nor_rules_is_refused(emulator: EmulatorProcess, body: object) -> None:
    response = requests.post(f"{emulator.base_url}/_emulator/faults", json=body, timeout=10)
    assert response.status_code == 400
    assert emulator.faults() == []


def test_wrong_body_arrives_before_the_true_callback_even_for_instant_generations(receiver: Receiver) -> None:
    with EmulatorProcess(
        api_keys={"sk-instant-forge-0014": 100}, generation_seconds=0, allow_local_callbacks=True
    ) as em:
        em.add_faults({"endpoint": "callback", "fault": "wrong_body", "times": 3})
        api = Api(em, key="sk-instant-forge-0014")
        for _ in range(3):
            api.submit(
                {"prompt": PROMPT, "duration": "4", "resolution": "480p", "callback_url": receiver.url}
            )
        calls = receiver.wait(6, timeout=10)
    by_task: dict[str, list[int]] = {}
    for call in calls:
        data = call["json"]["data"]
        by_task.setdefault(data["task_id"], []).append(data["consumed_credits"])
    # Per task: first the forged 999999 credits, then the true 8.
    assert sorted(by_task.values()) == [[999999, 8]] * 3
