"""The wall in headless Chromium on real data: a playlist rotates, the kiosk overview
draws at wall and phone sizes with a sparkline on its tiles, the banner follows the
server, and the crime and incidents pages say in kiosk mode what their hidden
filters chose."""

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
# Long enough that no source the tests loaded goes stale while they run; a test of
# staleness ages a source's runs instead (tests/test_wall_reconnect.py).
TEST_INTERVALS = {"police-uk-street": 1440, "cad": 1440, "calls": 1440}
TILES_DRAWN = (
    "return document.querySelectorAll('.bl-tile').length >= 7"
    " && document.querySelector('#overview-clock').textContent.length > 0"
)


@pytest.fixture(scope="module", autouse=True)
def steady_intervals(overview_app):
    """The refresh intervals (BLUELAMP_INTERVAL_*) the app is told, for this module:
    the defaults (5 minutes for CAD) would make the session's own loads stale
    part-way through a long test run."""
    runtime = overview_app.server.extensions["bluelamp"]
    before = runtime.intervals
    runtime.intervals = {**before, **TEST_INTERVALS}
    try:
        yield runtime.intervals
    finally:
        runtime.intervals = before


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
    # Every tile with a series draws it (the real call data has no 101 answer
    # times, so that tile says it has no trend), and says what it shows.
    wait.until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".bl-tile-spark .main-svg")) >= 6
    )
    sparks = chromium.find_elements(By.CSS_SELECTOR, "[id^=overview-spark-]")
    assert {s.get_attribute("id") for s in sparks} >= {
        f"overview-spark-{key}"
        for key in ["crimes", "harm", "g1-share", "g1-median", "999", "queue"]
    }
    labels = [
        e.text for e in chromium.find_elements(By.CLASS_NAME, "bl-tile-spark-label")
    ]
    assert any(label.startswith("Open at each day's end") for label in labels)
    # Kiosk type is large on a wall, and never wider than a phone.
    size = chromium.execute_script(
        "return parseFloat(getComputedStyle("
        "document.getElementById('overview-tile-crimes')).fontSize)"
    )
    assert size >= (48 if name == "wall" else 36)
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
    """The browser's own log line for a poll sent while the server was down, or
    cut off as it stopped."""
    message = entry["message"]
    return "/api/freshness" in message and any(
        code in message
        for code in (
            "ERR_CONNECTION_REFUSED",
            "ERR_CONNECTION_RESET",
            "ERR_EMPTY_RESPONSE",
        )
    )


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
    chromium.get(
        live_url + "/crime?kiosk=1&period=rolling-12&type=Burglary&type=Robbery"
        f"&level=lad&area={overview_tests.LEICESTER}"
    )
    wait = WebDriverWait(chromium, 60, poll_frequency=0.2)
    wait.until(
        lambda d: (
            "data as at"
            in d.execute_script(
                "var s = document.getElementById('bl-kiosk-stamp');"
                " return s ? s.textContent : '';"
            )
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
    # The hidden filters' choices, in words; the drill picker is a control too.
    caption = chromium.find_element(By.ID, "crime-kiosk-caption")
    wait.until(lambda d: "Crime types: Burglary, Robbery" in caption.text)
    assert "› Leicester." in caption.text
    assert not chromium.find_element(By.ID, "crime-area-picker").is_displayed()
    OUTPUT.mkdir(exist_ok=True)
    chromium.save_screenshot(str(OUTPUT / "crime-kiosk.png"))

    # Drilling back up from the (still clickable) map's breadcrumb rewrites the
    # URL; kiosk mode stays in it, so a reload stays in kiosk mode.
    crumb = chromium.find_element(By.XPATH, "//nav[@id='crime-breadcrumb']//button")
    assert crumb.text == "All forces"
    crumb.click()
    wait.until(lambda d: caption.text.startswith("Area: All forces."))
    assert "Crime types: Burglary, Robbery" in caption.text
    wait.until(lambda d: "kiosk=1" in d.current_url and "area=" not in d.current_url)
    chromium.refresh()
    wait.until(
        lambda d: (
            "bl-kiosk" in d.find_element(By.TAG_NAME, "body").get_attribute("class")
            and d.find_element(By.ID, "crime-kiosk-caption").text.startswith(
                "Area: All forces."
            )
        )
    )
    assert not chromium.find_element(By.CSS_SELECTOR, ".navbar").is_displayed()
    severe = [e for e in chromium.get_log("browser") if e["level"] == "SEVERE"]
    assert [e for e in severe if not unmount_race(e)] == []


def test_kiosk_on_the_incidents_page_says_what_its_hidden_filters_chose(
    chromium, live_url, overview_app
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    resize(chromium, 1366, 900)
    chromium.get_log("browser")
    chromium.get(live_url + "/incidents?kiosk=1&grade=1&grade=2&source=alexandria-decc")
    wait = WebDriverWait(chromium, 60, poll_frequency=0.2)
    wait.until(lambda d: d.find_elements(By.ID, "bl-kiosk-incidents-caption"))
    caption = chromium.find_element(By.ID, "bl-kiosk-incidents-caption")
    wait.until(lambda d: "Final grades: 1, 2." in caption.text)
    assert caption.text.startswith("Area: All forces.")
    assert "Source: alexandria-decc." in caption.text
    assert "The map shows: share attended within target." in caption.text
    assert caption.is_displayed()
    period = chromium.find_element(By.ID, "incidents-period-sentence")
    wait.until(lambda d: "Last 28 days" in period.text)
    for hidden in ["incidents-area-picker", "incidents-measure", "incidents-source"]:
        assert not chromium.find_element(By.ID, hidden).is_displayed(), hidden
    OUTPUT.mkdir(exist_ok=True)
    chromium.save_screenshot(str(OUTPUT / "incidents-kiosk.png"))

    # A value the page drops (an unknown source) is not named: the caption reads
    # what the page's own controls hold.
    chromium.get(live_url + "/incidents?kiosk=1&source=nowhere")
    wait.until(
        lambda d: (
            "Source: Every source."
            in d.execute_script(
                "var c = document.getElementById('bl-kiosk-incidents-caption');"
                " return c ? c.textContent : '';"
            )
        )
    )
    assert (
        "Final grades: all grades."
        in chromium.find_element(By.ID, "bl-kiosk-incidents-caption").text
    )
    severe = [e for e in chromium.get_log("browser") if e["level"] == "SEVERE"]
    assert [e for e in severe if not unmount_race(e)] == []
