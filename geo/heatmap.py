"""Hot-spot heat maps of crime points as one self-contained folium HTML file.

The file works offline: Leaflet (vendored from Debian's libjs-leaflet, BSD-2) and
folium's leaflet-heat plugin are inlined instead of linked from CDNs. Only map tiles
come from the network, and only when a tile URL is configured.
"""

from __future__ import annotations

import html
from pathlib import Path

import folium
import pandas as pd
from folium.plugins import HeatMap

VENDOR = Path(__file__).resolve().parent / "vendor"
HEAT_JS = Path(folium.__file__).resolve().parent / "templates" / "leaflet_heat.min.js"
DEFAULT_CENTRE = (52.6, -1.2)
MAX_ZOOM = 18


def _inline(tag: str, path: Path) -> folium.Element:
    return folium.Element(f"<{tag}>{path.read_text(encoding='utf-8')}</{tag}>")


def heatmap_html(
    points: pd.DataFrame,
    tile_url: str = "",
    title: str = "Crime hot spots",
    notes: tuple[str, ...] = (),
    attribution: str = "Map tiles: configured tile server",
) -> str:
    """The HTML of a heat map of `points` (latitude, longitude); blank background
    when `tile_url` is empty, so no request leaves the machine."""
    centre = (
        (float(points["latitude"].mean()), float(points["longitude"].mean()))
        if len(points)
        else DEFAULT_CENTRE
    )
    fmap = folium.Map(location=centre, zoom_start=10, tiles=None, max_zoom=MAX_ZOOM)
    # Instance attributes shadow folium's CDN lists, so the page links to nothing.
    fmap.default_js, fmap.default_css = [], []
    if tile_url:
        folium.TileLayer(tiles=tile_url, attr=attribution, max_zoom=MAX_ZOOM).add_to(
            fmap
        )
    heat = HeatMap(
        points[["latitude", "longitude"]].to_numpy().tolist(),
        radius=12,
        blur=15,
        min_opacity=0.3,
    )
    heat.default_js, heat.default_css = [], []
    heat.add_to(fmap)
    if len(points):
        fmap.fit_bounds(
            [
                [float(points["latitude"].min()), float(points["longitude"].min())],
                [float(points["latitude"].max()), float(points["longitude"].max())],
            ]
        )
    root = fmap.get_root()
    root.header.add_child(_inline("style", VENDOR / "leaflet.css"), name="leaflet_css")
    root.header.add_child(_inline("script", VENDOR / "leaflet.min.js"), name="leaflet")
    root.header.add_child(_inline("script", HEAT_JS), name="leaflet_heat")
    lines = [title, f"{len(points):,} crimes with coordinates", *notes]
    if not tile_url:
        lines.append("No background tiles: set BLUELAMP_TILE_URL to draw streets.")
    caption = "<br>".join(html.escape(line) for line in lines)
    root.html.add_child(
        folium.Element(
            '<div id="bl-heat-caption" style="position:fixed;top:8px;left:50px;'
            "z-index:1000;background:#fff;padding:6px 10px;font:13px sans-serif;"
            f'border:1px solid #999;max-width:60%">{caption}</div>'
        )
    )
    return root.render()
