"""The overview's real callback on real data: its tiles equal the crime and incidents
pages' KPI figures for the same filters; the display role; the kiosk layout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import test_app_auth as app_tests
import test_crime_page as crime_tests
from test_app_auth import callback_body, login, route_to

from etl import pipeline, warehouse
from queries import crime

# Fixtures shared by the app tests: Dash Pages allows one app per process.
app_home, dash_app, client = app_tests.app_home, app_tests.dash_app, app_tests.client
crime_warehouse_url = crime_tests.crime_warehouse_url

pytestmark = pytest.mark.real_data

ROOT = Path(__file__).resolve().parent.parent
LEICESTER = crime_tests.LEICESTER
TILE_OUTPUTS = [
    ("overview-tiles", "children"),
    ("overview-caption", "children"),
    ("overview-sources", "data"),
]
CRIME_KPI_OUTPUTS = [
    ("crime-message", "children"),
    ("crime-period-sentence", "children"),
    ("crime-kpis", "children"),
]
INCIDENT_KPI_OUTPUTS = [
    ("incidents-message", "children"),
    ("incidents-period-sentence", "children"),
    ("incidents-not-recorded", "children"),
    ("incidents-kpis", "children"),
    ("incidents-grade-table", "children"),
]


@pytest.fixture(scope="session")
def overview_warehouse_url(tmp_path_factory, shared_data, crime_warehouse_url) -> str:
    """The crime tests' Leicestershire warehouse, copied, plus Alexandria's real CAD
    export and call-answering report: crime and incident tiles from one warehouse."""
    home = tmp_path_factory.getbasetemp() / "bluelamp-overview"
    home.mkdir(exist_ok=True)
    path = home / "warehouse.duckdb"
    url = f"duckdb:///{path}"
    done = home / "loaded"
    if not done.exists():
        shutil.copyfile(crime_warehouse_url.removeprefix("duckdb:///"), path)
        mappings = ROOT / "etl" / "mappings"
        for source, data, mapping in [
            (
                "cad",
                shared_data / "cad/alexandria_va_decc_2025",
                mappings / "cad-alexandria_va_decc_2025.toml",
            ),
            (
                "calls",
                shared_data / "call_answering/alexandria_va_decc_2025",
                mappings / "calls-alexandria_va_decc_2025.toml",
            ),
        ]:
            result = pipeline.run(url, source, data, mapping)
            assert result.status == "succeeded", result.summary()
        done.touch()
    return url


@pytest.fixture(scope="module")
def overview_app(dash_app, overview_warehouse_url):
    runtime = dash_app.server.extensions["bluelamp"]
    real_reader = runtime.reader
    runtime.reader = warehouse.Reader(overview_warehouse_url)
    runtime.cache.clear()
    try:
        yield dash_app
    finally:
        runtime.reader = real_reader
        runtime.cache.clear()


@pytest.fixture
def overview_client(overview_app):
    return overview_app.server.test_client()


def call(client, body, role="analyst") -> dict:
    response = client.post("/_dash-update-component", json=body, headers=login(role))
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return response.get_json()["response"]


def tiles_body(args: dict) -> dict:
    body = callback_body(TILE_OUTPUTS, [("overview-run", "data", 1)])
    body["state"] = [{"id": "overview-args", "property": "data", "value": args}]
    return body


def values(children, prefix: str) -> dict[str, str]:
    """id suffix -> data-value of every figure whose id starts with `prefix`."""
    found = {}

    def walk(node):
        if isinstance(node, dict):
            props = node.get("props", {})
            if str(props.get("id", "")).startswith(prefix):
                found[props["id"].removeprefix(prefix)] = props.get("data-value")
            for value in props.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(children)
    return found


def tile_texts(children) -> dict[str, str]:
    found = {}

    def walk(node):
        if isinstance(node, dict):
            props = node.get("props", {})
            if str(props.get("id", "")).startswith("overview-tile-"):
                found[props["id"].removeprefix("overview-tile-")] = props["children"]
            for value in props.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(children)
    return found


@pytest.mark.parametrize(
    "args",
    [{}, {"period": "fytd", "level": "lad", "area": LEICESTER, "type": "Burglary"}],
)
def test_tiles_equal_the_crime_and_incidents_pages_kpis(
    overview_client, overview_warehouse_url, args
):
    from dashboards import overview

    out = call(overview_client, tiles_body(args))
    tiles = values(out["overview-tiles"]["children"], "overview-tile-")

    crime_out = call(
        overview_client,
        callback_body(
            CRIME_KPI_OUTPUTS, [("crime-url", "search", overview.crime_search(args))]
        ),
    )
    crime_kpis = values(crime_out["crime-kpis"]["children"], "crime-kpi-")
    assert tiles["crimes"] == crime_kpis["crimes"]
    assert int(tiles["crimes"]) > 0
    assert float(tiles["harm"]) == pytest.approx(float(crime_kpis["harm"]))

    incident_out = call(
        overview_client,
        callback_body(
            INCIDENT_KPI_OUTPUTS,
            [("incidents-url", "search", overview.incident_search(args))],
        ),
    )
    incident_kpis = values(incident_out["incidents-kpis"]["children"], "incidents-kpi-")
    for key in ["g1-share", "g1-median", "999", "101", "queue"]:
        assert tiles[key] == incident_kpis[key], key


def test_crime_tile_equals_the_query_for_rolling_12_months(
    overview_client, overview_warehouse_url
):
    out = call(overview_client, tiles_body({}))
    tiles = values(out["overview-tiles"]["children"], "overview-tile-")
    with warehouse.Reader(overview_warehouse_url).connect() as conn:
        months = crime.months_available(conn)["month"]
        start, end, _ = crime.resolve_period("rolling-12", months)
        expected = crime.kpis(
            conn, crime.CrimeFilters(start_month=start, end_month=end)
        )
    assert tiles["crimes"] == str(expected["crimes"])
    assert "Rolling 12 months" in out["overview-caption"]["children"] or (
        "12 months" in out["overview-caption"]["children"]
    )
    # Every tile says when its source last loaded; the browser checks staleness.
    assert {"police-uk-street", "cad", "calls"} <= set(out["overview-sources"]["data"])


def test_a_measure_without_data_says_so_rather_than_zero(overview_client):
    """Alexandria's incidents are not placed in Leicester: its Grade 1 tiles there
    have nothing to show, and say so."""
    out = call(overview_client, tiles_body({"level": "lad", "area": LEICESTER}))
    texts = tile_texts(out["overview-tiles"]["children"])
    raw = values(out["overview-tiles"]["children"], "overview-tile-")
    assert texts["g1-share"] in ("none in this period", "not recorded by this source")
    assert raw["g1-share"] == ""


def test_display_role_sees_the_overview_but_not_the_pages_or_exports(
    overview_client,
):
    display = login("display")
    assert overview_client.get("/overview", headers=display).status_code == 200
    assert overview_client.get("/wall", headers=display).status_code == 200
    assert overview_client.get("/crime", headers=display).status_code == 403
    assert overview_client.get("/incidents", headers=display).status_code == 403
    assert overview_client.get("/data-status", headers=display).status_code == 403
    for url in ["/export/crime/kpis.csv", "/export/incidents/grades.csv"]:
        assert overview_client.get(url, headers=display).status_code == 403
    call(overview_client, tiles_body({}), role="display")


def test_kiosk_layout_has_no_filter_controls(overview_client):
    body = route_to("/overview")
    plain = json.dumps(call(overview_client, body)["_pages_content"]["children"])
    body["inputs"][1]["value"] = "?kiosk=1"
    kiosk = json.dumps(call(overview_client, body)["_pages_content"]["children"])
    assert "overview-controls" in plain and "bl-kiosk" not in plain
    assert "overview-controls" not in kiosk and "bl-kiosk" in kiosk
    assert "overview-clock" in kiosk and "overview-caption" in kiosk


def test_exceptions_first_puts_tiles_in_breach_first():
    from dashboards import overview

    tiles = [
        {"key": "a", "rag": None},
        {"key": "b", "rag": "met"},
        {"key": "c", "rag": "breach"},
        {"key": "d", "rag": "near"},
    ]
    assert [t["key"] for t in overview.ordered(tiles, True)] == ["c", "d", "a", "b"]
    assert [t["key"] for t in overview.ordered(tiles, False)] == ["a", "b", "c", "d"]


def test_wall_playlist_keeps_each_pages_query_string(overview_app):
    from dashboards import wall

    with overview_app.server.test_request_context():
        items, problems = wall.playlist(
            f"overview,crime?level=lad&area={LEICESTER},nowhere,incidents", True
        )
    assert [i["name"] for i in items] == ["overview", "crime", "incidents"]
    assert items[0]["src"] == "/overview?kiosk=1&exceptions=1&embed=1"
    assert items[1]["src"] == f"/crime?level=lad&area={LEICESTER}&embed=1"
    assert problems == ["No page called 'nowhere': left out of the playlist."]
