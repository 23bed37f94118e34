"""The crime page's real callbacks on real Leicestershire data, posted as Dash would.

The fixtures here are shared by the other crime test files: the real data is loaded
once per session into its own warehouse, and the one app of the process reads it
while these tests run.
"""

from __future__ import annotations

import datetime as dt
import io
import json

import pandas as pd
import pytest
import test_app_auth as app_tests
from test_app_auth import callback_body, login, route_to

from etl import pipeline, warehouse
from queries import crime

# Fixtures shared by the app tests: Dash Pages allows one app per process.
app_home, dash_app, client = app_tests.app_home, app_tests.dash_app, app_tests.client

pytestmark = pytest.mark.real_data

LEICESTER = "E06000016"  # a unitary authority: the city of Leicester
FORCE = "leicestershire-police"


@pytest.fixture(scope="session")
def crime_warehouse_url(tmp_path_factory, shared_data) -> str:
    """The real boundaries, population and 35 months of Leicestershire street crime,
    loaded once per session (a marker file says the load finished)."""
    home = tmp_path_factory.getbasetemp() / "bluelamp-crime"
    home.mkdir(exist_ok=True)
    url = f"duckdb:///{home / 'warehouse.duckdb'}"
    done = home / "loaded"
    if not done.exists():
        for source, path in [
            ("boundaries", shared_data / "boundaries"),
            (
                "population",
                shared_data
                / "population"
                / "leics_lsoa21_census2021_usual_residents.csv",
            ),
            ("police-uk-street", shared_data / "crime/police_uk/leicestershire"),
        ]:
            result = pipeline.run(url, source, path)
            assert result.status == "succeeded", result.summary()
        done.touch()
    return url


@pytest.fixture(scope="module")
def crime_app(dash_app, crime_warehouse_url):
    """The app, reading the real-data warehouse (and an empty cache) meanwhile."""
    runtime = dash_app.server.extensions["bluelamp"]
    real_reader = runtime.reader
    runtime.reader = warehouse.Reader(crime_warehouse_url)
    runtime.cache.clear()
    try:
        yield dash_app
    finally:
        runtime.reader = real_reader
        runtime.cache.clear()


@pytest.fixture
def crime_client(crime_app):
    return crime_app.server.test_client()


def read(url: str, fn, *args):
    with warehouse.Reader(url).connect() as conn:
        return fn(conn, *args)


def call(client, body, role="analyst") -> dict:
    response = client.post("/_dash-update-component", json=body, headers=login(role))
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return response.get_json()["response"]


def by_search(component: str, prop: str, search: str) -> dict:
    return callback_body([(component, prop)], [("crime-url", "search", search)])


KPI_BODY = callback_body(
    [
        ("crime-message", "children"),
        ("crime-period-sentence", "children"),
        ("crime-kpis", "children"),
    ],
    [("crime-url", "search", None)],
)


def kpi_body(search: str) -> dict:
    body = json.loads(json.dumps(KPI_BODY))
    body["inputs"][0]["value"] = search
    return body


def kpi_values(kpis_children) -> dict[str, str]:
    """id -> data-value of every KPI figure in the cards' component tree."""
    found = {}

    def walk(node):
        if isinstance(node, dict):
            props = node.get("props", {})
            if str(props.get("id", "")).startswith("crime-kpi-"):
                found[props["id"]] = props.get("data-value")
            for value in props.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(kpis_children)
    return found


def filters_for(url, start, end, types=(), level="force", area=None):
    return crime.CrimeFilters(
        start_month=start,
        end_month=end,
        crime_types=tuple(types),
        area_level=level,
        area_code=area,
    )


def csv_frame(text: str) -> pd.DataFrame:
    body = "".join(line for line in text.splitlines(True) if not line.startswith("# "))
    return pd.read_csv(io.StringIO(body))


SEARCH = "?period=custom&from=2022-01&to=2022-06&type=Burglary&level=lad&area=" + (
    LEICESTER
)


