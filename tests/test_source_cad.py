"""The cad source: the contract, mapped real exports, and the edge cases."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import statistics
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from etl import pipeline, warehouse

ROOT = Path(__file__).resolve().parent.parent
MAPPINGS = ROOT / "etl" / "mappings"
ALEXANDRIA = "cad/alexandria_va_decc_2025"
SEATTLE = "cad/seattle_spd_911_incident_response_2015"
MILWAUKEE = "cad/milwaukee_mpd_calls_2018_05"

CONTRACT_HEADER = [
    "incident_id",
    "force",
    "call_received_at",
    "call_answered_at",
    "incident_created_at",
    "graded_at",
    "dispatched_at",
    "arrived_at",
    "closed_at",
    "opening_grade",
    "final_grade",
    "incident_type",
    "channel",
]


def write_contract(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CONTRACT_HEADER)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in CONTRACT_HEADER})
    return path


def incident(key: str, **times) -> dict:
    """A complete incident from `start` (ISO with offset), steps a minute apart."""
    start = dt.datetime.fromisoformat(times.pop("start", "2025-05-01T10:00:00+01:00"))
    steps = [
        "call_received_at",
        "call_answered_at",
        "incident_created_at",
        "graded_at",
        "dispatched_at",
        "arrived_at",
        "closed_at",
    ]
    row = {
        step: (start + dt.timedelta(minutes=i)).isoformat()
        for i, step in enumerate(steps)
    }
    row.update(
        incident_id=key,
        force="West Midlands Police",
        opening_grade="2",
        final_grade="2",
        incident_type="ASB",
        channel="999",
    )
    row.update(times)
    return row


def read(url: str, sql: str) -> pd.DataFrame:
    return warehouse.Reader(url).read_sql(sql)


def balanced(result: pipeline.RunResult) -> bool:
    return result.rows_read == (
        result.rows_loaded
        + result.rows_rejected
        + result.rows_duplicate
        + result.rows_set_aside
    )


# ---------------------------------------------------------------------------
# The contract


def test_contract_incident_spanning_midnight_keeps_its_start_day(
    warehouse_url, tmp_path
):
    row = incident("M1", start="2025-01-10T23:58:00+00:00")
    path = write_contract(tmp_path / "cad.csv", [row])
    result = pipeline.run(warehouse_url, "cad", path)
    assert result.status == "succeeded", result.message
    got = read(warehouse_url, "SELECT * FROM fct_incident").iloc[0]
    assert str(got["local_date"])[:10] == "2025-01-10"
    assert got["local_hour"] == 23 and got["local_dow"] == 4  # Friday
    assert pd.Timestamp(got["arrived_at"]) == pd.Timestamp("2025-01-11 00:03")
    assert got["answer_seconds"] == 60
    assert got["dispatch_seconds"] == 180  # answered -> dispatched
    assert got["travel_seconds"] == 60
    assert got["attend_seconds"] == 300  # received -> arrived
    assert (
        got["answer_seconds"] + got["dispatch_seconds"] + got["travel_seconds"]
        == (got["attend_seconds"])
    )
    assert got["lifecycle_recorded"] == (
        "call_received,call_answered,incident_created,graded,dispatched,arrived,closed"
    )


def test_contract_times_across_the_uk_clock_change_are_stored_in_utc(
    warehouse_url, tmp_path
):
    rows = [
        # 01:30 BST then, an hour later, 01:30 GMT: the same local clock time twice.
        incident("A1", start="2024-10-27T01:30:00+01:00"),
        incident("A2", start="2024-10-27T01:30:00+00:00"),
        # Just after the spring change: 02:10 BST is 01:10 UTC.
        incident("S1", start="2024-03-31T02:10:00+01:00"),
    ]
    result = pipeline.run(
        warehouse_url, "cad", write_contract(tmp_path / "c.csv", rows)
    )
    assert result.status == "succeeded", result.message
    got = read(
        warehouse_url,
        "SELECT incident_id, call_received_at, local_hour, attend_seconds "
        "FROM fct_incident ORDER BY incident_id",
    ).set_index("incident_id")
    assert pd.Timestamp(got.loc["A1", "call_received_at"]) == pd.Timestamp(
        "2024-10-27 00:30"
    )
    assert pd.Timestamp(got.loc["A2", "call_received_at"]) == pd.Timestamp(
        "2024-10-27 01:30"
    )
    assert got.loc["A1", "local_hour"] == got.loc["A2", "local_hour"] == 1
    assert got.loc["S1", "local_hour"] == 2
    assert (got["attend_seconds"] == 300).all()


def test_arrival_before_dispatch_is_quarantined_with_its_line(warehouse_url, tmp_path):
    bad = incident("B1", arrived_at="2025-05-01T10:03:00+01:00")  # dispatched 10:04
    rows = [incident("G1"), bad, incident("G2")]
    path = write_contract(tmp_path / "cad.csv", rows)
    result = pipeline.run(warehouse_url, "cad", path)
    assert result.status == "succeeded", result.message
    assert (result.rows_loaded, result.rows_rejected) == (2, 1)
    quarantine = read(warehouse_url, "SELECT * FROM etl_quarantine")
    assert quarantine[["line", "reason"]].values.tolist() == [
        [3, "arrived before dispatched"]
    ]
    assert quarantine["raw"].iloc[0].startswith("B1,")
    assert quarantine["file"].iloc[0] == str(path)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"incident_id": ""}, "blank incident id"),
        ({"incident_created_at": ""}, "missing incident_created_at"),
        ({"graded_at": "2025-05-01 10:03"}, "time does not parse: graded_at"),
        ({"dispatched_at": "2025-05-01T09:00:00+01:00"}, "dispatched before created"),
        ({"call_answered_at": "2025-05-01T09:00:00+01:00"}, "answered before received"),
        ({"closed_at": "2025-05-01T09:00:00+01:00"}, "closed before created"),
    ],
)
def test_bad_rows_are_quarantined_with_a_reason(tmp_path, change, reason, duckdb_url):
    path = write_contract(
        tmp_path / "cad.csv", [incident("G1"), incident("X", **change)]
    )
    result = pipeline.run(duckdb_url, "cad", path)
    assert result.status == "succeeded", result.message
    assert (result.rows_loaded, result.rows_rejected) == (1, 1)
    assert read(duckdb_url, "SELECT reason FROM etl_quarantine")["reason"].tolist() == [
        reason
    ]


def test_a_row_with_the_wrong_number_of_fields_is_quarantined(duckdb_url, tmp_path):
    path = write_contract(tmp_path / "cad.csv", [incident("F1"), incident("F2")])
    path.write_text(path.read_text(encoding="utf-8") + "F3,too,few\n", encoding="utf-8")
    result = pipeline.run(duckdb_url, "cad", path)
    assert result.status == "succeeded", result.message
    assert (result.rows_read, result.rows_loaded, result.rows_rejected) == (3, 2, 1)
    quarantine = read(duckdb_url, "SELECT line, raw FROM etl_quarantine")
    assert quarantine.values.tolist() == [[4, "F3,too,few"]]


def test_upgraded_incident_keeps_opening_and_final_grade(warehouse_url, tmp_path):
    row = incident("U1", opening_grade="2", final_grade="1")
    pipeline.run(warehouse_url, "cad", write_contract(tmp_path / "cad.csv", [row]))
    got = read(warehouse_url, "SELECT opening_grade, final_grade FROM fct_incident")
    assert got.values.tolist() == [["2", "1"]]


def test_reload_is_idempotent_and_a_changed_row_is_replaced(warehouse_url, tmp_path):
    path = write_contract(tmp_path / "cad.csv", [incident("R1"), incident("R2")])
    first = pipeline.run(warehouse_url, "cad", path)
    again = pipeline.run(warehouse_url, "cad", path)
    assert (first.rows_loaded, again.rows_loaded, again.rows_duplicate) == (2, 0, 2)
    write_contract(path, [incident("R1"), incident("R2", final_grade="1")])
    changed = pipeline.run(warehouse_url, "cad", path)
    assert (changed.rows_loaded, changed.rows_duplicate) == (1, 1)
    got = read(
        warehouse_url,
        "SELECT incident_id, final_grade FROM fct_incident ORDER BY incident_id",
    )
    assert got.values.tolist() == [["R1", "2"], ["R2", "1"]]


def test_a_repeated_id_within_a_run_counts_as_duplicate(duckdb_url, tmp_path):
    rows = [incident("D1"), incident("D1", final_grade="1")]
    result = pipeline.run(duckdb_url, "cad", write_contract(tmp_path / "c.csv", rows))
    assert (result.rows_loaded, result.rows_duplicate) == (1, 1)
    assert (
        read(duckdb_url, "SELECT final_grade FROM fct_incident")["final_grade"][0]
        == "1"
    )


def test_missing_column_fails_the_run_and_leaves_incidents_as_they_were(
    warehouse_url, tmp_path
):
    good = write_contract(tmp_path / "good.csv", [incident("K1")])
    assert pipeline.run(warehouse_url, "cad", good).status == "succeeded"
    before = read(warehouse_url, "SELECT * FROM fct_incident")
    broken = tmp_path / "broken.csv"
    broken.write_text("incident_id,force\nK2,West Midlands Police\n", encoding="utf-8")
    result = pipeline.run(warehouse_url, "cad", broken)
    assert result.status == "failed"
    assert "broken.csv" in result.message and "incident_created_at" in result.message
    pd.testing.assert_frame_equal(
        read(warehouse_url, "SELECT * FROM fct_incident"), before
    )


def test_default_grades_fill_an_empty_grade_table(warehouse_url, tmp_path):
    pipeline.run(
        warehouse_url, "cad", write_contract(tmp_path / "c.csv", [incident("G")])
    )
    grades = read(
        warehouse_url,
        "SELECT grade, label, target_urban_minutes, target_rural_minutes, valid_from "
        "FROM dim_incident_grade WHERE valid_to IS NULL ORDER BY grade",
    )
    assert grades["label"].tolist() == [
        "Immediate",
        "Priority",
        "Scheduled",
        "Resolved without deployment",
    ]
    assert grades["target_urban_minutes"].tolist()[:2] == [15.0, 60.0]
    assert grades["target_rural_minutes"].tolist()[0] == 20.0
    assert grades[["target_urban_minutes"]].iloc[2:].isna().all().all()
    assert str(grades["valid_from"].iloc[0])[:10] == "2011-01-01"
    old = read(
        warehouse_url,
        "SELECT grade, target_urban_minutes FROM "
        "dim_incident_grade WHERE valid_to IS NOT NULL ORDER BY grade",
    )
    assert old.values.tolist() == [["1", 10.0], ["2", 30.0]]


def test_mapped_export_resolves_uk_clock_changes_and_counts_them(duckdb_url, tmp_path):
    export = tmp_path / "export.csv"
    export.write_text(
        "Ref,Opened,OnScene\n"
        "a,27/10/2024 01:30,27/10/2024 01:50\n"  # repeated hour: first (BST) taken
        "b,31/03/2024 01:30,31/03/2024 02:20\n",  # skipped hour: shifted to 02:00
        encoding="utf-8",
    )
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "source: {name: uk-test, time_zone: Europe/London}\n"
        "columns: {incident_id: Ref, incident_created_at: Opened,"
        " arrived_at: OnScene}\n"
        "times: {formats: ['%d/%m/%Y %H:%M']}\n"
        "lifecycle: {not_recorded: [call_received, call_answered, graded, dispatched,"
        " closed]}\n",
        encoding="utf-8",
    )
    result = pipeline.run(duckdb_url, "cad", export, mapping)
    assert result.status == "succeeded", result.message
    assert "2 time(s) in a repeated hour" in result.message
    assert "1 in a skipped hour" in result.message
    got = read(duckdb_url, "SELECT * FROM fct_incident ORDER BY incident_id")
    assert pd.Timestamp(got["incident_created_at"][0]) == pd.Timestamp(
        "2024-10-27 00:30"
    )
    assert pd.Timestamp(got["incident_created_at"][1]) == pd.Timestamp(
        "2024-03-31 01:00"
    )
    assert got["attend_seconds"].tolist() == [1200.0, 1200.0]
    assert got["lifecycle_recorded"].tolist() == ["incident_created,arrived"] * 2
    assert got["dispatch_seconds"].isna().all() and got["travel_seconds"].isna().all()


# ---------------------------------------------------------------------------
# Real exports


def alexandria_files(shared_data: Path, url: str) -> list[Path]:
    files = sorted((shared_data / ALEXANDRIA).glob("*.csv.gz"))
    # PostgreSQL gets three weeks (one spans the US clock change) to stay quick.
    return files if warehouse.is_duckdb(url) else files[-3:]


def raw_alexandria(files: list[Path]) -> pd.DataFrame:
    frames = []
    for path in files:
        with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
            frame = pd.DataFrame(list(csv.DictReader(handle)))
        frame["file"] = path.name
        frame["line"] = range(2, len(frame) + 2)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def eastern_utc(value: str) -> dt.datetime | None:
    """A zone-less Alexandria time as UTC, computed independently with zoneinfo."""
    if value == "NULL":
        return None
    local = dt.datetime.strptime(value, "%Y-%m-%d %H:%M:%S.%f")
    return local.replace(tzinfo=ZoneInfo("America/New_York")).astimezone(dt.UTC)


@pytest.mark.real_data
def test_alexandria_export_loads_with_its_accounting(
    warehouse_url, shared_data, tmp_path
):
    files = alexandria_files(shared_data, warehouse_url)
    folder = tmp_path / "alexandria"
    folder.mkdir()
    for path in files:
        (folder / path.name).symlink_to(path)
    result = pipeline.run(
        warehouse_url, "cad", folder, MAPPINGS / "cad-alexandria_va_decc_2025.toml"
    )
    assert result.status == "succeeded", result.message
    raw = raw_alexandria(files)
    police = raw[raw["Agency"] == "POLICE"]
    assert result.rows_read == len(raw)
    assert result.rows_set_aside == int(raw["Agency"].isin(["EMS", "FIRE"]).sum())
    assert balanced(result)

    quarantine = read(warehouse_url, "SELECT file, line, reason FROM etl_quarantine")
    quarantine["file"] = quarantine["file"].map(lambda f: Path(f).name)
    blank = police[police["Master_Incident_Number"].str.strip() == ""]
    blank_keys = set(zip(blank["file"], blank["line"], strict=True))
    quarantined = set(zip(quarantine["file"], quarantine["line"], strict=True))
    assert blank_keys <= quarantined
    assert (quarantine["reason"] == "blank incident id").sum() == len(blank)
    assert result.rows_rejected == len(quarantine)

    kept = police[
        [k not in quarantined for k in zip(police["file"], police["line"], strict=True)]
    ]
    assert result.rows_loaded == len(kept)
    no_arrival = read(
        warehouse_url, "SELECT count(*) AS n FROM fct_incident WHERE arrived_at IS NULL"
    )["n"][0]
    assert no_arrival == int((kept["Incident_Arrival_Time"] == "NULL").sum())

    priority_1 = kept[kept["Priority_Number"] == "1"]
    expected_travel = statistics.median(
        (eastern_utc(a) - eastern_utc(d)).total_seconds()
        for a, d in zip(
            priority_1["Incident_Arrival_Time"],
            priority_1["Incident_Dispatch_Time"],
            strict=True,
        )
        if a != "NULL"
    )
    travel = read(
        warehouse_url,
        "SELECT travel_seconds FROM fct_incident WHERE final_grade = '1' "
        "AND travel_seconds IS NOT NULL",
    )["travel_seconds"]
    assert travel.median() == pytest.approx(expected_travel, abs=1e-3)

    lifecycle = read(
        warehouse_url, "SELECT DISTINCT lifecycle_recorded FROM fct_incident"
    )
    assert lifecycle["lifecycle_recorded"].tolist() == [
        "incident_created,graded,dispatched,arrived,closed"
    ]


@pytest.mark.real_data
def test_alexandria_channels_follow_call_reception(duckdb_url, shared_data):
    files = sorted((shared_data / ALEXANDRIA).glob("*.csv.gz"))[:1]
    pipeline.run(
        duckdb_url, "cad", files[0], MAPPINGS / "cad-alexandria_va_decc_2025.toml"
    )
    raw = raw_alexandria(files)
    police = raw[(raw["Agency"] == "POLICE") & (raw["Master_Incident_Number"] != "")]
    got = read(
        duckdb_url, "SELECT channel, count(*) AS n FROM fct_incident GROUP BY channel"
    ).set_index("channel")["n"]
    reception = police["Call_Reception"]
    assert got["999"] == (reception == "E-911").sum()
    assert got["101"] == (reception == "Phone").sum()


@pytest.mark.real_data
def test_seattle_loads_every_row_with_only_arrival_recorded(warehouse_url, shared_data):
    path = shared_data / SEATTLE / "seattle_spd_911_incident_response_2015.csv"
    mapping = MAPPINGS / "cad-seattle_spd_911_incident_response_2015.toml"
    result = pipeline.run(warehouse_url, "cad", path, mapping)
    assert result.status == "succeeded", result.message
    with path.open(encoding="utf-8", newline="") as handle:
        raw_rows = sum(1 for _ in csv.DictReader(handle))
    assert (result.rows_read, result.rows_loaded) == (raw_rows, raw_rows)
    got = read(
        warehouse_url,
        "SELECT count(*) AS n, count(arrived_at) AS arrived, "
        "count(dispatched_at) AS dispatched, count(incident_created_at) AS created, "
        "count(travel_seconds) AS travel, min(lifecycle_recorded) AS lo, "
        "max(lifecycle_recorded) AS hi FROM fct_incident",
    ).iloc[0]
    assert (got["n"], got["arrived"]) == (raw_rows, raw_rows)
    assert (got["dispatched"], got["created"], got["travel"]) == (0, 0, 0)
    assert got["lo"] == got["hi"] == "arrived"
    again = pipeline.run(warehouse_url, "cad", path, mapping)
    assert (again.rows_loaded, again.rows_duplicate) == (0, raw_rows)


@pytest.mark.real_data
def test_milwaukee_loads_every_call_with_only_creation_recorded(
    warehouse_url, shared_data
):
    path = shared_data / MILWAUKEE / "milwaukee_mpd_calls_for_service_2018-05.csv"
    result = pipeline.run(
        warehouse_url, "cad", path, MAPPINGS / "cad-milwaukee_mpd_calls_2018_05.toml"
    )
    assert result.status == "succeeded", result.message
    raw = pd.read_csv(io.StringIO(path.read_text(encoding="utf-8")), dtype=str)
    assert (result.rows_read, result.rows_loaded) == (len(raw), len(raw))
    got = read(
        warehouse_url,
        "SELECT count(DISTINCT incident_id) AS ids, count(arrived_at) AS arrived, "
        "count(dispatched_at) AS dispatched, min(lifecycle_recorded) AS lo, "
        "max(lifecycle_recorded) AS hi, min(local_date) AS first_day "
        "FROM fct_incident",
    ).iloc[0]
    assert got["ids"] == raw["id"].nunique()
    assert (got["arrived"], got["dispatched"]) == (0, 0)
    assert got["lo"] == got["hi"] == "incident_created"
    assert str(got["first_day"])[:10] == raw["time"].min()[:10]
