"""The Seedance view's pieces without a server: authorization filter, records, media checks, chart."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_seedance.plugins import access, media, queries, records
from airflow_provider_seedance.plugins.charts import spend_svg
from airflow_provider_seedance.plugins.seedance_view import SeedancePlugin, ui_links
from airflow_provider_seedance.results import GenerationResult, Outcome

CLIP = (
    Path(__file__).resolve().parents[3] / "airflow_provider_seedance" / "emulator" / "clips" / "480p_16x9.mp4"
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


def test_released_failed_record_with_only_the_link_reads_as_a_failed_generation() -> None:
    # Released versions wrote only seedance_link for a failed task; the prompt then comes from
    # the rendered fields when the link has no request.
    link = {"task_id": "seed2", "video_url": None, "base_url": "x", "status": "FAILED"}
    rendered = {"prompt": "rejected", "aspect_ratio": "1:1", "resolution": "480p", "duration": 4}
    record = queries.build_generation(
        {**TI, "state": "failed"}, {"seedance_link": link, "seedance_task_id": "seed2"}, rendered
    )
    assert record["outcome"] == "generation_failed" and record["status"] == "FAILED"
    assert record["request"] == rendered
    assert record["seedance_task_id"] == "seed2" and record["consumed_credits"] == 0


def test_released_failed_record_whose_link_saw_success_was_paid_not_delivered() -> None:
    link = {"task_id": "seed3", "video_url": "https://cdn/v.mp4", "status": "SUCCESS"}
    record = queries.build_generation({**TI, "state": "failed"}, {"seedance_link": link})
    assert record["outcome"] == "paid_not_delivered" and record["video_url_expires"] is True


def test_final_result_wins_over_the_progress_link() -> None:
    link = {"task_id": "seed3", "status": "RUNNING", "request": {"prompt": "from the link"}}
    final = GenerationResult(
        outcome=Outcome.GENERATION_FAILED,
        task_id="seed3",
        status="FAILED",
        request={"prompt": "final"},
        error_message="CONTENT_POLICY_VIOLATION: nope",
    ).to_xcom()
    record = queries.build_generation(
        {**TI, "state": "failed"}, {"seedance_link": link, "seedance_result": final}, {"prompt": "rendered"}
    )
    assert record["error_message"] == "CONTENT_POLICY_VIOLATION: nope"
    assert record["request"] == {"prompt": "final"} and record["outcome"] == "generation_failed"


def test_three_failed_outcomes_are_told_apart_on_cards() -> None:
    ti = {**TI, "state": "failed"}
    not_sent = GenerationResult.not_sent("aspect_ratio '7:5' is not one of 16:9, 9:16", {"prompt": "p"})
    failed = GenerationResult(
        outcome=Outcome.GENERATION_FAILED, task_id="s1", status="FAILED", error_message="MODERATION"
    )
    paid = GenerationResult(
        outcome=Outcome.PAID_NOT_DELIVERED,
        task_id="s2",
        status="SUCCESS",
        video_urls=("https://cdn/v.mp4",),
        consumed_credits=19,
        error_message="delivery failed: Permission denied",
    )
    cards = [queries.build_generation(ti, {"seedance_result": r.to_xcom()}) for r in (not_sent, failed, paid)]
    assert [c["outcome"] for c in cards] == ["not_sent", "generation_failed", "paid_not_delivered"]
    assert [c["consumed_credits"] for c in cards] == [0, 0, 19]
    assert cards[0]["error_message"].startswith("aspect_ratio") and cards[1]["error_message"] == "MODERATION"
    assert cards[2]["consumed_usd_text"] == "$0.095" and cards[2]["video_url_expires"] is True
    assert cards[2]["error_message"] == "delivery failed: Permission denied"


def test_each_ending_has_its_own_words_on_its_card_and_delivered_ones_say_where() -> None:
    """Red team D4/D7b: a refusal is not "nothing was sent"; a delivered card names its file."""
    ti = {**TI, "state": "failed"}
    refused = GenerationResult.refused("Seedance API error 402 INSUFFICIENT_CREDITS: top up", {"prompt": "p"})
    not_sent = GenerationResult.not_sent("connection refused: nothing was sent", {"prompt": "p"})
    lost = GenerationResult.uncertain("read timeout", {"prompt": "p", "resolution": "480p", "duration": 4})
    cards = [
        queries.build_generation(ti, {"seedance_result": r.to_xcom()}) for r in (refused, not_sent, lost)
    ]
    assert [c["outcome_text"] for c in cards] == [
        "The service refused the request — nothing spent",
        "Nothing was sent — nothing spent",
        "Submission uncertain — may have been charged",
    ]
    assert cards[0]["error_message"] == "Seedance API error 402 INSUFFICIENT_CREDITS: top up"
    assert [c["consumed_credits"] for c in cards] == [0, 0, 0]
    assert [c["possible_credits"] for c in cards] == [None, None, 8]
    delivered = GenerationResult(
        outcome=Outcome.SUCCEEDED,
        task_id="s1",
        status="SUCCESS",
        consumed_credits=8,
        output_path="s3://user:secret@bucket/v.mp4",
    )
    card = queries.build_generation({**TI, "state": "success"}, {"seedance_result": delivered.to_xcom()})
    assert card["outcome_text"] == "Generated" and card["delivered_to"] == "s3://[hidden]@bucket/v.mp4"
    reused = GenerationResult.reused("file:///data/v.mp4", 10, "ab" * 32, {"prompt": "p"})
    card = queries.build_generation({**TI, "state": "success"}, {"seedance_result": reused.to_xcom()})
    assert card["delivered_to"] == "file:///data/v.mp4"
    paid = GenerationResult(outcome=Outcome.PAID_NOT_DELIVERED, task_id="s2", consumed_credits=8)
    assert queries.build_generation(ti, {"seedance_result": paid.to_xcom()})["delivered_to"] is None


def test_card_errors_are_one_line_capped_and_hide_keys() -> None:
    text = "POST failed\n  Authorization: Bearer sk-live-abcdef123456 at https://user:pw@host/v1 " + "x" * 500
    cleaned = records.clean_error(text)
    assert cleaned is not None and "\n" not in cleaned and len(cleaned) == records.MAX_ERROR_CHARS
    assert "sk-live" not in cleaned and "pw@" not in cleaned and "abcdef" not in cleaned


@pytest.mark.parametrize(
    "advice",
    [
        "Connection 'seedance_default' has no API key: put it in the connection's password field.",
        "Seedance API error 401 from POST /v1/generate: check the API key in the connection's password field",
        "the token expired; a new token is issued on retry",
    ],
)
def test_card_errors_keep_our_own_advice_whole(advice: str) -> None:
    # Only a value after ":" or "=" (or after "Bearer") is hidden: advice that names a field is not a secret.
    assert records.clean_error(advice) == advice


@pytest.mark.parametrize(
    "leak", ["password=hunter2-x", "api_key: abc123secret", "token=abc123secret", "Bearer abc123secret"]
)
def test_card_errors_hide_a_value_given_after_its_name(leak: str) -> None:
    cleaned = records.clean_error(f"failed ({leak})")
    assert cleaned is not None and "[hidden]" in cleaned
    assert "secret" not in cleaned and "hunter2" not in cleaned


@pytest.mark.parametrize(
    "value",
    [
        {"task_id": "s", "status": "SUCCESS", "consumed_credits": "lots"},
        {"task_id": "s", "status": "SUCCESS", "consumed_credits": float("inf")},
        {"task_id": "s", "status": "SUCCESS", "consumed_credits": 1e400},
        {"task_id": "s", "status": "SUCCESS", "consumed_credits": [8]},
        {"task_id": "s", "status": "SUCCESS", "consumed_credits": -8},
        {"schema": 99, "outcome": "succeeded"},
        {"outcome": "exploded"},
        ["not", "a", "result"],
        "a string",
    ],
)
def test_unreadable_record_is_a_marked_card_never_an_error(value: Any) -> None:
    record = queries.build_generation({**TI, "state": "success"}, {"return_value": value})
    assert record["unreadable"] is True and record["consumed_credits"] == 0


def test_batch_record_gives_a_card_per_item_and_skips_only_the_bad_one() -> None:
    items = [
        GenerationResult(
            outcome=Outcome.SUCCEEDED, task_id=f"s{i}", status="SUCCESS", consumed_credits=8, item_id=f"v{i}"
        ).to_xcom()
        for i in range(4)
    ]
    items[2]["consumed_credits"] = "lots"
    value = {"results": items, "totals": {}}
    ti = {**TI, "operator": "SeedanceBatchGenerateOperator", "state": "success"}
    cards = queries.build_cards(ti, {"return_value": value})
    assert [c["item"] for c in cards] == [0, 1, 2, 3] and [c["unreadable"] for c in cards] == [
        False,
        False,
        True,
        False,
    ]
    assert [c["item_id"] for c in cards] == ["v0", "v1", None, "v3"]
    window = queries.build_cards(ti, {"return_value": value}, window=slice(1, 2))
    assert [c["item"] for c in window] == [1]


def test_batch_failure_record_is_read_when_there_is_no_return_value() -> None:
    value = {"results": [GenerationResult.not_sent("budget").to_xcom()], "totals": {}}
    [card] = queries.build_cards({**TI, "state": "failed"}, {"seedance_batch_results": value})
    assert card["outcome"] == "not_sent" and card["error_message"] == "budget" and card["item"] == 0


def test_deferred_generation_is_in_progress() -> None:
    record = queries.build_generation({**TI, "state": "deferred"}, {"seedance_task_id": "seed4"})
    assert record["status"] == "IN_PROGRESS" and record["seedance_task_id"] == "seed4"
    assert record["unreadable"] is False and record["outcome"] is None


def test_reuse_marker_pushed_before_return_is_not_a_result() -> None:
    record = queries.build_generation(
        {**TI, "state": "running"}, {"seedance_link": {"output_path": "/x.mp4"}}
    )
    assert record["unreadable"] is False and record["status"] == "IN_PROGRESS"


def test_xcom_values_decode_whatever_way_they_were_stored() -> None:
    assert queries.decode_xcom('{"a": 1}') == {"a": 1}
    assert queries.decode_xcom({"a": 1}) == {"a": 1}
    assert queries.decode_xcom(b'"text"') == "text"
    assert queries.decode_xcom("not json") == "not json"
    # A JSON document held as a JSON string (an XCom edited through Airflow 3.1's REST API).
    assert queries.decode_xcom(json.dumps(json.dumps({"a": 1}))) == {"a": 1}
    assert queries.decode_xcom(json.dumps('"quoted"')) == '"quoted"'


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
    assert access.read_media_token(token, secret_key="k1") == (*key, -1)
    assert access.read_media_token(access.sign_media(key, "k1", item=7), secret_key="k1") == (*key, 7)
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
    # Dollars as the logs write them, from integer credits: 19 credits is $0.095, not $0.10.
    assert "total 19 credits ($0.095)" in spend_svg({"total": {"credits": 19}, "by_day": [], "by_dag": []})


def test_plugin_declares_the_app_and_views() -> None:
    from airflow.plugins_manager import AirflowPlugin

    assert issubclass(SeedancePlugin, AirflowPlugin) and SeedancePlugin.name == "seedance"
    [app] = SeedancePlugin.fastapi_apps
    assert app["url_prefix"] == "/seedance"
    assert {v["destination"] for v in SeedancePlugin.external_views} == {"nav", "dag"}


# ------------------------------------------------------------------------------ rendered paths


def test_single_task_serves_only_its_rendered_output_path() -> None:
    rendered = {"output_path": "file:///videos/a/clip.mp4"}
    assert media.rendered_names("file:///videos/a/clip.mp4", rendered)
    assert media.rendered_names("/videos/a/./clip.mp4", rendered)
    assert not media.rendered_names("file:///videos/b/clip.mp4", rendered)  # another DAG's file
    assert not media.rendered_names("file:///videos/a/clip.mp4", {"output_path": None})
    assert not media.rendered_names("file:///videos/a/clip.mp4", None)


def test_batch_item_serves_its_request_path_or_the_template_formatted_for_it() -> None:
    rendered = {
        "output_path_template": "file:///out/run1-{id}.mp4",
        "requests": [{"id": "tea", "prompt": "p"}, {"prompt": "q", "output_path": "/own/q.mp4"}],
    }
    assert media.rendered_names("file:///out/run1-tea.mp4", rendered, 0)
    assert not media.rendered_names("file:///out/run1-fern.mp4", rendered, 0)  # another item's name
    assert media.rendered_names("/own/q.mp4", rendered, 1)
    assert not media.rendered_names("file:///out/run1-1.mp4", rendered, 1)
    assert not media.rendered_names("file:///out/run1-tea.mp4", rendered, 5)


def test_truncated_batch_fields_allow_only_the_templates_pattern() -> None:
    rendered = {
        "output_path_template": "file:///out/run1-{id}.mp4",
        "requests": "Truncated. You can change this behaviour in [core]max_templated_field_length. [{",
    }
    assert media.rendered_names("file:///out/run1-anything.mp4", rendered, 900)
    assert not media.rendered_names("file:///out/sub/run1-x.mp4", rendered, 900)
    assert not media.rendered_names("file:///out/run1-../../etc/x.mp4", rendered, 900)
    assert not media.rendered_names("file:///elsewhere/run1-x.mp4", rendered, 900)
    assert not media.rendered_names("file:///out/run1-x.mp4", {"requests": "Truncated..."}, 0)


def test_a_page_of_a_big_batch_parses_only_the_items_it_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    item = GenerationResult(outcome=Outcome.SUCCEEDED, task_id="s", status="SUCCESS", consumed_credits=8)
    value = {"results": [{**item.to_xcom(), "id": f"v{i}"} for i in range(5000)], "totals": {}}
    parsed: list[object] = []
    real = GenerationResult.from_xcom.__func__  # type: ignore[attr-defined]

    def counting(cls: type[GenerationResult], raw: object) -> GenerationResult:
        parsed.append(raw)
        return real(cls, raw)  # type: ignore[no-any-return]

    monkeypatch.setattr(GenerationResult, "from_xcom", classmethod(counting))
    ti = {**TI, "operator": "SeedanceBatchGenerateOperator", "state": "success"}
    cards = queries.build_cards(ti, {"return_value": value}, window=slice(4990, 5014))
    assert [c["item_id"] for c in cards] == [f"v{i}" for i in range(4990, 5000)]
    assert len(parsed) == 10


def test_xcom_reads_go_one_query_per_dag_and_task_and_split_by_run_when_the_over_read_would_grow() -> None:
    from airflow.models.xcom import XComModel

    def shape(keys: list[queries.TiKey]) -> list[tuple[str, str, list[str], list[int]]]:
        found = []
        for clause in queries._of_task_instances(XComModel, keys):
            dag, task, runs, indexes = clause.clauses
            found.append((dag.right.value, task.right.value, runs.right.value, indexes.right.value))
        return found

    # One run's 20 mapped task instances, and a second task of the same run: two queries.
    run = [("d", "r1", "gen", i) for i in range(20)] + [("d", "r1", "other", -1)]
    assert shape(run) == [("d", "gen", ["r1"], list(range(20))), ("d", "other", ["r1"], [-1])]
    # Two runs x 20 map indexes each (40 keys, 40 combinations): still one query.
    two = [("d", r, "gen", i) for r in ("r1", "r2") for i in range(20)]
    assert shape(two) == [("d", "gen", ["r1", "r2"], list(range(20)))]
    # Ten runs with one distinct map index each: 100 combinations for 10 keys, over 4x: by run.
    diagonal = [("d", f"r{i}", "gen", i) for i in range(10)]
    assert shape(diagonal) == [("d", "gen", [f"r{i}"], [i]) for i in range(10)]
