"""Request validation, pricing and status parsing: the pure model, no I/O."""

from __future__ import annotations

import json

import pytest

from airflow_provider_seedance.exceptions import CreationState, SeedanceResponseError, SeedanceValidationError
from airflow_provider_seedance.models import (
    ASPECT_RATIOS,
    PRICE_TABLE,
    BatchEventStatus,
    GenerationRequest,
    SeedanceTask,
    TaskStatus,
    TriggerEventStatus,
    credits_to_usd,
    estimate_credits,
    format_usd,
)
from airflow_provider_seedance.plugins.callback_receiver import Outcome as ReceiverOutcome
from airflow_provider_seedance.reattach import SubmissionState
from airflow_provider_seedance.results import Outcome


def test_minimal_request_sends_only_the_prompt() -> None:
    assert GenerationRequest(prompt="a cat").to_payload() == {"prompt": "a cat"}


def test_full_request_sends_every_set_field_with_duration_as_string() -> None:
    request = GenerationRequest(
        prompt="p",
        aspect_ratio="16:9",
        resolution="480p",
        duration=12,  # type: ignore[arg-type]
        generate_audio=True,
        fixed_lens=False,
        image_urls=["https://example.com/a.jpg"],  # type: ignore[arg-type]
        callback_url="https://hooks.example.com/seedance",
    )
    assert request.to_payload() == {
        "prompt": "p",
        "aspect_ratio": "16:9",
        "resolution": "480p",
        "duration": "12",
        "generate_audio": True,
        "fixed_lens": False,
        "image_urls": ["https://example.com/a.jpg"],
        "callback_url": "https://hooks.example.com/seedance",
    }


@pytest.mark.parametrize("prompt", ["x", "x" * 2000, "  padded  "])
def test_prompt_boundaries_accepted(prompt: str) -> None:
    assert GenerationRequest(prompt=prompt).prompt == prompt


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t", "x" * 2001, None, 42, ["a"]])
def test_prompt_rejected_names_field_value_and_rule(prompt: object) -> None:
    with pytest.raises(SeedanceValidationError) as info:
        GenerationRequest(prompt=prompt)  # type: ignore[arg-type]
    assert info.value.field == "prompt"
    assert "Invalid prompt" in str(info.value)
    assert "1 to 2000 characters" in str(info.value)


def test_long_prompt_error_is_short_and_says_its_length() -> None:
    with pytest.raises(SeedanceValidationError) as info:
        GenerationRequest(prompt="y" * 2001)
    assert "2001 characters" in str(info.value)
    assert len(str(info.value)) < 300


@pytest.mark.parametrize("ratio", ASPECT_RATIOS)
def test_every_allowed_aspect_ratio(ratio: str) -> None:
    assert GenerationRequest(prompt="p", aspect_ratio=ratio).to_payload()["aspect_ratio"] == ratio


@pytest.mark.parametrize("ratio", ["5:4", "16:10", "", "16x9", "1:1 ", 1.0, None])
def test_bad_aspect_ratio(ratio: object) -> None:
    if ratio is None or ratio == "1:1 ":
        # None means "not set"; surrounding whitespace from a template is trimmed.
        GenerationRequest(prompt="p", aspect_ratio=ratio)  # type: ignore[arg-type]
        return
    with pytest.raises(SeedanceValidationError, match=r"Invalid aspect_ratio: .*Allowed: one of 1:1, 16:9"):
        GenerationRequest(prompt="p", aspect_ratio=ratio)  # type: ignore[arg-type]


@pytest.mark.parametrize("resolution", ["480p", "720p", "720P"])
def test_allowed_resolutions(resolution: str) -> None:
    assert GenerationRequest(prompt="p", resolution=resolution).resolution == resolution.lower()


@pytest.mark.parametrize("resolution", ["1080p", "720", "", 720])
def test_bad_resolution(resolution: object) -> None:
    with pytest.raises(SeedanceValidationError, match=r"Invalid resolution: .*480p, 720p"):
        GenerationRequest(prompt="p", resolution=resolution)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "sent"), [("4", "4"), ("8", "8"), ("12", "12"), (4, "4"), (8, "8"), (12, "12")]
)
def test_durations_accept_str_and_int_and_send_str(given: object, sent: str) -> None:
    assert GenerationRequest(prompt="p", duration=given).to_payload()["duration"] == sent  # type: ignore[arg-type]


