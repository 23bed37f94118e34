"""Seeded demo data for West Midlands Police, written in the real source formats."""

from __future__ import annotations

import calendar
import datetime as dt
import gzip
import io
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyogrio
import shapely

FORCE = "West Midlands Police"
LONDON = "Europe/London"

# code, name, centre lon, centre lat, radius km (of the synthetic layout), LSOAs,
# call-sign prefix
DISTRICTS = (
    ("E08000025", "Birmingham", -1.890, 52.480, 11.0, 640, "BM"),
    ("E08000026", "Coventry", -1.520, 52.410, 6.5, 195, "CV"),
    ("E08000027", "Dudley", -2.110, 52.480, 6.5, 195, "DY"),
    ("E08000028", "Sandwell", -2.005, 52.515, 6.0, 185, "SW"),
    ("E08000029", "Solihull", -1.745, 52.415, 10.0, 135, "SH"),
    ("E08000030", "Walsall", -1.982, 52.590, 6.5, 170, "WS"),
    ("E08000031", "Wolverhampton", -2.128, 52.588, 5.5, 160, "WV"),
)
LAD_CODES = np.array([d[0] for d in DISTRICTS])
# Birmingham, Coventry and Wolverhampton city centres: where hot spots sit.
CITY_CENTRES = np.array([[-1.8990, 52.4797], [-1.5106, 52.4081], [-2.1276, 52.5862]])
HOTSPOTS_PER_CENTRE = (4, 2, 2)

POLICE_UK_COLUMNS = [
    "Crime ID", "Month", "Reported by", "Falls within", "Longitude", "Latitude",
    "Location", "LSOA code", "LSOA name", "Crime type", "Last outcome category",
    "Context",
]
CAD_COLUMNS = [
    "incident_id", "force", "call_received_at", "call_answered_at",
    "incident_created_at", "graded_at", "dispatched_at", "arrived_at", "closed_at",
    "opening_grade", "final_grade", "incident_type", "location", "lsoa_code",
    "longitude", "latitude", "channel", "attending_unit",
]
CALLS_COLUMNS = [
    "call_id", "line", "bt_connected_at", "queued_at", "answered_at", "abandoned_at",
]
POPULATION_COLUMNS = [
    "lsoa21_code", "lsoa21_name", "lad_code", "lad_name", "usual_residents_total",
]

CRIME_TYPES = np.array([
    "Violence and sexual offences", "Public order", "Criminal damage and arson",
    "Shoplifting", "Other theft", "Vehicle crime", "Burglary", "Drugs", "Robbery",
    "Theft from the person", "Bicycle theft", "Possession of weapons", "Other crime",
])
CRIME_SHARES = np.array([38, 10, 8, 6, 6, 7, 5, 2.5, 1.5, 1, 0.7, 1, 2])
# Types that concentrate in city centres far more than residents do.
CENTRAL_TYPES = np.isin(CRIME_TYPES, [
    "Public order", "Shoplifting", "Other theft", "Drugs", "Robbery",
    "Theft from the person",
])
# Proactive types are found by the police with a suspect, so more reach court.
PROACTIVE_TYPES = np.isin(
    CRIME_TYPES, ["Drugs", "Possession of weapons", "Shoplifting"]
)
MONTHLY_CRIMES = 27_000
ASB_SHARE = 0.15
UNPLACED_SHARE = 0.004

UNDER_INVESTIGATION = "Under investigation"
OUTCOMES = np.array([
    UNDER_INVESTIGATION,
    "Investigation complete; no suspect identified",
    "Unable to prosecute suspect",
    "Status update unavailable",
    "Court result unavailable",
    "Awaiting court outcome",
    "Local resolution",
    "Offender given a caution",
    "Formal action is not in the public interest",
    "Further investigation is not in the public interest",
    "Action to be taken by another organisation",
    "Suspect charged as part of another case",
    "Offender given penalty notice",
    "Offender sent to prison",
    "Offender given community sentence",
    "Offender fined",
    "Offender given suspended prison sentence",
    "Offender given conditional discharge",
    "Offender otherwise dealt with",
    "Defendant found not guilty",
    "Offender given a drugs possession warning",
])
OUTCOME_MIX = np.array([
    2, 42, 30, 1, 3, 3, 5, 1.5, 1, 2, 2, 0.5, 0.5, 1.5, 1, 1, 0.8, 0.4, 0.3, 0.3, 0,
])
PROACTIVE_OUTCOME_MIX = np.array([
    2, 8, 22, 1, 10, 8, 14, 6, 3, 2, 1, 2, 3, 4, 3, 4, 2, 1.5, 0.5, 0.5, 4,
])

STREET_WORDS = np.array([
    "Church", "Station", "Park", "High", "Mill", "Victoria", "Albert", "Green",
    "School", "Queen", "King", "New", "Manor", "Grove", "Chapel", "Brook", "Windsor",
    "York", "Warwick", "Stratford", "Coventry", "Lichfield", "Hagley", "Bristol",
    "Pershore", "Soho", "Bath", "Oak", "Elm", "Ash", "Willow", "Cedar", "Meadow",
    "Hall", "Castle", "Canal", "Bridge", "Forge", "Foundry", "Tamworth", "Walsall",
    "Dudley", "Moseley", "Harborne", "Edgbaston", "Aston", "Sutton", "Tipton",
])
STREET_KINDS = np.array([
    "Road", "Street", "Lane", "Avenue", "Close", "Way", "Drive", "Grove", "Crescent",
    "Place",
])
PLACES = np.array([
    "Supermarket", "Parking Area", "Shopping Area", "Petrol Station", "Nightclub",
    "Sports/Recreation Area", "Hospital", "Further/Higher Educational Building",
    "Bus/Coach Station", "Theatre/Concert Hall", "Pedestrian Subway", "Police Station",
])
POINTS_PER_LSOA = 12

