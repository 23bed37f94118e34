"""The incidents page's real callbacks on real CAD exports, posted as Dash would.

One warehouse per session holds Alexandria (whole lifecycle), Seattle (arrival only)
and Milwaukee (creation only), Alexandria's call-answering report, and two months
of demo West Midlands incidents with boundaries, for the map and the drill.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
import test_app_auth as app_tests
from test_app_auth import callback_body, login, route_to

from dashboards import exports
from etl import demo, pipeline, warehouse
from queries import incidents

# Fixtures shared by the app tests: Dash Pages allows one app per process.
app_home, dash_app, client = app_tests.app_home, app_tests.dash_app, app_tests.client

pytestmark = pytest.mark.real_data

ROOT = Path(__file__).resolve().parent.parent
ALEXANDRIA, SEATTLE, MILWAUKEE, DEMO = (
    "alexandria-decc",
    "seattle-spd",
    "milwaukee-mpd",
    "cad",
)
WM_FORCE = "West Midlands Police"


@pytest.fixture(scope="session")
def incidents_warehouse_url(tmp_path_factory, shared_data) -> str:
    """The three real CAD exports, the real interval report and a small demo, loaded
    once per session (a marker file says the load finished)."""
    home = tmp_path_factory.getbasetemp() / "bluelamp-incidents"
    home.mkdir(exist_ok=True)
    url = f"duckdb:///{home / 'warehouse.duckdb'}"
    done = home / "loaded"
    if not done.exists():
        paths = demo.generate(home / "demo", months=2, seed=1)
        mappings = ROOT / "etl" / "mappings"
        for source, path, mapping in [
            (
                "cad",
                shared_data / "cad/alexandria_va_decc_2025",
                mappings / "cad-alexandria_va_decc_2025.toml",
            ),
            (
                "cad",
                shared_data / "cad/seattle_spd_911_incident_response_2015",
                mappings / "cad-seattle_spd_911_incident_response_2015.toml",
            ),
            (
                "cad",
                shared_data / "cad/milwaukee_mpd_calls_2018_05",
                mappings / "cad-milwaukee_mpd_calls_2018_05.toml",
            ),
            (
                "calls",
                shared_data / "call_answering/alexandria_va_decc_2025",
                mappings / "calls-alexandria_va_decc_2025.toml",
            ),
            ("boundaries", paths["boundaries"], None),
            ("population", paths["population"], None),
            ("cad", paths["cad"], None),
        ]:
            result = pipeline.run(url, source, path, mapping)
            assert result.status == "succeeded", result.summary()
        done.touch()
    return url


@pytest.fixture(scope="module")
def incidents_app(dash_app, incidents_warehouse_url):
    """The app, reading the incidents warehouse (and an empty cache) meanwhile."""
    runtime = dash_app.server.extensions["bluelamp"]
    real_reader = runtime.reader
    runtime.reader = warehouse.Reader(incidents_warehouse_url)
    runtime.cache.clear()
    try:
        yield dash_app
    finally:
        runtime.reader = real_reader
        runtime.cache.clear()


@pytest.fixture
def incidents_client(incidents_app):
    return incidents_app.server.test_client()


def read(url: str, fn, *args):
    with warehouse.Reader(url).connect() as conn:
        return fn(conn, *args)


def call(client, body, role="analyst") -> dict:
    response = client.post("/_dash-update-component", json=body, headers=login(role))
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return response.get_json()["response"]


def by_search(outputs, search: str) -> dict:
    return callback_body(outputs, [("incidents-url", "search", search)])


def by_view(outputs, search: str) -> dict:
    """A chart callback: charts read the view store, the URL less cell and incident."""
    return callback_body(outputs, [("incidents-view", "data", search)])


KPI_OUTPUTS = [
    ("incidents-message", "children"),
    ("incidents-period-sentence", "children"),
    ("incidents-not-recorded", "children"),
    ("incidents-kpis", "children"),
    ("incidents-grade-table", "children"),
]
URL_OUTPUTS = [
    ("incidents-url", "search"),
    ("incidents-map", "clickData"),
    ("incidents-heatmap", "clickData"),
    ("incidents-area-picker", "value"),
    ("incidents-cell-table", "active_cell"),
    ("incidents-custom-range", "style"),
]


def url_body(search: str, trigger: str, value, source=None) -> dict:
    """update_url as Dash posts it when one drill input changes."""
    inputs = {
        ("incidents-period", "value"): "last-28-days",
        ("incidents-dates", "start_date"): None,
        ("incidents-dates", "end_date"): None,
        ("incidents-source", "value"): source,
        ("incidents-grades", "value"): [],
        ("incidents-measure", "value"): "share",
        ("incidents-margin", "value"): 5,
        ("incidents-area-picker", "value"): None,
        ("incidents-map", "clickData"): None,
        ("incidents-heatmap", "clickData"): None,
        ("incidents-cell-table", "active_cell"): None,
    }
    key = tuple(trigger.split("."))
    inputs[key] = value
    body = callback_body(
        URL_OUTPUTS, [(i, p, v) for (i, p), v in inputs.items()], changed=[trigger]
    )
    body["inputs"].append([])  # the breadcrumb buttons (pattern-matching)
    body["state"] = [{"id": "incidents-url", "property": "search", "value": search}]
    return body


def kpi_values(children) -> dict[str, str]:
    """id -> data-value of every KPI figure in the cards' component tree."""
    found = {}

    def walk(node):
        if isinstance(node, dict):
            props = node.get("props", {})
            if str(props.get("id", "")).startswith("incidents-kpi-"):
                found[props["id"]] = props.get("data-value")
            for value in props.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(children)
    return found


