"""The wall's banner in headless Chromium, against a warehouse of its own: a stale
source is shown and clears when it refreshes; a server stopped and restarted is shown
and clears, and the display keeps its filters across the reconnect."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest
import test_wall_browser as wall_tests
from sqlalchemy import func, select, text
from test_crime_browser import unmount_race

from etl import warehouse
from etl.schema import etl_run

# Fixtures shared by the app tests: Dash Pages allows one app per process.
app_home, dash_app = wall_tests.app_home, wall_tests.dash_app
crime_warehouse_url = wall_tests.crime_warehouse_url
overview_warehouse_url = wall_tests.overview_warehouse_url
overview_app = wall_tests.overview_app
chromium = wall_tests.chromium
steady_intervals = wall_tests.steady_intervals

pytestmark = [pytest.mark.browser, pytest.mark.real_data]

LEICESTER = wall_tests.overview_tests.LEICESTER
FILTERS = f"period=fytd&level=lad&area={LEICESTER}&type=Burglary&iperiod=rolling-12"
TILES_DRAWN = wall_tests.TILES_DRAWN


@pytest.fixture
def own_warehouse(tmp_path, overview_warehouse_url, overview_app, steady_intervals):
    """A copy of the overview's warehouse that this test may publish runs to; the
    app reads it for the test's duration."""
    source = warehouse.current_snapshot(warehouse.duckdb_path(overview_warehouse_url))
    path = tmp_path / "warehouse.duckdb"
    shutil.copyfile(source, path)
    url = f"duckdb:///{path}"
    runtime = overview_app.server.extensions["bluelamp"]
    before = runtime.reader
    runtime.reader = warehouse.Reader(url)
    runtime.cache.clear()
    try:
        yield url
    finally:
        runtime.reader = before
        runtime.cache.clear()


def publish_run(url: str, source: str) -> int:
    """A new successful run of `source`, finished now: a new ETL run id."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with warehouse.write(url) as conn:
        run_id = conn.execute(select(func.max(etl_run.c.run_id))).scalar() + 1
        conn.execute(
            etl_run.insert(),
            {
                "run_id": run_id,
                "source": source,
                "started_at": now - dt.timedelta(seconds=5),
                "finished_at": now,
                "status": "succeeded",
                "rows_read": 0,
                "rows_loaded": 0,
                "rows_rejected": 0,
                "rows_duplicate": 0,
                "rows_set_aside": 0,
                "files": 1,
                "message": "",
            },
        )
    return run_id


def banner_text(driver) -> str:
    """The banner's words while it is shown, else ""."""
    return driver.execute_script(
        "var b = document.getElementById('overview-banner');"
        " return b && b.offsetParent !== null ? b.textContent : '';"
    )


def no_console_errors(driver) -> None:
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert [e for e in severe if not (unmount_race(e) or wall_tests._refused(e))] == []


def test_a_stale_source_shows_a_banner_until_it_refreshes(
    chromium, own_warehouse, overview_app
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    # CAD last loaded 30 days ago: older than twice its (1 day) interval.
    with warehouse.write(own_warehouse) as conn:
        conn.execute(
            text(
                "UPDATE etl_run SET started_at = started_at - INTERVAL 30 DAY, "
                "finished_at = finished_at - INTERVAL 30 DAY WHERE source = 'cad'"
            )
        )
    server, thread = wall_tests._serve(overview_app, 0)
    try:
        wall_tests.resize(chromium, 1366, 900)
        chromium.get_log("browser")
        chromium.get(
            f"http://127.0.0.1:{server.server_port}/overview?kiosk=1&refresh=2"
        )
        wait = WebDriverWait(chromium, 60, poll_frequency=0.2)
        wait.until(lambda d: d.execute_script(TILES_DRAWN))
        wait.until(lambda d: banner_text(d).startswith("Stale data: cad (last loaded"))
        text_shown = banner_text(chromium)
        assert "expected every 1440 min" in text_shown
        assert "calls" not in text_shown and "police-uk-street" not in text_shown
        # The figures stay on screen under the banner.
        assert chromium.find_element(By.ID, "overview-tile-crimes").text != ""
        wall_tests.OUTPUT.mkdir(exist_ok=True)
        chromium.save_screenshot(str(wall_tests.OUTPUT / "overview-stale.png"))

        # CAD loads again: the display sees the new run, redraws, and clears.
        publish_run(own_warehouse, "cad")
        wait.until(lambda d: banner_text(d) == "")
        assert not chromium.find_element(By.ID, "overview-banner").is_displayed()
    finally:
        wall_tests._stop(server, thread)
    no_console_errors(chromium)


def test_a_reconnected_display_clears_its_banner_and_keeps_its_filters(
    chromium, own_warehouse, overview_app
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server, thread = wall_tests._serve(overview_app, 0)
    port = server.server_port
    search = f"?kiosk=1&refresh=2&{FILTERS}"
    try:
        wall_tests.resize(chromium, 1366, 900)
        chromium.get_log("browser")
        chromium.get(f"http://127.0.0.1:{port}/overview{search}")
        wait = WebDriverWait(chromium, 60, poll_frequency=0.2)
        wait.until(lambda d: d.execute_script(TILES_DRAWN))
        caption = chromium.find_element(By.ID, "overview-caption").text
        assert "crime types: Burglary" in caption and "area: Leicester" in caption
        before = {
            key: chromium.find_element(By.ID, f"overview-tile-{key}").text
            for key in ["crimes", "harm", "g1-share", "999", "queue"]
        }
        # Marks the tiles on screen now, to see them replaced by a redraw.
        chromium.execute_script(
            "document.getElementById('overview-tile-crimes').dataset.blOld = '1';"
        )
        assert banner_text(chromium) == ""

        wall_tests._stop(server, thread)
        wait.until(lambda d: "Server unreachable" in banner_text(d))
        # While it is down, a new ETL run finishes: the display must redraw
        # when it is back, with the filters it had.
        publish_run(own_warehouse, "cad")
        server, thread = wall_tests._serve(overview_app, port)
        wait.until(lambda d: banner_text(d) == "")
        wait.until(
            lambda d: d.execute_script(
                "var t = document.getElementById('overview-tile-crimes');"
                " return t !== null && t.dataset.blOld === undefined;"
            )
        )
        wait.until(lambda d: d.execute_script(TILES_DRAWN))
        assert chromium.execute_script("return window.location.search") == search
        # The same filters; only the data time moved on, to the new run.
        redrawn = chromium.find_element(By.ID, "overview-caption").text
        assert redrawn.split("Data as at")[0] == caption.split("Data as at")[0]
        after = {
            key: chromium.find_element(By.ID, f"overview-tile-{key}").text
            for key in before
        }
        assert after == before
    finally:
        wall_tests._stop(server, thread)
    # The unfiltered overview shows other figures: a lost filter would be seen.
    unfiltered = wall_tests.overview_tests.call(
        overview_app.server.test_client(), wall_tests.overview_tests.tiles_body({})
    )
    everything = wall_tests.overview_tests.tile_texts(
        unfiltered["overview-tiles"]["children"]
    )
    assert everything["crimes"] != before["crimes"]
    no_console_errors(chromium)
