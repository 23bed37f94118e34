"""Server time, bytes and cached throughput of the crime page's callbacks; prints only.

    python benchmarks/crime_page.py duckdb:///bluelamp.duckdb [--repeat 30]

Compares each callback with the naive alternative: fct_crime loaded into pandas
once, then filtered and grouped per request.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SEARCHES = [
    "",
    "?measure=rate",
    "?period=fytd&type=Burglary",
    "?period=last-month",
]
CALLBACKS = {
    "kpis": [
        ("crime-message", "children"),
        ("crime-period-sentence", "children"),
        ("crime-kpis", "children"),
    ],
    "map": [("crime-map", "figure")],
    "trend": [("crime-trend", "figure")],
    "types": [("crime-type-bar", "figure")],
    "outcomes": [("crime-outcome-bar", "figure")],
    "ranking": [("crime-ranking-table", "data")],
}


def body(outputs, search):
    outs = [{"id": i, "property": p} for i, p in outputs]
    output = (
        f"{outputs[0][0]}.{outputs[0][1]}"
        if len(outputs) == 1
        else ".." + "...".join(f"{i}.{p}" for i, p in outputs) + ".."
    )
    return {
        "output": output,
        "outputs": outs[0] if len(outs) == 1 else outs,
        "inputs": [{"id": "crime-url", "property": "search", "value": search}],
        "changedPropIds": ["crime-url.search"],
        "state": [],
    }


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


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

    server = app_module.app.server
    token = base64.b64encode(f"analyst:{accounts.DEMO_PASSWORD}".encode()).decode()
    headers = {"Authorization": f"Basic {token}"}
    cache = server.extensions["bluelamp"].cache
    client = server.test_client()

    def post(payload):
        start = time.perf_counter()
        response = client.post("/_dash-update-component", json=payload, headers=headers)
        elapsed = time.perf_counter() - start
        assert response.status_code == 200, response.get_data(as_text=True)[:500]
        return elapsed, len(response.get_data())

    start = time.perf_counter()
    layout = client.post(
        "/_dash-update-component",
        json={
            "output": ".._pages_content.children..._pages_store.data..",
            "outputs": [
                {"id": "_pages_content", "property": "children"},
                {"id": "_pages_store", "property": "data"},
            ],
            "inputs": [
                {"id": "_pages_location", "property": "pathname", "value": "/crime"},
                {"id": "_pages_location", "property": "search", "value": ""},
            ],
            "changedPropIds": ["_pages_location.pathname"],
            "state": [],
        },
        headers=headers,
    )
    print(
        f"first page render (layout callback): {time.perf_counter() - start:.3f} s, "
        f"{len(layout.get_data()):,} bytes"
    )

    print(
        f"{'callback':10} {'uncached ms (median/p95)':>26}"
        f" {'cached ms (median/p95)':>24}"
        f" {'bytes':>9}"
    )
    for name, outputs in CALLBACKS.items():
        uncached, cached, sizes = [], [], []
        for n in range(args.repeat):
            search = SEARCHES[n % len(SEARCHES)]
            cache.clear()
            elapsed, size = post(body(outputs, search))
            uncached.append(elapsed * 1000)
            elapsed, size = post(body(outputs, search))
            cached.append(elapsed * 1000)
            sizes.append(size)
        print(
            f"{name:10} {statistics.median(uncached):12.1f}"
            f" / {percentile(uncached, 0.95):8.1f}"
            f" {statistics.median(cached):14.1f} / {percentile(cached, 0.95):6.1f}"
            f" {max(sizes):9,}"
        )

    payload = body(CALLBACKS["kpis"], "")
    post(payload)
    requests_total = 16 * args.repeat

    def one_client(_):
        local = server.test_client()
        for _n in range(args.repeat):
            local.post("/_dash-update-component", json=payload, headers=headers)

    start = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one_client, range(16)))
    rate = requests_total / (time.perf_counter() - start)
    print(
        f"cached KPI callback, 16 concurrent clients (threads, one process): "
        f"{rate:,.0f} requests/s"
    )

    naive(args.url, args.repeat)


def naive(url: str, repeat: int) -> None:
    """The obvious alternative: the fact table in pandas, filtered per request."""
    import pandas as pd

    from etl import warehouse

    start = time.perf_counter()
    with warehouse.Reader(url).connect() as conn:
        facts = pd.read_sql(
            "SELECT month, crime_type, lsoa_code, is_asb FROM fct_crime", conn
        )
    print(
        f"naive: load fct_crime into pandas: {time.perf_counter() - start:.2f} s, "
        f"{facts.memory_usage(deep=True).sum() / 1e6:,.0f} MB, {len(facts):,} rows"
    )
    facts["month"] = pd.to_datetime(facts["month"])
    latest = facts["month"].max()
    times = []
    for _n in range(repeat):
        start = time.perf_counter()
        window = facts[
            (facts["month"] > latest - pd.DateOffset(months=12))
            & (facts["month"] <= latest)
            & ~facts["is_asb"]
        ]
        window.groupby("lsoa_code").size()
        window.groupby("crime_type").size()
        window.groupby("month").size()
        times.append((time.perf_counter() - start) * 1000)
    print(
        f"naive per-request filter + 3 group-bys: median "
        f"{statistics.median(times):.1f} ms, p95 {percentile(times, 0.95):.1f} ms"
    )


if __name__ == "__main__":
    main()
