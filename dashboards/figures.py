"""Pure figure builders for the crime page: DataFrame in, go.Figure out."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from dashboards import disclosure

INK, MUTED, ACCENT = "#212529", "#6c757d", "#0d6efd"
# Areas whose figure disclosure control suppressed: never a colour of the scale.
SUPPRESSED_GREY = "#bdbdbd"
# Only a signal is coloured (KPIS.md): red for a rise, green for a fall.
RISE, FALL = "#b02a37", "#146c43"

TEMPLATE = go.layout.Template(
    layout={
        "font": {
            "family": "system-ui, -apple-system, Segoe UI, sans-serif",
            "size": 12,
        },
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "colorway": [ACCENT, MUTED, "#fd7e14", "#20c997"],
        "margin": {"l": 8, "r": 8, "t": 32, "b": 8},
        "xaxis": {"gridcolor": "#eee", "zeroline": False, "automargin": True},
        "yaxis": {"gridcolor": "#eee", "zeroline": False, "automargin": True},
        "legend": {"orientation": "h", "y": -0.15, "x": 0},
        "hoverlabel": {"bgcolor": "white"},
        "separators": ".,",
    }
)


def empty_figure(message: str) -> go.Figure:
    """A blank chart that says why it is blank."""
    figure = go.Figure(layout={"template": TEMPLATE, "height": 260})
    figure.add_annotation(
        text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper"
    )
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return figure


def crime_trend(frame: pd.DataFrame) -> go.Figure:
    """Monthly crimes as a c-chart: centre line, 3-sigma limits, points outside
    marked, and the same months a year earlier for comparison."""
    if frame.empty:
        return empty_figure("No months in this period")
    months = [pd.Timestamp(m).strftime("%Y-%m") for m in frame["month"]]
    outside = frame["outside"].astype(bool).to_numpy()
    figure = go.Figure(layout={"template": TEMPLATE, "height": 320})
    figure.add_trace(
        go.Scatter(
            x=months,
            y=frame["upper"].tolist(),
            name="Upper limit (3 sigma)",
            mode="lines",
            line={"color": MUTED, "width": 1, "dash": "dot"},
        )
    )
    figure.add_trace(
        go.Scatter(
            x=months,
            y=frame["lower"].tolist(),
            name="Lower limit (3 sigma)",
            mode="lines",
            line={"color": MUTED, "width": 1, "dash": "dot"},
        )
    )
    figure.add_trace(
        go.Scatter(
            x=months,
            y=frame["centre"].tolist(),
            name="Centre (mean)",
            mode="lines",
            line={"color": MUTED, "width": 1},
        )
    )
    figure.add_trace(
        go.Scatter(
            x=months,
            y=frame["crimes_last_year"].tolist(),
            name="Same month last year",
            mode="lines",
            line={"color": "#adb5bd", "width": 2, "dash": "dash"},
        )
    )
    figure.add_trace(
        go.Scatter(
            x=months,
            y=frame["crimes"].tolist(),
            name="Crimes",
            mode="lines+markers",
            line={"color": ACCENT, "width": 2},
            marker={"size": 6},
        )
    )
    figure.add_trace(
        go.Scatter(
            x=[m for m, o in zip(months, outside, strict=True) if o],
            y=frame.loc[outside, "crimes"].tolist(),
            name="Outside the limits",
            mode="markers",
            marker={
                "size": 12,
                "color": RISE,
                "symbol": "circle-open",
                "line": {"width": 2},
            },
        )
    )
    figure.update_layout(
        hovermode="x unified",
        xaxis={"type": "category", "title": None},
        yaxis={"title": "Crimes", "rangemode": "tozero"},
    )
    return figure


def crime_types(frame: pd.DataFrame) -> go.Figure:
    """Crimes by type, largest at the top; a click on a bar names its crime type."""
    if frame.empty:
        return empty_figure("No crimes of these types in this period")
    shown = frame.sort_values("crimes", kind="stable")
    colours = [
        _signal_colour(sig, z)
        for sig, z in zip(shown["significance"], shown["z"], strict=True)
    ]
    figure = go.Figure(
        go.Bar(
            x=shown["crimes"].tolist(),
            y=shown["crime_type"].tolist(),
            orientation="h",
            customdata=shown["crime_type"].tolist(),
            marker={"color": colours},
            text=[f"{v:,}" for v in shown["crimes"]],
            textposition="auto",
            hovertext=[
                f"{t}: {c:,} (last year {p:,}; {s})"
                for t, c, p, s in zip(
                    shown["crime_type"],
                    shown["crimes"],
                    shown["crimes_last_year"],
                    shown["significance"],
                    strict=True,
                )
            ],
            hoverinfo="text",
        ),
        layout={"template": TEMPLATE, "height": max(240, 26 * len(shown) + 60)},
    )
    figure.update_layout(xaxis={"title": "Crimes"}, yaxis={"title": None})
    return figure


def crime_outcomes(frame: pd.DataFrame) -> go.Figure:
    """The share of the period's crimes in each outcome group (cohort basis)."""
    if frame.empty:
        return empty_figure("No crimes in this period")
    shown = frame.sort_values("share", kind="stable")
    figure = go.Figure(
        go.Bar(
            x=(shown["share"] * 100).round(1).tolist(),
            y=shown["outcome_group"].tolist(),
            orientation="h",
            marker={"color": MUTED},
            text=[f"{s:.1%}" for s in shown["share"]],
            textposition="auto",
            hovertext=[
                f"{g}: {c:,} crimes ({s:.1%})"
                for g, c, s in zip(
                    shown["outcome_group"], shown["crimes"], shown["share"], strict=True
                )
            ],
            hoverinfo="text",
        ),
        layout={"template": TEMPLATE, "height": max(240, 26 * len(shown) + 60)},
    )
    figure.update_layout(xaxis={"title": "% of crimes recorded in the period"})
    return figure


