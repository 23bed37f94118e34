"""Boundaries, choropleth figure and patch, and the offline heat-map export."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
import shapely
import test_crime_page as crime_tests

from etl import warehouse
from geo import boundaries, choropleth, heatmap

crime_warehouse_url = crime_tests.crime_warehouse_url

AREAS = pd.DataFrame(
    {
        "area_code": ["A1", "A2"],
        "area_name": ["North", "South"],
        "crimes": [10, 0],
        "crimes_last_year": [4, 0],
        "rate_per_1000": [2.5, float("nan")],
        "harm_days": [100.0, 0.0],
        "z": [2.32, 0.0],
        "significance": ["watch", "noise"],
    }
)


def test_figure_references_polygons_by_url():
    figure = choropleth.choropleth_figure("/geo/x.geojson", AREAS, "rate")
    trace = figure.data[0]
    assert trace.type == "choroplethmap" and trace.geojson == "/geo/x.geojson"
    assert trace.featureidkey == "properties.area_code"
    assert figure.layout.map.style == "white-bg"
    assert list(trace.z) == [2.5, None]  # no residents: no colour, not zero


def test_patch_updates_values_and_never_polygons():
    patch = choropleth.choropleth_patch("/geo/y.geojson", AREAS, "harm", None, "k")
    text = json.dumps(patch.to_plotly_json())
    assert "/geo/y.geojson" in text and "A1" in text and "100.0" in text
    assert "coordinates" not in text


def test_view_fits_bounds():
    wide = choropleth.view((-2.0, 52.0, 0.0, 53.0))
    narrow = choropleth.view((-1.2, 52.6, -1.1, 52.65))
    assert narrow["zoom"] > wide["zoom"]
    assert narrow["center"] == pytest.approx({"lon": -1.15, "lat": 52.625})


@pytest.mark.real_data
def test_layers_are_simplified_valid_and_cover_the_level(crime_warehouse_url):
    with warehouse.Reader(crime_warehouse_url).connect() as conn:
        raw = boundaries.read_layer(conn, "ward", crime_tests.FORCE)
        layer = boundaries.layer(conn, 999, "ward", crime_tests.FORCE)
    shapes = json.loads(layer.geojson)["features"]
    assert {f["properties"]["area_code"] for f in shapes} == set(raw["area_code"])
    geometry = shapely.from_geojson([json.dumps(f["geometry"]) for f in shapes])
    vertices = shapely.get_num_coordinates(geometry).sum()
    assert vertices < shapely.get_num_coordinates(raw.geometry.values).sum()
    assert shapely.is_valid(geometry).all()
    assert layer.bounds_of(["E05001784"]) is not None
    assert layer.bounds_of(["nope"]) is None


def test_heatmap_loads_nothing_from_the_network_without_tiles():
    points = pd.DataFrame({"latitude": [52.6, 52.61], "longitude": [-1.1, -1.12]})
    page = heatmap.heatmap_html(points, tile_url="", notes=("<b>x</b>",))
    loads = re.findall(r"""<(?:script|link)[^>]+(?:src|href)=["']([^"']+)""", page)
    assert loads == []
    assert "L.heatLayer" in page and "No background tiles" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page  # notes are escaped


def test_heatmap_uses_the_tile_url_given():
    points = pd.DataFrame({"latitude": [52.6], "longitude": [-1.1]})
    page = heatmap.heatmap_html(
        points, tile_url="https://tiles.example/{z}/{x}/{y}.png"
    )
    assert "https://tiles.example/{z}/{x}/{y}.png" in page
