"""Red team #18: a signed video URL's query (its token) must not reach the task log.

The download's own messages strip the query (``delivery._safe``: "signed URLs carry tokens
there"), but the success lines printed ``task.video_url`` whole: the sync wait
(``SeedanceHook.wait_for_completion``: "Seedance task … SUCCESS after …s: video <url>"), the
trigger's end-in-triggerer line and ``task_support.deliver`` without ``output_path``.
A service (or CDN) that signs its video URLs thus leaked the token into every task log.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from airflow_provider_seedance.hooks.seedance import SeedanceHook
from tests.conftest import connection_json

pytestmark = pytest.mark.integration

TOKEN = "SIGNATURE-TOKEN-d41d8cd98f00b204"
SIGNED = f"https://cdn.example.com/videos/t1.mp4?X-Amz-Signature={TOKEN}&X-Amz-Expires=3600"


class _SignedStatus(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(
            {
                "code": 200,
                "message": "success",
                "data": {
                    "task_id": "t1",
                    "status": "SUCCESS",
                    "response": [SIGNED],
                    "consumed_credits": 8,
                    "created_at": "2026-01-01T00:00:00Z",
                    "request": {"prompt": "a fox", "duration": 4, "resolution": "480p"},
                },
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def signing_service(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SignedStatus)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEFAULT", connection_json(base_url))
    yield base_url
    server.shutdown()
    server.server_close()


def test_the_sync_waits_success_line_does_not_log_the_signed_urls_token(
    signing_service: str, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    task = SeedanceHook().wait_for_completion("t1", poll_interval=0.1, timeout=10)
    assert task.video_url == SIGNED  # the URL itself is kept (it is needed to download)

    out, err = capfd.readouterr()
    logged = out + err + caplog.text
    assert "t1" in logged  # the success line was logged
    assert TOKEN not in logged, [line for line in logged.splitlines() if TOKEN in line]
