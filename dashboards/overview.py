"""Force overview: large KPI tiles for a wall, a kiosk mode, and refresh on new data."""

from __future__ import annotations

from urllib.parse import urlencode

import dash
import dash_bootstrap_components as dbc
import pandas as pd
import plotly.graph_objects as go
from dash import Input, Output, State, callback, clientside_callback, dcc, html
from flask import has_app_context

from dashboards import components, exports
from queries import crime, incidents, status

dash.register_page(
    __name__,
    path="/overview",
    name="Overview",
    title="Overview",
    order=4,
    id_prefix="overview-",
    description="The force's position at a glance: large tiles for a wall display.",
)

# Settings-to-be: targets the force has not yet put in a settings table.
GRADE1_SHARE_TARGET = 0.90  # share of Grade 1 incidents attended within target
CALLS_999_TARGET = 0.90  # share of 999 calls answered within 10 seconds
NEAR_MARGIN = 0.05  # within five points below a share target: amber, not red
POLL_SECONDS = 15  # how often a display asks /api/freshness for a new ETL run

CRIME_SOURCE, INCIDENT_SOURCE, CALLS_SOURCE = "police-uk-street", "cad", "calls"
CRIME_ARGS = ("period", "from", "to", "type", "level", "area")
NOT_RECORDED = "not recorded by this source"
NOT_AVAILABLE = "no data"
# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
RISE, FALL = "#E69F00", "#56B4E9"
RAG_LABELS = {"met": "On target", "near": "Near target", "breach": "Below target"}


# ---------------------------------------------------------------------------
# The URL: one set of arguments, split between the crime and incident measures


def _one(value):
    return value[0] if isinstance(value, list) and value else value


def crime_search(args: dict) -> str:
    """The crime page's query string for the overview's arguments (rolling 12
    months unless a period is given), so a tile equals the page it summarises."""
    parts = [("period", _one(args.get("period")) or "rolling-12")]
    for key in CRIME_ARGS[1:]:
        values = args.get(key)
        for value in values if isinstance(values, list) else [values]:
            if value:
                parts.append((key, value))
    return "?" + urlencode(parts)


def incident_search(args: dict) -> str:
    """The incidents page's query string: its own period (`iperiod`), source, area."""
    parts = [("period", _one(args.get("iperiod")) or exports.INCIDENT_DEFAULT_PERIOD)]
    for key in ("source", "level", "area"):
        value = _one(args.get(key))
        if value:
            parts.append((key, value))
    return "?" + urlencode(parts)


def _is_on(value) -> bool:
    return str(_one(value) or "") in ("1", "true", "yes")


# ---------------------------------------------------------------------------
# Tiles: plain dicts built from the same query functions the pages use


def _tile(key, title, value, raw, source, **more) -> dict:
    tile = {
        "key": key,
        "title": title,
        "value": value,
        "raw": None if raw is None or pd.isna(raw) else raw,
        "source": source,
        "target": None,
        "rag": None,
        "direction": None,
        "significance": None,
        "z": None,
        "spark": [],
    }
    tile.update(more)
    return tile


def _share_rag(share, target) -> str | None:
    if share is None or pd.isna(share):
        return None
    if share >= target:
        return "met"
    return "near" if share >= target - NEAR_MARGIN else "breach"


def _numbers(series) -> list[float]:
    return [float(v) for v in pd.to_numeric(series, errors="coerce").dropna()]


