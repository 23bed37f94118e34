"""Crime queries on the real Leicestershire files agree with the raw CSVs' counts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from etl import pipeline, warehouse
from queries import crime
from queries.crime import CrimeFilters

pytestmark = pytest.mark.real_data

LEICS = Path("crime/police_uk/leicestershire")
POPULATION = Path("population/leics_lsoa21_census2021_usual_residents.csv")
LEICESTER = "E06000016"
FORCE_CODE = "leicestershire-police"


@pytest.fixture(scope="module")
def conn(shared_data, tmp_path_factory):
    url = f"duckdb:///{tmp_path_factory.mktemp('crime') / 'warehouse.duckdb'}"
    for source, path in [
        ("boundaries", shared_data / "boundaries"),
        ("population", shared_data / POPULATION),
        ("police-uk-street", shared_data / LEICS),
    ]:
        result = pipeline.run(url, source, path)
        assert result.status == "succeeded", result.message
    reader = warehouse.Reader(url)
    with reader.connect() as connection:
        yield connection
    reader._engine.dispose()


@pytest.fixture(scope="module")
def lsoa_lad(shared_data) -> pd.Series:
    """LSOA code -> LAD code, as the boundaries GeoJSON states it."""
    path = shared_data / "boundaries" / "leics_lsoa11.geojson"
    features = json.loads(path.read_text())["features"]
    return pd.Series(
        {f["properties"]["LSOA11CD"]: f["properties"]["LAD_CD"] for f in features}
    )


@pytest.fixture(scope="module")
def raw(shared_data) -> pd.DataFrame:
    """Every recorded crime (no ASB) in the monthly files, read with plain pandas.

    A Crime ID published in several monthly files is one crime: its last sighting
    gives its outcome and place, its first the month it was recorded in.
    """
    files = sorted((shared_data / LEICS).glob("*-street.csv.gz"))
    frame = pd.concat([pd.read_csv(f, dtype=str) for f in files], ignore_index=True)
    frame = frame[frame["Crime type"] != crime.ASB]
    frame = frame.assign(Month=frame.groupby("Crime ID")["Month"].transform("min"))
    frame = frame.drop_duplicates("Crime ID", keep="last")
    return frame.assign(month=pd.to_datetime(frame["Month"], format="%Y-%m").dt.date)


def _months(raw: pd.DataFrame, first: dt.date, last: dt.date) -> pd.DataFrame:
    return raw[(raw["month"] >= first) & (raw["month"] <= last)]


def test_one_type_in_one_lsoa_in_one_month_matches_the_raw_csv(conn, raw, lsoa_lad):
    june = _months(raw, dt.date(2021, 6, 1), dt.date(2021, 6, 1))
    june = june[june["LSOA code"].isin(lsoa_lad.index)]
    busiest = june["LSOA code"].value_counts().index[0]
    in_lsoa = june[june["LSOA code"] == busiest]
    top_type = in_lsoa["Crime type"].value_counts().index[0]
    expected = int((in_lsoa["Crime type"] == top_type).sum())
    assert expected > 10

    f = CrimeFilters(
        dt.date(2021, 6, 1), dt.date(2021, 6, 1), (top_type,), "lsoa", busiest
    )
    assert crime.kpis(conn, f)["crimes"] == expected
    types = crime.by_type(conn, dataclasses.replace(f, crime_types=()))
    assert types.set_index("crime_type").loc[top_type, "crimes"] == expected
    assert types["crimes"].sum() == len(in_lsoa)
    ward = crime.area_path(conn, "lsoa", busiest)[-2]["area_code"]
    in_ward = crime.by_area(
        conn, dataclasses.replace(f, area_level="ward", area_code=ward), "lsoa"
    )
    assert in_ward.set_index("area_code").loc[busiest, "crimes"] == expected


def test_a_district_rolling_year_against_the_year_before_matches_the_raw_csv(
    conn, raw, lsoa_lad
):
    months = crime.months_available(conn)["month"]
    start, end, _ = crime.resolve_period("rolling-12", months)
    assert (start, end) == (dt.date(2021, 11, 1), dt.date(2022, 10, 1))
    in_leicester = raw[raw["LSOA code"].map(lsoa_lad) == LEICESTER]
    current = len(_months(in_leicester, start, end))
    previous = len(_months(in_leicester, dt.date(2020, 11, 1), dt.date(2021, 10, 1)))
    z = 2 * (math.sqrt(current) - math.sqrt(previous))

    district = CrimeFilters(start, end, area_level="lad", area_code=LEICESTER)
    got = crime.kpis(conn, district)
    assert (got["crimes"], got["crimes_last_year"]) == (current, previous)
    assert got["z"] == pytest.approx(z)
    assert got["significance"] == crime.stats.significance(z)
    row = crime.by_area(conn, CrimeFilters(start, end, area_code=FORCE_CODE), "lad")
    row = row.set_index("area_code").loc[LEICESTER]
    assert (row["crimes"], row["crimes_last_year"]) == (current, previous)
    assert row["z"] == pytest.approx(z)
    by_month = _months(in_leicester, start, end)["month"].value_counts().sort_index()
    series = crime.monthly(conn, district)
    assert series["crimes"].tolist() == by_month.tolist()
    assert series["month"].tolist() == by_month.index.tolist()


def test_a_district_rate_per_1000_uses_census_residents(
    conn, raw, lsoa_lad, shared_data
):
    start, end = dt.date(2021, 11, 1), dt.date(2022, 10, 1)
    residents = pd.read_csv(shared_data / POPULATION, dtype={"lsoa21_code": str})
    residents = residents[residents["lsoa21_code"].isin(lsoa_lad.index)]
    population = int(
        residents.loc[
            residents["lsoa21_code"].map(lsoa_lad) == LEICESTER, "usual_residents_total"
        ].sum()
    )
    crimes = len(_months(raw[raw["LSOA code"].map(lsoa_lad) == LEICESTER], start, end))
    expected = crimes / population * 1000

    district = CrimeFilters(start, end, area_level="lad", area_code=LEICESTER)
    got = crime.kpis(conn, district)
    assert got["population"] == population
    assert got["rate_per_1000"] == pytest.approx(expected)
    row = crime.by_area(conn, CrimeFilters(start, end, area_code=FORCE_CODE), "lad")
    assert row.set_index("area_code").loc[LEICESTER, "rate_per_1000"] == (
        pytest.approx(expected)
    )


def test_the_force_counts_every_crime_including_unplaced(conn, raw, lsoa_lad):
    month = dt.date(2022, 10, 1)
    in_month = _months(raw, month, month)
    got = crime.kpis(conn, CrimeFilters(month, month, area_code=FORCE_CODE))
    assert got["crimes"] == len(in_month)
    assert got["unplaced"] == int((~in_month["LSOA code"].isin(lsoa_lad.index)).sum())
    lads = crime.by_area(conn, CrimeFilters(month, month, area_code=FORCE_CODE), "lad")
    assert lads["crimes"].sum() == got["crimes"] - got["unplaced"]
    assert len(lads) == lsoa_lad.nunique()
