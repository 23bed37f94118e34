"""Data status: how fresh each source is, recent ETL runs, and the quarantined rows."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, callback, ctx, dcc, html

from dashboards import components
from queries import status

dash.register_page(
    __name__,
    path="/data-status",
    name="Data status",
    title="Data status",
    order=1,
    id_prefix="status-",
    description="Freshness of each source, recent loads and rejected rows.",
)

REFRESH_MS = 60_000
QUARANTINE_PAGE_SIZE = 25
RUN_COLUMNS = [
    "run_id",
    "source",
    "status",
    "started_at",
    "finished_at",
    "rows_read",
    "rows_loaded",
    "rows_rejected",
    "rows_duplicate",
    "rows_set_aside",
    "message",
]


def layout(source: str | None = None, text: str | None = None, **_):
    """The page; `?source=cad&text=grade` pre-fills the quarantine filters."""
    sources = components.configured_sources()
    return html.Div(
        [
            html.H1("Data status"),
            dcc.Interval(id="status-refresh", interval=REFRESH_MS),
            html.Div(id="status-source-cards", className="mb-4"),
            html.H2("Recent runs", className="h4"),
            components.data_table(
                "status-runs-table", RUN_COLUMNS, page_size=10, page_action="native"
            ),
            html.H2("Quarantined rows", className="h4 mt-4"),
            dbc.Row(
                [
                    dbc.Col(
                        dcc.Dropdown(
                            id="status-quarantine-source",
                            options=sources,
                            value=source if source in sources else None,
                            placeholder="All sources",
                        ),
                        xs=12,
                        md=4,
                        className="mb-2",
                    ),
                    dbc.Col(
                        dbc.Input(
                            id="status-quarantine-text",
                            type="search",
                            value=text or "",
                            debounce=True,
                            placeholder="Search reason or raw line",
                        ),
                        xs=12,
                        md=5,
                        className="mb-2",
                    ),
                    dbc.Col(
                        html.Div(id="status-quarantine-count", className="pt-2"),
                        xs=12,
                        md=3,
                    ),
                ]
            ),
            components.data_table(
                "status-quarantine-table",
                status.QUARANTINE_COLUMNS,
                page_action="custom",
                page_current=0,
                page_size=QUARANTINE_PAGE_SIZE,
                page_count=1,
            ),
        ]
    )


@callback(
    Output("status-source-cards", "children"), Input("status-refresh", "n_intervals")
)
def show_source_cards(_):
    rt, now = components.runtime(), components.utcnow()
    try:
        frame = components.query(status.source_status, rt.intervals, now)
    except components.NoData as exc:
        return components.no_data_alert(exc)
    return components.source_cards(frame, now)


@callback(Output("status-runs-table", "data"), Input("status-refresh", "n_intervals"))
def show_recent_runs(_):
    try:
        return components.table_records(components.query(status.recent_runs, 50))
    except components.NoData:
        return []


@callback(
    Output("status-quarantine-table", "data"),
    Output("status-quarantine-table", "page_count"),
    Output("status-quarantine-table", "page_current"),
    Output("status-quarantine-count", "children"),
    Input("status-quarantine-table", "page_current"),
    Input("status-quarantine-table", "page_size"),
    Input("status-quarantine-source", "value"),
    Input("status-quarantine-text", "value"),
)
def show_quarantine(page_current, page_size, source, text):
    # A new filter starts again at its first page.
    page = 0 if ctx.triggered_id != "status-quarantine-table" else page_current or 0
    text = text.strip() if isinstance(text, str) else ""
    source = source if isinstance(source, str) else None
    filters = {"source": source or None, "text": text or None}
    try:
        total = components.query(status.quarantine_count, **filters)
        rows = components.query(
            status.quarantine, **filters, limit=page_size, offset=page * page_size
        )
    except components.NoData as exc:
        return [], 1, 0, str(exc)
    pages = components.page_count(total, page_size)
    return components.table_records(rows), pages, page, f"{total:,} row(s) quarantined"
