"""Every role x every page, every registered callback and every export route:
allowed or refused exactly as roles.toml says, driven from the app's own callback
map through the Flask test client, so a new callback or route without a check fails.

The small warehouse built here (the seeded demo's boundaries, people and incidents,
plus a handful of hand-placed crimes) is shared by the hostile-input, fuzz and
disclosure tests.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tomllib

import dash
import pandas as pd
import pytest
import test_app_auth as app_tests
from test_app_auth import login

import accounts
from etl import demo, pipeline, warehouse

# Fixtures shared by the app tests: Dash Pages allows one app per process.
app_home, dash_app = app_tests.app_home, app_tests.dash_app

OCTOBER = dt.date(2024, 10, 1)
COVENTRY = "E08000026"  # the demo commander's one area
BIRMINGHAM = "E08000025"
FORCE = "west-midlands-police"
ROLES = tomllib.loads(accounts.ROLES_FILE.read_text(encoding="utf-8"))["roles"]


# ---------------------------------------------------------------------------
# The small warehouse


def crafted_crimes(geography: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """police.uk rows placed by hand: Coventry's first ward holds 3 crimes this
    October (6 a year earlier), its second 12 (2 a year earlier), one Birmingham LSOA
    7. Returns the rows and the codes used."""
    coventry = geography[geography["lad_code"] == COVENTRY].sort_values(
        ["ward_code", "lsoa_code"]
    )
    wards = sorted(coventry["ward_code"].unique())
    small = coventry[coventry["ward_code"] == wards[0]].iloc[0]
    large = coventry[coventry["ward_code"] == wards[1]].iloc[0]
    elsewhere = (
        geography[geography["lad_code"] == BIRMINGHAM].sort_values("lsoa_code").iloc[0]
    )
    placed = [
        ("2024-10", small, "Burglary", 3),
        ("2023-10", small, "Burglary", 6),
        ("2024-10", large, "Burglary", 8),
        ("2024-10", large, "Robbery", 4),
        ("2023-10", large, "Robbery", 2),
        ("2024-10", elsewhere, "Vehicle crime", 7),
        ("2024-10", large, demo_asb := "Anti-social behaviour", 1),
    ]
    rows = []
    for month, lsoa, crime_type, n in placed:
        for i in range(n):
            key = f"{month}-{lsoa['lsoa_code']}-{crime_type}-{i}"
            rows.append(
                {
                    "Crime ID": ""
                    if crime_type == demo_asb
                    else hashlib.sha256(key.encode()).hexdigest(),
                    "Month": month,
                    "Reported by": demo.FORCE,
                    "Falls within": demo.FORCE,
                    "Longitude": f"{lsoa['centroid_lon']:.6f}",
                    "Latitude": f"{lsoa['centroid_lat']:.6f}",
                    "Location": "On or near Test Street",
                    "LSOA code": lsoa["lsoa_code"],
                    "LSOA name": lsoa["lsoa_name"],
                    "Crime type": crime_type,
                    "Last outcome category": ""
                    if crime_type == demo_asb
                    else "Under investigation",
                    "Context": "",
                }
            )
    codes = {
        "small_ward": small["ward_code"],
        "large_ward": large["ward_code"],
        "small_lsoa": small["lsoa_code"],
        "elsewhere_lsoa": elsewhere["lsoa_code"],
    }
    return pd.DataFrame(rows), codes


@pytest.fixture(scope="session")
def small_warehouse(tmp_path_factory) -> dict:
    """The demo's synthetic West Midlands boundaries, population, one month of CAD
    incidents and call answering, and the hand-placed crimes above; no real data
    needed. Returns {"url": ..., plus the codes used}."""
    home = tmp_path_factory.getbasetemp() / "bluelamp-small"
    home.mkdir(exist_ok=True)
    url = f"duckdb:///{home / 'warehouse.duckdb'}"
    paths = demo.generate(home / "demo", months=1, seed=3, end_month=OCTOBER)
    for source in ("boundaries", "population"):
        result = pipeline.run(url, source, paths[source])
        assert result.status == "succeeded", result.summary()
    with warehouse.Reader(url).connect() as conn:
        geography = pd.read_sql("SELECT * FROM dim_geography", conn)
    crimes, codes = crafted_crimes(geography)
    folder = home / "police_uk"
    folder.mkdir(exist_ok=True)
    for month, rows in crimes.groupby("Month"):
        rows.to_csv(folder / f"{month}-west-midlands-street.csv", index=False)
    for source, path in [
        ("police-uk-street", folder),
        ("cad", paths["cad"]),
        ("calls", paths["calls"]),
    ]:
        result = pipeline.run(url, source, path)
        assert result.status == "succeeded", result.summary()
    return {"url": url, **codes}


@pytest.fixture(scope="module")
def small_app(dash_app, small_warehouse):
    """The app reading the small warehouse (and an empty cache) meanwhile."""
    runtime = dash_app.server.extensions["bluelamp"]
    real_reader = runtime.reader
    runtime.reader = warehouse.Reader(small_warehouse["url"])
    runtime.cache.clear()
    # The first request merges the pages' callbacks into app.callback_map.
    dash_app.server.test_client().get("/_dash-dependencies", headers=login("admin"))
    try:
        yield dash_app
    finally:
        runtime.reader = real_reader
        runtime.cache.clear()


@pytest.fixture
def small_client(small_app):
    return small_app.server.test_client()


# ---------------------------------------------------------------------------
# Payloads from the callback map

PLAUSIBLE = {
    "search": "",
    "n_intervals": 1,
    "page_current": 0,
    "page_size": 10,
    "is_open": False,
}


def parsed_id(component_id: str):
    return json.loads(component_id) if component_id.startswith("{") else component_id


def is_multi(component_id) -> bool:
    """A pattern-matching id with ALL or ALLSMALLER: a list of components."""
    return isinstance(component_id, dict) and any(
        v in (["ALL"], ["ALLSMALLER"]) for v in component_id.values()
    )


def item(spec: dict, value=None, with_value=True):
    component_id = parsed_id(spec["id"])
    if is_multi(component_id):
        return []  # none of them on the page yet
    if isinstance(component_id, dict):  # MATCH: one concrete component
        component_id = {
            k: ("x" if isinstance(v, list) else v) for k, v in component_id.items()
        }
    out = {"id": component_id, "property": spec["property"]}
    if with_value:
        out["value"] = value
    return out


def payload(callback_id: str, callback: dict, values=None) -> dict:
    """A syntactically valid body for a registered callback: its outputs, inputs and
    state exactly as declared, with null or plausible values (`values` by
    "id.property" overrides them)."""
    values = values or {}
    declared = callback["output"]
    many = isinstance(declared, list)
    outputs = [o.to_dict() for o in (declared if many else [declared])]
    outs = [item(o, with_value=False) for o in outputs]

    def value_of(spec):
        key = f"{spec['id']}.{spec['property']}"
        if key in values:
            return values[key]
        if spec["property"] == "id":
            return parsed_id(spec["id"])
        return PLAUSIBLE.get(spec["property"])

    return {
        "output": callback_id,
        "outputs": outs if many else outs[0],
        "inputs": [item(s, value_of(s)) for s in callback["inputs"]],
        "changedPropIds": [],
        "state": [item(s, value_of(s)) for s in callback["state"]],
    }


def prefix_of(page: dict) -> str:
    return page.get("id_prefix") or (
        page["module"].rsplit(".", 1)[-1].replace("_", "-") + "-"
    )


def pages_of(callback: dict) -> set[str]:
    """The page paths owning a callback's declared outputs, by id prefix."""
    declared = callback["output"]
    paths = set()
    for output in declared if isinstance(declared, list) else [declared]:
        component_id = parsed_id(output.to_dict()["id"])
        if isinstance(component_id, dict):
            component_id = component_id.get("type", "")
        for page in dash.page_registry.values():
            if component_id.startswith(prefix_of(page)):
                paths.add(page["path"])
    return paths


