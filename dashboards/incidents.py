"""Incidents: time to attend by grade, 999/101 answering, and the drill from the force
to one incident's timeline, all held in the URL."""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update

from dashboards import components, exports, figures
from geo import choropleth
from queries import crime, incidents, scope
from queries.calls import NOT_BY_AREA

dash.register_page(
    __name__,
    path="/incidents",
    name="Incidents",
    title="Incidents",
    order=3,
    id_prefix="incidents-",
    description="Incident management: attendance against target by grade, call "
    "answering, the open queue, and the drill-down to one incident.",
)

LEVEL_NAMES = {
    "force": "force",
    "lad": "local authority",
    "ward": "neighbourhood (ward)",
    "lsoa": "LSOA",
}
NOT_RECORDED = "not recorded by this source"
STEP_NAMES = {s: figures.STEP_LABELS[s].lower() for s in figures.STEP_LABELS}
# The steps a measure needs; a measure is "not recorded" where they are missing.
NEEDS = {
    "attend": ("arrived",),
    "answer": ("call_received", "call_answered"),
    "dispatch": ("dispatched",),
    "travel": ("dispatched", "arrived"),
    "regrade": ("graded",),
    "queue": ("closed",),
}
CELL_COLUMNS = [
    "source",
    "incident_id",
    "local_date",
    "final_grade",
    "opening_grade",
    "incident_type",
    "attend_min",
    "target_min",
    "within_target",
]
EXCEPTION_COLUMNS = [
    "source",
    "incident_id",
    "local_date",
    "final_grade",
    "attend_min",
    "target_min",
    "over_by_min",
]
OPEN_COLUMNS = [
    "source",
    "incident_id",
    "reference_at",
    "final_grade",
    "waiting_min",
    "target_min",
]
TIMELINE_COLUMNS = [
    "step",
    "at_local",
    "minutes_since_previous",
    "component",
    "component_min",
]
EXPORTS = list(exports.INCIDENT_CHARTS)
GRAPH_CONFIG = {"displaylogo": False}


def layout(**query_args):
    """The page for a URL: `?period=custom&from=2025-09-01&to=2025-09-30
    &source=cad&grade=1&level=lad&area=E08000025&cell=4-22&incident=cad:INC1`."""
    selection, problems = exports.parse_incident_selection(query_args)
    sources, message = [], None
    try:
        resolved = exports.resolve_incidents(selection, problems)
        selection = resolved.selection
        sources = resolved.sources["source"].tolist()
        figure = _map_figure(resolved)
    except components.NoData as exc:
        message = components.no_data_alert(exc)
        figure = figures.empty_figure(str(exc))
    return html.Div(
        [
            dcc.Location(
                id="incidents-url", refresh=False, search=selection.query_string()
            ),
            # The part of the URL the charts draw from (filters and area, not the
            # cell or incident): drilling to a cell or an incident leaves them be.
            dcc.Store(id="incidents-view", data=_view_of(selection.query_string())),
            html.H1("Incidents"),
            html.Div(message, id="incidents-message"),
            _filters(selection, sources),
            html.P(id="incidents-period-sentence", className="small text-muted mb-2"),
            html.Div(id="incidents-not-recorded"),
            html.Div(id="incidents-kpis", className="mb-3"),
            html.H2("Attendance by final grade", className="h5"),
            html.Div(id="incidents-grade-table", className="mb-1"),
            _export_links("grades", "calls", "regrade", "queue"),
            html.Nav(id="incidents-breadcrumb", className="my-2"),
            dbc.Row(
                [
                    dbc.Col(
                        [
                            html.H2("Map", className="h5"),
                            dcc.Dropdown(
                                id="incidents-area-picker",
                                placeholder="Drill into an area",
                                className="mb-2",
                            ),
                            dbc.RadioItems(
                                id="incidents-measure",
                                options=[
                                    {"label": v, "value": k}
                                    for k, v in exports.INCIDENT_MEASURES.items()
                                ],
                                value=selection.measure,
                                inline=True,
                                className="small",
                            ),
                            dcc.Graph(
                                id="incidents-map",
                                figure=figure,
                                config={**GRAPH_CONFIG, "scrollZoom": True},
                            ),
                            _export_links("areas"),
                        ],
                        xs=12,
                        lg=6,
                        className="mb-3",
                    ),
                    dbc.Col(
                        [
                            html.H2(
                                "Weekly share within target (p-chart)",
                                className="h5",
                            ),
                            dcc.Graph(id="incidents-trend", config=GRAPH_CONFIG),
                            _export_links("trend"),
                        ],
                        xs=12,
                        lg=6,
                        className="mb-3",
                    ),
                ]
            ),
            dbc.Row(
                [
                    dbc.Col(
                        [
                            html.H2("Hour of the week", className="h5"),
                            html.P(
                                "Click a cell to list its incidents.",
                                className="small text-muted mb-1",
                            ),
                            dcc.Graph(id="incidents-heatmap", config=GRAPH_CONFIG),
                            _export_links("hours"),
                        ],
                        xs=12,
                        lg=6,
                        className="mb-3",
                    ),
                    dbc.Col(
                        [
                            html.H2(
                                "Incidents in the cell",
                                id="incidents-cell-title",
                                className="h5",
                            ),
                            html.P(
                                "Click an incident to see its timeline.",
                                className="small text-muted mb-1",
                            ),
                            components.data_table(
                                "incidents-cell-table",
                                CELL_COLUMNS,
                                page_size=10,
                                page_action="native",
                            ),
                            _export_links("cell"),
                        ],
                        xs=12,
                        lg=6,
                        className="mb-3",
                    ),
                ]
            ),
            html.H2("Incident timeline", className="h5"),
            html.Div(id="incidents-timeline-summary"),
            dcc.Graph(id="incidents-timeline", config=GRAPH_CONFIG),
            components.data_table("incidents-timeline-table", TIMELINE_COLUMNS),
            _export_links("timeline"),
            dbc.Row(
                [
                    dbc.Col(
                        [
                            html.H2("Missed target", className="h5 mt-3"),
                            html.Div(
                                [
                                    dbc.Label(
                                        "by more than (min)",
                                        html_for="incidents-margin",
                                        className="small me-2",
                                    ),
                                    dcc.Input(
                                        id="incidents-margin",
                                        type="number",
                                        min=0,
                                        max=1440,
                                        step=1,
                                        value=selection.margin,
                                        debounce=True,
                                        style={"width": "6rem"},
                                    ),
                                ],
                                className="mb-1",
                            ),
                            components.data_table(
                                "incidents-exceptions-table",
                                EXCEPTION_COLUMNS,
                                page_size=10,
                                page_action="native",
                            ),
                            _export_links("exceptions"),
                        ],
                        xs=12,
                        lg=6,
                    ),
                    dbc.Col(
                        [
                            html.H2("Open past target", className="h5 mt-3"),
                            html.P(id="incidents-open-as-at", className="small mb-1"),
                            components.data_table(
                                "incidents-open-table",
                                OPEN_COLUMNS,
                                page_size=10,
                                page_action="native",
                            ),
                            _export_links("open"),
                        ],
                        xs=12,
                        lg=6,
                    ),
                ]
            ),
        ],
        className="bl-incidents",
    )


