"""Served videos last the requested duration at the requested size, and each generation's
file is its own (task id in the container metadata), the same bytes on every request and
after a restart. The MP4 is read here with a parser of its own, not the emulator's."""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
from pathlib import Path

import pytest
import requests
from emulator_helpers import Api

from airflow_provider_seedance.emulator.testing import EmulatorProcess

PROMPT = "A paper boat drifting down a rain-soaked street"
CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"udta"}


def boxes(data: bytes, path: tuple[bytes, ...] = ()) -> dict[tuple[bytes, ...], list[bytes]]:
    """Every box payload by its path from the top, e.g. ``(b"moov", b"mvhd")``."""
    found: dict[tuple[bytes, ...], list[bytes]] = {}
    offset = 0
    while offset < len(data):
        size, kind = struct.unpack_from(">I4s", data, offset)
        assert size >= 8, f"bad box size at {offset}"
        payload = data[offset + 8 : offset + size]
        found.setdefault((*path, kind), []).append(payload)
        if kind in CONTAINERS:
            for sub, payloads in boxes(payload, (*path, kind)).items():
                found.setdefault(sub, []).extend(payloads)
        offset += size
    return found


def header_seconds(payload: bytes) -> float:
    """Duration / timescale of an ``mvhd`` or ``mdhd`` payload."""
    if payload[0] == 1:
        timescale, duration = struct.unpack_from(">IQ", payload, 20)
    else:
        timescale, duration = struct.unpack_from(">II", payload, 12)
    return duration / timescale


def describe(data: bytes) -> dict[str, object]:
    tree = boxes(data)
    assert next(iter(tree)) == (b"ftyp",)
    [mvhd] = tree[(b"moov", b"mvhd")]
    [tkhd] = tree[(b"moov", b"trak", b"tkhd")]
    [mdhd] = tree[(b"moov", b"trak", b"mdia", b"mdhd")]
    [stts] = tree[(b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stts")]
    width, height = struct.unpack_from(">II", tkhd, len(tkhd) - 8)
    (count,) = struct.unpack_from(">I", stts, 4)
    media_units = sum(n * delta for n, delta in struct.iter_unpack(">II", stts[8 : 8 + 8 * count]))
    timescale = struct.unpack_from(">I", mdhd, 20 if mdhd[0] == 1 else 12)[0]
    comments = [p[4:].decode() for p in tree.get((b"moov", b"udta", b"\xa9cmt"), [])]
    return {
        "movie_seconds": header_seconds(mvhd),
        "media_seconds": header_seconds(mdhd),
        "samples_seconds": media_units / timescale,
        "size": (width >> 16, height >> 16),
        "comments": comments,
    }


@pytest.mark.parametrize("duration", ["4", "8", "12"])
@pytest.mark.parametrize(
    ("resolution", "aspect_ratio", "size"), [("480p", "16:9", (854, 480)), ("720p", "9:21", (720, 1680))]
)
def test_video_lasts_the_requested_duration_at_the_requested_size(
    api: Api, duration: str, resolution: str, aspect_ratio: str, size: tuple[int, int]
) -> None:
    body = {"prompt": PROMPT, "duration": duration, "resolution": resolution, "aspect_ratio": aspect_ratio}
    task_id = api.submit(body)
    data = requests.get(api.video_url(task_id), timeout=10).content
    info = describe(data)
    seconds = float(duration)
    assert info["movie_seconds"] == seconds
    assert info["media_seconds"] == seconds
    assert info["samples_seconds"] == seconds  # the frames really span it, not only the header
    assert info["size"] == size
    assert info["comments"] == [f"seedance-emulator task {task_id}"]


def test_each_generation_has_its_own_bytes_and_keeps_them(api: Api) -> None:
    body = {"prompt": PROMPT, "duration": "8", "resolution": "480p", "aspect_ratio": "1:1"}
    first, second = api.submit(body), api.submit(body)
    a1 = requests.get(api.video_url(first), timeout=10)
    a2 = requests.get(api.video_url(first), timeout=10)
    b = requests.get(api.video_url(second), timeout=10)
    assert a1.content == a2.content
    assert int(a1.headers["Content-Length"]) == len(a1.content)
    assert hashlib.sha256(a1.content).digest() != hashlib.sha256(b.content).digest()
    # A range request cuts the same file the full GET serves.
    part = requests.get(api.video_url(first), headers={"Range": "bytes=100-199"}, timeout=10)
    assert part.status_code == 206 and part.content == a1.content[100:200]


def test_video_bytes_survive_a_restart(tmp_path: Path) -> None:
    key = "sk-fidelity-restart-0011"
    with EmulatorProcess(
        api_keys={key: 500}, generation_seconds=0, state_file=tmp_path / "s.json"
    ) as emulator:
        api = Api(emulator, key=key)
        url = api.video_url(api.submit({"prompt": PROMPT, "duration": "12"}))
        before = requests.get(url, timeout=10).content
        emulator.restart()
        after = requests.get(url, timeout=10).content
    assert hashlib.sha256(before).hexdigest() == hashlib.sha256(after).hexdigest()


def test_ffprobe_reads_duration_size_and_task_id(api: Api, tmp_path: Path) -> None:
    task_id = api.submit({"prompt": PROMPT, "duration": "12", "resolution": "720p", "aspect_ratio": "16:9"})
    path = tmp_path / "v.mp4"
    path.write_bytes(requests.get(api.video_url(task_id), timeout=10).content)
    probe = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "format=duration:format_tags=comment:stream=width,height",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    info = json.loads(probe.stdout)
    assert float(info["format"]["duration"]) == 12.0
    assert (info["streams"][0]["width"], info["streams"][0]["height"]) == (1280, 720)
    assert task_id in info["format"]["tags"]["comment"]
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert decoded.returncode == 0 and decoded.stderr == ""
