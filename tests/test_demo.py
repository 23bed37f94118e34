"""The seeded demo generator writes the real formats, reproducibly, with real faults."""

from __future__ import annotations

import datetime as dt
import gzip
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from etl import demo

FORMATS = Path(__file__).resolve().parent.parent / "etl" / "FORMATS.md"
OCTOBER = dt.date(2024, 10, 1)  # clocks went back on 27 October 2024
TIME_COLUMNS = [
    "call_received_at", "call_answered_at", "incident_created_at", "graded_at",
    "dispatched_at", "arrived_at", "closed_at",
]
ISO_WITH_OFFSET = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d"


def _generate(root: Path, **kwargs) -> dict[str, Path]:
    return demo.generate(root, months=1, end_month=OCTOBER, seed=7, **kwargs)


@pytest.fixture(scope="module")
def october(tmp_path_factory) -> dict[str, Path]:
    return _generate(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def cad(october) -> pd.DataFrame:
    return _read(october["cad"] / "cad-2024-10.csv.gz")


@pytest.fixture(scope="module")
def calls(october) -> pd.DataFrame:
    return _read(october["calls"] / "calls-2024-10.csv.gz")


@pytest.fixture(scope="module")
def crimes(october) -> pd.DataFrame:
    return _read(october["police-uk-street"] / "2024-10-west-midlands-street.csv")


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _header(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return handle.readline().rstrip("\n").split(",")


def _documented_columns(section: str, table_after: str = "") -> list[str]:
    """Column names in the first table of a FORMATS.md section (after a marker)."""
    text = FORMATS.read_text(encoding="utf-8")
    body = text.split(f"## `{section}`", 1)[1].split("\n## ", 1)[0]
    body = body.split(table_after, 1)[1] if table_after else body
    table = re.search(r"\| column \|.*?\n\n", body, re.S).group(0)
    first_cells = re.findall(r"^\| ([^|]+) \|", table, re.M)
    return [name for cell in first_cells for name in re.findall(r"`([^`]+)`", cell)]


def _times(frame: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_datetime(frame[column].replace("", None), utc=True, format="ISO8601")


def test_paths_are_returned_in_load_order(october):
    assert list(october) == ["boundaries", "population", "police-uk-street", "cad",
                             "calls"]
    assert october["population"].name == "population.csv"
    assert sorted(p.name for p in october["cad"].iterdir()) == ["cad-2024-10.csv.gz"]


def test_same_seed_writes_byte_identical_files(october, tmp_path):
    again = _generate(tmp_path)
    for relative in (
        "police_uk/2024-10-west-midlands-street.csv",
        "cad/cad-2024-10.csv.gz",
        "calls/calls-2024-10.csv.gz",
        "population/population.csv",
        "boundaries/wm_lsoa11.geojson",
    ):
        first = october["boundaries"].parent / relative
        second = again["boundaries"].parent / relative
        assert first.read_bytes() == second.read_bytes(), relative


def test_headers_match_the_documented_formats(october):
    police_uk = (
        "Crime ID, Month, Reported by, Falls within, Longitude, Latitude, Location, "
        "LSOA code, LSOA name, Crime type, Last outcome category, Context"
    )
    assert police_uk in " ".join(FORMATS.read_text(encoding="utf-8").split())
    assert _header(
        october["police-uk-street"] / "2024-10-west-midlands-street.csv"
    ) == police_uk.split(", ")
    assert _header(october["cad"] / "cad-2024-10.csv.gz") == _documented_columns("cad")
    assert _header(october["calls"] / "calls-2024-10.csv.gz") == _documented_columns(
        "calls", "Call-level log"
    )
    assert _header(october["population"]) == [
        "lsoa21_code", "lsoa21_name", "lad_code", "lad_name", "usual_residents_total",
    ]


def test_synthetic_boundary_layers_have_the_real_columns(october):
    folder = october["boundaries"]
    lsoas = gpd.read_file(folder / "wm_lsoa11.geojson")
    wards = gpd.read_file(folder / "wm_wards.geojson")
    lads = gpd.read_file(folder / "wm_lad.geojson")
    force = gpd.read_file(folder / "wmp_force_area.geojson")
    assert list(lsoas.columns) == ["LSOA11CD", "LSOA11NM", "LAD_CD", "LAD_NM",
                                   "geometry"]
    assert list(wards.columns) == ["WD13CD", "WD13NM", "LAD_CD", "LAD_NM", "geometry"]
    assert list(lads.columns) == ["LAD_CD", "LAD_NM", "geometry"]
    assert list(force.columns) == ["name", "geometry"]
    assert force["name"].tolist() == ["West Midlands Police"]
    assert 1_600 <= len(lsoas) <= 1_760
    assert lsoas["LSOA11CD"].str.match(r"E019\d{5}$").all()
    assert lsoas["LSOA11CD"].is_unique
    assert lsoas.is_valid.all()
    assert set(lads["LAD_CD"]) == {f"E0800002{i}" for i in range(5, 10)} | {
        "E08000030", "E08000031"}
    per_district = lsoas["LAD_NM"].value_counts()
    assert per_district["Birmingham"] > 600 and per_district["Solihull"] < 150
    assert 8 <= len(lsoas) / len(wards) <= 12
    minx, miny, maxx, maxy = force.total_bounds
    assert -2.3 < minx < maxx < -1.35 and 52.3 < miny < maxy < 52.75


def test_rural_areas_are_large_and_sparse(october):
    lsoas = gpd.read_file(october["boundaries"] / "wm_lsoa11.geojson")
    population = pd.read_csv(october["population"])
    assert 2_700_000 < population["usual_residents_total"].sum() < 3_100_000
    area = lsoas.to_crs("EPSG:27700").area.to_numpy() / 1e6
    density = population["usual_residents_total"].to_numpy() / area
    assert (density < 1_000).sum() > 20
    assert np.median(density) > 3_000


def test_one_month_has_the_expected_volumes(crimes, cad, calls):
    asb = crimes["Crime type"] == "Anti-social behaviour"
    assert 23_000 < (~asb).sum() < 33_000
    assert 0.12 < asb.mean() < 0.18
    assert (crimes.loc[asb, "Crime ID"] == "").all()
    assert (crimes.loc[asb, "Last outcome category"] == "").all()
    assert crimes.loc[~asb, "Crime ID"].str.fullmatch(r"[0-9a-f]{64}").all()
    shares = crimes.loc[~asb, "Crime type"].value_counts(normalize=True)
    assert 0.38 < shares["Violence and sexual offences"] < 0.48
    unplaced = crimes["LSOA code"] == ""
    assert 0 < unplaced.sum() < 0.01 * len(crimes)
    assert (crimes.loc[unplaced, "Longitude"] == "").all()

    assert 52_000 < len(cad) < 70_000
    grades = cad["final_grade"].value_counts(normalize=True)
    assert grades.round(2).to_dict() == pytest.approx(
        {"1": 0.15, "2": 0.35, "3": 0.30, "4": 0.20}, abs=0.02
    )
    assert 0.05 < (cad["opening_grade"] != cad["final_grade"]).mean() < 0.15
    assert set(cad["channel"]) == {"999", "101", "other"}

    assert 100_000 < len(calls) < 160_000
    assert calls["call_id"].is_unique


def test_a_few_city_centre_lsoas_are_hot_spots(crimes):
    per_lsoa = crimes["LSOA code"].value_counts()
    assert per_lsoa.iloc[0] > 20 * per_lsoa.median()


def test_outcomes_mature_with_age(october):
    lsoas = gpd.read_file(october["boundaries"] / "wm_lsoa11.geojson")
    geo = demo.build_geography(lsoas, 7)

    def still_open(age: int) -> float:
        rng = np.random.default_rng(age)
        table = demo._crime_month(rng, geo, OCTOBER, age)
        outcome = table.column("Last outcome category").to_pandas()
        return (outcome == "Under investigation").mean()

    assert still_open(0) > 0.3 > 0.1 > still_open(12)


def test_cad_carries_the_faults_real_exports_have(cad):
    dispatched = _times(cad, "dispatched_at")
    arrived = _times(cad, "arrived_at")
    assert (arrived < dispatched).sum() >= 1
    missing_arrival = (cad["dispatched_at"] != "") & (cad["arrived_at"] == "") & (
        cad["attending_unit"] != ""
    )
    assert missing_arrival.sum() >= 1
    assert cad.duplicated().sum() >= 1
    assert cad["incident_id"].duplicated().sum() == cad.duplicated().sum()
    created = _times(cad, "incident_created_at").dt.tz_convert("Europe/London")
    closed = _times(cad, "closed_at").dt.tz_convert("Europe/London")
    assert (created.dt.date != closed.dt.date).sum() > 100


def test_only_the_planted_faults_break_the_lifecycle(cad):
    order = ["call_received_at", "call_answered_at", "incident_created_at",
             "graded_at", "dispatched_at"]
    for earlier, later in zip(order, order[1:], strict=False):
        assert not (_times(cad, later) < _times(cad, earlier)).any(), later
    assert not (_times(cad, "closed_at") < _times(cad, "incident_created_at")).any()
    assert (_times(cad, "arrived_at") < _times(cad, "dispatched_at")).sum() < 20


def test_times_are_iso_with_the_london_offset_across_the_clock_change(cad, calls):
    london = ZoneInfo("Europe/London")
    for frame, columns in ((cad, TIME_COLUMNS), (calls, ["bt_connected_at",
                           "queued_at", "answered_at", "abandoned_at"])):
        for column in columns:
            values = frame[column][frame[column] != ""]
            assert values.str.fullmatch(ISO_WITH_OFFSET).all(), column
            sample = values.iloc[:: max(1, len(values) // 2_000)]
            for text in sample:
                stamp = dt.datetime.fromisoformat(text)
                expected = stamp.astimezone(london).utcoffset()
                assert stamp.utcoffset() == expected, text
    created = cad["incident_created_at"]
    repeated_hour = created.str.startswith("2024-10-27T01:")
    assert set(created[repeated_hour].str[-6:]) == {"+01:00", "+00:00"}


@pytest.mark.parametrize(
    ("utc", "local"),
    [
        ("2025-03-30T00:59:59", "2025-03-30T00:59:59+00:00"),
        ("2025-03-30T01:00:00", "2025-03-30T02:00:00+01:00"),
        ("2024-10-27T00:30:00", "2024-10-27T01:30:00+01:00"),
        ("2024-10-27T01:30:00", "2024-10-27T01:30:00+00:00"),
        ("2024-02-29T23:59:59", "2024-02-29T23:59:59+00:00"),
    ],
)
def test_iso_local_converts_utc_to_london_time(utc, local):
    seconds = np.array([np.datetime64(utc, "s").astype(np.int64), demo.MISSING])
    assert demo.iso_local(seconds).to_pylist() == [local, None]


def test_attendance_is_skewed_and_slower_in_rural_areas(october, cad):
    lsoas = gpd.read_file(october["boundaries"] / "wm_lsoa11.geojson")
    population = pd.read_csv(october["population"]).set_index("lsoa21_code")
    area = pd.Series(lsoas.to_crs("EPSG:27700").area.to_numpy() / 1e6,
                     index=lsoas["LSOA11CD"])
    rural = cad["lsoa_code"].map(population["usual_residents_total"] / area) < 1_000
    start = _times(cad, "call_received_at").fillna(_times(cad, "incident_created_at"))
    minutes = (_times(cad, "arrived_at") - start).dt.total_seconds() / 60
    grade_1 = (cad["final_grade"] == "1") & (minutes > 0)
    urban_median = minutes[grade_1 & ~rural].median()
    rural_median = minutes[grade_1 & rural].median()
    assert 8 < urban_median < 11.5 and 11.5 < rural_median < 15
    assert minutes[grade_1].mean() > urban_median
    never_attended = (cad["dispatched_at"] == "").groupby(cad["final_grade"]).mean()
    assert never_attended["1"] < 0.1 and never_attended["4"] > 0.5


def test_calls_answer_999_fast_and_101_slower(calls):
    queued = _times(calls, "queued_at")
    wait = (_times(calls, "answered_at") - queued).dt.total_seconds()
    is_999 = calls["line"] == "999"
    assert 0.8 < (wait[is_999] <= 10).mean() < 0.97
    assert 20 < wait[~is_999].median() < 60
    assert (calls.loc[~is_999, "bt_connected_at"] == "").all()
    bt = (queued - _times(calls, "bt_connected_at"))[is_999].dt.total_seconds()
    assert bt.between(1, 30).mean() > 0.99
    abandoned = calls["abandoned_at"] != ""
    assert ((calls["answered_at"] != "") ^ abandoned).all()
    assert 0.01 < abandoned.mean() < 0.1


def test_a_day_file_follows_the_month_without_clashing(october, tmp_path):
    day_file = tmp_path / "cad-day.csv.gz"
    rows = demo.write_cad_day(day_file, dt.date(2024, 11, 1), seed=7)
    day = _read(day_file)
    assert len(day) == rows and 1_500 < rows < 2_700
    assert list(day.columns) == demo.CAD_COLUMNS
    month = _read(october["cad"] / "cad-2024-10.csv.gz")
    assert not set(day["incident_id"]) & set(month["incident_id"])
    started = day["call_received_at"].where(
        day["call_received_at"] != "", day["incident_created_at"]
    )
    assert started.str.startswith("2024-11-01T").all()


@pytest.mark.real_data
def test_real_boundaries_are_used_in_place(shared_data, tmp_path):
    boundaries = shared_data / "boundaries"
    paths = _generate(tmp_path, boundaries_dir=boundaries)
    assert paths["boundaries"] == boundaries
    real = gpd.read_file(boundaries / "wm_lsoa11.geojson")
    population = pd.read_csv(paths["population"])
    assert set(population["lsoa21_code"]) == set(real["LSOA11CD"])
    crimes = _read(paths["police-uk-street"] / "2024-10-west-midlands-street.csv")
    placed = crimes["LSOA code"][crimes["LSOA code"] != ""]
    assert set(placed) <= set(real["LSOA11CD"])
    assert not (tmp_path / "boundaries").exists()
