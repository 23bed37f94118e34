"""Building blocks shared by pages: warehouse access, the navbar, cards and tables."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import dash
import dash_bootstrap_components as dbc
import pandas as pd
import sqlalchemy.exc
from dash import dash_table, html
from flask import current_app, g, has_app_context, has_request_context

import accounts
import login
from dashboards import disclosure
from etl import warehouse
from queries import scope

DISPLAY_ZONE = ZoneInfo("Europe/London")
NO_DATA_MESSAGE = "No data loaded: run python -m etl demo"


@dataclass
class Runtime:
    """What app.py hands the pages: one Reader and one cache per process."""

    reader: warehouse.Reader
    cache: object  # flask_caching.Cache
    intervals: dict[str, int]
    # Who the current request runs for (None: not signed in), by the login in use.
    identify: Callable[[], accounts.Identity | None]
    may_see: Callable[[str | None, str], bool]
    # The users file the basic login reads (listed on the admin's Users page).
    users_file: str = ""
    # "basic" (the users file) or "oidc" (an identity provider).
    login_method: str = "basic"

    @property
    def logout_url(self) -> str:
        """Where "Sign out" goes: nowhere for the basic login, which has none."""
        return login.LOGOUT_ROUTE if self.login_method == "oidc" else ""
    # Which roles have small counts suppressed in maps and exports, below what.
    disclosure: disclosure.Policy = disclosure.Policy()


class NoData(RuntimeError):
    """The warehouse is missing or unreadable; the message is fit to show a user."""


def runtime() -> Runtime:
    return current_app.extensions["bluelamp"]


def configured_sources() -> list[str]:
    # Dash calls layouts once outside any request to validate them: no app there.
    return sorted(runtime().intervals) if has_app_context() else []


def visible_pages() -> list[dict]:
    """Registered pages the current user's role may see, in navbar order."""
    if not has_request_context():
        return []
    role = current_role()
    return [
        p for p in dash.page_registry.values() if runtime().may_see(role, p["path"])
    ]


def current_identity() -> accounts.Identity | None:
    """The signed-in user of this request, looked up once per request."""
    if not has_request_context():
        return None
    if "bluelamp_identity" not in g:
        g.bluelamp_identity = runtime().identify()
    return g.bluelamp_identity


def record_refusal(reason: str) -> None:
    """Note that this request was refused something (an area outside the user's
    scope, a callback of a page they may not see); the audit trail records it."""
    if has_request_context():
        g.setdefault("bluelamp_refusals", []).append(reason)


def current_user() -> str | None:
    identity = current_identity()
    return identity.name if identity else None


def current_role() -> str | None:
    identity = current_identity()
    return identity.role if identity else None


def query(fn, *args, **kwargs):
    """Run a query function on a read connection, turning a missing warehouse into
    NoData so pages show a message instead of a traceback."""
    if not has_app_context():
        raise NoData(NO_DATA_MESSAGE)
    try:
        with runtime().reader.connect() as conn:
            return fn(conn, *args, **kwargs)
    except warehouse.WarehouseMissing as exc:
        raise NoData(NO_DATA_MESSAGE) from exc
    except sqlalchemy.exc.DBAPIError as exc:
        raise NoData(
            f"The warehouse could not be read ({type(exc.orig).__name__}); "
            "run python -m etl demo, or check BLUELAMP_WAREHOUSE_URL"
        ) from exc


def cached_query(fn, *args, **kwargs):
    """`query`, remembered until the next successful ETL run (keyed on its run id),
    so every worker sharing the cache drops old results together."""
    rt = runtime()
    run_id = _latest_run_id_for_request()
    # The user's area scope is part of the key: one scope's results never serve
    # another's.
    signature = repr(
        (
            fn.__module__,
            fn.__qualname__,
            run_id,
            scope.key(),
            args,
            sorted(kwargs.items()),
        )
    )
    key = "query:" + hashlib.sha256(signature.encode()).hexdigest()
    result = rt.cache.get(key)
    if result is None:
        result = query(fn, *args, **kwargs)
        rt.cache.set(key, result)
    return result


