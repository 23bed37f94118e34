"""The Data status queries against a real DuckDB warehouse built from the schema."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from etl import warehouse
from etl.schema import etl_quarantine, etl_run
from queries import status

NOW = dt.datetime(2026, 3, 29, 12, 0, 0)


def run_row(run_id, source, finished_at, status_="succeeded", **counts):
    row = {
        "run_id": run_id,
        "source": source,
        "started_at": finished_at - dt.timedelta(minutes=1),
        "finished_at": finished_at,
        "status": status_,
        "rows_read": 0,
        "rows_loaded": 0,
        "rows_rejected": 0,
        "rows_duplicate": 0,
        "rows_set_aside": 0,
        "files": 1,
        "message": counts.pop("message", ""),
    }
    row.update(counts)
    return row


def build(url, runs, rejects=()):
    warehouse.ensure_schema(url)
    with warehouse.write(url) as conn:
        if runs:
            conn.execute(etl_run.insert(), list(runs))
        if rejects:
            conn.execute(etl_quarantine.insert(), list(rejects))
    return warehouse.Reader(url)


@pytest.mark.parametrize(
    ("age", "stale"),
    [
        (dt.timedelta(minutes=20), False),
        (dt.timedelta(minutes=20, seconds=1), True),
        (dt.timedelta(minutes=19, seconds=59), False),
    ],
    ids=["exactly-twice-the-interval", "a-second-over", "a-second-under"],
)
def test_source_is_stale_only_when_older_than_twice_its_interval(
    duckdb_url, age, stale
):
    reader = build(duckdb_url, [run_row(1, "cad", NOW - age)])
    with reader.connect() as conn:
        got = status.source_status(conn, {"cad": 10}, NOW)
    assert got["stale"].tolist() == [stale]


def test_source_status_reports_last_success_and_last_run(duckdb_url):
    t1, t2, t3 = (NOW - dt.timedelta(hours=h) for h in (3, 2, 1))
    reader = build(
        duckdb_url,
        [
            run_row(1, "calls", t1, rows_read=10, rows_loaded=10),
            run_row(
                2,
                "calls",
                t2,
                rows_read=12,
                rows_loaded=9,
                rows_rejected=2,
                rows_duplicate=1,
            ),
            run_row(3, "calls", t3, "failed", message="calls.csv: the file is empty"),
            run_row(4, "cad", t3, "failed", message="cad.csv: missing column(s) Grade"),
        ],
    )
    with reader.connect() as conn:
        got = status.source_status(
            conn, {"calls": 15, "cad": 5, "boundaries": 10080}, NOW
        )
    expected = pd.DataFrame(
        {
            "source": pd.array(["boundaries", "cad", "calls"], dtype="string"),
            "interval_minutes": pd.array([10080, 5, 15], dtype="Int64"),
            "last_success_run_id": pd.array([None, None, 2], dtype="Int64"),
            "last_success_at": pd.array([None, None, t2], dtype="datetime64[us]"),
            "rows_read": pd.array([None, None, 12], dtype="Int64"),
            "rows_loaded": pd.array([None, None, 9], dtype="Int64"),
            "rows_rejected": pd.array([None, None, 2], dtype="Int64"),
            "rows_duplicate": pd.array([None, None, 1], dtype="Int64"),
            "rows_set_aside": pd.array([None, None, 0], dtype="Int64"),
            "last_run_id": pd.array([None, 4, 3], dtype="Int64"),
            "last_status": pd.array([None, "failed", "failed"], dtype="string"),
            "last_message": pd.array(
                [
                    None,
                    "cad.csv: missing column(s) Grade",
                    "calls.csv: the file is empty",
                ],
                dtype="string",
            ),
            "last_finished_at": pd.array([None, t3, t3], dtype="datetime64[us]"),
            # Never loaded is stale; calls loaded 2 h ago against a 15 min interval.
            "stale": [True, True, True],
        }
    )
    pd.testing.assert_frame_equal(got, expected)


def test_source_with_only_failed_runs_has_no_success_and_is_stale(duckdb_url):
    reader = build(
        duckdb_url,
        [
            run_row(1, "cad", NOW, "failed", message="no such file"),
            run_row(2, "cad", NOW, "failed", message="still no file"),
        ],
    )
    with reader.connect() as conn:
        got = status.source_status(conn, {"cad": 5}, NOW)
    row = got.iloc[0]
    assert pd.isna(row["last_success_at"]) and pd.isna(row["rows_loaded"])
    assert (row["last_status"], row["last_message"]) == ("failed", "still no file")
    assert bool(row["stale"]) is True


def test_source_status_with_no_runs_lists_configured_sources(duckdb_url):
    reader = build(duckdb_url, [])
    with reader.connect() as conn:
        got = status.source_status(conn, {"cad": 5}, NOW)
        latest = status.latest_run(conn)
    assert got["source"].tolist() == ["cad"] and got["stale"].tolist() == [True]
    assert latest.empty


def test_latest_run_and_recent_runs_ignore_order_of_insertion(duckdb_url):
    reader = build(
        duckdb_url,
        [
            run_row(2, "cad", NOW),
            run_row(1, "calls", NOW - dt.timedelta(hours=1)),
            run_row(3, "calls", NOW, "failed"),
        ],
    )
    with reader.connect() as conn:
        latest = status.latest_run(conn)
        runs = status.recent_runs(conn, limit=2)
    assert latest[["run_id", "source"]].values.tolist() == [[2, "cad"]]
    assert runs["run_id"].tolist() == [3, 2]


def test_latest_run_is_the_last_to_finish_not_the_highest_id(duckdb_url):
    # Two PostgreSQL loads may take ids in one order and finish in the other.
    reader = build(
        duckdb_url,
        [run_row(7, "cad", NOW), run_row(8, "boundaries", NOW - dt.timedelta(hours=2))],
    )
    with reader.connect() as conn:
        latest = status.latest_run(conn)
    assert latest[["run_id", "source"]].values.tolist() == [[7, "cad"]]


def reject(run_id, source, line, raw, reason):
    return {
        "run_id": run_id,
        "source": source,
        "file": f"{source}.csv",
        "line": line,
        "raw": raw,
        "reason": reason,
    }


@pytest.fixture
def quarantined(duckdb_url):
    rejects = [reject(1, "cad", n, f"INC{n},,", "missing grade") for n in range(2, 32)]
    rejects += [
        reject(2, "calls", 5, "C1,999,2026-13-01", "bad date: 2026-13-01"),
        reject(2, "calls", 9, "C2,101,100%_sure", "Bad Line Value"),
    ]
    return build(
        duckdb_url,
        [run_row(1, "cad", NOW), run_row(2, "calls", NOW)],
        rejects,
    )


@pytest.mark.parametrize(
    ("filters", "count", "first_lines"),
    [
        ({}, 32, [5, 9, 2]),
        ({"source": "cad"}, 30, [2, 3, 4]),
        ({"run_id": 2}, 2, [5, 9]),
        ({"text": "BAD"}, 2, [5, 9]),  # case-insensitive, on the reason
        ({"text": "13-01"}, 1, [5]),  # on the raw line
        ({"text": "0%_s"}, 1, [9]),  # % and _ are literal, not wildcards
        ({"text": "0%s"}, 0, []),
        ({"source": "cad", "text": "bad"}, 0, []),
    ],
)
def test_quarantine_filters_in_the_database(quarantined, filters, count, first_lines):
    with quarantined.connect() as conn:
        page = status.quarantine(conn, limit=3, **filters)
        total = status.quarantine_count(conn, **filters)
    assert total == count
    assert page["line"].tolist() == first_lines
    assert list(page.columns) == status.QUARANTINE_COLUMNS


def test_quarantine_pages_do_not_overlap_and_cover_every_row(quarantined):
    with quarantined.connect() as conn:
        pages = [
            status.quarantine(conn, source="cad", limit=7, offset=offset)
            for offset in range(0, 35, 7)
        ]
    lines = [line for page in pages for line in page["line"].tolist()]
    assert [len(p) for p in pages] == [7, 7, 7, 7, 2]
    assert lines == list(range(2, 32))