@pytest.mark.parametrize("duration", ["5", 5, 0, -4, "4s", 4.0, True, "", 16])
def test_bad_duration(duration: object) -> None:
    with pytest.raises(SeedanceValidationError) as info:
        GenerationRequest(prompt="p", duration=duration)  # type: ignore[arg-type]
    assert info.value.field == "duration"
    assert '"4", "8" or "12"' in str(info.value)


@pytest.mark.parametrize("name", ["generate_audio", "fixed_lens"])
@pytest.mark.parametrize("value", ["true", 1, 0, "False"])
def test_flags_must_be_booleans(name: str, value: object) -> None:
    with pytest.raises(SeedanceValidationError, match=rf"Invalid {name}: .*true or false"):
        GenerationRequest(prompt="p", **{name: value})  # type: ignore[arg-type]


def test_one_image_url_accepted_and_a_bare_string_becomes_a_list() -> None:
    request = GenerationRequest(prompt="p", image_urls="http://example.com/x.png")  # type: ignore[arg-type]
    assert request.to_payload()["image_urls"] == ["http://example.com/x.png"]


@pytest.mark.parametrize(
    "urls",
    [
        ["https://a.example/1.jpg", "https://a.example/2.jpg"],
        ["ftp://example.com/a.jpg"],
        ["file:///etc/passwd"],
        ["example.com/a.jpg"],
        ["https://"],
        [42],
        {"url": "https://a.example/1.jpg"},
    ],
)
def test_bad_image_urls(urls: object) -> None:
    with pytest.raises(SeedanceValidationError, match=r"Invalid image_urls: .*at most 1 http\(s\) URL"):
        GenerationRequest(prompt="p", image_urls=urls)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url", ["https://hooks.example.com/x", "https://8.8.8.8/cb", "https://example.com:8443/cb"]
)
def test_public_https_callback_accepted(url: str) -> None:
    assert GenerationRequest(prompt="p", callback_url=url).callback_url == url


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/x",  # not https
        "https://localhost/cb",
        "https://LOCALHOST:8443/cb",
        "https://api.localhost/cb",
        "https://127.0.0.1/cb",
        "https://127.9.9.9/cb",
        "https://[::1]/cb",
        "https://10.0.0.5/cb",
        "https://172.16.3.4/cb",
        "https://192.168.1.10/cb",
        "https://169.254.169.254/latest",
        "https://0.0.0.0/cb",
        "https://printer.local/cb",
        "https://intranet/cb",
        "not a url",
        "",
        42,
    ],
)
def test_non_public_or_non_https_callback_rejected(url: object) -> None:
    with pytest.raises(SeedanceValidationError) as info:
        GenerationRequest(prompt="p", callback_url=url)  # type: ignore[arg-type]
    assert info.value.field == "callback_url"
    assert "publicly reachable https://" in str(info.value)


def test_from_mapping_rejects_unknown_fields_and_locates_batch_item() -> None:
    with pytest.raises(SeedanceValidationError, match=r"Invalid requests\[3\]\.colour"):
        GenerationRequest.from_mapping({"prompt": "p", "colour": "red"}, field_prefix="requests[3].")
    with pytest.raises(SeedanceValidationError, match=r"Invalid requests\[0\]\.duration"):
        GenerationRequest.from_mapping({"prompt": "p", "duration": 9}, field_prefix="requests[0].")


def test_fingerprint_changes_with_the_prompt_and_not_with_int_vs_str_duration() -> None:
    a = GenerationRequest(prompt="a", duration=8)  # type: ignore[arg-type]
    assert a.fingerprint() == GenerationRequest(prompt="a", duration="8").fingerprint()
    assert a.fingerprint() != GenerationRequest(prompt="b", duration="8").fingerprint()


@pytest.mark.parametrize(("key", "credits"), sorted(PRICE_TABLE.items()))
def test_price_table_matches_the_guide(key: tuple[str, str, bool], credits: int) -> None:
    resolution, duration, audio = key
    assert estimate_credits(resolution, duration, audio) == credits
    assert estimate_credits(resolution, int(duration), audio) == credits


def test_price_table_is_complete_and_guide_values() -> None:
    expected = {
        ("480p", "4"): (8, 14),
        ("480p", "8"): (14, 28),
        ("480p", "12"): (19, 38),
        ("720p", "4"): (14, 28),
        ("720p", "8"): (28, 56),
        ("720p", "12"): (42, 84),
    }
    for (resolution, duration), (plain, audio) in expected.items():
        assert PRICE_TABLE[(resolution, duration, False)] == plain
        assert PRICE_TABLE[(resolution, duration, True)] == audio
    assert len(PRICE_TABLE) == 12


