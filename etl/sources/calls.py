"""Call answering (999 and 101): a call-level log or an interval report, by header."""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
from pathlib import Path

import pandas as pd
from sqlalchemy import Connection, bindparam, select, text

from etl import mapping as mp
from etl import pipeline
from etl.pipeline import Loaded, SourceError, Staged
from etl.schema import (
    CALL_AGGREGATE_CURRENT_SQL,
    CALL_AGGREGATE_INPUTS_SQL,
    CALL_BANDS,
    fct_call_interval,
)

log = logging.getLogger("bluelamp.etl.calls")

NAME = "calls"
PATTERNS = ("*.csv", "*.csv.gz")
WRITES = ("fct_call", "fct_call_interval")
DEFAULT_ZONE = "Europe/London"
DEFAULT_SOURCE_NAME = "calls"
LINES = ("999", "101", "other")

CALL_TABLE = "fct_call"
CALL_KEYS = ("source", "call_id")
CALL_REQUIRED = ("call_id", "line", "queued_at")
CALL_TIMES = ("bt_connected_at", "queued_at", "answered_at", "abandoned_at")
CALL_COLUMNS = (
    "source",
    "call_id",
    "line",
    "queued_at",
    "bt_connected_at",
    "answered_at",
    "abandoned_at",
    "bt_seconds",
    "answer_seconds",
    "wait_seconds",
    "local_date",
    "local_hour",
)

INTERVAL_TABLE = "fct_call_interval"
INTERVAL_KEYS = ("source", "interval_start", "line")
BANDS = (
    "answered_10",
    "answered_15",
    "answered_20",
    "answered_40",
    "answered_60",
    "answered_120",
    "answered_over_120",
)
COUNTS = (*BANDS, "abandoned", "offered")
INTERVAL_COLUMNS = (
    "source",
    "interval_start",
    "line",
    "interval_minutes",
    *COUNTS,
)


@dataclasses.dataclass(frozen=True)
class IntervalSpec:
    start: str
    formats: tuple[str, ...]
    minutes: int
    lines: dict[str, dict[str, str]]  # line -> count name -> source column

    def source_columns(self) -> list[str]:
        return [self.start] + [c for cols in self.lines.values() for c in cols.values()]


@dataclasses.dataclass(frozen=True)
class CallsMapping:
    name: str
    time_zone: str
    encoding: str
    null_tokens: tuple[str, ...]
    interval: IntervalSpec | None


def read_calls_mapping(raw: dict | None) -> CallsMapping:
    if raw is None:
        return CallsMapping(DEFAULT_SOURCE_NAME, DEFAULT_ZONE, "utf-8", (), None)
    parsed = mp.parse_mapping(raw, "calls mapping")
    spec = parsed.extra.get("interval")
    return CallsMapping(
        name=parsed.name,
        time_zone=parsed.time_zone or DEFAULT_ZONE,
        encoding=parsed.encoding,
        null_tokens=parsed.null_tokens,
        interval=_interval_spec(spec) if spec else None,
    )


def _interval_spec(spec: dict) -> IntervalSpec:
    lines = {str(line): dict(cols) for line, cols in (spec.get("lines") or {}).items()}
    for line, cols in lines.items():
        missing = [c for c in COUNTS if c not in cols]
        if line not in LINES or missing:
            raise SourceError(
                f"calls mapping: [interval.lines.{line}] must be one of "
                f"{', '.join(LINES)} and name {', '.join(COUNTS)}"
                + (f" (missing {', '.join(missing)})" if missing else "")
            )
    if not lines or "start" not in spec:
        raise SourceError("calls mapping: [interval] needs `start` and some lines")
    return IntervalSpec(
        start=str(spec["start"]),
        formats=tuple(spec.get("formats", [])),
        minutes=int(spec.get("minutes", 60)),
        lines=lines,
    )


