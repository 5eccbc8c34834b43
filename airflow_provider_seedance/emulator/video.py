"""The bundled MP4 clips the emulator serves as generated videos.

Clips are rendered once by ``scripts/render_emulator_clips.py`` and shipped as package data,
so serving a "generated" video needs no ffmpeg and is byte-for-byte reproducible.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

from airflow_provider_seedance.emulator.catalog import FRAME_SIZES, clip_name

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@lru_cache(maxsize=len(FRAME_SIZES))
def clip_bytes(resolution: str, aspect_ratio: str) -> bytes:
    """The MP4 for ``(resolution, aspect_ratio)``; small enough (<50 kB) to keep in memory."""
    if (resolution, aspect_ratio) not in FRAME_SIZES:
        raise KeyError(f"no clip for {resolution} {aspect_ratio}")
    package = __package__ or "airflow_provider_seedance.emulator"
    return (resources.files(package) / "clips" / clip_name(resolution, aspect_ratio)).read_bytes()


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """A single ``bytes=`` range as ``(start, end_inclusive)``; None means "send it all".

    Raises ``ValueError`` for a range that cannot be satisfied (the caller answers 416).
    CDNs serve ranges, and a downloader may use them to resume an interrupted transfer.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None  # multi-range or junk: ignore the header, as RFC 9110 allows
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        length = int(last)
        if length == 0:
            raise ValueError("empty suffix range")
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise ValueError("range not satisfiable")
    return start, end
