"""Settings of one emulator instance (what the command line configures)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_API_KEY = "sk-emulator-local"
DEFAULT_CREDITS = 10000
DEFAULT_VIDEO_TTL_SECONDS = 86400.0
DEFAULT_CALLBACK_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class EmulatorConfig:
    """``generation_seconds=None`` means realistic durations (see ``catalog``)."""

    api_keys: dict[str, int] = field(default_factory=lambda: {DEFAULT_API_KEY: DEFAULT_CREDITS})
    generation_seconds: float | None = None
    state_file: Path | None = None
    allow_local_callbacks: bool = False
    video_ttl_seconds: float = DEFAULT_VIDEO_TTL_SECONDS
    callback_timeout_seconds: float = DEFAULT_CALLBACK_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        if not self.api_keys:
            raise ValueError("at least one API key is required")
        if self.generation_seconds is not None and self.generation_seconds < 0:
            raise ValueError("generation_seconds must be >= 0")
        if self.video_ttl_seconds < 0:
            raise ValueError("video_ttl_seconds must be >= 0")
