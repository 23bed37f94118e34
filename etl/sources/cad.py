"""Command-and-control incidents: Bluelamp's contract, or an export via a mapping."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import logging
import time
from pathlib import Path

import pandas as pd
from sqlalchemy import bindparam, text

from etl import mapping as mp
from etl import pipeline
from etl.grades import ensure_default_grades
from etl.pipeline import Loaded, SourceError, Staged
from etl.schema import AGGREGATE_INPUTS_SQL
from queries import incidents

log = logging.getLogger("bluelamp.etl.cad")

NAME = "cad"
PATTERNS = ("*.csv", "*.csv.gz")
WRITES = ("fct_incident",)
SUMMARY = "agg_incident_source"
TABLE = "fct_incident"
KEYS = ("source", "incident_id")
# Contract files carry UTC offsets; the zone only places local date and hour.
DEFAULT_ZONE = "Europe/London"
DEFAULT_SOURCE_NAME = "cad"

TIME_COLUMNS = tuple(mp.LIFECYCLE_STEPS.values())
TEXT_COLUMNS = (
    "opening_grade",
    "final_grade",
    "incident_type",
    "location",
    "lsoa_code",
    "channel",
    "attending_unit",
)
# (later, earlier, reason): a later step recorded before an earlier one is a bad row.
ORDER_CHECKS = (
    ("arrived_at", "dispatched_at", "arrived before dispatched"),
    ("dispatched_at", "incident_created_at", "dispatched before created"),
    ("call_answered_at", "call_received_at", "answered before received"),
    ("closed_at", "incident_created_at", "closed before created"),
)
OUTPUT_COLUMNS = (
    "source",
    "incident_id",
    "force_name",
    *TIME_COLUMNS,
    "reference_at",
    "local_date",
    "local_hour",
    "local_dow",
    "time_zone",
    *TEXT_COLUMNS,
    "longitude",
    "latitude",
    "answer_seconds",
    "dispatch_seconds",
    "travel_seconds",
    "attend_seconds",
    "lifecycle_recorded",
)
COMPARE = tuple(c for c in OUTPUT_COLUMNS if c not in KEYS)


def read_cad_mapping(raw: dict | None) -> mp.Mapping:
    """The contract (no mapping, or one without [columns]), or a checked mapping."""
    if raw is None:
        return mp.Mapping.contract(DEFAULT_SOURCE_NAME, DEFAULT_ZONE)
    parsed = mp.parse_mapping(raw, "cad mapping")
    if not parsed.columns:
        return dataclasses.replace(
            parsed, is_contract=True, time_zone=parsed.time_zone or DEFAULT_ZONE
        )
    if not parsed.time_zone:
        raise SourceError("cad mapping: [source] needs a time_zone for zone-less times")
    if "incident_id" not in parsed.columns and not parsed.derived_id_columns:
        raise SourceError(
            "cad mapping: map incident_id under [columns] or give [derived_id] columns"
        )
    undecided = [
        step
        for step, column in mp.LIFECYCLE_STEPS.items()
        if column not in parsed.columns and step not in parsed.not_recorded
    ]
    if undecided:
        raise SourceError(
            "cad mapping: say whether the source records "
            f"{', '.join(undecided)}: map the time under [columns] or list the step "
            "in [lifecycle] not_recorded"
        )
    return parsed


def _required_columns(mapping: mp.Mapping) -> list[str]:
    if mapping.is_contract:
        return ["incident_id", "incident_created_at"]
    return mapping.source_columns()


def stage(files: list[Path], mapping: dict | None) -> Staged:
    cad_mapping = read_cad_mapping(mapping)
    frames, rejects = [], []
    aside_counts: collections.Counter = collections.Counter()
    rows_read = rows_set_aside = ambiguous = nonexistent = 0
    for path in files:
        csv_file = pipeline.read_csv(
            path, _required_columns(cad_mapping), encoding=cad_mapping.encoding
        )
        rows_read += len(csv_file.frame) + len(csv_file.bad_rows)
        rejects.append(csv_file.bad_rows)
        raw = mp.unique_columns(csv_file.frame, _required_columns(cad_mapping), path)
        aside, counts = mp.set_aside_mask(raw, cad_mapping.set_aside)
        rows_set_aside += int(aside.sum())
        aside_counts.update(counts)
        mapped = _incidents(raw[~aside] if aside.any() else raw, cad_mapping)
        bad = mapped.reasons.notna()
        frames.append(mapped.frame[~bad])
        rejects.append(csv_file.rejects(raw.loc[bad[bad].index], mapped.reasons[bad]))
        ambiguous += mapped.ambiguous
        nonexistent += mapped.nonexistent
    notes = mp.set_aside_notes(aside_counts)
    if ambiguous or nonexistent:
        notes.append(
            f"clock changes: {ambiguous:,} time(s) in a repeated hour took the first "
            f"occurrence; {nonexistent:,} in a skipped hour were shifted forward"
        )
    return Staged(
        frames={TABLE: pd.concat(frames, ignore_index=True)},
        rows_read=rows_read,
        rejects=pd.concat(
            [r for r in rejects if not r.empty] or [rejects[0]], ignore_index=True
        ),
        rows_set_aside=rows_set_aside,
        files=files,
        notes=notes,
    )


@dataclasses.dataclass
class _Mapped:
    frame: pd.DataFrame
    reasons: pd.Series  # NA for a good row, else why it is quarantined
    ambiguous: int
    nonexistent: int


def _incidents(raw: pd.DataFrame, mapping: mp.Mapping) -> _Mapped:
    if not mapping.is_contract:
        raw = raw[[*mapping.source_columns(), "_line"]]
    raw = mp.apply_nulls(raw, mapping.null_tokens, strip=not mapping.is_contract)
    frame = mp.map_columns(raw, mapping)
    if mapping.derived_id_columns:
        frame["incident_id"] = mp.derive_ids(
            raw, mapping.derived_id_columns, mapping.derived_id_prefix
        )
    out = pd.DataFrame(index=frame.index)
    out["source"] = mapping.name
    out["incident_id"] = frame["incident_id"].astype("string")
    out["force_name"] = _text(frame, "force", default=mapping.force)
    times, ambiguous, nonexistent = _parse_times(frame, mapping)
    for column in TIME_COLUMNS:
        out[column] = times[column].utc
    out["reference_at"] = out[list(TIME_COLUMNS)].min(axis=1).astype("datetime64[us]")
    out = out.join(mp.local_parts(out["reference_at"], mapping.time_zone))
    out["time_zone"] = mapping.time_zone
    for column in TEXT_COLUMNS:
        out[column] = _text(frame, column)
    coordinates = {c: _number(frame, c) for c in ("longitude", "latitude")}
    for column, (values, _) in coordinates.items():
        out[column] = values
    out = out.join(_durations(out))
    recorded = [step for step, c in mp.LIFECYCLE_STEPS.items() if c in frame.columns]
    out["lifecycle_recorded"] = ",".join(recorded)
    reasons = _reasons(out, times, coordinates, "incident_created" in recorded)
    return _Mapped(out[list(OUTPUT_COLUMNS)], reasons, ambiguous, nonexistent)


def _text(frame: pd.DataFrame, column: str, default: str | None = None) -> pd.Series:
    if column in frame.columns:
        return frame[column].astype("string").fillna(default)
    return pd.Series(default, index=frame.index, dtype="string")


def _number(frame: pd.DataFrame, column: str) -> tuple[pd.Series, pd.Series]:
    if column not in frame.columns:
        return pd.Series(float("nan"), index=frame.index), pd.Series(False, frame.index)
    given = frame[column].notna()
    try:
        values = frame[column].astype("float64")
    except ValueError:  # some value is not a number: find which, row by row
        values = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return values, given & values.isna()


def _parse_times(frame: pd.DataFrame, mapping: mp.Mapping):
    parsed: dict[str, mp.ParsedTimes] = {}
    ambiguous = nonexistent = 0
    for column in TIME_COLUMNS:
        if column not in frame.columns:
            empty = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us]")
            parsed[column] = mp.ParsedTimes(empty, pd.Series(False, index=frame.index))
            continue
        values = frame[column].astype("string")
        if mapping.is_contract:
            parsed[column] = mp.parse_iso(values)
        else:
            parsed[column] = mp.parse_local(
                values, mapping.time_formats, mapping.time_zone
            )
        ambiguous += parsed[column].ambiguous
        nonexistent += parsed[column].nonexistent
    return parsed, ambiguous, nonexistent


def _durations(out: pd.DataFrame) -> pd.DataFrame:
    # Dispatch is timed from the answer where there is one, else from creation, so
    # answer + dispatch + travel = attend whenever the call's receipt is recorded.
    dispatch_from = out["call_answered_at"].fillna(out["incident_created_at"])
    attend_from = out["call_received_at"].fillna(out["incident_created_at"])
    between = mp.seconds_between
    return pd.DataFrame(
        {
            "answer_seconds": between(out["call_received_at"], out["call_answered_at"]),
            "dispatch_seconds": between(dispatch_from, out["dispatched_at"]),
            "travel_seconds": between(out["dispatched_at"], out["arrived_at"]),
            "attend_seconds": between(attend_from, out["arrived_at"]),
        },
        index=out.index,
    )


def _reasons(out, times, coordinates, created_required: bool) -> pd.Series:
    reasons = pd.Series(pd.NA, index=out.index, dtype="string")
    reasons = mp.first_reason(reasons, out["incident_id"].isna(), "blank incident id")
    for column in TIME_COLUMNS:
        reasons = mp.first_reason(
            reasons, times[column].bad, f"time does not parse: {column}"
        )
    for column, (_, bad) in coordinates.items():
        reasons = mp.first_reason(reasons, bad, f"not a number: {column}")
    if created_required:
        reasons = mp.first_reason(
            reasons, out["incident_created_at"].isna(), "missing incident_created_at"
        )
    reasons = mp.first_reason(reasons, out["reference_at"].isna(), "no time recorded")
    for later, earlier, reason in ORDER_CHECKS:
        reasons = mp.first_reason(reasons, out[later] < out[earlier], reason)
    return reasons


def load(conn, staged: Staged, run_id: int) -> Loaded:
    frame, repeats = pipeline.split_duplicates(staged.frames[TABLE], KEYS)
    frame = frame.assign(last_run_id=run_id)
    inserted, updated, unchanged = pipeline.upsert(conn, TABLE, frame, KEYS, COMPARE)
    rebuild_source_summary(conn, sorted(frame["source"].dropna().unique()))
    notes = []
    if updated:
        notes.append(f"{updated:,} incident(s) changed since the last load")
    if ensure_default_grades(conn):
        notes.append("filled dim_incident_grade with the default grades")
    started = time.perf_counter()
    rebuild = rebuild_incident_aggregates(conn, run_id, inserted, updated)
    log.info(
        "incident aggregates: rebuilt %s in %.1f s",
        {"all": "whole", "dates": "the changed dates", "none": "nothing"}[rebuild],
        time.perf_counter() - started,
    )
    return Loaded(inserted + updated, unchanged + repeats, notes)


def rebuild_source_summary(conn, sources: list[str]) -> None:
    """Recount `sources` in agg_incident_source from fct_incident (same transaction)."""
    if not sources:
        return
    statement = text(f"DELETE FROM {SUMMARY} WHERE source IN :sources").bindparams(
        bindparam("sources", expanding=True)
    )
    conn.execute(statement, {"sources": list(sources)})
    statement = text(
        f"""
        INSERT INTO {SUMMARY} (source, force_name, incidents, first_date, last_date,
                               lifecycle_recorded)
        SELECT source, max(force_name), count(*), min(local_date), max(local_date),
               max(lifecycle_recorded)
        FROM {TABLE}
        WHERE source IN :sources
        GROUP BY source
        """
    ).bindparams(bindparam("sources", expanding=True))
    conn.execute(statement, {"sources": list(sources)})


# ---------------------------------------------------------------------------
# The incidents page's pre-aggregates (etl/schema.py: agg_incident_hour, _ward,
# _percentile and _state), rebuilt in the load's transaction so readers see them change
# with the facts. queries/incidents.py scores incidents the same way; a test proves
# the page's figures from these equal those counted from fct_incident.

AGGREGATES = ("agg_incident_hour", "agg_incident_ward")
AGGREGATE_STATE = "agg_incident_state"
# A load changing more local dates than this rebuilds the aggregates whole.
REBUILD_ALL_DAYS = 400

_SCORED = """
    SELECT i.source, i.force_name, i.lifecycle_recorded, i.local_date, i.local_dow,
           i.local_hour, i.final_grade, i.opening_grade, i.arrived_at,
           i.attend_seconds, geo.ward_code, geo.lad_code,
           """ + incidents.TARGET_MIN + """ AS target_min
    FROM fct_incident i
    """ + incidents.TARGET_JOIN + """
    WHERE {where}
