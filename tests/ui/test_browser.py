"""Headless Chromium opens the Seedance page inside the Airflow UI and plays a video.

Needs Debian's ``chromium`` and ``chromium-driver`` (``/usr/bin/chromedriver``, passed
explicitly so Selenium Manager never downloads a driver) and ``selenium`` from PyPI.

The screenshot goes to ``test-artifacts/``; ``SEEDANCE_REFRESH_SCREENSHOT=1`` also copies it
over the one the README and docs show (``docs/images/seedance-gallery.png``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any
from urllib.parse import urlencode, urlparse

import pytest
from packaging.version import Version
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests.conftest import REPO
from tests.ui.conftest import ARTIFACTS, MIXED_CARDS, ApiServer, GalleryRuns

pytestmark = pytest.mark.dag

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"
README_IMAGE = REPO / "docs" / "images" / "seedance-gallery.png"
#: Airflow 3.3's UI keeps a framed nav view's path in its own address (deep links).
MIRRORS_FRAME_PATH = Version(metadata.version("apache-airflow")) >= Version("3.3")


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    profile = tempfile.mkdtemp(prefix="seedance-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=1440,1100",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except Exception:  # the DOM is still changing
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.25)


def sign_in(driver: webdriver.Chrome, api_server: ApiServer, user: str) -> None:
    """Put the user's JWT where a login puts it (the ``_token`` cookie), after a clean logout.

    Airflow 3.1's UI moves the cookie into ``localStorage["token"]``, which wins over the
    cookie afterwards (as in the UI itself), so a previous user's token is cleared there too.
    """
    driver.get(f"{api_server.base_url}/api/v2/monitor/health")
    driver.delete_all_cookies()
    driver.execute_script("window.localStorage.clear()")
    driver.add_cookie({"name": "_token", "value": api_server.tokens[user], "path": "/"})


def enter_gallery_frame(driver: webdriver.Chrome) -> None:
    frame = wait_for(
        lambda: driver.find_element(By.CSS_SELECTOR, "iframe[src*='/seedance/']"), 60, "the plugin iframe"
    )
    driver.switch_to.frame(frame)
    wait_for(
        lambda: driver.execute_script("return document.body.dataset.galleryLoaded") == "true",
        30,
        "the gallery to load",
    )


def test_gallery_page_in_the_airflow_ui_shows_cards_and_plays_a_video(
    browser: webdriver.Chrome, api_server: ApiServer
) -> None:
    sign_in(browser, api_server, "alice")
    browser.get(f"{api_server.base_url}/plugin/seedance")
    enter_gallery_frame(browser)

    cards = browser.find_elements(By.CSS_SELECTOR, "article.card")
    assert len(cards) == 5 + MIXED_CARDS
    # The failed generation, the refused request and the one never sent have no video; every
    # other card has one.
    without = sorted(
        (card.get_attribute("data-outcome"), card.find_element(By.CSS_SELECTOR, ".media").text)
        for card in cards
        if not card.find_elements(By.CSS_SELECTOR, "video")
    )
    assert [outcome for outcome, _ in without] == ["generation_failed", "not_sent", "refused"], without
    failed = browser.find_element(By.CSS_SELECTOR, "article.card[data-outcome='generation_failed']")
    assert "the generation failed" in failed.text.lower() and failed.find_element(By.CSS_SELECTOR, ".error")

    loaded = wait_for(
        lambda: browser.execute_script(
            "return Array.from(document.querySelectorAll('video'))"
            ".filter(v => v.readyState >= 1 && v.videoWidth > 0).map(v => v.currentSrc)"
        ),
        30,
        "a video's metadata",
    )
    # Both sources play: the delivered file through the media endpoint, and the service URL.
    assert any("/seedance/media/" in src for src in loaded), loaded
    assert any("/videos/" in src for src in loaded), loaded
    hero_link = browser.find_element(By.CSS_SELECTOR, "article.card .ti-link").get_attribute("href")
    assert "/dags/gallery_launch/runs/" in hero_link

    browser.switch_to.default_content()
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "seedance-gallery.png"))
    if os.environ.get("SEEDANCE_REFRESH_SCREENSHOT") == "1":
        # Opt-in, so that running the tests never dirties the checkout.
        shutil.copyfile(ARTIFACTS / "seedance-gallery.png", README_IMAGE)

    # A card's link opens the task instance in the Airflow UI itself, not inside the frame.
    enter_gallery_frame(browser)
    browser.find_element(By.CSS_SELECTOR, "article.card .ti-link").click()
    browser.switch_to.default_content()
    wait_for(lambda: "/dags/gallery_launch/runs/" in browser.current_url, 20, "the UI to open the task")
    wait_for(
        lambda: not browser.find_elements(By.CSS_SELECTOR, "iframe[src*='/seedance/']"),
        20,
        "the UI to replace the gallery with the task page",
    )


def test_failed_cards_tell_nothing_sent_refused_failed_and_paid_not_delivered_apart(
    browser: webdriver.Chrome, api_server: ApiServer
) -> None:
    sign_in(browser, api_server, "alice")
    browser.get(f"{api_server.base_url}/seedance/?status=failed")
    wait_for(
        lambda: browser.execute_script("return document.body.dataset.galleryLoaded") == "true", 30, "load"
    )
    cards = {
        card.get_attribute("data-outcome"): card.text
        for card in browser.find_elements(By.CSS_SELECTOR, "article.card")
    }
    assert set(cards) == {"not_sent", "refused", "generation_failed", "paid_not_delivered"}, cards
    assert "Nothing was sent — nothing spent" in cards["not_sent"] and "0 credits" in cards["not_sent"]
    refused = cards["refused"]  # sent with a key the service does not know (401)
    assert "The service refused the request — nothing spent" in refused and "INVALID_API_KEY" in refused
    assert "Refused by the service" in refused and "Nothing was sent" not in refused
    assert "0 credits" in refused
    assert "7:5" in cards["not_sent"]  # the error's own text, not "see the log"
    assert "Never sent" in cards["not_sent"]  # the prompt, from the rendered fields
    assert "generation failed" in cards["generation_failed"] and "0 credits" in cards["generation_failed"]
    assert "CONTENT_POLICY_VIOLATION" in cards["generation_failed"]
    paid = browser.find_element(By.CSS_SELECTOR, "article.card[data-outcome='paid_not_delivered']")
    assert "Paid, not delivered" in paid.text and " 0 credits" not in paid.text
    assert paid.find_element(By.CSS_SELECTOR, ".error").text  # why the task failed
    assert paid.find_element(By.CSS_SELECTOR, ".service-link").text == "Service URL (expires)"
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "seedance-outcomes.png"))


def test_extra_link_card_route_shows_the_batch_items_inside_the_ui(
    browser: webdriver.Chrome, api_server: ApiServer, gallery_runs: GalleryRuns
) -> None:
    sign_in(browser, api_server, "alice")
    query = urlencode(
        {
            "dag_id": "gallery_mixed",
            "run_id": gallery_runs.runs["gallery_mixed"],
            "task_id": "batch",
            "map_index": -1,
        }
    )
    if MIRRORS_FRAME_PATH:
        # What the "Seedance video" link opens, framed by the UI through its deep-link route.
        browser.get(f"{api_server.base_url}/plugin/seedance/seedance/?{query}")
        enter_gallery_frame(browser)
    else:
        # Airflow 3.1's UI has no deep links into plugin pages: the link opens the page itself.
        browser.get(f"{api_server.base_url}/seedance/?{query}")
        wait_for(
            lambda: browser.execute_script("return document.body.dataset.galleryLoaded") == "true",
            30,
            "the gallery to load",
        )
    cards = browser.find_elements(By.CSS_SELECTOR, "article.card")
    assert [c.get_attribute("data-outcome") for c in cards] == ["succeeded", "succeeded"]
    # Each delivered card says where its video went.
    delivered = [c.find_element(By.CSS_SELECTOR, ".output-path").text for c in cards]
    assert all(text.startswith("Delivered to file://") for text in delivered), delivered
    assert {text.rsplit("-", 1)[-1] for text in delivered} == {"tea.mp4", "fern.mp4"}, delivered
    assert {"item tea", "item fern"} <= {
        chip.text for chip in browser.find_elements(By.CSS_SELECTOR, ".chip")
    }
    assert "One task instance: batch" in browser.find_element(By.ID, "gallery-summary").text
    browser.switch_to.default_content()
    browser.save_screenshot(str(ARTIFACTS / "seedance-card-route.png"))


def test_nav_entry_url_settles_once_and_reloads_to_the_same_view(
    browser: webdriver.Chrome, api_server: ApiServer
) -> None:
    # Airflow 3.3's UI mirrors the framed page's path after /plugin/<url_route> (deep links),
    # so the nav entry's /plugin/seedance shows /plugin/seedance/seedance/: see docs/ui.md.
    sign_in(browser, api_server, "alice")
    browser.get(f"{api_server.base_url}/plugin/seedance")
    enter_gallery_frame(browser)
    browser.switch_to.default_content()
    if MIRRORS_FRAME_PATH:
        settled = wait_for(
            lambda: urlparse(browser.current_url).path if "/seedance/" in browser.current_url else None,
            20,
            "the UI to mirror the framed page's path",
        )
        assert settled == "/plugin/seedance/seedance/", settled
    else:
        settled = urlparse(browser.current_url).path
    browser.get(f"{api_server.base_url}{settled}")
    enter_gallery_frame(browser)
    browser.switch_to.default_content()
    assert urlparse(browser.current_url).path == settled  # stable: no /seedance/seedance/seedance/


def test_spend_tab_draws_the_chart_and_tables(browser: webdriver.Chrome, api_server: ApiServer) -> None:
    sign_in(browser, api_server, "alice")
    browser.get(f"{api_server.base_url}/seedance/#spend")
    wait_for(
        lambda: browser.execute_script("return document.body.dataset.spendLoaded") == "true", 30, "spend"
    )
    assert browser.find_elements(By.CSS_SELECTOR, "#spend-chart svg rect")
    dag_rows = browser.find_elements(By.CSS_SELECTOR, "#spend-by-dag tbody tr")
    assert any("gallery_launch" in row.text for row in dag_rows)
    total = browser.find_element(By.CSS_SELECTOR, "#spend-by-dag tr.total").text
    assert "$" in total, total
    skipped = browser.find_element(By.ID, "spend-skipped")
    assert skipped.get_attribute("hidden"), skipped.text  # every record could be read
    browser.save_screenshot(str(ARTIFACTS / "seedance-spend.png"))


def test_viewer_without_access_sees_no_private_cards(
    browser: webdriver.Chrome, api_server: ApiServer
) -> None:
    sign_in(browser, api_server, "bob")
    browser.get(f"{api_server.base_url}/seedance/")
    wait_for(
        lambda: browser.execute_script("return document.body.dataset.galleryLoaded") == "true", 30, "load"
    )
    text = browser.find_element(By.ID, "cards").text
    assert "gallery_launch" in text and "gallery_private" not in text and "Unreleased" not in text


def test_page_asks_to_sign_in_without_a_token(browser: webdriver.Chrome, api_server: ApiServer) -> None:
    browser.get(f"{api_server.base_url}/api/v2/monitor/health")
    browser.delete_all_cookies()
    browser.execute_script("window.localStorage.clear()")
    browser.get(f"{api_server.base_url}/seedance/")
    notice = wait_for(lambda: browser.find_element(By.ID, "notice").text, 30, "the sign-in notice")
    assert "not signed in" in notice
    assert not browser.find_elements(By.CSS_SELECTOR, "article.card")
