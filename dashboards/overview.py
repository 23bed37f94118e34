"""Force overview: large KPI tiles for a wall, a kiosk mode, and refresh on new data."""

from __future__ import annotations

from urllib.parse import urlencode

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, callback, clientside_callback, dcc, html
from flask import has_app_context

from dashboards import components, exports, figures
from queries import calls, crime, incidents, scope, status, trends

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
        "spark": [],  # the trend, oldest first; None where a point has no data
        "spark_label": None,  # what the sparkline shows, said on the tile
        "spark_target": None,  # the target in the sparkline's units, if any
    }
    tile.update(more)
    return tile


def _share_rag(share, target) -> str | None:
    if share is None or pd.isna(share):
        return None
    if share >= target:
        return "met"
    return "near" if share >= target - NEAR_MARGIN else "breach"


def _series(values) -> list[float | None]:
    """Plain floats for a sparkline, None for a gap (a week with no data)."""
    numbers = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
    return [None if pd.isna(v) else float(v) for v in numbers]


def _plural(n: int, unit: str) -> str:
    return f"{n:,} {unit}{'' if n == 1 else 's'}"


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
        spark=_series(trend["crimes"]),
        spark_label=f"Crimes by month, {_plural(len(trend), 'month')}",
    )
    harm = _tile(
        "harm",
        "Harm (days)",
        f"{values['harm_days']:,.0f}",
        values["harm_days"],
        CRIME_SOURCE,
        target="No target set",
        direction="Harm-weighted total of the period's crimes",
        spark=_series(trend["harm_days"]),
        spark_label=f"Harm by month, {_plural(len(trend), 'month')}",
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
        answering = exports.incident_frame("calls", resolved, query)
        queue = exports.incident_frame("queue", resolved, query)
        f = resolved.filters
        weekly = query(trends.weekly_grade1, f)
        weekly_calls = query(trends.weekly_calls, f.start, f.end, f.source)
        open_days = query(trends.open_by_day, f, resolved.as_at)
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
    weeks = _plural(len(weekly), "week")
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
            spark=[] if attend_gap else _series(weekly["share"]),
            spark_label=f"Grade 1 share within target by week, {weeks}",
            spark_target=GRADE1_SHARE_TARGET,
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
            spark=[] if attend_gap else _series(weekly["median_attend_min"]),
            spark_label=f"Grade 1 median minutes by week, {weeks}",
            spark_target=float(target_min) if has_target_min else None,
        ),
    ]
    tiles += _call_tiles(answering, weekly_calls)
    open_total = int(pd.to_numeric(queue["open_incidents"]).sum()) if len(queue) else 0
    queue_gap = "queue" in gaps
    tiles.append(
        _tile(
            "queue",
            titles[4][1],
            NOT_RECORDED if queue_gap else f"{open_total:,}",
            None if queue_gap else open_total,
            INCIDENT_SOURCE,
            target="No target set",
            direction=f"As at {components.format_time(resolved.as_at)}",
            spark=[] if queue_gap else _series(open_days["open_incidents"]),
            spark_label="Open at each day's end (midnight UTC), "
            + _plural(len(open_days), "day"),
        )
    )
    return tiles, resolved.sentence.rstrip(".")


def _last_year_minutes(value) -> str | None:
    if value is None or pd.isna(value):
        return None
    return f"{float(value):.1f} min last year"


