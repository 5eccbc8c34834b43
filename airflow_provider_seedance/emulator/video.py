"""The MP4 files the emulator serves as generated videos.

Clips are rendered once by ``scripts/render_emulator_clips.py`` and shipped as package data:
one second of video per frame size, so the wheel stays small. ``render_video`` turns a clip
into the file of one generation without ffmpeg: it rewrites the MP4 box timing (``mvhd``,
``tkhd``, ``mdhd``, ``elst``, ``stts``, ``ctts``) so the same frames last the requested 4, 8
or 12 seconds, and adds a ``udta``/``©cmt`` comment naming the task id, so every generation's
file has its own sha256. The result depends only on (clip, duration, task id): the same task
gets the same bytes on every request and after a restart, as clients verify sha256 and length.
"""

from __future__ import annotations

import re
import struct
from fractions import Fraction
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


# Boxes whose payload is a list of boxes (``meta`` is a full box and is kept opaque).
_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"udta", b"dinf"})
_QUICKTIME_LANG_UND = 0x55C4  # ISO 639-2 "und", packed as QuickTime expects


class _Box:
    """One MP4 box: a leaf with ``data`` or a container with ``children``."""

    def __init__(self, kind: bytes, data: bytes = b"", children: list[_Box] | None = None) -> None:
        self.kind = kind
        self.data = data
        self.children = children

    def to_bytes(self) -> bytes:
        payload = b"".join(c.to_bytes() for c in self.children) if self.children is not None else self.data
        return struct.pack(">I4s", 8 + len(payload), self.kind) + payload

    def find(self, kind: bytes) -> list[_Box]:
        """Every descendant box of ``kind``, depth first."""
        found: list[_Box] = []
        for child in self.children or []:
            if child.kind == kind:
                found.append(child)
            found.extend(child.find(kind))
        return found


def _parse_boxes(data: bytes) -> list[_Box]:
    boxes: list[_Box] = []
    offset = 0
    while offset < len(data):
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, offset + 8)
            header = 16
        elif size == 0:
            size = len(data) - offset
        if size < header or offset + size > len(data):
            raise ValueError(f"corrupt MP4 box {kind!r} at {offset}")
        payload = data[offset + header : offset + size]
        if kind in _CONTAINERS:
            boxes.append(_Box(kind, children=_parse_boxes(payload)))
        else:
            boxes.append(_Box(kind, data=payload))
        offset += size
    return boxes


def _scale_header_duration(box: _Box, factor: int, duration_at: tuple[int, int]) -> None:
    """Multiply the duration field of a ``mvhd``/``mdhd``/``tkhd`` (v0 or v1 layout)."""
    data = bytearray(box.data)
    version = data[0]
    offset = duration_at[1] if version == 1 else duration_at[0]
    fmt = ">Q" if version == 1 else ">I"
    (value,) = struct.unpack_from(fmt, data, offset)
    struct.pack_into(fmt, data, offset, value * factor)
    box.data = bytes(data)


def _scale_table(box: _Box, factor: int, entry: str, scaled: tuple[int, ...]) -> None:
    """Multiply fields ``scaled`` of every entry of a full-box table (``stts``, ``ctts``, ``elst``)."""
    data = bytearray(box.data)
    (count,) = struct.unpack_from(">I", data, 4)
    size = struct.calcsize(entry)
    for index in range(count):
        offset = 8 + index * size
        values = list(struct.unpack_from(entry, data, offset))
        for field in scaled:
            if values[field] > 0:  # elst media_time -1 means "empty edit": leave it
                values[field] *= factor
        struct.pack_into(entry, data, offset, *values)
    box.data = bytes(data)


