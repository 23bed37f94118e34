"""The incidents page's cached callback output, and its call cards for a user limited
to areas (calls carry no location).

Through the app's callback route, on the session's incidents warehouse (real CAD
exports and demo data, tests/test_incidents_page.py).
"""

from __future__ import annotations

import json

import pytest
import test_incidents_page as page

from dashboards import components
from queries.calls import NOT_BY_AREA

# The session's app and incidents warehouse (fixtures shared with that file).
app_home, dash_app = page.app_home, page.dash_app
incidents_warehouse_url = page.incidents_warehouse_url
incidents_app, incidents_client = page.incidents_app, page.incidents_client

SEARCH = "?period=rolling-12"


def _cards(client, role: str, search: str = SEARCH) -> dict:
    out = page.call(client, page.by_search(page.KPI_OUTPUTS, search), role=role)
    return out["incidents-kpis"]["children"]


def _card_text(children, card_id: str) -> str:
    """The text of the KPI figure with this id."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            props = node.get("props", {})
            if props.get("id") == card_id:
                found.append(json.dumps(props.get("children")))
            for value in props.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(children)
    assert found, card_id
    return found[0]


def test_call_cards_say_why_a_user_limited_to_areas_sees_no_calls(
    incidents_app, incidents_client
):
    incidents_app.server.extensions["bluelamp"].cache.clear()
    everyone = _cards(incidents_client, "analyst")
    limited = _cards(incidents_client, "commander")  # limited to one authority
    for card in ("incidents-kpi-999", "incidents-kpi-101"):
        assert NOT_BY_AREA in _card_text(limited, card), card
        assert NOT_BY_AREA not in _card_text(everyone, card), card
        assert page.kpi_values(limited)[card] == ""
    assert page.kpi_values(everyone)["incidents-kpi-999"] != ""


def test_a_repeated_callback_is_served_from_the_cache_for_the_same_user_scope(
    incidents_app, incidents_client, monkeypatch
):
    incidents_app.server.extensions["bluelamp"].cache.clear()
    ran = []
    real = components.query

    def counted(fn, *args, **kwargs):
        ran.append(fn.__name__)
        return real(fn, *args, **kwargs)

    monkeypatch.setattr(components, "query", counted)
    first = _cards(incidents_client, "analyst")
    assert "attendance_by_grade" in ran
    ran.clear()
    assert _cards(incidents_client, "analyst") == first
    assert ran == ["latest_run_id"]  # the output came whole from the cache
    # Another scope never gets the first one's output.
    limited = _cards(incidents_client, "commander")
    assert "attendance_by_grade" in ran and limited != first
    assert NOT_BY_AREA in _card_text(limited, "incidents-kpi-999")


@pytest.mark.parametrize(
    "outputs",
    [
        [("incidents-map", "figure")],
        [("incidents-trend", "figure")],
        [("incidents-heatmap", "figure")],
    ],
)
def test_a_cached_chart_is_the_same_figure(incidents_app, incidents_client, outputs):
    incidents_app.server.extensions["bluelamp"].cache.clear()
    body = page.by_view(outputs, SEARCH)
    first = page.call(incidents_client, body)
    assert page.call(incidents_client, body) == first
