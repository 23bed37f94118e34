"""A required export reason code, end to end in headless Chromium: the crime page's
CSV link opens the form, the form's code brings the download, and the audit trail
holds the refused request and the export with its code."""

from __future__ import annotations

import time

import pytest
import test_app_browser as browser_tests
import test_crime_page as crime_tests

import audit

app_home, dash_app = crime_tests.app_home, crime_tests.dash_app
crime_warehouse_url, crime_app = crime_tests.crime_warehouse_url, crime_tests.crime_app
chromium, live_url = browser_tests.chromium, browser_tests.live_url

pytestmark = [pytest.mark.browser, pytest.mark.real_data]


@pytest.fixture
def reason_required(crime_app, tmp_path):
    log = audit.AuditLog(
        f"sqlite:///{tmp_path / 'audit.sqlite'}",
        reason_codes=("investigation", "briefing"),
        reason_required=True,
    )
    extensions = crime_app.server.extensions
    real = extensions["bluelamp_audit"]
    extensions["bluelamp_audit"] = log
    try:
        yield log
    finally:
        extensions["bluelamp_audit"] = real
        log.close()


def test_the_csv_link_asks_for_a_reason_then_downloads(
    chromium, live_url, reason_required, tmp_path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    chromium.execute_cdp_cmd(
        "Browser.setDownloadBehavior",
        {"behavior": "allow", "downloadPath": str(downloads)},
    )
    chromium.get(live_url + f"/crime?level=lad&area={crime_tests.LEICESTER}")
    wait = WebDriverWait(chromium, 60)
    link = wait.until(lambda d: d.find_element(By.ID, "crime-export-areas"))
    wait.until(lambda d: "area=E06000016" in (link.get_attribute("href") or ""))
    assert link.get_dom_attribute("download") is None
    wait.until(
        lambda d: d.execute_script(
            "return !document.querySelector('[data-dash-is-loading=\"true\"]')"
        )
    )
    # A click on the anchor as the user would (the element's own click(), so no
    # overlay or viewport position decides it).
    chromium.execute_script("arguments[0].click()", link)
    # The export answers with the reason form rather than a file.
    select = wait.until(lambda d: d.find_element(By.TAG_NAME, "select"))
    assert "reason code" in chromium.page_source.lower()
    Select(select).select_by_value("briefing")
    chromium.find_element(By.CSS_SELECTOR, "form [type=submit]").click()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = [p for p in downloads.iterdir() if p.suffix == ".csv"]
        if done:
            break
        time.sleep(0.2)
    assert done, "no CSV downloaded"
    text = done[0].read_text()
    assert "briefing" in text and "E05001784" in text  # a ward of Leicester

    assert reason_required.flush()
    events = reason_required.events(audit.AuditFilters(exports_only=True))
    outcomes = sorted(events["outcome"])
    assert outcomes == ["allowed", "refused"]
    allowed = events[events["outcome"] == "allowed"].iloc[0]
    assert allowed["reason_code"] == "briefing" and allowed["export_rows"] > 0
