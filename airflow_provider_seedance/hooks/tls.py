"""How the service's TLS certificate is checked: one decision for both sides of the hook.

The generate request (sync, ``requests``) and the status reads of a deferred wait (async,
``aiohttp``) must trust the same certificates: if only the paying side trusted a private CA
(or a TLS-inspecting proxy), a generation would be bought and then never be waited for.
:func:`tls_settings` decides once, with ``requests``' own precedence:

1. the connection's extra ``verify`` (``false`` turns checking off; a path names the CA
   bundle file or directory; ``true`` is the same as unset);
2. ``REQUESTS_CA_BUNDLE``, then ``CURL_CA_BUNDLE`` (skipped when the extra ``trust_env`` is
   false, as requests skips them);
3. ``certifi``'s bundle, the one requests uses by default.

Both sides then use exactly that: requests gets it as its per-request ``verify`` (so the
environment is not consulted a second time), aiohttp gets the :func:`ssl_context` built from
it. The extra ``cert`` (a client certificate file, or ``[cert, key]``) is applied to both too.
"""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_seedance.exceptions import SeedanceConfigurationError

#: Environment variables requests reads for its CA bundle, in its order.
CA_BUNDLE_ENV_VARS = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
#: Where the CA bundle came from when nothing else names one.
DEFAULT_SOURCE = "certifi's CA bundle (the default)"

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


@dataclass(frozen=True)
class TlsSettings:
    """What checks the service's certificate. Hashable: one :func:`ssl_context` per value."""

    #: False: certificates are not checked (extra ``verify: false``), on both sides.
    verify: bool = True
    #: CA bundle file or directory; None: certifi's bundle.
    ca_bundle: str | None = None
    #: Where ``ca_bundle`` came from, for error texts (``REQUESTS_CA_BUNDLE``, the extra…).
    source: str = DEFAULT_SOURCE
    #: Client certificate (extra ``cert``): a PEM file, or ``(cert file, key file)``.
    client_cert: str | tuple[str, str] | None = None

    def requests_verify(self) -> bool | str:
        """The per-request ``verify`` for requests: False, or the CA bundle path to use."""
        if not self.verify:
            return False
        return self.ca_bundle or default_ca_bundle()

    def describe(self) -> str:
        """Where certificates are checked against, in words (for error texts)."""
        if not self.verify:
            return "certificate checks are off (the connection's extra 'verify' is false)"
        if self.ca_bundle is None:
            return f"checked against {self.source}"
        return f"checked against {self.source} = {self.ca_bundle}"


#: Nothing named: certifi's bundle, certificates checked.
DEFAULT_TLS = TlsSettings()


def default_ca_bundle() -> str:
    """The CA bundle requests uses when nothing names one (certifi's)."""
    from requests.utils import DEFAULT_CA_BUNDLE_PATH

    return str(DEFAULT_CA_BUNDLE_PATH)


def tls_settings(
    conn_id: str | None, extra: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> TlsSettings:
    """Decide what checks the service's certificate (see the module doc for the precedence).

    Reads only the extra and the environment (no file I/O): :func:`ssl_context` loads files.
    """
    environ = os.environ if environ is None else environ
    client_cert = _client_cert(conn_id, extra.get("cert"))
    raw = extra.get("verify", extra.get("verify_ssl"))
    verify = _verify_value(conn_id, raw)
    if verify is False:
        return TlsSettings(verify=False, client_cert=client_cert)
    if isinstance(verify, str):
        source = "the connection's extra 'verify'"
        return TlsSettings(ca_bundle=verify, source=source, client_cert=client_cert)
    if trusts_environment(conn_id, extra):
        for name in CA_BUNDLE_ENV_VARS:
            value = environ.get(name)
            if value:  # requests skips an empty value too
                return TlsSettings(ca_bundle=value, source=name, client_cert=client_cert)
    return TlsSettings(client_cert=client_cert)


def trusts_environment(conn_id: str | None, extra: Mapping[str, Any]) -> bool:
    """The extra ``trust_env`` (HttpHook's): false keeps the environment's proxies and CA
    bundles out, for the POST and the status reads alike."""
    return _verify_value(conn_id, extra.get("trust_env"), field="trust_env") is not False


def _verify_value(conn_id: str | None, value: Any, *, field: str = "verify") -> bool | str | None:
    """An extra's boolean-or-path value: None (unset), a bool, or a path (``verify`` only)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        if field == "verify":
            return value.strip()
    raise SeedanceConfigurationError(
        f"Connection {conn_id!r}: extra {field!r} must be "
        + ("true, false or the path of a CA bundle file" if field == "verify" else "true or false")
        + f", got {value!r}."
    )


def _client_cert(conn_id: str | None, value: Any) -> str | tuple[str, str] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, str) for v in value):
        return (value[0], value[1])
    raise SeedanceConfigurationError(
        f"Connection {conn_id!r}: extra 'cert' must be a client certificate file path or "
        f"[certificate file, key file], got {type(value).__name__}."
    )


# ---------------------------------------------------------------------------- contexts
#: Built contexts, per settings value. Few distinct values exist in a process; the cap only
#: keeps a pathological one (settings churning) from growing it without end.
_CONTEXTS: dict[TlsSettings, ssl.SSLContext] = {}
_CONTEXTS_CAP = 64
_CONTEXTS_LOCK = threading.Lock()


def cached_ssl_context(tls: TlsSettings) -> ssl.SSLContext | None:
    """The context :func:`ssl_context` built for ``tls`` already, else None (no I/O)."""
    return _CONTEXTS.get(tls)


def ssl_context(tls: TlsSettings) -> ssl.SSLContext:
    """The ``ssl.SSLContext`` for aiohttp that trusts exactly what requests trusts for ``tls``.

    Built once per value and cached. Building reads files (blocking): call it off the event
    loop (``asyncio.to_thread``), as the hook does when it resolves a connection. An
    unreadable CA bundle or client certificate is a :class:`SeedanceConfigurationError`,
    found before anything is sent.
    """
    context = _CONTEXTS.get(tls)
    if context is not None:
        return context
    context = _build(tls)
    with _CONTEXTS_LOCK:
        if len(_CONTEXTS) >= _CONTEXTS_CAP:
            _CONTEXTS.clear()
        return _CONTEXTS.setdefault(tls, context)


def _build(tls: TlsSettings) -> ssl.SSLContext:
    if not tls.verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        bundle = tls.ca_bundle or default_ca_bundle()
        try:
            if os.path.isdir(bundle):  # requests: a directory is a CA path, a file a CA file
                context = ssl.create_default_context(capath=bundle)
            else:
                context = ssl.create_default_context(cafile=bundle)
        except (OSError, ssl.SSLError) as exc:
            raise SeedanceConfigurationError(
                f"The CA bundle from {tls.source} ({bundle}) could not be loaded "
                f"({type(exc).__name__}: {exc.strerror or exc}); nothing was sent. Point it at a "
                "readable PEM file with the CA certificate(s) that signed the service's certificate."
            ) from None
    if tls.client_cert is not None:
        certfile, keyfile = tls.client_cert if isinstance(tls.client_cert, tuple) else (tls.client_cert, None)
        try:
            context.load_cert_chain(certfile, keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise SeedanceConfigurationError(
                f"The client certificate of the connection's extra 'cert' ({certfile}) could not be "
                f"loaded ({type(exc).__name__}: {exc.strerror or exc}); nothing was sent."
            ) from None
    return context
