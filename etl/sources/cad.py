"""Command-and-control incidents: Bluelamp's contract, or an export via a mapping."""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path

import pandas as pd
from sqlalchemy import bindparam, text

from etl import mapping as mp
from etl import pipeline
from etl.grades import ensure_default_grades
from etl.pipeline import Loaded, SourceError, Staged

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