def _shift_chunk_offsets(moov: _Box, delta: int) -> None:
    for kind, fmt in ((b"stco", ">I"), (b"co64", ">Q")):
        for box in moov.find(kind):
            data = bytearray(box.data)
            (count,) = struct.unpack_from(">I", data, 4)
            size = struct.calcsize(fmt)
            for index in range(count):
                offset = 8 + index * size
                (value,) = struct.unpack_from(fmt, data, offset)
                struct.pack_into(fmt, data, offset, value + delta)
            box.data = bytes(data)


def _comment_box(text: str) -> _Box:
    """A QuickTime ``©cmt`` user-data string (ffprobe shows it as the ``comment`` tag)."""
    raw = text.encode("utf-8")
    return _Box(b"\xa9cmt", data=struct.pack(">HH", len(raw), _QUICKTIME_LANG_UND) + raw)


def clip_seconds(data: bytes) -> Fraction:
    """Length of an MP4 from its ``mvhd`` (timescale and duration)."""
    moov = next(b for b in _parse_boxes(data) if b.kind == b"moov")
    mvhd = next(b for b in moov.children or [] if b.kind == b"mvhd")
    if mvhd.data[0] == 1:
        timescale, duration = struct.unpack_from(">IQ", mvhd.data, 20)
    else:
        timescale, duration = struct.unpack_from(">II", mvhd.data, 12)
    return Fraction(duration, timescale)


def stretch_mp4(data: bytes, seconds: int, comment: str) -> bytes:
    """``data`` with every duration multiplied so it lasts ``seconds``, plus a ``©cmt`` comment.

    Works for a non-fragmented MP4 whose length divides ``seconds`` (the bundled clips last
    exactly one second); chunk offsets are shifted when ``moov`` precedes ``mdat``.
    """
    factor_exact = Fraction(seconds) / clip_seconds(data)
    if factor_exact.denominator != 1 or factor_exact < 1:
        raise ValueError(f"cannot stretch a {clip_seconds(data)} s clip to {seconds} s")
    factor = int(factor_exact)
    boxes = _parse_boxes(data)
    moov_index = next(i for i, b in enumerate(boxes) if b.kind == b"moov")
    moov = boxes[moov_index]
    old_size = len(moov.to_bytes())
    for box in moov.children or []:
        if box.kind == b"mvhd":
            _scale_header_duration(box, factor, (16, 24))
    for box in moov.find(b"tkhd"):
        _scale_header_duration(box, factor, (20, 28))
    for box in moov.find(b"mdhd"):
        _scale_header_duration(box, factor, (16, 24))
    for box in moov.find(b"stts"):
        _scale_table(box, factor, ">II", (1,))
    for box in moov.find(b"ctts"):
        # Version 1 offsets are signed; version 0 are unsigned but small in practice.
        _scale_table(box, factor, ">Ii" if box.data[0] == 1 else ">II", (1,))
    for box in moov.find(b"elst"):
        # segment_duration is in the movie timescale, media_time in the media timescale:
        # both grow by the same factor, so the edit still starts at the first shown frame.
        _scale_table(box, factor, ">qqi" if box.data[0] == 1 else ">Iii", (0, 1))
    udta = next((b for b in moov.children or [] if b.kind == b"udta"), None)
    if udta is None:
        udta = _Box(b"udta", children=[])
        assert moov.children is not None
        moov.children.append(udta)
    assert udta.children is not None
    udta.children.append(_comment_box(comment))
    delta = len(moov.to_bytes()) - old_size
    mdat_index = next((i for i, b in enumerate(boxes) if b.kind == b"mdat"), len(boxes))
    if moov_index < mdat_index:
        _shift_chunk_offsets(moov, delta)
    return b"".join(box.to_bytes() for box in boxes)


@lru_cache(maxsize=64)
def render_video(resolution: str, aspect_ratio: str, duration: str, task_id: str) -> bytes:
    """The file of one generation: the clip for its size, ``duration`` seconds long, naming ``task_id``."""
    return stretch_mp4(
        clip_bytes(resolution, aspect_ratio), int(duration), f"seedance-emulator task {task_id}"
    )


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
