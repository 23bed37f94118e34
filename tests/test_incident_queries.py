"""Incident queries on tiny given warehouses, each run on DuckDB and PostgreSQL.

An arrival before dispatch never reaches these queries: the ETL quarantines it
(tests/test_source_cad.py::test_arrival_before_dispatch_is_quarantined_with_its_line).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import math
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from etl import grades, pipeline, warehouse
from queries import incidents, stats
from queries.incidents import IncidentFilters

D = dt.date
FORCE = "Test Police"
FORCE_CODE = "test-police"
LONDON = "Europe/London"
ALL_STEPS = ",".join(incidents.STEPS)
ANSWER_S, DISPATCH_S = 30.0, 90.0  # every measured incident: 2 min before dispatch

# Test Police: LAD L1 (ward W1 > LSOA A1 urban; ward W2 > LSOA A2 rural) and LAD L2
# (ward W3 > LSOA A3 urban, no incidents). Other Police holds the arrival-less source.
AREAS = [
    (FORCE_CODE, FORCE, "force", None, FORCE),
    ("other-police", "Other Police", "force", None, "Other Police"),
    ("L1", "Northtown", "lad", FORCE_CODE, FORCE),
    ("L2", "Southvale", "lad", FORCE_CODE, FORCE),
    ("W1", "Abbey", "ward", "L1", FORCE),
    ("W2", "Bridge", "ward", "L1", FORCE),
    ("W3", "Castle", "ward", "L2", FORCE),
    ("A1", "Northtown 001A", "lsoa", "W1", FORCE),
    ("A2", "Northtown 001B", "lsoa", "W2", FORCE),
    ("A3", "Southvale 001A", "lsoa", "W3", FORCE),
]
GEOGRAPHY = [
    # lsoa_code, ward_code, lad_code, force_name, urban_rural
    ("A1", "W1", "L1", FORCE, "urban"),
    ("A2", "W2", "L1", FORCE, "rural"),
    ("A3", "W3", "L2", FORCE, "urban"),
]

MARCH = IncidentFilters(D(2025, 3, 1), D(2025, 3, 31), area_code=FORCE_CODE)
NOW = dt.datetime(2025, 3, 31, 22, 30)  # UTC


def incident(
    incident_id: str,
    start: str,
    final_grade: str | None,
    attend_min: float | None,
    lsoa: str | None = None,
    opening_grade: str | None = "same",
    source: str = "wm",
    force: str = FORCE,
    zone: str = LONDON,
    recorded: str = ALL_STEPS,
) -> dict:
    """One fct_incident row; `start` is local wall-clock time in `zone`."""
    local = dt.datetime.fromisoformat(start).replace(tzinfo=ZoneInfo(zone))
    received = local.astimezone(dt.UTC).replace(tzinfo=None)
    steps = dict.fromkeys(incidents.STEP_COLUMNS.values())
    if "call_received" in recorded:
        answered = received + dt.timedelta(seconds=ANSWER_S)
        steps.update(
            call_received_at=received,
            call_answered_at=answered,
            incident_created_at=answered,
            graded_at=answered,
        )
        if attend_min is not None:
            arrived = received + dt.timedelta(minutes=attend_min)
            steps.update(
                dispatched_at=answered + dt.timedelta(seconds=DISPATCH_S),
                arrived_at=arrived,
                closed_at=arrived + dt.timedelta(minutes=30),
            )
    else:  # the source records only its incident's creation
        steps.update(incident_created_at=received)
    measured = attend_min is not None and "arrived" in recorded
    return {
        "source": source,
        "incident_id": incident_id,
        "force_name": force,
        **steps,
        "reference_at": received,
        "local_date": local.date(),
        "local_hour": local.hour,
        "local_dow": local.weekday(),
        "time_zone": zone,
        "opening_grade": final_grade if opening_grade == "same" else opening_grade,
        "final_grade": final_grade,
        "incident_type": "Test",
        "lsoa_code": lsoa,
        "answer_seconds": ANSWER_S if "call_answered" in recorded else None,
        "dispatch_seconds": DISPATCH_S if measured else None,
        "travel_seconds": attend_min * 60 - ANSWER_S - DISPATCH_S if measured else None,
        "attend_seconds": attend_min * 60 if measured else None,
        "lifecycle_recorded": recorded,
        "last_run_id": 1,
    }


CREATED_ONLY = "incident_created"
INCIDENTS = [
    # March 2025, Test Police
    incident("G1-URB-18", "2025-03-03T10:00", "1", 18, "A1"),
    incident("G1-RUR-18", "2025-03-04T10:00", "1", 18, "A2"),
    incident("G1-UNK-12", "2025-03-05T10:00", "1", 12, None),
    incident("UP-2-1", "2025-03-06T10:00", "1", 10, "A1", opening_grade="2"),
    incident("G2-A1-70", "2025-03-07T10:00", "2", 70, "A1"),
    incident("DOWN-1-2", "2025-03-08T10:00", "2", 30, "A2", opening_grade="1"),
    incident("G3-A1", "2025-03-09T10:00", "3", 100, "A1"),
    # Open at NOW (22:30 UTC): 30 min against 15, and 20 min against 60.
    incident("OPEN-G1", "2025-03-31T23:00", "1", None, "A1"),
    incident("OPEN-G2", "2025-03-31T23:10", "2", None, "A2"),
    # March 2024: one of two Grade 1 within target.
    incident("LY-G1-A", "2024-03-04T10:00", "1", 10, "A1"),
    incident("LY-G1-B", "2024-03-05T10:00", "1", 20, "A1"),
    # A US export: no geography covers it.
    incident(
        "US-1",
        "2025-03-10T10:00",
        "1",
        14,
        source="us",
        force="Elsewhere PD",
        zone="America/New_York",
    ),
    # A source that records only creation (no arrival, no grade).
    *[
        incident(
            f"NA-{n}",
            f"2025-03-1{n}T09:00",
            None,
            None,
            source="noarr",
            force="Other Police",
            recorded=CREATED_ONLY,
        )
        for n in (1, 2)
    ],
]


def _areas() -> tuple[pd.DataFrame, pd.DataFrame]:
    areas = pd.DataFrame(
        AREAS, columns=["area_code", "area_name", "level", "parent_code", "force_name"]
    ).assign(geometry_repaired=False)
    geography = pd.DataFrame(
        GEOGRAPHY,
        columns=["lsoa_code", "ward_code", "lad_code", "force_name", "urban_rural"],
    ).assign(lsoa_name=lambda g: g["lsoa_code"])
    return areas, geography


def _incident_frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column in [*incidents.STEP_COLUMNS.values(), "reference_at"]:
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[us]")
    frame["local_date"] = pd.to_datetime(frame["local_date"]).astype("datetime64[us]")
    for column in ("answer_seconds", "dispatch_seconds", "travel_seconds"):
        frame[column] = frame[column].astype("float64")
    frame["attend_seconds"] = frame["attend_seconds"].astype("float64")
    return frame


def _build(url: str, rows: list[dict], grade_rows: pd.DataFrame | None = None):
    warehouse.ensure_schema(url)
    areas, geography = _areas()
    with warehouse.write(url) as write:
        if grade_rows is None:
            grades.ensure_default_grades(write)
        else:
            warehouse.insert_frame(write, "dim_incident_grade", grade_rows)
        warehouse.insert_frame(write, "dim_area", areas)
        warehouse.insert_frame(write, "dim_geography", geography)
        warehouse.insert_frame(write, "fct_incident", _incident_frame(rows))


@pytest.fixture
def reader(warehouse_url):
    made = warehouse.Reader(warehouse_url)
    yield made
    if made._engine is not None:
        made._engine.dispose()


@pytest.fixture
def conn(warehouse_url, reader):
    _build(warehouse_url, INCIDENTS)
    with reader.connect() as connection:
        yield connection


def _z(current, previous):
    return 2 * (math.sqrt(current) - math.sqrt(previous))


# ---------------------------------------------------------------------------
# Attendance by grade


def test_attendance_is_measured_on_final_grade_against_location_targets(conn):
    got = incidents.attendance_by_grade(conn, MARCH)
    nan = np.nan
    expected = pd.DataFrame(
        {
            "final_grade": pd.Series(["1", "2", "3"], dtype="str"),
            "label": pd.Series(["Immediate", "Priority", "Scheduled"], dtype="str"),
            # Grade 1: URB 18 (out), RUR 18 (in), UNK 12 (in), UP 10 (in), OPEN.
            "incidents": [5, 3, 1],
            "attended": [4, 2, 1],
            "with_target": [4, 2, 0],
            "within_target": [3, 1, 0],
            "share_within_target": [0.75, 0.5, nan],
            "median_attend_min": [15.0, 50.0, 100.0],
            "p90_attend_min": [18.0, 66.0, 100.0],
            "median_answer_s": [30.0, 30.0, 30.0],
            "median_dispatch_s": [90.0, 90.0, 90.0],
            "median_travel_s": [780.0, 2880.0, 5880.0],
            "target_urban_minutes": [15.0, 60.0, nan],
            "target_rural_minutes": [20.0, 60.0, nan],
            "incidents_last_year": [2, 0, 0],
            "with_target_last_year": [2, 0, 0],
            "within_target_last_year": [1, 0, 0],
            "share_within_target_last_year": [0.5, nan, nan],
            "median_attend_min_last_year": [15.0, nan, nan],
            "z": [_z(3, 1), _z(1, 0), 0.0],
            "significance": pd.Series(["noise", "watch", "noise"], dtype="str"),
        }
    )
    pd.testing.assert_frame_equal(got, expected)


def test_everything_includes_sources_outside_the_geography(conn):
    everything = dataclasses.replace(MARCH, area_code=None)
    got = incidents.attendance_by_grade(conn, everything).set_index("final_grade")
    # The US incident counts only when no area is chosen; ungraded rows come last.
    assert got.loc["1", "incidents"] == 6
    assert got.index[-1] is pd.NA or pd.isna(got.index[-1])
    assert got["label"].iloc[-1] == incidents.NOT_GRADED
    by_source = dataclasses.replace(everything, source="us")
    us = incidents.attendance_by_grade(conn, by_source)
    assert us[["final_grade", "incidents", "within_target"]].values.tolist() == [
        ["1", 1, 1]
    ]


def test_a_source_without_arrival_has_volumes_and_no_minutes(conn):
    f = IncidentFilters(D(2025, 3, 1), D(2025, 3, 31), source="noarr")
    got = incidents.attendance_by_grade(conn, f)
    assert len(got) == 1
    row = got.iloc[0]
    assert (row["incidents"], row["attended"], row["with_target"]) == (2, 0, 0)
    for column in (
        "share_within_target",
        "median_attend_min",
        "p90_attend_min",
        "median_answer_s",
        "median_dispatch_s",
        "median_travel_s",
    ):
        assert np.isnan(row[column]), column
    assert incidents.not_recorded(conn, "noarr") == [
        "call_received",
        "call_answered",
        "graded",
        "dispatched",
        "arrived",
        "closed",
    ]
    assert incidents.not_recorded(conn, "wm") == []
    # Without arrival or close times nothing can be called open.
    assert incidents.open_queue(conn, f, NOW).empty
    assert incidents.open_past_target(conn, f, NOW).empty


def test_incident_sources_and_date_range(conn):
    got = incidents.incident_sources(conn)
    expected = pd.DataFrame(
        {
            "source": pd.Series(["noarr", "us", "wm"], dtype="str"),
            "force_name": pd.Series(
                ["Other Police", "Elsewhere PD", FORCE], dtype="str"
            ),
            "incidents": [2, 1, 11],
            "first_date": pd.Series(
                [D(2025, 3, 11), D(2025, 3, 10), D(2024, 3, 4)], dtype=object
            ),
            "last_date": pd.Series(
                [D(2025, 3, 12), D(2025, 3, 10), D(2025, 3, 31)], dtype=object
            ),
            "lifecycle_recorded": pd.Series(
                [CREATED_ONLY, ALL_STEPS, ALL_STEPS], dtype="str"
            ),
        }
    )
    pd.testing.assert_frame_equal(got, expected)
    assert incidents.date_range(conn) == (D(2024, 3, 4), D(2025, 3, 31))
    assert incidents.date_range(conn, "noarr") == (D(2025, 3, 11), D(2025, 3, 12))
    assert incidents.date_range(conn, "nothing") is None


def test_rural_at_18_minutes_is_within_target_and_urban_is_not(conn):
    urban = incidents.incident_detail(conn, "wm", "G1-URB-18")
    rural = incidents.incident_detail(conn, "wm", "G1-RUR-18")
    unknown = incidents.incident_detail(conn, "wm", "G1-UNK-12")
    assert (urban["urban_rural"], urban["target_min"], urban["within_target"]) == (
        "urban",
        15.0,
        False,
    )
    assert (rural["urban_rural"], rural["target_min"], rural["within_target"]) == (
        "rural",
        20.0,
        True,
    )
    assert (unknown["urban_rural"], unknown["target_min"]) == ("urban", 15.0)
    assert urban["attend_min"] == 18.0 and urban["label"] == "Immediate"
    assert incidents.incident_detail(conn, "wm", "no-such-id") is None


def test_upgraded_incident_counts_as_upgrade_on_its_final_grade(conn):
    cell = incidents.incidents_in_cell(conn, MARCH, dow=3, hour=10)  # Thursday 6th
    assert cell[["incident_id", "opening_grade", "final_grade"]].values.tolist() == [
        ["UP-2-1", "2", "1"]
    ]
    assert incidents.regrade_rate(conn, MARCH) == {
        "incidents_with_both_grades": 9,
        "regraded": 2,
        "share": pytest.approx(2 / 9),
        "upgraded": 1,
        "downgraded": 1,
    }
    only_1 = dataclasses.replace(MARCH, grades=("1",))
    assert incidents.regrade_rate(conn, only_1)["upgraded"] == 1
    assert incidents.regrade_rate(conn, only_1)["downgraded"] == 0


def test_targets_apply_by_the_incidents_date(warehouse_url, reader):
    grade_rows = pd.DataFrame(
        {
            "grade_key": [1, 2, 3],
            "grade": ["1", "1", "3"],
            "label": ["Immediate", "Immediate", "Scheduled"],
            "target_urban_minutes": [15.0, 10.0, np.nan],
            "target_rural_minutes": [20.0, 15.0, np.nan],
            "valid_from": pd.to_datetime(["2000-01-01", "2025-03-15", "2000-01-01"]),
            "valid_to": pd.to_datetime(["2025-03-15", None, None]),
        }
    )
    rows = [
        incident("BEFORE", "2025-03-14T10:00", "1", 12, "A1"),  # 15 min then
        incident("CHANGE-DAY", "2025-03-15T10:00", "1", 12, "A1"),  # 10 min from here
        incident("NO-TARGET", "2025-03-16T10:00", "3", 5, "A1"),
    ]
    dates = {"valid_from": "datetime64[us]", "valid_to": "datetime64[us]"}
    _build(warehouse_url, rows, grade_rows.astype(dates))
    f = IncidentFilters(D(2025, 3, 10), D(2025, 3, 23))
    with reader.connect() as conn:
        by_grade = incidents.attendance_by_grade(conn, f).set_index("final_grade")
        cells = incidents.incidents_in_cell(conn, f, dow=4, hour=10)
        weekly = incidents.weekly_within_target(conn, f)
        late = incidents.exceptions(conn, f, margin_minutes=1)
        detail = incidents.incident_detail(conn, "wm", "CHANGE-DAY")
    assert by_grade.loc["1", ["with_target", "within_target"]].tolist() == [2, 1]
    assert by_grade.loc["1", "target_urban_minutes"] == 10.0  # in force at f.end
    # Grade 3 has no target: counted, never in the share.
    assert by_grade.loc["3", ["incidents", "with_target"]].tolist() == [1, 0]
    assert np.isnan(by_grade.loc["3", "share_within_target"])
    assert cells["within_target"].tolist() == [True]
    assert detail["target_min"] == 10.0 and detail["within_target"] is False
    assert weekly["week_start"].tolist() == [D(2025, 3, 10), D(2025, 3, 17)]
    assert weekly["target_minutes"].tolist() == [15.0, 10.0]
    assert late[["incident_id", "over_by_min"]].values.tolist() == [["CHANGE-DAY", 2.0]]


# ---------------------------------------------------------------------------
# Queue, exceptions


def test_open_queue_and_open_incidents_past_target(conn):
    queue = incidents.open_queue(conn, MARCH, NOW)
    expected = pd.DataFrame(
        {
            "final_grade": pd.Series(["1", "2"], dtype="str"),
            "open_incidents": [1, 1],
            "oldest_wait_min": [30.0, 20.0],
        }
    )
    pd.testing.assert_frame_equal(queue, expected)
    past = incidents.open_past_target(conn, MARCH, NOW)
    assert past[
        ["incident_id", "final_grade", "waiting_min", "target_min"]
    ].values.tolist() == [["OPEN-G1", "1", 30.0, 15.0]]
    # Nothing logged after `now` is in the queue yet.
    earlier = incidents.open_queue(conn, MARCH, dt.datetime(2025, 3, 31, 22, 5))
    assert earlier["final_grade"].tolist() == ["1"]


def test_exceptions_list_breaches_beyond_the_margin_newest_first(conn):
    got = incidents.exceptions(conn, MARCH, margin_minutes=5)
    expected = pd.DataFrame(
        {
            "source": pd.Series(["wm"], dtype="str"),
            "incident_id": pd.Series(["G2-A1-70"], dtype="str"),
            "local_date": pd.Series([D(2025, 3, 7)], dtype=object),
            "reference_at": pd.Series(
                [pd.Timestamp("2025-03-07 10:00")], dtype="datetime64[us]"
            ),
            "final_grade": pd.Series(["2"], dtype="str"),
            "attend_min": [70.0],
            "target_min": [60.0],
            "over_by_min": [10.0],
        }
    )
    pd.testing.assert_frame_equal(got, expected)
    wider = incidents.exceptions(conn, MARCH, margin_minutes=2)
    # The 100-minute Grade 3 incident has no target, so it is never an exception.
    assert wider["incident_id"].tolist() == ["G2-A1-70", "G1-URB-18"]


# ---------------------------------------------------------------------------
# Areas, hour of week, timeline


def test_by_area_lists_every_area_with_zero_rows(conn):
    got = incidents.by_area(conn, MARCH, "lad")
    expected = pd.DataFrame(
        {
            "area_code": pd.Series(["L1", "L2"], dtype="str"),
            "area_name": pd.Series(["Northtown", "Southvale"], dtype="str"),
            # Every Test Police incident with an LSOA: all but G1-UNK-12.
            "incidents": [8, 0],
            "attended": [6, 0],
            "with_target": [5, 0],
            "within_target": [3, 0],
            "share_within_target": [0.6, np.nan],
            "median_attend_min": [24.0, np.nan],
        }
    )
    pd.testing.assert_frame_equal(got, expected)
    wards = incidents.by_area(
        conn, dataclasses.replace(MARCH, area_level="lad", area_code="L1"), "ward"
    )
    assert wards[["area_code", "incidents", "within_target"]].values.tolist() == [
        ["W1", 5, 1],
        ["W2", 3, 2],
    ]
    forces = incidents.by_area(
        conn, dataclasses.replace(MARCH, area_code=None), "force"
    )
    assert forces[["area_code", "incidents"]].values.tolist() == [
        ["other-police", 2],
        [FORCE_CODE, 9],
    ]
    with pytest.raises(ValueError):
        incidents.by_area(conn, dataclasses.replace(MARCH, area_level="ward"), "lad")


def test_area_filters_follow_the_geography(conn):
    ward = dataclasses.replace(MARCH, area_level="ward", area_code="W2")
    lsoa = dataclasses.replace(MARCH, area_level="lsoa", area_code="A2")
    for f in (ward, lsoa):
        got = incidents.attendance_by_grade(conn, f)
        assert got[["final_grade", "incidents"]].values.tolist() == [
            ["1", 1],
            ["2", 2],
        ]


def test_hour_of_week_has_168_cells_with_zeros(conn):
    got = incidents.hour_of_week(conn, MARCH)
    assert len(got) == 168
    assert got[["local_dow", "local_hour"]].drop_duplicates().shape[0] == 168
    assert got["incidents"].sum() == 9
    cell = got.set_index(["local_dow", "local_hour"])
    assert cell.loc[(0, 10), ["incidents", "within_target"]].tolist() == [1, 0]
    assert cell.loc[(1, 10), ["incidents", "within_target"]].tolist() == [1, 1]
    assert cell.loc[(0, 3), "incidents"] == 0
    assert np.isnan(cell.loc[(0, 3), "median_attend_min"])


def test_hour_of_week_on_an_empty_period_is_all_zeros(conn):
    empty = IncidentFilters(D(2030, 1, 1), D(2030, 1, 31))
    got = incidents.hour_of_week(conn, empty)
    assert len(got) == 168 and got["incidents"].sum() == 0
    assert incidents.attendance_by_grade(conn, empty).empty
    assert list(incidents.attendance_by_grade(conn, empty).columns) == (
        incidents.ATTENDANCE_COLUMNS
    )


def test_timeline_components_add_up_to_the_time_to_attend(conn):
    got = incidents.incident_timeline(conn, "wm", "G1-URB-18")
    assert got["step"].tolist() == list(incidents.STEPS)
    assert got["component"].tolist()[1::] == [
        "answer",
        None,
        None,
        "dispatch",
        "travel",
        None,
    ]
    assert got["component_min"].sum() == pytest.approx(18.0)
    detail = incidents.incident_detail(conn, "wm", "G1-URB-18")
    assert got["component_min"].sum() * 60 == pytest.approx(detail["attend_seconds"])
    # 3 March is GMT: local equals UTC; received 10:00, arrived 10:18.
    assert got["at_local"].iloc[0] == pd.Timestamp("2025-03-03 10:00")
    since = got["minutes_since_previous"].tolist()
    assert np.isnan(since[0]) and since[1:] == [0.5, 0.0, 0.0, 1.5, 16.0, 30.0]
    assert got.loc[got["step"] == "arrived", "at_utc"].iloc[0] == pd.Timestamp(
        "2025-03-03 10:18"
    )
    missing = incidents.incident_timeline(conn, "noarr", "NA-1")
    assert missing["at_utc"].isna().tolist() == [
        True,
        True,
        False,
        True,
        True,
        True,
        True,
    ]
    assert missing["component_min"].isna().all()


def test_timeline_shows_local_time_in_the_incidents_own_zone(conn):
    got = incidents.incident_timeline(conn, "us", "US-1")
    # 10 March 2025 is after the US change (EDT, UTC-4).
    assert got["at_utc"].iloc[0] == pd.Timestamp("2025-03-10 14:00")
    assert got["at_local"].iloc[0] == pd.Timestamp("2025-03-10 10:00")
    assert incidents.incident_timeline(conn, "wm", "nothing").empty


# ---------------------------------------------------------------------------
# Dates and clock changes through the real cad loader


def _contract(path, rows):
    header = ["incident_id", "call_received_at", "incident_created_at", "arrived_at"]
    header += ["dispatched_at", "final_grade", "lsoa_code"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _timed(key, received, dispatched, arrived, grade="1"):
    return {
        "incident_id": key,
        "call_received_at": received,
        "incident_created_at": received,
        "dispatched_at": dispatched,
        "arrived_at": arrived,
        "final_grade": grade,
        "lsoa_code": "A1",
    }


def test_midnight_and_clock_change_incidents_are_dated_by_their_reference_time(
    warehouse_url, reader, tmp_path
):
    warehouse.ensure_schema(warehouse_url)
    areas, geography = _areas()
    with warehouse.write(warehouse_url) as write:
        warehouse.insert_frame(write, "dim_area", areas)
        warehouse.insert_frame(write, "dim_geography", geography)
    rows = [
        # Friday 10 January 23:58, arrived Saturday 00:10.
        _timed(
            "MIDNIGHT",
            "2025-01-10T23:58:00+00:00",
            "2025-01-11T00:01:00+00:00",
            "2025-01-11T00:10:00+00:00",
        ),
        # Sunday 30 March 2025: clocks go forward at 01:00 UTC. 02:30 BST is 01:30
        # UTC, local hour 2; 00:30 GMT the same night stays at hour 0.
        _timed(
            "SPRING",
            "2025-03-30T02:30:00+01:00",
            "2025-03-30T02:35:00+01:00",
            "2025-03-30T02:44:00+01:00",
        ),
        _timed(
            "BEFORE",
            "2025-03-30T00:30:00+00:00",
            "2025-03-30T00:35:00+00:00",
            "2025-03-30T02:05:00+01:00",  # 01:05 UTC: 35 minutes
        ),
    ]
    path = _contract(tmp_path / "cad.csv", rows)
    result = pipeline.run(warehouse_url, "cad", path)
    assert result.status == "succeeded", result.message
    winter = IncidentFilters(D(2025, 1, 10), D(2025, 1, 10))
    spring = IncidentFilters(D(2025, 3, 30), D(2025, 3, 30))
    with reader.connect() as conn:
        friday = incidents.hour_of_week(conn, winter).set_index(
            ["local_dow", "local_hour"]
        )
        next_day = incidents.hour_of_week(
            conn, IncidentFilters(D(2025, 1, 11), D(2025, 1, 11))
        )
        sunday = incidents.hour_of_week(conn, spring).set_index(
            ["local_dow", "local_hour"]
        )
        cell = incidents.incidents_in_cell(conn, winter, dow=4, hour=23)
        spring_cell = incidents.incidents_in_cell(conn, spring, dow=6, hour=2)
    assert friday.loc[(4, 23), ["incidents", "within_target"]].tolist() == [1, 1]
    assert next_day["incidents"].sum() == 0
    assert cell[["incident_id", "local_date", "attend_min"]].values.tolist() == [
        ["MIDNIGHT", D(2025, 1, 10), 12.0]
    ]
    assert sunday.loc[(6, 2), "incidents"] == 1
    assert sunday.loc[(6, 1), "incidents"] == 0
    assert sunday.loc[(6, 0), "incidents"] == 1
    assert spring_cell["attend_min"].tolist() == [14.0]
    assert sunday.loc[(6, 0), "median_attend_min"] == 35.0


# ---------------------------------------------------------------------------
# Trend


def test_weekly_share_has_every_week_and_p_chart_limits(conn):
    got = incidents.weekly_within_target(
        conn, dataclasses.replace(MARCH, grades=("1",))
    )
    # 1 March 2025 is a Saturday: weeks from Monday 24 February to 31 March.
    assert got["week_start"].tolist()[0] == D(2025, 2, 24)
    assert got["week_start"].tolist()[-1] == D(2025, 3, 31)
    assert len(got) == 6
    first_week = got.set_index("week_start").loc[D(2025, 3, 3)]
    assert first_week[["incidents", "with_target", "within_target"]].tolist() == [
        4,
        4,
        3,
    ]
    assert first_week["share"] == 0.75
    assert (got["target_minutes"] == 15.0).all()
    assert got["centre"].iloc[0] == pytest.approx(0.75)
    assert got["outside"].dtype == bool and not got["outside"].any()
    assert list(got.columns) == incidents.WEEKLY_COLUMNS
    # With no grade chosen the trend is of Grade 1, the grade its target line is for.
    pd.testing.assert_frame_equal(incidents.weekly_within_target(conn, MARCH), got)


def test_p_chart_limits_and_input_untouched():
    x = pd.Series([8, 2, 0])
    n = pd.Series([10, 10, 0])
    before = x.copy(), n.copy()
    got = stats.p_chart(x, n)
    p = 10 / 20
    sigma = math.sqrt(p * (1 - p) / 10)
    assert got["centre"].tolist() == [p, p, p]
    assert got["upper"].iloc[0] == pytest.approx(min(p + 3 * sigma, 1.0))
    assert got["lower"].iloc[0] == pytest.approx(max(p - 3 * sigma, 0.0))
    assert np.isnan(got["proportion"].iloc[2]) and np.isnan(got["upper"].iloc[2])
    assert got["outside"].tolist() == [False, False, False]
    # p = 0.5, limits 0.5 +- 3 * 0.0707: 0.1 and 0.8 lie outside, 0.6 inside.
    signal = stats.p_chart(pd.Series([5, 30, 40]), pd.Series([50, 50, 50]))
    assert signal["outside"].tolist() == [True, False, True]
    pd.testing.assert_series_equal(x, before[0])
    pd.testing.assert_series_equal(n, before[1])


# ---------------------------------------------------------------------------
# Call answering


def test_call_answering_sums_calls_and_intervals_per_line(warehouse_url, reader):
    warehouse.ensure_schema(warehouse_url)
    queued = dt.datetime(2025, 3, 3, 9, 0)
    answers = [5.0, 10.0, 70.0, None]  # under 10 s, exactly 10 s, 60 s+, abandoned
    calls_frame = pd.DataFrame(
        {
            "source": "wm",
            "call_id": [f"c{i}" for i in range(4)],
            "line": "999",
            "queued_at": queued,
            "bt_connected_at": queued - dt.timedelta(seconds=3),
            "answered_at": [
                queued + dt.timedelta(seconds=a) if a is not None else None
                for a in answers
            ],
            "abandoned_at": [None, None, None, queued + dt.timedelta(seconds=40)],
            "bt_seconds": [3.0, 5.0, 4.0, 2.0],
            "answer_seconds": answers,
            "wait_seconds": [5.0, 10.0, 70.0, 40.0],
            "local_date": pd.Timestamp("2025-03-03"),
            "local_hour": 9,
            "last_run_id": 1,
        }
    )
    for column in ("queued_at", "bt_connected_at", "answered_at", "abandoned_at"):
        calls_frame[column] = pd.to_datetime(calls_frame[column]).astype(
            "datetime64[us]"
        )
    calls_frame["local_date"] = calls_frame["local_date"].astype("datetime64[us]")
    calls_frame["answer_seconds"] = calls_frame["answer_seconds"].astype("float64")
    intervals = pd.DataFrame(
        {
            "source": ["wm", "wm"],
            "interval_start": pd.to_datetime(["2025-03-03 10:00", "2025-04-01 10:00"]),
            "line": ["101", "101"],
            "interval_minutes": [60, 60],
            "answered_10": [3, 100],
            "answered_15": [1, 0],
            "answered_20": [0, 0],
            "answered_40": [0, 0],
            "answered_60": [0, 0],
            "answered_120": [0, 0],
            "answered_over_120": [1, 0],
            "abandoned": [2, 0],
            "offered": [7, 100],
            "last_run_id": [1, 1],
        }
    ).astype({"interval_start": "datetime64[us]"})
    with warehouse.write(warehouse_url) as write:
        warehouse.insert_frame(write, "fct_call", calls_frame)
        warehouse.insert_frame(write, "fct_call_interval", intervals)
    with reader.connect() as conn:
        got = incidents.call_answering(conn, D(2025, 3, 1), D(2025, 3, 31))
    expected = pd.DataFrame(
        {
            "line": pd.Series(["999", "101"], dtype="str"),
            "offered": [4, 7],
            "answered": [3, 5],
            "within_10": [1, 3],
            "share_within_10": [1 / 3, 0.6],
            "band_10_60": [1, 1],
            "band_60_plus": [1, 1],
            "abandoned": [1, 2],
            "abandoned_share": [0.25, 2 / 7],
            "mean_answer_s": [85 / 3, np.nan],
            "mean_bt_s": [3.5, np.nan],
        }
    )
    pd.testing.assert_frame_equal(got, expected)


# ---------------------------------------------------------------------------
# Filters


def test_previous_year_of_a_leap_day_and_bad_levels():
    f = IncidentFilters(D(2024, 2, 1), D(2024, 2, 29))
    assert f.previous_year() == IncidentFilters(D(2023, 2, 1), D(2023, 2, 28))
    with pytest.raises(ValueError):
        IncidentFilters(D(2024, 1, 1), D(2024, 1, 2), area_level="region")


def test_an_incident_attended_after_the_as_at_time_was_open_then(conn):
    # G1-URB-18 began 10:00 UTC on 3 March and was attended 18 minutes later; as
    # at 10:10 it was the only open incident, waiting 10 minutes.
    as_at = dt.datetime(2025, 3, 3, 10, 10)
    queue = incidents.open_queue(conn, MARCH, as_at)
    assert queue[["final_grade", "open_incidents"]].values.tolist() == [["1", 1]]
    assert queue["oldest_wait_min"].tolist() == [pytest.approx(10.0)]
