"""The two API endpoints and the video URLs, as the guide and the contract describe them."""

from __future__ import annotations

import re
import struct
import time
from datetime import datetime, timezone
from typing import Any

import pytest
import requests
from emulator_helpers import ALPHA_CREDITS, BRAVO_CREDITS, SLOW_SECONDS, Api, error_code

from airflow_provider_seedance.emulator.testing import EmulatorProcess

PROMPT = "A cinematic shot of mountains at sunrise with flowing clouds"

# The guide's pricing tables, copied here independently of the emulator's own table.
GUIDE_PRICES = {
    ("480p", "4", False): 8,
    ("480p", "8", False): 14,
    ("480p", "12", False): 19,
    ("480p", "4", True): 14,
    ("480p", "8", True): 28,
    ("480p", "12", True): 38,
    ("720p", "4", False): 14,
    ("720p", "8", False): 28,
    ("720p", "12", False): 42,
    ("720p", "4", True): 28,
    ("720p", "8", True): 56,
    ("720p", "12", True): 84,
}

EXPECTED_FRAME = {
    ("720p", "16:9"): (1280, 720),
    ("720p", "9:16"): (720, 1280),
    ("720p", "1:1"): (720, 720),
    ("720p", "4:3"): (960, 720),
    ("720p", "3:4"): (720, 960),
    ("720p", "21:9"): (1680, 720),
    ("720p", "9:21"): (720, 1680),
    ("480p", "16:9"): (854, 480),
    ("480p", "9:16"): (480, 854),
    ("480p", "1:1"): (480, 480),
    ("480p", "4:3"): (640, 480),
    ("480p", "3:4"): (480, 640),
    ("480p", "21:9"): (1120, 480),
    ("480p", "9:21"): (480, 1120),
}