def stage(files: list[Path], mapping: dict | None) -> Staged:
    calls_mapping = read_calls_mapping(mapping)
    calls, intervals, rejects = [], [], []
    rows_read = 0
    for number, path in enumerate(files):
        csv_file = pipeline.read_csv(path, [], encoding=calls_mapping.encoding)
        rows_read += len(csv_file.frame) + len(csv_file.bad_rows)
        rejects.append(csv_file.bad_rows)
        shape = _shape(csv_file, calls_mapping)
        raw = mp.apply_nulls(csv_file.frame, calls_mapping.null_tokens)
        if shape == "calls":
            frame, reasons = _calls(raw, calls_mapping)
            calls.append(frame[reasons.isna()])
        else:
            frame, reasons = _intervals(raw, calls_mapping)
            frame["_input"] = f"{number}:" + frame["_line"].astype("string")
            intervals.append(frame[reasons.reindex(frame.index).isna()])
        bad = reasons.notna()
        rejects.append(csv_file.rejects(raw[bad], reasons[bad]))
    frames = {}
    if calls:
        frames[CALL_TABLE] = pd.concat(calls, ignore_index=True)
    if intervals:
        frames[INTERVAL_TABLE] = pd.concat(intervals, ignore_index=True)
    return Staged(
        frames=frames,
        rows_read=rows_read,
        rejects=pd.concat(
            [r for r in rejects if not r.empty] or [rejects[0]], ignore_index=True
        ),
        files=files,
    )


def _shape(csv_file: pipeline.CsvFile, calls_mapping: CallsMapping) -> str:
    header = set(csv_file.frame.columns)
    if set(CALL_REQUIRED) <= header:
        return "calls"
    spec = calls_mapping.interval
    if spec is not None:
        missing = [c for c in spec.source_columns() if c not in header]
        if not missing:
            return "intervals"
        raise SourceError(
            f"{csv_file.path}: not an interval report of this mapping: missing "
            f"column(s) {', '.join(missing)}"
        )
    raise SourceError(
        f"{csv_file.path}: not a call-level log (needs {', '.join(CALL_REQUIRED)}); "
        "an interval report needs a mapping (--mapping) naming its columns"
    )


# ---------------------------------------------------------------------------
# Call-level log


def _calls(raw: pd.DataFrame, calls_mapping: CallsMapping):
    times = {}
    for column in CALL_TIMES:
        if column in raw.columns:
            times[column] = mp.parse_iso(raw[column].astype("string"))
        else:
            empty = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[us]")
            times[column] = mp.ParsedTimes(empty, pd.Series(False, index=raw.index))
    out = pd.DataFrame(index=raw.index)
    out["source"] = calls_mapping.name
    out["call_id"] = raw["call_id"].astype("string")
    out["line"] = raw["line"].astype("string")
    for column in CALL_TIMES:
        out[column] = times[column].utc
    ended = out["answered_at"].fillna(out["abandoned_at"])
    between = mp.seconds_between
    out["bt_seconds"] = between(out["bt_connected_at"], out["queued_at"])
    out["answer_seconds"] = between(out["queued_at"], out["answered_at"])
    out["wait_seconds"] = between(out["queued_at"], ended)
    local = mp.local_parts(out["queued_at"], calls_mapping.time_zone)
    out["local_date"] = local["local_date"]
    out["local_hour"] = local["local_hour"]
    return out[list(CALL_COLUMNS)], _call_reasons(out, times)


def _call_reasons(out: pd.DataFrame, times: dict) -> pd.Series:
    reasons = pd.Series(pd.NA, index=out.index, dtype="string")
    reasons = mp.first_reason(reasons, out["call_id"].isna(), "blank call_id")
    for column in CALL_TIMES:
        reasons = mp.first_reason(
            reasons, times[column].bad, f"time does not parse: {column}"
        )
    reasons = mp.first_reason(reasons, out["queued_at"].isna(), "missing queued_at")
    reasons = mp.first_reason(
        reasons,
        ~out["line"].isin(LINES).fillna(False).astype(bool),
        f"unknown line (expected {', '.join(LINES)})",
    )
    neither = out["answered_at"].isna() & out["abandoned_at"].isna()
    reasons = mp.first_reason(reasons, neither, "neither answered nor abandoned")
    for later, reason in (
        ("answered_at", "answered before queued"),
        ("abandoned_at", "abandoned before queued"),
    ):
        reasons = mp.first_reason(reasons, out[later] < out["queued_at"], reason)
    return mp.first_reason(
        reasons, out["queued_at"] < out["bt_connected_at"], "queued before BT connected"
    )


