"""Is a host (or URL) on the public internet? One pure predicate, no DNS, no I/O.

Used wherever a URL leaves our hands: ``callback_url`` and ``image_urls`` (the server
connects to them) and every hop of a video download. A check that parses hosts more
narrowly than the code that later connects to them is no check, so the host is read the
way the most liberal parser would read it:

* every numeric IPv4 form ``inet_aton`` (and the WHATWG URL standard) accepts: 1 to 4 parts,
  each decimal, octal (leading ``0``) or hex (``0x``), the last part filling the remaining
  bytes (``127.1``, ``0x7f.0.0.1``, ``0177.0.0.1``, ``2130706433``, ``169.254.43518``);
  a host whose last label is numeric is an address or invalid, never a name;
* IPv6 with or without brackets and zone id, and the IPv4 addresses it can carry
  (``::ffff:a.b.c.d``, the deprecated ``::a.b.c.d``, 6to4, NAT64; Teredo is never public);
* Unicode: NFKC (full-width digits and dots), the IDNA dots, percent-encoding, and
  ``xn--`` labels (judged both as sent and as decoded).

A name is public unless it is ``localhost`` or a single label, or ends in a suffix that
never resolves publicly (``.localhost``, ``.local``, ``.internal``, ...). An address is
public when :attr:`ipaddress.IPv4Address.is_global` says so and it is not multicast.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from urllib.parse import SplitResult, unquote, urlsplit

__all__ = [
    "NON_PUBLIC_SUFFIXES",
    "is_public_host",
    "is_public_url",
    "parse_ipv4",
    "split_url",
    "url_for_logs",
]

#: Name suffixes that never resolve on the public internet (RFC 6761, 6762, 8375, ICANN).
NON_PUBLIC_SUFFIXES: tuple[str, ...] = (
    ".localhost",
    ".local",
    ".internal",
    ".localdomain",
    ".home.arpa",
    ".invalid",
)

#: Characters IDNA treats as label separators besides ``.`` (NFKC maps only U+FF0E).
_IDNA_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_TEREDO = ipaddress.IPv6Network("2001::/32")
#: Characters a URL parser may read differently from ``urlsplit`` (``\\`` is ``/`` to WHATWG).
_AMBIGUOUS_URL_CHARS = re.compile(r"[\\\s\x00-\x1f\x7f]")


def is_public_host(hostname: str) -> bool:
    """True only for a name or address that is reachable on the public internet.

    False for localhost names, single-label names, non-public suffixes, loopback, private,
    link-local, shared (100.64/10), benchmark, reserved, multicast and unspecified
    addresses, and for anything that is not a valid host at all.
    """
    if not isinstance(hostname, str):
        return False
    name = _canonical(hostname)
    if name is None:
        return False
    address = _as_address(name)
    if address is not None:
        return _address_is_public(address)
    if ":" in name or "%" in name:
        return False  # looked like IPv6 (or kept a zone) but did not parse
    return _name_is_public(name, decode_punycode=True)


def is_public_url(url: str, *, schemes: tuple[str, ...] = ("http", "https")) -> bool:
    """True for an absolute URL of one of ``schemes`` whose host passes :func:`is_public_host`."""
    parts = split_url(url)
    return parts is not None and parts.scheme.lower() in schemes and is_public_host(parts.hostname or "")


def split_url(url: str) -> SplitResult | None:
    """``urlsplit(url)`` for a URL every parser reads alike with a host, else ``None``.

    ``None`` for URLs with backslashes, whitespace or control characters (WHATWG parsers
    read ``\\`` as ``/``, so ``https://127.0.0.1\\@example.com`` goes to 127.0.0.1), an
    invalid port, or no host.
    """
    if not isinstance(url, str) or _AMBIGUOUS_URL_CHARS.search(url):
        return None
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises for an invalid port
    except ValueError:
        return None
    return parts if parts.hostname else None


def parse_ipv4(text: str) -> ipaddress.IPv4Address | None:
    """An IPv4 address in any form ``inet_aton`` accepts, else ``None``.

    ``text`` must already be lower case ASCII with no trailing dot.
    """
    labels = text.split(".")
    if not 1 <= len(labels) <= 4:
        return None
    values: list[int] = []
    for label in labels:
        value = _ipv4_part(label)
        if value is None:
            return None
        values.append(value)
    *head, last = values
    if any(v > 0xFF for v in head) or last >= 1 << (8 * (5 - len(values))):
        return None
    number = last
    for position, value in enumerate(head):
        number |= value << (8 * (3 - position))
    return ipaddress.IPv4Address(number)


def _ipv4_part(label: str) -> int | None:
    if label.startswith("0x"):
        digits = label[2:]
        return int(digits, 16) if digits else 0
    if not label.isdigit() or not label.isascii():
        return None
    if len(label) > 1 and label.startswith("0"):
        return int(label, 8) if all(c in "01234567" for c in label) else None
    return int(label)


def _canonical(hostname: str) -> str | None:
    """Lower case, NFKC, IDNA dots, percent-decoded, unbracketed, no zone, no trailing dot."""
    text = unquote(hostname.strip())
    text = unicodedata.normalize("NFKC", text).translate(_IDNA_DOTS).strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        text = text.split("%", 1)[0]  # an IPv6 zone id names a local interface only
    if text.endswith(".") and not text.endswith(".."):
        text = text[:-1]
    return text or None


def _as_address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if ":" in name:
        try:
            return ipaddress.IPv6Address(name)
        except ValueError:
            return None
    last = name.rsplit(".", 1)[-1]
    if _NUMERIC_LABEL.fullmatch(last):
        # WHATWG: a host ending in a number is an IPv4 address; if it does not parse it is
        # invalid, never a name. An invalid address is "0.0.0.0" here, which is non-public.
        return parse_ipv4(name) or ipaddress.IPv4Address(0)
    return None


def _address_is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv4Address):
        return address.is_global and not address.is_multicast
    embedded = _embedded_ipv4(address)
    if embedded is not None and not _address_is_public(embedded):
        return False
    if address in _IPV4_COMPATIBLE or address in _TEREDO:
        return False  # deprecated / tunnelled: nothing public is reached this way
    if address.ipv4_mapped is not None:
        return embedded is not None and _address_is_public(embedded)
    return address.is_global and not address.is_multicast and not address.is_site_local


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or address in _IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _name_is_public(name: str, *, decode_punycode: bool) -> bool:
    ascii_name = _to_ascii(name)
    if ascii_name is None or not _NAME.fullmatch(ascii_name) or len(ascii_name) > 253:
        return False
    if "." not in ascii_name or ascii_name == "localhost" or ascii_name.endswith(NON_PUBLIC_SUFFIXES):
        return False
    if decode_punycode and "xn--" in ascii_name:
        # Judge what the punycode spells too (NFKC of it may be "localhost" or an address).
        decoded = _from_ascii(ascii_name)
        spelled = _canonical(decoded) if decoded is not None else None
        if spelled is None:
            return False
        address = _as_address(spelled)
        if address is not None:
            return _address_is_public(address)
        if spelled.isascii() and not _name_is_public(spelled, decode_punycode=False):
            return False
    return True


def _to_ascii(name: str) -> str | None:
    if name.isascii():
        return name
    try:
        return name.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None


def _from_ascii(name: str) -> str | None:
    try:
        return name.encode("ascii").decode("idna")
    except UnicodeError:
        return None


def url_for_logs(url: str | None) -> str | None:
    """A URL for logs and messages: without its query string and fragment (signed URLs carry
    their tokens there)."""
    if url is None:
        return None
    return url.split("?", 1)[0].split("#", 1)[0]
