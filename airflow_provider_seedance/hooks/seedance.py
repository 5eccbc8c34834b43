"""SeedanceHook: the connection, the transport and the retry policy for the Seedance API.

Two rules shape this module (see the API contract's money rules):

* ``POST /v1/generate`` costs money and is not idempotent. It is sent at most once, and
  repeated only when the request provably never reached the server (connection refused,
  DNS failure). After a read timeout, a dropped connection, a 5xx or an unreadable answer
  the generation may exist, so the error says so instead of paying twice.
* ``GET /v1/status`` is safe: it is retried with exponential backoff and jitter on 5xx,
  429 (honouring ``Retry-After``), unreadable answers and network errors.

The sync path (workers) is built on ``HttpHook``'s session machinery; the async path
(triggers) resolves the connection without blocking and keeps one aiohttp session for as
long as the caller holds the hook open (``async with hook: ...``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import platform
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import requests
import tenacity
from airflow.providers.http.hooks.http import HttpHook

from airflow_provider_seedance import __version__
from airflow_provider_seedance.exceptions import (
    SeedanceAPIError,
    SeedanceAuthError,
    SeedanceConfigurationError,
    SeedanceConnectionError,
    SeedanceDownloadError,
    SeedanceError,
    SeedanceResponseError,
    SeedanceServerError,
    SeedanceSubmissionUncertainError,
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
from airflow_provider_seedance.models import (
    GenerationRequest,
    SeedanceTask,
    TaskStatus,
    estimate_credits,
    format_usd,
)

if TYPE_CHECKING:
    from airflow.sdk import Connection, ObjectStoragePath

DEFAULT_BASE_URL = "https://seedanceapi.org"
GENERATE_PATH = "/v1/generate"
STATUS_PATH = "/v1/status"
#: Seconds to wait for a TCP connection and for an answer, unless the connection's extra says.
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 30.0
#: A status answer this large is not a status answer (a proxy error page, a runaway body).
MAX_BODY_BYTES = 2 * 1024 * 1024
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
    """What a ``seedance`` connection resolves to. ``repr`` never shows the key."""

    base_url: str
    api_key: str
    connect_timeout: float
    read_timeout: float
    proxy: str | None

    def __repr__(self) -> str:
        return f"ConnectionSettings(base_url={self.base_url!r}, api_key=***, proxy={self.proxy!r})"

    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.api_key}",
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }

    def url(self, path: str) -> str:
        return self.base_url + path

    def client_session(self) -> aiohttp.ClientSession:
        """A new aiohttp session for these settings: auth headers, connect and total timeouts."""
        return aiohttp.ClientSession(
            headers=self.headers(),
            timeout=aiohttp.ClientTimeout(
                sock_connect=self.connect_timeout, total=self.connect_timeout + self.read_timeout
            ),
        )

    @classmethod
    def from_connection(cls, conn: Connection, extra: Mapping[str, Any] | None = None) -> ConnectionSettings:
        """Read a connection: ``host`` = base URL, ``password`` = API key, extras = settings.

        ``extra`` is the already decoded extra (async callers decode it off the event loop).
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
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SeedanceConfigurationError(
                f"Connection {conn_id!r}: base URL {host!r} is not an http(s) URL. "
                f"Use e.g. {DEFAULT_BASE_URL!r}."
            )
        base_url = host.rstrip("/")
        if conn.port and not parts.port:
            base_url = f"{base_url}:{conn.port}"
        if base_url.endswith("/v1"):  # the guide writes the base URL with /v1
            base_url = base_url[: -len("/v1")]
        api_key = (conn.password or "").strip()
        if not api_key:
            raise SeedanceConfigurationError(
                f"Connection {conn_id!r} has no API key: put it in the connection's password field."
            )
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
        return cls(base_url, api_key, connect_timeout, read_timeout, proxy or None)


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


