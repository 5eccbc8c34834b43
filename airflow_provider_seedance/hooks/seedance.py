"""SeedanceHook: the connection, the transport and the retry policy for the Seedance API.

Two rules shape this module (see the API contract's money rules):

* ``POST /v1/generate`` costs money and is not idempotent. It is sent at most once, and
  repeated only when the request provably never reached the server (connection refused,
  DNS failure, connect timeout). How an answer (or its absence) maps to "nothing was
  created" or "a generation may exist" is decided by transport facts in
  :mod:`airflow_provider_seedance.hooks.transport`.
* ``GET /v1/status`` is safe: it is retried with exponential backoff and jitter on 5xx,
  429 (honouring ``Retry-After``), unreadable answers and network errors, by the one
  :class:`~airflow_provider_seedance.hooks.retry.RetryPolicy` the hook owns.

The sync path (workers) is built on ``HttpHook``'s session machinery; the async path
(triggers) resolves the connection without blocking and keeps one aiohttp session for as
long as the caller holds the hook open (``async with hook: ...``). Both honour the
connection's ``proxy`` extra, and otherwise the standard proxy environment variables
(``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``): requests with ``trust_env``, aiohttp by
aiohttp's own environment rule, read once per resolved connection. A connection's proxy
wins over the environment in both. Both check the service's TLS certificate against the
same CA bundle, decided once by :func:`~airflow_provider_seedance.hooks.tls.tls_settings`
(extra ``verify``, else ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``, else certifi's).
"""

from __future__ import annotations

import asyncio
import difflib
import functools
import logging
import os
import platform
import ssl
import time
import unicodedata
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import requests
import tenacity
from aiohttp.helpers import get_env_proxy_for_url
from airflow.providers.http.hooks.http import HttpHook
from requests_toolbelt.adapters.socket_options import TCPKeepAliveAdapter
from yarl import URL

from airflow_provider_seedance import __version__, metrics
from airflow_provider_seedance.callbacks import CallbackSettings, callback_settings
from airflow_provider_seedance.exceptions import (
    CreationState,
    SeedanceAuthError,
    SeedanceBadRequestError,
    SeedanceConfigurationError,
    SeedanceConnectionError,
    SeedanceDownloadError,
    SeedanceError,
    SeedanceTaskNotFoundError,
    SeedanceTimeoutError,
    SeedanceValidationError,
)
from airflow_provider_seedance.hooks.delivery import (
    DownloadResult,
    allowed_host_of,
    as_storage_path,
    download_video,
    video_size_cap,
)
from airflow_provider_seedance.hooks.per_loop import PerLoop
from airflow_provider_seedance.hooks.rate_cap import STATUS_READ_CAPS, parse_status_rate
from airflow_provider_seedance.hooks.retry import (
    DEFAULT_MAX_OUTAGE,
    RETRY_AFTER_CAP,
    RetryPolicy,
    deadline_within_outage,
    is_transient,
    retry_after_floor,
    sleep_until_deadline,
)
from airflow_provider_seedance.hooks.tls import (
    DEFAULT_TLS,
    TlsSettings,
    cached_ssl_context,
    ssl_context,
    tls_settings,
    trusts_environment,
)
from airflow_provider_seedance.hooks.transport import (
    MAX_BODY_BYTES,
    PROXY_AUTH_REQUIRED,
    aiohttp_failure,
    aread_capped,
    generate_answer,
    mask_url,
    proxy_wants_credentials,
    read_capped,
    requests_failure,
    status_answer,
)
from airflow_provider_seedance.hosts import url_for_logs
from airflow_provider_seedance.models import (
    UNREAD_STATUS,
    GenerationRequest,
    SeedanceTask,
    TaskStatus,
    estimate_credits,
    format_usd,
)

if TYPE_CHECKING:
    from aiolimiter import AsyncLimiter
    from airflow.sdk import Connection, ObjectStoragePath

__all__ = [
    "DEFAULT_MAX_OUTAGE",
    "MAX_BODY_BYTES",
    "RETRY_AFTER_CAP",
    "ConnectionSettings",
    "SeedanceHook",
    "is_retryable_status_error",
    "retry_after_floor",
]

DEFAULT_BASE_URL = "https://seedanceapi.org"
GENERATE_PATH = "/v1/generate"
STATUS_PATH = "/v1/status"
#: Seconds to wait for a TCP connection and for an answer, unless the connection's extra says.
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 30.0
#: Connect-level attempts of one generate request; only ones that provably never left are repeated.
GENERATE_SEND_ATTEMPTS = 3
#: Task id used by the credit-free connection test; it never exists.
PROBE_TASK_ID = "airflow-provider-seedance-connection-test"


def _user_agent() -> str:
    try:
        from airflow import __version__ as airflow_version
    except ImportError:  # pragma: no cover - airflow is a dependency
        airflow_version = "unknown"
    return (
        f"airflow-provider-seedance/{__version__} apache-airflow/{airflow_version} "
        f"python/{platform.python_version()}"
    )


USER_AGENT = _user_agent()


