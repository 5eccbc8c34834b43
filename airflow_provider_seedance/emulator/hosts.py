"""Which hosts are public: the emulator's check of ``callback_url`` and ``image_urls`` hosts.

The real service calls back and fetches images over the internet, so it must refuse any
host that names this machine or a private network, in *every* spelling a resolver accepts:
``127.1``, ``0x7f.0.0.1``, ``0177.0.0.1``, ``2130706433``, ``[::ffff:127.0.0.1]``,
full-width ``127.0.0.1``, ``127%2E0%2E0%2E1``, ``localhost.`` ... (glibc's ``inet_aton``, and so
aiohttp's resolver, reads the short and hex/octal IPv4 forms exactly as a browser does).

The client package has a twin of this predicate with the same test cases. The emulator keeps
its own copy on purpose: it models the *server*, and if both sides shared one function a bug
in it would be invisible to every test that runs the client against the emulator.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from urllib.parse import unquote

# Dots that IDNA (RFC 3490 section 3.1) treats as label separators.
_DOTS = re.compile("[\u3002\uff0e\uff61]")
# What a DNS name may hold once IDNA-encoded (underscores occur in real records).
_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")

# Names that resolve to this machine or a local network whatever DNS says (RFC 6761,
# RFC 8375, common /etc/hosts aliases, cloud metadata names under .internal).
_LOCAL_NAMES: frozenset[str] = frozenset(
    {"localhost", "localhost.localdomain", "localdomain", "ip6-localhost", "ip6-loopback", "broadcasthost"}
)
_LOCAL_SUFFIXES: tuple[str, ...] = (".localhost", ".local", ".localdomain", ".internal", ".home.arpa", ".lan")


def is_public_host(host: str) -> bool:
    """Whether ``host`` (a URL's host, brackets optional) is a public internet host.

    No DNS lookup is made: a name is public unless it is a local name or a single label.
    Anything that cannot be read unambiguously (a malformed address, an invalid IDNA label)
    is not public: a refusal is the safe answer for a server about to connect somewhere.
    """
    name = _normalise(host)
    if name is None or not name:
        return False
    if ":" in name:
        address = _ipv6(name)
        return address is not None and _is_public_ip(address)
    address4 = _ipv4(name)
    if address4 is not None:
        return _is_public_ip(address4)
    if _ends_in_number(name):
        return False  # looks numeric but is no valid IPv4 address: never a DNS name either
    if name in _LOCAL_NAMES or name.endswith(_LOCAL_SUFFIXES):
        return False
    # A single label ("intranet", "metadata") only resolves through local search domains.
    return "." in name


def is_public_ip(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether a resolved address may be connected to (also used at callback time)."""
    return _is_public_ip(address)


def _normalise(host: str) -> str | None:
    """Lower-case ASCII form of ``host``: percent-decoded, NFKC, IDNA, no brackets or final dot."""
    text = unquote(host.strip())
    text = unicodedata.normalize("NFKC", text)
    text = _DOTS.sub(".", text).lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        return text
    if text.endswith("."):
        text = text[:-1]
    if not text or text.startswith(".") or ".." in text:
        return None
    if not text.isascii():
        try:
            text = text.encode("idna").decode("ascii").lower()
        except UnicodeError:
            return None
    return text if _NAME.fullmatch(text) else None


def _ipv6(text: str) -> ipaddress.IPv6Address | None:
    try:
        return ipaddress.IPv6Address(text)  # accepts a %zone suffix, which keeps link-local visible
    except ValueError:
        return None


def _ipv4_part(part: str) -> int | None:
    """One dotted part as inet_aton reads it: ``0x`` hex, leading-zero octal, else decimal."""
    if part[:2] in ("0x", "0X"):
        digits, base = part[2:], 16
        if not digits:
            return 0
    elif len(part) > 1 and part.startswith("0"):
        digits, base = part[1:], 8
    else:
        digits, base = part, 10
    if not digits or not all(c in "0123456789abcdef"[:base] for c in digits.lower()):
        return None
    return int(digits, base)


def _ipv4(name: str) -> ipaddress.IPv4Address | None:
    """``name`` as an IPv4 address in any of the 1-4 part numeric forms, else None."""
    parts = name.split(".")
    if len(parts) > 4:
        return None
    numbers = [_ipv4_part(part) for part in parts]
    if any(n is None for n in numbers):
        return None
    values = [n for n in numbers if n is not None]
    if any(n > 255 for n in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        return None
    address = values[-1]
    for index, value in enumerate(values[:-1]):
        address += value << (8 * (3 - index))
    return ipaddress.IPv4Address(address)


def _ends_in_number(name: str) -> bool:
    """WHATWG's "ends in a number": such a host must be an IPv4 address or nothing."""
    last = name.rsplit(".", 1)[-1]
    return bool(last) and (last.isdigit() or _ipv4_part(last) is not None)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries (mapped, compatible, 6to4, Teredo, NAT64)."""
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    packed = int(address)
    if packed >> 32 == 0 and packed > 1:  # deprecated IPv4-compatible ::a.b.c.d
        found.append(ipaddress.IPv4Address(packed & 0xFFFFFFFF))
    if address in ipaddress.IPv6Network("64:ff9b::/96") or address in ipaddress.IPv6Network("64:ff9b:1::/48"):
        found.append(ipaddress.IPv4Address(packed & 0xFFFFFFFF))
    return found


def _is_public_ip(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded:
            return all(_is_public_ip(v4) for v4 in embedded)
        if address.scope_id:
            return False
    return not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
        or getattr(address, "is_site_local", False)
        or not address.is_global
    )


__all__ = ["is_public_host", "is_public_ip"]
