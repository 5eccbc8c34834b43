"""Red team #18: the next step after a rejected certificate must match what was wrong.

A base URL given as an IP address the certificate does not name fails with OpenSSL's
"IP address mismatch" (not "Hostname mismatch"): the CA is right, so telling the user to set
the extra 'verify' to the CA file sends them the wrong way. Reproduced for real with
``https://127.0.0.2:PORT`` against the emulator bound to 0.0.0.0 with a certificate for
localhost/127.0.0.1 and ``verify`` = that CA.
"""

from __future__ import annotations

import ssl

from airflow_provider_seedance.hooks.tls import TlsSettings
from airflow_provider_seedance.hooks.transport import _tls_handshake_failure


def _mismatch(message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(
        1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {message}"
    )
    error.verify_message = message  # type: ignore[attr-defined]
    error.verify_code = 64  # type: ignore[attr-defined]
    return error


def test_an_ip_address_the_certificate_does_not_name_points_at_the_base_url_not_the_ca() -> None:
    tls = TlsSettings(ca_bundle="/etc/ssl/corp-ca.pem", source="the connection's extra 'verify'")
    error = _tls_handshake_failure(
        "POST /v1/generate",
        "https://127.0.0.2:8443",
        _mismatch("IP address mismatch, certificate is not valid for '127.0.0.2'."),
        tls,
    )

    assert error is not None
    assert "check the connection's base URL" in str(error), str(error)


def test_a_host_name_the_certificate_does_not_name_points_at_the_base_url() -> None:
    # Holds today: the guard this finding is about, for comparison.
    error = _tls_handshake_failure(
        "POST /v1/generate",
        "https://seedance.internal",
        _mismatch("Hostname mismatch, certificate is not valid for 'seedance.internal'."),
        TlsSettings(),
    )

    assert error is not None and "check the connection's base URL" in str(error)