def _filters(selection: exports.IncidentSelection, sources: list[str]) -> dbc.Row:
    custom = selection.period == "custom"
    return dbc.Row(
        [
            dbc.Col(
                [
                    dbc.Label("Period", html_for="incidents-period"),
                    dcc.Dropdown(
                        id="incidents-period",
                        options=[
                            {"label": v, "value": k}
                            for k, v in exports.INCIDENT_PERIODS.items()
                        ],
                        value=selection.period,
                        clearable=False,
                    ),
                ],
                xs=12,
                md=3,
            ),
            dbc.Col(
                html.Div(
                    [
                        dbc.Label("Dates", html_for="incidents-dates"),
                        dcc.DatePickerRange(
                            id="incidents-dates",
                            start_date=selection.start,
                            end_date=selection.end,
                            display_format="YYYY-MM-DD",
                            first_day_of_week=1,
                        ),
                    ],
                    id="incidents-custom-range",
                    style=None if custom else {"display": "none"},
                ),
                xs=12,
                md=3,
            ),
            dbc.Col(
                [
                    dbc.Label("Source", html_for="incidents-source"),
                    dcc.Dropdown(
                        id="incidents-source",
                        options=sources,
                        value=selection.source,
                        placeholder="Every source",
                    ),
                ],
                xs=12,
                md=3,
            ),
            dbc.Col(
                [
                    dbc.Label("Final grades", html_for="incidents-grades"),
                    dcc.Dropdown(
                        id="incidents-grades",
                        options=["1", "2", "3", "4", "5"],
                        value=list(selection.grades),
                        multi=True,
                        placeholder="All grades",
                    ),
                ],
                xs=12,
                md=3,
            ),
        ],
        className="g-2 mb-2 bl-incidents-filters",
    )


def _export_links(*charts) -> html.Div:
    return components.export_links("incidents", charts, _export_href)


def _export_href(chart: str, search: str) -> str:
    return f"/export/incidents/{chart}.csv{search or ''}"


def _query(fn, *args):
    return components.cached_query(fn, *args)


def _resolved(search):
    try:
        return exports.resolve_incident_query_string(search)
    except components.NoData:
        return None


# ---------------------------------------------------------------------------
# Callbacks: the URL's query string is the page's one state.