def crime_tiles(search: str, query=None) -> tuple[list[dict], str]:
    """Recorded crime and harm, as the crime page's KPI cards compute them."""
    query = query or components.cached_query
    try:
        resolved = exports.resolve_query_string(search, query)
        values = query(crime.kpis, resolved.filters)
        trend = exports.chart_frame("trend", resolved, query)
    except components.NoData as exc:
        return [
            _tile("crimes", "Recorded crime", NOT_AVAILABLE, None, CRIME_SOURCE),
            _tile("harm", "Harm", NOT_AVAILABLE, None, CRIME_SOURCE),
        ], str(exc)
    change = values["crimes"] - values["crimes_last_year"]
    crimes = _tile(
        "crimes",
        "Recorded crime",
        f"{values['crimes']:,}",
        values["crimes"],
        CRIME_SOURCE,
        target="No target set",
        direction=f"{change:+,} vs {values['crimes_last_year']:,} last year",
        significance=values["significance"],
        z=values["z"],
        rising_is_bad=True,
        spark=_numbers(trend["crimes"]),
    )
    harm = _tile(
        "harm",
        "Harm (days)",
        f"{values['harm_days']:,.0f}",
        values["harm_days"],
        CRIME_SOURCE,
        target="No target set",
        direction="Harm-weighted total of the period's crimes",
        spark=_numbers(trend["harm_days"]),
    )
    caption = resolved.sentence.rstrip(".")
    if resolved.selection.types:
        caption += "; crime types: " + ", ".join(resolved.selection.types)
    else:
        caption += "; all crime types"
    if resolved.path:
        caption += "; area: " + resolved.path[-1]["area_name"]
    return [crimes, harm], caption


def _gaps(resolved, query) -> set[str]:
    """Measures no source in view can give (as the incidents page decides)."""
    names = (
        [resolved.filters.source]
        if resolved.filters.source
        else resolved.sources["source"].tolist()
    )
    common = set(incidents.STEPS)
    for name in names:
        common &= set(query(incidents.not_recorded, name))
    missing = common if names else set()
    gaps = set()
    if "arrived" in missing or {"call_received", "incident_created"} <= missing:
        gaps.add("attend")
    if "closed" in missing:
        gaps.add("queue")
    return gaps


def _shown(value, fmt: str, gap: bool) -> str:
    if value is None or pd.isna(value):
        return NOT_RECORDED if gap else "none in this period"
    return fmt.format(float(value))


def incident_tiles(search: str, query=None) -> tuple[list[dict], str]:
    """Grade 1 attendance, call answering and the open queue, as on the incidents
    page (same resolver, same frames)."""
    query = query or components.cached_query
    titles = [
        ("g1-share", "Grade 1 attended within target", INCIDENT_SOURCE),
        ("g1-median", "Grade 1 median time to attend", INCIDENT_SOURCE),
        ("999", "999 answered within 10 s", CALLS_SOURCE),
        ("101", "101 mean wait to answer", CALLS_SOURCE),
        ("queue", "Open queue", INCIDENT_SOURCE),
    ]
    try:
        resolved = exports.resolve_incident_query_string(search, query)
        grades = exports.incident_frame("grades", resolved, query)
        calls = exports.incident_frame("calls", resolved, query)
        queue = exports.incident_frame("queue", resolved, query)
        weekly = exports.incident_frame("trend", resolved, query)
        gaps = _gaps(resolved, query)
    except components.NoData as exc:
        return [_tile(k, t, NOT_AVAILABLE, None, s) for k, t, s in titles], str(exc)
    rows = grades[grades["final_grade"].astype(str) == "1"]
    g1 = rows.iloc[0].to_dict() if len(rows) else {}
    attend_gap = "attend" in gaps
    share = g1.get("share_within_target")
    last = g1.get("share_within_target_last_year")
    median = g1.get("median_attend_min")
    target_min = g1.get("target_urban_minutes")
    has_target_min = target_min is not None and not pd.isna(target_min)
    tiles = [
        _tile(
            "g1-share",
            titles[0][1],
            _shown(share, "{:.1%}", attend_gap),
            share,
            INCIDENT_SOURCE,
            target=f"Target {GRADE1_SHARE_TARGET:.0%}",
            rag=_share_rag(share, GRADE1_SHARE_TARGET),
            direction=None
            if last is None or pd.isna(last)
            else f"{float(last):.1%} last year",
            significance=g1.get("significance") if last is not None else None,
            z=g1.get("z"),
            rising_is_bad=False,
            spark=_numbers(weekly["share"]) if "share" in weekly else [],
        ),
        _tile(
            "g1-median",
            titles[1][1],
            _shown(median, "{:.1f} min", attend_gap),
            median,
            INCIDENT_SOURCE,
            target=f"Target {float(target_min):.0f} min (urban)"
            if has_target_min
            else "No target recorded",
            rag=None
            if median is None or pd.isna(median) or not has_target_min
            else ("met" if float(median) <= float(target_min) else "breach"),
            direction=_last_year_minutes(g1.get("median_attend_min_last_year")),
        ),
    ]
    tiles += _call_tiles(calls)
    open_total = int(pd.to_numeric(queue["open_incidents"]).sum()) if len(queue) else 0
    tiles.append(
        _tile(
            "queue",
            titles[4][1],
            NOT_RECORDED if "queue" in gaps else f"{open_total:,}",
            None if "queue" in gaps else open_total,
            INCIDENT_SOURCE,
            target="No target set",
            direction=f"As at {components.format_time(resolved.as_at)}",
        )
    )
    return tiles, resolved.sentence.rstrip(".")


