"""The Bluelamp Dash app: pages, login, role checks, cache; `gunicorn app:server`."""

from __future__ import annotations

import argparse
import logging
import os
import secrets

import dash
import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, html
from flask import Response, g, request
from flask_caching import Cache

import accounts
import login
import settings
from dashboards import components, exports
from etl import warehouse
from etl.sources import SOURCES
from queries import scope, status

log = logging.getLogger("bluelamp.app")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
DASH_CALLBACK_PATH = "/_dash-update-component"
PAGES_LOCATION_ID = "_pages_location"


def create_app(environ: dict[str, str] | None = None) -> Dash:
    """Build the app from settings. Create one per process (Dash Pages' registry is
    global), before any page module is imported."""
    env = os.environ if environ is None else environ
    secret_key = settings.get("BLUELAMP_SECRET_KEY", env)
    if not secret_key:
        secret_key = secrets.token_hex(32)
        log.warning(
            "BLUELAMP_SECRET_KEY is empty: using a random key for this process only; "
            "set it for any real deployment"
        )
    app = Dash(
        __name__,
        use_pages=True,
        pages_folder="dashboards",
        external_stylesheets=[],
        serve_locally=True,
        title="Bluelamp",
        update_title=None,
        meta_tags=[
            {"name": "viewport", "content": "width=device-width, initial-scale=1"}
        ],
    )
    server = app.server
    server.secret_key = secret_key
    roles_file = settings.get("BLUELAMP_ROLES_FILE", env)
    accounts.use_roles(accounts.load_roles(roles_file or accounts.ROLES_FILE))
    # First of the request hooks, so it runs before the role check below: not
    # signed in, 401 (basic) or a redirect to the provider (oidc) on every route.
    identify = login.install(app, env)
    server.extensions["bluelamp"] = components.Runtime(
        reader=warehouse.Reader(settings.get("BLUELAMP_WAREHOUSE_URL", env)),
        cache=_cache(server, settings.get("BLUELAMP_CACHE_URL", env)),
        intervals=_intervals(env),
        identify=identify,
        may_see=accounts.may_see,
        users_file=settings.get("BLUELAMP_USERS_FILE", env),
        login_method=settings.get("BLUELAMP_LOGIN", env).strip().lower(),
        logout_url=login.logout_url(env),
    )
    server.before_request(_authorise)
    server.teardown_request(_forget_scope)
    server.after_request(_add_security_headers)
    server.add_url_rule("/api/freshness", "freshness", freshness)
    server.register_blueprint(exports.blueprint)
    app.layout = shell
    app.callback(
        Output("shell-data-as-at", "children"), Input("shell-refresh", "n_intervals")
    )(refresh_data_as_at)
    app.clientside_callback(
        "function(clicks, open) { return clicks ? !open : open; }",
        Output("shell-navbar-collapse", "is_open"),
        Input("shell-navbar-toggler", "n_clicks"),
        State("shell-navbar-collapse", "is_open"),
    )
    return app


def _cache(server, url: str) -> Cache:
    config = {"CACHE_DEFAULT_TIMEOUT": 3600, "CACHE_KEY_PREFIX": "bluelamp:"}
    if url:
        config.update(CACHE_TYPE="RedisCache", CACHE_REDIS_URL=url)
    else:
        config.update(CACHE_TYPE="SimpleCache", CACHE_THRESHOLD=2000)
    return Cache(server, config=config)


def _intervals(env) -> dict[str, int]:
    """Minutes between refreshes per registered source, from the settings."""
    intervals = {}
    for source in SOURCES:
        try:
            intervals[source] = int(
                settings.get(settings.interval_setting_name(source), env)
            )
        except KeyError:  # a source without an interval setting is never stale by age
            continue
    return intervals


def page_for_path(path: str) -> dict | None:
    path = path.rstrip("/") or "/"
    return next((p for p in dash.page_registry.values() if p["path"] == path), None)


def page_for_component(component_id) -> dict | None:
    """The page owning a component, by id prefix (`status-` -> /data-status).

    Each page registers `id_prefix`; without one it is the module name, e.g.
    `crime_types.py` -> `crime-types-`. Ids of no page (the shell's) belong to all.
    """
    if isinstance(component_id, dict):  # pattern-matching ids: use their "type"
        component_id = component_id.get("type", "")
    if not isinstance(component_id, str):
        return None
    for page in dash.page_registry.values():
        prefix = page.get("id_prefix") or (
            page["module"].rsplit(".", 1)[-1].replace("_", "-") + "-"
        )
        if component_id.startswith(prefix):
            return page
    return None


def _pages_of_callback(body: dict) -> list[dict]:
    outputs = body.get("outputs") or []
    outputs = outputs if isinstance(outputs, list) else [outputs]
    pages = [page_for_component(o.get("id")) for o in outputs if isinstance(o, dict)]
    # Dash Pages' router renders a page's layout from the URL: check that URL too.
    for item in body.get("inputs") or []:
        if (
            isinstance(item, dict)
            and item.get("id") == PAGES_LOCATION_ID
            and item.get("property") == "pathname"
        ):
            pages.append(page_for_path(str(item.get("value") or "/")))
    return [p for p in pages if p is not None]


def _authorise():
    """Every request: limit its queries to the user's areas, then refuse (403) a
    page, or a callback of a page, the user's role may not see."""
    identity = components.current_identity()
    # No identity (a route the login lets through unauthenticated) reads nothing.
    g.bluelamp_scope_token = scope.set_scope(
        identity.scope() if identity else frozenset()
    )
    role = identity.role if identity else None
    if request.path == DASH_CALLBACK_PATH and request.method == "POST":
        pages = _pages_of_callback(request.get_json(silent=True) or {})
    elif request.method == "GET":
        pages = [p for p in [page_for_path(request.path)] if p is not None]
    else:
        pages = []
    refused = [p["path"] for p in pages if not accounts.may_see(role, p["path"])]
    if refused:
        components.record_refusal(f"role {role} may not see {', '.join(refused)}")
        return Response("Forbidden: your role may not see this page", status=403)
    return None


def _forget_scope(_exc=None):
    # A worker thread serves many requests: never leave one user's scope behind.
    token = g.pop("bluelamp_scope_token", None)
    if token is not None:
        scope.reset(token)


def _add_security_headers(response: Response) -> Response:
    # The wall (/wall) shows pages in same-origin frames, asking for them with
    # ?embed=1; every other response may not be framed at all.
    if request.args.get("embed") == "1":
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def data_as_at() -> str:
    try:
        latest = components.query(status.latest_run)
    except components.NoData:
        return "No data loaded"
    if latest.empty:
        return "No data loaded"
    return "Data as at " + components.format_time(latest["finished_at"].iloc[0])


def freshness():
    """The latest ETL run and fact row counts: cheap for displays to poll."""
    try:
        return components.query(status.freshness)
    except components.NoData as exc:
        return {"run_id": 0, "finished_at": None, "message": str(exc)}, 503


def refresh_data_as_at(_):
    return data_as_at()


def shell():
    """The frame around every page, built per request for the user's role."""
    return html.Div(
        [
            components.navbar(
                components.visible_pages(), data_as_at(), components.current_user()
            ),
            dash.dcc.Interval(id="shell-refresh", interval=60_000),
            dbc.Container(dash.page_container, fluid="xl", className="bl-page"),
        ]
    )


app = create_app()
server = app.server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve Bluelamp for one machine.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8050)
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    app.run(host=args.host, port=args.port, debug=args.debug)


if __name__ == "__main__":
    main()