@callback(
    Output("incidents-url", "search"),
    Output("incidents-map", "clickData"),
    Output("incidents-heatmap", "clickData"),
    Output("incidents-area-picker", "value"),
    Output("incidents-cell-table", "active_cell"),
    Output("incidents-custom-range", "style"),
    Input("incidents-period", "value"),
    Input("incidents-dates", "start_date"),
    Input("incidents-dates", "end_date"),
    Input("incidents-source", "value"),
    Input("incidents-grades", "value"),
    Input("incidents-measure", "value"),
    Input("incidents-margin", "value"),
    Input("incidents-area-picker", "value"),
    Input("incidents-map", "clickData"),
    Input("incidents-heatmap", "clickData"),
    Input("incidents-cell-table", "active_cell"),
    Input({"type": "incidents-crumb", "index": ALL}, "n_clicks"),
    State("incidents-url", "search"),
)
def update_url(
    period,
    start,
    end,
    source,
    grades,
    measure,
    margin,
    picked,
    map_click,
    cell_click,
    active_cell,
    _crumbs,
    search,
):
    """Filters, the map, the picker, the heat map, the incident list and the
    breadcrumb all write the URL; the charts below all read it."""
    current, _problems = exports.parse_incident_selection(exports.query_args(search))
    custom = period == "custom"
    new = current.replace(
        period=period or exports.INCIDENT_DEFAULT_PERIOD,
        start=_day(start) if custom else None,
        end=_day(end) if custom else None,
        source=source or None,
        # A multi-select sends a list; anything else (a crafted payload) is none.
        grades=tuple(str(g) for g in grades) if isinstance(grades, list) else (),
        measure=measure or "share",
        margin=_margin(margin, current.margin),
    )
    trigger = ctx.triggered_id
    if trigger == "incidents-map" and map_click:
        new = new.replace(
            level=new.map_level, area=_clicked(map_click), cell=None, incident=None
        )
    elif trigger == "incidents-area-picker" and picked:
        new = new.replace(level=new.map_level, area=picked, cell=None, incident=None)
    elif trigger == "incidents-heatmap" and cell_click:
        new = new.replace(cell=_clicked(cell_click), incident=None)
    elif trigger == "incidents-cell-table" and active_cell:
        if active_cell.get("row_id"):
            new = new.replace(incident=str(active_cell["row_id"]))
    elif isinstance(trigger, dict) and ctx.triggered[0]["value"]:
        new = _crumb_target(new, trigger["index"])
    # Always written, even unchanged: Dash skips the callbacks below one that
    # returns no_update, and the charts draw from it on the first load.
    return (
        new.query_string(),
        None,
        None,
        None,
        None,
        None if custom else {"display": "none"},
    )


def _view_of(search: str | None) -> str:
    selection, _problems = exports.parse_incident_selection(exports.query_args(search))
    return selection.replace(cell=None, incident=None).query_string()


@callback(
    Output("incidents-view", "data"),
    Input("incidents-url", "search"),
    State("incidents-view", "data"),
)
def update_view(search, current):
    view = _view_of(search)
    return no_update if view == current else view


def _day(value) -> str | None:
    return str(value)[:10] if value else None


def _margin(value, default: int) -> int:
    try:
        return min(max(int(value), 0), 24 * 60)
    except (TypeError, ValueError):
        return default


def _clicked(click_data) -> str:
    # A crafted click without customdata (the gate has checked the shape) selects
    # nothing.
    return str(click_data["points"][0].get("customdata") or "")


def _crumb_target(selection, index: str):
    kind, _sep, rest = index.partition(":")
    if kind == "cell":
        return selection.replace(incident=None)
    return selection.replace(level=kind, area=rest or None, cell=None, incident=None)


@callback(
    Output("incidents-message", "children"),
    Output("incidents-period-sentence", "children"),
    Output("incidents-not-recorded", "children"),
    Output("incidents-kpis", "children"),
    Output("incidents-grade-table", "children"),
    Input("incidents-url", "search"),
)
def show_kpis(search):
    # The open queue is as at now (or the period's end): the minute is in the key.
    return components.cached_output(_kpis, search, _this_minute())


def _this_minute():
    return components.utcnow().replace(second=0, microsecond=0)


def _figure(figure) -> dict:
    """A figure as the plain dict Dash would send: cached, it is served as is."""
    return figure.to_plotly_json() if hasattr(figure, "to_plotly_json") else figure


# A callback's independent queries run at once, each on its own connection: the
# warehouse works on them in parallel (DuckDB and psycopg release the GIL).
_BACKGROUND = ThreadPoolExecutor(max_workers=4, thread_name_prefix="incidents")


def _started(fn, *args):
    """fn(*args) begun on another thread in a copy of this request's context (the
    app, the request, the user's area scope); `.result()` waits for it."""
    return _BACKGROUND.submit(contextvars.copy_context().run, fn, *args)