@dataclass(frozen=True)
class ConnectionSettings:
    """What a ``seedance`` connection resolves to. ``repr``/``str`` never show the key or a
    proxy's password."""

    base_url: str
    api_key: str
    connect_timeout: float
    read_timeout: float
    proxy: str | None
    #: Cap on the status reads of this connection per event loop (extra
    #: ``status_reads_per_second``; :mod:`~airflow_provider_seedance.hooks.rate_cap`); None: no cap.
    status_reads_per_second: float | None = None
    #: Extras ``callback_secret`` and ``callback_base_url`` (:mod:`~airflow_provider_seedance.callbacks`);
    #: None: callbacks off.
    callbacks: CallbackSettings | None = None
    #: What checks the service's certificate, for both the sync and the async side
    #: (:mod:`~airflow_provider_seedance.hooks.tls`: extra ``verify``, ``REQUESTS_CA_BUNDLE``…).
    tls: TlsSettings = DEFAULT_TLS
    #: The extra ``trust_env``: False keeps the environment's proxies (and CA bundles) out.
    trust_env: bool = True

    def __repr__(self) -> str:
        return (
            f"ConnectionSettings(base_url={mask_url(self.base_url)!r}, api_key=***, "
            f"proxy={mask_url(self.proxy)!r}, status_reads_per_second={self.status_reads_per_second!r}, "
            f"callbacks={'on' if self.callbacks else 'off'})"
        )

    __str__ = __repr__

    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.api_key}",
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }

    def url(self, path: str) -> str:
        return self.base_url + path

    def requests_proxies(self) -> dict[str, str] | None:
        """Per-request ``proxies`` for requests: per request, so the connection's proxy wins
        over the environment's (a session-level one would lose to ``HTTPS_PROXY``)."""
        return {"http": self.proxy, "https": self.proxy} if self.proxy else None

    def client_session(self, tls_context: ssl.SSLContext) -> aiohttp.ClientSession:
        """A new aiohttp session for these settings: auth headers, connect and total timeouts,
        and ``tls_context`` (:func:`~airflow_provider_seedance.hooks.tls.ssl_context` of
        :attr:`tls`: the certificates the sync side trusts, built off the event loop).

        Not ``trust_env``: with it aiohttp looks up ``~/.netrc`` and the proxy environment in a
        worker thread on *every* request (two thread hops per status read, most of a poll's
        CPU at 1,000 triggers); :attr:`aio_proxy` reads the environment once instead.
        """
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=tls_context),
            headers=self.headers(),
            timeout=aiohttp.ClientTimeout(
                sock_connect=self.connect_timeout, total=self.connect_timeout + self.read_timeout
            ),
            trust_env=False,
        )

    @cached_property
    def aio_proxy(self) -> tuple[str | None, aiohttp.BasicAuth | None]:
        """Proxy URL and credentials of the async status reads: the connection's proxy, else
        the environment's for the base URL (``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``, read
        by aiohttp's own rule), looked up once per resolved connection."""
        if self.proxy:
            return self.proxy, None
        if not self.trust_env:
            return None, None  # the extra trust_env: false, as the POST (requests) does
        try:
            proxy, auth = get_env_proxy_for_url(URL(self.base_url))
        except LookupError:
            return None, None
        return str(proxy), auth

    @classmethod
    def from_connection(cls, conn: Connection, extra: Mapping[str, Any] | None = None) -> ConnectionSettings:
        """Read a connection: ``host`` = base URL, ``password`` = API key, extras = settings.

        ``host`` may carry a path (``http://h/v1``) and ``port`` may be given apart: the port
        goes into the authority (``http://h:8765``) and a trailing ``/v1`` is dropped, since
        the endpoints carry it. ``extra`` is the already decoded extra (async callers decode
        it off the event loop).
        """
        conn_id = conn.conn_id
        host = (conn.host or "").strip() or DEFAULT_BASE_URL
        if "://" not in host:
            if conn.schema in ("http", "https"):
                host = f"{conn.schema}://{host}"
            else:
                raise SeedanceConfigurationError(
                    f"Connection {conn_id!r}: base URL {host!r} has no scheme. Use e.g. {DEFAULT_BASE_URL!r}."
                )
        parts = urlsplit(host)
        try:
            has_port = parts.port is not None
        except ValueError:  # "http://h:abc"
            has_port, parts = False, parts._replace(netloc="")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SeedanceConfigurationError(
                f"Connection {conn_id!r}: base URL {mask_url(host)!r} is not an http(s) URL. "
                f"Use e.g. {DEFAULT_BASE_URL!r}."
            )
        netloc = parts.netloc
        if conn.port and not has_port:
            netloc = f"{netloc}:{conn.port}"
        path = parts.path.rstrip("/")
        if path.endswith("/v1"):  # the guide writes the base URL with /v1
            path = path[: -len("/v1")]
        base_url = _sendable_base_url(conn_id, urlunsplit((parts.scheme, netloc, path, "", "")))
        api_key = (conn.password or "").strip()
        if not api_key:
            raise SeedanceConfigurationError(
                f"Connection {conn_id!r} has no API key: put it in the connection's password field."
            )
        _check_header_safe_key(conn_id, api_key)
        if extra is None:
            extra = conn.extra_dejson or {}
        connect_timeout, read_timeout = _parse_timeout(conn_id, extra.get("timeout"))
        proxy = extra.get("proxy") or extra.get("proxies")
        if isinstance(proxy, Mapping):
            proxy = proxy.get(parts.scheme) or proxy.get("https") or proxy.get("http")
        if proxy is not None and not isinstance(proxy, str):
            raise SeedanceConfigurationError(
                f"Connection {conn_id!r}: extra 'proxy' must be a URL string, got {type(proxy).__name__}."
            )
        _check_proxy_scheme(conn_id, proxy)
        _warn_unknown_extras(conn_id, extra)
        rate = parse_status_rate(conn_id, extra.get("status_reads_per_second"))
        callbacks = callback_settings(conn_id, extra)
        tls = tls_settings(conn_id, extra)
        trust_env = trusts_environment(conn_id, extra)
        return cls(
            base_url, api_key, connect_timeout, read_timeout, proxy or None, rate, callbacks, tls, trust_env
        )


