"""What the exploration test drives: task tries against the real emulator, and a fault proxy.

* :class:`Store` / :class:`FakeTI` / :func:`try_context` run an operator's ``execute`` the way a
  task try does (as in ``tests/integration/test_money_rules.py``): the store is the task state
  store of one task instance and survives retries and clears; a "kill" is :class:`Killed`, a
  ``BaseException`` thrown from the store's N-th write, as a SIGKILL stops a worker between two
  instructions.
* :class:`FaultProxy` sits in front of the emulator and adds the one fault the emulator cannot
  make: the generate POST is *forwarded* (the generation exists and is billed) and the client
  gets a 5xx whose body names any error code (``RATE_LIMITED``, ``INVALID_API_KEY``, ...).
"""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from tests.state_store import Killed as Killed  # re-export for the exploration test
from tests.state_store import Store as Store


class FakeTI:
    """Collects the XComs one try pushes (Airflow clears them when the next try starts)."""

    def __init__(self) -> None:
        self.dag_id, self.run_id, self.task_id = "explore", "run", "task"
        self.map_index, self.try_number = -1, 1
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


class _NoEvents(dict):  # type: ignore[type-arg]
    def __missing__(self, key: Any) -> None:
        return None


def try_context(store: Store) -> dict[str, Any]:
    return {"task_state_store": store, "ti": FakeTI(), "outlet_events": _NoEvents()}


#: Response headers the proxy does not copy (it sends the whole body with its own length).
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}


class FaultProxy:
    """A loopback HTTP proxy to the emulator that can turn a *created* generation into a 5xx.

    ``add_post_5xx(503, "RATE_LIMITED")``: the next generate POST is forwarded, the emulator
    creates (and bills) the generation, and the client gets ``503`` with body
    ``{"code": 503, "message": "RATE_LIMITED: ...", "data": null}``. Everything else passes
    through; a connection the emulator drops is dropped towards the client too.
    """

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._pending: deque[tuple[int, str]] = deque()
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy._forward(self)

            do_POST = do_GET
            do_HEAD = do_GET

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="fault-proxy")
        self._thread.start()

    def add_post_5xx(self, status: int, code: str, times: int = 1) -> None:
        with self._lock:
            self._pending.extend([(status, code)] * times)

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _take(self, method: str, path: str) -> tuple[int, str] | None:
        if method != "POST" or not path.startswith("/v1/generate"):
            return None
        with self._lock:
            return self._pending.popleft() if self._pending else None

    def _forward(self, handler: BaseHTTPRequestHandler) -> None:
        method, path = handler.command, handler.path
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        fault = self._take(method, path)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host", "connection")}
        connection = http.client.HTTPConnection(*self._upstream, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers)
            upstream = connection.getresponse()
            payload = upstream.read()
        except (OSError, http.client.HTTPException):
            handler.close_connection = True  # the emulator dropped it: so do we, without a word
            return
        finally:
            connection.close()
        status, reply_headers = upstream.status, upstream.getheaders()
        if fault is not None:
            status, code = fault
            self.injected[f"post_{status}_{code}"] += 1
            payload = json.dumps({"code": status, "message": f"{code}: back end overloaded", "data": None})
            payload_bytes = payload.encode()
            reply_headers = [("Content-Type", "application/json")]
        else:
            payload_bytes = payload
        try:
            handler.send_response(status)
            for name, value in reply_headers:
                if name.lower() not in _HOP_HEADERS:
                    handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(payload_bytes)))
            handler.end_headers()
            if method != "HEAD":
                handler.wfile.write(payload_bytes)
        except OSError:
            pass  # the client gave up (read timeout): the answer is lost, as intended


@contextmanager
def env_var(name: str, value: str) -> Iterator[None]:
    import os

    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old
