"""Connection settings: URLs built right, nothing secret in a repr."""

from __future__ import annotations

import pytest
from airflow.sdk import Connection

from airflow_provider_seedance.exceptions import SeedanceConfigurationError
from airflow_provider_seedance.hooks.seedance import STATUS_PATH, ConnectionSettings


def settings(host: str, port: int | None = None, **extra: object) -> ConnectionSettings:
    conn = Connection(conn_id="c", conn_type="seedance", host=host, port=port, password="sk-key-123")
    return ConnectionSettings.from_connection(conn, extra)


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("http://h/v1", 8765, "http://h:8765/v1/status"),
        ("http://h/v1/", 8765, "http://h:8765/v1/status"),
        ("http://h", 8765, "http://h:8765/v1/status"),
        ("http://h:9000/v1", 8765, "http://h:9000/v1/status"),  # the URL's own port wins
        ("https://h/api/v1", None, "https://h/api/v1/status"),
        ("http://[::1]/v1", 8765, "http://[::1]:8765/v1/status"),
        ("https://seedanceapi.org", None, "https://seedanceapi.org/v1/status"),
    ],
)
def test_port_goes_into_the_authority_and_v1_is_not_doubled(host: str, port: int | None, url: str) -> None:
    assert settings(host, port).url(STATUS_PATH) == url


def test_a_bad_port_is_a_configuration_error() -> None:
    with pytest.raises(SeedanceConfigurationError, match="not an http"):
        settings("http://h:abc/v1")


def test_repr_and_str_hide_the_key_and_the_proxy_password() -> None:
    s = settings("http://h", proxy="http://user:pr0xy-pass@proxy:3128")
    for text in (repr(s), str(s), f"{s}"):
        assert "pr0xy-pass" not in text and "sk-key-123" not in text
        assert "***@proxy:3128" in text


def test_connection_proxy_is_sent_per_request_so_it_wins_over_the_environment() -> None:
    s = settings("https://h", proxies={"https": "http://p:1", "http": "http://q:2"})
    assert s.proxy == "http://p:1" and s.requests_proxies() == {"http": "http://p:1", "https": "http://p:1"}
    assert settings("https://h").requests_proxies() is None


CALLBACK_SECRET = "cb-secret-0123456789abcdefghijklmnopqrstuv"


def test_callbacks_stay_off_for_a_connection_without_the_callback_extras() -> None:
    assert settings("https://h").callbacks is None


def test_callback_extras_are_read_and_the_secret_stays_out_of_every_repr() -> None:
    s = settings(
        "https://h", callback_secret=CALLBACK_SECRET, callback_base_url="https://airflow.example.com/"
    )
    assert s.callbacks is not None and s.callbacks.base_url == "https://airflow.example.com"
    for text in (repr(s), str(s), f"{s}", repr(s.callbacks)):
        assert CALLBACK_SECRET not in text


def test_a_loopback_callback_base_url_is_refused_unless_the_connection_is_the_emulator() -> None:
    extra = {"callback_secret": CALLBACK_SECRET, "callback_base_url": "http://127.0.0.1:8080"}
    with pytest.raises(SeedanceConfigurationError, match="callback_base_url"):
        settings("http://127.0.0.1:8765", **extra)
    assert settings("http://127.0.0.1:8765", emulator=True, **extra).callbacks is not None


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        ("http://exa mple.com", "invalid character"),
        ("http://a..b:8765", "empty label"),
        ("https://ex\u200bample.com", "IDNA"),
    ],
)
def test_a_base_url_the_http_library_cannot_send_to_fails_before_any_request(host: str, problem: str) -> None:
    # Left to the HTTP library, these fail while "sending" and read as "the POST may have arrived".
    with pytest.raises(SeedanceConfigurationError, match=f"base URL .* cannot be sent to .*{problem}"):
        settings(host)


@pytest.mark.parametrize(
    ("key", "where"),
    [
        ("sk-te\u200bst-123", "position 6 (ZERO WIDTH SPACE)"),
        ("sk-test\n123", "position 8 (U+000A)"),
        ("sk-test 123", "position 8 (SPACE)"),
        ("sk-tést-123", "position 5 (LATIN SMALL LETTER E WITH ACUTE)"),
    ],
)
def test_an_api_key_a_header_cannot_carry_fails_naming_the_position_never_the_key(
    key: str, where: str
) -> None:
    conn = Connection(conn_id="c", conn_type="seedance", host="https://seedanceapi.org", password=key)
    with pytest.raises(SeedanceConfigurationError) as raised:
        ConnectionSettings.from_connection(conn, {})
    assert where in str(raised.value) and "API key" in str(raised.value)
    assert key.strip() not in str(raised.value) and "123" not in str(raised.value)


def test_an_unknown_extra_is_named_once_with_the_setting_it_resembles_and_never_its_value(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from airflow_provider_seedance.hooks import seedance

    seedance._warned_extras.clear()
    with caplog.at_level("WARNING", logger=seedance.__name__):
        settings("http://h", timout=60, callback_secert="s3cr3t-value-never-logged")
        settings("http://h", timout=60)  # the same connection again: no second warning

    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2
    assert warnings[0].startswith("Connection 'c': extra 'callback_secert' is not a Seedance setting")
    assert "(did you mean 'callback_secret'?)" in warnings[0]
    assert warnings[1].startswith("Connection 'c': extra 'timout' is not a Seedance setting and is ignored")
    assert "(did you mean 'timeout'?)" in warnings[1]
    assert "s3cr3t-value-never-logged" not in caplog.text


def test_known_extras_raise_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    from airflow_provider_seedance.hooks import seedance

    seedance._warned_extras.clear()
    with caplog.at_level("WARNING", logger=seedance.__name__):
        settings("http://h", timeout=60, proxy="http://proxy:3128", status_reads_per_second=5, trust_env=True)

    assert not [r for r in caplog.records if "not a Seedance setting" in r.getMessage()]


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_the_sync_session_keeps_connections_alive_as_httphook_does(
    monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    """The keep-alive adapter is built with the sync session, not with every hook (a trigger
    builds one per start and never sends a sync request); the session still has it."""
    from requests_toolbelt.adapters.socket_options import TCPKeepAliveAdapter

    from airflow_provider_seedance.hooks.seedance import SeedanceHook

    monkeypatch.setenv(
        "AIRFLOW_CONN_SEEDANCE_KEEPALIVE",
        f'{{"conn_type": "seedance", "host": "{scheme}://api.example.com", "password": "sk-key-123"}}',
    )
    hook = SeedanceHook("seedance_keepalive")
    adapter = hook._session.get_adapter(f"{scheme}://api.example.com/v1/status")
    assert isinstance(adapter, TCPKeepAliveAdapter)
