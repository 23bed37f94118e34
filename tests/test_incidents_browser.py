"""The incidents page in headless Chromium: force -> area -> cell -> incident, back."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
import test_app_browser as browser_tests
import test_incidents_page as incident_tests

# Fixtures shared by the app tests: Dash Pages allows one app per process.
app_home, dash_app = incident_tests.app_home, incident_tests.dash_app
incidents_warehouse_url = incident_tests.incidents_warehouse_url
incidents_app = incident_tests.incidents_app
chromium, live_url = browser_tests.chromium, browser_tests.live_url
OUTPUT, SIZES = browser_tests.OUTPUT, browser_tests.SIZES

pytestmark = [pytest.mark.browser, pytest.mark.real_data]

SETTLED = "return document.querySelector('[data-dash-is-loading=\"true\"]') === null"
MAP_DRAWN = """
const gd = document.querySelector('#incidents-map .js-plotly-plot');
return !!(gd && gd._fullData && gd._fullData.length
          && gd._fullData[0].locations && gd._fullData[0].locations.length
          && document.querySelector('#incidents-map .maplibregl-map'));
"""
MAP_LOCATIONS = """
return Array.from(
    document.querySelector('#incidents-map .js-plotly-plot')._fullData[0].locations);
"""
HEATMAP_DRAWN = """
const gd = document.querySelector('#incidents-heatmap .js-plotly-plot');
return !!(gd && gd.data && gd.data.length && gd.data[0].type === 'heatmap');
"""
# Clicks as plotly reports them; a real click on a WebGL polygon or a heat-map
# cell needs its pixel position, which headless rendering does not make reliable.
CLICK = """
const gd = document.querySelector(arguments[0] + ' .js-plotly-plot');
gd.emit('plotly_click', {points: [{customdata: arguments[1]}]});
"""
BUSIEST_CELL = """
const gd = document.querySelector('#incidents-heatmap .js-plotly-plot');
let best = null, most = -1;
gd.data[0].z.forEach((row, d) => row.forEach((n, h) => {
    if (n > most) { most = n; best = gd.data[0].customdata[d][h]; }
}));
return best;
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


def click_until(driver, graph: str, value: str, done) -> None:
    """Emit a plotly click until the page reacts: an event emitted while Dash is
    still re-rendering the graph after a load can be missed."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    for _attempt in range(5):
        WebDriverWait(driver, 60).until(lambda d: d.execute_script(SETTLED))
        driver.execute_script(CLICK, graph, value)
        try:
            WebDriverWait(driver, 10).until(done)
            return
        except TimeoutException:
            continue
    raise AssertionError(f"clicking {value!r} on {graph} changed nothing")


def test_incidents_page_drills_to_one_incident_and_back(
    chromium, live_url, incidents_app
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    resize(chromium, "desktop")
    chromium.get_log("browser")
    chromium.get(live_url + "/incidents?source=cad")
    wait = WebDriverWait(chromium, 60)
    wait.until(lambda d: d.find_element(By.TAG_NAME, "h1").text == "Incidents")
    wait.until(lambda d: d.execute_script(MAP_DRAWN))
    wait.until(lambda d: d.execute_script(HEATMAP_DRAWN))
    assert chromium.execute_script(MAP_LOCATIONS) == ["west-midlands-police"]
    kpi = chromium.find_element(By.ID, "incidents-kpi-incidents")
    wait.until(lambda d: int(kpi.get_attribute("data-value") or 0) > 0)

    # Drill 1, by the map's click event: the force (once the first load settles,
    # or the click lands before its callback is listening).
    wait.until(lambda d: d.execute_script(SETTLED))
    click_until(
        chromium,
        "#incidents-map",
        "west-midlands-police",
        lambda d: query_of(d).get("level") == ["force"],
    )
    wait.until(lambda d: len(d.execute_script(MAP_LOCATIONS)) > 1)
    lad = sorted(chromium.execute_script(MAP_LOCATIONS))[0]

    # Drill 2, by the map again: a local authority, whose wards the map then shows.
    wait.until(lambda d: d.execute_script(SETTLED))
    click_until(
        chromium, "#incidents-map", lad, lambda d: query_of(d).get("area") == [lad]
    )
    wait.until(lambda d: lad not in d.execute_script(MAP_LOCATIONS))
    crumb = chromium.find_element(By.ID, "incidents-breadcrumb")
    wait.until(lambda d: "All forces" in crumb.text and "West Midlands" in crumb.text)

    # Drill 3, the busiest hour-of-week cell of that area.
    wait.until(lambda d: d.execute_script(SETTLED))
    cell = chromium.execute_script(BUSIEST_CELL)
    click_until(
        chromium,
        "#incidents-heatmap",
        cell,
        lambda d: query_of(d).get("cell") == [cell],
    )
    first = wait.until(
        lambda d: d.find_element(
            By.CSS_SELECTOR, "#incidents-cell-table td[data-dash-column=incident_id]"
        )
    )
    incident_id = first.text

    # Drill 4, a click on the incident in the list: its timeline.
    wait.until(lambda d: d.execute_script(SETTLED))
    # A DOM click: the emulated viewport and the window differ in size, which
    # makes WebDriver's pointer click land off the table.
    chromium.execute_script("arguments[0].click()", first)
    wait.until(lambda d: query_of(d).get("incident") == [f"cad:{incident_id}"])
    verdict = wait.until(lambda d: d.find_element(By.ID, "incidents-timeline-verdict"))
    wait.until(lambda d: incident_id in verdict.text)
    wait.until(
        lambda d: (
            len(d.find_elements(By.CSS_SELECTOR, "#incidents-timeline-table tbody tr"))
            >= 7
        )
    )
    OUTPUT.mkdir(exist_ok=True)
    chromium.save_screenshot(str(OUTPUT / "incidents-desktop.png"))

    # Back steps up one drill: the cell, without the incident. Settle first: Dash
    # Pages re-renders on back, and plotly logs an error if a graph unmounts while
    # an update to it is in flight.
    wait.until(lambda d: d.execute_script(SETTLED))
    chromium.back()
    wait.until(lambda d: "incident" not in query_of(d))
    assert query_of(chromium).get("cell") == [cell]
    wait.until(lambda d: d.execute_script(HEATMAP_DRAWN))
    wait.until(lambda d: d.execute_script(MAP_DRAWN))
    wait.until(lambda d: d.execute_script(SETTLED))

    # Load first, then resize: a resize makes plotly relayout every graph, and
    # leaving the page while that runs logs an error.
    chromium.get(live_url + f"/incidents?source=cad&level=lad&area={lad}&cell={cell}")
    wait.until(lambda d: d.execute_script(MAP_DRAWN))
    resize(chromium, "phone")
    wait.until(lambda d: d.execute_script(MAP_DRAWN))
    wait.until(lambda d: d.execute_script(HEATMAP_DRAWN))
    wait.until(lambda d: d.execute_script(SETTLED))
    chromium.save_screenshot(str(OUTPUT / "incidents-phone.png"))

    severe = [e for e in chromium.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []
