"""Crime: KPIs, a drill-down map, the monthly trend and breakdowns, all in the URL."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update

from dashboards import components, disclosure, exports, figures
from geo import choropleth
from queries import crime

dash.register_page(
    __name__,
    path="/crime",
    name="Crime",
    title="Crime",
    order=2,
    id_prefix="crime-",
    description="Recorded crime by type and area: KPIs, map, trend and exports.",
)

PERIODS = {
    "last-28-days": "Last 28 days",
    "last-month": "Last month",
    "rolling-12": "Rolling 12 months",
    "fytd": "Financial year to date",
    "custom": "Custom months",
}
MEASURES = {"count": "Count", "rate": "Rate per 1,000", "harm": "Harm"}
LEVEL_NAMES = {
    "force": "force",
    "lad": "local authority",
    "ward": "neighbourhood (ward)",
    "lsoa": "LSOA",
}
RANKING_COLUMNS = [
    "area_name",
    "crimes",
    "rate_per_1000",
    "crimes_last_year",
    "z",
    "significance",
]
SIGNAL_STYLE = [
    {
        "if": {"filter_query": "{significance} = signal && {z} > 0"},
        "color": figures.RISE,
        "fontWeight": "bold",
    },
    {
        "if": {"filter_query": "{significance} = signal && {z} < 0"},
        "color": figures.FALL,
        "fontWeight": "bold",
    },
]
GRAPH_CONFIG = {"displaylogo": False}


def layout(**query_args):
    """The page for a URL: `?period=custom&from=2022-01&to=2022-06&type=Robbery
    &level=lad&area=E06000016&measure=rate` (every part optional)."""
    selection, problems = exports.parse_selection(query_args)
    try:
        resolved = exports.resolve(selection, problems)
        months = [m.strftime("%Y-%m") for m in _query(crime.months_available)["month"]]
        tree = _query(crime.crime_type_tree)
        url, layer = exports.layer_for(resolved)
        frame = exports.chart_frame("areas", resolved)
        figure = _map_figure(
            url,
            frame,
            resolved.selection.measure,
            layer.bounds_of(frame["area_code"]),
            key=resolved.selection.query_string(),
        )
        message, selection = None, resolved.selection
    except components.NoData as exc:
        months, tree, message = [], None, components.no_data_alert(exc)
        figure = figures.empty_figure(str(exc))
    return html.Div(
        [
            dcc.Location(
                id="crime-url", refresh=False, search=selection.query_string()
            ),
            html.H1("Crime"),
            html.Div(message, id="crime-message"),
            _filters(selection, months, tree),
            html.P(id="crime-period-sentence", className="small text-muted mb-2"),
            # Shown only in kiosk mode (assets/wall.css), where the filters are not.
            html.P(id="crime-kiosk-caption", className="bl-kiosk-caption mb-2"),
            html.Div(id="crime-kpis", className="mb-3"),
            dbc.Row(
                [
                    dbc.Col(
                        [
                            html.H2("Map", className="h5"),
                            html.Nav(id="crime-breadcrumb", className="mb-2"),
                            dcc.Dropdown(
                                id="crime-area-picker",
                                placeholder="Drill into an area",
                                className="mb-2 bl-crime-picker",
                            ),
                            dcc.Graph(
                                id="crime-map",
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
                            html.H2("Monthly trend (c-chart)", className="h5"),
                            dcc.Graph(id="crime-trend", config=GRAPH_CONFIG),
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
                            html.H2("By crime type", className="h5"),
                            html.P(
                                "Click a bar to show only that crime type.",
                                className="small text-muted mb-1",
                            ),
                            dcc.Graph(id="crime-type-bar", config=GRAPH_CONFIG),
                            _export_links("types"),
                        ],
                        xs=12,
                        lg=6,
                        className="mb-3",
                    ),
                    dbc.Col(
                        [
                            html.H2("By outcome group", className="h5"),
                            dcc.Graph(id="crime-outcome-bar", config=GRAPH_CONFIG),
                            _export_links("outcomes"),
                        ],
                        xs=12,
                        lg=6,
                        className="mb-3",
                    ),
                ]
            ),
            html.H2("Areas ranked by rate per 1,000 residents", className="h5"),
            components.data_table(
                "crime-ranking-table",
                RANKING_COLUMNS,
                page_size=10,
                page_action="native",
                sort_action="native",
                style_data_conditional=SIGNAL_STYLE,
            ),
            _export_links("kpis", "points", "hotspots"),
        ],
        className="bl-crime",
    )


def _query(fn, *args):
    return components.cached_query(fn, *args)


def _filters(selection: exports.Selection, months: list[str], tree) -> dbc.Row:
    types = []
    if tree is not None:
        types = [
            {
                "label": f"{row.crime_type} ({row.category_group})",
                "value": row.crime_type,
            }
            for row in tree.itertuples()
        ]
    custom = selection.period == "custom"
    return dbc.Row(
        [
            dbc.Col(
                [
                    dbc.Label("Period", html_for="crime-period"),
                    dcc.Dropdown(
                        id="crime-period",
                        options=[{"label": v, "value": k} for k, v in PERIODS.items()],
                        value=selection.period,
                        clearable=False,
                    ),
                ],
                xs=12,
                md=3,
            ),
            dbc.Col(
                html.Div(
                    dbc.Row(
                        [
                            dbc.Col(
                                _month_picker(
                                    "crime-from", "From", months, selection.start
                                ),
                                xs=6,
                            ),
                            dbc.Col(
                                _month_picker("crime-to", "To", months, selection.end),
                                xs=6,
                            ),
                        ],
                        className="g-1",
                    ),
                    id="crime-custom-range",
                    style=None if custom else {"display": "none"},
                ),
                xs=12,
                md=3,
            ),
            dbc.Col(
                [
                    dbc.Label("Crime types", html_for="crime-types"),
                    dcc.Dropdown(
                        id="crime-types",
                        options=types,
                        value=list(selection.types),
                        multi=True,
                        placeholder="All recorded crime types",
                    ),
                ],
                xs=12,
                md=4,
            ),
            dbc.Col(
                [
                    dbc.Label("Measure"),
                    dbc.RadioItems(
                        id="crime-measure",
                        options=[{"label": v, "value": k} for k, v in MEASURES.items()],
                        value=selection.measure,
                        inline=True,
                    ),
                ],
                xs=12,
                md=2,
            ),
        ],
        className="g-2 mb-2 bl-crime-filters",
    )


def _month_picker(component_id, label, months, value) -> html.Div:
    return html.Div(
        [
            dbc.Label(label, html_for=component_id),
            dcc.Dropdown(
                id=component_id,
                options=months,
                value=value if value in months else None,
                placeholder="YYYY-MM",
            ),
        ]
    )


def _export_links(*charts) -> html.Div:
    return components.export_links(
        "crime", charts, _export_href, labels={"hotspots": "Hot-spot map (HTML)"}
    )


def _export_href(chart: str, search: str) -> str:
    suffix = "html" if chart == "hotspots" else "csv"
    return f"/export/crime/{chart}.{suffix}{search or ''}"


# ---------------------------------------------------------------------------
# Callbacks: the URL's query string is the page's one state.


@callback(
    Output("crime-url", "search"),
    Output("crime-types", "value"),
    Output("crime-map", "clickData"),
    Output("crime-type-bar", "clickData"),
    Output("crime-area-picker", "value"),
    Output("crime-custom-range", "style"),
    Input("crime-period", "value"),
    Input("crime-from", "value"),
    Input("crime-to", "value"),
    Input("crime-types", "value"),
    Input("crime-measure", "value"),
    Input("crime-area-picker", "value"),
    Input("crime-map", "clickData"),
    Input("crime-type-bar", "clickData"),
    Input({"type": "crime-crumb", "index": ALL}, "n_clicks"),
    State("crime-url", "search"),
)
def update_url(
    period, start, end, types, measure, picked, map_click, bar_click, _, search
):
    """Filters, map clicks, the picker and the breadcrumb all write the URL."""
    current, _problems = exports.parse_selection(exports.query_args(search))
    custom = period == "custom"
    new = current.replace(
        period=period or exports.DEFAULT_PERIOD,
        start=start if custom else None,
        end=end if custom else None,
        # A multi-select sends a list; anything else (a crafted payload) is none.
        types=tuple(types) if isinstance(types, list) else (),
        measure=measure or "count",
    )
    trigger = ctx.triggered_id
    if trigger == "crime-map" and map_click:
        new = new.replace(level=new.map_level, area=_clicked(map_click))
    elif trigger == "crime-area-picker" and picked:
        new = new.replace(level=new.map_level, area=picked)
    elif trigger == "crime-type-bar" and bar_click:
        new = new.replace(types=(_clicked(bar_click),))
    elif isinstance(trigger, dict) and ctx.triggered[0]["value"]:
        level, _sep, code = trigger["index"].partition(":")
        new = new.replace(level=level, area=code or None)
    # Always written, even unchanged: Dash skips the charts below a callback that
    # returns no_update, and they draw from it on the first load.
    return (
        new.query_string(),
        list(new.types),
        None,
        None,
        None,
        None if custom else {"display": "none"},
    )


def _clicked(click_data) -> str:
    # The map's and the bar's points carry their code in customdata; a crafted
    # click without one (the gate has checked the shape) selects nothing.
    return str(click_data["points"][0].get("customdata") or "")


def _resolved(search):
    try:
        return exports.resolve_query_string(search)
    except components.NoData:
        return None


@callback(
    Output("crime-message", "children"),
    Output("crime-period-sentence", "children"),
    Output("crime-kpis", "children"),
    Input("crime-url", "search"),
)
def show_kpis(search):
    try:
        resolved = exports.resolve_query_string(search)
        values = _query(crime.kpis, resolved.filters)
        outcomes = _query(crime.outcome_groups, resolved.filters)
    except components.NoData as exc:
        return components.no_data_alert(exc), "", None
    message = [
        dbc.Alert(p, color="warning", className="py-2") for p in resolved.problems
    ]
    return message or None, resolved.sentence, _kpi_cards(values, outcomes)


@callback(Output("crime-kiosk-caption", "children"), Input("crime-url", "search"))
def show_kiosk_caption(search):
    """In words, what the hidden filters chose: a wall screen has no controls."""
    resolved = _resolved(search)
    return "" if resolved is None else kiosk_caption(resolved)


def kiosk_caption(resolved: exports.Resolved) -> str:
    area = " › ".join(p["area_name"] for p in resolved.path) or "All forces"
    types = ", ".join(resolved.selection.types) or "all crime types"
    measure = MEASURES[resolved.selection.measure].lower()
    return f"Area: {area}. Crime types: {types}. The map shows: {measure}."


@callback(
    Output("crime-breadcrumb", "children"),
    Output("crime-area-picker", "options"),
    Output("crime-area-picker", "placeholder"),
    Input("crime-url", "search"),
)
def show_area(search):
    resolved = _resolved(search)
    if resolved is None:
        return None, [], "No data"
    child = crime.CHILD_LEVEL.get(resolved.selection.level)
    if resolved.selection.area is not None and child is None:
        return _breadcrumb(resolved.path), [], "Lowest level: no smaller areas"
    options = _query(crime.area_options, resolved.map_level, resolved.selection.area)
    picker = [
        {"label": name, "value": code}
        for code, name in zip(options["area_code"], options["area_name"], strict=True)
    ]
    return (
        _breadcrumb(resolved.path),
        picker,
        f"Drill into a {LEVEL_NAMES[resolved.map_level]}",
    )


@callback(Output("crime-map", "figure"), Input("crime-url", "search"))
def show_map(search):
    resolved = _resolved(search)
    if resolved is None:
        return no_update
    url, layer = exports.layer_for(resolved)
    frame = exports.chart_frame("areas", resolved)
    bounds = layer.bounds_of(frame["area_code"])
    measure = resolved.selection.measure
    coloured, grey = _map_layers(url, frame, measure)
    patch = choropleth.choropleth_patch(
        url, coloured, measure, bounds, key=_view_key(resolved)
    )
    if disclosure.MARKER_COLUMN in frame.columns:
        # The choropleth's own hover cannot say a last-year count was suppressed.
        patch["data"][0]["hovertext"] = _map_hover(coloured, measure)
    patch["data"][1] = grey.to_plotly_json()
    return patch


def _view_key(resolved: exports.Resolved) -> str:
    return f"{resolved.selection.level}:{resolved.selection.area or ''}"


def _map_figure(url, frame, measure, bounds, key):
    """The map: areas coloured by the measure, and above them in neutral grey the
    areas whose figure disclosure control suppressed for this role."""
    coloured, grey = _map_layers(url, frame, measure)
    figure = choropleth.choropleth_figure(url, coloured, measure, bounds, key=key)
    if disclosure.MARKER_COLUMN in frame.columns:
        figure.data[0].hovertext = _map_hover(coloured, measure)
    figure.add_trace(grey)
    return figure


def _map_layers(url, frame, measure):
    """The rows the colour scale draws, and the grey layer of suppressed areas."""
    column = choropleth.MEASURE_COLUMNS[measure]
    label = choropleth.MEASURE_LABELS[measure]
    grey = figures.suppressed_layer(url, frame, column, label)
    return frame[~frame["area_code"].astype(str).isin(grey.locations)], grey


def _map_hover(frame, measure) -> list[str]:
    return figures.crime_map_hover(
        frame, choropleth.MEASURE_LABELS[measure], choropleth.MEASURE_COLUMNS[measure]
    )


@callback(Output("crime-trend", "figure"), Input("crime-url", "search"))
def show_trend(search):
    resolved = _resolved(search)
    if resolved is None:
        return figures.empty_figure(components.NO_DATA_MESSAGE)
    return figures.crime_trend(exports.chart_frame("trend", resolved))


@callback(Output("crime-type-bar", "figure"), Input("crime-url", "search"))
def show_types(search):
    resolved = _resolved(search)
    if resolved is None:
        return figures.empty_figure(components.NO_DATA_MESSAGE)
    return figures.crime_types(exports.chart_frame("types", resolved))


@callback(Output("crime-outcome-bar", "figure"), Input("crime-url", "search"))
def show_outcomes(search):
    resolved = _resolved(search)
    if resolved is None:
        return figures.empty_figure(components.NO_DATA_MESSAGE)
    return figures.crime_outcomes(exports.chart_frame("outcomes", resolved))


@callback(Output("crime-ranking-table", "data"), Input("crime-url", "search"))
def show_ranking(search):
    resolved = _resolved(search)
    if resolved is None:
        return []
    frame = exports.chart_frame("areas", resolved)[RANKING_COLUMNS].copy()
    frame["rate_per_1000"] = frame["rate_per_1000"].round(2)
    frame["z"] = frame["z"].round(2)
    return components.table_records(frame)


@callback(
    [Output(f"crime-export-{c}", "href") for c in [*exports.CHARTS, "hotspots"]],
    Input("crime-url", "search"),
)
def show_export_links(search):
    return [_export_href(c, search) for c in [*exports.CHARTS, "hotspots"]]


# ---------------------------------------------------------------------------
# Pieces


def _breadcrumb(path) -> list:
    crumbs = [("force:", "All forces")] + [
        (f"{p['level']}:{p['area_code']}", p["area_name"]) for p in path
    ]
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
                    id={"type": "crime-crumb", "index": index},
                    color="link",
                    size="sm",
                    className="p-0 align-baseline",
                )
            )
    return items


def _kpi_cards(values: dict, outcomes) -> dbc.Row:
    change = values["crimes"] - values["crimes_last_year"]
    asb_change = values["asb"] - values["asb_last_year"]
    rate = values["rate_per_1000"]
    awaiting = outcomes.loc[outcomes["outcome_group"] == crime.AWAITING, "share"]
    settled = outcomes[outcomes["outcome_group"] != crime.AWAITING].head(3)
    cards = [
        _card(
            "crimes",
            "Crimes",
            f"{values['crimes']:,}",
            values["crimes"],
            [
                f"Same period last year: {values['crimes_last_year']:,} ",
                f"({change:+,}) ",
                _significance_badge(values["significance"], values["z"]),
            ],
            "Recorded crimes in the period (police.uk, monthly), anti-social "
            "behaviour excluded. Compared with the same months a year earlier by "
            "Poisson z = 2(√now − √last year): |z| ≥ 3 signal, 1.96–3 watch, "
            "below that noise. Only signals are coloured.",
        ),
        _card(
            "rate",
            "Rate per 1,000 residents",
            "–" if rate is None else f"{rate:,.2f}",
            rate,
            [
                f"Residents: {values['population']:,}"
                if values["population"]
                else "No resident count for this area"
            ],
            "Crimes per 1,000 Census 2021 usual residents. Residents are a poor "
            "denominator for city centres and other places many visit but few live.",
        ),
        _card(
            "harm",
            "Harm",
            f"{values['harm_days']:,.0f} days",
            values["harm_days"],
            ["Harm-weighted total of the period's crimes"],
            exports.DEFINITIONS["harm_days"] + ". Weights are a table the force "
            "can replace.",
        ),
        _card(
            "outcomes",
            "Awaiting outcome",
            f"{float(awaiting.iloc[0]):.1%}" if len(awaiting) else "0.0%",
            float(awaiting.iloc[0]) if len(awaiting) else 0.0,
            [
                html.Div(f"{g}: {s:.1%}", className="small")
                for g, s in zip(settled["outcome_group"], settled["share"], strict=True)
            ],
            "Cohort basis: crimes recorded in the period, by their latest outcome so "
            "far. Recent months keep maturing, so the share awaiting an outcome falls "
            "over time.",
        ),
        _card(
            "asb",
            "Anti-social behaviour",
            f"{values['asb']:,}",
            values["asb"],
            [f"Last year: {values['asb_last_year']:,} ({asb_change:+,})"],
            "Anti-social behaviour incidents reported to police.uk; not recorded "
            "crime, so counted on their own and not filtered by crime type.",
        ),
    ]
    return dbc.Row(
        [dbc.Col(c, xs=12, sm=6, lg=True, className="mb-2") for c in cards],
        className="g-2",
    )


def _card(name, title, shown, raw, detail, definition) -> dbc.Card:
    return dbc.Card(
        dbc.CardBody(
            [
                html.Div(title, className="small text-muted"),
                html.Div(
                    shown,
                    id=f"crime-kpi-{name}",
                    className="fs-3 fw-bold",
                    **{"data-value": "" if raw is None else str(raw)},
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


def _significance_badge(label: str, z: float) -> dbc.Badge:
    colour = "secondary"
    if label == "signal":
        colour = "danger" if z > 0 else "success"
    return dbc.Badge(f"{label} (z {z:+.1f})", color=colour, className="bl-sig")
