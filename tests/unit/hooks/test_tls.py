"""One TLS decision for both sides of the hook, and errors that name a certificate problem.

A generate POST (requests) that trusts a private CA while the deferred wait (aiohttp) does
not buys a video nobody can wait for. These tests pin the decision (extra ``verify`` >
``REQUESTS_CA_BUNDLE`` > ``CURL_CA_BUNDLE`` > certifi), that both sides get it, and that a
rejected certificate is reported as such (nothing sent, which CA setting to change), never
as "connection refused".
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest
import requests
from airflow.sdk import Connection
from urllib3.exceptions import MaxRetryError
from urllib3.exceptions import SSLError as Urllib3SSLError

from airflow_provider_seedance.exceptions import (
    CreationState,
    SeedanceConfigurationError,
    SeedanceConnectionError,
)
from airflow_provider_seedance.hooks import tls as tls_module
from airflow_provider_seedance.hooks.seedance import ConnectionSettings, SeedanceHook
from airflow_provider_seedance.hooks.tls import (
    DEFAULT_TLS,
    TlsSettings,
    cached_ssl_context,
    default_ca_bundle,
    ssl_context,
    tls_settings,
)
from airflow_provider_seedance.hooks.transport import aiohttp_failure, requests_failure
from tests.conftest import connection_json
from tests.tls_certs import PrivateCA, make_private_ca
from tests.unit.hooks.test_hook_submit_status import REQUEST, ScriptedAdapter, accepted

GENERATE = "POST /v1/generate"
STATUS = "GET /v1/status"
BASE = "https://seedance.corp.test"


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> PrivateCA:
    return make_private_ca(tmp_path_factory.mktemp("ca"))


# ----------------------------------------------------------------------------- the decision
@pytest.mark.parametrize(
    ("extra", "environ", "expected"),
    [
        ({}, {}, (True, None, "certifi's CA bundle (the default)")),
        ({}, {"REQUESTS_CA_BUNDLE": "/r.pem"}, (True, "/r.pem", "REQUESTS_CA_BUNDLE")),
        ({}, {"CURL_CA_BUNDLE": "/c.pem"}, (True, "/c.pem", "CURL_CA_BUNDLE")),
        (
            {},
            {"REQUESTS_CA_BUNDLE": "/r.pem", "CURL_CA_BUNDLE": "/c.pem"},
            (True, "/r.pem", "REQUESTS_CA_BUNDLE"),
        ),
        ({}, {"REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": "/c.pem"}, (True, "/c.pem", "CURL_CA_BUNDLE")),
        (
            {"verify": "/conn.pem"},
            {"REQUESTS_CA_BUNDLE": "/r.pem"},
            (True, "/conn.pem", "the connection's extra 'verify'"),
        ),
        ({"verify_ssl": "/conn.pem"}, {}, (True, "/conn.pem", "the connection's extra 'verify'")),
        ({"verify": True}, {"REQUESTS_CA_BUNDLE": "/r.pem"}, (True, "/r.pem", "REQUESTS_CA_BUNDLE")),
        ({"verify": "true"}, {"CURL_CA_BUNDLE": "/c.pem"}, (True, "/c.pem", "CURL_CA_BUNDLE")),
        ({"verify": False}, {"REQUESTS_CA_BUNDLE": "/r.pem"}, (False, None, DEFAULT_TLS.source)),
        ({"verify": "False"}, {"REQUESTS_CA_BUNDLE": "/r.pem"}, (False, None, DEFAULT_TLS.source)),
        ({"trust_env": False}, {"REQUESTS_CA_BUNDLE": "/r.pem"}, (True, None, DEFAULT_TLS.source)),
        (
            {"trust_env": "false", "verify": "/conn.pem"},
            {},
            (True, "/conn.pem", "the connection's extra 'verify'"),
        ),
    ],
)
def test_precedence_is_connection_then_requests_env_then_curl_env_then_certifi(
    extra: dict[str, object], environ: dict[str, str], expected: tuple[bool, str | None, str]
) -> None:
    decided = tls_settings("c", extra, environ)
    assert (decided.verify, decided.ca_bundle, decided.source) == expected


@pytest.mark.parametrize(("value", "field"), [(3, "verify"), ({"a": 1}, "verify"), ("maybe", "trust_env")])
def test_a_verify_or_trust_env_extra_of_another_shape_is_a_configuration_error(
    value: object, field: str
) -> None:
    with pytest.raises(SeedanceConfigurationError, match=rf"extra '{field}' must be"):
        tls_settings("c", {field: value}, {})


def test_requests_gets_the_decided_bundle_and_never_a_bare_true() -> None:
    # A bare True would let requests read the environment again on its own.
    assert TlsSettings().requests_verify() == default_ca_bundle()
    assert TlsSettings(ca_bundle="/x.pem", source="REQUESTS_CA_BUNDLE").requests_verify() == "/x.pem"
    assert TlsSettings(verify=False).requests_verify() is False


def test_the_connection_settings_carry_the_decision_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/corp-ca.pem")
    conn = Connection(conn_id="c", conn_type="seedance", host=BASE, password="sk-key-123")
    assert ConnectionSettings.from_connection(conn, {}).tls == TlsSettings(
        ca_bundle="/etc/corp-ca.pem", source="REQUESTS_CA_BUNDLE"
    )
    assert ConnectionSettings.from_connection(conn, {"verify": False}).tls.verify is False


# ----------------------------------------------------------------------------- the contexts
def test_the_async_context_trusts_exactly_the_decided_bundle(private_ca: PrivateCA) -> None:
    context = ssl_context(TlsSettings(ca_bundle=str(private_ca.ca_file), source="REQUESTS_CA_BUNDLE"))
    subjects = [dict(item[0] for item in ca["subject"]) for ca in context.get_ca_certs()]
    assert subjects == [{"commonName": "Seedance test private CA"}]
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname


def test_the_default_context_is_certifis_bundle_like_requests() -> None:
    context = ssl_context(DEFAULT_TLS)
    expected = ssl.create_default_context(cafile=default_ca_bundle())
    assert len(context.get_ca_certs()) == len(expected.get_ca_certs()) > 0


def test_verify_off_turns_checks_off_on_the_async_side_too() -> None:
    context = ssl_context(TlsSettings(verify=False))
    assert context.verify_mode is ssl.CERT_NONE and not context.check_hostname


def test_a_context_is_built_once_per_settings(private_ca: PrivateCA) -> None:
    settings = TlsSettings(ca_bundle=str(private_ca.ca_file), source="x")
    tls_module._CONTEXTS.pop(settings, None)
    assert cached_ssl_context(settings) is None
    built = ssl_context(settings)
    assert cached_ssl_context(settings) is built and ssl_context(settings) is built


def test_an_unreadable_ca_bundle_is_a_configuration_error_naming_its_source(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(SeedanceConfigurationError) as caught:
        ssl_context(TlsSettings(ca_bundle=str(missing), source="REQUESTS_CA_BUNDLE"))
    text = str(caught.value)
    assert "REQUESTS_CA_BUNDLE" in text and str(missing) in text and "nothing was sent" in text
    assert caught.value.creation is CreationState.NOT_SENT


def test_the_hook_resolving_its_connection_fails_on_an_unreadable_bundle_before_any_post(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_TLS_BROKEN",
        connection_json(BASE, "sk-k", verify=f"{tmp_path}/x.pem"),
    )
    hook = SeedanceHook("tls_broken")
    with pytest.raises(SeedanceConfigurationError, match="extra 'verify'"):
        hook.submit_request(REQUEST)


def test_the_async_side_resolves_the_same_settings_and_context_off_the_loop(
    monkeypatch: pytest.MonkeyPatch, private_ca: PrivateCA
) -> None:
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(private_ca.ca_file))
    monkeypatch.setenv("AIRFLOW_CONN_TLS_ASYNC", connection_json(BASE, "sk-k"))
    decided = TlsSettings(ca_bundle=str(private_ca.ca_file), source="REQUESTS_CA_BUNDLE")
    tls_module._CONTEXTS.pop(decided, None)
    built_on: list[bool] = []
    real_build = tls_module._build

    def spy(tls: TlsSettings) -> ssl.SSLContext:
        try:
            asyncio.get_running_loop()
            built_on.append(True)  # on the event loop: file I/O there would block every trigger
        except RuntimeError:
            built_on.append(False)
        return real_build(tls)

    monkeypatch.setattr(tls_module, "_build", spy)

    async def resolve() -> tuple[TlsSettings, ssl.SSLContext | bool]:
        async with SeedanceHook("tls_async") as hook:
            assert hook._aio_settings is not None and hook._aio_session is not None
            connector = hook._aio_session.connector
            assert isinstance(connector, aiohttp.TCPConnector)
            return hook._aio_settings.tls, connector._ssl  # the context every status read uses

    used, context = asyncio.run(resolve())
    assert used == decided == SeedanceHook("tls_async").settings.tls
    assert context is ssl_context(decided)
    assert built_on == [False]


def test_the_generate_post_is_sent_with_the_decided_verify_not_the_environments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/somewhere/else.pem")
    hook = SeedanceHook("seedance_fake", retry_min_wait=0.0, retry_max_wait=0.0)
    tls = TlsSettings(ca_bundle="/conn/ca.pem", source="the connection's extra 'verify'")
    hook.__dict__["settings"] = ConnectionSettings(BASE, "sk-secret", 2.0, 7.0, None, tls=tls)
    session = requests.Session()
    adapter = ScriptedAdapter([accepted()])
    session.mount("https://", adapter)
    hook.__dict__["_session"] = session

    hook.submit_request(REQUEST)

    assert adapter.kwargs[0]["verify"] == "/conn/ca.pem"


# ----------------------------------------------------------------------------- the errors
def _cert_error(
    message: str = "self-signed certificate in certificate chain",
) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(
        1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {message}"
    )
    error.verify_message = message
    error.reason = "CERTIFICATE_VERIFY_FAILED"
    return error


def _key() -> SimpleNamespace:
    return SimpleNamespace(host="seedance.corp.test", port=443, ssl=True)


CORP_CA = TlsSettings(ca_bundle="/etc/corp-ca.pem", source="REQUESTS_CA_BUNDLE")


def _aiohttp_cert() -> BaseException:
    return aiohttp.ClientConnectorCertificateError(_key(), _cert_error())  # type: ignore[arg-type]


def _requests_cert() -> BaseException:
    cause = Urllib3SSLError(_cert_error())
    return requests.exceptions.SSLError(MaxRetryError(None, "/v1/generate", cause))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "failure",
    [
        lambda: aiohttp_failure(GENERATE, BASE, _aiohttp_cert(), tls=CORP_CA),
        lambda: requests_failure(GENERATE, BASE, _requests_cert(), tls=CORP_CA),  # type: ignore[arg-type]
    ],
    ids=["aiohttp", "requests"],
)
def test_a_rejected_certificate_on_the_post_says_tls_nothing_sent_and_which_ca_setting(failure) -> None:
    err = failure()
    assert isinstance(err, SeedanceConnectionError) and err.creation is CreationState.NOT_SENT
    text = str(err)
    assert "TLS certificate was not accepted: self-signed certificate in certificate chain" in text
    assert "checked against REQUESTS_CA_BUNDLE = /etc/corp-ca.pem" in text
    assert "nothing was sent and nothing was spent" in text
    assert "set the connection's extra 'verify' (or REQUESTS_CA_BUNDLE) to the file of the CA" in text
    assert "refused" not in text and "service is running" not in text


@pytest.mark.parametrize(
    "failure",
    [
        lambda: aiohttp_failure(STATUS, BASE, _aiohttp_cert(), tls=CORP_CA),
        lambda: requests_failure(STATUS, BASE, _requests_cert(), tls=CORP_CA),  # type: ignore[arg-type]
    ],
    ids=["aiohttp", "requests"],
)
def test_a_rejected_certificate_on_a_status_read_says_tls_and_which_ca_setting(failure) -> None:
    err = failure()
    text = str(err)
    assert isinstance(err, SeedanceConnectionError) and not err.sent
    assert "TLS certificate was not accepted" in text and "Reading a status spends nothing" in text
    assert "Set the connection's extra 'verify' (or REQUESTS_CA_BUNDLE)" in text
    assert "refused" not in text


def test_a_certificate_for_another_host_points_at_the_base_url_not_the_ca() -> None:
    exc = aiohttp.ClientConnectorCertificateError(
        _key(),  # type: ignore[arg-type]
        _cert_error("Hostname mismatch, certificate is not valid for 'seedance.corp.test'."),
    )
    text = str(aiohttp_failure(GENERATE, BASE, exc, tls=CORP_CA))
    assert "its host must be a name (or IP address) the server's certificate names" in text
    assert "nothing was sent" in text


def test_a_plain_http_server_behind_an_https_url_says_so() -> None:
    wrong = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    wrong.reason = "WRONG_VERSION_NUMBER"
    exc = aiohttp.ClientConnectorSSLError(_key(), wrong)  # type: ignore[arg-type]
    err = aiohttp_failure(GENERATE, BASE, exc)
    assert err.creation is CreationState.NOT_SENT
    assert "does not speak TLS there" in str(err) and "it may need http://, not https://" in str(err)
    # The advice is a statement ending the sentence once (it read "... https://?." before).
    assert "?." not in str(err) and str(err).endswith("https://.")


def test_other_handshake_failures_are_tls_failures_not_refusals() -> None:
    odd = ssl.SSLError(1, "[SSL: SSLV3_ALERT_HANDSHAKE_FAILURE] handshake failure")
    odd.reason = "SSLV3_ALERT_HANDSHAKE_FAILURE"
    err = aiohttp_failure(STATUS, BASE, aiohttp.ClientConnectorSSLError(_key(), odd))  # type: ignore[arg-type]
    assert "TLS handshake failed (SSLV3_ALERT_HANDSHAKE_FAILURE)" in str(err)
    assert "refused" not in str(err)


def test_verify_off_is_named_when_a_certificate_error_still_happens() -> None:
    text = str(aiohttp_failure(STATUS, BASE, _aiohttp_cert(), tls=TlsSettings(verify=False)))
    assert "certificate checks are off" in text
