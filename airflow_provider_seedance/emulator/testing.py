"""``EmulatorProcess``: run the emulator as a real subprocess for tests (ours and users').

A subprocess, not an in-process app, because tests should exercise the same sockets,
process boundaries and restarts a client meets in production. Stdlib only, so it works in
any test environment that has this package installed.

    with EmulatorProcess(api_keys={"sk-test": 100}, generation_seconds=0) as emulator:
        requests.post(f"{emulator.base_url}/v1/generate", ...)
        assert emulator.ledger()["accounts"]["sk-test"]["charged"] == 28
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from airflow_provider_seedance.emulator.redact import account_label

LISTENING_PREFIX = "seedance-emulator listening on "
DEFAULT_API_KEY = "sk-emulator-local"

_live: weakref.WeakSet[EmulatorProcess] = weakref.WeakSet()


@atexit.register
def _stop_leftovers() -> None:
    """Last line of defence: no emulator outlives the interpreter that started it."""
    for emulator in list(_live):
        emulator.stop()


class EmulatorError(RuntimeError):
    """The emulator did not start, or an admin call failed."""


class EmulatorProcess:
    """One emulator subprocess on loopback, with helpers for its admin surface."""

    def __init__(
        self,
        api_keys: Mapping[str, int] | None = None,
        generation_seconds: float | None = 0.5,
        state_file: str | os.PathLike[str] | None = None,
        allow_local_callbacks: bool = False,
        extra_args: Iterable[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout: float = 20.0,
        log_path: str | os.PathLike[str] | None = None,
        ssl_certfile: str | os.PathLike[str] | None = None,
        ssl_keyfile: str | os.PathLike[str] | None = None,
        ssl_cafile: str | os.PathLike[str] | None = None,
    ) -> None:
        """``ssl_certfile``/``ssl_keyfile``: serve HTTPS; ``ssl_cafile``: the CA the admin
        helpers trust for it (default: ``ssl_certfile`` itself, for a self-signed one)."""
        self.api_keys: dict[str, int] = dict(api_keys) if api_keys else {DEFAULT_API_KEY: 10000}
        self.generation_seconds = generation_seconds
        self.state_file = Path(state_file) if state_file is not None else None
        self.allow_local_callbacks = allow_local_callbacks
        self.extra_args = tuple(extra_args)
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="seedance-emulator-", suffix=".log")
            os.close(fd)
            log_path = name
        self.log_path = Path(log_path)
        self.ssl_certfile = ssl_certfile
        self.ssl_keyfile = ssl_keyfile
        self.ssl_cafile = ssl_cafile if ssl_cafile is not None else ssl_certfile
        self.base_url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    # ---- process lifecycle -------------------------------------------------------------------

    @property
    def api_key(self) -> str:
        """The first configured key, for the common single-account test."""
        return next(iter(self.api_keys))

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def command(self) -> list[str]:
        args = [sys.executable, "-m", "airflow_provider_seedance.emulator", "--host", self.host]
        args += ["--port", str(self.port)]
        for key, credits in self.api_keys.items():
            args += ["--api-key", key, "--credits", str(credits)]
        if self.generation_seconds is not None:
            args += ["--generation-seconds", repr(float(self.generation_seconds))]
        if self.state_file is not None:
            args += ["--state-file", str(self.state_file)]
        if self.allow_local_callbacks:
            args.append("--allow-local-callbacks")
        if self.ssl_certfile is not None:
            args += ["--ssl-certfile", str(self.ssl_certfile)]
        if self.ssl_keyfile is not None:
            args += ["--ssl-keyfile", str(self.ssl_keyfile)]
        args += list(self.extra_args)
        return args

    def start(self) -> EmulatorProcess:
        """Start and wait (bounded) for the listening line; on any failure, leave nothing running."""
        if self.running:
            return self
        lines: queue.Queue[str | None] = queue.Queue()
        with open(self.log_path, "ab") as log_file:
            self._process = subprocess.Popen(
                self.command(), stdout=subprocess.PIPE, stderr=log_file, stdin=subprocess.DEVNULL
            )
        _live.add(self)
        try:
            assert self._process.stdout is not None
            self._reader = threading.Thread(
                target=_pump_lines, args=(self._process.stdout, lines), daemon=True, name="emulator-stdout"
            )
            self._reader.start()
            self.base_url = self._wait_for_listening(lines)
            self.port = int(self.base_url.rsplit(":", 1)[1])
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_for_listening(self, lines: queue.Queue[str | None]) -> str:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EmulatorError(
                    f"emulator did not start within {self.startup_timeout}s{self._log_tail()}"
                )
            try:
                line = lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line is None:
                assert self._process is not None
                code = self._process.wait()
                raise EmulatorError(f"emulator exited with code {code} before listening{self._log_tail()}")
            if line.startswith(LISTENING_PREFIX):
                return line[len(LISTENING_PREFIX) :].strip()

    def _log_tail(self, chars: int = 2000) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return f"; log tail:\n{text[-chars:]}" if text else ""

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait, then kill; returns the exit code (None if it was not started)."""
        process = self._process
        if process is None:
            return None
        try:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=timeout)
        finally:
            if process.stdout is not None:
                process.stdout.close()
            if self._reader is not None:
                self._reader.join(timeout=5)
            self._process = None
            self._reader = None
            _live.discard(self)
        return process.returncode

    def restart(self) -> EmulatorProcess:
        """Stop, then start again on the same port with the same state file."""
        self.stop()
        return self.start()

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def read_log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    # ---- admin surface -------------------------------------------------------------------

    def _admin(self, method: str, path: str, body: Any = None) -> Any:
        if not self.base_url:
            raise EmulatorError("emulator is not running")
        data = json.dumps(body).encode() if body is not None else None
        # The URL is our own loopback emulator, never user input.
        request = urllib.request.Request(  # noqa: S310
            f"{self.base_url}/_emulator/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        try:
            context = None
            if self.ssl_cafile is not None:
                context = ssl.create_default_context(cafile=str(self.ssl_cafile))
            with urllib.request.urlopen(request, timeout=10, context=context) as response:  # noqa: S310
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise EmulatorError(f"{method} /_emulator/{path}: HTTP {exc.code}: {exc.read()!r}") from exc

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._admin("GET", "health")
        return result

    def _raw_keys(self) -> dict[str, str]:
        """Account label -> raw key, for the keys this process was started with."""
        return {account_label(key): key for key in self.api_keys}

    def ledger(self, raw: bool = False) -> dict[str, Any]:
        """``GET /_emulator/ledger``, with ``accounts`` keyed by the raw API keys.

        The emulator names accounts only by their masked label (``sk-…0001#1a2b3c4d``); this
        helper knows the keys it started the emulator with and maps the labels back, so a
        test can write ``ledger()["accounts"][KEY]``. Accounts it does not know (loaded from
        a state file) keep their label. ``raw=True`` returns the answer as the server sent it.
        """
        result: dict[str, Any] = self._admin("GET", "ledger")
        if not raw:
            keys = self._raw_keys()
            result["accounts"] = {keys.get(label, label): a for label, a in result["accounts"].items()}
        return result

    def tasks(self, raw: bool = False) -> list[dict[str, Any]]:
        """``GET /_emulator/tasks``; each ``account`` mapped back to its raw key as in ``ledger``."""
        result: list[dict[str, Any]] = self._admin("GET", "tasks")
        if not raw:
            keys = self._raw_keys()
            for task in result:
                task["account"] = keys.get(task["account"], task["account"])
        return result

    def add_faults(self, *rules: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Append rules, e.g. ``add_faults({"endpoint": "status", "fault": "http_500", "times": 2})``
        or ``add_faults({"endpoint": "callback", "fault": "drop"})``."""
        result: dict[str, Any] = self._admin("POST", "faults", {"rules": [dict(r) for r in rules]})
        return list(result["rules"])

    def faults(self) -> list[dict[str, Any]]:
        """The pending fault rules (``GET /_emulator/faults``)."""
        result: dict[str, Any] = self._admin("GET", "faults")
        return list(result["rules"])

    def clear_faults(self) -> None:
        self._admin("DELETE", "faults")

    def hold(self, hold: bool = True) -> int:
        """Keep every generation in progress (``hold=False`` lets the due ones finish); the
        number of generations in progress is returned."""
        result: dict[str, Any] = self._admin("POST", "hold", {"hold": hold})
        return int(result["in_progress"])

    def reset(self) -> dict[str, Any]:
        result: dict[str, Any] = self._admin("POST", "reset")
        return result

    def expire(self, task_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._admin("POST", f"tasks/{urllib.parse.quote(task_id, safe='')}/expire")
        return result


def _pump_lines(stream: IO[bytes], lines: queue.Queue[str | None]) -> None:
    """Forward stdout lines to the queue, then None at EOF (keeps the pipe from filling up)."""
    try:
        for raw in iter(stream.readline, b""):
            lines.put(raw.decode("utf-8", errors="replace"))
    except (OSError, ValueError):
        pass
    finally:
        lines.put(None)


__all__ = ["EmulatorError", "EmulatorProcess"]