#: Every extra a ``seedance`` connection reads (docs/connection.md, docs/budgets.md).
KNOWN_EXTRAS = frozenset(
    {
        "timeout",
        "proxy",
        "proxies",
        "status_reads_per_second",
        "callback_secret",
        "callback_base_url",
        "emulator",
        "verify",
        "verify_ssl",
        "cert",
        "trust_env",
        "max_video_bytes",
        "budget",
    }
)
_warned_extras: set[tuple[str | None, str]] = set()
_log = logging.getLogger(__name__)


def _warn_unknown_extras(conn_id: str | None, extra: Mapping[str, Any]) -> None:
    """Warn (once per connection and key, per process) about an extra no setting reads: a typo
    such as ``timout`` would otherwise be ignored without a word. Only the key is named, never
    its value (it could be a secret)."""
    for key in sorted(str(k) for k in extra if str(k) not in KNOWN_EXTRAS):
        if (conn_id, key) in _warned_extras:
            continue
        _warned_extras.add((conn_id, key))
        close = difflib.get_close_matches(key, sorted(KNOWN_EXTRAS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        _log.warning(
            "Connection %r: extra %r is not a Seedance setting and is ignored%s. The extras read are: %s.",
            conn_id,
            key,
            hint,
            ", ".join(sorted(KNOWN_EXTRAS)),
        )


def _sendable_base_url(conn_id: str | None, base_url: str) -> str:
    """``base_url`` if the HTTP clients can send to it. Refused here, before any request: a URL
    the HTTP library only rejects while sending would read as "the request may have arrived"."""
    hostname = urlsplit(base_url).hostname or ""
    problem = "an empty label in the host name" if "" in hostname.rstrip(".").split(".") else None
    try:
        requests.models.PreparedRequest().prepare_url(base_url, None)
    except (requests.exceptions.RequestException, ValueError) as exc:
        problem = str(exc)
    if problem is not None:
        raise SeedanceConfigurationError(
            f"Connection {conn_id!r}: base URL {mask_url(base_url)!r} cannot be sent to ({problem}). "
            f"Use e.g. {DEFAULT_BASE_URL!r}."
        )
    return base_url


#: Proxy schemes both sides can use (requests and aiohttp): a SOCKS proxy would carry the POST
#: (requests with PySocks) while every status read fails, so it is refused before anything.
PROXY_SCHEMES = ("http", "https")


def _check_proxy_scheme(conn_id: str | None, proxy: str | None) -> None:
    if not proxy:
        return
    scheme = proxy.split("://", 1)[0].lower() if "://" in proxy else ""
    if scheme not in PROXY_SCHEMES:
        raise SeedanceConfigurationError(
            f"Connection {conn_id!r}: extra 'proxy' must be an http:// or https:// proxy URL (the status "
            f"reads cannot use a {scheme or 'scheme-less'} proxy), got {mask_url(proxy)!r}. Nothing was sent."
        )


def _check_header_safe_key(conn_id: str | None, api_key: str) -> None:
    """An API key an ``Authorization`` header can carry: visible ASCII only. A pasted space or
    invisible character fails here, naming its position (never the key), instead of inside the
    HTTP library with an error that cannot say whether anything was sent."""
    for position, char in enumerate(api_key, start=1):
        if not 33 <= ord(char) <= 126:
            raise SeedanceConfigurationError(
                f"Connection {conn_id!r}: the API key (the connection's password) has a character an "
                f"HTTP header cannot carry at position {position} "
                f"({unicodedata.name(char, f'U+{ord(char):04X}')}). Paste the key again, without spaces "
                "or invisible characters."
            )


def _parse_timeout(conn_id: str | None, value: Any) -> tuple[float, float]:
    if value in (None, ""):
        return DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise SeedanceConfigurationError(
            f"Connection {conn_id!r}: extra 'timeout' must be a number of seconds, got {value!r}."
        ) from None
    if seconds <= 0:
        raise SeedanceConfigurationError(f"Connection {conn_id!r}: extra 'timeout' must be > 0.")
    return min(DEFAULT_CONNECT_TIMEOUT, seconds), seconds


#: Kept for callers of earlier versions: the transport's status reader.
parse_envelope = status_answer


def is_retryable_status_error(exc: BaseException) -> bool:
    """Alias of :func:`~airflow_provider_seedance.hooks.retry.is_transient`."""
    return is_transient(exc)


def _not_sent(exc: BaseException) -> bool:
    """The only generate failures that may be sent again: they provably never left."""
    return isinstance(exc, SeedanceConnectionError) and exc.creation is CreationState.NOT_SENT


class _SharedSessions:
    """One aiohttp session per event loop and connection, shared by every hook on that loop.

    A triggerer runs thousands of triggers on one event loop; sharing the session shares the
    connection pool (keep-alive, TLS), so a poll costs a request, not a connection set-up.
    The session closes when the last user on that loop lets go of it.
    """

    def __init__(self) -> None:
        self._sessions: PerLoop[ConnectionSettings, list[Any]] = PerLoop()

    def acquire(self, settings: ConnectionSettings, tls_context: ssl.SSLContext) -> aiohttp.ClientSession:
        sessions = self._sessions.here()
        entry = sessions.get(settings)
        if entry is None or entry[0].closed:
            entry = sessions[settings] = [settings.client_session(tls_context), 0]
        entry[1] += 1
        return entry[0]

    async def release(self, settings: ConnectionSettings) -> None:
        sessions = self._sessions.here()
        entry = sessions.get(settings)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del sessions[settings]
            await entry[0].close()


_SHARED_SESSIONS = _SharedSessions()


async def _atls_context(tls: TlsSettings) -> ssl.SSLContext:
    """The aiohttp TLS context for ``tls``: cached, else built in a worker thread (it reads
    files), never on the event loop."""
    cached = cached_ssl_context(tls)
    return cached if cached is not None else await asyncio.to_thread(ssl_context, tls)


#: Seconds a connection resolved by a trigger is reused by the other triggers on its event loop.
SETTINGS_TTL_SECONDS = 30.0


class _SettingsCache:
    """Resolved connection settings per event loop and connection id, for
    :data:`SETTINGS_TTL_SECONDS`.

    A triggerer starts thousands of triggers on one loop, each resolving its connection
    through Airflow (the costly part of a trigger's start). Here they resolve it once per TTL,
    and lookups made at the same time share one. A failed lookup is not kept; an auth error
    evicts the entry (:meth:`SeedanceHook._arefresh_settings`), so a rotated key takes effect
    at the next read, not after the TTL; reads refused together share one fresh lookup.
    """

    def __init__(self) -> None:
        #: conn id -> (expiry, the lookup, when it started), all ``time.monotonic()``
        self._entries: PerLoop[str, tuple[float, asyncio.Future[ConnectionSettings], float]] = PerLoop()

    async def get(
        self, conn_id: str, resolve: Callable[[], Awaitable[ConnectionSettings]]
    ) -> ConnectionSettings:
        entries = self._entries.here()
        now = time.monotonic()
        entry = entries.get(conn_id)
        stale = entry is None or entry[0] <= now
        if not stale and entry is not None and entry[1].done() and entry[1].exception() is not None:
            stale = True  # a failed lookup is tried again, never served from the cache
        if stale:
            entry = entries[conn_id] = (now + SETTINGS_TTL_SECONDS, asyncio.ensure_future(resolve()), now)
        assert entry is not None
        # Shielded: one trigger cancelled while it waits does not cancel the others' lookup.
        return await asyncio.shield(entry[1])

    def evict(self, conn_id: str, used: ConnectionSettings, sent: float) -> None:
        """Forget ``conn_id`` after the API refused the settings ``used`` in a read sent at
        ``sent`` (``time.monotonic()``), if the cache holds them from a lookup that started
        before that read: it may predate a key rotation.

        A lookup already under way, one that started after the read was sent, or one that found
        other settings, is kept: reads refused together share one fresh lookup, however their
        answers are spread in time (equal settings found by another trigger's later start, which
        may predate a rotation, are looked up again).
        """
        entries = self._entries.here()
        entry = entries.get(conn_id)
        if entry is None or not entry[1].done() or entry[1].cancelled():
            return
        if entry[1].exception() is not None or (entry[1].result() == used and entry[2] <= sent):
            entries.pop(conn_id, None)


_SETTINGS_CACHE = _SettingsCache()


class SeedanceHook(HttpHook):
    """Talk to the Seedance 2.0 API.

    Connection (type ``seedance``): ``host`` is the base URL (default
    ``https://seedanceapi.org``), ``password`` the API key; ``extra`` may set ``timeout``
    (seconds), ``proxy`` and ``status_reads_per_second`` (a cap on the async status reads of
    this connection, shared by every trigger on one event loop; see
    :mod:`~airflow_provider_seedance.hooks.rate_cap`).

    :param seedance_conn_id: the Airflow connection to use.
    :param status_retries: attempts for one standalone status read (:meth:`get_status`)
        before giving up.
    :param retry_min_wait: first backoff between attempts, in seconds.
    :param retry_max_wait: longest backoff between attempts, in seconds (a server's
        ``Retry-After`` may ask for more, up to two minutes).
    :param max_outage: a wait (:meth:`wait_for_completion`, the triggers) tolerates
        consecutive transient status failures for this many seconds before giving up.
    :param max_video_bytes: largest video :meth:`download` accepts (default: the connection
        extra ``max_video_bytes``, else 2 GiB).

    ``retry_policy`` (a :class:`~airflow_provider_seedance.hooks.retry.RetryPolicy`) holds
    these numbers; everything in the hook that tries again uses it.
    """

    conn_name_attr = "seedance_conn_id"
    default_conn_name = "seedance_default"
    conn_type = "seedance"
    hook_name = "Seedance"
    default_host = DEFAULT_BASE_URL

    def __init__(
        self,
        seedance_conn_id: str = default_conn_name,
        *,
        status_retries: int = 5,
        retry_min_wait: float = 1.0,
        retry_max_wait: float = 30.0,
        max_video_bytes: int | None = None,
        max_outage: float = DEFAULT_MAX_OUTAGE,
    ) -> None:
        # HttpHook's keep-alive adapter is built with the sync session (``_session``), not here:
        # a trigger builds a hook per start and never sends a sync request.
        super().__init__(method="GET", http_conn_id=seedance_conn_id, tcp_keep_alive=False)
        self.seedance_conn_id = seedance_conn_id
        self.retry_policy = RetryPolicy(
            attempts=status_retries, min_wait=retry_min_wait, max_wait=retry_max_wait, max_outage=max_outage
        )
        self.status_retries = status_retries
        self.retry_min_wait = retry_min_wait
        self.retry_max_wait = retry_max_wait
        self.max_video_bytes = None if max_video_bytes is None else video_size_cap(max_video_bytes)
        self._aio_session: aiohttp.ClientSession | None = None
        self._aio_settings: ConnectionSettings | None = None
        self._aio_cap: AsyncLimiter | None = None
        self._aio_depth = 0

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form on Airflow versions that ask the hook (3.1; 3.2+ read metadata).

        3.1 wants snake_case keys and rewrites the dict it gets, so this returns a fresh copy.
        """
        from airflow_provider_seedance.get_provider_info import UI_FIELD_BEHAVIOUR

        return {
            "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
            "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
            "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extra fields of ``CONN_FIELDS`` on Airflow 3.1, which needs ``wtforms`` installed.

        3.2+ read ``conn-fields`` from the provider metadata and never call this. 3.1 takes
        only integer, string, password and boolean fields, so the rate is a string field (the
        connection reads ``"200"`` as 200) and the callback secret a password field (sensitive).
        """
        from wtforms import IntegerField, PasswordField, StringField
        from wtforms.validators import NumberRange, Optional

        from airflow_provider_seedance.get_provider_info import CONN_FIELDS

        def text(name: str, field: type[StringField] = StringField) -> Any:
            spec = CONN_FIELDS[name]
            return field(spec["label"], validators=[Optional()], description=spec["description"])

        timeout = CONN_FIELDS["timeout"]
        return {
            "timeout": IntegerField(
                timeout["label"],
                validators=[Optional(), NumberRange(min=1)],
                description=timeout["description"],
            ),
            "proxy": text("proxy"),
            "status_reads_per_second": text("status_reads_per_second"),
            "callback_base_url": text("callback_base_url"),
            "callback_secret": text("callback_secret", PasswordField),
        }

    # ------------------------------------------------------------------ connection
    @cached_property
    def settings(self) -> ConnectionSettings:
        """The resolved connection (sync: for workers, never inside a trigger's loop)."""
        return self._resolve_settings()

    def _resolve_settings(self) -> ConnectionSettings:
        try:
            conn = self.get_connection(self.seedance_conn_id)
        except Exception as exc:  # not found, or no secrets backend reachable from here
            raise SeedanceConfigurationError(
                f"Connection {self.seedance_conn_id!r} could not be loaded ({type(exc).__name__}): define it "
                f"in the UI, or as AIRFLOW_CONN_{self.seedance_conn_id.upper()}."
            ) from exc
        settings = ConnectionSettings.from_connection(conn)
        # The TLS context the async side (a deferred wait) will use, built now: an unreadable
        # CA bundle fails here, before any POST, and the triggerer finds it cached.
        ssl_context(settings.tls)
        return settings

    @cached_property
    def _session(self) -> requests.Session:
        settings = self.settings
        if self.adapter is None and getattr(self, "keep_alive_adapter", None) is None:
            self.keep_alive_adapter = TCPKeepAliveAdapter(idle=120, count=20, interval=30)  # HttpHook's
        session = self.get_conn()  # HttpHook: keep-alive adapters, verify, cert, trust_env
        session.auth = None
        session.headers.update(settings.headers())
        return session

    def _configure_session_from_auth(self, session: requests.Session, connection: Any) -> requests.Session:
        # Bearer token, set in ``_session``; never HTTP basic auth from login/password.
        session.auth = None
        return session

    def _configure_session_from_extra(
        self, session: requests.Session, connection: Any, extra_options: dict[str, Any]
    ) -> requests.Session:
        # Extras here are settings (timeout, proxy), never headers: keep HttpHook's session
        # options but drop the headers it would copy from the extras.
        headers = dict(session.headers)
        session = super()._configure_session_from_extra(session, connection, extra_options)
        session.headers.clear()
        session.headers.update(headers)
        return session

    def _set_base_url(self, connection: Any) -> None:
        self.base_url = self.settings.base_url
        self._base_url_initialized = True

    # ------------------------------------------------------------------ sync transport
    def _exchange(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> tuple[int, bytes | None, str | None]:
        """One HTTP exchange: ``(status, body or None if oversized, Retry-After)``.

        The body is streamed and read only up to ``MAX_BODY_BYTES``. No answer at all raises
        the transport's typed error (``SeedanceConnectionError`` or, for a generate request
        that may have arrived, ``SeedanceSubmissionUncertainError``).
        """
        settings = self.settings
        endpoint = f"{method} {path}"
        try:
            with self._session.request(
                method,
                settings.url(path),
                params=params,
                json=body,
                timeout=(settings.connect_timeout, settings.read_timeout),
                allow_redirects=False,
                proxies=settings.requests_proxies(),
                # Per request, so the one TLS decision (hooks/tls.py) wins over requests' own
                # reading of the environment and over the session's ``verify``.
                verify=settings.tls.requests_verify(),
                cert=settings.tls.client_cert,
                stream=True,
            ) as response:
                content = read_capped(response)
                return response.status_code, content, response.headers.get("Retry-After")
        except requests.exceptions.RequestException as exc:
            raise requests_failure(endpoint, settings.base_url, exc, tls=settings.tls) from None

    def _status_once(self, task_id: str) -> Any:
        """One status read, its answer read with the status rule (no retries)."""
        try:
            status, content, retry_after = self._exchange("GET", STATUS_PATH, params={"task_id": task_id})
            return status_answer(status, content, endpoint=f"GET {STATUS_PATH}", retry_after=retry_after)
        except SeedanceError as exc:
            metrics.status_read_failed(exc, self.seedance_conn_id)
            raise

    def _log_retry(self, what: str, state: tenacity.RetryCallState, *, limit: int | None = None) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        of = f" of {limit}" if limit is not None else ""
        attempt = state.attempt_number
        self.log.warning("%s failed (attempt %d%s): %s; retrying in %.1fs", what, attempt, of, exc, wait)

    # ------------------------------------------------------------------ public API
    def submit(self, request: GenerationRequest | str | None = None, /, **fields: Any) -> str:
        """Validate, then start one generation and return its task id.

        Pass a :class:`GenerationRequest`, or its fields as a keyword convenience:
        ``hook.submit("a red fox in snow", resolution="480p", duration=4)``. Bad or unknown
        fields raise :class:`SeedanceValidationError` before anything is sent. Sends
        ``POST /v1/generate`` at most once (see the module docstring).
        """
        if isinstance(request, GenerationRequest):
            if fields:
                raise TypeError("submit() takes a GenerationRequest or its fields, not both")
            return self.submit_request(request)
        if request is not None:
            fields = {"prompt": request, **fields}
        return self.submit_request(GenerationRequest.from_mapping(fields))

    def submit_request(self, request: GenerationRequest, *, callback_url: str | None = None) -> str:
        """Start the generation described by an already validated request; return its task id.

        ``callback_url``: one the caller built from the connection's callback extras
        (:mod:`~airflow_provider_seedance.callbacks`), sent when the request has none of its own.
        It is not part of the request, so it changes neither its fingerprint nor what is recorded.

        ``POST /v1/generate`` is repeated (with the retry policy's backoff) only after a
        failure that provably never left this machine (``CreationState.NOT_SENT``). Every
        error raised here carries ``creation`` (see
        :func:`~airflow_provider_seedance.exceptions.never_created`).
        """
        payload = request.to_payload()
        if callback_url is not None and request.callback_url is None:
            payload["callback_url"] = callback_url
        endpoint = f"POST {GENERATE_PATH}"
        retrying = self.retry_policy.retrying(
            _not_sent,
            attempts=GENERATE_SEND_ATTEMPTS,
            before_sleep=functools.partial(
                self._log_retry, "Reaching Seedance (nothing sent yet)", limit=GENERATE_SEND_ATTEMPTS
            ),
        )
        for attempt in retrying:
            with attempt:
                status, content, retry_after = self._exchange("POST", GENERATE_PATH, body=payload)
        if status == PROXY_AUTH_REQUIRED:
            raise proxy_wants_credentials(endpoint, self.settings.base_url)
        task_id = generate_answer(status, content, endpoint=endpoint, retry_after=retry_after)
        self.log.info("Seedance generation submitted: task_id=%s", task_id)
        metrics.generation_submitted(self.seedance_conn_id)
        return task_id

    def get_status(
        self, task_id: str, *, outage: float | None = None, deadline: float | None = None
    ) -> SeedanceTask:
        """Read a generation's status, retrying transient failures (``status_retries`` attempts;
        with ``outage``, for as long as they last less than that many seconds in a row: the wait
        policy of :meth:`wait_for_completion`, for a caller that waits in steps, as a sensor),
        never sleeping past ``deadline`` (an epoch time)."""
        return self._read_status(_checked_task_id(task_id), outage=outage, deadline=deadline)

    def _read_status(
        self, task_id: str, *, outage: float | None = None, deadline: float | None = None
    ) -> SeedanceTask:
        retrying = self.retry_policy.retrying(  # retries what is_transient (the default) allows
            outage=outage,
            deadline=deadline,
            before_sleep=functools.partial(
                self._log_retry,
                "Seedance status read",
                limit=None if outage is not None else self.status_retries,
            ),
        )
        for attempt in retrying:
            with attempt:
                data = self._status_once(task_id)
        return SeedanceTask.from_api(data)

    def wait_for_completion(
        self,
        task_id: str,
        *,
        poll_interval: float = 10.0,
        timeout: float | None = None,
        deadline: float | None = None,
    ) -> SeedanceTask:
        """Poll until SUCCESS or FAILED and return that task.

        The wait policy, the same as the deferrable wait's (``SeedanceStatusTrigger``):
        transient status failures (5xx, 429 with its ``Retry-After``, network errors,
        unreadable answers) are retried with backoff for as long as they last less than
        ``max_outage`` seconds in a row (the hook's, default 180 s), and never past the
        deadline. A longer outage raises the last failure; a deadline reached during an
        outage raises :class:`SeedanceTimeoutError`.

        :param timeout: seconds from now; :param deadline: an absolute epoch time. The
            earlier of the two wins. Both are wall-clock, so a retried task can keep the
            deadline its first try computed.
        :raises SeedanceTimeoutError: the deadline passed (carries ``task_id``).
        """
        task_id = _checked_task_id(task_id)
        started = time.time()
        end = deadline
        if timeout is not None:
            end = min(end, started + timeout) if end is not None else started + timeout
        reported_unknown: set[str] = set()
        last_logged = 0.0
        last_status = UNREAD_STATUS
        outage = self.retry_policy.max_outage
        while True:
            read_started = time.time()
            try:
                task = self._read_status(task_id, outage=outage, deadline=end)
            except SeedanceError as exc:
                # Retries stop at the outage limit or at the deadline; the latter is a timeout.
                if exc.retryable and deadline_within_outage(read_started, outage, end):
                    raise SeedanceTimeoutError(task_id, time.time() - started, last_status) from exc
                raise
            last_status = task.status
            if task.is_terminal:
                self.log.info(
                    "Seedance task %s %s after %.0fs: video %s, %s",
                    task_id,
                    task.status,
                    time.time() - started,
                    url_for_logs(task.video_url) or f"none ({task.error_message or 'no message'})",
                    self.describe_cost(task.consumed_credits),
                )
                return task
            if task.status not in TaskStatus.KNOWN and task.status not in reported_unknown:
                reported_unknown.add(task.status)
                self.log.warning(
                    "Seedance task %s reports unknown status %r; still waiting", task_id, task.status
                )
            now = time.time()
            if now - last_logged >= max(poll_interval, 30.0):
                last_logged = now
                req = task.request
                try:
                    price: int | None = estimate_credits(
                        req.get("resolution"), req.get("duration"), req.get("generate_audio")
                    )
                except SeedanceValidationError:  # a request this client does not know how to price
                    price = None
                self.log.info(
                    "Seedance task %s: %s after %.0fs, expected cost %s",
                    task_id,
                    task.status,
                    now - started,
                    self.describe_cost(price) if price is not None else "unknown",
                )
            if end is not None and now >= end:
                raise SeedanceTimeoutError(task_id, now - started, task.status)
            sleep_until_deadline(poll_interval, end)

    def test_connection(self) -> tuple[bool, str]:
        """Check the base URL and key without spending credits (a status read, never a POST)."""
        try:
            # One attempt: a person is waiting on the answer, and a probe is not worth retrying.
            self._status_once(PROBE_TASK_ID)
        except SeedanceTaskNotFoundError:
            return True, f"Connected to {self.settings.base_url}: API key accepted."
        except SeedanceAuthError as exc:
            return False, f"{self.settings.base_url} rejected the API key (the password field): {exc}"
        except SeedanceConnectionError as exc:
            return False, f"Cannot reach {self.settings.base_url} (check the base URL and proxy): {exc}"
        except SeedanceBadRequestError as exc:
            if exc.status_code == 404:  # no such endpoint: not the API's root
                return False, (
                    f"{self.settings.base_url} has no Seedance API there (check the base URL: the service's "
                    f"root, e.g. {DEFAULT_BASE_URL}): {exc}"
                )
            return False, str(exc)
        except SeedanceError as exc:
            return False, str(exc)
        return True, f"Connected to {self.settings.base_url}."

    # ------------------------------------------------------------------ async transport
    async def __aenter__(self) -> SeedanceHook:
        if self._aio_depth == 0:
            self._aio_settings = await _SETTINGS_CACHE.get(self.seedance_conn_id, self._aresolve_settings)
            tls_context = await _atls_context(self._aio_settings.tls)
            self._aio_session = _SHARED_SESSIONS.acquire(self._aio_settings, tls_context)
            self._aio_cap = STATUS_READ_CAPS.bucket(
                self.seedance_conn_id, self._aio_settings.status_reads_per_second
            )
        self._aio_depth += 1
        return self

    async def _aresolve_settings(self) -> ConnectionSettings:
        """The connection, resolved without blocking the event loop.

        The async lookup first; where it has no backend for the connection (the in-process
        trigger of ``airflow dags test`` / ``dag.test()`` with the connection stored in the
        metadata database), the synchronous lookup, run in a worker thread.
        """
        from airflow.providers.common.compat.connection import (
            get_async_connection,
            get_async_extra_dejson,
        )

        try:
            conn = await get_async_connection(self.seedance_conn_id, hook=self)
            extra = await get_async_extra_dejson(conn)
        except Exception as exc:  # not found by the async backends, or none available here
            self.log.debug(
                "Async lookup of connection %r failed (%s); trying the synchronous lookup off the loop",
                self.seedance_conn_id,
                type(exc).__name__,
            )
            return await asyncio.to_thread(self._resolve_settings)
        settings = ConnectionSettings.from_connection(conn, extra)
        await _atls_context(settings.tls)  # an unreadable CA bundle fails the lookup, not a read
        return settings

    async def _arefresh_settings(self, used: ConnectionSettings, sent: float) -> bool:
        """After the API refused the key in ``used`` (a read sent at ``sent``, monotonic): resolve
        the connection afresh (a rotated key). True when other settings are now in use, so the
        refused read may be sent again."""
        if self._aio_settings is not used:
            return True  # another read of this hook already switched to the new settings
        _SETTINGS_CACHE.evict(self.seedance_conn_id, used, sent)
        fresh = await _SETTINGS_CACHE.get(self.seedance_conn_id, self._aresolve_settings)
        if fresh == used or self._aio_settings is not used:
            return self._aio_settings is not used
        self.log.info(
            "Connection %r changed since it was resolved: using it as it is now", self.seedance_conn_id
        )
        tls_context = await _atls_context(fresh.tls)
        self._aio_settings, self._aio_session = fresh, _SHARED_SESSIONS.acquire(fresh, tls_context)
        self._aio_cap = STATUS_READ_CAPS.bucket(self.seedance_conn_id, fresh.status_reads_per_second)
        await _SHARED_SESSIONS.release(used)
        return True

    async def __aexit__(self, *exc_info: object) -> None:
        self._aio_depth -= 1
        if self._aio_depth == 0 and self._aio_settings is not None:
            self._aio_session = None
            await _SHARED_SESSIONS.release(self._aio_settings)

    async def _asend_status(self, task_id: str) -> Any:
        if self._aio_cap is not None:
            await self._aio_cap.acquire()  # one token per read sent, retries included
        assert self._aio_session is not None and self._aio_settings is not None
        settings = self._aio_settings
        endpoint = f"GET {STATUS_PATH}"
        try:
            proxy, proxy_auth = settings.aio_proxy
            async with self._aio_session.get(
                settings.url(STATUS_PATH),
                params={"task_id": task_id},
                proxy=proxy,
                proxy_auth=proxy_auth,
                allow_redirects=False,
            ) as response:
                body = await aread_capped(response)
                status, retry_after = response.status, response.headers.get("Retry-After")
        except (aiohttp.ClientError, asyncio.TimeoutError, ssl.SSLError) as exc:
            error = aiohttp_failure(endpoint, settings.base_url, exc, tls=settings.tls)
            metrics.status_read_failed(error, self.seedance_conn_id)
            raise error from None
        try:
            return status_answer(status, body, endpoint=endpoint, retry_after=retry_after)
        except SeedanceError as exc:
            metrics.status_read_failed(exc, self.seedance_conn_id)
            raise

    async def _asend_status_refreshing(self, task_id: str) -> Any:
        """One status read; refused for its key, the read is sent once more if the connection
        now holds another key (rotated while this trigger waited)."""
        used, sent = self._aio_settings, time.monotonic()
        try:
            return await self._asend_status(task_id)
        except SeedanceAuthError:
            if used is None or not await self._arefresh_settings(used, sent):
                raise
        return await self._asend_status(task_id)

    async def aget_status(
        self,
        task_id: str,
        *,
        deadline: float | None = None,
        outage: float | None = None,
        attempts: int | None = None,
    ) -> SeedanceTask:
        """Async :meth:`get_status` for triggers: never blocks the event loop.

        Inside ``async with hook:`` every call reuses one aiohttp session; outside, a
        session is opened for the call. Transient failures are retried by the hook's
        retry policy: ``status_retries`` attempts by default; with ``outage`` (seconds),
        for as long as they last less than that (``attempts``, if given, also caps them);
        never sleeping past ``deadline`` (an epoch time).
        """
        task_id = _checked_task_id(task_id)
        if not self._aio_depth:  # outside ``async with hook:``: a session for this call
            async with self:
                return await self.aget_status(task_id, deadline=deadline, outage=outage, attempts=attempts)
        try:
            # Fast path: almost every poll succeeds at once, and a triggerer runs thousands of
            # them; the retry machinery is only built when a read actually fails.
            data = await self._asend_status_refreshing(task_id)
        except SeedanceError as first:
            limit = attempts
            if limit is None and outage is None:
                limit = self.status_retries
            if not first.retryable or limit == 1:
                raise
            data = await self._aretry_status(task_id, first, deadline, outage, limit)
        return SeedanceTask.from_api(data)

    async def _aretry_status(
        self,
        task_id: str,
        first: SeedanceError,
        deadline: float | None,
        outage: float | None,
        limit: int | None,
    ) -> Any:
        """The status read after the fast path's transient failure ``first``, by the retry policy:
        ``first`` is its attempt 1, so tenacity decides every pause (``Retry-After``, outage,
        deadline, attempt cap), the first one included."""
        replay = [first]
        retrying = self.retry_policy.retrying(
            is_transient,
            attempts=limit,
            outage=outage,
            deadline=deadline,
            before_sleep=functools.partial(self._log_retry, "Seedance status read", limit=limit),
            asynchronous=True,
        )
        async for attempt in retrying:
            with attempt:
                if replay:
                    raise replay.pop()
                return await self._asend_status(task_id)
        raise first  # pragma: no cover - tenacity re-raises the last error

    def download(
        self,
        source: str | SeedanceTask,
        destination: str | os.PathLike[str] | ObjectStoragePath,
    ) -> DownloadResult:
        """Deliver a video (URL or finished task) to a path or ``ObjectStoragePath``.

        Streams, verifies the byte count, records size and sha256, retries dropped
        transfers, and leaves no partial file at ``destination`` on any failure.
        """
        url = source.video_url if isinstance(source, SeedanceTask) else source
        if not url:
            status = source.status if isinstance(source, SeedanceTask) else "?"
            raise SeedanceDownloadError(f"Nothing to download: the task has no video URL (status {status})")
        target = as_storage_path(destination)
        allowed_host = allowed_host_of(self.settings.base_url)  # the emulator's own non-public host
        max_bytes = self._video_size_cap()
        settings = self.settings
        result = download_video(
            url,
            target,
            user_agent=USER_AGENT,
            retry_policy=self.retry_policy,
            log=self.log,
            allowed_host=allowed_host,
            max_bytes=max_bytes,
            # The connection's TLS decision, proxy and environment use, as for its own requests:
            # a network that needs them for the service needs them for the video too.
            verify=settings.tls.requests_verify(),
            cert=settings.tls.client_cert,
            proxies=settings.requests_proxies(),
            trust_env=self._session.trust_env,
        )
        self.log.info(
            "Delivered video to %s (%d bytes, sha256 %s)", result.output_path, result.bytes, result.sha256
        )
        return result

    def _video_size_cap(self) -> int:
        """``max_video_bytes``: the hook's own, else the connection extra's (resolved once)."""
        if self.max_video_bytes is None:
            extra = self.get_connection(self.seedance_conn_id).extra_dejson or {}
            self.max_video_bytes = video_size_cap(
                extra.get("max_video_bytes"), f"Connection {self.seedance_conn_id!r}: extra 'max_video_bytes'"
            )
        return self.max_video_bytes

    def close(self) -> None:
        """Close the HTTP session, if one was opened (for long-lived processes such as the API
        server; a task's process closes everything when it ends)."""
        session = self.__dict__.pop("_session", None)
        if session is not None:
            session.close()

    def prepare_for_threads(self) -> None:
        """Resolve, on the calling thread, everything that needs Airflow's task supervisor (the
        connection, which also registers its secrets for masking), so that threads calling
        :meth:`submit_request`, :meth:`get_status` or :meth:`download` afterwards only do HTTP
        and file I/O.

        Call it before fanning out to a thread pool. On Airflow 3.1 the channel from a task to
        its supervisor has no lock: two threads using it at once can hang the task for good.
        """
        self._session  # noqa: B018 -- cached, with the settings it is built from
        self._video_size_cap()

    def describe_cost(self, credits: int | None) -> str:
        return f"{credits or 0} credits ({format_usd(credits)})"

    def connection_extra(self) -> dict[str, Any]:
        """The connection's extra, decoded (the shared budgets read their ``budget`` there)."""
        extra = self.get_connection(self.seedance_conn_id).extra_dejson
        return dict(extra) if isinstance(extra, Mapping) else {}


def _checked_task_id(task_id: Any) -> str:
    if not isinstance(task_id, str) or not task_id.strip():
        raise SeedanceValidationError("seedance_task_id", task_id, "a non-empty task id string")
    return task_id.strip()