def parse_envelope(status_code: int, body: bytes, *, endpoint: str, retry_after: str | None = None) -> Any:
    """Return the ``data`` of a successful answer, or raise the typed error for it.

    Shared by the sync and async transports so both read answers the same way.
    """
    if status_code >= 400:
        raise SeedanceAPIError.from_response(status_code, body, endpoint=endpoint, retry_after=retry_after)
    if len(body) > MAX_BODY_BYTES:
        raise SeedanceResponseError(
            status_code, "MALFORMED_RESPONSE", f"answer of {len(body)} bytes is too large", endpoint=endpoint
        )
    try:
        payload = json.loads(body) if body.strip() else None
    except ValueError:
        payload = None
        if body.lstrip()[:1] == b"<":
            reason = "an HTML page instead of JSON (a proxy or wrong base URL?)"
        else:
            reason = "a body that is not JSON"
        raise SeedanceResponseError(status_code, "MALFORMED_RESPONSE", reason, endpoint=endpoint) from None
    if not isinstance(payload, Mapping):
        reason = "an empty body" if payload is None else "JSON that is not an object"
        raise SeedanceResponseError(status_code, "MALFORMED_RESPONSE", reason, endpoint=endpoint)
    code = payload.get("code")
    if isinstance(code, int) and not isinstance(code, bool) and code >= 400:
        # Some gateways answer HTTP 200 with the error in the envelope.
        raise SeedanceAPIError.from_response(code, body, endpoint=endpoint, retry_after=retry_after)
    data = payload.get("data")
    if not isinstance(data, Mapping):
        raise SeedanceResponseError(
            status_code, "MALFORMED_RESPONSE", "answer has no 'data' object", endpoint=endpoint
        )
    return data


def is_retryable_status_error(exc: BaseException) -> bool:
    """The one retry classifier for status polls, sync and async alike."""
    return isinstance(exc, SeedanceError) and bool(getattr(exc, "retryable", False))


#: A server's ``Retry-After`` is honoured up to this many seconds.
RETRY_AFTER_CAP = 120.0


def retry_after_floor(exc: BaseException | None) -> float:
    """The shortest wait the server asked for after ``exc`` (its ``Retry-After``, capped), or 0."""
    retry_after = getattr(exc, "retry_after", None)
    return min(float(retry_after), RETRY_AFTER_CAP) if retry_after is not None else 0.0


class _WaitWithRetryAfter(tenacity.wait.wait_base):
    """Exponential backoff with jitter; a 429's ``Retry-After`` is a floor, not a suggestion."""

    def __init__(self, initial: float, maximum: float) -> None:
        self._backoff = tenacity.wait_exponential(multiplier=initial, max=maximum) + tenacity.wait_random(
            0, initial
        )

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        return max(self._backoff(retry_state), retry_after_floor(exc))


class _SharedSessions:
    """One aiohttp session per event loop and connection, shared by every hook on that loop.

    A triggerer runs thousands of triggers on one event loop; sharing the session shares the
    connection pool (keep-alive, TLS), so a poll costs a request, not a connection set-up.
    The session closes when the last user on that loop lets go of it.
    """

    def __init__(self) -> None:
        self._by_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[ConnectionSettings, list[Any]]
        ] = weakref.WeakKeyDictionary()

    def acquire(self, settings: ConnectionSettings) -> aiohttp.ClientSession:
        sessions = self._by_loop.setdefault(asyncio.get_running_loop(), {})
        entry = sessions.get(settings)
        if entry is None or entry[0].closed:
            entry = sessions[settings] = [settings.client_session(), 0]
        entry[1] += 1
        return entry[0]

    async def release(self, settings: ConnectionSettings) -> None:
        sessions = self._by_loop.get(asyncio.get_running_loop(), {})
        entry = sessions.get(settings)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del sessions[settings]
            await entry[0].close()


_SHARED_SESSIONS = _SharedSessions()


