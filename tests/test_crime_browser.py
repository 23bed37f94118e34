"""The crime page in headless Chromium on the real data: map, drill, back, CSV."""

from __future__ import annotations

import io
from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest
import requests
import test_app_browser as browser_tests
import test_crime_page as crime_tests
from test_app_auth import login

# Fixtures shared by the app tests: Dash Pages allows one app per process.
app_home, dash_app = crime_tests.app_home, crime_tests.dash_app
crime_warehouse_url, crime_app = crime_tests.crime_warehouse_url, crime_tests.crime_app
chromium, live_url = browser_tests.chromium, browser_tests.live_url
OUTPUT, SIZES = browser_tests.OUTPUT, browser_tests.SIZES

pytestmark = [pytest.mark.browser, pytest.mark.real_data]

SETTLED = (
    "return document.querySelector('[data-dash-is-loading=\"true\"]') === null"
)
MAP_DRAWN = """
const gd = document.querySelector('#crime-map .js-plotly-plot');
return !!(gd && gd._fullData && gd._fullData.length
          && gd._fullData[0].locations && gd._fullData[0].locations.length
          && document.querySelector('#crime-map .maplibregl-map'));
"""
MAP_LOCATIONS = """
return Array.from(
    document.querySelector('#crime-map .js-plotly-plot')._fullData[0].locations);
"""
TREND_DRAWN = """
const gd = document.querySelector('#crime-trend .js-plotly-plot');
return !!(gd && gd.data && gd.data.length >= 5);
"""
# A map click as plotly reports it; a real click on a WebGL polygon needs its pixel
# position, which headless rendering does not make reliable.
CLICK_AREA = """
const gd = document.querySelector('#crime-map .js-plotly-plot');
gd.emit('plotly_click', {points: [{customdata: arguments[0], location: arguments[0]}]});
"""


def resize(driver, size):
    width, height = SIZES[size]
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {
            "width": width,
            "height": height,
            "deviceScaleFactor": 1,
            "mobile": size == "phone",
        },
    )


def query_of(driver) -> dict:
    return parse_qs(urlparse(driver.current_url).query)


def test_crime_page_draws_drills_goes_back_and_exports(chromium, live_url, crime_app):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    resize(chromium, "desktop")
    chromium.get_log("browser")
    chromium.get(live_url + "/crime")
    wait = WebDriverWait(chromium, 60)
    wait.until(lambda d: d.find_element(By.TAG_NAME, "h1").text == "Crime")
    wait.until(lambda d: d.execute_script(MAP_DRAWN))
    wait.until(lambda d: d.execute_script(TREND_DRAWN))
    assert set(chromium.execute_script(MAP_LOCATIONS)) == {
        "leicestershire-police",
        "west-midlands-police",
    }
    kpi = chromium.find_element(By.ID, "crime-kpi-crimes")
    assert int(kpi.get_attribute("data-value")) > 0

    # Drill 1, through the picker: the force.
    chromium.find_element(By.ID, "crime-area-picker").click()
    chromium.switch_to.active_element.send_keys("Leicestershire")
    option = wait.until(
        lambda d: next(
            (
                o
                for o in d.find_elements(By.CSS_SELECTOR, "[role=option]")
                if "Leicestershire" in o.text
            ),
            None,
        )
    )
    option.click()
    wait.until(lambda d: query_of(d).get("area") == [crime_tests.FORCE])
    wait.until(lambda d: "E06000016" in d.execute_script(MAP_LOCATIONS))

    # Drill 2, through the map's click event: the city of Leicester.
    chromium.execute_script(CLICK_AREA, crime_tests.LEICESTER)
    wait.until(lambda d: query_of(d).get("level") == ["lad"])
    assert query_of(chromium)["area"] == [crime_tests.LEICESTER]
    wait.until(lambda d: "E05001784" in d.execute_script(MAP_LOCATIONS))
    crumb = chromium.find_element(By.ID, "crime-breadcrumb")
    wait.until(lambda d: "Leicester" in crumb.text and "All forces" in crumb.text)
    OUTPUT.mkdir(exist_ok=True)
    chromium.save_screenshot(str(OUTPUT / "crime-desktop.png"))

    # The CSV behind the map, fetched as the browser would, with the same login.
    href = chromium.find_element(By.ID, "crime-export-areas").get_attribute("href")
    assert "area=E06000016" in href
    response = requests.get(href, headers=login("analyst"), timeout=60)
    assert response.status_code == 200
    lines = response.text.splitlines(True)
    assert lines[0].startswith("# Bluelamp crime export: areas")
    frame = pd.read_csv(
        io.StringIO("".join(x for x in lines if not x.startswith("# ")))
    )
    assert "E05001784" in set(frame["area_code"])
    assert set(frame["area_code"]) == set(chromium.execute_script(MAP_LOCATIONS))

    # Back steps up one drill: the force again. Wait for the drill's updates to
    # settle first: Dash Pages re-renders the page on back, and plotly logs an
    # error if a graph is unmounted while an update to it is still in flight.
    wait.until(lambda d: d.execute_script(SETTLED))
    chromium.back()
    wait.until(lambda d: query_of(d).get("level") == ["force"])
    wait.until(lambda d: d.execute_script(MAP_DRAWN))
    wait.until(lambda d: "E06000016" in d.execute_script(MAP_LOCATIONS))
    crumb = chromium.find_element(By.ID, "crime-breadcrumb")
    wait.until(lambda d: "Leicestershire" in crumb.text)

    resize(chromium, "phone")
    chromium.get(live_url + "/crime?level=lad&area=E06000016&measure=rate")
    wait.until(lambda d: d.execute_script(MAP_DRAWN))
    wait.until(lambda d: d.execute_script(TREND_DRAWN))
    width = chromium.execute_script("return document.documentElement.scrollWidth")
    assert width <= SIZES["phone"][0]
    chromium.save_screenshot(str(OUTPUT / "crime-phone.png"))

    severe = [e for e in chromium.get_log("browser") if e["level"] == "SEVERE"]
    assert [e for e in severe if not unmount_race(e)] == []


def unmount_race(entry: dict) -> bool:
    """plotly.js drawing a graph that Dash Pages has just unmounted.

    The back button re-renders the page while the page's own URL callbacks update
    the old graphs; a plotly update still in flight then reads the purged graph's
    layout. The new page renders correctly. Known and left open (see the issue
    note); any other console error still fails the test.
    """
    return "plotly.min.js" in entry["message"] and (
        "reading '_rangeSliderData'" in entry["message"]
    )
