"""Keep API keys out of the emulator's logs.

Keys are the one secret the emulator handles. Log lines may name an account, but only in
masked form, and a formatter scrubs any configured key that slips into a message or a
traceback anyway, so a test can scan the log file for the raw key and find nothing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable

# Keys shorter than this show no characters at all: four visible characters of a short
# key would give away too much of it.
_MIN_LEN_FOR_TAIL = 12


def mask_key(key: str) -> str:
    """``sk-emulator-local`` -> ``sk-…ocal``: enough to tell accounts apart, never the key."""
    prefix = "sk-" if key.startswith("sk-") else ""
    tail = key[-4:] if len(key) >= _MIN_LEN_FOR_TAIL else ""
    return f"{prefix}…{tail}"


def account_label(key: str) -> str:
    """How the admin API and the logs name the account of ``key``: ``sk-…ocal#1a2b3c4d``.

    The mask alone can collide (two keys with the same last four characters); the short
    sha256 tag keeps labels unique and stable across restarts without showing the key.
    A test helper that knows the raw keys maps labels back with this same function.
    """
    return f"{mask_key(key)}#{hashlib.sha256(key.encode('utf-8')).hexdigest()[:8]}"


class RedactingFormatter(logging.Formatter):
    """A formatter that replaces every known key in the final text with its mask."""

    def __init__(self, secrets: Iterable[str], fmt: str | None = None, datefmt: str | None = None) -> None:
        super().__init__(fmt=fmt, datefmt=datefmt)
        # Longest first, so a key that contains another key is replaced whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, mask_key(secret))
        return text