class SeedanceHook(HttpHook):
    """Talk to the Seedance 2.0 API.

    Connection (type ``seedance``): ``host`` is the base URL (default
    ``https://seedanceapi.org``), ``password`` the API key; ``extra`` may set ``timeout``
    (seconds) and ``proxy``.

    :param seedance_conn_id: the Airflow connection to use.
    :param status_retries: attempts for one status read before giving up.
    :param retry_min_wait: first backoff between status attempts, in seconds.
    :param retry_max_wait: longest backoff between status attempts, in seconds.
    :param max_video_bytes: largest video :meth:`download` accepts (default: the connection
        extra ``max_video_bytes``, else 2 GiB).
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
    ) -> None:
        super().__init__(method="GET", http_conn_id=seedance_conn_id)
        self.seedance_conn_id = seedance_conn_id
        if status_retries < 1:
            raise ValueError("status_retries must be >= 1")
        self.status_retries = status_retries
        self.retry_min_wait = retry_min_wait
        self.retry_max_wait = retry_max_wait
        self.max_video_bytes = None if max_video_bytes is None else video_size_cap(max_video_bytes)
        self._aio_session: aiohttp.ClientSession | None = None
        self._aio_settings: ConnectionSettings | None = None
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
        """The extra fields (timeout, proxy) on Airflow 3.1, which needs ``wtforms`` installed.

        3.2+ read ``conn-fields`` from the provider metadata and never call this.
        """
        from wtforms import IntegerField, StringField
        from wtforms.validators import NumberRange, Optional

        from airflow_provider_seedance.get_provider_info import CONN_FIELDS

        timeout, proxy = CONN_FIELDS["timeout"], CONN_FIELDS["proxy"]
        return {
            "timeout": IntegerField(
                timeout["label"],
                validators=[Optional(), NumberRange(min=1)],
                description=timeout["description"],
            ),
            "proxy": StringField(proxy["label"], validators=[Optional()], description=proxy["description"]),
        }

    # ------------------------------------------------------------------ connection
    @cached_property
    def settings(self) -> ConnectionSettings:
        """The resolved connection (sync: for workers, never inside a trigger's loop)."""
        try:
            conn = self.get_connection(self.seedance_conn_id)
        except Exception as exc:  # not found, or no secrets backend reachable from here
            raise SeedanceConfigurationError(
                f"Connection {self.seedance_conn_id!r} could not be loaded ({type(exc).__name__}): define it "
                f"in the UI, or as AIRFLOW_CONN_{self.seedance_conn_id.upper()}."
            ) from exc
        return ConnectionSettings.from_connection(conn)

    @cached_property
    def _session(self) -> requests.Session:
        settings = self.settings
        session = self.get_conn()  # HttpHook: keep-alive adapters, verify, cert, trust_env
        session.auth = None
        session.headers.update(settings.headers())
        if settings.proxy:
            session.proxies = {"http": settings.proxy, "https": settings.proxy}
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
    def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        settings = self.settings
        endpoint = f"{method} {path}"
        try:
            response = self._session.request(
                method,
                settings.url(path),
                params=params,
                json=body,
                timeout=(settings.connect_timeout, settings.read_timeout),
                allow_redirects=False,
            )
            content = response.content
        except (requests.exceptions.ConnectTimeout, requests.exceptions.ProxyError) as exc:
            raise SeedanceConnectionError(
                _net_message(endpoint, exc), endpoint=endpoint, sent=False
            ) from None
        except requests.exceptions.ConnectionError as exc:
            sent = not _never_connected(exc)
            raise SeedanceConnectionError(_net_message(endpoint, exc), endpoint=endpoint, sent=sent) from None
        except requests.exceptions.RequestException as exc:
            raise SeedanceConnectionError(_net_message(endpoint, exc), endpoint=endpoint, sent=True) from None
        return parse_envelope(
            response.status_code, content, endpoint=endpoint, retry_after=response.headers.get("Retry-After")
        )

    def _status_retrying(
        self,
        retrying_class: Callable[..., Any] = tenacity.Retrying,
        *,
        deadline: float | None = None,
        attempts_done: int = 0,
    ) -> Any:
        """Tenacity's retry loop for status reads; ``attempts_done`` failed before it started."""
        stop: tenacity.stop.stop_base = tenacity.stop_after_attempt(self.status_retries - attempts_done)
        if deadline is not None:
            stop = stop | tenacity.stop_before_delay(max(0.0, deadline - time.time()))
        return retrying_class(
            stop=stop,
            wait=_WaitWithRetryAfter(self.retry_min_wait, self.retry_max_wait),
            retry=tenacity.retry_if_exception(is_retryable_status_error),
            before_sleep=functools.partial(self._log_status_retry, attempts_done),
            reraise=True,
        )

    def _log_status_retry(self, attempts_done: int, retry_state: tenacity.RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
        self._warn_status_retry(attempts_done + retry_state.attempt_number, exc, wait)

    def _warn_status_retry(self, attempt: int, exc: BaseException | None, wait: float) -> None:
        self.log.warning(
            "Seedance status read failed (attempt %d of %d): %s; retrying in %.1fs",
            attempt,
            self.status_retries,
            exc,
            wait,
        )

    # ------------------------------------------------------------------ public API
    def submit(
        self,
        prompt: str,
        *,
        aspect_ratio: str | None = None,
        resolution: str | None = None,
        duration: str | int | None = None,
        generate_audio: bool | None = None,
        fixed_lens: bool | None = None,
        image_urls: list[str] | None = None,
        callback_url: str | None = None,
    ) -> str:
        """Validate, then start one generation and return its task id.

        Sends ``POST /v1/generate`` at most once (see the module docstring).
        """
        request = GenerationRequest(
            prompt=prompt,
            aspect_ratio=aspect_ratio,
            resolution=resolution,
            duration=duration,  # type: ignore[arg-type]
            generate_audio=generate_audio,
            fixed_lens=fixed_lens,
            image_urls=image_urls,  # type: ignore[arg-type]
            callback_url=callback_url,
        )
        return self.submit_request(request)

    def submit_request(self, request: GenerationRequest) -> str:
        """Start the generation described by an already validated request."""
        payload = request.to_payload()
        for attempt in range(1, 4):
            try:
                data = self._send("POST", GENERATE_PATH, body=payload)
                break
            except (SeedanceServerError, SeedanceResponseError) as exc:
                # The server got the request; whether it created a generation is unknown.
                raise SeedanceSubmissionUncertainError(str(exc), status_code=exc.status_code) from None
            except SeedanceConnectionError as exc:
                if exc.sent:
                    raise SeedanceSubmissionUncertainError(str(exc)) from None
                if attempt == 3:
                    raise
                # Provably never reached the server: safe to try again.
                self.log.warning("Seedance unreachable (%s); trying again", exc)
                time.sleep(attempt)
        return self._task_id_from_submit(data)

    def _task_id_from_submit(self, data: Any) -> str:
        task_id = data.get("task_id") if isinstance(data, Mapping) else None
        if not isinstance(task_id, str) or not task_id:
            raise SeedanceSubmissionUncertainError("the answer carried no task_id", status_code=200)
        self.log.info("Seedance generation submitted: task_id=%s", task_id)
        return task_id

    def get_status(self, task_id: str) -> SeedanceTask:
        """Read a generation's status, retrying transient failures."""
        params = {"task_id": _checked_task_id(task_id)}
        for attempt in self._status_retrying():
            with attempt:
                data = self._send("GET", STATUS_PATH, params=params)
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

        :param timeout: seconds from now; :param deadline: an absolute epoch time. The
            earlier of the two wins. Both are wall-clock, so a retried task can keep the
            deadline its first try computed.
        :raises SeedanceTimeoutError: the deadline passed (carries ``task_id``).
        """
        started = time.time()
        end = deadline
        if timeout is not None:
            end = min(end, started + timeout) if end is not None else started + timeout
        reported_unknown: set[str] = set()
        last_logged = 0.0
        while True:
            task = self.get_status(task_id)
            if task.is_terminal:
                self.log.info(
                    "Seedance task %s %s after %.0fs: video %s, %s",
                    task_id,
                    task.status,
                    time.time() - started,
                    task.video_url or f"none ({task.error_message or 'no message'})",
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
            if end is not None and now + poll_interval > end:
                remaining = end - now
                if remaining <= 0:
                    raise SeedanceTimeoutError(task_id, now - started, task.status)
                time.sleep(remaining)
                continue
            time.sleep(poll_interval)

    def test_connection(self) -> tuple[bool, str]:
        """Check the base URL and key without spending credits (a status read, never a POST)."""
        try:
            # One attempt: a person is waiting on the answer, and a probe is not worth retrying.
            self._send("GET", STATUS_PATH, params={"task_id": PROBE_TASK_ID})
        except SeedanceTaskNotFoundError:
            return True, f"Connected to {self.settings.base_url}: API key accepted."
        except SeedanceAuthError as exc:
            return False, f"{self.settings.base_url} rejected the API key (the password field): {exc}"
        except SeedanceConnectionError as exc:
            return False, f"Cannot reach {self.settings.base_url} (check the base URL and proxy): {exc}"
        except SeedanceError as exc:
            return False, str(exc)
        return True, f"Connected to {self.settings.base_url}."

    # ------------------------------------------------------------------ async transport
    async def __aenter__(self) -> SeedanceHook:
        if self._aio_depth == 0:
            from airflow.providers.common.compat.connection import (
                get_async_connection,
                get_async_extra_dejson,
            )

            conn = await get_async_connection(self.seedance_conn_id, hook=self)
            extra = await get_async_extra_dejson(conn)
            self._aio_settings = ConnectionSettings.from_connection(conn, extra)
            self._aio_session = _SHARED_SESSIONS.acquire(self._aio_settings)
        self._aio_depth += 1
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._aio_depth -= 1
        if self._aio_depth == 0 and self._aio_settings is not None:
            self._aio_session = None
            await _SHARED_SESSIONS.release(self._aio_settings)

    async def _asend_status(self, task_id: str) -> Any:
        assert self._aio_session is not None and self._aio_settings is not None
        settings = self._aio_settings
        endpoint = f"GET {STATUS_PATH}"
        try:
            async with self._aio_session.get(
                settings.url(STATUS_PATH),
                params={"task_id": task_id},
                proxy=settings.proxy,
                allow_redirects=False,
            ) as response:
                body = await response.read()
                return parse_envelope(
                    response.status, body, endpoint=endpoint, retry_after=response.headers.get("Retry-After")
                )
        except aiohttp.ClientConnectorError as exc:
            raise SeedanceConnectionError(
                _net_message(endpoint, exc), endpoint=endpoint, sent=False
            ) from None
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise SeedanceConnectionError(_net_message(endpoint, exc), endpoint=endpoint, sent=True) from None

    async def aget_status(self, task_id: str, *, deadline: float | None = None) -> SeedanceTask:
        """Async :meth:`get_status` for triggers: never blocks the event loop.

        Inside ``async with hook:`` every call reuses one aiohttp session; outside, a
        session is opened for the call. Retries stop early rather than sleep past
        ``deadline`` (an epoch time).
        """
        task_id = _checked_task_id(task_id)
        async with self:
            try:
                # Fast path: almost every poll succeeds at once, and a triggerer runs thousands
                # of them; the retry machinery is only built when a read actually fails.
                data = await self._asend_status(task_id)
            except SeedanceError as first:
                if not is_retryable_status_error(first) or self.status_retries <= 1:
                    raise
                data = await self._aretry_status(task_id, first, deadline)
        return SeedanceTask.from_api(data)

    async def _aretry_status(self, task_id: str, first: SeedanceError, deadline: float | None) -> Any:
        """The status read after a transient failure: backoff (``Retry-After`` as a floor), retries."""
        pause = max(self.retry_min_wait, retry_after_floor(first))
        if deadline is not None and time.time() + pause >= deadline:
            raise first
        self._warn_status_retry(1, first, pause)
        await asyncio.sleep(pause)
        retrying = self._status_retrying(tenacity.AsyncRetrying, deadline=deadline, attempts_done=1)
        async for attempt in retrying:
            with attempt:
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
        max_bytes = self.max_video_bytes
        if max_bytes is None:
            extra = self.get_connection(self.seedance_conn_id).extra_dejson or {}
            max_bytes = video_size_cap(
                extra.get("max_video_bytes"), f"Connection {self.seedance_conn_id!r}: extra 'max_video_bytes'"
            )
            self.max_video_bytes = max_bytes  # resolved once per hook (a batch downloads many)
        result = download_video(
            url,
            target,
            user_agent=USER_AGENT,
            attempts=self.status_retries,
            min_wait=self.retry_min_wait,
            max_wait=self.retry_max_wait,
            log=self.log,
            allowed_host=allowed_host,
            max_bytes=max_bytes,
        )
        self.log.info(
            "Delivered video to %s (%d bytes, sha256 %s)", result.output_path, result.bytes, result.sha256
        )
        return result

    def describe_cost(self, credits: int | None) -> str:
        return f"{credits or 0} credits ({format_usd(credits)})"


def _checked_task_id(task_id: Any) -> str:
    if not isinstance(task_id, str) or not task_id.strip():
        raise SeedanceValidationError("seedance_task_id", task_id, "a non-empty task id string")
    return task_id.strip()


def _never_connected(exc: requests.exceptions.ConnectionError) -> bool:
    """True when requests failed before any byte was sent (refused, DNS, connect timeout)."""
    from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

    reason: Any = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)
    return isinstance(reason, (NewConnectionError, NameResolutionError, ConnectTimeoutError))


def _net_message(endpoint: str, exc: BaseException) -> str:
    kind = type(exc).__name__
    detail = str(exc).split(" (Caused by")[0][:200] if str(exc) else ""
    return f"Seedance {endpoint} got no answer: {kind}" + (f" ({detail})" if detail else "")
