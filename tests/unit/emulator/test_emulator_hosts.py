# ruff: noqa: RUF001 - full-width host spellings are the point of these cases
"""The emulator's own public-host predicate (``callback_url`` and ``image_urls`` hosts).

The client package has a twin of this predicate tested with the same cases; the emulator
keeps its own copy on purpose (it models the server, and a shared function would hide a bug
from every client-against-emulator test). Every spelling below reaches a local address
through glibc's resolver or a browser's URL parser, so each must be refused.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import pytest

from airflow_provider_seedance.emulator.hosts import is_public_host, is_public_ip

NOT_PUBLIC = [
    # names
    "localhost",
    "LOCALHOST",
    "localhost.",
    "api.localhost",
    "localhost.localdomain",
    "printer.local",
    "metadata.google.internal",
    "router.home.arpa",
    "intranet",  # a single label resolves only through local search domains
    "ｌｏｃａｌｈｏｓｔ",  # full-width letters
    # dotted-quad and the short, hex, octal and integer forms of loopback
    "127.0.0.1",
    "127.8.9.10",
    "127.1",
    "127.0.1",
    "0x7f.0.0.1",
    "0x7F.1",
    "0177.0.0.1",
    "0177.1",
    "2130706433",
    "0x7f000001",
    "017700000001",
    "0x7f.0.0x0.01",  # mixed hex and octal parts
    "127.0.0.1.",  # trailing dot
    # private, link-local, shared, reserved, multicast, unspecified
    "10.0.0.1",
    "10.1",
    "172.16.5.4",
    "192.168.0.10",
    "0xc0a80001",
    "3232235521",
    "0300.0250.0.1",
    "169.254.169.254",
    "169.254.43518",
    "100.64.0.1",
    "0.0.0.0",
    "0",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    # full-width and ideographic digits and dots, percent-encoding left by urlsplit
    "１２７．０．０．１",
    "127。0。0。1",
    "127%2E0%2E0%2E1",
    "127.0.0.1%00",
    # IPv6, bracketed or not, and IPv4 embedded in IPv6
    "::1",
    "[::1]",
    "::",
    "fe80::1",
    "fe80::1%eth0",
    "fc00::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "[::ffff:127.0.0.1]",
    "::ffff:7f00:1",
    "::ffff:10.0.0.1",
    "::127.0.0.1",  # deprecated IPv4-compatible form
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "64:ff9b::127.0.0.1",  # NAT64 of loopback
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo whose client is 127.0.0.1
    # unreadable: refused rather than guessed
    "999.1.1.1",
    "1.2.3.4.5",
    "08.0.0.1",
    "a..b",
    "",
    ".",
    "ex ample.com",
    ":::1",
]

PUBLIC = [
    "example.com",
    "your-app.com",
    "EXAMPLE.COM.",
    "images.example.com",
    "bücher.de",
    "xn--bcher-kva.de",
    "8.8.8.8",
    "0x8.0x8.0x8.0x8",  # hex form of a public address is still public
    "134744072",  # 8.8.8.8 as one integer
    "2001:4860:4860::8888",
    "[2001:4860:4860::8888]",
    "::ffff:8.8.8.8",
    "64:ff9b::8.8.8.8",
]


@pytest.mark.parametrize("host", NOT_PUBLIC)
def test_local_private_and_unreadable_hosts_are_not_public(host: str) -> None:
    assert is_public_host(host) is False


@pytest.mark.parametrize("host", PUBLIC)
def test_public_hosts_are_public(host: str) -> None:
    assert is_public_host(host) is True


@pytest.mark.parametrize(
    "url",
    [
        "https://127.1/cb",
        "https://0x7f.0.0.1:8443/cb",
        "https://[::ffff:127.0.0.1]/cb",
        "https://user:pw@localhost./cb",
        "https://１２７．０．０．１/cb",
        "https://127%2E0%2E0%2E1/cb",
    ],
)
def test_hosts_as_urlsplit_returns_them_are_not_public(url: str) -> None:
    host = urlsplit(url).hostname
    assert host is not None
    assert is_public_host(host) is False


@pytest.mark.parametrize(
    ("address", "public"),
    [("127.0.0.1", False), ("10.9.8.7", False), ("::ffff:192.168.1.1", False), ("93.184.216.34", True)],
)
def test_resolved_addresses_are_checked_with_the_same_rules(address: str, public: bool) -> None:
    assert is_public_ip(ipaddress.ip_address(address)) is public