def _kpis(search, _minute):
    try:
        resolved = exports.resolve_incident_query_string(search)
        # Call answering reads another table: it runs while the incidents are read.
        calls_read = _started(exports.incident_frame, "calls", resolved)
        grades = exports.incident_frame("grades", resolved)
        regrade = exports.incident_frame("regrade", resolved).iloc[0].to_dict()
        queue = exports.incident_frame("queue", resolved)
        missing = _missing_steps(resolved)
        calls = calls_read.result()
    except components.NoData as exc:
        return components.no_data_alert(exc), "", None, None, None
    message = [
        dbc.Alert(p, color="warning", className="py-2") for p in resolved.problems
    ]
    gaps = missing_measures(missing["all"])
    return (
        message or None,
        resolved.sentence,
        _not_recorded_statement(missing, resolved),
        _kpi_cards(grades, calls, regrade, queue, gaps, resolved),
        _grade_table(grades, gaps),
    )


@callback(
    Output("incidents-breadcrumb", "children"),
    Output("incidents-area-picker", "options"),
    Output("incidents-area-picker", "placeholder"),
    Input("incidents-url", "search"),
)
def show_area(search):
    return components.cached_output(_area, search)


def _area(search):
    resolved = _resolved(search)
    if resolved is None:
        return None, [], "No data"
    crumbs = _breadcrumb(resolved)
    selection = resolved.selection
    if selection.area is not None and crime.CHILD_LEVEL[selection.level] is None:
        return crumbs, [], "Lowest level: no smaller areas"
    options = exports.incident_frame("areas", resolved)
    picker = [
        {"label": name, "value": code}
        for code, name in zip(options["area_code"], options["area_name"], strict=True)
    ]
    if not picker:
        return crumbs, [], "No incidents placed in areas for this selection"
    return crumbs, picker, f"Drill into a {LEVEL_NAMES[resolved.map_level]}"


@callback(Output("incidents-map", "figure"), Input("incidents-view", "data"))
def show_map(search):
    return components.cached_output(_map, search)


def _map(search):
    resolved = _resolved(search)
    if resolved is None:
        return no_update
    url, layer = exports.incident_boundary(resolved)
    frame = exports.incident_frame("areas", resolved)
    values = figures.incidents_map_values(frame, resolved.selection.measure)
    fitted = choropleth.view(layer.bounds_of(frame["area_code"]))
    # Only values travel: the polygons stay in the browser's copy of the file.
    patch = dash.Patch()
    trace = patch["data"][0]
    trace["geojson"] = url
    for name in ("locations", "z", "customdata", "hovertext", "zmin", "zmax"):
        trace[name] = values[name]
    trace["colorscale"] = values["colorscale"]
    trace["colorbar"]["title"]["text"] = values["colorbar_title"]
    patch["layout"]["map"]["center"] = fitted["center"]
    patch["layout"]["map"]["zoom"] = fitted["zoom"]
    patch["layout"]["map"]["uirevision"] = _view_key(resolved)
    patch["data"][1] = _suppressed(url, frame, resolved).to_plotly_json()
    return patch


def _suppressed(url, frame, resolved):
    """The grey layer of areas whose figure disclosure control blanked (empty when
    nothing was); above the coloured trace, as on the crime map."""
    measure = resolved.selection.measure
    label = figures.incidents_map_values(frame, measure)["colorbar_title"]
    column = figures.INCIDENT_MAP_COLUMNS[measure]
    return figures.suppressed_layer(url, frame, column, label)


def _map_figure(resolved):
    url, layer = exports.incident_boundary(resolved)
    frame = exports.incident_frame("areas", resolved)
    figure = figures.incidents_map(
        url,
        frame,
        resolved.selection.measure,
        choropleth.view(layer.bounds_of(frame["area_code"])),
        key=_view_key(resolved),
    )
    figure.add_trace(_suppressed(url, frame, resolved))
    return figure


def _view_key(resolved) -> str:
    return f"{resolved.selection.level}:{resolved.selection.area or ''}"


@callback(Output("incidents-trend", "figure"), Input("incidents-view", "data"))
def show_trend(search):
    return components.cached_output(_trend, search)


def _trend(search):
    resolved = _resolved(search)
    if resolved is None:
        return _figure(figures.empty_figure(components.NO_DATA_MESSAGE))
    return _figure(figures.incidents_trend(exports.incident_frame("trend", resolved)))


@callback(Output("incidents-heatmap", "figure"), Input("incidents-view", "data"))
def show_heatmap(search):
    return components.cached_output(_heatmap, search)


def _heatmap(search):
    resolved = _resolved(search)
    if resolved is None:
        return _figure(figures.empty_figure(components.NO_DATA_MESSAGE))
    return _figure(figures.incidents_heatmap(exports.incident_frame("hours", resolved)))


@callback(
    Output("incidents-cell-title", "children"),
    Output("incidents-cell-table", "data"),
    Input("incidents-url", "search"),
)
def show_cell(search):
    return components.cached_output(_cell, search)


