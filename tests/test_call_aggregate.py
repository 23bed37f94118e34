"""The calls load's daily aggregate (agg_call_day) gives the exact figures.

On DuckDB and PostgreSQL: `incidents.call_answering` and `trends.weekly_calls` read
from the aggregate equal, to the last bit, the same figures counted from fct_call and
fct_call_interval, for call-level logs, interval reports and both at once, across
both UK clock changes and midnight, and for the real interval report; a stale
aggregate is never read; a load bringing it up to date date by date leaves it as a
whole rebuild would.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import test_source_calls as sc
from sqlalchemy import text

from etl import pipeline, warehouse
from etl.sources import calls as calls_source
from queries import incidents, scope, trends

D = dt.date
LONDON = ZoneInfo("Europe/London")
UTC = dt.UTC
# Answer times at and either side of every band edge, to the microsecond.
ANSWERS = [
    0,
    0.000001,
    3.25,
    9.999999,
    10,
    10.000001,
    14.5,
    15,
    19.999,
    20,
    39.9,
    40,
    59.999999,
    60,
    61.5,
    119,
    120,
    300.123456,
    None,
    None,
]
# Calls every 37 s for about 12 minutes from each anchor (UTC): over local midnight
# in winter (GMT) and summer (BST), and over both clock changes of 2025.
ANCHORS = [
    dt.datetime(2025, 3, 29, 23, 55, tzinfo=UTC),  # 23:55 GMT -> 30 March
    dt.datetime(2025, 3, 30, 0, 56, tzinfo=UTC),  # 00:56 GMT -> 02:00 BST
    dt.datetime(2025, 10, 25, 22, 55, tzinfo=UTC),  # 23:55 BST -> 26 October
    dt.datetime(2025, 10, 26, 0, 54, tzinfo=UTC),  # 01:54 BST -> 01:00 GMT again
]
DAYS = [D(2025, 3, d) for d in range(28, 32)] + [D(2025, 10, d) for d in range(24, 28)]
PERIODS = [
    *((day, day) for day in DAYS),
    (D(2025, 3, 29), D(2025, 3, 30)),
    (D(2025, 10, 25), D(2025, 10, 26)),
    (D(2025, 3, 1), D(2025, 11, 30)),
    (D(2024, 1, 1), D(2024, 1, 31)),  # nothing held
]
WEEK_PERIODS = [
    (D(2025, 3, 24), D(2025, 4, 6)),
    (D(2025, 3, 30), D(2025, 10, 26)),
]
SOURCES = [None, "calls", "elsewhere"]


def _calls(prefix: str, anchors, lines=("999", "101", "other"), zone=UTC) -> list:
    """Call-log rows around each anchor, times written in `zone`."""
    rows = []
    for a, anchor in enumerate(anchors):
        for n in range(20):
            queued = (anchor + dt.timedelta(seconds=37 * n)).astimezone(zone)
            answer = ANSWERS[(n + 3 * a) % len(ANSWERS)]
            line = lines[(n + a) % len(lines)]
            rows.append(sc.call(f"{prefix}{a}-{n:02d}", line, queued, answer, 41.5))
    return rows


def _write_calls(path: Path, rows: list[dict]) -> Path:
    return sc.write_calls(path, rows)


def _interval_mapping(tmp_path: Path) -> Path:
    """The Alexandria report's mapping, naming the source as the call log's and
    placing its intervals in London, so both shapes fall on the same dates."""
    mapping = sc.INTERVAL_MAPPING.read_text(encoding="utf-8")
    mapping = mapping.replace('name = "alexandria-decc"', 'name = "calls"')
    mapping = mapping.replace('"America/New_York"', '"Europe/London"')
    path = tmp_path / "interval-mapping.toml"
    path.write_text(mapping, encoding="utf-8")
    return path


def _report_rows(prefix: str, anchors) -> list[dict]:
    """An hourly interval report of calls around the anchors, in London local time."""
    return sc.as_interval_report(_calls(prefix, anchors, ("999", "101"), LONDON))


def _load_calls(url: str, path: Path, rows: list[dict]) -> pipeline.RunResult:
    result = pipeline.run(url, "calls", _write_calls(path, rows))
    assert result.status == "succeeded", result.message
    return result


def _load_report(url: str, tmp_path: Path, name: str, rows: list[dict]):
    path = sc.write_report(tmp_path / name, rows)
    result = pipeline.run(url, "calls", path, _interval_mapping(tmp_path))
    assert result.status == "succeeded", result.message
    return result


@pytest.fixture
def reader(warehouse_url):
    made = warehouse.Reader(warehouse_url)
    yield made
    if made._engine is not None:
        made._engine.dispose()


def _forbidden(*_args, **_kwargs):
    raise AssertionError("the exact path ran while the aggregate was current")


def _both_paths(monkeypatch, conn, query, *args):
    """(query's frame from the aggregate, the same counted from the facts)."""
    assert incidents.calls_aggregate_current(conn)
    with monkeypatch.context() as patch:
        patch.setattr(incidents, "_answering_exact", _forbidden)
        patch.setattr(trends, "_weekly_calls_exact", _forbidden)
        fast = query(conn, *args)
    with monkeypatch.context() as patch:
        patch.setattr(incidents, "calls_aggregate_current", lambda _conn: False)
        exact = query(conn, *args)
    return fast, exact


def _assert_paths_agree(monkeypatch, conn) -> None:
    for start, end in PERIODS:
        for source in SOURCES:
            fast, exact = _both_paths(
                monkeypatch, conn, incidents.call_answering, start, end, source
            )
            pd.testing.assert_frame_equal(fast, exact, check_exact=True)
    for start, end in WEEK_PERIODS:
        for source in SOURCES:
            fast, exact = _both_paths(
                monkeypatch, conn, trends.weekly_calls, start, end, source
            )
            pd.testing.assert_frame_equal(fast, exact, check_exact=True)


def _offered_by_day(call_rows: list[dict], report_rows: list[dict]) -> dict:
    """(line, local date) -> calls offered, counted here from what was loaded."""
    offered: dict = {}
    for row in call_rows:
        queued = dt.datetime.fromisoformat(row["queued_at"]).astimezone(LONDON)
        key = (row["line"], queued.date())
        offered[key] = offered.get(key, 0) + 1
    for row in report_rows:
        day = dt.datetime.strptime(row["DateTime"], "%m/%d/%Y %H:%M").date()
        for line, prefix in sc.PREFIX.items():
            offered[(line, day)] = offered.get((line, day), 0) + row[f"{prefix}_T"]
    return offered


# ---------------------------------------------------------------------------
# The aggregate's figures are the exact ones


@pytest.mark.parametrize("shape", ["calls", "intervals", "mixed"])
def test_aggregate_figures_equal_the_exact_ones_over_clock_changes_and_midnight(
    shape, warehouse_url, reader, tmp_path, monkeypatch
):
    call_rows = _calls("C", ANCHORS) if shape != "intervals" else []
    report_rows = _report_rows("I", ANCHORS) if shape != "calls" else []
    if call_rows:
        _load_calls(warehouse_url, tmp_path / "log.csv", call_rows)
    if report_rows:
        _load_report(warehouse_url, tmp_path, "report.csv", report_rows)
    with reader.connect() as conn:
        _assert_paths_agree(monkeypatch, conn)
        # The calls land on the local dates counted here, clock changes included.
        for (line, day), offered in _offered_by_day(call_rows, report_rows).items():
            got = incidents.call_answering(conn, day, day).set_index("line")
            assert got.loc[line, "offered"] == offered, (line, day)
        if call_rows:
            got = incidents.call_answering(conn, D(2025, 3, 1), D(2025, 11, 30))
            answered = [
                r for r in call_rows if r["line"] == "999" and r.get("answered_at")
            ]
            waits = [
                (
                    dt.datetime.fromisoformat(r["answered_at"])
                    - dt.datetime.fromisoformat(r["queued_at"])
                ).total_seconds()
                for r in answered
            ]
            row = got.set_index("line").loc["999"]
            assert row["mean_answer_s"] == pytest.approx(sum(waits) / len(waits))
            assert row["mean_bt_s"] == pytest.approx(7.0)


def test_an_account_limited_to_areas_gets_no_calls_from_the_aggregate(
    warehouse_url, reader, tmp_path
):
    _load_calls(warehouse_url, tmp_path / "log.csv", _calls("C", ANCHORS))
    with reader.connect() as conn, scope.restricted_to({"E08000026"}):
        assert incidents.calls_aggregate_current(conn)
        answering = incidents.call_answering(conn, D(2025, 3, 1), D(2025, 11, 30))
        weekly = trends.weekly_calls(conn, D(2025, 3, 24), D(2025, 4, 6))
    assert answering["offered"].sum() == 0
    assert answering["share_within_10"].isna().all()
    assert weekly["offered"].sum() == 0


# ---------------------------------------------------------------------------
# Stale aggregates are not read


def test_rows_added_outside_the_calls_load_make_the_aggregate_stale(
    warehouse_url, reader, tmp_path, monkeypatch
):
    call_rows = _calls("C", ANCHORS)
    _load_calls(warehouse_url, tmp_path / "log.csv", call_rows)
    day = D(2025, 3, 30)
    with reader.connect() as conn:
        before = incidents.call_answering(conn, day, day).set_index("line")
    with warehouse.write(warehouse_url) as write:
        write.execute(
            text(
                """
                INSERT INTO fct_call (source, call_id, line, queued_at, answered_at,
                                      answer_seconds, wait_seconds, local_date,
                                      local_hour, last_run_id)
                SELECT source, 'outside', line, queued_at, answered_at, 2.0, 2.0,
                       local_date, local_hour, last_run_id
                FROM fct_call WHERE call_id = 'C1-00'
                """
            )
        )
    with reader.connect() as conn:
        assert not incidents.calls_aggregate_current(conn)
        after = incidents.call_answering(conn, day, day).set_index("line")
        line = after.index[after["offered"] != before["offered"]].tolist()
        assert len(line) == 1
        assert after.loc[line[0], "offered"] == before.loc[line[0], "offered"] + 1
        assert after.loc[line[0], "within_10"] == before.loc[line[0], "within_10"] + 1
    # The next calls load rebuilds it whole, and it is read again.
    _load_calls(warehouse_url, tmp_path / "again.csv", call_rows[:1])
    with reader.connect() as conn:
        _assert_paths_agree(monkeypatch, conn)
        again = incidents.call_answering(conn, day, day).set_index("line")
    pd.testing.assert_frame_equal(again, after)


def test_rows_rewritten_by_a_later_run_make_the_aggregate_stale(
    warehouse_url, reader, tmp_path
):
    _load_report(warehouse_url, tmp_path, "report.csv", _report_rows("I", ANCHORS))
    with warehouse.write(warehouse_url) as write:
        write.execute(
            text(
                "UPDATE fct_call_interval SET answered_10 = answered_10 + 1, "
                "offered = offered + 1, last_run_id = last_run_id + 100 "
                "WHERE line = '999' AND interval_start = :start"
            ),
            {"start": dt.datetime(2025, 3, 30, 0)},
        )
    with reader.connect() as conn:
        assert not incidents.calls_aggregate_current(conn)
        got = incidents.call_answering(conn, D(2025, 3, 30), D(2025, 3, 30))
        exact = warehouse.Reader(warehouse_url).read_sql(
            "SELECT sum(offered) AS n FROM fct_call_interval "
            "WHERE line = '999' AND CAST(interval_start AS DATE) = '2025-03-30'"
        )
    assert got.set_index("line").loc["999", "offered"] == int(exact["n"].iloc[0])


# ---------------------------------------------------------------------------
# Incremental loads


def _aggregate_rows(url: str) -> pd.DataFrame:
    frame = warehouse.Reader(url).read_sql(
        "SELECT * FROM agg_call_day ORDER BY source, line, local_date"
    )
    frame["local_date"] = pd.to_datetime(frame["local_date"]).dt.date
    for column in frame.columns.drop(["source", "line", "local_date"]):
        frame[column] = pd.to_numeric(frame[column]).astype("Int64")
    return frame


def test_an_incremental_load_leaves_the_aggregate_as_a_whole_rebuild_would(
    warehouse_url, reader, tmp_path, monkeypatch, caplog
):
    first_calls = _calls("C", ANCHORS[:2])
    first_report = _report_rows("I", ANCHORS[:2])
    _load_calls(warehouse_url, tmp_path / "log1.csv", first_calls)
    _load_report(warehouse_url, tmp_path, "report1.csv", first_report)
    # The second delivery: new days, a call answered later than first recorded, a
    # call that moves to another day, and a corrected interval row.
    changed = dict(first_calls[0])
    changed["answered_at"] = (
        dt.datetime.fromisoformat(changed["queued_at"]) + dt.timedelta(seconds=75)
    ).isoformat()
    moved = dict(first_calls[1])
    for column in ("bt_connected_at", "queued_at", "answered_at", "abandoned_at"):
        if moved.get(column):
            shifted = dt.datetime.fromisoformat(moved[column]) + dt.timedelta(days=2)
            moved[column] = shifted.isoformat()
    corrected = dict(first_report[0])
    corrected["911_10"] += 2
    corrected["911_T"] += 2
    caplog.set_level(logging.INFO, logger="bluelamp.etl.calls")
    second = _calls("C", ANCHORS[2:]) + [changed, moved]
    _load_calls(warehouse_url, tmp_path / "log2.csv", second)
    later_report = [corrected, *_report_rows("I", ANCHORS[2:])]
    result = _load_report(warehouse_url, tmp_path, "report2.csv", later_report)
    assert result.rows_loaded == len(later_report)
    rebuilt = [r.getMessage() for r in caplog.records if "call aggregate" in r.msg]
    assert len(rebuilt) == 2
    assert all("rebuilt the changed dates" in message for message in rebuilt)
    incremental = _aggregate_rows(warehouse_url)
    with reader.connect() as conn:
        _assert_paths_agree(monkeypatch, conn)
    with warehouse.write(warehouse_url) as write:
        assert (
            calls_source.rebuild_call_aggregate(write, result.run_id, whole=True)
            == "all"
        )
    pd.testing.assert_frame_equal(incremental, _aggregate_rows(warehouse_url))
    # The moved call left its first day.
    first_day = dt.datetime.fromisoformat(first_calls[1]["queued_at"])
    day = first_day.astimezone(LONDON).date()
    held = warehouse.Reader(warehouse_url).read_sql(
        "SELECT count(*) AS n FROM fct_call WHERE local_date = :day AND line = :line",
        {"day": day, "line": first_calls[1]["line"]},
    )
    row = incremental[
        (incremental["local_date"] == day)
        & (incremental["line"] == first_calls[1]["line"])
    ]
    assert int(row["call_rows"].sum()) == int(held["n"].iloc[0])


def test_a_repeated_load_rebuilds_nothing_and_stays_current(
    warehouse_url, reader, tmp_path, caplog
):
    rows = _calls("C", ANCHORS)
    _load_calls(warehouse_url, tmp_path / "log.csv", rows)
    before = _aggregate_rows(warehouse_url)
    caplog.set_level(logging.INFO, logger="bluelamp.etl.calls")
    again = _load_calls(warehouse_url, tmp_path / "log.csv", rows)
    assert again.rows_duplicate == len(rows)
    assert any("rebuilt nothing" in r.getMessage() for r in caplog.records)
    pd.testing.assert_frame_equal(before, _aggregate_rows(warehouse_url))
    with reader.connect() as conn:
        assert incidents.calls_aggregate_current(conn)


# ---------------------------------------------------------------------------
# The real interval report


@pytest.mark.real_data
def test_real_interval_report_from_the_aggregate_equals_raw_sums_and_exact_path(
    warehouse_url, reader, shared_data, monkeypatch
):
    folder = shared_data / sc.PHONE
    result = pipeline.run(warehouse_url, "calls", folder, sc.INTERVAL_MAPPING)
    assert result.status == "succeeded", result.message
    raw = []
    for path in sorted(folder.glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            raw.extend(csv.DictReader(handle))
    days = sorted(
        {dt.datetime.strptime(r["DateTime"], "%m/%d/%Y %H:%M").date() for r in raw}
    )
    with reader.connect() as conn:
        fast, exact = _both_paths(
            monkeypatch, conn, incidents.call_answering, days[0], days[-1]
        )
        pd.testing.assert_frame_equal(fast, exact, check_exact=True)
        got = fast.set_index("line")
        for line, prefix in sc.PREFIX.items():
            for column, raw_column in [
                ("within_10", "10"),
                ("offered", "T"),
                ("abandoned", "AB"),
            ]:
                total = sum(int(r[f"{prefix}_{raw_column}"]) for r in raw)
                assert got.loc[line, column] == total, (line, column)
        for day in days:
            fast, exact = _both_paths(
                monkeypatch, conn, incidents.call_answering, day, day
            )
            pd.testing.assert_frame_equal(fast, exact, check_exact=True)
        fast, exact = _both_paths(
            monkeypatch, conn, trends.weekly_calls, days[0], days[-1]
        )
        pd.testing.assert_frame_equal(fast, exact, check_exact=True)
