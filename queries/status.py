"""ETL bookkeeping for the Data status page: freshness per source, runs, quarantine."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Connection, func, select, text

from etl.schema import FACT_TABLES, etl_quarantine

COUNT_COLUMNS = [
    "rows_read",
    "rows_loaded",
    "rows_rejected",
    "rows_duplicate",
    "rows_set_aside",
]
SOURCE_STATUS_COLUMNS = [
    "source",
    "interval_minutes",
    "last_success_run_id",
    "last_success_at",
    *COUNT_COLUMNS,
    "last_run_id",
    "last_status",
    "last_message",
    "last_finished_at",
    "stale",
]
QUARANTINE_COLUMNS = ["run_id", "source", "file", "line", "raw", "reason"]

_SOURCE_STATUS_SQL = """
WITH numbered AS (
    SELECT r.*,
           row_number() OVER (PARTITION BY source ORDER BY run_id DESC) AS recency,
           row_number() OVER (
               PARTITION BY source, status = 'succeeded' ORDER BY run_id DESC
           ) AS recency_in_status
    FROM etl_run r
)
SELECT a.source,
       o.run_id AS last_success_run_id,
       o.finished_at AS last_success_at,
       o.rows_read, o.rows_loaded, o.rows_rejected, o.rows_duplicate,
       o.rows_set_aside,
       a.run_id AS last_run_id,
       a.status AS last_status,
       a.message AS last_message,
       a.finished_at AS last_finished_at
FROM numbered a
LEFT JOIN numbered o
  ON o.source = a.source AND o.status = 'succeeded' AND o.recency_in_status = 1
WHERE a.recency = 1
"""


def source_status(
    conn: Connection, intervals: dict[str, int], now: dt.datetime
) -> pd.DataFrame:
    """One row per source: its last successful load, its last run, and staleness.

    `intervals` maps source -> minutes between scheduled refreshes; a source listed
    there but never run still gets a row. A source is stale when its last
    successful load finished more than twice its interval before `now` (naive UTC,
    as in `etl_run`), or when it has never loaded.
    """
    runs = pd.read_sql(text(_SOURCE_STATUS_SQL), conn)
    never_run = [s for s in intervals if s not in set(runs["source"])]
    frame = (
        pd.concat([runs, pd.DataFrame({"source": never_run})], ignore_index=True)
        if never_run
        else runs
    )
    frame = frame.sort_values("source", ignore_index=True)
    frame["interval_minutes"] = frame["source"].map(intervals).astype("Int64")
    for column in [*COUNT_COLUMNS, "last_success_run_id", "last_run_id"]:
        frame[column] = frame[column].astype("Int64")
    for column in ["last_success_at", "last_finished_at"]:
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[us]")
    for column in ["source", "last_status", "last_message"]:
        frame[column] = frame[column].astype("string")
    frame["stale"] = is_stale(frame, now)
    return frame[SOURCE_STATUS_COLUMNS]


def is_stale(frame: pd.DataFrame, now: dt.datetime) -> pd.Series:
    """Older than twice the interval, or never loaded; unknown interval: not stale."""
    age = pd.Timestamp(now) - frame["last_success_at"]
    limit = pd.to_timedelta(frame["interval_minutes"].astype("float64") * 2, unit="min")
    too_old = (age > limit).fillna(False).astype(bool)
    return frame["last_success_at"].isna() | too_old


def recent_runs(conn: Connection, limit: int = 20) -> pd.DataFrame:
    sql = text(
        "SELECT run_id, source, started_at, finished_at, status, rows_read, "
        "rows_loaded, rows_rejected, rows_duplicate, rows_set_aside, files, message "
        "FROM etl_run ORDER BY run_id DESC LIMIT :limit"
    )
    return pd.read_sql(sql, conn, params={"limit": int(limit)})


_LATEST_RUN_SQL = (
    "SELECT run_id, source, finished_at FROM etl_run "
    "WHERE status = 'succeeded' ORDER BY finished_at DESC, run_id DESC LIMIT 1"
)


def latest_run(conn: Connection) -> pd.DataFrame:
    """The successful run that finished last (run_id, source, finished_at), or no
    rows. By finish time, not id: two PostgreSQL loads may finish out of order."""
    return pd.read_sql(text(_LATEST_RUN_SQL), conn)


def _like_pattern(needle: str) -> str:
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _quarantine_filters(source, run_id, text_) -> list:
    q = etl_quarantine.c
    filters = []
    if source:
        filters.append(q.source == source)
    if run_id is not None:
        filters.append(q.run_id == int(run_id))
    if text_:
        pattern = _like_pattern(text_)
        filters.append(
            q.reason.ilike(pattern, escape="\\") | q.raw.ilike(pattern, escape="\\")
        )
    return filters


def quarantine(
    conn: Connection,
    source: str | None = None,
    run_id: int | None = None,
    text: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> pd.DataFrame:
    """One page of quarantined rows, newest run first, filtered in the database.

    `text` matches anywhere in the reason or the raw line, case-insensitively and
    literally (% and _ are not wildcards).
    """
    q = etl_quarantine.c
    stmt = (
        select(*(q[c] for c in QUARANTINE_COLUMNS))
        .where(*_quarantine_filters(source, run_id, text))
        .order_by(q.run_id.desc(), q.file, q.line)
        .limit(int(limit))
        .offset(int(offset))
    )
    return pd.read_sql(stmt, conn)


def quarantine_count(
    conn: Connection,
    source: str | None = None,
    run_id: int | None = None,
    text: str | None = None,
) -> int:
    stmt = (
        select(func.count())
        .select_from(etl_quarantine)
        .where(*_quarantine_filters(source, run_id, text))
    )
    return int(conn.execute(stmt).scalar())


def freshness(conn: Connection) -> dict:
    """The latest successful run and rows per fact table, read on one connection so
    both come from the same snapshot. Polled by every wall display: plain rows, no
    DataFrame (pandas cost 4 ms of a 6 ms poll)."""
    latest = conn.execute(text(_LATEST_RUN_SQL)).first()
    sql = " UNION ALL ".join(
        f"SELECT '{table}' AS fact, count(*) AS n FROM {table}" for table in FACT_TABLES
    )
    facts = {row.fact: int(row.n) for row in conn.execute(text(sql))}
    if latest is None:
        return {"run_id": 0, "finished_at": None, "facts": facts}
    return {
        "run_id": int(latest.run_id),
        "finished_at": latest.finished_at.isoformat(),
        "facts": facts,
    }
