"""Trend series for the overview's tiles: weekly call answering, weekly Grade 1
attendance and the open queue at each day's end. SQL in, DataFrame out.

Each series is the tile's own measure, cut by time, with the tile's definition: the
weeks of a call series add up to the call-answering figures of `incidents` for the
same dates, and the Grade 1 weeks are `incidents.weekly_within_target`'s for Grade 1.
Weeks start on Monday; every week of the period has a row, empty weeks NaN.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pandas as pd
from sqlalchemy import Connection

from etl.schema import CALL_BANDS
from queries import incidents, scope
from queries.incidents import IncidentFilters

WEEKLY_CALL_COLUMNS = [
    "line",
    "week_start",
    "offered",
    "answered",
    "within_10",
    "share_within_10",
    "mean_answer_s",
]
WEEKLY_GRADE1_COLUMNS = [
    "week_start",
    "incidents",
    "attended",
    "with_target",
    "within_target",
    "share",
    "median_attend_min",
]
OPEN_BY_DAY_COLUMNS = ["day", "open_incidents"]
GRADE1 = "1"


def _monday(day_sql: str) -> str:
    """SQL: the Monday of the week holding the date `day_sql` (both engines)."""
    return (
        f"CAST({day_sql} - CAST(extract(isodow FROM {day_sql}) AS INTEGER) + 1 AS DATE)"
    )


def weeks_of(start: dt.date, end: dt.date) -> list[dt.date]:
    """The Mondays of every week that overlaps start..end."""
    first = start - dt.timedelta(days=start.weekday())
    return [
        first + dt.timedelta(days=7 * n) for n in range((end - first).days // 7 + 1)
    ]


def weekly_calls(
    conn: Connection, start: dt.date, end: dt.date, source: str | None = None
) -> pd.DataFrame:
    """Per line (999 and 101 first) and week: offered, answered, answered in under
    10 s and the mean answer time, for local dates start..end.

    The same calls as `incidents.call_answering` (call-level rows by local date,
    interval reports by their local start), from the same daily aggregate when it
    is current, so the weeks sum to its figures. The mean needs call-level times:
    NaN for weeks held only as interval reports.
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
    answered = " + ".join(name for name, _ in CALL_BANDS)
    if scope.restricted():  # calls carry no location: see calls.NOT_BY_AREA
        shaped = _weekly_calls_exact(by_source + " AND FALSE")
    elif incidents.calls_aggregate_current(conn):
        shaped = f"""
            SELECT {_monday("local_date")} AS week_start, line,
                   sum(offered) AS offered, sum({answered}) AS answered,
                   sum(answered_10) AS within_10,
                   sum(answer_microseconds) AS answer_microseconds,
                   sum(answer_seconds_n) AS timed
            FROM agg_call_day
            WHERE local_date BETWEEN :start AND :end{by_source}
            GROUP BY 1, 2
        """
    else:
        shaped = _weekly_calls_exact(by_source)
    sql = f"""
        WITH shaped AS ({shaped})
        SELECT week_start, line, sum(offered) AS offered, sum(answered) AS answered,
               sum(within_10) AS within_10,
               {incidents._seconds("answer_microseconds")} AS answer_seconds_sum,
               sum(timed) AS timed
        FROM shaped
        GROUP BY 1, 2
    """
    frame = incidents._run(conn, sql, params)
    return _weekly_call_frame(frame, weeks_of(start, end))


def _weekly_calls_exact(by_source: str) -> str:
    """weekly_calls' rows per week and line counted from fct_call and
    fct_call_interval."""
    interval_day = "CAST(interval_start AS DATE)"
    answered = " + ".join(name for name, _ in CALL_BANDS)
    # `timed` (calls with an answer time) is the mean's denominator: interval
    # reports add to `answered` but carry no times. Seconds are summed as whole
    # microseconds, as incidents.call_answering sums them.
    return f"""
        SELECT {_monday("local_date")} AS week_start, line,
               count(*) AS offered,
               count(answer_seconds) AS answered,
               sum(CASE WHEN {CALL_BANDS[0][1]} THEN 1 ELSE 0 END) AS within_10,
               sum(CAST(round(answer_seconds * 1000000) AS BIGINT))
                   AS answer_microseconds,
               count(answer_seconds) AS timed
        FROM fct_call
        WHERE local_date BETWEEN :start AND :end{by_source}
        GROUP BY 1, 2
        UNION ALL
        SELECT {_monday(interval_day)} AS week_start, line,
               sum(offered) AS offered,
               sum({answered}) AS answered,
               sum(answered_10) AS within_10,
               NULL AS answer_microseconds,
               0 AS timed
        FROM fct_call_interval
        WHERE interval_start >= :after AND interval_start < :before{by_source}
        GROUP BY 1, 2
    """


def _weekly_call_frame(frame: pd.DataFrame, weeks: list[dt.date]) -> pd.DataFrame:
    found = [str(x) for x in frame.get("line", [])]
    lines = list(incidents.LINES) + sorted(set(found) - set(incidents.LINES))
    index = pd.MultiIndex.from_product([lines, weeks], names=["line", "week_start"])
    if frame.empty:
        counts = pd.DataFrame(index=range(len(index)))
    else:
        keys = [
            frame["line"].astype(str),
            pd.to_datetime(frame["week_start"]).dt.date.rename("week_start"),
        ]
        counts = frame.drop(columns=["line", "week_start"]).set_index(keys)
        counts = counts.reindex(index).reset_index(drop=True)
    out = index.to_frame(index=False)
    out["line"] = out["line"].astype("str")
    out["week_start"] = out["week_start"].astype(object)
    for name in ("offered", "answered", "within_10"):
        out[name] = incidents._counts(counts, name)
    out["share_within_10"] = incidents._share(out["within_10"], out["answered"])
    total = incidents._column(counts, "answer_seconds_sum", "float64")
    n = incidents._column(counts, "timed", "float64")
    out["mean_answer_s"] = (total / n.where(n > 0)).astype("float64")
    return out[WEEKLY_CALL_COLUMNS]


