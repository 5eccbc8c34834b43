"""The Seedance view's pieces without a server: authorization filter, records, media checks, chart."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_seedance.plugins import access, media, queries
from airflow_provider_seedance.plugins.charts import spend_svg
from airflow_provider_seedance.plugins.seedance_view import SeedancePlugin, ui_links

CLIP = (
    Path(__file__).resolve().parents[2] / "airflow_provider_seedance" / "emulator" / "clips" / "480p_16x9.mp4"
)


class StubAuthManager:
    """Per-user DAG and XCom permissions, answering the two calls the view makes."""

    def __init__(self, dags: dict[str, set[str]], xcom_denied: dict[str, set[str]] | None = None) -> None:
        self.dags = dags
        self.xcom_denied = xcom_denied or {}
        self.calls: list[tuple[str, Any]] = []

    def get_authorized_dag_ids(self, *, user: Any, method: Any = "GET") -> set[str]:
        self.calls.append(("get_authorized_dag_ids", method))
        return set(self.dags.get(user, set()))

    def is_authorized_dag(
        self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None
    ) -> bool:
        self.calls.append(("is_authorized_dag", (method, getattr(access_entity, "value", None), details.id)))
        return details.id not in self.xcom_denied.get(user, set())


def test_readable_dags_are_those_the_auth_manager_allows_including_their_xcoms() -> None:
    manager = StubAuthManager(
        {"alice": {"a", "b", "c"}, "bob": {"a"}},
        xcom_denied={"alice": {"c"}},
    )
    assert access.readable_dag_ids(manager, "alice") == {"a", "b"}
    assert access.readable_dag_ids(manager, "bob") == {"a"}
    assert access.readable_dag_ids(manager, "mallory") == frozenset()
    assert ("get_authorized_dag_ids", "GET") in manager.calls
    assert ("is_authorized_dag", ("GET", "XCOM", "c")) in manager.calls


def test_no_readable_dags_means_no_generations_and_no_query() -> None:
    class NoSession:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError("no query may run for a user who can read nothing")

    page = queries.list_generations(NoSession(), queries.GenerationFilter(dag_ids=frozenset()))  # type: ignore[arg-type]
    assert page.total == 0 and page.items == []


def test_dag_filter_cannot_widen_the_readable_set() -> None:
    from airflow.models.taskinstance import TaskInstance

    flt = queries.GenerationFilter(dag_ids=frozenset({"a"}), dag_id="secret")
    [dag_clause, *_] = queries._conditions(TaskInstance, flt)
    assert dag_clause.right.value == []  # "secret" is not readable: the IN list is empty


def test_bearer_header_wins_over_cookie() -> None:
    assert access.token_from_request("Bearer abc", {"_token": "cookie"}) == "abc"
    assert access.token_from_request(None, {"_token": "cookie"}) == "cookie"
    assert access.token_from_request("Basic dXNlcg==", {}) is None


TI = {"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": -1, "operator": "SeedanceGenerateOperator"}


def test_successful_record_carries_request_cost_and_file() -> None:
    result = {
        "task_id": "seed1",
        "status": "SUCCESS",
        "video_url": "https://cdn/v.mp4",
        "consumed_credits": 28,
        "consumed_usd": 0.14,
        "request": {"prompt": "p", "aspect_ratio": "16:9", "generate_audio": True},
        "error_message": None,
        "output_path": "file:///data/v.mp4",
        "bytes": 10,
    }
    record = queries.build_generation({**TI, "state": "success"}, {"return_value": result})
    assert record["status"] == "SUCCESS" and record["error_message"] is None
    assert record["request"] == {"prompt": "p", "aspect_ratio": "16:9", "generate_audio": True}
    assert (record["consumed_credits"], record["consumed_usd"]) == (28, 0.14)
    assert record["output_path"] == "file:///data/v.mp4" and record["seedance_task_id"] == "seed1"


def test_failed_record_today_falls_back_to_rendered_fields_and_the_link() -> None:
    xcoms = {
        "seedance_link": {"task_id": "seed2", "video_url": None, "base_url": "x"},
        "seedance_task_id": "seed2",
    }
    rendered = {
        "prompt": "rejected",
        "aspect_ratio": "1:1",
        "resolution": "480p",
        "duration": 4,
        "output_path": None,
    }
    record = queries.build_generation({**TI, "state": "failed"}, xcoms, rendered)
    assert record["status"] == "FAILED" and record["error_message"] == queries.FAILED_WITHOUT_MESSAGE
    assert record["request"] == {
        "prompt": "rejected",
        "aspect_ratio": "1:1",
        "resolution": "480p",
        "duration": 4,
    }
    assert record["seedance_task_id"] == "seed2" and record["consumed_credits"] == 0


def test_failed_record_uses_the_proposed_failure_fields_of_the_link() -> None:
    link = {
        "task_id": "seed3",
        "video_url": None,
        "base_url": "x",
        "status": "FAILED",
        "error_message": "CONTENT_POLICY_VIOLATION: nope",
        "request": {"prompt": "from the link"},
    }
    record = queries.build_generation(
        {**TI, "state": "failed"}, {"seedance_link": link}, {"prompt": "rendered"}
    )
    assert record["error_message"] == "CONTENT_POLICY_VIOLATION: nope"
    assert record["request"] == {"prompt": "from the link"}


def test_deferred_generation_is_in_progress() -> None:
    record = queries.build_generation({**TI, "state": "deferred"}, {"seedance_task_id": "seed4"})
    assert record["status"] == "IN_PROGRESS" and record["seedance_task_id"] == "seed4"


def test_xcom_values_decode_whatever_way_they_were_stored() -> None:
    assert queries.decode_xcom('{"a": 1}') == {"a": 1}
    assert queries.decode_xcom({"a": 1}) == {"a": 1}
    assert queries.decode_xcom(b'"text"') == "text"
    assert queries.decode_xcom("not json") == "not json"


def test_links_point_into_the_airflow_ui_with_escaped_ids() -> None:
    item = {"dag_id": "d", "run_id": "manual__2026-01-01T00:00:00+00:00", "task_id": "g.v", "map_index": 3}
    links = ui_links("/airflow", item)
    assert links["dag_run"] == "/airflow/dags/d/runs/manual__2026-01-01T00%3A00%3A00%2B00%3A00"
    assert links["task_instance"].endswith("/tasks/g.v/mapped/3")


# ------------------------------------------------------------------------------ media


@pytest.fixture
def video(tmp_path: Path) -> Path:
    target = tmp_path / "videos" / "clip.mp4"
    target.parent.mkdir()
    shutil.copyfile(CLIP, target)
    return target


def test_recorded_local_video_is_servable(video: Path) -> None:
    size = video.stat().st_size
    assert media.servable_video(f"file://{video}", size) == (video.resolve(), "video/mp4")
    assert media.servable_video(str(video), size) == (video.resolve(), "video/mp4")
    assert media.servable_video(str(video), None) is not None  # older records have no size


@pytest.mark.parametrize(
    "output_path",
    ["s3://bucket/clip.mp4", "memory://bucket/clip.mp4", "relative/clip.mp4", "file://otherhost/clip.mp4"],
)
def test_remote_or_relative_paths_are_not_served(output_path: str) -> None:
    assert media.servable_video(output_path, None) is None


def test_files_that_are_not_the_recorded_video_are_refused(video: Path, tmp_path: Path) -> None:
    assert media.servable_video(str(video), video.stat().st_size + 1) is None  # size differs
    fake = tmp_path / "passwd.mp4"
    fake.write_text("root:x:0:0:root:/root:/bin/bash\n")
    assert media.servable_video(str(fake), fake.stat().st_size) is None  # not an MP4
    text = tmp_path / "notes.txt"
    text.write_bytes(video.read_bytes())
    assert media.servable_video(str(text), text.stat().st_size) is None  # not a video suffix
    link = tmp_path / "link.mp4"
    link.symlink_to(fake)
    assert media.servable_video(str(link), fake.stat().st_size) is None  # resolved target checked
    assert media.servable_video(str(tmp_path / "missing.mp4"), None) is None


def test_media_roots_confine_served_files(video: Path, tmp_path: Path) -> None:
    size = video.stat().st_size
    assert media.servable_video(str(video), size, roots=[str(video.parent)]) is not None
    assert media.servable_video(str(video), size, roots=[str(tmp_path / "elsewhere")]) is None


def test_media_token_names_a_task_instance_and_cannot_be_forged() -> None:
    key = ("d", "manual__x", "t", 2)
    token = access.sign_media(key, secret_key="k1")
    assert access.read_media_token(token, secret_key="k1") == key
    assert access.read_media_token(token, secret_key="k2") is None
    assert access.read_media_token(token[:-2] + "xx", secret_key="k1") is None
    assert access.read_media_token(token, secret_key="k1", max_age=-1) is None  # expired
    assert access.read_media_token("/etc/passwd", secret_key="k1") is None


# ------------------------------------------------------------------------------ chart & plugin


def test_spend_chart_escapes_dag_names_and_stacks_days() -> None:
    report = {
        "total": {"credits": 36, "usd": 0.18, "generations": 2},
        "by_dag": [{"dag_id": "<script>x</script>", "credits": 28}, {"dag_id": "b", "credits": 8}],
        "by_day": [
            {
                "date": "2026-01-01",
                "credits": 36,
                "by_dag": {"<script>x</script>": {"credits": 28, "usd": 0.14}},
            },
            {"date": "2026-01-02", "credits": 0, "by_dag": {}},
        ],
    }
    svg = spend_svg(report)
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert svg.count("<rect") == 1 + 2  # one bar segment, two legend swatches
    assert "total 36 credits ($0.18)" in svg


def test_plugin_declares_the_app_and_views() -> None:
    from airflow.plugins_manager import AirflowPlugin

    assert issubclass(SeedancePlugin, AirflowPlugin) and SeedancePlugin.name == "seedance"
    [app] = SeedancePlugin.fastapi_apps
    assert app["url_prefix"] == "/seedance"
    assert {v["destination"] for v in SeedancePlugin.external_views} == {"nav", "dag"}
