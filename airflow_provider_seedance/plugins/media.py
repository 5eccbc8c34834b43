"""Serving a delivered video: only the file the task itself rendered, and only if it is a video.

The path comes from a Seedance task's recorded result in the metadata DB (see :mod:`.access`
for how the request names the task instance, never the path). XComs can be edited through the
REST API by anyone allowed to edit a DAG's XComs, so the recorded path alone proves nothing:
it is served only if the task instance's *rendered* template fields
(``rendered_task_instance_fields``, which the REST API cannot edit) name it
(:func:`rendered_names`):

* a single generation or sensor: the rendered ``output_path``, exactly (after normalising);
* a batch item: the rendered ``requests[i]["output_path"]`` if the item names one, else the
  rendered ``output_path_template`` formatted with the item's ``id``/``index`` and request
  fields. When Airflow truncated the rendered ``requests`` (a big batch: the field is then a
  string), only the template is known: the path must match the template's *pattern* (each
  ``{field}`` one path segment part without ``/``) — an item whose own ``output_path``
  escaped the template is then not served (its card falls back to the service URL).

Because a DAG author controls what a task returns, the API server additionally refuses anything that is not
a regular local video file of the recorded size: the suffix must be a video type, the first
bytes must be an MP4/QuickTime ``ftyp`` box or a WebM/Matroska header, the size must equal the
recorded ``bytes``, and when ``[seedance] gallery_media_roots`` is set the file must lie under
one of those directories. Remote object storage (``s3://`` …) is not proxied: the page falls
back to the service URL for those.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
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


def _normal(output_path: Any) -> str | None:
    path = local_path(str(output_path)) if isinstance(output_path, (str, os.PathLike)) else None
    return os.path.normpath(path) if path is not None else None


def _template_pattern(template: str) -> re.Pattern[str] | None:
    """``/out/{id}.mp4`` -> a regex where each field is text without ``/``."""
    base = _normal(template)
    if base is None:
        return None
    parts = []
    try:
        for literal, name, _spec, _conv in string.Formatter().parse(base):
            parts.append(re.escape(literal))
            if name is not None:
                parts.append(r"[^/]+")
    except ValueError:
        return None
    return re.compile("".join(parts))


def rendered_names(output_path: str, rendered: Mapping[str, Any] | None, item: int | None = None) -> bool:
    """Whether the task instance's rendered fields name ``output_path`` (see the module doc)."""
    target = _normal(output_path)
    if target is None or not rendered:
        return False
    if item is None:
        return _normal(rendered.get("output_path")) == target
    template = rendered.get("output_path_template")
    requests = rendered.get("requests")
    if isinstance(requests, list):
        if not 0 <= item < len(requests) or not isinstance(requests[item], Mapping):
            return False
        raw = requests[item]
        if raw.get("output_path") not in (None, ""):
            return _normal(raw.get("output_path")) == target
        if not isinstance(template, str):
            return False
        try:
            return _normal(template.format(**{**raw, "index": item, "id": raw.get("id", item)})) == target
        except (KeyError, IndexError, ValueError, AttributeError):
            pass  # a field the operator fills from the request's defaults: the pattern decides
    if not isinstance(template, str):
        return False
    pattern = _template_pattern(template)
    return pattern is not None and pattern.fullmatch(target) is not None


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


__all__ = ["VIDEO_TYPES", "local_path", "rendered_names", "servable_video"]
