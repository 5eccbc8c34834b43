# ruff: noqa: RUF001 - full-width and IDNA characters are the inputs under test
"""hosts.is_public_host / is_public_url: one SSRF predicate that reads hosts as liberally as a connector.

A host the check reads differently from the code that later connects to it is a way past
the check, so every notation a resolver or URL parser accepts must get the verdict of the
address it denotes.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_seedance.exceptions import SeedanceValidationError
from airflow_provider_seedance.hosts import is_public_host, is_public_url, parse_ipv4
from airflow_provider_seedance.models import GenerationRequest
from airflow_provider_seedance.models import is_public_host as is_public_host_from_models

NON_PUBLIC_HOSTS = [
    # loopback, every IPv4 notation inet_aton accepts
    "127.0.0.1",
    "127.1",
    "127.0.1",
    "0x7f.0.0.1",
    "0X7F.0.0.1",
    "0x7f000001",
    "0177.0.0.1",
    "0177.1",
    "017700000001",
    "2130706433",
    "0x7f.1",
    "0x7f.0x0.0.01",  # mixed hex and octal parts
    "127.0.0.1.",  # trailing dot
    "127.1.",
    "127.255.255.254",
    # private, link-local, shared, benchmark, reserved, unspecified, broadcast, multicast
    "10.1",
    "10.0.0.5",
    "012.0.0.1",
    "167772161",
    "172.16.3.4",
    "192.168.1.10",
    "192.168.0x101",
    "169.254.169.254",
    "169.254.43518",
    "0xa9fea9fe",
    "100.64.0.1",
    "198.18.0.1",
    "198.19.255.255",
    "192.0.2.1",
    "198.51.100.7",
    "203.0.113.9",
    "240.0.0.1",
    "255.255.255.255",
    "0.0.0.0",
    "0",
    "224.0.0.1",
    "239.255.255.250",
    # invalid numeric hosts are not names
    "1.2.3.4.5",
    "256.0.0.1",
    "08.0.0.1",
    "1.2.3.0x100",
    "127.0.0.65536",
    "1..2",
    "example.123",
    "4294967296",
    # full width digits and IDNA dots
    "１２７．０．０．１",
    "127。0。0。1",
    "127｡0｡0｡1",
    "１２７．１",
    "０ｘ７ｆ．０．０．１",
    # percent-encoded
    "%31%32%37.0.0.1",
    "%6c%6f%63%61%6c%68%6f%73%74",
    # IPv6
    "::1",
    "[::1]",
    "::",
    "::ffff:127.0.0.1",
    "[::ffff:127.0.0.1]",
    "::ffff:7f00:1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",
    "::8.8.8.8",  # deprecated IPv4-compatible: never public
    "fe80::1",
    "fe80::1%eth0",
    "[fe80::1%25eth0]",
    "fc00::1",
    "fd12:3456::1",
    "fec0::1",
    "ff02::1",
    "ff0e::1",
    "2001:db8::1",
    "100::1",
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "[::1",
    "::1::2",
    # names
    "localhost",
    "LOCALHOST",
    "localhost.",
    "ｌｏｃａｌｈｏｓｔ",
    "api.localhost",
    "printer.local",
    "metadata.google.internal",
    "box.localdomain",
    "router.home.arpa",
    "x.invalid",
    "intranet",
    "intranet.",
    "xn--localhost-",
    "",
    " ",
    ".",
    "exa mple.com",
    "a..b.com",
    "-bad-.com",
    "a/b.com",
]

PUBLIC_HOSTS = [
    "example.com",
    "EXAMPLE.COM",
    "example.com.",
    "hooks.example.com",
    "cdn.example.org",
    "my_host.example.com",
    "bücher.de",
    "xn--bcher-kva.de",
    "例え.jp",
    "ｅｘａｍｐｌｅ．ｃｏｍ",
    "8.8.8.8",
    "8.8.8.8.",
    "0x08.0x08.0x08.0x08",
    "010.010.010.010",
    "134744072",
    "8.526344",
    "１．１．１．１",
    "93.184.216.34",
    "2001:4860:4860::8888",
    "[2001:4860:4860::8888]",
    "::ffff:8.8.8.8",
    "2002:808:808::1",  # 6to4 of a public address
    "64:ff9b::808:808",  # NAT64 of a public address
    "local.example.com",  # "local" as a label is fine; only the suffix is reserved
    "localhost.example.com",
]


@pytest.mark.parametrize("host", NON_PUBLIC_HOSTS)
def test_non_public_hosts_are_refused(host: str) -> None:
    assert is_public_host(host) is False


@pytest.mark.parametrize("host", PUBLIC_HOSTS)
def test_public_hosts_are_accepted(host: str) -> None:
    assert is_public_host(host) is True


@pytest.mark.parametrize("value", [None, 127, b"example.com", ["example.com"]])
def test_non_strings_are_not_public(value: object) -> None:
    assert is_public_host(value) is False  # type: ignore[arg-type]


def test_models_still_exports_the_one_predicate() -> None:
    assert is_public_host_from_models is is_public_host


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("169.254.43518", "169.254.169.254"),
        ("192.168.0x101", "192.168.1.1"),
        ("0x", "0.0.0.0"),
        ("1.2.3.4", "1.2.3.4"),
        ("1.2.3.4.5", None),
        ("1.256.3.4", None),
        ("09", None),
        ("1.2.3.-4", None),
        ("a.b.c.d", None),
    ],
)
def test_parse_ipv4_reads_what_inet_aton_reads(text: str, expected: str | None) -> None:
    parsed = parse_ipv4(text)
    assert (str(parsed) if parsed is not None else None) == expected


# ---------------------------------------------------------------- URLs

PUBLIC_URLS = [
    "https://example.com/a.jpg",
    "http://example.com:8080/a.jpg?sig=1",
    "HTTPS://Example.COM/x",
    "https://user:pw@example.com/x",
    "https://[2001:4860:4860::8888]:443/x",
]

NON_PUBLIC_URLS = [
    "https://127.1/",
    "https://0x7f.0.0.1/",
    "https://0177.0.0.1/",
    "https://2130706433/",
    "https://１２７．０．０．１/",
    "https://10.1/x",
    "https://169.254.43518/latest/meta-data",
    "https://[::ffff:127.0.0.1]/",
    "https://[::127.0.0.1]/",
    "https://[fe80::1%25eth0]/",
    "https://localhost./",
    "https://example.com@127.0.0.1/",  # the host is what follows the @
    "https://127.0.0.1\\@example.com/",  # WHATWG reads \\ as /: host 127.0.0.1
    "https://example.com\\@127.0.0.1/",
    "https://exa\tmple.com/",
    "https://example.com:99999/",
    "https://[::1/",
    "ftp://example.com/a.jpg",
    "file:///etc/passwd",
    "example.com/a.jpg",
    "//example.com/a.jpg",
    "https://",
    "",
]


@pytest.mark.parametrize("url", PUBLIC_URLS)
def test_public_http_urls_are_accepted(url: str) -> None:
    assert is_public_url(url) is True


@pytest.mark.parametrize("url", NON_PUBLIC_URLS)
def test_non_public_or_ambiguous_urls_are_refused(url: str) -> None:
    assert is_public_url(url) is False


def test_scheme_list_narrows_the_urls_accepted() -> None:
    assert is_public_url("http://example.com/", schemes=("https",)) is False
    assert is_public_url("https://example.com/", schemes=("https",)) is True


# ---------------------------------------------------------------- the request fields use it


@pytest.mark.parametrize("url", [u for u in NON_PUBLIC_URLS if u.startswith("https://")])
def test_callback_url_refuses_every_non_public_form(url: str) -> None:
    with pytest.raises(SeedanceValidationError) as info:
        GenerationRequest(prompt="p", callback_url=url)
    message = str(info.value)
    assert "callback_url" in message and "https://" in message and "private" in message


@pytest.mark.parametrize("url", [u for u in NON_PUBLIC_URLS if u.startswith("https://")])
def test_image_urls_refuse_every_non_public_form(url: str) -> None:
    with pytest.raises(SeedanceValidationError) as info:
        GenerationRequest(prompt="p", image_urls=[url])
    message = str(info.value)
    assert "image_urls" in message and "http(s) URL on a public host" in message and "loopback" in message


@pytest.mark.parametrize("url", PUBLIC_URLS)
def test_image_urls_accept_public_http_urls(url: str) -> None:
    assert GenerationRequest(prompt="p", image_urls=[url]).image_urls == (url,)


# ---------------------------------------------------------------- every IPv4 notation, explored


def _expected(number: int) -> bool:
    """The reference verdict: ipaddress's is_global (multicast, global on 3.11, is refused too)."""
    address = ipaddress.ip_address(number)
    return address.is_global and not address.is_multicast