def csv_frame(text: str) -> pd.DataFrame:
    body = "".join(line for line in text.splitlines(True) if not line.startswith("# "))
    return pd.read_csv(io.StringIO(body), dtype={"final_grade": "string"})


def filters_for(url: str, search: str) -> incidents.IncidentFilters:
    """The filters a query string stands for, worked out without the app."""
    selection, _ = exports.parse_incident_selection(exports.query_args(search))
    first, latest = read(url, incidents.date_range, selection.source)
    start, end, _ = exports.incident_period(
        selection.period, first, latest, selection.start, selection.end
    )
    return incidents.IncidentFilters(
        start=start,
        end=end,
        source=selection.source,
        grades=selection.grades,
        area_level=selection.level,
        area_code=selection.area,
    )


ALEXANDRIA_SEARCH = f"?period=rolling-12&source={ALEXANDRIA}"


def test_alexandria_grade_1_kpis_equal_the_query_and_the_csv(
    incidents_client, incidents_warehouse_url
):
    out = call(incidents_client, by_search(KPI_OUTPUTS, ALEXANDRIA_SEARCH))
    values = kpi_values(out["incidents-kpis"]["children"])
    expected = read(
        incidents_warehouse_url,
        incidents.attendance_by_grade,
        filters_for(incidents_warehouse_url, ALEXANDRIA_SEARCH),
    )
    grade_1 = expected[expected["final_grade"] == "1"].iloc[0]
    assert grade_1["attended"] > 100
    assert float(values["incidents-kpi-g1-median"]) == pytest.approx(
        grade_1["median_attend_min"]
    )
    assert float(values["incidents-kpi-g1-share"]) == pytest.approx(
        grade_1["share_within_target"]
    )
    assert int(values["incidents-kpi-incidents"]) == int(expected["incidents"].sum())
    # The interval report covers part of the period: the 999 card has figures.
    assert 0 < float(values["incidents-kpi-999"]) <= 1
    assert "Rolling 12 months" in out["incidents-period-sentence"]["children"]

    response = incidents_client.get(
        "/export/incidents/grades.csv" + ALEXANDRIA_SEARCH, headers=login("analyst")
    )
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert text.startswith("# Bluelamp incidents export: grades")
    exported = csv_frame(text).set_index("final_grade")
    assert exported.loc["1", "median_attend_min"] == pytest.approx(
        grade_1["median_attend_min"]
    )
    assert exported.loc["1", "share_within_target"] == pytest.approx(
        grade_1["share_within_target"]
    )


