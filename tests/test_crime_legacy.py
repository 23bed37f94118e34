"""The crime page's data and figures on the 2011 legacy file's coarse categories."""

from __future__ import annotations

import csv

import pytest

from dashboards import exports, figures
from etl import pipeline, warehouse

pytestmark = pytest.mark.real_data
LEGACY = "crime/legacy_2011/2011-02-west-midlands-street.csv"


@pytest.fixture(scope="module")
def reader(shared_data, tmp_path_factory):
    url = f"duckdb:///{tmp_path_factory.mktemp('legacy') / 'warehouse.duckdb'}"
    assert pipeline.run(url, "boundaries", shared_data / "boundaries").status == (
        "succeeded"
    )
    assert pipeline.run(url, "police-uk-street", shared_data / LEGACY).status == (
        "succeeded"
    )
    return warehouse.Reader(url)


@pytest.fixture(scope="module")
def raw(shared_data) -> list[dict]:
    with open(shared_data / LEGACY, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def run_on(reader):
    def query(fn, *args, **kwargs):
        with reader.connect() as conn:
            return fn(conn, *args, **kwargs)

    return query


def test_every_crime_chart_draws_from_the_legacy_categories(reader, raw):
    query = run_on(reader)
    resolved = exports.resolve_query_string("?period=last-month", query)
    assert not resolved.problems
    legacy_types = {r["Crime type"] for r in raw} - {"Anti-social behaviour"}

    kpis = exports.chart_frame("kpis", resolved, query).iloc[0]
    assert kpis["crimes"] == sum(r["Crime type"] in legacy_types for r in raw)
    assert kpis["asb"] == sum(r["Crime type"] == "Anti-social behaviour" for r in raw)

    types = exports.chart_frame("types", resolved, query)
    assert set(types["crime_type"]) == legacy_types
    for row in types.itertuples():
        assert row.crimes == sum(r["Crime type"] == row.crime_type for r in raw)

    figure_of = {
        "trend": figures.crime_trend,
        "types": figures.crime_types,
        "outcomes": figures.crime_outcomes,
    }
    for chart, build in figure_of.items():
        figure = build(exports.chart_frame(chart, resolved, query))
        assert figure.data, chart
    areas = exports.chart_frame("areas", resolved, query)
    assert areas["crimes"].sum() > 0


def test_drilling_into_a_district_keeps_the_legacy_counts(reader, raw):
    query = run_on(reader)
    resolved = exports.resolve_query_string(
        "?period=last-month&level=lad&area=E08000025", query
    )
    assert not resolved.problems
    wards = exports.chart_frame("areas", resolved, query)
    district = exports.chart_frame("kpis", resolved, query).iloc[0]
    assert len(wards) > 10
    assert wards["crimes"].sum() == district["crimes"] > 0