# Incidents: grades 1-4 and how each is handled.
GRADE_SHARES = np.array([0.15, 0.35, 0.30, 0.20])
REGRADE_SHARE = 0.10
CHANNELS = np.array(["999", "101", "other"])
CHANNEL_BY_GRADE = np.array([
    [0.80, 0.10, 0.10], [0.45, 0.40, 0.15], [0.15, 0.65, 0.20], [0.05, 0.70, 0.25],
])
ATTEND_SHARE = np.array([0.97, 0.85, 0.45, 0.25])
DISPATCH_MEDIAN_S = np.array([50.0, 15 * 60, 2 * 3600, 20 * 3600])
DISPATCH_SIGMA = np.array([0.6, 1.0, 1.0, 0.8])
TRAVEL_MEDIAN_S = np.array([6.9 * 60, 11 * 60, 13 * 60, 13 * 60])
RURAL_TRAVEL_FACTOR = 1.6
RESOLVE_MEDIAN_S = np.array([30 * 60, 3600, 3 * 3600, 24 * 3600])
RURAL_DENSITY_PER_KM2 = 1_000
INCIDENT_TYPES = np.array([
    "Concern for safety", "Domestic incident", "Violence - assault in progress",
    "Road traffic collision - injury", "Burglary in progress", "Weapons", "Robbery",
    "Suspicious circumstances", "Assault", "Missing person", "Road traffic collision",
    "Public order", "Theft", "Criminal damage", "ASB - nuisance",
    "Burglary - not in progress", "Civil dispute", "Vehicle crime",
    "Lost or found property", "Advice",
])
INCIDENT_TYPE_BY_GRADE = np.array([
    [20, 20, 20, 12, 8, 10, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    [15, 20, 0, 0, 0, 0, 0, 15, 12, 8, 10, 10, 10, 0, 0, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 0, 12, 0, 0, 0, 0, 22, 16, 18, 10, 12, 10, 0, 0],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 25, 15, 10, 0, 18, 12, 10, 10],
])
RESPONSE_UNITS, NEIGHBOURHOOD_UNITS = 30, 15
MONTHLY_INCIDENTS = 60_000
# Calls that never became an incident: advice, repeats, hoaxes, enquiries.
DAILY_EXTRA_999 = 1_300
DAILY_EXTRA_101 = 1_100
ABANDON_SHARE = {"999": 0.03, "101": 0.14}
MISSING = np.int64(-1)

# Local hour (0-23) and day (Monday first) shapes of demand.
HOUR_PROFILE = np.array([
    0.55, 0.45, 0.38, 0.32, 0.28, 0.28, 0.35, 0.50, 0.70, 0.85, 0.95, 1.00,
    1.05, 1.05, 1.10, 1.20, 1.30, 1.35, 1.35, 1.30, 1.25, 1.15, 1.00, 0.80,
])
DAY_PROFILE = np.array([1.00, 0.97, 0.97, 1.00, 1.08, 1.10, 1.00])
WEEK_PROFILE = np.outer(DAY_PROFILE, HOUR_PROFILE)
WEEK_PROFILE[4:6, 21:] *= 1.3  # Friday and Saturday nights out
WEEK_PROFILE[5:7, :4] *= 1.4  # ...and the small hours after them

MONTHLY_FILES = {
    "police-uk-street": "*-west-midlands-street.csv",
    "cad": "cad-*.csv.gz",
    "calls": "calls-*.csv.gz",
}

Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class Geography:
    """The LSOAs demo rows are placed in, with what the generator needs of each."""

    code: np.ndarray
    name: np.ndarray
    district: np.ndarray  # index into DISTRICTS
    population: np.ndarray
    rural: np.ndarray
    crime_weight: np.ndarray
    central_weight: np.ndarray
    point_lon: np.ndarray  # (LSOAs, POINTS_PER_LSOA), points inside each LSOA
    point_lat: np.ndarray
    location: np.ndarray  # "On or near ..." per point, same shape


