"""The Seedance connection type and extra link, as a user meets them in the Airflow UI.

A real ``airflow api-server`` (from tests/ui) with this provider installed, driven by
headless Debian Chromium: the connection form shows only what a Seedance connection needs,
testing a connection from the UI's API tells good from bad without spending, and a finished
generation's task instance offers the "Seedance video" link. Runs on Airflow 3.3 (form from
provider metadata) and 3.1 (form from the hook's classmethods; needs ``wtforms``).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from importlib import metadata
from urllib.parse import urlencode, urljoin

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from airflow_provider_seedance.emulator.testing import EmulatorProcess
from tests.ui.conftest import ARTIFACTS, ApiServer, GalleryRuns
from tests.ui.test_browser import browser, sign_in, wait_for  # noqa: F401  (browser: a fixture)

pytestmark = pytest.mark.dag

KEY = "sk-connection-ui-test-51d2"
AIRFLOW_VERSION = metadata.version("apache-airflow")
AIRFLOW_VERSION_INFO = tuple(int(part) for part in AIRFLOW_VERSION.split(".")[:2])


def seedance_meta(api_server: ApiServer) -> dict:
    response = api_server.get("/ui/connections/hook_meta")
    assert response.status_code == 200, response.text
    (meta,) = [m for m in response.json() if m["connection_type"] == "seedance"]
    return meta


def test_hook_meta_gives_the_ui_base_url_api_key_timeout_and_proxy(api_server: ApiServer) -> None:
    meta = seedance_meta(api_server)
    assert meta["hook_name"] == "Seedance"
    fields = meta["standard_fields"]
    assert fields is not None, "no form behaviour: on Airflow 3.1 this needs wtforms installed"
    for hidden in ("url_schema", "port", "login"):
        assert fields[hidden]["hidden"] is True, hidden
    assert fields["host"] == {"hidden": False, "title": "Base URL", "placeholder": "https://seedanceapi.org"}
    assert fields["password"]["title"] == "API key" and not fields["password"]["hidden"]
    extra = meta["extra_fields"]
    assert set(extra) == {
        "timeout",
        "proxy",
        "status_reads_per_second",
        "callback_base_url",
        "callback_secret",
    }
    assert extra["timeout"]["schema"]["title"] == "Timeout (seconds)"
    assert set(extra["timeout"]["schema"]["type"]) & {"number", "integer"}
    assert extra["proxy"]["schema"]["title"] == "Proxy"
    assert extra["status_reads_per_second"]["schema"]["title"] == "Status reads per second"
    assert extra["callback_base_url"]["schema"]["title"] == "Callback base URL"
    assert extra["callback_secret"]["schema"]["title"] == "Callback secret"
    assert extra["callback_secret"]["schema"]["format"] == "password"


def open_seedance_form(driver: webdriver.Chrome, api_server: ApiServer) -> None:
    sign_in(driver, api_server, "alice")
    driver.get(f"{api_server.base_url}/connections")
    add = wait_for(
        lambda: next(b for b in driver.find_elements(By.TAG_NAME, "button") if "Add Connection" in b.text),
        60,
        "the Add Connection button",
    )
    add.click()
    combo = wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "input[role='combobox']"), 30, "type box")
    combo.send_keys("Seedance")
    wait_for(lambda: "Seedance" in driver.find_element(By.CSS_SELECTOR, "[role='listbox']").text, 20, "menu")
    combo.send_keys(Keys.ENTER)
    wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "input[name='host']"), 30, "the host field")


def test_add_connection_form_shows_only_the_seedance_fields(
    browser: webdriver.Chrome,  # noqa: F811
    api_server: ApiServer,
) -> None:
    open_seedance_form(browser, api_server)
    host = browser.find_element(By.CSS_SELECTOR, "input[name='host']")
    password = browser.find_element(By.CSS_SELECTOR, "input[name='password']")
    assert host.get_attribute("placeholder") == "https://seedanceapi.org"
    assert password.get_attribute("type") == "password"
    assert password.get_attribute("placeholder") == "your Seedance API key"
    for hidden in ("schema", "port", "login"):
        assert not browser.find_elements(By.CSS_SELECTOR, f"input[name='{hidden}']"), hidden
    # textContent, not text: timeout and proxy sit in the collapsed "Extra Fields" section.
    labels = [
        (label.get_attribute("textContent") or "").replace("*", "").strip()
        for label in browser.find_elements(By.TAG_NAME, "label")
    ]
    for wanted in (
        "Base URL",
        "API key",
        "Timeout (seconds)",
        "Proxy",
        "Status reads per second",
        "Callback base URL",
        "Callback secret",
    ):
        assert wanted in labels, labels
    for unwanted in ("Schema", "Port", "Login"):
        assert unwanted not in labels, labels
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"seedance-connection-form-{AIRFLOW_VERSION}.png"))
    # Open the "Extra Fields" section for a second screenshot, with timeout and proxy.
    for toggle in browser.find_elements(By.TAG_NAME, "button"):
        if toggle.text.strip() == "Extra Fields":
            toggle.click()
    proxy = browser.find_element(By.CSS_SELECTOR, "input[name$='proxy']")
    wait_for(proxy.is_displayed, 10, "the Extra Fields section to open")
    # The callback secret is typed like a password (3.2+; 3.1's form draws every extra field as
    # text, though its hook meta marks the field as a password: the hook-meta test checks that).
    secret = browser.find_element(By.CSS_SELECTOR, "input[name$='callback_secret']")
    if AIRFLOW_VERSION_INFO >= (3, 2):
        assert secret.get_attribute("type") == "password"
    time.sleep(0.5)  # let the accordion animation finish for the screenshot
    browser.save_screenshot(str(ARTIFACTS / f"seedance-connection-form-extra-{AIRFLOW_VERSION}.png"))


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(scope="module")
def probe_emulator() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(api_keys={KEY: 500}) as emulator:
        yield emulator


def test_connection_test_from_the_ui_api_never_generates(
    api_server: ApiServer, probe_emulator: EmulatorProcess
) -> None:
    """``POST /api/v2/connections/test`` is what the UI's Test button calls."""

    def test(host: str, key: str) -> dict:
        body = {"connection_id": "seedance_ui_probe", "conn_type": "seedance", "host": host, "password": key}
        headers = {"Authorization": f"Bearer {api_server.tokens['alice']}"}
        response = requests.post(
            f"{api_server.base_url}/api/v2/connections/test", json=body, headers=headers, timeout=60
        )
        assert response.status_code == 200, response.text
        return response.json()

    base = probe_emulator.base_url
    good = test(base, KEY)
    bad = test(base, "sk-wrong-key")
    down = test(_closed_port_url(), KEY)

    assert good == {"status": True, "message": f"Connected to {base}: API key accepted."}
    assert bad["status"] is False
    assert bad["message"].startswith(f"{base} rejected the API key (the password field)")
    assert "401 INVALID_API_KEY" in bad["message"]
    assert down["status"] is False and down["message"].startswith("Cannot reach http://127.0.0.1:")
    for answer in (good, bad, down):
        assert KEY not in answer["message"] and "sk-wrong-key" not in answer["message"]
    ledger = probe_emulator.ledger()
    assert ledger["generate_requests"] == 0
    assert ledger["status_requests"] == 2
    assert ledger["accounts"][KEY] == {"balance": 500, "charged": 0, "refunded": 0, "tasks": 0}


