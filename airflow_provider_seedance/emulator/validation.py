"""Validation of ``POST /v1/generate`` bodies, with the guide's error codes.

The emulator is strict where the guide is explicit (allowed values, prompt length, one
image, HTTPS callbacks without localhost) so that a provider bug that sends something the
real service would refuse fails in tests, not in production. It is lenient where a real
JSON service usually is: unknown fields are ignored, ``null`` means "not given", and the
durations 4/8/12 are also accepted as JSON numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_seedance.emulator import catalog
from airflow_provider_seedance.emulator.errors import ApiError
from airflow_provider_seedance.emulator.hosts import is_public_host


@dataclass(frozen=True)
class GenerateParams:
    """A validated generation request with the guide's defaults filled in."""

    prompt: str
    aspect_ratio: str
    resolution: str
    duration: str
    generate_audio: bool
    fixed_lens: bool
    image_urls: tuple[str, ...]
    callback_url: str | None

    @property
    def price(self) -> int:
        return catalog.price(self.resolution, self.duration, self.generate_audio)


def parse_generate(body: Any, allow_local_callbacks: bool) -> GenerateParams:
    """Check a decoded JSON body; raise ``ApiError`` with the guide's code on the first problem."""
    if not isinstance(body, dict):
        raise ApiError(400, "INVALID_REQUEST", "The request body must be a JSON object")
    return GenerateParams(
        prompt=_prompt(body.get("prompt")),
        aspect_ratio=_choice(
            body.get("aspect_ratio"),
            catalog.ASPECT_RATIOS,
            catalog.DEFAULT_ASPECT_RATIO,
            "INVALID_ASPECT_RATIO",
        ),
        resolution=_choice(
            body.get("resolution"), catalog.RESOLUTIONS, catalog.DEFAULT_RESOLUTION, "INVALID_RESOLUTION"
        ),
        duration=_duration(body.get("duration")),
        generate_audio=_flag(body, "generate_audio"),
        fixed_lens=_flag(body, "fixed_lens"),
        image_urls=_image_urls(body.get("image_urls"), allow_local_callbacks),
        callback_url=_callback_url(body.get("callback_url"), allow_local_callbacks),
    )


def _prompt(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "INVALID_PROMPT")
    if len(value) > catalog.MAX_PROMPT_CHARS:
        raise ApiError(
            400, "INVALID_PROMPT", f"The prompt exceeds {catalog.MAX_PROMPT_CHARS} characters ({len(value)})"
        )
    return value


def _choice(value: Any, allowed: tuple[str, ...], default: str, code: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str) or value not in allowed:
        raise ApiError(400, code, f"{value!r} is not one of {', '.join(allowed)}")
    return value


def _duration(value: Any) -> str:
    if value is None:
        return catalog.DEFAULT_DURATION
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or value not in catalog.DURATIONS:
        raise ApiError(400, "INVALID_DURATION")
    return value


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(400, "INVALID_REQUEST", f"{name} must be a boolean")
    return value


def _image_urls(value: Any, allow_local: bool) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ApiError(400, "INVALID_IMAGE_URLS")
    if len(value) > catalog.MAX_IMAGE_URLS:
        raise ApiError(400, "TOO_MANY_IMAGES")
    for url in value:
        if not isinstance(url, str):
            raise ApiError(400, "INVALID_IMAGE_URLS")
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:
            raise ApiError(400, "INVALID_IMAGE_URLS") from None
        if parts.scheme not in ("http", "https") or not host:
            raise ApiError(400, "INVALID_IMAGE_URLS")
        if not allow_local and not is_public_host(host):
            raise ApiError(400, "INVALID_IMAGE_URLS", "image_urls must be publicly accessible (no localhost)")
    return tuple(value)


def _callback_url(value: Any, allow_local: bool) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, "INVALID_CALLBACK_URL")
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ApiError(400, "INVALID_CALLBACK_URL") from None
    if not host:
        raise ApiError(400, "INVALID_CALLBACK_URL")
    local = not is_public_host(host)
    if local and not allow_local:
        raise ApiError(
            400, "INVALID_CALLBACK_URL", "callback_url must not point to localhost or a private network"
        )
    allowed_schemes = ("https", "http") if local else ("https",)
    if parts.scheme not in allowed_schemes:
        raise ApiError(400, "INVALID_CALLBACK_URL", "callback_url must be an HTTPS URL")
    return value