def _cell(search):
    resolved = _resolved(search)
    if resolved is None or resolved.selection.dow_hour is None:
        return "Incidents in the cell: choose a cell in the heat map", []
    dow, hour = resolved.selection.dow_hour
    frame = exports.incident_frame("cell", resolved)
    title = (
        f"Incidents on {figures.DAYS[dow]} {hour:02d}:00-{hour:02d}:59 "
        f"({len(frame):,}{' shown, newest first' if len(frame) >= 500 else ''})"
    )
    records = _records(frame, CELL_COLUMNS)
    for record, source, incident_id in zip(
        records, frame["source"], frame["incident_id"], strict=True
    ):
        record["id"] = f"{source}:{incident_id}"
    return title, records


@callback(
    Output("incidents-timeline-summary", "children"),
    Output("incidents-timeline", "figure"),
    Output("incidents-timeline-table", "data"),
    Input("incidents-url", "search"),
)
def show_timeline(search):
    return components.cached_output(_timeline, search)


def _timeline(search):
    resolved = _resolved(search)
    if resolved is None or resolved.selection.incident_key is None:
        return (
            html.P("Choose an incident in the list.", className="small text-muted"),
            _figure(figures.empty_figure("No incident chosen")),
            [],
        )
    detail = _query(incidents.incident_detail, *resolved.selection.incident_key)
    frame = exports.incident_frame("timeline", resolved)
    missing = set(_query(incidents.not_recorded, detail["source"]))
    return (
        _timeline_summary(detail, missing),
        _figure(
            figures.incidents_timeline(
                frame.dropna(subset=["at_local"]), detail.get("target_min")
            )
        ),
        _records(frame, TIMELINE_COLUMNS),
    )


@callback(
    Output("incidents-exceptions-table", "data"),
    Output("incidents-open-table", "data"),
    Output("incidents-open-as-at", "children"),
    Input("incidents-url", "search"),
)
def show_exceptions(search):
    # The open list is as at now (or the period's end): the minute is in the key.
    return components.cached_output(_exceptions, search, _this_minute())


def _exceptions(search, _minute):
    resolved = _resolved(search)
    if resolved is None:
        return [], [], ""
    breached = exports.incident_frame("exceptions", resolved)
    still_open = exports.incident_frame("open", resolved)
    as_at = f"As at {components.format_time(resolved.as_at)}, newest first."
    return (
        _records(breached, EXCEPTION_COLUMNS),
        _records(still_open, OPEN_COLUMNS),
        as_at,
    )


@callback(
    [Output(f"incidents-export-{c}", "href") for c in EXPORTS],
    Input("incidents-url", "search"),
)
def show_export_links(search):
    return [_export_href(c, search) for c in EXPORTS]


# ---------------------------------------------------------------------------
# Pieces


def _missing_steps(resolved) -> dict:
    """Steps each source in view does not record; "all": those no source records."""
    source = resolved.filters.source
    names = [source] if source else resolved.sources["source"].tolist()
    per_source = {s: list(_query(incidents.not_recorded, s)) for s in names}
    common = set(incidents.STEPS)
    for steps in per_source.values():
        common &= set(steps)
    return {"per_source": per_source, "all": common if per_source else set()}


def missing_measures(missing: set[str]) -> set[str]:
    """The measures that cannot be computed without the missing steps."""
    gaps = {m for m, steps in NEEDS.items() if set(steps) & missing}
    if {"call_received", "incident_created"} <= missing:
        gaps.add("attend")
    return gaps


def _not_recorded_statement(missing: dict, resolved):
    forces = dict(
        zip(resolved.sources["source"], resolved.sources["force_name"], strict=True)
    )
    lines = []
    for source, steps in missing["per_source"].items():
        if not steps:
            continue
        gaps = sorted(missing_measures(set(steps)))
        lines.append(
            html.Li(
                [
                    html.Strong(f"{forces.get(source) or source} ({source})"),
                    " does not record: "
                    + ", ".join(STEP_NAMES.get(s, s) for s in steps)
                    + ". Its incidents count in the volumes; "
                    + (
                        "measures it cannot support ("
                        + ", ".join(MEASURE_NAMES[g] for g in gaps)
                        + ") are "
                        + NOT_RECORDED
                        + ", never shown as zero."
                        if gaps
                        else "every measure here is supported."
                    ),
                ]
            )
        )
    if not lines:
        return None
    return dbc.Alert(
        html.Ul(lines, className="mb-0"),
        color="secondary",
        className="py-2 small",
        id="incidents-not-recorded-list",
    )


MEASURE_NAMES = {
    "attend": "time to attend and share within target",
    "answer": "time to answer",
    "dispatch": "time to dispatch",
    "travel": "travel time",
    "regrade": "re-grade rate",
    "queue": "open queue",
}


