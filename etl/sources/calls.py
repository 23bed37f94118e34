"""Call answering (999 and 101): a call-level log or an interval report, by header."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
from sqlalchemy import Connection, select

from etl import mapping as mp
from etl import pipeline
from etl.pipeline import Loaded, SourceError, Staged
from etl.schema import fct_call_interval

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
    loaded = duplicate = 0
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
