"""Tests for the population source: Census 2021 residents onto the LSOA geography."""

from __future__ import annotations

import csv

import geopandas as gpd

from etl import pipeline
from etl.sources.population import NOT_IN_BOUNDARIES
from etl.warehouse import Reader

WM_FILE = "wm_lsoa21_census2021_usual_residents.csv"


def _raw_rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _boundary_codes(shared_data):
    return set(
        gpd.read_file(shared_data / "boundaries" / "wm_lsoa11.geojson")["LSOA11CD"]
    )


def test_population_loads_and_quarantines_new_2021_codes(warehouse_url, shared_data):
    pipeline.run(warehouse_url, "boundaries", shared_data / "boundaries")
    path = shared_data / "population" / WM_FILE
    result = pipeline.run(warehouse_url, "population", path)
    assert result.status == "succeeded", result.message
    raw = _raw_rows(path)
    codes = _boundary_codes(shared_data)
    in_boundaries = [r for r in raw if r["lsoa21_code"] in codes]
    assert result.rows_read == len(raw)
    assert result.rows_loaded + result.rows_rejected == len(raw)
    assert result.rows_rejected == len(raw) - len(in_boundaries)
    reasons = (
        Reader(warehouse_url)
        .read_sql("SELECT DISTINCT reason FROM etl_quarantine")["reason"]
        .tolist()
    )
    assert reasons == [NOT_IN_BOUNDARIES]

    birmingham = "E08000025"
    expected = sum(
        int(r["usual_residents_total"])
        for r in in_boundaries
        if r["lad_code"] == birmingham
    )
    loaded = (
        Reader(warehouse_url)
        .read_sql(
            "SELECT sum(population) AS n, min(population_year) AS y FROM dim_geography "
            "WHERE lad_code = :lad",
            {"lad": birmingham},
        )
        .iloc[0]
    )
    assert loaded["n"] == expected and loaded["y"] == 2021


def test_urban_rural_follows_density(warehouse_url, shared_data):
    pipeline.run(warehouse_url, "boundaries", shared_data / "boundaries")
    pipeline.run(warehouse_url, "population", shared_data / "population" / WM_FILE)
    frame = Reader(warehouse_url).read_sql(
        "SELECT g.population, a.area_km2, g.urban_rural, g.urban_rural_source "
        "FROM dim_geography g JOIN dim_area a ON a.area_code = g.lsoa_code "
        "WHERE g.population IS NOT NULL"
    )
    density = frame["population"] / frame["area_km2"]
    expected = density.ge(1000).map({True: "urban", False: "rural"})
    assert (frame["urban_rural"] == expected).all()
    assert (frame["urban_rural_source"] == "density").all()
    assert set(frame["urban_rural"]) == {"urban", "rural"}


def test_population_survives_a_boundary_reload(warehouse_url, shared_data):
    pipeline.run(warehouse_url, "boundaries", shared_data / "boundaries")
    pipeline.run(warehouse_url, "population", shared_data / "population" / WM_FILE)
    sql = "SELECT sum(population) AS n, count(urban_rural) AS u FROM dim_geography"
    before = Reader(warehouse_url).read_sql(sql).iloc[0].tolist()
    again = pipeline.run(warehouse_url, "boundaries", shared_data / "boundaries")
    assert again.status == "succeeded", again.message
    assert Reader(warehouse_url).read_sql(sql).iloc[0].tolist() == before
    rerun = pipeline.run(
        warehouse_url, "population", shared_data / "population" / WM_FILE
    )
    assert rerun.rows_loaded == 0 and rerun.rows_duplicate > 0


def test_non_numeric_population_is_quarantined(warehouse_url, shared_data, tmp_path):
    pipeline.run(warehouse_url, "boundaries", shared_data / "boundaries")
    codes = sorted(_boundary_codes(shared_data))[:2]
    path = tmp_path / "pop.csv"
    path.write_text(f"lsoa_code,population\n{codes[0]},1500\n{codes[1]},lots\n")
    result = pipeline.run(warehouse_url, "population", path)
    assert (result.rows_read, result.rows_loaded, result.rows_rejected) == (2, 1, 1)
    row = (
        Reader(warehouse_url)
        .read_sql("SELECT line, reason FROM etl_quarantine")
        .iloc[0]
    )
    assert row["line"] == 3 and "not a whole number" in row["reason"]


def test_file_without_a_total_column_fails(warehouse_url, tmp_path):
    path = tmp_path / "pop.csv"
    path.write_text("lsoa_code,people\nE01000001,1500\n")
    result = pipeline.run(warehouse_url, "population", path)
    assert result.status == "failed"
    assert str(path) in result.message and "usual_residents_total" in result.message
