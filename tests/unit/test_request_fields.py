"""GenerationRequest is the one list of API fields: the operator and the fingerprint follow it."""

from __future__ import annotations

import inspect

import pytest

from airflow_provider_seedance.models import API_FIELDS, GenerationRequest
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

#: A valid value for every API field, and a second valid value that differs from it.
VALUES = {
    "prompt": ("a fox", "a hare"),
    "aspect_ratio": ("16:9", "9:16"),
    "resolution": ("480p", "720p"),
    "duration": ("4", "12"),
    "generate_audio": (True, False),
    "fixed_lens": (True, False),
    "image_urls": (["https://img.example.com/a.png"], ["https://img.example.com/b.png"]),
    "callback_url": ("https://hooks.example.com/a", "https://hooks.example.com/b"),
}


def test_every_api_field_has_a_test_value() -> None:
    assert set(VALUES) == set(API_FIELDS)


def test_operator_takes_every_api_field_and_sends_it() -> None:
    params = inspect.signature(SeedanceGenerateOperator.__init__).parameters
    assert set(API_FIELDS) <= set(params)
    op = SeedanceGenerateOperator(task_id="g", **{k: v[0] for k, v in VALUES.items()})
    payload = op.build_request().to_payload()
    assert set(payload) == set(API_FIELDS)
    assert payload == GenerationRequest.from_mapping({k: v[0] for k, v in VALUES.items()}).to_payload()


def test_every_string_api_field_is_templated() -> None:
    templated = set(SeedanceGenerateOperator.template_fields)
    for name in API_FIELDS:
        if isinstance(VALUES[name][0], (str, list)):
            assert name in templated, name


@pytest.mark.parametrize("name", API_FIELDS)
def test_every_field_changes_the_fingerprint(name: str) -> None:
    """A changed field must never re-attach to a video made for the old value."""
    base = {k: v[0] for k, v in VALUES.items()}
    changed = {**base, name: VALUES[name][1]}
    assert (
        GenerationRequest.from_mapping(base).fingerprint()
        != GenerationRequest.from_mapping(changed).fingerprint()
    )


def test_unset_and_default_fields_are_not_sent() -> None:
    assert GenerationRequest(prompt="p").to_payload() == {"prompt": "p"}