def _last_year_minutes(value) -> str | None:
    if value is None or pd.isna(value):
        return None
    return f"{float(value):.1f} min last year"


def _call_tiles(calls: pd.DataFrame) -> list[dict]:
    def line(name):
        rows = calls[calls["line"].astype(str) == name]
        if rows.empty or not int(rows.iloc[0]["offered"]):
            return None
        return rows.iloc[0].to_dict()

    row_999, row_101 = line("999"), line("101")
    share = None if row_999 is None else row_999.get("share_within_10")
    wait = None if row_101 is None else row_101.get("mean_answer_s")
    return [
        _tile(
            "999",
            "999 answered within 10 s",
            "no call data" if row_999 is None else _shown(share, "{:.1%}", gap=True),
            share,
            CALLS_SOURCE,
            target=f"Target {CALLS_999_TARGET:.0%}",
            rag=_share_rag(share, CALLS_999_TARGET),
        ),
        _tile(
            "101",
            "101 mean wait to answer",
            "no call data" if row_101 is None else _shown(wait, "{:.0f} s", gap=True),
            wait,
            CALLS_SOURCE,
            target="No target set",
        ),
    ]


def ordered(tiles: list[dict], exceptions_first: bool) -> list[dict]:
    """Tiles in breach (then near target) first when asked, otherwise as given."""
    if not exceptions_first:
        return list(tiles)
    rank = {"breach": 0, "near": 1}
    return sorted(tiles, key=lambda t: rank.get(t["rag"], 2))


# ---------------------------------------------------------------------------
# Drawing


def sparkline(values: list[float]) -> go.Figure:
    """A tiny line, no axes: the shape of the trend, not its reading."""
    figure = go.Figure(
        go.Scatter(
            y=values,
            mode="lines",
            line={"width": 2, "color": "#56B4E9"},
            hoverinfo="skip",
        )
    )
    figure.update_layout(
        margin={"l": 0, "r": 0, "t": 0, "b": 0},
        height=40,
        xaxis={"visible": False},
        yaxis={"visible": False},
        showlegend=False,
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
    )
    return figure


def _direction(tile: dict):
    parts = [tile["direction"] or "No comparison with last year"]
    label, z = tile["significance"], tile["z"]
    if label and z is not None and not pd.isna(z):
        classes = "bl-tile-sig"
        if label == "signal":
            bad = (z > 0) == tile.get("rising_is_bad", True)
            classes += " bl-tile-sig-bad" if bad else " bl-tile-sig-good"
        arrow = "▲" if z > 0 else "▼"
        parts = [
            *parts,
            " ",
            html.Span(f"{arrow} {label} (z {float(z):+.1f})", className=classes),
        ]
    return html.Div(parts, className="bl-tile-direction")


