"""Mapping another system's export onto a Bluelamp contract: names, nulls, times.

A mapping is a TOML or YAML file (see `etl/mappings/*.toml` for commented examples)
read into a `Mapping`. Everything here is vectorised: a source maps millions of rows
without a Python loop per row.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from etl.pipeline import SourceError

# The lifecycle steps of an incident, in order, and the contract column of each.
LIFECYCLE_STEPS: dict[str, str] = {
    "call_received": "call_received_at",
    "call_answered": "call_answered_at",
    "incident_created": "incident_created_at",
    "graded": "graded_at",
    "dispatched": "dispatched_at",
    "arrived": "arrived_at",
    "closed": "closed_at",
}


@dataclass(frozen=True)
class ValueMap:
    """Source value -> contract value; `other` (if set) for any unlisted value."""

    values: dict[str, str]
    other: str | None = None

    def apply(self, series: pd.Series) -> pd.Series:
        mapped = series.map(self.values)
        if self.other is None:
            return mapped.fillna(series).astype("string")
        fallback = series.where(series.isna(), self.other)
        return mapped.fillna(fallback).astype("string")


@dataclass(frozen=True)
class SetAsideRule:
    column: str
    values: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class Mapping:
    """A parsed mapping; `Mapping.contract(...)` is the identity for contract files."""

    name: str
    force: str | None = None
    time_zone: str | None = None
    encoding: str = "utf-8"
    null_tokens: tuple[str, ...] = ()
    columns: dict[str, str] = field(default_factory=dict)  # contract <- source
    time_formats: tuple[str, ...] = ()
    values: dict[str, ValueMap] = field(default_factory=dict)
    set_aside: tuple[SetAsideRule, ...] = ()
    derived_id_columns: tuple[str, ...] = ()
    derived_id_prefix: str = ""
    not_recorded: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)  # source-specific sections
    is_contract: bool = False

    @classmethod
    def contract(cls, name: str, time_zone: str) -> Mapping:
        return cls(name=name, time_zone=time_zone, is_contract=True)

    def source_columns(self) -> list[str]:
        """Every source column the mapping reads: a file without one fails its run."""
        needed = list(self.columns.values()) + list(self.derived_id_columns)
        needed += [rule.column for rule in self.set_aside]
        return list(dict.fromkeys(needed))


def parse_mapping(raw: dict, where: str = "mapping") -> Mapping:
    """Check a mapping read from TOML/YAML and turn it into a `Mapping`."""
    source = raw.get("source") or {}
    if not source.get("name"):
        raise SourceError(f"{where}: [source] needs a name (stored as the source)")
    columns = {str(k): str(v) for k, v in (raw.get("columns") or {}).items()}
    values = {
        str(target): _value_map(spec, f"{where}: [values.{target}]")
        for target, spec in (raw.get("values") or {}).items()
    }
    grades = raw.get("grades")
    if grades:
        grade_map = _value_map(grades, f"{where}: [grades]")
        for target in grades.get("fills", ["final_grade"]):
            columns[target] = str(grades["column"])
            values[target] = grade_map
    derived = raw.get("derived_id") or {}
    lifecycle = raw.get("lifecycle") or {}
    time_zone = source.get("time_zone")
    if time_zone:
        _check_zone(time_zone, where)
    return Mapping(
        name=str(source["name"]),
        force=source.get("force"),
        time_zone=time_zone,
        encoding=str(source.get("encoding", "utf-8")),
        null_tokens=tuple(str(t) for t in source.get("null_tokens", [])),
        columns=columns,
        time_formats=tuple((raw.get("times") or {}).get("formats", [])),
        values=values,
        set_aside=tuple(
            SetAsideRule(
                str(r["column"]),
                tuple(str(v) for v in r["values"]),
                str(r.get("reason", "set aside by the mapping")),
            )
            for r in raw.get("set_aside", [])
        ),
        derived_id_columns=tuple(derived.get("columns", [])),
        derived_id_prefix=str(derived.get("prefix", "")),
        not_recorded=tuple(lifecycle.get("not_recorded", [])),
        extra={k: v for k, v in raw.items() if k not in _KNOWN_SECTIONS},
    )


_KNOWN_SECTIONS = {
    "source",
    "columns",
    "values",
    "grades",
    "derived_id",
    "lifecycle",
    "times",
    "set_aside",
}


def _value_map(spec: dict, where: str) -> ValueMap:
    if "map" not in spec:
        raise SourceError(f"{where}: needs a `map` of source value = contract value")
    other = spec.get("other")
    return ValueMap(
        {str(k): str(v) for k, v in spec["map"].items()},
        None if other is None else str(other),
    )


def _check_zone(zone: str, where: str) -> None:
    try:
        pd.Timestamp("2020-01-01").tz_localize(zone)
    except Exception as exc:  # noqa: BLE001 - pytz and zoneinfo raise different types
        raise SourceError(f"{where}: unknown time zone {zone!r} ({exc})") from exc


# ---------------------------------------------------------------------------
# Frames


def unique_columns(frame: pd.DataFrame, needed: list[str], path) -> pd.DataFrame:
    """Drop repeated header names, failing if a column the mapping reads is repeated."""
    repeated = frame.columns[frame.columns.duplicated()]
    clash = sorted(set(repeated) & set(needed))
    if clash:
        raise SourceError(
            f"{path}: column(s) {', '.join(clash)} appear more than once in the header"
        )
    return frame.loc[:, ~frame.columns.duplicated()]


def apply_nulls(
    frame: pd.DataFrame, tokens: tuple[str, ...], strip: bool = True
) -> pd.DataFrame:
    """Blank strings and the mapping's null tokens become missing values.

    Other systems' exports pad fields; the contract is written by Bluelamp's own
    tools, so its millions of rows skip the strip.
    """
    out = frame.copy()
    for column in frame.columns:
        if column == "_line" or frame[column].dtype != "string":
            continue
        values = frame[column].str.strip() if strip else frame[column]
        out[column] = values.replace(["", *tokens], pd.NA)
    return out


def set_aside_mask(frame: pd.DataFrame, rules: tuple[SetAsideRule, ...]):
    """Rows the mapping sets aside, and how many each rule took."""
    mask = pd.Series(False, index=frame.index)
    counts: dict[SetAsideRule, int] = {}
    for rule in rules:
        hit = frame[rule.column].str.strip().isin(rule.values) & ~mask
        counts[rule] = int(hit.sum())
        mask |= hit
    return mask, counts


def set_aside_notes(counts: dict[SetAsideRule, int]) -> list[str]:
    return [
        f"set aside {n:,} row(s) with {rule.column} in {', '.join(rule.values)}: "
        f"{rule.reason}"
        for rule, n in counts.items()
        if n
    ]


def derive_ids(frame: pd.DataFrame, columns: tuple[str, ...], prefix: str) -> pd.Series:
    """A deterministic id from row content, plus the occurrence among identical rows.

    The same file loads to the same ids every time, so a reload is idempotent; two
    identical rows (distinct events the export cannot tell apart) stay two rows.
    """
    parts = [frame[c].fillna("").astype("string") for c in columns]
    content = parts[0].str.cat(parts[1:], sep="\x1f")
    digest = content.map(lambda s: hashlib.sha1(s.encode("utf-8")).hexdigest()[:16])
    occurrence = digest.groupby(digest).cumcount().astype(str)
    return (prefix + digest + "-" + occurrence).astype("string")


def map_columns(frame: pd.DataFrame, mapping: Mapping) -> pd.DataFrame:
    """Contract columns (only those the mapping names) plus `_line`."""
    if mapping.is_contract:
        return frame
    out = pd.DataFrame(index=frame.index)
    for target, source in mapping.columns.items():
        out[target] = frame[source]
    for target, value_map in mapping.values.items():
        if target in out:
            out[target] = value_map.apply(out[target])
    out["_line"] = frame["_line"]
    return out


# ---------------------------------------------------------------------------
# Times


@dataclass
class ParsedTimes:
    utc: pd.Series  # datetime64, UTC without a zone; NaT where missing or bad
    bad: pd.Series  # bool: a value was given but did not parse
    ambiguous: int = 0  # repeated hour at a clock change: first occurrence taken
    nonexistent: int = 0  # skipped hour at a clock change: shifted forward


def parse_iso(series: pd.Series) -> ParsedTimes:
    """ISO 8601 with a UTC offset (the contract's form) -> UTC."""
    given = series.notna()
    # Times are nearly all distinct, so to_datetime's cache of uniques only costs.
    parsed = pd.to_datetime(
        series, format="ISO8601", utc=True, errors="coerce", cache=False
    )
    # The contract's +HH:MM or Z; slicing is several times cheaper than a regex.
    has_offset = series.str.slice(-6, -5).isin(["+", "-"]) | series.str.endswith("Z")
    has_offset = has_offset.fillna(False).astype(bool)
    # A zone-less time in a contract file is ambiguous: refuse it rather than guess.
    parsed = parsed.where(has_offset)
    utc = parsed.dt.tz_localize(None).astype("datetime64[us]")
    return ParsedTimes(utc=utc, bad=given & utc.isna())


def parse_local(series: pd.Series, formats: tuple[str, ...], zone: str) -> ParsedTimes:
    """Zone-less local times in one of `formats` -> UTC, resolving clock changes."""
    given = series.notna()
    local = pd.Series(pd.NaT, index=series.index, dtype="datetime64[us]")
    for fmt in formats or ("ISO8601",):
        todo = local.isna() & given
        if not todo.any():
            break
        local = local.fillna(
            pd.to_datetime(series.where(todo), format=fmt, errors="coerce")
        )
    local = local.astype("datetime64[us]")
    first = np.ones(len(local), dtype=bool)  # True = the summer-time occurrence
    zoned = local.dt.tz_localize(zone, ambiguous=first, nonexistent="shift_forward")
    without_gap = local.dt.tz_localize(zone, ambiguous=first, nonexistent="NaT")
    without_repeat = local.dt.tz_localize(
        zone, ambiguous="NaT", nonexistent="shift_forward"
    )
    utc = zoned.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[us]")
    return ParsedTimes(
        utc=utc,
        bad=given & local.isna(),
        ambiguous=int((without_repeat.isna() & local.notna()).sum()),
        nonexistent=int((without_gap.isna() & local.notna()).sum()),
    )


def local_parts(utc: pd.Series, zone: str) -> pd.DataFrame:
    """Local date, hour and day of week (0 = Monday) for UTC times."""
    local = utc.dt.tz_localize("UTC").dt.tz_convert(zone).dt.tz_localize(None)
    return pd.DataFrame(
        {
            "local_date": local.dt.normalize().astype("datetime64[us]"),
            "local_hour": local.dt.hour.astype("int64"),
            "local_dow": local.dt.day_of_week.astype("int64"),
        },
        index=utc.index,
    )


def seconds_between(start: pd.Series, end: pd.Series) -> pd.Series:
    return (end - start).dt.total_seconds().astype("float64")


def first_reason(reasons: pd.Series, mask: pd.Series, reason: str) -> pd.Series:
    """Keep each row's first reason; give `reason` to masked rows that had none."""
    return reasons.mask(reasons.isna() & mask.fillna(False).astype(bool), reason)