def test_kpi_in_callback_equals_the_query_and_the_csv(
    crime_client, crime_warehouse_url
):
    out = call(crime_client, kpi_body(SEARCH))
    values = kpi_values(out["crime-kpis"]["children"])
    expected = read(
        crime_warehouse_url,
        crime.kpis,
        filters_for(
            crime_warehouse_url,
            dt.date(2022, 1, 1),
            dt.date(2022, 6, 1),
            ["Burglary"],
            "lad",
            LEICESTER,
        ),
    )
    assert expected["crimes"] > 0
    assert values["crime-kpi-crimes"] == str(expected["crimes"])
    assert float(values["crime-kpi-rate"]) == pytest.approx(expected["rate_per_1000"])
    assert values["crime-kpi-asb"] == str(expected["asb"])
    assert "January 2022 to June 2022" in out["crime-period-sentence"]["children"]

    response = crime_client.get(
        "/export/crime/kpis.csv" + SEARCH, headers=login("analyst")
    )
    assert response.status_code == 200
    exported = csv_frame(response.get_data(as_text=True))
    assert exported.loc[0, "crimes"] == expected["crimes"]
    assert exported.loc[0, "harm_days"] == pytest.approx(expected["harm_days"])


def test_layout_renders_the_page_for_its_url(crime_client):
    body = route_to("/crime")
    body["inputs"][1]["value"] = SEARCH
    page = json.dumps(call(crime_client, body)["_pages_content"]["children"])
    assert '"value": "custom"' in page and '"Burglary"' in page
    # The map references its polygons by URL at the ward level of the city.
    assert "/geo/crime/" in page and f"/{FORCE}/ward.geojson" in page
    assert '"type": "Feature"' not in page


def test_clicking_an_area_on_the_map_drills_one_level_down(crime_client):
    body = callback_body(
        [
            ("crime-url", "search"),
            ("crime-types", "value"),
            ("crime-map", "clickData"),
            ("crime-type-bar", "clickData"),
            ("crime-area-picker", "value"),
            ("crime-custom-range", "style"),
        ],
        [
            ("crime-period", "value", "rolling-12"),
            ("crime-from", "value", None),
            ("crime-to", "value", None),
            ("crime-types", "value", []),
            ("crime-measure", "value", "count"),
            ("crime-area-picker", "value", None),
            ("crime-map", "clickData", {"points": [{"customdata": FORCE}]}),
            ("crime-type-bar", "clickData", None),
        ],
        changed=["crime-map.clickData"],
    )
    body["inputs"].append([])  # the breadcrumb buttons (pattern-matching, none yet)
    body["state"] = [{"id": "crime-url", "property": "search", "value": ""}]
    search = call(crime_client, body)["crime-url"]["search"]
    assert search == f"?level=force&area={FORCE}"

    body["inputs"][6]["value"] = {"points": [{"customdata": LEICESTER}]}
    body["state"][0]["value"] = search
    search = call(crime_client, body)["crime-url"]["search"]
    assert search == f"?level=lad&area={LEICESTER}"

    area = call(
        crime_client,
        callback_body(
            [
                ("crime-breadcrumb", "children"),
                ("crime-area-picker", "options"),
                ("crime-area-picker", "placeholder"),
            ],
            [("crime-url", "search", search)],
        ),
    )
    crumbs = json.dumps(area["crime-breadcrumb"]["children"])
    assert "All forces" in crumbs and "Leicester" in crumbs
    assert (
        area["crime-area-picker"]["placeholder"] == "Drill into a neighbourhood (ward)"
    )
    wards = {o["value"] for o in area["crime-area-picker"]["options"]}
    assert "E05001784" in wards  # Abbey ward, in the city

    patch = call(crime_client, by_search("crime-map", "figure", search))
    operations = json.dumps(patch["crime-map"]["figure"])
    assert f"/{FORCE}/ward.geojson" in operations and "E05001784" in operations
    assert "coordinates" not in operations  # values only, never polygons
    assert len(operations) < 50_000


