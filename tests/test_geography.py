"""Tests for the geography helpers (repair, BNG, placement) and reference rows."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import Polygon, box

from etl import geography, reference


def test_bowtie_polygon_is_repaired_and_flagged():
    bowtie = Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    square = box(0, 0, 1, 1)
    fixed, repaired = geography.repair(gpd.GeoSeries([bowtie, square]))
    assert repaired.tolist() == [True, False]
    assert fixed.is_valid.all()
    assert fixed.iloc[0].geom_type in ("Polygon", "MultiPolygon")
    assert fixed.iloc[1].equals(square)


def test_bng_true_origin_converts_to_49_north_2_west():
    # The National Grid's true origin is 49 N, 2 W (E 400,000, N -100,000); the
    # OSGB36 -> WGS84 datum shift is under 0.002 degrees there.
    lon, lat = geography.bng_to_wgs84([400000], [-100000])
    assert lon[0] == pytest.approx(-2.0, abs=0.002)
    assert lat[0] == pytest.approx(49.0, abs=0.002)


def test_points_are_placed_in_the_polygon_that_holds_them():
    polygons = gpd.GeoDataFrame(
        {"lsoa_code": ["A", "B"]},
        geometry=[box(0, 0, 1, 1), box(1, 0, 2, 1)],
        crs=geography.WGS84,
    )
    lon = pd.Series([0.5, 1.5, 5.0, None], index=[10, 11, 12, 13])
    lat = pd.Series([0.5, 0.5, 5.0, None], index=[10, 11, 12, 13])
    placed = geography.place_points(lon, lat, polygons)
    assert placed.loc[10] == "A"
    assert placed.loc[11] == "B"
    assert pd.isna(placed.loc[12]) and pd.isna(placed.loc[13])


def test_every_current_police_uk_category_has_a_group_and_weight():
    current = [
        "Anti-social behaviour",
        "Bicycle theft",
        "Burglary",
        "Criminal damage and arson",
        "Drugs",
        "Other crime",
        "Other theft",
        "Possession of weapons",
        "Public order",
        "Robbery",
        "Shoplifting",
        "Theft from the person",
        "Vehicle crime",
        "Violence and sexual offences",
    ]
    frame = reference.crime_type_frame().set_index("crime_type")
    assert set(current) <= set(frame.index)
    assert not frame.loc[current, "is_legacy"].any()
    assert set(reference.LEGACY_2011_CATEGORIES) <= set(frame.index)
    assert frame.loc["Violent crime", "is_legacy"]
    assert (frame["harm_weight_days"] >= 0).all()
    assert frame.index.is_unique


def test_outcomes_map_to_home_office_groups():
    frame = reference.outcome_frame().set_index("outcome_category")
    assert frame.index.is_unique
    assert frame.loc["Under investigation", "is_final"] == False  # noqa: E712
    assert frame.loc["Local resolution", "outcome_group"] == reference.OOC_INFORMAL
    assert (
        frame.loc["Offender given a caution", "outcome_group"] == reference.OOC_FORMAL
    )