def _minutes(value, measure: str, gaps: set[str]) -> str:
    if value is None or pd.isna(value):
        return NOT_RECORDED if measure in gaps else "none in this period"
    return f"{float(value):.1f} min"


def _seconds(value, measure: str, gaps: set[str]) -> str:
    if value is None or pd.isna(value):
        return NOT_RECORDED if measure in gaps else "none in this period"
    return f"{float(value):.0f} s"


def _share(value, measure: str, gaps: set[str]) -> str:
    if value is None or pd.isna(value):
        return NOT_RECORDED if measure in gaps else "none in this period"
    return f"{float(value):.1%}"


def _raw(value) -> str:
    return "" if value is None or pd.isna(value) else str(value)


def _grade_row(grades: pd.DataFrame, grade: str) -> dict | None:
    rows = grades[grades["final_grade"].astype(str) == grade]
    return None if rows.empty else rows.iloc[0].to_dict()


def _line_row(calls: pd.DataFrame, line: str) -> dict | None:
    rows = calls[calls["line"].astype(str) == line]
    if rows.empty or not int(rows.iloc[0]["offered"]):
        return None
    return rows.iloc[0].to_dict()


def _kpi_cards(grades, calls, regrade, queue, gaps, resolved) -> dbc.Row:
    total = int(pd.to_numeric(grades["incidents"]).sum()) if len(grades) else 0
    g1 = _grade_row(grades, "1") or {}
    g1_gaps = gaps | ({"attend"} if not g1 and "regrade" in gaps else set())
    share = g1.get("share_within_target")
    last = g1.get("share_within_target_last_year")
    z = g1.get("z")
    line_999 = _line_row(calls, "999")
    line_101 = _line_row(calls, "101")
    open_total = int(pd.to_numeric(queue["open_incidents"]).sum()) if len(queue) else 0
    cards = [
        _card(
            "incidents",
            "Incidents",
            f"{total:,}",
            total,
            ["All grades in the period and area, every source in view"],
            "Incidents by their local date; volumes are shown for every source, "
            "whatever steps it records.",
        ),
        _card(
            "g1-share",
            "Grade 1 attended within target",
            _share(share, "attend", g1_gaps),
            share,
            [
                f"{int(g1.get('within_target') or 0):,} of "
                f"{int(g1.get('with_target') or 0):,} attended with a target. "
                if g1
                else "",
                *(
                    ["No attended Grade 1 incidents a year earlier to compare."]
                    if last is None or pd.isna(last)
                    else [
                        f"Last year: {float(last):.1%} ",
                        _significance_badge(g1.get("significance"), z),
                    ]
                ),
            ],
            exports.INCIDENT_DEFINITIONS["share_within_target"]
            + ". Target: "
            + exports.INCIDENT_DEFINITIONS["target_min"]
            + ".",
        ),
        _card(
            "g1-median",
            "Grade 1 median time to attend",
            _minutes(g1.get("median_attend_min"), "attend", g1_gaps),
            g1.get("median_attend_min"),
            [
                "90th percentile: "
                + _minutes(g1.get("p90_attend_min"), "attend", g1_gaps)
            ],
            exports.INCIDENT_DEFINITIONS["attend_min"] + ", on the final grade.",
        ),
        _calls_999_card(line_999),
        _calls_101_card(line_101),
        _card(
            "regrade",
            "Re-graded",
            _share(regrade.get("share"), "regrade", gaps),
            regrade.get("share"),
            ["Needs opening and final grades"]
            if "regrade" in gaps
            else [
                f"{int(regrade.get('regraded') or 0):,} of "
                f"{int(regrade.get('incidents_with_both_grades') or 0):,} with both "
                f"grades; up {int(regrade.get('upgraded') or 0):,}, down "
                f"{int(regrade.get('downgraded') or 0):,}"
            ],
            "Incidents whose final grade differs from the opening grade, of those "
            "with both recorded.",
        ),
        _card(
            "queue",
            "Open queue",
            NOT_RECORDED if "queue" in gaps else f"{open_total:,}",
            None if "queue" in gaps else open_total,
            [
                html.Div(
                    f"Grade {g}: {int(n):,} open, oldest " + _minutes(w, "queue", gaps),
                    className="small",
                )
                for g, n, w in zip(
                    queue.get("final_grade", []),
                    queue.get("open_incidents", []),
                    queue.get("oldest_wait_min", []),
                    strict=True,
                )
            ]
            or ["None open"],
            f"Incidents not closed as at {components.format_time(resolved.as_at)} "
            "(the period's end, or now), by grade, with the longest wait.",
        ),
    ]
    return dbc.Row(
        [dbc.Col(c, xs=12, sm=6, lg=3, className="mb-2") for c in cards],
        className="g-2",
    )


