"""Crime queries on tiny given warehouses, each run on DuckDB and PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import pandas as pd
import pytest

from etl import reference, warehouse
from queries import crime
from queries.crime import CrimeFilters

FORCE = "Test Police"
FORCE_CODE = "test-police"
D = dt.date

# Test Police: LAD L1 (wards W1, W2) and L2 (ward W3, no crime); LSOAs A1 in W1,
# A2 in W2, A3 in W3. Other Police: L9 > W9 > B1.
AREAS = [
    # area_code, area_name, level, parent_code, force_name
    (FORCE_CODE, FORCE, "force", None, FORCE),
    ("other-police", "Other Police", "force", None, "Other Police"),
    ("L1", "Northtown", "lad", FORCE_CODE, FORCE),
    ("L2", "Southvale", "lad", FORCE_CODE, FORCE),
    ("L9", "Elsewhere", "lad", "other-police", "Other Police"),
    ("W1", "Abbey", "ward", "L1", FORCE),
    ("W2", "Bridge", "ward", "L1", FORCE),
    ("W3", "Castle", "ward", "L2", FORCE),
    ("W9", "Faraway", "ward", "L9", "Other Police"),
    ("A1", "Northtown 001A", "lsoa", "W1", FORCE),
    ("A2", "Northtown 001B", "lsoa", "W2", FORCE),
    ("A3", "Southvale 001A", "lsoa", "W3", FORCE),
    ("B1", "Elsewhere 001A", "lsoa", "W9", "Other Police"),
]
GEOGRAPHY = [
    # lsoa_code, ward_code, lad_code, force_name, population
    ("A1", "W1", "L1", FORCE, 1000),
    ("A2", "W2", "L1", FORCE, 2000),
    ("A3", "W3", "L2", FORCE, 500),
    ("B1", "W9", "L9", "Other Police", 100),
]
CRIMES = [
    # month, crime_type, lsoa_code (None: unplaced), last outcome, force
    (D(2021, 1, 1), "Burglary", "A1", "Under investigation", FORCE),
    (D(2021, 1, 1), "Burglary", "A1", "Local resolution", FORCE),
    (D(2021, 2, 1), "Robbery", "A2", "Unable to prosecute suspect", FORCE),
    (D(2021, 2, 1), crime.ASB, "A1", None, FORCE),
    (D(2022, 1, 1), "Burglary", "A1", "Offender given a caution", FORCE),
    (D(2022, 1, 1), "Burglary", "A1", None, FORCE),
    (D(2022, 1, 1), "Shoplifting", "A2", "Under investigation", FORCE),
    (D(2022, 1, 1), crime.ASB, "A1", None, FORCE),
    (
        D(2022, 3, 1),
        "Vehicle crime",
        "A1",
        "Investigation complete; no suspect identified",
        FORCE,
    ),
    (D(2022, 3, 1), "Burglary", None, "Unable to prosecute suspect", FORCE),
    (D(2022, 3, 1), crime.ASB, "A2", None, FORCE),
    (D(2022, 1, 1), "Burglary", "B1", None, "Other Police"),
]
PERIOD = CrimeFilters(D(2022, 1, 1), D(2022, 3, 1), area_code=FORCE_CODE)


def _frames():
    areas = pd.DataFrame(
        AREAS, columns=["area_code", "area_name", "level", "parent_code", "force_name"]
    ).assign(geometry_repaired=False)
    geography = pd.DataFrame(
        GEOGRAPHY,
        columns=["lsoa_code", "ward_code", "lad_code", "force_name", "population"],
    ).assign(lsoa_name=lambda g: g["lsoa_code"])
    rows = pd.DataFrame(
        CRIMES,
        columns=["month", "crime_type", "lsoa_code", "last_outcome_category", "force"],
    )
    placed = rows["lsoa_code"].notna()
    crimes = pd.DataFrame(
        {
            "crime_key": [f"k{i}" for i in range(len(rows))],
            "is_asb": rows["crime_type"].eq(crime.ASB),
            "month": rows["month"],
            "force_name": rows["force"],
            "longitude": (-1.1 + rows.index * 0.001).where(placed),
            "latitude": (52.6 + rows.index * 0.001).where(placed),
            "lsoa_code": rows["lsoa_code"],
            "placement": placed.map({True: "lsoa_code", False: "unplaced"}),
            "crime_type": rows["crime_type"],
            "last_outcome_category": rows["last_outcome_category"],
            "first_run_id": 1,
            "last_run_id": 1,
        }
    )
    return areas, geography, crimes


@pytest.fixture
def conn(warehouse_url):
    warehouse.ensure_schema(warehouse_url)
    areas, geography, crimes = _frames()
    with warehouse.write(warehouse_url) as write:
        reference.upsert_reference(write)
        warehouse.insert_frame(write, "dim_area", areas)
        warehouse.insert_frame(write, "dim_geography", geography)
        warehouse.insert_frame(write, "fct_crime", crimes)
    reader = warehouse.Reader(warehouse_url)
    with reader.connect() as connection:
        yield connection
    reader._engine.dispose()


def _z(current, previous):
    return 2 * (math.sqrt(current) - math.sqrt(previous))


def test_kpis_count_crimes_against_last_year_with_rate_harm_and_asb(conn):
    got = crime.kpis(conn, PERIOD)
    # Burglary x3 (one unplaced), Shoplifting, Vehicle crime; last year 2 + Robbery.
    assert got == {
        "crimes": 5,
        "crimes_last_year": 3,
        "z": pytest.approx(_z(5, 3)),
        "significance": "noise",
        "population": 3500,
        "rate_per_1000": pytest.approx(5 / 3500 * 1000),
        "harm_days": pytest.approx(3 * 40.0 + 2.0 + 10.0),
        "asb": 2,
        "asb_last_year": 1,
        "unplaced": 1,
    }


def test_kpis_filtered_by_type_keep_asb_as_its_own_measure(conn):
    got = crime.kpis(conn, dataclasses.replace(PERIOD, crime_types=("Burglary",)))
    assert (got["crimes"], got["crimes_last_year"], got["harm_days"]) == (3, 2, 120.0)
    assert (got["asb"], got["asb_last_year"]) == (2, 1)


def test_kpis_of_every_force_include_the_other_force(conn):
    got = crime.kpis(conn, CrimeFilters(D(2022, 1, 1), D(2022, 3, 1)))
    assert (got["crimes"], got["population"], got["unplaced"]) == (6, 3600, 1)


def test_an_empty_period_gives_zeros_not_errors(conn):
    empty = CrimeFilters(D(2024, 1, 1), D(2024, 2, 1), area_code=FORCE_CODE)
    got = crime.kpis(conn, empty)
    assert (got["crimes"], got["crimes_last_year"], got["z"]) == (0, 0, 0.0)
    assert (got["significance"], got["harm_days"], got["asb"]) == ("noise", 0.0, 0)
    assert got["rate_per_1000"] == 0.0
    assert crime.by_type(conn, empty).empty
    assert list(crime.by_type(conn, empty).columns) == crime.BY_TYPE_COLUMNS
    outcomes = crime.outcome_groups(conn, empty)
    assert outcomes.empty and list(outcomes.columns) == [
        "outcome_group",
        "crimes",
        "share",
    ]
    assert crime.crime_points(conn, empty).empty
    months = crime.monthly(conn, empty)
    assert months["month"].tolist() == [D(2024, 1, 1), D(2024, 2, 1)]
    assert months["crimes"].tolist() == [0, 0]
    areas = crime.by_area(conn, empty, "lad")
    assert areas["crimes"].tolist() == [0, 0]
    assert areas["significance"].tolist() == ["noise", "noise"]


def test_the_first_month_of_data_has_zero_last_year(conn):
    first = CrimeFilters(D(2021, 1, 1), D(2021, 1, 1), area_code=FORCE_CODE)
    got = crime.kpis(conn, first)
    assert (got["crimes"], got["crimes_last_year"]) == (2, 0)
    assert got["z"] == pytest.approx(_z(2, 0))
    months = crime.monthly(conn, first)
    assert months["crimes_last_year"].tolist() == [0]
    assert months["crimes_last_year"].dtype == "int64"


def test_by_area_lists_every_area_with_zero_rows_and_rates(conn):
    got = crime.by_area(conn, PERIOD, "lad")
    expected = pd.DataFrame(
        {
            "area_code": ["L1", "L2"],
            "area_name": ["Northtown", "Southvale"],
            "crimes": [4, 0],
            "crimes_last_year": [3, 0],
            "population": pd.array([3000, 500], dtype="Int64"),
            "rate_per_1000": [4 / 3000 * 1000, 0.0],
            "harm_days": [2 * 40.0 + 2.0 + 10.0, 0.0],
            "z": [_z(4, 3), 0.0],
            "significance": ["noise", "noise"],
        }
    )
    pd.testing.assert_frame_equal(got, expected)


def test_by_area_at_force_level_counts_each_force(conn):
    got = crime.by_area(conn, CrimeFilters(D(2022, 1, 1), D(2022, 3, 1)), "force")
    assert got["area_code"].tolist() == ["other-police", FORCE_CODE]
    assert got["crimes"].tolist() == [1, 5]
    assert got["population"].tolist() == [100, 3500]


@pytest.mark.parametrize(
    ("level", "code"), [("force", FORCE_CODE), ("lad", "L1"), ("ward", "W1")]
)
def test_drilling_down_sums_to_the_parent(conn, level, code):
    parent = CrimeFilters(D(2021, 1, 1), D(2022, 3, 1), (), level, code)
    totals = crime.kpis(conn, parent)
    children = crime.by_area(conn, parent, crime.CHILD_LEVEL[level])
    placed = totals["crimes"] - totals["unplaced"]
    assert children["crimes"].sum() == placed
    assert children["harm_days"].sum() > 0
    assert children["population"].sum() == totals["population"]


def test_drill_down_to_lsoas_of_a_ward(conn):
    ward = CrimeFilters(D(2022, 1, 1), D(2022, 3, 1), area_level="ward", area_code="W1")
    got = crime.by_area(conn, ward, "lsoa")
    assert got[["area_code", "crimes", "crimes_last_year"]].values.tolist() == [
        ["A1", 3, 2]
    ]


def test_by_area_refuses_a_level_above_the_filter(conn):
    with pytest.raises(ValueError, match="above"):
        lad = CrimeFilters(D(2022, 1, 1), D(2022, 3, 1), (), "lad", "L1")
        crime.by_area(conn, lad, "force")


def test_monthly_has_every_month_with_last_year_and_control_limits(conn):
    got = crime.monthly(conn, PERIOD)
    centre = 5 / 3
    expected = pd.DataFrame(
        {
            "month": pd.Series(
                [D(2022, 1, 1), D(2022, 2, 1), D(2022, 3, 1)], dtype=object
            ),
            "crimes": [3, 0, 2],
            "crimes_last_year": [2, 1, 0],
            "population": pd.array([3500] * 3, dtype="Int64"),
            "rate_per_1000": [3 / 3.5, 0.0, 2 / 3.5],
            "harm_days": [82.0, 0.0, 50.0],
            "centre": centre,
            "lower": 0.0,
            "upper": centre + 3 * math.sqrt(centre),
            "outside": False,
        }
    )
    pd.testing.assert_frame_equal(got, expected)


def test_by_type_labels_a_type_absent_last_year(conn):
    got = crime.by_type(conn, PERIOD)
    expected = pd.DataFrame(
        {
            "category_group": ["Acquisitive", "Acquisitive", "Acquisitive", "Violence"],
            "crime_type": ["Burglary", "Shoplifting", "Vehicle crime", "Robbery"],
            "crimes": [3, 1, 1, 0],
            "crimes_last_year": [2, 0, 0, 1],
            "harm_days": [120.0, 2.0, 10.0, 0.0],
            "z": [_z(3, 2), 2.0, 2.0, -2.0],
            "significance": ["noise", "watch", "watch", "watch"],
        }
    )
    pd.testing.assert_frame_equal(got, expected)


def test_outcome_groups_count_no_outcome_as_awaiting(conn):
    got = crime.outcome_groups(conn, PERIOD)
    expected = pd.DataFrame(
        {
            "outcome_group": [
                "Awaiting outcome",
                "Evidential difficulties",
                "Investigation complete, no suspect identified",
                "Out-of-court (formal)",
            ],
            "crimes": [2, 1, 1, 1],
            "share": [0.4, 0.2, 0.2, 0.2],
        }
    )
    pd.testing.assert_frame_equal(got, expected)
    assert got["share"].sum() == pytest.approx(1.0)


def test_crime_points_are_placed_crimes_with_coordinates(conn):
    got = crime.crime_points(conn, PERIOD)
    assert sorted(got["crime_type"]) == [
        "Burglary",
        "Burglary",
        "Shoplifting",
        "Vehicle crime",
    ]
    assert list(got.columns) == ["latitude", "longitude", "crime_type", "month"]
    assert got["latitude"].notna().all()


def test_pickers_list_months_types_areas_and_the_breadcrumb(conn):
    assert crime.months_available(conn)["month"].tolist() == [
        D(2021, 1, 1),
        D(2021, 2, 1),
        D(2022, 1, 1),
        D(2022, 3, 1),
    ]
    tree = crime.crime_type_tree(conn)
    assert tree.values.tolist() == [
        ["Acquisitive", "Burglary", 40.0],
        ["Acquisitive", "Shoplifting", 2.0],
        ["Acquisitive", "Vehicle crime", 10.0],
        ["Violence", "Robbery", 365.0],
    ]
    wards = crime.area_options(conn, "ward", "L1")
    assert wards.values.tolist() == [["W1", "Abbey", "L1"], ["W2", "Bridge", "L1"]]
    assert crime.area_path(conn, "lsoa", "A1") == [
        {"level": "force", "area_code": FORCE_CODE, "area_name": FORCE},
        {"level": "lad", "area_code": "L1", "area_name": "Northtown"},
        {"level": "ward", "area_code": "W1", "area_name": "Abbey"},
        {"level": "lsoa", "area_code": "A1", "area_name": "Northtown 001A"},
    ]
    assert crime.area_path(conn, "lsoa", "nowhere") == []


def test_previous_year_is_the_same_months_a_year_earlier():
    f = CrimeFilters(D(2024, 3, 1), D(2025, 2, 1), ("Burglary",), "lad", "L1")
    assert f.previous_year() == CrimeFilters(
        D(2023, 3, 1), D(2024, 2, 1), ("Burglary",), "lad", "L1"
    )


MONTHS = pd.Series([D(2021, 1, 1) + pd.DateOffset(months=i) for i in range(22)]).map(
    lambda t: t.date()
)  # January 2021 to October 2022


@pytest.mark.parametrize(
    ("preset", "start", "end", "expected"),
    [
        ("last-28-days", None, None, (D(2022, 10, 1), D(2022, 10, 1))),
        ("last-month", None, None, (D(2022, 10, 1), D(2022, 10, 1))),
        ("rolling-12", None, None, (D(2021, 11, 1), D(2022, 10, 1))),
        ("fytd", None, None, (D(2022, 4, 1), D(2022, 10, 1))),
        ("custom", "2021-06", "2021-08", (D(2021, 6, 1), D(2021, 8, 1))),
        ("custom", "2019-01", "2030-12", (D(2021, 1, 1), D(2022, 10, 1))),
        ("custom", "2022-02", "2021-12", (D(2021, 12, 1), D(2022, 2, 1))),
    ],
)
def test_resolve_period_gives_whole_months_held(preset, start, end, expected):
    got = crime.resolve_period(preset, MONTHS, start, end)
    assert got[:2] == expected
    assert "month" in got[2]


def test_resolve_period_says_the_28_days_are_a_month():
    sentence = crime.resolve_period("last-28-days", MONTHS)[2]
    assert "monthly" in sentence and "October 2022" in sentence


def test_resolve_period_fytd_before_april_starts_the_previous_april():
    start, end, sentence = crime.resolve_period("fytd", MONTHS[MONTHS <= D(2022, 2, 1)])
    assert (start, end) == (D(2021, 4, 1), D(2022, 2, 1))
    assert "2021/22" in sentence


def test_resolve_period_rejects_a_bad_month_and_no_data():
    with pytest.raises(ValueError, match="YYYY-MM"):
        crime.resolve_period("custom", MONTHS, "March 2022", None)
    with pytest.raises(ValueError, match="no months"):
        crime.resolve_period("rolling-12", pd.Series([], dtype=object))