# ---------------------------------------------------------------------------
# Interval report


def _intervals(raw: pd.DataFrame, calls_mapping: CallsMapping):
    """Long rows (one per interval and line) with `_row`, and a reason per input row."""
    spec = calls_mapping.interval
    start = _local_start(raw[spec.start].astype("string"), spec.formats)
    reasons = pd.Series(pd.NA, index=raw.index, dtype="string")
    reasons = mp.first_reason(
        reasons, start.isna(), f"time does not parse: {spec.start}"
    )
    per_line = []
    for line, columns in spec.lines.items():
        counts = pd.DataFrame(
            {
                name: pd.to_numeric(raw[source], errors="coerce")
                for name, source in columns.items()
            },
            index=raw.index,
        )
        not_count = (counts.isna() | (counts < 0) | (counts % 1 != 0)).any(axis=1)
        reasons = mp.first_reason(
            reasons, not_count, f"line {line}: a count is blank, negative or fractional"
        )
        answered = counts[list(BANDS)].sum(axis=1)
        inconsistent = counts["offered"] != answered + counts["abandoned"]
        reasons = mp.first_reason(
            reasons,
            inconsistent & ~not_count,
            f"line {line}: {columns['offered']} is not the answered bands plus "
            f"{columns['abandoned']}",
        )
        counts = counts.fillna(0).astype("int64")
        counts.insert(0, "line", line)
        counts.insert(0, "interval_start", start)
        counts["_line"] = raw["_line"]
        per_line.append(counts)
    long = pd.concat(per_line)
    long["source"] = calls_mapping.name
    long["interval_minutes"] = spec.minutes
    return long, reasons


def _local_start(values: pd.Series, formats: tuple[str, ...]) -> pd.Series:
    parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us]")
    for fmt in formats or ("ISO8601",):
        parsed = parsed.fillna(pd.to_datetime(values, format=fmt, errors="coerce"))
    return parsed.astype("datetime64[us]")


# ---------------------------------------------------------------------------
# Loading


def load(conn: Connection, staged: Staged, run_id: int) -> Loaded:
    loaded = duplicate = updated = 0
    # Asked before writing: only an aggregate that matched the facts until now may
    # be brought up to date date by date.
    was_current = call_aggregate_current(conn)
    if CALL_TABLE in staged.frames:
        frame, repeats = pipeline.split_duplicates(staged.frames[CALL_TABLE], CALL_KEYS)
        inserted, updated, unchanged = pipeline.upsert(
            conn,
            CALL_TABLE,
            frame.assign(last_run_id=run_id),
            CALL_KEYS,
            [c for c in CALL_COLUMNS if c not in CALL_KEYS],
        )
        loaded += inserted + updated
        duplicate += unchanged + repeats
    if INTERVAL_TABLE in staged.frames:
        new, same = _load_intervals(conn, staged.frames[INTERVAL_TABLE], run_id)
        loaded += new
        duplicate += same
    started = time.perf_counter()
    rebuilt = rebuild_call_aggregate(
        conn, run_id, whole=not was_current, calls_changed=updated > 0
    )
    log.info(
        "call aggregate: rebuilt %s in %.1f s",
        {"all": "whole", "dates": "the changed dates", "none": "nothing"}[rebuilt],
        time.perf_counter() - started,
    )
    return Loaded(loaded, duplicate)