def _calls_999_card(row) -> dbc.Card:
    definition = exports.INCIDENT_DEFINITIONS["share_within_10"] + "."
    if scope.restricted():  # calls carry no location: say so, not "no call data"
        return _card(
            "999", "999 answered within 10 s", NOT_BY_AREA, None, [], definition, True
        )
    if row is None:
        return _card(
            "999",
            "999 answered within 10 s",
            "no call data",
            None,
            ["No 999 call-answering data for this source and period"],
            definition,
        )
    answered = row.get("answered") or 0

    def band(n):
        return f"{int(n):,} ({n / answered:.1%})" if answered else f"{int(n):,}"

    return _card(
        "999",
        "999 answered within 10 s",
        _share(row.get("share_within_10"), "", set()),
        row.get("share_within_10"),
        [
            html.Div(f"Under 10 s: {band(row['within_10'])}", className="small"),
            html.Div(f"10-60 s: {band(row['band_10_60'])}", className="small"),
            html.Div(f"60 s and over: {band(row['band_60_plus'])}", className="small"),
            html.Div(
                "BT connection leg (apart): "
                + (
                    "not recorded by this source"
                    if pd.isna(row.get("mean_bt_s"))
                    else f"mean {float(row['mean_bt_s']):.1f} s"
                ),
                className="small",
                id="incidents-kpi-999-bt",
            ),
        ],
        definition,
    )


def _calls_101_card(row) -> dbc.Card:
    definition = (
        exports.INCIDENT_DEFINITIONS["mean_answer_s"]
        + "; abandonment: "
        + exports.INCIDENT_DEFINITIONS["abandoned_share"]
        + "."
    )
    if scope.restricted():  # calls carry no location: say so, not "no call data"
        return _card(
            "101", "101 mean wait to answer", NOT_BY_AREA, None, [], definition, True
        )
    if row is None:
        return _card(
            "101",
            "101 mean wait to answer",
            "no call data",
            None,
            ["No 101 call-answering data for this source and period"],
            definition,
        )
    wait = row.get("mean_answer_s")
    return _card(
        "101",
        "101 mean wait to answer",
        "not recorded by this source" if pd.isna(wait) else f"{float(wait):.0f} s",
        wait,
        [
            f"Abandoned: {int(row['abandoned']):,} of {int(row['offered']):,} "
            f"offered ({_share(row.get('abandoned_share'), '', set())})"
        ],
        definition,
    )


def _card(name, title, shown, raw, detail, definition, sentence=False) -> dbc.Card:
    """A KPI card; `sentence`: the value is a sentence, shown in body-size text."""
    return dbc.Card(
        dbc.CardBody(
            [
                html.Div(title, className="small text-muted"),
                html.Div(
                    shown,
                    id=f"incidents-kpi-{name}",
                    className="fw-semibold" if sentence else "fs-4 fw-bold",
                    **{"data-value": _raw(raw)},
                ),
                html.Div(detail, className="small"),
                html.Details(
                    [html.Summary("Definition"), html.P(definition, className="mb-0")],
                    className="small mt-1",
                ),
            ]
        ),
        className="h-100",
    )


def _significance_badge(label, z) -> dbc.Badge | str:
    if label is None or z is None or pd.isna(z):
        return ""
    colour = "secondary"
    if label == "signal":
        # A rise in the share within target is good news: green.
        colour = "success" if z > 0 else "danger"
    return dbc.Badge(f"{label} (z {float(z):+.1f})", color=colour, className="bl-sig")


def _grade_table(grades: pd.DataFrame, gaps: set[str]):
    if grades.empty:
        return html.P("No incidents in this period.", className="small")
    header = [
        "Grade",
        "Incidents",
        "Attended",
        "Within target",
        "Last year",
        "Median to attend",
        "90th percentile",
        "Answer (median)",
        "Dispatch (median)",
        "Travel (median)",
        "Target urban / rural",
    ]
    rows = []
    for row in grades.to_dict("records"):
        grade = row.get("final_grade")
        label = (
            f"{grade} {row.get('label') or ''}".strip()
            if grade is not None and not pd.isna(grade)
            else "Ungraded"
        )
        rows.append(
            html.Tr(
                [
                    html.Td(label),
                    html.Td(f"{int(row['incidents']):,}"),
                    html.Td(
                        NOT_RECORDED
                        if "attend" in gaps
                        else f"{int(row['attended']):,}"
                    ),
                    html.Td(
                        [
                            _share(row.get("share_within_target"), "attend", gaps),
                            " ",
                            _significance_badge(row.get("significance"), row.get("z"))
                            if pd.notna(row.get("share_within_target_last_year"))
                            else "",
                        ]
                    ),
                    html.Td(
                        _share(row.get("share_within_target_last_year"), "attend", gaps)
                    ),
                    html.Td(_minutes(row.get("median_attend_min"), "attend", gaps)),
                    html.Td(_minutes(row.get("p90_attend_min"), "attend", gaps)),
                    html.Td(_seconds(row.get("median_answer_s"), "answer", gaps)),
                    html.Td(_seconds(row.get("median_dispatch_s"), "dispatch", gaps)),
                    html.Td(_seconds(row.get("median_travel_s"), "travel", gaps)),
                    html.Td(
                        _target(row.get("target_urban_minutes"))
                        + " / "
                        + _target(row.get("target_rural_minutes"))
                    ),
                ]
            )
        )
    return html.Div(
        html.Table(
            [html.Thead(html.Tr([html.Th(h) for h in header])), html.Tbody(rows)],
            className="table table-sm small",
            id="incidents-grade-rows",
        ),
        style={"overflowX": "auto"},
    )


