"""Server time of the overview tiles (cold and warm) and its refresh poll; prints only.

    python benchmarks/overview.py duckdb:///bluelamp.duckdb [--repeat 10]
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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="warehouse URL, e.g. duckdb:///bluelamp.duckdb")
    parser.add_argument("--repeat", type=int, default=10)
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

    def tiles():
        return client.post("/_dash-update-component", json=TILES, headers=headers)

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


if __name__ == "__main__":
    main()
