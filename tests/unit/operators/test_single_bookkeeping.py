"""What a single generation records besides its return value: the asset event's extra, the
metrics per DAG and task, and a result XCom that could not be pushed (logged, never a reason
to fail a paid task)."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk import Asset

from airflow_provider_seedance import metrics
from airflow_provider_seedance.task_support import XCOM_RESULT
from tests.unit.fakes import TI, FakeHook, OutletEvents, Store, context
from tests.unit.operators.test_single_submit_rules import CHEAP, single

VIDEOS = Asset("s3://videos/catalog/fox.mp4")


def test_a_success_puts_what_the_video_cost_on_the_event_of_each_asset_outlet() -> None:
    ctx = context(Store())
    ctx["outlet_events"] = events = OutletEvents()

    result = single(FakeHook(), outlets=[VIDEOS], **CHEAP).execute(ctx)

    extra = events[VIDEOS].extra
    assert extra["seedance_task_id"] == result["task_id"] == "gen-1"
    assert extra["consumed_credits"] == 8 and extra["consumed_usd"] == 0.04
    assert extra["request"]["resolution"] == "480p" and extra["reused_existing"] is False


def test_a_success_counts_its_generation_and_credits_for_its_dag_and_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counted: list[tuple[str, int, dict[str, Any]]] = []
    monkeypatch.setattr(metrics, "incr", lambda stat, count=1, **tags: counted.append((stat, count, tags)))
    operator = single(FakeHook(), **CHEAP)

    operator.execute(context(Store()))

    tags = {"dag_id": operator.dag_id, "task_id": "generate"}
    assert ("generations.succeeded", 1, tags) in counted
    assert ("credits.consumed", 8, tags) in counted


class RefusingTI(TI):
    """A task instance whose result XCom cannot be stored (a full or failing XCom backend)."""

    def xcom_push(self, key: str, value: Any) -> None:
        if key == XCOM_RESULT:
            raise RuntimeError("XCom backend unavailable")
        super().xcom_push(key, value)


@pytest.mark.parametrize("wait_for_completion", [True, False], ids=["waited", "fire-and-forget"])
def test_a_result_xcom_that_cannot_be_pushed_is_logged_and_the_paid_task_still_succeeds(
    wait_for_completion: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    ctx = context(Store())
    ctx["ti"] = RefusingTI()
    hook = FakeHook(statuses={"gen-1": ["IN_PROGRESS", "SUCCESS"]})

    result = single(hook, wait_for_completion=wait_for_completion, **CHEAP).execute(ctx)

    assert result["task_id"] == "gen-1" and len(hook.posts) == 1
    assert "Could not record the Seedance result in XCom: XCom backend unavailable" in "".join(
        capsys.readouterr()
    )
