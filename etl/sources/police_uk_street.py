"""data.police.uk street-level crime files (current and 2011 layouts) into fct_crime."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Connection, text

from etl import geography, pipeline, reference, warehouse
from etl.pipeline import QUARANTINE_COLUMNS, Loaded, SourceError, Staged

NAME = "police-uk-street"
PATTERNS = ("*-street.csv", "*-street.csv.gz")
WRITES = ("fct_crime",)

CURRENT = [
    "Crime ID",
    "Month",
    "Reported by",
    "Falls within",
    "Longitude",
    "Latitude",
    "Location",
    "LSOA code",
    "LSOA name",
    "Crime type",
    "Last outcome category",
    "Context",
]
LEGACY = [
    "Month",
    "Reported by",
    "Falls within",
    "Easting",
    "Northing",
    "Location",
    "Crime type",
    "Context",
]
STAGED_COLUMNS = [
    "crime_id",
    "month",
    "reported_by",
    "falls_within",
    "longitude",
    "latitude",
    "location",
    "lsoa_code_source",
    "crime_type",
    "last_outcome_category",
    "context",
    "source_file",
    "source_line",
]
CONTENT_COLUMNS = [
    "crime_id",
    "is_asb",
    "month",
    "force_name",
    "reported_by",
    "longitude",
    "latitude",
    "location",
    "lsoa_code_source",
    "lsoa_code",
    "placement",
    "crime_type",
    "last_outcome_category",
    "context",
]
ASB = "Anti-social behaviour"
# British National Grid's extent, in metres.
EASTING_RANGE = (0, 700_000)
NORTHING_RANGE = (0, 1_300_000)


def _layout(csv: pipeline.CsvFile) -> list[str]:
    header = [c for c in csv.frame.columns if c != "_line"]
    layout = LEGACY if "Easting" in header or "Northing" in header else CURRENT
    missing = [c for c in layout if c not in header]
    if missing:
        name = "2011 legacy" if layout is LEGACY else "current"
        raise SourceError(
            f"{csv.path}: missing column(s) {', '.join(missing)} for the {name} "
            f"police.uk layout; the header has {', '.join(header)}"
        )
    return layout


def _blank_to_na(series: pd.Series) -> pd.Series:
    stripped = series.str.strip()
    return stripped.mask(stripped == "")


def _coordinates(frame: pd.DataFrame, x_col: str, y_col: str, x_range, y_range):
    """Parsed x and y, and a reason per row where they are present but unusable."""
    x_raw, y_raw = _blank_to_na(frame[x_col]), _blank_to_na(frame[y_col])
    x = pd.to_numeric(x_raw, errors="coerce")
    y = pd.to_numeric(y_raw, errors="coerce")
    given = x_raw.notna() | y_raw.notna()
    unparsed = given & (x.isna() | y.isna())
    out_of_range = given & ~unparsed & ~(x.between(*x_range) & y.between(*y_range))
    reason = pd.Series(None, index=frame.index, dtype=object)
    reason[unparsed] = f"{x_col}/{y_col} do not parse as numbers"
    reason[out_of_range] = f"{x_col}/{y_col} out of range"
    return x.astype("float64"), y.astype("float64"), reason


def _derived_keys(rows: pd.DataFrame, coordinate_columns: list[str]) -> pd.Series:
    """A stable key for rows without a Crime ID, from their content and repeat count.

    The raw coordinate text is hashed (not parsed floats) so the key never depends
    on number formatting or on the BNG->WGS84 transform.
    """
    parts = [
        "Falls within",
        "Month",
        *coordinate_columns,
        "Location",
        "Crime type",
        "Context",
    ]
    content = rows[parts].astype(str)
    nth = content.groupby(parts, sort=False).cumcount().astype(str)
    joined = content[parts[0]].str.cat(
        [content[p] for p in parts[1:]] + [nth], sep="\x1f"
    )
    return pd.Series(
        ["h:" + hashlib.sha256(s.encode()).hexdigest()[:40] for s in joined],
        index=rows.index,
        dtype=object,
    )


def _stage_file(path: Path, order: int):
    csv = pipeline.read_csv(path, required=())
    layout = _layout(csv)
    frame = csv.frame
    month = pd.to_datetime(frame["Month"].str.strip(), format="%Y-%m", errors="coerce")
    if layout is LEGACY:
        x, y, coord_reason = _coordinates(
            frame, "Easting", "Northing", EASTING_RANGE, NORTHING_RANGE
        )
    else:
        x, y, coord_reason = _coordinates(
            frame, "Longitude", "Latitude", (-180, 180), (-90, 90)
        )
    reason = pd.Series(
        np.select(
            [
                month.isna().to_numpy(),
                frame["Falls within"].str.strip().eq("").to_numpy(),
                frame["Crime type"].str.strip().eq("").to_numpy(),
                coord_reason.notna().to_numpy(),
            ],
            [
                "Month " + frame["Month"].astype(object) + " is not YYYY-MM",
                "blank Falls within",
                "blank Crime type",
                coord_reason.astype(object),
            ],
            default=None,
        ),
        index=frame.index,
    )
    bad = reason.notna()
    rejects = [csv.bad_rows, csv.rejects(frame[bad], reason[bad])]
    good = frame[~bad]
    x, y, month = x[~bad], y[~bad], month[~bad]
    if layout is LEGACY:
        lon, lat = geography.bng_to_wgs84(x, y)
        longitude = pd.Series(lon, index=good.index)
        latitude = pd.Series(lat, index=good.index)
        crime_id = pd.Series(pd.NA, index=good.index, dtype="string")
        lsoa_code = crime_id
        outcome = crime_id
        coordinate_columns = ["Easting", "Northing"]
    else:
        longitude, latitude = x, y
        crime_id = _blank_to_na(good["Crime ID"])
        lsoa_code = _blank_to_na(good["LSOA code"])
        outcome = _blank_to_na(good["Last outcome category"])
        coordinate_columns = ["Longitude", "Latitude"]
    crime_key = crime_id.astype(object)
    no_id = crime_id.isna()
    if no_id.any():
        crime_key[no_id] = _derived_keys(good[no_id], coordinate_columns)
    rows = pd.DataFrame(
        {
            "crime_key": crime_key,
            "crime_id": crime_id,
            "month": month.dt.date,
            "reported_by": _blank_to_na(good["Reported by"]),
            "falls_within": good["Falls within"].str.strip(),
            "longitude": longitude,
            "latitude": latitude,
            "location": _blank_to_na(good["Location"]),
            "lsoa_code_source": lsoa_code,
            "crime_type": good["Crime type"].str.strip(),
            "last_outcome_category": outcome,
            "context": _blank_to_na(good["Context"]),
            "source_file": str(path),
            "source_line": good["_line"].astype("int64"),
            "_order": order,
        }
    )
    return rows, rejects, len(frame) + len(csv.bad_rows)


def stage(files: list[Path], mapping: dict | None) -> Staged:
    parsed = [_stage_file(path, order) for order, path in enumerate(files)]
    rows = pd.concat([p[0] for p in parsed], ignore_index=True)
    # Month order, then file and line order: the last sighting of a crime wins.
    rows = rows.sort_values(["month", "_order", "source_line"], kind="stable")
    return Staged(
        frames={"rows": rows.reset_index(drop=True)},
        rows_read=sum(p[2] for p in parsed),
        rejects=pd.concat(
            [pd.DataFrame(columns=QUARANTINE_COLUMNS)]
            + [r for p in parsed for r in p[1]],
            ignore_index=True,
        ),
        files=files,
    )


# ---------------------------------------------------------------------------
# Loading


def _scalar_set(conn: Connection, sql: str) -> set[str]:
    return {row[0] for row in conn.execute(text(sql)).fetchall()}


def _add_unknown_crime_types(conn: Connection, crime_types: pd.Series) -> list[str]:
    known = _scalar_set(conn, "SELECT crime_type FROM dim_crime_type")
    unknown = sorted(set(crime_types.unique()) - known)
    if unknown:
        warehouse.insert_frame(
            conn, "dim_crime_type", reference.unclassified_crime_types(unknown)
        )
    return unknown


def place(conn: Connection, rows: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Each row's geography LSOA and how it was found: by code, by point, or not."""
    known = _scalar_set(conn, "SELECT lsoa_code FROM dim_geography")
    by_code = rows["lsoa_code_source"].isin(known).fillna(False).astype(bool)
    lsoa = rows["lsoa_code_source"].astype(object).where(by_code, None)
    placement = pd.Series("unplaced", index=rows.index, dtype=object)
    placement[by_code] = "lsoa_code"
    needs_point = ~by_code & rows["longitude"].notna() & rows["latitude"].notna()
    if needs_point.any():
        found = geography.place_points(
            rows.loc[needs_point, "longitude"],
            rows.loc[needs_point, "latitude"],
            geography.lsoa_polygons(conn),
        )
        found = found[found.notna()]
        lsoa[found.index] = found.astype(object)
        placement[found.index] = "coordinates"
    return lsoa, placement


