"""The refresh schedule: one APScheduler job per source, run by a single process."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import create_engine, text

from etl import pipeline, warehouse
from etl.sources import SOURCES

log = logging.getLogger("bluelamp.etl.scheduler")

# An arbitrary constant naming Bluelamp's scheduler among PostgreSQL advisory locks.
_ADVISORY_LOCK_KEY = 7_455_621_331


@dataclass(frozen=True)
class ScheduledSource:
    source: str
    path: str
    mapping: str | None
    interval_minutes: float


class SchedulerAlreadyRunning(RuntimeError):
    pass


def read_schedule(
    path: str | Path, intervals: dict[str, float]
) -> list[ScheduledSource]:
    """Read the schedule file: `[sources.<name>]` with `path` and optional `mapping`."""
    path = Path(path)
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise pipeline.SourceError(
            f"{path}: no schedule file; write one with a [sources.<name>] table per "
            "source (python -m etl demo writes one for the demo data)"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise pipeline.SourceError(f"{path}: not valid TOML ({exc})") from exc
    entries = []
    for name, entry in config.get("sources", {}).items():
        if name not in SOURCES:
            raise pipeline.SourceError(
                f"{path}: unknown source {name!r}; known: {', '.join(SOURCES)}"
            )
        if "path" not in entry:
            raise pipeline.SourceError(f"{path}: [sources.{name}] needs a path")
        entries.append(
            ScheduledSource(
                source=name,
                path=str(entry["path"]),
                mapping=entry.get("mapping"),
                interval_minutes=float(entry.get("interval_minutes", intervals[name])),
            )
        )
    return entries


def build_scheduler(
    url: str,
    entries: list[ScheduledSource],
    run: Callable[..., pipeline.RunResult] = pipeline.run,
) -> BlockingScheduler:
    """A scheduler with one job per source, not yet started."""
    scheduler = BlockingScheduler(timezone="UTC")
    for entry in entries:
        scheduler.add_job(
            run,
            IntervalTrigger(minutes=entry.interval_minutes),
            args=(url, entry.source, entry.path, entry.mapping),
            id=entry.source,
            name=f"refresh {entry.source} every {entry.interval_minutes:g} min",
            # A refresh that overran its interval is run once, not queued up.
            coalesce=True,
            max_instances=1,
            misfire_grace_time=int(entry.interval_minutes * 60),
        )
    return scheduler


@contextlib.contextmanager
def single_instance(url: str) -> Iterator[None]:
    """Hold the one scheduler lock for this warehouse, or raise at once."""
    if warehouse.is_duckdb(url):
        lock_path = warehouse.duckdb_path(url)
        lock_path = lock_path.with_name(lock_path.name + ".scheduler.lock")
        with open(lock_path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SchedulerAlreadyRunning(
                    "another scheduler already refreshes "
                    f"{warehouse.safe_url(url)} (lock {lock_path})"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    engine = create_engine(url)
    with engine.connect() as conn:
        got = conn.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": _ADVISORY_LOCK_KEY}
        ).scalar()
        if not got:
            raise SchedulerAlreadyRunning(
                "another scheduler already refreshes "
                f"{warehouse.safe_url(url)} (advisory lock held)"
            )
        try:
            yield
        finally:
            conn.execute(
                text("SELECT pg_advisory_unlock(:key)"), {"key": _ADVISORY_LOCK_KEY}
            )
    engine.dispose()
