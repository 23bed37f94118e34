"""Disclosure control: small counts blanked and marked, never shown as zero, for the
roles the settings name, the same on the map and in the CSV; totals unchanged.

The app tests use test_access_matrix's small warehouse, where Coventry's first ward
holds 3 crimes (6 a year earlier) and its second 12 (2 a year earlier); the demo
commander is limited to Coventry.
"""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
import pandas as pd
import pytest
import test_access_matrix as matrix
from test_app_auth import callback_body, login

import accounts
import settings
from dashboards import disclosure, exports, figures

# Fixtures shared by the app tests: Dash Pages allows one app per process.
app_home, dash_app = matrix.app_home, matrix.dash_app
small_warehouse, small_app = matrix.small_warehouse, matrix.small_app
small_client = matrix.small_client

POLICY = disclosure.Policy(5, frozenset({"display", "commander"}))
RULES = disclosure.CRIME_RULES["areas"]


# ---------------------------------------------------------------------------
# The rule (pure)


def areas(**columns) -> pd.DataFrame:
    base = {
        "area_code": ["A", "B", "C"],
        "area_name": ["Ay", "Bee", "Sea"],
        "crimes": [3, 12, 0],
        "crimes_last_year": [6, 2, 0],
        "population": [1000, 2000, 3000],
        "rate_per_1000": [3.0, 6.0, 0.0],
        "harm_days": [30.0, 120.0, 0.0],
        "z": [-1.4, 4.1, 0.0],
        "significance": ["noise", "signal", "noise"],
    }
    base.update(columns)
    return pd.DataFrame(base)


def test_counts_below_the_threshold_and_what_they_give_away_are_blanked():
    given = areas()
    got = disclosure.suppress(given, RULES, 5)
    expected = areas(
        crimes=[np.nan, 12.0, 0.0],
        crimes_last_year=[6.0, np.nan, 0.0],
        rate_per_1000=[np.nan, 6.0, 0.0],
        harm_days=[np.nan, 120.0, 0.0],
        z=[np.nan, np.nan, 0.0],
        significance=[None, None, "noise"],
    )
    expected["suppressed"] = ["suppressed (<5)", "suppressed (<5)", ""]
    pd.testing.assert_frame_equal(got, expected)
    # 5 cells of A's (crimes and all it gives away), 3 of B's (last year, z, sig.).
    assert got.attrs["disclosure"]["cells"] == 8
    pd.testing.assert_frame_equal(given, areas())  # the input is not modified


def test_a_true_zero_is_shown_and_nothing_changes_when_off():
    given = areas(crimes=[0, 5, 40], crimes_last_year=[0, 7, 9])
    got = disclosure.suppress(given, RULES, 5)
    assert got["suppressed"].tolist() == ["", "", ""]
    assert got["crimes"].tolist() == [0, 5, 40]
    pd.testing.assert_frame_equal(disclosure.suppress(areas(), RULES, 0), areas())
    assert "suppressed" not in disclosure.suppress(areas(), RULES, 0)


def test_policy_applies_to_the_named_roles_only():
    assert POLICY.threshold_for("commander") == 5
    assert POLICY.threshold_for("analyst") == 0
    assert POLICY.threshold_for(None) == 0
    assert (
        disclosure.Policy(0, frozenset({"commander"})).threshold_for("commander") == 0
    )


