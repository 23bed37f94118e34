"""Running a source: atomic on failure, idempotent, accounted, on both engines."""

from __future__ import annotations

import pandas as pd
import pytest

from etl import pipeline, warehouse

LEICS = "crime/police_uk/leicestershire"
TABLES = ("fct_crime", "stg_police_uk__crimes", "etl_quarantine", "dim_crime_type")


def snapshot(url: str) -> dict[str, pd.DataFrame]:
    reader = warehouse.Reader(url)
    return {
        table: reader.read_sql(f"SELECT * FROM {table}")
        .astype(str)
        .sort_values(by=list(reader.read_sql(f"SELECT * FROM {table} LIMIT 0")))
        .reset_index(drop=True)
        for table in TABLES
    }


def month(shared_data, name: str):
    return shared_data / LEICS / f"{name}-leicestershire-street.csv.gz"


@pytest.mark.real_data
def test_failure_half_way_through_a_load_leaves_the_warehouse_as_it_was(
    warehouse_url, shared_data, monkeypatch
):
    first = pipeline.run(
        warehouse_url, "police-uk-street", month(shared_data, "2020-01")
    )
    assert first.status == "succeeded"
    before = snapshot(warehouse_url)

    real_insert = warehouse.insert_frame
    calls = {"n": 0}

    def fail_on_second_insert(conn, table, frame):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("injected failure half-way through the load")
        return real_insert(conn, table, frame)

    monkeypatch.setattr(warehouse, "insert_frame", fail_on_second_insert)
    failed = pipeline.run(
        warehouse_url, "police-uk-street", month(shared_data, "2020-02")
    )
    monkeypatch.undo()

    assert calls["n"] == 2  # the first insert of the failed run did happen
    assert failed.status == "failed"
    assert "injected failure" in failed.message
    after = snapshot(warehouse_url)
    for table in TABLES:
        pd.testing.assert_frame_equal(after[table], before[table], obj=table)
    runs = warehouse.Reader(warehouse_url).read_sql(
        "SELECT run_id, status, message FROM etl_run ORDER BY run_id"
    )
    assert runs["status"].tolist() == ["succeeded", "failed"]
    assert runs["run_id"].is_unique
    again = pipeline.run(
        warehouse_url, "police-uk-street", month(shared_data, "2020-02")
    )
    assert again.status == "succeeded" and again.run_id not in set(runs["run_id"])


@pytest.mark.real_data
def test_loading_the_same_files_twice_gives_the_same_rows(warehouse_url, shared_data):
    path = month(shared_data, "2021-07")
    first = pipeline.run(warehouse_url, "police-uk-street", path)
    rows_after_first = snapshot(warehouse_url)["fct_crime"]
    second = pipeline.run(warehouse_url, "police-uk-street", path)
    assert (second.rows_read, second.rows_loaded, second.rows_duplicate) == (
        first.rows_read, 0, first.rows_read,
    )
    after = snapshot(warehouse_url)["fct_crime"].drop(columns=["last_run_id"])
    pd.testing.assert_frame_equal(after, rows_after_first.drop(columns=["last_run_id"]))


def test_an_unknown_path_fails_the_run_and_says_so(warehouse_url, tmp_path):
    result = pipeline.run(warehouse_url, "cad", tmp_path / "absent")
    assert result.status == "failed"
    assert "no such file or folder" in result.message
    assert result.run_id is not None