def _part(value: int, radix: str) -> str:
    if radix == "hex":
        return hex(value)
    if radix == "HEX":
        return "0X" + format(value, "X")
    if radix == "octal":
        return "0" + format(value, "o")
    return str(value)


@st.composite
def ipv4_notations(draw: st.DrawFn) -> tuple[int, str]:
    """An IPv4 address and one of its inet_aton notations (1 to 4 parts, any radix per part)."""
    number = draw(st.integers(min_value=0, max_value=2**32 - 1))
    count = draw(st.integers(min_value=1, max_value=4))
    octets = list(number.to_bytes(4, "big"))
    head = octets[: count - 1]
    tail = int.from_bytes(bytes(octets[count - 1 :]), "big")  # the last part fills the rest
    radixes = draw(st.lists(st.sampled_from(["dec", "hex", "HEX", "octal"]), min_size=count, max_size=count))
    text = ".".join(_part(v, r) for v, r in zip([*head, tail], radixes, strict=True))
    if draw(st.booleans()):
        text += "."
    return number, text


@given(ipv4_notations())
def test_every_ipv4_notation_gets_the_verdict_of_its_address(case: tuple[int, str]) -> None:
    number, text = case
    assert parse_ipv4(text.rstrip(".").lower()) == ipaddress.IPv4Address(number)
    assert is_public_host(text) is _expected(number)
    assert is_public_url(f"https://{text}/x") is _expected(number)


@given(ipv4_notations())
def test_full_width_notation_gets_the_same_verdict(case: tuple[int, str]) -> None:
    number, text = case
    full_width = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)
    assert is_public_host(full_width) is _expected(number)


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_ipv4_mapped_ipv6_gets_the_verdict_of_its_ipv4(number: int) -> None:
    mapped = f"::ffff:{ipaddress.IPv4Address(number)}"
    assert is_public_host(mapped) is _expected(number)
    assert is_public_host(f"[{mapped}]") is _expected(number)