@pytest.mark.parametrize(
    ("below", "roles", "message"),
    [
        ("five", "commander", "BLUELAMP_SUPPRESS_BELOW is 'five'"),
        ("-1", "commander", "use 0 or more"),
        ("5", "commander,sergeant", "unknown role(s) sergeant"),
    ],
)
def test_bad_settings_are_refused_with_their_name(below, roles, message):
    with pytest.raises(
        ValueError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        disclosure.parse_policy(below, roles, known_roles=accounts.ROLES)


def test_settings_default_to_off_for_display_and_commander():
    policy = disclosure.parse_policy(
        settings.get("BLUELAMP_SUPPRESS_BELOW", {}),
        settings.get("BLUELAMP_SUPPRESS_ROLES", {}),
        known_roles=accounts.ROLES,
    )
    assert policy == disclosure.Policy(0, frozenset({"display", "commander"}))


def test_csv_says_what_was_suppressed_and_keeps_counts_whole():
    frame = disclosure.suppress(areas(), RULES, 5)
    text = "".join(exports.csv_chunks(frame, [("Area", "test")]))
    header = [line for line in text.splitlines() if line.startswith("# ")]
    assert any(
        "Disclosure control" in h and "8 cell(s) suppressed" in h for h in header
    )
    assert any("Totals are not adjusted" in h for h in header)
    body = pd.read_csv(
        io.StringIO("\n".join(x for x in text.splitlines() if not x.startswith("#"))),
        dtype=str,
        keep_default_na=False,
    )
    assert body["crimes"].tolist() == ["", "12", "0"]  # blank, never 0; not 12.0
    assert body["suppressed"].tolist() == ["suppressed (<5)", "suppressed (<5)", ""]


def test_map_hover_and_grey_layer_say_fewer_than_n():
    frame = disclosure.suppress(areas(), RULES, 5)
    layer = figures.suppressed_layer("/x.geojson", frame, "crimes", "Crimes")
    assert list(layer.locations) == ["A"]
    assert layer.hovertext == ("Ay<br>Crimes: fewer than 5 (suppressed)",)
    assert layer.colorscale[0][1] == layer.colorscale[-1][1] == figures.SUPPRESSED_GREY
    hover = figures.crime_map_hover(frame.iloc[1:], "Crimes", "crimes")
    assert hover[0] == "Bee<br>Crimes: 12<br>Last year: fewer than 5 (suppressed)"
    assert hover[1] == "Sea<br>Crimes: 0<br>Last year: 0 (noise)"


def test_incident_map_hover_says_suppressed_not_zero():
    given = pd.DataFrame(
        {
            "area_code": ["A", "B"],
            "area_name": ["Ay", "Bee"],
            "incidents": [3, 40],
            "attended": [3, 38],
            "with_target": [3, 30],
            "within_target": [2, 27],
            "share_within_target": [2 / 3, 0.9],
            "median_attend_min": [8.0, 9.5],
        }
    )
    frame = disclosure.suppress(given, disclosure.INCIDENT_RULES["areas"], 5)
    values = figures.incidents_map_values(frame, "share")
    assert values["z"] == [None, 90.0]
    assert "Incidents: fewer than 5 (suppressed)" in values["hovertext"][0]
    assert "Within target: fewer than 5 (suppressed)" in values["hovertext"][0]
    assert "Incidents: 40" in values["hovertext"][1]


# ---------------------------------------------------------------------------
# The app on the small warehouse


@pytest.fixture
def suppressing(small_app, monkeypatch):
    """Suppression below 5 for display and commander, and export rights for the
    commander (roles are settings), for one test."""
    runtime = small_app.server.extensions["bluelamp"]
    monkeypatch.setattr(runtime, "disclosure", POLICY)
    roles = dict(accounts.ROLES)
    roles["commander"] = dataclasses.replace(roles["commander"], export=True)
    monkeypatch.setattr(accounts, "ROLES", roles)
    return runtime


def map_patch(client, role, search="") -> dict:
    body = callback_body([("crime-map", "figure")], [("crime-url", "search", search)])
    response = client.post("/_dash-update-component", json=body, headers=login(role))
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    final = {}
    for op in response.get_json()["response"]["crime-map"]["figure"]["operations"]:
        final[tuple(op["location"])] = op["params"]["value"]  # the last one wins
    return final


def trace(patch: dict, prop: str) -> dict:
    """The coloured trace's `prop` by area code."""
    return dict(
        zip(patch[("data", 0, "locations")], patch[("data", 0, prop)], strict=True)
    )


def csv_body(response) -> tuple[str, pd.DataFrame]:
    text = response.get_data(as_text=True)
    body = "\n".join(line for line in text.splitlines() if not line.startswith("# "))
    return text, pd.read_csv(io.StringIO(body), dtype=str, keep_default_na=False)


def test_an_area_with_3_crimes_is_grey_for_a_commander_and_shown_to_an_analyst(
    small_client, small_warehouse, suppressing
):
    small, large = small_warehouse["small_ward"], small_warehouse["large_ward"]
    # The commander opens on Coventry: its wards.
    commander = map_patch(small_client, "commander")
    coloured = trace(commander, "z")
    assert small not in coloured and coloured[large] == 12
    grey = commander[("data", 1)]
    assert grey["locations"] == [small]
    assert grey["hovertext"][0].endswith("Crimes: fewer than 5 (suppressed)")
    assert grey["colorscale"][0][1] == figures.SUPPRESSED_GREY
    hover = trace(commander, "hovertext")
    assert "Last year: fewer than 5 (suppressed)" in hover[large]
    assert "nan" not in json.dumps(hover)

    analyst = map_patch(small_client, "analyst", f"?level=lad&area={matrix.COVENTRY}")
    coloured = trace(analyst, "z")
    assert coloured[small] == 3 and coloured[large] == 12
    assert analyst[("data", 1)]["locations"] == []


def test_the_page_opens_with_the_grey_layer_too(small_client, small_app, suppressing):
    router = ".._pages_content.children..._pages_store.data.."
    body = matrix.payload(
        router, small_app.callback_map[router], {"_pages_location.pathname": "/crime"}
    )
    response = small_client.post(
        "/_dash-update-component", json=body, headers=login("commander")
    )
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Crimes: fewer than 5 (suppressed)" in page
    assert figures.SUPPRESSED_GREY in page and "nan" not in page.lower().split('"')


def test_the_csv_marks_the_cell_never_zero_and_says_so(
    small_client, small_warehouse, suppressing
):
    small, large = small_warehouse["small_ward"], small_warehouse["large_ward"]
    response = small_client.get("/export/crime/areas.csv", headers=login("commander"))
    assert response.status_code == 200
    text, frame = csv_body(response)
    rows = frame.set_index("area_code")
    assert rows.loc[small, ["crimes", "rate_per_1000", "z"]].tolist() == ["", "", ""]
    assert rows.loc[small, "crimes_last_year"] == "6"  # not small itself
    assert rows.loc[small, "suppressed"] == "suppressed (<5)"
    assert rows.loc[large, ["crimes", "crimes_last_year"]].tolist() == ["12", ""]
    assert frame["area_code"].iloc[-1] == small  # ranked last, whatever its rate
    assert "0" not in set(rows.loc[rows["suppressed"] != "", "crimes"])
    assert "# Disclosure control: counts from 1 to 4 are blank" in text

    analyst = small_client.get(
        f"/export/crime/areas.csv?level=lad&area={matrix.COVENTRY}",
        headers=login("analyst"),
    )
    _, frame = csv_body(analyst)
    assert "suppressed" not in frame.columns
    assert frame.set_index("area_code").loc[small, "crimes"] == "3"


def test_totals_are_not_changed_by_suppression(small_client, suppressing):
    commander = small_client.get("/export/crime/kpis.csv", headers=login("commander"))
    text, kpis = csv_body(commander)
    assert kpis.loc[0, "crimes"] == "15"  # 3 + 12: the suppressed 3 still counted
    assert "Totals are not adjusted" in text
    analyst = small_client.get(
        f"/export/crime/kpis.csv?level=lad&area={matrix.COVENTRY}",
        headers=login("analyst"),
    )
    assert csv_body(analyst)[1].loc[0, "crimes"] == "15"


def test_single_crimes_are_refused_to_a_suppressed_role(small_client, suppressing):
    for url in ["/export/crime/points.csv", "/export/crime/hotspots.html"]:
        response = small_client.get(url, headers=login("commander"))
        assert response.status_code == 403
        assert "counts under 5 are suppressed" in response.get_data(as_text=True)
    assert (
        small_client.get(
            "/export/crime/points.csv", headers=login("analyst")
        ).status_code
        == 200
    )


def test_incident_areas_with_few_incidents_are_blank_for_a_commander(
    small_client, small_warehouse, suppressing
):
    one_day = "?period=custom&from=2024-10-07&to=2024-10-07"
    one_day += f"&level=ward&area={small_warehouse['small_ward']}"  # its LSOAs
    analyst = csv_body(
        small_client.get(
            f"/export/incidents/areas.csv{one_day}", headers=login("analyst")
        )
    )[1].set_index("area_code")
    response = small_client.get(
        f"/export/incidents/areas.csv{one_day}", headers=login("commander")
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    commander = csv_body(response)[1].set_index("area_code")
    small = analyst[analyst["incidents"].astype(int).between(1, 4)].index
    assert len(small) > 0  # one day of an LSOA: most hold only a few
    assert (commander.loc[small, "incidents"] == "").all()
    assert (commander.loc[small, "share_within_target"] == "").all()
    assert (commander.loc[small, "suppressed"] == "suppressed (<5)").all()
    big = analyst[analyst["incidents"].astype(int) >= 5].index
    assert (commander.loc[big, "incidents"] == analyst.loc[big, "incidents"]).all()


def test_the_incident_map_says_suppressed_on_hover(
    small_client, small_app, small_warehouse, suppressing
):
    one_day = "?period=custom&from=2024-10-07&to=2024-10-07"
    one_day += f"&level=ward&area={small_warehouse['small_ward']}"
    body = matrix.payload(
        "incidents-map.figure",
        small_app.callback_map["incidents-map.figure"],
        {"incidents-view.data": one_day},
    )
    response = small_client.post(
        "/_dash-update-component", json=body, headers=login("commander")
    )
    assert response.status_code == 200
    operations = response.get_json()["response"]["incidents-map"]["figure"]
    values = {
        tuple(o["location"]): o["params"]["value"] for o in operations["operations"]
    }
    hover = values[("data", 0, "hovertext")]
    suppressed = [h for h in hover if "fewer than 5 (suppressed)" in h]
    assert suppressed and not any("nan" in h for h in hover)
    # The same areas are drawn grey above the coloured trace, as on the crime map.
    grey = values[("data", 1)]
    assert grey["name"] == "suppressed"
    assert len(grey["locations"]) == len(suppressed) > 0


def test_nothing_is_suppressed_when_the_setting_is_off(small_client, small_warehouse):
    commander = map_patch(small_client, "commander")
    coloured = trace(commander, "z")
    assert coloured[small_warehouse["small_ward"]] == 3
    assert commander[("data", 1)]["locations"] == []