def _load_intervals(conn: Connection, long: pd.DataFrame, run_id: int):
    """Upsert interval rows; count input rows (not line rows) as loaded or duplicate."""
    # An input row is one interval; a later file's row for the same interval wins.
    rows = long[["interval_start", "_input"]].drop_duplicates()
    rows = rows.assign(_order=range(len(rows)))
    kept_rows = rows.drop_duplicates("interval_start", keep="last")
    repeats = len(rows) - len(kept_rows)
    long = long.merge(kept_rows, on=["interval_start", "_input"])
    identical = _identical_to_warehouse(conn, long)
    per_row = identical.groupby(long["_order"].to_numpy()).all()
    frame = long[list(INTERVAL_COLUMNS)].assign(last_run_id=run_id)
    compare = [c for c in INTERVAL_COLUMNS if c not in INTERVAL_KEYS]
    pipeline.upsert(conn, INTERVAL_TABLE, frame, INTERVAL_KEYS, compare)
    return int((~per_row).sum()), int(per_row.sum()) + repeats


def _identical_to_warehouse(conn: Connection, long: pd.DataFrame) -> pd.Series:
    table = fct_call_interval
    query = select(*[table.c[c] for c in INTERVAL_COLUMNS]).where(
        table.c.source == long["source"].iloc[0],
        table.c.interval_start >= long["interval_start"].min().to_pydatetime(),
        table.c.interval_start <= long["interval_start"].max().to_pydatetime(),
    )
    existing = pd.DataFrame(conn.execute(query).mappings().all())
    if existing.empty:
        return pd.Series(False, index=range(len(long)))
    existing["interval_start"] = pd.to_datetime(existing["interval_start"]).astype(
        "datetime64[us]"
    )
    existing["line"] = existing["line"].astype("string")
    for column in ("interval_minutes", *COUNTS):
        existing[column] = existing[column].astype("int64")
    merged = long.reset_index(drop=True).merge(
        existing,
        on=["interval_start", "line"],
        how="left",
        suffixes=("", "_old"),
    )
    same = pd.Series(True, index=merged.index)
    for column in ("interval_minutes", *COUNTS):
        same &= (merged[column] == merged[f"{column}_old"]).fillna(False)
    return same.astype(bool)


# ---------------------------------------------------------------------------
# Call answering by day (etl/schema.py: agg_call_day and agg_call_state), rebuilt in
# the load's transaction so readers see it change with the facts. queries/incidents.py
# and queries/trends.py read it while agg_call_state matches the facts; a test proves
# their figures from it equal those counted from fct_call and fct_call_interval.

AGGREGATE = "agg_call_day"
AGGREGATE_STATE = "agg_call_state"
# A load changing more local dates than this rebuilds the aggregate whole.
REBUILD_ALL_DAYS = 400

_BAND_NAMES = [name for name, _ in CALL_BANDS]
_DAY_COLUMNS = [
    "call_rows",
    "interval_rows",
    *_BAND_NAMES,
    "abandoned",
    "offered",
    "answer_seconds_n",
    "answer_microseconds",
    "bt_seconds_n",
    "bt_microseconds",
]


def _microseconds(column: str) -> str:
    # Times are held to the microsecond: whole microseconds add up exactly.
    return f"sum(CAST(round({column} * 1000000) AS BIGINT))"


def _day_sql(call_where: str, interval_where: str) -> str:
    banded = ",\n".join(
        f"sum(CASE WHEN {condition} THEN 1 ELSE 0 END) AS {name}"
        for name, condition in CALL_BANDS
    )
    interval_day = "CAST(interval_start AS DATE)"
    return f"""
        INSERT INTO {AGGREGATE} (source, line, local_date, {", ".join(_DAY_COLUMNS)})
        SELECT source, line, local_date,
               {", ".join(f"sum({c})" for c in _DAY_COLUMNS)}
        FROM (
            SELECT source, line, local_date, count(*) AS call_rows,
                   0 AS interval_rows, {banded},
                   count(*) - count(answered_at) AS abandoned, count(*) AS offered,
                   count(answer_seconds) AS answer_seconds_n,
                   {_microseconds("answer_seconds")} AS answer_microseconds,
                   count(bt_seconds) AS bt_seconds_n,
                   {_microseconds("bt_seconds")} AS bt_microseconds
            FROM {CALL_TABLE}
            WHERE {call_where}
            GROUP BY source, line, local_date
            UNION ALL
            SELECT source, line, {interval_day}, 0, count(*),
                   {", ".join(f"sum({c})" for c in _BAND_NAMES)},
                   sum(abandoned), sum(offered), 0, NULL, 0, NULL
            FROM {INTERVAL_TABLE}
            WHERE {interval_where}
            GROUP BY source, line, {interval_day}
        ) d
        GROUP BY source, line, local_date
    """