def _signal_colour(significance: str, z: float) -> str:
    if significance != "signal":
        return ACCENT
    return RISE if z > 0 else FALL


# ---------------------------------------------------------------------------
# Incidents

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
STEP_LABELS = {
    "call_received": "Call received",
    "call_answered": "Answered",
    "incident_created": "Incident created",
    "graded": "Graded",
    "dispatched": "Dispatched",
    "arrived": "Arrived",
    "closed": "Closed",
}
INCIDENT_MAP_COLUMNS = {"share": "share_within_target", "median": "median_attend_min"}


def incidents_map_values(frame: pd.DataFrame, measure: str) -> dict:
    """The parts of the incident map that change with the filters, as JSON values.
    Shares are drawn in percent; an area with no attended incidents is blank."""
    column = INCIDENT_MAP_COLUMNS[measure]
    values = pd.to_numeric(frame[column]).astype("float64")
    if measure == "share":
        values = values * 100
    z = [None if pd.isna(v) else round(float(v), 2) for v in values]
    finite = [v for v in z if v is not None]
    # Under disclosure control a blanked value says so; otherwise blank = not recorded.
    blank = _suppressed_rows(frame)
    gap = [
        disclosure.hover_text(frame.attrs["disclosure"]["threshold"]) if b else None
        for b in blank
    ]
    hover = [
        f"{name}<br>Incidents: {_count(n, why)}<br>Attended: {_count(a, why)}<br>"
        + (
            f"Within target: {why or 'not recorded'}"
            if pd.isna(s)
            else f"Within target: {s:.1%}"
        )
        + (
            f"<br>Median to attend: {why or 'not recorded'}"
            if pd.isna(m)
            else f"<br>Median to attend: {m:.1f} min"
        )
        for name, n, a, s, m, why in zip(
            frame["area_name"],
            frame["incidents"],
            frame["attended"],
            frame["share_within_target"],
            frame["median_attend_min"],
            gap,
            strict=True,
        )
    ]
    return {
        "locations": [str(c) for c in frame["area_code"]],
        "z": z,
        "customdata": [str(c) for c in frame["area_code"]],
        "hovertext": hover,
        "zmin": 0,
        "zmax": 100 if measure == "share" else (max(finite) if finite else 1),
        "colorscale": "RdYlGn" if measure == "share" else "Blues",
        "colorbar_title": "% within target" if measure == "share" else "Median min",
    }