def role_may_see(role: str, path: str) -> bool:
    pages = ROLES[role]["pages"]
    return "*" in pages or path in pages


def role_may_export(role: str) -> bool:
    return bool(ROLES[role].get("export", False))


def shows_no_data(response) -> bool:
    text = response.get_data(as_text=True)
    return len(text) < 300 and "{" not in text and "<" not in text


# ---------------------------------------------------------------------------
# The whole map


def test_every_callback_belongs_to_a_page_or_is_a_shell_callback(small_app):
    import app as app_module

    orphans = [
        cid
        for cid, callback in small_app.callback_map.items()
        if not pages_of(callback) and cid not in app_module.SHELL_CALLBACKS
    ]
    assert orphans == [], (
        "callbacks whose outputs belong to no page: prefix their ids with the page's "
        f"id_prefix, or (shell only) add them to app.SHELL_CALLBACKS: {orphans}"
    )
    # The allowlist names only callbacks that exist and belong to no page.
    for cid in app_module.SHELL_CALLBACKS:
        assert cid in small_app.callback_map and not pages_of(
            small_app.callback_map[cid]
        )


def test_a_callback_of_no_page_outside_the_allowlist_is_refused(
    small_app, small_client
):
    callback_map = small_app.callback_map
    shell = callback_map["shell-data-as-at.children"]
    orphan = dict(shell, output=type(shell["output"])("orphan-clock", "children"))
    callback_map["orphan-clock.children"] = orphan
    try:
        response = small_client.post(
            "/_dash-update-component",
            json=payload("orphan-clock.children", orphan),
            headers=login("admin"),
        )
    finally:
        del callback_map["orphan-clock.children"]
    assert response.status_code == 403 and shows_no_data(response)
    assert "belongs to no page" in response.get_data(as_text=True)


