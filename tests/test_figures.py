"""Figure builders: the right traces from tiny frames, and the shared template."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from dashboards import figures


def monthly_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "month": [dt.date(2022, m, 1) for m in (1, 2, 3)],
            "crimes": [10, 40, 12],
            "crimes_last_year": [9, 11, 10],
            "centre": [20.0] * 3,
            "lower": [6.6] * 3,
            "upper": [33.4] * 3,
            "outside": [False, True, False],
        }
    )


def test_trend_marks_only_the_points_outside_the_limits():
    frame = monthly_frame()
    figure = figures.crime_trend(frame)
    names = [t.name for t in figure.data]
    assert "Same month last year" in names and "Centre (mean)" in names
    outside = next(t for t in figure.data if t.name == "Outside the limits")
    assert list(outside.x) == ["2022-02"] and list(outside.y) == [40]
    assert figure.layout.template == figures.TEMPLATE
    assert frame["outside"].tolist() == [False, True, False]  # input untouched


def test_type_bars_colour_only_signals_and_carry_the_type_for_clicks():
    frame = pd.DataFrame(
        {
            "crime_type": ["Robbery", "Drugs", "Burglary"],
            "crimes": [5, 100, 50],
            "crimes_last_year": [4, 40, 48],
            "z": [0.47, 7.35, 0.14],
            "significance": ["noise", "signal", "watch"],
        }
    )
    bar = figures.crime_types(frame).data[0]
    assert list(bar.y) == ["Robbery", "Burglary", "Drugs"]  # largest at the top
    assert list(bar.customdata) == ["Robbery", "Burglary", "Drugs"]
    assert list(bar.marker.color) == [figures.ACCENT, figures.ACCENT, figures.RISE]


def test_outcome_bars_show_shares_as_percent():
    frame = pd.DataFrame(
        {
            "outcome_group": ["Awaiting outcome", "Charged or summonsed"],
            "crimes": [3, 1],
            "share": [0.75, 0.25],
        }
    )
    bar = figures.crime_outcomes(frame).data[0]
    assert list(bar.x) == [25.0, 75.0] and list(bar.text) == ["25.0%", "75.0%"]


def test_empty_frames_give_a_figure_that_says_why():
    for figure in [
        figures.crime_trend(monthly_frame().iloc[:0]),
        figures.crime_types(pd.DataFrame(columns=["crime_type", "crimes"])),
        figures.crime_outcomes(pd.DataFrame(columns=["outcome_group", "share"])),
    ]:
        assert figure.data == ()
        assert figure.layout.annotations[0].text.startswith("No ")


def test_figures_module_is_not_a_page():
    source = open(figures.__file__, encoding="utf-8").read()
    assert "register" + "_page" not in source
