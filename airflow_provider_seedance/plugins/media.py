"""Serving a delivered video: only a file an operator recorded, and only if it is a video.

The path always comes from a Seedance task's ``return_value`` in the metadata DB (see
:mod:`.access` for how the request names the task instance, never the path). Because a DAG
author controls what a task returns, the API server additionally refuses anything that is not
a regular local video file of the recorded size: the suffix must be a video type, the first
bytes must be an MP4/QuickTime ``ftyp`` box or a WebM/Matroska header, the size must equal the
recorded ``bytes``, and when ``[seedance] gallery_media_roots`` is set the file must lie under
one of those directories. Remote object storage (``s3://`` …) is not proxied: the page falls
back to the service URL for those.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

VIDEO_TYPES: dict[str, str] = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
}


def local_path(output_path: str) -> Path | None:
    """``file:///a/b.mp4`` or ``/a/b.mp4`` -> a path; any other scheme -> None."""
    parsed = urlparse(output_path)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            return None
        raw = unquote(parsed.path)
    elif parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        raw = output_path
    else:
        return None
    path = Path(raw)
    return path if path.is_absolute() else None


def _looks_like_video(head: bytes, suffix: str) -> bool:
    if suffix == ".webm":
        return head.startswith(b"\x1a\x45\xdf\xa3")
    return len(head) >= 8 and head[4:8] == b"ftyp"


def servable_video(
    output_path: str, recorded_bytes: object, roots: Sequence[str] = ()
) -> tuple[Path, str] | None:
    """``(file, content type)`` if the recorded path is a servable local video, else None."""
    path = local_path(output_path)
    if path is None:
        return None
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    content_type = VIDEO_TYPES.get(resolved.suffix.lower())
    if content_type is None or not resolved.is_file():
        return None
    if roots:
        bases = [Path(root).resolve() for root in roots]
        if not any(resolved.is_relative_to(base) for base in bases):
            return None
    try:
        size = resolved.stat().st_size
        with open(resolved, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return None
    if isinstance(recorded_bytes, int) and not isinstance(recorded_bytes, bool) and size != recorded_bytes:
        return None
    if not _looks_like_video(head, resolved.suffix.lower()):
        return None
    return resolved, content_type


__all__ = ["VIDEO_TYPES", "local_path", "servable_video"]
