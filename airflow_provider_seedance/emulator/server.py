"""The emulated Seedance 2.0 HTTP server: the two API endpoints, video files and an admin surface.

This module models the *server* only. It imports nothing from the rest of the provider so
that the provider is tested against an independent reading of the API guide.

Routes:

- ``POST /v1/generate`` and ``GET /v1/status``: the API, exactly as the guide shows it.
- ``GET|HEAD /videos/{task_id}.mp4``: the "CDN" the status response points to.
- ``/_emulator/...``: ledger, task list, fault injection, hold, reset, expiry (not part of the API).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from airflow_provider_seedance.emulator import catalog
from airflow_provider_seedance.emulator.config import EmulatorConfig
from airflow_provider_seedance.emulator.errors import ApiError, error_body, json_response, success_body
from airflow_provider_seedance.emulator.faults import CALLBACK_ENDPOINT, FaultBook, FaultRule
from airflow_provider_seedance.emulator.hosts import is_public_host, is_public_ip
from airflow_provider_seedance.emulator.redact import account_label, mask_key
from airflow_provider_seedance.emulator.state import IN_PROGRESS, SUCCESS, EmulatorState, Task, iso_utc
from airflow_provider_seedance.emulator.validation import parse_generate
from airflow_provider_seedance.emulator.video import parse_range, render_video

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Garbage served as a "video" by the ``malformed`` fault: a 200 with the right content type
# but an HTML error page for a body, as a misbehaving CDN or captive portal sends.
MALFORMED_VIDEO = b"<html><body><h1>502 Bad Gateway</h1></body></html>\n"

#: Changes that can be recomputed after a crash (a task finishing, a callback sent, counters)
#: are written at most this often; a charge is written before the generate answer goes out.
SAVE_COALESCE_SECONDS = 0.5

#: What a ``wrong_body`` callback fault claims: a video and a price that do not exist.
FORGED_CREDITS = 999999


class PublicOnlyResolver(AbstractResolver):
    """Resolves callback hosts and drops every non-public address.

    Validation at submit time reads the URL; this guard reads what DNS answers at send time,
    so a public-looking name that resolves to 127.0.0.1 is never connected to either.
    """

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if is_public_ip(ipaddress.ip_address(r["host"].split("%", 1)[0]))]
        if not allowed:
            raise OSError(f"callback host {host} resolves only to non-public addresses")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


class Emulator:
    """Holds the state of one emulator instance and implements its request handlers."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.state = EmulatorState.load(config.api_keys, config.state_file)
        self._save_handle: asyncio.TimerHandle | None = None
        self.faults = FaultBook()
        self._in_flight_generate = 0
        self._wake = asyncio.Event()
        self._callbacks: set[asyncio.Task[None]] = set()
        #: Forged (``wrong_body``) callbacks in flight, so the true one is always sent after.
        self._forged: dict[str, asyncio.Future[None]] = {}
        self._session: aiohttp.ClientSession | None = None
        #: While set (``POST /_emulator/hold``), no generation finishes: tests that need work
        #: in flight for as long as a slow machine takes to set it up. Not kept over a restart.
        self._held = False

    # ---- lifecycle ------------------------------------------------------------------------

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        """aiohttp cleanup context: start the completer and callback client, stop them cleanly."""
        connector = (
            None if self.config.allow_local_callbacks else aiohttp.TCPConnector(resolver=PublicOnlyResolver())
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.config.callback_timeout_seconds),
            headers={"User-Agent": "seedance-emulator"},
        )
        # Callbacks owed from before a restart (finished, but the POST never completed) ...
        for task in self.state.tasks.values():
            if task.finished and task.callback_url and not task.callback_done:
                self._schedule_callback(task)
        # ... then tasks that fell due while the emulator was down (these schedule their own).
        self._settle()
        completer = asyncio.create_task(self._complete_due_tasks(), name="seedance-emulator-completer")
        try:
            yield
        finally:
            completer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await completer
            await self._cancel_callbacks()
            await self._session.close()
            self._save_now()

    async def _complete_due_tasks(self) -> None:
        """Finish tasks at their due time so callbacks fire even if nobody polls."""
        while True:
            self._wake.clear()
            try:
                self._settle()
            except Exception:
                log.exception("could not settle due tasks")
            next_due = None if self._held else self.state.next_due()
            timeout = 1.0 if next_due is None else min(1.0, max(0.0, next_due - time.time()) + 0.001)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _settle(self) -> None:
        """Apply every due transition now; handlers call this so lazy reads are exact too."""
        if self._held:
            return
        finished = self.state.settle_due(time.time())
        if not finished:
            return
        for task in finished:
            if task.callback_url and not task.callback_done:
                self._schedule_callback(task)
        # A finished task is recomputed from due_at after a crash, so the write may wait.
        self._save_soon()

    # ---- persistence ----------------------------------------------------------------------

    def _save_now(self) -> None:
        """Write the state file now (atomic), folding in any pending coalesced write."""
        if self._save_handle is not None:
            self._save_handle.cancel()
            self._save_handle = None
        self.state.save()

    def _save_soon(self) -> None:
        """Write within ``SAVE_COALESCE_SECONDS``; many changes in that window cost one write."""
        if self.state.state_file is None or self._save_handle is not None:
            return
        self._save_handle = asyncio.get_running_loop().call_later(SAVE_COALESCE_SECONDS, self._save_now)

    # ---- callbacks ------------------------------------------------------------------------

    def _schedule_callback(self, task: Task) -> None:
        self._spawn(self._send_callback(task), f"callback-{task.task_id}")

    def _spawn(self, coro: Awaitable[None], name: str) -> asyncio.Future[None]:
        job = asyncio.ensure_future(coro)
        job.set_name(name)
        self._callbacks.add(job)
        job.add_done_callback(self._callbacks.discard)
        return job

    def _may_call(self, url: str) -> bool:
        """The send-time check: never a non-public host unless ``--allow-local-callbacks``."""
        if self.config.allow_local_callbacks:
            return True
        try:
            host = urlsplit(url).hostname
        except ValueError:
            return False
        return host is not None and is_public_host(host)

    async def _post_callback(self, url: str, payload: dict[str, Any]) -> tuple[bool, str]:
        assert self._session is not None
        if not self._may_call(url):
            return False, "refused: not a public host"
        try:
            async with self._session.post(url, json=payload) as response:
                await response.read()
                return 200 <= response.status < 300, f"HTTP {response.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return False, type(exc).__name__

    async def _send_forged_callback(self, task: Task) -> None:
        """The ``wrong_body`` fault: claim SUCCESS for a task that has not finished."""
        assert task.callback_url is not None
        forged = {
            "task_id": task.task_id,
            "status": SUCCESS,
            "consumed_credits": FORGED_CREDITS,
            "created_at": iso_utc(task.created_at),
            "request": task.request,
            "response": [f"https://forged.invalid/videos/{task.task_id}.mp4"],
            "error_message": None,
        }
        delivered, outcome = await self._post_callback(task.callback_url, success_body(forged))
        self.state.counters.callbacks_forged += 1
        log.info(
            "forged callback (wrong_body fault) for task %s to %s %s (%s)",
            task.task_id,
            _url_for_log(task.callback_url),
            "delivered" if delivered else "failed",
            outcome,
        )

    async def _send_callback(self, task: Task) -> None:
        """POST the status payload once (twice for ``duplicate``); a failure is counted, not retried."""
        assert task.callback_url is not None
        fault = task.callback_fault
        forged = self._forged.pop(task.task_id, None)
        if forged is not None:
            await asyncio.wait([forged])  # the lie arrives first, whatever the generation time
        if fault == "delay":
            await asyncio.sleep(task.callback_delay)
        if fault == "drop":
            attempts = 0
        elif fault == "duplicate":
            attempts = 2
        else:
            attempts = 1
        payload = success_body(task.status_data(task.origin))
        target = _url_for_log(task.callback_url)
        results = [await self._post_callback(task.callback_url, payload) for _ in range(attempts)]
        if self.state.tasks.get(task.task_id) is not task:
            return  # reset while the callback was in flight
        task.callback_done = True
        counters = self.state.counters
        if fault == "drop":
            counters.callbacks_dropped += 1
            log.info("callback for task %s to %s dropped (drop fault)", task.task_id, target)
        for delivered, outcome in results:
            if delivered:
                counters.callbacks_sent += 1
            else:
                counters.callbacks_failed += 1
            log.info(
                "callback for task %s to %s %s (%s%s)",
                task.task_id,
                target,
                "delivered" if delivered else "failed",
                outcome,
                f", {fault} fault" if fault in ("delay", "duplicate") else "",
            )
        self._save_soon()

    async def _cancel_callbacks(self) -> None:
        jobs = list(self._callbacks)
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)

    # ---- helpers --------------------------------------------------------------------------

    def _authenticate(self, request: web.Request) -> str:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or token not in self.config.api_keys:
            log.info(
                "%s %s rejected: INVALID_API_KEY (%s)",
                request.method,
                request.path,
                mask_key(token) if token else "no key",
            )
            raise ApiError(401, "INVALID_API_KEY")
        return token

    @staticmethod
    def _origin(request: web.Request) -> str:
        """Scheme and authority the client used, so video URLs work on any port or host name."""
        return f"{request.scheme}://{request.host}"

    def _count(self, counter: str) -> None:
        """Count a request. Not a reason to write the state file: counters ride along with
        the next write (or the one at shutdown), so a status read never rewrites the file."""
        counters = self.state.counters
        setattr(counters, counter, getattr(counters, counter) + 1)

    def _take_fault(
        self, endpoint: str, request: web.Request
    ) -> tuple[FaultRule | None, web.Response | None]:
        """The fault rule this request meets (logged), and the error it answers with instead.

        Every endpoint answers an injected ``http_500``/``http_429`` before doing anything;
        when the other faults strike differs by endpoint, so the caller applies them.
        """
        rule = self.faults.take(endpoint)
        if rule is None:
            return None, None
        log.info("fault %s injected on %s %s", rule.fault, request.method, request.path)
        if rule.fault in ("http_500", "http_429"):
            return rule, _fault_error(rule)
        return rule, None

    # ---- API ------------------------------------------------------------------------------

    async def generate(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/generate``. Faults drop/slow/malformed hit *after* the task exists."""
        self._in_flight_generate += 1
        counters = self.state.counters
        counters.max_concurrent_generate = max(counters.max_concurrent_generate, self._in_flight_generate)
        try:
            self._count("generate_requests")
            rule, fault_error = self._take_fault("generate", request)
            if fault_error is not None:
                return fault_error
            try:
                response: web.Response = self._accept_generation(request, await request.read())
            except ApiError as exc:
                response = exc.response()
            if rule is None or await _slowed(rule):
                return response
            if rule.fault == "drop":
                return _drop(request)
            return _malformed(response)
        finally:
            self._in_flight_generate -= 1

    def _accept_generation(self, request: web.Request, raw: bytes) -> web.Response:
        account_key = self._authenticate(request)
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ApiError(400, "INVALID_REQUEST", "The request body is not valid JSON") from None
        params = parse_generate(body, self.config.allow_local_callbacks)
        account = self.state.accounts[account_key]
        if account.balance < params.price:
            log.info(
                "generate rejected: INSUFFICIENT_CREDITS (account %s, balance %d, price %d)",
                account_label(account_key),
                account.balance,
                params.price,
            )
            raise ApiError(
                402,
                "INSUFFICIENT_CREDITS",
                f"Not enough credits for this operation (balance {account.balance}, price {params.price})",
            )
        outcome = self.faults.take("outcome")
        callback_rule = self.faults.take(CALLBACK_ENDPOINT) if params.callback_url else None
        now = time.time()
        seconds = self.config.generation_seconds
        if seconds is None:
            seconds = catalog.realistic_generation_seconds(
                params.resolution, params.duration, params.generate_audio
            )
        task = Task(
            task_id=self.state.new_task_id(),
            account=account_key,
            request=body,
            created_at=now,
            due_at=now + seconds,
            price=params.price,
            resolution=params.resolution,
            aspect_ratio=params.aspect_ratio,
            callback_url=params.callback_url,
            origin=self._origin(request),
            failure=outcome.error_message if outcome is not None else None,
            duration=params.duration,
            callback_fault=callback_rule.fault if callback_rule is not None else None,
            callback_delay=callback_rule.delay if callback_rule is not None else 0.0,
        )
        self.state.add_task(task)
        # A charge must be on disk before the answer leaves: a returned task id is never lost.
        self._save_now()
        self._wake.set()
        if task.callback_fault == "wrong_body":
            job = self._spawn(self._send_forged_callback(task), f"forged-callback-{task.task_id}")
            self._forged[task.task_id] = job
            job.add_done_callback(lambda _: self._forged.pop(task.task_id, None))
        log.info(
            "task %s created (account %s, %s %s %ss audio=%s, %d credits, due in %.1fs%s%s)",
            task.task_id,
            account_label(account_key),
            params.resolution,
            params.aspect_ratio,
            params.duration,
            params.generate_audio,
            params.price,
            seconds,
            ", will fail" if task.failure else "",
            f", callback fault {task.callback_fault}" if task.callback_fault else "",
        )
        return json_response(success_body({"task_id": task.task_id, "status": IN_PROGRESS}))

    async def status(self, request: web.Request) -> web.StreamResponse:
        """``GET /v1/status?task_id=…``; another account's task is indistinguishable from none."""
        self._count("status_requests")
        rule, fault_error = self._take_fault("status", request)
        if fault_error is not None:
            return fault_error
        if rule is not None and rule.fault == "drop":
            return _drop(request)
        await _slowed(rule)
        try:
            account_key = self._authenticate(request)
            task_id = request.query.get("task_id", "").strip()
            if not task_id:
                raise ApiError(400, "INVALID_REQUEST", "The task_id query parameter is required")
            self._settle()
            task = self.state.tasks.get(task_id)
            if task is None or task.account != account_key:
                raise ApiError(404, "TASK_NOT_FOUND")
            response = json_response(success_body(task.status_data(self._origin(request))))
        except ApiError as exc:
            response = exc.response()
        if rule is not None and rule.fault == "malformed":
            return _malformed(response)
        return response

    async def video(self, request: web.Request) -> web.StreamResponse:
        """``GET|HEAD /videos/{task_id}.mp4``: no auth, like a signed CDN URL; supports Range."""
        self._count("video_requests")
        rule, fault_error = self._take_fault("video", request)
        if fault_error is not None:
            return fault_error
        await _slowed(rule)
        self._settle()
        task = self.state.tasks.get(request.match_info["task_id"])
        if task is None or task.status != SUCCESS:
            return ApiError(404, "VIDEO_NOT_FOUND").response()
        if task.expired or time.time() >= task.due_at + self.config.video_ttl_seconds:
            return ApiError(410, "VIDEO_EXPIRED").response()
        duration = task.duration or _requested_duration(task.request)
        data = render_video(task.resolution, task.aspect_ratio, duration, task.task_id)
        if rule is not None and rule.fault == "malformed":
            return web.Response(body=MALFORMED_VIDEO, content_type="video/mp4")
        if rule is not None and rule.fault == "drop":
            return await _partial_then_drop(request, data)
        headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=3600"}
        try:
            byte_range = parse_range(request.headers.get("Range"), len(data))
        except ValueError:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
        if byte_range is None:
            return web.Response(body=data, content_type="video/mp4", headers=headers)
        start, end = byte_range
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        return web.Response(body=data[start : end + 1], status=206, content_type="video/mp4", headers=headers)

    # ---- admin ----------------------------------------------------------------------------

    async def admin_health(self, request: web.Request) -> web.StreamResponse:
        return json_response({"status": "ok"})

    async def admin_ledger(self, request: web.Request) -> web.StreamResponse:
        self._settle()
        return json_response(self.state.ledger_view())

    async def admin_tasks(self, request: web.Request) -> web.StreamResponse:
        self._settle()
        return json_response([task.admin_view() for task in self.state.tasks.values()])

    async def admin_add_faults(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
            if isinstance(body, dict) and "rules" not in body and "endpoint" in body:
                raw_rules: Any = [body]  # one rule posted on its own
            else:
                raw_rules = body.get("rules") if isinstance(body, dict) else None
            if not isinstance(raw_rules, list):
                raise ValueError('body must be one rule object or {"rules": [...]}')
            rules = [FaultRule.from_json(raw) for raw in raw_rules]
        except ValueError as exc:  # includes json.JSONDecodeError
            return json_response(error_body(400, "INVALID_REQUEST", str(exc)), status=400)
        self.faults.add(rules)
        log.info("fault rules added: %s", ", ".join(f"{r.endpoint}/{r.fault}x{r.times}" for r in rules))
        return json_response({"rules": self.faults.pending()})

    async def admin_list_faults(self, request: web.Request) -> web.StreamResponse:
        return json_response({"rules": self.faults.pending()})

    async def admin_clear_faults(self, request: web.Request) -> web.StreamResponse:
        self.faults.clear()
        return json_response({"rules": []})

    async def admin_hold(self, request: web.Request) -> web.StreamResponse:
        """``{"hold": true}`` keeps every generation in progress; ``false`` lets the due ones finish."""
        try:
            body = await request.json()
        except ValueError:
            body = None
        hold = body.get("hold") if isinstance(body, dict) else None
        if not isinstance(hold, bool):
            message = 'body must be {"hold": true} or {"hold": false}'
            return json_response(error_body(400, "INVALID_REQUEST", message), status=400)
        self._held = hold
        log.info("generations %s", "held in progress" if hold else "released")
        self._wake.set()
        self._settle()
        in_progress = sum(1 for task in self.state.tasks.values() if not task.finished)
        return json_response({"hold": hold, "in_progress": in_progress})

    async def admin_reset(self, request: web.Request) -> web.StreamResponse:
        await self._cancel_callbacks()
        self.faults.clear()
        self._held = False
        self.state.reset()
        self._save_now()
        log.info("state reset")
        return json_response(self.state.ledger_view())

    async def admin_expire(self, request: web.Request) -> web.StreamResponse:
        task = self.state.tasks.get(request.match_info["task_id"])
        if task is None:
            return ApiError(404, "TASK_NOT_FOUND").response()
        task.expired = True
        self._save_now()
        return json_response(task.admin_view())


def _requested_duration(request: Any) -> str:
    """The duration of a task stored before it was recorded separately (older state files)."""
    value = request.get("duration") if isinstance(request, dict) else None
    value = str(value) if value is not None else catalog.DEFAULT_DURATION
    return value if value in catalog.DURATIONS else catalog.DEFAULT_DURATION


async def _slowed(rule: FaultRule | None) -> bool:
    """Wait out a ``slow`` fault (the answer comes late); whether there was one."""
    if rule is None or rule.fault != "slow":
        return False
    await asyncio.sleep(rule.delay)
    return True


def _fault_error(rule: FaultRule) -> web.Response:
    if rule.fault == "http_429":
        seconds = rule.retry_after
        shown = str(int(seconds)) if seconds == int(seconds) else str(seconds)
        return ApiError(429, "RATE_LIMITED", f"Too many requests, retry after {shown} seconds").response(
            headers={"Retry-After": shown}
        )
    return ApiError(500, "INTERNAL_ERROR").response()


def _drop(request: web.Request) -> web.Response:
    """Close the TCP connection without answering.

    aiohttp then fails to write the returned response to the closed transport and treats
    it as a client disconnect, so nothing reaches the client and nothing is logged as an error.
    """
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=204)


async def _partial_then_drop(request: web.Request, data: bytes) -> web.StreamResponse:
    """Headers with the full Content-Length, a third of the body, then a dropped connection."""
    response = web.StreamResponse(status=200, headers={"Accept-Ranges": "bytes"})
    response.content_type = "video/mp4"
    response.content_length = len(data)
    await response.prepare(request)
    if request.method != "HEAD":
        await response.write(data[: len(data) // 3])
    if request.transport is not None:
        request.transport.close()
    return response


def _malformed(response: web.Response) -> web.Response:
    """A 200 whose JSON is cut in half, as a proxy that truncates bodies produces."""
    text = response.text or "{}"
    return web.Response(text=text[: max(1, len(text) // 2)], status=200, content_type="application/json")


def _url_for_log(url: str) -> str:
    """Scheme, host and path only: query strings often carry tokens."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


@web.middleware
async def _error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error, including unknown routes and crashes, in the contract's JSON shape."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPNotFound:
        return ApiError(404, "NOT_FOUND").response()
    except web.HTTPMethodNotAllowed as exc:
        return ApiError(405, "METHOD_NOT_ALLOWED").response(
            headers={"Allow": ",".join(sorted(exc.allowed_methods))}
        )
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return ApiError(500, "INTERNAL_ERROR").response()


EMULATOR_KEY: web.AppKey[Emulator] = web.AppKey("seedance_emulator", Emulator)


def create_app(config: EmulatorConfig | None = None) -> web.Application:
    """Build the aiohttp application; the state (file) is loaded here, the completer starts on startup."""
    emulator = Emulator(config or EmulatorConfig())
    app = web.Application(middlewares=[_error_middleware])
    app[EMULATOR_KEY] = emulator
    app.cleanup_ctx.append(emulator.lifecycle)
    # A table, one line per route (the duplicate-code check lists its halves as the same shape).
    app.router.add_routes(
        [
            web.post("/v1/generate", emulator.generate),
            web.get("/v1/status", emulator.status),
            web.get("/videos/{task_id}.mp4", emulator.video),
            web.get("/_emulator/health", emulator.admin_health),
            web.get("/_emulator/ledger", emulator.admin_ledger),
            web.get("/_emulator/tasks", emulator.admin_tasks),
            web.post("/_emulator/tasks/{task_id}/expire", emulator.admin_expire),
            web.get("/_emulator/faults", emulator.admin_list_faults),
            web.post("/_emulator/faults", emulator.admin_add_faults),
            web.delete("/_emulator/faults", emulator.admin_clear_faults),
            web.post("/_emulator/reset", emulator.admin_reset),
            web.post("/_emulator/hold", emulator.admin_hold),
        ]
    )
    return app


__all__ = ["EMULATOR_KEY", "Emulator", "create_app"]