def cached_output(build: Callable, *args):
    """A callback's whole output, `build(*args)`, remembered like `cached_query`.

    Keyed on build's name, its arguments, the latest ETL run id, the user's area
    scope and role (disclosure control depends on the role), so a repeat of the same
    request costs a cache read and Dash's JSON encoding. Outputs that depend on the
    clock must pass it in `args`. The audit refusals the build recorded are kept with
    the output and recorded again on each hit.
    """
    try:
        run_id = _latest_run_id_for_request()
    except NoData:
        return build(*args)
    signature = repr(
        (
            build.__module__,
            build.__qualname__,
            run_id,
            scope.key(),
            current_role(),
            args,
        )
    )
    key = "output:" + hashlib.sha256(signature.encode()).hexdigest()
    rt = runtime()
    hit = rt.cache.get(key)
    if hit is not None:
        result, refusals = hit
        for reason in refusals:
            record_refusal(reason)
        return result
    before = len(g.get("bluelamp_refusals", ())) if has_request_context() else 0
    result = build(*args)
    refusals = (
        tuple(g.get("bluelamp_refusals", ())[before:]) if has_request_context() else ()
    )
    rt.cache.set(key, (result, refusals))
    return result


def _latest_run_id_for_request() -> int:
    # One lookup per request: a callback often runs several cached queries.
    if not has_request_context():
        return query(warehouse.latest_run_id)
    if "bluelamp_run_id" not in g:
        g.bluelamp_run_id = query(warehouse.latest_run_id)
    return g.bluelamp_run_id


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def format_time(value) -> str:
    """A naive-UTC warehouse time as local (UK) wall-clock time, or a dash."""
    if value is None or pd.isna(value):
        return "never"
    local = pd.Timestamp(value).tz_localize("UTC").tz_convert(DISPLAY_ZONE)
    return local.strftime("%d %b %Y %H:%M %Z")


