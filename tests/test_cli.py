"""The `python -m etl` command line, end to end in subprocesses, on both engines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ALEXANDRIA = "cad/alexandria_va_decc_2025"


def etl(*args: str, url: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "BLUELAMP_WAREHOUSE_URL": url,
           "PYTHONPATH": str(ROOT), "BLUELAMP_USERS_FILE": str(cwd / "users.toml"),
           "BLUELAMP_SCHEDULE_FILE": str(cwd / "schedule.toml")}
    return subprocess.run(
        [sys.executable, "-m", "etl", *args], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=600,
    )


@pytest.mark.real_data
def test_run_prints_the_accounting_and_status_lists_the_run(
    warehouse_url, shared_data, tmp_path
):
    week = shared_data / ALEXANDRIA / "decc_cad_2025_week35.csv.gz"
    mapping = ROOT / "etl/mappings/cad-alexandria_va_decc_2025.toml"
    done = etl("run", "cad", "--path", str(week), "--mapping", str(mapping),
               url=warehouse_url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "cad: run 1 succeeded" in out
    counts = {
        line.split()[0]: int(line.split()[-1].replace(",", ""))
        for line in out.splitlines()
        if line.strip().split(" ")[0] in {"read", "loaded", "rejected", "duplicate"}
    }
    set_aside = int(out.split("set aside")[1].split()[0].replace(",", ""))
    assert counts["read"] > 1000
    assert counts["read"] == (
        counts["loaded"] + counts["rejected"] + counts["duplicate"] + set_aside
    )
    status = etl("status", url=warehouse_url, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "cad: last success" in status.stdout
    assert str(counts["loaded"]) in status.stdout


def test_a_bad_file_fails_with_its_name_and_a_nonzero_exit(warehouse_url, tmp_path):
    bad = tmp_path / "incidents.csv"
    bad.write_text("incident_id,something_else\n1,2\n")
    done = etl("run", "cad", "--path", str(bad), url=warehouse_url, cwd=tmp_path)
    assert done.returncode == 1
    assert "failed" in done.stdout
    assert str(bad) in done.stdout and "missing column(s)" in done.stdout
    status = etl("status", url=warehouse_url, cwd=tmp_path)
    assert "last failure" in status.stdout and "never loaded" in status.stdout


def test_demo_loads_once_then_reuses_the_warehouse(duckdb_url, tmp_path):
    first = etl("demo", "--months", "1", url=duckdb_url, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "analyst" in first.stdout and "bluelamp-demo" in first.stdout
    for source in ("boundaries", "population", "police-uk-street", "cad", "calls"):
        assert f"{source}: run" in first.stderr and "failed" not in first.stderr
    assert (tmp_path / "schedule.toml").exists()
    second = etl("demo", "--months", "1", url=duckdb_url, cwd=tmp_path)
    assert second.returncode == 0
    assert "reusing it" in second.stdout
    jobs = etl("schedule", "--list", url=duckdb_url, cwd=tmp_path)
    assert jobs.returncode == 0, jobs.stderr
    assert "refresh cad every 5 min" in jobs.stdout