def _first_sightings(
    conn: Connection, keys: pd.Series, months: pd.Series, run_id: int
) -> tuple[pd.Series, pd.Series]:
    """Each crime's first loading run and its recorded month.

    A crime republished in a later file brings a newer outcome, not a new month:
    it stays counted in the month it was first recorded.
    """
    first = pd.Series(run_id, index=keys.index, dtype="int64")
    if not conn.execute(text("SELECT count(*) FROM fct_crime")).scalar():
        return first, months
    conn.execute(text('DROP TABLE IF EXISTS "_crime_keys"'))
    conn.execute(text('CREATE TEMPORARY TABLE "_crime_keys" (crime_key VARCHAR)'))
    warehouse.insert_frame(conn, "_crime_keys", pd.DataFrame({"crime_key": keys}))
    held = pd.DataFrame(
        conn.execute(
            text(
                "SELECT f.crime_key, f.first_run_id, f.month FROM fct_crime f "
                'JOIN "_crime_keys" k ON k.crime_key = f.crime_key'
            )
        ).fetchall(),
        columns=["crime_key", "first_run_id", "month"],
    )
    conn.execute(text('DROP TABLE "_crime_keys"'))
    if held.empty:
        return first, months
    held = held.set_index("crime_key")
    found_run = keys.map(held["first_run_id"])
    found_month = keys.map(held["month"])
    first = first.where(found_run.isna(), found_run).astype("int64")
    months = months.where(found_month.isna() | (months <= found_month), found_month)
    return first, months


