"""Whole-file checks shared by every source: clear failures, exact line numbers."""

from __future__ import annotations

import gzip

import pytest

from etl import pipeline
from etl.pipeline import SourceError

HEADER = "id,name,value\n"


def write(tmp_path, name: str, body: bytes | str):
    path = tmp_path / name
    data = body.encode("utf-8") if isinstance(body, str) else body
    if name.endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def test_rows_keep_their_line_numbers(tmp_path):
    path = write(tmp_path, "a.csv", HEADER + "1,x,10\n2,y,20\n")
    parsed = pipeline.read_csv(path, ["id", "value"])
    assert parsed.frame["_line"].tolist() == [2, 3]
    assert parsed.frame["name"].tolist() == ["x", "y"]
    assert parsed.raw([3]) == ["2,y,20"]


def test_gzipped_csv_reads_like_plain(tmp_path):
    path = write(tmp_path, "a.csv.gz", HEADER + "1,x,10\n")
    assert pipeline.read_csv(path, ["id"]).frame["value"].tolist() == ["10"]


def test_quoted_newline_keeps_later_line_numbers_exact(tmp_path):
    path = write(tmp_path, "a.csv", HEADER + '1,"two\nlines",10\n2,y,20\n')
    frame = pipeline.read_csv(path, ["id"]).frame
    assert frame["_line"].tolist() == [2, 4]
    assert frame["name"].tolist() == ["two\nlines", "y"]


def test_row_with_wrong_field_count_is_set_apart_with_reason(tmp_path):
    path = write(tmp_path, "a.csv", HEADER + "1,x,10\n2,y\n3,z,30\n")
    parsed = pipeline.read_csv(path, ["id"])
    assert parsed.frame["id"].tolist() == ["1", "3"]
    bad = parsed.bad_rows.to_dict("records")
    assert bad == [
        {"file": str(path), "line": 3, "raw": "2,y",
         "reason": "expected 3 fields, found 2"}
    ]


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("empty.csv", "", "the file is empty"),
        ("header_only.csv", HEADER, "has a header but no rows"),
        ("missing.csv", "id,name\n1,x\n", "missing column(s) value"),
        ("truncated.csv", HEADER + "1,x,10\n2,y", "the last line is truncated"),
        ("latin1.csv", (HEADER + "1,\xe9,10\n").encode("latin-1"), "not valid utf-8"),
    ],
)
def test_whole_file_problems_fail_with_file_and_problem(tmp_path, name, body, message):
    path = write(tmp_path, name, body)
    with pytest.raises(SourceError) as caught:
        pipeline.read_csv(path, ["id", "value"])
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_truncated_gzip_fails_with_message(tmp_path):
    path = tmp_path / "cut.csv.gz"
    rows = "".join(f"{n},{n * 7919 % 104729},{n * n}\n" for n in range(5000))
    whole = gzip.compress((HEADER + rows).encode())
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(SourceError, match="truncated or corrupt"):
        pipeline.read_csv(path, ["id"])


def test_last_line_without_newline_but_complete_is_read(tmp_path):
    path = write(tmp_path, "a.csv", HEADER + "1,x,10")
    assert len(pipeline.read_csv(path, ["id"]).frame) == 1


def test_folder_discovery_lists_matching_files_only(tmp_path):
    write(tmp_path, "b.csv", HEADER + "1,x,1\n")
    write(tmp_path, "a.csv.gz", HEADER + "1,x,1\n")
    (tmp_path / "notes.txt").write_text("x")
    found = pipeline.discover(tmp_path, ("*.csv", "*.csv.gz"))
    assert [p.name for p in found] == ["a.csv.gz", "b.csv"]


def test_folder_with_no_matching_files_fails(tmp_path):
    with pytest.raises(SourceError, match="no files matching"):
        pipeline.discover(tmp_path, ("*.csv",))


def test_mapping_must_be_toml_or_yaml(tmp_path):
    bad = tmp_path / "m.json"
    bad.write_text("{}")
    with pytest.raises(SourceError, match="must be a .toml or .yaml"):
        pipeline.read_mapping(bad)
    good = tmp_path / "m.yaml"
    good.write_text("columns:\n  incident_id: ID\n")
    assert pipeline.read_mapping(good) == {"columns": {"incident_id": "ID"}}
