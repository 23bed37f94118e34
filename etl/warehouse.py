"""Opening the warehouse for writing (atomic publish) and for reading (snapshot-aware).

DuckDB lets one process write or many read a file, never both, so the embedded
default publishes immutable snapshots: the warehouse path (say `bluelamp.duckdb`) is
a symlink to `bluelamp.duckdb.d/v<N>.duckdb`. A writer copies the current snapshot
to a new version, loads into the copy, and swaps the symlink with an atomic rename;
a failed load deletes the copy, so the published data never changes. Readers open
the snapshot the symlink names, read-only, and switch when it changes; each snapshot
has its own path, so DuckDB's per-path instance cache never hands out an old one.
PostgreSQL needs none of this: a write is one transaction.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

from etl import schema

SNAPSHOTS_KEPT = 3
_VERSION_RE = re.compile(r"^v(\d+)\.duckdb$")


def is_duckdb(url: str) -> bool:
    return make_url(url).get_backend_name() == "duckdb"


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: say nothing of it beyond its scheme
        return url.split(":", 1)[0] + ":..."


def duckdb_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise ValueError(f"{url}: the DuckDB warehouse must be a file")
    return Path(database).absolute()


def _snapshot_dir(path: Path) -> Path:
    return path.with_name(path.name + ".d")


def current_snapshot(path: Path) -> Path | None:
    """The snapshot file the warehouse path points at, or None before the first load."""
    if not path.exists():
        return None
    return path.resolve()


def _next_version(path: Path) -> int:
    versions = [
        int(m.group(1))
        for p in _snapshot_dir(path).glob("v*.duckdb")
        if (m := _VERSION_RE.match(p.name))
    ]
    return max(versions, default=0) + 1


def _publish(path: Path, snapshot: Path) -> None:
    link_tmp = path.with_name(f".{path.name}.link-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        link_tmp.unlink()
    os.symlink(os.path.relpath(snapshot, path.parent), link_tmp)
    if path.exists() and not path.is_symlink():
        # A plain DuckDB file from elsewhere: keep it as a snapshot before replacing.
        path.rename(_snapshot_dir(path) / "v0.duckdb")
    os.replace(link_tmp, path)


def _prune(path: Path) -> None:
    # Keep a few old snapshots: a reader may still be opening the one just replaced.
    snapshots = sorted(
        (p for p in _snapshot_dir(path).glob("v*.duckdb") if _VERSION_RE.match(p.name)),
        key=lambda p: int(_VERSION_RE.match(p.name).group(1)),
    )
    for old in snapshots[:-SNAPSHOTS_KEPT]:
        with contextlib.suppress(FileNotFoundError):
            old.unlink()
        with contextlib.suppress(FileNotFoundError):
            old.with_name(old.name + ".wal").unlink()


@contextlib.contextmanager
def _writer_lock(path: Path) -> Iterator[None]:
    lock_path = path.with_name(path.name + ".lock")
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _duckdb_engine(path: Path, read_only: bool) -> Engine:
    engine = create_engine(
        f"duckdb:///{path}",
        connect_args={"read_only": read_only, "config": {"threads": 2}},
    )
    # Runs report their own progress; DuckDB's bar would litter logs and terminals.
    event.listen(
        engine,
        "connect",
        lambda dbapi, _record: dbapi.execute("SET enable_progress_bar = false"),
    )
    return engine


@contextlib.contextmanager
def write(url: str) -> Iterator[Connection]:
    """A connection in one transaction: readers see all of its work or none."""
    if not is_duckdb(url):
        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                yield conn
        finally:
            engine.dispose()
        return
    path = duckdb_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _writer_lock(path):
        snapshots = _snapshot_dir(path)
        snapshots.mkdir(exist_ok=True)
        target = snapshots / f"v{_next_version(path)}.duckdb"
        work = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        source = current_snapshot(path)
        if source is not None:
            shutil.copyfile(source, work)
        engine = _duckdb_engine(work, read_only=False)
        try:
            with engine.begin() as conn:
                yield conn
            with engine.connect() as conn:
                conn.exec_driver_sql("CHECKPOINT")
            engine.dispose()
            os.replace(work, target)
            _publish(path, target)
            _prune(path)
        except BaseException:
            engine.dispose()
            for leftover in (work, work.with_name(work.name + ".wal")):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
            raise


class Reader:
    """Read connections that follow the latest published snapshot.

    One per process; thread-safe. `connect()` costs one `readlink` when nothing
    has changed.
    """

    def __init__(self, url: str):
        self.url = url
        self._duckdb = is_duckdb(url)
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self._snapshot: Path | None = None
        if not self._duckdb:
            self._engine = create_engine(url, pool_pre_ping=True)

    def _engine_for_now(self) -> Engine:
        if not self._duckdb:
            return self._engine
        path = duckdb_path(self.url)
        snapshot = current_snapshot(path)
        if snapshot is None:
            raise WarehouseMissing(
                f"No warehouse at {path}: load data first (python -m etl demo)"
            )
        if snapshot != self._snapshot:
            with self._lock:
                if snapshot != self._snapshot:
                    old = self._engine
                    self._engine = _duckdb_engine(snapshot, read_only=True)
                    self._snapshot = snapshot
                    if old is not None:
                        # Connections still checked out finish on the old snapshot.
                        old.dispose(close=False)
        return self._engine

    @property
    def snapshot(self) -> Path | None:
        return self._snapshot

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        with self._engine_for_now().connect() as conn:
            yield conn

    def read_sql(self, sql: str, params: dict | None = None) -> pd.DataFrame:
        with self.connect() as conn:
            return pd.read_sql(text(sql), conn, params=params or {})


class WarehouseMissing(RuntimeError):
    pass


def create_schema(conn: Connection) -> None:
    schema.metadata.create_all(conn)


def ensure_schema(url: str) -> None:
    """Create the warehouse (and publish an empty snapshot) if it does not exist."""
    if is_duckdb(url) and current_snapshot(duckdb_path(url)) is not None:
        with Reader(url).connect() as conn:
            if _has_all_tables(conn):
                return
    if not is_duckdb(url):
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                if _has_all_tables(conn):
                    return
        finally:
            engine.dispose()
    with write(url) as conn:
        create_schema(conn)


def _has_all_tables(conn: Connection) -> bool:
    from sqlalchemy import inspect

    existing = set(inspect(conn).get_table_names())
    return set(schema.metadata.tables) <= existing


def insert_frame(conn: Connection, table: str, frame: pd.DataFrame) -> int:
    """Append a DataFrame to a table in bulk (columns named as in the table)."""
    if frame.empty:
        return 0
    columns = list(frame.columns)
    col_sql = ", ".join(f'"{c}"' for c in columns)
    if conn.dialect.name == "duckdb":
        duck = conn.connection.driver_connection
        view = f"_bluelamp_insert_{threading.get_ident()}"
        # DuckDB 2 refuses new work while an earlier result is unread; finish it
        # here rather than open a cursor, which would leave this transaction.
        if hasattr(duck, "complete"):
            duck.complete()
        duck.register(view, frame)
        try:
            duck.execute(
                f'INSERT INTO "{table}" ({col_sql}) SELECT {col_sql} FROM {view}'
            )
        finally:
            duck.unregister(view)
        return len(frame)
    # PostgreSQL: COPY is an order of magnitude faster than executemany.
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, header=False, na_rep="\\N")
    buffer.seek(0)
    raw = conn.connection.driver_connection
    with raw.cursor() as cur:
        with cur.copy(
            f"COPY \"{table}\" ({col_sql}) FROM STDIN WITH (FORMAT csv, NULL '\\N')"
        ) as copy:
            while chunk := buffer.read(1 << 20):
                copy.write(chunk)
    return len(frame)


def next_run_id(conn: Connection) -> int:
    # A sequence, not max()+1: two PostgreSQL writers may run at once.
    return int(conn.execute(text("SELECT nextval('etl_run_id_seq')")).scalar())


def latest_run_id(conn: Connection) -> int:
    value = conn.execute(
        text("SELECT max(run_id) FROM etl_run WHERE status = 'succeeded'")
    ).scalar()
    return int(value or 0)