def _suppressed_rows(frame: pd.DataFrame) -> list[bool]:
    """Which rows disclosure control blanked something in (dashboards/disclosure)."""
    if disclosure.MARKER_COLUMN not in frame.columns:
        return [False] * len(frame)
    return [bool(m) for m in frame[disclosure.MARKER_COLUMN]]


def _count(value, why: str | None) -> str:
    if pd.isna(value):
        return why or "not recorded"
    return f"{int(value):,}"


def crime_map_hover(frame: pd.DataFrame, label: str, column: str) -> list[str]:
    """The crime map's hover, saying "fewer than N (suppressed)" for a blanked value
    (geo.choropleth's own hover, with disclosure control)."""
    threshold = frame.attrs.get("disclosure", {}).get("threshold")
    why = disclosure.hover_text(threshold) if threshold else "not shown"
    texts = []
    for name, value, last, significance, marked in zip(
        frame["area_name"],
        frame[column],
        frame["crimes_last_year"],
        frame["significance"],
        _suppressed_rows(frame),
        strict=True,
    ):
        if pd.isna(value):
            shown = why if marked else "no residents"
        elif float(value).is_integer():
            shown = f"{value:,.0f}"
        else:
            shown = f"{value:,.2f}"
        before = why if pd.isna(last) else f"{int(last):,}"
        judged = "" if pd.isna(significance) else f" ({significance})"
        texts.append(f"{name}<br>{label}: {shown}<br>Last year: {before}{judged}")
    return texts


def suppressed_layer(
    geojson_url: str, frame: pd.DataFrame, column: str, label: str
) -> go.Choroplethmap:
    """A neutral grey layer over the areas whose `column` disclosure control blanked,
    saying so on hover; a click drills into one as into any area. Put it above the
    coloured trace (data[1]); with nothing suppressed it is empty."""
    rows = frame[
        pd.Series(_suppressed_rows(frame), index=frame.index, dtype=bool)
        & frame[column].isna()
    ]
    threshold = frame.attrs.get("disclosure", {}).get("threshold", 0)
    codes = [str(c) for c in rows["area_code"]]
    return go.Choroplethmap(
        geojson=geojson_url,
        featureidkey="properties.area_code",
        locations=codes,
        z=[0] * len(codes),
        customdata=codes,
        hovertext=[
            f"{name}<br>{label}: {disclosure.hover_text(threshold)}"
            for name in rows["area_name"]
        ],
        hoverinfo="text",
        colorscale=[[0, SUPPRESSED_GREY], [1, SUPPRESSED_GREY]],
        zmin=0,
        zmax=1,
        showscale=False,
        name="suppressed",
        marker={"opacity": 0.8, "line": {"width": 0.6, "color": "#555"}},
    )


def incidents_map(
    geojson_url: str, frame: pd.DataFrame, measure: str, view: dict, key: str = ""
) -> go.Figure:
    """The incident choropleth, its polygons referenced by URL (a static file)."""
    values = incidents_map_values(frame, measure)
    figure = go.Figure(
        go.Choroplethmap(
            geojson=geojson_url,
            featureidkey="properties.area_code",
            locations=values["locations"],
            z=values["z"],
            customdata=values["customdata"],
            hovertext=values["hovertext"],
            hoverinfo="text",
            zmin=values["zmin"],
            zmax=values["zmax"],
            colorscale=values["colorscale"],
            marker={"opacity": 0.8, "line": {"width": 0.6, "color": "#555"}},
            colorbar={"title": {"text": values["colorbar_title"]}, "thickness": 12},
        ),
        layout={"template": TEMPLATE},
    )
    figure.update_layout(
        map={"style": "white-bg", **view, "uirevision": key},
        margin={"l": 0, "r": 0, "t": 0, "b": 0},
        height=400,
        uirevision="incidents-map",
        clickmode="event",
    )
    return figure


