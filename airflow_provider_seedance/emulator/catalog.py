"""What the emulated Seedance 2.0 service offers: allowed values, prices, frame sizes, timings.

The emulator keeps its own copy of these tables on purpose. It models the *server*, so it
must not share code with the provider it is meant to test: if both read one table, a wrong
price or a missing aspect ratio would go unnoticed by every test.
"""

from __future__ import annotations

# The deliberate copy of the server's tables (see above): the duplicate-code check lists these
# lines beside models.py, and that is intended.
ASPECT_RATIOS: tuple[str, ...] = ("1:1", "16:9", "9:16", "4:3", "3:4", "21:9", "9:21")
RESOLUTIONS: tuple[str, ...] = ("480p", "720p")
DURATIONS: tuple[str, ...] = ("4", "8", "12")
MAX_PROMPT_CHARS = 2000
MAX_IMAGE_URLS = 1

DEFAULT_ASPECT_RATIO = "1:1"
DEFAULT_RESOLUTION = "720p"
DEFAULT_DURATION = "8"

# Credits, from the guide's pricing tables: (resolution, duration) -> (no audio, with audio).
_PRICES: dict[tuple[str, str], tuple[int, int]] = {
    ("480p", "4"): (8, 14),
    ("480p", "8"): (14, 28),
    ("480p", "12"): (19, 38),
    ("720p", "4"): (14, 28),
    ("720p", "8"): (28, 56),
    ("720p", "12"): (42, 84),
}

# Pixel size of the rendered clip for each (resolution, aspect ratio). The short side is the
# resolution's height; the long side is rounded to an even number because H.264 4:2:0 needs it.
_SHORT_SIDES: dict[str, int] = {"480p": 480, "720p": 720}


def _frame_size(resolution: str, aspect_ratio: str) -> tuple[int, int]:
    short = _SHORT_SIDES[resolution]
    across, down = (int(part) for part in aspect_ratio.split(":"))
    long = 2 * round(short * max(across, down) / min(across, down) / 2)
    return (long, short) if across >= down else (short, long)


FRAME_SIZES: dict[tuple[str, str], tuple[int, int]] = {
    (res, ratio): _frame_size(res, ratio) for res in RESOLUTIONS for ratio in ASPECT_RATIOS
}


def price(resolution: str, duration: str, generate_audio: bool) -> int:
    """Credits one generation costs; inputs must already be validated."""
    without_audio, with_audio = _PRICES[(resolution, duration)]
    return with_audio if generate_audio else without_audio


def realistic_generation_seconds(resolution: str, duration: str, generate_audio: bool) -> float:
    """How long a generation takes when no fixed time is configured.

    The guide only says time depends on resolution, duration and audio; this model gives
    about 30 s for 480p/4 s and about 120 s for 720p/12 s with audio, which is the range such
    services report and long enough that a client must really poll or defer.
    """
    seconds = 15.0 + 3.75 * int(duration)
    if resolution == "720p":
        seconds *= 1.5
    if generate_audio:
        seconds *= 4.0 / 3.0
    return seconds


def clip_name(resolution: str, aspect_ratio: str) -> str:
    """File name of the bundled clip, e.g. ``720p_16x9.mp4``."""
    return f"{resolution}_{aspect_ratio.replace(':', 'x')}.mp4"
