"""Area boundaries from dim_area as simplified GeoJSON, one file per force and level."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

import geopandas as gpd
import pandas as pd
import shapely
from sqlalchemy import Connection, text

ALL_FORCES = "all"
# Degrees (about 100 m, 50 m, 30 m, 15 m at UK latitudes): enough for a screen map
# at each level's usual zoom, and it keeps an LSOA layer to a few hundred KB.
TOLERANCE = {"force": 0.001, "lad": 0.0005, "ward": 0.0003, "lsoa": 0.00015}
PRECISION = 1e-5  # about a metre; shorter numbers make a smaller file
_MAX_CACHED = 64

_lock = threading.Lock()
_cache: dict[tuple, Layer] = {}


def read_layer(conn: Connection, level: str, force_code: str = ALL_FORCES):
    """The areas of one level (of one force, or all) as a GeoDataFrame in WGS84."""
    sql = """
        SELECT a.area_code, a.area_name, a.geometry_wkt
        FROM dim_area a
        WHERE a.level = :level AND a.geometry_wkt IS NOT NULL
    """
    params = {"level": level}
    if force_code != ALL_FORCES:
        sql += (
            " AND a.force_name = (SELECT force_name FROM dim_area "
            "WHERE area_code = :force AND level = 'force')"
        )
        params["force"] = force_code
    result = conn.execute(text(sql + " ORDER BY a.area_code"), params)
    frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    geometry = gpd.GeoSeries.from_wkt(
        frame["geometry_wkt"].astype(object).tolist(), crs="EPSG:4326"
    )
    return gpd.GeoDataFrame(
        {
            "area_code": frame["area_code"].astype(str).tolist(),
            "area_name": frame["area_name"].astype(str).tolist(),
        },
        geometry=geometry,
        crs="EPSG:4326",
    )


def simplify(layer: gpd.GeoDataFrame, level: str) -> gpd.GeoDataFrame:
    """Fewer vertices and shorter coordinates, keeping each polygon valid."""
    out = layer.copy()
    simplified = out.geometry.simplify(TOLERANCE[level], preserve_topology=True)
    out["geometry"] = shapely.set_precision(simplified.values, PRECISION)
    return out[~out.geometry.is_empty]


def to_geojson(layer: gpd.GeoDataFrame) -> bytes:
    return json.dumps(
        json.loads(layer.to_json(drop_id=True)), separators=(",", ":")
    ).encode()


@dataclass(frozen=True)
class Layer:
    """One level's simplified GeoJSON, and each area's bounds for fitting the map."""

    geojson: bytes
    bounds: pd.DataFrame  # indexed by area_code: min_lon, min_lat, max_lon, max_lat

    def bounds_of(self, codes) -> tuple[float, float, float, float] | None:
        """(min lon, min lat, max lon, max lat) around some areas, or None."""
        found = self.bounds.loc[self.bounds.index.intersection(list(codes))]
        if found.empty:
            return None
        return (
            float(found["min_lon"].min()),
            float(found["min_lat"].min()),
            float(found["max_lon"].max()),
            float(found["max_lat"].max()),
        )


def layer(conn: Connection, run_id: int, level: str, force_code: str) -> Layer:
    """A level of one force (or ALL_FORCES), built once per ETL run and remembered."""
    key = (run_id, level, force_code)
    with _lock:
        if key in _cache:
            return _cache[key]
    shapes = simplify(read_layer(conn, level, force_code), level)
    bounds = shapes.geometry.bounds.set_axis(
        ["min_lon", "min_lat", "max_lon", "max_lat"], axis=1
    )
    bounds.index = pd.Index(shapes["area_code"].tolist(), name="area_code")
    built = Layer(geojson=to_geojson(shapes), bounds=bounds)
    with _lock:
        if len(_cache) >= _MAX_CACHED:
            _cache.clear()
        _cache[key] = built
    return built
