"""The audit trail: page views, callbacks, exports and refusals recorded, through the
Flask test client against a demo warehouse; the admin page, its CSV, and the store
under failure and concurrency."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pandas as pd
import pytest
import test_app_auth as app_tests
from flask import Flask
from sqlalchemy import create_engine, inspect, select
from test_app_auth import callback_body, login, route_to

import accounts
import audit
from etl import demo, pipeline, warehouse

# Fixtures shared by the app tests: Dash Pages allows one app per process.
app_home, dash_app = app_tests.app_home, app_tests.dash_app

ROOT = Path(__file__).resolve().parent.parent
BIRMINGHAM = "E08000025"  # a demo district outside the demo commander's Coventry
CODES = ("investigation", "briefing", "performance-review", "foi-request", "audit")


def demo_files(tmp_path_factory) -> dict[str, Path]:
    home = tmp_path_factory.getbasetemp() / "bluelamp-audit"
    if not (home / "generated").exists():
        paths = demo.generate(home / "demo", months=2, seed=7)
        (home / "generated").write_text(
            json.dumps({k: str(v) for k, v in paths.items()})
        )
    return {k: Path(v) for k, v in json.loads((home / "generated").read_text()).items()}


@pytest.fixture(scope="session")
def audit_warehouse_url(tmp_path_factory) -> str:
    """Two months of demo crime, incidents and calls, loaded once per session."""
    home = tmp_path_factory.getbasetemp() / "bluelamp-audit"
    home.mkdir(exist_ok=True)
    url = f"duckdb:///{home / 'warehouse.duckdb'}"
    if not (home / "loaded").exists():
        paths = demo_files(tmp_path_factory)
        for source in ["boundaries", "population", "police-uk-street", "cad", "calls"]:
            result = pipeline.run(url, source, paths[source])
            assert result.status == "succeeded", result.summary()
        (home / "loaded").touch()
    return url


def use_warehouse(dash_app, url: str):
    runtime = dash_app.server.extensions["bluelamp"]
    real_reader = runtime.reader
    runtime.reader = warehouse.Reader(url)
    runtime.cache.clear()
    return lambda: (setattr(runtime, "reader", real_reader), runtime.cache.clear())


@pytest.fixture(scope="module")
def audit_app(dash_app, audit_warehouse_url):
    restore = use_warehouse(dash_app, audit_warehouse_url)
    try:
        yield dash_app
    finally:
        restore()


def swap_trail(dash_app, trail: audit.AuditLog):
    extensions = dash_app.server.extensions
    real = extensions["bluelamp_audit"]
    extensions["bluelamp_audit"] = trail
    return lambda: extensions.__setitem__("bluelamp_audit", real)


@pytest.fixture
def trail(audit_app, tmp_path):
    """A fresh audit store for one test, in a SQLite file as on DuckDB."""
    log = audit.AuditLog(f"sqlite:///{tmp_path / 'audit.sqlite'}", reason_codes=CODES)
    restore = swap_trail(audit_app, log)
    try:
        yield log
    finally:
        restore()
        log.close()


@pytest.fixture
def client(audit_app):
    return audit_app.server.test_client()


def events(trail: audit.AuditLog, **filters) -> pd.DataFrame:
    assert trail.flush(), "the audit queue did not drain"
    return trail.events(audit.AuditFilters(**filters)).sort_values("id")


def only(trail: audit.AuditLog, **filters) -> pd.Series:
    found = events(trail, **filters)
    assert len(found) == 1, found.to_string()
    return found.iloc[0]


def csv_body(text: str) -> pd.DataFrame:
    body = "".join(line for line in text.splitlines(True) if not line.startswith("# "))
    return pd.read_csv(io.StringIO(body))


def post(client, body, role="analyst"):
    return client.post("/_dash-update-component", json=body, headers=login(role))


TYPES_FIGURE = callback_body(
    [("crime-type-bar", "figure")], [("crime-url", "search", "?period=last-month")]
)
KPIS = callback_body(
    [
        ("crime-message", "children"),
        ("crime-period-sentence", "children"),
        ("crime-kpis", "children"),
    ],
    [("crime-url", "search", f"?level=lad&area={BIRMINGHAM}")],
)
SHELL_CLOCK = callback_body(
    [("shell-data-as-at", "children")], [("shell-refresh", "n_intervals", 3)]
)


def audit_body(page_size=500, page_current=0, triggered="audit-user.value", **values):
    inputs = [
        ("audit-table", "page_current", page_current),
        ("audit-table", "page_size", page_size),
        ("audit-user", "value", values.get("user")),
        ("audit-outcome", "value", values.get("outcome")),
        ("audit-page", "value", values.get("page")),
        ("audit-from", "value", values.get("start")),
        ("audit-to", "value", values.get("end")),
        ("audit-exports", "value", values.get("exports", False)),
    ]
    return callback_body(
        [
            ("audit-table", "data"),
            ("audit-table", "page_count"),
            ("audit-table", "page_current"),
            ("audit-count", "children"),
            ("audit-download", "href"),
        ],
        inputs,
        changed=[triggered],
    )


# ---------------------------------------------------------------------------
# What is recorded


def test_page_view_is_recorded_with_user_page_and_filters(client, trail):
    response = client.get("/crime?period=last-month", headers=login("analyst"))
    assert response.status_code == 200
    event = only(trail)
    assert (event.user_name, event.role, event.method) == ("analyst", "analyst", "GET")
    assert (event.path, event.page, event.filters) == (
        "/crime",
        "/crime",
        "period=last-month",
    )
    assert (event.status, event.outcome) == (200, "allowed")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert abs(pd.Timestamp(event["at"]) - now) < dt.timedelta(minutes=1)


def test_callback_is_recorded_with_its_page_outputs_and_inputs(client, trail):
    assert post(client, TYPES_FIGURE).status_code == 200
    # Navigating within the app is the router's callback: recorded with its page.
    assert post(client, route_to("/incidents")).status_code == 200
    first, routed = events(trail).itertuples()
    assert (first.page, first.callback) == ("/crime", "crime-type-bar.figure")
    assert first.filters == '{"crime-url.search": "?period=last-month"}'
    assert first.outcome == "allowed" and first.path == "/_dash-update-component"
    assert routed.page == "/incidents"
    assert '"_pages_location.pathname": "/incidents"' in routed.filters


def test_quiet_requests_are_not_recorded_but_their_failures_are(client, trail):
    analyst = login("analyst")
    for path in ["/_dash-layout", "/_dash-dependencies", "/assets/style.css"]:
        assert client.get(path, headers=analyst).status_code == 200
    client.get("/api/freshness", headers=analyst)
    assert post(client, SHELL_CLOCK).status_code == 200
    assert events(trail).empty
    assert client.get("/assets/nope.css", headers=analyst).status_code == 404
    event = only(trail)
    assert (event.path, event.status, event.outcome) == (
        "/assets/nope.css",
        404,
        "error",
    )


@pytest.mark.parametrize(
    ("url", "chart", "page"),
    [
        ("/export/crime/types.csv?period=last-month", "crime/types", "/crime"),
        ("/export/crime/points.csv", "crime/points", "/crime"),
        ("/export/incidents/grades.csv", "incidents/grades", "/incidents"),
        ("/export/incidents/exceptions.csv", "incidents/exceptions", "/incidents"),
    ],
)
def test_export_records_the_rows_and_columns_that_left(client, trail, url, chart, page):
    response = client.get(url, headers=login("analyst"))
    assert response.status_code == 200
    body = csv_body(response.get_data(as_text=True))
    assert len(body) > 0
    event = only(trail)
    assert (event.export_chart, event.page, event.outcome) == (chart, page, "allowed")
    assert event.export_rows == len(body)
    assert event.export_columns.split(",") == list(body.columns)
    assert pd.isna(event.reason_code)
    assert event.filters == (urlsplit(url).query or None)


def test_hotspot_export_records_the_points_it_embeds(client, trail):
    response = client.get("/export/crime/points.csv", headers=login("analyst"))
    points = len(csv_body(response.get_data(as_text=True)))
    response = client.get("/export/crime/hotspots.html", headers=login("analyst"))
    assert response.status_code == 200
    event = events(trail).iloc[-1]
    assert (event.export_chart, event.export_rows) == ("crime/hotspots", points)
    assert event.export_columns == "latitude,longitude"


def test_a_download_cut_short_is_recorded_with_the_rows_sent(client, trail):
    response = client.get(
        "/export/crime/points.csv", headers=login("analyst"), buffered=False
    )
    try:
        pieces = iter(response.response)
        assert next(pieces).startswith(b"# Bluelamp crime export")  # header block
        next(pieces)  # the column names; the client goes away before any row
    finally:
        response.close()
    event = only(trail)
    assert event.export_rows == 0 and event.outcome == "error"
    assert event.reasons.startswith("download ended after 0 of ")


class BrokenReader:
    def connect(self):
        raise RuntimeError("disk on fire")


def test_a_server_error_is_recorded_as_an_error(audit_app, client, trail):
    runtime = audit_app.server.extensions["bluelamp"]
    real_reader, runtime.reader = runtime.reader, BrokenReader()
    try:
        response = post(client, TYPES_FIGURE)
    finally:
        runtime.reader = real_reader
    assert response.status_code == 500
    assert "disk on fire" not in response.get_data(as_text=True)
    event = only(trail)
    assert (event.status, event.outcome, event.page) == (500, "error", "/crime")
    assert event.callback == "crime-type-bar.figure"


# ---------------------------------------------------------------------------
# Refusals


def test_refused_callback_gets_403_no_data_and_an_audit_record(client, trail):
    response = post(client, TYPES_FIGURE, role="display")
    assert response.status_code == 403
    text = response.get_data(as_text=True)
    assert "Forbidden" in text and "figure" not in text and "Robbery" not in text
    event = only(trail)
    assert (event.user_name, event.role, event.status) == ("display", "display", 403)
    assert (event.outcome, event.page) == ("refused", "/crime")
    assert event.reasons == "role display may not see /crime"
    assert event.callback == "crime-type-bar.figure"


def test_refused_export_is_recorded_as_an_export(client, trail):
    response = client.get("/export/crime/types.csv", headers=login("commander"))
    assert response.status_code == 403
    event = only(trail)
    assert (event.export_chart, event.export_rows, event.outcome) == (
        "crime/types",
        0,
        "refused",
    )
    assert event.reasons == "role commander may not export from /crime"


def test_export_refused_before_its_route_is_recorded_as_an_export(client, trail):
    response = client.get(
        "/export/incidents/grades.csv?period=forever", headers=login("analyst")
    )
    assert response.status_code == 400
    event = only(trail)
    assert (event.export_chart, event.page, event.export_rows) == (
        "incidents/grades",
        "/incidents",
        0,
    )
    assert event.outcome == "refused" and "period" in event.reasons


def test_failed_login_is_recorded_without_the_password(client, trail):
    assert (
        client.get("/crime", headers=login("analyst", "Wr0ng-pass")).status_code == 401
    )
    assert client.get("/crime").status_code == 401
    failed, anonymous = events(trail).itertuples()
    assert (failed.user_name, failed.outcome, failed.reasons) == (
        "analyst",
        "refused",
        "no valid login",
    )
    assert pd.isna(anonymous.user_name) and anonymous.status == 401


def test_scoped_commander_asking_for_another_district_leaves_a_record(client, trail):
    response = post(client, KPIS, role="commander")
    assert response.status_code == 200
    assert "is not one of your areas" in response.get_data(as_text=True)
    event = only(trail)
    assert (event.user_name, event.outcome, event.status) == (
        "commander",
        "refused",
        200,
    )
    assert f"area outside scope: lad {BIRMINGHAM}" in event.reasons


# ---------------------------------------------------------------------------
# Reason codes


class FormReader(HTMLParser):
    def __init__(self):
        super().__init__()
        self.action, self.hidden, self.options = None, [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.action = attrs["action"]
        elif tag == "input" and attrs.get("type") == "hidden":
            self.hidden.append((attrs["name"], attrs["value"]))
        elif tag == "option":
            self.options.append(attrs["value"])


def test_required_reason_asks_for_one_then_stores_it(client, trail):
    trail.reason_required = True
    url = "/export/crime/types.csv?period=last-month&type=Robbery&type=Drugs"
    asked = client.get(url, headers=login("analyst"))
    assert asked.status_code == 400 and asked.mimetype == "text/html"
    page = asked.get_data(as_text=True)
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")
    form = FormReader()
    form.feed(page)
    assert form.options == list(CODES)
    # Submitting the form sends the same request again, with &reason=.
    again = form.action + "?" + urlencode([*form.hidden, ("reason", "briefing")])
    assert again == url + "&reason=briefing"
    taken = client.get(again, headers=login("analyst"))
    assert taken.status_code == 200
    text = taken.get_data(as_text=True)
    assert "# Reason code: briefing" in text
    wrong = client.get(url + "&reason=curiosity", headers=login("analyst"))
    assert wrong.status_code == 400

    refused, allowed, unknown = events(trail).itertuples()
    assert (refused.outcome, refused.status, refused.export_rows) == ("refused", 400, 0)
    assert refused.reasons == "export reason code missing"
    assert pd.isna(refused.reason_code)
    assert (allowed.outcome, allowed.reason_code) == ("allowed", "briefing")
    assert allowed.export_rows == len(csv_body(text)) > 0
    assert (unknown.outcome, unknown.reasons) == (
        "refused",
        "unknown export reason code",
    )


def test_optional_reason_is_stored_when_given(client, trail):
    response = client.get(
        "/export/incidents/grades.csv?reason=foi-request", headers=login("admin")
    )
    assert response.status_code == 200
    assert "# Reason code: foi-request" in response.get_data(as_text=True)
    assert only(trail).reason_code == "foi-request"


# ---------------------------------------------------------------------------
# The admin page and the audit CSV


@pytest.mark.parametrize("role", ["leader", "commander", "analyst", "display"])
def test_only_admins_see_the_audit_page_its_callbacks_and_csv(client, trail, role):
    assert client.get("/audit", headers=login(role)).status_code == 403
    assert post(client, audit_body(), role=role).status_code == 403
    assert post(client, route_to("/audit"), role=role).status_code == 403
    response = client.get("/export/audit.csv", headers=login(role))
    assert response.status_code == 403
    assert "audit" not in client.get("/_dash-layout", headers=login(role)).get_data(
        as_text=True
    ).replace("bluelamp", "")
    recorded = events(trail)
    assert len(recorded) == 4 and set(recorded["outcome"]) == {"refused"}
    assert set(recorded["page"]) == {"/audit"}


def test_admin_page_lists_filters_and_pages_events_newest_first(client, trail):
    assert client.get("/audit", headers=login("admin")).status_code == 200
    client.get("/crime?period=last-month", headers=login("analyst"))
    client.get("/incidents", headers=login("leader"))
    post(client, TYPES_FIGURE, role="display")
    client.get("/export/crime/types.csv", headers=login("analyst"))
    assert trail.flush()

    out = post(client, audit_body(), role="admin").get_json()["response"]
    rows = out["audit-table"]["data"]
    assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)
    assert len(rows) == 5 and out["audit-count"]["children"].startswith("5 event(s)")

    analyst = post(client, audit_body(user="analyst"), role="admin").get_json()
    rows = analyst["response"]["audit-table"]["data"]
    assert {r["user_name"] for r in rows} == {"analyst"} and len(rows) == 2
    assert analyst["response"]["audit-download"]["href"] == (
        "/export/audit.csv?user=analyst"
    )
    refused = post(client, audit_body(outcome="refused"), role="admin").get_json()
    assert [r["role"] for r in refused["response"]["audit-table"]["data"]] == [
        "display"
    ]
    exported = post(client, audit_body(exports=True), role="admin").get_json()
    assert [r["export_chart"] for r in exported["response"]["audit-table"]["data"]] == [
        "crime/types"
    ]
    crime = post(client, audit_body(page="/crime"), role="admin").get_json()
    assert len(crime["response"]["audit-table"]["data"]) == 3

    today = dt.date.today()
    day = dt.timedelta(days=1)
    for start, end, expected in [
        (today - day, today + day, True),
        (today - 3 * day, today - 2 * day, False),
    ]:
        body = audit_body(start=start.isoformat(), end=end.isoformat())
        data = post(client, body, role="admin").get_json()["response"]
        assert bool(data["audit-table"]["data"]) is expected

    # Paged on the server: two rows a page, the third page holds the oldest.
    body = audit_body(page_size=2, page_current=2, triggered="audit-table.page_current")
    paged = post(client, body, role="admin").get_json()["response"]
    assert paged["audit-table"]["page_count"] >= 4
    assert paged["audit-table"]["page_current"] == 2
    assert len(paged["audit-table"]["data"]) == 2


def test_audit_filters_from_the_url_drop_what_is_not_valid():
    filters, problems = audit.parse_filters(
        {"from": "0001-01-01", "to": "2024-02-30", "outcome": "x", "exports": "1"}
    )
    assert filters == audit.AuditFilters(exports_only=True) and len(problems) == 3
    filters, problems = audit.parse_filters({"from": "2024-03-01", "to": "2024-01-01"})
    assert (filters.start, filters.end, problems) == (
        dt.date(2024, 1, 1),
        dt.date(2024, 3, 1),
        [],
    )
    assert filters.query_string() == "?from=2024-01-01&to=2024-03-01"


def test_audit_callback_survives_hostile_paging_and_dates(client, trail):
    body = audit_body(page_size=10_000, start="300 years ago", end="9999-12-31")
    response = post(client, body, role="admin")
    assert response.status_code == 200
    out = response.get_json()["response"]
    assert "'300 years ago' is not a date" in out["audit-count"]["children"]
    assert "'9999-12-31' is not a date" in out["audit-count"]["children"]


def test_audit_csv_holds_the_listed_events_and_is_itself_audited(client, trail):
    client.get("/crime", headers=login("analyst"))
    client.get("/export/crime/types.csv", headers=login("analyst"))
    client.get("/incidents", headers=login("analyst"))
    client.get("/overview", headers=login("leader"))
    assert trail.flush()
    listed = post(client, audit_body(user="analyst"), role="admin").get_json()
    listed = listed["response"]["audit-table"]["data"]
    href = post(client, audit_body(user="analyst"), role="admin").get_json()
    href = href["response"]["audit-download"]["href"]

    response = client.get(href, headers=login("admin"))
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert text.startswith("# Bluelamp audit export: audit events, newest first\n")
    assert "# Filters: user analyst, every outcome, every page\n" in text
    assert "# Definition of export_rows: " in text
    body = csv_body(text)
    assert body["id"].tolist() == [r["id"] for r in listed] and len(body) == 3
    assert body.columns.tolist() == audit.COLUMNS
    assert set(body["user_name"]) == {"analyst"}
    assert body["at"].str.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$").all()

    event = events(trail, exports_only=True, page="/audit").iloc[-1]
    assert (event.user_name, event.export_chart, event.export_rows) == (
        "admin",
        "audit",
        3,
    )
    assert event.filters == "user=analyst"


def test_audit_csv_neutralises_formula_cells(client, trail):
    client.get("/crime?=HYPERLINK(1)", headers=login("analyst"))
    assert trail.flush()
    text = client.get("/export/audit.csv", headers=login("admin")).get_data(
        as_text=True
    )
    assert csv_body(text)["filters"].tolist() == ["'=HYPERLINK(1)"]


# ---------------------------------------------------------------------------
# Secrets, failures, concurrency


def test_no_password_or_authorization_value_is_recorded_or_logged(
    client, trail, caplog
):
    caplog.set_level(logging.DEBUG)
    wrong = login("analyst", "Wr0ng-Secret-Pw")
    secrets_seen = [
        accounts.DEMO_PASSWORD,
        "Wr0ng-Secret-Pw",
        "hunter2",
        login("analyst")["Authorization"].split()[1],
        wrong["Authorization"].split()[1],
        "Basic ",
        "test-secret",  # the app's BLUELAMP_SECRET_KEY
    ]
    client.get("/crime", headers=wrong)
    client.get("/crime?password=hunter2&period=last-month", headers=login("analyst"))
    client.get("/", headers={**login("analyst"), "Cookie": "session=hunter2"})
    body = callback_body(
        [("crime-type-bar", "figure")],
        [("crime-url", "search", ""), ("crime-password", "value", "hunter2")],
    )
    post(client, body)
    client.get("/export/crime/kpis.csv?token=hunter2", headers=login("analyst"))
    recorded = events(trail)
    assert len(recorded) == 5
    text = recorded.to_csv() + caplog.text
    for secret in secrets_seen:
        assert secret not in text
    assert "password=[redacted]&period=last-month" in recorded["filters"].tolist()

    # The store's own failures are logged without the URL's password.
    broken = audit.AuditLog("postgresql+psycopg://bl:Sup3rSecret@127.0.0.1:9/none")
    broken.record(
        {
            "at": dt.datetime(2024, 1, 1),
            "method": "GET",
            "path": "/",
            "status": 200,
            "outcome": "allowed",
        }
    )
    assert not broken.flush(timeout=3)
    broken.close(timeout=0.1)
    lines = [r.getMessage() for r in caplog.records if r.name == "bluelamp.audit"]
    assert lines and all("\n" not in line for line in lines)
    assert "Sup3rSecret" not in caplog.text and "bl:***@127.0.0.1" in caplog.text


def test_a_store_that_fails_costs_a_log_line_not_the_request(
    audit_app, client, tmp_path, caplog
):
    (tmp_path / "a-file").write_text("")
    broken = audit.AuditLog(f"sqlite:///{tmp_path / 'a-file' / 'audit.sqlite'}")
    restore = swap_trail(audit_app, broken)
    try:
        started = time.perf_counter()
        response = client.get("/crime", headers=login("analyst"))
        elapsed = time.perf_counter() - started
        assert response.status_code == 200 and elapsed < 2
        assert not broken.flush(timeout=1)
    finally:
        restore()
        broken.close(timeout=0.1)
    lines = [r.getMessage() for r in caplog.records if r.name == "bluelamp.audit"]
    assert lines[0].startswith("audit: 1 event(s) not yet written to sqlite:///")
    # Queueing an event costs microseconds, whatever the store is doing.
    slow = audit.AuditLog(f"sqlite:///{tmp_path / 'a-file' / 'other.sqlite'}")
    started = time.perf_counter()
    for n in range(1000):
        slow.record(
            {
                "at": dt.datetime(2024, 1, 1),
                "method": "GET",
                "path": f"/{n}",
                "status": 200,
                "outcome": "allowed",
            }
        )
    assert time.perf_counter() - started < 0.5
    slow.close(timeout=0.1)


APPENDER = """
import datetime as dt, pathlib, sys, time
import audit
url, go, count, name = sys.argv[1], pathlib.Path(sys.argv[2]), *sys.argv[3:]
trail = audit.AuditLog(url)
while not go.exists():
    time.sleep(0.005)
