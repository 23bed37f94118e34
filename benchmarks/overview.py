"""Server time of the overview tiles (cold and warm) and its refresh poll; prints only.

    python benchmarks/overview.py duckdb:///bluelamp.duckdb [--repeat 10]
        [--query "iperiod=rolling-12&period=fytd"]

Cold means the app's query cache cleared (a new ETL run does that); the database's
own caches stay warm. Then the cold time of each query behind the tiles.
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
from urllib.parse import parse_qs

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TILES = {
    "output": "..overview-tiles.children...overview-caption.children"
    "...overview-sources.data..",
    "outputs": [
        {"id": "overview-tiles", "property": "children"},
        {"id": "overview-caption", "property": "children"},
        {"id": "overview-sources", "property": "data"},
    ],
    "inputs": [{"id": "overview-run", "property": "data", "value": 1}],
    "changedPropIds": ["overview-run.data"],
    "state": [{"id": "overview-args", "property": "data", "value": {}}],
}


def query_args(search: str) -> dict:
    """`a=1&t=x&t=y` as Dash Pages hands it to a layout: {"a": "1", "t": [...]}."""
    parsed = parse_qs(search.lstrip("?"))
    return {k: v[0] if len(v) == 1 else v for k, v in parsed.items()}


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def timed(call, repeat, before=None):
    times = []
    for _ in range(repeat):
        if before:
            before()
        started = time.perf_counter()
        response = call()
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    return statistics.median(times), percentile(times, 0.95)


def query_times(call, cache, repeat) -> dict[str, float]:
    """Mean cold milliseconds per redraw of each warehouse query the tiles run."""
    from dashboards import components

    real = components.query
    runs: dict[str, list[float]] = {}

    def timed_query(fn, *args, **kwargs):
        started = time.perf_counter()
        try:
            return real(fn, *args, **kwargs)
        finally:
            name = f"{fn.__module__.removeprefix('queries.')}.{fn.__qualname__}"
            runs.setdefault(name, []).append((time.perf_counter() - started) * 1000)

    components.query = timed_query
    try:
        for _ in range(repeat):
            cache.clear()
            call()
    finally:
        components.query = real
    return {name: sum(t) / repeat for name, t in runs.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="warehouse URL, e.g. duckdb:///bluelamp.duckdb")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument(
        "--query", default="", help="the overview's query string (default: none)"
    )
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="bluelamp-bench-"))
    import accounts

    password = accounts.write_demo_users(home / "users.toml")["display"]
    os.environ.update(
        BLUELAMP_WAREHOUSE_URL=args.url,
        BLUELAMP_USERS_FILE=str(home / "users.toml"),
        BLUELAMP_SECRET_KEY="bench",
        BLUELAMP_CACHE_URL="",
    )
    import app

    server = app.app.server
    client = server.test_client()
    token = base64.b64encode(f"display:{password}".encode()).decode()
    headers = {"Authorization": f"Basic {token}"}
    cache = server.extensions["bluelamp"].cache
    client.get("/overview", headers=headers)  # the first login check and imports

    body = {**TILES, "state": [{**TILES["state"][0], "value": query_args(args.query)}]}

    def tiles():
        return client.post("/_dash-update-component", json=body, headers=headers)

    def poll():
        return client.get("/api/freshness", headers=headers)

    cold = timed(tiles, args.repeat, before=cache.clear)
    warm = timed(tiles, args.repeat)
    layout = timed(lambda: client.get("/_dash-layout", headers=headers), args.repeat)
    polled = timed(poll, args.repeat * 10)
    print(f"overview tiles, cold (cache cleared): median {cold[0]:.0f} ms, "
          f"p95 {cold[1]:.0f} ms")
    print(f"overview tiles, warm:                 median {warm[0]:.1f} ms, "
          f"p95 {warm[1]:.1f} ms")
    print(f"page layout:                          median {layout[0]:.1f} ms")
    print(f"/api/freshness poll:                  median {polled[0]:.2f} ms, "
          f"p95 {polled[1]:.2f} ms")
    print("cold time of each query (mean per redraw):")
    for name, ms in sorted(
        query_times(tiles, cache, args.repeat).items(), key=lambda item: -item[1]
    ):
        print(f"  {name:<40} {ms:6.1f} ms")


if __name__ == "__main__":
    main()
