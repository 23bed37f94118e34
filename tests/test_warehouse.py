"""The warehouse: schema on both engines, atomic writes, DuckDB snapshots."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import inspect, text

from etl import schema, warehouse

ROOT = Path(__file__).resolve().parent.parent


def quarantine_rows(n: int, run_id: int = 1) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run_id": [run_id] * n,
            "source": ["test"] * n,
            "file": ["f.csv"] * n,
            "line": list(range(2, n + 2)),
            "raw": [f"row {i}" for i in range(n)],
            "reason": ["because"] * n,
        }
    )


def count(url: str, table: str) -> int:
    frame = warehouse.Reader(url).read_sql(f"SELECT count(*) AS n FROM {table}")
    return int(frame["n"][0])


def test_schema_is_created_with_every_table(warehouse_url):
    warehouse.ensure_schema(warehouse_url)
    with warehouse.Reader(warehouse_url).connect() as conn:
        tables = set(inspect(conn).get_table_names())
    assert set(schema.metadata.tables) <= tables


def test_ensure_schema_twice_keeps_data(warehouse_url):
    warehouse.ensure_schema(warehouse_url)
    with warehouse.write(warehouse_url) as conn:
        warehouse.insert_frame(conn, "etl_quarantine", quarantine_rows(3))
    warehouse.ensure_schema(warehouse_url)
    assert count(warehouse_url, "etl_quarantine") == 3


def test_failed_write_leaves_the_warehouse_as_it_was(warehouse_url):
    warehouse.ensure_schema(warehouse_url)
    with warehouse.write(warehouse_url) as conn:
        warehouse.insert_frame(conn, "etl_quarantine", quarantine_rows(2))
    with pytest.raises(RuntimeError, match="injected"):
        with warehouse.write(warehouse_url) as conn:
            warehouse.insert_frame(conn, "etl_quarantine", quarantine_rows(5, 2))
            raise RuntimeError("injected half-way")
    assert count(warehouse_url, "etl_quarantine") == 2


def test_failed_duckdb_write_leaves_no_partial_files(duckdb_url):
    warehouse.ensure_schema(duckdb_url)
    path = warehouse.duckdb_path(duckdb_url)
    before = sorted(os.listdir(path.with_name(path.name + ".d")))
    published = path.resolve()
    with pytest.raises(RuntimeError):
        with warehouse.write(duckdb_url) as conn:
            warehouse.insert_frame(conn, "etl_quarantine", quarantine_rows(5))
            raise RuntimeError("injected")
    assert sorted(os.listdir(path.with_name(path.name + ".d"))) == before
    assert path.resolve() == published


def test_reader_switches_to_the_new_snapshot_and_open_reads_stay_consistent(
    duckdb_url,
):
    warehouse.ensure_schema(duckdb_url)
    reader = warehouse.Reader(duckdb_url)
    with reader.connect() as held:
        with warehouse.write(duckdb_url) as conn:
            warehouse.insert_frame(conn, "etl_quarantine", quarantine_rows(4))
        # A connection opened before the publish still sees the old snapshot.
        old = held.execute(text("SELECT count(*) FROM etl_quarantine")).scalar()
    assert old == 0
    assert count(duckdb_url, "etl_quarantine") == 4


def test_another_process_can_write_while_this_one_reads(duckdb_url):
    """DuckDB refuses a writer while a reader holds the file; snapshots avoid it."""
    warehouse.ensure_schema(duckdb_url)
    reader = warehouse.Reader(duckdb_url)
    with reader.connect() as held:
        held.execute(text("SELECT count(*) FROM etl_run")).scalar()
        script = (
            "import pandas as pd, sys\n"
            "from etl import warehouse\n"
            "with warehouse.write(sys.argv[1]) as conn:\n"
            "    warehouse.insert_frame(conn, 'etl_quarantine', pd.DataFrame("
            "{'run_id': [1], 'source': ['x'], 'file': ['f'], 'line': [2], "
            "'raw': ['r'], 'reason': ['y']}))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script, duckdb_url],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, done.stderr
    assert count(duckdb_url, "etl_quarantine") == 1


def test_old_snapshots_are_pruned(duckdb_url):
    warehouse.ensure_schema(duckdb_url)
    for i in range(5):
        with warehouse.write(duckdb_url) as conn:
            warehouse.insert_frame(conn, "etl_quarantine", quarantine_rows(1, i))
    path = warehouse.duckdb_path(duckdb_url)
    kept = sorted(p.name for p in path.with_name(path.name + ".d").glob("v*.duckdb"))
    assert len(kept) == warehouse.SNAPSHOTS_KEPT
    assert path.resolve().name == "v6.duckdb"
    assert count(duckdb_url, "etl_quarantine") == 5


def test_run_ids_come_from_a_sequence(warehouse_url):
    warehouse.ensure_schema(warehouse_url)
    with warehouse.write(warehouse_url) as conn:
        first = warehouse.next_run_id(conn)
        second = warehouse.next_run_id(conn)
    assert second == first + 1


def test_upsert_of_more_than_one_duckdb_row_group_keeps_every_row(warehouse_url):
    """DuckDB 2.0 lost rows staged by CREATE ... AS SELECT past 122,880 rows."""
    from etl.pipeline import upsert

    warehouse.ensure_schema(warehouse_url)
    rows = quarantine_rows(130_000).assign(run_id=range(130_000))
    with warehouse.write(warehouse_url) as conn:
        assert upsert(conn, "etl_quarantine", rows, ["run_id"], ["reason"]) == (
            130_000, 0, 0,
        )
    changed = rows.assign(reason=["because"] * 65_000 + ["changed"] * 65_000)
    with warehouse.write(warehouse_url) as conn:
        assert upsert(conn, "etl_quarantine", changed, ["run_id"], ["reason"]) == (
            0, 65_000, 65_000,
        )
    assert count(warehouse_url, "etl_quarantine") == 130_000
