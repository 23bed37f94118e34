"""The overview's real callback on real data: its tiles and their sparklines equal the
crime and incidents pages' figures for the same filters; call tiles for an account
limited to areas; the display role; the kiosk layout."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import test_app_auth as app_tests
import test_crime_page as crime_tests
from plotly.utils import PlotlyJSONEncoder
from test_app_auth import callback_body, login, route_to

from etl import pipeline, warehouse
from queries import calls, crime, scope, trends

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


def figures_of(children, prefix: str) -> dict[str, dict]:
    """id suffix -> figure of every graph whose id starts with `prefix`."""
    found = {}

    def walk(node):
        if isinstance(node, dict):
            props = node.get("props", {})
            if str(props.get("id", "")).startswith(prefix) and "figure" in props:
                found[props["id"].removeprefix(prefix)] = props["figure"]
            for value in props.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(children)
    return found


def numbers(values) -> list[float]:
    """A trace's values as floats (NaN for gaps), whether sent as a list or as
    plotly's base64 typed array."""
    if isinstance(values, dict) and "bdata" in values:
        raw = np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
        return raw.astype("float64").tolist()
    return [np.nan if v is None else float(v) for v in values]


def trace(figure: dict, name: str) -> dict:
    return next(t for t in figure["data"] if t.get("name") == name)


def direct(url: str):
    """The pages' `query(fn, *args)` on a plain connection, outside any request."""
    reader = warehouse.Reader(url)

    def query(fn, *args):
        with reader.connect() as conn:
            return fn(conn, *args)

    return query


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

    # The sparklines are the pages' trend charts: crimes by month, and the weekly
    # Grade 1 share within target (the incidents page charts Grade 1 by default).
    sparks = figures_of(out["overview-tiles"]["children"], "overview-spark-")
    crime_trend = call(
        overview_client,
        callback_body(
            [("crime-trend", "figure")],
            [("crime-url", "search", overview.crime_search(args))],
        ),
    )["crime-trend"]["figure"]
    np.testing.assert_array_equal(
        numbers(sparks["crimes"]["data"][0]["y"]),
        numbers(trace(crime_trend, "Crimes")["y"]),
    )
    incident_trend = call(
        overview_client,
        callback_body(
            [("incidents-trend", "figure")],
            [("incidents-view", "data", overview.incident_search(args))],
        ),
    )["incidents-trend"]["figure"]
    page_share = numbers(trace(incident_trend, "% within target")["y"])
    if "g1-share" in sparks:
        spark = [v * 100 for v in numbers(sparks["g1-share"]["data"][0]["y"])]
        np.testing.assert_allclose(spark, page_share, atol=0.005)
    else:  # no Grade 1 incidents in the area: neither draws a trend
        assert np.count_nonzero(~np.isnan(page_share)) < 2


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


def test_call_and_queue_sparklines_are_the_tiles_measures_by_week_and_day(
    overview_client, overview_warehouse_url
):
    from dashboards import exports, overview

    args = {"iperiod": "rolling-12"}
    out = call(overview_client, tiles_body(args))
    tiles = values(out["overview-tiles"]["children"], "overview-tile-")
    sparks = figures_of(out["overview-tiles"]["children"], "overview-spark-")
    query = direct(overview_warehouse_url)
    resolved = exports.resolve_incident_query_string(
        overview.incident_search(args), query
    )
    f = resolved.filters
    weekly = query(trends.weekly_calls, f.start, f.end, f.source)
    weeks_999 = weekly[weekly["line"] == "999"]
    np.testing.assert_array_equal(
        numbers(sparks["999"]["data"][0]["y"]), numbers(weeks_999["share_within_10"])
    )
    # The weeks add up to the tile (which equals the incidents page's 999 card).
    assert weeks_999["within_10"].sum() / weeks_999["answered"].sum() == (
        pytest.approx(float(tiles["999"]))
    )
    assert weeks_999["offered"].gt(0).sum() >= 2  # a real line, not one point
    days = query(trends.open_by_day, f, resolved.as_at)
    np.testing.assert_array_equal(
        numbers(sparks["queue"]["data"][0]["y"]), numbers(days["open_incidents"])
    )
    assert len(days) == (f.end - f.start).days + 1


def test_call_tiles_tell_an_account_limited_to_areas_why_they_are_empty(
    overview_app, overview_warehouse_url
):
    from dashboards import overview

    query = direct(overview_warehouse_url)
    search = overview.incident_search({})
    everyone = {t["key"]: t for t in overview.incident_tiles(search, query)[0]}
    with scope.restricted_to({LEICESTER}):
        limited = {t["key"]: t for t in overview.incident_tiles(search, query)[0]}
    for key in ("999", "101"):
        assert limited[key]["value"] == calls.NOT_BY_AREA, key
        assert limited[key]["raw"] is None and limited[key]["spark"] == []
        assert everyone[key]["value"] != calls.NOT_BY_AREA, key
    assert everyone["999"]["raw"] is not None
    card = json.dumps(overview.tile_card(limited["999"], {}), cls=PlotlyJSONEncoder)
    assert calls.NOT_BY_AREA in card and "none in this period" not in card