def format_age(then, now: dt.datetime) -> str:
    if then is None or pd.isna(then):
        return "never"
    minutes = max(
        0, int((pd.Timestamp(now) - pd.Timestamp(then)).total_seconds() // 60)
    )
    if minutes < 120:
        return f"{minutes} min ago"
    if minutes < 48 * 60:
        return f"{minutes // 60} h ago"
    return f"{minutes // (24 * 60)} days ago"


def format_interval(minutes) -> str:
    if minutes is None or pd.isna(minutes):
        return "no schedule"
    minutes = int(minutes)
    if minutes == 24 * 60:
        return "daily"
    if minutes % (24 * 60) == 0:
        return f"every {minutes // (24 * 60)} days"
    if minutes % 60 == 0:
        return f"every {minutes // 60} h"
    return f"every {minutes} min"


def no_data_alert(message: str) -> dbc.Alert:
    return dbc.Alert(str(message), color="info", className="bl-no-data")


def navbar(pages: list[dict], data_as_at: str, user: str | None) -> dbc.Navbar:
    links = [
        dbc.NavItem(
            dbc.NavLink(page["name"], href=page["relative_path"], active="exact")
        )
        for page in pages
    ]
    return dbc.Navbar(
        dbc.Container(
            [
                dbc.NavbarBrand("Bluelamp", href="/"),
                # Outside the collapse: how old the data is stays visible on a phone.
                html.Span(data_as_at, id="shell-data-as-at", className="bl-data-as-at"),
                dbc.NavbarToggler(id="shell-navbar-toggler"),
                dbc.Collapse(
                    [
                        dbc.Nav(links, navbar=True, className="me-auto"),
                        html.Span(user or "", className="bl-user"),
                        _sign_out(),
                    ],
                    id="shell-navbar-collapse",
                    navbar=True,
                ),
            ],
            fluid=True,
        ),
        color="dark",
        dark=True,
        expand="md",
        className="mb-3",
    )


def export_links(page: str, charts, href, labels=None) -> html.Div:
    """A page's download links (ids `<page>-export-<chart>`, URLs from `href(chart,
    search)`), shown to roles that may export and hidden from the others, whom the
    export routes refuse with 403 anyway.

    No `download` attribute: the route's Content-Disposition makes a file download,
    and an export asking for a reason code can show its form instead.
    """
    labels = labels or {}
    shown = accounts.may_export(current_role())
    return html.Div(
        [
            html.A(
                labels.get(chart, f"CSV: {chart}"),
                id=f"{page}-export-{chart}",
                href=href(chart, ""),
                className="me-3 small",
            )
            for chart in charts
        ],
        className=f"bl-{page}-exports",
        style=None if shown else {"display": "none"},
    )


def _sign_out():
    url = runtime().logout_url if has_app_context() else ""
    if not url:
        return None
    return dbc.NavLink("Sign out", href=url, external_link=True, className="ms-md-2")


def status_badge(status) -> dbc.Badge:
    colours = {"succeeded": "success", "failed": "danger", "running": "secondary"}
    label = _present(status) or "never run"
    return dbc.Badge(label, color=colours.get(label, "secondary"), className="ms-2")


def _present(value):
    """None for a missing value (pandas' NA refuses to be compared in an `if`)."""
    return None if value is None or pd.isna(value) else value


def _count(value) -> str:
    return "-" if value is None or pd.isna(value) else f"{int(value):,}"


def source_card(row: pd.Series, now: dt.datetime) -> dbc.Card:
    """One source's freshness: last good load, its row accounting, the last run."""
    loaded_at = row["last_success_at"]
    when = (
        f" ({format_age(loaded_at, now)}, {format_interval(row['interval_minutes'])})"
        if _present(loaded_at) is not None
        else f" (expected {format_interval(row['interval_minutes'])})"
    )
    body = [
        html.P(
            ["Last successful refresh: ", html.Strong(format_time(loaded_at)), when]
        ),
        html.Table(
            html.Tbody(
                [
                    html.Tr([html.Th(label), html.Td(_count(row[column]))])
                    for label, column in [
                        ("Read", "rows_read"),
                        ("Loaded", "rows_loaded"),
                        ("Rejected", "rows_rejected"),
                        ("Duplicate", "rows_duplicate"),
                        ("Set aside", "rows_set_aside"),
                    ]
                ]
            ),
            className="table table-sm bl-counts",
        ),
    ]
    if bool(row["stale"]):
        body.insert(
            0,
            dbc.Alert(
                "Stale: no successful refresh in over twice the expected interval"
                if not pd.isna(row["last_success_at"])
                else "Stale: this source has never loaded successfully",
                color="warning",
                className="py-2",
            ),
        )
    if _present(row["last_status"]) == "failed":
        body.append(
            dbc.Alert(
                [html.Strong("Last run failed: "), _present(row["last_message"]) or ""],
                color="danger",
                className="py-2 bl-message",
            )
        )
    return dbc.Card(
        [
            dbc.CardHeader(
                [html.Span(row["source"]), status_badge(row["last_status"])]
            ),
            dbc.CardBody(body),
        ],
        className="h-100" + (" border-warning" if row["stale"] else ""),
    )


def source_cards(frame: pd.DataFrame, now: dt.datetime) -> dbc.Row:
    if frame.empty:
        return no_data_alert(NO_DATA_MESSAGE)
    return dbc.Row(
        [
            dbc.Col(source_card(row, now), xs=12, md=6, xl=4, className="mb-3")
            for _, row in frame.iterrows()
        ]
    )


def table_records(frame: pd.DataFrame) -> list[dict]:
    """DataFrame rows as JSON-safe dicts: times formatted, missing values None."""
    shown = frame.copy()
    for column in shown.columns:
        if pd.api.types.is_datetime64_any_dtype(shown[column]):
            shown[column] = shown[column].map(format_time)
    shown = shown.astype(object).where(shown.notna(), None)
    return shown.to_dict("records")


def data_table(table_id: str, columns: list[str], **kwargs) -> dash_table.DataTable:
    kwargs.setdefault("data", [])
    return dash_table.DataTable(
        id=table_id,
        columns=[{"name": c.replace("_", " "), "id": c} for c in columns],
        style_table={"overflowX": "auto"},
        style_cell={
            "textAlign": "left",
            "whiteSpace": "normal",
            "height": "auto",
            "maxWidth": "32rem",
            "fontFamily": "inherit",
            "fontSize": "0.875rem",
        },
        style_header={"fontWeight": "bold"},
        **kwargs,
    )


def page_count(total: int, page_size: int) -> int:
    return max(1, math.ceil(total / max(1, page_size)))
