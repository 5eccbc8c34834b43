"""Callback (webhook) tokens and the connection extras that turn callbacks on.

Seedance cannot log in to Airflow, so the receiver (``POST /seedance/callbacks/{token}`` in the
plugin) is reachable without a login and guarded by the token in its path alone. A token is
an HMAC-SHA256, keyed by the connection's ``callback_secret``, over the task instance it was
made for (:class:`CallbackIdentity`: connection, DAG, run, task, map index, try and a random
nonce) and an expiry. Whoever holds a valid token may only *ask* the receiver to look: the
receiver reads the generation's status itself with the connection's key and acts only on
that, so a token never lets its holder decide an outcome.

Callbacks are off unless a connection sets both extras:

* ``callback_secret``: at least :data:`MIN_SECRET_CHARS` characters; never logged, never in
  a repr (Airflow's masker also hides any extra named ``*secret*``).
* ``callback_base_url``: the public ``https://`` URL of the Airflow API server (the plugin is
  mounted at ``/seedance`` below it). ``http://`` on a loopback host is accepted only when the
  connection says ``"emulator": true``: the real service refuses non-public callback URLs.

Pure: no Airflow, no I/O, so every layer may use it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from airflow_provider_seedance.exceptions import SeedanceConfigurationError
from airflow_provider_seedance.hosts import is_public_url, split_url

#: Where the plugin's receiver answers, below ``callback_base_url``.
CALLBACK_PATH = "/seedance/callbacks/"
#: Shortest accepted ``callback_secret`` (an HMAC key shorter than this is guessable).
MIN_SECRET_CHARS = 32
#: The fallback poll interval of a deferred wait when callbacks are on and the task set none.
CALLBACK_POLL_INTERVAL = 300.0
#: Seconds a token stays valid after the wait's own deadline (a late callback still helps).
TOKEN_GRACE_SECONDS = 3600.0
#: Lifetime of a token for a wait without a deadline.
DEFAULT_TOKEN_LIFETIME = 7 * 24 * 3600.0
#: Longest token accepted before any decoding (a forged giant path costs nothing).
MAX_TOKEN_CHARS = 2048
#: What Airflow accepts as a connection id (letters, digits, ``_``, ``.``, ``-``; at most 250):
#: a claimed id of any other shape is refused before anything is looked up.
_CONN_ID = re.compile(r"[A-Za-z0-9_.\-]{1,250}")

_VERSION = "v1"


class CallbackTokenError(Exception):
    """A callback token was refused. Messages never contain the secret or the token."""


class TokenFormatError(CallbackTokenError):
    """Not a token of ours: wrong shape, encoding or contents."""


class TokenSignatureError(CallbackTokenError):
    """Well formed, but not signed with this secret (forged, tampered with, or another key)."""


class TokenExpiredError(CallbackTokenError):
    """Correctly signed, but past its expiry."""


@dataclass(frozen=True)
class CallbackIdentity:
    """The task instance try a callback token was made for."""

    conn_id: str
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    nonce: str
    #: Fire-and-forget: the asset (name, uri) whose event the receiver records when the
    #: generation ends. ``None``: the callback resumes a deferred wait instead.
    asset: tuple[str, str] | None = None

    @classmethod
    def for_try(
        cls,
        conn_id: str,
        dag_id: str,
        run_id: str,
        task_id: str,
        map_index: int,
        try_number: int,
        *,
        asset: tuple[str, str] | None = None,
    ) -> CallbackIdentity:
        """A new identity with a fresh random nonce (each try's token is its own)."""
        return cls(
            conn_id, dag_id, run_id, task_id, int(map_index), int(try_number), secrets.token_hex(8), asset
        )


@dataclass(frozen=True)
class CallbackSettings:
    """A connection's callback extras. ``repr``/``str`` never show the secret."""

    secret: str
    base_url: str

    def __repr__(self) -> str:
        return f"CallbackSettings(base_url={self.base_url!r}, secret=***)"

    __str__ = __repr__

    def url_for(self, identity: CallbackIdentity, expires_at: float) -> str:
        """The ``callback_url`` of one try: the base URL, the receiver's path and a fresh token."""
        return self.base_url + CALLBACK_PATH + quote(sign(self.secret, identity, expires_at), safe="")


def token_expiry(now: float, end_time: float | None) -> float:
    """When a token made at ``now`` for a wait ending at ``end_time`` (or never) expires."""
    if end_time is None:
        return now + DEFAULT_TOKEN_LIFETIME
    return max(now, end_time) + TOKEN_GRACE_SECONDS


def callback_settings(conn_id: str | None, extra: Mapping[str, Any]) -> CallbackSettings | None:
    """The callback extras of a connection, checked; ``None`` when callbacks are off.

    Both extras or neither: one without the other is a configuration error, so a half-done
    set-up fails loudly instead of silently polling.
    """
    secret, base_url = extra.get("callback_secret"), extra.get("callback_base_url")
    if secret in (None, "") and base_url in (None, ""):
        return None
    where = f"Connection {conn_id!r}"
    if secret in (None, ""):
        raise SeedanceConfigurationError(
            f"{where}: extra 'callback_base_url' is set but 'callback_secret' is not; set both to turn "
            "callbacks on, or neither."
        )
    if not isinstance(secret, str) or len(secret.strip()) < MIN_SECRET_CHARS:
        raise SeedanceConfigurationError(
            f"{where}: extra 'callback_secret' must be a string of at least {MIN_SECRET_CHARS} characters "
            "(e.g. the output of `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)."
        )
    if base_url in (None, ""):
        raise SeedanceConfigurationError(
            f"{where}: extra 'callback_secret' is set but 'callback_base_url' is not; set both to turn "
            "callbacks on, or neither."
        )
    emulator = extra.get("emulator") is True
    return CallbackSettings(secret.strip(), _checked_base_url(where, base_url, emulator=emulator))


def _checked_base_url(where: str, value: Any, *, emulator: bool) -> str:
    allowed = "the public https:// URL of the Airflow API server, without query or fragment"
    if emulator:
        allowed += " (or http:// on a loopback host, since the connection is marked as the emulator)"
    text = value.strip().rstrip("/") if isinstance(value, str) else None
    parts = split_url(text) if text else None
    ok = (
        text is not None
        and parts is not None
        and not parts.query
        and not parts.fragment
        and "@" not in parts.netloc
        and (
            is_public_url(text, schemes=("https",))
            or (emulator and parts.scheme in ("http", "https") and _is_loopback(parts.hostname))
        )
    )
    if not ok or text is None:
        raise SeedanceConfigurationError(
            f"{where}: extra 'callback_base_url' is {value!r}; allowed: {allowed}."
        )
    return text


def _is_loopback(hostname: str | None) -> bool:
    if not hostname:
        return False
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname.strip("[]")).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------- tokens


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or not all(c.isalnum() or c in "-_" for c in text):
        raise TokenFormatError("token is not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise TokenFormatError("token is not base64url") from None
    if _b64(data) != text:  # one spelling per value: a flipped unused trailing bit is a new token
        raise TokenFormatError("token is not canonical base64url")
    return data


def _mac(secret: str, body: str) -> bytes:
    return hmac.new(secret.encode(), f"{_VERSION}.{body}".encode(), hashlib.sha256).digest()


def sign(secret: str, identity: CallbackIdentity, expires_at: float) -> str:
    """A URL-safe token for ``identity``, valid until ``expires_at`` (epoch seconds)."""
    claims: dict[str, Any] = {
        "c": identity.conn_id,
        "d": identity.dag_id,
        "r": identity.run_id,
        "t": identity.task_id,
        "m": identity.map_index,
        "n": identity.try_number,
        "x": identity.nonce,
        "e": int(expires_at),
    }
    if identity.asset is not None:
        claims["a"] = list(identity.asset)
    body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    return f"{_VERSION}.{body}.{_b64(_mac(secret, body))}"


def verify(secret: str, token: str, now: float) -> CallbackIdentity:
    """The identity ``token`` was signed for, if ``secret`` signed it and it has not expired.

    The signature is checked (in constant time) before anything in the token is believed.

    :raises TokenFormatError: not a token of ours.
    :raises TokenSignatureError: not signed with ``secret``.
    :raises TokenExpiredError: signed, but expired at ``now``.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise TokenFormatError("token has the wrong shape")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != _VERSION:
        raise TokenFormatError("token has the wrong shape")
    _, body, signature = parts
    given = _unb64(signature)
    _unb64(body)  # the shape first: the same error for every malformed token
    if not hmac.compare_digest(given, _mac(secret, body)):
        raise TokenSignatureError("token signature does not match")
    try:
        claims = json.loads(_unb64(body))
        identity = CallbackIdentity(
            conn_id=_text(claims["c"]),
            dag_id=_text(claims["d"]),
            run_id=_text(claims["r"]),
            task_id=_text(claims["t"]),
            map_index=_number(claims["m"]),
            try_number=_number(claims["n"]),
            nonce=_text(claims["x"]),
            asset=_asset(claims.get("a")),
        )
        expires_at = _number(claims["e"])
    except (KeyError, TypeError, ValueError):  # signed by us, yet unreadable: a bug, refused all the same
        raise TokenFormatError("token contents are unreadable") from None
    if now >= expires_at:
        raise TokenExpiredError("token has expired")
    return identity


def unverified_conn_id(token: str) -> str:
    """The connection a token *claims* to be for, read before its signature can be checked (the
    secret that checks it belongs to that connection). Believe nothing else in it until
    :func:`verify` passed.

    :raises TokenFormatError: not a token of ours.
    """
    parts = token.split(".") if isinstance(token, str) and len(token) <= MAX_TOKEN_CHARS else []
    if len(parts) != 3 or parts[0] != _VERSION:
        raise TokenFormatError("token has the wrong shape")
    try:
        conn_id = json.loads(_unb64(parts[1]))["c"]
    except (KeyError, TypeError, ValueError, RecursionError):  # RecursionError: deeply nested JSON
        raise TokenFormatError("token contents are unreadable") from None
    if not isinstance(conn_id, str) or not _CONN_ID.fullmatch(conn_id):
        raise TokenFormatError("token contents are unreadable")
    return conn_id


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


#: The longest asset name plus URI a token carries (it travels in the callback URL).
MAX_ASSET_CHARS = 400


def completion_asset_key(
    asset: Any, wait_for_completion: bool, callback_url: Any, outlets: Any
) -> tuple[str, str] | None:
    """The ``(name, uri)`` of an operator's ``completion_asset``, checked, or ``None``.

    :raises ValueError: not an asset, too long for a token, for a task that waits, beside a
        user's own ``callback_url``, or one of the task's ``outlets`` (Airflow records those
        itself when the task ends, which for a fire-and-forget task is at submission).
    """
    if asset is None:
        return None
    from airflow.sdk import Asset

    if isinstance(asset, str):
        asset = Asset(asset)
    if not isinstance(asset, Asset):
        raise ValueError(f"completion_asset must be an Asset or an asset URI, not {type(asset).__name__}")
    key = (asset.name, asset.uri)
    if len(key[0]) + len(key[1]) > MAX_ASSET_CHARS:
        raise ValueError(
            f"completion_asset {asset.uri[:60]!r}…: name and URI may have at most {MAX_ASSET_CHARS} "
            "characters together (they travel in the callback URL)"
        )
    if wait_for_completion:
        raise ValueError(
            f"completion_asset={asset.uri!r} is for wait_for_completion=False (fire-and-forget); a task "
            "that waits records its result on its outlets"
        )
    if callback_url not in (None, ""):
        raise ValueError(
            f"completion_asset={asset.uri!r} needs the callback URL the provider builds; callback_url "
            "must not be set as well"
        )
    if any(isinstance(o, Asset) and (o.name, o.uri) == key for o in outlets or ()):
        raise ValueError(
            f"completion_asset={asset.uri!r} must not be one of outlets: Airflow records an outlet's "
            "event when the task ends, which for a fire-and-forget task is at submission"
        )
    return key


def _asset(value: Any) -> tuple[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        raise TypeError("not an asset")
    return _text(value[0]), _text(value[1])


def _number(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("not an integer")
    return value


__all__ = [
    "CALLBACK_PATH",
    "CALLBACK_POLL_INTERVAL",
    "CallbackIdentity",
    "CallbackSettings",
    "CallbackTokenError",
    "TokenExpiredError",
    "TokenFormatError",
    "TokenSignatureError",
    "callback_settings",
    "completion_asset_key",
    "sign",
    "token_expiry",
    "unverified_conn_id",
    "verify",
]
