"""Incident and call-answering figures from real exports equal sums of the raw files.

Every expected figure is computed here straight from the raw CSVs, with the mapping
files read as TOML and times converted with zoneinfo, never through the ETL code.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import statistics
import tomllib
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from etl import grades, pipeline, warehouse
from queries import incidents
from queries.incidents import IncidentFilters

pytestmark = pytest.mark.real_data

ROOT = Path(__file__).resolve().parent.parent
MAPPINGS = ROOT / "etl" / "mappings"
ALEXANDRIA = "cad/alexandria_va_decc_2025"
SEATTLE = (
    "cad/seattle_spd_911_incident_response_2015/"
    "seattle_spd_911_incident_response_2015.csv"
)
MILWAUKEE = (
    "cad/milwaukee_mpd_calls_2018_05/milwaukee_mpd_calls_for_service_2018-05.csv"
)
CALLS = "call_answering/alexandria_va_decc_2025"
ALEXANDRIA_MAPPING = MAPPINGS / "cad-alexandria_va_decc_2025.toml"
CALLS_MAPPING = MAPPINGS / "calls-alexandria_va_decc_2025.toml"
SEATTLE_MAPPING = MAPPINGS / "cad-seattle_spd_911_incident_response_2015.toml"
MILWAUKEE_MAPPING = MAPPINGS / "cad-milwaukee_mpd_calls_2018_05.toml"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def _toml(path: Path) -> dict:
    with path.open("rb") as handle:
        return tomllib.load(handle)


@pytest.fixture(scope="module")
def loaded(shared_data, tmp_path_factory):
    """One DuckDB warehouse holding every real export, loaded once for the module."""
    url = f"duckdb:///{tmp_path_factory.mktemp('real') / 'warehouse.duckdb'}"
    runs = {
        "alexandria": pipeline.run(
            url, "cad", shared_data / ALEXANDRIA, ALEXANDRIA_MAPPING
        ),
        "seattle": pipeline.run(url, "cad", shared_data / SEATTLE, SEATTLE_MAPPING),
        "milwaukee": pipeline.run(
            url, "cad", shared_data / MILWAUKEE, MILWAUKEE_MAPPING
        ),
        "calls": pipeline.run(url, "calls", shared_data / CALLS, CALLS_MAPPING),
    }
    for name, result in runs.items():
        assert result.status == "succeeded", f"{name}: {result.message}"
    reader = warehouse.Reader(url)
    with reader.connect() as conn:
        yield conn, runs
    reader._engine.dispose()


# ---------------------------------------------------------------------------
# Alexandria: the whole lifecycle


def _utc(value: str, zone: ZoneInfo) -> dt.datetime | None:
    """A zone-less export time as naive UTC; a repeated hour takes its first pass."""
    if value == "NULL":
        return None
    local = dt.datetime.strptime(value, TIME_FORMAT).replace(tzinfo=zone)
    return local.astimezone(dt.UTC).replace(tzinfo=None)


def _raw_alexandria(folder: Path) -> pd.DataFrame:
    frames = []
    for path in sorted(folder.glob("*.csv.gz")):
        with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
            frames.append(pd.DataFrame(list(csv.DictReader(handle))))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def alexandria_expected(shared_data) -> pd.DataFrame:
    """Kept police incidents with grade, attend seconds and target, from raw CSVs."""
    mapping = _toml(ALEXANDRIA_MAPPING)
    zone = ZoneInfo(mapping["source"]["time_zone"])
    raw = _raw_alexandria(shared_data / ALEXANDRIA)
    police = raw[raw["Agency"] == "POLICE"]
    police = police[police["Master_Incident_Number"].str.strip() != ""]
    times = {
        name: [_utc(v, zone) for v in police[column]]
        for name, column in {
            "created": "Incident_Start_Time",
            "dispatched": "Incident_Dispatch_Time",
            "arrived": "Incident_Arrival_Time",
            "closed": "Final_Closed_Time",
        }.items()
    }
    frame = pd.DataFrame(times, index=police.index).astype("datetime64[us]")

    def before(later, earlier):
        return (frame[later] < frame[earlier]).fillna(False)

    quarantined = (
        before("arrived", "dispatched")
        | before("dispatched", "created")
        | before("closed", "created")
    )
    grade_map = mapping["grades"]
    frame["grade"] = [
        grade_map["map"].get(p.strip(), grade_map["other"])
        for p in police["Priority_Number"]
    ]
    frame["attend_seconds"] = (frame["arrived"] - frame["created"]).dt.total_seconds()
    frame = frame[~quarantined]
    # Targets in force for the 2025 data; no location: the urban target.
    current = {
        g["grade"]: g["target_urban_minutes"]
        for g in grades.DEFAULT_GRADES
        if g["valid_to"] is None
    }
    frame["target_seconds"] = frame["grade"].map(
        lambda g: np.nan if current.get(g) is None else current[g] * 60
    )
    frame.attrs["quarantined"] = int(quarantined.sum())
    return frame


def _alexandria_filters(conn) -> IncidentFilters:
    first, last = incidents.date_range(conn, "alexandria-decc")
    return IncidentFilters(first, last, source="alexandria-decc")


def test_alexandria_quarantine_matches_the_raw_order_checks(
    loaded, alexandria_expected
):
    conn, runs = loaded
    sources = incidents.incident_sources(conn).set_index("source")
    assert sources.loc["alexandria-decc", "incidents"] == len(alexandria_expected)
    # Blank ids are quarantined too; the rest are the out-of-order rows.
    blank = runs["alexandria"].rows_rejected - alexandria_expected.attrs["quarantined"]
    assert blank >= 0
    assert incidents.not_recorded(conn, "alexandria-decc") == [
        "call_received",
        "call_answered",
    ]


def test_alexandria_median_and_share_within_target_per_grade(
    loaded, alexandria_expected
):
    conn, _ = loaded
    got = incidents.attendance_by_grade(conn, _alexandria_filters(conn))
    got = got.set_index("final_grade")
    raw = alexandria_expected
    assert sorted(got.index) == sorted(raw["grade"].unique())
    for grade, rows in raw.groupby("grade"):
        attend = rows["attend_seconds"].dropna()
        row = got.loc[grade]
        assert row["incidents"] == len(rows), grade
        assert row["attended"] == rows["arrived"].notna().sum(), grade
        # DuckDB stores the seconds as 4-byte FLOAT: equal to within a millisecond.
        assert row["median_attend_min"] * 60 == pytest.approx(
            statistics.median(attend), abs=1e-3
        ), grade
        assert row["p90_attend_min"] * 60 == pytest.approx(
            np.percentile(attend, 90), abs=1e-3
        ), grade
        measured = rows[rows["attend_seconds"].notna() & rows["target_seconds"].notna()]
        within = int((measured["attend_seconds"] <= measured["target_seconds"]).sum())
        assert row["with_target"] == len(measured), grade
        assert row["within_target"] == within, grade
        if len(measured):
            assert row["share_within_target"] == pytest.approx(within / len(measured))
        else:
            assert np.isnan(row["share_within_target"]), grade
    # Grades 1 and 2 carry targets and are measured; 3 and 4 never are.
    assert got.loc["1", "with_target"] > 0 and got.loc["2", "with_target"] > 0
    assert got.loc["3", "with_target"] == got.loc["4", "with_target"] == 0


def test_alexandria_hour_of_week_and_trend_cover_every_incident(
    loaded, alexandria_expected
):
    conn, _ = loaded
    f = _alexandria_filters(conn)
    cells = incidents.hour_of_week(conn, f)
    assert len(cells) == 168
    assert cells["incidents"].sum() == len(alexandria_expected)
    weekly = incidents.weekly_within_target(conn, f)
    grade_1 = alexandria_expected[alexandria_expected["grade"] == "1"]
    measured = grade_1["attend_seconds"].notna()
    assert weekly["with_target"].sum() == measured.sum()
    assert weekly["within_target"].sum() == (grade_1["attend_seconds"] <= 900).sum()
    assert (weekly["target_minutes"] == 15.0).all()


def test_alexandria_timeline_components_add_up_to_attend(loaded):
    conn, _ = loaded
    f = _alexandria_filters(conn)
    late = incidents.exceptions(conn, f, margin_minutes=5, limit=5)
    assert len(late) == 5
    assert late["reference_at"].is_monotonic_decreasing
    assert (late["attend_min"] > late["target_min"] + 5).all()
    first = late.iloc[0]
    timeline = incidents.incident_timeline(conn, first["source"], first["incident_id"])
    # Without a call-answer time, dispatch runs from creation: dispatch + travel.
    assert timeline["component_min"].sum() == pytest.approx(first["attend_min"])
    assert timeline.loc[timeline["step"] == "call_received", "at_utc"].isna().all()


# ---------------------------------------------------------------------------
# Seattle and Milwaukee: volumes only


def _raw_rows(path: Path) -> int:
    with path.open(encoding="utf-8", newline="") as handle:
        return sum(1 for _ in csv.DictReader(handle))


@pytest.mark.parametrize(
    ("source", "path", "recorded", "attended_all"),
    [
        ("seattle-spd", SEATTLE, ["arrived"], True),
        ("milwaukee-mpd", MILWAUKEE, ["incident_created"], False),
    ],
)
def test_partial_exports_show_volumes_and_say_what_is_not_recorded(
    loaded, shared_data, source, path, recorded, attended_all
):
    conn, _ = loaded
    raw_rows = _raw_rows(shared_data / path)
    sources = incidents.incident_sources(conn).set_index("source")
    assert sources.loc[source, "incidents"] == raw_rows
    missing = incidents.not_recorded(conn, source)
    assert missing == [s for s in incidents.STEPS if s not in recorded]
    first, last = incidents.date_range(conn, source)
    got = incidents.attendance_by_grade(conn, IncidentFilters(first, last, source))
    assert got["incidents"].sum() == raw_rows
    assert got["attended"].sum() == (raw_rows if attended_all else 0)
    assert got["with_target"].sum() == 0
    for column in ("median_attend_min", "p90_attend_min", "share_within_target"):
        assert got[column].isna().all(), column
    assert incidents.open_queue(
        conn, IncidentFilters(first, last, source), dt.datetime(2030, 1, 1)
    ).empty


# ---------------------------------------------------------------------------
# Call answering from the interval report


def test_999_answering_equals_sums_of_the_raw_interval_report(loaded, shared_data):
    conn, _ = loaded
    lines = _toml(CALLS_MAPPING)["interval"]["lines"]
    raw = pd.concat(
        [
            pd.read_csv(path, dtype=str)
            for path in sorted((shared_data / CALLS).glob("*.csv"))
        ],
        ignore_index=True,
    )
    days = pd.to_datetime(raw["DateTime"], format="%m/%d/%Y %H:%M").dt.date
    got = incidents.call_answering(conn, days.min(), days.max()).set_index("line")
    for line in ("999", "101"):
        columns = lines[line]
        bands = [c for key, c in columns.items() if key.startswith("answered_")]
        counts = raw[[*bands, columns["abandoned"], columns["offered"]]].astype(int)
        # A row whose offered is not bands plus abandoned would be quarantined.
        balanced = (
            counts[bands].sum(axis=1) + counts[columns["abandoned"]]
            == counts[columns["offered"]]
        )
        counts = counts[balanced]
        within = int(counts[columns["answered_10"]].sum())
        answered = int(counts[bands].sum().sum())
        row = got.loc[line]
        assert row["within_10"] == within, line
        assert row["offered"] == int(counts[columns["offered"]].sum()), line
        assert row["abandoned"] == int(counts[columns["abandoned"]].sum()), line
        assert row["answered"] == answered, line
        assert row["share_within_10"] == pytest.approx(within / answered), line
        # Interval reports have no call-level times: no mean, never 0 seconds.
        assert np.isnan(row["mean_answer_s"]) and np.isnan(row["mean_bt_s"]), line
    assert got.loc["999", "offered"] > 0
