"""The Seedance view's endpoints in a real ``airflow api-server``, on generations recorded by real runs."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest

from airflow_provider_seedance.models import format_usd
from airflow_provider_seedance.results import GenerationResult
from tests.ui.conftest import MIXED_CARDS, ApiServer, GalleryRuns

pytestmark = pytest.mark.dag


def _items(api_server: ApiServer, user: str = "alice", **params: object) -> list[dict]:
    response = api_server.get("/seedance/api/generations", user=user, params={"limit": 100, **params})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_plugin_is_listed_with_its_nav_and_dag_views(api_server: ApiServer) -> None:
    response = api_server.get("/api/v2/plugins")
    assert response.status_code == 200, response.text
    [plugin] = [p for p in response.json()["plugins"] if p["name"] == "seedance"]
    assert {v["url_route"]: v["destination"] for v in plugin["external_views"]} == {
        "seedance": "nav",
        "seedance-dag": "dag",
    }
    assert plugin["fastapi_apps"][0]["url_prefix"] == "/seedance"


def test_page_shell_is_served_without_data(api_server: ApiServer) -> None:
    response = api_server.get("/seedance/", user=None)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "static/gallery.js" in response.text and "seed" not in response.text.lower().replace(
        "seedance", ""
    )


def test_gallery_lists_recorded_generations_newest_first(
    api_server: ApiServer, gallery_runs: GalleryRuns
) -> None:
    items = _items(api_server, user="alice")
    dags = [item["dag_id"] for item in items]
    # gallery_launch ran last (3 generations), then moderated, then private; hostile is hidden;
    # gallery_mixed ran first (a card per batch item).
    assert (
        dags
        == ["gallery_launch"] * 3 + ["gallery_moderated", "gallery_private"] + ["gallery_mixed"] * MIXED_CARDS
    )
    ends = [item["end_date"] for item in items]
    assert ends == sorted(ends, reverse=True)

    hero = next(i for i in items if i["task_id"] == "hero")
    assert hero["status"] == "SUCCESS" and hero["ti_state"] == "success"
    assert hero["request"]["aspect_ratio"] == "16:9" and hero["request"]["generate_audio"] is True
    assert hero["request"]["prompt"].startswith("A red kite")
    assert hero["consumed_credits"] > 0 and hero["consumed_usd"] > 0
    assert hero["output_path"].startswith("file://") and hero["media_url"].startswith("/seedance/media/")
    run = quote(gallery_runs.runs["gallery_launch"], safe="")
    assert hero["links"] == {
        "dag_run": f"/dags/gallery_launch/runs/{run}",
        "task_instance": f"/dags/gallery_launch/runs/{run}/tasks/hero",
    }

    mapped = sorted((i for i in items if i["task_id"] == "social"), key=lambda i: i["map_index"])
    assert [i["map_index"] for i in mapped] == [0, 1]
    assert all(i["media_url"] is None and i["video_url"].startswith("http") for i in mapped)
    assert mapped[1]["links"]["task_instance"].endswith("/tasks/social/mapped/1")


def test_failed_generation_shows_status_prompt_and_zero_cost(api_server: ApiServer) -> None:
    [failed] = _items(api_server, status="failed", dag_id="gallery_moderated")
    assert failed["dag_id"] == "gallery_moderated" and failed["status"] == "FAILED"
    assert failed["ti_state"] == "failed" and failed["consumed_credits"] == 0
    assert failed["seedance_task_id"]  # from the seedance_link XCom written before the wait
    # No return_value: the prompt comes from the rendered template fields.
    assert failed["request"]["prompt"] == "A prompt the moderation will reject"
    assert failed["outcome"] == "generation_failed"
    assert "CONTENT_POLICY_VIOLATION: gallery test rejection" in failed["error_message"]


def test_filters_by_dag_status_and_date(api_server: ApiServer) -> None:
    assert {i["dag_id"] for i in _items(api_server, dag_id="gallery_private")} == {"gallery_private"}
    assert {i["status"] for i in _items(api_server, status="success")} == {"SUCCESS"}
    assert _items(api_server, status="running") == []
    assert _items(api_server, since="2001-01-01", until="2001-01-31") == []
    page = api_server.get("/seedance/api/generations", params={"limit": 2, "offset": 2}).json()
    assert page["total"] == 5 + MIXED_CARDS and len(page["items"]) == 2
    assert api_server.get("/seedance/api/generations", params={"status": "bogus"}).status_code == 400


def test_user_without_access_to_a_dag_sees_none_of_its_generations(api_server: ApiServer) -> None:
    bob_items = _items(api_server, user="bob")
    assert bob_items and "gallery_private" not in {i["dag_id"] for i in bob_items}
    assert _items(api_server, user="bob", dag_id="gallery_private") == []
    dags = api_server.get("/seedance/api/dags", user="bob").json()["dag_ids"]
    assert dags == ["gallery_launch", "gallery_mixed", "gallery_moderated"]
    alice_dags = api_server.get("/seedance/api/dags", user="alice").json()["dag_ids"]
    assert alice_dags == ["gallery_launch", "gallery_mixed", "gallery_moderated", "gallery_private"]

    def spend_by_dag(user: str) -> dict[str, int]:
        report = api_server.get("/seedance/api/spend", user=user).json()
        return {b["dag_id"]: b["credits"] for b in report["by_dag"]}

    assert "gallery_private" in spend_by_dag("alice") and "gallery_private" not in spend_by_dag("bob")
    svg = api_server.get("/seedance/api/spend.svg", user="bob").text
    assert "gallery_launch" in svg and "gallery_private" not in svg


@pytest.mark.parametrize(
    "path",
    ["/seedance/api/generations", "/seedance/api/dags", "/seedance/api/spend", "/seedance/api/spend.svg"],
)
def test_endpoints_refuse_anonymous_and_forged_tokens(api_server: ApiServer, path: str) -> None:
    assert api_server.get(path, user=None).status_code == 401
    forged = api_server.get(path, user=None, headers={"Authorization": "Bearer not.a.jwt"})
    assert forged.status_code in (401, 403)


def test_session_cookie_authenticates_like_the_ui(api_server: ApiServer) -> None:
    response = api_server.get("/seedance/api/dags", user=None, cookies={"_token": api_server.tokens["bob"]})
    assert response.status_code == 200 and "gallery_private" not in response.json()["dag_ids"]


def test_spend_per_day_and_dag_matches_the_recorded_results(api_server: ApiServer) -> None:
    items = _items(api_server, user="alice")
    report = api_server.get("/seedance/api/spend", user="alice").json()
    # Cards of one generation (an operator and its sensor) carry its credits twice.
    billed = {i["seedance_task_id"]: i["consumed_credits"] for i in items if i["seedance_task_id"]}
    assert report["total"]["credits"] == sum(billed.values())
    assert report["total"]["usd_text"] == format_usd(report["total"]["credits"])
    assert len(report["by_day"]) == 30 and report["until"] >= items[0]["end_date"][:10]
    launch = next(b for b in report["by_dag"] if b["dag_id"] == "gallery_launch")
    assert launch["generations"] == 3
    assert launch["credits"] == sum(i["consumed_credits"] for i in items if i["dag_id"] == "gallery_launch")
    assert report["by_dag"][-1]["credits"] <= report["by_dag"][0]["credits"]  # biggest spender first
    svg = api_server.get("/seedance/api/spend.svg", user="alice")
    assert svg.headers["content-type"].startswith("image/svg+xml") and svg.text.startswith("<svg")


def test_concurrent_requests_each_get_their_own_database_session(api_server: ApiServer) -> None:
    """The Spend tab asks for the report and its chart at once, and so do two people. FastAPI
    runs a dependency and its endpoint on pool threads that need not be the same: a session
    scoped to the thread was handed to two requests at once ("This session is provisioning a new
    connection; concurrent operations are not permitted": a 500, the tab never loaded)."""
    paths = [f"/seedance/api/{name}" for name in ("spend", "spend.svg", "generations", "dags")]
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda n: api_server.get(paths[n % len(paths)]).status_code, range(120)))
    assert Counter(answers) == {200: 120}


