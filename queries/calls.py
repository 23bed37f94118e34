"""Call answering (999 and 101) from either shape of data: SQL in, DataFrame out.

Bands follow the Home Office's published 999 figures: answered in under 10 s, 10 to
under 60 s, 60 s and over (so a call answered at exactly 10 s is not "within 10 s").
Call-level rows (`fct_call`) are bucketed in SQL into the same non-cumulative bands
as an interval report (`fct_call_interval`), then both are summed the same way, so
the same calls give the same figures in either shape. The mean answer time needs
call-level times: interval reports contribute nothing to it.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Connection, text

from etl.schema import CALL_BANDS
from queries import scope

NOT_BY_AREA = (
    "Call answering is measured force-wide (calls carry no location), so it is "
    "not shown to accounts limited to areas."
)
ANSWERING_COLUMNS = [
    "line",
    "answered_within_10",
    "answered_10_to_60",
    "answered_60_plus",
    "answered",
    "abandoned",
    "offered",
    "share_within_10",
    "mean_answer_seconds",
]

# Non-cumulative bands, upper bounds exclusive: [0, 10), [10, 15) ... [120, inf), as
# etl.schema.CALL_BANDS defines them for every reader and the calls load.
_CALL_BANDS = (
    ",\n".join(
        f"sum(CASE WHEN {condition} THEN 1 ELSE 0 END) AS {name}"
        for name, condition in CALL_BANDS
    )
    + """,
    sum(CASE WHEN answered_at IS NULL THEN 1 ELSE 0 END) AS abandoned,
    count(*) AS offered,
    sum(answer_seconds) AS answer_seconds_sum,
    count(answer_seconds) AS answer_seconds_n
"""
)


def _filters(
    time_column: str,
    source: str | None,
    line: str | None,
    start: dt.datetime | None,
    end: dt.datetime | None,
) -> tuple[str, dict]:
    clauses, params = [], {}
    if scope.restricted():
        # Calls are answered force-wide and carry no location: nothing of them lies
        # provably inside a user's areas.
        clauses.append("FALSE")
    if source is not None:
        clauses.append("source = :source")
        params["source"] = source
    if line is not None:
        clauses.append("line = :line")
        params["line"] = line
    if start is not None:
        clauses.append(f"{time_column} >= :start")
        params["start"] = start
    if end is not None:
        clauses.append(f"{time_column} < :end")
        params["end"] = end
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def answering_bands(
    conn: Connection,
    source: str | None = None,
    line: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> pd.DataFrame:
    """Per line: answered by band, abandoned, offered, share within 10 s, mean answer.

    `start` (inclusive) and `end` (exclusive) are local times: an interval's start,
    or the local hour a call was queued in.
    """
    call_local = "(local_date + local_hour * INTERVAL '1 hour')"
    call_where, params = _filters(call_local, source, line, start, end)
    interval_where, _ = _filters("interval_start", source, line, start, end)
    sql = f"""
        WITH shaped AS (
            SELECT line, {_CALL_BANDS} FROM fct_call{call_where} GROUP BY line
            UNION ALL
            SELECT line, answered_10, answered_15, answered_20, answered_40,
                   answered_60, answered_120, answered_over_120, abandoned, offered,
                   NULL AS answer_seconds_sum, 0 AS answer_seconds_n
            FROM fct_call_interval{interval_where}
        )
        SELECT line,
            sum(answered_10) AS answered_within_10,
            sum(answered_15 + answered_20 + answered_40 + answered_60)
                AS answered_10_to_60,
            sum(answered_120 + answered_over_120) AS answered_60_plus,
            sum(abandoned) AS abandoned,
            sum(offered) AS offered,
            sum(answer_seconds_sum) AS answer_seconds_sum,
            sum(answer_seconds_n) AS answer_seconds_n
        FROM shaped
        GROUP BY line
        ORDER BY line
    """
    rows = conn.execute(text(sql), params).mappings().all()
    return _answering_frame(pd.DataFrame(rows))


def _answering_frame(raw: pd.DataFrame) -> pd.DataFrame:
    if raw.empty:
        return pd.DataFrame(columns=ANSWERING_COLUMNS)
    out = pd.DataFrame({"line": raw["line"].astype("string")})
    counts = [
        "answered_within_10",
        "answered_10_to_60",
        "answered_60_plus",
        "abandoned",
        "offered",
    ]
    for column in counts:
        out[column] = pd.to_numeric(raw[column]).fillna(0).astype("int64")
    out.insert(4, "answered", out[counts[:3]].sum(axis=1).astype("int64"))
    answered = out["answered"].where(out["answered"] > 0)
    out["share_within_10"] = (out["answered_within_10"] / answered).astype("float64")
    known = pd.to_numeric(raw["answer_seconds_n"]).astype("float64")
    total = pd.to_numeric(raw["answer_seconds_sum"]).astype("float64")
    out["mean_answer_seconds"] = (total / known.where(known > 0)).astype("float64")
    return out[ANSWERING_COLUMNS]


def bt_leg(
    conn: Connection,
    source: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> pd.DataFrame:
    """Per line: mean seconds of BT's connection leg and how many calls timed it.

    Only call-level rows time the leg; `start`/`end` as in `answering_bands`.
    """
    call_local = "(local_date + local_hour * INTERVAL '1 hour')"
    where, params = _filters(call_local, source, None, start, end)
    sql = f"""
        SELECT line, avg(bt_seconds) AS mean_bt_seconds, count(bt_seconds) AS bt_calls
        FROM fct_call{where}
        GROUP BY line
        ORDER BY line
    """
    rows = conn.execute(text(sql), params).mappings().all()
    frame = pd.DataFrame(rows, columns=["line", "mean_bt_seconds", "bt_calls"])
    return pd.DataFrame(
        {
            "line": frame["line"].astype("str"),
            "mean_bt_seconds": pd.to_numeric(frame["mean_bt_seconds"]).astype(
                "float64"
            ),
            "bt_calls": pd.to_numeric(frame["bt_calls"]).astype("int64"),
        }
    )
