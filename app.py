"""The Bluelamp Dash app: pages, login, role checks, cache; `gunicorn app:server`."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import secrets

import dash
import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, html
from flask import Response, current_app, g, request
from flask_caching import Cache

import accounts
import audit
import login
import settings
from dashboards import components, disclosure, exports
from etl import warehouse
from etl.sources import SOURCES
from queries import scope, status

log = logging.getLogger("bluelamp.app")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
DASH_CALLBACK_PATH = "/_dash-update-component"
PAGES_LOCATION_ID = "_pages_location"
# A callback payload is a few KB; anything over this is refused (413) unread.
MAX_BODY_BYTES = 1024 * 1024
# Callbacks whose outputs belong to no page, run for anyone signed in: the shell's,
# and Dash Pages' router (the role check holds it to the URL it renders) and its
# title setter. Any other callback must belong to a page (tests/test_access_matrix).
SHELL_CALLBACKS = frozenset(
    {
        "shell-data-as-at.children",
        "shell-navbar-collapse.is_open",
        ".._pages_content.children..._pages_store.data..",
        "_pages_dummy.children",
    }
)
# What a browser sends for well-known properties (or null): any other value is
# refused. (Page callbacks may trust these shapes; `data` and `children` may hold
# anything, so callbacks check those themselves.)
PROPERTY_CHECKS = {
    **dict.fromkeys(
        ["search", "hash", "href", "src", "start_date", "end_date", "className"],
        lambda v: isinstance(v, str),
    ),
    "pathname": lambda v: isinstance(v, str) and v.startswith("/"),
    **dict.fromkeys(["n_clicks", "n_intervals", "page_current"], lambda v: _count(v)),
    "page_size": lambda v: _count(v) and 1 <= v <= 10_000,
    "is_open": lambda v: isinstance(v, bool),
    "style": lambda v: isinstance(v, dict),
    # Plotly's click: {"points": [{...}, ...]}, at least one point.
    "clickData": lambda v: (
        isinstance(v, dict)
        and isinstance(v.get("points"), list)
        and len(v["points"]) > 0
        and all(isinstance(p, dict) for p in v["points"])
    ),
    # A DataTable's active cell: {"row": n, "column": n, "column_id": ..., ...}.
    "active_cell": lambda v: (
        isinstance(v, dict) and _count(v.get("row")) and _count(v.get("column"))
    ),
    # Inputs, dropdowns, radios, sliders: a scalar or a flat list of them.
    "value": lambda v: all(
        isinstance(x, str | int | float | bool)
        for x in (v if isinstance(v, list) else [v])
    ),
}
NOT_NULL = {"page_size"}  # a DataTable always sends it


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
    server.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    server.config["BLUELAMP_FRAME_ANCESTORS"] = frame_ancestors(
        settings.get("BLUELAMP_FRAME_ANCESTORS", env)
    )
    server.register_error_handler(413, _too_large)
    # Before the login's hook, which reads `output` and `inputs` from any callback
    # body (and fails on anything else): a body that is not one of the app's
    # callbacks is refused first. It reads no identity.
    server.before_request(_check_callback)
    # Before the role check below: not signed in, 401 (basic) or a redirect to the
    # provider (oidc) on every route.
    identify = login.install(app, env)
    server.extensions["bluelamp"] = components.Runtime(
        reader=warehouse.Reader(settings.get("BLUELAMP_WAREHOUSE_URL", env)),
        cache=_cache(server, settings.get("BLUELAMP_CACHE_URL", env)),
        intervals=_intervals(env),
        identify=identify,
        may_see=accounts.may_see,
        users_file=settings.get("BLUELAMP_USERS_FILE", env),
        login_method=settings.get("BLUELAMP_LOGIN", env).strip().lower(),
        disclosure=disclosure.parse_policy(
            settings.get("BLUELAMP_SUPPRESS_BELOW", env),
            settings.get("BLUELAMP_SUPPRESS_ROLES", env),
            known_roles=accounts.ROLES,
        ),
    )
    server.before_request(_authorise)
    server.teardown_request(_forget_scope)
    server.after_request(_add_security_headers)
    audit.install(server, env, pages_of_callback=_pages_of_callback)
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


def _check_callback():
    """Before the login and the role check, for callback requests: Dash runs the
    function its `output` names with whatever ids and values the body holds, and the
    role check reads the body's output ids, so the body must be exactly that
    callback's.

    400: not a JSON object, no such callback, ids or properties other than declared,
    a value of the wrong JSON type, a callback the browser runs (clientside);
    403: a callback of no page that is not the shell's. Each refusal is recorded."""
    if request.path != DASH_CALLBACK_PATH or request.method != "POST":
        return None
    try:
        body = request.get_json(silent=True)  # over MAX_BODY_BYTES: 413, unread
    except RecursionError:  # JSON nested thousands deep
        body = None
    status, problem = _callback_problem(body, dash.get_app().callback_map)
    if status is None:
        return None
    components.record_refusal(f"callback refused: {problem}")
    title = "Forbidden" if status == 403 else "Bad request"
    return Response(f"{title}: {problem}", status, mimetype="text/plain")


