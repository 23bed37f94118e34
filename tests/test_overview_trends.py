"""The overview tiles' trend series on tiny given warehouses, on DuckDB and PostgreSQL:
weekly call answering, weekly Grade 1 attendance, the open queue at each day's end."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest
import test_incident_queries as iq

from etl import warehouse
from queries import incidents, scope, trends
from queries.incidents import IncidentFilters

D = dt.date
reader, conn = iq.reader, iq.conn


# ---------------------------------------------------------------------------
# Calls


def _calls(rows: list[tuple]) -> pd.DataFrame:
    """fct_call rows from (call_id, line, local date, answer seconds or None)."""
    frame = pd.DataFrame(
        [
            {
                "source": "wm",
                "call_id": call_id,
                "line": line,
                "queued_at": dt.datetime.combine(day, dt.time(9)),
                "bt_connected_at": None,
                "answered_at": None
                if answer is None
                else dt.datetime.combine(day, dt.time(9))
                + dt.timedelta(seconds=answer),
                "abandoned_at": dt.datetime.combine(day, dt.time(9, 1))
                if answer is None
                else None,
                "bt_seconds": None,
                "answer_seconds": answer,
                "wait_seconds": 60.0 if answer is None else answer,
                "local_date": pd.Timestamp(day),
                "local_hour": 9,
                "last_run_id": 1,
            }
            for call_id, line, day, answer in rows
        ]
    )
    for column in ("queued_at", "bt_connected_at", "answered_at", "abandoned_at"):
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[us]")
    frame["local_date"] = frame["local_date"].astype("datetime64[us]")
    for column in ("bt_seconds", "answer_seconds", "wait_seconds"):
        frame[column] = frame[column].astype("float64")
    return frame


CALLS = [
    # Week of Monday 3 March 2025: 999 under 10 s, exactly 10 s, abandoned.
    ("a", "999", D(2025, 3, 3), 4.0),
    ("b", "999", D(2025, 3, 9), 10.0),
    ("c", "999", D(2025, 3, 5), None),
    # Week of 17 March: 999 twice under 10 s; 101 answered in 30 and 90 s.
    ("d", "999", D(2025, 3, 17), 2.0),
    ("e", "999", D(2025, 3, 23), 6.0),
    ("f", "101", D(2025, 3, 18), 30.0),
    ("g", "101", D(2025, 3, 18), 90.0),
    # Outside the period.
    ("h", "999", D(2025, 4, 1), 100.0),
]
# 101 interval reports: one in the week of 10 March (no answer times), one the
# evening of 31 March (local), the period's last day.
INTERVALS = pd.DataFrame(
    {
        "source": "wm",
        "interval_start": pd.to_datetime(["2025-03-11 10:00", "2025-03-31 23:00"]),
        "line": "101",
        "interval_minutes": 60,
        "answered_10": [3, 1],
        "answered_15": [1, 0],
        "answered_20": [0, 0],
        "answered_40": [0, 0],
        "answered_60": [0, 0],
        "answered_120": [0, 0],
        "answered_over_120": [1, 0],
        "abandoned": [2, 0],
        "offered": [7, 1],
        "last_run_id": 1,
    }
).astype({"interval_start": "datetime64[us]"})


@pytest.fixture
def calls_conn(warehouse_url, reader):
    warehouse.ensure_schema(warehouse_url)
    with warehouse.write(warehouse_url) as write:
        warehouse.insert_frame(write, "fct_call", _calls(CALLS))
        warehouse.insert_frame(write, "fct_call_interval", INTERVALS)
    with reader.connect() as connection:
        yield connection


def test_weekly_calls_count_each_week_of_the_period(calls_conn):
    got = trends.weekly_calls(calls_conn, D(2025, 3, 1), D(2025, 3, 31))
    weeks = [D(2025, 2, 24) + dt.timedelta(days=7 * n) for n in range(6)]
    assert got["line"].tolist() == ["999"] * 6 + ["101"] * 6
    assert got["week_start"].tolist() == weeks * 2
    line_999 = got[got["line"] == "999"].reset_index(drop=True)
    assert line_999["offered"].tolist() == [0, 3, 0, 2, 0, 0]
    assert line_999["answered"].tolist() == [0, 2, 0, 2, 0, 0]
    assert line_999["within_10"].tolist() == [0, 1, 0, 2, 0, 0]
    np.testing.assert_allclose(
        line_999["share_within_10"], [np.nan, 0.5, np.nan, 1.0, np.nan, np.nan]
    )
    line_101 = got[got["line"] == "101"].reset_index(drop=True)
    # Interval reports add to the counts, never to the mean answer time.
    assert line_101["offered"].tolist() == [0, 0, 7, 2, 0, 1]
    assert line_101["answered"].tolist() == [0, 0, 5, 2, 0, 1]
    np.testing.assert_allclose(
        line_101["mean_answer_s"], [np.nan, np.nan, np.nan, 60.0, np.nan, np.nan]
    )


def test_weekly_calls_add_up_to_the_call_answering_figures(calls_conn):
    start, end = D(2025, 3, 1), D(2025, 3, 31)
    weekly = trends.weekly_calls(calls_conn, start, end)
    whole = incidents.call_answering(calls_conn, start, end).set_index("line")
    for line, weeks in weekly.groupby("line"):
        assert weeks["offered"].sum() == whole.loc[line, "offered"], line
        assert weeks["answered"].sum() == whole.loc[line, "answered"], line
        assert weeks["within_10"].sum() == whole.loc[line, "within_10"], line


def test_weekly_calls_are_empty_for_an_account_limited_to_areas(calls_conn):
    with scope.restricted_to({"A1"}):
        got = trends.weekly_calls(calls_conn, D(2025, 3, 1), D(2025, 3, 31))
    assert len(got) == 12
    assert got["offered"].sum() == 0
    assert got["share_within_10"].isna().all()


# ---------------------------------------------------------------------------
# Grade 1 by week


def test_weekly_grade1_is_the_pages_weekly_trend_with_medians(conn):
    got = trends.weekly_grade1(conn, iq.MARCH)
    page = incidents.weekly_within_target(conn, iq.MARCH)
    assert got["week_start"].tolist() == page["week_start"].tolist()
    pd.testing.assert_series_equal(got["share"], page["share"])
    assert got["with_target"].tolist() == page["with_target"].tolist()
    # Week of 3 March: Grade 1 attended in 18, 18, 12 and 10 minutes.
    np.testing.assert_allclose(
        got["median_attend_min"], [np.nan, 15.0, np.nan, np.nan, np.nan, np.nan]
    )
    # The week of 31 March holds one Grade 1 incident, still open: no median.
    assert got["incidents"].tolist() == [0, 4, 0, 0, 0, 1]


def test_weekly_grade1_is_empty_when_the_filter_leaves_grade1_out(conn):
    got = trends.weekly_grade1(conn, dataclasses.replace(iq.MARCH, grades=("2",)))
    assert len(got) == 6
    assert got["incidents"].sum() == 0
    assert got["median_attend_min"].isna().all()


# ---------------------------------------------------------------------------
# The open queue at each day's end


def test_open_queue_on_the_last_day_is_the_open_queue_tile(conn):
    got = trends.open_by_day(conn, iq.MARCH, iq.NOW)
    assert got["day"].tolist() == [D(2025, 3, n) for n in range(1, 32)]
    queue = incidents.open_queue(conn, iq.MARCH, iq.NOW)
    assert got["open_incidents"].iloc[-1] == queue["open_incidents"].sum() == 2
    assert got["open_incidents"].iloc[:-1].tolist() == [0] * 30


def _january() -> list[dict]:
    """Incidents in January 2025 (London is on UTC then), timed to the minute."""
    late = iq.incident("LATE", "2025-01-06T23:50", "1", 20, "A1")  # arrives 00:10
    midnight = iq.incident("MIDNIGHT", "2025-01-08T00:00", "2", None, "A1")
    closed = iq.incident("CLOSED", "2025-01-09T12:00", "3", None, "A2")
    # Closed after two days without an arrival being recorded.
    closed["closed_at"] = dt.datetime(2025, 1, 11, 12, 0)
    return [
        iq.incident("QUICK", "2025-01-06T10:00", "1", 30, "A1"),  # never at midnight
        late,
        midnight,
        closed,
        iq.incident(
            "NO-STEPS", "2025-01-09T09:00", None, None, recorded=iq.CREATED_ONLY
        ),
    ]


JANUARY = IncidentFilters(D(2025, 1, 6), D(2025, 1, 11))
JANUARY_NOW = dt.datetime(2025, 1, 11, 18, 0)


@pytest.mark.parametrize(
    "areas, expected",
    [
        # An incident raised at midnight is open at the end of the day before;
        # the last day ends at "now" (18:00), after CLOSED was closed.
        (None, [1, 1, 1, 2, 2, 1]),
        # An account limited to A2 sees only the incident placed there.
        ({"A2"}, [0, 0, 0, 1, 1, 0]),
    ],
)
def test_open_queue_counts_what_was_open_at_each_days_end(
    warehouse_url, reader, areas, expected
):
    iq._build(warehouse_url, _january())
    with reader.connect() as connection, scope.restricted_to(areas):
        got = trends.open_by_day(connection, JANUARY, JANUARY_NOW)
        queue = incidents.open_queue(connection, JANUARY, JANUARY_NOW)
    assert got["day"].tolist() == [D(2025, 1, n) for n in range(6, 12)]
    assert got["open_incidents"].tolist() == expected
    assert got["open_incidents"].iloc[-1] == queue["open_incidents"].sum()


def test_open_queue_has_no_days_before_the_period_begins(conn):
    got = trends.open_by_day(conn, iq.MARCH, dt.datetime(2025, 3, 1, 0, 0))
    assert got.empty
    assert got.columns.tolist() == trends.OPEN_BY_DAY_COLUMNS