"""
_COUNTS = """
    count(*),
    count(s.arrived_at),
    count(*) FILTER (WHERE s.attend_seconds IS NOT NULL AND s.target_min IS NOT NULL),
    count(*) FILTER (WHERE s.attend_seconds <= s.target_min * 60)
"""
_BOTH = "s.opening_grade IS NOT NULL AND s.final_grade IS NOT NULL"
# A more urgent grade is a lower number ("1" < "2" < "10"): as queries.incidents.
_MORE_URGENT = (
    "(length(s.final_grade) < length(s.opening_grade) OR "
    "(length(s.final_grade) = length(s.opening_grade) "
    "AND s.final_grade < s.opening_grade))"
)
_LESS_URGENT = (
    "(length(s.final_grade) > length(s.opening_grade) OR "
    "(length(s.final_grade) = length(s.opening_grade) "
    "AND s.final_grade > s.opening_grade))"
)
_HOUR_KEYS = (
    "source, force_name, lifecycle_recorded, local_date, local_dow, local_hour, "
    "final_grade"
)
_WARD_KEYS = "source, force_name, local_date, final_grade, lad_code, ward_code"
_COUNT_COLUMNS = "incidents, attended, with_target, within_target"


def _insert_aggregates(conn, where: str, params: dict, expanding=()) -> None:
    def run(sql: str) -> None:
        statement = text(sql)
        for name in expanding:
            statement = statement.bindparams(bindparam(name, expanding=True))
        conn.execute(statement, params)

    scored = _SCORED.format(where=where)
    run(
        f"""
        INSERT INTO agg_incident_hour ({_HOUR_KEYS}, {_COUNT_COLUMNS},
                                       with_both_grades, regraded, upgraded,
                                       downgraded)
        SELECT {_HOUR_KEYS}, {_COUNTS},
               count(*) FILTER (WHERE {_BOTH}),
               count(*) FILTER (WHERE {_BOTH} AND s.final_grade <> s.opening_grade),
               count(*) FILTER (WHERE {_BOTH} AND {_MORE_URGENT}),
               count(*) FILTER (WHERE {_BOTH} AND {_LESS_URGENT})
        FROM ({scored}) s
        GROUP BY {_HOUR_KEYS}
        """
    )
    run(
        f"""
        INSERT INTO agg_incident_ward ({_WARD_KEYS}, {_COUNT_COLUMNS})
        SELECT {_WARD_KEYS}, {_COUNTS}
        FROM ({scored}) s
        WHERE s.lad_code IS NOT NULL OR s.ward_code IS NOT NULL
        GROUP BY {_WARD_KEYS}
        """
    )


def rebuild_incident_aggregates(
    conn, run_id: int, inserted: int = 0, updated: int = 0
) -> str:
    """Bring the incident aggregates up to date with fct_incident (same transaction).

    Redoes the local dates this load inserted or changed incidents on, and any date
    whose count no longer matches fct_incident (an incident moved to another date,
    or rows written outside this load); everything when the targets or geography
    changed since the last build, on a first build, or when many dates changed.
    The preset periods' percentiles are recomputed every time (the latest date may
    have moved). Returns what was redone: "all", "dates" or "none".
    """
    inputs = conn.execute(text(AGGREGATE_INPUTS_SQL)).mappings().one()
    state = (
        conn.execute(
            text(
                f"SELECT fact_rows, grades_hash, geography_hash FROM {AGGREGATE_STATE}"
            )
        )
        .mappings()
        .first()
    )
    whole = (
        state is None
        or state["grades_hash"] != inputs["grades_hash"]
        or state["geography_hash"] != inputs["geography_hash"]
    )
    stale: dict[str, set] = collections.defaultdict(set)
    if not whole:
        rows = conn.execute(
            text(
                f"SELECT DISTINCT source, local_date FROM {TABLE} "
                "WHERE last_run_id = :run_id"
            ),
            {"run_id": run_id},
        ).all()
        if updated or int(state["fact_rows"]) + inserted != int(inputs["fact_rows"]):
            rows += conn.execute(text(_MISMATCHED_DATES)).all()
        for source, day in rows:
            stale[source].add(day)
        whole = sum(len(days) for days in stale.values()) > REBUILD_ALL_DAYS
    if whole:
        for table in AGGREGATES:
            conn.execute(text(f"DELETE FROM {table}"))
        _insert_aggregates(conn, "TRUE", {})
    for source, days in sorted(stale.items()) if not whole else ():
        params = {"source": source, "dates": sorted(days)}
        for table in AGGREGATES:
            statement = text(
                f"DELETE FROM {table} WHERE source = :source AND local_date IN :dates"
            ).bindparams(bindparam("dates", expanding=True))
            conn.execute(statement, params)
        _insert_aggregates(
            conn,
            "i.source = :source AND i.local_date IN :dates",
            params,
            expanding=("dates",),
        )
    rebuild_incident_percentiles(conn)
    conn.execute(text(f"DELETE FROM {AGGREGATE_STATE}"))
    conn.execute(
        text(
            f"INSERT INTO {AGGREGATE_STATE} "
            "(fact_rows, grades_hash, geography_hash, run_id) "
            "VALUES (:fact_rows, :grades_hash, :geography_hash, :run_id)"
        ),
        {**inputs, "run_id": run_id},
    )
    return "all" if whole else ("dates" if stale else "none")


# Dates whose incidents the aggregates no longer count right.
_MISMATCHED_DATES = f"""
    SELECT coalesce(f.source, a.source) AS source,
           coalesce(f.local_date, a.local_date) AS local_date
    FROM (SELECT source, local_date, count(*) AS n FROM {TABLE}
          GROUP BY source, local_date) f
    FULL JOIN (SELECT source, local_date, sum(incidents) AS n FROM agg_incident_hour
               GROUP BY source, local_date) a
        ON a.source = f.source AND a.local_date = f.local_date
    WHERE f.n IS NULL OR a.n IS NULL OR f.n <> a.n
