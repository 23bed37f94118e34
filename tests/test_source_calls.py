"""The calls source in both shapes, and answering_bands agreeing between them."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from etl import pipeline, warehouse
from queries.calls import answering_bands

ROOT = Path(__file__).resolve().parent.parent
INTERVAL_MAPPING = ROOT / "etl" / "mappings" / "calls-alexandria_va_decc_2025.toml"
PHONE = "call_answering/alexandria_va_decc_2025"
CALL_HEADER = [
    "call_id",
    "line",
    "bt_connected_at",
    "queued_at",
    "answered_at",
    "abandoned_at",
]
# The interval report's band columns per line, in the order of the bands' upper
# bounds (seconds, exclusive; None = no bound).
BAND_BOUNDS = [10, 15, 20, 40, 60, 120, None]
PREFIX = {"999": "911", "101": "ADM"}
SUFFIXES = ["10", "15", "20", "40", "60", "120", "121"]


def bands(url: str, **filters) -> pd.DataFrame:
    with warehouse.Reader(url).connect() as conn:
        return answering_bands(conn, **filters)


def write_calls(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CALL_HEADER)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in CALL_HEADER})
    return path


def call(
    call_id: str,
    line: str,
    queued: dt.datetime,
    answer: float | None,
    abandon_after: float = 30.0,
) -> dict:
    row = {"call_id": call_id, "line": line, "queued_at": queued.isoformat()}
    if line == "999":
        row["bt_connected_at"] = (queued - dt.timedelta(seconds=7)).isoformat()
    if answer is None:
        row["abandoned_at"] = (queued + dt.timedelta(seconds=abandon_after)).isoformat()
    else:
        row["answered_at"] = (queued + dt.timedelta(seconds=answer)).isoformat()
    return row


def synthetic_calls() -> list[dict]:
    """Calls over two hours and both lines, with answers at and around band edges."""
    answers = [
        0,
        3,
        9.999,
        10,
        10,
        14.5,
        15,
        19,
        20,
        39.9,
        40,
        59,
        60,
        61,
        119,
        120,
        300,
        None,
        None,
        2,
        10.0,
        None,
    ]
    start = dt.datetime(2025, 6, 2, 9, 0, 5, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    rows = []
    for n, answer in enumerate(answers * 3):
        line = "999" if n % 3 else "101"
        queued = start + dt.timedelta(minutes=n * 2, seconds=n % 7)
        rows.append(call(f"C{n:03d}", line, queued, answer))
    return rows


def band_column(seconds: float) -> str:
    for bound, suffix in zip(BAND_BOUNDS, SUFFIXES, strict=True):
        if bound is None or seconds < bound:
            return suffix
    raise AssertionError("unreachable")


def as_interval_report(rows: list[dict]) -> list[dict]:
    """The test's own aggregation of a call log into the Alexandria report's shape."""
    report: dict[str, dict] = {}
    for row in rows:
        queued = dt.datetime.fromisoformat(row["queued_at"])
        hour = queued.replace(minute=0, second=0, microsecond=0)
        key = f"{hour.month}/{hour.day}/{hour.year} {hour.hour}:00"
        out = report.setdefault(
            key,
            {
                "DateTime": key,
                **{
                    f"{p}_{s}": 0
                    for p in PREFIX.values()
                    for s in [*SUFFIXES, "AB", "T"]
                },
            },
        )
        prefix = PREFIX[row["line"]]
        if row.get("answered_at"):
            answered = dt.datetime.fromisoformat(row["answered_at"])
            out[f"{prefix}_{band_column((answered - queued).total_seconds())}"] += 1
        else:
            out[f"{prefix}_AB"] += 1
        out[f"{prefix}_T"] += 1
    return list(report.values())


def write_report(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


# ---------------------------------------------------------------------------
# Call-level log


def test_call_log_loads_with_answer_wait_and_bt_times(warehouse_url, tmp_path):
    queued = dt.datetime(2025, 3, 30, 0, 59, 50, tzinfo=dt.UTC)  # clocks go forward
    rows = [call("A", "999", queued, 12.5), call("B", "101", queued, None, 45)]
    result = pipeline.run(warehouse_url, "calls", write_calls(tmp_path / "c.csv", rows))
    assert result.status == "succeeded", result.message
    assert (result.rows_loaded, result.rows_rejected) == (2, 0)
    got = (
        warehouse.Reader(warehouse_url)
        .read_sql("SELECT * FROM fct_call ORDER BY call_id")
        .set_index("call_id")
    )
    assert got.loc["A", "answer_seconds"] == 12.5
    assert got.loc["A", "wait_seconds"] == 12.5
    assert got.loc["A", "bt_seconds"] == 7
    assert pd.isna(got.loc["B", "answer_seconds"])
    assert got.loc["B", "wait_seconds"] == 45
    assert pd.isna(got.loc["B", "bt_seconds"])
    assert got.loc["A", "local_hour"] == 0  # 00:59:50 GMT, just before 02:00 BST
    again = pipeline.run(warehouse_url, "calls", tmp_path / "c.csv")
    assert (again.rows_loaded, again.rows_duplicate) == (0, 2)


def test_bad_calls_are_quarantined_with_reason_and_line(warehouse_url, tmp_path):
    queued = dt.datetime(2025, 6, 2, 9, 0, tzinfo=dt.UTC)
    neither = call("N", "999", queued, 5)
    neither.pop("answered_at")
    early = call("E", "999", queued, -3)
    rows = [call("G", "999", queued, 5), neither, early, call("U", "111", queued, 5)]
    result = pipeline.run(warehouse_url, "calls", write_calls(tmp_path / "c.csv", rows))
    assert result.status == "succeeded", result.message
    assert (result.rows_loaded, result.rows_rejected) == (1, 3)
    quarantine = warehouse.Reader(warehouse_url).read_sql(
        "SELECT line, reason FROM etl_quarantine ORDER BY line"
    )
    assert quarantine.values.tolist() == [
        [3, "neither answered nor abandoned"],
        [4, "answered before queued"],
        [5, "unknown line (expected 999, 101, other)"],
    ]


def test_a_file_of_neither_shape_fails_with_a_message(duckdb_url, tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("when,what\n2025-01-01,x\n", encoding="utf-8")
    result = pipeline.run(duckdb_url, "calls", path)
    assert result.status == "failed"
    assert "x.csv" in result.message and "call_id" in result.message


# ---------------------------------------------------------------------------
# Both shapes agree


def test_answering_bands_agree_between_call_log_and_interval_report(
    warehouse_url, tmp_path
):
    # Both shapes of the same calls in one warehouse, told apart by source.
    rows = synthetic_calls()
    log = pipeline.run(warehouse_url, "calls", write_calls(tmp_path / "log.csv", rows))
    report_rows = as_interval_report(rows)
    report = pipeline.run(
        warehouse_url,
        "calls",
        write_report(tmp_path / "report.csv", report_rows),
        INTERVAL_MAPPING,
    )
    assert log.status == report.status == "succeeded", (log.message, report.message)
    assert (log.rows_loaded, report.rows_loaded) == (len(rows), len(report_rows))
    from_log = bands(warehouse_url, source="calls")
    from_report = bands(warehouse_url, source="alexandria-decc")
    columns = [
        "line",
        "answered_within_10",
        "answered_10_to_60",
        "answered_60_plus",
        "answered",
        "abandoned",
        "offered",
        "share_within_10",
    ]
    pd.testing.assert_frame_equal(from_log[columns], from_report[columns])
    within_10 = sum(r["911_10"] for r in report_rows)
    assert from_log.set_index("line").loc["999", "answered_within_10"] == within_10
    assert from_report["mean_answer_seconds"].isna().all()


def test_answering_bands_match_counts_made_in_the_test(warehouse_url, tmp_path):
    rows = synthetic_calls()
    assert (
        pipeline.run(
            warehouse_url, "calls", write_calls(tmp_path / "log.csv", rows)
        ).status
        == "succeeded"
    )
    got = bands(warehouse_url).set_index("line")
    for line in ("999", "101"):
        answers = [
            (
                dt.datetime.fromisoformat(r["answered_at"])
                - dt.datetime.fromisoformat(r["queued_at"])
            ).total_seconds()
            for r in rows
            if r["line"] == line and r.get("answered_at")
        ]
        assert got.loc[line, "answered_within_10"] == sum(a < 10 for a in answers)
        assert got.loc[line, "answered_60_plus"] == sum(a >= 60 for a in answers)
        assert got.loc[line, "mean_answer_seconds"] == pytest.approx(
            sum(answers) / len(answers)
        )
        assert got.loc[line, "offered"] == sum(r["line"] == line for r in rows)


def test_answering_bands_filter_by_line_and_local_time(duckdb_url, tmp_path):
    rows = synthetic_calls()
    pipeline.run(duckdb_url, "calls", write_calls(tmp_path / "log.csv", rows))
    # Calls start 09:00 BST on 2 June 2025; the first local hour holds 30 calls.
    first_hour = bands(
        duckdb_url,
        line="999",
        start=dt.datetime(2025, 6, 2, 9),
        end=dt.datetime(2025, 6, 2, 10),
    )
    in_hour = [
        r
        for r in rows
        if r["line"] == "999" and dt.datetime.fromisoformat(r["queued_at"]).hour == 9
    ]
    assert first_hour["line"].tolist() == ["999"]
    assert first_hour["offered"].iloc[0] == len(in_hour)
    assert bands(duckdb_url, source="elsewhere").empty


# ---------------------------------------------------------------------------
# The real interval report


def phone_files(shared_data: Path) -> list[Path]:
    return sorted((shared_data / PHONE).glob("*.csv"))


@pytest.mark.real_data
def test_real_interval_report_loads_and_999_within_10_matches_the_raw_column(
    warehouse_url, shared_data
):
    files = phone_files(shared_data)
    result = pipeline.run(warehouse_url, "calls", shared_data / PHONE, INTERVAL_MAPPING)
    assert result.status == "succeeded", result.message
    raw = []
    for path in files:
        with path.open(encoding="utf-8", newline="") as handle:
            raw.extend(csv.DictReader(handle))
    assert (result.files, result.rows_read, result.rows_loaded) == (
        len(files),
        len(raw),
        len(raw),
    )
    assert len(raw) == 840  # cross-check: PROVENANCE.md, 168 hourly rows x 5 files
    got = bands(warehouse_url).set_index("line")
    assert got.loc["999", "answered_within_10"] == sum(int(r["911_10"]) for r in raw)
    assert got.loc["101", "answered_within_10"] == sum(int(r["ADM_10"]) for r in raw)
    assert got.loc["999", "offered"] == sum(int(r["911_T"]) for r in raw)
    assert got.loc["999", "abandoned"] == sum(int(r["911_AB"]) for r in raw)
    again = pipeline.run(warehouse_url, "calls", shared_data / PHONE, INTERVAL_MAPPING)
    assert (again.rows_loaded, again.rows_duplicate) == (0, len(raw))


@pytest.mark.real_data
def test_interval_row_whose_total_disagrees_is_quarantined(
    duckdb_url, shared_data, tmp_path
):
    source = phone_files(shared_data)[0]
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    header = lines[0].rstrip("\r\n").split(",")
    fields = lines[1].rstrip("\r\n").split(",")
    total = header.index("911_T")
    fields[total] = str(int(fields[total]) + 1)
    bad = ",".join(fields) + "\n"
    path = tmp_path / "week.csv"
    path.write_text("".join([lines[0], bad, *lines[2:]]), encoding="utf-8")
    result = pipeline.run(duckdb_url, "calls", path, INTERVAL_MAPPING)
    assert result.status == "succeeded", result.message
    assert (result.rows_loaded, result.rows_rejected) == (len(lines) - 2, 1)
    quarantine = warehouse.Reader(duckdb_url).read_sql(
        "SELECT line, reason FROM etl_quarantine"
    )
    assert quarantine.values.tolist() == [
        [2, "line 999: 911_T is not the answered bands plus 911_AB"]
    ]
