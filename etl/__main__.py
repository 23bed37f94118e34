"""The ETL command line: load a source, load demo data, schedule, report."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from pathlib import Path

import pandas as pd

import settings
from etl import pipeline, warehouse
from etl.sources import SOURCES

log = logging.getLogger("bluelamp.etl")

DEMO_SOURCES = tuple(SOURCES)


def _intervals() -> dict[str, float]:
    return {
        name: float(settings.get(settings.interval_setting_name(name)))
        for name in SOURCES
    }


def _print_result(result: pipeline.RunResult) -> None:
    print(
        f"{result.source}: run {result.run_id} {result.status}\n"
        f"  read       {result.rows_read:>12,}\n"
        f"  loaded     {result.rows_loaded:>12,}\n"
        f"  rejected   {result.rows_rejected:>12,}\n"
        f"  duplicate  {result.rows_duplicate:>12,}\n"
        f"  set aside  {result.rows_set_aside:>12,}\n"
        f"  files      {result.files:>12,}   {result.seconds:.1f} s"
        + (f"\n  {result.message}" if result.message else "")
    )


def cmd_run(args, url: str) -> int:
    result = pipeline.run(url, args.source, args.path, args.mapping)
    _print_result(result)
    return 0 if result.status == "succeeded" else 1


def _generate(args) -> dict[str, Path]:
    from etl import demo

    progress = _GenerationProgress()
    paths = demo.generate(
        Path(args.out),
        years=args.years,
        months=args.months,
        seed=args.seed,
        boundaries_dir=Path(args.boundaries) if args.boundaries else None,
        progress=progress,
    )
    progress.finish()
    return paths


class _GenerationProgress:
    """Prints rows written and rows per second as the generator reports files."""

    def __init__(self):
        self.bar = pipeline.Progress("demo data written")

    def __call__(self, label: str, rows: int) -> None:
        self.bar.advance(rows)

    def finish(self) -> None:
        log.info(self.bar.finish())


def cmd_demo_data(args, url: str) -> int:
    paths = _generate(args)
    for name, path in paths.items():
        print(f"{name:<18} {path}")
    return 0


def _demo_loaded(url: str) -> bool:
    if (
        warehouse.is_duckdb(url)
        and warehouse.current_snapshot(warehouse.duckdb_path(url)) is None
    ):
        return False
    try:
        runs = warehouse.Reader(url).read_sql(
            "SELECT DISTINCT source FROM etl_run WHERE status = 'succeeded'"
        )
    except Exception:  # noqa: BLE001 - no warehouse or no tables yet
        return False
    return set(DEMO_SOURCES) <= set(runs["source"])


def cmd_demo(args, url: str) -> int:
    import accounts

    if _demo_loaded(url) and not args.rebuild:
        print(
            f"The warehouse at {warehouse.safe_url(url)} already holds the demo "
            "data; reusing it "
            "(--rebuild to generate and load it again)."
        )
    else:
        paths = _generate(args)
        failed = False
        for name, path in paths.items():
            result = pipeline.run(url, name, path)
            failed = failed or result.status != "succeeded"
        _write_demo_schedule(paths)
        if failed:
            print("Some demo sources failed to load; see the messages above.")
            return 1
    users_file = Path(settings.get("BLUELAMP_USERS_FILE"))
    created = accounts.write_demo_users(users_file)
    if created:
        print(f"Demo users written to {users_file}:")
        for name, password in created.items():
            print(f"  {name:<10} password {password}")
    else:
        print(f"Users file {users_file} exists; log in with the accounts it holds.")
    return 0


def _write_demo_schedule(paths: dict[str, Path]) -> None:
    schedule = Path(settings.get("BLUELAMP_SCHEDULE_FILE"))
    if schedule.exists():
        return
    lines = ["# Written by `python -m etl demo`: what `python -m etl schedule` loads\n"]
    for name, path in paths.items():
        lines.append(f'\n[sources.{name}]\npath = "{Path(path).absolute()}"\n')
    schedule.write_text("".join(lines), encoding="utf-8")


def cmd_schedule(args, url: str) -> int:
    from etl import scheduler

    entries = scheduler.read_schedule(
        settings.get("BLUELAMP_SCHEDULE_FILE"), _intervals()
    )
    sched = scheduler.build_scheduler(url, entries)
    for job in sched.get_jobs():
        print(f"{job.id:<18} {job.name}")
    if args.list:
        return 0
    with scheduler.single_instance(url):
        print("Scheduler running; Ctrl+C stops it.")
        try:
            sched.start()
        except (KeyboardInterrupt, SystemExit):
            pass
    return 0


def cmd_status(args, url: str) -> int:
    try:
        runs = warehouse.Reader(url).read_sql(
            "SELECT run_id, source, status, finished_at, rows_read, rows_loaded, "
            "rows_rejected, rows_duplicate, rows_set_aside, message FROM etl_run "
            "ORDER BY run_id DESC"
        )
    except warehouse.WarehouseMissing as exc:
        print(exc)
        return 1
    if runs.empty:
        print("No ETL runs yet.")
        return 0
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    intervals = _intervals()
    for source, group in runs.groupby("source", sort=True):
        good = group[group["status"] == "succeeded"]
        last = good["finished_at"].max() if not good.empty else None
        stale = last is None or now - last > dt.timedelta(
            minutes=2 * intervals.get(source, 60)
        )
        state = (
            "never loaded"
            if last is None
            else f"last success {last:%Y-%m-%d %H:%M} UTC"
        )
        print(f"{source}: {state}{'  [STALE]' if stale else ''}")
        shown = group.head(args.runs)[
            [
                "run_id",
                "status",
                "finished_at",
                "rows_read",
                "rows_loaded",
                "rows_rejected",
                "rows_duplicate",
                "rows_set_aside",
            ]
        ]
        print(_indent(shown.to_string(index=False)))
        failed = group[group["status"] == "failed"].head(1)
        if not failed.empty:
            print(f"  last failure: {failed['message'].iloc[0]}")
    return 0


def _indent(text_: str) -> str:
    return "\n".join("  " + line for line in text_.splitlines())


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m etl", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="load one source now and print the accounting")
    run.add_argument("source", choices=list(SOURCES))
    run.add_argument("--path", required=True, help="a file or a folder of files")
    run.add_argument("--mapping", help="TOML or YAML mapping for another export")
    run.set_defaults(func=cmd_run)

    for name, func, help_ in (
        ("demo-data", cmd_demo_data, "write seeded demo source files"),
        ("demo", cmd_demo, "generate the demo files and load them all"),
    ):
        cmd = sub.add_parser(name, help=help_)
        cmd.add_argument("--years", type=int, default=2)
        cmd.add_argument(
            "--months", type=int, help="a span in months instead of --years"
        )
        cmd.add_argument("--seed", type=int, default=42)
        cmd.add_argument(
            "--boundaries", help="real boundary layers to use instead of synthetic"
        )
        if name == "demo-data":
            cmd.add_argument("--out", required=True)
        else:
            cmd.add_argument("--out", default=settings.get("BLUELAMP_DEMO_DIR"))
            cmd.add_argument(
                "--rebuild",
                action="store_true",
                help="generate and load again even if the warehouse has the demo",
            )
        cmd.set_defaults(func=func)

    schedule = sub.add_parser("schedule", help="run the refresh jobs until stopped")
    schedule.add_argument("--list", action="store_true", help="list the jobs and exit")
    schedule.set_defaults(func=cmd_schedule)

    status = sub.add_parser("status", help="each source's last runs, rows and rejects")
    status.add_argument("--runs", type=int, default=5)
    status.set_defaults(func=cmd_status)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # pyogrio logs every layer it writes at INFO; only its warnings matter here.
    logging.getLogger("pyogrio").setLevel(logging.WARNING)
    pd.set_option("display.width", 160)
    args = parser().parse_args(argv)
    url = settings.get("BLUELAMP_WAREHOUSE_URL")
    try:
        return args.func(args, url)
    except pipeline.SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