def _too_large(_exc=None):
    components.record_refusal("request body over the size limit")
    message = f"Too large: a request body may be at most {MAX_BODY_BYTES:,} bytes"
    return Response(message, 413, mimetype="text/plain")


def _callback_problem(body, callback_map) -> tuple[int | None, str]:
    """(status, why) when the body is not one of `callback_map`'s, else (None, "")."""
    if not isinstance(body, dict):
        return 400, "a callback request must be a JSON object"
    if not _finite(body):
        return 400, "numbers must be finite (JSON has no NaN or Infinity)"
    output = body.get("output")
    callback = callback_map.get(output) if isinstance(output, str) else None
    if callback is None:
        return 400, "no such callback"
    declared = callback["output"]
    outputs = [o.to_dict() for o in declared] if isinstance(declared, list) else None
    if outputs is None:
        outputs = declared.to_dict()  # a single output: an object, not a list
    if output not in SHELL_CALLBACKS and not any(
        page_for_component(_parsed_id(o["id"]))
        for o in (outputs if isinstance(outputs, list) else [outputs])
    ):
        return 403, "this callback belongs to no page"
    for part, given, expected in [
        ("outputs", body.get("outputs"), outputs),
        ("inputs", body.get("inputs"), callback["inputs"]),
        ("state", body.get("state", []), callback["state"]),
    ]:
        problem = _items_problem(given, expected)
        if problem:
            return 400, f"{part}: {problem}"
    changed = body.get("changedPropIds", [])
    if not isinstance(changed, list) or not all(
        _names_an_input(c, body.get("inputs") or [], callback["inputs"])
        for c in changed
    ):
        return 400, "changedPropIds must name the callback's inputs"
    if "callback" not in callback:
        return 400, "this callback runs in the browser"
    return None, ""


def _items_problem(given, expected) -> str | None:
    """What is wrong with the body's outputs, inputs or state against the declared
    ones (dicts of a JSON id string and a property), or None."""
    if isinstance(expected, dict):  # one output
        return _item_problem(given, expected)
    if given is None and not expected:
        return None
    if not isinstance(given, list) or len(given) != len(expected):
        return f"expected {len(expected)} item(s)"
    return next(
        (p for g, e in zip(given, expected, strict=True) if (p := _item_problem(g, e))),
        None,
    )


def _item_problem(item, expected: dict) -> str | None:
    declared, prop = _parsed_id(expected["id"]), expected["property"]
    wildcards = isinstance(declared, dict) and any(
        v in (["ALL"], ["ALLSMALLER"]) for v in declared.values()
    )
    items = item if wildcards and isinstance(item, list) else [item]
    if wildcards and not isinstance(item, list):
        return f"{expected['id']}.{prop} must be a list"
    for one in items:
        if not (
            isinstance(one, dict)
            and one.get("property") == prop
            and _id_matches(declared, one.get("id"))
        ):
            return f"expected {expected['id']}.{prop}"
        if not _value_ok(prop, one.get("value")):
            return f"{expected['id']}.{prop} has a value of the wrong type"
    return None