@pytest.mark.parametrize("role", sorted(ROLES))
def test_role_x_page_x_callback_matrix(small_client, small_app, role):
    headers = login(role)
    wrong, seen = [], []

    def check(what, response, allowed, clientside=False):
        status = response.status_code
        seen.append((what, status))
        if not allowed:
            if status != 403 or not shows_no_data(response):
                wrong.append(f"{what}: expected 403 without data, got {status}")
        elif status in (403, 500) or (clientside and status != 400):
            wrong.append(f"{what}: expected it allowed, got {status}")

    for page in dash.page_registry.values():
        path = page["path"]
        allowed = role_may_see(role, path)
        check(f"GET {path}", small_client.get(path, headers=headers), allowed)
        router = ".._pages_content.children..._pages_store.data.."
        body = payload(
            router,
            small_app.callback_map[router],
            {"_pages_location.pathname": path},
        )
        response = small_client.post(
            "/_dash-update-component", json=body, headers=headers
        )
        check(f"route to {path}", response, allowed)

    for cid, callback in small_app.callback_map.items():
        paths = pages_of(callback)
        if not paths:
            continue  # the shell's and the router (above): every role
        allowed = all(role_may_see(role, p) for p in paths)
        response = small_client.post(
            "/_dash-update-component", json=payload(cid, callback), headers=headers
        )
        check(f"callback {cid[:60]}", response, allowed, "callback" not in callback)

    response = small_client.post(
        "/_dash-update-component",
        json=payload(
            "shell-data-as-at.children",
            small_app.callback_map["shell-data-as-at.children"],
        ),
        headers=headers,
    )
    check("shell clock", response, True)
    assert wrong == [], f"role {role}:\n" + "\n".join(wrong)
    assert len(seen) >= 2 * len(dash.page_registry) + 20


def export_routes() -> list[tuple[str, str]]:
    """(url, page) for every export the app serves."""
    from dashboards import exports

    routes = [(f"/export/crime/{c}.csv", "/crime") for c in exports.CHARTS]
    routes.append(("/export/crime/hotspots.html", "/crime"))
    routes += [
        (f"/export/incidents/{c}.csv", "/incidents") for c in exports.INCIDENT_CHARTS
    ]
    return routes


def test_every_export_route_is_in_the_matrix(small_app):
    covered = {"/export/crime/<chart>.csv", "/export/crime/hotspots.html"}
    covered |= {"/export/incidents/<chart>.csv", "/export/audit.csv"}
    covered |= {"/geo/crime/<int:run_id>/<force_code>/<level>.geojson"}
    served = {
        rule.rule
        for rule in small_app.server.url_map.iter_rules()
        if rule.endpoint.startswith("crime_exports.")
    }
    assert served <= covered, f"add these routes to the matrix: {served - covered}"


@pytest.mark.parametrize("role", sorted(ROLES))
def test_exports_and_freshness_by_role(small_client, role):
    headers = login(role)
    wrong = []
    for url, page in export_routes():
        allowed = role_may_see(role, page) and role_may_export(role)
        response = small_client.get(url, headers=headers)
        response.get_data()  # read the streamed CSV to its end
        if allowed and response.status_code != 200:
            wrong.append(f"{url}: expected 200, got {response.status_code}")
        if not allowed and (response.status_code != 403 or not shows_no_data(response)):
            wrong.append(f"{url}: expected 403, got {response.status_code}")
    audit_allowed = role_may_see(role, "/audit")
    response = small_client.get("/export/audit.csv", headers=headers)
    response.get_data()
    if (response.status_code == 200) != audit_allowed or response.status_code == 500:
        wrong.append(f"/export/audit.csv: got {response.status_code}")
    freshness = small_client.get("/api/freshness", headers=headers)
    if freshness.status_code != 200 or "run_id" not in freshness.get_json():
        wrong.append(f"/api/freshness: got {freshness.status_code}")
    assert small_client.get("/api/freshness").status_code == 401
    assert wrong == [], f"role {role}:\n" + "\n".join(wrong)


@pytest.mark.parametrize("role", sorted(ROLES))
def test_boundary_files_follow_the_crime_page(small_client, small_warehouse, role):
    with warehouse.Reader(small_warehouse["url"]).connect() as conn:
        run_id = warehouse.latest_run_id(conn)
    url = f"/geo/crime/{run_id}/{FORCE}/lad.geojson"
    response = small_client.get(url, headers=login(role))
    assert response.status_code == (200 if role_may_see(role, "/crime") else 403)
