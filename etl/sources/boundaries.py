"""Boundary layers (LSOA, ward, LAD, force area) into dim_area and dim_geography."""

from __future__ import annotations

import json
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Connection, text

from etl import geography, pipeline
from etl.pipeline import QUARANTINE_COLUMNS, Loaded, SourceError, Staged

NAME = "boundaries"
PATTERNS = ("*.geojson", "*.gpkg", "*.shp")
WRITES = ()

LEVELS = ("force", "lad", "ward", "lsoa")
AREA_COLUMNS = [
    "area_code",
    "area_name",
    "level",
    "parent_code",
    "force_name",
    "geometry_wkt",
    "area_km2",
    "centroid_lon",
    "centroid_lat",
    "geometry_repaired",
    "source_file",
]
GEOGRAPHY_COLUMNS = [
    "lsoa_code",
    "lsoa_name",
    "ward_code",
    "ward_name",
    "lad_code",
    "lad_name",
    "force_name",
    "population",
    "population_year",
    "urban_rural",
    "urban_rural_source",
    "centroid_lon",
    "centroid_lat",
]
# ONS 2011 classes A-C and 2021 classes U* are urban; the rest are rural.
_URBAN_RUC = re.compile(r"^(A|B|C|U)", re.IGNORECASE)


def _column(columns, pattern: str) -> str | None:
    regex = re.compile(pattern, re.IGNORECASE)
    return next((c for c in columns if regex.fullmatch(c)), None)


def classify(frame: gpd.GeoDataFrame) -> tuple[str | None, dict[str, str | None]]:
    """The level a layer holds, from its ONS code columns, and which columns to read."""
    cols = [c for c in frame.columns if c != frame.geometry.name]
    lad = _column(cols, r"LAD\d\dCD|LAD_CD")
    lad_name = _column(cols, r"LAD\d\dNM|LAD_NM")
    ruc = _column(cols, r"RUC\d\dCD")
    if code := _column(cols, r"LSOA\d\dCD"):
        name = _column(cols, code[:-2] + "NM")
        return "lsoa", {
            "code": code,
            "name": name,
            "lad": lad,
            "lad_name": lad_name,
            "ruc": ruc,
        }
    if code := _column(cols, r"WD\d\dCD"):
        name = _column(cols, code[:-2] + "NM")
        return "ward", {"code": code, "name": name, "lad": lad, "lad_name": lad_name}
    if _column(cols, r"(MSOA|OA|LSOA|WD|CTY|RGN|CTRY)\d\dCD"):
        return None, {}
    if lad:
        return "lad", {"code": lad, "name": lad_name}
    if "name" in cols and len(frame) == 1:
        return "force", {"code": None, "name": "name"}
    return None, {}


