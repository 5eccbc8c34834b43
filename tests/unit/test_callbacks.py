"""Callback tokens and callback extras: what the public receiver trusts, and nothing more."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_seedance.callbacks import (
    CALLBACK_PATH,
    CallbackIdentity,
    CallbackSettings,
    TokenExpiredError,
    TokenFormatError,
    TokenSignatureError,
    callback_settings,
    sign,
    token_expiry,
    verify,
)
from airflow_provider_seedance.exceptions import SeedanceConfigurationError

SECRET = "s3cret-callback-key-0123456789abcdef"
OTHER_SECRET = "another-callback-key-0123456789abcdef"
NOW = 1_800_000_000.0
IDENTITY = CallbackIdentity(
    "seedance_default", "videos", "manual__2026-12-01T06:42:15+00:00", "generate", -1, 2, "a1b2c3d4"
)


def test_a_token_verifies_to_the_identity_it_was_signed_for() -> None:
    token = sign(SECRET, IDENTITY, NOW + 60)
    assert verify(SECRET, token, NOW) == IDENTITY


def test_a_token_is_url_safe_and_never_contains_the_secret() -> None:
    token = sign(SECRET, IDENTITY, NOW + 60)
    assert all(c.isalnum() or c in "-_." for c in token)
    assert SECRET not in token


def test_each_try_gets_its_own_nonce_and_so_its_own_token() -> None:
    a = CallbackIdentity.for_try("c", "d", "r", "t", -1, 1)
    b = CallbackIdentity.for_try("c", "d", "r", "t", -1, 1)
    assert a.nonce != b.nonce
    assert sign(SECRET, a, NOW + 60) != sign(SECRET, b, NOW + 60)


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = sign(OTHER_SECRET, IDENTITY, NOW + 60)
    with pytest.raises(TokenSignatureError):
        verify(SECRET, token, NOW)


def test_an_expired_token_is_refused_even_when_correctly_signed() -> None:
    token = sign(SECRET, IDENTITY, NOW + 60)
    with pytest.raises(TokenExpiredError):
        verify(SECRET, token, NOW + 60)


def test_a_token_whose_claims_were_swapped_for_another_task_instance_is_refused() -> None:
    mine = sign(SECRET, IDENTITY, NOW + 60)
    other = sign(
        SECRET, CallbackIdentity("seedance_default", "videos", "r2", "generate", -1, 1, "x"), NOW + 60
    )
    forged = ".".join([*mine.split(".")[:1], other.split(".")[1], mine.split(".")[2]])
    with pytest.raises(TokenSignatureError):
        verify(SECRET, forged, NOW)


@pytest.mark.parametrize(
    "token", ["", "v1", "v1.abc", "v2.abc.def", "v1.a b.c", "v1.abc.d$f", "v1." + "a" * 5000 + ".b", "v1..x"]
)
def test_malformed_tokens_are_format_errors(token: str) -> None:
    with pytest.raises(TokenFormatError):
        verify(SECRET, token, NOW)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_flipping_any_byte_of_a_token_gets_it_refused(data: st.DataObject) -> None:
    token = sign(SECRET, IDENTITY, NOW + 60)
    position = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.characters(codec="ascii").filter(lambda c: c != token[position]))
    tampered = token[:position] + replacement + token[position + 1 :]
    with pytest.raises((TokenFormatError, TokenSignatureError)):
        verify(SECRET, tampered, NOW)


@settings(max_examples=100, deadline=None)
@given(garbage=st.text(max_size=300))
def test_arbitrary_text_is_never_accepted_as_a_token(garbage: str) -> None:
    with pytest.raises((TokenFormatError, TokenSignatureError)):
        verify(SECRET, garbage, NOW)


def test_refusals_never_echo_the_secret_or_the_token() -> None:
    token = sign(OTHER_SECRET, IDENTITY, NOW + 60)
    with pytest.raises(TokenSignatureError) as refused:
        verify(SECRET, token, NOW)
    assert SECRET not in str(refused.value) and token not in str(refused.value)


def test_token_expiry_follows_the_wait_deadline_or_a_default_lifetime() -> None:
    assert token_expiry(NOW, NOW + 100) == NOW + 100 + 3600
    assert token_expiry(NOW, None) == NOW + 7 * 24 * 3600


# --------------------------------------------------------------------------- extras


def test_callbacks_are_off_without_the_extras() -> None:
    assert callback_settings("c", {}) is None
    assert callback_settings("c", {"callback_secret": "", "callback_base_url": ""}) is None


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"callback_secret": SECRET}, "callback_base_url"),
        ({"callback_base_url": "https://airflow.example.com"}, "callback_secret"),
        ({"callback_secret": "short", "callback_base_url": "https://airflow.example.com"}, "callback_secret"),
        ({"callback_secret": SECRET, "callback_base_url": "http://airflow.example.com"}, "callback_base_url"),
        ({"callback_secret": SECRET, "callback_base_url": "https://127.0.0.1:8080"}, "callback_base_url"),
        ({"callback_secret": SECRET, "callback_base_url": "http://127.0.0.1:8080"}, "callback_base_url"),
        ({"callback_secret": SECRET, "callback_base_url": "https://a.example.com/?x=1"}, "callback_base_url"),
        (
            {"callback_secret": SECRET, "callback_base_url": "http://10.0.0.5:8080", "emulator": True},
            "callback_base_url",
        ),
    ],
)
def test_half_or_bad_callback_extras_are_configuration_errors_naming_the_field(
    extra: dict[str, object], named: str
) -> None:
    with pytest.raises(SeedanceConfigurationError, match=named) as refused:
        callback_settings("c", extra)
    assert SECRET not in str(refused.value)


def test_loopback_http_is_allowed_only_for_a_connection_marked_as_the_emulator() -> None:
    extra = {"callback_secret": SECRET, "callback_base_url": "http://127.0.0.1:8080/", "emulator": True}
    found = callback_settings("c", extra)
    assert found == CallbackSettings(SECRET, "http://127.0.0.1:8080")


def test_the_callback_url_is_the_base_url_the_receiver_path_and_a_verifiable_token() -> None:
    found = callback_settings(
        "c", {"callback_secret": SECRET, "callback_base_url": "https://af.example.com/"}
    )
    assert found is not None
    url = found.url_for(IDENTITY, NOW + 60)
    prefix = "https://af.example.com" + CALLBACK_PATH
    assert url.startswith(prefix)
    assert verify(SECRET, url[len(prefix) :], NOW) == IDENTITY


def test_callback_settings_repr_hides_the_secret() -> None:
    found = CallbackSettings(SECRET, "https://af.example.com")
    assert SECRET not in repr(found) and SECRET not in str(found)


def test_a_signature_respelled_in_its_unused_trailing_bits_is_refused() -> None:
    token = sign(SECRET, IDENTITY, NOW + 60)
    head, signature = token.rsplit(".", 1)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # 32 bytes are 43 characters: the last one carries 2 unused bits, so 4 spellings decode alike.
    last = alphabet.index(signature[-1])
    respelled = signature[:-1] + alphabet[last ^ 1]
    with pytest.raises((TokenFormatError, TokenSignatureError)):
        verify(SECRET, f"{head}.{respelled}", NOW)


def test_a_fire_and_forget_token_carries_its_asset_signed_and_a_waiting_one_none() -> None:
    """The asset a completion event is recorded for comes only from the signed token: change it
    and the signature no longer matches."""
    import json

    from airflow_provider_seedance.callbacks import _b64, _unb64

    fire = replace(IDENTITY, asset=("catalog videos", "seedance://catalog/videos"))
    assert verify(SECRET, sign(SECRET, fire, NOW + 60), NOW) == fire
    assert verify(SECRET, sign(SECRET, IDENTITY, NOW + 60), NOW).asset is None
    version, body, signature = sign(SECRET, fire, NOW + 60).split(".")
    claims = json.loads(_unb64(body))
    claims["a"] = ["other", "seedance://someone/else"]
    forged = f"{version}.{_b64(json.dumps(claims).encode())}.{signature}"
    with pytest.raises(TokenSignatureError):
        verify(SECRET, forged, NOW)


def test_completion_asset_is_checked_where_the_dag_is_written() -> None:
    from airflow.sdk import Asset

    from airflow_provider_seedance.callbacks import MAX_ASSET_CHARS, completion_asset_key

    videos = Asset("seedance://catalog/videos")
    assert completion_asset_key(None, True, None, []) is None
    assert completion_asset_key(videos, False, None, []) == (videos.name, videos.uri)
    assert completion_asset_key("seedance://catalog/videos", False, None, []) == (videos.name, videos.uri)
    cases = [
        ((videos, True, None, []), "wait_for_completion=False"),
        ((videos, False, "https://example.com/hook", []), "callback_url must not be set"),
        ((videos, False, None, [Asset("seedance://catalog/videos")]), "must not be one of outlets"),
        ((42, False, None, []), "not int"),
        ((Asset("seedance://x/" + "v" * MAX_ASSET_CHARS), False, None, []), f"at most {MAX_ASSET_CHARS}"),
    ]
    for arguments, message in cases:
        with pytest.raises(ValueError, match=message):
            completion_asset_key(*arguments)


def test_the_operator_refuses_a_completion_asset_for_a_task_that_waits() -> None:
    from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

    with pytest.raises(ValueError, match="wait_for_completion=False"):
        SeedanceGenerateOperator(task_id="t", prompt="a fox", completion_asset="seedance://catalog/videos")
    waiting_not = SeedanceGenerateOperator(
        task_id="u", prompt="a fox", wait_for_completion=False, completion_asset="seedance://catalog/videos"
    )
    assert waiting_not.completion_asset == ("seedance://catalog/videos", "seedance://catalog/videos")


def test_the_operator_refuses_a_completion_asset_beside_its_own_callback_url_or_among_its_outlets() -> None:
    from airflow.sdk import Asset

    from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

    fire_and_forget = {"prompt": "a fox", "wait_for_completion": False, "completion_asset": "s3://v/catalog"}
    with pytest.raises(ValueError, match="callback_url must not be set as well"):
        SeedanceGenerateOperator(
            task_id="t", callback_url="https://hooks.example.org/mine", **fire_and_forget
        )
    with pytest.raises(ValueError, match="must not be one of outlets"):
        SeedanceGenerateOperator(task_id="u", outlets=[Asset("s3://v/catalog")], **fire_and_forget)


def test_a_completion_asset_without_callback_extras_fails_naming_them_before_any_post() -> None:
    from airflow_provider_seedance.exceptions import SeedanceConfigurationError
    from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator
    from tests.unit.fakes import FakeHook, Store, context, use

    hook = FakeHook()
    operator = use(
        SeedanceGenerateOperator(
            task_id="t", prompt="a fox", wait_for_completion=False, completion_asset="s3://v/catalog"
        ),
        hook,
    )
    with pytest.raises(SeedanceConfigurationError) as info:
        operator.execute(context(Store()))
    assert str(info.value) == (
        "completion_asset='s3://v/catalog' needs callbacks: set the extras 'callback_secret' and "
        "'callback_base_url' on connection 'seedance_default' (docs/waiting.md). Nothing was sent."
    )
    assert hook.posts == []
