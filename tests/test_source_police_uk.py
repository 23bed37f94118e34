"""Tests for the police.uk street source: real Leicestershire and 2011 WM files."""

from __future__ import annotations

import csv
import gzip

import pandas as pd
import pytest

from etl import pipeline
from etl.warehouse import Reader

HEADER = (
    "Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,"
    "LSOA code,LSOA name,Crime type,Last outcome category,Context"
)


def _read_sql(url, sql, **params):
    return Reader(url).read_sql(sql, params)


def _scalar(url, sql, **params):
    return _read_sql(url, sql, **params).iloc[0, 0]


def _months(shared_data, warehouse_url):
    files = sorted((shared_data / "crime/police_uk/leicestershire").glob("*.csv.gz"))
    # PostgreSQL takes a year of months to keep the suite quick; DuckDB takes all 35.
    return files if warehouse_url.startswith("duckdb") else files[:12]


def _raw(files) -> pd.DataFrame:
    frames = []
    for path in files:
        with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
            frames.append(pd.DataFrame(list(csv.DictReader(handle))))
    return pd.concat(frames, ignore_index=True)


def _folder_of(files, tmp_path):
    folder = tmp_path / "months"
    folder.mkdir()
    for path in files:
        (folder / path.name).symlink_to(path)
    return folder


def test_leicestershire_months_load_and_balance(warehouse_url, shared_data, tmp_path):
    files = _months(shared_data, warehouse_url)
    raw = _raw(files)
    pipeline.run(warehouse_url, "boundaries", shared_data / "boundaries")
    result = pipeline.run(
        warehouse_url, "police-uk-street", _folder_of(files, tmp_path)
    )
    assert result.status == "succeeded", result.message
    assert result.rows_read == len(raw)
    assert (
        result.rows_loaded + result.rows_duplicate + result.rows_rejected
        == result.rows_read
    )
    with_id = raw[raw["Crime ID"] != ""]
    # A crime repeated in a later month is one row: the latest sighting's outcome
    # and place, counted in the month it was first recorded.
    with_id = with_id.assign(
        Month=with_id.groupby("Crime ID")["Month"].transform("min")
    )
    latest = pd.concat(
        [with_id.drop_duplicates("Crime ID", keep="last"), raw[raw["Crime ID"] == ""]]
    )
    assert _scalar(warehouse_url, "SELECT count(*) FROM fct_crime") == len(latest)
    asb = (raw["Crime ID"] == "").sum()
    assert _scalar(warehouse_url, "SELECT count(*) FROM fct_crime WHERE is_asb") == asb

    top = (
        latest[latest["LSOA code"] != ""]
        .groupby(["LSOA code", "Crime type", "Month"])
        .size()
        .idxmax()
    )
    expected = int(latest.groupby(["LSOA code", "Crime type", "Month"]).size()[top])
    counted = _scalar(
        warehouse_url,
        "SELECT count(*) FROM fct_crime WHERE lsoa_code = :lsoa AND crime_type = :t "
        "AND month = :m",
        lsoa=top[0],
        t=top[1],
        m=pd.Timestamp(top[2] + "-01").date(),
    )
    assert counted == expected

    no_place = ((raw["LSOA code"] == "") & (raw["Longitude"] == "")).sum()
    unplaced = _scalar(
        warehouse_url, "SELECT count(*) FROM fct_crime WHERE placement = 'unplaced'"
    )
    assert unplaced >= no_place
    assert f"{unplaced:,} crimes could not be placed in the geography" in result.message


def test_second_run_is_all_duplicates(warehouse_url, shared_data, tmp_path):
    files = _months(shared_data, warehouse_url)[:3]
    folder = _folder_of(files, tmp_path)
    first = pipeline.run(warehouse_url, "police-uk-street", folder)
    count = _scalar(warehouse_url, "SELECT count(*) FROM fct_crime")
    second = pipeline.run(warehouse_url, "police-uk-street", folder)
    assert second.status == "succeeded", second.message
    assert _scalar(warehouse_url, "SELECT count(*) FROM fct_crime") == count
    assert second.rows_loaded == 0
    assert second.rows_duplicate == second.rows_read == first.rows_read


def _write(path, rows):
    path.write_text(HEADER + "\n" + "".join(r + "\n" for r in rows), encoding="utf-8")


CRIME = (
    "abc123,{month},Test Police,Test Police,-1.1,52.6,On or near X,E01099999,"
    "Test 001A,Burglary,{outcome},"
)
ASB_ROW = (
    ",{month},Test Police,Test Police,-1.1,52.6,On or near X,,,Anti-social behaviour,,"
)