def _parsed_id(component_id: str):
    # Pattern-matching ids are JSON in the callback map, wildcards as ["ALL"].
    return json.loads(component_id) if component_id.startswith("{") else component_id


def _id_matches(declared, given) -> bool:
    if isinstance(declared, str):
        return given == declared
    if not isinstance(given, dict) or set(given) != set(declared):
        return False
    return all(
        isinstance(given[k], str | int | float | bool)
        if isinstance(v, list)  # a wildcard
        else given[k] == v
        for k, v in declared.items()
    )


def _value_ok(prop: str, value) -> bool:
    if value is None:
        return prop not in NOT_NULL
    check = PROPERTY_CHECKS.get(prop)
    return check is None or bool(check(value))


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _finite(body) -> bool:
    """No NaN or Infinity anywhere (not JSON, though Python's parser takes them).
    Walked with a stack: a body may nest as deep as the parser allows."""
    stack = [body]
    while stack:
        value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
    return True


def _flat(items) -> list[dict]:
    return [i for item in items for i in (item if isinstance(item, list) else [item])]


def _prop_key(component_id, prop) -> tuple[str, str]:
    if isinstance(component_id, dict):
        component_id = json.dumps(component_id, sort_keys=True)
    return str(component_id), str(prop)


def _names_an_input(prop_id, given_inputs, declared_inputs) -> bool:
    """Whether a changed `id.property` is one of the body's inputs, or matches a
    declared pattern-matching input: the renderer names the component that fired
    even when a re-render has since removed it from the wildcard's list."""
    key = _changed_key(prop_id)
    if key in {_prop_key(i["id"], i["property"]) for i in _flat(given_inputs)}:
        return True
    component_id, prop = key
    if not component_id.startswith("{"):
        return False
    given = json.loads(component_id)
    return any(
        declared["property"] == prop
        and isinstance(pattern := _parsed_id(declared["id"]), dict)
        and _id_matches(pattern, given)
        for declared in declared_inputs
    )


def _changed_key(prop_id) -> tuple[str, str]:
    """`id.property` as the renderer names a changed input, parsed; a string that
    is not one gives a key no input has."""
    if not isinstance(prop_id, str) or "." not in prop_id:
        return ("", "")
    component_id, _sep, prop = prop_id.rpartition(".")
    try:
        if component_id.startswith("{"):
            component_id = json.loads(component_id)
        return _prop_key(component_id, prop)
    except (ValueError, RecursionError):
        return ("", "")


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


def frame_ancestors(value: str) -> str:
    """BLUELAMP_FRAME_ANCESTORS checked: 'self', 'none' or http(s) origins."""
    tokens = value.split()
    allowed = re.compile(r"^('self'|'none'|https?://[A-Za-z0-9.-]+(:\d+)?)$")
    bad = [t for t in tokens if not allowed.match(t)]
    if not tokens or bad or ("'none'" in tokens and len(tokens) > 1):
        raise ValueError(
            f"BLUELAMP_FRAME_ANCESTORS {value!r}: give 'self', 'none' or "
            "space-separated origins such as https://intranet.example.police.uk"
        )
    return " ".join(tokens)


def _add_security_headers(response: Response) -> Response:
    # Pages asked for with ?embed=1 (the wall's own frames) may be framed by the
    # ancestors the setting names (same origin by default); every other response
    # may not be framed at all.
    ancestors = "'none'"
    if request.args.get("embed") == "1":
        ancestors = current_app.config["BLUELAMP_FRAME_ANCESTORS"]
    legacy = {"'self'": "SAMEORIGIN", "'none'": "DENY"}.get(ancestors)
    if legacy:  # browsers without CSP; other origins are CSP's alone
        response.headers.setdefault("X-Frame-Options", legacy)
    response.headers.setdefault(
        "Content-Security-Policy", f"frame-ancestors {ancestors}"
    )
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