@pytest.mark.parametrize("source", [SEATTLE, MILWAUKEE])
def test_sources_without_steps_show_volumes_and_say_not_recorded(
    incidents_client, incidents_warehouse_url, source
):
    search = f"?period=rolling-12&source={source}"
    out = call(incidents_client, by_search(KPI_OUTPUTS, search))
    values = kpi_values(out["incidents-kpis"]["children"])
    expected = read(
        incidents_warehouse_url,
        incidents.attendance_by_grade,
        filters_for(incidents_warehouse_url, search),
    )
    assert int(values["incidents-kpi-incidents"]) == int(expected["incidents"].sum())
    assert int(values["incidents-kpi-incidents"]) > 10_000
    statement = json.dumps(out["incidents-not-recorded"]["children"])
    assert f"({source})" in statement and " does not record: " in statement
    shown = json.dumps(out)
    assert "not recorded by this source" in json.dumps(out["incidents-kpis"])
    assert "not recorded by this source" in json.dumps(out["incidents-grade-table"])
    assert "0.0 min" not in shown and " 0 s" not in shown
    assert values["incidents-kpi-g1-median"] == ""

    heat = call(incidents_client, by_view([("incidents-heatmap", "figure")], search))
    cells = heat["incidents-heatmap"]["figure"]["data"][0]["z"]
    assert sum(map(sum, cells)) == int(expected["incidents"].sum())


def test_drill_from_force_to_one_incidents_timeline(incidents_client):
    search = f"?source={DEMO}"
    # Map click on the force, then the picker for a local authority, then a ward.
    search = call(
        incidents_client,
        url_body(
            search,
            "incidents-map.clickData",
            {"points": [{"customdata": "west-midlands-police"}]},
            DEMO,
        ),
    )["incidents-url"]["search"]
    assert "level=force" in search
    area = call(
        incidents_client,
        by_search(
            [
                ("incidents-breadcrumb", "children"),
                ("incidents-area-picker", "options"),
                ("incidents-area-picker", "placeholder"),
            ],
            search,
        ),
    )
    lad = area["incidents-area-picker"]["options"][0]["value"]
    assert (
        area["incidents-area-picker"]["placeholder"] == "Drill into a local authority"
    )
    search = call(
        incidents_client, url_body(search, "incidents-area-picker.value", lad, DEMO)
    )["incidents-url"]["search"]
    assert f"level=lad&area={lad}" in search

    # The map at ward level: values only, never polygons.
    patch = call(incidents_client, by_view([("incidents-map", "figure")], search))
    operations = json.dumps(patch["incidents-map"]["figure"])
    assert "/ward.geojson" in operations and "coordinates" not in operations

    # The busiest hour-of-week cell, clicked.
    heat = call(incidents_client, by_view([("incidents-heatmap", "figure")], search))
    trace = heat["incidents-heatmap"]["figure"]["data"][0]
    dow, hour = max(
        ((d, h) for d in range(7) for h in range(24)),
        key=lambda c: trace["z"][c[0]][c[1]],
    )
    cell = trace["customdata"][dow][hour]
    assert cell == f"{dow}-{hour}"
    search = call(
        incidents_client,
        url_body(
            search,
            "incidents-heatmap.clickData",
            {"points": [{"customdata": cell}]},
            DEMO,
        ),
    )["incidents-url"]["search"]
    assert f"cell={cell}" in search

    listed = call(
        incidents_client,
        by_search(
            [("incidents-cell-title", "children"), ("incidents-cell-table", "data")],
            search,
        ),
    )
    rows = listed["incidents-cell-table"]["data"]
    assert len(rows) == trace["z"][dow][hour] or len(rows) == 500
    chosen = next(
        r for r in rows if r["final_grade"] == "1" and r["attend_min"] != "no arrival"
    )

    # Clicking a row of the list opens the incident.
    search = call(
        incidents_client,
        url_body(
            search,
            "incidents-cell-table.active_cell",
            {"row": 0, "column": 0, "column_id": "source", "row_id": chosen["id"]},
            DEMO,
        ),
    )["incidents-url"]["search"]
    assert "incident=" in search and chosen["incident_id"] in search
    timeline = call(
        incidents_client,
        by_search(
            [
                ("incidents-timeline-summary", "children"),
                ("incidents-timeline", "figure"),
                ("incidents-timeline-table", "data"),
            ],
            search,
        ),
    )
    steps = timeline["incidents-timeline-table"]["data"]
    assert [s["step"] for s in steps] == list(incidents.STEPS)
    assert all(s["at_local"] != "not recorded" for s in steps)  # whole lifecycle
    summary = json.dumps(timeline["incidents-timeline-summary"]["children"])
    assert chosen["incident_id"] in summary and "target" in summary
    assert len(timeline["incidents-timeline"]["figure"]["data"][0]["x"]) == 7

    # The breadcrumb names every level of the path, and the CSVs follow it.
    crumbs = json.dumps(
        call(
            incidents_client,
            by_search(
                [
                    ("incidents-breadcrumb", "children"),
                    ("incidents-area-picker", "options"),
                    ("incidents-area-picker", "placeholder"),
                ],
                search,
            ),
        )["incidents-breadcrumb"]["children"]
    )
    assert "All forces" in crumbs and "Incident " in crumbs
    for chart, column in [("cell", "incident_id"), ("timeline", "step")]:
        response = incidents_client.get(
            f"/export/incidents/{chart}.csv{search}", headers=login("analyst")
        )
        assert response.status_code == 200
        frame = csv_frame(response.get_data(as_text=True))
        if chart == "cell":
            assert chosen["incident_id"] in set(frame[column].astype(str))
        else:
            assert list(frame[column]) == list(incidents.STEPS)


