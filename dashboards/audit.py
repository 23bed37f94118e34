"""Audit trail (admin): who opened which page with which filters, and what left."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, callback, ctx, dcc, html
from flask import has_app_context

import audit as trail
from dashboards import components

dash.register_page(
    __name__,
    path="/audit",
    name="Audit",
    title="Audit trail",
    order=90,
    id_prefix="audit-",
    description="Who saw what, and who took what away.",
)

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
SHOWN_COLUMNS = [
    "id",
    "at",
    "user_name",
    "role",
    "outcome",
    "status",
    "page",
    "path",
    "callback",
    "filters",
    "reasons",
    "export_chart",
    "export_rows",
    "export_columns",
    "reason_code",
]


def _choices(column: str) -> list[str]:
    # Dash calls layouts once outside any request to validate them: no store there.
    if not has_app_context():
        return []
    try:
        return trail.current().distinct(column)
    except trail.AuditUnavailable:
        return []


def layout(**args):
    """The page; `?user=&outcome=&page=&from=&to=&exports=1` pre-fill the filters."""
    filters, problems = trail.parse_filters(args)
    users = sorted({*_choices("user_name"), *([filters.user] if filters.user else [])})
    pages = sorted(
        {p["path"] for p in dash.page_registry.values()} | set(_choices("page"))
    )

    def column(control, md):
        return dbc.Col(control, xs=12, md=md, className="mb-2")

    return html.Div(
        [
            html.H1("Audit trail"),
            html.P(
                "Every page opened, callback run and export taken, newest first. "
                "Times are UK local; the CSV gives them in UTC.",
                className="text-muted",
            ),
            html.Div(
                [dbc.Alert(p, color="warning", className="py-2") for p in problems]
            ),
            dbc.Row(
                [
                    column(
                        dcc.Dropdown(
                            id="audit-user",
                            options=users,
                            value=filters.user,
                            placeholder="Every user",
                        ),
                        3,
                    ),
                    column(
                        dcc.Dropdown(
                            id="audit-outcome",
                            options=list(trail.OUTCOMES),
                            value=filters.outcome,
                            placeholder="Every outcome",
                        ),
                        2,
                    ),
                    column(
                        dcc.Dropdown(
                            id="audit-page",
                            options=pages,
                            value=filters.page,
                            placeholder="Every page",
                        ),
                        2,
                    ),
                    column(
                        dbc.Input(
                            id="audit-from",
                            type="date",
                            value=filters.start and filters.start.isoformat(),
                            debounce=True,
                        ),
                        2,
                    ),
                    column(
                        dbc.Input(
                            id="audit-to",
                            type="date",
                            value=filters.end and filters.end.isoformat(),
                            debounce=True,
                        ),
                        2,
                    ),
                    column(
                        dbc.Checkbox(
                            id="audit-exports",
                            label="Exports only",
                            value=filters.exports_only,
                            className="pt-2",
                        ),
                        1,
                    ),
                ]
            ),
            html.Div(
                [
                    html.Span(id="audit-count", className="me-3"),
                    html.A(
                        "Download these events (CSV)",
                        id="audit-download",
                        href="/export/audit.csv" + filters.query_string(),
                        className="small",
                    ),
                ],
                className="mb-2",
            ),
            components.data_table(
                "audit-table",
                SHOWN_COLUMNS,
                page_action="custom",
                page_current=0,
                page_size=PAGE_SIZE,
                page_count=1,
            ),
        ]
    )


def _shown(frame: pd.DataFrame) -> list[dict]:
    shown = frame.reindex(columns=SHOWN_COLUMNS)
    if not shown.empty:
        local = pd.to_datetime(shown["at"]).dt.tz_localize("UTC")
        shown["at"] = local.dt.tz_convert(components.DISPLAY_ZONE).dt.strftime(
            "%d %b %Y %H:%M:%S %Z"
        )
    return components.table_records(shown)


@callback(
    Output("audit-table", "data"),
    Output("audit-table", "page_count"),
    Output("audit-table", "page_current"),
    Output("audit-count", "children"),
    Output("audit-download", "href"),
    Input("audit-table", "page_current"),
    Input("audit-table", "page_size"),
    Input("audit-user", "value"),
    Input("audit-outcome", "value"),
    Input("audit-page", "value"),
    Input("audit-from", "value"),
    Input("audit-to", "value"),
    Input("audit-exports", "value"),
)
def show_events(page_current, page_size, user, outcome, page, start, end, exports):
    # A new filter starts again at its first page.
    number = 0 if ctx.triggered_id != "audit-table" else _whole(page_current, 0)
    size = min(max(_whole(page_size, PAGE_SIZE), 1), MAX_PAGE_SIZE)
    filters, problems = trail.parse_filters(
        {
            "user": user,
            "outcome": outcome,
            "page": page,
            "from": start,
            "to": end,
            "exports": "1" if exports else None,
        }
    )
    href = "/export/audit.csv" + filters.query_string()
    try:
        total = trail.current().count(filters)
        rows = trail.current().events(filters, limit=size, offset=number * size)
    except trail.AuditUnavailable as exc:
        return [], 1, 0, str(exc), href
    count = " ".join([f"{total:,} event(s) for {filters.sentence()}.", *problems])
    return _shown(rows), components.page_count(total, size), number, count, href


def _whole(value, default: int) -> int:
    """A non-negative whole number from a callback input, else the default."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return default
    return value