for n in range(int(count)):
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    trail.record({"at": now, "user_name": name, "method": "GET", "path": f"/{n}",
                  "status": 200, "outcome": "allowed"})
    if n % 3 == 0:
        assert trail.flush(60)  # many small transactions, interleaved with the other
assert trail.flush(60)
"""


def test_two_processes_appending_at_once_lose_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'audit.sqlite'}"
    go, count = tmp_path / "go", 300
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, url, str(go), str(count), name],
            cwd=ROOT,
            env=env,
        )
        for name in ("worker-1", "worker-2")
    ]
    time.sleep(3)  # both imported and waiting (they wait as long as it takes)
    go.touch()
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    trail = audit.AuditLog(url)
    found = trail.events()
    assert len(found) == 2 * count and found["id"].is_unique
    for name in ("worker-1", "worker-2"):
        paths = found.loc[found["user_name"] == name, "path"]
        assert sorted(paths) == sorted(f"/{n}" for n in range(count))
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_threads_appending_at_once_lose_nothing(tmp_path):
    import threading

    url = f"sqlite:///{tmp_path / 'audit.sqlite'}"
    logs = [audit.AuditLog(url) for _ in range(4)]

    def append(log, name):
        for n in range(200):
            log.record(
                {
                    "at": dt.datetime(2024, 1, 1),
                    "user_name": name,
                    "method": "GET",
                    "path": f"/{n}",
                    "status": 200,
                    "outcome": "allowed",
                }
            )

    threads = [
        threading.Thread(target=append, args=(log, f"t{i}"))
        for i, log in enumerate(logs)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(log.flush(30) for log in logs)
    assert logs[0].count() == 800
    for log in logs:
        log.close()


# ---------------------------------------------------------------------------
# Where the trail goes


def test_store_is_beside_duckdb_or_in_the_postgresql_warehouse(tmp_path):
    duck = f"duckdb:///{tmp_path / 'bluelamp.duckdb'}"
    assert audit.store_url("", duck) == f"sqlite:///{tmp_path / 'audit.sqlite'}"
    pg = "postgresql+psycopg://db.example/force"
    assert audit.store_url("", pg) == pg
    assert audit.store_url("sqlite:////var/audit.db", duck) == "sqlite:////var/audit.db"
    with pytest.raises(ValueError, match="cannot be DuckDB"):
        audit.store_url("duckdb:///audit.duckdb", pg)


def test_install_reads_the_reason_settings():
    server = Flask("probe")
    trail = audit.install(
        server,
        {
            "BLUELAMP_WAREHOUSE_URL": "postgresql+psycopg://db.example/force",
            "BLUELAMP_EXPORT_REASON": "required",
            "BLUELAMP_EXPORT_REASON_CODES": " court , review,court",
        },
    )
    assert trail.url == "postgresql+psycopg://db.example/force"
    assert trail.reason_required and trail.reason_codes == ("court", "review")
    assert audit.install(Flask("probe"), {}).reason_codes == CODES
    for bad in [
        {"BLUELAMP_EXPORT_REASON": "sometimes"},
        {"BLUELAMP_EXPORT_REASON_CODES": " , "},
    ]:
        with pytest.raises(ValueError):
            audit.install(Flask("probe"), bad)


@pytest.mark.postgres
def test_postgresql_warehouse_keeps_its_audit_trail_in_postgresql(
    dash_app, postgres_url, tmp_path_factory
):
    paths = demo_files(tmp_path_factory)
    for source in ["boundaries", "population", "police-uk-street"]:
        result = pipeline.run(postgres_url, source, paths[source])
        assert result.status == "succeeded", result.summary()
    restore_reader = use_warehouse(dash_app, postgres_url)
    trail = audit.AuditLog(audit.store_url("", postgres_url), reason_codes=CODES)
    assert trail.url == postgres_url
    restore_trail = swap_trail(dash_app, trail)
    client = dash_app.server.test_client()
    try:
        assert client.get("/crime", headers=login("analyst")).status_code == 200
        assert post(client, TYPES_FIGURE).status_code == 200
        response = client.get(
            "/export/crime/types.csv?reason=audit", headers=login("analyst")
        )
        rows = len(csv_body(response.get_data(as_text=True)))
        assert post(client, TYPES_FIGURE, role="display").status_code == 403
        assert trail.flush()
    finally:
        restore_trail()
        restore_reader()
        trail.close()
    engine = create_engine(postgres_url)
    try:
        assert inspect(engine).has_table("audit_event")  # in the warehouse's schema
        with engine.connect() as conn:
            stored = (
                conn.execute(select(audit.audit_event).order_by(audit.audit_event.c.id))
                .mappings()
                .all()
            )
    finally:
        engine.dispose()
    assert [(r["path"], r["outcome"]) for r in stored] == [
        ("/crime", "allowed"),
        ("/_dash-update-component", "allowed"),
        ("/export/crime/types.csv", "allowed"),
        ("/_dash-update-component", "refused"),
    ]
    assert stored[2]["export_rows"] == rows > 0 and stored[2]["reason_code"] == "audit"


def test_a_10_mb_payload_gets_413_and_a_refused_record(client, trail):
    huge = dict(TYPES_FIGURE)
    huge["inputs"] = [dict(TYPES_FIGURE["inputs"][0], value="x" * 10_000_000)]
    response = post(client, huge)
    assert response.status_code == 413
    assert "Traceback" not in response.get_data(as_text=True)
    event = only(trail)
    assert (event.status, event.outcome) == (413, "refused")
    assert "size limit" in event.reasons
    # The app keeps serving.
    assert post(client, TYPES_FIGURE).status_code == 200
