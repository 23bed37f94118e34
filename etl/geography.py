"""Geography helpers: reading layers, repairing, BNG->WGS84, placing points."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from sqlalchemy import Connection, text

WGS84 = "EPSG:4326"
BRITISH_NATIONAL_GRID = "EPSG:27700"

_BNG_TO_WGS84 = Transformer.from_crs(BRITISH_NATIONAL_GRID, WGS84, always_xy=True)


def read_layer(path: Path) -> gpd.GeoDataFrame:
    """A layer in WGS84 (a layer without a CRS is taken to be WGS84 already)."""
    frame = gpd.read_file(path)
    if frame.crs is None:
        return frame.set_crs(WGS84)
    return frame.to_crs(WGS84)


def repair(geometries: gpd.GeoSeries) -> tuple[gpd.GeoSeries, pd.Series]:
    """Make invalid polygons valid; return the geometries and which ones were fixed."""
    present = geometries.notna()
    invalid = present & ~geometries.is_valid
    fixed = geometries.copy()
    if invalid.any():
        made = shapely.make_valid(geometries[invalid].to_numpy())
        # make_valid may return a collection with stray lines; keep the polygons.
        fixed[invalid] = [_polygonal(g) for g in made]
    return fixed, invalid


def _polygonal(geometry):
    if geometry.geom_type in ("Polygon", "MultiPolygon"):
        return geometry
    parts = [
        g
        for g in shapely.get_parts(geometry)
        if g.geom_type in ("Polygon", "MultiPolygon")
    ]
    return shapely.union_all(parts)


def bng_to_wgs84(easting, northing) -> tuple[np.ndarray, np.ndarray]:
    lon, lat = _BNG_TO_WGS84.transform(
        np.asarray(easting, dtype=float), np.asarray(northing, dtype=float)
    )
    return np.asarray(lon), np.asarray(lat)


def lsoa_polygons(conn: Connection) -> gpd.GeoDataFrame:
    """The LSOA polygons held in dim_area, in WGS84."""
    rows = conn.execute(
        text(
            "SELECT area_code, geometry_wkt FROM dim_area "
            "WHERE level = :level AND geometry_wkt IS NOT NULL"
        ),
        {"level": "lsoa"},
    ).fetchall()
    codes = [r[0] for r in rows]
    shapes = shapely.from_wkt([r[1] for r in rows]) if rows else []
    return gpd.GeoDataFrame({"lsoa_code": codes}, geometry=list(shapes), crs=WGS84)


def place_points(
    longitude: pd.Series, latitude: pd.Series, polygons: gpd.GeoDataFrame
) -> pd.Series:
    """The LSOA code each point falls in (NaN outside every polygon), by index."""
    placed = pd.Series(pd.NA, index=longitude.index, dtype="string")
    has_point = longitude.notna() & latitude.notna()
    if not has_point.any() or polygons.empty:
        return placed
    points = gpd.GeoDataFrame(
        index=longitude.index[has_point],
        geometry=gpd.points_from_xy(longitude[has_point], latitude[has_point]),
        crs=WGS84,
    )
    joined = gpd.sjoin(points, polygons, how="inner", predicate="intersects")
    # A point exactly on a shared edge touches two LSOAs; either is right, keep one.
    joined = joined[~joined.index.duplicated(keep="first")]
    placed.loc[joined.index] = joined["lsoa_code"].astype("string")
    return placed