def _target(value) -> str:
    return "no target" if value is None or pd.isna(value) else f"{float(value):g} min"


def _records(frame: pd.DataFrame, columns: list[str]) -> list[dict]:
    """Rows for a table: minutes to 1 dp, times as recorded (local for `at_local`,
    UTC for `reference_at`), and a missing step said, not left as a blank."""
    shown = frame.reindex(columns=columns).copy()
    for column in shown.columns:
        if column.endswith("_min") or column == "minutes_since_previous":
            shown[column] = pd.to_numeric(shown[column]).astype("float64").round(1)
    if "local_date" in shown:
        shown["local_date"] = shown["local_date"].astype(str)
    for column, fmt in [
        ("at_local", "%Y-%m-%d %H:%M:%S"),
        ("reference_at", "%Y-%m-%d %H:%M UTC"),
    ]:
        if column in shown:
            shown[column] = [
                "not recorded" if pd.isna(t) else pd.Timestamp(t).strftime(fmt)
                for t in shown[column]
            ]
    records = components.table_records(shown)
    for record in records:
        if "attend_min" in record and record["attend_min"] is None:
            record["attend_min"] = "no arrival"
    return records


def _timeline_summary(detail: dict, missing: set[str]):
    target = detail.get("target_min")
    attend = detail.get("attend_seconds")
    if attend is None or pd.isna(attend):
        verdict = (
            "time to attend " + NOT_RECORDED
            if "attend" in missing_measures(missing)
            else "not attended"
        )
    elif target is None or pd.isna(target):
        verdict = f"attended in {attend / 60:.1f} min (this grade has no target)"
    else:
        within = attend / 60 <= float(target)
        verdict = (
            f"attended in {attend / 60:.1f} min against a "
            f"{float(target):g}-min target: "
            + ("within target" if within else f"missed by {attend / 60 - target:.1f}")
        )
    components_rows = []
    for name, column in [
        ("Answer", "answer_seconds"),
        ("Dispatch", "dispatch_seconds"),
        ("Travel", "travel_seconds"),
    ]:
        value = detail.get(column)
        if value is None or pd.isna(value):
            text = NOT_RECORDED if name.lower() in missing_measures(missing) else "-"
        elif target is None or pd.isna(target):
            text = f"{value / 60:.1f} min"
        else:
            text = f"{value / 60:.1f} min ({value / 60 / float(target):.0%} of target)"
        components_rows.append(html.Li(f"{name}: {text}"))
    grade = detail.get("final_grade")
    opening = detail.get("opening_grade")
    regraded = (
        f" (opened as Grade {opening})"
        if opening is not None and not pd.isna(opening) and opening != grade
        else ""
    )
    return html.Div(
        [
            html.P(
                [
                    html.Strong(f"{detail['source']}:{detail['incident_id']}"),
                    f" Grade {grade or 'not recorded'}{regraded}, "
                    f"{detail.get('urban_rural') or 'location class unknown'}, "
                    f"{detail.get('incident_type') or 'type not recorded'}: {verdict}.",
                ],
                className="mb-1",
                id="incidents-timeline-verdict",
            ),
            html.Ul(components_rows, className="small mb-1"),
        ]
    )


def _breadcrumb(resolved) -> list:
    crumbs = [("force:", "All forces")] + [
        (f"{p['level']}:{p['area_code']}", p["area_name"]) for p in resolved.path
    ]
    selection = resolved.selection
    if selection.dow_hour is not None:
        dow, hour = selection.dow_hour
        crumbs.append((f"cell:{selection.cell}", f"{figures.DAYS[dow]} {hour:02d}:00"))
    if selection.incident:
        crumbs.append(("incident:", f"Incident {selection.incident}"))
    items = []
    for n, (index, name) in enumerate(crumbs):
        if n:
            items.append(html.Span(" › ", className="text-muted"))
        if n == len(crumbs) - 1:
            items.append(html.Strong(name, className="bl-crumb-current"))
        else:
            items.append(
                dbc.Button(
                    name,
                    id={"type": "incidents-crumb", "index": index},
                    color="link",
                    size="sm",
                    className="p-0 align-baseline",
                )
            )
    return items
