"""Resident population by LSOA into dim_geography, with urban/rural by density."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sqlalchemy import Connection, text

from etl import pipeline
from etl.pipeline import QUARANTINE_COLUMNS, Loaded, SourceError, Staged
from etl.sources.boundaries import GEOGRAPHY_COLUMNS

NAME = "population"
PATTERNS = ("*.csv", "*.csv.gz")
WRITES = ()

CODE_COLUMNS = ("lsoa21_code", "LSOA21CD", "lsoa11_code", "lsoa_code")
TOTAL_COLUMNS = ("usual_residents_total", "population")
POPULATION_YEAR = 2021
# A documented proxy while no ONS rural-urban class is loaded: the ONS classification
# itself is built from settlements of 10,000+ people, which density tracks closely.
URBAN_RESIDENTS_PER_KM2 = 1_000
NOT_IN_BOUNDARIES = "LSOA code not in the loaded boundaries (2021 code new since 2011?)"


def _pick(path: Path, header: list[str], names: tuple[str, ...]) -> str:
    found = next((n for n in names if n in header), None)
    if found is None:
        raise SourceError(
            f"{path}: missing column(s): one of {', '.join(names)}; the header has "
            f"{', '.join(header)}"
        )
    return found


def _stage_file(path: Path):
    csv = pipeline.read_csv(path, required=())
    header = [c for c in csv.frame.columns if c != "_line"]
    code_column = _pick(path, header, CODE_COLUMNS)
    total_column = _pick(path, header, TOTAL_COLUMNS)
    frame = csv.frame
    code = frame[code_column].str.strip()
    total = pd.to_numeric(frame[total_column].str.replace(",", ""), errors="coerce")
    no_code = code.eq("")
    bad_total = ~no_code & (total.isna() | (total < 0) | (total % 1 != 0))
    rejects = [
        csv.bad_rows,
        csv.rejects(frame[no_code], f"blank {code_column}"),
        csv.rejects(frame[bad_total], f"{total_column} is not a whole number >= 0"),
    ]
    good = ~(no_code | bad_total)
    rows = pd.DataFrame(
        {
            "lsoa_code": code[good],
            "population": total[good].astype("int64"),
            "_line": frame["_line"][good],
        }
    )
    return csv, rows, rejects, len(frame) + len(csv.bad_rows)


def stage(files: list[Path], mapping: dict | None) -> Staged:
    parsed = [_stage_file(path) for path in files]
    return Staged(
        frames={"files": parsed},
        rows_read=sum(p[3] for p in parsed),
        rejects=pd.concat(
            [pd.DataFrame(columns=QUARANTINE_COLUMNS)]
            + [r for p in parsed for r in p[2]],
            ignore_index=True,
        ),
        files=files,
    )


def _geography(conn: Connection) -> pd.DataFrame:
    columns = ", ".join(f"g.{c}" for c in GEOGRAPHY_COLUMNS)
    result = conn.execute(
        text(
            f"SELECT {columns}, a.area_km2 FROM dim_geography g "
            "LEFT JOIN dim_area a ON a.area_code = g.lsoa_code AND a.level = :level"
        ),
        {"level": "lsoa"},
    )
    return pd.DataFrame(result.fetchall(), columns=[*GEOGRAPHY_COLUMNS, "area_km2"])


def load(conn: Connection, staged: Staged, run_id: int) -> Loaded:
    geography = _geography(conn)
    known = set(geography["lsoa_code"])
    matched, unknown = [], []
    for csv, rows, _, _ in staged.frames["files"]:
        outside = ~rows["lsoa_code"].isin(known)
        unknown.append(csv.rejects(rows[outside], NOT_IN_BOUNDARIES))
        matched.append(rows[~outside])
    # Which codes the boundaries hold is only known here; the pipeline quarantines
    # staged.rejects after load, so these rows join them.
    staged.rejects = pd.concat([staged.rejects, *unknown], ignore_index=True)
    rows, in_run_duplicates = pipeline.split_duplicates(
        pd.concat(matched, ignore_index=True), ["lsoa_code"]
    )
    updated = _with_population(geography, rows)
    inserted, changed, unchanged = pipeline.upsert(
        conn, "dim_geography", updated, ["lsoa_code"], GEOGRAPHY_COLUMNS
    )
    missing = len(known) - len(rows)
    notes = []
    if missing:
        notes.append(f"{missing:,} LSOAs in the geography have no population row")
    return Loaded(
        rows_loaded=inserted + changed,
        rows_duplicate=unchanged + in_run_duplicates,
        notes=notes,
    )


def _with_population(geography: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """The geography rows the file covers, with population and urban/rural set."""
    merged = geography.drop(columns=["population"]).merge(
        rows[["lsoa_code", "population"]], on="lsoa_code", how="inner"
    )
    merged["population_year"] = POPULATION_YEAR
    density = merged["population"] / merged["area_km2"].astype("float64")
    by_density = pd.Series("rural", index=merged.index, dtype=object).where(
        density < URBAN_RESIDENTS_PER_KM2, "urban"
    )
    by_density[density.isna()] = None
    from_ruc = merged["urban_rural_source"].eq("ruc").fillna(False).astype(bool)
    merged["urban_rural"] = merged["urban_rural"].where(from_ruc, by_density)
    merged["urban_rural_source"] = merged["urban_rural_source"].where(
        from_ruc, by_density.where(by_density.isna(), "density")
    )
    merged["population"] = merged["population"].astype("Int64")
    merged["population_year"] = merged["population_year"].astype("Int64")
    return merged[GEOGRAPHY_COLUMNS]
