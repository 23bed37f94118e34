"""Default incident grades and their attendance targets, as data with valid dates.

West Midlands Police's scheme: Grade 1 "Immediate" and Grade 2 "Priority" carry
attendance targets (since 2011-01-01: 15 min urban / 20 min rural and 60 min;
before that 10 and 30 min); Grades 3 and 4 carry none. A force with another scheme
replaces the rows in `dim_incident_grade`; the cad source only fills an empty table.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Connection, func, select

from etl import warehouse
from etl.schema import dim_incident_grade

TARGETS_CHANGED = dt.date(2011, 1, 1)
# The earliest date the warehouse expects; the pre-2011 targets apply back to it.
EARLIEST = dt.date(2000, 1, 1)

DEFAULT_GRADES: list[dict] = [
    # Before 2011 there was one target per grade, not an urban/rural pair.
    {
        "grade_key": 1,
        "grade": "1",
        "label": "Immediate",
        "target_urban_minutes": 10.0,
        "target_rural_minutes": 10.0,
        "valid_from": EARLIEST,
        "valid_to": TARGETS_CHANGED,
    },
    {
        "grade_key": 2,
        "grade": "2",
        "label": "Priority",
        "target_urban_minutes": 30.0,
        "target_rural_minutes": 30.0,
        "valid_from": EARLIEST,
        "valid_to": TARGETS_CHANGED,
    },
    {
        "grade_key": 3,
        "grade": "1",
        "label": "Immediate",
        "target_urban_minutes": 15.0,
        "target_rural_minutes": 20.0,
        "valid_from": TARGETS_CHANGED,
        "valid_to": None,
    },
    {
        "grade_key": 4,
        "grade": "2",
        "label": "Priority",
        "target_urban_minutes": 60.0,
        "target_rural_minutes": 60.0,
        "valid_from": TARGETS_CHANGED,
        "valid_to": None,
    },
    {
        "grade_key": 5,
        "grade": "3",
        "label": "Scheduled",
        "target_urban_minutes": None,
        "target_rural_minutes": None,
        "valid_from": EARLIEST,
        "valid_to": None,
    },
    {
        "grade_key": 6,
        "grade": "4",
        "label": "Resolved without deployment",
        "target_urban_minutes": None,
        "target_rural_minutes": None,
        "valid_from": EARLIEST,
        "valid_to": None,
    },
]


def default_grades() -> pd.DataFrame:
    frame = pd.DataFrame(DEFAULT_GRADES)
    for column in ("target_urban_minutes", "target_rural_minutes"):
        frame[column] = frame[column].astype("float64")
    for column in ("valid_from", "valid_to"):
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[us]")
    return frame


def ensure_default_grades(conn: Connection) -> int:
    """Fill `dim_incident_grade` with the defaults if it is empty; rows inserted."""
    count = conn.execute(select(func.count()).select_from(dim_incident_grade)).scalar()
    if count:
        return 0
    return warehouse.insert_frame(conn, "dim_incident_grade", default_grades())
