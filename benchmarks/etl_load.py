"""Benchmark: generate N years of demo data, load it into DuckDB, print figures.

    python benchmarks/etl_load.py [--years 10] [--seed 42] [--keep DIR]

Prints rows, seconds and rows per second per source, peak memory and the totals,
then the time of an incremental refresh (one more day of CAD incidents). It only
prints: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from etl import demo, pipeline, warehouse  # noqa: E402 - needs the project root on the path


def _peak_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def _rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:,.0f}" if seconds > 0 else "-"


def _generate(out: Path, years: int, seed: int) -> dict[str, Path]:
    rows: Counter[str] = Counter()
    started = time.perf_counter()
    paths = demo.generate(
        out, years=years, seed=seed, progress=lambda label, n: rows.update({label: n})
    )
    seconds = time.perf_counter() - started
    total = sum(rows.values())
    print(f"generated {years} year(s) into {out} in {seconds:.1f} s "
          f"({_rate(total, seconds)} rows/s; generator peak "
          f"{max(_peak_mb(), _peak_mb(resource.RUSAGE_CHILDREN)):,.0f} MB)")
    for label, count in rows.items():
        print(f"  {label:<18} {count:>12,} rows")
    return paths


def _load(url: str, paths: dict[str, Path]) -> None:
    print(f"\n{'source':<18} {'status':<10} {'rows read':>12} {'loaded':>12} "
          f"{'rejected':>9} {'duplicate':>9} {'seconds':>8} {'rows/s':>10} "
          f"{'peak MB':>8}")
    total_rows, total_seconds = 0, 0.0
    for name, path in paths.items():
        started = time.perf_counter()
        result = pipeline.run(url, name, path)
        seconds = time.perf_counter() - started
        total_rows += result.rows_read
        total_seconds += seconds
        print(f"{name:<18} {result.status:<10} {result.rows_read:>12,} "
              f"{result.rows_loaded:>12,} {result.rows_rejected:>9,} "
              f"{result.rows_duplicate:>9,} {seconds:>8.1f} "
              f"{_rate(result.rows_read, seconds):>10} {_peak_mb():>8,.0f}")
        if result.status != "succeeded":
            print(f"  {result.message}")
    print(f"{'total':<18} {'':<10} {total_rows:>12,} {'':>12} {'':>9} {'':>9} "
          f"{total_seconds:>8.1f} {_rate(total_rows, total_seconds):>10} "
          f"{_peak_mb():>8,.0f}")
    print(f"warehouse holds: {_fact_rows(url)}")


def _fact_rows(url: str) -> str:
    """Rows the fact tables hold: a load that reports rows but keeps none shows here."""
    tables = ("fct_crime", "fct_incident", "fct_call")
    counts = warehouse.Reader(url).read_sql(
        " UNION ALL ".join(f"SELECT '{t}' AS t, count(*) AS n FROM {t}" for t in tables)
    )
    return ", ".join(f"{row.t} {row.n:,}" for row in counts.itertuples())


def _incremental(url: str, folder: Path, seed: int) -> None:
    """One more day of incidents, after the generated months, as its own file."""
    day = dt.date.today().replace(day=1)  # generate() ends with last month
    day_file = folder / f"cad-{day:%Y-%m-%d}.csv.gz"
    day_file.parent.mkdir(parents=True, exist_ok=True)
    rows = demo.write_cad_day(day_file, day, seed=seed)
    started = time.perf_counter()
    result = pipeline.run(url, "cad", day_file)
    seconds = time.perf_counter() - started
    print(f"\nincremental refresh: {rows:,} CAD incidents for {day} loaded in "
          f"{seconds:.2f} s ({result.status}; loaded {result.rows_loaded:,}, "
          f"rejected {result.rows_rejected:,}; peak {_peak_mb():,.0f} MB)")
    if result.status != "succeeded":
        print(f"  {result.message}")
    print(f"warehouse holds: {_fact_rows(url)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", type=Path, help="write here and keep the files")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # figures appear as a long run goes

    root = args.keep or Path(tempfile.mkdtemp(prefix="bluelamp-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    warehouse_file = root / "warehouse.duckdb"
    shutil.rmtree(root / "warehouse.duckdb.d", ignore_errors=True)
    warehouse_file.unlink(missing_ok=True)
    url = f"duckdb:///{warehouse_file}"
    try:
        paths = _generate(root / "data", args.years, args.seed)
        _load(url, paths)
        _incremental(url, root / "incremental", args.seed)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
