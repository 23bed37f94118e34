"""Running one source: read and validate files, load atomically, keep the books.

A source module (see `etl/sources/`) provides:

- `NAME` (the CLI name) and `PATTERNS` (file globs it reads in a folder);
- `WRITES`: the fact tables it loads, whose keys are checked after every load;
- `stage(files, mapping) -> Staged`: parse and validate, outside any transaction;
  raise `SourceError` for a whole-file problem;
- `load(conn, staged, run_id) -> Loaded`: write into the warehouse inside the
  run's transaction.

The pipeline records the run in `etl_run`, the rejects in `etl_quarantine`, and
refuses to commit unless read = loaded + rejected + duplicate + set aside.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import gzip
import io
import logging
import sys
import time
import tomllib
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import yaml
from sqlalchemy import Column, Connection, MetaData, Table, text
from sqlalchemy.schema import CreateTable

from etl import checks, schema, warehouse

log = logging.getLogger("bluelamp.etl")

QUARANTINE_COLUMNS = ["file", "line", "raw", "reason"]


class SourceError(Exception):
    """A whole-file (or whole-run) problem: the run fails and nothing is loaded."""


class AccountingError(SourceError):
    pass


@dataclass
class Staged:
    """What a source parsed: frames to load, rows read, and rows refused."""

    frames: dict[str, pd.DataFrame]
    rows_read: int
    rejects: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=QUARANTINE_COLUMNS)
    )
    rows_set_aside: int = 0
    files: Sequence[Path] = ()
    notes: list[str] = field(default_factory=list)


@dataclass
class Loaded:
    rows_loaded: int
    rows_duplicate: int
    notes: list[str] = field(default_factory=list)


@dataclass
class RunResult:
    run_id: int | None
    source: str
    status: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    rows_duplicate: int = 0
    rows_set_aside: int = 0
    files: int = 0
    seconds: float = 0.0
    message: str = ""

    def summary(self) -> str:
        rate = self.rows_read / self.seconds if self.seconds else 0.0
        return (
            f"{self.source}: run {self.run_id} {self.status}: read {self.rows_read:,}"
            f" / loaded {self.rows_loaded:,} / rejected {self.rows_rejected:,}"
            f" / duplicate {self.rows_duplicate:,} / set aside {self.rows_set_aside:,}"
            f" from {self.files} file(s) in {self.seconds:.1f} s ({rate:,.0f} rows/s)"
            + (f": {self.message}" if self.message else "")
        )


# ---------------------------------------------------------------------------
# Reading files


# The running load's progress line; read_csv advances it file by file, so every
# CSV source shows rows done and rows per second without plumbing of its own.
_progress: Progress | None = None


def discover(path: str | Path, patterns: Iterable[str]) -> list[Path]:
    """One file, or the files in a folder (not recursive) that match the patterns."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted({p for pattern in patterns for p in path.glob(pattern)})
        if not found:
            raise SourceError(
                f"{path}: no files matching {', '.join(patterns)} in this folder"
            )
        return found
    raise SourceError(f"{path}: no such file or folder")


def read_mapping(path: str | Path | None) -> dict | None:
    if path is None:
        return None
    path = Path(path)
    try:
        if path.suffix == ".toml":
            return tomllib.loads(path.read_text(encoding="utf-8"))
        if path.suffix in (".yaml", ".yml"):
            return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise SourceError(f"{path}: cannot read the mapping: {exc}") from exc
    raise SourceError(f"{path}: a mapping must be a .toml or .yaml file")


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """Decode a .csv or .csv.gz file, failing with a message a person can act on."""
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise SourceError(
            f"{path}: the gzip file is truncated or corrupt ({exc})"
        ) from exc
    except OSError as exc:
        raise SourceError(f"{path}: cannot read ({exc})") from exc
    try:
        return data.decode("utf-8-sig" if encoding.lower() == "utf-8" else encoding)
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{path}: not valid {encoding} (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); re-export the file as {encoding} or set the encoding in "
            "the mapping"
        ) from exc


