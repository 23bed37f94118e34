"""Incident summary and pre-aggregates equal fct_incident; z needs a year to compare.

The pre-aggregates (etl/sources/cad.py, used by queries/incidents.py) are proved
here on generated incidents, on DuckDB and PostgreSQL: every page figure from them
equals, to the last bit, the one counted from fct_incident; a stale aggregate is
never read; a user limited to areas gets exact figures.
"""

from __future__ import annotations

import csv
import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from dashboards import exports
from etl import pipeline, warehouse
from etl.sources import cad
from queries import incidents, scope
from queries.incidents import IncidentFilters

D = dt.date
HEADER = [
    "incident_id",
    "force",
    "call_received_at",
    "incident_created_at",
    "dispatched_at",
    "arrived_at",
    "final_grade",
    "opening_grade",
]
EXACT = """
    SELECT source, max(force_name) AS force_name, count(*) AS incidents,
           min(local_date) AS first_date, max(local_date) AS last_date,
           max(lifecycle_recorded) AS lifecycle_recorded
    FROM fct_incident
    GROUP BY source
    ORDER BY source
"""


def _row(key, day, attend_min=10, grade="1", force="Test Police", opening=None):
    received = dt.datetime.fromisoformat(f"{day}T10:00:00+00:00")
    return {
        "incident_id": key,
        "force": force,
        "call_received_at": received.isoformat(),
        "incident_created_at": received.isoformat(),
        "dispatched_at": (received + dt.timedelta(minutes=2)).isoformat(),
        "arrived_at": (received + dt.timedelta(minutes=attend_min)).isoformat(),
        "final_grade": grade,
        "opening_grade": opening or grade,
    }


def _load(url, tmp_path, name, rows):
    path = tmp_path / name
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=HEADER)
        writer.writeheader()
        writer.writerows(rows)
    result = pipeline.run(url, "cad", path)
    assert result.status == "succeeded", result.message


@pytest.fixture
def reader(warehouse_url):
    made = warehouse.Reader(warehouse_url)
    yield made
    if made._engine is not None:
        made._engine.dispose()