# ---- a tiny MP4 box reader --------------------------------------------------------------------


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of the boxes in ``data[start:end]``."""
    end = len(data) if end is None else end
    found = []
    while start + 8 <= end:
        size, kind = struct.unpack(">I4s", data[start : start + 8])
        header = 8
        if size == 1:
            size = struct.unpack(">Q", data[start + 8 : start + 16])[0]
            header = 16
        elif size == 0:
            size = end - start
        assert size >= header, "corrupt box"
        found.append((kind, start + header, start + size))
        start += size
    return found


def mp4_track_sizes(data: bytes) -> list[tuple[int, int]]:
    """Width and height from every ``moov/trak/tkhd`` box (16.16 fixed point)."""
    top = _boxes(data)
    assert top[0][0] == b"ftyp", "an MP4 starts with an ftyp box"
    sizes = []
    for kind, begin, finish in top:
        if kind != b"moov":
            continue
        for trak_kind, t_begin, t_end in _boxes(data, begin, finish):
            if trak_kind != b"trak":
                continue
            for box_kind, b_begin, _ in _boxes(data, t_begin, t_end):
                if box_kind == b"tkhd":
                    version = data[b_begin]
                    # version/flags 4 + times/ids/duration 20 or 32 + reserved/layer/volume 16 + matrix 36
                    offset = b_begin + (88 if version == 1 else 76)
                    width, height = struct.unpack(">II", data[offset : offset + 8])
                    sizes.append((width >> 16, height >> 16))
    return sizes


# ---- success path -----------------------------------------------------------------------------


def test_generate_returns_guide_shaped_task(api: Api) -> None:
    response = api.generate({"prompt": PROMPT, "aspect_ratio": "16:9", "resolution": "720p", "duration": "8"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body == {
        "code": 200,
        "message": "success",
        "data": {"task_id": body["data"]["task_id"], "status": "IN_PROGRESS"},
    }
    assert re.fullmatch(r"seed[0-9a-z]+", body["data"]["task_id"])


def test_status_of_finished_task_has_every_guide_field(api: Api) -> None:
    body_sent = {"prompt": PROMPT, "aspect_ratio": "16:9", "resolution": "720p", "duration": "8"}
    before = datetime.now(timezone.utc).replace(microsecond=0)
    task_id = api.submit(body_sent)
    response = api.status(task_id)
    assert response.status_code == 200
    body = response.json()
    assert body["code"] == 200 and body["message"] == "success"
    data = body["data"]
    assert set(data) == {
        "task_id",
        "status",
        "consumed_credits",
        "created_at",
        "request",
        "response",
        "error_message",
    }
    assert data["task_id"] == task_id
    assert data["status"] == "SUCCESS"
    assert data["consumed_credits"] == 28
    assert data["request"] == body_sent
    assert data["response"] == [f"{api.base_url}/videos/{task_id}.mp4"]
    assert data["error_message"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", data["created_at"])
    created = datetime.strptime(data["created_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert 0 <= (created - before).total_seconds() <= 60  # the submit time, not a fixed stamp


def test_request_is_echoed_as_received_including_unknown_fields(api: Api) -> None:
    sent = {
        "prompt": PROMPT,
        "duration": 4,
        "seed": 7,
        "fixed_lens": True,
        "image_urls": ["https://e.com/a.jpg"],
    }
    task_id = api.submit(sent)
    assert api.status_data(task_id)["request"] == sent


def test_defaults_apply_when_fields_are_omitted(api: Api, emulator: EmulatorProcess) -> None:
    task_id = api.submit({"prompt": PROMPT})
    data = api.status_data(task_id)
    # 720p, "8" s, no audio = 28 credits; aspect 1:1 at 720p = a 720x720 video.
    assert data["consumed_credits"] == 28
    assert data["request"] == {"prompt": PROMPT}
    video = requests.get(data["response"][0], timeout=10)
    assert mp4_track_sizes(video.content) == [(720, 720)]
    assert emulator.ledger()["accounts"][api.alpha]["charged"] == 28


def test_null_optional_fields_mean_defaults(api: Api) -> None:
    task_id = api.submit({"prompt": PROMPT, "aspect_ratio": None, "resolution": None, "generate_audio": None})
    assert api.status_data(task_id)["consumed_credits"] == 28


def test_every_price_in_the_guide_is_charged(api: Api, emulator: EmulatorProcess) -> None:
    charged = 0
    for (resolution, duration, audio), price in GUIDE_PRICES.items():
        task_id = api.submit(
            {"prompt": PROMPT, "resolution": resolution, "duration": duration, "generate_audio": audio}
        )
        assert api.status_data(task_id)["consumed_credits"] == price, (resolution, duration, audio)
        charged += price
        account = emulator.ledger()["accounts"][api.alpha]
        assert account["charged"] == charged
        assert account["balance"] == ALPHA_CREDITS - charged


@pytest.mark.parametrize("duration", [4, 8, 12])
def test_integer_durations_are_accepted_leniently(api: Api, duration: int) -> None:
    task_id = api.submit({"prompt": PROMPT, "resolution": "480p", "duration": duration})
    assert api.status_data(task_id)["consumed_credits"] == GUIDE_PRICES[("480p", str(duration), False)]


def test_prompt_of_exactly_2000_characters_is_accepted(api: Api) -> None:
    assert api.generate({"prompt": "x" * 2000}).status_code == 200


# ---- documented errors --------------------------------------------------------------------------

INVALID_BODIES: list[tuple[str, Any, int, str]] = [
    ("missing prompt", {"aspect_ratio": "16:9"}, 400, "INVALID_PROMPT"),
    ("empty prompt", {"prompt": ""}, 400, "INVALID_PROMPT"),
    ("blank prompt", {"prompt": "   \n"}, 400, "INVALID_PROMPT"),
    ("numeric prompt", {"prompt": 42}, 400, "INVALID_PROMPT"),
    ("2001-char prompt", {"prompt": "x" * 2001}, 400, "INVALID_PROMPT"),
    ("aspect 2:1", {"prompt": PROMPT, "aspect_ratio": "2:1"}, 400, "INVALID_ASPECT_RATIO"),
    ("aspect 16/9", {"prompt": PROMPT, "aspect_ratio": "16/9"}, 400, "INVALID_ASPECT_RATIO"),
    ("resolution 1080p", {"prompt": PROMPT, "resolution": "1080p"}, 400, "INVALID_RESOLUTION"),
    ("resolution 720", {"prompt": PROMPT, "resolution": 720}, 400, "INVALID_RESOLUTION"),
    ("duration 5", {"prompt": PROMPT, "duration": "5"}, 400, "INVALID_DURATION"),
    ("duration 8s", {"prompt": PROMPT, "duration": "8s"}, 400, "INVALID_DURATION"),
    ("duration int 6", {"prompt": PROMPT, "duration": 6}, 400, "INVALID_DURATION"),
    ("duration true", {"prompt": PROMPT, "duration": True}, 400, "INVALID_DURATION"),
    (
        "two images",
        {"prompt": PROMPT, "image_urls": ["https://a/1.jpg", "https://a/2.jpg"]},
        400,
        "TOO_MANY_IMAGES",
    ),
    ("image not a list", {"prompt": PROMPT, "image_urls": "https://a/1.jpg"}, 400, "INVALID_IMAGE_URLS"),
    ("image ftp", {"prompt": PROMPT, "image_urls": ["ftp://a/1.jpg"]}, 400, "INVALID_IMAGE_URLS"),
    ("image number", {"prompt": PROMPT, "image_urls": [1]}, 400, "INVALID_IMAGE_URLS"),
    (
        "callback http",
        {"prompt": PROMPT, "callback_url": "http://example.com/hook"},
        400,
        "INVALID_CALLBACK_URL",
    ),
    (
        "callback localhost",
        {"prompt": PROMPT, "callback_url": "https://localhost/hook"},
        400,
        "INVALID_CALLBACK_URL",
    ),
    (
        "callback loopback",
        {"prompt": PROMPT, "callback_url": "https://127.0.0.1:9/hook"},
        400,
        "INVALID_CALLBACK_URL",
    ),
    (
        "callback private",
        {"prompt": PROMPT, "callback_url": "https://192.168.1.20/hook"},
        400,
        "INVALID_CALLBACK_URL",
    ),
    (
        "callback ipv6 loopback",
        {"prompt": PROMPT, "callback_url": "https://[::1]/hook"},
        400,
        "INVALID_CALLBACK_URL",
    ),
    ("callback not a URL", {"prompt": PROMPT, "callback_url": "hook"}, 400, "INVALID_CALLBACK_URL"),
    ("audio not boolean", {"prompt": PROMPT, "generate_audio": "yes"}, 400, "INVALID_REQUEST"),
    ("body is a list", [PROMPT], 400, "INVALID_REQUEST"),
    ("body is not JSON", "{prompt: nope", 400, "INVALID_REQUEST"),
]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [case[1:] for case in INVALID_BODIES],
    ids=[case[0] for case in INVALID_BODIES],
)
def test_invalid_generate_is_rejected_without_a_task_or_charge(
    api: Api,
    emulator: EmulatorProcess,
    body: Any,
    status: int,
    code: str,
) -> None:
    response = api.generate(body)
    assert response.status_code == status, response.text
    assert error_code(response) == code
    ledger = emulator.ledger()
    assert ledger["generate_requests"] == 1
    assert ledger["accounts"][api.alpha] == {
        "balance": ALPHA_CREDITS,
        "charged": 0,
        "refunded": 0,
        "tasks": 0,
    }
    assert emulator.tasks() == []


def test_public_https_callback_url_is_accepted(api: Api) -> None:
    response = api.generate({"prompt": PROMPT, "callback_url": "https://your-app.com/api/seedance-callback"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer sk-wrong-key-value-9999", "Basic c2stdGVzdA==", "Bearer ", "sk-test-alpha-key-0001"],
    ids=["missing", "unknown key", "basic scheme", "empty bearer", "no scheme"],
)
def test_bad_api_key_is_401_on_both_endpoints(
    api: Api,
    emulator: EmulatorProcess,
    authorization: str | None,
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    generate = requests.post(
        f"{api.base_url}/v1/generate", json={"prompt": PROMPT}, headers=headers, timeout=10
    )
    assert generate.status_code == 401
    assert error_code(generate) == "INVALID_API_KEY"
    status = requests.get(
        f"{api.base_url}/v1/status", params={"task_id": "seedx"}, headers=headers, timeout=10
    )
    assert status.status_code == 401
    assert error_code(status) == "INVALID_API_KEY"
    assert emulator.tasks() == []


def test_insufficient_credits_is_402_and_creates_nothing(api: Api, emulator: EmulatorProcess) -> None:
    assert BRAVO_CREDITS == 50
    expensive = api.generate({"prompt": PROMPT, "duration": "12", "generate_audio": True}, key=api.bravo)
    assert expensive.status_code == 402
    assert error_code(expensive) == "INSUFFICIENT_CREDITS"
    assert emulator.ledger()["accounts"][api.bravo] == {
        "balance": 50,
        "charged": 0,
        "refunded": 0,
        "tasks": 0,
    }

    api.submit({"prompt": PROMPT}, key=api.bravo)  # 28 credits: 22 left
    again = api.generate({"prompt": PROMPT}, key=api.bravo)
    assert again.status_code == 402
    assert emulator.ledger()["accounts"][api.bravo] == {
        "balance": 22,
        "charged": 28,
        "refunded": 0,
        "tasks": 1,
    }
    api.submit({"prompt": PROMPT, "resolution": "480p", "duration": "8"}, key=api.bravo)  # exactly 14 <= 22
    assert emulator.ledger()["accounts"][api.bravo]["balance"] == 8
    assert len(emulator.tasks()) == 2


def test_unknown_task_is_404(api: Api) -> None:
    response = api.status("seed15doesnotexistpro")
    assert response.status_code == 404
    assert error_code(response) == "TASK_NOT_FOUND"


def test_another_accounts_task_is_404(api: Api) -> None:
    task_id = api.submit({"prompt": PROMPT}, key=api.alpha)
    response = api.status(task_id, key=api.bravo)
    assert response.status_code == 404
    assert error_code(response) == "TASK_NOT_FOUND"
    assert api.status(task_id, key=api.alpha).status_code == 200


@pytest.mark.parametrize("task_id", [None, ""], ids=["absent", "empty"])
def test_status_without_task_id_is_400(api: Api, task_id: str | None) -> None:
    response = api.status(task_id)
    assert response.status_code == 400
    assert error_code(response) == "INVALID_REQUEST"


def test_unknown_route_and_method_answer_in_the_error_shape(api: Api) -> None:
    missing = requests.get(f"{api.base_url}/v2/generate", timeout=10)
    assert missing.status_code == 404
    assert error_code(missing) == "NOT_FOUND"
    wrong_method = requests.get(f"{api.base_url}/v1/generate", timeout=10)
    assert wrong_method.status_code == 405
    assert error_code(wrong_method) == "METHOD_NOT_ALLOWED"


# ---- lifecycle, failure and refunds -----------------------------------------------------------


def test_task_is_in_progress_until_its_time_then_succeeds(
    slow_api: Api, slow_emulator: EmulatorProcess
) -> None:
    task_id = slow_api.submit({"prompt": PROMPT, "duration": "4"})
    data = slow_api.status_data(task_id)
    assert data["status"] == "IN_PROGRESS"
    assert data["consumed_credits"] == 0
    assert data["response"] == []
    assert data["error_message"] is None
    # The price is reserved at submit, before the task finishes.
    assert slow_emulator.ledger()["accounts"][slow_api.alpha]["balance"] == ALPHA_CREDITS - 14
    [task] = slow_emulator.tasks()
    assert task["finished"] is False and task["status"] == "IN_PROGRESS"
    assert requests.get(f"{slow_api.base_url}/videos/{task_id}.mp4", timeout=10).status_code == 404

    # The emulator schedules the finish SLOW_SECONDS after submit (its own record, not a
    # wall-clock bound that a loaded machine could break).
    assert task["generation_seconds"] == pytest.approx(SLOW_SECONDS, abs=0.01)
    # Once it is due, the very next read finds it done (a slow machine only makes it later).
    time.sleep(SLOW_SECONDS)
    done = slow_api.status_data(task_id)
    assert done["status"] == "SUCCESS"
    assert done["consumed_credits"] == 14
    assert slow_emulator.tasks()[0]["finished"] is True


def test_failed_outcome_refunds_and_reports_the_error(api: Api, emulator: EmulatorProcess) -> None:
    emulator.add_faults(
        {"endpoint": "outcome", "fault": "failed", "times": 1, "error_message": "MODERATION: no"}
    )
    failing = api.submit({"prompt": PROMPT})
    succeeding = api.submit({"prompt": PROMPT})

    failed = api.status_data(failing)
    assert failed["status"] == "FAILED"
    assert failed["error_message"] == "MODERATION: no"
    assert failed["consumed_credits"] == 0
    assert failed["response"] == []
    assert api.status_data(succeeding)["status"] == "SUCCESS"

    account = emulator.ledger()["accounts"][api.alpha]
    assert account == {"balance": ALPHA_CREDITS - 28, "charged": 56, "refunded": 28, "tasks": 2}
    by_id = {t["task_id"]: t for t in emulator.tasks()}
    assert by_id[failing]["status"] == "FAILED" and by_id[failing]["error_message"] == "MODERATION: no"
    assert requests.get(f"{api.base_url}/videos/{failing}.mp4", timeout=10).status_code == 404


def test_failed_outcome_has_a_default_moderation_message(api: Api, emulator: EmulatorProcess) -> None:
    emulator.add_faults({"endpoint": "outcome", "fault": "failed"})
    data = api.status_data(api.submit())
    assert data["status"] == "FAILED"
    assert data["error_message"].startswith("CONTENT_POLICY_VIOLATION")


def test_outcome_fault_skips_rejected_requests(api: Api, emulator: EmulatorProcess) -> None:
    emulator.add_faults({"endpoint": "outcome", "fault": "failed", "times": 1})
    assert api.generate({"prompt": ""}).status_code == 400
    assert api.status_data(api.submit())["status"] == "FAILED"
    assert api.status_data(api.submit())["status"] == "SUCCESS"


def test_reset_restores_balances_and_clears_everything(api: Api, emulator: EmulatorProcess) -> None:
    api.submit()
    emulator.add_faults({"endpoint": "status", "fault": "http_500", "times": 5})
    emulator.reset()
    assert emulator.tasks() == []
    ledger = emulator.ledger()
    assert ledger["generate_requests"] == 0 and ledger["status_requests"] == 0
    assert ledger["accounts"][api.alpha] == {
        "balance": ALPHA_CREDITS,
        "charged": 0,
        "refunded": 0,
        "tasks": 0,
    }
    assert api.status("seed15unknownpro").status_code == 404  # the 500 rule is gone


def test_held_generations_stay_in_progress_until_released(api: Api, emulator: EmulatorProcess) -> None:
    assert emulator.hold() == 0
    task_id = api.submit({"prompt": PROMPT, "duration": "4"})  # due at once (0 s generations)
    time.sleep(0.2)
    data = api.status_data(task_id)
    assert data["status"] == "IN_PROGRESS" and data["consumed_credits"] == 0
    assert [t["finished"] for t in emulator.tasks()] == [False]
    assert requests.get(f"{api.base_url}/videos/{task_id}.mp4", timeout=10).status_code == 404
    # Released, a generation past its due time finishes at once and is charged as usual.
    assert emulator.hold(False) == 0
    done = api.status_data(task_id)
    assert done["status"] == "SUCCESS" and done["consumed_credits"] == 14


def test_a_reset_ends_a_hold_and_a_bad_hold_body_is_refused(api: Api, emulator: EmulatorProcess) -> None:
    for body in ({}, {"hold": "yes"}, {"hold": 1}, ["hold"]):
        answer = requests.post(f"{api.base_url}/_emulator/hold", json=body, timeout=10)
        assert answer.status_code == 400 and error_code(answer) == "INVALID_REQUEST", body
    emulator.hold()
    emulator.reset()
    assert api.status_data(api.submit())["status"] == "SUCCESS"


# ---- videos -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("resolution", "aspect_ratio"), sorted(EXPECTED_FRAME))
def test_video_pixel_size_matches_request(api: Api, resolution: str, aspect_ratio: str) -> None:
    task_id = api.submit(
        {"prompt": PROMPT, "resolution": resolution, "aspect_ratio": aspect_ratio, "duration": "4"}
    )
    response = requests.get(api.video_url(task_id), timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "video/mp4"
    assert int(response.headers["Content-Length"]) == len(response.content)
    assert mp4_track_sizes(response.content) == [EXPECTED_FRAME[(resolution, aspect_ratio)]]


def test_video_url_follows_the_host_header(api: Api) -> None:
    task_id = api.submit()
    port = api.base_url.rsplit(":", 1)[1]
    response = requests.get(
        f"{api.base_url}/v1/status",
        params={"task_id": task_id},
        headers={"Authorization": f"Bearer {api.alpha}", "Host": f"localhost:{port}"},
        timeout=10,
    )
    assert response.json()["data"]["response"] == [f"http://localhost:{port}/videos/{task_id}.mp4"]


def test_video_head_and_range(api: Api) -> None:
    url = api.video_url(api.submit())
    full = requests.get(url, timeout=10).content
    head = requests.head(url, timeout=10)
    assert head.status_code == 200
    assert head.headers["Content-Type"] == "video/mp4"
    assert int(head.headers["Content-Length"]) == len(full)
    assert head.content == b""
    part = requests.get(url, headers={"Range": "bytes=100-"}, timeout=10)
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 100-{len(full) - 1}/{len(full)}"
    assert part.content == full[100:]
    beyond = requests.get(url, headers={"Range": f"bytes={len(full)}-"}, timeout=10)
    assert beyond.status_code == 416


def test_video_of_unknown_task_is_404(api: Api) -> None:
    response = requests.get(f"{api.base_url}/videos/seed15nothingherepro.mp4", timeout=10)
    assert response.status_code == 404
    assert error_code(response) == "VIDEO_NOT_FOUND"


def test_admin_expire_makes_the_video_gone(api: Api, emulator: EmulatorProcess) -> None:
    task_id = api.submit()
    other = api.submit()
    url = api.video_url(task_id)
    assert requests.get(url, timeout=10).status_code == 200
    emulator.expire(task_id)
    gone = requests.get(url, timeout=10)
    assert gone.status_code == 410
    assert error_code(gone) == "VIDEO_EXPIRED"
    assert requests.get(api.video_url(other), timeout=10).status_code == 200
    # The task itself is still a success with its URL; only the file is gone.
    assert api.status_data(task_id)["status"] == "SUCCESS"


def test_video_expires_after_ttl() -> None:
    with EmulatorProcess(generation_seconds=0, extra_args=["--video-ttl-seconds", "4"]) as emulator:
        api = Api(emulator, key=emulator.api_key)
        submitted = time.monotonic()
        url = api.video_url(api.submit())
        assert requests.get(url, timeout=10).status_code == 200
        time.sleep(max(0.0, 4.2 - (time.monotonic() - submitted)))
        expired = requests.get(url, timeout=10)
        assert expired.status_code == 410
        assert error_code(expired) == "VIDEO_EXPIRED"