@dataclass
class CsvFile:
    """A parsed CSV: string columns plus `_line`, the 1-based line each row began on."""

    path: Path
    frame: pd.DataFrame
    text: str
    bad_rows: pd.DataFrame  # rows with the wrong number of fields, as quarantine rows

    @functools.cached_property
    def _lines(self) -> list[str]:
        return self.text.splitlines()

    def raw(self, lines: Iterable[int]) -> list[str]:
        all_lines = self._lines
        return [all_lines[n - 1] if 0 < n <= len(all_lines) else "" for n in lines]

    def rejects(self, rows: pd.DataFrame, reason: str | pd.Series) -> pd.DataFrame:
        """Quarantine rows for some of this file's rows, with a reason."""
        if rows.empty:
            return pd.DataFrame(columns=QUARANTINE_COLUMNS)
        lines = rows["_line"].astype(int).tolist()
        reasons = reason.tolist() if isinstance(reason, pd.Series) else reason
        return pd.DataFrame(
            {"file": str(self.path), "line": lines, "raw": self.raw(lines),
             "reason": reasons}
        )


def read_csv(
    path: Path,
    required: Iterable[str],
    *,
    encoding: str = "utf-8",
    delimiter: str = ",",
) -> CsvFile:
    """Read a CSV as strings, after the whole-file checks every source shares."""
    text_ = read_text(path, encoding)
    if not text_.strip():
        raise SourceError(f"{path}: the file is empty")
    header_end = text_.find("\n")
    header_line = text_ if header_end < 0 else text_[:header_end]
    header = next(csv.reader([header_line.rstrip("\r")], delimiter=delimiter))
    header = [h.strip() for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        raise SourceError(
            f"{path}: missing column(s) {', '.join(missing)}; the header has "
            f"{', '.join(header)}"
        )
    body = text_[header_end + 1 :] if header_end >= 0 else ""
    if not body.strip():
        raise SourceError(f"{path}: the file has a header but no rows")
    if not text_.endswith("\n"):
        last = text_.rsplit("\n", 1)[-1]
        fields = next(csv.reader([last], delimiter=delimiter), [])
        if len(fields) < len(header) or last.count('"') % 2:
            raise SourceError(
                f"{path}: the last line is truncated ({len(fields)} of {len(header)} "
                "fields); the export was cut off, fetch it again"
            )
    frame, bad = _parse_rows(text_, header, delimiter, path)
    if _progress is not None:
        _progress.advance(len(frame) + len(bad))
    return CsvFile(path=path, frame=frame, text=text_, bad_rows=bad)


def _parse_fast(text_: str, header: list[str], delimiter: str) -> pd.DataFrame | None:
    """Parse with pyarrow (multi-threaded); None if any row is irregular."""
    irregular = []

    def note_irregular(row) -> str:
        irregular.append(row.number)
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(text_.encode("utf-8")),
            read_options=pacsv.ReadOptions(column_names=header, skip_rows=1),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, invalid_row_handler=note_irregular
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:
        return None
    if irregular:
        return None
    return table.to_pandas()


def _parse_rows(
    text_: str, header: list[str], delimiter: str, path: Path
) -> tuple[pd.DataFrame, pd.DataFrame]:
    newlines = text_.count("\n") - (0 if text_.endswith("\n") else -1)
    frame = _parse_fast(text_, header, delimiter)
    # The fast path is exact only when every record is one physical line with the
    # header's field count: then row i is line i + 2.
    if frame is not None and len(frame) == newlines - 1:
        frame["_line"] = np.arange(2, len(frame) + 2)
        return frame, pd.DataFrame(columns=QUARANTINE_COLUMNS)
    # Slow path, exact line numbers: a record spans lines, or has the wrong
    # field count.
    rows: list[list[str]] = []
    line_numbers: list[int] = []
    bad: list[dict] = []
    lines = text_.splitlines()
    reader = csv.reader(io.StringIO(text_), delimiter=delimiter)
    next(reader)
    start = reader.line_num + 1
    for record in reader:
        if not record:
            start = reader.line_num + 1
            continue
        if len(record) != len(header):
            bad.append(
                {
                    "file": str(path),
                    "line": start,
                    "raw": "\n".join(lines[start - 1 : reader.line_num]),
                    "reason": f"expected {len(header)} fields, found {len(record)}",
                }
            )
        else:
            rows.append(record)
            line_numbers.append(start)
        start = reader.line_num + 1
    frame = pd.DataFrame(rows, columns=header, dtype=str)
    frame["_line"] = line_numbers
    return frame, pd.DataFrame(bad, columns=QUARANTINE_COLUMNS)


# ---------------------------------------------------------------------------
# Writing


def upsert(
    conn: Connection,
    table: str,
    frame: pd.DataFrame,
    keys: Sequence[str],
    compare: Sequence[str],
) -> tuple[int, int, int]:
    """Insert new rows, replace changed ones, leave identical ones.

    Returns (inserted, updated, unchanged). `frame` must be unique on `keys`.
    """
    if frame.empty:
        return 0, 0, 0
    if conn.execute(text(f'SELECT 1 FROM "{table}" LIMIT 1')).first() is None:
        # A first load has nothing to compare against: append straight away.
        warehouse.insert_frame(conn, table, frame)
        return len(frame), 0, 0
    stage = f"_stage_{table}"
    conn.execute(text(f'DROP TABLE IF EXISTS "{stage}"'))
    # Explicit column DDL, not CREATE ... AS SELECT: DuckDB 2.0 reads such a table
    # back empty once it holds a full row group (122,880 rows) in a transaction.
    target = schema.metadata.tables[table]
    staging = Table(
        stage, MetaData(), *(Column(c.name, c.type) for c in target.columns),
        prefixes=["TEMPORARY"],
    )
    conn.execute(CreateTable(staging))
    warehouse.insert_frame(conn, stage, frame)
    on_keys = " AND ".join(f't."{k}" = s."{k}"' for k in keys)
    same = " AND ".join(f't."{c}" IS NOT DISTINCT FROM s."{c}"' for c in compare)
    existing = conn.execute(
        text(f'SELECT count(*) FROM "{table}" t JOIN "{stage}" s ON {on_keys}')
    ).scalar()
    unchanged = conn.execute(
        text(
            f'SELECT count(*) FROM "{table}" t JOIN "{stage}" s ON {on_keys}'
            + (f" AND {same}" if same else "")
        )
    ).scalar()
    if existing:
        conn.execute(
            text(
                f'DELETE FROM "{table}" t USING "{stage}" s WHERE {on_keys}'
                + (f" AND NOT ({same})" if same else " AND 1=0")
            )
        )
    columns = ", ".join(f'"{c}"' for c in frame.columns)
    key_match = " AND ".join(f't."{k}" = s."{k}"' for k in keys)
    conn.execute(
        text(
            f'INSERT INTO "{table}" ({columns}) SELECT {columns} FROM "{stage}" s '
            f'WHERE NOT EXISTS (SELECT 1 FROM "{table}" t WHERE {key_match})'
        )
    )
    conn.execute(text(f'DROP TABLE "{stage}"'))
    updated = int(existing) - int(unchanged)
    inserted = len(frame) - int(existing)
    return inserted, updated, int(unchanged)


def split_duplicates(
    frame: pd.DataFrame, keys: Sequence[str]
) -> tuple[pd.DataFrame, int]:
    """Keep the last row per key; return it and how many earlier rows were dropped."""
    kept = frame.drop_duplicates(subset=list(keys), keep="last")
    return kept, len(frame) - len(kept)


# ---------------------------------------------------------------------------
# Running


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def run(
    url: str,
    source_name: str,
    path: str | Path,
    mapping_path: str | Path | None = None,
) -> RunResult:
    """Load one source now. Never raises for bad input: the result says what failed."""
    from etl.sources import get_source

    global _progress
    source = get_source(source_name)
    warehouse.ensure_schema(url)
    started = _now()
    _progress = Progress(f"{source.NAME}: read")
    clock = time.perf_counter()
    result = RunResult(run_id=None, source=source.NAME, status="failed")
    try:
        files = discover(path, source.PATTERNS)
        mapping = read_mapping(mapping_path)
        try:
            staged = source.stage(files, mapping)
        finally:
            _progress.finish()
            _progress = None
        result.files = len(files)
        with warehouse.write(url) as conn:
            run_id = warehouse.next_run_id(conn)
            result.run_id = run_id
            loaded = source.load(conn, staged, run_id)
            rejects = pd.concat(
                [staged.rejects.reindex(columns=QUARANTINE_COLUMNS)], ignore_index=True
            )
            if not rejects.empty:
                rejects = rejects.assign(run_id=run_id, source=source.NAME)
                rejects["line"] = rejects["line"].astype("int64")
                warehouse.insert_frame(
                    conn, "etl_quarantine",
                    rejects[["run_id", "source", "file", "line", "raw", "reason"]],
                )
            result.rows_read = staged.rows_read
            result.rows_loaded = loaded.rows_loaded
            result.rows_rejected = len(rejects)
            result.rows_duplicate = loaded.rows_duplicate
            result.rows_set_aside = staged.rows_set_aside
            accounted = (
                result.rows_loaded + result.rows_rejected + result.rows_duplicate
                + result.rows_set_aside
            )
            if accounted != result.rows_read:
                raise AccountingError(
                    f"accounting does not balance: read {result.rows_read:,} but "
                    f"loaded + rejected + duplicate + set aside = {accounted:,}"
                )
            try:
                checks.check_facts(conn, getattr(source, "WRITES", ()))
            except checks.CheckFailed as exc:
                raise SourceError(str(exc)) from exc
            result.status = "succeeded"
            result.message = "; ".join(staged.notes + loaded.notes)
            result.seconds = time.perf_counter() - clock
            _record(conn, result, path, mapping_path, started)
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, then reported
        if not isinstance(exc, SourceError):
            log.exception("%s: unexpected error", source.NAME)
        result.status = "failed"
        result.message = str(exc) if isinstance(exc, SourceError) else (
            f"{type(exc).__name__}: {exc}"
        )
        result.rows_loaded = result.rows_duplicate = 0
        result.seconds = time.perf_counter() - clock
        _record_failure(url, result, path, mapping_path, started)
    log.info(result.summary())
    return result


def _run_row(result: RunResult, path, mapping_path, started) -> dict:
    return {
        "run_id": result.run_id,
        "source": result.source,
        "path": str(path),
        "mapping": str(mapping_path) if mapping_path else None,
        "started_at": started,
        "finished_at": _now(),
        "status": result.status,
        "rows_read": result.rows_read,
        "rows_loaded": result.rows_loaded,
        "rows_rejected": result.rows_rejected,
        "rows_duplicate": result.rows_duplicate,
        "rows_set_aside": result.rows_set_aside,
        "files": result.files,
        "message": result.message[:4000],
    }


def _record(conn: Connection, result: RunResult, path, mapping_path, started) -> None:
    from etl.schema import etl_run

    row = _run_row(result, path, mapping_path, started)
    conn.execute(etl_run.insert().values(**row))


def _record_failure(url: str, result: RunResult, path, mapping_path, started) -> None:
    # The failed load was rolled back; the failure itself is kept for `status`.
    try:
        with warehouse.write(url) as conn:
            # A fresh id: on DuckDB the failed load's id died with its snapshot.
            result.run_id = warehouse.next_run_id(conn)
            _record(conn, result, path, mapping_path, started)
    except Exception:  # noqa: BLE001 - the original failure is what matters
        log.exception("could not record the failed run")


class Progress:
    """Rows done and rows per second on a terminal; silent when not a terminal."""

    def __init__(self, label: str, total: int | None = None, stream=None):
        self.label = label
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self.started = time.perf_counter()
        self._last = 0.0
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()

    def advance(self, rows: int) -> None:
        self.done += rows
        now = time.perf_counter()
        if self.interactive and now - self._last > 0.5:
            self._last = now
            self.stream.write("\r" + self._line())
            self.stream.flush()

    def _line(self) -> str:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        of = f" of {self.total:,}" if self.total else ""
        rate = self.done / elapsed
        return f"{self.label}: {self.done:,}{of} rows, {rate:,.0f} rows/s"

    def finish(self) -> str:
        line = self._line() + f" in {time.perf_counter() - self.started:.1f} s"
        if self.interactive:
            self.stream.write("\r" + line + "\n")
        return line