def test_estimate_uses_api_defaults_720p_8s_no_audio() -> None:
    assert estimate_credits() == 28
    assert GenerationRequest(prompt="p").estimated_credits == 28


def test_estimate_rejects_bad_values() -> None:
    with pytest.raises(SeedanceValidationError):
        estimate_credits("1080p", "8", False)


@pytest.mark.parametrize(
    ("credits", "text"),
    [(28, "$0.14"), (19, "$0.095"), (8, "$0.04"), (84, "$0.42"), (0, "$0.00"), (None, "$0.00")],
)
def test_dollars(credits: int | None, text: str) -> None:
    assert format_usd(credits) == text


def test_dollars_exact() -> None:
    assert str(credits_to_usd(19)) == "0.095"


GUIDE_SUCCESS = {
    "task_id": "seed15abc123def456pro",
    "status": "SUCCESS",
    "consumed_credits": 28,
    "created_at": "2026-02-07T10:30:00Z",
    "request": {"prompt": "mountains", "aspect_ratio": "16:9", "resolution": "720p", "duration": "8"},
    "response": ["https://cdn.example.com/videos/seed15abc123def456pro.mp4"],
    "error_message": None,
}


def test_task_parses_the_guides_success_answer() -> None:
    task = SeedanceTask.from_api(GUIDE_SUCCESS)
    assert task.is_terminal and task.is_success and not task.is_failed
    assert task.video_url == "https://cdn.example.com/videos/seed15abc123def456pro.mp4"
    assert task.video_urls == [task.video_url]
    assert task.consumed_credits == 28
    assert task.request["aspect_ratio"] == "16:9"
    assert task.error_message is None
    assert SeedanceTask.from_dict(task.to_dict()) == task


def test_in_progress_answer_from_generate_has_no_video() -> None:
    task = SeedanceTask.from_api({"task_id": "t1", "status": "IN_PROGRESS"})
    assert not task.is_terminal and task.video_url is None and task.video_urls == []


@pytest.mark.parametrize("status", ["QUEUED", "PENDING", "RUNNING", "succeeded"])
def test_unknown_statuses_are_not_terminal_and_never_success(status: str) -> None:
    task = SeedanceTask.from_api({**GUIDE_SUCCESS, "status": status})
    assert not task.is_terminal
    assert not task.is_success


def test_failed_task_keeps_its_error_message() -> None:
    task = SeedanceTask.from_api(
        {"task_id": "t", "status": "FAILED", "error_message": "moderation", "response": None}
    )
    assert (
        task.is_terminal and task.is_failed and task.error_message == "moderation" and task.video_url is None
    )


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        "x",
        {"status": "SUCCESS"},
        {"task_id": "t"},
        {"task_id": "", "status": "SUCCESS"},
        {"task_id": "t", "status": 3},
    ],
)
def test_malformed_status_data_gives_typed_error(data: object) -> None:
    with pytest.raises(SeedanceResponseError):
        SeedanceTask.from_api(data)


def test_lenient_reading_of_odd_but_usable_fields() -> None:
    task = SeedanceTask.from_api(
        {
            "task_id": "t",
            "status": "success",
            "response": "https://x/v.mp4",
            "consumed_credits": "28",
            "request": None,
        }
    )
    assert task.is_success and task.video_urls == ["https://x/v.mp4"] and task.consumed_credits == 28
    assert task.request == {}


@pytest.mark.parametrize(
    "enum_class",
    [
        TaskStatus,
        TriggerEventStatus,
        BatchEventStatus,
        CreationState,
        Outcome,
        SubmissionState,
        ReceiverOutcome,
    ],
    ids=lambda c: c.__name__,
)
def test_every_status_enum_prints_formats_and_serialises_as_its_value(enum_class: type) -> None:
    """Statuses end up in failure summaries, log lines and JSON: each reads as its API/XCom value
    ("uncertain"), never as the Python name ("Outcome.UNCERTAIN"), on every supported Python."""
    for member in enum_class:
        assert str(member) == member.value
        assert f"{member}" == f"{member:>0}" == member.value
        assert json.loads(json.dumps({"s": member})) == {"s": member.value}
        assert enum_class(member.value) is member
