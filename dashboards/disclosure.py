"""Disclosure control: counts below a threshold blanked and marked, for chosen roles.

One pure function, `suppress`, applied where the rows behind a chart are made
(dashboards/exports.py `chart_frame`, `incident_frame`), so a map and its CSV blank
the same cells. A count from 1 to threshold - 1 is replaced by a missing value, and
so is everything in its row it could be recovered from (its rate, share, harm,
median and z); a column `suppressed` says `suppressed (<N)` on each such row. A true
zero is shown: there is no one in it to disclose. Totals elsewhere (the KPI row of a
wider area, c-chart centre lines) still count every crime, and CSV headers say so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np
import pandas as pd

MARKER_COLUMN = "suppressed"


@dataclasses.dataclass(frozen=True)
class Policy:
    """BLUELAMP_SUPPRESS_BELOW and BLUELAMP_SUPPRESS_ROLES, parsed."""

    below: int = 0  # 0: off
    roles: frozenset[str] = frozenset()

    def threshold_for(self, role: str | None) -> int:
        """The threshold for a role: 0 when nothing is suppressed for it."""
        return self.below if self.below > 1 and role in self.roles else 0


def parse_policy(below: str, roles: str, known_roles: Iterable[str] = ()) -> Policy:
    """A Policy from the settings' text; a ValueError naming the setting if bad."""
    try:
        threshold = int(str(below).strip() or "0")
    except ValueError:
        raise ValueError(
            f"BLUELAMP_SUPPRESS_BELOW is {below!r}: use a whole number (0 = off)"
        ) from None
    if threshold < 0:
        raise ValueError(f"BLUELAMP_SUPPRESS_BELOW is {threshold}: use 0 or more")
    names = frozenset(r.strip() for r in str(roles).split(",") if r.strip())
    known = set(known_roles)
    unknown = sorted(names - known) if known else []
    if unknown:
        raise ValueError(
            f"BLUELAMP_SUPPRESS_ROLES names unknown role(s) {', '.join(unknown)}; "
            f"roles are {', '.join(sorted(known))}"
        )
    return Policy(threshold, names)


@dataclasses.dataclass(frozen=True)
class Rule:
    """A count column and the columns of its row that it could be recovered from."""

    count: str
    derived: tuple[str, ...] = ()


_CRIME_COUNTS = (
    Rule("crimes", ("rate_per_1000", "harm_days", "z", "significance")),
    Rule("crimes_last_year", ("z", "significance")),
)
_ATTENDANCE_COUNTS = (
    Rule(
        "incidents",
        (
            "attended",
            "with_target",
            "within_target",
            "share_within_target",
            "median_attend_min",
        ),
    ),
    Rule(
        "attended",
        ("with_target", "within_target", "share_within_target", "median_attend_min"),
    ),
    Rule("with_target", ("within_target", "share_within_target")),
    Rule("within_target", ("share_within_target",)),
)
# Per chart (as named by the export routes): the counts in its rows. Charts not
# listed are either rows about single records (refused or governed by the role's
# person_level) or not yet drawn with blanks by their page (see the README).
CRIME_RULES = {
    "areas": _CRIME_COUNTS,
    "types": _CRIME_COUNTS,
    "kpis": (*_CRIME_COUNTS, Rule("asb"), Rule("asb_last_year"), Rule("unplaced")),
    "trend": (Rule("crimes", ("rate_per_1000", "harm_days")), Rule("crimes_last_year")),
    "outcomes": (Rule("crimes", ("share",)),),
}
INCIDENT_RULES = {"areas": _ATTENDANCE_COUNTS}


def marker(threshold: int) -> str:
    return f"suppressed (<{threshold})"


def hover_text(threshold: int) -> str:
    """What a map says over a suppressed area."""
    return f"fewer than {threshold} (suppressed)"


def suppress(frame: pd.DataFrame, rules, threshold: int) -> pd.DataFrame:
    """A copy of `frame` with small counts, and what they could be recovered from,
    blanked; a `suppressed` column marks those rows. `attrs["disclosure"]` says how
    many cells were blanked, for the CSV header. With threshold 0, the frame as is."""
    if threshold <= 0:
        return frame
    out = frame.copy()
    # Every mask from the counts as queried, before any is blanked.
    small = {}
    for rule in rules:
        if rule.count in out.columns:
            values = pd.to_numeric(out[rule.count], errors="coerce")
            small[rule.count] = ((values > 0) & (values < threshold)).to_numpy(bool)
    blanked = np.zeros((len(out), len(out.columns)), dtype=bool)
    columns = list(out.columns)
    for rule in rules:
        mask = small.get(rule.count)
        if mask is None or not mask.any():
            continue
        for column in (rule.count, *rule.derived):
            if column in out.columns:
                shown = out[column].notna().to_numpy()
                blanked[:, columns.index(column)] |= mask & shown
                out[column] = _blank(out[column], mask)
    rows = np.zeros(len(out), dtype=bool)
    for mask in small.values():
        rows |= mask
    out[MARKER_COLUMN] = np.where(rows, marker(threshold), "")
    out.attrs["disclosure"] = {
        "threshold": threshold,
        "cells": int(blanked.sum()),
        "counts": [r.count for r in rules if r.count in out.columns],
    }
    return out


def _blank(column: pd.Series, mask) -> pd.Series:
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        # float NaN, not a nullable NA: the page's figures format these values.
        out = column.astype("float64")
        out[mask] = np.nan
        return out
    out = column.copy()
    out[mask] = None
    return out


def header_note(frame: pd.DataFrame) -> str | None:
    """The CSV header's sentence on what was suppressed, or None if nothing applied."""
    info = frame.attrs.get("disclosure")
    if not info:
        return None
    n = info["threshold"]
    return (
        f"counts from 1 to {n - 1} are blank and marked {marker(n)!r} in the "
        f"{MARKER_COLUMN!r} column, with the rates, shares, harm and z of their row; "
        f"{info['cells']:,} cell(s) suppressed. Totals are not adjusted: they count "
        "every record, suppressed ones included."
    )


def for_csv(frame: pd.DataFrame) -> pd.DataFrame:
    """Suppressed count columns as whole numbers again (12, not 12.0), blanks empty."""
    info = frame.attrs.get("disclosure")
    if not info:
        return frame
    out = frame.copy()
    for column in info["counts"]:
        values = out[column]
        if pd.api.types.is_float_dtype(values):
            whole = values.dropna()
            if (whole == whole.round()).all():
                out[column] = values.astype("Int64")
    return out