def test_later_file_updates_a_crimes_outcome(warehouse_url, tmp_path):
    _write(
        tmp_path / "2024-01-test-street.csv",
        [
            CRIME.format(month="2024-01", outcome="Under investigation"),
            ASB_ROW.format(month="2024-01"),
            ASB_ROW.format(month="2024-01"),
        ],
    )
    _write(
        tmp_path / "2024-02-test-street.csv",
        [CRIME.format(month="2024-02", outcome="Local resolution")],
    )
    first = pipeline.run(
        warehouse_url, "police-uk-street", tmp_path / "2024-01-test-street.csv"
    )
    assert (first.rows_loaded, first.rows_duplicate) == (3, 0)
    second = pipeline.run(
        warehouse_url, "police-uk-street", tmp_path / "2024-02-test-street.csv"
    )
    assert (second.rows_loaded, second.rows_duplicate) == (1, 0)
    crimes = _read_sql(warehouse_url, "SELECT * FROM fct_crime ORDER BY crime_key")
    assert len(crimes) == 3  # two identical ASB rows stay two crimes
    crime = crimes[crimes["crime_id"] == "abc123"].iloc[0]
    assert crime["last_outcome_category"] == "Local resolution"
    assert str(crime["month"])[:10] == "2024-01-01"  # still its recorded month
    assert crime["first_run_id"] == first.run_id
    assert crime["last_run_id"] == second.run_id
    both = pipeline.run(warehouse_url, "police-uk-street", tmp_path)
    assert (both.rows_loaded, both.rows_duplicate) == (0, 4)


def test_legacy_2011_file_is_placed_by_its_grid_point(warehouse_url, shared_data):
    path = shared_data / "crime/legacy_2011/2011-02-west-midlands-street.csv"
    with open(path, newline="", encoding="utf-8") as handle:
        raw = pd.DataFrame(list(csv.DictReader(handle)))
    pipeline.run(warehouse_url, "boundaries", shared_data / "boundaries")
    result = pipeline.run(warehouse_url, "police-uk-street", path)
    assert result.status == "succeeded", result.message
    assert result.rows_read == result.rows_loaded == len(raw)
    placements = _read_sql(
        warehouse_url,
        "SELECT placement, count(*) AS n, count(lsoa_code) AS with_lsoa FROM fct_crime "
        "GROUP BY placement",
    ).set_index("placement")
    assert placements["n"].sum() == len(raw)
    assert (
        placements.loc["coordinates", "with_lsoa"] == placements.loc["coordinates", "n"]
    )
    assert placements.loc["coordinates", "n"] > 0.99 * len(raw)
    forces = _read_sql(warehouse_url, "SELECT DISTINCT force_name FROM fct_crime")
    assert forces["force_name"].tolist() == sorted(set(raw["Falls within"]))
    types = (
        _read_sql(
            warehouse_url,
            "SELECT crime_type, count(*) AS n FROM fct_crime GROUP BY crime_type",
        )
        .set_index("crime_type")["n"]
        .to_dict()
    )
    assert types == raw["Crime type"].value_counts().to_dict()
    again = pipeline.run(warehouse_url, "police-uk-street", path)
    assert again.rows_duplicate == len(raw)


def test_missing_column_fails_and_leaves_crimes_as_they_were(warehouse_url, tmp_path):
    good = tmp_path / "2024-01-test-street.csv"
    _write(good, [CRIME.format(month="2024-01", outcome="Under investigation")])
    pipeline.run(warehouse_url, "police-uk-street", good)
    bad = tmp_path / "2024-02-test-street.csv"
    bad.write_text(
        HEADER.replace(",Crime type", "") + "\n"
        "def456,2024-02,Test Police,Test Police,-1.1,52.6,X,,,,\n"
    )
    result = pipeline.run(warehouse_url, "police-uk-street", tmp_path)
    assert result.status == "failed"
    assert str(bad) in result.message and "Crime type" in result.message
    keys = _read_sql(warehouse_url, "SELECT crime_id FROM fct_crime")["crime_id"]
    assert keys.tolist() == ["abc123"]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (CRIME.format(month="Jan 2024", outcome=""), "Month Jan 2024 is not YYYY-MM"),
        (
            CRIME.format(month="2024-01", outcome="").replace("Burglary", ""),
            "blank Crime type",
        ),
        (
            CRIME.format(month="2024-01", outcome="").replace("52.6", "north"),
            "Longitude/Latitude do not parse as numbers",
        ),
        (
            CRIME.format(month="2024-01", outcome="").replace("52.6", "152.6"),
            "Longitude/Latitude out of range",
        ),
    ],
)
def test_bad_row_is_quarantined_with_line_and_reason(
    warehouse_url, tmp_path, row, reason
):
    path = tmp_path / "2024-01-test-street.csv"
    _write(path, [ASB_ROW.format(month="2024-01"), row])
    result = pipeline.run(warehouse_url, "police-uk-street", path)
    assert result.status == "succeeded", result.message
    assert (result.rows_read, result.rows_loaded, result.rows_rejected) == (2, 1, 1)
    rejected = _read_sql(warehouse_url, "SELECT line, raw, reason FROM etl_quarantine")
    assert rejected.iloc[0].tolist() == [3, row, reason]


def test_unknown_crime_type_is_loaded_as_unclassified(warehouse_url, tmp_path):
    path = tmp_path / "2024-01-test-street.csv"
    _write(
        path, [CRIME.format(month="2024-01", outcome="").replace("Burglary", "Fraud")]
    )
    result = pipeline.run(warehouse_url, "police-uk-street", path)
    assert result.rows_loaded == 1
    assert "Fraud" in result.message
    group = _scalar(
        warehouse_url,
        "SELECT category_group FROM dim_crime_type WHERE crime_type = 'Fraud'",
    )
    assert group == "Unclassified"
