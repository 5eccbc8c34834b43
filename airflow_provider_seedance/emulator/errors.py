"""The emulator's error responses, in the one body shape the provider contract fixes.

The guide lists HTTP statuses and error codes but never shows an error body; the contract
settles on ``{"code": <http>, "message": "ERROR_CODE: human text", "data": null}``. Keeping
every error in one place guarantees no handler invents a second shape.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

# Human text for each documented code (the guide's wording where it has one).
MESSAGES: dict[str, str] = {
    "INVALID_REQUEST": "The request could not be understood",
    "INVALID_PROMPT": "The prompt is invalid or empty",
    "INVALID_ASPECT_RATIO": "Unsupported aspect ratio value",
    "INVALID_RESOLUTION": "Resolution must be 480p or 720p",
    "INVALID_DURATION": "Duration must be 4, 8, or 12 seconds",
    "TOO_MANY_IMAGES": "Maximum 1 image URL allowed in image_urls array",
    "INVALID_IMAGE_URLS": "image_urls must be an array of http(s) URL strings",
    "INVALID_CALLBACK_URL": "callback_url must be a publicly accessible HTTPS URL (no localhost)",
    "INVALID_API_KEY": "API key is missing or invalid",
    "INSUFFICIENT_CREDITS": "Not enough credits for this operation",
    "TASK_NOT_FOUND": "Task ID not found or does not belong to your account",
    "VIDEO_NOT_FOUND": "No video exists for this task",
    "VIDEO_EXPIRED": "The video URL has expired",
    "RATE_LIMITED": "Too many requests, please retry later",
    "INTERNAL_ERROR": "Server error, please try again later",
    "NOT_FOUND": "No such endpoint",
    "METHOD_NOT_ALLOWED": "Method not allowed on this endpoint",
}


class ApiError(Exception):
    """An error the emulated API answers with; raised by validation, rendered by the server."""

    def __init__(self, status: int, code: str, detail: str | None = None) -> None:
        self.status = status
        self.code = code
        self.detail = detail or MESSAGES.get(code, code)
        super().__init__(f"{status} {code}: {self.detail}")

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.code, self.detail)

    def response(self, headers: dict[str, str] | None = None) -> web.Response:
        return json_response(self.body(), status=self.status, headers=headers)


def error_body(status: int, code: str, detail: str | None = None) -> dict[str, Any]:
    """The contract's error body for ``code``."""
    return {"code": status, "message": f"{code}: {detail or MESSAGES.get(code, code)}", "data": None}


def success_body(data: Any) -> dict[str, Any]:
    """The guide's success envelope."""
    return {"code": 200, "message": "success", "data": data}


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A compact JSON response (the real API is a plain JSON service)."""
    return web.Response(
        text=json.dumps(payload, separators=(",", ":")),
        status=status,
        content_type="application/json",
        headers=headers,
    )
