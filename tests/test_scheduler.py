"""The refresh schedule: a job per source on its interval, and one scheduler only."""

from __future__ import annotations

import pytest

from etl import scheduler
from etl.pipeline import SourceError

INTERVALS = {"police-uk-street": 360.0, "cad": 5.0, "calls": 15.0,
             "boundaries": 10080.0, "population": 10080.0}


def test_each_source_gets_one_job_on_its_own_interval(tmp_path):
    schedule = tmp_path / "schedule.toml"
    schedule.write_text(
        '[sources.cad]\npath = "/data/cad"\nmapping = "etl/mappings/x.toml"\n'
        '[sources.police-uk-street]\npath = "/data/crime"\n'
        '[sources.calls]\npath = "/data/calls"\ninterval_minutes = 2\n'
    )
    entries = scheduler.read_schedule(schedule, INTERVALS)
    sched = scheduler.build_scheduler("duckdb:///unused.duckdb", entries)
    jobs = {job.id: job for job in sched.get_jobs()}
    assert set(jobs) == {"cad", "police-uk-street", "calls"}
    assert jobs["cad"].trigger.interval.total_seconds() == 5 * 60
    assert jobs["police-uk-street"].trigger.interval.total_seconds() == 360 * 60
    assert jobs["calls"].trigger.interval.total_seconds() == 2 * 60
    assert jobs["cad"].args == (
        "duckdb:///unused.duckdb", "cad", "/data/cad", "etl/mappings/x.toml"
    )
    assert jobs["cad"].max_instances == 1 and jobs["cad"].coalesce
    assert not sched.running


def test_unknown_source_in_schedule_is_refused(tmp_path):
    schedule = tmp_path / "schedule.toml"
    schedule.write_text('[sources.weather]\npath = "/x"\n')
    with pytest.raises(SourceError, match="unknown source 'weather'"):
        scheduler.read_schedule(schedule, INTERVALS)


def test_missing_schedule_file_says_how_to_make_one(tmp_path):
    with pytest.raises(SourceError, match="no schedule file"):
        scheduler.read_schedule(tmp_path / "absent.toml", INTERVALS)


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_a_second_scheduler_for_the_same_warehouse_is_refused(request, engine):
    url = request.getfixturevalue(f"{engine}_url")
    with scheduler.single_instance(url):
        with pytest.raises(scheduler.SchedulerAlreadyRunning):
            with scheduler.single_instance(url):
                pass
    with scheduler.single_instance(url):
        pass