def test_delivered_file_is_served_with_type_and_ranges(api_server: ApiServer) -> None:
    hero = next(i for i in _items(api_server) if i["task_id"] == "hero")
    whole = api_server.get(hero["media_url"], user=None)
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    assert len(whole.content) == hero["bytes"] and hashlib.sha256(whole.content).hexdigest() == hero["sha256"]
    part = api_server.get(hero["media_url"], user=None, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == whole.content[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{hero['bytes']}"


@pytest.mark.parametrize(
    "path",
    [
        "/seedance/media/..%2F..%2F..%2Fetc%2Fpasswd",
        "/seedance/media/file:%2F%2F%2Fetc%2Fpasswd",
        "/seedance/media/x?path=/etc/passwd",
        "/seedance/media/%2Fetc%2Fpasswd",
        "/seedance/static/..%2Fqueries.py",
    ],
)
def test_paths_not_recorded_by_an_operator_are_refused(api_server: ApiServer, path: str) -> None:
    response = api_server.get(path, user="alice")
    assert response.status_code in (403, 404), response.text
    assert b"root:" not in response.content and b"import" not in response.content


def test_media_token_is_bound_to_its_task_instance(api_server: ApiServer) -> None:
    hero = next(i for i in _items(api_server) if i["task_id"] == "hero")
    tampered = hero["media_url"][:-3] + ("AAA" if not hero["media_url"].endswith("AAA") else "BBB")
    assert api_server.get(tampered, user=None).status_code == 403


def test_a_task_posing_as_seedance_cannot_make_the_server_serve_other_files(api_server: ApiServer) -> None:
    # carol may read the impostor DAG, whose task "delivered" its own DAG file.
    [impostor] = _items(api_server, user="carol", dag_id="gallery_hostile")
    assert impostor["media_url"]  # it is a recorded local path, so a token is issued...
    response = api_server.get(impostor["media_url"], user=None)
    assert response.status_code == 404  # ...but the file is not a video: refused
    assert b"_hostile_execute" not in response.content


# ------------------------------------------------------------------ spend equals the ledger


def _ledger_credits(gallery_runs: GalleryRuns) -> int:
    [account] = gallery_runs.emulator.ledger()["accounts"].values()
    return int(account["charged"]) - int(account["refunded"])


def test_spend_equals_what_the_emulator_charged_minus_refunded(
    api_server: ApiServer, gallery_runs: GalleryRuns
) -> None:
    # carol may read every gallery DAG (the impostor's record claims 0 credits).
    report = api_server.get("/seedance/api/spend", user="carol").json()
    assert report["skipped_records"] == 0
    assert report["total"]["credits"] == _ledger_credits(gallery_runs)
    assert report["total"]["usd_text"] == format_usd(report["total"]["credits"])
    mixed = next(b for b in report["by_dag"] if b["dag_id"] == "gallery_mixed")
    # retried (FAILED then resubmitted: 2), clip (its sensor names the same id), the one
    # submitted elsewhere (its sensor), 2 batch items, undelivered; the reuse is no generation.
    assert (mixed["generations"], mixed["reused"]) == (7, 1)


def test_mixed_cards_tell_each_ending_apart(api_server: ApiServer) -> None:
    cards = _items(api_server, dag_id="gallery_mixed")
    by_task: dict[str, list[dict]] = {}
    for card in cards:
        by_task.setdefault(card["task_id"], []).append(card)
    [retried] = by_task["retried"]
    assert retried["outcome"] == "succeeded" and len(retried["seedance_task_ids"]) == 2
    [again] = by_task["clip_again"]
    assert again["outcome"] == "reused" and again["consumed_credits"] == 0
    [clip], [watch] = by_task["clip"], by_task["watch_clip"]
    assert watch["seedance_task_id"] == clip["seedance_task_id"] and clip["media_url"]
    [sent] = by_task["nothing_sent"]
    assert sent["outcome"] == "not_sent" and sent["consumed_credits"] == 0 and "7:5" in sent["error_message"]
    assert sent["outcome_text"] == "Nothing was sent — nothing spent"
    assert sent["request"]["prompt"] == "Never sent"  # from the rendered fields
    [refused] = by_task["refused"]  # sent with a key the service does not know: 401
    assert refused["outcome"] == "refused" and refused["consumed_credits"] == 0
    assert refused["outcome_text"] == "The service refused the request — nothing spent"
    assert "INVALID_API_KEY" in refused["error_message"]
    assert "sk-not-an-account" not in json.dumps(refused)  # the key is never shown
    assert clip["delivered_to"] == clip["output_path"] and clip["output_path"].endswith("-clip.mp4")
    assert again["delivered_to"] == clip["output_path"]
    [paid] = by_task["undelivered"]
    assert paid["outcome"] == "paid_not_delivered" and paid["consumed_credits"] > 0
    assert paid["error_message"] and paid["video_url"] and paid["video_url_expires"] is True
    assert paid["outcome_text"] == "Paid, not delivered" and paid["delivered_to"] is None
    batch = sorted(by_task["batch"], key=lambda c: c["item"])
    assert [(c["item"], c["item_id"], c["outcome"]) for c in batch] == [
        (0, "tea", "succeeded"),
        (1, "fern", "succeeded"),
    ]
    for item in batch:
        video = api_server.get(item["media_url"], user=None)
        assert video.status_code == 200 and hashlib.sha256(video.content).hexdigest() == item["sha256"]


def test_a_lost_submission_is_a_possible_charge_in_spend_never_certain_spend(
    api_server: ApiServer, gallery_runs: GalleryRuns
) -> None:
    """Red team D7a: an uncertain submission (no task id came back) may have been charged."""
    run_a = gallery_runs.runs["gallery_mixed"]
    path = _xcom_path("gallery_mixed", run_a, "nothing_sent", "seedance_result")
    original = _xcom(api_server, "gallery_mixed", run_a, "nothing_sent", "seedance_result")
    before = api_server.get("/seedance/api/spend", params={"dag_id": "gallery_mixed"}).json()
    assert before["possible_charges"]["submissions"] == 0
    lost = GenerationResult.uncertain(
        "The generate request may have reached Seedance, but no usable answer came back (read timeout)",
        {"prompt": "p", "resolution": "480p", "duration": "4"},
    ).to_xcom()
    try:
        assert api_server.patch(path, {"value": lost, "map_index": -1}).status_code == 200
        report = api_server.get("/seedance/api/spend", params={"dag_id": "gallery_mixed"}).json()
        assert report["possible_charges"] == {
            "submissions": 1,
            "estimated_credits": 8,
            "usd": 0.04,
            "usd_text": format_usd(8),
            "by_dag": {"gallery_mixed": 1},
        }
        assert report["total"] == before["total"]  # not counted as spend
        [card] = [c for c in _items(api_server, dag_id="gallery_mixed") if c["task_id"] == "nothing_sent"]
        assert card["outcome"] == "uncertain" and card["possible_credits"] == 8
        assert "may have been charged" in card["outcome_text"]
    finally:
        api_server.patch(path, {"value": original, "map_index": -1})


@pytest.mark.parametrize(
    ("credits", "possible", "spent"),
    [(None, 8, 0), (28, 0, 28)],
    ids=["link-without-credits", "batch-item-with-credits"],
)
def test_a_released_paid_record_whose_delivery_failed_is_not_counted_as_nothing(
    api_server: ApiServer, gallery_runs: GalleryRuns, credits: int | None, possible: int, spent: int
) -> None:
    """Released batch code overwrote a paid item's status with ``ERROR`` when its delivery
    failed (keeping URL and credits); a released link held no credits at all. Both were paid."""
    run_a = gallery_runs.runs["gallery_mixed"]
    path = _xcom_path("gallery_mixed", run_a, "nothing_sent", "seedance_result")
    original = _xcom(api_server, "gallery_mixed", run_a, "nothing_sent", "seedance_result")
    before = api_server.get("/seedance/api/spend", params={"dag_id": "gallery_mixed"}).json()
    released = {
        "task_id": "released-paid-1",
        "status": "ERROR",
        "video_url": "https://cdn.example.com/v.mp4",
        "error_message": "delivery failed: 403",
        "request": {"prompt": "p", "resolution": "480p", "duration": 4},
    }
    if credits is not None:
        released["consumed_credits"] = credits
    try:
        assert api_server.patch(path, {"value": released, "map_index": -1}).status_code == 200
        report = api_server.get("/seedance/api/spend", params={"dag_id": "gallery_mixed"}).json()
        assert report["possible_charges"]["estimated_credits"] == possible
        assert report["total"]["credits"] == before["total"]["credits"] + spent
        [card] = [c for c in _items(api_server, dag_id="gallery_mixed") if c["task_id"] == "nothing_sent"]
        assert card["outcome"] == "paid_not_delivered"
    finally:
        api_server.patch(path, {"value": original, "map_index": -1})


def test_pages_over_batch_items_cover_every_card_once(api_server: ApiServer) -> None:
    everything = _items(api_server, dag_id="gallery_mixed")
    seen = []
    for offset in range(0, MIXED_CARDS, 2):
        page = api_server.get(
            "/seedance/api/generations", params={"dag_id": "gallery_mixed", "limit": 2, "offset": offset}
        ).json()
        assert page["total"] == MIXED_CARDS
        seen += [(c["task_id"], c["item"]) for c in page["items"]]
    assert seen == [(c["task_id"], c["item"]) for c in everything]


def test_card_route_of_the_extra_link_shows_that_task_instance(
    api_server: ApiServer, gallery_runs: GalleryRuns
) -> None:
    run_id = gallery_runs.runs["gallery_mixed"]
    base = {"dag_id": "gallery_mixed", "run_id": run_id, "map_index": -1}
    cards = _items(api_server, **base, task_id="batch")
    assert sorted(c["item"] for c in cards) == [0, 1] and {c["task_id"] for c in cards} == {"batch"}
    [card] = _items(api_server, **base, task_id="undelivered")
    assert card["outcome"] == "paid_not_delivered"
    # Filters and access still apply: bob may not read gallery_private.
    private = {"dag_id": "gallery_private", "run_id": gallery_runs.runs["gallery_private"], "map_index": -1}
    assert _items(api_server, user="bob", **private, task_id="secret_cut") == []
    assert len(_items(api_server, user="alice", **private, task_id="secret_cut")) == 1


def _xcom_path(dag_id: str, run_id: str, task_id: str, key: str) -> str:
    run = quote(run_id, safe="")
    return f"/api/v2/dags/{dag_id}/dagRuns/{run}/taskInstances/{task_id}/xcomEntries/{key}"


def _xcom(api_server: ApiServer, dag_id: str, run_id: str, task_id: str, key: str) -> dict:
    response = api_server.get(_xcom_path(dag_id, run_id, task_id, key), params={"deserialize": "true"})
    assert response.status_code == 200, response.text
    value = response.json()["value"]
    return value if isinstance(value, dict) else json.loads(value)


def test_edited_xcom_cannot_point_the_gallery_at_another_dags_file(
    api_server: ApiServer, gallery_runs: GalleryRuns
) -> None:
    # alice may edit gallery_mixed's XComs; bob may read gallery_mixed but not gallery_private.
    run_b = gallery_runs.runs["gallery_private"]
    secret = _xcom(api_server, "gallery_private", run_b, "secret_cut", "seedance_result")
    secret_bytes = api_server.get(
        next(i for i in _items(api_server, dag_id="gallery_private"))["media_url"], user=None
    ).content
    assert secret_bytes[4:8] == b"ftyp"
    run_a = gallery_runs.runs["gallery_mixed"]
    originals = {
        (task, key): _xcom(api_server, "gallery_mixed", run_a, task, key)
        for task, key in (("clip", "return_value"), ("clip", "seedance_result"), ("batch", "return_value"))
    }
    try:
        for (task, key), value in originals.items():
            edited = json.loads(json.dumps(value))
            target = edited["results"][0] if task == "batch" else edited
            target.update(output_path=secret["output_path"], bytes=secret["bytes"], sha256=secret["sha256"])
            response = api_server.patch(
                _xcom_path("gallery_mixed", run_a, task, key), {"value": edited, "map_index": -1}
            )
            assert response.status_code == 200, response.text
        cards = _items(api_server, user="bob", dag_id="gallery_mixed")
        hijacked = [c for c in cards if c["output_path"] == secret["output_path"]]
        assert {(c["task_id"], c["item"]) for c in hijacked} == {("clip", None), ("batch", 0)}
        for card in hijacked:
            response = api_server.get(card["media_url"], user=None)
            assert response.status_code == 404 and response.content != secret_bytes
    finally:
        for (task, key), value in originals.items():
            api_server.patch(_xcom_path("gallery_mixed", run_a, task, key), {"value": value, "map_index": -1})


def test_unreadable_record_is_skipped_and_counted_never_a_500(
    api_server: ApiServer, gallery_runs: GalleryRuns
) -> None:
    run_a = gallery_runs.runs["gallery_mixed"]
    original = _xcom(api_server, "gallery_mixed", run_a, "watch_elsewhere", "return_value")
    paths = [
        _xcom_path("gallery_mixed", run_a, "watch_elsewhere", k) for k in ("return_value", "seedance_result")
    ]
    others = {
        p: _xcom(api_server, "gallery_mixed", run_a, "watch_elsewhere", p.rsplit("/", 1)[1]) for p in paths
    }
    try:
        for bad in (
            {**original, "consumed_credits": "lots"},
            [1, 2, 3],
            {**original, "consumed_credits": -5},
        ):
            for target in paths:
                assert api_server.patch(target, {"value": bad, "map_index": -1}).status_code == 200
            page = api_server.get(
                "/seedance/api/generations", params={"dag_id": "gallery_mixed", "limit": 100}
            )
            assert page.status_code == 200 and page.json()["skipped_records"] == 1
            [card] = [c for c in page.json()["items"] if c["task_id"] == "watch_elsewhere"]
            assert card["unreadable"] is True
            report = api_server.get("/seedance/api/spend", params={"dag_id": "gallery_mixed"})
            assert report.status_code == 200 and report.json()["skipped_records"] == 1
            assert api_server.get("/seedance/api/spend.svg").status_code == 200
    finally:
        for target, value in others.items():
            api_server.patch(target, {"value": value, "map_index": -1})
