"""Incident management: time to attend by grade, the queue, drill-down to one incident.

Every figure is on the incident's final grade and is dated by its `reference_at`
(the earliest recorded time), so an incident spanning midnight belongs to the day it
began and the local hour is the wall-clock hour in the source's own zone.

Target per incident: the `dim_incident_grade` row of its final grade whose
[valid_from, valid_to) holds its local date, urban or rural by the incident's LSOA
(`dim_geography.urban_rural`). An incident with no known location (no LSOA, or an
LSOA without a class) is held to the urban target, the stricter one. Within target
means attend_seconds <= target minutes * 60. A grade with no target (Grade 3, 4)
is counted in volumes and medians but never in within-target shares.

A step a source does not record is NULL, never 0: an incident without an arrival
time is not "attended", and its medians are NaN, not 0 minutes.

Speed: over years of incidents the counts come from pre-aggregates the cad load
rebuilds (etl/schema.py: agg_incident_hour and agg_incident_ward), which score each
incident exactly as below, whenever `aggregates_current` says they still match
fct_incident, the targets and the geography, and the user is not limited to areas
(they hold no LSOAs to restrict). Percentiles do not add up: the grade table's for
the page's preset periods are stored whole by the same load
(agg_incident_percentile); any other is read from fct_incident alone, without the
joins scoring needs. Every figure equals the one counted from fct_incident (tests/
test_incident_aggregates.py); otherwise each query counts fct_incident itself.
Newest-first lists read the period's latest days first (`_newest_first`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import Connection, inspect

from etl.schema import (
    AGGREGATE_INPUTS_SQL,
    CALL_AGGREGATE_CURRENT_SQL,
    CALL_BANDS,
)
from queries import areas, scope, stats
from queries.frames import read_frame

LEVELS = areas.LEVELS
STEPS = (
    "call_received",
    "call_answered",
    "incident_created",
    "graded",
    "dispatched",
    "arrived",
    "closed",
)
STEP_COLUMNS = {step: f"{step}_at" for step in STEPS}
# The timeline row each component of attendance ends on.
COMPONENTS = {
    "call_answered": ("answer", "answer_seconds"),
    "dispatched": ("dispatch", "dispatch_seconds"),
    "arrived": ("travel", "travel_seconds"),
}
DEFAULT_TREND_GRADE = "1"
NOT_GRADED = "Not graded"
LINES = ("999", "101")
NO_COMPARISON = "no comparison"

SOURCES_COLUMNS = [
    "source",
    "force_name",
    "incidents",
    "first_date",
    "last_date",
    "lifecycle_recorded",
]
ATTENDANCE_COLUMNS = [
    "final_grade",
    "label",
    "incidents",
    "attended",
    "with_target",
    "within_target",
    "share_within_target",
    "median_attend_min",
    "p90_attend_min",
    "median_answer_s",
    "median_dispatch_s",
    "median_travel_s",
    "target_urban_minutes",
    "target_rural_minutes",
    "incidents_last_year",
    "with_target_last_year",
    "within_target_last_year",
    "share_within_target_last_year",
    "median_attend_min_last_year",
    "z",
    "significance",
]
OPEN_QUEUE_COLUMNS = ["final_grade", "open_incidents", "oldest_wait_min"]
AREA_COLUMNS = [
    "area_code",
    "area_name",
    "incidents",
    "attended",
    "with_target",
    "within_target",
    "share_within_target",
    "median_attend_min",
]
HOUR_COLUMNS = [
    "local_dow",
    "local_hour",
    "incidents",
    "attended",
    "with_target",
    "within_target",
    "share_within_target",
    "median_attend_min",
]
CELL_COLUMNS = [
    "source",
    "incident_id",
    "local_date",
    "reference_at",
    "final_grade",
    "opening_grade",
    "incident_type",
    "attend_min",
    "target_min",
    "within_target",
]
TIMELINE_COLUMNS = [
    "step",
    "at_utc",
    "at_local",
    "minutes_since_previous",
    "component",
    "component_min",
]
WEEKLY_COLUMNS = [
    "week_start",
    "incidents",
    "attended",
    "with_target",
    "within_target",
    "share",
    "target_minutes",
    "centre",
    "lower",
    "upper",
    "outside",
]
EXCEPTION_COLUMNS = [
    "source",
    "incident_id",
    "local_date",
    "reference_at",
    "final_grade",
    "attend_min",
    "target_min",
    "over_by_min",
]
OPEN_PAST_COLUMNS = [
    "source",
    "incident_id",
    "reference_at",
    "final_grade",
    "waiting_min",
    "target_min",
]
ANSWERING_COLUMNS = [
    "line",
    "offered",
    "answered",
    "within_10",
    "share_within_10",
    "band_10_60",
    "band_60_plus",
    "abandoned",
    "abandoned_share",
    "mean_answer_s",
    "mean_bt_s",
]

_GEOGRAPHY_COLUMN = areas.GEOGRAPHY_COLUMN
_FORCE_NAME = areas.FORCE_NAME
_MEASURED = "s.attend_seconds IS NOT NULL AND s.target_min IS NOT NULL"
_WITHIN = "s.attend_seconds <= s.target_min * 60"


def _open(alias: str) -> str:
    """Open at :now: begun by then, neither arrived at nor closed by then (a time
    after :now, when :now is a period's end in the past, was still ahead). Only a
    source that records arrival or closure can say so."""
    return (
        f"({alias}.arrived_at IS NULL OR {alias}.arrived_at > :now) "
        f"AND ({alias}.closed_at IS NULL OR {alias}.closed_at > :now) "
        f"AND ({alias}.lifecycle_recorded LIKE '%arrived%' "
        f"OR {alias}.lifecycle_recorded LIKE '%closed%') "
        f"AND {alias}.reference_at <= :now"
    )


_OPEN = _open("s")


@dataclasses.dataclass(frozen=True)
class IncidentFilters:
    start: dt.date
    end: dt.date
    source: str | None = None
    grades: tuple[str, ...] = ()
    area_level: str = "force"
    area_code: str | None = None

    def __post_init__(self):
        if self.area_level not in LEVELS:
            raise ValueError(f"area_level {self.area_level!r} is not one of {LEVELS}")

    def previous_year(self) -> IncidentFilters:
        """The same dates a year earlier (29 February becomes the 28th)."""
        return dataclasses.replace(
            self, start=year_earlier(self.start), end=year_earlier(self.end)
        )


PRESETS = ("last-28-days", "last-month", "rolling-12", "fytd")


def preset_period(preset: str, latest: dt.date) -> tuple[dt.date, dt.date]:
    """(start, end) of a preset period ending at `latest`, the latest date held.

    The page and the cad load (which stores these periods' percentiles) both read
    this, so what is stored is exactly what the page asks for.
    """
    if preset == "last-28-days":
        return latest - dt.timedelta(days=27), latest
    if preset == "last-month":
        # The latest whole calendar month held: this month only if it is complete.
        next_day = latest + dt.timedelta(days=1)
        end = latest if next_day.day == 1 else latest.replace(day=1) - dt.timedelta(1)
        return end.replace(day=1), end
    if preset == "rolling-12":
        return year_earlier(latest) + dt.timedelta(days=1), latest
    if preset == "fytd":
        return dt.date(latest.year if latest.month >= 4 else latest.year - 1, 4, 1), (
            latest
        )
    raise ValueError(f"unknown preset period {preset!r}; presets are {PRESETS}")


def year_earlier(day: dt.date) -> dt.date:
    """The same date a year earlier (29 February becomes the 28th)."""
    if day.month == 2 and day.day == 29:
        return dt.date(day.year - 1, 2, 28)
    return day.replace(year=day.year - 1)


# ---------------------------------------------------------------------------
# SQL building blocks: fixed fragments chosen by the filters; every value is bound.


def _run(conn: Connection, sql: str, params: dict) -> pd.DataFrame:
    return read_frame(conn, sql, params, expanding=("grades",))


def _params(f: IncidentFilters) -> dict:
    previous = f.previous_year()
    params = {
        "start": f.start,
        "end": f.end,
        "previous_start": previous.start,
        "previous_end": previous.end,
    }
    if f.source is not None:
        params["source"] = f.source
    if f.grades:
        params["grades"] = list(f.grades)
    if f.area_code is not None:
        params["area_code"] = f.area_code
    return params


def _scope(f: IncidentFilters) -> str:
    """Conditions on fct_incident i for f's source, grades and area (not dates)."""
    clauses = []
    if f.source is not None:
        clauses.append("i.source = :source")
    if f.grades:
        clauses.append("i.final_grade IN :grades")
    if f.area_code is not None:
        if f.area_level == "force":
            clauses.append(f"i.force_name = {_FORCE_NAME}")
        elif f.area_level == "lsoa":
            clauses.append("i.lsoa_code = :area_code")
        else:
            column = _GEOGRAPHY_COLUMN[f.area_level]
            clauses.append(
                "i.lsoa_code IN "
                f"(SELECT lsoa_code FROM dim_geography WHERE {column} = :area_code)"
            )
    if scope.restricted():
        clauses.append(scope.lsoa_condition("i.lsoa_code"))
    return " AND ".join(clauses) or "TRUE"


# Each incident's target (see the module's docstring), on fct_incident i: the page
# and the cad load's aggregates score incidents with these same fragments.
TARGET_JOIN = """
    LEFT JOIN dim_geography geo ON geo.lsoa_code = i.lsoa_code
    LEFT JOIN dim_incident_grade d
        ON d.grade = i.final_grade
       AND d.valid_from <= i.local_date
       AND (d.valid_to IS NULL OR i.local_date < d.valid_to)
"""
TARGET_MIN = (
    "CASE WHEN geo.urban_rural = 'rural' THEN d.target_rural_minutes "
    "ELSE d.target_urban_minutes END"
)


def _scored(where: str, name: str = "scored") -> str:
    """A CTE `name`: the incidents matching `where`, each with its target."""
    return f"""
        {name} AS (
            SELECT i.source, i.incident_id, i.force_name, i.reference_at,
                   i.local_date, i.local_hour, i.local_dow, i.time_zone,
                   i.final_grade, i.opening_grade, i.incident_type, i.location,
                   i.lsoa_code, i.channel, i.attending_unit, i.arrived_at,
                   i.closed_at, i.answer_seconds, i.dispatch_seconds,
                   i.travel_seconds, i.attend_seconds, i.lifecycle_recorded,
                   geo.ward_code, geo.lad_code,
                   CASE WHEN geo.urban_rural = 'rural' THEN 'rural' ELSE 'urban' END
                       AS urban_rural,
                   {TARGET_MIN} AS target_min,
                   d.label AS grade_label
            FROM fct_incident i
            {TARGET_JOIN}
            WHERE {where}
        )
    """


def _in_period(f: IncidentFilters) -> str:
    return _scored(f"i.local_date BETWEEN :start AND :end AND {_scope(f)}")


def _measures(suffix: str = "") -> str:
    """Attendance aggregates over the rows of a scored CTE aliased s."""
    return f"""
        count(*) AS incidents{suffix},
        count(s.arrived_at) AS attended{suffix},
        count(*) FILTER (WHERE {_MEASURED}) AS with_target{suffix},
        count(*) FILTER (WHERE {_WITHIN}) AS within_target{suffix},
        percentile_cont(0.5) WITHIN GROUP (ORDER BY s.attend_seconds) / 60.0
            AS median_attend_min{suffix}
    """


# ---------------------------------------------------------------------------
# Sources and what they record


def incident_sources(conn: Connection) -> pd.DataFrame:
    """One row per source: volumes, dates held and the lifecycle steps it records.

    Read from agg_incident_source, which the cad load rebuilds, when it accounts for
    every incident; otherwise (rows written outside the cad load, or a warehouse
    older than the summary) counted from fct_incident.
    """
    if _summary_is_current(conn):
        sql = f"SELECT * FROM {_SOURCE_SUMMARY} ORDER BY source"
    else:
        sql = """
            SELECT source, max(force_name) AS force_name, count(*) AS incidents,
                   min(local_date) AS first_date, max(local_date) AS last_date,
                   max(lifecycle_recorded) AS lifecycle_recorded
            FROM fct_incident
            GROUP BY source
            ORDER BY source
        """
    frame = _run(conn, sql, {})
    return pd.DataFrame(
        {
            "source": _column(frame, "source", "str"),
            "force_name": _column(frame, "force_name", "str"),
            "incidents": _counts(frame, "incidents"),
            "first_date": _dates(frame, "first_date"),
            "last_date": _dates(frame, "last_date"),
            "lifecycle_recorded": _column(frame, "lifecycle_recorded", "str"),
        }
    )[SOURCES_COLUMNS]


_SOURCE_SUMMARY = "agg_incident_source"


def _summary_is_current(conn: Connection) -> bool:
    """Whether agg_incident_source exists and counts exactly fct_incident's rows."""
    return _per_snapshot(conn, "summary", _count_summary)


def _count_summary(conn: Connection) -> bool:
    if not _has_table(conn, _SOURCE_SUMMARY):
        return False
    sql = f"""
        SELECT (SELECT count(*) FROM fct_incident) AS facts,
               (SELECT coalesce(sum(incidents), 0) FROM {_SOURCE_SUMMARY}) AS summed
    """
    row = _run(conn, sql, {}).iloc[0]
    return _int(row["facts"]) == _int(row["summed"])


def not_recorded(conn: Connection, source: str) -> list[str]:
    """The STEPS `source` records for none of its incidents, in lifecycle order."""
    table = _HOUR if aggregates_current(conn) else "fct_incident"
    sql = f"SELECT DISTINCT lifecycle_recorded FROM {table} WHERE source = :source"
    frame = _run(conn, sql, {"source": source})
    recorded = {
        step
        for value in frame.get("lifecycle_recorded", [])
        for step in str(value).split(",")
    }
    return [step for step in STEPS if step not in recorded]


def date_range(
    conn: Connection, source: str | None = None
) -> tuple[dt.date, dt.date] | None:
    sql = "SELECT min(local_date) AS lo, max(local_date) AS hi FROM fct_incident"
    params = {}
    if source is not None:
        sql += " WHERE source = :source"
        params["source"] = source
    row = _run(conn, sql, params).iloc[0]
    if pd.isna(row["lo"]):
        return None
    return pd.Timestamp(row["lo"]).date(), pd.Timestamp(row["hi"]).date()


# ---------------------------------------------------------------------------
# Attendance


def attendance_by_grade(conn: Connection, f: IncidentFilters) -> pd.DataFrame:
    """One row per final grade present in the period (ungraded incidents last).

    `attended` counts incidents with an arrival recorded; `with_target` those whose
    time to attend is known and whose grade carried a target on their date, the
    denominator of `share_within_target`. Targets shown are those in force at f.end.
    Unknown locations are held to the urban target. z compares within-target counts
    with the same dates a year earlier (Poisson); when the source holds no data at
    all in that earlier period (its first date is after the period's end) there is
    nothing to compare with, so z is NaN and significance "no comparison" (not a
    rise from zero).
    """
    if _fast(conn, f, levels=("force", "lad", "ward")):
        frame = _attendance_fast(conn, f)
    else:
        frame = _run(conn, _attendance_sql(f), _params(f))
    # Built as arrays in one go: pandas costs more per column than the query does.
    grades = _column(frame, "final_grade", "str")
    order = _grade_order(grades)
    label = _column(frame, "label", "str").fillna(_column(frame, "label_then", "str"))
    label = label.where(grades.notna(), NOT_GRADED)
    columns = {
        "final_grade": grades.iloc[order].reset_index(drop=True),
        "label": label.iloc[order].reset_index(drop=True),
    }
    for name in ATTENDANCE_COLUMNS:
        if name in columns or name in ("z", "significance") or "share_" in name:
            continue
        if name in ("incidents", "attended", "with_target", "within_target") or (
            name.endswith("_last_year") and not name.startswith("median")
        ):
            columns[name] = _ints(frame, name)[order]
        else:
            columns[name] = _floats(frame, name)[order]
    for suffix in ("", "_last_year"):
        columns[f"share_within_target{suffix}"] = _ratio(
            columns[f"within_target{suffix}"], columns[f"with_target{suffix}"]
        )
    z = stats.poisson_z(
        pd.Series(columns["within_target"]),
        pd.Series(columns["within_target_last_year"]),
    )
    columns["z"] = z.to_numpy()
    columns["significance"] = stats.significance(z)
    if not _held_since(conn, f.source, f.previous_year().end):
        columns["z"] = np.full(len(order), np.nan)
        columns["significance"] = pd.Series([NO_COMPARISON] * len(order), dtype="str")
    return pd.DataFrame(columns)[ATTENDANCE_COLUMNS]


def _floats(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[name]).to_numpy(dtype="float64", na_value=np.nan)


def _ints(frame: pd.DataFrame, name: str) -> np.ndarray:
    """Counts (NULL: 0) as int64; counts are exact in doubles below 2**53."""
    return np.nan_to_num(_floats(frame, name), nan=0.0).astype("int64")


def _ratio(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """part / whole, NaN where whole is 0: _share on arrays."""
    out = np.full(len(whole), np.nan)
    np.divide(part, whole, out=out, where=whole > 0, casting="unsafe")
    return out


def _attendance_sql(f: IncidentFilters) -> str:
    """attendance_by_grade counted from fct_incident (the definition)."""
    # Two scans, one per year, so each percentile sorts only its own period's rows.
    where = _scope(f)
    previous = f"i.local_date BETWEEN :previous_start AND :previous_end AND {where}"
    return f"""
        WITH {_in_period(f)},
        {_scored(previous, "scored_last_year")},
        current_year AS (
            SELECT s.final_grade,
                {_measures()},
                percentile_cont(0.9) WITHIN GROUP (ORDER BY s.attend_seconds) / 60.0
                    AS p90_attend_min,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY s.answer_seconds)
                    AS median_answer_s,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY s.dispatch_seconds)
                    AS median_dispatch_s,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY s.travel_seconds)
                    AS median_travel_s,
                max(s.grade_label) AS label_then
            FROM scored s
            GROUP BY s.final_grade
        ),
        last_year AS (
            SELECT s.final_grade, {_measures(suffix="_last_year")}
            FROM scored_last_year s
            GROUP BY s.final_grade
        )
        SELECT c.*, y.incidents_last_year, y.attended_last_year,
               y.with_target_last_year, y.within_target_last_year,
               y.median_attend_min_last_year,
               e.label, e.target_urban_minutes, e.target_rural_minutes
        FROM current_year c
        LEFT JOIN last_year y ON y.final_grade IS NOT DISTINCT FROM c.final_grade
        LEFT JOIN dim_incident_grade e
            ON e.grade = c.final_grade
           AND e.valid_from <= :end
           AND (e.valid_to IS NULL OR :end < e.valid_to)
    """


def _held_since(conn: Connection, source: str | None, day: dt.date) -> bool:
    """Whether `source` (any source when None) holds incidents from `day` or earlier."""
    held = date_range(conn, source)
    return held is not None and held[0] <= day


def regrade_rate(conn: Connection, f: IncidentFilters) -> dict:
    """Incidents whose final grade differs from the opening one, of those with both.

    Upgraded means a more urgent final grade (a lower grade number: 2 -> 1).
    """
    both = "i.opening_grade IS NOT NULL AND i.final_grade IS NOT NULL"
    more_urgent = (
        "(length(i.final_grade) < length(i.opening_grade) OR "
        "(length(i.final_grade) = length(i.opening_grade) "
        "AND i.final_grade < i.opening_grade))"
    )
    less_urgent = (
        "(length(i.final_grade) > length(i.opening_grade) OR "
        "(length(i.final_grade) = length(i.opening_grade) "
        "AND i.final_grade > i.opening_grade))"
    )
    sql = f"""
        SELECT count(*) FILTER (WHERE {both}) AS with_both,
               count(*) FILTER (WHERE {both} AND i.final_grade <> i.opening_grade)
                   AS regraded,
               count(*) FILTER (WHERE {both} AND {more_urgent}) AS upgraded,
               count(*) FILTER (WHERE {both} AND {less_urgent}) AS downgraded
        FROM fct_incident i
        WHERE i.local_date BETWEEN :start AND :end AND {_scope(f)}
    """
    if _fast(conn, f):  # the same counts, kept per hour by the cad load
        sql = f"""
            SELECT CAST(sum(a.with_both_grades) AS BIGINT) AS with_both,
                   CAST(sum(a.regraded) AS BIGINT) AS regraded,
                   CAST(sum(a.upgraded) AS BIGINT) AS upgraded,
                   CAST(sum(a.downgraded) AS BIGINT) AS downgraded
            FROM {_HOUR} a
            WHERE a.local_date BETWEEN :start AND :end AND {_agg_scope(f)}
        """
    row = _run(conn, sql, _params(f)).iloc[0]
    with_both = _int(row["with_both"])
    regraded = _int(row["regraded"])
    return {
        "incidents_with_both_grades": with_both,
        "regraded": regraded,
        "share": regraded / with_both if with_both else None,
        "upgraded": _int(row["upgraded"]),
        "downgraded": _int(row["downgraded"]),
    }


def open_queue(conn: Connection, f: IncidentFilters, now: dt.datetime) -> pd.DataFrame:
    """Incidents with neither an arrival nor a close, by grade, and the oldest wait.

    `now` is UTC without a zone, like the warehouse. Sources that record neither
    arrival nor closure cannot have an open queue and are left out.
    """
    # Straight from fct_incident: whether an incident is open needs no target.
    sql = f"""
        SELECT i.final_grade, count(*) AS open_incidents,
               min(i.reference_at) AS oldest
        FROM fct_incident i
        WHERE {_open("i")} AND i.local_date BETWEEN :start AND :end AND {_scope(f)}
        GROUP BY i.final_grade
    """
    frame = _run(conn, sql, _params(f) | {"now": now})
    out = pd.DataFrame(
        {
            "final_grade": _column(frame, "final_grade", "str"),
            "open_incidents": _counts(frame, "open_incidents"),
        }
    )
    waited = pd.Timestamp(now) - _timestamps(frame, "oldest")
    out["oldest_wait_min"] = (waited.dt.total_seconds() / 60.0).astype("float64")
    out = out.iloc[_grade_order(out["final_grade"])].reset_index(drop=True)
    return out[OPEN_QUEUE_COLUMNS]


def by_area(conn: Connection, f: IncidentFilters, level: str) -> pd.DataFrame:
    """Every area at `level` inside f's area, areas without incidents as zero rows."""
    if level not in LEVELS:
        raise ValueError(f"level {level!r} is not one of {LEVELS}")
    if LEVELS.index(level) < LEVELS.index(f.area_level):
        raise ValueError(f"level {level!r} is above the filter's {f.area_level!r}")
    if level == "force":
        area_key, incident_key = "a.force_name", "s.force_name"
    else:
        area_key = "a.area_code"
        incident_key = f"s.{_GEOGRAPHY_COLUMN[level]}"
    areas_sql = f"""
        areas AS (
            SELECT a.area_code, a.area_name, {area_key} AS area_key
            FROM dim_area a
            WHERE a.level = :level AND {_membership(f, level)}
        )
    """
    sql = f"""
        WITH {_in_period(f)},
        {areas_sql},
        measured AS (
            SELECT {incident_key} AS area_key, {_measures()}
            FROM scored s
            GROUP BY {incident_key}
        )
        SELECT a.area_code, a.area_name, m.incidents, m.attended, m.with_target,
               m.within_target, m.median_attend_min
        FROM areas a
        LEFT JOIN measured m ON m.area_key = a.area_key
        ORDER BY a.area_name, a.area_code
    """
    if level != "lsoa" and _fast(conn, f, levels=("force", "lad", "ward")):
        # Counts from the aggregates; each area's median from its incidents' times.
        if level == "force":
            table, agg_key, join, key = _HOUR, "a.force_name", "", "i.force_name"
        else:
            column = _GEOGRAPHY_COLUMN[level]
            table, agg_key, key = _WARD, f"a.{column}", f"geo.{column}"
            join = "JOIN dim_geography geo ON geo.lsoa_code = i.lsoa_code"
        sql = f"""
            WITH {areas_sql},
            counted AS (
                SELECT {agg_key} AS area_key, {_agg_counts()}
                FROM {table} a
                WHERE a.local_date BETWEEN :start AND :end AND {_agg_scope(f)}
                GROUP BY {agg_key}
            ),
            medians AS (
                SELECT {key} AS area_key,
                       {_percentile_sql("i.attend_seconds", scale=" / 60.0")}
                           AS median_attend_min
                FROM fct_incident i {join}
                WHERE i.local_date BETWEEN :start AND :end AND {_scope(f)}
                  AND i.attend_seconds IS NOT NULL
                GROUP BY {key}
            )
            SELECT a.area_code, a.area_name, c.incidents, c.attended, c.with_target,
                   c.within_target, m.median_attend_min
            FROM areas a
            LEFT JOIN counted c ON c.area_key = a.area_key
            LEFT JOIN medians m ON m.area_key = a.area_key
            ORDER BY a.area_name, a.area_code
        """
    frame = _run(conn, sql, _params(f) | {"level": level})
    out = pd.DataFrame(
        {
            "area_code": _column(frame, "area_code", "str"),
            "area_name": _column(frame, "area_name", "str"),
        }
    )
    return _with_measures(out, frame)[AREA_COLUMNS]


def _membership(f: IncidentFilters, level: str) -> str:
    return areas.membership(f.area_level, f.area_code, level)


def hour_of_week(conn: Connection, f: IncidentFilters) -> pd.DataFrame:
    """All 168 local hour-of-week cells (0 = Monday 00:00), empty cells as zeros."""
    sql = f"""
        WITH {_in_period(f)}
        SELECT s.local_dow, s.local_hour, {_measures()}
        FROM scored s
        GROUP BY s.local_dow, s.local_hour
    """
    if _fast(conn, f):
        sql = _fast_grouped(
            f, {"local_dow": "{t}.local_dow", "local_hour": "{t}.local_hour"}
        )
    frame = _run(conn, sql, _params(f))
    cells = pd.MultiIndex.from_product(
        [range(7), range(24)], names=["local_dow", "local_hour"]
    )
    if len(frame):
        keys = [frame[k].astype("int64") for k in ("local_dow", "local_hour")]
        frame = frame.set_index(keys).drop(columns=["local_dow", "local_hour"])
    frame = frame.reindex(cells).reset_index(drop=True)
    out = cells.to_frame(index=False).astype("int64")
    return _with_measures(out, frame)[HOUR_COLUMNS]


def _fast_grouped(f: IncidentFilters, keys: dict[str, str]) -> str:
    """SQL: _measures() grouped by `keys` (name -> expression on an incident row, as
    on agg_incident_hour `a` and fct_incident `i`): counts from the aggregate, the
    median from the incidents' own times."""
    on = {name: expression.format(t="a") for name, expression in keys.items()}
    by = {name: expression.format(t="i") for name, expression in keys.items()}
    return f"""
        WITH counted AS (
            SELECT {", ".join(f"{e} AS {n}" for n, e in on.items())}, {_agg_counts()}
            FROM {_HOUR} a
            WHERE a.local_date BETWEEN :start AND :end AND {_agg_scope(f)}
            GROUP BY {", ".join(on.values())}
        ),
        medians AS (
            SELECT {", ".join(f"{e} AS {n}" for n, e in by.items())},
                   {_percentile_sql("i.attend_seconds", scale=" / 60.0")}
                       AS median_attend_min
            FROM fct_incident i
            WHERE i.local_date BETWEEN :start AND :end AND {_scope(f)}
              AND i.attend_seconds IS NOT NULL
            GROUP BY {", ".join(by.values())}
        )
        SELECT c.*, m.median_attend_min
        FROM counted c LEFT JOIN medians m USING ({", ".join(keys)})
    """


def _newest_first(
    conn: Connection, f: IncidentFilters, body: str, params: dict, first_days: int
) -> pd.DataFrame:
    """`body` (a SELECT from the scored CTE, newest reference_at first, LIMIT :limit)
    over f's period, read from its latest `first_days` days first, then 4 times as
    many, and so on.

    A window's rows are the whole period's newest when it fills the limit with rows
    that began a day or more after its first date's midnight UTC: an incident dated
    earlier began before that midnight in its own zone, so at most 12 hours after it
    in UTC (no zone lags UTC by more), older than all of them.
    """
    days = first_days
    while True:
        first = f.end - dt.timedelta(days=days - 1)
        if first <= f.start:
            return _run(conn, f"WITH {_in_period(f)} {body}", params)
        where = f"i.local_date BETWEEN :window_start AND :end AND {_scope(f)}"
        frame = _run(
            conn, f"WITH {_scored(where)} {body}", params | {"window_start": first}
        )
        oldest = pd.to_datetime(frame["reference_at"]).min() if len(frame) else None
        if len(frame) >= params["limit"] > 0 and oldest >= pd.Timestamp(
            first + dt.timedelta(days=1)
        ):
            return frame
        days *= 4


def incidents_in_cell(
    conn: Connection, f: IncidentFilters, dow: int, hour: int, limit: int = 500
) -> pd.DataFrame:
    """The incidents behind one hour-of-week cell, newest first."""
    body = """
        SELECT s.source, s.incident_id, s.local_date, s.reference_at, s.final_grade,
               s.opening_grade, s.incident_type, s.attend_seconds, s.target_min
        FROM scored s
        WHERE s.local_dow = :dow AND s.local_hour = :hour
        ORDER BY s.reference_at DESC, s.source, s.incident_id
        LIMIT :limit
    """
    params = _params(f) | {"dow": int(dow), "hour": int(hour), "limit": int(limit)}
    # A cell holds about 1 of 168 hours: start with weeks enough to fill the list.
    frame = _newest_first(conn, f, body, params, first_days=56)
    out = _incident_list(frame)
    out["opening_grade"] = _column(frame, "opening_grade", "str")
    out["incident_type"] = _column(frame, "incident_type", "str")
    out["within_target"] = _within(frame)
    return out[CELL_COLUMNS]


def exceptions(
    conn: Connection, f: IncidentFilters, margin_minutes: float = 5, limit: int = 200
) -> pd.DataFrame:
    """Attended incidents that took longer than their target plus a margin."""
    body = """
        SELECT s.source, s.incident_id, s.local_date, s.reference_at, s.final_grade,
               s.attend_seconds, s.target_min
        FROM scored s
        WHERE s.attend_seconds > (s.target_min + :margin) * 60
        ORDER BY s.reference_at DESC, s.source, s.incident_id
        LIMIT :limit
    """
    params = _params(f) | {"margin": float(margin_minutes), "limit": int(limit)}
    out = _incident_list(_newest_first(conn, f, body, params, first_days=8))
    out["over_by_min"] = (out["attend_min"] - out["target_min"]).astype("float64")
    return out[EXCEPTION_COLUMNS]


def open_past_target(
    conn: Connection, f: IncidentFilters, now: dt.datetime, limit: int = 200
) -> pd.DataFrame:
    """Open incidents (no arrival, no close) waiting longer than their target."""
    sql = f"""
        WITH {_in_period(f)}
        SELECT s.source, s.incident_id, s.reference_at, s.final_grade, s.target_min
        FROM scored s
        WHERE {_OPEN} AND s.target_min IS NOT NULL
          AND :now_epoch - extract(epoch FROM s.reference_at) > s.target_min * 60
        ORDER BY s.reference_at DESC, s.source, s.incident_id
        LIMIT :limit
    """
    params = _params(f) | {
        "now": now,
        "now_epoch": _epoch(now),
        "limit": int(limit),
    }
    frame = _run(conn, sql, params)
    out = pd.DataFrame(
        {
            "source": _column(frame, "source", "str"),
            "incident_id": _column(frame, "incident_id", "str"),
            "reference_at": _timestamps(frame, "reference_at"),
            "final_grade": _column(frame, "final_grade", "str"),
        }
    )
    waited = pd.Timestamp(now) - out["reference_at"]
    out["waiting_min"] = (waited.dt.total_seconds() / 60.0).astype("float64")
    out["target_min"] = _column(frame, "target_min", "float64")
    return out[OPEN_PAST_COLUMNS]


def _epoch(moment: dt.datetime) -> float:
    """Seconds since 1970 of a zone-less UTC time, as extract(epoch) reads one."""
    return (moment - dt.datetime(1970, 1, 1)).total_seconds()


# ---------------------------------------------------------------------------
# One incident


def _one_incident() -> str:
    return (
        "i.source = :source AND i.incident_id = :incident_id AND "
        + scope.lsoa_condition("i.lsoa_code")
    )


def incident_detail(conn: Connection, source: str, incident_id: str) -> dict | None:
    """Every fct_incident column plus label, target_min, urban_rural, within_target."""
    sql = f"""
        WITH {_scored(_one_incident())}
        SELECT i.*, s.urban_rural, s.target_min, s.grade_label AS label
        FROM fct_incident i
        JOIN scored s ON s.source = i.source AND s.incident_id = i.incident_id
    """
    frame = _run(conn, sql, {"source": source, "incident_id": incident_id})
    if frame.empty:
        return None
    row = frame.iloc[0]
    detail = {key: _plain(value) for key, value in row.items()}
    for key in ("local_date",):
        if detail[key] is not None:
            detail[key] = pd.Timestamp(detail[key]).date()
    attend, target = detail["attend_seconds"], detail["target_min"]
    detail["attend_min"] = None if attend is None else attend / 60.0
    detail["within_target"] = (
        None if attend is None or target is None else bool(attend <= target * 60)
    )
    return detail


def incident_timeline(conn: Connection, source: str, incident_id: str) -> pd.DataFrame:
    """One row per lifecycle step, NaT where the step is not recorded.

    `minutes_since_previous` runs from the previous recorded step; `component_min`
    is the answer, dispatch or travel time ending at that step, which add up to the
    time to attend whenever the call's receipt and answer are recorded.
    """
    columns = ", ".join(STEP_COLUMNS.values())
    sql = f"""
        SELECT {columns}, time_zone, answer_seconds, dispatch_seconds, travel_seconds
        FROM fct_incident i
        WHERE {_one_incident()}
    """
    frame = _run(conn, sql, {"source": source, "incident_id": incident_id})
    if frame.empty:
        return pd.DataFrame(
            {
                "step": pd.Series(dtype="str"),
                "at_utc": pd.Series(dtype="datetime64[us]"),
                "at_local": pd.Series(dtype="datetime64[us]"),
                "minutes_since_previous": pd.Series(dtype="float64"),
                "component": pd.Series(dtype=object),
                "component_min": pd.Series(dtype="float64"),
            }
        )
    row = frame.iloc[0]
    at_utc = pd.Series(
        [
            pd.Timestamp(row[c]) if pd.notna(row[c]) else pd.NaT
            for c in STEP_COLUMNS.values()
        ],
        dtype="datetime64[us]",
    )
    zone = ZoneInfo(str(row["time_zone"]))
    at_local = (
        at_utc.dt.tz_localize("UTC").dt.tz_convert(zone).dt.tz_localize(None)
    ).astype("datetime64[us]")
    since = at_utc - at_utc.ffill().shift(1)
    components = [COMPONENTS.get(step, (None, None)) for step in STEPS]
    component_min = [
        row[column] / 60.0 if column and pd.notna(row[column]) else np.nan
        for _, column in components
    ]
    return pd.DataFrame(
        {
            "step": pd.Series(STEPS, dtype="str"),
            "at_utc": at_utc,
            "at_local": at_local,
            "minutes_since_previous": (since.dt.total_seconds() / 60.0).astype(
                "float64"
            ),
            "component": pd.Series([name for name, _ in components], dtype=object),
            "component_min": pd.Series(component_min, dtype="float64"),
        }
    )[TIMELINE_COLUMNS]


# ---------------------------------------------------------------------------
# Trend


def weekly_within_target(conn: Connection, f: IncidentFilters) -> pd.DataFrame:
    """Weekly share within target (weeks start Monday) with p-chart limits.

    A target line belongs to one grade, so the trend is of f's grades, or of Grade 1
    when f names none. `target_minutes` is the urban target in force on each Monday
    for f's grade when it names exactly one, else for Grade 1.
    """
    if not f.grades:
        f = dataclasses.replace(f, grades=(DEFAULT_TREND_GRADE,))
    sql = f"""
        WITH {_in_period(f)}
        SELECT CAST(s.local_date - CAST(s.local_dow AS INTEGER) AS DATE) AS week_start,
               {_measures()}
        FROM scored s
        GROUP BY 1
    """
    if _fast(conn, f):
        week = "CAST({t}.local_date - CAST({t}.local_dow AS INTEGER) AS DATE)"
        sql = _fast_grouped(f, {"week_start": week})
    frame = _run(conn, sql, _params(f))
    first = f.start - dt.timedelta(days=f.start.weekday())
    weeks = [
        first + dt.timedelta(days=7 * n) for n in range((f.end - first).days // 7 + 1)
    ]
    if len(frame):
        frame = frame.set_index(pd.to_datetime(frame["week_start"]).dt.date)
    frame = frame.reindex(weeks).reset_index(drop=True)
    out = pd.DataFrame({"week_start": pd.Series(weeks, dtype=object)})
    out = _with_measures(out, frame)
    out["share"] = out.pop("share_within_target")
    grade = f.grades[0] if len(f.grades) == 1 else DEFAULT_TREND_GRADE
    out["target_minutes"] = _targets_on(conn, grade, weeks)
    chart = stats.p_chart(out["within_target"], out["with_target"])
    out = pd.concat([out, chart[["centre", "lower", "upper", "outside"]]], axis=1)
    return out[WEEKLY_COLUMNS]


def _targets_on(conn: Connection, grade: str, days: list[dt.date]) -> pd.Series:
    sql = """
        SELECT valid_from, valid_to, target_urban_minutes
        FROM dim_incident_grade WHERE grade = :grade
    """
    rows = _run(conn, sql, {"grade": grade})
    periods = [
        (
            pd.Timestamp(r.valid_from).date(),
            None if pd.isna(r.valid_to) else pd.Timestamp(r.valid_to).date(),
            r.target_urban_minutes,
        )
        for r in rows.itertuples()
    ]
    values = []
    for day in days:
        found = [t for lo, hi, t in periods if lo <= day and (hi is None or day < hi)]
        values.append(float(found[0]) if found and pd.notna(found[0]) else np.nan)
    return pd.Series(values, dtype="float64")


# ---------------------------------------------------------------------------
# Call answering


def call_answering(
    conn: Connection,
    start: dt.date,
    end: dt.date,
    source: str | None = None,
) -> pd.DataFrame:
    """999 and 101 answering for local dates start..end, from calls and intervals.

    Bands as in `queries.calls` (under 10 s, 10 to under 60 s, 60 s and over; share
    of calls answered). Mean answer and mean BT leg need call-level times: NaN where
    only interval reports are held. Summed from the calls load's daily aggregate
    while it matches the facts (`calls_aggregate_current`), else counted from them:
    the same figures either way (tests/test_call_aggregate.py).
    """
    raw = _answering(conn, start, end, source)
    position = {str(line): n for n, line in enumerate(raw.get("line", []))}
    lines = list(LINES) + [x for x in position if x not in LINES]
    rows = [position.get(line) for line in lines]

    def aligned(name: str) -> np.ndarray:  # one value per line, NaN where none
        values = _floats(raw, name)
        return np.array([np.nan if n is None else values[n] for n in rows])

    def counted(name: str) -> np.ndarray:
        return np.nan_to_num(aligned(name), nan=0.0).astype("int64")

    within = counted("answered_within_10")
    band_10_60 = counted("answered_10_to_60")
    band_60_plus = counted("answered_60_plus")
    answered = within + band_10_60 + band_60_plus
    abandoned, offered = counted("abandoned"), counted("offered")
    out = pd.DataFrame(
        {
            "line": pd.Series(lines, dtype="str"),
            "offered": offered,
            "answered": answered,
            "within_10": within,
            "share_within_10": _ratio(within, answered),
            "band_10_60": band_10_60,
            "band_60_plus": band_60_plus,
            "abandoned": abandoned,
            "abandoned_share": _ratio(abandoned, offered),
            "mean_answer_s": _ratio(
                aligned("answer_seconds_sum"), aligned("answer_seconds_n")
            ),
            "mean_bt_s": _ratio(aligned("bt_seconds_sum"), aligned("bt_calls")),
        }
    )
    return out[ANSWERING_COLUMNS]


def _answering(
    conn: Connection, start: dt.date, end: dt.date, source: str | None
) -> pd.DataFrame:
    """calls.answering_bands' and calls.bt_leg's sums for whole local dates, in one
    read: per line, the bands, abandoned, offered and the sums behind the means.

    From agg_call_day when it is current and the user sees every area; else from
    fct_call and fct_call_interval. Both sum seconds as whole microseconds, exact in
    any order, so both give the same figures to the last bit.
    """
    params = {
        "start": start,
        "end": end,
        "after": dt.datetime.combine(start, dt.time()),
        "before": dt.datetime.combine(end + dt.timedelta(days=1), dt.time()),
    }
    by_source = ""
    if source is not None:
        by_source = " AND source = :source"
        params["source"] = source
    if scope.restricted():  # calls carry no location: see calls.NOT_BY_AREA
        shaped = _answering_exact(by_source + " AND FALSE")
    elif calls_aggregate_current(conn):
        shaped = f"""
            SELECT line, {", ".join(name for name, _ in CALL_BANDS)}, abandoned,
                   offered, answer_microseconds, answer_seconds_n,
                   bt_microseconds, bt_seconds_n AS bt_calls
            FROM agg_call_day
            WHERE local_date BETWEEN :start AND :end{by_source}
        """
    else:
        shaped = _answering_exact(by_source)
    sql = f"""
        WITH shaped AS ({shaped})
        SELECT line,
            sum(answered_10) AS answered_within_10,
            sum(answered_15 + answered_20 + answered_40 + answered_60)
                AS answered_10_to_60,
            sum(answered_120 + answered_over_120) AS answered_60_plus,
            sum(abandoned) AS abandoned,
            sum(offered) AS offered,
            {_seconds("answer_microseconds")} AS answer_seconds_sum,
            sum(answer_seconds_n) AS answer_seconds_n,
            {_seconds("bt_microseconds")} AS bt_seconds_sum,
            sum(bt_calls) AS bt_calls
        FROM shaped
        GROUP BY line
        ORDER BY line
    """
    return _run(conn, sql, params)


def _seconds(microseconds: str) -> str:
    """SQL: a sum of whole microseconds (exact) in seconds, computed alike on every
    path (a double holds such sums exactly below 2**53 us, 285 years of waiting)."""
    return f"CAST(sum({microseconds}) AS DOUBLE PRECISION) / 1000000"


def _answering_exact(by_source: str) -> str:
    """_answering's per-line rows counted from fct_call and fct_call_interval."""
    # Calls are counted per line and answer time first (a year is over a million
    # calls but a few thousand distinct times), then banded as queries.calls bands
    # them (etl.schema.CALL_BANDS): the same counts, at a fraction of the cost.
    banded = ",\n".join(
        f"sum(CASE WHEN {condition} THEN calls ELSE 0 END) AS {name}"
        for name, condition in CALL_BANDS
    )
    return f"""
        WITH by_time AS (
            SELECT line, answer_seconds, count(*) AS calls,
                   count(answered_at) AS answered_calls,
                   count(answer_seconds)
                       * CAST(round(answer_seconds * 1000000) AS BIGINT)
                       AS answer_microseconds,
                   count(answer_seconds) AS answer_seconds_n,
                   sum(CAST(round(bt_seconds * 1000000) AS BIGINT))
                       AS bt_microseconds,
                   count(bt_seconds) AS bt_calls
            FROM fct_call
            WHERE local_date BETWEEN :start AND :end{by_source}
            GROUP BY line, answer_seconds
        )
        SELECT line, {banded},
               sum(calls - answered_calls) AS abandoned, sum(calls) AS offered,
               sum(answer_microseconds) AS answer_microseconds,
               sum(answer_seconds_n) AS answer_seconds_n,
               sum(bt_microseconds) AS bt_microseconds, sum(bt_calls) AS bt_calls
        FROM by_time
        GROUP BY line
        UNION ALL
        SELECT line, answered_10, answered_15, answered_20, answered_40,
               answered_60, answered_120, answered_over_120, abandoned, offered,
               NULL AS answer_microseconds, 0 AS answer_seconds_n,
               NULL AS bt_microseconds, 0 AS bt_calls
        FROM fct_call_interval
        WHERE interval_start >= :after AND interval_start < :before{by_source}
    """


def calls_aggregate_current(conn: Connection) -> bool:
    """Whether agg_call_day holds exactly what fct_call and fct_call_interval hold
    now (etl.schema.CALL_AGGREGATE_CURRENT_SQL): rows added, removed or rewritten
    outside the calls load make it stale until that load runs again."""
    return _per_snapshot(conn, "calls", _compare_call_state)


def _compare_call_state(conn: Connection) -> bool:
    if not _has_table(conn, "agg_call_state"):
        return False
    frame = _run(conn, CALL_AGGREGATE_CURRENT_SQL, {})
    return len(frame) == 1 and bool(frame["current"].iloc[0])


# ---------------------------------------------------------------------------
# Pre-aggregates: when they may be read, and what is read from them

_STATE = "agg_incident_state"
_HOUR = "agg_incident_hour"
_PERCENTILE_TABLE = "agg_incident_percentile"
_WARD = "agg_incident_ward"
# Published DuckDB snapshots never change: whether their summaries are current is
# remembered per file (path, inode, mtime, size), so a page asks once per ETL run.
_SNAPSHOT_NAME = re.compile(r"^v\d+\.duckdb$")
_current_by_snapshot: dict[tuple, bool] = {}
_tables_seen: set[tuple[str, str]] = set()


def aggregates_current(conn: Connection) -> bool:
    """Whether the incident pre-aggregates were built from exactly what fct_incident,
    dim_incident_grade and dim_geography hold now (agg_incident_state).

    A load outside the cad source, a change of targets or a boundary reload makes
    them stale until the next cad load rebuilds them; until then nothing reads them.
    """
    return _per_snapshot(conn, "aggregates", _compare_state)


def _compare_state(conn: Connection) -> bool:
    if not _has_table(conn, _STATE):
        return False
    sql = f"""
        SELECT s.fact_rows = n.fact_rows AND s.grades_hash = n.grades_hash
               AND s.geography_hash = n.geography_hash AS current
        FROM {_STATE} s CROSS JOIN ({AGGREGATE_INPUTS_SQL}) n
    """
    frame = _run(conn, sql, {})
    return len(frame) == 1 and bool(frame["current"].iloc[0])


def _per_snapshot(conn: Connection, name: str, check) -> bool:
    """check(conn), remembered per published DuckDB snapshot (they never change)."""
    snapshot = _snapshot_identity(conn)
    if snapshot is None:
        return check(conn)
    key = (name, *snapshot)
    if key not in _current_by_snapshot:
        if len(_current_by_snapshot) > 64:
            _current_by_snapshot.clear()
        _current_by_snapshot[key] = check(conn)
    return _current_by_snapshot[key]


def _snapshot_identity(conn: Connection) -> tuple | None:
    """A published, read-only DuckDB snapshot file's identity; None for anything else
    (PostgreSQL, a writer's working copy)."""
    if conn.dialect.name != "duckdb":
        return None
    database = conn.engine.url.database
    if not database:
        return None
    path = Path(database)
    if not (_SNAPSHOT_NAME.match(path.name) and path.parent.name.endswith(".d")):
        return None
    try:
        stat = path.stat()
    except OSError:
        return None
    return (str(path), stat.st_ino, stat.st_mtime_ns, stat.st_size)


def _has_table(conn: Connection, table: str) -> bool:
    """inspect().has_table, remembered once true (tables are never dropped)."""
    key = (str(conn.engine.url), table)
    if key in _tables_seen:
        return True
    if inspect(conn).has_table(table):
        _tables_seen.add(key)
        return True
    return False


def _fast(conn: Connection, f: IncidentFilters, levels=("force",)) -> bool:
    """Whether f may be answered from the pre-aggregates: the user sees every area
    (they hold no LSOAs to apply a scope to), f's area is at one of `levels`, and
    they are current."""
    return (
        not scope.restricted() and f.area_level in levels and aggregates_current(conn)
    )


def _agg_scope(f: IncidentFilters, alias: str = "a") -> str:
    """_scope(f) on a pre-aggregate row: source, final grades and area."""
    clauses = []
    if f.source is not None:
        clauses.append(f"{alias}.source = :source")
    if f.grades:
        clauses.append(f"{alias}.final_grade IN :grades")
    if f.area_code is not None:
        if f.area_level == "force":
            clauses.append(f"{alias}.force_name = {_FORCE_NAME}")
        else:  # agg_incident_ward only: _fast(levels=...) says which
            clauses.append(f"{alias}.{_GEOGRAPHY_COLUMN[f.area_level]} = :area_code")
    return " AND ".join(clauses) or "TRUE"


def _agg_counts(alias: str = "a", suffix: str = "") -> str:
    return ",\n".join(
        f"CAST(sum({alias}.{name}) AS BIGINT) AS {name}{suffix}"
        for name in ("incidents", "attended", "with_target", "within_target")
    )


def _attendance_fast(conn: Connection, f: IncidentFilters) -> pd.DataFrame:
    """_attendance_sql's frame: counts summed from agg_incident_hour (or, inside a
    local authority or ward, agg_incident_ward), percentiles by _grade_percentiles."""
    where = _agg_scope(f)
    table = _HOUR if f.area_level == "force" else _WARD
    sql = f"""
        WITH current_year AS (
            SELECT a.final_grade, {_agg_counts()}, max(d.label) AS label_then
            FROM {table} a
            LEFT JOIN dim_incident_grade d
                ON d.grade = a.final_grade
               AND d.valid_from <= a.local_date
               AND (d.valid_to IS NULL OR a.local_date < d.valid_to)
            WHERE a.local_date BETWEEN :start AND :end AND {where}
            GROUP BY a.final_grade
        ),
        last_year AS (
            SELECT a.final_grade, {_agg_counts(suffix="_last_year")}
            FROM {table} a
            WHERE a.local_date BETWEEN :previous_start AND :previous_end AND {where}
            GROUP BY a.final_grade
        )
        SELECT c.*, y.incidents_last_year, y.attended_last_year,
               y.with_target_last_year, y.within_target_last_year,
               e.label, e.target_urban_minutes, e.target_rural_minutes
        FROM current_year c
        LEFT JOIN last_year y ON y.final_grade IS NOT DISTINCT FROM c.final_grade
        LEFT JOIN dim_incident_grade e
            ON e.grade = c.final_grade
           AND e.valid_from <= :end
           AND (e.valid_to IS NULL OR :end < e.valid_to)
    """
    frame = _run(conn, sql, _params(f))
    grades = [_key(g) for g in frame.get("final_grade", [])]
    previous = f.previous_year()
    for (start, end), columns, suffix in [
        ((f.start, f.end), _PERCENTILES, ""),
        ((previous.start, previous.end), ("median_attend_min",), "_last_year"),
    ]:
        found = _grade_percentiles(conn, f, start, end, columns)
        by_grade = {_key(row["final_grade"]): row for row in found.to_dict("records")}
        for column in columns:
            values = [by_grade.get(g, {}).get(column) for g in grades]
            frame[column + suffix] = pd.to_numeric(
                pd.Series(values, index=frame.index, dtype=object)
            ).astype("float64")
    return frame


def _key(grade) -> str | None:
    """A final grade as a dict key: None for ungraded (NULL, NaN or NA)."""
    return None if grade is None or pd.isna(grade) else str(grade)


_PERCENTILES = (
    "median_attend_min",
    "p90_attend_min",
    "median_answer_s",
    "median_dispatch_s",
    "median_travel_s",
)


def _grade_percentiles(
    conn: Connection,
    f: IncidentFilters,
    start: dt.date,
    end: dt.date,
    columns: tuple[str, ...],
) -> pd.DataFrame:
    """Per final grade, `columns` of _PERCENTILES over f's incidents dated start..end.

    Read from agg_incident_percentile when the cad load computed that period for f's
    source (and f names no area); else computed here from fct_incident, without the
    joins that scoring needs. Both are percentile_cont over the same rows.
    """
    params = _params(f) | {"p_start": start, "p_end": end}
    if f.area_code is None:
        source = "p.source IS NULL" if f.source is None else "p.source = :source"
        sql = f"""
            SELECT p.final_grade, {", ".join(f"p.{c}" for c in columns)}
            FROM {_PERCENTILE_TABLE} p
            WHERE {source} AND p.start_date = :p_start AND p.end_date = :p_end
        """
        lookup = {k: params[k] for k in ("source", "p_start", "p_end") if k in params}
        frame = _run(conn, sql, lookup)
        if len(frame):
            return frame
    attend = "i.attend_seconds"
    selects = []
    if "p90_attend_min" in columns:  # one sort gives both, interpolated alike
        if conn.dialect.name == "duckdb":
            both = f"quantile_cont({attend}, [0.5, 0.9])"
        else:
            both = f"percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY {attend})"
        selects.append(f"{both} AS attend_quantiles")
    elif "median_attend_min" in columns:
        median = _percentile_sql(attend, scale=" / 60.0")
        selects.append(f"{median} AS median_attend_min")
    for name, column in [
        ("median_answer_s", "i.answer_seconds"),
        ("median_dispatch_s", "i.dispatch_seconds"),
        ("median_travel_s", "i.travel_seconds"),
    ]:
        if name in columns:
            selects.append(f"{_percentile_sql(column)} AS {name}")
    sql = f"""
        SELECT i.final_grade, {", ".join(selects)}
        FROM fct_incident i
        WHERE i.local_date BETWEEN :p_start AND :p_end AND {_scope(f)}
        GROUP BY i.final_grade
    """
    frame = _run(conn, sql, params)
    if "attend_quantiles" in frame:
        pairs = [
            (None, None) if v is None or np.ndim(v) == 0 else tuple(v)
            for v in frame.pop("attend_quantiles")
        ]
        for n, name in enumerate(("median_attend_min", "p90_attend_min")):
            seconds = pd.Series([p[n] for p in pairs], dtype=object)
            # As percentile_cont(...) / 60.0 in SQL: the same double division.
            minutes = pd.to_numeric(seconds).astype("float64") / 60.0
            frame[name] = minutes.to_numpy()
    return frame


def _percentile_sql(column: str, q: float = 0.5, scale: str = "") -> str:
    return f"percentile_cont({q}) WITHIN GROUP (ORDER BY {column}){scale}"


# ---------------------------------------------------------------------------
# Frame helpers


def _with_measures(out: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Add the _measures() columns of `frame` (row-aligned with `out`) to `out`."""
    out = out.copy()
    for name in ("incidents", "attended", "with_target", "within_target"):
        out[name] = _counts(frame, name)
    out["share_within_target"] = _share(out["within_target"], out["with_target"])
    out["median_attend_min"] = _column(frame, "median_attend_min", "float64")
    return out


def _incident_list(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "source": _column(frame, "source", "str"),
            "incident_id": _column(frame, "incident_id", "str"),
            "local_date": _dates(frame, "local_date"),
            "reference_at": _timestamps(frame, "reference_at"),
            "final_grade": _column(frame, "final_grade", "str"),
        }
    )
    out["attend_min"] = _column(frame, "attend_seconds", "float64") / 60.0
    out["target_min"] = _column(frame, "target_min", "float64")
    return out


def _within(frame: pd.DataFrame) -> pd.Series:
    attend = _column(frame, "attend_seconds", "float64")
    target = _column(frame, "target_min", "float64")
    within = pd.Series(attend <= target * 60, dtype="boolean")
    return within.mask(attend.isna() | target.isna())


def _share(part: pd.Series, whole: pd.Series) -> pd.Series:
    whole = pd.to_numeric(whole).astype("float64")
    return (pd.to_numeric(part).astype("float64") / whole.where(whole > 0)).astype(
        "float64"
    )


def _grade_order(grades: pd.Series) -> list[int]:
    """Positions sorting grades naturally ("1" < "2" < "10"), missing grades last."""
    keys = [
        (pd.isna(g), 0 if pd.isna(g) else len(str(g)), "" if pd.isna(g) else str(g))
        for g in grades
    ]
    return sorted(range(len(keys)), key=keys.__getitem__)


def _column(frame: pd.DataFrame, name: str, dtype: str) -> pd.Series:
    if name not in frame.columns:
        return pd.Series([None] * len(frame), dtype=dtype)
    values = frame[name]
    if dtype in ("float64", "Int64", "int64"):
        values = pd.to_numeric(values)
    return values.astype(dtype).reset_index(drop=True)


def _counts(frame: pd.DataFrame, name: str) -> pd.Series:
    return _column(frame, name, "Int64").fillna(0).astype("int64")


def _dates(frame: pd.DataFrame, name: str) -> pd.Series:
    """Python dates (object dtype) from whichever date type the driver returned."""
    if name not in frame.columns or not len(frame):
        return pd.Series([None] * len(frame), dtype=object)
    values = pd.to_datetime(frame[name])
    return pd.Series([None if pd.isna(v) else v.date() for v in values], dtype=object)


def _timestamps(frame: pd.DataFrame, name: str) -> pd.Series:
    if name not in frame.columns:
        return pd.Series([pd.NaT] * len(frame), dtype="datetime64[us]")
    return pd.to_datetime(frame[name]).astype("datetime64[us]").reset_index(drop=True)


def _int(value) -> int:
    return 0 if value is None or pd.isna(value) else int(value)


def _plain(value):
    """A Python value for a dict: None for NULL, builtins for numpy scalars."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value
