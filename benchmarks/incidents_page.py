"""Server time of the incidents page's callbacks, uncached and cached; prints only.

    python benchmarks/incidents_page.py duckdb:///bluelamp.duckdb [--repeat 20]

Also times the drill from a heat-map cell to its incident list (the URL writer,
then the list) and from a listed incident to its timeline. "Uncached" clears the
app's cache before the request (the warehouse's own pre-aggregates are data, not
cache); one unmeasured round first opens the warehouse, as a running server has.
The load average is printed before and after: on a shared machine it says how far
other work slowed the figures; and whether call answering was summed from the calls
load's daily aggregate or counted from fct_call (an aggregate missing or stale).
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SEARCHES = [
    "",
    "?period=rolling-12",
    "?period=fytd&grade=1",
    "?period=last-month&grade=1&grade=2",
]
# (outputs, input id, input property): charts read the view store, the rest the URL.
CALLBACKS = {
    "kpis": (
        [
            ("incidents-message", "children"),
            ("incidents-period-sentence", "children"),
            ("incidents-not-recorded", "children"),
            ("incidents-kpis", "children"),
            ("incidents-grade-table", "children"),
        ],
        "incidents-url",
        "search",
    ),
    "area": (
        [
            ("incidents-breadcrumb", "children"),
            ("incidents-area-picker", "options"),
            ("incidents-area-picker", "placeholder"),
        ],
        "incidents-url",
        "search",
    ),
    "map": ([("incidents-map", "figure")], "incidents-view", "data"),
    "trend": ([("incidents-trend", "figure")], "incidents-view", "data"),
    "heatmap": ([("incidents-heatmap", "figure")], "incidents-view", "data"),
    "exceptions": (
        [
            ("incidents-exceptions-table", "data"),
            ("incidents-open-table", "data"),
            ("incidents-open-as-at", "children"),
        ],
        "incidents-url",
        "search",
    ),
}
CELL = [("incidents-cell-title", "children"), ("incidents-cell-table", "data")]
TIMELINE = [
    ("incidents-timeline-summary", "children"),
    ("incidents-timeline", "figure"),
    ("incidents-timeline-table", "data"),
]


def body(outputs, value, input_id="incidents-url", prop="search"):
    outs = [{"id": i, "property": p} for i, p in outputs]
    output = (
        f"{outputs[0][0]}.{outputs[0][1]}"
        if len(outputs) == 1
        else ".." + "...".join(f"{i}.{p}" for i, p in outputs) + ".."
    )
    return {
        "output": output,
        "outputs": outs[0] if len(outs) == 1 else outs,
        "inputs": [{"id": input_id, "property": prop, "value": value}],
        "changedPropIds": [f"{input_id}.{prop}"],
        "state": [],
    }


def url_body(search, cell):
    """update_url as posted when a heat-map cell is clicked."""
    values = [
        ("incidents-period", "value", "last-28-days"),
        ("incidents-dates", "start_date", None),
        ("incidents-dates", "end_date", None),
        ("incidents-source", "value", None),
        ("incidents-grades", "value", []),
        ("incidents-measure", "value", "share"),
        ("incidents-margin", "value", 5),
        ("incidents-area-picker", "value", None),
        ("incidents-map", "clickData", None),
        ("incidents-heatmap", "clickData", {"points": [{"customdata": cell}]}),
        ("incidents-cell-table", "active_cell", None),
    ]
    outputs = [
        ("incidents-url", "search"),
        ("incidents-map", "clickData"),
        ("incidents-heatmap", "clickData"),
        ("incidents-area-picker", "value"),
        ("incidents-cell-table", "active_cell"),
        ("incidents-custom-range", "style"),
    ]
    payload = body(outputs, None)
    payload["inputs"] = [{"id": i, "property": p, "value": v} for i, p, v in values]
    payload["inputs"].append([])
    payload["changedPropIds"] = ["incidents-heatmap.clickData"]
    payload["state"] = [{"id": "incidents-url", "property": "search", "value": search}]
    return payload


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def line(name, uncached, cached):
    print(
        f"{name:16} {statistics.median(uncached):12.1f}"
        f" / {percentile(uncached, 0.95):8.1f}"
        f" {statistics.median(cached):14.1f} / {percentile(cached, 0.95):6.1f}"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="warehouse URL, e.g. duckdb:///bluelamp.duckdb")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="bluelamp-bench-"))
    import accounts

    accounts.write_demo_users(home / "users.toml")
    os.environ.update(
        BLUELAMP_WAREHOUSE_URL=args.url,
        BLUELAMP_USERS_FILE=str(home / "users.toml"),
        BLUELAMP_SECRET_KEY="bench",
        BLUELAMP_CACHE_URL="",
    )
    import app as app_module
    from queries import incidents

    server = app_module.app.server
    token = base64.b64encode(f"analyst:{accounts.DEMO_PASSWORD}".encode()).decode()
    headers = {"Authorization": f"Basic {token}"}
    cache = server.extensions["bluelamp"].cache
    client = server.test_client()

    def post(payload):
        start = time.perf_counter()
        response = client.post("/_dash-update-component", json=payload, headers=headers)
        elapsed = (time.perf_counter() - start) * 1000
        assert response.status_code == 200, response.get_data(as_text=True)[:500]
        return elapsed, response.get_json()["response"]

    for outputs, input_id, prop in CALLBACKS.values():  # warm: open the warehouse
        post(body(outputs, SEARCHES[0], input_id, prop))
    print(f"load average before: {_load()}")
    with server.extensions["bluelamp"].reader.connect() as conn:
        from_days = incidents.calls_aggregate_current(conn)
    print(
        "call answering: "
        + ("summed from agg_call_day" if from_days else "counted from fct_call")
    )
    print(f"{'callback':16} {'uncached ms (median/p95)':>26} {'cached ms':>24}")
    for name, (outputs, input_id, prop) in CALLBACKS.items():
        uncached, cached = [], []
        for n in range(args.repeat):
            search = SEARCHES[n % len(SEARCHES)]
            cache.clear()
            uncached.append(post(body(outputs, search, input_id, prop))[0])
            cached.append(post(body(outputs, search, input_id, prop))[0])
        line(name, uncached, cached)

    # The drill: click a heat-map cell (URL writer), then list its incidents; then
    # open the first listed incident's timeline. Every hour of the week in turn.
    drill_u, drill_c, time_u, time_c = [], [], [], []
    for n in range(args.repeat):
        cell = f"{n % 7}-{(8 + 3 * n) % 24}"
        for timings in (drill_u, drill_c):
            if timings is drill_u:
                cache.clear()
            first, response = post(url_body("?period=rolling-12", cell))
            search = response["incidents-url"]["search"]
            second, listed = post(body(CELL, search))
            timings.append(first + second)
        rows = listed["incidents-cell-table"]["data"]
        if rows:
            chosen = search + "&incident=" + rows[0]["id"]
            cache.clear()
            time_u.append(post(body(TIMELINE, chosen))[0])
            time_c.append(post(body(TIMELINE, chosen))[0])
    line("cell -> list", drill_u, drill_c)
    if time_u:
        line("list -> timeline", time_u, time_c)
    print(f"load average after: {_load()}")


def _load() -> str:
    return " ".join(f"{n:.2f}" for n in os.getloadavg())


if __name__ == "__main__":
    main()