"""


# The incidents page's preset periods, whose percentiles are stored: a period not
# listed is still answered exactly, only computed when asked for.
PAGE_PERIODS = incidents.PRESETS
PERCENTILES = "agg_incident_percentile"
_PERCENTILE_COLUMNS = {
    "median_attend_min": "percentile_cont(0.5) WITHIN GROUP "
    "(ORDER BY i.attend_seconds) / 60.0",
    "p90_attend_min": "percentile_cont(0.9) WITHIN GROUP "
    "(ORDER BY i.attend_seconds) / 60.0",
    "median_answer_s": "percentile_cont(0.5) WITHIN GROUP (ORDER BY i.answer_seconds)",
    "median_dispatch_s": "percentile_cont(0.5) WITHIN GROUP "
    "(ORDER BY i.dispatch_seconds)",
    "median_travel_s": "percentile_cont(0.5) WITHIN GROUP (ORDER BY i.travel_seconds)",
}


def page_periods(latest: dt.date) -> list[tuple[dt.date, dt.date]]:
    """(start, end) of each preset period ending at `latest`, and of the same dates a
    year earlier (what the page compares with)."""
    periods = set()
    for name in PAGE_PERIODS:
        start, end = incidents.preset_period(name, latest)
        periods |= {
            (start, end),
            (incidents.year_earlier(start), incidents.year_earlier(end)),
        }
    return sorted(periods)


def rebuild_incident_percentiles(conn) -> int:
    """Recompute agg_incident_percentile for every source together and each alone;
    returns the periods computed."""
    conn.execute(text(f"DELETE FROM {PERCENTILES}"))
    latest = conn.execute(
        text(f"SELECT source, max(local_date) FROM {TABLE} GROUP BY source")
    ).all()
    scopes = [(source, day) for source, day in latest]
    if len(latest) > 1:  # with one source, every source is that one: copied below
        scopes.append((None, max(day for _source, day in latest)))
    columns = ", ".join(_PERCENTILE_COLUMNS)
    done = 0
    for source, day in scopes:
        if isinstance(day, dt.datetime):
            day = day.date()
        where = "TRUE" if source is None else "i.source = :source"
        for start, end in page_periods(day):
            conn.execute(
                text(
                    f"""
                    INSERT INTO {PERCENTILES} (source, start_date, end_date,
                                               final_grade, {columns})
                    SELECT CAST(:source AS VARCHAR), :start, :end, i.final_grade,
                           {", ".join(_PERCENTILE_COLUMNS.values())}
                    FROM {TABLE} i
                    WHERE i.local_date BETWEEN :start AND :end AND {where}
                    GROUP BY i.final_grade
                    """
                ),
                {"source": source, "start": start, "end": end},
            )
            done += 1
    if len(latest) == 1:
        conn.execute(
            text(
                f"""
                INSERT INTO {PERCENTILES} (source, start_date, end_date, final_grade,
                                           {columns})
                SELECT NULL, start_date, end_date, final_grade, {columns}
                FROM {PERCENTILES}
                """
            )
        )
    return done
