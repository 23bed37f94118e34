"""Tests for the boundaries source: real layers into dim_area and dim_geography."""

from __future__ import annotations

import json

import geopandas as gpd
import pandas as pd
import pytest

from etl import pipeline
from etl.warehouse import Reader


def _count(url: str, sql: str, **params):
    return Reader(url).read_sql(sql, params).iloc[0, 0]


def _layer_counts(folder):
    counts = {"lsoa": 0, "ward": 0, "lad": 0, "force": 0, "other": 0}
    invalid = 0
    for path in sorted(folder.glob("*.geojson")):
        frame = gpd.read_file(path)
        if "LSOA11CD" in frame.columns:
            level = "lsoa"
        elif "WD13CD" in frame.columns:
            level = "ward"
        elif "MSOA11CD" in frame.columns:
            level = "other"
        elif "LAD_CD" in frame.columns:
            level = "lad"
        else:
            level = "force"
        counts[level] += len(frame)
        if level != "other":
            invalid += int((~frame.is_valid).sum())
    return counts, invalid


@pytest.fixture(scope="module")
def expected(shared_data):
    return _layer_counts(shared_data / "boundaries")


def test_real_boundaries_load_one_area_per_feature(
    warehouse_url, shared_data, expected
):
    counts, invalid = expected
    result = pipeline.run(warehouse_url, "boundaries", shared_data / "boundaries")
    assert result.status == "succeeded", result.message
    assert result.rows_read == sum(counts.values())
    assert result.rows_set_aside == counts["other"]
    assert (
        result.rows_loaded + result.rows_rejected == result.rows_read - counts["other"]
    )
    per_level = (
        Reader(warehouse_url)
        .read_sql("SELECT level, count(*) AS n FROM dim_area GROUP BY level")
        .set_index("level")["n"]
    )
    for level in ("lsoa", "ward", "lad", "force"):
        assert per_level[level] == counts[level], level
    assert counts["lsoa"] == 1680 + 611  # the documented totals, cross-checked
    repaired = _count(
        warehouse_url, "SELECT count(*) FROM dim_area WHERE geometry_repaired"
    )
    assert repaired == invalid
    assert f"{invalid:,} invalid polygon(s) repaired" in result.message


def test_each_lsoa_has_ward_lad_and_force(warehouse_url, shared_data):
    pipeline.run(warehouse_url, "boundaries", shared_data / "boundaries")
    geo = Reader(warehouse_url).read_sql("SELECT * FROM dim_geography")
    raw = pd.concat(
        [
            gpd.read_file(shared_data / "boundaries" / f)
            for f in ("wm_lsoa11.geojson", "leics_lsoa11.geojson")
        ]
    )
    assert len(geo) == len(raw)
    assert geo["ward_code"].notna().all() and geo["lad_code"].notna().all()
    merged = geo.merge(
        raw[["LSOA11CD", "LAD_CD"]], left_on="lsoa_code", right_on="LSOA11CD"
    )
    assert (merged["lad_code"] == merged["LAD_CD"]).all()
    forces = geo.groupby("force_name")["lsoa_code"].count().to_dict()
    assert forces == {
        "West Midlands Police": (raw["LAD_CD"].str.startswith("E08")).sum(),
        "Leicestershire Police": (~raw["LAD_CD"].str.startswith("E08")).sum(),
    }
    wards = gpd.read_file(shared_data / "boundaries" / "wm_wards.geojson")
    ward_lad = dict(zip(wards["WD13CD"], wards["LAD_CD"], strict=True))
    wm = geo[geo["force_name"] == "West Midlands Police"]
    # A best-fit ward lies in the LSOA's own district.
    assert (wm["ward_code"].map(ward_lad) == wm["lad_code"]).mean() > 0.99
    assert geo["centroid_lat"].between(52.0, 53.0).all()


def test_rerun_is_idempotent(warehouse_url, shared_data):
    first = pipeline.run(warehouse_url, "boundaries", shared_data / "boundaries")
    before = _count(warehouse_url, "SELECT count(*) FROM dim_area")
    second = pipeline.run(warehouse_url, "boundaries", shared_data / "boundaries")
    assert second.status == "succeeded", second.message
    assert _count(warehouse_url, "SELECT count(*) FROM dim_area") == before
    assert second.rows_loaded == 0
    assert second.rows_duplicate == first.rows_loaded


def _write_layers(folder, lsoa_features):
    def collection(features):
        return {"type": "FeatureCollection", "features": features}

    def square(x, y, size=0.01):
        return {
            "type": "Polygon",
            "coordinates": [
                [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]
            ],
        }

    (folder / "x_force_area.geojson").write_text(
        json.dumps(
            collection(
                [
                    {
                        "type": "Feature",
                        "properties": {"name": "Test Police force area"},
                        "geometry": square(-1.0, 52.0, 0.1),
                    }
                ]
            )
        )
    )
    (folder / "x_lad.geojson").write_text(
        json.dumps(
            collection(
                [
                    {
                        "type": "Feature",
                        "properties": {"LAD_CD": "E0X", "LAD_NM": "Testshire"},
                        "geometry": square(-1.0, 52.0, 0.05),
                    }
                ]
            )
        )
    )
    (folder / "x_lsoa.geojson").write_text(
        json.dumps(
            collection(
                [
                    {
                        "type": "Feature",
                        "properties": {
                            "LSOA11CD": code,
                            "LSOA11NM": code,
                            "LAD_CD": "E0X",
                            "LAD_NM": "Testshire",
                        },
                        "geometry": geometry,
                    }
                    for code, geometry in lsoa_features
                ]
            )
        )
    )


def test_feature_without_geometry_is_quarantined(warehouse_url, tmp_path):
    _write_layers(
        tmp_path,
        [
            (
                "E01A",
                {
                    "type": "Polygon",
                    "coordinates": [
                        [
                            [-1.0, 52.0],
                            [-0.99, 52.0],
                            [-0.99, 52.01],
                            [-1.0, 52.01],
                            [-1.0, 52.0],
                        ]
                    ],
                },
            ),
            ("E01B", None),
        ],
    )
    result = pipeline.run(warehouse_url, "boundaries", tmp_path)
    assert result.status == "succeeded", result.message
    assert (result.rows_read, result.rows_loaded, result.rows_rejected) == (4, 3, 1)
    reason = (
        Reader(warehouse_url)
        .read_sql("SELECT line, raw, reason FROM etl_quarantine")
        .iloc[0]
    )
    assert reason["reason"] == "feature has no geometry"
    assert "E01B" in reason["raw"] and reason["line"] == 2
    geo = Reader(warehouse_url).read_sql("SELECT * FROM dim_geography")
    assert geo["lsoa_code"].tolist() == ["E01A"]
    assert geo["force_name"].tolist() == ["Test Police"]


def test_folder_without_lsoa_layer_fails_and_changes_nothing(warehouse_url, tmp_path):
    _write_layers(tmp_path, [])
    (tmp_path / "x_lsoa.geojson").unlink()
    result = pipeline.run(warehouse_url, "boundaries", tmp_path)
    assert result.status == "failed"
    assert "no LSOA layer" in result.message
    assert _count(warehouse_url, "SELECT count(*) FROM dim_area") == 0