def _call_tiles(calls_frame: pd.DataFrame, weekly: pd.DataFrame) -> list[dict]:
    """The 999 and 101 tiles. Calls carry no location, so an account limited to
    areas is told why they are not shown, rather than "none in this period"."""
    titles = [("999", "999 answered within 10 s"), ("101", "101 mean wait to answer")]
    if scope.restricted():
        return [
            _tile(
                key,
                title,
                calls.NOT_BY_AREA,
                None,
                CALLS_SOURCE,
                target=f"Target {CALLS_999_TARGET:.0%}"
                if key == "999"
                else "No target set",
            )
            for key, title in titles
        ]

    def line(name):
        rows = calls_frame[calls_frame["line"].astype(str) == name]
        if rows.empty or not int(rows.iloc[0]["offered"]):
            return None
        return rows.iloc[0].to_dict()

    def weeks(name, column):
        return _series(weekly.loc[weekly["line"].astype(str) == name, column])

    row_999, row_101 = line("999"), line("101")
    share = None if row_999 is None else row_999.get("share_within_10")
    wait = None if row_101 is None else row_101.get("mean_answer_s")
    count = _plural(int((weekly["line"].astype(str) == "999").sum()), "week")
    return [
        _tile(
            "999",
            titles[0][1],
            "no call data" if row_999 is None else _shown(share, "{:.1%}", gap=True),
            share,
            CALLS_SOURCE,
            target=f"Target {CALLS_999_TARGET:.0%}",
            rag=_share_rag(share, CALLS_999_TARGET),
            spark=weeks("999", "share_within_10"),
            spark_label=f"999 share answered in under 10 s by week, {count}",
            spark_target=CALLS_999_TARGET,
        ),
        _tile(
            "101",
            titles[1][1],
            "no call data" if row_101 is None else _shown(wait, "{:.0f} s", gap=True),
            wait,
            CALLS_SOURCE,
            target="No target set",
            spark=weeks("101", "mean_answer_s"),
            spark_label=f"101 mean wait in seconds by week, {count}",
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


def _spark(tile: dict) -> list:
    """The tile's sparkline and a line saying what it shows, or why there is none
    (nothing, when the tile's value already says why it has no figures)."""
    label = tile["spark_label"]
    if figures.spark_points(tile["spark"]) < 2:
        if label is None or tile["raw"] is None:
            return []
        reason = "No trend: fewer than two periods with data"
        return [html.Div(reason, className="bl-tile-spark-none small")]
    return [
        dcc.Graph(
            id=f"overview-spark-{tile['key']}",
            figure=figures.sparkline(tile["spark"], tile["spark_target"]),
            config={"staticPlot": True, "displayModeBar": False},
            className="bl-tile-spark",
            style={"height": "40px"},
        ),
        html.Div(
            label
            + ("; dotted line: target" if tile["spark_target"] is not None else ""),
            className="bl-tile-spark-label small",
        ),
    ]


def tile_card(tile: dict, as_at: dict[str, str]) -> dbc.Card:
    rag = tile["rag"]
    return dbc.Card(
        dbc.CardBody(
            [
                html.Div(tile["title"], className="bl-tile-title"),
                html.Div(
                    tile["value"],
                    id=f"overview-tile-{tile['key']}",
                    # A sentence in place of a number is set smaller than one.
                    className="bl-tile-value"
                    + (" bl-tile-value-note" if tile["raw"] is None else ""),
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
                *_spark(tile),
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
    args = args if isinstance(args, dict) else {}  # a crafted Store: no filters
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
        let body, now;
        try {
            const response = await fetch('/api/freshness', {cache: 'no-store'});
            if (!response.ok) { throw new Error('HTTP ' + response.status); }
            body = await response.json();
            // Ages by the server's clock: a screen's own clock may be wrong.
            now = Date.parse(response.headers.get('Date') || '');
        } catch (e) {
            const at = new Date().toLocaleTimeString('en-GB');
            return [nu, 'Server unreachable (' + at + '): showing the last data '
                + 'received; retrying.', shown];
        }
        if (isNaN(now)) { now = Date.now(); }
        const stale = [];
        for (const [name, s] of Object.entries(sources || {})) {
            if (!s.interval_minutes) { continue; }
            const last = s.last_success_at ? Date.parse(s.last_success_at) : NaN;
            if (isNaN(last)) {
                stale.push(name + ' (never loaded)');
            } else if (now - last > 2 * s.interval_minutes * 60000) {
                const when = new Date(last).toLocaleString('en-GB', {day: 'numeric',
                    month: 'short', hour: '2-digit', minute: '2-digit'});
                stale.push(name + ' (last loaded ' + when + ', expected every '
                    + s.interval_minutes + ' min)');
            }
        }
        const changed = body.run_id !== runId ? body.run_id : nu;
        if (stale.length) {
            return [changed, 'Stale data: ' + stale.join('; ') + ': not refreshed '
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