def load(conn: Connection, staged: Staged, run_id: int) -> Loaded:
    rows = staged.frames["rows"]
    conn.execute(text("DELETE FROM stg_police_uk__crimes"))
    warehouse.insert_frame(conn, "stg_police_uk__crimes", rows[STAGED_COLUMNS])
    # The last sighting brings the latest outcome; the first, the recorded month.
    # Only repeated keys need the minimum: a group-by over millions of date objects
    # took over a minute for ten years of files.
    repeated = rows["crime_key"].duplicated(keep=False)
    if repeated.any():
        first_month = rows[repeated].groupby("crime_key")["month"].transform("min")
        rows = rows.assign(month=first_month.combine_first(rows["month"]))
    rows, in_run_duplicates = pipeline.split_duplicates(rows, ["crime_key"])
    first_run_ids, months = _first_sightings(
        conn, rows["crime_key"], rows["month"], run_id
    )
    reference.upsert_reference(conn)
    notes = []
    if unknown := _add_unknown_crime_types(conn, rows["crime_type"]):
        notes.append(
            f"crime type(s) not in dim_crime_type added as {reference.UNCLASSIFIED}: "
            + ", ".join(unknown)
        )
    lsoa, placement = place(conn, rows)
    crimes = pd.DataFrame(
        {
            "crime_key": rows["crime_key"],
            "crime_id": rows["crime_id"],
            "is_asb": rows["crime_type"].eq(ASB).astype(bool),
            "month": months,
            "force_name": rows["falls_within"],
            "reported_by": rows["reported_by"],
            "longitude": rows["longitude"],
            "latitude": rows["latitude"],
            "location": rows["location"],
            "lsoa_code_source": rows["lsoa_code_source"],
            "lsoa_code": lsoa,
            "placement": placement,
            "crime_type": rows["crime_type"],
            "last_outcome_category": rows["last_outcome_category"],
            "context": rows["context"],
            "first_run_id": first_run_ids,
            "last_run_id": run_id,
        }
    )
    inserted, updated, unchanged = pipeline.upsert(
        conn, "fct_crime", crimes, ["crime_key"], CONTENT_COLUMNS
    )
    counts = placement.value_counts()
    unplaced = int(counts.get("unplaced", 0))
    notes.append(
        f"placed {int(counts.get('lsoa_code', 0)):,} by LSOA code and "
        f"{int(counts.get('coordinates', 0)):,} by coordinates"
    )
    if unplaced:
        notes.append(f"{unplaced:,} crimes could not be placed in the geography")
    if in_run_duplicates:
        notes.append(
            f"{in_run_duplicates:,} rows repeat a crime seen later in this run"
        )
    if updated:
        notes.append(f"{updated:,} crimes updated (e.g. a new outcome)")
    return Loaded(
        rows_loaded=inserted + updated,
        rows_duplicate=unchanged + in_run_duplicates,
        notes=notes,
    )
