"""Wall playlists: `/wall?pages=overview,crime,incidents&seconds=60` rotates pages."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import dash
from dash import ALL, Input, Output, State, clientside_callback, dcc, html
from flask import has_request_context

from dashboards import components

dash.register_page(
    __name__,
    path="/wall",
    name="Wall",
    title="Wall",
    order=5,
    id_prefix="wall-",
    description="Rotates a playlist of pages on a wall display, each with its own "
    "query string.",
)

DEFAULT_PAGES = "overview"
DEFAULT_SECONDS = 60
MIN_SECONDS = 2


def _one(value):
    return value[0] if isinstance(value, list) and value else value


def playlist(pages: str, exceptions: bool = False) -> tuple[list[dict], list[str]]:
    """[{name, src}] for `overview,crime?level=lad&area=X`, and a message per entry
    that names no page. Every page loads framed (embed=1); the overview in kiosk."""
    known = {
        p["path"].strip("/"): p["path"]
        for p in dash.page_registry.values()
        if p["path"] != "/wall"
    }
    items, problems = [], []
    for entry in (e.strip() for e in (pages or "").split(",")):
        if not entry:
            continue
        name, _sep, query = entry.partition("?")
        name = name.strip("/")
        if name not in known:
            problems.append(f"No page called {name!r}: left out of the playlist.")
            continue
        args = parse_qsl(query, keep_blank_values=False)
        if name == "overview":
            args += [("kiosk", "1")] + ([("exceptions", "1")] if exceptions else [])
        args.append(("embed", "1"))
        src = known[name] + "?" + urlencode(args)
        items.append({"name": name or "home", "src": src})
    return items, problems


def _path(item: dict) -> str:
    return item["src"].partition("?")[0]


def layout(**query_args):
    """`?pages=overview,crime?period=fytd,incidents&seconds=60&exceptions=1&kiosk=1`."""
    exceptions = str(_one(query_args.get("exceptions")) or "") == "1"
    kiosk = str(_one(query_args.get("kiosk")) or "") == "1"
    items, problems = playlist(
        _one(query_args.get("pages")) or DEFAULT_PAGES, exceptions
    )
    try:
        seconds = max(MIN_SECONDS, int(_one(query_args.get("seconds")) or 0))
    except ValueError:
        problems.append("seconds must be a whole number: using 60.")
        seconds = DEFAULT_SECONDS
    if not _one(query_args.get("seconds")):
        seconds = DEFAULT_SECONDS
    if has_request_context():
        role = components.current_role()
        refused = [i for i in items if not components.runtime().may_see(role, _path(i))]
        problems += [f"Your role may not see {i['name']}: left out." for i in refused]
        items = [i for i in items if i not in refused]
    return html.Div(
        [
            dcc.Store(id="wall-kiosk", data=kiosk),
            dcc.Interval(id="wall-rotate", interval=seconds * 1000),
            html.Div(
                [html.Div(p, className="small") for p in problems],
                id="wall-problems",
                className="bl-wall-problems",
            ),
            html.Div(
                [
                    html.Iframe(
                        id={"type": "wall-frame", "index": n},
                        src=item["src"],
                        title=item["name"],
                        className="bl-wall-frame"
                        + (" bl-wall-frame-shown" if n == 0 else ""),
                    )
                    for n, item in enumerate(items)
                ],
                id="wall-stage",
                className="bl-wall-stage",
            ),
            html.Div(
                items[0]["name"] if items else "Nothing to show",
                id="wall-now",
                className="bl-wall-now small",
                **{"data-count": str(len(items))},
            ),
        ],
        className="bl-wall" + (" bl-kiosk" if kiosk else ""),
    )


# Every frame stays loaded (and keeps polling for new data); a tick only changes
# which one is shown, so the switch is a cross-fade with no reload.
clientside_callback(
    """
    function(n, frames, kiosk) {
        document.body.classList.toggle('bl-kiosk', !!kiosk);
        const count = frames.length;
        if (!count) { return [[], 'Nothing to show']; }
        const current = (n || 0) % count;
        const nodes = document.querySelectorAll('iframe.bl-wall-frame');
        nodes.forEach(function(frame) {
            const framed = function() {
                try { frame.contentDocument.body.classList.add('bl-kiosk'); }
                catch (e) { /* not loaded yet */ }
            };
            if (!frame.dataset.blHooked) {
                frame.dataset.blHooked = '1';
                frame.addEventListener('load', framed);
            }
            framed();
        });
        const classes = frames.map(function(_, i) {
            return 'bl-wall-frame' + (i === current ? ' bl-wall-frame-shown' : '');
        });
        const title = nodes[current] ? nodes[current].title : '';
        return [classes, title];
    }
    """,
    Output({"type": "wall-frame", "index": ALL}, "className"),
    Output("wall-now", "children"),
    Input("wall-rotate", "n_intervals"),
    State({"type": "wall-frame", "index": ALL}, "src"),
    State("wall-kiosk", "data"),
)
