"""Bad input fails before any HTTP call with an error naming the field, the value and what is
allowed, located in its batch item; the request fingerprint is stable; a status answer that
does not describe a task is a typed error.

The house rule (STYLE.md): "Bad input -> clear error before any HTTP call naming field, value,
what is allowed". These pin each part of that error for each field, in a batch item (whose
error must say which item), and that a request keeps its fingerprint across releases (a
retried task after an upgrade must find the generation an earlier try paid for).
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_seedance.exceptions import SeedanceResponseError, SeedanceValidationError
from airflow_provider_seedance.models import (
    API_FIELDS,
    GenerationRequest,
    SeedanceTask,
    normalize_aspect_ratio,
    normalize_duration,
    normalize_resolution,
)

PREFIX = "requests[2]."
PUBLIC = "https://cdn.example.com/ref.png"
NOT_PUBLIC = "reserved address, in any notation)"

BAD_FIELDS = [
    ("prompt", "   ", "a non-blank string of 1 to 2000 characters"),
    ("prompt", 7, "a non-blank string of 1 to 2000 characters"),
    ("aspect_ratio", "2:1", "one of 1:1, 16:9, 9:16, 4:3, 3:4, 21:9, 9:21"),
    ("resolution", "4k", "one of 480p, 720p"),
    ("duration", 5, '"4", "8" or "12" (seconds; the ints 4, 8, 12 are accepted too)'),
    ("duration", True, '"4", "8" or "12" (seconds; the ints 4, 8, 12 are accepted too)'),
    ("duration", 4.0, '"4", "8" or "12" (seconds; the ints 4, 8, 12 are accepted too)'),
    ("generate_audio", "yes", "true or false (a boolean)"),
    ("fixed_lens", 1, "true or false (a boolean)"),
    (
        "image_urls",
        42,
        "a list of at most 1 http(s) URL on a public host (the server fetches it: no localhost",
    ),
    ("image_urls", [PUBLIC, PUBLIC], "a list of at most 1 http(s) URL"),
    ("image_urls", ["http://127.0.0.1/x.png"], NOT_PUBLIC),
    ("callback_url", "http://example.com/hook", "a publicly reachable https:// URL (no localhost"),
    ("callback_url", "https://10.0.0.1/hook", NOT_PUBLIC),
]


@pytest.mark.parametrize(("field", "value", "allowed"), BAD_FIELDS)
def test_a_bad_field_of_a_batch_item_names_item_field_value_and_what_is_allowed(
    field: str, value: Any, allowed: str
) -> None:
    values = {"prompt": "a fox", field: value}
    with pytest.raises(SeedanceValidationError) as info:
        GenerationRequest.from_mapping(values, field_prefix=PREFIX)
    err = info.value
    assert err.field == field and err.value == value
    assert allowed in err.allowed
    assert str(err).startswith(f"Invalid {PREFIX}{field}: {value!r}")
    assert str(err).endswith(f"Allowed: {err.allowed}.")


@pytest.mark.parametrize(("field", "value", "allowed"), BAD_FIELDS)
def test_a_bad_field_of_a_single_request_has_no_item_prefix(field: str, value: Any, allowed: str) -> None:
    with pytest.raises(SeedanceValidationError) as info:
        GenerationRequest.from_mapping({"prompt": "a fox", field: value})
    assert str(info.value).startswith(f"Invalid {field}: ")


@pytest.mark.parametrize(
    ("normalize", "field"),
    [
        (normalize_aspect_ratio, "aspect_ratio"),
        (normalize_resolution, "resolution"),
        (normalize_duration, "duration"),
    ],
)
def test_the_public_normalizers_name_the_field_without_a_prefix_by_default(
    normalize: Any, field: str
) -> None:
    with pytest.raises(SeedanceValidationError) as info:
        normalize("bogus")
    assert str(info.value).startswith(f"Invalid {field}: 'bogus'.")


def test_a_batch_item_that_is_not_a_mapping_is_named() -> None:
    with pytest.raises(SeedanceValidationError) as info:
        GenerationRequest.from_mapping(["a fox"], field_prefix=PREFIX)  # type: ignore[arg-type]
    assert (info.value.field, info.value.value) == ("request", ["a fox"])
    assert info.value.allowed == "a mapping with at least a 'prompt'"
    assert str(info.value).startswith(f"Invalid {PREFIX}request: ")


def test_an_unknown_key_is_named_with_its_value_and_the_api_fields() -> None:
    with pytest.raises(SeedanceValidationError) as info:
        GenerationRequest.from_mapping({"prompt": "a fox", "resolutoin": "480p"}, field_prefix=PREFIX)
    assert (info.value.field, info.value.value) == ("resolutoin", "480p")
    assert info.value.allowed == "one of the API fields " + ", ".join(API_FIELDS)
    assert "prompt, aspect_ratio, resolution" in info.value.allowed
    assert str(info.value).startswith(f"Invalid {PREFIX}resolutoin: '480p'.")


def test_a_missing_prompt_is_named() -> None:
    with pytest.raises(SeedanceValidationError) as info:
        GenerationRequest.from_mapping({"resolution": "480p"}, field_prefix=PREFIX)
    assert (info.value.field, info.value.value, info.value.allowed) == ("prompt", None, "a non-blank string")
    assert str(info.value).startswith(f"Invalid {PREFIX}prompt: None.")


def test_valid_fields_are_kept_normalised_in_the_payload() -> None:
    request = GenerationRequest.from_mapping(
        {
            "prompt": "a fox",
            "aspect_ratio": " 16:9 ",
            "resolution": "480P",
            "duration": 4,
            "image_urls": PUBLIC,
            "callback_url": " https://hooks.example.com/x ",
        }
    )
    assert request.to_payload() == {
        "prompt": "a fox",
        "aspect_ratio": "16:9",
        "resolution": "480p",
        "duration": "4",
        "image_urls": [PUBLIC],
        "callback_url": "https://hooks.example.com/x",
    }


# ---------------------------------------------------------------- fingerprint
def test_a_request_keeps_the_fingerprint_earlier_releases_recorded() -> None:
    """Records written before an upgrade are keyed by these values: changing the hash would make
    a retried task miss the generation it paid for and submit (and pay) again."""
    full = {"prompt": "a red fox in snow", "resolution": "480p", "duration": 4, "aspect_ratio": "16:9"}
    assert (
        GenerationRequest.from_mapping({**full, "generate_audio": True}).fingerprint()
        == "fecf5a129be2c6711385180d1845fd98"
    )
    assert GenerationRequest.from_mapping({"prompt": "a red fox in snow"}).fingerprint() == (
        "0238b5e10b3c4d675bc9655b66d0e913"
    )


# ---------------------------------------------------------------- status answers
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (None, "status answer has no 'data' object"),
        ([], "status answer has no 'data' object"),
        ({"status": "SUCCESS"}, "status answer has no task_id"),
        ({"task_id": "", "status": "SUCCESS"}, "status answer has no task_id"),
        ({"task_id": "gen-1"}, "task gen-1 has no status"),
        ({"task_id": "gen-1", "status": ""}, "task gen-1 has no status"),
    ],
)
def test_a_status_answer_that_names_no_task_is_a_typed_malformed_response(data: Any, message: str) -> None:
    with pytest.raises(SeedanceResponseError) as info:
        SeedanceTask.from_api(data)
    assert info.value.status_code == 200 and info.value.error_code == "MALFORMED_RESPONSE"
    assert info.value.server_message == message and info.value.retryable


@pytest.mark.parametrize(
    ("credits", "read"),
    [
        (0, 0),
        (8, 8),
        ("8", 8),
        (" 8 ", 8),
        (8.0, 8),
        (10**12, 10**12),
        (10**12 + 1, None),
        (-1, None),
        (8.5, None),
    ],
)
def test_credits_in_a_status_answer_are_read_when_sane(credits: Any, read: int | None) -> None:
    task = SeedanceTask.from_api({"task_id": "gen-1", "status": "SUCCESS", "consumed_credits": credits})
    assert task.consumed_credits == read