def tile_card(tile: dict, as_at: dict[str, str]) -> dbc.Card:
    rag = tile["rag"]
    spark = (
        dcc.Graph(
            figure=sparkline(tile["spark"]),
            config={"staticPlot": True, "displayModeBar": False},
            className="bl-tile-spark",
            style={"height": "40px"},
        )
        if len(tile["spark"]) > 1
        else html.Div("No trend series", className="bl-tile-spark-none small")
    )
    return dbc.Card(
        dbc.CardBody(
            [
                html.Div(tile["title"], className="bl-tile-title"),
                html.Div(
                    tile["value"],
                    id=f"overview-tile-{tile['key']}",
                    className="bl-tile-value",
                    **{
                        "data-value": "" if tile["raw"] is None else str(tile["raw"]),
                        "data-rag": rag or "none",
                    },
                ),
                html.Div(
                    [
                        html.Span(tile["target"] or "No target set"),
                        html.Span(
                            RAG_LABELS[rag], className=f"bl-rag bl-rag-{rag} ms-2"
                        )
                        if rag
                        else None,
                    ],
                    className="bl-tile-target",
                ),
                _direction(tile),
                spark,
                html.Div(
                    "Data as at " + as_at.get(tile["source"], "never"),
                    className="bl-tile-as-at small",
                ),
            ]
        ),
        className="h-100 bl-tile" + (f" bl-tile-{rag}" if rag else ""),
    )


def source_times(query=None) -> tuple[dict[str, str], dict[str, dict]]:
    """Each source's last successful load, as text for tiles and as data for the
    browser's staleness check (twice the source's interval)."""
    query = query or components.query
    try:
        frame = query(
            status.source_status, components.runtime().intervals, components.utcnow()
        )
    except components.NoData:
        return {}, {}
    text, data = {}, {}
    # Only the sources behind the tiles: a stale boundary file is not the wall's news.
    frame = frame[frame["source"].isin([CRIME_SOURCE, INCIDENT_SOURCE, CALLS_SOURCE])]
    for row in frame.itertuples():
        text[row.source] = components.format_time(row.last_success_at)
        data[row.source] = {
            "last_success_at": None
            if pd.isna(row.last_success_at)
            else pd.Timestamp(row.last_success_at).isoformat() + "Z",
            "interval_minutes": None
            if pd.isna(row.interval_minutes)
            else int(row.interval_minutes),
        }
    return text, data


# ---------------------------------------------------------------------------
# Layout and callbacks


def layout(**query_args):
    """`?kiosk=1&exceptions=1&period=rolling-12&type=Robbery&level=lad&area=X
    &iperiod=last-28-days&source=cad&refresh=15` (every part optional)."""
    kiosk = _is_on(query_args.get("kiosk"))
    try:
        refresh = max(2, int(_one(query_args.get("refresh")) or POLL_SECONDS))
    except ValueError:
        refresh = POLL_SECONDS
    run_id = _run_id()
    return html.Div(
        [
            dcc.Store(id="overview-args", data=query_args),
            dcc.Store(id="overview-run", data=run_id),
            dcc.Store(id="overview-sources", data={}),
            dcc.Store(id="overview-kiosk", data=kiosk),
            dcc.Interval(id="overview-poll", interval=refresh * 1000),
            dcc.Interval(id="overview-tick", interval=1000),
            html.Div(
                [
                    html.H1("Force overview", className="bl-overview-heading"),
                    html.Div(id="overview-clock", className="bl-clock"),
                ],
                className="d-flex justify-content-between align-items-baseline",
            ),
            html.Div(
                id="overview-banner",
                className="bl-banner",
                role="status",
                style={"display": "none"},
            ),
            html.P(id="overview-caption", className="bl-caption small"),
            None if kiosk else _controls(query_args),
            html.Div(id="overview-tiles"),
        ],
        className="bl-overview" + (" bl-kiosk" if kiosk else ""),
    )


