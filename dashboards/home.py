"""The landing page: links to the pages this user may see, and what data is loaded."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, callback, dcc, html

from dashboards import components
from queries import status

dash.register_page(
    __name__, path="/", name="Home", title="Bluelamp", order=0, id_prefix="home-"
)

SUMMARY_COLUMNS = ["source", "last_success_at", "rows_loaded", "last_status"]


def layout(**_):
    pages = [p for p in components.visible_pages() if p["path"] != "/"]
    return html.Div(
        [
            html.H1("Bluelamp"),
            html.P("Crime and incident performance, from one warehouse."),
            dbc.ListGroup(
                [
                    dbc.ListGroupItem(
                        [
                            dcc.Link(page["name"], href=page["relative_path"]),
                            html.Div(page.get("description") or "", className="small"),
                        ]
                    )
                    for page in pages
                ],
                className="mb-4",
            ),
            html.H2("Data loaded", className="h4"),
            html.Div(id="home-data-summary"),
        ]
    )


@callback(Output("home-data-summary", "children"), Input("home-data-summary", "id"))
def show_data_summary(_):
    try:
        frame = components.query(
            status.source_status, components.runtime().intervals, components.utcnow()
        )
    except components.NoData as exc:
        return components.no_data_alert(exc)
    loaded = frame[frame["last_success_at"].notna()][SUMMARY_COLUMNS]
    if loaded.empty:
        return components.no_data_alert(components.NO_DATA_MESSAGE)
    return components.data_table(
        "home-data-table", SUMMARY_COLUMNS, data=components.table_records(loaded)
    )