def weekly_grade1(conn: Connection, f: IncidentFilters) -> pd.DataFrame:
    """Grade 1 incidents of f by week: share within target and median time to attend.

    Grade 1 within f's grades: when f names grades without Grade 1, every week is
    empty. Definitions as `incidents.attendance_by_grade`.
    """
    weeks = weeks_of(f.start, f.end)
    if f.grades and GRADE1 not in f.grades:
        frame = pd.DataFrame()
    else:
        grade1 = dataclasses.replace(f, grades=(GRADE1,))
        sql = f"""
            WITH {incidents._in_period(grade1)}
            SELECT CAST(s.local_date - CAST(s.local_dow AS INTEGER) AS DATE)
                       AS week_start,
                   {incidents._measures()}
            FROM scored s
            GROUP BY 1
        """
        frame = incidents._run(conn, sql, incidents._params(grade1))
    if len(frame):
        frame = frame.set_index(pd.to_datetime(frame["week_start"]).dt.date)
        frame = frame.reindex(weeks).reset_index(drop=True)
    else:
        frame = pd.DataFrame(index=range(len(weeks)))
    out = pd.DataFrame({"week_start": pd.Series(weeks, dtype=object)})
    out = incidents._with_measures(out, frame)
    out["share"] = out.pop("share_within_target")
    return out[WEEKLY_GRADE1_COLUMNS]


def open_by_day(conn: Connection, f: IncidentFilters, now: dt.datetime) -> pd.DataFrame:
    """Incidents of f open at the end of each day of the period up to `now`.

    Open at a moment: raised by then, and neither arrived nor closed by then (the
    open queue's definition, `incidents.open_queue`, applied at that moment); only
    sources recording arrival or closure count. A day ends at midnight UTC, like
    the queue's "as at" time, and the day holding `now` ends at `now` (naive UTC).
    So the last day's figure is `open_queue`'s total whenever no arrival or
    closure is recorded after `now`, as on a live feed.
    """
    days = [
        f.start + dt.timedelta(days=n)
        for n in range((f.end - f.start).days + 1)
        if dt.datetime.combine(f.start + dt.timedelta(days=n), dt.time()) < now
    ]
    if not days:
        return pd.DataFrame(
            {
                "day": pd.Series(dtype=object),
                "open_incidents": pd.Series(dtype="int64"),
            }
        )
    ended = (
        "CASE WHEN i.arrived_at IS NULL THEN i.closed_at "
        "WHEN i.closed_at IS NULL OR i.arrived_at <= i.closed_at THEN i.arrived_at "
        "ELSE i.closed_at END"
    )
    # Each incident adds one when raised and takes one away when it ends (no
    # earlier than it was raised); an event counts from the first midnight at or
    # after it, so a day's running total is the queue at its end.
    day_of = (
        "CAST(event_at AS DATE) - CASE WHEN event_at = "
        "CAST(CAST(event_at AS DATE) AS TIMESTAMP) "
        "THEN 1 ELSE 0 END"
    )
    sql = f"""
        WITH raised AS (
            SELECT i.reference_at AS raised_at, {ended} AS ended_at
            FROM fct_incident i
            WHERE i.local_date BETWEEN :start AND :end AND {incidents._scope(f)}
              AND (i.lifecycle_recorded LIKE '%arrived%'
                   OR i.lifecycle_recorded LIKE '%closed%')
              AND i.reference_at <= :now
        ),
        events AS (
            SELECT raised_at AS event_at, 1 AS delta FROM raised
            UNION ALL
            SELECT CASE WHEN ended_at < raised_at THEN raised_at ELSE ended_at END
                       AS event_at,
                   -1 AS delta
            FROM raised
            WHERE ended_at IS NOT NULL
              AND CASE WHEN ended_at < raised_at THEN raised_at ELSE ended_at END
                  <= :now
        )
        SELECT {day_of} AS day, sum(delta) AS delta
        FROM events
        GROUP BY 1
    """
    frame = incidents._run(conn, sql, incidents._params(f) | {"now": now})
    delta = pd.Series(0, index=pd.Index(days, dtype=object), dtype="int64")
    if len(frame):
        # Events before the first day (a UTC time before the local date's
        # midnight) are already in its total.
        when = [max(d, days[0]) for d in pd.to_datetime(frame["day"]).dt.date]
        by_day = (
            pd.Series(pd.to_numeric(frame["delta"]).to_numpy(), index=when)
            .groupby(level=0)
            .sum()
        )
        delta = delta.add(by_day.reindex(delta.index, fill_value=0)).astype("int64")
    return pd.DataFrame(
        {
            "day": pd.Series(days, dtype=object),
            "open_incidents": delta.cumsum().to_numpy(dtype="int64"),
        }
    )[OPEN_BY_DAY_COLUMNS]
