"""The wall in headless Chromium on real data: a playlist rotates, the kiosk overview
draws at wall and phone sizes."""

from __future__ import annotations

import threading

import pytest
import test_app_browser as browser_tests
import test_overview as overview_tests
from test_crime_browser import unmount_race

# Fixtures shared by the app tests: Dash Pages allows one app per process.
app_home, dash_app = overview_tests.app_home, overview_tests.dash_app
crime_warehouse_url = overview_tests.crime_warehouse_url
overview_warehouse_url = overview_tests.overview_warehouse_url
overview_app = overview_tests.overview_app
chromium, live_url = browser_tests.chromium, browser_tests.live_url
OUTPUT = browser_tests.OUTPUT

pytestmark = [pytest.mark.browser, pytest.mark.real_data]

HEADINGS = {"overview": "Force overview", "crime": "Crime", "incidents": "Incidents"}
TILES_DRAWN = (
    "return document.querySelectorAll('.bl-tile').length >= 7"
    " && document.querySelector('#overview-clock').textContent.length > 0"
)


def resize(driver, width, height, mobile=False):
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )


def shown_frame(driver):
    from selenium.webdriver.common.by import By

    frames = driver.find_elements(By.CSS_SELECTOR, "iframe.bl-wall-frame-shown")
    return frames[0] if len(frames) == 1 else None


def frame_heading(driver) -> str | None:
    """The heading of the frame on show (None while it is still loading)."""
    from selenium.webdriver.common.by import By

    frame = shown_frame(driver)
    if frame is None:
        return None
    driver.switch_to.frame(frame)
    try:
        headings = driver.find_elements(By.TAG_NAME, "h1")
        return headings[0].text if headings else None
    finally:
        driver.switch_to.default_content()


def test_playlist_shows_each_page_in_turn(chromium, live_url, overview_app):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    resize(chromium, 1366, 900)
    chromium.get_log("browser")
    chromium.get(live_url + "/wall?pages=overview,crime,incidents&seconds=3&kiosk=1")
    wait = WebDriverWait(chromium, 60, poll_frequency=0.2)
    wait.until(lambda d: d.find_element(By.ID, "wall-now").text == "overview")
    assert len(chromium.find_elements(By.CSS_SELECTOR, "iframe.bl-wall-frame")) == 3
    seen = []
    # Two full turns: each page appears, in order, and comes round again.
    for name in ["overview", "crime", "incidents", "overview", "crime"]:
        wait.until(lambda d, name=name: d.find_element(By.ID, "wall-now").text == name)
        wait.until(lambda d, name=name: frame_heading(d) == HEADINGS[name])
        seen.append(name)
    assert seen == ["overview", "crime", "incidents", "overview", "crime"]
    # The wall's navbar is hidden in kiosk mode, and the framed pages' too.
    assert not chromium.find_element(By.CSS_SELECTOR, ".navbar").is_displayed()
    severe = [e for e in chromium.get_log("browser") if e["level"] == "SEVERE"]
    assert [e for e in severe if not unmount_race(e)] == []


@pytest.mark.parametrize(
    "name, width, height", [("wall", 1920, 1080), ("phone", 390, 844)]
)
def test_kiosk_overview_draws_at_wall_and_phone_sizes(
    chromium, live_url, overview_app, name, width, height
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    resize(chromium, width, height, mobile=name == "phone")
    chromium.get_log("browser")
    chromium.get(live_url + "/overview?kiosk=1")
    wait = WebDriverWait(chromium, 60, poll_frequency=0.2)
    wait.until(lambda d: d.execute_script(TILES_DRAWN))
    assert "bl-kiosk" in chromium.find_element(By.TAG_NAME, "body").get_attribute(
        "class"
    )
    assert not chromium.find_element(By.CSS_SELECTOR, ".navbar").is_displayed()
    assert chromium.find_elements(By.ID, "overview-controls") == []
    assert chromium.find_element(By.ID, "overview-tile-crimes").text != ""
    width_used = chromium.execute_script("return document.documentElement.scrollWidth")
    assert width_used <= width
    OUTPUT.mkdir(exist_ok=True)
    chromium.save_screenshot(str(OUTPUT / f"overview-kiosk-{width}x{height}.png"))
    severe = [e for e in chromium.get_log("browser") if e["level"] == "SEVERE"]
    assert [e for e in severe if not unmount_race(e)] == []


def _serve(app, port: int):
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", port, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def _stop(server, thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join()


def _refused(entry: dict) -> bool:
    """The browser's own log line for a poll sent while the server was down."""
    return "ERR_CONNECTION_REFUSED" in entry["message"]


def test_banner_appears_when_the_server_stops_and_clears_when_it_returns(
    chromium, overview_app
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server, thread = _serve(overview_app, 0)
    port = server.server_port
    try:
        resize(chromium, 1366, 900)
        chromium.get_log("browser")
        chromium.get(f"http://127.0.0.1:{port}/overview?kiosk=1&refresh=2")
        wait = WebDriverWait(chromium, 60, poll_frequency=0.2)
        wait.until(lambda d: d.execute_script(TILES_DRAWN))
        banner = chromium.find_element(By.ID, "overview-banner")
        tile = chromium.find_element(By.ID, "overview-tile-crimes")
        before = tile.text
        assert not banner.is_displayed()

        _stop(server, thread)
        wait.until(lambda d: banner.is_displayed())
        assert "unreachable" in banner.text
        assert tile.text == before  # the last data stays on screen

        server, thread = _serve(overview_app, port)
        wait.until(lambda d: not banner.is_displayed())
        assert chromium.find_element(By.ID, "overview-tile-crimes").text == before
    finally:
        _stop(server, thread)
    severe = [e for e in chromium.get_log("browser") if e["level"] == "SEVERE"]
    assert [e for e in severe if not (unmount_race(e) or _refused(e))] == []


def test_kiosk_on_the_crime_page_hides_controls_and_keeps_context(
    chromium, live_url, overview_app
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    resize(chromium, 1366, 900)
    chromium.get_log("browser")
    chromium.get(live_url + "/crime?kiosk=1&period=rolling-12")
    wait = WebDriverWait(chromium, 60, poll_frequency=0.2)
    wait.until(
        lambda d: "data as at" in d.execute_script(
            "var s = document.getElementById('bl-kiosk-stamp');"
            " return s ? s.textContent : '';"
        )
    )
    body = chromium.find_element(By.TAG_NAME, "body")
    assert "bl-kiosk" in body.get_attribute("class")
    assert not chromium.find_element(By.CSS_SELECTOR, ".navbar").is_displayed()
    filters = chromium.find_element(By.CSS_SELECTOR, ".bl-crime-filters")
    assert not filters.is_displayed()
    sentence = chromium.find_element(By.ID, "crime-period-sentence")
    wait.until(lambda d: "Rolling 12 months" in sentence.text)
    assert sentence.is_displayed()
    OUTPUT.mkdir(exist_ok=True)
    chromium.save_screenshot(str(OUTPUT / "crime-kiosk.png"))
    severe = [e for e in chromium.get_log("browser") if e["level"] == "SEVERE"]
    assert [e for e in severe if not unmount_race(e)] == []