def generate(
    out_dir: Path,
    years: int = 2,
    seed: int = 42,
    end_month: dt.date | None = None,
    boundaries_dir: Path | None = None,
    progress: Progress | None = None,
    months: int | None = None,
    workers: int | None = None,
) -> dict[str, Path]:
    """Write demo files under out_dir; return the path to load per source, in order.

    The data covers `months` (default 12 * years) whole months ending with
    `end_month` (default last month). `progress(source, rows)` is called as each
    file is written. The same arguments always write byte-identical files.
    """
    out_dir = Path(out_dir)
    end_month = (end_month or _last_month()).replace(day=1)
    month_list = _months_ending(end_month, months or 12 * years)
    report = progress or (lambda label, rows: None)
    paths = {
        "boundaries": out_dir / "boundaries",
        "population": out_dir / "population" / "population.csv",
        "police-uk-street": out_dir / "police_uk",
        "cad": out_dir / "cad",
        "calls": out_dir / "calls",
    }
    for key, pattern in MONTHLY_FILES.items():
        paths[key].mkdir(parents=True, exist_ok=True)
        # Months from an earlier, longer run would otherwise be loaded with these.
        for stale in paths[key].glob(pattern):
            stale.unlink()
    paths["population"].parent.mkdir(parents=True, exist_ok=True)

    if boundaries_dir is None:
        layers = synthetic_boundaries(seed)
        paths["boundaries"].mkdir(parents=True, exist_ok=True)
        for file_name, layer in layers.items():
            _write_geojson(layer, paths["boundaries"] / file_name)
            report("boundaries", len(layer))
        lsoas = layers["wm_lsoa11.geojson"]
    else:
        paths["boundaries"] = Path(boundaries_dir)
        lsoas = read_lsoas(Path(boundaries_dir))
    geo = build_geography(lsoas, seed)
    population = _population_frame(geo)
    population.to_csv(paths["population"], index=False, lineterminator="\n")
    report("population", len(population))

    tasks = [(seed, month, end_month, paths) for month in month_list]
    for written in _run_months(geo, tasks, workers):
        for label, rows in written:
            report(label, rows)
    return paths


def write_cad_day(
    out_file: Path, day: dt.date, seed: int = 42, boundaries_dir: Path | None = None
) -> int:
    """Write one local day of CAD incidents as a contract file; return its rows.

    Used to measure an incremental refresh after `generate` with the same seed.
    """
    lsoas = read_lsoas(boundaries_dir) if boundaries_dir else (
        synthetic_boundaries(seed)["wm_lsoa11.geojson"]
    )
    geo = build_geography(lsoas, seed)
    rng = np.random.default_rng([seed, 3, day.year, day.month, day.day])
    start, end = _local_midnight_utc(day), _local_midnight_utc(day + dt.timedelta(1))
    expected = MONTHLY_INCIDENTS * 12 / 365.25 * _season(day.month, 0.07)
    incidents = _incidents(rng, geo, start, end, expected)
    _write_csv(_cad_table(geo, incidents), CAD_COLUMNS, Path(out_file))
    return len(incidents["incident_id"])


# ---------------------------------------------------------------------------
# Calendar and time formatting


def _last_month() -> dt.date:
    return (dt.date.today().replace(day=1) - dt.timedelta(days=1)).replace(day=1)