def test_finished_generation_offers_the_seedance_video_link(
    browser: webdriver.Chrome,  # noqa: F811
    api_server: ApiServer,
    gallery_runs: GalleryRuns,
) -> None:
    run_id = gallery_runs.runs["gallery_launch"]
    links = api_server.get(f"/api/v2/dags/gallery_launch/dagRuns/{run_id}/taskInstances/hero/links")
    assert links.status_code == 200, links.text
    video_url = links.json()["extra_links"]["Seedance video"]
    # The link lasts: it opens this task instance's card, not the service URL that expires.
    query = urlencode({"dag_id": "gallery_launch", "run_id": run_id, "task_id": "hero", "map_index": -1})
    # Absolute when the worker knows [api] base_url; dag.test() here does not (then relative).
    assert video_url in (f"{api_server.base_url}/seedance/?{query}", f"/seedance/?{query}")

    sign_in(browser, api_server, "alice")
    browser.get(f"{api_server.base_url}/dags/gallery_launch/runs/{run_id}/tasks/hero")

    def link():
        found = [a for a in browser.find_elements(By.TAG_NAME, "a") if a.text.strip() == "Seedance video"]
        if not found:  # Airflow 3.1 and 3.3 list extra links in the task instance's Details tab
            for tab in browser.find_elements(By.CSS_SELECTOR, "[role='tab'], a, button"):
                if tab.text.strip() == "Details":
                    tab.click()
                    break
        return found[0] if found else None

    anchor = wait_for(link, 60, "the Seedance video extra link")
    assert anchor.get_attribute("href") == urljoin(api_server.base_url, video_url)
    browser.execute_script("arguments[0].scrollIntoView()", anchor)
    browser.save_screenshot(str(ARTIFACTS / f"seedance-extra-link-{AIRFLOW_VERSION}.png"))

    # Following it shows that task instance's card (and only it), with the delivered video.
    browser.get(urljoin(api_server.base_url, video_url))
    wait_for(
        lambda: browser.execute_script("return document.body.dataset.galleryLoaded") == "true", 30, "card"
    )
    [card] = browser.find_elements(By.CSS_SELECTOR, "article.card")
    assert "gallery_launch · hero" in card.text and card.get_attribute("data-outcome") == "succeeded"
    assert "/seedance/media/" in card.find_element(By.TAG_NAME, "video").get_attribute("src")
