"""Mapping logic: nulls, value maps, set-aside rules, derived ids, times and zones."""

from __future__ import annotations

import pandas as pd
import pytest

from etl import mapping as mp
from etl.pipeline import SourceError
from etl.sources.cad import read_cad_mapping


def strings(*values) -> pd.Series:
    return pd.Series(values, dtype="string")


def test_uk_autumn_clock_change_takes_the_first_occurrence_of_the_repeated_hour():
    # 2024-10-27 is the last Sunday of October: 01:00-02:00 happens twice in London.
    parsed = mp.parse_local(
        strings("2024-10-27 01:30"), ("%Y-%m-%d %H:%M",), "Europe/London"
    )
    assert parsed.utc.iloc[0] == pd.Timestamp("2024-10-27 00:30")  # BST, UTC+1
    assert (parsed.ambiguous, parsed.nonexistent) == (1, 0)


def test_uk_spring_clock_change_shifts_a_skipped_time_forward():
    # 2024-03-31 is the last Sunday of March: 01:00-02:00 does not exist in London.
    parsed = mp.parse_local(
        strings("2024-03-31 01:30", "2024-03-31 00:59"),
        ("%Y-%m-%d %H:%M",),
        "Europe/London",
    )
    assert parsed.utc.iloc[0] == pd.Timestamp("2024-03-31 01:00")  # 02:00 BST
    assert parsed.utc.iloc[1] == pd.Timestamp("2024-03-31 00:59")  # still GMT
    assert (parsed.ambiguous, parsed.nonexistent) == (0, 1)


def test_local_times_try_each_format_and_flag_what_none_parse():
    parsed = mp.parse_local(
        strings("10/26/2025 0:00", "2025-10-26 07:00", "yesterday", None),
        ("%m/%d/%Y %H:%M", "%Y-%m-%d %H:%M"),
        "UTC",
    )
    assert parsed.utc.iloc[0] == pd.Timestamp("2025-10-26 00:00")
    assert parsed.utc.iloc[1] == pd.Timestamp("2025-10-26 07:00")
    assert parsed.bad.tolist() == [False, False, True, False]


def test_iso_times_need_an_offset():
    parsed = mp.parse_iso(
        strings(
            "2025-03-30T01:59:12+00:00",
            "2025-06-01T10:00:00+01:00",
            "2025-06-01T10:00:00",
            "2025-06-01T09:00:00Z",
            None,
        )
    )
    assert parsed.utc.iloc[0] == pd.Timestamp("2025-03-30 01:59:12")
    assert parsed.utc.iloc[1] == pd.Timestamp("2025-06-01 09:00:00")
    assert parsed.utc.iloc[3] == pd.Timestamp("2025-06-01 09:00:00")
    assert parsed.bad.tolist() == [False, False, True, False, False]


def test_local_parts_place_a_utc_time_in_the_local_day_and_hour():
    utc = pd.Series(pd.to_datetime(["2025-07-01 23:30", "2025-01-01 23:30"]))
    parts = mp.local_parts(utc, "Europe/London")
    assert parts["local_date"].dt.strftime("%Y-%m-%d").tolist() == [
        "2025-07-02",
        "2025-01-01",
    ]
    assert parts["local_hour"].tolist() == [0, 23]
    assert parts["local_dow"].tolist() == [2, 2]  # Wednesday both


def test_value_map_uses_other_for_unlisted_values_and_keeps_missing():
    grade = mp.ValueMap({"1": "1", "2": "2"}, other="4")
    assert grade.apply(strings("1", "2", "8", None)).tolist() == ["1", "2", "4", pd.NA]
    passthrough = mp.ValueMap({"E-911": "999"})
    assert passthrough.apply(strings("E-911", "Radio")).tolist() == ["999", "Radio"]


def test_null_tokens_and_blanks_become_missing():
    frame = pd.DataFrame({"a": strings(" NULL", "", "x "), "_line": [2, 3, 4]})
    out = mp.apply_nulls(frame, ("NULL",))
    assert out["a"].isna().tolist() == [True, True, False]
    assert out["a"].iloc[2] == "x"
    assert frame["a"].iloc[0] == " NULL"  # input untouched


def test_set_aside_rules_count_each_rule_once():
    frame = pd.DataFrame({"Agency": strings("POLICE", "EMS", "FIRE", "EMS")})
    rule = mp.SetAsideRule("Agency", ("EMS", "FIRE"), "not police")
    mask, counts = mp.set_aside_mask(frame, (rule,))
    assert mask.tolist() == [False, True, True, True]
    assert counts == {rule: 3}
    assert mp.set_aside_notes(counts) == [
        "set aside 3 row(s) with Agency in EMS, FIRE: not police"
    ]


def test_derived_ids_are_stable_and_tell_identical_rows_apart():
    frame = pd.DataFrame({"a": strings("x", "x", "y"), "b": strings("1", "1", None)})
    first = mp.derive_ids(frame, ("a", "b"), "sea-")
    again = mp.derive_ids(frame.copy(), ("a", "b"), "sea-")
    assert first.tolist() == again.tolist()
    assert first.nunique() == 3
    assert first.iloc[0].startswith("sea-") and first.iloc[0].endswith("-0")
    assert first.iloc[1].endswith("-1")


def test_a_mapping_must_name_its_source():
    with pytest.raises(SourceError, match="needs a name"):
        mp.parse_mapping({"columns": {"incident_id": "id"}})


def test_a_cad_mapping_must_say_which_steps_it_does_not_record():
    raw = {
        "source": {"name": "x", "time_zone": "UTC"},
        "columns": {"incident_id": "id", "incident_created_at": "time"},
        "lifecycle": {"not_recorded": ["call_received", "call_answered"]},
    }
    with pytest.raises(SourceError, match="graded, dispatched, arrived, closed"):
        read_cad_mapping(raw)


def test_a_mapping_with_an_unknown_zone_fails():
    with pytest.raises(SourceError, match="unknown time zone"):
        mp.parse_mapping({"source": {"name": "x", "time_zone": "Mars/Olympus"}})


def test_grades_section_fills_the_named_columns():
    parsed = mp.parse_mapping(
        {
            "source": {"name": "x"},
            "grades": {
                "column": "Priority",
                "fills": ["opening_grade", "final_grade"],
                "map": {"1": "1"},
                "other": "4",
            },
        }
    )
    assert parsed.columns == {"opening_grade": "Priority", "final_grade": "Priority"}
    assert parsed.values["final_grade"].other == "4"