def test_breadcrumb_goes_back_up(crime_client):
    body = callback_body(
        [("crime-url", "search")],
        [
            ("crime-period", "value", "rolling-12"),
            ("crime-from", "value", None),
            ("crime-to", "value", None),
            ("crime-types", "value", []),
            ("crime-measure", "value", "count"),
            ("crime-area-picker", "value", None),
            ("crime-map", "clickData", None),
            ("crime-type-bar", "clickData", None),
        ],
        changed=[
            '{"index":"force:leicestershire-police","type":"crime-crumb"}.n_clicks'
        ],
    )
    body["outputs"] = [
        {"id": i, "property": p}
        for i, p in [
            ("crime-url", "search"),
            ("crime-types", "value"),
            ("crime-map", "clickData"),
            ("crime-type-bar", "clickData"),
            ("crime-area-picker", "value"),
            ("crime-custom-range", "style"),
        ]
    ]
    body["output"] = (
        ".." + "...".join(f"{o['id']}.{o['property']}" for o in body["outputs"]) + ".."
    )
    body["inputs"].append(
        [
            {
                "id": {"type": "crime-crumb", "index": f"force:{FORCE}"},
                "property": "n_clicks",
                "value": 1,
            }
        ]
    )
    body["state"] = [
        {
            "id": "crime-url",
            "property": "search",
            "value": f"?level=lad&area={LEICESTER}",
        }
    ]
    assert (
        call(crime_client, body)["crime-url"]["search"] == f"?level=force&area={FORCE}"
    )


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ("?level=lad&area=E99999999", "No lad area with code 'E99999999'"),
        ("?period=custom&from=2022-13&to=banana", "is not a month (YYYY-MM)"),
        ("?period=yesterday", "Unknown period 'yesterday'"),
        ("?measure=%3D1%2B1", "Unknown measure '=1+1'"),
        ("?level=planet&area=x", "Unknown area level 'planet'"),
    ],
)
def test_bad_query_values_give_a_message_not_an_error(crime_client, search, message):
    out = call(crime_client, kpi_body(search))
    assert message in json.dumps(out["crime-message"]["children"])
    assert kpi_values(out["crime-kpis"]["children"])["crime-kpi-crimes"].isdigit()
    body = route_to("/crime")
    body["inputs"][1]["value"] = search
    assert call(crime_client, body)["_pages_content"]["children"]
    for chart in ["kpis", "areas"]:
        response = crime_client.get(
            f"/export/crime/{chart}.csv{search}", headers=login("analyst")
        )
        # An export never falls back to other rows: 400, with the same message.
        assert response.status_code == 400
        assert message in response.get_data(as_text=True)


@pytest.mark.parametrize("role", ["commander", "leader"])
def test_roles_without_export_rights_get_403(crime_client, role):
    for path in ["/export/crime/kpis.csv", "/export/crime/hotspots.html"]:
        assert crime_client.get(path, headers=login(role)).status_code == 403
    # They still see the page and its map.
    assert call(crime_client, kpi_body(""), role=role)["crime-kpis"]["children"]


def test_display_role_may_not_see_the_crime_page(crime_client):
    assert crime_client.get("/crime", headers=login("display")).status_code == 403
    response = crime_client.post(
        "/_dash-update-component", json=kpi_body(""), headers=login("display")
    )
    assert response.status_code == 403


def test_boundary_file_is_simplified_geojson_of_the_level(crime_client):
    body = route_to("/crime")
    page = json.dumps(call(crime_client, body)["_pages_content"]["children"])
    url = page.split('"geojson": "')[1].split('"')[0]
    response = crime_client.get(url, headers=login("commander"))
    assert response.status_code == 200
    layer = response.get_json()
    codes = {f["properties"]["area_code"] for f in layer["features"]}
    assert FORCE in codes and len(codes) == 2  # both forces with boundaries
    assert "max-age" in response.headers["Cache-Control"]


def test_type_bar_click_filters_to_that_type(crime_client):
    body = callback_body(
        [
            ("crime-url", "search"),
            ("crime-types", "value"),
            ("crime-map", "clickData"),
            ("crime-type-bar", "clickData"),
            ("crime-area-picker", "value"),
            ("crime-custom-range", "style"),
        ],
        [
            ("crime-period", "value", "rolling-12"),
            ("crime-from", "value", None),
            ("crime-to", "value", None),
            ("crime-types", "value", []),
            ("crime-measure", "value", "rate"),
            ("crime-area-picker", "value", None),
            ("crime-map", "clickData", None),
            ("crime-type-bar", "clickData", {"points": [{"customdata": "Robbery"}]}),
        ],
        changed=["crime-type-bar.clickData"],
    )
    body["inputs"].append([])
    body["state"] = [{"id": "crime-url", "property": "search", "value": ""}]
    out = call(crime_client, body)
    assert out["crime-url"]["search"] == "?type=Robbery&measure=rate"
    assert out["crime-types"]["value"] == ["Robbery"]