def incidents_trend(frame: pd.DataFrame) -> go.Figure:
    """Weekly share attended within target as a p-chart, with the target line as
    the share each week would need (100%: every incident inside its target)."""
    if frame.empty:
        return empty_figure("No attended incidents with a target in this period")
    weeks = [pd.Timestamp(w).strftime("%Y-%m-%d") for w in frame["week_start"]]
    outside = frame["outside"].fillna(False).astype(bool).to_numpy()
    pct = (pd.to_numeric(frame["share"]).astype("float64") * 100).round(2)
    figure = go.Figure(layout={"template": TEMPLATE, "height": 320})
    for column, name, style in [
        ("upper", "Upper limit (3 sigma)", {"dash": "dot", "width": 1}),
        ("lower", "Lower limit (3 sigma)", {"dash": "dot", "width": 1}),
        ("centre", "Centre", {"width": 1}),
    ]:
        figure.add_trace(
            go.Scatter(
                x=weeks,
                y=(pd.to_numeric(frame[column]).astype("float64") * 100)
                .round(2)
                .tolist(),
                name=name,
                mode="lines",
                line={"color": MUTED, "shape": "hv", **style},
            )
        )
    figure.add_trace(
        go.Scatter(
            x=weeks,
            y=pct.tolist(),
            name="% within target",
            mode="lines+markers",
            line={"color": ACCENT, "width": 2},
            customdata=[
                f"{int(w):,} of {int(a):,}; target {t:g} min" if pd.notna(t) else ""
                for w, a, t in zip(
                    frame["within_target"],
                    frame["attended"],
                    frame["target_minutes"],
                    strict=True,
                )
            ],
            hovertemplate="%{x}: %{y:.1f}% (%{customdata})<extra></extra>",
        )
    )
    figure.add_trace(
        go.Scatter(
            x=[w for w, o in zip(weeks, outside, strict=True) if o],
            y=pct[outside].tolist(),
            name="Outside the limits",
            mode="markers",
            marker={
                "size": 12,
                "color": RISE,
                "symbol": "circle-open",
                "line": {"width": 2},
            },
        )
    )
    figure.add_trace(
        go.Scatter(
            x=weeks,
            y=pd.to_numeric(frame["target_minutes"]).astype("float64").tolist(),
            name="Target in force (min, right axis)",
            mode="lines",
            line={"color": "#fd7e14", "width": 2, "dash": "dash", "shape": "hv"},
            yaxis="y2",
        )
    )
    figure.update_layout(
        hovermode="x unified",
        xaxis={"type": "category", "title": None},
        yaxis={"title": "% attended within target", "range": [0, 101]},
        yaxis2={
            "title": "Target (min)",
            "overlaying": "y",
            "side": "right",
            "rangemode": "tozero",
            "showgrid": False,
        },
    )
    return figure


def incidents_heatmap(frame: pd.DataFrame, measure: str = "incidents") -> go.Figure:
    """Incidents (or share within target) by hour of the week; a click on a cell
    names it as `<dow>-<hour>`."""
    if frame.empty or int(frame["incidents"].sum()) == 0:
        return empty_figure("No incidents in this period")
    grid = frame.set_index(["local_dow", "local_hour"]).sort_index()
    z, text, custom = [], [], []
    for dow in range(7):
        row_z, row_t, row_c = [], [], []
        for hour in range(24):
            cell = grid.loc[(dow, hour)] if (dow, hour) in grid.index else None
            n = 0 if cell is None else int(cell["incidents"])
            share = None if cell is None else cell["share_within_target"]
            median = None if cell is None else cell["median_attend_min"]
            row_z.append(n)
            row_c.append(f"{dow}-{hour}")
            row_t.append(
                f"{DAYS[dow]} {hour:02d}:00-{hour:02d}:59<br>Incidents: {n:,}<br>"
                + (
                    "Within target: not recorded"
                    if share is None or pd.isna(share)
                    else f"Within target: {share:.1%}"
                )
                + (
                    "<br>Median to attend: not recorded"
                    if median is None or pd.isna(median)
                    else f"<br>Median to attend: {median:.1f} min"
                )
            )
        z.append(row_z)
        text.append(row_t)
        custom.append(row_c)
    figure = go.Figure(
        go.Heatmap(
            z=z,
            x=[f"{h:02d}" for h in range(24)],
            y=list(DAYS),
            customdata=custom,
            hovertext=text,
            hoverinfo="text",
            colorscale="Blues",
            colorbar={"title": {"text": "Incidents"}, "thickness": 12},
            xgap=1,
            ygap=1,
        ),
        layout={"template": TEMPLATE, "height": 300},
    )
    figure.update_layout(
        xaxis={"title": "Hour (local)", "type": "category"},
        yaxis={"autorange": "reversed", "type": "category"},
        clickmode="event",
    )
    return figure