def _read(path: Path) -> gpd.GeoDataFrame:
    try:
        return geography.read_layer(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a whole-file problem
        raise SourceError(f"{path}: cannot read the layer ({exc})") from exc


def _feature_rejects(path: Path, frame: gpd.GeoDataFrame, bad: pd.Series, reason: str):
    if not bad.any():
        return pd.DataFrame(columns=QUARANTINE_COLUMNS)
    rows = frame[bad].drop(columns=frame.geometry.name)
    raw = [json.dumps(r, default=str) for r in rows.to_dict(orient="records")]
    lines = (np.flatnonzero(bad.to_numpy()) + 1).tolist()  # the feature's number
    return pd.DataFrame(
        {"file": str(path), "line": lines, "raw": raw, "reason": reason}
    )


def _normalise(path: Path, frame: gpd.GeoDataFrame, kind: str, cols: dict):
    """The layer's usable features in a common shape, plus its quarantine rows."""
    no_geometry = (frame.geometry.isna() | frame.geometry.is_empty).reset_index(
        drop=True
    )
    frame = frame.reset_index(drop=True)
    rejects = [_feature_rejects(path, frame, no_geometry, "feature has no geometry")]
    code = cols["code"]
    no_code = ~no_geometry & pd.Series(False, index=frame.index)
    if code:
        blank = frame[code].isna() | (frame[code].astype("string").str.strip() == "")
        no_code = ~no_geometry & blank.fillna(True).astype(bool)
        rejects.append(_feature_rejects(path, frame, no_code, f"feature has no {code}"))
    good = frame[~(no_geometry | no_code)]

    def pick(key):
        column = cols.get(key)
        if column is None:
            return pd.Series(pd.NA, index=good.index, dtype="string")
        return good[column].astype("string").str.strip()

    out = gpd.GeoDataFrame(
        {
            "code": pick("code"),
            "name": pick("name"),
            "lad_code": pick("lad"),
            "lad_name": pick("lad_name"),
            "ruc": pick("ruc"),
            "source_file": str(path),
        },
        geometry=good.geometry.to_numpy(),
        crs=geography.WGS84,
    )
    return out, rejects


def stage(files: list[Path], mapping: dict | None) -> Staged:
    layers: dict[str, list[gpd.GeoDataFrame]] = {level: [] for level in LEVELS}
    rejects: list[pd.DataFrame] = []
    notes: list[str] = []
    rows_read = set_aside = 0
    for path in files:
        frame = _read(path)
        rows_read += len(frame)
        kind, cols = classify(frame)
        if kind is None:
            set_aside += len(frame)
            notes.append(
                f"{path.name}: {len(frame):,} features set aside (not an LSOA, ward, "
                "LAD or force-area layer)"
            )
            continue
        layer, layer_rejects = _normalise(path, frame, kind, cols)
        rejects.extend(layer_rejects)
        layers[kind].append(layer)
    if not layers["lsoa"]:
        raise SourceError(
            f"{', '.join(str(f) for f in files)}: no LSOA layer (a layer with an "
            "LSOA11CD or LSOA21CD column) among these files"
        )
    combined = {
        level: _repaired(pd.concat(frames, ignore_index=True)) if frames else None
        for level, frames in layers.items()
    }
    areas, derived, geography_rows = build_areas(combined)
    repaired = int(areas["geometry_repaired"].sum())
    if repaired:
        notes.append(f"{repaired:,} invalid polygon(s) repaired with make_valid")
    if not derived.empty:
        notes.append(f"{len(derived):,} LAD polygon(s) dissolved from their LSOAs")
    return Staged(
        frames={"areas": areas, "derived": derived, "geography": geography_rows},
        rows_read=rows_read,
        rejects=pd.concat(
            [pd.DataFrame(columns=QUARANTINE_COLUMNS), *rejects], ignore_index=True
        ),
        rows_set_aside=set_aside,
        files=files,
        notes=notes,
    )


def _repaired(layer: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    geometry, fixed = geography.repair(layer.geometry)
    layer = layer.set_geometry(geometry)
    layer["geometry_repaired"] = fixed.to_numpy()
    return layer


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _force_name(feature_name: str) -> str:
    # "West Midlands Police force area (7 metropolitan districts)" names the force
    # "West Midlands Police", as police.uk's `Falls within` does.
    return re.split(r"\s+force area\b", feature_name, flags=re.IGNORECASE)[0].strip()


def _containing(points: gpd.GeoSeries, polygons: gpd.GeoDataFrame, column: str):
    """For each point, `column` of the polygon containing it (NA when none)."""
    found = pd.Series(pd.NA, index=points.index, dtype="string")
    if polygons is None or polygons.empty:
        return found
    joined = gpd.sjoin(
        gpd.GeoDataFrame(geometry=points, crs=points.crs),
        polygons[[column, "geometry"]],
        how="inner",
        predicate="within",
    )
    joined = joined[~joined.index.duplicated(keep="first")]
    found.loc[joined.index] = joined[column].astype("string")
    return found


def best_fit(small: gpd.GeoDataFrame, large: gpd.GeoDataFrame) -> pd.Series:
    """For each `small` area, the `large` area's code it overlaps most (EPSG:27700)."""
    fit = pd.Series(pd.NA, index=small.index, dtype="string")
    if large is None or large.empty:
        return fit
    small_bng = small[["geometry"]].to_crs(geography.BRITISH_NATIONAL_GRID)
    large_bng = large[["code", "geometry"]].to_crs(geography.BRITISH_NATIONAL_GRID)
    pairs = gpd.sjoin(small_bng, large_bng, how="inner", predicate="intersects")
    overlap = shapely.area(
        shapely.intersection(
            small_bng.geometry.loc[pairs.index].to_numpy(),
            large_bng.geometry.loc[pairs["index_right"]].to_numpy(),
        )
    )
    pairs = pairs.assign(overlap=overlap).sort_values("overlap", ascending=False)
    best = pairs[~pairs.index.duplicated(keep="first")]
    fit.loc[best.index] = best["code"].astype("string")
    return fit


def _measures(layer: gpd.GeoDataFrame) -> pd.DataFrame:
    bng = layer.geometry.to_crs(geography.BRITISH_NATIONAL_GRID)
    centroids = bng.centroid.to_crs(geography.WGS84)
    return pd.DataFrame(
        {
            "geometry_wkt": shapely.to_wkt(
                layer.geometry.to_numpy(), rounding_precision=-1
            ),
            "area_km2": bng.area.to_numpy() / 1e6,
            "centroid_lon": centroids.x.to_numpy(),
            "centroid_lat": centroids.y.to_numpy(),
        },
        index=layer.index,
    )


def _dissolved_lads(lsoas: gpd.GeoDataFrame, lads: gpd.GeoDataFrame | None):
    """LAD polygons for LADs the LSOAs name but no LAD layer holds."""
    known = set() if lads is None else set(lads["code"])
    wanted = lsoas[lsoas["lad_code"].notna() & ~lsoas["lad_code"].isin(known)]
    if wanted.empty:
        return None
    dissolved = wanted.dissolve(by="lad_code", aggfunc={"lad_name": "first"})
    dissolved = dissolved.reset_index().rename(
        columns={"lad_code": "code", "lad_name": "name"}
    )
    dissolved["source_file"] = "dissolved from " + ", ".join(
        sorted(set(wanted["source_file"]))
    )
    dissolved["geometry_repaired"] = False
    return dissolved


def build_areas(layers: dict[str, gpd.GeoDataFrame | None]):
    """The dim_area rows (from features, and dissolved), and the dim_geography rows."""
    lsoas, wards, lads, forces = (layers[k] for k in ("lsoa", "ward", "lad", "force"))
    derived_lads = _dissolved_lads(lsoas, lads)
    all_lads = pd.concat(
        [f for f in (lads, derived_lads) if f is not None], ignore_index=True
    )
    all_lads = gpd.GeoDataFrame(all_lads, geometry="geometry", crs=geography.WGS84)
    if forces is not None:
        forces = forces.assign(
            force_name=forces["name"].map(_force_name),
            code=forces["name"].map(lambda n: _slug(_force_name(n))),
        )
    lads_force = (
        _containing(all_lads.geometry.representative_point(), forces, "code")
        if not all_lads.empty
        else pd.Series(dtype="string")
    )
    force_names = (
        {}
        if forces is None
        else dict(zip(forces["code"], forces["force_name"], strict=True))
    )
    lad_parent = dict(zip(all_lads["code"], lads_force, strict=True))
    lad_names = dict(zip(all_lads["code"], all_lads["name"], strict=True))

    def lad_of(layer):
        missing = layer["lad_code"].isna()
        if missing.any() and not all_lads.empty:
            filled = _containing(
                layer.geometry[missing].representative_point(), all_lads, "code"
            )
            layer.loc[missing, "lad_code"] = filled
        return layer["lad_code"]

    lsoas = lsoas.copy()
    lsoas["lad_code"] = lad_of(lsoas)
    lsoas["ward_code"] = best_fit(lsoas, wards)
    frames = []
    if forces is not None:
        frames.append(_area_rows(forces, "force", None, forces["force_name"]))
    lad_force_code = all_lads["code"].map(lad_parent)
    lad_force = lad_force_code.map(force_names)
    is_feature_lad = all_lads.index < (0 if lads is None else len(lads))
    lad_rows = _area_rows(all_lads, "lad", lad_force_code, lad_force)
    if wards is not None:
        wards = wards.copy()
        wards["lad_code"] = lad_of(wards)
        ward_force = wards["lad_code"].map(lad_parent).map(force_names)
        frames.append(_area_rows(wards, "ward", wards["lad_code"], ward_force))
    lsoa_force = lsoas["lad_code"].map(lad_parent).map(force_names)
    lsoa_parent = lsoas["ward_code"].fillna(lsoas["lad_code"])
    lsoa_rows = _area_rows(lsoas, "lsoa", lsoa_parent, lsoa_force)
    frames += [lad_rows[is_feature_lad], lsoa_rows]
    areas = pd.concat(frames, ignore_index=True)[AREA_COLUMNS]
    derived = lad_rows[~is_feature_lad].reset_index(drop=True)[AREA_COLUMNS]
    ward_names = (
        {} if wards is None else dict(zip(wards["code"], wards["name"], strict=True))
    )
    geography_rows = pd.DataFrame(
        {
            "lsoa_code": lsoas["code"],
            "lsoa_name": lsoas["name"].fillna(lsoas["code"]),
            "ward_code": lsoas["ward_code"],
            "ward_name": lsoas["ward_code"].map(ward_names),
            "lad_code": lsoas["lad_code"],
            "lad_name": lsoas["lad_code"].map(lad_names).fillna(lsoas["lad_name"]),
            "force_name": lsoa_force,
            "urban_rural": lsoas["ruc"].map(_urban_rural, na_action="ignore"),
            "centroid_lon": lsoa_rows["centroid_lon"].to_numpy(),
            "centroid_lat": lsoa_rows["centroid_lat"].to_numpy(),
        }
    )
    geography_rows["urban_rural_source"] = geography_rows["urban_rural"].where(
        geography_rows["urban_rural"].isna(), "ruc"
    )
    geography_rows = geography_rows.drop_duplicates("lsoa_code", keep="last")
    return areas, derived, geography_rows


def _urban_rural(ruc: str) -> str:
    return "urban" if _URBAN_RUC.match(ruc) else "rural"


def _area_rows(layer, level: str, parent, force_name) -> pd.DataFrame:
    measures = _measures(layer)
    rows = pd.DataFrame(
        {
            "area_code": layer["code"].astype(object).to_numpy(),
            "area_name": layer["name"].fillna(layer["code"]).astype(object).to_numpy(),
            "level": level,
            "parent_code": _values(parent, len(layer)),
            "force_name": _values(force_name, len(layer)),
            "geometry_repaired": layer["geometry_repaired"].astype(bool).to_numpy(),
            "source_file": layer["source_file"].astype(object).to_numpy(),
        }
    )
    for column in measures.columns:
        rows[column] = measures[column].to_numpy()
    return rows


def _values(series, length: int):
    if series is None:
        return [None] * length
    return (
        pd.Series(series)
        .astype(object)
        .where(pd.Series(series).notna(), None)
        .to_numpy()
    )


# ---------------------------------------------------------------------------
# Loading


def load(conn: Connection, staged: Staged, run_id: int) -> Loaded:
    areas, in_run_duplicates = pipeline.split_duplicates(
        staged.frames["areas"], ["area_code"]
    )
    inserted, updated, unchanged = pipeline.upsert(
        conn, "dim_area", areas, ["area_code"], AREA_COLUMNS
    )
    derived = staged.frames["derived"]
    derived = derived[~derived["area_code"].isin(areas["area_code"])]
    pipeline.upsert(conn, "dim_area", derived, ["area_code"], AREA_COLUMNS)
    geography_rows = _keep_population(conn, staged.frames["geography"])
    pipeline.upsert(
        conn, "dim_geography", geography_rows, ["lsoa_code"], GEOGRAPHY_COLUMNS
    )
    notes = [f"{len(geography_rows):,} LSOAs in the geography"]
    if in_run_duplicates:
        notes.append(f"{in_run_duplicates:,} features repeat an area code (last kept)")
    return Loaded(
        rows_loaded=inserted + updated,
        rows_duplicate=unchanged + in_run_duplicates,
        notes=notes,
    )


def _keep_population(conn: Connection, rows: pd.DataFrame) -> pd.DataFrame:
    """Carry over what the population source set, so reloading boundaries keeps it."""
    held = conn.execute(
        text(
            "SELECT lsoa_code, population, population_year, urban_rural, "
            "urban_rural_source FROM dim_geography"
        )
    ).fetchall()
    existing = pd.DataFrame(
        held,
        columns=[
            "lsoa_code",
            "population",
            "population_year",
            "old_urban_rural",
            "old_source",
        ],
    )
    merged = rows.drop(
        columns=["population", "population_year"], errors="ignore"
    ).merge(existing, on="lsoa_code", how="left")
    from_ruc = merged["urban_rural_source"].eq("ruc").fillna(False).astype(bool)
    for column, old in (
        ("urban_rural", "old_urban_rural"),
        ("urban_rural_source", "old_source"),
    ):
        merged[column] = (
            merged[column].astype(object).where(from_ruc, merged[old].astype(object))
        )
    merged["population"] = merged["population"].astype("Int64")
    merged["population_year"] = merged["population_year"].astype("Int64")
    return merged[GEOGRAPHY_COLUMNS]