def _months_ending(end_month: dt.date, count: int) -> list[dt.date]:
    index = end_month.year * 12 + end_month.month - 1
    return [
        dt.date(i // 12, i % 12 + 1, 1) for i in range(index - count + 1, index + 1)
    ]


def _next_month(month: dt.date) -> dt.date:
    return dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _season(month: int, amplitude: float) -> float:
    """A summer peak: July highest, January lowest."""
    return 1 + amplitude * np.cos(2 * np.pi * (month - 7) / 12)


def _local_midnight_utc(day: dt.date) -> int:
    stamp = pd.Timestamp(day.year, day.month, day.day).tz_localize(LONDON)
    return int(stamp.timestamp())


def _utc_offset(utc_seconds: np.ndarray) -> np.ndarray:
    """Europe/London's offset from UTC, in seconds, at each instant."""
    index = pd.DatetimeIndex(utc_seconds.astype("datetime64[s]")).tz_localize("UTC")
    local = index.tz_convert(LONDON).tz_localize(None)
    return local.to_numpy().astype("datetime64[s]").astype(np.int64) - utc_seconds


@cache
def _clock_suffixes() -> np.ndarray:
    """b'HH:MM:SS+00:00' for each second of a day, then the same with +01:00."""
    seconds = np.arange(86_400, dtype=np.int64).astype("datetime64[s]")
    clock = np.strings.slice(np.datetime_as_string(seconds, unit="s"), 11, 19)
    suffixes = [np.strings.add(clock, offset) for offset in ("+00:00", "+01:00")]
    return np.concatenate(suffixes).astype("S14")


def iso_local(utc_seconds: np.ndarray) -> pa.Array:
    """ISO 8601 local London times with offset; MISSING seconds become nulls."""
    missing = utc_seconds == MISSING
    present = np.where(missing, utc_seconds[~missing].min(initial=0), utc_seconds)
    offset = _utc_offset(present)
    local = present + offset
    day = local // 86_400
    first = day.min(initial=0)
    days = np.arange(first, day.max(initial=0) + 1).astype("datetime64[D]")
    prefixes = np.strings.add(np.datetime_as_string(days), "T").astype("S11")
    suffix = _clock_suffixes()[local % 86_400 + 86_400 * (offset == 3600)]
    text = np.strings.add(prefixes[day - first], suffix)
    return pa.array(text, type=pa.binary(), mask=missing).cast(pa.string())


def _labels(index: np.ndarray, labels: np.ndarray) -> pa.Array:
    """Strings by index into labels; a negative index is a null (an empty field)."""
    index = np.asarray(index, dtype=np.int32)
    indices = pa.array(index, mask=index < 0)
    return pa.DictionaryArray.from_arrays(indices, pa.array(labels)).cast(pa.string())


def _coordinate(values: np.ndarray) -> pa.Array:
    return pa.array(np.round(values, 6), from_pandas=True)


def _write_csv(table: pa.Table, columns: list[str], path: Path) -> None:
    """A CSV with the exact header, gzipped (deterministically) for .gz names."""
    data = (",".join(columns) + "\n").encode() + _csv_body(table)
    if path.suffix == ".gz":
        data = gzip.compress(data, compresslevel=1, mtime=0)
    path.write_bytes(data)


def _csv_body(table: pa.Table) -> bytes:
    """Unquoted like police.uk's files, unless a value holds a comma or a quote."""
    try:
        return _arrow_csv(table, "none")
    except pa.ArrowInvalid:
        return _arrow_csv(table, "needed")


def _arrow_csv(table: pa.Table, quoting: str) -> bytes:
    buffer = io.BytesIO()
    options = pacsv.WriteOptions(include_header=False, quoting_style=quoting)
    pacsv.write_csv(table, buffer, options)
    return buffer.getvalue()


def _pick(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    """n draws of an index with probability proportional to weights."""
    cumulative = np.cumsum(weights, dtype=float)
    draws = np.searchsorted(cumulative / cumulative[-1], rng.random(n), side="right")
    return np.minimum(draws, len(weights) - 1)


def _pick_rows(rng: np.random.Generator, table: np.ndarray, rows: np.ndarray):
    """One draw per element of rows, each from its own row of a weight table."""
    cumulative = np.cumsum(table, axis=1)
    cumulative = cumulative / cumulative[:, -1:]
    draws = (rng.random(len(rows))[:, None] >= cumulative[rows]).sum(axis=1)
    return np.minimum(draws, table.shape[1] - 1)


def _lognormal(rng, median, sigma, n: int) -> np.ndarray:
    """Whole seconds, at least one, lognormally spread about the median."""
    values = np.asarray(median) * np.exp(np.asarray(sigma) * rng.standard_normal(n))
    return np.maximum(1, np.rint(values)).astype(np.int64)


# ---------------------------------------------------------------------------
# Geography


def _to_km(lon, lat):
    return (np.asarray(lon) + 1.85) * 67.77, (np.asarray(lat) - 52.5) * 111.2


def _to_degrees(xy: np.ndarray) -> np.ndarray:
    return np.column_stack([xy[:, 0] / 67.77 - 1.85, xy[:, 1] / 111.2 + 52.5])


def synthetic_boundaries(seed: int) -> dict[str, gpd.GeoDataFrame]:
    """Seven districts laid out roughly where they are, cut into LSOAs and wards."""
    rng = np.random.default_rng([seed, 0])
    lon, lat, radius = (np.array([d[i] for d in DISTRICTS]) for i in (2, 3, 4))
    centres = np.column_stack(_to_km(lon, lat))
    discs = shapely.buffer(shapely.points(centres), radius, quad_segs=24)
    force = shapely.union_all(discs)
    cells = shapely.get_parts(
        shapely.voronoi_polygons(
            shapely.multipoints(centres), extend_to=force.buffer(5), ordered=True
        )
    )
    district_shapes = shapely.intersection(cells, force)
    lsoa_parts = [
        _cut_district(rng, i, district_shapes[i]) for i in range(len(DISTRICTS))
    ]
    lsoas = pd.concat(lsoa_parts, ignore_index=True)
    lsoas.insert(0, "LSOA11CD", [f"E019{i:05d}" for i in range(1, len(lsoas) + 1)])
    wards = lsoas.dissolve(by="ward", sort=True, as_index=False)
    wards = wards.assign(WD13CD=[f"E059{i:05d}" for i in range(1, len(wards) + 1)])
    ward_names = wards["LAD_NM"] + " Ward " + wards["ward_number"].map("{:02d}".format)
    wards = wards.assign(WD13NM=ward_names)
    lad = gpd.GeoDataFrame(
        {"LAD_CD": LAD_CODES, "LAD_NM": [d[1] for d in DISTRICTS]},
        geometry=district_shapes,
    )
    force_area = gpd.GeoDataFrame({"name": [FORCE]}, geometry=[force])
    lad_columns = ["LAD_CD", "LAD_NM"]
    return {
        "wm_lsoa11.geojson": _in_degrees(lsoas, ["LSOA11CD", "LSOA11NM", *lad_columns]),
        "wm_wards.geojson": _in_degrees(wards, ["WD13CD", "WD13NM", *lad_columns]),
        "wm_lad.geojson": _in_degrees(lad, ["LAD_CD", "LAD_NM"]),
        "wmp_force_area.geojson": _in_degrees(force_area, ["name"]),
    }


def _in_degrees(frame: gpd.GeoDataFrame, columns: list[str]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        frame[columns].reset_index(drop=True),
        geometry=shapely.transform(frame.geometry.to_numpy(), _to_degrees),
        crs="EPSG:4326",
    )


def _cut_district(rng, index: int, shape) -> gpd.GeoDataFrame:
    """Voronoi LSOAs, dense at the centre (small areas) and sparse at the edge."""
    code, name, lon, lat, radius, count, _ = DISTRICTS[index]
    centre = np.array(_to_km(lon, lat))
    seeds = np.empty((0, 2))
    while len(seeds) < count:
        near = centre + rng.normal(0, 0.35 * radius, (count, 2))
        low, high = np.array(shape.bounds[:2]), np.array(shape.bounds[2:])
        anywhere = low + rng.random((count, 2)) * (high - low)
        candidates = np.where(rng.random((count, 1)) < 0.6, near, anywhere)
        inside = shapely.contains_xy(shape, candidates[:, 0], candidates[:, 1])
        seeds = np.concatenate([seeds, candidates[inside]])[:count]
    seeds = seeds[np.lexsort((seeds[:, 0], -np.round(seeds[:, 1], 0)))]
    cells = shapely.get_parts(
        shapely.voronoi_polygons(
            shapely.multipoints(seeds), extend_to=shape.buffer(5), ordered=True
        )
    )
    ward = _kmeans(rng, seeds, max(1, round(count / 10)))
    number = np.arange(count)
    return gpd.GeoDataFrame(
        {
            "LSOA11NM": [f"{name} {k // 5 + 1:03d}{'ABCDE'[k % 5]}" for k in number],
            "LAD_CD": code,
            "LAD_NM": name,
            "ward": index * 1000 + ward,
            "ward_number": ward + 1,
        },
        geometry=shapely.intersection(cells, shape),
    )


def _kmeans(rng, points: np.ndarray, k: int, rounds: int = 15) -> np.ndarray:
    """Cluster labels 0..k-1, renumbered north to south, for ward groupings."""
    centres = points[rng.choice(len(points), k, replace=False)]
    for _ in range(rounds):
        label = ((points[:, None, :] - centres[None]) ** 2).sum(axis=2).argmin(axis=1)
        for j in range(k):
            if (label == j).any():
                centres[j] = points[label == j].mean(axis=0)
    label = ((points[:, None, :] - centres[None]) ** 2).sum(axis=2).argmin(axis=1)
    used = np.unique(label)
    rank = np.zeros(k, dtype=np.int64)
    rank[used[np.argsort(-centres[used, 1], kind="stable")]] = np.arange(len(used))
    return rank[label]


def read_lsoas(boundaries_dir: Path) -> gpd.GeoDataFrame:
    """The West Midlands LSOAs of a real boundary folder, in the synthetic shape."""
    frames = []
    for path in sorted(boundaries_dir.iterdir()):
        if path.suffix not in (".geojson", ".gpkg", ".shp"):
            continue
        fields = set(pyogrio.read_info(path)["fields"])
        code = next((c for c in ("LSOA11CD", "LSOA21CD") if c in fields), None)
        if code is None:
            continue
        names = {code: "LSOA11CD", code[:-2] + "NM": "LSOA11NM"}
        frame = gpd.read_file(path).rename(columns=names)
        if "LAD_CD" not in frame.columns:
            district = frame["LSOA11NM"].str.rsplit(" ", n=1).str[0]
            codes = {d[1]: d[0] for d in DISTRICTS}
            frame = frame.assign(LAD_CD=district.map(codes), LAD_NM=district)
        frames.append(frame[frame["LAD_CD"].isin(LAD_CODES)])
    if not frames:
        raise ValueError(f"{boundaries_dir}: no West Midlands LSOA layer found")
    lsoas = pd.concat(frames, ignore_index=True).drop_duplicates("LSOA11CD")
    lsoas = lsoas.sort_values("LSOA11CD", ignore_index=True)
    return gpd.GeoDataFrame(
        lsoas[["LSOA11CD", "LSOA11NM", "LAD_CD", "LAD_NM", "geometry"]],
        geometry="geometry",
        crs=lsoas.crs,
    ).to_crs("EPSG:4326")


def build_geography(lsoas: gpd.GeoDataFrame, seed: int) -> Geography:
    """Population, urban/rural, crime weights and street points for each LSOA."""
    rng = np.random.default_rng([seed, 4])
    n = len(lsoas)
    area_km2 = lsoas.geometry.to_crs("EPSG:27700").area.to_numpy() / 1e6
    large = area_km2 > np.quantile(area_km2, 0.93)
    population = np.clip(rng.normal(1_740, 170, n), 1_100, 2_600)
    population = np.rint(population * np.where(large, 0.85, 1.0)).astype(np.int64)
    rural = population / area_km2 < RURAL_DENSITY_PER_KM2

    centroid = shapely.centroid(lsoas.geometry.to_numpy())
    x, y = _to_km(shapely.get_x(centroid), shapely.get_y(centroid))
    cx, cy = _to_km(CITY_CENTRES[:, 0], CITY_CENTRES[:, 1])
    distance = np.hypot(x[:, None] - cx, y[:, None] - cy)
    hotspot = np.zeros(n, dtype=bool)
    for j, count in enumerate(HOTSPOTS_PER_CENTRE):
        hotspot[np.argsort(distance[:, j])[:count]] = True
    nearness = np.exp(-distance.min(axis=1) / 2.0)
    base = population * rng.lognormal(0, 0.45, n) * (1 + 2 * nearness)
    base *= np.where(rural, 0.6, 1.0)
    lon, lat = _points_inside(rng, lsoas.geometry.to_numpy())
    return Geography(
        code=lsoas["LSOA11CD"].to_numpy(dtype=str),
        name=lsoas["LSOA11NM"].to_numpy(dtype=str),
        district=np.searchsorted(LAD_CODES, lsoas["LAD_CD"].to_numpy(dtype=str)),
        population=population,
        rural=rural,
        crime_weight=base * np.where(hotspot, 6, 1),
        central_weight=base * np.where(hotspot, 30, 1) * (1 + 4 * nearness),
        point_lon=lon,
        point_lat=lat,
        location=_street_names(rng, lon.shape),
    )


def _points_inside(rng, shapes: np.ndarray, tries: int = 8):
    """POINTS_PER_LSOA points inside each polygon (its representative point if thin)."""
    n, per = len(shapes), POINTS_PER_LSOA
    bounds = shapely.bounds(shapes)
    u = rng.random((n, per * tries, 2))
    lon = bounds[:, [0]] + u[..., 0] * (bounds[:, [2]] - bounds[:, [0]])
    lat = bounds[:, [1]] + u[..., 1] * (bounds[:, [3]] - bounds[:, [1]])
    inside = shapely.contains_xy(shapes[:, None], lon, lat)
    order = np.argsort(~inside, axis=1, kind="stable")[:, :per]
    ok = np.take_along_axis(inside, order, axis=1)
    fallback = shapely.point_on_surface(shapes)
    fallback_lon = shapely.get_x(fallback)[:, None]
    fallback_lat = shapely.get_y(fallback)[:, None]
    return (
        np.where(ok, np.take_along_axis(lon, order, 1), fallback_lon),
        np.where(ok, np.take_along_axis(lat, order, 1), fallback_lat),
    )


def _street_names(rng, shape: tuple[int, int]) -> np.ndarray:
    streets = np.strings.add(
        np.strings.add(rng.choice(STREET_WORDS, shape), " "),
        rng.choice(STREET_KINDS, shape),
    )
    named = np.where(rng.random(shape) < 0.15, rng.choice(PLACES, shape), streets)
    return np.strings.add("On or near ", named)


def _population_frame(geo: Geography) -> pd.DataFrame:
    return pd.DataFrame({
        "lsoa21_code": geo.code,
        "lsoa21_name": geo.name,
        "lad_code": LAD_CODES[geo.district],
        "lad_name": np.array([d[1] for d in DISTRICTS])[geo.district],
        "usual_residents_total": geo.population,
    })


def _write_geojson(layer: gpd.GeoDataFrame, path: Path) -> None:
    path.unlink(missing_ok=True)
    layer.to_file(
        path, driver="GeoJSON", engine="pyogrio",
        layer_options={"COORDINATE_PRECISION": 6, "WRITE_NAME": "NO"},
    )


# ---------------------------------------------------------------------------
# Months, in parallel: each month has its own seeded stream, so the order and
# number of workers never change a byte.

_worker_geography: Geography | None = None


def _init_worker(geo: Geography) -> None:
    global _worker_geography
    _worker_geography = geo


def _run_months(geo: Geography, tasks: list, workers: int | None):
    workers = workers or min(2, os.cpu_count() or 1)
    if workers <= 1 or len(tasks) <= 1:
        _init_worker(geo)
        yield from map(_write_month, tasks)
        return
    pool = ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(geo,))
    with pool:
        yield from pool.map(_write_month, tasks)


def _write_month(task) -> list[tuple[str, int]]:
    seed, month, end_month, paths = task
    geo = _worker_geography
    stamp = f"{month:%Y-%m}"
    age = (end_month.year - month.year) * 12 + end_month.month - month.month
    crimes = _crime_month(np.random.default_rng([seed, 1, month.year, month.month]),
                          geo, month, age)
    _write_csv(crimes, POLICE_UK_COLUMNS,
               paths["police-uk-street"] / f"{stamp}-west-midlands-street.csv")

    rng = np.random.default_rng([seed, 2, month.year, month.month])
    start = _local_midnight_utc(month)
    end = _local_midnight_utc(_next_month(month))
    days = calendar.monthrange(month.year, month.month)[1]
    season = _season(month.month, 0.07)
    expected = MONTHLY_INCIDENTS * days / 30.44 * season
    incidents = _incidents(rng, geo, start, end, expected)
    calls = _calls_table(rng, incidents, start, end, days * season)
    incidents = _add_faults(rng, incidents)
    cad = _cad_table(geo, incidents)
    _write_csv(cad, CAD_COLUMNS, paths["cad"] / f"cad-{stamp}.csv.gz")
    _write_csv(calls, CALLS_COLUMNS, paths["calls"] / f"calls-{stamp}.csv.gz")
    return [
        ("police-uk-street", crimes.num_rows),
        ("cad", len(incidents["incident_id"])),
        ("calls", calls.num_rows),
    ]


# ---------------------------------------------------------------------------
# police.uk street-level crime


def _crime_month(rng, geo: Geography, month: dt.date, age: int) -> pa.Table:
    days = calendar.monthrange(month.year, month.month)[1]
    season = _season(month.month, 0.09)
    n_crime = rng.poisson(MONTHLY_CRIMES * season * days / 30.44)
    asb_ratio = ASB_SHARE / (1 - ASB_SHARE) * _season(month.month, 0.1)
    n_asb = rng.poisson(n_crime * asb_ratio)
    n = n_crime + n_asb

    kind = np.concatenate([_pick(rng, CRIME_SHARES, n_crime), np.full(n_asb, -1)])
    central = np.where(kind >= 0, CENTRAL_TYPES[kind], False)
    lsoa = np.where(
        central, _pick(rng, geo.central_weight, n), _pick(rng, geo.crime_weight, n)
    )
    point = lsoa * POINTS_PER_LSOA + rng.integers(0, POINTS_PER_LSOA, n)
    unplaced = rng.random(n) < UNPLACED_SHARE
    is_asb = kind < 0

    still_open = 0.02 + 0.55 * np.exp(-age / 3)
    proactive = np.where(is_asb, False, PROACTIVE_TYPES[kind])
    outcome = np.where(
        proactive, _pick(rng, PROACTIVE_OUTCOME_MIX, n), _pick(rng, OUTCOME_MIX, n)
    )
    outcome = np.where(rng.random(n) < still_open, 0, outcome)
    outcome = np.where(is_asb, -1, outcome)

    ids = np.frombuffer(rng.bytes(32 * n).hex().encode(), dtype="S64")
    lon = np.where(unplaced, np.nan, geo.point_lon.ravel()[point])
    lat = np.where(unplaced, np.nan, geo.point_lat.ravel()[point])
    locations = np.append(geo.location.ravel(), "No Location")
    order = rng.permutation(n)
    no_lsoa = np.where(unplaced, -1, lsoa)
    columns = [
        pa.array(ids, type=pa.binary(), mask=is_asb).cast(pa.string()),
        _labels(np.zeros(n), np.array([f"{month:%Y-%m}"])),
        _labels(np.zeros(n), np.array([FORCE])),
        _labels(np.zeros(n), np.array([FORCE])),
        _coordinate(lon),
        _coordinate(lat),
        _labels(np.where(unplaced, len(locations) - 1, point), locations),
        _labels(no_lsoa, geo.code),
        _labels(no_lsoa, geo.name),
        _labels(np.where(is_asb, len(CRIME_TYPES), kind),
                np.append(CRIME_TYPES, "Anti-social behaviour")),
        _labels(outcome, OUTCOMES),
        _labels(np.full(n, -1), np.array([""])),
    ]
    table = pa.table(columns, names=POLICE_UK_COLUMNS)
    return table.take(pa.array(order))


# ---------------------------------------------------------------------------
# Command and control: incidents and the calls behind them


def _arrival_times(rng, start: int, end: int, expected: float) -> np.ndarray:
    """Sorted UTC seconds in [start, end), following the local hour-of-week profile."""
    hours = np.arange(start, end, 3600, dtype=np.int64)
    local = hours + _utc_offset(hours)
    day = local // 86_400
    weight = WEEK_PROFILE[(day + 3) % 7, (local % 86_400) // 3600]
    counts = rng.multinomial(rng.poisson(expected), weight / weight.sum())
    times = np.repeat(hours, counts) + rng.integers(0, 3600, counts.sum())
    return np.sort(times)


def _incidents(rng, geo: Geography, start: int, end: int, expected: float):
    """Incident lifecycles in UTC seconds (MISSING where a step did not happen)."""
    t = _arrival_times(rng, start, end, expected)
    n = len(t)
    final = _pick(rng, GRADE_SHARES, n)
    shift = np.where(rng.random(n) < REGRADE_SHARE, rng.choice([-1, 1], n), 0)
    opening = np.clip(final + shift, 0, 3)
    channel = _pick_rows(rng, CHANNEL_BY_GRADE, final)
    lsoa = _pick(rng, geo.crime_weight, n)
    point = lsoa * POINTS_PER_LSOA + rng.integers(0, POINTS_PER_LSOA, n)
    called = channel < 2

    answer = np.where(channel == 0, _answer_999(rng, n), _lognormal(rng, 30, 1.0, n))
    answered = t + answer
    created = np.where(called, answered + _lognormal(rng, 60, 0.5, n), t)
    graded = created + _lognormal(rng, 30, 0.6, n)
    attended = rng.random(n) < ATTEND_SHARE[final]
    dispatch = _lognormal(rng, DISPATCH_MEDIAN_S[final], DISPATCH_SIGMA[final], n)
    dispatched = graded + dispatch
    rural = np.where(geo.rural[lsoa], RURAL_TRAVEL_FACTOR, 1)
    travel_median = TRAVEL_MEDIAN_S[final] * rural
    arrived = dispatched + _lognormal(rng, travel_median, 0.45, n)
    closed = np.where(
        attended,
        arrived + _lognormal(rng, 50 * 60, 0.8, n),
        graded + _lognormal(rng, RESOLVE_MEDIAN_S[final], 1.0, n),
    )
    units = _unit_index(rng, geo.district[lsoa], final)
    return {
        "incident_id": _numbered("WM", t, 100_000),
        "call_received_at": np.where(called, t, MISSING),
        "call_answered_at": np.where(called, answered, MISSING),
        "incident_created_at": created,
        "graded_at": graded,
        "dispatched_at": np.where(attended, dispatched, MISSING),
        "arrived_at": np.where(attended, arrived, MISSING),
        "closed_at": closed,
        "opening_grade": opening,
        "final_grade": final,
        "incident_type": _pick_rows(rng, INCIDENT_TYPE_BY_GRADE, opening),
        "point": point,
        "lsoa": lsoa,
        "longitude": geo.point_lon.ravel()[point] + rng.uniform(-3e-4, 3e-4, n),
        "latitude": geo.point_lat.ravel()[point] + rng.uniform(-2e-4, 2e-4, n),
        "channel": channel,
        "attending_unit": np.where(attended, units, -1),
    }


def _answer_999(rng, n: int) -> np.ndarray:
    """Mostly a few seconds; a busy-moment tail of tens of seconds."""
    usual = _lognormal(rng, 3.5, 0.85, n)
    return np.where(rng.random(n) < 0.04, _lognormal(rng, 25, 0.7, n), usual)


def _unit_index(rng, district: np.ndarray, final: np.ndarray) -> np.ndarray:
    """Index into _call_signs(): response units for grades 1-2, any unit otherwise."""
    pool = np.where(final < 2, RESPONSE_UNITS, RESPONSE_UNITS + NEIGHBOURHOOD_UNITS)
    return district * (RESPONSE_UNITS + NEIGHBOURHOOD_UNITS) + (
        rng.random(len(final)) * pool
    ).astype(np.int64)


@cache
def _call_signs() -> np.ndarray:
    return np.array([
        f"{d[6]}-{kind}{number:02d}"
        for d in DISTRICTS
        for kind, count in (("R", RESPONSE_UNITS), ("N", NEIGHBOURHOOD_UNITS))
        for number in range(1, count + 1)
    ])


def _numbered(prefix: str, utc_seconds: np.ndarray, per_day: int) -> np.ndarray:
    """Ids of the local date and a running number within it (times must be sorted)."""
    local_day = (utc_seconds + _utc_offset(utc_seconds)) // 86_400
    days, first, which = np.unique(local_day, return_index=True, return_inverse=True)
    sequence = np.arange(len(utc_seconds)) - first[which] + 1
    ymd = np.datetime_as_string(days.astype("datetime64[D]"))
    ymd = np.strings.replace(ymd, "-", "").astype(np.int64)
    return np.strings.add(prefix, (ymd[which] * per_day + sequence).astype(str))


def _add_faults(rng, incidents: dict) -> dict:
    """The faults real exports carry: missing or early arrivals, repeated rows."""
    arrived = incidents["arrived_at"].copy()
    attended = np.flatnonzero(arrived != MISSING)
    picked = rng.choice(attended, rng.integers(6, 13), replace=False)
    missing, early = picked[: len(picked) // 2], picked[len(picked) // 2 :]
    arrived[missing] = MISSING
    too_early = rng.integers(30, 600, len(early))
    arrived[early] = incidents["dispatched_at"][early] - too_early
    incidents = {**incidents, "arrived_at": arrived}
    n = len(arrived)
    repeated = rng.choice(n, rng.integers(3, 7), replace=False)
    rows = np.sort(np.concatenate([np.arange(n), repeated]), kind="stable")
    return {key: values[rows] for key, values in incidents.items()}


def _cad_table(geo: Geography, incidents: dict) -> pa.Table:
    n = len(incidents["incident_id"])
    grades = np.array(["1", "2", "3", "4"])
    columns = {
        "incident_id": pa.array(incidents["incident_id"]),
        "force": _labels(np.zeros(n), np.array([FORCE])),
        **{key: iso_local(incidents[key]) for key in CAD_COLUMNS[2:9]},
        "opening_grade": _labels(incidents["opening_grade"], grades),
        "final_grade": _labels(incidents["final_grade"], grades),
        "incident_type": _labels(incidents["incident_type"], INCIDENT_TYPES),
        "location": _labels(incidents["point"], geo.location.ravel()),
        "lsoa_code": _labels(incidents["lsoa"], geo.code),
        "longitude": _coordinate(incidents["longitude"]),
        "latitude": _coordinate(incidents["latitude"]),
        "channel": _labels(incidents["channel"], CHANNELS),
        "attending_unit": _labels(incidents["attending_unit"], _call_signs()),
    }
    return pa.table(columns)


def _calls_table(rng, incidents: dict, start: int, end: int, day_weight: float):
    """Every 999 and 101 call: those behind incidents and those that raised none."""
    behind = incidents["call_received_at"] != MISSING
    line = [incidents["channel"][behind]]
    queued = [incidents["call_received_at"][behind]]
    answered = [incidents["call_answered_at"][behind]]
    abandoned = [np.full(behind.sum(), MISSING)]
    for code, daily in ((0, DAILY_EXTRA_999), (1, DAILY_EXTRA_101)):
        times = _arrival_times(rng, start, end, daily * day_weight)
        n = len(times)
        gave_up = rng.random(n) < ABANDON_SHARE[CHANNELS[code]]
        if code == 0:
            wait, patience = _answer_999(rng, n), _lognormal(rng, 8, 0.8, n)
        else:
            wait, patience = _lognormal(rng, 30, 1.0, n), _lognormal(rng, 75, 0.8, n)
        line.append(np.full(n, code))
        queued.append(times)
        answered.append(np.where(gave_up, MISSING, times + wait))
        abandoned.append(np.where(gave_up, times + patience, MISSING))
    line, queued, answered, abandoned = (
        np.concatenate(parts) for parts in (line, queued, answered, abandoned)
    )
    order = np.argsort(queued, kind="stable")
    line, queued, answered, abandoned = (
        values[order] for values in (line, queued, answered, abandoned)
    )
    bt_leg = _lognormal(rng, 5, 0.35, len(line))
    return pa.table(
        [
            pa.array(_numbered("C", queued, 1_000_000)),
            _labels(line, CHANNELS),
            iso_local(np.where(line == 0, queued - bt_leg, MISSING)),
            iso_local(queued),
            iso_local(answered),
            iso_local(abandoned),
        ],
        names=CALLS_COLUMNS,
    )