def _frames(conn) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the summary table as stored, the same figures counted from fct_incident)."""
    stored = pd.read_sql(
        text("SELECT * FROM agg_incident_source ORDER BY source"), conn
    )
    exact = pd.read_sql(text(EXACT), conn)
    for frame in (stored, exact):
        frame["incidents"] = frame["incidents"].astype("int64")
        for column in ("first_date", "last_date"):
            frame[column] = pd.to_datetime(frame[column]).dt.date
    return stored[exact.columns], exact


def test_source_summary_equals_fct_incident_after_incremental_loads(
    warehouse_url, reader, tmp_path
):
    first = [_row(f"A{n}", f"2025-03-{n + 1:02d}") for n in range(5)]
    _load(warehouse_url, tmp_path, "first.csv", first)
    with reader.connect() as conn:
        stored, exact = _frames(conn)
        got = incidents.incident_sources(conn)
    pd.testing.assert_frame_equal(stored, exact)
    assert got["incidents"].tolist() == [5]
    assert got[["first_date", "last_date"]].values.tolist() == [
        [D(2025, 3, 1), D(2025, 3, 5)]
    ]

    # A second load: one incident moves earlier, another changes force, two are new.
    second = [
        _row("A0", "2025-02-20"),
        _row("A3", "2025-03-04", force="Renamed Police"),
        _row("B1", "2025-04-10"),
        _row("B2", "2025-04-11", grade="2"),
    ]
    _load(warehouse_url, tmp_path, "second.csv", second)
    with reader.connect() as conn:
        stored, exact = _frames(conn)
        got = incidents.incident_sources(conn)
    pd.testing.assert_frame_equal(stored, exact)
    assert stored["incidents"].tolist() == [7]
    assert got[["first_date", "last_date"]].values.tolist() == [
        [D(2025, 2, 20), D(2025, 4, 11)]
    ]
    assert got["force_name"].tolist() == ["Test Police"]  # max(), as before


def test_sources_are_counted_exactly_when_rows_bypass_the_cad_load(
    warehouse_url, reader, tmp_path
):
    _load(warehouse_url, tmp_path, "first.csv", [_row("A1", "2025-03-01")])
    with warehouse.write(warehouse_url) as write:
        write.execute(
            text(
                """
                INSERT INTO fct_incident
                SELECT 'other', incident_id, force_name, call_received_at,
                       call_answered_at, incident_created_at, graded_at,
                       dispatched_at, arrived_at, closed_at, reference_at,
                       local_date, local_hour, local_dow, time_zone, opening_grade,
                       final_grade, incident_type, location, lsoa_code, longitude,
                       latitude, channel, attending_unit, answer_seconds,
                       dispatch_seconds, travel_seconds, attend_seconds,
                       lifecycle_recorded, last_run_id
                FROM fct_incident
                """
            )
        )
    with reader.connect() as conn:
        got = incidents.incident_sources(conn)
    assert got["source"].tolist() == ["cad", "other"]
    assert got["incidents"].tolist() == [1, 1]


@pytest.mark.parametrize(
    ("earliest", "compared"),
    [
        ("2024-06-01", False),  # data begin after last year's March: no comparison
        ("2024-03-20", True),  # data begin within last year's March
        ("2024-02-15", True),  # data cover last year's March (with no incidents)
    ],
)
def test_z_is_not_compared_against_a_year_the_source_does_not_hold(
    warehouse_url, reader, tmp_path, earliest, compared
):
    rows = [_row(f"M{n}", f"2025-03-{n + 1:02d}") for n in range(12)]
    rows.append(_row("EARLY", earliest, grade="3"))
    _load(warehouse_url, tmp_path, "cad.csv", rows)
    march = IncidentFilters(D(2025, 3, 1), D(2025, 3, 31), source="cad")
    with reader.connect() as conn:
        got = incidents.attendance_by_grade(conn, march)
    grade_1 = got.set_index("final_grade").loc["1"]
    assert grade_1["within_target"] == 12
    assert grade_1["within_target_last_year"] == 0
    if compared:
        assert grade_1["z"] == pytest.approx(2 * np.sqrt(12))
        assert grade_1["significance"] == "signal"
    else:
        assert np.isnan(grade_1["z"])
        assert grade_1["significance"] == incidents.NO_COMPARISON == "no comparison"


# ---------------------------------------------------------------------------
# Pre-aggregates: generated incidents with ties, missing arrivals and call times,
# grades without targets, ungraded incidents, rural, urban and unknown places, a
# target that changes on a date, two sources in two zones.

FULL_HEADER = [
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
    "lsoa_code",
]
FORCE, FORCE_CODE = "Test Police", "test-police"
AREAS = [
    (FORCE_CODE, FORCE, "force", None, FORCE),
    ("other-police", "Other Police", "force", None, "Other Police"),
    ("L1", "Northtown", "lad", FORCE_CODE, FORCE),
    ("L2", "Southvale", "lad", FORCE_CODE, FORCE),
    ("W1", "Abbey", "ward", "L1", FORCE),
    ("W2", "Bridge", "ward", "L1", FORCE),
    ("W3", "Castle", "ward", "L2", FORCE),
    ("A1", "Northtown 001A", "lsoa", "W1", FORCE),
    ("A2", "Northtown 001B", "lsoa", "W2", FORCE),
    ("A3", "Southvale 001A", "lsoa", "W3", FORCE),
    ("A4", "Southvale 001B", "lsoa", "W3", FORCE),
]
GEOGRAPHY = [  # lsoa, ward, lad, force, urban_rural (A4 has no class: urban target)
    ("A1", "W1", "L1", FORCE, "urban"),
    ("A2", "W2", "L1", FORCE, "rural"),
    ("A3", "W3", "L2", FORCE, "urban"),
    ("A4", "W3", "L2", FORCE, None),
]
CHANGE = D(2025, 3, 15)  # Grade 1's targets tighten on this date
TARGETS = {  # grade: ((urban, rural) before CHANGE, from CHANGE)
    "1": ((15.0, 20.0), (10.0, 15.0)),
    "2": ((60.0, 60.0), (60.0, 60.0)),
}
GRADES = pd.DataFrame(
    {
        "grade_key": [1, 2, 3, 4, 5],
        "grade": ["1", "1", "2", "3", "4"],
        "label": ["Immediate", "Immediate", "Priority", "Scheduled", "Resolved"],
        "target_urban_minutes": [15.0, 10.0, 60.0, np.nan, np.nan],
        "target_rural_minutes": [20.0, 15.0, 60.0, np.nan, np.nan],
        "valid_from": pd.to_datetime(
            ["2000-01-01", str(CHANGE), "2000-01-01", "2000-01-01", "2000-01-01"]
        ),
        "valid_to": pd.to_datetime([str(CHANGE), None, None, None, None]),
    }
).astype({"valid_from": "datetime64[us]", "valid_to": "datetime64[us]"})
FIRST, LAST = D(2024, 1, 1), D(2025, 6, 30)
LONDON = ZoneInfo("Europe/London")


def _generated(seed: int, prefix: str, count: int) -> list[dict]:
    """Incidents over FIRST..LAST whose times take few values (many ties)."""
    rng = np.random.default_rng(seed)
    days = (LAST - FIRST).days + 1
    rows = []
    for n in range(count):
        day = FIRST + dt.timedelta(days=int(rng.integers(0, days)))
        start = dt.datetime.combine(day, dt.time(int(rng.integers(0, 24))))
        start += dt.timedelta(minutes=int(rng.integers(0, 60)))
        grade = str(rng.choice(["1", "1", "2", "2", "3", "4", ""]))
        opening = str(rng.choice([grade, grade, grade, "1", "2", "3", ""]))
        lsoa = str(rng.choice(["A1", "A1", "A2", "A3", "A4", "ZZ", ""]))
        answer = int(rng.choice([3, 5, 5, 8, 12, 30]))
        dispatch = int(rng.choice([60, 90, 90, 120, 300, 900]))
        travel = int(rng.choice([240, 300, 420, 420, 600, 900, 1500, 3000]))
        received = start if rng.random() > 0.1 else None  # else: no call time
        created = start + dt.timedelta(seconds=answer if received else 0)
        answered = created if received and rng.random() > 0.1 else None
        arrives = rng.random() > 0.15  # else: never attended (NULL times)
        dispatched = created + dt.timedelta(seconds=dispatch) if arrives else None
        arrived = dispatched + dt.timedelta(seconds=travel) if arrives else None
        closed = None
        if rng.random() > 0.05:  # else: still open
            closed = (arrived or created) + dt.timedelta(hours=1)
        rows.append(
            {
                "incident_id": f"{prefix}{n:05d}",
                "force": FORCE if prefix == "C" else "Other Police",
                "call_received_at": _iso(received),
                "call_answered_at": _iso(answered),
                "incident_created_at": _iso(created),
                "graded_at": _iso(created),
                "dispatched_at": _iso(dispatched),
                "arrived_at": _iso(arrived),
                "closed_at": _iso(closed),
                "opening_grade": opening,
                "final_grade": grade,
                "incident_type": "Test",
                "lsoa_code": lsoa,
            }
        )
    return rows


def _iso(moment: dt.datetime | None) -> str:
    return "" if moment is None else moment.isoformat() + "+00:00"


def _prepared(url: str) -> None:
    """Areas, geography and dated targets, before any incident is loaded."""
    warehouse.ensure_schema(url)
    areas = pd.DataFrame(
        AREAS, columns=["area_code", "area_name", "level", "parent_code", "force_name"]
    ).assign(geometry_repaired=False)
    geography = pd.DataFrame(
        GEOGRAPHY,
        columns=["lsoa_code", "ward_code", "lad_code", "force_name", "urban_rural"],
    ).assign(lsoa_name=lambda g: g["lsoa_code"])
    with warehouse.write(url) as write:
        warehouse.insert_frame(write, "dim_incident_grade", GRADES)
        warehouse.insert_frame(write, "dim_area", areas)
        warehouse.insert_frame(write, "dim_geography", geography)


def _load_cad(url, tmp_path, name, rows, source=None):
    path = tmp_path / name
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=FULL_HEADER)
        writer.writeheader()
        writer.writerows(rows)
    mapping = None
    if source is not None:  # the contract, under another name and zone
        mapping = tmp_path / f"{source}.toml"
        mapping.write_text(
            f'[source]\nname = "{source}"\ntime_zone = "America/New_York"\n'
        )
    result = pipeline.run(url, "cad", path, mapping)
    assert result.status == "succeeded", result.message


@pytest.fixture
def generated(warehouse_url, tmp_path):
    _prepared(warehouse_url)
    rows = _generated(7, "C", 2500)
    _load_cad(warehouse_url, tmp_path, "cad.csv", rows)
    _load_cad(warehouse_url, tmp_path, "other.csv", _generated(8, "O", 300), "other")
    return rows


def _filters() -> list[IncidentFilters]:
    periods = [
        (FIRST, LAST),
        (D(2025, 3, 1), D(2025, 3, 31)),  # across the change of target
        (D(2025, 3, 10), D(2025, 4, 6)),
        *cad.page_periods(LAST),  # the presets: percentiles read as stored
    ]
    out = []
    for n, (start, end) in enumerate(periods):
        out.append(IncidentFilters(start, end))
        if n < 3:
            out += [
                IncidentFilters(start, end, source="cad", grades=("1",)),
                IncidentFilters(start, end, source="other"),
                IncidentFilters(start, end, grades=("1", "2")),
                IncidentFilters(start, end, grades=("3",)),
                IncidentFilters(start, end, area_level="force", area_code=FORCE_CODE),
                IncidentFilters(start, end, area_level="lad", area_code="L1"),
                IncidentFilters(start, end, area_level="ward", area_code="W3"),
            ]
    return out


NOW = dt.datetime(2025, 6, 30, 20, 0)


def _figures(conn, f: IncidentFilters) -> dict:
    below = {"force": "lad", "lad": "ward", "ward": "lsoa"}[f.area_level]
    got = {
        "grades": incidents.attendance_by_grade(conn, f),
        "regrade": pd.DataFrame([incidents.regrade_rate(conn, f)]),
        "queue": incidents.open_queue(conn, f, NOW),
        "hours": incidents.hour_of_week(conn, f),
        "weekly": incidents.weekly_within_target(conn, f),
        "cell": incidents.incidents_in_cell(conn, f, 2, 10, limit=7),
        "exceptions": incidents.exceptions(conn, f, margin_minutes=1, limit=9),
        "open": incidents.open_past_target(conn, f, NOW, limit=5),
        "below": incidents.by_area(conn, f, below),
        "same": incidents.by_area(conn, f, f.area_level),
        "steps": pd.DataFrame({"step": incidents.not_recorded(conn, "cad")}),
    }
    if f.area_code is None:
        got["wards"] = incidents.by_area(conn, f, "ward")
        got["lsoas"] = incidents.by_area(conn, f, "lsoa")
    return got


def _counted(conn, monkeypatch, f: IncidentFilters) -> dict:
    """_figures counted from fct_incident: the aggregates said to be stale."""
    with monkeypatch.context() as patch:
        patch.setattr(incidents, "aggregates_current", lambda _conn: False)
        return _figures(conn, f)


def _spy(monkeypatch, names) -> list[str]:
    used = []
    for name in names:
        original = getattr(incidents, name)

        def spy(*args, _original=original, _name=name, **kwargs):
            used.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(incidents, name, spy)
    return used


FAST = ("_attendance_fast", "_grade_percentiles", "_fast_grouped")


def test_aggregates_give_exactly_the_figures_counted_from_incidents(
    generated, reader, monkeypatch
):
    used = _spy(monkeypatch, FAST)
    with reader.connect() as conn:
        assert incidents.aggregates_current(conn)
        for f in _filters():
            fast, counted = _figures(conn, f), _counted(conn, monkeypatch, f)
            for name, frame in fast.items():
                pd.testing.assert_frame_equal(
                    frame, counted[name], check_exact=True, obj=f"{name} for {f}"
                )
        whole = incidents.attendance_by_grade(conn, IncidentFilters(FIRST, LAST))
    assert set(FAST) <= set(used)  # not the counting path twice
    # The data hold what the comparison is meant to cover.
    assert whole["incidents"].sum() >= 2500
    assert whole["final_grade"].isna().any()  # ungraded
    assert (whole["attended"] < whole["incidents"]).all()  # no arrival
    assert whole.set_index("final_grade").loc["3", "with_target"] == 0  # no target
    assert whole["incidents_last_year"].sum() > 0


def test_preset_periods_are_stored_for_every_source_and_each(generated, reader):
    with reader.connect() as conn:
        stored = pd.read_sql(
            text("SELECT source, start_date, end_date FROM agg_incident_percentile"),
            conn,
        )
    held = {
        (None if pd.isna(s) else s, pd.Timestamp(a).date(), pd.Timestamp(b).date())
        for s, a, b in stored.itertuples(index=False)
    }
    for start, end in cad.page_periods(LAST):
        assert (None, start, end) in held
        assert ("cad", start, end) in held


@pytest.mark.parametrize(
    "latest",
    [
        D(2025, 6, 30),
        D(2024, 2, 29),
        D(2025, 3, 1),
        D(2025, 4, 1),
        D(2025, 3, 31),
        D(2024, 12, 31),
        D(2025, 1, 15),
    ],
)
def test_stored_periods_are_the_pages_presets(latest):
    expected = set()
    for preset in cad.PAGE_PERIODS:
        start, end, _sentence = exports.incident_period(preset, FIRST, latest)
        previous = IncidentFilters(start, end).previous_year()
        expected |= {(start, end), (previous.start, previous.end)}
    assert set(cad.page_periods(latest)) == expected
    assert set(cad.PAGE_PERIODS) == set(exports.INCIDENT_PERIODS) - {"custom"}


def test_percentiles_interpolate_between_tied_values(
    warehouse_url, reader, tmp_path, monkeypatch
):
    _prepared(warehouse_url)
    received = dt.datetime(2025, 6, 2, 10, 0)
    # Grade 1 attends in 10, 10, 20 and 40 minutes, and once never: median 15 (half
    # way between the tied 10s and 20), 90th percentile 20 + 0.7 * (40 - 20) = 34;
    # answers 5 to 9 s: median 7.
    rows = []
    for n, (grade, seconds) in enumerate(
        [("1", 600), ("1", 600), ("1", 1200), ("1", 2400), ("1", None), ("2", 2010)]
    ):
        answered = received + dt.timedelta(seconds=5 + n)
        arrived = None if seconds is None else received + dt.timedelta(seconds=seconds)
        rows.append(
            {
                "incident_id": f"T{n}",
                "force": FORCE,
                "call_received_at": _iso(received),
                "call_answered_at": _iso(answered),
                "incident_created_at": _iso(answered),
                "graded_at": "",
                "dispatched_at": _iso(received + dt.timedelta(seconds=60)),
                "arrived_at": _iso(arrived),
                "closed_at": "",
                "opening_grade": grade,
                "final_grade": grade,
                "incident_type": "Test",
                "lsoa_code": "A1",
            }
        )
    _load_cad(warehouse_url, tmp_path, "tied.csv", rows)
    with reader.connect() as conn:
        assert incidents.aggregates_current(conn)
        for start, end in [(D(2025, 6, 1), D(2025, 6, 30)), (D(2025, 6, 2), LAST)]:
            got = incidents.attendance_by_grade(conn, IncidentFilters(start, end))
            got = got.set_index("final_grade")
            assert got.loc["1", "median_attend_min"] == 15.0
            # percentile_cont's own doubles: rank 0.9 * (4 - 1) = 2.7 lies 0.7 of
            # the way from 20 to 40 minutes (34.00000000000001 after rounding).
            rn = 0.9 * (4 - 1)
            assert got.loc["1", "p90_attend_min"] == (1200 + 1200 * (rn - 2)) / 60.0
            assert got.loc["1", "median_answer_s"] == 7.0
            assert got.loc["2", "median_attend_min"] == 2010 / 60.0
            # Grade 1's urban target is 10 minutes from CHANGE: 2 of 4 within it.
            counts = ["attended", "with_target", "within_target"]
            assert got.loc["1", counts].tolist() == [4, 4, 2]
        # One source: "every source" is stored as a copy of it; both read as counted.
        for start, end in cad.page_periods(D(2025, 6, 2)):
            for source in (None, "cad"):
                f = IncidentFilters(start, end, source=source)
                pd.testing.assert_frame_equal(
                    incidents.attendance_by_grade(conn, f),
                    _counted(conn, monkeypatch, f)["grades"],
                    check_exact=True,
                )


def _fingerprint(conn) -> pd.DataFrame:
    return incidents.attendance_by_grade(conn, IncidentFilters(FIRST, LAST))


@pytest.mark.parametrize("change", ["fact outside the cad load", "target", "geography"])
def test_a_stale_aggregate_is_never_read(
    generated, warehouse_url, reader, monkeypatch, tmp_path, change
):
    with reader.connect() as conn:
        before = _fingerprint(conn)
    with warehouse.write(warehouse_url) as write:
        if change == "fact outside the cad load":
            write.execute(
                text(
                    """
                    INSERT INTO fct_incident
                    SELECT source, 'COPY-' || incident_id, force_name,
                           call_received_at, call_answered_at, incident_created_at,
                           graded_at, dispatched_at, arrived_at, closed_at,
                           reference_at, local_date, local_hour, local_dow, time_zone,
                           opening_grade, final_grade, incident_type, location,
                           lsoa_code, longitude, latitude, channel, attending_unit,
                           answer_seconds, dispatch_seconds, travel_seconds,
                           attend_seconds, lifecycle_recorded, last_run_id
                    FROM fct_incident WHERE incident_id = 'C00000'
                    """
                )
            )
        elif change == "target":
            write.execute(
                text("UPDATE dim_incident_grade SET target_urban_minutes = 999")
            )
        else:
            write.execute(text("UPDATE dim_geography SET urban_rural = 'rural'"))
    used = _spy(monkeypatch, FAST)
    with reader.connect() as conn:
        assert not incidents.aggregates_current(conn)
        after = _fingerprint(conn)
        counted = _counted(conn, monkeypatch, IncidentFilters(FIRST, LAST))["grades"]
        assert incidents.by_area(conn, IncidentFilters(FIRST, LAST), "lad").equals(
            _counted(conn, monkeypatch, IncidentFilters(FIRST, LAST))["below"]
        )
    assert not used
    pd.testing.assert_frame_equal(after, counted, check_exact=True)
    if change == "fact outside the cad load":
        assert after["incidents"].sum() == before["incidents"].sum() + 1
    else:
        assert after["within_target"].sum() != before["within_target"].sum()
    # The next cad load (here: nothing new) rebuilds them, and they are read again.
    _load_cad(warehouse_url, tmp_path, "again.csv", generated[:10])
    with reader.connect() as conn:
        assert incidents.aggregates_current(conn)
        pd.testing.assert_frame_equal(_fingerprint(conn), after, check_exact=True)
    assert "_attendance_fast" in used


def test_incremental_rebuild_equals_a_whole_one(
    generated, warehouse_url, reader, tmp_path, monkeypatch
):
    modes = []
    rebuild = cad.rebuild_incident_aggregates

    def recorded(*args, **kwargs):
        modes.append(rebuild(*args, **kwargs))
        return modes[-1]

    monkeypatch.setattr(cad, "rebuild_incident_aggregates", recorded)
    moved = dict(generated[0])  # a day later: both days' counts change
    for column in (
        "call_received_at",
        "call_answered_at",
        "incident_created_at",
        "graded_at",
        "dispatched_at",
        "arrived_at",
        "closed_at",
    ):
        if moved[column]:
            moment = dt.datetime.fromisoformat(moved[column]) + dt.timedelta(days=1)
            moved[column] = moment.isoformat()
    regraded = dict(generated[1], final_grade="1", opening_grade="3")
    new = dict(generated[2], incident_id="NEW-1")
    _load_cad(warehouse_url, tmp_path, "changes.csv", [moved, regraded, new])
    assert modes == ["dates"]
    tables = ("agg_incident_hour", "agg_incident_ward", "agg_incident_percentile")
    with reader.connect() as conn:
        incremental = {t: _table(conn, t) for t in tables}

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), warehouse.write(warehouse_url) as write:
        write.execute(text("DELETE FROM agg_incident_state"))
        assert rebuild(write, 0) == "all"
        for table in tables:
            pd.testing.assert_frame_equal(
                _table(write, table), incremental[table], check_exact=True, obj=table
            )
        raise Rollback


def _table(conn, table: str) -> pd.DataFrame:
    frame = pd.read_sql(text(f"SELECT * FROM {table}"), conn)
    frame = frame.sort_values(list(frame.columns), na_position="first")
    return frame.reset_index(drop=True)


def test_a_user_limited_to_areas_gets_exact_figures(generated, reader, monkeypatch):
    """Ward W2 is LSOA A2 (rural): counted by hand from the generated rows."""
    f = IncidentFilters(FIRST, LAST, source="cad")
    expected = {}
    for row in generated:
        if row["lsoa_code"] != "A2":
            continue
        grade = row["final_grade"] or None
        start = dt.datetime.fromisoformat(
            row["call_received_at"] or row["incident_created_at"]
        )
        local_date = start.astimezone(LONDON).date()
        attend = None
        if row["arrived_at"]:
            attend = (dt.datetime.fromisoformat(row["arrived_at"]) - start).seconds
        target = TARGETS.get(grade)
        target = None if target is None else target[local_date >= CHANGE][1]  # rural
        counts = expected.setdefault(grade, [0, 0, 0, 0, []])
        counts[0] += 1
        counts[1] += attend is not None
        counts[2] += attend is not None and target is not None
        counts[3] += attend is not None and target is not None and attend <= target * 60
        if attend is not None:
            counts[4].append(attend)
    used = _spy(monkeypatch, FAST)
    with reader.connect() as conn, scope.restricted_to({"W2"}):
        got = incidents.attendance_by_grade(conn, f)
        hours = incidents.hour_of_week(conn, f)
        wards = incidents.by_area(conn, f, "ward")
    assert not used  # the pre-aggregates hold no LSOAs to restrict
    rows = {
        None if pd.isna(r["final_grade"]) else r["final_grade"]: r
        for r in got.to_dict("records")
    }
    assert set(rows) == set(expected)
    for grade, (n, attended, with_target, within, times) in expected.items():
        row = rows[grade]
        assert [
            row["incidents"],
            row["attended"],
            row["with_target"],
            row["within_target"],
        ] == [n, attended, with_target, within], grade
        assert row["median_attend_min"] == pytest.approx(np.median(times) / 60)
    assert hours["incidents"].sum() == sum(c[0] for c in expected.values())
    assert wards[["area_code", "incidents"]].values.tolist() == [
        ["W2", sum(c[0] for c in expected.values())]
    ]


def test_lists_read_newest_days_first_yet_equal_one_read_of_the_period(
    generated, reader, monkeypatch
):
    """The cell list, exceptions and open list widen a window from the period's end
    (queries.incidents._newest_first): the same rows as one read of the period,
    with two zones (London, New York) in the data."""

    def lists(conn):
        out = []
        for f in [
            IncidentFilters(FIRST, LAST),
            IncidentFilters(FIRST, LAST, grades=("1", "2")),
            IncidentFilters(D(2025, 3, 1), D(2025, 3, 31), source="other"),
        ]:
            for limit in (1, 6, 40, 5000):
                out += [
                    incidents.incidents_in_cell(conn, f, 0, 0, limit=limit),
                    incidents.incidents_in_cell(conn, f, 6, 23, limit=limit),
                    incidents.exceptions(conn, f, margin_minutes=0, limit=limit),
                    incidents.open_past_target(conn, f, NOW, limit=limit),
                ]
        return out

    def whole_period(conn, f, body, params, first_days):
        return incidents._run(conn, f"WITH {incidents._in_period(f)} {body}", params)

    with reader.connect() as conn:
        windowed = lists(conn)
        monkeypatch.setattr(incidents, "_newest_first", whole_period)
        whole = lists(conn)
    assert any(len(frame) == 40 for frame in windowed)
    for got, expected in zip(windowed, whole, strict=True):
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
