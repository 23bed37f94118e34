"""Login, role checks and security headers of the app, through the Flask test client.

The app fixture here is shared by the other test_app_* files: Dash Pages allows one
app per process, so every test file points it at the same session folder.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

import accounts
from etl import warehouse
from etl.schema import etl_quarantine, etl_run

ROUTES = [
    "/",
    "/data-status",
    "/_dash-layout",
    "/_dash-dependencies",
    "/assets/style.css",
    "/assets/vendor/bootstrap.min.css",
]


@pytest.fixture(scope="session")
def app_home(tmp_path_factory) -> Path:
    """The session folder holding the app's warehouse and users file."""
    home = tmp_path_factory.getbasetemp() / "bluelamp-app"
    home.mkdir(exist_ok=True)
    accounts.write_demo_users(home / "users.toml")
    return home


@pytest.fixture(scope="session")
def dash_app(app_home):
    os.environ["BLUELAMP_WAREHOUSE_URL"] = f"duckdb:///{app_home / 'warehouse.duckdb'}"
    os.environ["BLUELAMP_USERS_FILE"] = str(app_home / "users.toml")
    os.environ["BLUELAMP_SECRET_KEY"] = "test-secret"
    os.environ["BLUELAMP_CACHE_URL"] = ""
    import app as app_module

    return app_module.app


@pytest.fixture
def client(dash_app):
    return dash_app.server.test_client()