def incidents_timeline(frame: pd.DataFrame, target_min=None) -> go.Figure:
    """One incident's recorded steps on a time axis, minutes from the first step,
    with its attendance target marked."""
    if frame.empty:
        return empty_figure("No recorded steps for this incident")
    times = pd.to_datetime(frame["at_local"])
    minutes = ((times - times.iloc[0]).dt.total_seconds() / 60).round(2)
    labels = [STEP_LABELS.get(s, s) for s in frame["step"]]
    figure = go.Figure(
        go.Scatter(
            x=minutes.tolist(),
            y=[0] * len(frame),
            mode="markers+text",
            text=labels,
            textposition=[
                "top center" if i % 2 == 0 else "bottom center"
                for i in range(len(frame))
            ],
            marker={"size": 12, "color": ACCENT},
            hovertext=[
                f"{label}: {t:%d %b %Y %H:%M:%S} (+{m:.1f} min)"
                for label, t, m in zip(labels, times, minutes, strict=True)
            ],
            hoverinfo="text",
        ),
        layout={"template": TEMPLATE, "height": 220},
    )
    if target_min is not None and pd.notna(target_min):
        figure.add_vline(
            x=float(target_min),
            line={"color": RISE, "dash": "dash"},
            annotation_text=f"Target {float(target_min):g} min",
        )
    figure.update_layout(
        xaxis={"title": "Minutes from the first recorded step", "rangemode": "tozero"},
        yaxis={"visible": False, "range": [-1, 1]},
        showlegend=False,
    )
    return figure


# ---------------------------------------------------------------------------
# Sparklines for the overview's tiles

SPARK_LINE, SPARK_TARGET = "#56B4E9", "#999999"  # Okabe-Ito sky blue; neutral grey


def spark_points(values) -> int:
    """How many values a sparkline would draw (gaps do not count)."""
    return int(pd.to_numeric(pd.Series(values, dtype=object)).notna().sum())


def sparkline(values, target=None, height: int = 40) -> dict:
    """A tiny line with no axes: the shape of a tile's trend, not its reading.

    Gaps (None, NaN) stay gaps rather than joining their neighbours; the latest
    value is a dot; a dotted line marks `target` when given, in the values' units.
    A plain figure dict, not a go.Figure: the overview draws seven on every
    refresh, and building and validating them as plotly objects took 60 ms of a
    70 ms warm redraw.
    """
    y = [
        None if v is None or pd.isna(v) else float(v)
        for v in pd.to_numeric(pd.Series(values, dtype=object))
    ]
    line = {"color": SPARK_LINE, "width": 2}
    data = [
        {
            "type": "scatter",
            "y": y,
            "mode": "lines",
            "line": line,
            "connectgaps": False,
            "hoverinfo": "skip",
        }
    ]
    known = [n for n, v in enumerate(y) if v is not None]
    if known:
        data.append(
            {
                "type": "scatter",
                "x": [known[-1]],
                "y": [y[known[-1]]],
                "mode": "markers",
                "marker": {"size": 6, "color": SPARK_LINE},
                "hoverinfo": "skip",
            }
        )
    shapes = []
    if target is not None and pd.notna(target):
        shapes.append(
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "yref": "y",
                "y0": float(target),
                "y1": float(target),
                "line": {"color": SPARK_TARGET, "width": 1, "dash": "dot"},
            }
        )
    return {
        "data": data,
        "layout": {
            "margin": {"l": 2, "r": 4, "t": 4, "b": 4},
            "height": height,
            "xaxis": {"visible": False, "range": [-0.5, max(len(y) - 0.5, 0.5)]},
            "yaxis": {"visible": False},
            "shapes": shapes,
            "showlegend": False,
            "paper_bgcolor": "rgba(0,0,0,0)",
            "plot_bgcolor": "rgba(0,0,0,0)",
        },
    }
