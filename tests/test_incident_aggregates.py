"""The incidents summary table equals fct_incident, and z needs a year to compare."""

from __future__ import annotations

import csv
import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from etl import pipeline, warehouse
from queries import incidents
from queries.incidents import IncidentFilters

D = dt.date
HEADER = [
    "incident_id",
    "force",
    "call_received_at",
    "incident_created_at",
    "dispatched_at",
    "arrived_at",
    "final_grade",
    "opening_grade",
]
EXACT = """
    SELECT source, max(force_name) AS force_name, count(*) AS incidents,
           min(local_date) AS first_date, max(local_date) AS last_date,
           max(lifecycle_recorded) AS lifecycle_recorded
    FROM fct_incident
    GROUP BY source
    ORDER BY source
"""


def _row(key, day, attend_min=10, grade="1", force="Test Police", opening=None):
    received = dt.datetime.fromisoformat(f"{day}T10:00:00+00:00")
    return {
        "incident_id": key,
        "force": force,
        "call_received_at": received.isoformat(),
        "incident_created_at": received.isoformat(),
        "dispatched_at": (received + dt.timedelta(minutes=2)).isoformat(),
        "arrived_at": (received + dt.timedelta(minutes=attend_min)).isoformat(),
        "final_grade": grade,
        "opening_grade": opening or grade,
    }


def _load(url, tmp_path, name, rows):
    path = tmp_path / name
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=HEADER)
        writer.writeheader()
        writer.writerows(rows)
    result = pipeline.run(url, "cad", path)
    assert result.status == "succeeded", result.message


@pytest.fixture
def reader(warehouse_url):
    made = warehouse.Reader(warehouse_url)
    yield made
    if made._engine is not None:
        made._engine.dispose()


def _frames(conn) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the summary table as stored, the same figures counted from fct_incident)."""
    stored = pd.read_sql(
        text("SELECT * FROM agg_incident_source ORDER BY source"), conn
    )
    exact = pd.read_sql(text(EXACT), conn)
    for frame in (stored, exact):
        frame["incidents"] = frame["incidents"].astype("int64")
        for column in ("first_date", "last_date"):
            frame[column] = pd.to_datetime(frame[column]).dt.date
    return stored[exact.columns], exact


def test_source_summary_equals_fct_incident_after_incremental_loads(
    warehouse_url, reader, tmp_path
):
    first = [_row(f"A{n}", f"2025-03-{n + 1:02d}") for n in range(5)]
    _load(warehouse_url, tmp_path, "first.csv", first)
    with reader.connect() as conn:
        stored, exact = _frames(conn)
        got = incidents.incident_sources(conn)
    pd.testing.assert_frame_equal(stored, exact)
    assert got["incidents"].tolist() == [5]
    assert got[["first_date", "last_date"]].values.tolist() == [
        [D(2025, 3, 1), D(2025, 3, 5)]
    ]

    # A second load: one incident moves earlier, another changes force, two are new.
    second = [
        _row("A0", "2025-02-20"),
        _row("A3", "2025-03-04", force="Renamed Police"),
        _row("B1", "2025-04-10"),
        _row("B2", "2025-04-11", grade="2"),
    ]
    _load(warehouse_url, tmp_path, "second.csv", second)
    with reader.connect() as conn:
        stored, exact = _frames(conn)
        got = incidents.incident_sources(conn)
    pd.testing.assert_frame_equal(stored, exact)
    assert stored["incidents"].tolist() == [7]
    assert got[["first_date", "last_date"]].values.tolist() == [
        [D(2025, 2, 20), D(2025, 4, 11)]
    ]
    assert got["force_name"].tolist() == ["Test Police"]  # max(), as before


def test_sources_are_counted_exactly_when_rows_bypass_the_cad_load(
    warehouse_url, reader, tmp_path
):
    _load(warehouse_url, tmp_path, "first.csv", [_row("A1", "2025-03-01")])
    with warehouse.write(warehouse_url) as write:
        write.execute(
            text(
                """
                INSERT INTO fct_incident
                SELECT 'other', incident_id, force_name, call_received_at,
                       call_answered_at, incident_created_at, graded_at,
                       dispatched_at, arrived_at, closed_at, reference_at,
                       local_date, local_hour, local_dow, time_zone, opening_grade,
                       final_grade, incident_type, location, lsoa_code, longitude,
                       latitude, channel, attending_unit, answer_seconds,
                       dispatch_seconds, travel_seconds, attend_seconds,
                       lifecycle_recorded, last_run_id
                FROM fct_incident
                """
            )
        )
    with reader.connect() as conn:
        got = incidents.incident_sources(conn)
    assert got["source"].tolist() == ["cad", "other"]
    assert got["incidents"].tolist() == [1, 1]


@pytest.mark.parametrize(
    ("earliest", "compared"),
    [
        ("2024-06-01", False),  # data begin after last year's March: no comparison
        ("2024-03-20", True),  # data begin within last year's March
        ("2024-02-15", True),  # data cover last year's March (with no incidents)
    ],
)
def test_z_is_not_compared_against_a_year_the_source_does_not_hold(
    warehouse_url, reader, tmp_path, earliest, compared
):
    rows = [_row(f"M{n}", f"2025-03-{n + 1:02d}") for n in range(12)]
    rows.append(_row("EARLY", earliest, grade="3"))
    _load(warehouse_url, tmp_path, "cad.csv", rows)
    march = IncidentFilters(D(2025, 3, 1), D(2025, 3, 31), source="cad")
    with reader.connect() as conn:
        got = incidents.attendance_by_grade(conn, march)
    grade_1 = got.set_index("final_grade").loc["1"]
    assert grade_1["within_target"] == 12
    assert grade_1["within_target_last_year"] == 0
    if compared:
        assert grade_1["z"] == pytest.approx(2 * np.sqrt(12))
        assert grade_1["significance"] == "signal"
    else:
        assert np.isnan(grade_1["z"])
        assert grade_1["significance"] == incidents.NO_COMPARISON == "no comparison"
