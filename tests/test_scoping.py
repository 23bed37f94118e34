"""Area scoping in the query layer: a scoped commander's figures, maps, drills and
CSVs hold their areas only, whatever the URL or the callback payload asks for.

Query tests run on a small built warehouse (DuckDB and PostgreSQL); the app tests
use the real Leicestershire data and a commander limited to the city of Leicester.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pandas as pd
import pytest
import test_crime_page as crime_tests
import test_crime_real_data as real_tests
import test_incident_queries as incident_tests
from test_app_auth import callback_body, login

import accounts
from queries import crime, incidents, scope
from queries.crime import CrimeFilters

app_home, dash_app = crime_tests.app_home, crime_tests.dash_app
crime_warehouse_url, crime_app = crime_tests.crime_warehouse_url, crime_tests.crime_app
crime_client = crime_tests.crime_client
raw, lsoa_lad = real_tests.raw, real_tests.lsoa_lad
reader, conn = incident_tests.reader, incident_tests.conn

LEICESTER = crime_tests.LEICESTER
CHARNWOOD = "E07000130"
FORCE = crime_tests.FORCE
MARCH = incident_tests.MARCH


# ---------------------------------------------------------------------------
# Queries (built warehouse: L1 = wards W1, W2; L2 = ward W3)


def test_incident_figures_hold_only_the_scoped_areas(conn):
    whole = incidents.attendance_by_grade(conn, MARCH)
    ward = dataclasses.replace(MARCH, area_level="ward", area_code="W2")
    expected = incidents.attendance_by_grade(conn, ward)
    with scope.restricted_to({"W2"}):
        # The force view, asked for by a user limited to ward W2, is ward W2.
        got = incidents.attendance_by_grade(conn, MARCH)
        lads = incidents.by_area(conn, MARCH, "lad")
        cell = incidents.hour_of_week(conn, MARCH)
        listed = incidents.exceptions(conn, MARCH, margin_minutes=0)
    pd.testing.assert_frame_equal(got, expected)
    assert got["incidents"].sum() == 3 < whole["incidents"].sum()
    # Only the local authority holding W2 is listed, with W2's incidents only.
    assert lads[["area_code", "incidents"]].values.tolist() == [["L1", 3]]
    assert cell["incidents"].sum() == 3
    assert set(listed["incident_id"]) <= {"G1-RUR-18", "DOWN-1-2", "OPEN-G2"}


def test_a_single_incident_outside_the_scope_is_not_there(conn):
    assert incidents.incident_detail(conn, "wm", "G1-URB-18") is not None  # in A1/W1
    with scope.restricted_to({"W2"}):
        assert incidents.incident_detail(conn, "wm", "G1-URB-18") is None
        assert incidents.incident_timeline(conn, "wm", "G1-URB-18").empty
        assert incidents.incident_detail(conn, "wm", "G1-RUR-18") is not None
    with scope.restricted_to({"L1"}):  # a local authority holds its wards
        assert incidents.incident_detail(conn, "wm", "G1-URB-18") is not None


def test_unplaced_incidents_and_calls_are_never_shown_to_a_scoped_user(conn):
    force_wide = dataclasses.replace(MARCH, area_code=None)
    with scope.restricted_to({"test-police"}):
        scoped = incidents.attendance_by_grade(conn, force_wide)
        answering = incidents.call_answering(conn, MARCH.start, MARCH.end)
    # The force's incidents with an LSOA (G1-UNK-12 has none, US-1 is elsewhere).
    assert scoped["incidents"].sum() == 8
    assert answering["offered"].sum() == 0


def test_an_empty_scope_sees_nothing(conn):
    with scope.restricted_to(()):
        assert incidents.attendance_by_grade(conn, MARCH).empty
        assert incidents.by_area(conn, MARCH, "lad").empty
    assert not scope.restricted()  # the scope ends with the block


# ---------------------------------------------------------------------------
# The app on real data: a commander limited to Leicester


@pytest.fixture(scope="module")
def leicester_commander(app_home):
    """A commander whose users-file entry names only the city of Leicester."""
    users = app_home / "users.toml"
    if "leics-commander" not in users.read_text():
        with users.open("a") as handle:
            handle.write(
                "\n"
                + accounts.user_entry(
                    "leics-commander",
                    accounts.DEMO_PASSWORD,
                    "commander",
                    areas=[LEICESTER],
                )
            )
    return login("leics-commander")


def post(client, body, headers) -> dict:
    response = client.post("/_dash-update-component", json=body, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)[:1000]
    return response.get_json()["response"]


def rolling_year(crime_warehouse_url):
    months = crime_tests.read(crime_warehouse_url, crime.months_available)["month"]
    start, end, _ = crime.resolve_period("rolling-12", months)
    return start, end


def test_the_commander_opens_on_their_area_with_its_hand_counted_figure(
    crime_client, crime_warehouse_url, leicester_commander, raw, lsoa_lad
):
    start, end = rolling_year(crime_warehouse_url)
    in_leicester = raw[raw["LSOA code"].map(lsoa_lad) == LEICESTER]
    expected = len(real_tests._months(in_leicester, start, end))
    out = post(crime_client, crime_tests.kpi_body(""), leicester_commander)
    values = crime_tests.kpi_values(out["crime-kpis"]["children"])
    assert values["crime-kpi-crimes"] == str(expected)
    # Asking for the whole force gives the same figure: only Leicester is theirs.
    out = post(crime_client, crime_tests.kpi_body("?level=force"), leicester_commander)
    values = crime_tests.kpi_values(out["crime-kpis"]["children"])
    assert values["crime-kpi-crimes"] == str(expected)


def test_another_district_by_url_shows_none_of_it_and_says_so(
    crime_client, crime_warehouse_url, leicester_commander, raw, lsoa_lad
):
    start, end = rolling_year(crime_warehouse_url)
    leicester = len(
        real_tests._months(raw[raw["LSOA code"].map(lsoa_lad) == LEICESTER], start, end)
    )
    charnwood = len(
        real_tests._months(raw[raw["LSOA code"].map(lsoa_lad) == CHARNWOOD], start, end)
    )
    assert charnwood > 0 and charnwood != leicester
    search = f"?level=lad&area={CHARNWOOD}"
    out = post(crime_client, crime_tests.kpi_body(search), leicester_commander)
    values = crime_tests.kpi_values(out["crime-kpis"]["children"])
    assert values["crime-kpi-crimes"] == str(leicester)
    assert "not one of your areas" in json.dumps(out["crime-message"])
    # An analyst asking the same sees Charnwood.
    out = post(crime_client, crime_tests.kpi_body(search), login("analyst"))
    values = crime_tests.kpi_values(out["crime-kpis"]["children"])
    assert values["crime-kpi-crimes"] == str(charnwood)


def test_a_crafted_map_payload_returns_only_the_scoped_area(
    crime_client, leicester_commander
):
    # The map of the force's local authorities, asked for directly.
    body = callback_body(
        [("crime-map", "figure")],
        [("crime-url", "search", f"?level=force&area={FORCE}")],
    )
    operations = json.dumps(post(crime_client, body, leicester_commander))
    assert LEICESTER in operations and CHARNWOOD not in operations
    analyst = json.dumps(post(crime_client, body, login("analyst")))
    assert CHARNWOOD in analyst
    # The drill picker offers only areas inside the scope.
    body = callback_body(
        [
            ("crime-breadcrumb", "children"),
            ("crime-area-picker", "options"),
            ("crime-area-picker", "placeholder"),
        ],
        [("crime-url", "search", f"?level=force&area={FORCE}")],
    )
    options = post(crime_client, body, leicester_commander)["crime-area-picker"]
    assert [o["value"] for o in options["options"]] == [LEICESTER]


def test_a_csv_export_holds_only_the_scoped_areas(
    crime_client, leicester_commander, monkeypatch
):
    # Give commanders export rights for this test (roles are settings).
    roles = dict(accounts.ROLES)
    roles["commander"] = dataclasses.replace(roles["commander"], export=True)
    monkeypatch.setattr(accounts, "ROLES", roles)
    analyst = crime_client.get(
        f"/export/crime/kpis.csv?level=lad&area={LEICESTER}", headers=login("analyst")
    )
    leicester = crime_tests.csv_frame(analyst.get_data(as_text=True))["crimes"][0]
    for search in (f"?level=force&area={FORCE}", f"?level=lad&area={CHARNWOOD}"):
        response = crime_client.get(
            "/export/crime/areas.csv" + search, headers=leicester_commander
        )
        assert response.status_code == 200
        frame = crime_tests.csv_frame(response.get_data(as_text=True))
        assert CHARNWOOD not in set(frame["area_code"])
        # Whatever level the rows are at, they add up to Leicester alone.
        assert frame["crimes"].sum() == leicester
    response = crime_client.get(
        f"/export/crime/points.csv?level=lad&area={CHARNWOOD}",
        headers=leicester_commander,
    )
    points = crime_tests.csv_frame(response.get_data(as_text=True))
    analyst = crime_client.get(
        f"/export/crime/points.csv?level=lad&area={LEICESTER}", headers=login("analyst")
    )
    assert len(points) == len(crime_tests.csv_frame(analyst.get_data(as_text=True)))


def test_scope_is_part_of_the_cache_key(crime_client, leicester_commander):
    # The same callback, analyst first (fills the cache), then the commander.
    body = crime_tests.kpi_body("?level=force")
    whole = crime_tests.kpi_values(
        post(crime_client, body, login("analyst"))["crime-kpis"]["children"]
    )
    scoped = crime_tests.kpi_values(
        post(crime_client, body, leicester_commander)["crime-kpis"]["children"]
    )
    assert int(scoped["crime-kpi-crimes"]) < int(whole["crime-kpi-crimes"])


def test_filters_dataclass_is_unchanged_by_scope():
    f = CrimeFilters(dt.date(2022, 1, 1), dt.date(2022, 1, 1))
    with scope.restricted_to({LEICESTER}):
        assert f == CrimeFilters(dt.date(2022, 1, 1), dt.date(2022, 1, 1))


# ---------------------------------------------------------------------------
# Each way of asking for another district leaves an audit record


@pytest.fixture
def trail(crime_app, tmp_path):
    import audit

    log = audit.AuditLog(f"sqlite:///{tmp_path / 'audit.sqlite'}")
    extensions = crime_app.server.extensions
    real = extensions["bluelamp_audit"]
    extensions["bluelamp_audit"] = log
    try:
        yield log
    finally:
        extensions["bluelamp_audit"] = real
        log.close()


def test_url_payload_and_csv_for_another_district_are_audited(
    crime_client, leicester_commander, trail, monkeypatch
):
    import audit

    roles = dict(accounts.ROLES)
    roles["commander"] = dataclasses.replace(roles["commander"], export=True)
    monkeypatch.setattr(accounts, "ROLES", roles)
    search = f"?level=lad&area={CHARNWOOD}"
    # 1. The page's own callback, as the browser sends it for that URL.
    post(crime_client, crime_tests.kpi_body(search), leicester_commander)
    # 2. A crafted payload for the map.
    body = callback_body([("crime-map", "figure")], [("crime-url", "search", search)])
    crafted = json.dumps(post(crime_client, body, leicester_commander))
    assert CHARNWOOD not in crafted
    # 3. The CSV.
    response = crime_client.get(
        "/export/crime/areas.csv" + search, headers=leicester_commander
    )
    exported = crime_tests.csv_frame(response.get_data(as_text=True))
    assert CHARNWOOD not in set(exported["area_code"])

    assert trail.flush()
    found = trail.events(audit.AuditFilters(user="leics-commander"))
    refused = found[found["outcome"] == "refused"]
    reason = f"area outside scope: lad {CHARNWOOD}"
    assert len(refused) == 3 and refused["reasons"].str.contains(reason).all()
    assert set(refused["callback"].fillna("")) == {
        "crime-message.children",  # one of the KPI callback's outputs
        "crime-map.figure",
        "",
    } or refused["path"].str.startswith("/export/crime/areas").sum() == 1
    export = refused[refused["path"].str.startswith("/export/")].iloc[0]
    assert export["export_rows"] == len(exported)
