"""Every registered page, as an admin, in headless Chromium at desktop and phone
widths: it renders, makes no console errors, asks for nothing off this machine and
has no horizontal scroll on a phone."""

from __future__ import annotations

import dash
import pytest
import test_app_auth as app_tests
import test_app_browser as browser_tests
from test_app_auth import login

app_home, dash_app = app_tests.app_home, app_tests.dash_app
live_url = browser_tests.live_url

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def admin_chromium():
    # The same headless Chromium as the other browser tests, signed in as admin.
    made = browser_tests.chromium.__wrapped__()
    driver = next(made)
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": login("admin")})
    try:
        yield driver
    finally:
        next(made, None)


@pytest.mark.parametrize("size", list(browser_tests.SIZES))
def test_every_page_renders_without_console_errors(
    admin_chromium, live_url, dash_app, size
):
    from selenium.webdriver.support.ui import WebDriverWait

    width, height = browser_tests.SIZES[size]
    admin_chromium.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {
            "width": width,
            "height": height,
            "deviceScaleFactor": 1,
            "mobile": size == "phone",
        },
    )
    paths = sorted(p["path"] for p in dash.page_registry.values())
    assert {"/", "/crime", "/incidents", "/overview", "/users"} <= set(paths)
    problems = {}
    for path in paths:
        admin_chromium.get_log("browser")
        admin_chromium.get_log("performance")
        admin_chromium.get(live_url + path)
        wait = WebDriverWait(admin_chromium, 30)
        wait.until(
            lambda d: d.execute_script(
                "return document.querySelector('#_pages_content') !== null && "
                "document.querySelector('#_pages_content').innerText.trim().length > 0"
            )
        )
        # Let the page's first callbacks finish before reading the console.
        wait.until(
            lambda d: d.execute_script(
                "return !document.querySelector('[data-dash-is-loading=\"true\"]')"
            )
        )
        severe = [
            e["message"]
            for e in admin_chromium.get_log("browser")
            if e["level"] == "SEVERE"
        ]
        hosts = browser_tests.requested_hosts(admin_chromium)
        overflow = admin_chromium.execute_script(
            "return document.documentElement.scrollWidth > window.innerWidth + 1"
        )
        if (
            severe
            or not hosts <= browser_tests.LOCAL_HOSTS
            or (size == "phone" and overflow)
        ):
            problems[path] = {"console": severe, "hosts": hosts, "overflow": overflow}
    assert problems == {}
