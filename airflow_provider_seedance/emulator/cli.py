"""``seedance-emulator``: run the bundled Seedance 2.0 API emulator on loopback.

The one line printed to stdout, ``seedance-emulator listening on http://HOST:PORT`` (``https``
with ``--ssl-certfile``), is the
readiness signal scripts and ``EmulatorProcess`` wait for; everything else goes to stderr
through a formatter that masks API keys.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import ssl
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from aiohttp import web

from airflow_provider_seedance.emulator.config import (
    DEFAULT_API_KEY,
    DEFAULT_CREDITS,
    DEFAULT_VIDEO_TTL_SECONDS,
    EmulatorConfig,
)
from airflow_provider_seedance.emulator.redact import RedactingFormatter, account_label
from airflow_provider_seedance.emulator.server import create_app
from airflow_provider_seedance.emulator.state import StateFileError

log = logging.getLogger("airflow_provider_seedance.emulator")

LISTENING_PREFIX = "seedance-emulator listening on "
ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tfs'


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seedance-emulator",
        description="Local emulator of the Seedance 2.0 video generation API (for development and tests).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8765, help="port to bind; 0 picks a free one (default 8765)"
    )
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help=f"an accepted API key; repeat for several accounts (default {DEFAULT_API_KEY})",
    )
    parser.add_argument(
        "--credits",
        action="append",
        type=_non_negative_int,
        metavar="N",
        help="starting credits of the --api-key in the same position; the last value applies to "
        f"keys without one (default {DEFAULT_CREDITS})",
    )
    parser.add_argument(
        "--generation-seconds",
        type=_non_negative_float,
        metavar="S",
        help="every generation takes exactly S seconds (may be 0 or fractional); "
        "default: realistic times by resolution, duration and audio (about 30-120 s)",
    )
    parser.add_argument("--state-file", type=Path, help="persist tasks and ledger here across restarts")
    parser.add_argument(
        "--allow-local-callbacks",
        action="store_true",
        help="accept callback_url on localhost/private networks, also over plain http",
    )
    parser.add_argument(
        "--video-ttl-seconds",
        type=_non_negative_float,
        default=DEFAULT_VIDEO_TTL_SECONDS,
        metavar="T",
        help="video URLs answer 410 this long after the task finished "
        f"(default {DEFAULT_VIDEO_TTL_SECONDS:g})",
    )
    parser.add_argument(
        "--ssl-certfile",
        type=Path,
        metavar="PEM",
        help="serve HTTPS with this certificate (chain) file, for testing clients behind a private CA",
    )
    parser.add_argument(
        "--ssl-keyfile", type=Path, metavar="PEM", help="private key of --ssl-certfile (if not in it)"
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="stderr log level"
    )
    return parser


def accounts_from_args(keys: Sequence[str] | None, credits: Sequence[int] | None) -> dict[str, int]:
    """Pair keys with credits in order; keys past the last --credits reuse it (or the default)."""
    keys = list(keys or [DEFAULT_API_KEY])
    credits = list(credits or [])
    accounts: dict[str, int] = {}
    for index, key in enumerate(keys):
        if index < len(credits):
            accounts[key] = credits[index]
        else:
            accounts[key] = credits[-1] if credits else DEFAULT_CREDITS
    return accounts


def _configure_logging(level: str, secrets: Sequence[str]) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(secrets, fmt="%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def tls_context(certfile: Path | None, keyfile: Path | None) -> ssl.SSLContext | None:
    """The server TLS context of ``--ssl-certfile``/``--ssl-keyfile``, or None (plain HTTP)."""
    if certfile is None:
        if keyfile is not None:
            raise ValueError("--ssl-keyfile needs --ssl-certfile")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    return context


async def serve(
    config: EmulatorConfig, host: str, port: int, ssl_context: ssl.SSLContext | None = None
) -> None:
    """Run until SIGTERM or SIGINT, then shut down cleanly (state saved, callbacks cancelled).

    With ``ssl_context`` it serves HTTPS (and prints an ``https://`` URL).
    """
    app = create_app(config)
    # A short shutdown timeout: a request stuck in an injected ``slow`` fault must not hold up
    # SIGTERM for the aiohttp default of a minute.
    runner = web.AppRunner(
        app, access_log_format=ACCESS_LOG_FORMAT, handle_signals=False, shutdown_timeout=2.0
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
        bound_port = runner.addresses[0][1]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        log.info(
            "accounts: %s; generation: %s; local callbacks %s",
            ", ".join(f"{account_label(k)}={v}" for k, v in config.api_keys.items()),
            "realistic" if config.generation_seconds is None else f"{config.generation_seconds:g}s",
            "allowed" if config.allow_local_callbacks else "refused",
        )
        scheme = "https" if ssl_context is not None else "http"
        print(f"{LISTENING_PREFIX}{scheme}://{_url_host(host)}:{bound_port}", flush=True)
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()


def config_from_args(args: argparse.Namespace, accounts: dict[str, int]) -> EmulatorConfig:
    """The config from the parsed options: an option's ``dest`` is the config field it sets.

    So a new option named like a config field needs no wiring here; ``api_keys`` is the one
    field built from two options (keys and their credits).
    """
    options = {f.name: getattr(args, f.name) for f in fields(EmulatorConfig) if hasattr(args, f.name)}
    options["api_keys"] = accounts
    return EmulatorConfig(**options)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    accounts = accounts_from_args(args.api_keys, args.credits)
    _configure_logging(args.log_level, list(accounts))
    try:
        config = config_from_args(args, accounts)
        context = tls_context(args.ssl_certfile, args.ssl_keyfile)
        asyncio.run(serve(config, args.host, args.port, context))
    except KeyboardInterrupt:  # platforms without loop signal handlers
        return 0
    except StateFileError as exc:
        # One line, no traceback: the file is the user's to fix or move away.
        log.error("seedance-emulator failed to start: %s", exc)
        return 1
    except (OSError, ValueError, ssl.SSLError) as exc:
        log.error("seedance-emulator failed to start: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
