"""Smoke test of the Data status page in headless Chromium against a live server."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest
import test_app_auth as app_tests
from test_app_auth import login, publish
from test_status_queries import reject, run_row

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
OUTPUT = Path(__file__).resolve().parent.parent / "test-output"
SIZES = {"desktop": (1366, 900), "phone": (390, 844)}
LOCAL_HOSTS = {"127.0.0.1"}

# Fixtures shared by the app tests: Dash Pages allows one app per process.
app_home, dash_app = app_tests.app_home, app_tests.dash_app

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def chromium():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        message = f"headless browser tests need {CHROMIUM} and {CHROMEDRIVER}"
        if (
            os.environ.get("CI")
            or os.environ.get("BLUELAMP_REQUIRE_SHARED_DATA") == "1"
        ):
            pytest.fail(message + " (required in CI)")
        pytest.skip(message + ": apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
    ]:
        options.add_argument(arg)
    options.set_capability(
        "goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"}
    )
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd(
            "Network.setExtraHTTPHeaders", {"headers": login("analyst")}
        )
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def live_url(dash_app):
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, dash_app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


@pytest.fixture
def warehouse_with_rejects(dash_app):
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    runs = [
        run_row(1, "cad", now, rows_read=12, rows_loaded=10, rows_rejected=2),
        run_row(2, "calls", now - dt.timedelta(days=3), rows_read=5, rows_loaded=5),
        run_row(3, "calls", now, "failed", message="calls.csv: the file is empty"),
    ]
    rejects = [
        reject(1, "cad", 4, "INC4,X9,2026-01-01T10:00", "unknown grade X9"),
        reject(1, "cad", 9, "INC9,G1,yesterday", "bad time: yesterday"),
    ]
    publish(os.environ["BLUELAMP_WAREHOUSE_URL"], runs, rejects)


def requested_hosts(driver) -> set[str]:
    hosts = set()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            url = urlparse(message["params"]["request"]["url"])
            if url.scheme in ("http", "https", "ws", "wss"):
                hosts.add(url.hostname)
    return hosts


@pytest.mark.parametrize("size", list(SIZES))
def test_data_status_page_renders_offline_without_errors(
    chromium, live_url, warehouse_with_rejects, size
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    width, height = SIZES[size]
    chromium.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {
            "width": width,
            "height": height,
            "deviceScaleFactor": 1,
            "mobile": size == "phone",
        },
    )
    chromium.get_log("browser")  # start this page's console log afresh
    chromium.get_log("performance")
    chromium.get(live_url + "/data-status")
    wait = WebDriverWait(chromium, 30)
    heading = wait.until(lambda d: d.find_element(By.TAG_NAME, "h1"))
    assert heading.text == "Data status"
    table = chromium.find_element(By.ID, "status-quarantine-table")
    wait.until(lambda d: "unknown grade X9" in table.text)
    assert "bad time: yesterday" in table.text
    cards = chromium.find_element(By.ID, "status-source-cards")
    wait.until(lambda d: "Stale" in cards.text)
    assert "Data as at" in chromium.find_element(By.ID, "shell-data-as-at").text

    OUTPUT.mkdir(exist_ok=True)
    chromium.save_screenshot(str(OUTPUT / f"data-status-{size}.png"))

    severe = [e for e in chromium.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []
    assert requested_hosts(chromium) <= LOCAL_HOSTS
    links = re.findall(
        r"""(?:src|href)\s*=\s*["'](https?://[^"']+)""", chromium.page_source
    )
    assert [u for u in links if urlparse(u).hostname not in LOCAL_HOSTS] == []