def call_aggregate_current(conn: Connection) -> bool:
    """Whether agg_call_day was built from exactly the calls and intervals held now:
    the same row counts and no row written by a later run (agg_call_state)."""
    return bool(conn.execute(text(CALL_AGGREGATE_CURRENT_SQL)).scalar())


def rebuild_call_aggregate(
    conn: Connection, run_id: int, whole: bool = True, calls_changed: bool = False
) -> str:
    """Bring agg_call_day up to date with fct_call and fct_call_interval (same
    transaction), then record what it was built from.

    Unless `whole`, redoes the (source, local date)s holding a row this run wrote
    and, when `calls_changed` (a call may have moved to another date), any date whose
    call count no longer matches; everything when many dates changed. Returns what
    was redone: "all", "dates" or "none".
    """
    stale: dict[str, set] = collections.defaultdict(set)
    if not whole:
        rows = conn.execute(
            text(
                f"""
                SELECT DISTINCT source, local_date FROM {CALL_TABLE}
                WHERE last_run_id = :run_id
                UNION
                SELECT DISTINCT source, CAST(interval_start AS DATE)
                FROM {INTERVAL_TABLE}
                WHERE last_run_id = :run_id
                """
            ),
            {"run_id": run_id},
        ).all()
        if calls_changed:
            rows += conn.execute(text(_MISMATCHED_DATES)).all()
        for source, day in rows:
            stale[source].add(day)
        whole = sum(len(days) for days in stale.values()) > REBUILD_ALL_DAYS
    if whole:
        conn.execute(text(f"DELETE FROM {AGGREGATE}"))
        conn.execute(text(_day_sql("TRUE", "TRUE")))
    redo = [
        f"DELETE FROM {AGGREGATE} WHERE source = :source AND local_date IN :dates",
        _day_sql(
            "source = :source AND local_date IN :dates",
            "source = :source AND CAST(interval_start AS DATE) IN :dates",
        ),
    ]
    for source, days in sorted(stale.items()) if not whole else ():
        for sql in redo:
            statement = text(sql).bindparams(bindparam("dates", expanding=True))
            conn.execute(statement, {"source": source, "dates": sorted(days)})
    inputs = conn.execute(text(CALL_AGGREGATE_INPUTS_SQL)).mappings().one()
    conn.execute(text(f"DELETE FROM {AGGREGATE_STATE}"))
    conn.execute(
        text(
            f"INSERT INTO {AGGREGATE_STATE} "
            "(call_rows, interval_rows, latest_run_id, run_id) "
            "VALUES (:call_rows, :interval_rows, :latest_run_id, :run_id)"
        ),
        {**inputs, "run_id": run_id},
    )
    return "all" if whole else ("dates" if stale else "none")


# Dates whose calls the aggregate no longer counts right (a call that moved date).
_MISMATCHED_DATES = f"""
    SELECT coalesce(f.source, a.source) AS source,
           coalesce(f.local_date, a.local_date) AS local_date
    FROM (SELECT source, local_date, count(*) AS n FROM {CALL_TABLE}
          GROUP BY source, local_date) f
    FULL JOIN (SELECT source, local_date, sum(call_rows) AS n FROM {AGGREGATE}
               GROUP BY source, local_date HAVING sum(call_rows) > 0) a
        ON a.source = f.source AND a.local_date = f.local_date
    WHERE f.n IS NULL OR a.n IS NULL OR f.n <> a.n
"""
