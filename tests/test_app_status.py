"""The Data status page's real callbacks, queries and tables, posted as Dash would."""

from __future__ import annotations

import datetime as dt
import os

import pytest
import test_app_auth as app_tests
from test_app_auth import STATUS_CARDS, callback_body, login, publish, route_to
from test_status_queries import reject, run_row

# Fixtures shared by the app tests: Dash Pages allows one app per process.
app_home, dash_app, client = app_tests.app_home, app_tests.dash_app, app_tests.client


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@pytest.fixture
def loaded(dash_app):
    """cad fresh with 60 rejects; calls last loaded 2 days ago, then failed."""
    fresh, old = now() - dt.timedelta(minutes=1), now() - dt.timedelta(days=2)
    runs = [
        run_row(1, "calls", old, rows_read=100, rows_loaded=98, rows_rejected=2),
        run_row(2, "calls", fresh, "failed", message="calls.csv: the file is empty"),
        run_row(3, "cad", fresh, rows_read=1060, rows_loaded=1000, rows_rejected=60),
    ]
    rejects = [
        reject(3, "cad", n, f"INC{n},X9,", "unknown grade X9") for n in range(60)
    ]
    rejects += [reject(1, "calls", 7, "C7,999,never", "bad time: never")]
    rejects += [reject(1, "calls", 8, "C8,999,", "missing queued time")]
    publish(os.environ["BLUELAMP_WAREHOUSE_URL"], runs, rejects)


def call(client, body, role="analyst") -> dict:
    response = client.post("/_dash-update-component", json=body, headers=login(role))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["response"]


def quarantine_body(page_current=0, page_size=25, source=None, text="", trigger=None):
    return callback_body(
        [
            ("status-quarantine-table", "data"),
            ("status-quarantine-table", "page_count"),
            ("status-quarantine-table", "page_current"),
            ("status-quarantine-count", "children"),
        ],
        [
            ("status-quarantine-table", "page_current", page_current),
            ("status-quarantine-table", "page_size", page_size),
            ("status-quarantine-source", "value", source),
            ("status-quarantine-text", "value", text),
        ],
        changed=[trigger] if trigger else [],
    )


def test_source_cards_warn_only_for_the_stale_source(client, loaded):
    cards = str(call(client, STATUS_CARDS)["status-source-cards"]["children"])
    # calls: interval 15 min, last success 2 days ago; cad: loaded a minute ago.
    assert cards.count("Stale: no successful refresh") == 1
    assert "Last run failed: " in cards and "calls.csv: the file is empty" in cards
    assert "1,060" in cards and "1,000" in cards
    # Registered sources never loaded still get a card saying so.
    assert "Stale: this source has never loaded successfully" in cards


def test_recent_runs_table_lists_runs_newest_first(client, loaded):
    body = callback_body(
        [("status-runs-table", "data")], [("status-refresh", "n_intervals", 1)]
    )
    rows = call(client, body)["status-runs-table"]["data"]
    assert [(r["run_id"], r["source"], r["status"]) for r in rows] == [
        (3, "cad", "succeeded"),
        (2, "calls", "failed"),
        (1, "calls", "succeeded"),
    ]


def test_quarantine_table_sends_one_page_at_a_time(client, loaded):
    out = call(
        client,
        quarantine_body(
            page_current=2, page_size=25, trigger="status-quarantine-table.page_current"
        ),
    )
    table = out["status-quarantine-table"]
    assert len(table["data"]) == 12  # 62 rows: pages of 25, 25 and 12
    assert table["page_count"] == 3 and table["page_current"] == 2
    assert out["status-quarantine-count"]["children"] == "62 row(s) quarantined"


@pytest.mark.parametrize(
    ("source", "text", "lines"),
    [
        ("calls", "", [7, 8]),
        (None, "BAD TIME", [7]),
        ("cad", "bad time", []),
    ],
)
def test_quarantine_filters_by_source_and_text(client, loaded, source, text, lines):
    out = call(client, quarantine_body(source=source, text=text))
    assert [r["line"] for r in out["status-quarantine-table"]["data"]] == lines


def test_changing_a_filter_returns_to_the_first_page(client, loaded):
    body = quarantine_body(
        page_current=2, source="cad", trigger="status-quarantine-source.value"
    )
    out = call(client, body)
    assert out["status-quarantine-table"]["page_current"] == 0
    assert out["status-quarantine-table"]["data"][0]["line"] == 0


def test_layout_prefills_filters_from_the_url(client, loaded):
    body = route_to("/data-status")
    body["inputs"][1]["value"] = "?source=cad&text=grade"
    page = str(call(client, body)["_pages_content"]["children"])
    assert "'value': 'cad'" in page and "'value': 'grade'" in page


def test_navbar_says_when_the_data_is_from(client, loaded):
    body = callback_body(
        [("shell-data-as-at", "children")], [("shell-refresh", "n_intervals", 1)]
    )
    text = call(client, body)["shell-data-as-at"]["children"]
    assert text.startswith("Data as at ") and text[-3:] in ("GMT", "BST")


def test_home_page_summarises_what_is_loaded(client, loaded):
    body = callback_body(
        [("home-data-summary", "children")], [("home-data-summary", "id", None)]
    )
    table = call(client, body, role="display")["home-data-summary"]["children"]
    assert [r["source"] for r in table["props"]["data"]] == ["cad", "calls"]


def test_cached_query_is_dropped_by_the_next_successful_run(dash_app):
    from dashboards import components
    from queries import status

    url = os.environ["BLUELAMP_WAREHOUSE_URL"]
    first = [run_row(1, "cad", now())]
    publish(url, first, [reject(1, "cad", 2, "x", "bad")])
    # Each step is its own request: a request looks the run id up once.
    with dash_app.server.test_request_context():
        assert components.cached_query(status.quarantine_count) == 1
    # Same run id: the cached answer stands even though the rows changed.
    publish(url, first, [reject(1, "cad", n, "x", "bad") for n in range(3)])
    with dash_app.server.test_request_context():
        assert components.cached_query(status.quarantine_count) == 1
    publish(url, [*first, run_row(2, "cad", now())], [])
    with dash_app.server.test_request_context():
        assert components.cached_query(status.quarantine_count) == 0
