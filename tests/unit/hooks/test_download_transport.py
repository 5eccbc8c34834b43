"""The video download goes out the way the connection's own requests do (red team #18, D1).

The promises: ``download_video`` sends every request with the ``verify``, ``cert`` and
``proxies`` it is given and a session reading the environment only when ``trust_env`` says
so (defaults: requests' own behaviour, for use without a hook); ``SeedanceHook.download``
gives it the connection's TLS decision, client certificate, proxy and ``trust_env``.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from airflow_provider_seedance.exceptions import SeedanceDownloadError
from airflow_provider_seedance.hooks import seedance as seedance_module
from airflow_provider_seedance.hooks.delivery import DownloadResult, as_storage_path, download_video
from airflow_provider_seedance.hooks.retry import RetryPolicy
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from tests.conftest import connection_json

URL = "https://videos.example.com/fox.mp4"


def _capture(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def get(session: requests.Session, url: str, **kwargs: Any) -> requests.Response:
        seen.append({"url": url, "trust_env": session.trust_env, **kwargs})
        raise requests.ConnectionError("no network in a unit test")

    monkeypatch.setattr(requests.Session, "get", get)
    return seen


def test_every_request_carries_the_given_tls_and_proxy_settings(monkeypatch, tmp_path) -> None:
    seen = _capture(monkeypatch)

    with pytest.raises(SeedanceDownloadError):
        download_video(
            URL,
            as_storage_path(str(tmp_path / "fox.mp4")),
            user_agent="t",
            retry_policy=RetryPolicy(attempts=1),
            verify="/etc/ssl/corp-ca.pem",
            cert=("/c.pem", "/k.pem"),
            proxies={"http": "http://proxy:3128", "https": "http://proxy:3128"},
            trust_env=False,
        )

    assert seen == [
        {
            "url": URL,
            "trust_env": False,
            "stream": True,
            "timeout": (10.0, 60.0),
            "allow_redirects": False,
            "verify": "/etc/ssl/corp-ca.pem",
            "cert": ("/c.pem", "/k.pem"),
            "proxies": {"http": "http://proxy:3128", "https": "http://proxy:3128"},
        }
    ]


def test_without_a_hook_the_download_behaves_as_plain_requests(monkeypatch, tmp_path) -> None:
    seen = _capture(monkeypatch)

    with pytest.raises(SeedanceDownloadError):
        download_video(
            URL,
            as_storage_path(str(tmp_path / "fox.mp4")),
            user_agent="t",
            retry_policy=RetryPolicy(attempts=1),
        )

    assert [(s["trust_env"], s["verify"], s["cert"], s["proxies"]) for s in seen] == [
        (True, True, None, None)
    ]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            {"verify": False, "cert": "/client.pem", "proxy": "http://proxy:3128", "trust_env": False},
            (False, "/client.pem", {"http": "http://proxy:3128", "https": "http://proxy:3128"}, False),
        ),
        ({"verify": "/etc/ssl/corp-ca.pem"}, ("/etc/ssl/corp-ca.pem", None, None, True)),
    ],
    ids=["off-cert-proxy-no-env", "private-ca"],
)
def test_the_hook_downloads_with_its_connections_settings(monkeypatch, tmp_path, extra, expected) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_SEEDANCE_DL", connection_json("https://api.example.com", "sk-k", **extra)
    )
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(seedance_module, "ssl_context", lambda tls: None)  # the CA files are not real

    def fake_download(url: str, target: Any, **kw: Any) -> DownloadResult:
        calls.append(kw)
        return DownloadResult(str(target), 1, "0" * 64, url)

    monkeypatch.setattr(seedance_module, "download_video", fake_download)

    SeedanceHook("seedance_dl").download(URL, tmp_path / "fox.mp4")

    (kw,) = calls
    assert (kw["verify"], kw["cert"], kw["proxies"], kw["trust_env"]) == expected
