"""Choropleth maps of a measure by area: the figure built once, then patched.

The polygons never travel inside the figure: `geojson` is the URL of a static,
simplified file that the browser fetches once and caches; a filter change sends only
the values (`dash.Patch`), tens of KB instead of the megabyte a re-sent map costs.
"""

from __future__ import annotations

import math

import dash
import pandas as pd
import plotly.graph_objects as go

FEATURE_ID_KEY = "properties.area_code"
MEASURE_COLUMNS = {"count": "crimes", "rate": "rate_per_1000", "harm": "harm_days"}
MEASURE_LABELS = {
    "count": "Crimes",
    "rate": "Crimes per 1,000 residents",
    "harm": "Harm (days)",
}
COLOURSCALE = "Blues"
MAP_HEIGHT = 440
UK_CENTRE = {"lon": -1.5, "lat": 52.6}


def trace_values(frame: pd.DataFrame, measure: str) -> dict:
    """The parts of the trace that change with the filters, as plain JSON values."""
    column = MEASURE_COLUMNS[measure]
    values = pd.to_numeric(frame[column]).astype("float64")
    z = [None if math.isnan(v) else round(v, 3) for v in values]
    finite = [v for v in z if v is not None]
    label = MEASURE_LABELS[measure]
    hover = [
        f"{name}<br>{label}: {_format(value)}<br>Last year: {last:,} ({significance})"
        for name, value, last, significance in zip(
            frame["area_name"],
            z,
            frame["crimes_last_year"],
            frame["significance"],
            strict=True,
        )
    ]
    return {
        "locations": [str(c) for c in frame["area_code"]],
        "z": z,
        "customdata": [str(c) for c in frame["area_code"]],
        "hovertext": hover,
        "zmin": 0,
        "zmax": max(finite) if finite and max(finite) > 0 else 1,
        "colorbar_title": label,
    }


def _format(value) -> str:
    if value is None:
        return "no residents"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def view(bounds, width_px: int = 450, height_px: int = MAP_HEIGHT) -> dict:
    """Centre and zoom that fit (min lon, min lat, max lon, max lat) in the map."""
    if bounds is None:
        return {"center": dict(UK_CENTRE), "zoom": 6}
    min_lon, min_lat, max_lon, max_lat = bounds
    centre = {"lon": (min_lon + max_lon) / 2, "lat": (min_lat + max_lat) / 2}
    # Web Mercator: 256 px span 360 degrees at zoom 0; latitude stretched by 1/cos.
    lon_span = max(max_lon - min_lon, 1e-4)
    lat_span = max(max_lat - min_lat, 1e-4) / math.cos(math.radians(centre["lat"]))
    zoom = min(
        math.log2(width_px * 360 / (256 * lon_span)),
        math.log2(height_px * 360 / (256 * lat_span)),
    )
    return {"center": centre, "zoom": round(max(min(zoom - 0.3, 15), 3), 2)}


def choropleth_figure(
    geojson_url: str, frame: pd.DataFrame, measure: str, bounds=None, key: str = ""
) -> go.Figure:
    """The map, with polygons referenced by URL; `key` names the drill level so
    that a new level re-fits the view while a pan or zoom survives filter changes."""
    values = trace_values(frame, measure)
    trace = go.Choroplethmap(
        geojson=geojson_url,
        featureidkey=FEATURE_ID_KEY,
        locations=values["locations"],
        z=values["z"],
        customdata=values["customdata"],
        hovertext=values["hovertext"],
        hoverinfo="text",
        zmin=values["zmin"],
        zmax=values["zmax"],
        colorscale=COLOURSCALE,
        marker={"opacity": 0.8, "line": {"width": 0.6, "color": "#555"}},
        colorbar={"title": {"text": values["colorbar_title"]}, "thickness": 12},
    )
    figure = go.Figure(trace)
    figure.update_layout(
        map={"style": "white-bg", **view(bounds), "uirevision": key},
        margin={"l": 0, "r": 0, "t": 0, "b": 0},
        height=MAP_HEIGHT,
        uirevision="crime-map",
        clickmode="event",
    )
    return figure


def choropleth_patch(
    geojson_url: str, frame: pd.DataFrame, measure: str, bounds=None, key: str = ""
) -> dash.Patch:
    """Only what changes: values, colour range, the file URL (a level change) and,
    for a new drill level, the view. Never the polygons."""
    values = trace_values(frame, measure)
    patch = dash.Patch()
    trace = patch["data"][0]
    trace["geojson"] = geojson_url
    for name in ("locations", "z", "customdata", "hovertext", "zmin", "zmax"):
        trace[name] = values[name]
    trace["colorbar"]["title"]["text"] = values["colorbar_title"]
    fitted = view(bounds)
    patch["layout"]["map"]["center"] = fitted["center"]
    patch["layout"]["map"]["zoom"] = fitted["zoom"]
    patch["layout"]["map"]["uirevision"] = key
    return patch
