"""Poisson z, significance labels, rates and control limits on known numbers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from queries import stats


@pytest.mark.parametrize(
    ("current", "previous", "expected"),
    [(25, 16, 2.0), (16, 25, -2.0), (0, 0, 0.0), (9, 0, 6.0), (0, 4, -4.0)],
)
def test_poisson_z_is_twice_the_difference_of_square_roots(current, previous, expected):
    assert stats.poisson_z(current, previous) == pytest.approx(expected)


def test_poisson_z_on_series_keeps_the_index():
    current = pd.Series([25, 0, 100], index=["a", "b", "c"])
    previous = pd.Series([16, 0, 64], index=["a", "b", "c"])
    expected = pd.Series([2.0, 0.0, 4.0], index=["a", "b", "c"])
    pd.testing.assert_series_equal(stats.poisson_z(current, previous), expected)


def test_poisson_z_does_not_modify_its_inputs():
    current, previous = pd.Series([25, 4]), pd.Series([16, 9])
    stats.poisson_z(current, previous)
    pd.testing.assert_series_equal(current, pd.Series([25, 4]))
    pd.testing.assert_series_equal(previous, pd.Series([16, 9]))


@pytest.mark.parametrize(
    ("z", "label"),
    [
        (0.0, "noise"),
        (1.9599, "noise"),
        (1.96, "watch"),
        (-1.96, "watch"),
        (2.9999, "watch"),
        (3.0, "signal"),
        (-3.0, "signal"),
        (12.0, "signal"),
        (math.nan, "noise"),
    ],
)
def test_significance_at_the_boundaries(z, label):
    assert stats.significance(z) == label


def test_significance_on_a_series():
    z = pd.Series([0.5, -1.96, 3.0, -2.5, np.nan], index=list("vwxyz"), name="z")
    expected = pd.Series(
        ["noise", "watch", "signal", "watch", "noise"],
        index=list("vwxyz"),
        name="z",
        dtype="str",
    )
    pd.testing.assert_series_equal(stats.significance(z), expected)
    pd.testing.assert_series_equal(
        z, pd.Series([0.5, -1.96, 3.0, -2.5, np.nan], index=list("vwxyz"), name="z")
    )


def test_rate_per_1000_is_missing_where_there_are_no_residents():
    counts = pd.Series([5, 3, 2])
    population = pd.Series([1000, 0, pd.NA], dtype="Int64")
    rates = stats.rate_per_1000(counts, population)
    pd.testing.assert_series_equal(rates, pd.Series([5.0, np.nan, np.nan]))
    assert stats.rate_per_1000(7, 3500) == pytest.approx(2.0)
    assert stats.rate_per_1000(7, 0) is None
    assert stats.rate_per_1000(7, None) is None
    pd.testing.assert_series_equal(counts, pd.Series([5, 3, 2]))


def test_c_chart_limits_on_a_known_series():
    # mean 16: limits 16 -+ 3 * 4 = 4 and 28.
    counts = pd.Series([10, 16, 30, 8, 2, 30], index=range(10, 16))
    chart = stats.c_chart(counts)
    expected = pd.DataFrame(
        {
            "centre": 16.0,
            "lower": 4.0,
            "upper": 28.0,
            "outside": [False, False, True, False, True, True],
        },
        index=range(10, 16),
    )
    pd.testing.assert_frame_equal(chart, expected)


def test_c_chart_floors_the_lower_limit_at_zero():
    chart = stats.c_chart(pd.Series([1, 0, 2, 1]))
    assert (chart["lower"] == 0.0).all()
    assert chart["upper"].iloc[0] == pytest.approx(1.0 + 3.0)
    assert not chart["outside"].any()


def test_c_chart_of_no_months_is_empty():
    chart = stats.c_chart(pd.Series([], dtype="int64"))
    assert list(chart.columns) == ["centre", "lower", "upper", "outside"]
    assert chart.empty


def test_c_chart_does_not_modify_its_input():
    counts = pd.Series([10, 16, 30])
    stats.c_chart(counts)
    pd.testing.assert_series_equal(counts, pd.Series([10, 16, 30]))


def test_u_chart_limits_on_a_known_series():
    # centre = 40 / 400 = 0.1; sigma_i = sqrt(0.1 / e_i).
    counts = pd.Series([12, 0, 28])
    exposure = pd.Series([100.0, 100.0, 200.0])
    chart = stats.u_chart(counts, exposure)
    sigma_100, sigma_200 = math.sqrt(0.1 / 100), math.sqrt(0.1 / 200)
    expected = pd.DataFrame(
        {
            "rate": [0.12, 0.0, 0.14],
            "centre": 0.1,
            "lower": [
                0.1 - 3 * sigma_100,
                0.1 - 3 * sigma_100,
                0.1 - 3 * sigma_200,
            ],
            "upper": [
                0.1 + 3 * sigma_100,
                0.1 + 3 * sigma_100,
                0.1 + 3 * sigma_200,
            ],
            "outside": [False, True, False],
        }
    )
    pd.testing.assert_frame_equal(chart, expected)


def test_u_chart_floors_the_lower_limit_and_skips_zero_exposure():
    chart = stats.u_chart(pd.Series([1, 0, 3]), pd.Series([10.0, 0.0, 10.0]))
    assert chart["centre"].iloc[0] == pytest.approx(4 / 20)
    assert chart["lower"].iloc[0] == 0.0
    assert np.isnan(chart["rate"].iloc[1]) and not chart["outside"].iloc[1]


def test_u_chart_does_not_modify_its_inputs():
    counts, exposure = pd.Series([10, 2]), pd.Series([100.0, 0.0])
    stats.u_chart(counts, exposure)
    pd.testing.assert_series_equal(counts, pd.Series([10, 2]))
    pd.testing.assert_series_equal(exposure, pd.Series([100.0, 0.0]))
