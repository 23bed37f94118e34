"""Pure figure builders for the crime page: DataFrame in, go.Figure out."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

INK, MUTED, ACCENT = "#212529", "#6c757d", "#0d6efd"
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
