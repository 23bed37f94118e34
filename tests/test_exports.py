"""CSV exports: the header block, neutralised cells, no row cap, values as queried."""

from __future__ import annotations

import datetime as dt
import io

import pandas as pd
import pytest
import test_crime_page as crime_tests
from test_app_auth import login

from dashboards import exports
from queries import crime

# Fixtures shared by the app tests: Dash Pages allows one app per process.
app_home, dash_app = crime_tests.app_home, crime_tests.dash_app
crime_warehouse_url, crime_app = crime_tests.crime_warehouse_url, crime_tests.crime_app
crime_client = crime_tests.crime_client


def test_formula_cells_are_neutralised_and_numbers_left_alone():
    frame = pd.DataFrame(
        {
            "text": ["=1+1", "+44", "-3", "@x", "plain", "\t=cmd", None],
            "z": [-3.5, 1.0, 0.0, -1.0, 2.0, 3.0, 4.0],
        }
    )
    text = "".join(exports.csv_chunks(frame, [("Query", "?type==HYPERLINK()")]))
    lines = text.splitlines()
    assert lines[0] == "# Query: ?type==HYPERLINK()"
    body = pd.read_csv(io.StringIO("\n".join(lines[1:])), keep_default_na=False)
    assert body["text"].tolist() == [
        "'=1+1",
        "'+44",
        "'-3",
        "'@x",
        "plain",
        "'\t=cmd",
        "",
    ]
    assert body["z"].tolist() == [-3.5, 1.0, 0.0, -1.0, 2.0, 3.0, 4.0]
    assert frame.loc[0, "text"] == "=1+1"  # the input frame is not modified


def test_header_values_cannot_break_out_of_the_comment_block():
    lines = exports.header_lines([("Area", "Leicester\n=1+1,evil\r\nmore")])
    assert lines == ["# Area: Leicester =1+1,evil more\n"]


def test_chunks_hold_every_row_in_order():
    frame = pd.DataFrame({"n": range(45)})
    chunks = list(exports.csv_chunks(frame, [], chunk_rows=10))
    assert len(chunks) == 2 + 5
    body = pd.read_csv(io.StringIO("".join(chunks)))
    assert body["n"].tolist() == list(range(45))


def test_selection_round_trips_through_its_query_string():
    selection = exports.Selection(
        period="custom",
        start="2021-02",
        end="2022-01",
        types=("Robbery", "Drugs"),
        level="ward",
        area="E05001784",
        measure="harm",
    )
    parsed, problems = exports.parse_selection(
        exports.query_args(selection.query_string())
    )
    assert parsed == selection and problems == []
    assert exports.Selection().query_string() == ""


def csv_parts(text: str) -> tuple[list[str], pd.DataFrame]:
    lines = text.splitlines(True)
    header = [line for line in lines if line.startswith("# ")]
    body = "".join(line for line in lines if not line.startswith("# "))
    return header, pd.read_csv(io.StringIO(body))


def test_export_has_header_block_with_filters_definitions_time_and_run(crime_client):
    response = crime_client.get(
        "/export/crime/types.csv?period=custom&from=2021-01&to=2021-12",
        headers=login("analyst"),
    )
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment;")
    header, _ = csv_parts(response.get_data(as_text=True))
    text = "".join(header)
    assert "# Months: 2021-01 to 2021-12 (inclusive)" in text
    assert "# Crime types: all recorded crime types" in text
    assert "# Definition of z: Poisson z" in text
    assert "# ETL run id: 3" in text
    stamp = next(h for h in header if h.startswith("# Extracted at (UTC): "))
    extracted = dt.datetime.strptime(
        stamp.split(": ", 1)[1].strip(), "%Y-%m-%dT%H:%M:%SZ"
    )
    assert abs(extracted - dt.datetime.now(dt.UTC).replace(tzinfo=None)) < dt.timedelta(
        hours=1
    )


def test_points_export_has_no_row_cap(crime_client, crime_warehouse_url):
    search = "?period=custom&from=2019-12&to=2022-10"
    response = crime_client.get(
        "/export/crime/points.csv" + search, headers=login("analyst")
    )
    assert response.status_code == 200
    _, frame = csv_parts(response.get_data(as_text=True))
    expected = crime_tests.read(
        crime_warehouse_url,
        crime.crime_points,
        crime.CrimeFilters(dt.date(2019, 12, 1), dt.date(2022, 10, 1)),
    )
    assert len(frame) == len(expected) > 100_000
    assert frame["latitude"].sum() == pytest.approx(expected["latitude"].sum())


@pytest.mark.parametrize(
    ("chart", "fn", "key"),
    [
        ("types", crime.by_type, "crime_type"),
        ("outcomes", crime.outcome_groups, "outcome_group"),
        ("trend", crime.monthly, None),
    ],
)
def test_export_values_equal_the_query(
    crime_client, crime_warehouse_url, chart, fn, key
):
    search = (
        f"?period=custom&from=2022-01&to=2022-06&level=lad&area={crime_tests.LEICESTER}"
    )
    response = crime_client.get(
        f"/export/crime/{chart}.csv{search}", headers=login("analyst")
    )
    _, frame = csv_parts(response.get_data(as_text=True))
    f = crime.CrimeFilters(
        dt.date(2022, 1, 1), dt.date(2022, 6, 1), (), "lad", crime_tests.LEICESTER
    )
    expected = crime_tests.read(crime_warehouse_url, fn, f)
    assert len(frame) == len(expected) > 0
    assert frame["crimes"].tolist() == expected["crimes"].tolist()
    if key:
        assert frame[key].tolist() == expected[key].astype(object).tolist()


def test_areas_export_is_the_ranking_behind_the_map(crime_client, crime_warehouse_url):
    search = f"?level=lad&area={crime_tests.LEICESTER}&measure=rate"
    response = crime_client.get(
        f"/export/crime/areas.csv{search}", headers=login("admin")
    )
    _, frame = csv_parts(response.get_data(as_text=True))
    assert len(frame) == 22  # the city's wards
    rates = frame["rate_per_1000"].dropna().tolist()
    assert rates == sorted(rates, reverse=True)


def test_hotspot_export_is_self_contained_html(crime_client):
    response = crime_client.get(
        "/export/crime/hotspots.html?period=last-month", headers=login("analyst")
    )
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "L.heatLayer" in page and "crimes with coordinates" in page
    assert "<script src=" not in page and "<link " not in page
    assert "cdn." not in page
