#!/usr/bin/env python
"""Render the 14 MP4 clips the Seedance emulator serves as "generated" videos.

The emulator must hand out real, playable files whose pixel size matches the requested
resolution and aspect ratio, without needing ffmpeg at run time. So the clips are rendered
once, here, and committed under ``airflow_provider_seedance/emulator/clips/``.

Each clip is one second of ffmpeg's ``testsrc2`` pattern at 10 fps, labelled with its
resolution and aspect ratio, encoded as H.264 (yuv420p, ``+faststart``) at a low quality
setting so all 14 stay far below 1 MB.

Each clip must last exactly one second: at run time the emulator stretches it to the
requested 4, 8 or 12 seconds by multiplying the MP4 box timing by a whole factor
(``emulator/video.py``, ``stretch_mp4``) and writes the task id into its ``udta`` box.

Usage::

    python scripts/render_emulator_clips.py              # ffmpeg from PATH or imageio-ffmpeg
    python scripts/render_emulator_clips.py --ffmpeg /usr/bin/ffmpeg --no-label

Get ffmpeg with ``apt-get install ffmpeg`` or ``pip install imageio-ffmpeg``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from airflow_provider_seedance.emulator.catalog import FRAME_SIZES, clip_name  # noqa: E402

CLIPS_DIR = REPO_ROOT / "airflow_provider_seedance" / "emulator" / "clips"
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
)


def find_ffmpeg(explicit: str | None) -> str:
    """Locate an ffmpeg binary: the argument, PATH, then the imageio-ffmpeg wheel."""
    if explicit:
        return explicit
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    try:
        import imageio_ffmpeg  # type: ignore[import-not-found]
    except ImportError:
        sys.exit("ffmpeg not found: apt-get install ffmpeg, or pip install imageio-ffmpeg")
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def label_filter(resolution: str, aspect_ratio: str, width: int, height: int) -> str | None:
    """A drawtext filter naming the clip, or None when no usable font is installed."""
    font = next((f for f in FONT_CANDIDATES if Path(f).exists()), None)
    if font is None:
        return None
    shown = f"SEEDANCE EMULATOR {resolution} {aspect_ratio}"
    # Fit the label in the frame width (DejaVu Sans Bold is about 0.7 em per capital).
    size = max(12, min(min(width, height) // 14, int(width * 0.9 / (len(shown) * 0.7))))
    text = shown.replace(":", "\\:")  # drawtext treats an unescaped colon as an option separator
    return (
        f"drawtext=fontfile={font}:text='{text}':fontsize={size}:fontcolor=white:"
        "box=1:boxcolor=black@0.6:boxborderw=6:x=(w-tw)/2:y=h-th-2*th"
    )


def render(ffmpeg: str, resolution: str, aspect_ratio: str, label: bool) -> Path:
    """Render one clip and return its path."""
    width, height = FRAME_SIZES[(resolution, aspect_ratio)]
    out = CLIPS_DIR / clip_name(resolution, aspect_ratio)
    command = [
        ffmpeg,
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={width}x{height}:rate=10:duration=1",
    ]
    text = label_filter(resolution, aspect_ratio, width, height) if label else None
    if text:
        command += ["-vf", text]
    command += [
        "-c:v",
        "libx264",
        "-preset",
        "veryslow",
        "-crf",
        "38",
        "-pix_fmt",
        "yuv420p",
        "-movflags",
        "+faststart",
        "-map_metadata",
        "-1",
        "-fflags",
        "+bitexact",
        "-an",
        str(out),
    ]
    subprocess.run(command, check=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--ffmpeg", help="path to the ffmpeg binary")
    parser.add_argument("--no-label", action="store_true", help="skip the text label (no font needed)")
    args = parser.parse_args(argv)
    ffmpeg = find_ffmpeg(args.ffmpeg)
    CLIPS_DIR.mkdir(parents=True, exist_ok=True)
    total = 0
    for resolution, aspect_ratio in FRAME_SIZES:
        out = render(ffmpeg, resolution, aspect_ratio, label=not args.no_label)
        size = out.stat().st_size
        total += size
        width, height = FRAME_SIZES[(resolution, aspect_ratio)]
        print(f"{out.relative_to(REPO_ROOT)}  {width}x{height}  {size} bytes")
    print(f"total {total} bytes in {len(FRAME_SIZES)} clips")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