def test_breadcrumb_back_to_the_cell_drops_the_incident(incidents_client):
    search = f"?source={DEMO}&cell=0-9&incident={DEMO}:x"
    body = url_body(search, "incidents-period.value", "last-28-days", DEMO)
    body["changedPropIds"] = ['{"index":"cell:0-9","type":"incidents-crumb"}.n_clicks']
    body["inputs"][-1] = [
        {
            "id": {"type": "incidents-crumb", "index": "cell:0-9"},
            "property": "n_clicks",
            "value": 1,
        }
    ]
    assert call(incidents_client, body)["incidents-url"]["search"] == (
        f"?source={DEMO}&cell=0-9"
    )


@pytest.mark.parametrize("role", ["commander", "leader"])
def test_roles_without_export_rights_get_403(incidents_client, role):
    response = incidents_client.get(
        "/export/incidents/grades.csv" + ALEXANDRIA_SEARCH, headers=login(role)
    )
    assert response.status_code == 403
    # They still see the page's figures.
    out = call(incidents_client, by_search(KPI_OUTPUTS, ALEXANDRIA_SEARCH), role=role)
    assert kpi_values(out["incidents-kpis"]["children"])["incidents-kpi-incidents"]


def test_display_role_may_not_see_the_incidents_page(incidents_client):
    assert (
        incidents_client.get("/incidents", headers=login("display")).status_code == 403
    )
    response = incidents_client.post(
        "/_dash-update-component",
        json=by_search(KPI_OUTPUTS, ""),
        headers=login("display"),
    )
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ("?source=nowhere", "Unknown source 'nowhere'"),
        ("?period=yesterday", "Unknown period 'yesterday'"),
        ("?period=custom&from=2025-13-45&to=soon", "is not a date (YYYY-MM-DD)"),
        ("?grade=%3D1%2B1", "Not a grade, ignored: '=1+1'"),
        ("?level=planet&area=x", "Unknown area level 'planet'"),
        ("?level=lad&area=E99999999", "No lad area with code 'E99999999'"),
        ("?cell=9-99", "Hour-of-week cell '9-99'"),
        ("?incident=cad:nope", "No incident 'cad:nope'"),
        ("?margin=-3", "Margin '-3' is not a whole number"),
    ],
)
def test_bad_query_values_give_a_message_not_an_error(
    incidents_client, search, message
):
    out = call(incidents_client, by_search(KPI_OUTPUTS, search))
    assert message in json.dumps(out["incidents-message"]["children"])
    assert kpi_values(out["incidents-kpis"]["children"])["incidents-kpi-incidents"]
    body = route_to("/incidents")
    body["inputs"][1]["value"] = search
    assert call(incidents_client, body)["_pages_content"]["children"]
    for chart in ["grades", "cell", "timeline"]:
        response = incidents_client.get(
            f"/export/incidents/{chart}.csv{search}", headers=login("analyst")
        )
        # An export never falls back to other rows: 400, with the same message.
        assert response.status_code == 400
        assert message in response.get_data(as_text=True)
