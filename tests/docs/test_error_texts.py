"""Every error text the docs quote is one the code produces.

An error is quoted in the Markdown (``docs/``, ``README.md``) as inline code of the form
```` `SeedanceSomethingError: text` ````. For each quote, this test raises that exception the
way a user meets it (a real hook against a real server where there is one) and asserts that
the quoted text is part of ``str(exc)``. A ``…`` in a quote stands for any text: the pieces
around it must appear in that order. So a page may quote a stable prefix of a message and
stay right while the rest of the message is reworded.

A quote of an exception class no scenario below raises fails the test: add the scenario.

The same holds for the messages of ``airflow connections test`` that ``docs/connection.md``
quotes in its table (`` success: `…` `` / `` failure: `…` ``): each is checked against
``SeedanceHook.test_connection()`` run in the situation the row names.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from airflow_provider_seedance.emulator.testing import EmulatorProcess
from tests.conftest import REPO, connection_json
from tests.docs.test_doc_samples import FENCE, MARKDOWN

INLINE_CODE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
QUOTE = re.compile(r"^(?P<cls>Seedance\w*Error): (?P<text>.+)$")


def collect_quotes() -> list[tuple[str, str, str]]:
    """``(where, exception class name, quoted text)`` for every quoted error in the Markdown."""
    quotes = []
    for path in MARKDOWN:
        prose = FENCE.sub("", path.read_text(encoding="utf-8"))
        for span in INLINE_CODE.findall(prose):
            match = QUOTE.match(span.strip())
            if match:
                quotes.append((path.relative_to(REPO).as_posix(), match["cls"], match["text"]))
    return quotes


QUOTES = collect_quotes()

CONNECTION_PAGE = REPO / "docs" / "connection.md"
CONNECTION_QUOTE = re.compile(r"\|\s*(?P<outcome>success|failure): `(?P<text>[^`]+)`")
CONNECTION_QUOTES = [
    (m["outcome"], m["text"]) for m in CONNECTION_QUOTE.finditer(CONNECTION_PAGE.read_text(encoding="utf-8"))
]
#: The host the page's quotes name; a scenario's own base URL is read as this one.
DOC_HOST = "https://seedanceapi.org"


def quoted_in(text: str, message: str) -> bool:
    """Whether ``message`` reads as ``text``, where ``…`` (or ``...``) in ``text`` stands for anything."""
    position = 0
    for piece in re.split(r"…|\.\.\.", text):
        piece = piece.strip()
        found = message.find(piece, position)
        if found < 0:
            return False
        position = found + len(piece)
    return True


@pytest.fixture
def html_server() -> Iterator[str]:
    """A loopback server answering every request with an HTML page, as a wrong host or a proxy does."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><html><body>Welcome to nginx!</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def _status_read(conn_id: str) -> None:
    from airflow_provider_seedance.hooks.seedance import SeedanceHook

    SeedanceHook(conn_id, status_retries=1).get_status("seed0000000000000000")


def _wrong_key(emulator: EmulatorProcess, html_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DOCS_WRONG_KEY", connection_json(emulator.base_url, "sk-not-a-key"))
    _status_read("docs_wrong_key")


def _html_page(emulator: EmulatorProcess, html_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DOCS_HTML", connection_json(html_server))
    _status_read("docs_html")


def _bad_resolution(emulator: EmulatorProcess, html_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_seedance.models import GenerationRequest

    GenerationRequest(prompt="A cat", resolution="1080p")


#: The ways a user meets each quoted exception.
Scenario = Callable[[EmulatorProcess, str, pytest.MonkeyPatch], None]
SCENARIOS: dict[str, list[Scenario]] = {
    "SeedanceAuthError": [_wrong_key],
    "SeedanceResponseError": [_html_page],
    "SeedanceValidationError": [_bad_resolution],
}


def test_quotes_are_found_and_the_matcher_can_fail() -> None:
    assert len(QUOTES) >= 2, QUOTES
    assert quoted_in("API error 401 … invalid", "Seedance API error 401 INVALID_API_KEY: key is invalid")
    assert not quoted_in("an HTML page instead of JSON", "Seedance API error 200 MALFORMED_RESPONSE: a body")
    assert not quoted_in("b … a", "a b")  # order matters


@pytest.mark.integration
@pytest.mark.parametrize(("where", "cls", "text"), QUOTES, ids=[f"{w}:{c}" for w, c, _ in QUOTES])
def test_quoted_error_text_is_what_the_code_says(
    where: str,
    cls: str,
    text: str,
    emulator: EmulatorProcess,
    html_server: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import airflow_provider_seedance.exceptions as exceptions

    expected = getattr(exceptions, cls, None)
    assert expected is not None, f"{where}: no exception class {cls}"
    assert cls in SCENARIOS, f"{where}: quotes {cls}; add a scenario raising it to SCENARIOS"
    messages = []
    for scenario in SCENARIOS[cls]:
        with pytest.raises(expected) as raised:
            scenario(emulator, html_server, monkeypatch)
        messages.append(str(raised.value))
        if quoted_in(text, str(raised.value)):
            return
    pytest.fail(f"{where} quotes {cls}: {text!r}; the code says {messages}")


def test_every_scenario_names_an_exception_class() -> None:
    import airflow_provider_seedance.exceptions as exceptions

    for name in SCENARIOS:
        assert isinstance(getattr(exceptions, name, None), type), name


def _connection_test_results(
    emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[bool, str]]:
    """``test_connection()`` in each situation the page's table names, its host read as the page's."""
    import socket

    from airflow_provider_seedance.hooks.seedance import SeedanceHook

    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    situations = {
        "docs_ok": (emulator.base_url, connection_json(emulator.base_url)),
        "docs_wrong_key": (emulator.base_url, connection_json(emulator.base_url, "sk-not-a-key")),
        "docs_unreachable": (closed, connection_json(closed)),
        "seedance_default": (emulator.base_url, connection_json(emulator.base_url, "")),  # no key
    }
    results = []
    for conn_id, (base_url, conn) in situations.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn)
        ok, message = SeedanceHook(conn_id).test_connection()
        results.append((ok, message.replace(base_url, DOC_HOST)))
    return results


@pytest.mark.integration
def test_connection_page_quotes_what_connection_test_says(
    emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(CONNECTION_QUOTES) >= 4, CONNECTION_QUOTES
    results = _connection_test_results(emulator, monkeypatch)
    for outcome, text in CONNECTION_QUOTES:
        said = [message for ok, message in results if ok == (outcome == "success")]
        assert any(quoted_in(text, message) for message in said), (
            f"{CONNECTION_PAGE.name} quotes {outcome}: {text!r}; test_connection says {said}"
        )
