"""Post-load checks catch a duplicated or missing key on both engines."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from etl import checks, warehouse


def interval_rows(lines: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source": "x",
            "interval_start": dt.datetime(2025, 1, 1, 9),
            "line": lines,
            "interval_minutes": 60,
            **{c: 1 for c in ("answered_10", "answered_15", "answered_20",
                              "answered_40", "answered_60", "answered_120",
                              "answered_over_120", "abandoned", "offered")},
            "last_run_id": 1,
        }
    )


def test_unique_keys_pass(warehouse_url):
    warehouse.ensure_schema(warehouse_url)
    with warehouse.write(warehouse_url) as conn:
        warehouse.insert_frame(conn, "fct_call_interval", interval_rows(["999", "101"]))
        checks.check_facts(conn, ("fct_call_interval", "fct_crime"))


def test_a_duplicated_composite_key_fails_the_check(warehouse_url):
    warehouse.ensure_schema(warehouse_url)
    with pytest.raises(checks.CheckFailed, match="fct_call_interval: 1 rows duplicate"):
        with warehouse.write(warehouse_url) as conn:
            warehouse.insert_frame(
                conn, "fct_call_interval", interval_rows(["999", "999", "101"])
            )
            checks.check_facts(conn, ("fct_call_interval",))