def login(name: str, password: str = accounts.DEMO_PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{name}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def publish(url: str, runs=(), rejects=()) -> None:
    """Replace the warehouse's ETL bookkeeping with these rows, as one new snapshot."""
    warehouse.ensure_schema(url)
    with warehouse.write(url) as conn:
        conn.execute(etl_quarantine.delete())
        conn.execute(etl_run.delete())
        if runs:
            conn.execute(etl_run.insert(), list(runs))
        if rejects:
            conn.execute(etl_quarantine.insert(), list(rejects))


def callback_body(outputs, inputs, changed=()) -> dict:
    """The JSON Dash's renderer posts to /_dash-update-component.

    `outputs` is [(id, property)], `inputs` is [(id, property, value)].
    """
    outs = [{"id": i, "property": p} for i, p in outputs]
    if len(outs) == 1:
        output, outs = f"{outputs[0][0]}.{outputs[0][1]}", outs[0]
    else:
        output = ".." + "...".join(f"{i}.{p}" for i, p in outputs) + ".."
    return {
        "output": output,
        "outputs": outs,
        "inputs": [{"id": i, "property": p, "value": v} for i, p, v in inputs],
        "changedPropIds": list(changed),
        "state": [],
    }


STATUS_CARDS = callback_body(
    [("status-source-cards", "children")], [("status-refresh", "n_intervals", None)]
)
HOME_SUMMARY = callback_body(
    [("home-data-summary", "children")], [("home-data-summary", "id", None)]
)


def route_to(pathname: str) -> dict:
    return callback_body(
        [("_pages_content", "children"), ("_pages_store", "data")],
        [("_pages_location", "pathname", pathname), ("_pages_location", "search", "")],
        changed=["_pages_location.pathname"],
    )


@pytest.mark.parametrize("path", ROUTES)
def test_every_route_needs_a_login(client, path):
    assert client.get(path).status_code == 401
    assert client.get(path, headers=login("analyst")).status_code == 200


def test_callbacks_need_a_login(client):
    assert client.post("/_dash-update-component", json=STATUS_CARDS).status_code == 401
    response = client.post(
        "/_dash-update-component", json=STATUS_CARDS, headers=login("analyst")
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        login("analyst", "wrong-password"),
        login("nobody"),
        {"Authorization": "Bearer abc"},
        {"Authorization": "Basic !!!not-base64"},
    ],
    ids=["wrong-password", "unknown-user", "not-basic", "malformed"],
)
def test_bad_credentials_are_refused_with_401(client, headers):
    response = client.get("/_dash-layout", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_role_without_data_status_gets_403_on_its_page_and_callbacks(client):
    commander = login("commander")
    assert client.get("/data-status", headers=commander).status_code == 403
    post = client.post
    assert (
        post(
            "/_dash-update-component", json=STATUS_CARDS, headers=commander
        ).status_code
        == 403
    )
    assert (
        post(
            "/_dash-update-component", json=route_to("/data-status"), headers=commander
        ).status_code
        == 403
    )
    # The pages it may see still work.
    assert (
        post(
            "/_dash-update-component", json=HOME_SUMMARY, headers=commander
        ).status_code
        == 200
    )
    assert (
        post(
            "/_dash-update-component", json=route_to("/"), headers=commander
        ).status_code
        == 200
    )


@pytest.mark.parametrize("role", ["admin", "analyst", "leader"])
def test_roles_with_data_status_may_route_to_it(client, role):
    response = client.post(
        "/_dash-update-component", json=route_to("/data-status"), headers=login(role)
    )
    assert response.status_code == 200
    assert "Data status" in response.get_data(as_text=True)


def test_navbar_lists_only_the_pages_a_role_may_see(client):
    commander = client.get("/_dash-layout", headers=login("commander")).get_json()
    analyst = client.get("/_dash-layout", headers=login("analyst")).get_json()
    assert "/data-status" not in str(commander) and "Home" in str(commander)
    assert "/data-status" in str(analyst)


@pytest.mark.parametrize("path", ["/", "/_dash-layout", "/assets/style.css", "/nope"])
@pytest.mark.parametrize("logged_in", [True, False])
def test_security_headers_on_every_response(client, path, logged_in):
    response = client.get(path, headers=login("analyst") if logged_in else {})
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_only_embedded_pages_may_be_framed_and_only_as_the_setting_says(client):
    embedded = client.get("/overview?embed=1", headers=login("display"))
    assert embedded.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert embedded.headers["Content-Security-Policy"] == "frame-ancestors 'self'"
    config = client.application.config
    real = config["BLUELAMP_FRAME_ANCESTORS"]
    try:
        config["BLUELAMP_FRAME_ANCESTORS"] = "'self' https://intranet.example"
        embedded = client.get("/overview?embed=1", headers=login("display"))
        assert "X-Frame-Options" not in embedded.headers  # CSP alone lists origins
        assert embedded.headers["Content-Security-Policy"] == (
            "frame-ancestors 'self' https://intranet.example"
        )
        plain = client.get("/overview", headers=login("display"))
        assert plain.headers["X-Frame-Options"] == "DENY"
    finally:
        config["BLUELAMP_FRAME_ANCESTORS"] = real


@pytest.mark.parametrize(
    "value", ["", "*", "'none' 'self'", "javascript:alert(1)", "https://a b;c"]
)
def test_a_bad_frame_ancestors_setting_stops_the_start(value):
    import app as app_module

    with pytest.raises(ValueError, match="BLUELAMP_FRAME_ANCESTORS"):
        app_module.frame_ancestors(value)


def test_missing_warehouse_shows_a_message_not_a_traceback(client, app_home):
    # Point a fresh Reader at a path with nothing there, as on a first start.
    runtime = client.application.extensions["bluelamp"]
    real_reader = runtime.reader
    runtime.reader = warehouse.Reader(f"duckdb:///{app_home / 'absent.duckdb'}")
    try:
        cards = client.post(
            "/_dash-update-component", json=STATUS_CARDS, headers=login("analyst")
        )
        layout = client.get("/_dash-layout", headers=login("analyst"))
    finally:
        runtime.reader = real_reader
    assert cards.status_code == 200 and layout.status_code == 200
    assert "No data loaded: run python -m etl demo" in cards.get_data(as_text=True)
    assert "No data loaded" in layout.get_data(as_text=True)
    assert "Traceback" not in cards.get_data(as_text=True)


def test_users_page_lists_users_and_roles_for_admins_only(client):
    response = client.get("/users", headers=login("admin"))
    assert response.status_code == 200
    for role in ("leader", "commander", "analyst", "display"):
        assert client.get("/users", headers=login(role)).status_code == 403
    layout = client.post(
        "/_dash-update-component",
        json=route_to("/users"),
        headers=login("admin"),
    )
    assert layout.status_code == 200
    text = layout.get_data(as_text=True)
    assert "commander" in text and "E08000026" in text  # the demo commander's area
    assert "scrypt" not in text and "password_hash" not in text
    refused = client.post(
        "/_dash-update-component",
        json=route_to("/users"),
        headers=login("leader"),
    )
    assert refused.status_code == 403


def test_basic_login_has_no_sign_out_link(client):
    shell = client.get("/_dash-layout", headers=login("analyst")).get_data(as_text=True)
    assert "Sign out" not in shell