def _run_id() -> int:
    if not has_app_context():
        return 0
    try:
        return int(components.query(status.freshness)["run_id"])
    except components.NoData:
        return 0


def _controls(query_args: dict) -> html.Div:
    search = urlencode({**query_args, "kiosk": "1"}, doseq=True)
    return html.Div(
        [
            html.A("Open in kiosk mode", href=f"/overview?{search}", className="me-3"),
            html.A(
                "Exceptions first",
                href=f"/overview?{search}&exceptions=1",
                className="me-3",
            ),
            html.A(
                "Crime page", href="/crime" + crime_search(query_args), className="me-3"
            ),
            html.A("Incidents page", href="/incidents" + incident_search(query_args)),
        ],
        id="overview-controls",
        className="bl-overview-controls small mb-2",
    )


@callback(
    Output("overview-tiles", "children"),
    Output("overview-caption", "children"),
    Output("overview-sources", "data"),
    Input("overview-run", "data"),
    State("overview-args", "data"),
)
def show_tiles(_run_id, args):
    """Redrawn on first load and whenever the poll sees a new ETL run id."""
    args = args or {}
    crime_part, crime_caption = crime_tiles(crime_search(args))
    incident_part, incident_caption = incident_tiles(incident_search(args))
    as_at, sources = source_times()
    tiles = ordered(crime_part + incident_part, _is_on(args.get("exceptions")))
    cards = dbc.Row(
        [
            dbc.Col(tile_card(t, as_at), xs=12, sm=6, xl=3, className="mb-3")
            for t in tiles
        ],
        className="g-3",
    )
    latest = max(
        (s["last_success_at"] for s in sources.values() if s["last_success_at"]),
        default=None,
    )
    caption = (
        f"Crime: {crime_caption}. Incidents: {incident_caption}. Data as at "
        + (components.format_time(pd.Timestamp(latest[:-1])) if latest else "never")
        + "."
    )
    return cards, caption, sources


# Polls the cheap freshness route in the browser: the run id store changes (and the
# tiles redraw) only when a new ETL run has finished; a banner says when the server
# cannot be reached or a source behind the tiles is older than twice its interval.
clientside_callback(
    """
    async function(n, runId, sources) {
        const nu = window.dash_clientside.no_update;
        const hidden = {display: 'none'};
        const shown = {};
        let body;
        try {
            const response = await fetch('/api/freshness', {cache: 'no-store'});
            if (!response.ok) { throw new Error('HTTP ' + response.status); }
            body = await response.json();
        } catch (e) {
            const at = new Date().toLocaleTimeString('en-GB');
            return [nu, 'Server unreachable (' + at + '): showing the last data '
                + 'received; retrying.', shown];
        }
        const stale = [];
        const now = Date.now();
        for (const [name, s] of Object.entries(sources || {})) {
            if (!s.interval_minutes) { continue; }
            const last = s.last_success_at ? Date.parse(s.last_success_at) : NaN;
            if (isNaN(last) || now - last > 2 * s.interval_minutes * 60000) {
                stale.push(name);
            }
        }
        const changed = body.run_id !== runId ? body.run_id : nu;
        if (stale.length) {
            return [changed, 'Stale data: ' + stale.join(', ') + ' not refreshed '
                + 'in over twice the expected interval.', shown];
        }
        return [changed, '', hidden];
    }
    """,
    Output("overview-run", "data"),
    Output("overview-banner", "children"),
    Output("overview-banner", "style"),
    Input("overview-poll", "n_intervals"),
    State("overview-run", "data"),
    State("overview-sources", "data"),
    prevent_initial_call=True,
)

clientside_callback(
    """
    function(n, kiosk) {
        document.body.classList.toggle('bl-kiosk', !!kiosk);
        return new Date().toLocaleTimeString('en-GB',
            {hour: '2-digit', minute: '2-digit', second: '2-digit'});
    }
    """,
    Output("overview-clock", "children"),
    Input("overview-tick", "n_intervals"),
    State("overview-kiosk", "data"),
)
